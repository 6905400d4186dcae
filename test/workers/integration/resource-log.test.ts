// The anchored resource log (issue 16) end to end: one real worker process (Hardhat node, Kubo,
// Docker, a private Mosquitto) runs demo-web and resizes it; every decision it publishes must be in
// the log that `resources:verify` checks against the chain, across a kill -9 in the middle of an
// epoch; and a decision edited in the worker's stored open epoch before it is anchored is named,
// exactly that record, by `resources:verify` run as a user runs it.
import { expect } from "chai";
import Docker from "dockerode";
import { JsonRpcProvider } from "ethers";
import mqtt from "mqtt";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  connectShoalContracts,
  detachEnvelope,
  recordOf,
  type DecisionRecord,
  type LogEntry,
  type ShoalContracts,
} from "../../../workers/src";
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
import {
  removeDeviceLeftovers,
  requireChain,
  requireDocker,
  requireKubo,
  serviceUrls,
} from "../../shared/services";

const urls = serviceUrls();
const ROOT = path.resolve(__dirname, "../../..");
const OPERATOR = 8; // hardhat account index of this test's device owner and operator
const EPOCH_RECORDS = 3;

describe("resource log: hash-chained, persisted, anchored per epoch, verified by CID", function () {
  this.timeout(300_000);

  const docker = new Docker({ socketPath: urls.dockerSocket });
  let dir: string;
  let broker: PrivateBroker;
  let worker: WorkerProcess;
  let provider: JsonRpcProvider;
  let contracts: ShoalContracts;
  let record: DeploymentRecord;
  let deviceId: string;
  let subscriber: mqtt.MqttClient;
  /** Every decision published on MQTT (the signed envelope taken off), in arrival order. */
  const published: DecisionRecord[] = [];
  const cli = (...args: string[]) =>
    runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: dir, SHOAL_KUBO_URL: urls.kuboUrl });
  const logFile = () => path.join(dir, "worker", "resource-log.json");
  const stored = async () =>
    JSON.parse(await readFile(logFile(), "utf8")) as { open: LogEntry[]; epochs: number; sealed: unknown[] };
  const anchoredEpochs = async () => Number((await contracts.resourceLog!.head(Number(deviceId))).epochs);
  const deviceKey = () => deviceKeyOf(record, deviceId);

  /**
   * Someone outside the worker sets the container's CPU above its band (as `docker update` by hand
   * would); the resource manager brings it back, and that is a decision. Repeated until `done`.
   */
  async function pushUntil(what: string, done: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
    await waitFor(
      what,
      async () => {
        if (await done()) return true;
        // The running container of the placement now (a restarted worker may have replaced it).
        const [c] = await docker.listContainers({ filters: { label: [`io.shoal.device=${deviceKey()}`] } });
        if (c !== undefined)
          await docker
            .getContainer(c.Id)
            .update({ CpuPeriod: 100_000, CpuQuota: 90_000 })
            .catch(() => undefined);
        await new Promise((r) => setTimeout(r, 1200));
        return done();
      },
      timeoutMs,
    );
  }

  function startWorker(): void {
    worker.start();
  }

  before(async function () {
    await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls)]);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-resource-log-"));
    broker = new PrivateBroker(await freePort(), dir);
    await broker.start();

    record = await deployInto(dir);
    expect(record.contracts.ResourceLog, "the deployment record names the ResourceLog").to.not.equal(
      undefined,
    );
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
    contracts = connectShoalContracts(record.contracts as never, provider);

    ok(await cli("app:publish", "--manifest", path.join(ROOT, "apps/demo-web/shoal.yaml")));
    deviceId = enrolledId(ok(await cli(...enrollArgs(OPERATOR, { labels: "owner=resource-log" }))));

    subscriber = await mqtt.connectAsync(broker.url, { clientId: `resource-log-test-${Date.now()}` });
    subscriber.on("message", (_topic, payload) => {
      const parsed = detachEnvelope(payload.toString());
      if (!parsed.ok) return;
      const d = JSON.parse(parsed.payload) as DecisionRecord;
      published.push(d);
    });
    await subscriber.subscribeAsync(`shoal/v1/devices/${deviceId}/resources`, { qos: 1 });

    const config = await writeWorkerConfig(dir, {
      keeper: { enabled: false },
      resources: { epochMaxRecords: EPOCH_RECORDS, epochMaxAgeMs: 600_000 },
    });
    worker = testWorker({
      dir,
      mqttUrl: broker.url,
      operatorKey: devWallet(OPERATOR).privateKey,
      deviceId,
      args: ["--config", config],
    });
    startWorker();

    ok(await cli("app:deploy", "--app", "demo-web", "--replicas", "1", "--labels", "owner=resource-log"));
    await waitFor("demo-web running on the device", async () => {
      const [c] = await docker.listContainers({ filters: { label: [`io.shoal.device=${deviceKey()}`] } });
      return c?.Id;
    });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") console.log(`--- worker log ---\n${worker?.tail(60)}`);
  });

  after(async function () {
    await worker?.stop();
    await subscriber?.endAsync();
    await broker?.stop();
    provider?.destroy();
    if (record && deviceId) {
      await removeDeviceLeftovers(docker, deviceKey());
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("kill -9 in the middle of an epoch loses no decision: the log verifies without a gap", async function () {
    await pushUntil("an anchored epoch and an open one", async () => {
      if ((await anchoredEpochs()) < 1) return false;
      return (await stored()).open.length >= 1;
    });
    const open = (await stored()).open.map((e) => e.seq);
    await worker.crash();
    const heardBeforeCrash = published.length;
    expect(
      published.map((d) => d.seq),
      "the open epoch's decisions were published",
    ).to.include.members(open);

    startWorker();
    await pushUntil("three anchored epochs", async () => (await anchoredEpochs()) >= 3);

    const verified = ok(await cli("resources:verify", "--device", deviceId));
    expect(verified).to.match(
      new RegExp(`device ${deviceId}: \\d+ epochs, \\d+ records checked; the log verifies`),
    );

    const history = JSON.parse(ok(await cli("resources:history", "--device", deviceId, "--json"))) as {
      epoch: number;
      records: LogEntry[];
    }[];
    const records = history.flatMap((e) => e.records);
    expect(records.length).to.be.at.least(3 * EPOCH_RECORDS);
    expect(records.map((r) => r.seq)).to.deep.equal(records.map((_, i) => i));
    // Every decision anyone heard on MQTT, before and after the crash, is in the log as published
    // (those of the epoch still open at the end are not anchored yet).
    expect(heardBeforeCrash).to.be.greaterThan(0);
    const bySeq = new Map(records.map((r) => [r.seq, recordOf(r)]));
    for (const heard of published.filter((d) => d.seq < records.length))
      expect(bySeq.get(heard.seq), `decision seq ${heard.seq} as published`).to.deep.equal(heard);
  });

  it("a decision edited in the stored open epoch before it is anchored is named by resources:verify", async function () {
    await pushUntil("an open epoch", async () => (await stored()).open.length >= 1);
    await worker.crash();
    // What an attacker with the device's disk (but not its key) can do: rewrite one decision in the
    // worker's persisted open epoch, hoping to have it anchored as if it had been so.
    const state = JSON.parse(await readFile(logFile(), "utf8")) as { open: LogEntry[]; epochs: number };
    const target = state.open[0];
    const epoch = state.epochs;
    target.to = 12_345;
    await writeFile(logFile(), JSON.stringify(state));

    startWorker();
    await pushUntil(`epoch ${epoch} anchored`, async () => (await anchoredEpochs()) > epoch);

    const result = await cli("resources:verify", "--device", deviceId);
    expect(result.status, result.stdout + result.stderr).to.equal(1);
    const findings = result.stdout
      .split("\n")
      .filter((l) => /^(edit|gap|reorder|link|missing-epoch|anchor-mismatch): /.test(l));
    expect(findings).to.deep.equal([
      `edit: epoch ${epoch}, seq ${target.seq}: the record was edited after it was hashed (field to = 12345)`,
    ]);
  });
});
