// The chain -> MQTT bridge against the real Hardhat node and Mosquitto, checked by an independent
// MQTT subscriber (plain mqtt.js, not the Bus under test). Every run uses its own topic root and
// client ids, so parallel runs and other workers on the same broker do not interfere.
import { expect } from "chai";
import { JsonRpcProvider, type Signer } from "ethers";
import { connectAsync, type MqttClient } from "mqtt";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import {
  AppRegistry__factory,
  DeviceRegistry__factory,
  PlacementRegistry__factory,
  ShoalToken__factory,
  type DeviceRegistry,
  type PlacementRegistry,
} from "../../../typechain-types";
import { createBridge, type Bridge } from "../../../workers/src";
import { contractsFromDeployment, createEthersChainSource } from "../../../workers/src";
import { BusError, createMqttBus, type MqttBus } from "../../../workers/src";
import { createTopics } from "../../../workers/src";
import { isRetryable } from "../../../workers/src";
import type { ChainSource, PollOutcome } from "../../../workers/src";
import { runHardhat, devWallet } from "../../../scripts/lib/local-chain";
import { requireChain, requireMqtt, serviceUrls } from "../../shared/services";

const urls = serviceUrls();
const logger = pino({ level: process.env.SHOAL_TEST_LOG ?? "silent" });
// The minimum stake (100) plus collateral for the placements it claims (10 each, scripts/deploy.ts).
const STAKE = 200n * 10n ** 18n;
const BAND = { cpuMinMillicores: 50, cpuMaxMillicores: 500, memoryMinMiB: 16, memoryMaxMiB: 64 };
const CID = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq";
const RUN = randomBytes(4).toString("hex");
const ROOT = `shoal-test/bridge-${RUN}/shoal/v1`;
const t = createTopics(ROOT);

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

/** A plain mqtt.js subscriber that records everything it receives. */
async function subscriber(
  filter: string,
  name: string,
): Promise<{ client: MqttClient; messages: Received[] }> {
  const client = await connectAsync(urls.mqttUrl, { clientId: `test-${RUN}-${name}`, clean: true });
  const messages: Received[] = [];
  client.on("message", (topic, payload, packet) =>
    messages.push({ topic, payload: payload.toString(), retain: packet.retain }),
  );
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, messages };
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Resolves once every message the broker had accepted before this call has reached `sub`: a marker
 * published now through the same broker arrives after them, as Mosquitto forwards a subscription's
 * messages in the order it accepted them. Used instead of "sleep, then count"; the marker is taken
 * out of `sub.messages` again.
 */
async function settled(
  sub: { client: MqttClient; messages: Array<{ payload: string }> },
  topic: string,
): Promise<void> {
  const marker = `marker-${randomBytes(8).toString("hex")}`;
  await sub.client.publishAsync(topic, marker, { qos: 1 });
  await until("the marker", () => sub.messages.some((m) => m.payload === marker));
  sub.messages.splice(
    sub.messages.findIndex((m) => m.payload === marker),
    1,
  );
}

describe("bridge: chain events to MQTT against a real Hardhat node and Mosquitto", function () {
  this.timeout(180_000);

  let tmp: string;
  let provider: JsonRpcProvider;
  let device: Signer;
  let devices: DeviceRegistry;
  let placements: PlacementRegistry;
  let sourceDeps: Parameters<typeof createEthersChainSource>[0];
  let chainId: number;
  let placementId: string;
  const dataDir = () => path.join(tmp, "worker");
  const cleanup: Array<() => Promise<unknown>> = [];

  const send = async (tx: Promise<{ wait(): Promise<unknown> }>) => void (await (await tx).wait());

  function worker(name: string): { source: ChainSource; bus: MqttBus; bridge: Bridge } {
    const source = createEthersChainSource({ ...sourceDeps, dataDir: dataDir() });
    const bus = createMqttBus({
      url: urls.mqttUrl,
      clientId: `bridge-${RUN}-${name}`,
      logger,
      topicRoot: ROOT,
    });
    cleanup.push(() => bus.close());
    return {
      source,
      bus,
      bridge: createBridge({ source, bus, dataDir: dataDir(), logger, topicRoot: ROOT }),
    };
  }

  async function drain(w: { source: ChainSource; bus: MqttBus; bridge: Bridge }): Promise<void> {
    await w.bus.ready();
    await w.bridge.open();
    let outcome: PollOutcome;
    do outcome = await w.source.poll(w.bridge.handle);
    while (outcome.type !== "idle");
  }

  /** Every log of the contracts from eth_getLogs, as `{ id, topic }` in chain order. */
  async function expected(): Promise<Array<{ id: string; event: string }>> {
    const { contracts, startBlock } = sourceDeps;
    const logs = await provider.getLogs({
      address: Object.values(contracts) as string[],
      fromBlock: startBlock,
    });
    const source = createEthersChainSource({ ...sourceDeps, dataDir: path.join(tmp, "reference") });
    const events: Array<{ id: string; event: string }> = [];
    let outcome: PollOutcome;
    do
      outcome = await source.poll(async (b) => {
        if (b.type === "logs") events.push(...b.logs.map((e) => ({ id: e.id, event: e.event })));
      });
    while (outcome.type !== "idle");
    expect(events.map((e) => e.id)).to.deep.equal(
      logs.map((l) => `${chainId}:${l.transactionHash.toLowerCase()}:${l.index}`),
    );
    return events;
  }

  before(async function () {
    await Promise.all([requireChain(urls), requireMqtt(urls)]);
    tmp = await mkdtemp(path.join(tmpdir(), "shoal-bridge-"));
    const deployed = await runHardhat(["run", "scripts/deploy.ts"], { SHOAL_DEPLOYMENTS_DIR: tmp });
    expect(deployed.status, deployed.stderr).to.equal(0);
    const record = JSON.parse(await readFile(path.join(tmp, "localhost.json"), "utf8"));
    chainId = record.chainId;
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
    const [admin, owner] = [0, 2].map((i) => devWallet(i).connect(provider));
    device = owner;
    const at = (name: string) => record.contracts[name].address as string;
    const token = ShoalToken__factory.connect(at("ShoalToken"), admin);
    const apps = AppRegistry__factory.connect(at("AppRegistry"), admin);
    devices = DeviceRegistry__factory.connect(at("DeviceRegistry"), admin);
    placements = PlacementRegistry__factory.connect(at("PlacementRegistry"), admin);
    sourceDeps = {
      rpcUrl: urls.rpcUrl,
      logger,
      confirmations: 0,
      dataDir: "",
      chainId,
      ...contractsFromDeployment(record),
    };

    await send(token.connect(device).approve(await devices.getAddress(), STAKE));
    await send(
      devices
        .connect(device)
        .enroll(
          await device.getAddress(),
          "linux/amd64",
          4000,
          8192,
          ["zone=a"],
          "/ip4/127.0.0.1/tcp/4001",
          STAKE,
        ),
    );
    await send(apps.registerApp("bridge-test"));
    await send(apps.publishVersion(1, CID, ["linux/amd64"], [CID], BAND));
    await send(apps.createDeployment(1, 1, 1, []));
    await send(placements.connect(device).claim(1, 1));
    placementId = (await placements.placementsOfDevice(1, 0, 1))[0].placementId.toString();
    await send(placements.connect(device).confirm(placementId));
    await send(devices.connect(device).heartbeat(1));
  });

  after(async function () {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
    // Leave no retained messages of this run on the broker.
    const retained = await subscriber(`${ROOT}/#`, "cleanup");
    await settled(retained, `${ROOT}/marker/cleanup`);
    for (const m of retained.messages.filter((m) => m.retain && m.payload !== "")) {
      await retained.client.publishAsync(m.topic, "", { qos: 1, retain: true });
    }
    await retained.client.endAsync();
    provider?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("publishes every contract event exactly once, on its topic, with its id and decoded args", async function () {
    const sub = await subscriber(`${ROOT}/chain/#`, "events");
    cleanup.push(() => sub.client.endAsync());
    const events = await expected();
    await drain(worker("first"));
    await until(`${events.length} messages`, () => sub.messages.length >= events.length);
    await settled(sub, `${ROOT}/chain/marker`); // and nothing more

    const payloads = sub.messages.map((m) => ({ topic: m.topic, body: JSON.parse(m.payload) }));
    expect(payloads.map((p) => p.body.id)).to.deep.equal(events.map((e) => e.id));
    for (const { topic, body } of payloads) {
      expect(topic).to.equal(t.chainEvent(chainId, body.contract, body.event));
      expect(body).to.include({ v: 1, chainId });
      expect(body.id).to.equal(`${chainId}:${body.txHash}:${body.logIndex}`);
    }
    const claimed = payloads.find((p) => p.body.event === "PlacementClaimed")!;
    expect(claimed.topic).to.equal(`${ROOT}/chain/${chainId}/PlacementRegistry/PlacementClaimed`);
    expect(claimed.body.args).to.deep.equal({
      placementId,
      deploymentId: 1,
      deviceId: 1,
      appId: 1,
      version: 1,
      deploymentGeneration: 1,
      deviceGeneration: Number((await placements.placement(placementId)).deviceGeneration),
      band: BAND,
    });
    expect(sub.messages.every((m) => !m.retain)).to.equal(true);
  });

  it("leaves the desired state of placements, devices and deployments retained for a late subscriber", async function () {
    const late = await subscriber(`${ROOT}/+/+/+`, "late");
    cleanup.push(() => late.client.endAsync());
    await until("retained states", () => late.messages.length >= 3);
    await settled(late, `${ROOT}/marker/late/states`);
    const byTopic = new Map(late.messages.map((m) => [m.topic, m]));

    const placement = byTopic.get(t.placementState(placementId))!;
    expect(placement.retain).to.equal(true);
    expect(JSON.parse(placement.payload)).to.deep.include({
      v: 1,
      chainId,
      placementId,
      deploymentId: 1,
      deviceId: 1,
      state: "Running",
      band: BAND,
      failure: null,
    });
    const deviceState = JSON.parse(byTopic.get(t.deviceChain(1))!.payload);
    expect(deviceState).to.deep.include({
      deviceId: 1,
      status: "Active",
      platform: "linux/amd64",
      labels: ["zone=a"],
    });
    expect(deviceState.operator).to.equal(await device.getAddress());
    expect(deviceState.lastHeartbeat).to.not.equal(null);
    expect(JSON.parse(byTopic.get(t.deploymentState(1))!.payload)).to.deep.include({
      deploymentId: 1,
      replicas: 1,
      active: true,
      generation: 1,
    });
  });

  it("re-publishes nothing after a restart over the same checkpoint, and continues with new events", async function () {
    const sub = await subscriber(`${ROOT}/chain/#`, "restart");
    cleanup.push(() => sub.client.endAsync());
    await drain(worker("second"));
    await settled(sub, `${ROOT}/chain/marker`);
    expect(sub.messages).to.deep.equal([]);

    await send(devices.connect(device).heartbeat(1));
    await drain(worker("third"));
    await until("the new heartbeat", () => sub.messages.length >= 1);
    await settled(sub, `${ROOT}/chain/marker`);
    expect(sub.messages.map((m) => m.topic)).to.deep.equal([
      t.chainEvent(chainId, "DeviceRegistry", "DeviceHeartbeat"),
    ]);
  });

  it("announces the device online, and the broker publishes the Last Will when the connection dies", async function () {
    const deviceId = `lw-${RUN}`;
    const sub = await subscriber(t.deviceStatus(deviceId), "presence");
    cleanup.push(() => sub.client.endAsync());
    const status = () => sub.messages.map((m) => JSON.parse(m.payload || "{}"));

    const bus = createMqttBus({
      url: urls.mqttUrl,
      clientId: `bus-${RUN}-lw`,
      deviceId,
      logger,
      topicRoot: ROOT,
    });
    cleanup.push(() => bus.close());
    await bus.ready();
    await until("online", () => status().some((s) => s.status === "online"));
    expect(status()[0]).to.include({
      v: 1,
      deviceId,
      status: "online",
      reason: "connected",
      clientId: `bus-${RUN}-lw`,
    });

    // A crash: the socket goes away without a DISCONNECT.
    bus.client.stream.destroy();
    await until("the Last Will", () => status().some((s) => s.status === "offline"));
    expect(status().find((s) => s.status === "offline")).to.include({ reason: "connection-lost", deviceId });

    // mqtt.js reconnects on its own and announces the device again; a graceful close says goodbye.
    await until("online again", () => status().filter((s) => s.status === "online").length === 2);
    await bus.close();
    await until("shutdown", () => status().some((s) => s.reason === "shutdown"));
    const late = await subscriber(t.deviceStatus(deviceId), "presence-late");
    cleanup.push(() => late.client.endAsync());
    await until("retained status", () => late.messages.length === 1);
    expect(late.messages[0].retain).to.equal(true);
    expect(JSON.parse(late.messages[0].payload)).to.include({ status: "offline", reason: "shutdown" });
  });

  it("rejects publishes at once with a retryable error while the broker is unreachable, and counts them", async function () {
    const failures: string[] = [];
    const bus = createMqttBus({
      url: "mqtt://127.0.0.1:1",
      clientId: `bus-${RUN}-down`,
      logger,
      topicRoot: ROOT,
      onPublishFailure: (topic) => failures.push(topic),
    });
    cleanup.push(() => bus.close());
    const error = await bus.publish(`${ROOT}/x`, "{}").then(
      () => expect.fail("publish should reject"),
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(BusError);
    expect(isRetryable(error)).to.equal(true);
    expect(failures).to.deep.equal([`${ROOT}/x`]);
    await bus.close();
  });

  it("on a reorg publishes the reorg and the re-derived retained state", async function () {
    const start = await provider.send("evm_snapshot", []);
    try {
      const w = worker("reorg");
      await drain(w);
      const fork = await provider.send("evm_snapshot", []);
      const forkPoint = (await provider.getBlock("latest"))!;
      await send(placements.connect(device).fail(placementId, 3));
      await drain(w);
      const failedEvent = w.bridge.state().placements[placementId].updated.eventId;
      expect(w.bridge.state().placements[placementId].state).to.equal("Failed");

      const sub = await subscriber(`${ROOT}/chain/${chainId}/reorg`, "reorg");
      cleanup.push(() => sub.client.endAsync());
      expect(await provider.send("evm_revert", [fork])).to.equal(true);
      await send(placements.connect(device).release(placementId));
      await drain(w);

      await until("the reorg message", () => sub.messages.length === 1);
      expect(JSON.parse(sub.messages[0].payload)).to.deep.include({
        v: 1,
        chainId,
        commonAncestor: { number: forkPoint.number, hash: forkPoint.hash },
        removedIds: [failedEvent],
      });
      const late = await subscriber(t.placementState(placementId), "reorg-late");
      cleanup.push(() => late.client.endAsync());
      await until("retained placement", () => late.messages.length === 1);
      expect(JSON.parse(late.messages[0].payload)).to.include({
        state: "Released",
        releaseReason: "ByDevice",
      });
    } finally {
      await provider.send("evm_revert", [start]);
    }
  });
});
