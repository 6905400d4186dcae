// The Registry port's conformance suite against the ethers adapter and the real Hardhat node,
// then what only the node can show: an aborted send never reaches it, an abort while a receipt
// is awaited rejects at once without breaking the adapter's nonce sequence, and a heartbeat costs
// about one JSON-RPC call (counted at the provider) yet lands, is replaced when stuck and reports
// a beat mined reverted by name.
import { expect } from "chai";
import { getEventListeners } from "node:events";
import { JsonRpcProvider, Network, type JsonRpcPayload } from "ethers";
import { AppRegistry__factory, DeviceRegistry__factory } from "../../../typechain-types";
import { createEthersRegistry } from "../../../workers/src";
import type { HeartbeatOptions, RegistryError } from "../../../workers/src";
import { devWallet } from "../../../scripts/lib/local-chain";
import { chainWorld, type ChainWorld } from "../../shared/chain-world";
import { registryConformance, rejectionOf } from "../../shared/registry-conformance";

/**
 * Dev accounts 11 to 15: no other test enrolls them, so their nonces are this file's alone. The
 * heartbeat tests' device is owned by 14 and operated by 15, so the owner's transactions (exit)
 * never touch the nonces of the registry under test.
 */
const OPERATORS = { conformance: 11, abort: 12, owner: 14, heartbeat: 15 };

type EthersRegistry = ReturnType<typeof createEthersRegistry>;

function ethersRegistry(
  world: ChainWorld,
  rpcUrl = world.rpcUrl,
  options: { operatorKey?: string; heartbeat?: HeartbeatOptions } = {},
): { registry: EthersRegistry; provider: JsonRpcProvider; calls: string[] } {
  // The chain id given: no network detection, so a dead URL fails each call instead of retrying.
  const network = Network.from(world.chainId);
  const provider = new JsonRpcProvider(rpcUrl, network, { staticNetwork: network, cacheTimeout: -1 });
  // Every JSON-RPC call the registry makes, by method, in order (a batch counts each of its calls).
  const calls: string[] = [];
  const send = provider._send.bind(provider);
  provider._send = (payload: JsonRpcPayload | JsonRpcPayload[]) => {
    for (const p of [payload].flat()) calls.push(p.method);
    return send(payload);
  };
  const registry = createEthersRegistry({
    provider,
    contracts: world.record.contracts as Parameters<typeof createEthersRegistry>[0]["contracts"],
    operatorKey: options.operatorKey ?? world.operator.privateKey,
    deviceId: world.deviceId,
    heartbeat: options.heartbeat,
  });
  return { registry, provider, calls };
}

registryConformance("ethers", async () => {
  const world = await chainWorld(OPERATORS.conformance);
  const live = ethersRegistry(world);
  // Port 1 on loopback: nothing listens, so every request fails to connect at once.
  const dead = ethersRegistry(world, "http://127.0.0.1:1");
  return {
    registry: live.registry,
    device: world.device,
    deployment: world.deployment,
    unreachable: dead.registry,
    async teardown() {
      live.provider.destroy();
      dead.provider.destroy();
      await world.close();
    },
  };
});

describe("ethers registry: aborts as the node sees them", function () {
  this.timeout(120_000);
  let world: ChainWorld;
  let registry: EthersRegistry;
  let provider: JsonRpcProvider;
  const nonce = () => world.provider.getTransactionCount(world.operator.address, "pending");

  before(async function () {
    world = await chainWorld(OPERATORS.abort);
    ({ registry, provider } = ethersRegistry(world));
  });

  after(async function () {
    await world?.provider.send("evm_setAutomine", [true]);
    provider?.destroy();
    await world?.close();
  });

  it("sends no transaction for an already aborted signal", async function () {
    const before = await nonce();
    const head = await world.provider.getBlockNumber();
    const error = await rejectionOf(registry.heartbeat({ signal: AbortSignal.abort() }), "heartbeat");
    expect(error.name).to.equal("RegistryError");
    // The pending nonce counts the node's mempool too: nothing was handed to the node.
    expect(await nonce()).to.equal(before);
    expect(await world.provider.getBlockNumber()).to.equal(head);
  });

  it("rejects at once when aborted while waiting for a receipt, and the next send still works", async function () {
    // With automine off the transaction is accepted into the mempool but never mined: only the
    // abort can end the wait. (A heartbeat awaits no receipt: setEndpoint does, as claims do.)
    await world.provider.send("evm_setAutomine", [false]);
    const before = await nonce();
    const controller = new AbortController();
    const pending = registry.setEndpoint("/ip4/127.0.0.1/tcp/4002", { signal: controller.signal });
    // Wait for the node to hold the transaction, then abort.
    for (let i = 0; i < 100 && (await nonce()) === before; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await nonce(), "the transaction reached the mempool").to.equal(before + 1);
    const started = performance.now();
    controller.abort();
    const error = await rejectionOf(pending, "a transaction aborted while its receipt was awaited");
    // No block is coming, so only the abort can have ended the wait; 1 s is generous for that.
    expect(performance.now() - started).to.be.below(1_000);
    expect(error.message).to.match(/endpoint of device 1 was aborted/);

    // The sent transaction is still valid: it is mined with the next block, and the adapter's
    // nonce sequence continues after it.
    await world.provider.send("evm_setAutomine", [true]);
    await world.provider.send("evm_mine", []);
    expect(await world.provider.getTransactionCount(world.operator.address, "latest")).to.equal(before + 1);
    const next = await registry.setEndpoint("/ip4/127.0.0.1/tcp/4003");
    expect(next.blockNumber).to.equal(await world.provider.getBlockNumber());
  });

  it("names the reason of a claim mined with status 0 (another transaction of its block came first)", async function () {
    // As on 2-s blocks: the claim passes gas estimation, then the deployment's owner stops the
    // deployment in the same block, ordered first by its higher tip; the claim is mined reverted.
    await world.provider.send("evm_setAutomine", [false]);
    try {
      const before = await nonce();
      const claim = rejectionOf(registry.claim(world.deployment.deploymentId), "a claim mined reverted");
      for (let i = 0; i < 100 && (await nonce()) === before; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await nonce(), "the claim reached the mempool").to.equal(before + 1);
      const owner = devWallet(0).connect(world.provider);
      const apps = AppRegistry__factory.connect(world.record.contracts.AppRegistry.address, owner);
      const stop = await apps.stopDeployment(world.deployment.deploymentId, {
        maxFeePerGas: 2n * 10n ** 11n,
        maxPriorityFeePerGas: 10n ** 11n,
      });
      await world.provider.send("evm_mine", []);
      expect((await stop.wait())!.status).to.equal(1);
      const error = (await claim) as RegistryError;
      expect(error.errorName).to.equal("PlacementRegistryDeploymentNotActive");
      expect(error.shortMessage).to.equal(
        `claiming deployment ${world.deployment.deploymentId}: reverted with PlacementRegistryDeploymentNotActive(${world.deployment.deploymentId})`,
      );
    } finally {
      await world.provider.send("evm_setAutomine", [true]);
    }
  });

  it("puts one listener on a signal however many calls wait on it (no MaxListenersExceededWarning)", async function () {
    // A claimer pass reads every deployment it considers at once, all on the worker's signal.
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const controller = new AbortController();
      const reads = Array.from({ length: 30 }, () =>
        registry.deployment(world.deployment.deploymentId, { signal: controller.signal }),
      );
      expect(getEventListeners(controller.signal, "abort"), "while 30 reads wait").to.have.length(1);
      await Promise.all(reads);
      expect(getEventListeners(controller.signal, "abort"), "after they settled").to.have.length(0);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings.map((w) => w.name)).to.not.include("MaxListenersExceededWarning");
    } finally {
      process.off("warning", onWarning);
    }
  });
});

/** The device's world for the heartbeat tests: owned by dev account 14, operated by 15. */
async function heartbeatWorld(): Promise<{ world: ChainWorld; operatorKey: string }> {
  const world = await chainWorld(OPERATORS.owner);
  const operator = devWallet(OPERATORS.heartbeat);
  const devices = DeviceRegistry__factory.connect(
    world.record.contracts.DeviceRegistry.address,
    world.operator,
  );
  await (await devices.setOperator(world.deviceId, operator.address)).wait();
  return { world, operatorKey: operator.privateKey };
}

describe("ethers registry: a heartbeat costs about one JSON-RPC call", function () {
  this.timeout(120_000);
  let world: ChainWorld;
  let operatorKey: string;
  let operatorAddress: string;
  let baseFee: bigint;
  const open: JsonRpcProvider[] = [];
  const make = (heartbeat?: HeartbeatOptions) => {
    const made = ethersRegistry(world, world.rpcUrl, { operatorKey, heartbeat });
    open.push(made.provider);
    return made;
  };
  const devices = () =>
    DeviceRegistry__factory.connect(world.record.contracts.DeviceRegistry.address, world.provider);
  const nonce = (tag: "latest" | "pending") => world.provider.getTransactionCount(operatorAddress, tag);

  /** The beat is mined with status 1 and the device's lastHeartbeat is its block's time. */
  async function expectOnChain(hash: string): Promise<number> {
    const receipt = await world.provider.getTransactionReceipt(hash);
    expect(receipt, `the beat ${hash} is mined`).to.not.equal(null);
    expect(receipt!.status, "the beat succeeded").to.equal(1);
    const block = await world.provider.getBlock(receipt!.blockNumber);
    expect(Number((await devices().device(world.deviceId)).lastHeartbeat)).to.equal(block!.timestamp);
    return block!.timestamp;
  }

  /** Sets the base fee of the blocks to come and mines one with it, as a rising network would. */
  async function raiseBaseFee(to: bigint): Promise<void> {
    await world.provider.send("hardhat_setNextBlockBaseFeePerGas", ["0x" + to.toString(16)]);
    await world.provider.send("evm_mine", []);
  }

  before(async function () {
    ({ world, operatorKey } = await heartbeatWorld());
    operatorAddress = devWallet(OPERATORS.heartbeat).address;
    baseFee = (await world.provider.getBlock("latest"))!.baseFeePerGas!;
  });

  afterEach(async function () {
    await world?.provider.send("evm_setAutomine", [true]);
    // Later tests (and files) start from the base fee this one found.
    if (world) await raiseBaseFee(baseFee);
  });

  after(async function () {
    for (const provider of open) provider.destroy();
    await world?.close();
  });

  it("a steady-state beat makes at most 2 calls (receipt, send) and lands, on automine and on mined blocks", async function () {
    const { registry, calls } = make();
    const first = await registry.heartbeat();
    // The first beat also estimates the gas and reads the fees and the nonce.
    expect(calls.length, `the first beat: ${calls.join(" ")}`).to.be.at.most(7);
    let time = await expectOnChain(first.hash);
    for (let i = 0; i < 3; i++) {
      calls.length = 0;
      const beat = await registry.heartbeat();
      expect(calls, `automine beat ${i + 2}`).to.deep.equal([
        "eth_getTransactionReceipt",
        "eth_sendRawTransaction",
      ]);
      expect(beat.sent).to.equal("new");
      const next = await expectOnChain(beat.hash);
      expect(next, "lastHeartbeat moved").to.be.greaterThan(time);
      time = next;
    }
    // As on a network with block times: the node holds each beat until a block is mined.
    await world.provider.send("evm_setAutomine", [false]);
    for (let i = 0; i < 3; i++) {
      calls.length = 0;
      const beat = await registry.heartbeat();
      expect(calls, `block-time beat ${i + 1}`).to.deep.equal([
        "eth_getTransactionReceipt",
        "eth_sendRawTransaction",
      ]);
      expect(await world.provider.getTransactionReceipt(beat.hash), "returned before it was mined").to.equal(
        null,
      );
      await world.provider.send("evm_mine", []);
      const next = await expectOnChain(beat.hash);
      expect(next, "lastHeartbeat moved").to.be.greaterThan(time);
      time = next;
    }
  });

  it("refreshes its cached fees when the node refuses a beat as too cheap, and the beat still lands", async function () {
    const { registry, calls } = make();
    const first = await registry.heartbeat();
    const cached = (await world.provider.getTransaction(first.hash))!.maxFeePerGas!;
    // The base fee rises to ten times the cached maximum fee: Hardhat's automine refuses the beat.
    await raiseBaseFee(cached * 10n);
    calls.length = 0;
    const beat = await registry.heartbeat();
    expect(
      calls.filter((m) => m === "eth_sendRawTransaction"),
      calls.join(" "),
    ).to.have.length(2);
    expect(calls).to.include("eth_getBlockByNumber");
    await expectOnChain(beat.hash);
    const sent = await world.provider.getTransaction(beat.hash);
    expect(sent!.maxFeePerGas! > cached * 10n, "the beat carries the fresh fee").to.equal(true);
    // The fresh fees are cached: the next beat is two calls again.
    calls.length = 0;
    await expectOnChain((await registry.heartbeat()).hash);
    expect(calls).to.deep.equal(["eth_getTransactionReceipt", "eth_sendRawTransaction"]);
  });

  it("sends nothing while the previous beat waits for a block, and replaces it (same nonce) once it is stuck", async function () {
    const replaceAfterMs = 1_500;
    const { registry, calls } = make({ replaceAfterMs });
    const first = await registry.heartbeat();
    await expectOnChain(first.hash);
    const cached = (await world.provider.getTransaction(first.hash))!.maxFeePerGas!;
    // The base fee rises above the cached fee while the node keeps beats in its pool (block times):
    // the next beat is accepted but no block will take it.
    await world.provider.send("evm_setAutomine", [false]);
    await raiseBaseFee(cached * 10n);
    const stuck = await registry.heartbeat();
    expect(stuck.sent).to.equal("new");
    const stuckNonce = (await world.provider.getTransaction(stuck.hash))!.nonce;
    await world.provider.send("evm_mine", []);
    expect(
      await world.provider.getTransactionReceipt(stuck.hash),
      "the underpriced beat is not mined",
    ).to.equal(null);
    const pendingNonce = await nonce("pending");

    // Younger than replaceAfterMs: one call, nothing sent.
    calls.length = 0;
    const waiting = await registry.heartbeat();
    expect(waiting).to.deep.equal({ hash: stuck.hash, sent: "pending" });
    expect(calls).to.deep.equal(["eth_getTransactionReceipt"]);
    expect(await nonce("pending"), "no beat piled up").to.equal(pendingNonce);

    // Older: replaced with fresh fees under the same nonce, so the next block takes it.
    await new Promise((resolve) => setTimeout(resolve, replaceAfterMs));
    const replacement = await registry.heartbeat();
    expect(replacement.sent).to.equal("replaced");
    expect((await world.provider.getTransaction(replacement.hash))!.nonce).to.equal(stuckNonce);
    await world.provider.send("evm_mine", []);
    await expectOnChain(replacement.hash);
    expect(await world.provider.getTransactionReceipt(stuck.hash), "the stuck beat was replaced").to.equal(
      null,
    );
    expect(await nonce("latest"), "nothing left waiting behind it").to.equal(await nonce("pending"));
    // And the sequence goes on: the next beat finds the replacement mined.
    await world.provider.send("evm_setAutomine", [true]);
    const next = await registry.heartbeat();
    expect(next.sent).to.equal("new");
    await expectOnChain(next.hash);
  });
});

describe("ethers registry: a heartbeat mined reverted is named by the next beat", function () {
  this.timeout(120_000);
  let world: ChainWorld;
  let operatorKey: string;
  let provider: JsonRpcProvider | undefined;

  before(async function () {
    ({ world, operatorKey } = await heartbeatWorld());
  });

  after(async function () {
    await world?.provider.send("evm_setAutomine", [true]);
    provider?.destroy();
    await world?.close();
  });

  it("throws the contract's error by name from the beat after it, and sends no beat that would revert", async function () {
    const made = ethersRegistry(world, world.rpcUrl, { operatorKey });
    ({ provider } = made);
    const { registry } = made;
    const operator = devWallet(OPERATORS.heartbeat).address;
    const pendingNonce = () => world.provider.getTransactionCount(operator, "pending");
    await registry.heartbeat();

    // The owner ends the device: exit, the unbonding delay, completeExit. It is no longer Active.
    const devices = DeviceRegistry__factory.connect(
      world.record.contracts.DeviceRegistry.address,
      world.operator,
    );
    await (await devices.requestExit(world.deviceId)).wait();
    const { unbondingDelay } = await devices.parameters();
    await world.provider.send("evm_increaseTime", [Number(unbondingDelay) + 1]);
    await (await devices.completeExit(world.deviceId)).wait();
    const status = (await devices.device(world.deviceId)).status;

    // With blocks mined apart from the sends, the node takes the beat (gas limit cached, no
    // estimate) and mines it reverted.
    await world.provider.send("evm_setAutomine", [false]);
    const reverted = await registry.heartbeat();
    expect(reverted.sent).to.equal("new");
    await world.provider.send("evm_mine", []);
    expect((await world.provider.getTransactionReceipt(reverted.hash))!.status).to.equal(0);

    const before = await pendingNonce();
    const error = (await rejectionOf(registry.heartbeat(), "the beat after a reverted one")) as RegistryError;
    expect(error.name).to.equal("RegistryError");
    expect(error.errorName).to.equal("DeviceRegistryNotActive");
    expect(error.errorArgs.map(String)).to.deep.equal([String(world.deviceId), String(status)]);
    expect(error.shortMessage).to.include(reverted.hash);
    expect(error.shortMessage).to.match(/this beat was not sent/);
    expect(await pendingNonce(), "no beat that would revert was sent").to.equal(before);

    // And the beats after it: the estimate reverts with the same error, nothing is sent.
    const again = (await rejectionOf(registry.heartbeat(), "a beat of an exited device")) as RegistryError;
    expect(again.errorName).to.equal("DeviceRegistryNotActive");
    expect(await pendingNonce()).to.equal(before);
  });
});
