/**
 * Device worker: placement latency (warm and cold) and footprint, against the real services.
 *
 *   npx hardhat run bench/worker.ts --network localhost
 *   npx ts-node bench/worker.ts [--runs N] [--warmup N] [--placements N] [--idle-s S]
 *                               [--no-sources] [--no-defaults]
 *   (env: SHOAL_BENCH_RUNS, SHOAL_BENCH_WARMUP, SHOAL_BENCH_PLACEMENTS, SHOAL_BENCH_IDLE_S,
 *    SHOAL_BENCH_SOURCES=0, SHOAL_BENCH_DEFAULTS=0; the flags win)
 *
 * Fresh contracts in a temporary deployments dir, a private Mosquitto, one shoal-worker child process
 * with a small claim delay and short intervals (WORKER_CONFIG below: they dominate the latency).
 *
 * 1. Image: a copy of shoal/demo-web:1.0.0 re-imported as one layer of its own (docker export |
 *    docker import, same config), saved to a tar and published from that tar. Its CID and layer are
 *    this run's alone, so removing the image makes the next fetch really cold and never touches an
 *    image that tests running at the same time use.
 * 2. Latency, `--runs` iterations (after `--warmup` unrecorded ones), interleaved so that every kind
 *    sees the same chain history:
 *      worker cold  image removed; createDeployment(1 replica) from an ethers wallet
 *      worker warm  image cached (`shoal-cid:<cid>` present)
 *      docker CLI   `docker run` (warm) and `docker load -i <tar>` + `docker run` (cold) of the same
 *                   tar with the same hardening flags (derived from the worker's own create options)
 *      Engine API   the same through dockerode: loadImage + createContainer + start
 *    Reference time: the deploy receipt's arrival at the bench (wall clock, this machine); for the
 *    baselines the moment the first command is issued. "Running" = the container's State.StartedAt;
 *    "on chain" = arrival of the PlacementConfirmed log on a WebSocket subscription. After each
 *    worker run the deployment is stopped and the bench waits until the worker removed the container.
 * 3. Footprint: `--placements` deployments of 1 replica on the device; worker VmRSS and its CPU time
 *    over `--idle-s` idle seconds (/proc/<pid>/stat), and the V8 heap from its /metrics; then the
 *    same after restarts: the bin running the sources through ts-node (SHOAL_WORKER_FROM_SOURCES=1,
 *    for comparison), and the bin with the default intervals. Baselines: bare node; node with the
 *    compiled worker's modules loaded but not started. The bench compiles the worker first
 *    (`npm run build:worker`), so the bin runs what the sources say.
 *
 * Moved here from the tests (issue 13): test/workers/integration/delivery.test.ts used to hold
 * delivering a 50 MiB image to under 30 MiB of RSS growth; it now asserts only that delivery does
 * not buffer the tar whole (growth below the image's size) and prints the growth. The footprint
 * above is where the worker's memory is measured; a delivery-only RSS figure is not recorded yet.
 *
 * Writes bench/results/worker.md. Cleans up every container and image it made (by label and id),
 * unpins its CIDs, and stops only the processes it started.
 */
import Docker from "dockerode";
import { JsonRpcProvider, WebSocketProvider, Wallet, type Log } from "ethers";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import {
  AppRegistry__factory,
  DeviceRegistry__factory,
  PlacementRegistry__factory,
  ShoalToken__factory,
} from "../typechain-types";
import { toCreateOptions } from "../workers/src";
import { containerSpec, effectiveUser, imageRefForCid, specHash } from "../workers/src";
import { validateCanonicalManifest } from "../workers/src";
import { runHardhat, devWallet } from "../scripts/lib/local-chain";
import { freePort, PrivateBroker, waitFor } from "../test/shared/processes";
import { requireChain, requireDocker, requireKubo, serviceUrls } from "../test/shared/services";

const ROOT = path.resolve(__dirname, "..");
const WORKER_BIN = path.join(ROOT, "workers/bin/shoal-worker.js");
const SOURCE_IMAGE = "shoal/demo-web:1.0.0";
// Hardhat accounts of this bench (tests use 0, 4, 6, 7): app owner, and device owner + operator.
const OWNER = 8;
const OPERATOR = 9;
// Devices enrolled before ours: containers are owned by the `io.shoal.device` label alone, so a
// worker of another deployment with the same device id on this Docker host would take ours as its own.
const DEVICE_ID_OFFSET = 40;
const BENCH_LABEL = "io.shoal.bench";
const TARGET_WARM_MEDIAN_MS = 1500;
const TARGET_RATIO = 2;
const TARGET_RSS_MIB = 150;
/** How long the worker gets to remove a stopped deployment's container before the bench helps. */
const TEARDOWN_GRACE_MS = 5000;

/** The settings the latency depends on; docs/worker.md has the defaults. */
const WORKER_CONFIG = { claim: { maxDelayMs: 100, jitterMs: 0 }, reconcileIntervalMs: 500 };
const POLL_INTERVAL_MS = 100;

function setting(flag: string, env: string, fallback: number): number {
  const i = process.argv.indexOf(`--${flag}`);
  const raw = i >= 0 ? process.argv[i + 1] : process.env[env];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`--${flag} (${env}): "${raw}" is not allowed; use a whole number of at least 0`);
  }
  return value;
}
const RUNS = setting("runs", "SHOAL_BENCH_RUNS", 20);
const WARMUP = setting("warmup", "SHOAL_BENCH_WARMUP", 1);
const PLACEMENTS = setting("placements", "SHOAL_BENCH_PLACEMENTS", 10);
const IDLE_S = setting("idle-s", "SHOAL_BENCH_IDLE_S", 60);
const DEFAULTS_PHASE = !process.argv.includes("--no-defaults") && process.env.SHOAL_BENCH_DEFAULTS !== "0";
const SOURCES_PHASE = !process.argv.includes("--no-sources") && process.env.SHOAL_BENCH_SOURCES !== "0";

const urls = serviceUrls();
const RUN = `${Date.now().toString(36)}${process.pid.toString(36)}`;
const docker = new Docker({ socketPath: urls.dockerSocket });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const run = promisify(execFile);

async function sh(cmd: string, args: string[]): Promise<string> {
  return (await run(cmd, args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
}

/** Docker's RFC 3339 time with nanoseconds, as epoch milliseconds (sub-millisecond kept). */
function dockerTimeMs(value: string): number {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(value);
  if (!match) throw new Error(`not a Docker timestamp: ${value}`);
  return Date.parse(`${match[1]}${match[3]}`) + Number(`0.${match[2] ?? "0"}`) * 1000;
}

// ---------------------------------------------------------------- statistics

interface Stats {
  n: number;
  median: number;
  p95: number;
  min: number;
  max: number;
}

/** Median (mean of the middle two when even) and nearest-rank p95. */
function stats(values: number[]): Stats {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return { n: 0, median: NaN, p95: NaN, min: NaN, max: NaN };
  const mid = Math.floor(s.length / 2);
  return {
    n: s.length,
    median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2,
    p95: s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)],
    min: s[0],
    max: s[s.length - 1],
  };
}
const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v)}` : "-");
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? (a / b).toFixed(2) : "-");

// ---------------------------------------------------------------- things that happen elsewhere

interface Mark {
  at: number;
  data?: string;
}

/** First occurrence of named happenings (chain logs, Docker events), and waits for them. */
class Marks {
  private readonly seen = new Map<string, Mark>();
  private readonly waiters = new Map<string, Array<(mark: Mark) => void>>();

  set(key: string, mark: Mark): void {
    if (this.seen.has(key)) return;
    this.seen.set(key, mark);
    for (const waiter of this.waiters.get(key) ?? []) waiter(mark);
    this.waiters.delete(key);
  }

  get(key: string): Mark | undefined {
    return this.seen.get(key);
  }

  wait(key: string, timeoutMs: number): Promise<Mark> {
    const known = this.seen.get(key);
    if (known) return Promise.resolve(known);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${key}`)),
        timeoutMs,
      );
      // A wait nobody needs any more (a failure that did not happen) must not keep the process alive.
      timer.unref();
      const list = this.waiters.get(key) ?? [];
      list.push((mark) => (clearTimeout(timer), resolve(mark)));
      this.waiters.set(key, list);
    });
  }
}

/** A shoal-worker child process: its PID for /proc, its JSON log lines for timings. */
class BenchWorker {
  private child?: ChildProcess;
  readonly lines: Array<Record<string, unknown> & { time: number; msg: string }> = [];
  private text = "";
  private partial = "";

  /** `argv`: the executable (the bin, run for its V8 flags), then its arguments. */
  constructor(
    readonly env: NodeJS.ProcessEnv,
    private readonly argv: string[],
  ) {}

  start(): void {
    this.child = spawn(this.argv[0], this.argv.slice(1), {
      cwd: ROOT,
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout!.on("data", (chunk: Buffer) => {
      const lines = (this.partial + chunk.toString("utf8")).split("\n");
      this.partial = lines.pop() ?? "";
      for (const line of lines) {
        this.text = (this.text + line + "\n").slice(-20_000);
        try {
          this.lines.push(JSON.parse(line));
        } catch {
          // not a log line
        }
      }
    });
    this.child.stderr!.on("data", (chunk: Buffer) => (this.text = (this.text + chunk).slice(-20_000)));
  }

  get pid(): number {
    if (this.child?.pid === undefined) throw new Error("the worker is not running");
    return this.child.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM to this child only; SIGKILL after 30 s. Resolves with the exit code. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child || !this.running) return child?.exitCode ?? null;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    if ((await Promise.race([exited.then(() => true), sleep(30_000).then(() => false)])) === false) {
      child.kill("SIGKILL");
      await exited;
    }
    return child.exitCode;
  }

  tail(lines = 30): string {
    return this.text.trim().split("\n").slice(-lines).join("\n");
  }
}

// ---------------------------------------------------------------- /proc

function procStatus(pid: number): { rssKiB: number; hwmKiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssKiB: kib("VmRSS"), hwmKiB: kib("VmHWM") };
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** RSS of a helper node process after it settled: what the runtime alone costs. */
async function baselineRss(code: string, env: NodeJS.ProcessEnv = {}): Promise<number> {
  const child = spawn(process.execPath, ["-e", code], {
    cwd: ROOT,
    stdio: "ignore",
    env: { ...process.env, ...env },
  });
  try {
    await sleep(3000);
    return procStatus(child.pid!).rssKiB;
  } finally {
    child.kill("SIGTERM");
  }
}

// ---------------------------------------------------------------- main

interface WorkerSample {
  kind: "warm" | "cold";
  deploymentId: number;
  sendMs: number;
  running: number;
  confirmed: number;
  receiptToClaimMined: number;
  claimDelayMs: number;
  claimMinedToStarted: number;
  deliveryMs: number;
  startedToConfirmed: number;
  teardownMs: number;
  releasedByBench: boolean;
  /** Who sent the release: "worker" (the operator key), "bench", or an address. */
  releasedBy: string;
  /** What the worker logged between stopDeployment and the container's removal. */
  teardownLog: string;
}

interface BaselineSample {
  running: number;
  loadMs: number;
}

async function main(): Promise<void> {
  await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls)]);
  const startedAt = new Date();
  const tmp = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-worker-"));
  const cleanups: Array<[string, () => Promise<unknown>]> = [];
  const provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
  const othersAtStart = await otherBenchmarks();
  let current: BenchWorker | undefined;
  console.log(`run ${RUN}; temp dir ${tmp}`);
  console.log("compiling the worker (npm run build:worker)...");
  await sh("npm", ["run", "-s", "build:worker"]);
  if (othersAtStart.length) console.log(`machine shared with:\n  ${othersAtStart.join("\n  ")}`);

  try {
    // ---- contracts
    const cli = (...args: string[]) =>
      runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: tmp, SHOAL_KUBO_URL: urls.kuboUrl });
    const deployed = await runHardhat(["run", "scripts/deploy.ts"], { SHOAL_DEPLOYMENTS_DIR: tmp });
    if (deployed.status !== 0) throw new Error(`deploy failed: ${deployed.stderr}`);
    const deploymentsFile = path.join(tmp, "localhost.json");
    const record = JSON.parse(await readFile(deploymentsFile, "utf8")) as {
      chainId: number;
      contracts: Record<string, { address: string; blockNumber: number }>;
    };
    const address = (name: string) => record.contracts[name].address;
    const key = (index: number) => devWallet(index).privateKey;
    const owner = new Wallet(key(OWNER), provider);
    const operator = new Wallet(key(OPERATOR), provider);
    const apps = AppRegistry__factory.connect(address("AppRegistry"), owner);
    const placements = PlacementRegistry__factory.connect(address("PlacementRegistry"), owner);

    // ---- this run's own image: one layer nobody else has
    console.log(`building this run's copy of ${SOURCE_IMAGE}...`);
    const source = await docker.getImage(SOURCE_IMAGE).inspect();
    const probe = await docker.createContainer({ Image: SOURCE_IMAGE, Labels: { [BENCH_LABEL]: RUN } });
    const rootfs = path.join(tmp, "rootfs.tar");
    try {
      await sh("docker", ["export", "-o", rootfs, probe.id]);
    } finally {
      await probe.remove({ force: true });
    }
    const tag = `shoal-bench/worker-web:${RUN}`;
    const c = source.Config;
    const changes = [
      `USER ${c.User}`,
      `WORKDIR ${c.WorkingDir}`,
      ...(c.Entrypoint ? [`ENTRYPOINT ${JSON.stringify(c.Entrypoint)}`] : []),
      ...(c.Cmd ? [`CMD ${JSON.stringify(c.Cmd)}`] : []),
      ...Object.keys(c.ExposedPorts ?? {}).map((port) => `EXPOSE ${port}`),
      ...(c.Env ?? []).map(
        (e) => `ENV ${e.slice(0, e.indexOf("="))}=${JSON.stringify(e.slice(e.indexOf("=") + 1))}`,
      ),
      `LABEL ${BENCH_LABEL}="${RUN}"`,
    ];
    const imageId = (
      await sh("docker", ["import", ...changes.flatMap((x) => ["--change", x]), rootfs, tag])
    ).trim();
    cleanups.push([
      "image",
      () =>
        docker
          .getImage(imageId)
          .remove({ force: true })
          .catch(() => undefined),
    ]);
    const imageTar = path.join(tmp, "image.tar");
    await sh("docker", ["save", "-o", imageTar, tag]);
    const manifestFile = path.join(tmp, "shoal.yaml");
    const manifestText = readFileSync(path.join(ROOT, "apps/demo-web/shoal.yaml"), "utf8")
      .replace(/^name: demo-web$/m, "name: bench-web")
      .replace(/ref: shoal\/demo-web:1\.0\.0.*$/m, "tar: image.tar");
    await writeFile(manifestFile, manifestText);
    const published = await cli("app:publish", "--manifest", manifestFile, "--account", String(OWNER));
    if (published.status !== 0)
      throw new Error(`app:publish failed: ${published.stdout}\n${published.stderr}`);
    const appId = Number(await apps.appIdOf("bench-web"));
    const version = await apps.version(appId, 1);
    const imageCid = version.imageCids[version.platforms.indexOf("linux/amd64")];
    const manifestCid = version.manifestCid;
    cleanups.push(["pins", () => unpin([imageCid, manifestCid])]);
    const imageBytes = readFileSync(imageTar).byteLength;
    console.log(`published bench-web: image ${imageCid} (${imageBytes} bytes), manifest ${manifestCid}`);

    // ---- devices: fillers first, then ours
    const token = ShoalToken__factory.connect(address("ShoalToken"), operator);
    const devices = DeviceRegistry__factory.connect(address("DeviceRegistry"), operator);
    // The minimum stake (100) plus collateral for the placements it claims (10 each, scripts/deploy.ts).
    const stake = 300n * 10n ** 18n;
    await (await token.approve(address("DeviceRegistry"), stake * BigInt(DEVICE_ID_OFFSET + 1))).wait();
    for (let i = 0; i < DEVICE_ID_OFFSET; i++) {
      const filler = Wallet.createRandom().address;
      await (await devices.enroll(filler, "linux/arm64", 10, 1, [], "/ip4/127.0.0.1/tcp/4001", stake)).wait();
    }
    const receipt = await (
      await devices.enroll(operator.address, "linux/amd64", 4000, 2048, [], "/ip4/127.0.0.1/tcp/4001", stake)
    ).wait();
    const enrolled = receipt!.logs
      .map((log) => devices.interface.parseLog(log))
      .find((parsed) => parsed?.name === "DeviceEnrolled");
    const deviceId = String(enrolled!.args.deviceId);
    console.log(`device ${deviceId} enrolled: 4 CPU, 2 GiB (after ${DEVICE_ID_OFFSET} filler devices)`);
    // The worker's name of the device in Docker (label and container names): chain, registry, id,
    // as workers/src/main.ts builds it; older workers used the bare id.
    const deviceKey = `${record.chainId}-${address("DeviceRegistry").slice(2, 10).toLowerCase()}-${deviceId}`;
    const ours = (device: string | undefined) => device === deviceKey || device === deviceId;

    // ---- observers: chain logs over WebSocket, Docker events of our device
    const marks = new Marks();
    const ws = new WebSocketProvider(urls.rpcUrl.replace(/^http/, "ws"), record.chainId);
    cleanups.push(["websocket", () => ws.destroy()]);
    const logs = PlacementRegistry__factory.createInterface();
    await ws.on({ address: address("PlacementRegistry") }, (log: Log) => {
      const at = Date.now();
      const parsed = logs.parseLog(log);
      if (!parsed || String(parsed.args.deviceId) !== deviceId) return;
      const deployment = String(parsed.args.deploymentId);
      const data = String(parsed.args.placementId);
      if (parsed.name === "PlacementClaimed") marks.set(`claimed:${deployment}`, { at, data });
      if (parsed.name === "PlacementConfirmed") marks.set(`confirmed:${deployment}`, { at, data });
      if (parsed.name === "PlacementReleased")
        marks.set(`released:${deployment}`, { at, data: `${data} by ${String(parsed.args.releasedBy)}` });
      if (parsed.name === "PlacementFailed") marks.set(`failed:${deployment}`, { at, data });
    });
    const workerContainers = new Set<string>();
    const events = (await docker.getEvents({
      filters: { type: ["container"], event: ["start", "destroy"], label: ["io.shoal.managed=true"] },
    })) as NodeJS.ReadableStream & { destroy(): void };
    cleanups.push(["docker events", async () => events.destroy()]);
    let pending = "";
    events.on("data", (chunk: Buffer) => {
      const lines = (pending + chunk.toString("utf8")).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines.filter(Boolean)) {
        const e = JSON.parse(line) as {
          status: string;
          id: string;
          Actor: { Attributes: Record<string, string> };
        };
        if (!ours(e.Actor.Attributes["io.shoal.device"])) continue;
        const deployment = e.Actor.Attributes["io.shoal.deployment"];
        if (e.status === "start") {
          workerContainers.add(e.id);
          marks.set(`start:${deployment}`, { at: Date.now(), data: e.id });
        }
        if (e.status === "destroy") marks.set(`destroy:${e.id}`, { at: Date.now() });
      }
    });
    events.on("error", () => undefined);
    // The worker leaves its device cgroup behind (its containers outlive it); run after the
    // containers are gone (cleanups run last-in first-out), and only empty ones go (rmdir).
    cleanups.push([
      "device cgroup",
      async () => {
        for (const controller of await readdir("/sys/fs/cgroup").catch(() => [] as string[]))
          await rmdir(`/sys/fs/cgroup/${controller}/shoal/device-${deviceKey}`).catch(() => undefined);
      },
    ]);
    cleanups.push([
      "worker containers",
      () =>
        Promise.all(
          [...workerContainers].map((id) =>
            docker
              .getContainer(id)
              .remove({ force: true })
              .catch(() => undefined),
          ),
        ),
    ]);

    // ---- the worker
    const broker = new PrivateBroker(await freePort(), tmp);
    await broker.start();
    cleanups.push(["broker", () => broker.stop()]);
    const metricsPort = await freePort();
    const workerEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
      SHOAL_RPC_URL: urls.rpcUrl,
      SHOAL_OPERATOR_KEY: operator.privateKey,
      SHOAL_DEVICE_ID: deviceId,
      SHOAL_DEPLOYMENTS_FILE: deploymentsFile,
      SHOAL_MQTT_URL: broker.url,
      SHOAL_KUBO_URL: urls.kuboUrl,
      SHOAL_DOCKER_SOCKET: urls.dockerSocket,
      SHOAL_DATA_DIR: path.join(tmp, "worker"),
      SHOAL_LOG_LEVEL: "info",
      SHOAL_METRICS_PORT: String(metricsPort),
      // The build made at the start of this run, even if a source changes meanwhile.
      SHOAL_WORKER_FROM_SOURCES: "0",
      ...extra,
    });
    const config = path.join(tmp, "worker.json");
    await writeFile(config, JSON.stringify(WORKER_CONFIG));
    const benchSettings = { SHOAL_POLL_INTERVAL_MS: String(POLL_INTERVAL_MS) };
    let worker = new BenchWorker(workerEnv(benchSettings), [WORKER_BIN, "--config", config]);
    cleanups.push(["worker", () => worker.stop()]);
    const startWorker = async () => {
      current = worker;
      worker.start();
      await waitFor(
        "the worker to start",
        async () => {
          if (!worker.running) throw new Error(`the worker exited:\n${worker.tail()}`);
          return worker.lines.some((l) => l.msg === "worker started");
        },
        60_000,
        100,
      );
      const fromSources = worker.tail(100).includes("running the sources through ts-node");
      if (fromSources !== (worker.env.SHOAL_WORKER_FROM_SOURCES === "1"))
        throw new Error(`the worker ran ${fromSources ? "from sources" : "compiled"}, not as asked`);
    };
    await startWorker();
    await sleep(3000);
    const rssFresh = procStatus(worker.pid);
    console.log(
      `worker ${worker.pid} started; VmRSS ${Math.round(rssFresh.rssKiB / 1024)} MiB with no placements`,
    );

    // ---- what the baselines run: the worker's own create options for this manifest
    const manifestBytes = await catAll(manifestCid);
    const manifest = validateCanonicalManifest(manifestBytes, { source: manifestCid });
    const spec = containerSpec(
      { deviceId, placementId: "0", deploymentId: "0", appId: String(appId), version: "1" },
      manifest,
      tag,
    );
    const user = effectiveUser(spec, c.User);
    if (!user.ok) throw new Error(user.problem);
    const createOptions = toCreateOptions(spec, specHash(spec), user.user);
    createOptions.Labels = { [BENCH_LABEL]: RUN };
    let cliFlags = dockerRunFlags(createOptions);
    /** The worker runs its containers under its device cgroup (resource manager): so do the baselines. */
    const alignCgroupParent = (parent: string | undefined) => {
      if (!parent || createOptions.HostConfig!.CgroupParent === parent) return;
      createOptions.HostConfig!.CgroupParent = parent;
      cliFlags = dockerRunFlags(createOptions);
    };
    cleanups.push(["baseline containers", () => removeByLabel(`${BENCH_LABEL}=${RUN}`)]);

    const removeImage = async () => {
      await docker
        .getImage(imageId)
        .remove({ force: true })
        .catch((error: { statusCode?: number }) => {
          if (error.statusCode !== 404) throw error;
        });
    };

    /** Releases a placement the worker left live; false when it was no longer live (the worker won). */
    const releaseIfLive = async (placementId: string): Promise<boolean> => {
      try {
        await (await placements.release(BigInt(placementId))).wait();
        return true;
      } catch (error) {
        const data = (error as { data?: string }).data;
        if (data && placements.interface.parseError(data)?.name === "PlacementRegistryInvalidTransition")
          return false;
        throw error;
      }
    };

    let fallbacks = 0;
    /** The first worker log line from `from` on that matches, or undefined after 60 s. */
    const workerLine = async (from: number, match: (line: BenchWorker["lines"][number]) => boolean) => {
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(50)) {
        const line = worker.lines.slice(from).find(match);
        if (line) return line;
      }
      return undefined;
    };

    // ---- one worker placement, deploy receipt -> Running on chain, then stop and wait for removal
    let releasedByBench = 0;
    const workerRun = async (kind: "warm" | "cold"): Promise<WorkerSample> => {
      if (kind === "cold") await removeImage();
      else if (
        !(await docker
          .getImage(imageRefForCid(imageCid))
          .inspect()
          .catch(() => undefined))
      )
        throw new Error("warm run without the cached image");
      const logFrom = worker.lines.length;
      const sent = Date.now();
      const tx = await apps.createDeployment(appId, 1, 1, []);
      let rcpt = await provider.getTransactionReceipt(tx.hash);
      while (rcpt === null) {
        await sleep(5);
        rcpt = await provider.getTransactionReceipt(tx.hash);
      }
      const t0 = Date.now();
      const created = rcpt.logs
        .map((l) => apps.interface.parseLog(l))
        .find((p) => p?.name === "DeploymentCreated");
      const deploymentId = Number(created!.args.deploymentId);
      const failed = marks.wait(`failed:${deploymentId}`, 120_000).then((m) => {
        throw new Error(`placement ${m.data} failed on chain:\n${worker.tail()}`);
      });
      failed.catch(() => undefined);
      const start = await Promise.race([marks.wait(`start:${deploymentId}`, 60_000), failed]);
      const info = await docker.getContainer(start.data!).inspect();
      const started = dockerTimeMs(info.State.StartedAt);
      alignCgroupParent(info.HostConfig.CgroupParent);
      // The WebSocket subscription rarely misses a log (seen once in ~40 runs): then the worker's own
      // log line (written right after the confirm receipt, same clock) stands in, and is counted.
      const claimLog = marks.get(`claimed:${deploymentId}`)
        ? undefined
        : await workerLine(
            logFrom,
            (l) => l.msg === "claimed a replica" && Number(l.deploymentId) === deploymentId,
          );
      if (claimLog) fallbacks++;
      const claimed: Mark = marks.get(`claimed:${deploymentId}`) ?? {
        at: claimLog?.time ?? NaN,
        data: String(info.Config.Labels?.["io.shoal.placement"]),
      };
      const confirmed = await Promise.race([
        marks.wait(`confirmed:${deploymentId}`, 60_000),
        failed,
        workerLine(
          logFrom,
          (l) => l.msg === "placement running, confirmed on chain" && l.placementId === claimed.data,
        ).then(async (line): Promise<Mark> => {
          await sleep(3000);
          if (!line || marks.get(`confirmed:${deploymentId}`)) return new Promise<Mark>(() => undefined);
          fallbacks++;
          return { at: line.time, data: "worker log" };
        }),
      ]);
      const newLines = worker.lines.slice(logFrom);
      const claimLine = newLines.find(
        (l) => l.msg === "claimed a replica" && Number(l.deploymentId) === deploymentId,
      );
      const delivered = newLines.find((l) => l.msg === "image delivered");

      // Teardown: the worker should remove the container of a stopped deployment on its own.
      const t1 = Date.now();
      const stopLogFrom = worker.lines.length;
      await (await apps.stopDeployment(deploymentId)).wait();
      let byBench = false;
      try {
        await marks.wait(`destroy:${start.data}`, TEARDOWN_GRACE_MS);
      } catch {
        // The placement is Superseded (stopping bumps the generation) and nobody releases it: do
        // it here (anyone may release a superseded placement), which the worker does act on.
        byBench = await releaseIfLive(claimed.data!);
        if (byBench) releasedByBench++;
        await marks.wait(`destroy:${start.data}`, 60_000);
      }
      const released = await marks.wait(`released:${deploymentId}`, 30_000).catch(() => undefined);
      const releasedBy = released?.data?.split(" by ")[1] ?? "";
      const teardownLog = [...new Set(worker.lines.slice(stopLogFrom).map((l) => l.msg))].join("; ");
      return {
        kind,
        deploymentId,
        sendMs: t0 - sent,
        running: started - t0,
        confirmed: confirmed.at - t0,
        receiptToClaimMined: claimed.at - t0,
        claimDelayMs: Number(claimLine?.delayMs ?? NaN),
        claimMinedToStarted: started - claimed.at,
        deliveryMs: Number(delivered?.ms ?? NaN),
        startedToConfirmed: confirmed.at - started,
        teardownMs: Date.now() - t1,
        releasedByBench: byBench,
        teardownLog,
        releasedBy:
          releasedBy === operator.address
            ? "worker"
            : releasedBy === owner.address
              ? "bench"
              : releasedBy || "nobody",
      };
    };

    let baselineIndex = 0;
    const cliRun = async (kind: "warm" | "cold"): Promise<BaselineSample> => {
      if (kind === "cold") await removeImage();
      const name = `shoal-bench-${RUN}-cli-${baselineIndex++}`;
      const t0 = Date.now();
      if (kind === "cold") await sh("docker", ["load", "-q", "-i", imageTar]);
      const loaded = Date.now();
      const id = (
        await sh("docker", ["run", "-d", "--name", name, ...cliFlags, tag, ...(createOptions.Cmd ?? [])])
      ).trim();
      const info = await docker.getContainer(id).inspect();
      await docker.getContainer(id).remove({ force: true });
      if (!info.State.Running) throw new Error(`baseline container ${name} is ${info.State.Status}`);
      return { running: dockerTimeMs(info.State.StartedAt) - t0, loadMs: loaded - t0 };
    };
    const apiRun = async (kind: "warm" | "cold"): Promise<BaselineSample> => {
      if (kind === "cold") await removeImage();
      const name = `shoal-bench-${RUN}-api-${baselineIndex++}`;
      const t0 = Date.now();
      if (kind === "cold") {
        const response = await docker.loadImage(createReadStream(imageTar), { quiet: true });
        for await (const chunk of response) void chunk;
      }
      const loaded = Date.now();
      const container = await docker.createContainer({ ...createOptions, name });
      await container.start();
      const info = await container.inspect();
      await container.remove({ force: true });
      if (!info.State.Running) throw new Error(`baseline container ${name} is ${info.State.Status}`);
      return { running: dockerTimeMs(info.State.StartedAt) - t0, loadMs: loaded - t0 };
    };

    // ---- latency: interleaved so every kind sees the same chain history and machine load
    const samples: WorkerSample[] = [];
    const base = {
      cliWarm: [] as BaselineSample[],
      cliCold: [] as BaselineSample[],
      apiWarm: [] as BaselineSample[],
      apiCold: [] as BaselineSample[],
    };
    const loadsBefore = os.loadavg();
    for (let i = -WARMUP; i < RUNS; i++) {
      const cold = await workerRun("cold");
      const warm = await workerRun("warm");
      const cw = await cliRun("warm");
      const aw = await apiRun("warm");
      const cc = await cliRun("cold");
      const ac = await apiRun("cold");
      const label = i < 0 ? "warm-up" : `run ${i + 1}/${RUNS}`;
      console.log(
        `${label}: worker cold ${ms(cold.running)}/${ms(cold.confirmed)} ms, warm ${ms(warm.running)}/${ms(warm.confirmed)} ms ` +
          `(running/on chain); docker CLI cold ${ms(cc.running)} warm ${ms(cw.running)}; API cold ${ms(ac.running)} warm ${ms(aw.running)}`,
      );
      for (const s of [cold, warm])
        console.log(
          `  ${s.kind} teardown ${ms(s.teardownMs)} ms, released by ${s.releasedBy}; worker logged: ${s.teardownLog || "nothing"}`,
        );
      if (i < 0) continue;
      samples.push(cold, warm);
      base.cliWarm.push(cw);
      base.cliCold.push(cc);
      base.apiWarm.push(aw);
      base.apiCold.push(ac);
    }
    const loadsAfter = os.loadavg();

    // ---- footprint with PLACEMENTS placements
    console.log(`deploying ${PLACEMENTS} placements for the footprint...`);
    const footprintDeployments: number[] = [];
    for (let i = 0; i < PLACEMENTS; i++) {
      const r = await (await apps.createDeployment(appId, 1, 1, [])).wait();
      const created = r!.logs
        .map((l) => apps.interface.parseLog(l))
        .find((p) => p?.name === "DeploymentCreated");
      footprintDeployments.push(Number(created!.args.deploymentId));
    }
    const footprintPlacements = await waitFor(
      `${PLACEMENTS} placements Running on chain`,
      async () => {
        const ids = await Promise.all(
          footprintDeployments.map((d) => placements.activePlacementOf(d, BigInt(deviceId))),
        );
        const states = await Promise.all(ids.map((id) => (id === 0n ? 0n : placements.placementState(id))));
        return states.every((state) => state === 2n) && ids; // 2 = Running
      },
      180_000,
      250,
    );
    const runningContainers = async () =>
      (
        await docker.listContainers({
          filters: { label: ["io.shoal.managed=true"], status: ["running"] },
        })
      ).filter((x) => ours(x.Labels["io.shoal.device"])).length;
    console.log(`${await runningContainers()} containers running; idle ${IDLE_S} s...`);
    const footprint = async (what: string) => {
      await sleep(5000);
      const rss: number[] = [procStatus(worker.pid).rssKiB];
      const ticks0 = cpuTicks(worker.pid);
      const heartbeats0 = worker.lines.filter((l) => l.msg === "heartbeat").length;
      const t0 = Date.now();
      while (Date.now() - t0 < IDLE_S * 1000) {
        await sleep(Math.min(5000, IDLE_S * 1000 - (Date.now() - t0)));
        rss.push(procStatus(worker.pid).rssKiB);
      }
      const seconds = (Date.now() - t0) / 1000;
      const cpuS = (cpuTicks(worker.pid) - ticks0) / clockTicks;
      const heap = await workerHeap();
      const result = {
        what,
        heap,
        containers: await runningContainers(),
        rssMiB: stats(rss.map((k) => k / 1024)),
        hwmMiB: procStatus(worker.pid).hwmKiB / 1024,
        cpuS,
        seconds,
        cpuPercent: (cpuS / seconds) * 100,
        heartbeatTxs: worker.lines.filter((l) => l.msg === "heartbeat").length - heartbeats0,
      };
      console.log(
        `${what}: VmRSS median ${result.rssMiB.median.toFixed(1)} MiB (max ${result.rssMiB.max.toFixed(1)}, peak HWM ${result.hwmMiB.toFixed(1)}), ` +
          `CPU ${cpuS.toFixed(2)} s over ${seconds.toFixed(0)} s = ${result.cpuPercent.toFixed(2)} % of one core`,
      );
      return result;
    };
    /** The worker's V8 heap (MiB) from its own /metrics: where the resident memory goes. */
    const workerHeap = async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      // Lines look like `shoal_worker_<name>{device="41",space="new"} 123`.
      const value = (name: string, label = "") =>
        Number(
          text
            .split("\n")
            .find((line) => line.startsWith(`shoal_worker_${name}{`) && line.includes(label))
            ?.split(" ")[1],
        ) /
        2 ** 20;
      return {
        heapTotal: value("nodejs_heap_size_total_bytes"),
        heapUsed: value("nodejs_heap_size_used_bytes"),
        newSpace: value("nodejs_heap_space_size_total_bytes", 'space="new"'),
        external: value("nodejs_external_memory_bytes"),
      };
    };
    const clockTicks = Number((await sh("getconf", ["CLK_TCK"])).trim());
    const footprints = [await footprint("`shoal-worker` bin (compiled), bench settings")];
    if (SOURCES_PHASE) {
      await worker.stop();
      worker = new BenchWorker(workerEnv({ ...benchSettings, SHOAL_WORKER_FROM_SOURCES: "1" }), [
        WORKER_BIN,
        "--config",
        config,
      ]);
      await startWorker();
      footprints.push(
        await footprint("`shoal-worker` bin from the sources (ts-node), bench settings, after a restart"),
      );
    }
    if (DEFAULTS_PHASE) {
      await worker.stop();
      worker = new BenchWorker(workerEnv(), [WORKER_BIN]);
      await startWorker();
      footprints.push(await footprint("`shoal-worker` bin (compiled), default settings, after a restart"));
    }
    const rssBaselines: Array<[string, number]> = [
      ["bare `node -e`", await baselineRss("setInterval(() => {}, 1000)")],
      [
        "node + the compiled worker's modules required, not started",
        await baselineRss(
          `require(${JSON.stringify(path.join(ROOT, "dist/worker/workers/src/main.js"))}); setInterval(() => {}, 1000)`,
        ),
      ],
    ];

    // ---- teardown of the footprint placements, through the worker
    for (const d of footprintDeployments) await (await apps.stopDeployment(d)).wait();
    await sleep(TEARDOWN_GRACE_MS);
    for (const d of footprintDeployments) {
      const placementId = footprintPlacements[footprintDeployments.indexOf(d)].toString();
      if (marks.get(`released:${d}`) === undefined && (await releaseIfLive(placementId))) releasedByBench++;
    }
    await waitFor(
      "the worker to remove its containers",
      async () => (await runningContainers()) === 0,
      60_000,
      250,
    ).catch((error: unknown) => console.log(String(error)));
    const othersAtEnd = await otherBenchmarks([worker.pid]);

    // ---- results
    const pick = (kind: "warm" | "cold", f: (s: WorkerSample) => number) =>
      stats(samples.filter((s) => s.kind === kind).map(f));
    const running = { warm: pick("warm", (s) => s.running), cold: pick("cold", (s) => s.running) };
    const confirmed = { warm: pick("warm", (s) => s.confirmed), cold: pick("cold", (s) => s.confirmed) };
    const b = {
      cliWarm: stats(base.cliWarm.map((s) => s.running)),
      cliCold: stats(base.cliCold.map((s) => s.running)),
      apiWarm: stats(base.apiWarm.map((s) => s.running)),
      apiCold: stats(base.apiCold.map((s) => s.running)),
      cliLoad: stats(base.cliCold.map((s) => s.loadMs)),
      apiLoad: stats(base.apiCold.map((s) => s.loadMs)),
    };
    const dockerVersion = await docker.version();
    const cpus = os.cpus();
    const row = (name: string, s: Stats, note = "") =>
      `| ${name} | ${s.n} | ${ms(s.median)} | ${ms(s.p95)} | ${ms(s.min)} | ${ms(s.max)} | ${note} |`;
    const part = (kind: "warm" | "cold", f: (s: WorkerSample) => number) => {
      const s = pick(kind, f);
      return `${ms(s.median)} / ${ms(s.p95)}`;
    };
    const warmOk = running.warm.median <= TARGET_WARM_MEDIAN_MS;
    const ratioWarm = running.warm.median / b.cliWarm.median;
    const ratioCold = running.cold.median / b.cliCold.median;
    const shared = [...new Set([...othersAtStart, ...othersAtEnd])];
    const byRun = (kind: "warm" | "cold") =>
      samples
        .filter((s) => s.kind === kind)
        .map((s) => ms(s.running))
        .join(", ");
    const md = `# Device worker: placement latency and footprint

Command: \`${commandLine()}\` (${RUNS} recorded iterations after ${WARMUP}
warm-up; ${PLACEMENTS} placements for the footprint, ${IDLE_S} s idle windows). Services: Hardhat node
${urls.rpcUrl}, Kubo ${urls.kuboUrl}, Docker ${urls.dockerSocket}, a private Mosquitto (own port).

- Date: ${startedAt.toISOString()} (run ${RUN}, ${((Date.now() - startedAt.getTime()) / 60_000).toFixed(1)} min)
- Machine: ${cpus.length} x ${cpus[0]?.model ?? "unknown CPU"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, cgroup ${existsCgroup2() ? "v2" : "v1"}
- Node.js ${process.version}; Docker Engine ${dockerVersion.Version} (API ${dockerVersion.ApiVersion}); Hardhat node, chain ${record.chainId}
- Load average (1 min) ${loadsBefore[0].toFixed(2)} before and ${loadsAfter[0].toFixed(2)} after the latency runs.
- Machine shared: ${shared.length ? `**yes**: \`${shared.join("`, `")}\` were running at the start or the end of this benchmark; their CPU use is in these numbers` : "no other benchmark, hardhat test or shoal-worker was running at the start or the end"}

## Settings (they dominate the latency)

| setting | value | default |
|---|---|---|
| \`claim.maxDelayMs\` / \`claim.jitterMs\` | ${WORKER_CONFIG.claim.maxDelayMs} / ${WORKER_CONFIG.claim.jitterMs} | 2000 / 250 |
| \`SHOAL_POLL_INTERVAL_MS\` (chain polling) | ${POLL_INTERVAL_MS} | 1000 |
| \`reconcileIntervalMs\` | ${WORKER_CONFIG.reconcileIntervalMs} | 5000 |
| confirmations | 0 | 0 |
| log level | info | info |
| \`resources.enabled\` / \`resources.periodMs\` / \`resources.fastPeriodMs\` (resource manager) | true / 1000 / 100 (defaults) | true / 1000 / 100 |
| node flags (the bin's first line) | \`${readFileSync(WORKER_BIN, "utf8")
      .split("\n")[0]
      .replace(/^#!.*? node ?/, "")}\` | |
| device | 4 CPU, 2 GiB, linux/amd64, enrolled after ${DEVICE_ID_OFFSET} filler devices (id ${deviceId}) | |

Image: \`${SOURCE_IMAGE}\` re-imported as one layer of this run's own (${(imageBytes / 1024 / 1024).toFixed(1)} MiB tar,
CID \`${imageCid}\`). Cold = the image (and its only layer) removed from Docker before the run, so
the worker fetches it from Kubo, streams it into \`docker load\`, checks, pins and tags it.

## Placement latency

Worker: from the deploy receipt's arrival at the bench (wall clock of this machine; the block
timestamp has 1 s resolution) to the container's \`State.StartedAt\` ("running") and to the arrival of
\`PlacementConfirmed\` on a WebSocket log subscription ("on chain"). Baselines: from the first command
to \`State.StartedAt\`, same tar and same create options as the worker's (\`toCreateOptions\` of the
manifest's spec: read-only root, cap-drop ALL, no-new-privileges, ipc none, private cgroupns, tmpfs
/tmp, CPU quota 50m, memory 64 MiB / 16 MiB reservation, pids 128, port on 127.0.0.1, uid 10001${createOptions.HostConfig!.CgroupParent ? `, cgroup parent \`${createOptions.HostConfig!.CgroupParent}\` (the worker's device cgroup)` : ""}).

| path | n | median ms | p95 ms | min ms | max ms | note |
|---|---|---|---|---|---|---|
${row("**worker warm -> container running**", running.warm, `target median <= ${TARGET_WARM_MEDIAN_MS}: ${warmOk ? "met" : "NOT met"}`)}
${row("worker warm -> Running on chain", confirmed.warm)}
${row("worker cold -> container running", running.cold)}
${row("worker cold -> Running on chain", confirmed.cold)}
${row("baseline: `docker run` (warm)", b.cliWarm, "docker CLI, image present")}
${row("baseline: `docker load -i` + `docker run` (cold)", b.cliCold, `load alone: median ${ms(b.cliLoad.median)} ms`)}
${row("baseline: Engine API create + start (warm)", b.apiWarm, "dockerode, what the worker calls")}
${row("baseline: Engine API load + create + start (cold)", b.apiCold, `load alone: median ${ms(b.apiLoad.median)} ms`)}

Ratios (worker -> container running / bare \`docker\` CLI, same run; target <= ${TARGET_RATIO}):

| | median | p95 | vs Engine API (median) |
|---|---|---|---|
| warm | **${ratio(running.warm.median, b.cliWarm.median)}** (${ratioWarm <= TARGET_RATIO ? "met" : "NOT met"}) | ${ratio(running.warm.p95, b.cliWarm.p95)} | ${ratio(running.warm.median, b.apiWarm.median)} |
| cold | **${ratio(running.cold.median, b.cliCold.median)}** (${ratioCold <= TARGET_RATIO ? "met" : "NOT met"}) | ${ratio(running.cold.p95, b.cliCold.p95)} | ${ratio(running.cold.median, b.apiCold.median)} |

### Where the time goes (median / p95, ms)

| stage | warm | cold | what it is |
|---|---|---|---|
| deploy tx sent -> receipt at the bench | ${part("warm", (s) => s.sendMs)} | ${part("cold", (s) => s.sendMs)} | sign + automined block (before t0, not counted) |
| receipt -> claim mined (log at bench) | ${part("warm", (s) => s.receiptToClaimMined)} | ${part("cold", (s) => s.receiptToClaimMined)} | chain poll wait (0..${POLL_INTERVAL_MS}), claimer pass (reads the new deployment), claim delay, claim tx |
| of which the claim delay (worker log) | ${part("warm", (s) => s.claimDelayMs)} | ${part("cold", (s) => s.claimDelayMs)} | maxDelayMs x (1 - score); the score counts host load |
| claim mined -> StartedAt | ${part("warm", (s) => s.claimMinedToStarted)} | ${part("cold", (s) => s.claimMinedToStarted)} | reconcile pass: chain reads, delivery, docker list, create + start |
| of which image delivery (worker log, cold) | - | ${part("cold", (s) => s.deliveryMs)} | Kubo cat -> docker load -> inspect -> pin -> tag |
| StartedAt -> Running on chain | ${part("warm", (s) => s.startedToConfirmed)} | ${part("cold", (s) => s.startedToConfirmed)} | inspect, confirm tx, mined, log pushed to the bench |
| stopDeployment -> container removed | ${part("warm", (s) => s.teardownMs)} | ${part("cold", (s) => s.teardownMs)} | not a target; see the notes |

By run, in order (ms, -> container running): warm ${byRun("warm")}; cold ${byRun("cold")}.

Chain log arrivals missed by the WebSocket subscription and taken from the worker's log instead: ${fallbacks}.

Teardown: in ${samples.filter((s) => s.releasedByBench).length} of ${samples.length} recorded runs (${releasedByBench} in all, with the warm-up and the footprint) the
worker had not removed the container ${TEARDOWN_GRACE_MS / 1000} s after \`stopDeployment\`; the bench then released the
(Superseded) placement itself, after which the worker removed it. Releases by the worker itself
(operator key): ${samples.filter((s) => s.releasedBy === "worker").length} of ${samples.length}; by the bench: ${samples.filter((s) => s.releasedBy === "bench").length}.

## Footprint

| worker | placements running | VmRSS median MiB | VmRSS max MiB | VmHWM MiB | CPU s / idle s | % of one core | heartbeat txs in the window | V8 heap used / total MiB (new space) | external MiB |
|---|---|---|---|---|---|---|---|---|---|
${footprints
  .map(
    (f) =>
      `| ${f.what} | ${f.containers} | ${f.rssMiB.median.toFixed(1)} | ${f.rssMiB.max.toFixed(1)} | ${f.hwmMiB.toFixed(1)} | ${f.cpuS.toFixed(2)} / ${f.seconds.toFixed(0)} | ${f.cpuPercent.toFixed(2)} | ${f.heartbeatTxs} | ${f.heap.heapUsed.toFixed(1)} / ${f.heap.heapTotal.toFixed(1)} (${f.heap.newSpace.toFixed(1)}) | ${f.heap.external.toFixed(1)} |`,
  )
  .join("\n")}
| \`shoal-worker\` bin (compiled), fresh, no placements, bench settings | 0 | ${(rssFresh.rssKiB / 1024).toFixed(1)} | | | | | | | |
${rssBaselines.map(([name, kib]) => `| baseline: ${name} | - | ${(kib / 1024).toFixed(1)} | | | | | | | |`).join("\n")}

RSS target <= ${TARGET_RSS_MIB} MiB with ${PLACEMENTS} placements (max of the samples): ${footprints
      .map(
        (f) =>
          `${f.what}: ${f.rssMiB.max.toFixed(0)} MiB, ${f.rssMiB.max <= TARGET_RSS_MIB ? "met" : "NOT met"}`,
      )
      .join("; ")}.
`;
    const out = path.resolve(__dirname, "results/worker.md");
    mkdirSync(path.dirname(out), { recursive: true });
    const notesMarker = "\n## Notes\n";
    let notes = "";
    try {
      const previous = readFileSync(out, "utf8");
      if (previous.includes(notesMarker)) notes = previous.slice(previous.indexOf(notesMarker));
    } catch {
      // first run
    }
    writeFileSync(out, md + notes);
    console.log(`wrote ${path.relative(process.cwd(), out)}`);
  } catch (error) {
    if (current) console.error(`--- worker log ---\n${current.tail(40)}`);
    throw error;
  } finally {
    for (const [name, fn] of cleanups.reverse()) {
      await fn().catch((error: unknown) => console.error(`cleanup of ${name} failed: ${String(error)}`));
    }
    provider.destroy();
    await rm(tmp, { recursive: true, force: true });
  }
}

/** `docker run` flags equal to an Engine API create body (the fields toCreateOptions sets). */
function dockerRunFlags(o: Docker.ContainerCreateOptions): string[] {
  const h = o.HostConfig as Docker.HostConfig & { CgroupnsMode?: string };
  const flags: string[] = [];
  for (const [k, v] of Object.entries(o.Labels ?? {})) flags.push("--label", `${k}=${v}`);
  if (h.Privileged) flags.push("--privileged");
  if (h.ReadonlyRootfs) flags.push("--read-only");
  for (const cap of h.CapDrop ?? []) flags.push("--cap-drop", cap);
  for (const opt of h.SecurityOpt ?? []) flags.push("--security-opt", opt);
  if (h.IpcMode) flags.push("--ipc", h.IpcMode);
  if (h.CgroupnsMode) flags.push("--cgroupns", h.CgroupnsMode);
  for (const [at, opts] of Object.entries(h.Tmpfs ?? {})) flags.push("--tmpfs", `${at}:${opts}`);
  if (h.NetworkMode) flags.push("--network", h.NetworkMode);
  if (h.CgroupParent) flags.push("--cgroup-parent", h.CgroupParent);
  for (const [port, bindings] of Object.entries(h.PortBindings ?? {}))
    for (const binding of bindings as Array<{ HostIp: string; HostPort: string }>)
      flags.push("-p", `${binding.HostIp}:${binding.HostPort}:${port}`);
  flags.push(
    "--cpu-period",
    String(h.CpuPeriod),
    "--cpu-quota",
    String(h.CpuQuota),
    "--cpu-shares",
    String(h.CpuShares),
  );
  flags.push("--memory", String(h.Memory), "--memory-swap", String(h.MemorySwap));
  flags.push("--memory-reservation", String(h.MemoryReservation), "--pids-limit", String(h.PidsLimit));
  flags.push("--restart", h.RestartPolicy?.Name ?? "no");
  if (h.LogConfig) {
    flags.push("--log-driver", h.LogConfig.Type);
    for (const [k, v] of Object.entries(h.LogConfig.Config ?? {})) flags.push("--log-opt", `${k}=${v}`);
  }
  if (o.User) flags.push("--user", o.User);
  if (o.StopTimeout !== undefined) flags.push("--stop-timeout", String(o.StopTimeout));
  for (const e of o.Env ?? []) flags.push("-e", e);
  if (o.Entrypoint) flags.push("--entrypoint", ([] as string[]).concat(o.Entrypoint).join(" "));
  return flags;
}

async function removeByLabel(label: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(
    containers.map((x) =>
      docker
        .getContainer(x.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
}

async function catAll(cid: string): Promise<Buffer> {
  const response = await fetch(`${urls.kuboUrl}/api/v0/cat?arg=${cid}`, { method: "POST" });
  if (!response.ok) throw new Error(`kubo cat ${cid}: HTTP ${response.status}`);
  return Buffer.from(await response.arrayBuffer());
}

async function unpin(cids: string[]): Promise<void> {
  for (const cid of cids) await fetch(`${urls.kuboUrl}/api/v0/pin/rm?arg=${cid}`, { method: "POST" });
}

function existsCgroup2(): boolean {
  try {
    readFileSync("/sys/fs/cgroup/cgroup.controllers");
    return true;
  } catch {
    return false;
  }
}

/** How this run was started, with the settings that came from the environment. */
function commandLine(): string {
  const env = Object.entries(process.env)
    .filter(([k]) => /^SHOAL_(RPC_URL|KUBO_URL|BENCH_)/.test(k))
    .map(([k, v]) => `${k}=${v} `)
    .join("");
  const script = process.argv.findIndex((a) => a.endsWith("bench/worker.ts"));
  // `hardhat run` forks the script with HARDHAT_NETWORK set.
  return script >= 0 && process.env.HARDHAT_NETWORK === undefined
    ? `${env}npx ts-node bench/worker.ts ${process.argv.slice(script + 1).join(" ")}`.trim()
    : `${env}npx hardhat run bench/worker.ts --network localhost`;
}

/** Other benchmarks, hardhat test runs and shoal-worker processes on this machine (not this process or its parents). */
async function otherBenchmarks(exclude: number[] = []): Promise<string[]> {
  const mine = new Set<number>(exclude);
  for (let pid = process.pid; pid > 1;) {
    mine.add(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      pid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      break;
    }
  }
  const out = await sh("pgrep", ["-af", "bench/|hardhat test|shoal-worker"]).catch(() => "");
  return (
    out
      .split("\n")
      .filter(Boolean)
      .filter((line) => !mine.has(Number(line.split(" ")[0])) && !line.includes("bench/worker.ts"))
      // the node process itself, not its npx/npm/sh/timeout wrappers
      .filter((line) => / (\S*\/)?node /.test(` ${line.slice(line.indexOf(" ") + 1)}`))
      .map((line) => line.slice(line.indexOf(" ") + 1).slice(0, 120))
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
