// Reorgs inside and deeper than the window the worker keeps (issue 13 item 3), made on the real
// Hardhat node with evm_snapshot / evm_revert, through the worker's own chain-source -> bridge
// composition (workers/src/main.ts: the default 64-block window) and Mosquitto, checked by a plain
// mqtt.js subscriber. docs/worker.md ("Reorgs") says what happens: inside the window the worker
// rolls back to the common ancestor and re-derives from there; deeper, no remembered block is left
// to anchor on, so it reports the reorg with the deployment's start as the ancestor, clears the
// retained states it had published and re-derives everything from the start block.
import { expect } from "chai";
import { JsonRpcProvider, type Signer } from "ethers";
import { connectAsync, type MqttClient } from "mqtt";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { AppRegistry__factory, type AppRegistry } from "../../../typechain-types";
import {
  contractsFromDeployment,
  createBridge,
  createEthersChainSource,
  createMqttBus,
  createTopics,
  type Bridge,
  type ChainBatch,
  type ChainSource,
  type PollOutcome,
} from "../../../workers/src";
import { devWallet } from "../../../scripts/lib/local-chain";
import { chainWorld, type ChainWorld } from "../../shared/chain-world";
import { requireMqtt, serviceUrls } from "../../shared/services";
import { waitFor } from "../../shared/processes";

const urls = serviceUrls();
const logger = pino({ level: process.env.SHOAL_TEST_LOG ?? "silent" });
const RUN = randomBytes(4).toString("hex");
const ROOT = `shoal-test/reorg-${RUN}/shoal/v1`;
const t = createTopics(ROOT);
/** The window the worker keeps: main.ts passes none, so the chain source's default. */
const WORKER_WINDOW = 64;

interface Received {
  topic: string;
  payload: string;
}

describe("reorgs inside and deeper than the worker's window, on a real Hardhat node and Mosquitto", function () {
  this.timeout(180_000);

  let world: ChainWorld;
  let provider: JsonRpcProvider;
  let admin: Signer;
  let apps: AppRegistry;
  let tmp: string;
  let start: string;
  let subscriber: MqttClient;
  const received: Received[] = [];
  const cleanup: Array<() => Promise<unknown>> = [];

  const send = async (tx: Promise<{ wait(): Promise<unknown> }>) => void (await (await tx).wait());

  /** The worker's chain source and bridge over a data dir, as main.ts wires them. */
  function worker(name: string): { source: ChainSource; bridge: Bridge; reorgs: ChainBatch[] } {
    const dataDir = path.join(tmp, name);
    const { contracts, startBlock } = contractsFromDeployment(world.record);
    const source = createEthersChainSource({
      rpcUrl: world.rpcUrl,
      chainId: world.chainId,
      contracts,
      startBlock,
      dataDir,
      logger,
      confirmations: 0,
    });
    expect(source.reorgWindow).to.equal(WORKER_WINDOW);
    const bus = createMqttBus({
      url: urls.mqttUrl,
      clientId: `reorg-${RUN}-${name}`,
      logger,
      topicRoot: ROOT,
    });
    cleanup.push(() => bus.close());
    const bridge = createBridge({ source, bus, dataDir, logger, topicRoot: ROOT });
    const reorgs: ChainBatch[] = [];
    const handle: typeof bridge.handle = async (batch, options) => {
      if (batch.type === "reorg") reorgs.push(batch);
      await bridge.handle(batch, options);
    };
    return { source, bridge: { ...bridge, handle }, reorgs };
  }

  /** Polls until caught up; a source that keeps reporting reorgs never is, and fails here. */
  async function drain(w: { source: ChainSource; bridge: Bridge; reorgs: ChainBatch[] }): Promise<void> {
    await w.bridge.open();
    let outcome: PollOutcome;
    let polls = 0;
    do {
      outcome = await w.source.poll(w.bridge.handle);
      if (++polls > 100)
        throw new Error(`the source did not catch up in 100 polls (${w.reorgs.length} reorgs reported)`);
    } while (outcome.type !== "idle");
  }

  /** Resolves once every message published before it reached the subscriber (a marker after them). */
  async function settled(): Promise<void> {
    const marker = `marker-${randomBytes(6).toString("hex")}`;
    await subscriber.publishAsync(`${ROOT}/marker`, marker, { qos: 1 });
    await waitFor("the marker", async () => received.some((m) => m.payload === marker), 10_000, 25);
  }

  const reorgMessages = () =>
    received.filter((m) => m.topic === t.chainReorg(world.chainId)).map((m) => JSON.parse(m.payload));
  /** The last retained-state payload of deployment `id` (empty string: cleared). */
  const deploymentState = (id: number) =>
    received
      .filter((m) => m.topic === t.deploymentState(id))
      .map((m) => m.payload)
      .at(-1);

  before(async function () {
    await requireMqtt(urls);
    world = await chainWorld(1);
    provider = world.provider;
    admin = devWallet(0).connect(provider);
    apps = AppRegistry__factory.connect(world.record.contracts.AppRegistry.address, admin);
    tmp = await mkdtemp(path.join(tmpdir(), "shoal-reorg-"));
    subscriber = await connectAsync(urls.mqttUrl, { clientId: `reorg-${RUN}-sub`, clean: true });
    subscriber.on("message", (topic, payload) => received.push({ topic, payload: payload.toString() }));
    await subscriber.subscribeAsync(`${ROOT}/#`, { qos: 1 });
    start = await provider.send("evm_snapshot", []);
  });

  after(async function () {
    if (start) await provider.send("evm_revert", [start]);
    for (const fn of cleanup.reverse()) await fn();
    await subscriber?.endAsync();
    if (tmp) await rm(tmp, { recursive: true, force: true });
    await world?.close();
  });

  it("inside the window: rolls back to the common ancestor and re-derives the dropped deployment", async function () {
    const w = worker("shallow");
    await drain(w);
    const fork = await provider.send("evm_snapshot", []);
    const forkPoint = (await provider.getBlock("latest"))!;
    await send(apps.createDeployment(1, 1, 1, ["region=test"])); // deployment 2 on branch A
    await provider.send("hardhat_mine", ["0x3"]);
    await drain(w);
    expect(w.bridge.state().deployments["2"].replicas).to.equal(1);

    expect(await provider.send("evm_revert", [fork])).to.equal(true);
    await send(apps.createDeployment(1, 1, 3, ["region=test"])); // deployment 2 on branch B
    await drain(w);

    expect(w.reorgs).to.have.length(1);
    expect(w.reorgs[0]).to.deep.include({
      commonAncestor: { number: forkPoint.number, hash: forkPoint.hash },
    });
    expect(w.bridge.state().deployments["2"].replicas).to.equal(3);
    await settled();
    const [message] = reorgMessages();
    expect(message.commonAncestor).to.deep.equal({ number: forkPoint.number, hash: forkPoint.hash });
    expect(message.removedIds).to.have.length(1);
    expect(JSON.parse(deploymentState(2)!)).to.include({ replicas: 3 });

    // What it re-derived is what a worker that never saw branch A derives.
    const fresh = worker("shallow-fresh");
    await drain(fresh);
    expect(w.bridge.state()).to.deep.equal(fresh.bridge.state());
  });

  it("deeper than the window: reports the start block as the ancestor and re-derives from there", async function () {
    received.length = 0;
    const w = worker("deep");
    await drain(w);
    const startBlock = contractsFromDeployment(world.record).startBlock;
    const fork = await provider.send("evm_snapshot", []);
    await send(apps.createDeployment(1, 1, 1, ["region=test"])); // deployment 3 on branch A
    // Bury it deeper than the window the worker keeps block hashes for.
    await provider.send("hardhat_mine", [`0x${(WORKER_WINDOW + 6).toString(16)}`]);
    await drain(w);
    expect(w.bridge.state().deployments["3"].replicas).to.equal(1);
    const replaced = w.source.status().checkpoint;

    expect(await provider.send("evm_revert", [fork])).to.equal(true);
    await send(apps.createDeployment(1, 1, 4, ["region=test"])); // deployment 3 on branch B
    await drain(w);

    expect(w.reorgs).to.have.length(1);
    expect(w.reorgs[0]).to.deep.include({
      commonAncestor: { number: startBlock - 1, hash: null },
      replacedHead: replaced,
    });
    // Re-derived from the start block: the same state as a worker that never saw branch A.
    expect(w.bridge.state().deployments["3"].replicas).to.equal(4);
    const fresh = worker("deep-fresh");
    await drain(fresh);
    expect(w.bridge.state()).to.deep.equal(fresh.bridge.state());
    expect(w.source.status().checkpoint).to.deep.equal(fresh.source.status().checkpoint);

    // On MQTT: the reorg names the start as the ancestor; every retained state it had published was
    // cleared, then published again from the new branch.
    await settled();
    const messages = reorgMessages();
    expect(messages).to.have.length(1);
    expect(messages[0].commonAncestor).to.deep.equal({ number: startBlock - 1, hash: null });
    const states = received.filter((m) => m.topic === t.deploymentState(1)).map((m) => m.payload);
    expect(states.indexOf(""), "deployment 1's retained state cleared").to.be.greaterThan(0);
    expect(JSON.parse(states.at(-1)!)).to.include({ replicas: 2 });
    expect(JSON.parse(deploymentState(3)!)).to.include({ replicas: 4 });
  });
});
