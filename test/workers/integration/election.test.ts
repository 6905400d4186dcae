// Bridge election with three real workers (Hardhat node, Kubo, Docker, a private Mosquitto): only
// the two elected bridges publish chain events, each event reaches the broker at most twice; a
// forged event (unsigned from a broker client, or signed by a device that is not an elected bridge,
// or even a false one from a bridge) makes no device act; after kill -9 of a bridge another device
// takes over within the documented bound and a deployment made after the kill gets all its
// replicas Running.
import { expect } from "chai";
import Docker from "dockerode";
import { JsonRpcProvider } from "ethers";
import mqtt from "mqtt";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PLACEMENT_STATES, createSealer, detachEnvelope } from "../../../workers/src";
import { PlacementRegistry__factory, type PlacementRegistry } from "../../../typechain-types";
import { runHardhat, devWallet } from "../../../scripts/lib/local-chain";
import { deployInto, deviceKeyOf, enrollArgs, enrolledId, ok, type DeploymentRecord } from "../../shared/cli";
import {
  freePort,
  PrivateBroker,
  testWorker,
  waitFor,
  writeWorkerConfig,
  WorkerProcess,
} from "../../shared/processes";
import { requireChain, requireDocker, requireKubo, serviceUrls } from "../../shared/services";

const urls = serviceUrls();
const ROOT = path.resolve(__dirname, "../../..");
/** Hardhat accounts of the three workers' devices, and of a fourth device that runs no worker. */
const OPERATORS = [7, 8, 9];
const SILENT_OPERATOR = 6;
/** docs/worker.md, "Bridge election": Last Will after 1.5 x the 15-s keepalive, then a catch-up. */
const TAKEOVER_BOUND_MS = 22_500 + 15_000;

interface Copy {
  id: string;
  sender: string;
  blockNumber: number;
  at: number;
}

describe("election: a few elected bridges publish the chain, the others follow over MQTT", function () {
  this.timeout(300_000);

  const docker = new Docker({ socketPath: urls.dockerSocket });
  let dir: string;
  let broker: PrivateBroker;
  let provider: JsonRpcProvider;
  let placements: PlacementRegistry;
  let record: DeploymentRecord;
  const deviceIds: string[] = [];
  let silentDevice: string;
  const workers: WorkerProcess[] = [];
  let metricsPort: number;
  let subscriber: mqtt.MqttClient;
  const copies: Copy[] = [];
  const cli = (...args: string[]) =>
    runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: dir, SHOAL_KUBO_URL: urls.kuboUrl });

  const deviceKey = (id: string) => deviceKeyOf(record, id);
  const stateOf = async (placementId: bigint) =>
    PLACEMENT_STATES[Number(await placements.placementState(placementId))];
  const livePlacements = async (deploymentId: number) =>
    (await placements.placementsOfDeployment(deploymentId, 0, 100)).filter(
      (p) => PLACEMENT_STATES[Number(p.state)] === "Running",
    );

  /** Every event the registries emitted, as bridge ids, with its block. */
  async function chainEvents(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const name of ["AppRegistry", "DeviceRegistry", "PlacementRegistry"]) {
      const logs = await provider.getLogs({
        address: record.contracts[name].address,
        fromBlock: record.contracts[name].blockNumber,
      });
      for (const log of logs)
        out.set(`${record.chainId}:${log.transactionHash}:${log.index}`, log.blockNumber);
    }
    return out;
  }

  /** shoal_bus_messages_dropped_total{reason} of the third worker (the one that never bridges). */
  async function drops(reason: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const m = new RegExp(
      `^shoal_bus_messages_dropped_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`,
      "m",
    ).exec(text);
    return m ? Number(m[1]) : 0;
  }

  before(async function () {
    await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls)]);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-election-"));
    broker = new PrivateBroker(await freePort(), dir);
    await broker.start();
    record = await deployInto(dir);
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
    placements = PlacementRegistry__factory.connect(record.contracts.PlacementRegistry.address, provider);
    ok(await cli("app:publish", "--manifest", path.join(ROOT, "apps/demo-web/shoal.yaml")));
    for (const account of [...OPERATORS, SILENT_OPERATOR]) {
      const id = enrolledId(ok(await cli(...enrollArgs(account))));
      if (account === SILENT_OPERATOR) silentDevice = id;
      else deviceIds.push(id);
    }

    // An independent subscriber: every copy of every bridged event, with the device that signed it.
    subscriber = await mqtt.connectAsync(broker.url, {
      clientId: `election-test-${process.pid}`,
      clean: true,
    });
    subscriber.on("message", (topic, payload) => {
      if (!/^shoal\/v1\/chain\/\d+\/\w+Registry\/\w+$/.test(topic)) return;
      const parsed = detachEnvelope(payload.toString());
      if (!parsed.ok) return;
      const event = JSON.parse(parsed.payload) as { id: string; blockNumber: number };
      copies.push({
        id: event.id,
        sender: parsed.envelope.d,
        blockNumber: event.blockNumber,
        at: Date.now(),
      });
    });
    await subscriber.subscribeAsync(`shoal/v1/chain/${record.chainId}/+/+`, { qos: 1 });

    const config = await writeWorkerConfig(dir);
    metricsPort = await freePort();
    deviceIds.forEach((id, i) => {
      const worker = testWorker({
        dir,
        mqttUrl: broker.url,
        operatorKey: devWallet(OPERATORS[i]).privateKey,
        deviceId: id,
        dataDir: path.join(dir, `worker-${id}`),
        env: {
          SHOAL_DOCKER_SOCKET: urls.dockerSocket,
          SHOAL_RESOURCES_ENABLED: "false",
          ...(i === 2 ? { SHOAL_METRICS_PORT: String(metricsPort) } : {}),
        },
        args: ["--config", config],
      });
      worker.start();
      workers.push(worker);
    });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed")
      for (const [i, w] of workers.entries())
        console.log(`--- worker ${deviceIds[i]} log ---\n${w.tail(40)}`);
  });

  after(async function () {
    await Promise.all(workers.map((w) => w.stop()));
    await subscriber?.endAsync();
    await broker?.stop();
    provider?.destroy();
    if (record) {
      for (const id of deviceIds) {
        const leftovers = await docker.listContainers({
          all: true,
          filters: { label: [`io.shoal.device=${deviceKey(id)}`] },
        });
        await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
      }
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("publishes each chain event at most twice, only from the two lowest device ids, and misses none", async function () {
    ok(await cli("app:deploy", "--app", "demo-web", "--replicas", "3"));
    await waitFor("3 replicas Running", async () => (await livePlacements(1)).length === 3, 120_000);
    const expected = await chainEvents();
    await waitFor(
      "every chain event on MQTT",
      async () => [...expected.keys()].every((id) => copies.some((c) => c.id === id)),
      30_000,
    );
    await new Promise((r) => setTimeout(r, 2_000)); // a late copy would have arrived by now
    const [first, second, third] = deviceIds;
    const byId = new Map<string, Copy[]>();
    for (const c of copies) byId.set(c.id, [...(byId.get(c.id) ?? []), c]);
    expect([...byId.keys()].sort()).to.deep.equal([...expected.keys()].sort());
    for (const [id, list] of byId) expect(list.length, `copies of ${id}`).to.be.at.most(2);
    expect(new Set(copies.map((c) => c.sender))).to.deep.equal(new Set([first, second]));
    expect(
      copies.filter((c) => c.sender === third),
      "the third device never bridged",
    ).to.deep.equal([]);
  });

  it("a forged event makes no device act: unsigned, signed by a non-bridge device, or false from a bridge", async function () {
    const running = await livePlacements(1);
    expect(running).to.have.length(3);
    const topic = `shoal/v1/chain/${record.chainId}/AppRegistry/DeploymentStopped`;
    const head = await provider.getBlockNumber();
    const lie = (n: number) =>
      JSON.stringify({
        v: 1,
        id: `${record.chainId}:0x${"ab".repeat(32)}:${n}`,
        chainId: record.chainId,
        contract: "AppRegistry",
        address: record.contracts.AppRegistry.address,
        event: "DeploymentStopped",
        args: { deploymentId: 1, appId: 1, generation: 1 },
        blockNumber: head,
        blockHash: `0x${"cd".repeat(32)}`,
        txHash: `0x${"ab".repeat(32)}`,
        logIndex: n,
        timestamp: Math.floor(Date.now() / 1000),
      });
    const before = { unsigned: await drops("unsigned"), notBridge: await drops("not-a-bridge") };
    // A broker client with no key (what a broker admin can do), ...
    await subscriber.publishAsync(topic, lie(0), { qos: 1 });
    // ... an enrolled device that is not an elected bridge (its own key, a valid signature), ...
    const silent = createSealer({
      operatorKey: devWallet(SILENT_OPERATOR).privateKey,
      deviceId: silentDevice,
    });
    await subscriber.publishAsync(topic, silent.seal([{ topic, payload: lie(1), retain: false }])[0], {
      qos: 1,
    });
    // ... and an elected bridge telling a lie: believed as a hint, checked on chain, not acted on.
    const bridge = createSealer({ operatorKey: devWallet(OPERATORS[0]).privateKey, deviceId: deviceIds[0] });
    await subscriber.publishAsync(topic, bridge.seal([{ topic, payload: lie(2), retain: false }])[0], {
      qos: 1,
    });

    await waitFor(
      "the third worker to drop the unsigned event",
      async () => (await drops("unsigned")) > before.unsigned,
      10_000,
    );
    await waitFor(
      "the third worker to drop the non-bridge's event",
      async () => (await drops("not-a-bridge")) > before.notBridge,
      10_000,
    );
    // Several reconcile and claim passes (1 s each) later, nothing was released or stopped.
    await new Promise((r) => setTimeout(r, 5_000));
    for (const p of running) expect(await stateOf(p.placementId)).to.equal("Running");
    const released = await placements.queryFilter(
      placements.filters.PlacementReleased(),
      record.contracts.PlacementRegistry.blockNumber,
    );
    expect(released, "no placement released").to.deep.equal([]);
    for (const id of deviceIds) {
      const containers = await docker.listContainers({
        filters: { label: [`io.shoal.device=${deviceKey(id)}`] },
      });
      expect(containers, `device ${id}'s container still running`).to.have.length(1);
    }
  });

  it("kill -9 of a bridge: the next device takes over within the bound, and a new deployment gets all its replicas Running", async function () {
    const [first, second, third] = deviceIds;
    const killedAt = Date.now();
    await workers[0].crash();
    ok(await cli("app:deploy", "--app", "demo-web", "--replicas", "2"));
    await waitFor(
      "the third device to publish chain events (the takeover)",
      async () => copies.some((c) => c.sender === third),
      TAKEOVER_BOUND_MS + 10_000,
    );
    const takeoverMs = Math.min(...copies.filter((c) => c.sender === third).map((c) => c.at)) - killedAt;
    console.log(`      takeover: the third device published its first event ${takeoverMs} ms after the kill`);
    expect(takeoverMs).to.be.at.most(TAKEOVER_BOUND_MS);

    await waitFor(
      "2 replicas of the new deployment Running",
      async () => (await livePlacements(2)).length === 2,
      120_000,
    );
    const holders = (await livePlacements(2)).map((p) => p.deviceId.toString()).sort();
    expect(holders).to.deep.equal([second, third].sort());

    // Every event is still on MQTT, from live bridges only after the kill.
    const expected = await chainEvents();
    await waitFor(
      "every chain event on MQTT after the takeover",
      async () => [...expected.keys()].every((id) => copies.some((c) => c.id === id)),
      30_000,
    );
    const late = copies.filter((c) => c.at > killedAt + 1_000);
    expect(late.map((c) => c.sender).filter((s) => s === first)).to.deep.equal([]);
  });
});
