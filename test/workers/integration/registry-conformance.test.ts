// The Registry port's conformance suite against the ethers adapter and the real Hardhat node,
// then what only the node can show: an aborted send never reaches it, and an abort while a
// receipt is awaited rejects at once without breaking the adapter's nonce sequence.
import { expect } from "chai";
import { getEventListeners } from "node:events";
import { JsonRpcProvider, Network } from "ethers";
import { AppRegistry__factory } from "../../../typechain-types";
import { createEthersRegistry } from "../../../workers/src";
import type { Registry, RegistryError } from "../../../workers/src";
import { devWallet } from "../../../scripts/lib/local-chain";
import { chainWorld, type ChainWorld } from "../../shared/chain-world";
import { registryConformance, rejectionOf } from "../../shared/registry-conformance";

/** Dev accounts 11 and 12: no other test enrolls them, so their nonces are this file's alone. */
const OPERATORS = { conformance: 11, abort: 12 };

function ethersRegistry(
  world: ChainWorld,
  rpcUrl = world.rpcUrl,
): { registry: Registry; provider: JsonRpcProvider } {
  // The chain id given: no network detection, so a dead URL fails each call instead of retrying.
  const network = Network.from(world.chainId);
  const provider = new JsonRpcProvider(rpcUrl, network, { staticNetwork: network, cacheTimeout: -1 });
  const registry = createEthersRegistry({
    provider,
    contracts: world.record.contracts as Parameters<typeof createEthersRegistry>[0]["contracts"],
    operatorKey: world.operator.privateKey,
    deviceId: world.deviceId,
  });
  return { registry, provider };
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
  let registry: Registry;
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
    // With automine off the heartbeat is accepted into the mempool but never mined: only the
    // abort can end the wait.
    await world.provider.send("evm_setAutomine", [false]);
    const before = await nonce();
    const controller = new AbortController();
    const pending = registry.heartbeat({ signal: controller.signal });
    // Wait for the node to hold the transaction, then abort.
    for (let i = 0; i < 100 && (await nonce()) === before; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await nonce(), "the heartbeat reached the mempool").to.equal(before + 1);
    const started = performance.now();
    controller.abort();
    const error = await rejectionOf(pending, "a heartbeat aborted while its receipt was awaited");
    // No block is coming, so only the abort can have ended the wait; 1 s is generous for that.
    expect(performance.now() - started).to.be.below(1_000);
    expect(error.message).to.match(/heartbeat of device 1 was aborted/);

    // The sent transaction is still valid: it is mined with the next block, and the adapter's
    // nonce sequence continues after it.
    await world.provider.send("evm_setAutomine", [true]);
    await world.provider.send("evm_mine", []);
    expect(await world.provider.getTransactionCount(world.operator.address, "latest")).to.equal(before + 1);
    const next = await registry.heartbeat();
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
