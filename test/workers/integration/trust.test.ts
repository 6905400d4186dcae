// Trust on the wire (issue 16) against the real services: the authenticated Mosquitto of
// scripts/services.sh (dynamic security), a Hardhat node, one real worker process and the fleet
// view's observer. An attacker with device A's broker credentials, or the broker's own admin,
// publishes a forged presence, placement state and resource decision for device B, and replays an
// old genuine message of B: neither B's worker nor the fleet view believes any of it, and both
// count each drop by reason. Every assertion that nothing arrived has a genuine twin that arrives.
import { expect } from "chai";
import { JsonRpcProvider, Wallet } from "ethers";
import mqtt from "mqtt";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { runHardhat, devWallet } from "../../../scripts/lib/local-chain";
import {
  provisionDevice,
  withoutCredentials,
  type DeviceCredentials,
} from "../../../scripts/fleet/credentials";
import { createObserver, type Observer } from "../../../scripts/fleet/observe";
import { createSealer } from "../../../workers/src";
import { deployInto, enrollArgs, enrolledId, ok, type DeploymentRecord } from "../../shared/cli";
import { freePort, waitFor, WorkerProcess } from "../../shared/processes";
import {
  clearRetainedPresences,
  requireChain,
  requireDocker,
  requireKubo,
  requireMqtt,
  serviceUrls,
} from "../../shared/services";

const urls = serviceUrls();
const viewUrl = process.env.SHOAL_MQTT_VIEW_URL ?? urls.mqttUrl;
const ACCOUNT_A = 8;
const ACCOUNT_B = 9;

/** A plain mqtt.js client recording everything it receives (raw payloads, signatures included). */
async function recorder(url: string, filters: string[], name: string) {
  const client = await mqtt.connectAsync(url, { clientId: `trust-${name}-${Date.now()}`, clean: true });
  const seen: { topic: string; payload: string; retain: boolean }[] = [];
  client.on("message", (topic, payload, packet) =>
    seen.push({ topic, payload: payload.toString("utf8"), retain: packet.retain }),
  );
  await client.subscribeAsync(filters, { qos: 1 });
  return { client, seen };
}

/** shoal_bus_messages_dropped_total by reason, scraped from the worker's /metrics. */
async function workerDrops(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const drops: Record<string, number> = {};
  for (const m of text.matchAll(/^shoal_bus_messages_dropped_total\{([^}]*)\} (\d+)/gm)) {
    const reason = /reason="([^"]+)"/.exec(m[1])![1];
    drops[reason] = Number(m[2]);
  }
  return drops;
}

const quiet = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("trust: authenticated broker and signed messages (real Mosquitto, chain, worker, fleet view)", function () {
  this.timeout(180_000);

  let dir: string;
  let provider: JsonRpcProvider;
  let record: DeploymentRecord;
  let a: { id: number; credentials: DeviceCredentials };
  let b: { id: number; credentials: DeviceCredentials };
  let worker: WorkerProcess;
  let metricsPort: number;
  let observer: Observer;
  let watcher: Awaited<ReturnType<typeof recorder>>;
  let attackerA: mqtt.MqttClient;
  let admin: mqtt.MqttClient;
  const cli = (...args: string[]) => runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: dir });

  async function enroll(account: number): Promise<number> {
    return Number(enrolledId(ok(await cli(...enrollArgs(account, { labels: "region=eu" })))));
  }

  before(async function () {
    await Promise.all([requireChain(urls), requireMqtt(urls), requireKubo(urls), requireDocker(urls)]);
    if (withoutCredentials(urls.mqttUrl) === urls.mqttUrl)
      throw new Error(
        "SHOAL_MQTT_URL carries no broker credentials; source $SHOAL_HOME/env after services up",
      );
    // The drop counts below are this fleet's: no presence of another run's fleet on the broker.
    await clearRetainedPresences(urls.mqttUrl);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-trust-"));
    record = await deployInto(dir);
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true });
    const registry = record.contracts.DeviceRegistry.address;
    const idA = await enroll(ACCOUNT_A);
    const idB = await enroll(ACCOUNT_B);
    a = { id: idA, credentials: (await provisionDevice(urls.mqttUrl, registry, idA))! };
    b = { id: idB, credentials: (await provisionDevice(urls.mqttUrl, registry, idB))! };

    watcher = await recorder(urls.mqttUrl, ["shoal/v1/#"], "watcher");
    const since = (await provider.getBlock(record.contracts.DeviceRegistry.blockNumber))!.timestamp;
    observer = await createObserver({
      mqttUrl: viewUrl,
      chainId: record.chainId,
      deviceRegistry: registry,
      rpcUrl: urls.rpcUrl,
      deviceIds: [a.id, b.id],
      deviceOfLabel: () => undefined,
      sinceTimestamp: since,
      dockerSocket: urls.dockerSocket,
      dockerIntervalMs: 60_000,
    });

    metricsPort = await freePort();
    worker = new WorkerProcess({
      SHOAL_RPC_URL: urls.rpcUrl,
      SHOAL_OPERATOR_KEY: devWallet(ACCOUNT_B).privateKey,
      SHOAL_DEVICE_ID: String(b.id),
      SHOAL_DEPLOYMENTS_FILE: path.join(dir, "localhost.json"),
      SHOAL_MQTT_URL: withoutCredentials(urls.mqttUrl),
      SHOAL_MQTT_USERNAME: b.credentials.username,
      SHOAL_MQTT_PASSWORD: b.credentials.password,
      SHOAL_KUBO_URL: urls.kuboUrl,
      SHOAL_DATA_DIR: path.join(dir, "worker-b"),
      SHOAL_POLL_INTERVAL_MS: "250",
      SHOAL_METRICS_PORT: String(metricsPort),
      SHOAL_RESOURCES_ENABLED: "false",
      SHOAL_LOG_LEVEL: "debug",
    });
    worker.start();
    await waitFor("worker B started", async () => worker.log.includes("worker started"), 60_000);

    attackerA = await mqtt.connectAsync(withoutCredentials(urls.mqttUrl), {
      clientId: `trust-attacker-a-${Date.now()}`,
      username: a.credentials.username,
      password: a.credentials.password,
    });
    admin = await mqtt.connectAsync(urls.mqttUrl, { clientId: `trust-admin-${Date.now()}` });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") console.log(`--- worker log ---\n${worker?.tail(40)}`);
  });

  after(async function () {
    await worker?.stop();
    await observer?.close();
    await Promise.all([watcher?.client.endAsync(), attackerA?.endAsync(), admin?.endAsync()]);
    provider?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("refuses anonymous clients and wrong passwords", async function () {
    for (const options of [{}, { username: b.credentials.username, password: "not-the-password" }]) {
      const error = await mqtt
        .connectAsync(withoutCredentials(urls.mqttUrl), {
          ...options,
          reconnectPeriod: 0,
          connectTimeout: 5_000,
        })
        .then(
          async (client) => (await client.endAsync(), undefined),
          (e: Error) => e,
        );
      expect(error?.message, JSON.stringify({ ...options, password: options.password && "***" })).to.match(
        /not authori[sz]ed/i,
      );
    }
  });

  it("lets device A publish under its own topics only (the broker drops the rest)", async function () {
    const own = `shoal/v1/devices/${a.id}/metrics`;
    const others = [
      `shoal/v1/devices/${b.id}/status`,
      `shoal/v1/devices/${b.id}/resources`,
      `shoal/v1/apps/1/anything`,
    ];
    for (const topic of others) await attackerA.publishAsync(topic, `{"probe":"${topic}"}`, { qos: 1 });
    await attackerA.publishAsync(own, '{"probe":"own"}', { qos: 1 });
    await waitFor("A's own publish to arrive", async () => watcher.seen.some((m) => m.topic === own));
    await quiet(500);
    expect(watcher.seen.filter((m) => others.includes(m.topic) && m.payload.includes("probe"))).to.deep.equal(
      [],
    );
  });

  it("shows B's genuine, signed presence and chain state in the fleet view", async function () {
    await waitFor(
      "the view to show B online",
      async () => observer.snapshot().presence.get(b.id)?.status === "online",
    );
    await waitFor("the view to show B's bridged chain state", async () =>
      observer.snapshot().devices.has(b.id),
    );
    const status = [...watcher.seen].reverse().find((m) => m.topic === `shoal/v1/devices/${b.id}/status`)!;
    expect(JSON.parse(status.payload).sig, "the status carries an envelope").to.include({ d: String(b.id) });
  });

  it("believes no forged presence, placement state or resource decision for B, nor a replay, and counts each drop", async function () {
    const topicStatus = `shoal/v1/devices/${b.id}/status`;
    const topicResources = `shoal/v1/devices/${b.id}/resources`;
    const topicPlacement = `shoal/v1/placements/424242/state`;
    // A chain event that workers follow (they leave heartbeats to the bridges' keepers).
    const topicEvent = `shoal/v1/chain/${record.chainId}/DeviceRegistry/DeviceEnrolled`;
    await waitFor("a genuine event bridged by B", async () =>
      watcher.seen.some((m) => m.topic === topicEvent),
    );
    const genuineEvent = watcher.seen.find((m) => m.topic === topicEvent)!;
    const viewBefore = { ...observer.snapshot().dropped };
    const workerBefore = await workerDrops(metricsPort);

    const now = Math.floor(Date.now() / 1000);
    const offline = JSON.stringify({
      v: 1,
      deviceId: String(b.id),
      status: "offline",
      clientId: "forged",
      reason: "shutdown",
      at: new Date().toISOString(),
    });
    const decision = JSON.stringify({
      v: 1,
      seq: 1,
      at: new Date().toISOString(),
      placementId: "424242",
      resource: "cpu",
      from: 500,
      to: 100,
      reason: "forged",
    });
    const placement = JSON.stringify({
      v: 1,
      chainId: record.chainId,
      placementId: "424242",
      deploymentId: 1,
      deviceId: b.id,
      appId: 1,
      version: 1,
      state: "Running",
      failure: null,
      releaseReason: null,
      updated: { timestamp: now },
    });
    const forgedEvent = JSON.stringify({
      ...JSON.parse(genuineEvent.payload),
      sig: undefined,
      id: "forged:1",
    });
    const stranger = createSealer({ operatorKey: Wallet.createRandom().privateKey, deviceId: b.id });
    const asA = createSealer({ operatorKey: devWallet(ACCOUNT_A).privateKey, deviceId: a.id });
    const asAlongAgo = createSealer({
      operatorKey: devWallet(ACCOUNT_A).privateKey,
      deviceId: a.id,
      now: () => Date.now() - 10 * 60_000,
    });
    const seal = (s: typeof stranger, topic: string, payload: string, retain = false) =>
      s.seal([{ topic, payload, retain }])[0];

    // The broker admin (or anyone who owns the broker) can put anything on the wire:
    const byAdmin: [string, string, boolean][] = [
      [topicStatus, offline, true], // unsigned
      [topicStatus, seal(stranger, topicStatus, offline, true), true], // forged: not B's operator
      [topicStatus, seal(asA, topicStatus, offline, true), true], // forged: A speaking on B's topic
      [topicResources, seal(stranger, topicResources, decision), false], // forged decision
      [topicPlacement, seal(stranger, topicPlacement, placement, true), true], // forged placement state
      [topicEvent, seal(stranger, topicEvent, forgedEvent), false], // forged chain event
      [topicEvent, genuineEvent.payload, false], // replay of B's genuine message
    ];
    for (const [topic, payload, retain] of byAdmin)
      await admin.publishAsync(topic, payload, { qos: 1, retain });
    // Device A's credentials may publish chain-derived topics (it bridges), but not sign as B:
    await attackerA.publishAsync(topicPlacement, seal(stranger, topicPlacement, placement, true), {
      qos: 1,
      retain: true,
    });
    await attackerA.publishAsync(topicEvent, seal(asAlongAgo, topicEvent, forgedEvent), { qos: 1 }); // stale

    const grew = (after: Record<string, number>, before: Record<string, number>, reason: string) =>
      (after[reason] ?? 0) - (before[reason] ?? 0);
    // The worker subscribes to the chain topics and, for the bridge election, to every device's
    // presence: on B's status topic one unsigned and two forged, on the chain topic one forged
    // event, one replay and one stale.
    await waitFor("B's worker to count its drops", async () => {
      const now = await workerDrops(metricsPort);
      return grew(now, workerBefore, "forged") >= 3 &&
        grew(now, workerBefore, "unsigned") >= 1 &&
        grew(now, workerBefore, "replayed") >= 1 &&
        grew(now, workerBefore, "stale") >= 1
        ? now
        : undefined;
    });
    // The view sees everything: 1 unsigned, 6 forged (status x2, decision, placement x2, event), 1 replay, 1 stale.
    await waitFor("the view to count its drops", async () => {
      const d = observer.snapshot().dropped;
      return (
        grew(d, viewBefore, "unsigned") >= 1 &&
        grew(d, viewBefore, "forged") >= 6 &&
        grew(d, viewBefore, "replayed") >= 1 &&
        grew(d, viewBefore, "stale") >= 1
      );
    });
    const workerAfter = await workerDrops(metricsPort);
    expect(grew(workerAfter, workerBefore, "forged"), "worker: forged").to.equal(3);
    expect(grew(workerAfter, workerBefore, "unsigned"), "worker: unsigned").to.equal(1);
    expect(grew(workerAfter, workerBefore, "replayed"), "worker: replayed").to.equal(1);
    expect(grew(workerAfter, workerBefore, "stale"), "worker: stale").to.equal(1);

    const snap = observer.snapshot();
    expect(snap.presence.get(b.id)?.status, "B is still online in the view").to.equal("online");
    expect(snap.placements.has("424242"), "no forged placement").to.equal(false);
    expect(
      snap.decisions.filter((d) => d.placementId === "424242"),
      "no forged decision",
    ).to.deep.equal([]);
    expect(
      snap.events.filter((e) => e.id === "forged:1"),
      "no forged event",
    ).to.deep.equal([]);
  });

  it("drops a replayed genuine presence after B said goodbye", async function () {
    const topic = `shoal/v1/devices/${b.id}/status`;
    // The latest: the broker may still hold a retained one of an earlier run's device with this id.
    const online = [...watcher.seen]
      .reverse()
      .find((m) => m.topic === topic && JSON.parse(m.payload).status === "online")!;
    const before = observer.snapshot().dropped.replayed ?? 0;
    expect(await worker.stop(), "worker exit code").to.equal(0);
    await waitFor(
      "the view to show B offline",
      async () => observer.snapshot().presence.get(b.id)?.status === "offline",
    );
    await admin.publishAsync(topic, online.payload, { qos: 1, retain: true });
    await waitFor(
      "the view to count the replay",
      async () => (observer.snapshot().dropped.replayed ?? 0) > before,
    );
    expect(observer.snapshot().presence.get(b.id)?.status).to.equal("offline");
  });
});
