import { expect } from "chai";
import { Interface } from "ethers";
import { PlacementRegistry__factory } from "../../../typechain-types";
import { isUnderpriced, translateChainError } from "../../../workers/src";

const exhausted = new Interface(PlacementRegistry__factory.abi).encodeErrorResult(
  "PlacementRegistryReplicasExhausted",
  [1, 2, 2],
);

describe("translateChainError: reverts decoded by name wherever the node puts their data", function () {
  it("decodes revert data that ethers gives at the top level (a gas estimate)", function () {
    const error = Object.assign(new Error("execution reverted (unknown custom error)"), {
      code: "CALL_EXCEPTION",
      data: exhausted,
    });
    const translated = translateChainError("claiming deployment 1", error);
    expect(translated.errorName).to.equal("PlacementRegistryReplicasExhausted");
    expect(translated.errorArgs?.map(String)).to.deep.equal(["1", "2", "2"]);
    expect(translated.shortMessage).to.equal(
      "claiming deployment 1: reverted with PlacementRegistryReplicasExhausted(1, 2, 2)",
    );
    expect(translated.retryable).to.equal(false);
  });

  it("decodes a revert at eth_sendRawTransaction, nested in the JSON-RPC error (Hardhat's automine)", function () {
    // The shape ethers 6 gives for it: "could not coalesce error", code UNKNOWN_ERROR.
    const error = Object.assign(new Error("could not coalesce error"), {
      code: "UNKNOWN_ERROR",
      error: {
        code: -32603,
        message: "Error: VM Exception while processing transaction: reverted with custom error",
        data: { message: "reverted with custom error", data: exhausted, txHash: "0x" + "12".repeat(32) },
      },
    });
    const translated = translateChainError("claiming deployment 1", error);
    expect(translated.errorName).to.equal("PlacementRegistryReplicasExhausted");
    expect(translated.shortMessage).to.not.contain("coalesce");
  });

  it("leaves an error without revert data retryable, named by its first line", function () {
    const translated = translateChainError(
      "claiming deployment 1",
      Object.assign(new Error("socket hang up\nmore"), { code: "NETWORK_ERROR", data: "0x" }),
    );
    expect(translated.errorName).to.equal(undefined);
    expect(translated.retryable).to.equal(true);
    expect(translated.shortMessage).to.equal("claiming deployment 1: socket hang up");
  });
});

describe("isUnderpriced: a node refusing a heartbeat for its price (the beat then reads fees anew)", function () {
  const nodeError = (message: string, code = "UNKNOWN_ERROR") =>
    Object.assign(new Error(`could not coalesce error (error={ "code": -32000, "message": "${message}" })`), {
      code,
    });
  const cases: Array<[string, Error, boolean]> = [
    [
      "Hardhat, automine",
      nodeError(
        "Transaction maxFeePerGas (1) is too low for the next block, which has a baseFeePerGas of 150610",
      ),
      true,
    ],
    ["geth, below the pool's minimum", nodeError("transaction underpriced"), true],
    [
      "geth, a replacement (ethers' code)",
      nodeError("replacement fee too low", "REPLACEMENT_UNDERPRICED"),
      true,
    ],
    [
      "geth, fee cap below the base fee",
      nodeError("max fee per gas less than block base fee: address 0x1"),
      true,
    ],
    ["Nethermind", nodeError("FeeTooLow, MaxFeePerGas too low"), true],
    ["a used nonce", nodeError("nonce has already been used", "NONCE_EXPIRED"), false],
    ["no funds for the gas", nodeError("insufficient funds for gas * price + value"), false],
    ["a revert", nodeError("VM Exception while processing transaction: reverted with custom error"), false],
    ["the network", Object.assign(new Error("socket hang up"), { code: "NETWORK_ERROR" }), false],
  ];
  for (const [name, error, expected] of cases)
    it(`${name}: ${expected ? "underpriced" : "not underpriced"}`, function () {
      expect(isUnderpriced(error)).to.equal(expected);
    });
});
