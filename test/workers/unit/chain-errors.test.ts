import { expect } from "chai";
import { Interface } from "ethers";
import { PlacementRegistry__factory } from "../../../typechain-types";
import { translateChainError } from "../../../workers/src";

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
