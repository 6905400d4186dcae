// The device worker end to end against real services: a Hardhat node, Kubo, Docker and a private
// Mosquitto this test can stop. Publish the demo web app, deploy it, and watch one worker process
// claim it, fetch it through IPFS, run it hardened with the manifest's limits, confirm it on chain
// and bridge every event to MQTT exactly once — across a kill -9 and a broker outage.
import { expect } from "chai";
import Docker from "dockerode";
import { JsonRpcProvider } from "ethers";
import mqtt from "mqtt";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PLACEMENT_STATES, RELEASE_REASONS } from "../../../workers/src";
import { removeDeviceCgroup } from "../../../workers/src";
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
const OPERATOR = 7; // hardhat account index of this test's device owner and operator
const STATES = PLACEMENT_STATES;

describe("worker: chain -> IPFS -> Docker -> chain, with the MQTT bridge", function () {
  this.timeout(240_000);

  const docker = new Docker({ socketPath: urls.dockerSocket });
  let dir: string;
  let broker: PrivateBroker;
  let worker: WorkerProcess;
  let provider: JsonRpcProvider;
  let placements: PlacementRegistry;
  let record: DeploymentRecord;
  let deviceId: string;
  let subscriber: mqtt.MqttClient;
  const received: { topic: string; id: string }[] = [];
  const cli = (...args: string[]) =>
    runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: dir, SHOAL_KUBO_URL: urls.kuboUrl });

  /** The worker's name for its device in Docker: chain, registry and id (see workers/src/main.ts). */
  const deviceKey = () => deviceKeyOf(record, deviceId);
  const containersOf = async (placementId: string) =>
    docker.listContainers({
      all: true,
      filters: { label: [`io.shoal.device=${deviceKey()}`, `io.shoal.placement=${placementId}`] },
    });

  /** Every event the registries emitted since deployment, as bridge ids. */
  async function chainEventIds(): Promise<string[]> {
    const ids: string[] = [];
    for (const name of ["AppRegistry", "DeviceRegistry", "PlacementRegistry"]) {
      const logs = await provider.getLogs({
        address: record.contracts[name].address,
        fromBlock: record.contracts[name].blockNumber,
      });
      for (const log of logs) ids.push(`${record.chainId}:${log.transactionHash}:${log.index}`);
    }
    return ids.sort();
  }

  async function placementOf(deploymentId: number): Promise<string> {
    return waitFor(`a claim of deployment ${deploymentId}`, async () => {
      const id = await placements.activePlacementOf(deploymentId, BigInt(deviceId));
      return id === 0n ? undefined : id.toString();
    });
  }

  /**
   * After a crash or an outage the bridge re-sends the batch it had not checkpointed (at-least-once,
   * with deterministic ids): nothing may be missed, and a consumer that de-duplicates by id sees
   * each event once. Repeats are bounded by that one batch.
   */
  async function expectEveryEventAfterDedup(when: string) {
    const expected = await chainEventIds();
    await waitFor(
      `every event on MQTT after ${when}`,
      async () => new Set(received.map((m) => m.id)).size >= expected.length,
      60_000,
    );
    await new Promise((r) => setTimeout(r, 1000)); // a late message would have arrived by now
    expect([...new Set(received.map((m) => m.id))].sort()).to.deep.equal(expected);
    const repeats = received.length - new Set(received.map((m) => m.id)).size;
    expect(repeats, "repeats beyond one re-sent batch").to.be.at.most(
      expected.length - eventsBeforeDisruption,
    );
  }
  let eventsBeforeDisruption = 0;

  const stateOf = async (placementId: string) =>
    STATES[Number(await placements.placementState(BigInt(placementId)))];

  before(async function () {
    await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls)]);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-worker-"));
    broker = new PrivateBroker(await freePort(), dir);
    await broker.start();

    record = await deployInto(dir);
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
    placements = PlacementRegistry__factory.connect(record.contracts.PlacementRegistry.address, provider);

    ok(await cli("app:publish", "--manifest", path.join(ROOT, "apps/demo-web/shoal.yaml")));
    deviceId = enrolledId(ok(await cli(...enrollArgs(OPERATOR, { labels: "region=eu" }))));

    subscriber = await mqtt.connectAsync(broker.url, {
      clientId: `worker-test-${deviceId}-${Date.now()}`,
      clean: false,
    });
    subscriber.on("message", (topic, payload) => {
      if (topic.startsWith("shoal/v1/chain/"))
        received.push({ topic, id: JSON.parse(payload.toString()).id });
    });
    await subscriber.subscribeAsync(`shoal/v1/chain/${record.chainId}/+/+`, { qos: 1 });

    const config = await writeWorkerConfig(dir);
    worker = testWorker({
      dir,
      mqttUrl: broker.url,
      operatorKey: devWallet(OPERATOR).privateKey,
      deviceId,
      args: ["--config", config],
    });
    worker.start();
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") console.log(`--- worker log ---\n${worker?.tail(40)}`);
  });

  after(async function () {
    await worker?.stop();
    await subscriber?.endAsync();
    await broker?.stop();
    provider?.destroy();
    const leftovers = await docker.listContainers({
      all: true,
      filters: { label: [`io.shoal.device=${deviceKey()}`] },
    });
    await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    if (record) await removeDeviceCgroup({ deviceId: deviceKey() });
    await rm(dir, { recursive: true, force: true });
  });

  it("claims a deployed replica, runs it hardened with the manifest's limits and confirms Running", async function () {
    ok(await cli("app:deploy", "--app", "demo-web", "--replicas", "1"));
    const placementId = await placementOf(1);
    await waitFor("Running on chain", async () => (await stateOf(placementId)) === "Running");

    const containers = await containersOf(placementId);
    expect(
      containers.map((c) => c.Names[0]),
      "exactly one container for the placement",
    ).to.have.length(1);
    const [summary] = containers;
    const info = await docker.getContainer(summary.Id).inspect();
    expect(info.State.Running).to.equal(true);
    expect(info.Config.Labels).to.include({
      "io.shoal.placement": placementId,
      "io.shoal.device": deviceKey(),
      "io.shoal.deployment": "1",
    });
    const host = info.HostConfig;
    // demo-web's band: cpu 50m..500m, memory 16Mi..64Mi; the container starts at the CPU minimum.
    expect(host.CpuQuota! / host.CpuPeriod!).to.be.closeTo(0.05, 1e-9);
    expect(host.Memory).to.equal(64 * 1024 * 1024);
    expect(host.MemoryReservation).to.equal(16 * 1024 * 1024);
    expect(host.Privileged).to.equal(false);
    expect(host.ReadonlyRootfs).to.equal(true);
    expect(host.CapDrop).to.deep.equal(["ALL"]);
    expect(host.SecurityOpt).to.include("no-new-privileges");
    expect(host.Binds ?? []).to.deep.equal([]);
    expect(host.NetworkMode).to.not.equal("host");
    expect(host.PidMode ?? "").to.not.equal("host");
    expect(Object.keys(host.Tmpfs ?? {})).to.deep.equal(["/tmp"]);

    const binding = info.NetworkSettings.Ports["8080/tcp"]![0];
    expect(binding.HostIp).to.equal("127.0.0.1");
    // Running means the process started; httpd may take a moment more to accept connections.
    const page = await waitFor(
      "the page",
      async () => (await fetch(`http://127.0.0.1:${binding.HostPort}/`)).text(),
      10_000,
    );
    expect(page).to.include("<h1>demo-web</h1>");
  });

  it("bridges every contract event to MQTT exactly once", async function () {
    const expected = await chainEventIds();
    await waitFor("every event on MQTT", async () => received.length >= expected.length, 30_000);
    const ids = received.map((m) => m.id).sort();
    expect(ids).to.deep.equal(expected);
    expect(received.find((m) => m.id === expected[0])!.topic).to.match(
      new RegExp(`^shoal/v1/chain/${record.chainId}/\\w+Registry/\\w+$`),
    );
  });

  it("survives kill -9 mid-deploy: no duplicate container, no missed event, repeats only by id", async function () {
    eventsBeforeDisruption = new Set(received.map((m) => m.id)).size;
    ok(await cli("app:deploy", "--app", "demo-web", "--replicas", "1"));
    const placementId = await placementOf(2);
    await worker.crash(); // right after the claim: before or while it starts the container
    worker.start();
    await waitFor(
      "Running on chain after the restart",
      async () => (await stateOf(placementId)) === "Running",
    );
    // The first deployment's container was kept, not restarted or duplicated.
    expect(await containersOf(placementId)).to.have.length(1);
    expect(await containersOf(await placementOf(1))).to.have.length(1);

    await expectEveryEventAfterDedup("the crash");
  });

  it("keeps containers running while the broker is down and catches up when it returns", async function () {
    const placementId = await placementOf(1);
    const [before] = await containersOf(placementId);
    const startedAt = (await docker.getContainer(before.Id).inspect()).State.StartedAt;

    eventsBeforeDisruption = new Set(received.map((m) => m.id)).size;
    await broker.stop();
    // Chain activity while MQTT is away: a third deployment the worker must still run.
    ok(await cli("app:deploy", "--app", "demo-web", "--replicas", "1"));
    const third = await placementOf(3);
    await waitFor("Running without MQTT", async () => (await stateOf(third)) === "Running");
    await broker.start();

    await expectEveryEventAfterDedup("the broker returned");
    const after = await docker.getContainer(before.Id).inspect();
    expect(after.State.Running).to.equal(true);
    expect(after.State.StartedAt, "not restarted").to.equal(startedAt);
  });

  it("releases the placement of a stopped deployment and removes its container", async function () {
    const placementId = await placementOf(3);
    expect(await containersOf(placementId)).to.have.length(1);
    ok(await cli("app:stop", "--deployment", "3"));
    await waitFor("the placement released", async () => (await stateOf(placementId)) === "Released", 30_000);
    await waitFor(
      "the container removed",
      async () => (await containersOf(placementId)).length === 0,
      30_000,
    );
    const [released] = await placements.queryFilter(
      placements.filters.PlacementReleased(BigInt(placementId)),
      record.contracts.PlacementRegistry.blockNumber,
    );
    expect(RELEASE_REASONS[Number(released.args.reason)]).to.equal("DeploymentStopped");
    expect(released.args.releasedBy).to.equal(devWallet(OPERATOR).address);
    // The other deployments are untouched.
    expect(await containersOf(await placementOf(1))).to.have.length(1);
  });

  it("stops gracefully on SIGTERM and announces itself offline", async function () {
    const status = new Promise<string>((resolve) => {
      subscriber.on("message", (topic, payload) => {
        if (
          topic === `shoal/v1/devices/${deviceId}/status` &&
          JSON.parse(payload.toString()).status === "offline"
        ) {
          resolve(payload.toString());
        }
      });
    });
    await subscriber.subscribeAsync(`shoal/v1/devices/${deviceId}/status`, { qos: 1 });
    expect(await worker.stop()).to.equal(0);
    expect(JSON.parse(await status)).to.include({ status: "offline" });
  });

  // Every worker used to print this within a minute: each of the bridge's concurrent MQTT publishes
  // put its own listener on the worker's one AbortSignal (fixed in workers/src/lib/supervise.ts).
  it("never warns of an abort-listener leak over the whole run", function () {
    expect(worker.log).to.contain("worker started");
    expect(worker.log).not.to.contain("MaxListenersExceededWarning");
  });

  // A data dir kept from another deployment is an unrecoverable config: the chain source refuses it
  // once the loops run. The worker must stop with the cause, non-zero, for its supervisor to see,
  // instead of heartbeating on without its chain source and bridge.
  it("exits non-zero with the cause logged when a loop fails fatally", async function () {
    const dataDir = path.join(dir, "worker-of-another-deployment");
    await mkdir(dataDir, { recursive: true });
    await writeFile(
      path.join(dataDir, "chain-checkpoint.json"),
      JSON.stringify({
        version: 1,
        chainId: record.chainId,
        contracts: { PlacementRegistry: "0x00000000000000000000000000000000000000aa" },
        checkpoint: { number: 0, hash: null },
        recent: [],
      }),
    );
    // No claims: this worker must not take work while the test runs it.
    const config = path.join(dir, "doomed.json");
    await writeFile(config, JSON.stringify({ claim: { enabled: false } }));
    const doomed = new WorkerProcess(
      {
        SHOAL_RPC_URL: urls.rpcUrl,
        SHOAL_OPERATOR_KEY: devWallet(OPERATOR).privateKey,
        SHOAL_DEVICE_ID: deviceId,
        SHOAL_DEPLOYMENTS_FILE: path.join(dir, "localhost.json"),
        SHOAL_MQTT_URL: broker.url,
        SHOAL_KUBO_URL: urls.kuboUrl,
        SHOAL_DATA_DIR: dataDir,
      },
      ["--config", config],
    );
    doomed.start();
    try {
      await waitFor("the worker to exit", async () => !doomed.running, 60_000);
      expect(await doomed.stop(), doomed.tail()).to.equal(1);
      expect(doomed.log).to.contain("worker started");
      const fatal = doomed.log
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message?: string } })
        .find((line) => line.level === 60);
      expect(fatal, doomed.tail()).to.not.equal(undefined);
      expect(fatal!.msg).to.contain("loop stopped on a fatal error");
      expect(fatal!.err?.message ?? fatal!.msg).to.contain("belongs to another chain or deployment");
    } finally {
      await doomed.stop();
    }
  });
});
