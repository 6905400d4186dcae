// The graceful stop of a real shoal-worker process (issue 13 item 3), as docs/worker.md documents
// it: on SIGTERM the worker publishes `offline` with the reason `shutdown` (seen by a plain mqtt.js
// subscriber), exits 0 and leaves its containers running (docker inspect); a second start adopts
// them: the same container, not restarted, the placement still Running, no new claim.
import { expect } from "chai";
import Docker from "dockerode";
import { JsonRpcProvider } from "ethers";
import mqtt from "mqtt";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PLACEMENT_STATES, removeDeviceCgroup } from "../../../workers/src";
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
const OPERATOR = 2;

interface Status {
  status: string;
  reason: string;
  deviceId: number | string;
}

describe("worker: SIGTERM publishes the shutdown, keeps the containers, and a restart adopts them", function () {
  this.timeout(240_000);

  const docker = new Docker({ socketPath: urls.dockerSocket });
  let dir: string;
  let broker: PrivateBroker;
  let provider: JsonRpcProvider;
  let placements: PlacementRegistry;
  let record: DeploymentRecord;
  let deviceId: string;
  let worker: WorkerProcess;
  let subscriber: mqtt.MqttClient;
  const statuses: Status[] = [];
  const cli = (...args: string[]) =>
    runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: dir, SHOAL_KUBO_URL: urls.kuboUrl });
  const deviceKey = () => deviceKeyOf(record, deviceId);
  const containers = () =>
    docker.listContainers({ all: true, filters: { label: [`io.shoal.device=${deviceKey()}`] } });

  /** The worker's JSON log lines since `from` characters. */
  const logLines = (w: WorkerProcess, from = 0) => w.jsonLines<{ msg: string; actions?: string[] }>(from);

  const newWorker = () =>
    testWorker({
      dir,
      mqttUrl: broker.url,
      operatorKey: devWallet(OPERATOR).privateKey,
      deviceId,
      args: ["--config", path.join(dir, "worker.json")],
    });

  before(async function () {
    await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls)]);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-sigterm-"));
    broker = new PrivateBroker(await freePort(), dir);
    await broker.start();
    record = await deployInto(dir);
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
    placements = PlacementRegistry__factory.connect(record.contracts.PlacementRegistry.address, provider);
    ok(await cli("app:publish", "--manifest", path.join(ROOT, "apps/demo-web/shoal.yaml")));
    deviceId = enrolledId(ok(await cli(...enrollArgs(OPERATOR, { labels: "region=eu" }))));
    await writeWorkerConfig(dir);

    subscriber = await mqtt.connectAsync(broker.url, { clientId: `sigterm-test-${Date.now()}`, clean: true });
    subscriber.on("message", (_topic, payload) => statuses.push(JSON.parse(payload.toString()) as Status));
    await subscriber.subscribeAsync(`shoal/v1/devices/${deviceId}/status`, { qos: 1 });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") console.log(`--- worker log ---\n${worker?.tail(40)}`);
  });

  after(async function () {
    await worker?.stop();
    await subscriber?.endAsync();
    await broker?.stop();
    provider?.destroy();
    if (record) {
      for (const c of await containers()) await docker.getContainer(c.Id).remove({ force: true });
      await removeDeviceCgroup({ deviceId: deviceKey() });
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("SIGTERM: offline with reason shutdown, exit 0, the container keeps running; a restart adopts it", async function () {
    worker = newWorker();
    worker.start();
    await waitFor("online", async () => statuses.some((s) => s.status === "online"), 60_000);
    ok(await cli("app:deploy", "--app", "demo-web", "--replicas", "1"));
    const placementId = await waitFor("a claim", async () => {
      const id = await placements.activePlacementOf(1, BigInt(deviceId));
      return id === 0n ? undefined : id;
    });
    const state = async () => PLACEMENT_STATES[Number(await placements.placementState(placementId))];
    await waitFor("Running on chain", async () => (await state()) === "Running", 120_000);
    const [container] = await containers();
    const before = await docker.getContainer(container.Id).inspect();
    expect(before.State.Running).to.equal(true);

    const seen = statuses.length;
    expect(await worker.stop(), worker.tail()).to.equal(0);
    await waitFor("the offline status", async () => statuses.length > seen, 10_000);
    expect(statuses.slice(seen)).to.have.length(1);
    expect(statuses.at(-1)).to.include({ status: "offline", reason: "shutdown" });
    // Retained: a subscriber that comes later reads the same.
    const late = await mqtt.connectAsync(broker.url, { clientId: `sigterm-late-${Date.now()}`, clean: true });
    const retained = new Promise<Status>((resolve) =>
      late.on("message", (_t, payload) => resolve(JSON.parse(payload.toString()) as Status)),
    );
    await late.subscribeAsync(`shoal/v1/devices/${deviceId}/status`, { qos: 1 });
    expect(await retained).to.include({ status: "offline", reason: "shutdown" });
    await late.endAsync();

    const stopped = await docker.getContainer(container.Id).inspect();
    expect(stopped.State.Running, "the container outlives its worker").to.equal(true);
    expect(stopped.State.StartedAt).to.equal(before.State.StartedAt);

    // A second start adopts the container: its first reconcile pass keeps it.
    worker = newWorker();
    worker.start();
    await waitFor("online again", async () => statuses.at(-1)?.status === "online", 60_000);
    const pass = await waitFor(
      "a reconcile pass of the new worker",
      async () => logLines(worker).find((l) => l.msg === "reconcile pass"),
      60_000,
    );
    // "keep" is the plan's no-op: the container matches the placement, nothing is started or removed.
    expect(pass.actions, "actions of the first pass after the restart").to.deep.equal([
      `keep:${placementId}`,
    ]);
    const after = await containers();
    expect(after.map((c) => c.Id)).to.deep.equal([container.Id]);
    expect((await docker.getContainer(container.Id).inspect()).State.StartedAt, "not restarted").to.equal(
      before.State.StartedAt,
    );
    expect(await state()).to.equal("Running");
    expect(await placements.activePlacementOf(1, BigInt(deviceId))).to.equal(placementId);
  });
});
