/**
 * Soak: one shoal-worker for an hour or more at accelerated settings, its memory and handles over time.
 *
 *   npx ts-node bench/soak.ts [--minutes N] [--warmup-minutes N] [--sample-s S] [--scale-s S] [--no-build]
 *                             [--out DIR] [--node-options "FLAGS"]
 *   (env: SHOAL_SOAK_MINUTES, SHOAL_SOAK_WARMUP_MINUTES, SHOAL_SOAK_SAMPLE_S, SHOAL_SOAK_SCALE_S;
 *    the flags win)
 *
 * What runs, all of it the soak's own so that tests running meanwhile never touch it:
 * - a Hardhat node on a free port (tests on the shared node advance time and would expire the device),
 *   fresh contracts with a 15 s heartbeat TTL, one device (4 CPU, 2 GiB);
 * - a private Mosquitto; the Kubo node of scripts/services.sh (SHOAL_KUBO_API_PORT);
 * - the compiled worker, copied first to .shoal/soak-<run>/ so that a rebuild of dist/ during the
 *   soak never changes what runs; claim delay 100 ms, reconcile every 500 ms, chain polling 200 ms,
 *   resource manager every 1 s with its 100 ms fast path (defaults), heartbeat every 5 s;
 * - demo-loadgen, 1 replica, the whole time: its staircase load keeps resource decisions flowing;
 * - every `--scale-s` seconds demo-loadgen's deployment scaled between 1 and 2 replicas, and every
 *   other time a new demo-web deployment created and the previous one stopped (one device holds one
 *   replica of a deployment, so scaling alone changes no container here): a container created and
 *   one removed every 2 x `--scale-s`, at most 3 of the soak's containers at once.
 *
 * Every `--sample-s` seconds: VmRSS from /proc, and from the worker's /metrics the V8 heap used and
 * total, the heap used right after the last major collection, external memory, active handles,
 * resource decisions and claims. The warning count is the number of `MaxListenersExceededWarning`
 * lines on the worker's stderr. Slopes are least-squares fits over the samples after the warm-up, in
 * MiB per hour. Heap used at a sample's time lands anywhere on the collector's sawtooth, so the
 * heap's verdict is taken on the heap after a major collection (the live heap); the slope of each
 * 5-minute window's minimum heap used is reported too, as a check that needs no worker metric.
 *
 * Writes soak.md every 5 minutes (marked partial until the end) and the samples to soak.csv, in
 * bench/results or `--out DIR` (a second soak meanwhile must not overwrite the first's results).
 * `--node-options` adds V8/Node flags to the worker's (e.g. "--heapsnapshot-signal=SIGUSR2" for
 * heap snapshots on `kill -USR2 <worker pid>`, written to the worker's directory, the repository).
 * Cleans up the containers of its device (by label), its images' pins, and stops only the processes
 * it started. Needs no Docker lock: it creates containers of its own device only, and never removes
 * anything else.
 */
import Docker from "dockerode";
import { JsonRpcProvider, Wallet } from "ethers";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { AppRegistry__factory, DeviceRegistry__factory, ShoalToken__factory } from "../typechain-types";
import { removeDeviceCgroup } from "../workers/src";
import { devWallet, runHardhat } from "../scripts/lib/local-chain";
import { freePort, PrivateBroker, waitFor, workerEnvironment } from "../test/shared/processes";
import { requireDocker, requireKubo, serviceUrls } from "../test/shared/services";

const ROOT = path.resolve(__dirname, "..");
const OWNER = 8;
const OPERATOR = 9;
const MIB = 2 ** 20;
const TARGET_SLOPE_MIB_PER_H = 1;

function setting(flag: string, env: string, fallback: number): number {
  const i = process.argv.indexOf(`--${flag}`);
  const raw = i >= 0 ? process.argv[i + 1] : process.env[env];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`--${flag} (${env}): "${raw}" is not allowed; use a number above 0`);
  }
  return value;
}
const MINUTES = setting("minutes", "SHOAL_SOAK_MINUTES", 60);
const WARMUP_MINUTES = setting("warmup-minutes", "SHOAL_SOAK_WARMUP_MINUTES", 10);
const SAMPLE_S = setting("sample-s", "SHOAL_SOAK_SAMPLE_S", 15);
const SCALE_S = setting("scale-s", "SHOAL_SOAK_SCALE_S", 5);
function stringSetting(flag: string): string | undefined {
  const i = process.argv.indexOf(`--${flag}`);
  if (i < 0) return undefined;
  const value = process.argv[i + 1];
  if (value === undefined || value === "")
    throw new Error(
      `--${flag}: a value is required (e.g. --${flag} ${flag === "out" ? "/tmp/soak" : "--heapsnapshot-signal=SIGUSR2"})`,
    );
  return value;
}
const OUT = path.resolve(stringSetting("out") ?? path.join(__dirname, "results"));
const EXTRA_NODE_OPTIONS = (stringSetting("node-options") ?? "").split(/\s+/).filter(Boolean);
const WINDOW_S = 5 * 60;

const urls = serviceUrls();
const RUN = `${Date.now().toString(36)}${process.pid.toString(36)}`;
const docker = new Docker({ socketPath: urls.dockerSocket });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const run = promisify(execFile);
// SIGTERM/SIGINT end the soak early: results written (marked partial), everything cleaned up.
let stopRequested = false;
process.once("SIGTERM", () => (stopRequested = true));
process.once("SIGINT", () => (stopRequested = true));

interface Sample {
  t: number;
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  /** Heap used right after the worker's last major collection (NaN before the first). */
  heapAfterGcMiB: number;
  externalMiB: number;
  handles: number;
  decisions: number;
  claims: number;
  containers: number;
  warnings: number;
}

function vmRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
}

/** Sum of a metric's samples (all label sets) in Prometheus text. */
function metric(text: string, name: string): number {
  let sum = 0;
  let found = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== " " && line[name.length] !== "{")) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    found = true;
  }
  return found ? sum : NaN;
}

/** Least-squares slope of y over t (seconds), per hour. */
function slopePerHour(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mt = points.reduce((s, [t]) => s + t, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [t, y] of points) {
    num += (t - mt) * (y - my);
    den += (t - mt) ** 2;
  }
  return den === 0 ? NaN : (num / den) * 3600;
}

/** A child process this soak started; stopped by its own PID only. */
class Child {
  readonly child: ChildProcess;
  stderr = "";
  stdoutTail = "";
  warnings = 0;
  warningText = "";
  constructor(cmd: string, args: string[], env: NodeJS.ProcessEnv, logFile?: string) {
    this.child = spawn(cmd, args, {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const log = logFile ? (chunk: Buffer) => writeFileSync(logFile, chunk, { flag: "a" }) : () => undefined;
    this.child.stdout!.on("data", (chunk: Buffer) => {
      this.stdoutTail = (this.stdoutTail + chunk.toString("utf8")).slice(-20_000);
      log(chunk);
    });
    this.child.stderr!.on("data", (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      this.stderr = (this.stderr + text).slice(-20_000);
      const hits = text.match(/MaxListenersExceededWarning/g)?.length ?? 0;
      if (hits && !this.warningText) this.warningText = text.slice(0, 4000);
      this.warnings += hits;
      log(chunk);
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGTERM");
    if (!(await Promise.race([exited.then(() => true), sleep(30_000).then(() => false)]))) {
      this.child.kill("SIGKILL");
      await exited;
    }
  }
}

async function main(): Promise<void> {
  await Promise.all([requireKubo(urls), requireDocker(urls)]);
  const startedAt = new Date();
  const tmp = await mkdtemp(path.join(os.tmpdir(), "shoal-soak-"));
  const cleanups: Array<[string, () => Promise<unknown>]> = [];
  const samples: Sample[] = [];
  let finished = false;
  let worker: Child | undefined;
  const meta: Record<string, string> = {};
  console.log(`soak ${RUN}: ${MINUTES} min, warm-up ${WARMUP_MINUTES} min; temp dir ${tmp}`);

  try {
    // ---- chain of our own
    const chainPort = await freePort();
    const rpcUrl = `http://127.0.0.1:${chainPort}`;
    const chain = new Child(
      path.join(ROOT, "node_modules/.bin/hardhat"),
      ["node", "--hostname", "127.0.0.1", "--port", String(chainPort)],
      {},
      path.join(tmp, "chain.log"),
    );
    cleanups.push(["chain", () => chain.stop()]);
    const chainId = await waitFor(
      "the soak's Hardhat node",
      async () => {
        if (!chain.running) throw new Error(`the Hardhat node exited:\n${chain.stderr}`);
        const response = await fetch(rpcUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
        });
        return Number(((await response.json()) as { result: string }).result);
      },
      120_000,
      500,
    );
    const provider = new JsonRpcProvider(rpcUrl, chainId, { staticNetwork: true, cacheTimeout: -1 });
    cleanups.push(["provider", async () => provider.destroy()]);
    const env = {
      SHOAL_RPC_URL: rpcUrl,
      SHOAL_DEPLOYMENTS_DIR: tmp,
      SHOAL_KUBO_URL: urls.kuboUrl,
      SHOAL_HEARTBEAT_TTL: "15",
    };
    // Retried: a busy Hardhat node sometimes closes a kept-alive socket under the task ("other side closed").
    const cli = async (...args: string[]) => {
      for (let attempt = 1; ; attempt++) {
        const result = await runHardhat(args, env);
        if (result.status === 0) return result.stdout;
        if (attempt === 3 || !/other side closed|ECONNRESET/.test(result.stderr + result.stdout))
          throw new Error(`hardhat ${args.join(" ")} failed:\n${result.stdout}\n${result.stderr}`);
        await sleep(2000);
      }
    };
    // Contract addresses of their own: workers own containers by the label io.shoal.device, made of
    // chain id, DeviceRegistry address and device id, and every fresh Hardhat node deploys to the same
    // addresses, so a test's worker on another fresh node would take our containers as its own.
    const nonce = 1000 + Math.floor(Math.random() * 1_000_000);
    await provider.send("hardhat_setNonce", [devWallet(0).address, `0x${nonce.toString(16)}`]);
    await cli("run", "scripts/deploy.ts");
    const deploymentsFile = path.join(tmp, "localhost.json");
    const record = JSON.parse(await readFile(deploymentsFile, "utf8")) as {
      chainId: number;
      contracts: Record<string, { address: string }>;
    };
    const address = (name: string) => record.contracts[name].address;
    const owner = new Wallet(devWallet(OWNER).privateKey, provider);
    const operator = new Wallet(devWallet(OPERATOR).privateKey, provider);

    // ---- apps: the demo images of scripts/images/build.sh, published from Docker to Kubo
    const pins: string[] = [];
    cleanups.push([
      "pins",
      async () => {
        for (const cid of pins)
          await fetch(`${urls.kuboUrl}/api/v0/pin/rm?arg=${cid}`, { method: "POST" }).catch(() => undefined);
      },
    ]);
    const apps = AppRegistry__factory.connect(address("AppRegistry"), owner);
    for (const app of ["demo-web", "demo-loadgen"]) {
      await cli("app:publish", "--manifest", `apps/${app}/shoal.yaml`, "--account", String(OWNER));
      const version = await apps.version(await apps.appIdOf(app), 1);
      pins.push(version.manifestCid, ...version.imageCids);
    }

    // ---- device
    // The minimum stake (100) plus collateral for the placements it claims (10 each, scripts/deploy.ts).
    const stake = 300n * 10n ** 18n;
    const token = ShoalToken__factory.connect(address("ShoalToken"), operator);
    const devices = DeviceRegistry__factory.connect(address("DeviceRegistry"), operator);
    await (await token.approve(address("DeviceRegistry"), stake)).wait();
    const receipt = await (
      await devices.enroll(operator.address, "linux/amd64", 4000, 2048, [], "/ip4/127.0.0.1/tcp/4001", stake)
    ).wait();
    const deviceId = String(
      receipt!.logs.map((log) => devices.interface.parseLog(log)).find((p) => p?.name === "DeviceEnrolled")!
        .args.deviceId,
    );
    // The worker's name of the device in Docker (label io.shoal.device), as workers/src/main.ts builds it.
    const deviceKey = `${record.chainId}-${address("DeviceRegistry").slice(2, 10).toLowerCase()}-${deviceId}`;
    const ourContainers = async () =>
      docker.listContainers({ all: true, filters: { label: [`io.shoal.device=${deviceKey}`] } });
    // Run last (cleanups run last-in first-out): only an empty cgroup can go.
    cleanups.push(["device cgroup", () => removeDeviceCgroup({ deviceId: deviceKey })]);
    cleanups.push([
      "containers",
      async () => {
        for (const c of await ourContainers())
          await docker
            .getContainer(c.Id)
            .remove({ force: true })
            .catch(() => undefined);
      },
    ]);

    // ---- worker: the compiled build, copied so a rebuild during the soak changes nothing
    // --no-build: run the dist/worker build as it is (made by `npm run build:worker` beforehand).
    if (!process.argv.includes("--no-build")) await run("npm", ["run", "-s", "build:worker"], { cwd: ROOT });
    const copy = path.join(ROOT, `.shoal/soak-${RUN}`);
    mkdirSync(copy, { recursive: true });
    cpSync(path.join(ROOT, "dist/worker"), copy, { recursive: true });
    cleanups.push(["worker copy", () => rm(copy, { recursive: true, force: true })]);
    meta.commit = (await run("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT })).stdout.trim();
    meta.dirty = (await run("git", ["status", "--porcelain", "workers/src"], { cwd: ROOT })).stdout.trim()
      ? " (with uncommitted changes in workers/src)"
      : "";
    const broker = new PrivateBroker(await freePort(), tmp);
    await broker.start();
    cleanups.push(["broker", () => broker.stop()]);
    const metricsPort = await freePort();
    const config = path.join(tmp, "worker.json");
    await writeFile(
      config,
      JSON.stringify({
        claim: { maxDelayMs: 100, jitterMs: 0 },
        reconcileIntervalMs: 500,
        heartbeatIntervalS: 5,
        resources: { enabled: true, periodMs: 1000, fastPeriodMs: 100 },
      }),
    );
    // The bin's V8 flags (workers/bin/shoal-worker.js), on the copy's main.
    const nodeArgs = [
      "--trace-warnings",
      "--max-semi-space-size=2",
      "--max-old-space-size=512",
      ...EXTRA_NODE_OPTIONS,
      path.join(copy, "workers/src/main.js"),
      "--config",
      config,
    ];
    meta.worker = `node ${nodeArgs.join(" ").replace(ROOT + "/", "")}`;
    worker = new Child(
      process.execPath,
      nodeArgs,
      {
        ...workerEnvironment({
          rpcUrl,
          operatorKey: operator.privateKey,
          deviceId,
          deploymentsFile,
          mqttUrl: broker.url,
          kuboUrl: urls.kuboUrl,
          dockerSocket: urls.dockerSocket,
          dataDir: path.join(tmp, "worker"),
          logLevel: "warn",
          metricsPort,
        }),
        SHOAL_POLL_INTERVAL_MS: "200",
      },
      path.join(tmp, "worker.log"),
    );
    const w = worker;
    cleanups.push(["worker", () => w.stop()]);
    const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    await waitFor(
      "the worker's /metrics",
      async () => {
        if (!w.running) throw new Error(`the worker exited:\n${w.stderr}\n${w.stdoutTail}`);
        return (await scrape()).length > 0;
      },
      60_000,
      250,
    );
    const startedWorker = Date.now();
    console.log(
      `worker ${w.child.pid} started (device ${deviceId}, key ${deviceKey}); log ${tmp}/worker.log`,
    );

    // ---- load
    await cli("app:deploy", "--app", "demo-loadgen", "--replicas", "1", "--account", String(OWNER));
    await cli("app:deploy", "--app", "demo-web", "--replicas", "1", "--account", String(OWNER));
    // One device holds one replica of a deployment (PlacementRegistryAlreadyPlaced), so a scale of
    // one deployment changes no container here: the churn is a demo-web deployment created, then
    // stopped SCALE_S later, then the next one, and so on (at most 2 of them live at once), plus a
    // scale of demo-loadgen's deployment between 1 and 2 replicas (events the worker reads and
    // bridges, a claim it loses to itself).
    const webApp = await apps.appIdOf("demo-web");
    const loadgenApp = await apps.appIdOf("demo-loadgen");
    const deploymentOf = async (appId: bigint) => {
      const created = await apps.queryFilter(apps.filters.DeploymentCreated(undefined, appId));
      return created[created.length - 1].args.deploymentId;
    };
    let webDeployment = await deploymentOf(webApp);
    const loadgenDeployment = await deploymentOf(loadgenApp);
    const endAt = startedWorker + MINUTES * 60_000;
    let scales = 0;
    let scaleErrors = 0;
    const scaling = (async () => {
      let up = false;
      while (Date.now() < endAt && w.running && !stopRequested) {
        await sleep(SCALE_S * 1000);
        up = !up;
        try {
          if (up) {
            const version = (await apps.deployment(webDeployment)).version;
            await (await apps.createDeployment(webApp, version, 1, [])).wait();
            const next = await deploymentOf(webApp);
            await (await apps.stopDeployment(webDeployment)).wait();
            webDeployment = next;
          }
          await (await apps.scaleDeployment(loadgenDeployment, up ? 2 : 1)).wait();
          scales++;
        } catch (error) {
          scaleErrors++;
          if (scaleErrors <= 3)
            console.warn(`scale ${up ? "up" : "down"} failed: ${String(error).slice(0, 300)}`);
        }
      }
    })();

    // ---- samples
    const write = (partial: boolean) =>
      writeResults({
        samples,
        partial,
        startedAt,
        meta: {
          ...meta,
          deviceKey,
          scales: String(scales),
          scaleErrors: String(scaleErrors),
          warningText: w.warningText,
        },
      });
    let lastWrite = Date.now();
    while (Date.now() < endAt && !stopRequested) {
      if (!w.running)
        throw new Error(`the worker exited (code ${w.child.exitCode}):\n${w.stderr.slice(-3000)}`);
      try {
        const text = await scrape();
        samples.push({
          t: (Date.now() - startedWorker) / 1000,
          rssMiB: vmRssMiB(w.child.pid!),
          heapUsedMiB: metric(text, "shoal_worker_nodejs_heap_size_used_bytes") / MIB,
          heapTotalMiB: metric(text, "shoal_worker_nodejs_heap_size_total_bytes") / MIB,
          heapAfterGcMiB: metric(text, "shoal_worker_heap_used_after_major_gc_bytes") / MIB,
          externalMiB: metric(text, "shoal_worker_nodejs_external_memory_bytes") / MIB,
          handles: metric(text, "shoal_worker_nodejs_active_handles_total"),
          decisions: metric(text, "shoal_resource_decisions_total"),
          claims: metric(text, "shoal_claims_total"),
          containers: (await ourContainers()).length,
          warnings: w.warnings,
        });
      } catch (error) {
        console.warn(`sample failed: ${String(error)}`);
      }
      if (Date.now() - lastWrite > 5 * 60_000) {
        write(true);
        lastWrite = Date.now();
        const s = samples[samples.length - 1];
        console.log(
          `${(s.t / 60).toFixed(0)} min: RSS ${s.rssMiB.toFixed(1)} MiB, heap ${s.heapUsedMiB.toFixed(1)} MiB, handles ${s.handles}, decisions ${s.decisions}, warnings ${s.warnings}`,
        );
      }
      await sleep(SAMPLE_S * 1000);
    }
    await scaling;
    finished = !stopRequested;
    write(stopRequested);
  } finally {
    if (!finished && samples.length > 0) {
      writeResults({
        samples,
        partial: true,
        startedAt,
        meta: { ...meta, warningText: worker?.warningText ?? "", aborted: "yes" },
      });
    }
    for (const [name, cleanup] of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => console.warn(`cleanup ${name}: ${String(error)}`));
    }
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  }
}

function writeResults(opts: {
  samples: Sample[];
  partial: boolean;
  startedAt: Date;
  meta: Record<string, string>;
}): void {
  const { samples, partial, startedAt, meta } = opts;
  const warm = samples.filter((s) => s.t >= WARMUP_MINUTES * 60);
  const slope = (pick: (s: Sample) => number) => slopePerHour(warm.map((s) => [s.t, pick(s)]));
  const fmt = (v: number | undefined, digits = 2) =>
    v !== undefined && Number.isFinite(v) ? v.toFixed(digits) : "-";
  const last = samples[samples.length - 1];
  const first = warm[0];
  const cpus = os.cpus();
  const rssSlope = slope((s) => s.rssMiB);
  const heapUsedSlope = slope((s) => s.heapUsedMiB);
  const afterGc = warm.filter((s) => Number.isFinite(s.heapAfterGcMiB));
  const afterGcSlope = slopePerHour(afterGc.map((s) => [s.t, s.heapAfterGcMiB]));
  // The floor of each full 5-minute window after the warm-up (the heap after a collection), at the
  // window's middle.
  const floors: Array<[number, number]> = [];
  for (
    let from = WARMUP_MINUTES * 60;
    from + WINDOW_S <= (samples.at(-1)?.t ?? 0) + SAMPLE_S;
    from += WINDOW_S
  ) {
    const inWindow = warm.filter((s) => s.t >= from && s.t < from + WINDOW_S).map((s) => s.heapUsedMiB);
    if (inWindow.length > 0) floors.push([from + WINDOW_S / 2, Math.min(...inWindow)]);
  }
  const floorSlope = slopePerHour(floors);
  // The heap's verdict: after a major collection when the worker reports it, else the window floors.
  const heapMeasure = Number.isFinite(afterGcSlope) ? "after a major collection" : "5-minute floor";
  const heapSlope = Number.isFinite(afterGcSlope) ? afterGcSlope : floorSlope;
  const warnings = last?.warnings ?? 0;
  const span = last ? last.t / 60 : 0;
  const met =
    Number.isFinite(rssSlope) &&
    rssSlope < TARGET_SLOPE_MIB_PER_H &&
    heapSlope < TARGET_SLOPE_MIB_PER_H &&
    warnings === 0;
  const every = Math.max(1, Math.round((5 * 60) / SAMPLE_S));
  const rows = samples
    .filter((_, i) => i % every === 0 || i === samples.length - 1)
    .map(
      (s) =>
        `| ${fmt(s.t / 60, 1)} | ${fmt(s.rssMiB, 1)} | ${fmt(s.heapUsedMiB, 1)} | ${fmt(s.heapAfterGcMiB, 1)} | ${fmt(s.heapTotalMiB, 1)} | ${fmt(s.externalMiB, 1)} | ${s.handles} | ${s.containers} | ${s.decisions} | ${s.claims} | ${s.warnings} |`,
    );
  const md = `# Worker soak: memory and handles over time${partial ? " (PARTIAL: the run is not finished)" : ""}

Command: \`npx ts-node bench/soak.ts --minutes ${MINUTES} --warmup-minutes ${WARMUP_MINUTES} --sample-s ${SAMPLE_S} --scale-s ${SCALE_S}${EXTRA_NODE_OPTIONS.length ? ` --node-options "${EXTRA_NODE_OPTIONS.join(" ")}"` : ""}\`
(see the header of bench/soak.ts for what it runs).

- Date: ${startedAt.toISOString()} (run ${RUN}); ${fmt(span, 1)} of ${MINUTES} min recorded${partial ? " so far" : ""}
- Machine: ${cpus.length} x ${cpus[0]?.model ?? "unknown CPU"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}; Node.js ${process.version}; shared with the other helpers' builds and tests
- Worker: commit ${meta.commit ?? "?"}${meta.dirty ?? ""}, \`${meta.worker ?? "?"}\`
- Settings: claim delay 100 ms (no jitter), reconcile every 500 ms, chain polling 200 ms, heartbeat every 5 s (TTL 15 s), resource manager 1 s / fast path 100 ms; log level warn
- Load: demo-loadgen x1 (steps profile, up to 800m CPU and 128 MiB) the whole time; every ${SCALE_S} s demo-loadgen's deployment scaled 1 <-> 2, and every other time a new demo-web deployment (1 replica) created and the previous one stopped: a container created and one removed (${meta.scales ?? "?"} rounds, ${meta.scaleErrors ?? "?"} failed)

## Result

| | slope after ${WARMUP_MINUTES} min warm-up (per hour) | first after warm-up | last |
|---|---|---|---|
| RSS (MiB) | **${fmt(rssSlope)}** | ${fmt(first?.rssMiB, 1)} | ${fmt(last?.rssMiB, 1)} |
| V8 heap used after a major collection (MiB) | ${Number.isFinite(afterGcSlope) ? `**${fmt(afterGcSlope)}**` : "-"} | ${fmt(afterGc[0]?.heapAfterGcMiB, 1)} | ${fmt(afterGc.at(-1)?.heapAfterGcMiB, 1)} |
| V8 heap used, floor of each 5-minute window (MiB) | ${Number.isFinite(afterGcSlope) ? fmt(floorSlope) : `**${fmt(floorSlope)}**`} (${floors.length} windows) | ${fmt(floors[0]?.[1], 1)} | ${fmt(floors.at(-1)?.[1], 1)} |
| V8 heap used at the sample (MiB) | ${fmt(heapUsedSlope)} | ${fmt(first?.heapUsedMiB, 1)} | ${fmt(last?.heapUsedMiB, 1)} |
| V8 heap total (MiB) | ${fmt(slope((s) => s.heapTotalMiB))} | ${fmt(first?.heapTotalMiB, 1)} | ${fmt(last?.heapTotalMiB, 1)} |
| external (MiB) | ${fmt(slope((s) => s.externalMiB))} | ${fmt(first?.externalMiB, 1)} | ${fmt(last?.externalMiB, 1)} |
| active handles | ${fmt(slope((s) => s.handles))} | ${first?.handles ?? "-"} | ${last?.handles ?? "-"} |

\`MaxListenersExceededWarning\` on the worker's stderr: **${warnings}**.
Target (slope under ${TARGET_SLOPE_MIB_PER_H} MiB/h for RSS and for the heap, ${heapMeasure}, after warm-up; no warning): **${partial ? "not decided yet" : met ? "met" : "not met"}**.
Heap used at a sample's time lands anywhere on the collector's sawtooth, so its slope is noise more than trend; the heap's verdict is taken on the live heap (bold).
Resource decisions: ${last?.decisions ?? "-"}; claims: ${last?.claims ?? "-"}.
${meta.warningText ? `\nFirst warning:\n\n\`\`\`\n${meta.warningText}\n\`\`\`\n` : ""}
## Samples (every 5 min; all ${samples.length} samples in soak.csv)

| min | RSS MiB | heap used MiB | heap after GC MiB | heap total MiB | external MiB | handles | containers | decisions | claims | warnings |
|---|---|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}
`;
  mkdirSync(OUT, { recursive: true });
  writeFileSync(path.join(OUT, "soak.md"), md);
  writeFileSync(
    path.join(OUT, "soak.csv"),
    "t_s,rss_mib,heap_used_mib,heap_after_gc_mib,heap_total_mib,external_mib,handles,containers,decisions,claims,warnings\n" +
      samples
        .map((s) =>
          [
            s.t,
            s.rssMiB,
            s.heapUsedMiB,
            s.heapAfterGcMiB,
            s.heapTotalMiB,
            s.externalMiB,
            s.handles,
            s.containers,
            s.decisions,
            s.claims,
            s.warnings,
          ]
            .map((v) => (typeof v === "number" ? +v.toFixed(3) : v))
            .join(","),
        )
        .join("\n") +
      "\n",
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
