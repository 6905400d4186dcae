/**
 * The dynamic resource manager against static limits and no per-container limits, on real
 * containers under a real per-device cgroup, all in one run.
 *
 *   npx ts-node bench/resource-manager.ts
 *   (SHOAL_BENCH_BURST_PERIOD_S, SHOAL_BENCH_WINDOW_S, SHOAL_BENCH_ROUNDS, SHOAL_BENCH_WEB_S change the durations;
 *   SHOAL_BENCH_TRACE=<file> writes every tick report of the burst runs there, as JSON;
 *   SHOAL_BENCH_OUT=<file> writes the results there instead of bench/results/resource-manager.md)
 *   The host may be shared: run it under `flock /tmp/shoal-bench.lock` so benchmarks never overlap.
 *
 * 1. Throughput: a device capped at 1 CPU runs two shoal/demo-loadgen containers with phase-shifted
 *    CPU bursts (1000m for half of each period, 50m otherwise, +48 MiB during a burst; B starts
 *    half a period after A). The work done (loadgen iterations) in a common window is compared for
 *    four modes, one after the other: the dynamic manager with its defaults (containers start at
 *    the band's min), the same without its fast path (fastPeriodMs 0: one decision per period, the
 *    manager before the fast path), static equal limits (500m each), and no per-container limits
 *    (each container's quota = the device's 1000m; cgroup v1 refuses a child quota above its
 *    parent's, and above it would change nothing). The device's measured CPU and every OOM kill are
 *    recorded in each mode.
 * 2. Reaction time: in the managed modes, every burst start is a load step (50m -> 1000m); the time
 *    from the step to the first raise of the limit and to the limit reaching its reachable demand.
 *    This is where reaction times are held to account: test/workers/integration/resource-manager
 *    .test.ts used to require a raise within 3 control periods (3.3 s with slack) and, with the fast
 *    path, cover within half a period (700 ms); it now asserts the order (lowered while idle, raised
 *    after the step, covered, by a fast tick) with a generous 5-period bound (issue 13). Likewise
 *    device-cgroup.test.ts no longer holds a CPU-rate floor after fixed sleeps, only the quota.
 * 3. Latency under a noisy neighbour: shoal/demo-web next to a 2-thread loadgen bursting 2000m on a
 *    1-CPU device; HTTP GET latency (new connection each, 20 requests/s) with the manager vs with
 *    no per-container limits.
 * 4. The manager's own cost: its process CPU (minus the same bench process in the static mode),
 *    the duration of its period and fast ticks, and dockerd's CPU (docker update + list/inspect),
 *    vs the static mode.
 *
 * Writes bench/results/resource-manager.md. Needs root, Docker and the demo images
 * (scripts/images/build.sh); removes every container and cgroup it creates.
 */
import Docker from "dockerode";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import pino from "pino";
import { createCgroupMetricsSource } from "../workers/src";
import { hostUsageBetween, readHostCounters } from "../workers/src";
import { ensureDeviceCgroup, removeDeviceCgroup } from "../workers/src";
import { createDockerRuntime } from "../workers/src";
import { containerSpec, type ContainerSpec } from "../workers/src";
import { DEFAULT_CONTROLLER_PARAMS, type CgroupCounters, type ControllerParams } from "../workers/src";
import { parseManifest, toPublishedManifest, type PublishedManifest } from "../workers/src";
import { createResourceManager, type TickReport } from "../workers/src";

const ROOT = path.resolve(__dirname, "..");
const LOADGEN_IMAGE = "shoal/demo-loadgen:1.0.0";
const WEB_IMAGE = "shoal/demo-web:1.0.0";
const FAKE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
const LABEL = "dev.shoal.bench";
const RUN_ID = `resource-manager-${process.pid}-${Date.now()}`;
const CAPACITY = { cpuMillicores: 1000, memoryMiB: 1024 };
const BURST_PERIOD_S = Number(process.env.SHOAL_BENCH_BURST_PERIOD_S ?? 20);
const WINDOW_S = Number(process.env.SHOAL_BENCH_WINDOW_S ?? 20);
/** Rounds of all modes, interleaved, so the load of a shared host falls on every mode alike. */
const ROUNDS = Number(process.env.SHOAL_BENCH_ROUNDS ?? 2);
const WEB_S = Number(process.env.SHOAL_BENCH_WEB_S ?? 20);
const PERIOD_MS = DEFAULT_CONTROLLER_PARAMS.periodMs;
const MiB = 1024 * 1024;

const docker = new Docker({
  socketPath: (process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock").replace(/^unix:\/\//, ""),
});
const runtime = createDockerRuntime({ docker });
const logger = pino({ level: process.env.SHOAL_BENCH_LOG ?? "silent" });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const devices: string[] = [];

function manifest(file: string, env: Record<string, string>): PublishedManifest {
  const parsed = parseManifest(readFileSync(path.join(ROOT, file), "utf8"));
  const published = toPublishedManifest(parsed, { "linux/amd64": FAKE_CID });
  return { ...published, env: { ...published.env, ...env } };
}

interface Stats {
  ts: number;
  t: number;
  iterations: number;
}

async function statsLines(id: string): Promise<Stats[]> {
  const buffer = (await docker.getContainer(id).logs({ stdout: true, follow: false })) as unknown as Buffer;
  const out: Buffer[] = [];
  for (let offset = 0; offset + 8 <= buffer.length;) {
    const size = buffer.readUInt32BE(offset + 4);
    if (buffer[offset] === 1) out.push(buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(out)
    .toString("utf8")
    .split("\n")
    .filter((l) => l.includes('"event":"stats"'))
    .map((l) => JSON.parse(l) as Stats);
}

/** Iterations at wall time `ts`, interpolated between the stats lines around it. */
function iterationsAt(lines: Stats[], ts: number): number {
  for (let i = 1; i < lines.length; i++) {
    const [a, b] = [lines[i - 1], lines[i]];
    if (b.ts >= ts) return a.iterations + ((b.iterations - a.iterations) * (ts - a.ts)) / (b.ts - a.ts);
  }
  throw new Error(`no stats line at or after ${new Date(ts).toISOString()}`);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** dockerd's CPU seconds so far (utime + stime from /proc). */
function dockerdCpuS(): number {
  try {
    const pid = readFileSync("/var/run/docker.pid", "utf8").trim();
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** Samples the device cgroup every period: its CPU (millicores) and memory (MiB). */
function deviceSampler(cgroupParent: string) {
  const source = createCgroupMetricsSource({ cgroupParent });
  const cpu: number[] = [];
  const memory: number[] = [];
  let previous: CgroupCounters | undefined;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const { device } = await source.sample([]);
      if (device && previous) {
        cpu.push(((device.cpuUsageNs - previous.cpuUsageNs) / ((device.atMs - previous.atMs) * 1e6)) * 1000);
        memory.push(device.memoryUsageBytes / MiB);
      }
      previous = device;
      await sleep(PERIOD_MS);
    }
  })();
  return {
    cpu,
    memory,
    async stop() {
      stop = true;
      await loop;
    },
  };
}

async function removeBenchContainers(): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=${RUN_ID}`] } });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
}

type Mode = "dynamic" | "dynamic-no-fast" | "static" | "unconstrained";
const MODES: readonly Mode[] = ["dynamic", "dynamic-no-fast", "static", "unconstrained"];
/** Controller parameters of the managed modes (defaults otherwise). */
const MANAGER_PARAMS: Partial<Record<Mode, Partial<ControllerParams>>> = {
  dynamic: {},
  "dynamic-no-fast": { fastPeriodMs: 0 },
};

interface BurstResult {
  mode: Mode;
  iterations: number[];
  deviceCpuMax: number;
  deviceCpuMean: number;
  deviceMemoryMaxMiB: number;
  oomKills: number;
  processCpuMs: number;
  dockerdCpuMs: number;
  windowS: number;
  reports: TickReport[];
  /** Burst starts (wall ms) and the container ids of each round, for reactions(). */
  rounds: { steps: number[]; ids: string[]; reports: TickReport[] }[];
  /** Host CPU used by everything but this device over the window (the host is shared), and load1. */
  otherHostMillicores: number;
  load1: number;
}

async function startManager(
  deviceId: string,
  cgroupParent: string,
  specs: Map<string, ContainerSpec>,
  params: Partial<ControllerParams> = {},
) {
  const reports: TickReport[] = [];
  const manager = createResourceManager({
    deviceId,
    capacity: CAPACITY,
    runtime,
    metrics: createCgroupMetricsSource({ cgroupParent }),
    bandOf: (c) => specs.get(c.placementId)?.band,
    evict: async (placementId) => {
      throw new Error(`the bench does not expect an eviction (placement ${placementId})`);
    },
    params,
    logger,
    onTick: (r) => reports.push(r),
  });
  const controller = new AbortController();
  const running = manager.run({ signal: controller.signal });
  return {
    reports,
    refresh: () => manager.refresh(),
    async stop() {
      controller.abort();
      await running;
    },
  };
}

async function burstScenario(mode: Mode): Promise<BurstResult> {
  const deviceId = `bench${process.pid}${mode.replace(/[^a-z0-9]/g, "")}`;
  devices.push(deviceId);
  const { cgroupParent } = await ensureDeviceCgroup({ deviceId, ...CAPACITY });
  const loadgen = manifest("apps/demo-loadgen/shoal.yaml", {
    PROFILE: "bursts",
    CPU_MILLICORES: "1000",
    BURST_PERIOD_S: String(BURST_PERIOD_S),
    BURST_DUTY: "0.5",
    IDLE_MILLICORES: "50",
    MEMORY_MIB: "48",
    MEMORY_STEP_MIB: "16",
    IDLE_MEMORY_MIB: "0",
  });
  const specs = new Map<string, ContainerSpec>();
  for (const placementId of ["1", "2"]) {
    const spec = containerSpec(
      { deviceId, placementId, deploymentId: "1", appId: "1", version: "1" },
      loadgen,
      LOADGEN_IMAGE,
      {
        cgroupParent,
        extraLabels: { [LABEL]: RUN_ID },
      },
    );
    const cpu =
      mode === "static" ? 500 : mode === "unconstrained" ? CAPACITY.cpuMillicores : spec.limits.cpuMillicores;
    specs.set(placementId, { ...spec, limits: { ...spec.limits, cpuMillicores: cpu } });
  }
  const params = MANAGER_PARAMS[mode];
  const manager =
    params === undefined ? undefined : await startManager(deviceId, cgroupParent, specs, params);
  const sampler = deviceSampler(cgroupParent);
  const ids: string[] = [];
  ids.push((await runtime.ensureRunning(specs.get("1")!)).container.id);
  manager?.refresh();
  await sleep((BURST_PERIOD_S / 2) * 1000);
  ids.push((await runtime.ensureRunning(specs.get("2")!)).container.id);
  manager?.refresh();
  const windowStart = Date.now() + 2000;
  await sleep(windowStart - Date.now());
  const cpu0 = process.cpuUsage();
  const dockerd0 = dockerdCpuS();
  const host0 = await readHostCounters();
  const samplesFrom = sampler.cpu.length;
  await sleep(WINDOW_S * 1000);
  const windowEnd = Date.now();
  const cpu1 = process.cpuUsage(cpu0);
  const dockerd1 = dockerdCpuS();
  const host = hostUsageBetween(host0, await readHostCounters());
  await sleep(1500); // one more stats line after the window
  const oomCounters = await Promise.all(
    ids.map((id) =>
      createCgroupMetricsSource({ cgroupParent })
        .sample([id])
        .then((s) => s.containers.get(id)?.oomKills ?? 0),
    ),
  );
  await manager?.stop();
  await sampler.stop();
  const iterations: number[] = [];
  const steps: number[] = [];
  let oomKilled = 0;
  for (const id of ids) {
    const lines = await statsLines(id);
    iterations.push(iterationsAt(lines, windowEnd) - iterationsAt(lines, windowStart));
    if ((await docker.getContainer(id).inspect()).State.OOMKilled) oomKilled += 1;
    // Burst starts inside the window: t = 0, P, 2P... of the container's own clock.
    const t0 = lines[0].ts - lines[0].t * 1000;
    for (let k = 1; t0 + k * BURST_PERIOD_S * 1000 < windowEnd; k++) {
      const step = t0 + k * BURST_PERIOD_S * 1000;
      if (step > windowStart - BURST_PERIOD_S * 500) steps.push(step);
    }
    await runtime.remove(id);
  }
  await removeDeviceCgroup({ deviceId });
  const deviceCpu = sampler.cpu.slice(samplesFrom);
  return {
    mode,
    iterations,
    deviceCpuMax: Math.max(...deviceCpu),
    deviceCpuMean: deviceCpu.reduce((a, b) => a + b, 0) / deviceCpu.length,
    deviceMemoryMaxMiB: Math.max(...sampler.memory),
    oomKills: oomKilled + oomCounters.reduce((a, b) => a + b, 0),
    processCpuMs: (cpu1.user + cpu1.system) / 1000,
    dockerdCpuMs: (dockerd1 - dockerd0) * 1000,
    windowS: (windowEnd - windowStart) / 1000,
    reports: manager?.reports ?? [],
    rounds: [{ steps, ids, reports: manager?.reports ?? [] }],
    otherHostMillicores: host.cpuMillicores - deviceCpu.reduce((a, b) => a + b, 0) / deviceCpu.length,
    load1: host.load1,
  };
}

/** The rounds of one mode as one result: sums of work and CPU, extremes of the maxima. */
function merge(results: BurstResult[]): BurstResult {
  const sum = (f: (r: BurstResult) => number) => results.reduce((a, r) => a + f(r), 0);
  return {
    mode: results[0].mode,
    iterations: results[0].iterations.map((_, i) => sum((r) => r.iterations[i])),
    deviceCpuMax: Math.max(...results.map((r) => r.deviceCpuMax)),
    deviceCpuMean: sum((r) => r.deviceCpuMean) / results.length,
    deviceMemoryMaxMiB: Math.max(...results.map((r) => r.deviceMemoryMaxMiB)),
    oomKills: sum((r) => r.oomKills),
    processCpuMs: sum((r) => r.processCpuMs),
    dockerdCpuMs: sum((r) => r.dockerdCpuMs),
    windowS: sum((r) => r.windowS),
    reports: results.flatMap((r) => r.reports),
    rounds: results.flatMap((r) => r.rounds),
    otherHostMillicores: sum((r) => r.otherHostMillicores) / results.length,
    load1: Math.max(...results.map((r) => r.load1)),
  };
}

/**
 * Reaction to each burst start of a managed run, in ms: to the first raise, and to the limit
 * reaching `reach`; both to the end of the tick that applied the change (its docker update done).
 */
function reactions(result: BurstResult, reach: number): { firstRaiseMs: number[]; coveredMs: number[] } {
  const firstRaiseMs: number[] = [];
  const coveredMs: number[] = [];
  for (const { steps, ids, reports } of result.rounds) {
    for (const step of steps) {
      for (const id of ids) {
        const series = reports.map((r) => ({
          at: Date.parse(r.at) + r.durationMs,
          cpu: r.limits[id]?.cpuMillicores,
        }));
        const before = series.filter((s) => s.at < step && s.cpu !== undefined).at(-1);
        // Only the container whose burst starts at `step` (its limit was low before it).
        if (before === undefined || before.cpu === undefined || before.cpu >= reach) continue;
        const raised = series.find((s) => s.at >= step && s.cpu !== undefined && s.cpu > before.cpu!);
        const covered = series.find((s) => s.at >= step && s.cpu !== undefined && s.cpu >= reach);
        if (raised === undefined || covered === undefined || raised.at - step > BURST_PERIOD_S * 500)
          continue;
        firstRaiseMs.push(raised.at - step);
        coveredMs.push(covered.at - step);
      }
    }
  }
  return { firstRaiseMs, coveredMs };
}

function get(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.get(
      { host: "127.0.0.1", port, path: "/", agent: false, timeout: 5000 },
      (response) => {
        response.resume();
        response.on("end", () =>
          response.statusCode === 200
            ? resolve(performance.now() - started)
            : reject(new Error(`HTTP ${response.statusCode}`)),
        );
      },
    );
    request.on("timeout", () => request.destroy(new Error("timeout")));
    request.on("error", reject);
  });
}

async function webScenario(mode: "manager" | "no limits") {
  const deviceId = `bench${process.pid}web${mode === "manager" ? "m" : "n"}`;
  devices.push(deviceId);
  const { cgroupParent } = await ensureDeviceCgroup({ deviceId, ...CAPACITY });
  const identity = (placementId: string) => ({
    deviceId,
    placementId,
    deploymentId: placementId,
    appId: placementId,
    version: "1",
  });
  const options = { cgroupParent, extraLabels: { [LABEL]: RUN_ID } };
  const web = containerSpec(identity("1"), manifest("apps/demo-web/shoal.yaml", {}), WEB_IMAGE, options);
  const noisy = containerSpec(
    identity("2"),
    manifest("apps/demo-loadgen/shoal.yaml", {
      PROFILE: "bursts",
      CPU_MILLICORES: "2000",
      BURST_PERIOD_S: "10",
      BURST_DUTY: "0.5",
      IDLE_MILLICORES: "50",
      MEMORY_MIB: "0",
    }),
    LOADGEN_IMAGE,
    options,
  );
  const specs = new Map<string, ContainerSpec>();
  for (const spec of [web, noisy]) {
    const cpu = mode === "no limits" ? CAPACITY.cpuMillicores : spec.limits.cpuMillicores;
    specs.set(spec.identity.placementId, { ...spec, limits: { ...spec.limits, cpuMillicores: cpu } });
  }
  const manager = mode === "manager" ? await startManager(deviceId, cgroupParent, specs) : undefined;
  const webContainer = (await runtime.ensureRunning(specs.get("1")!)).container;
  const noisyContainer = (await runtime.ensureRunning(specs.get("2")!)).container;
  manager?.refresh();
  const port = webContainer.ports[0].hostPort;
  for (let i = 0; i < 50; i++) {
    if (
      await get(port).then(
        () => true,
        () => false,
      )
    )
      break;
    await sleep(100);
  }
  await sleep(3000); // let the manager settle on the noisy neighbour's first burst
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  for (let i = 0; i < WEB_S * 20; i++) {
    const due = start + i * 50;
    await sleep(Math.max(0, due - performance.now()));
    try {
      latencies.push(await get(port));
    } catch {
      errors += 1;
    }
  }
  await manager?.stop();
  for (const c of [webContainer, noisyContainer]) await runtime.remove(c.id);
  await removeDeviceCgroup({ deviceId });
  return {
    mode,
    requests: latencies.length + errors,
    errors,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    max: Math.max(...latencies),
  };
}

const f0 = (n: number) => n.toFixed(0);
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);

async function main(): Promise<void> {
  for (const image of [LOADGEN_IMAGE, WEB_IMAGE]) {
    if (!(await runtime.imageExists(image)))
      throw new Error(`${image} is missing: run scripts/images/build.sh`);
  }
  const startedAt = new Date();
  const t0 = performance.now();
  const loadAtStart = os.loadavg();
  const runs: Record<Mode, BurstResult[]> = {
    dynamic: [],
    "dynamic-no-fast": [],
    static: [],
    unconstrained: [],
  };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of MODES) {
      console.error(`bursts, round ${round}: ${mode}...`);
      runs[mode].push(await burstScenario(mode));
    }
  }
  const bursts = Object.fromEntries(MODES.map((m) => [m, merge(runs[m])])) as Record<Mode, BurstResult>;
  const webs: Awaited<ReturnType<typeof webScenario>>[] = [];
  for (const mode of ["manager", "no limits"] as const) {
    console.error(`web under a noisy neighbour: ${mode}...`);
    webs.push(await webScenario(mode));
  }
  const totalS = (performance.now() - t0) / 1000;
  const loadAtEnd = os.loadavg();

  const total = (m: Mode) => bursts[m].iterations.reduce((a, b) => a + b, 0);
  const managed = ["dynamic", "dynamic-no-fast"] as const;
  if (process.env.SHOAL_BENCH_TRACE) {
    const trace = Object.fromEntries(managed.map((m) => [m, runs[m].map((r) => r.rounds[0])]));
    writeFileSync(process.env.SHOAL_BENCH_TRACE, JSON.stringify(trace));
  }
  const bandMin = 100;
  const reach = CAPACITY.cpuMillicores - bandMin; // the other container keeps its band's min
  const capExceeded = MODES.some((m) => bursts[m].deviceCpuMax > CAPACITY.cpuMillicores * 1.05);
  const ooms = MODES.reduce((s, m) => s + bursts[m].oomKills, 0);
  const cpus = os.cpus();
  const web = (m: string) => webs.find((w) => w.mode === m)!;
  const verdict = (ok: boolean) => (ok ? "met" : "**NOT met**");
  const limitOf: Record<Mode, string> = {
    dynamic: `manager, defaults (period ${PERIOD_MS} ms, fast path ${DEFAULT_CONTROLLER_PARAMS.fastPeriodMs} ms); starts at 100m`,
    "dynamic-no-fast": `manager, fast path off (period ${PERIOD_MS} ms only); starts at 100m`,
    static: "500m each",
    unconstrained: "none below the device (1000m each)",
  };

  const ratioLines = managed
    .map((m) => {
      const vsStatic = total(m) / total("static");
      const vsFree = total(m) / total("unconstrained");
      return `- ${m}: / static = **${f2(vsStatic)}** (target >= 1.4: ${verdict(vsStatic >= 1.4)}); / unconstrained = **${f2(vsFree)}** (target >= 0.9: ${verdict(vsFree >= 0.9)})`;
    })
    .join("\n");
  const decisionLines = managed
    .map((m) => {
      const decisions = bursts[m].reports.flatMap((r) => r.decisions);
      const byReason = new Map<string, number>();
      for (const d of decisions) {
        const key = `${d.resource}:${d.reason}`;
        byReason.set(key, (byReason.get(key) ?? 0) + 1);
      }
      return `- decisions in the ${m} run: ${decisions.length} (${[...byReason].map(([k, v]) => `${k} ${v}`).join(", ")})`;
    })
    .join("\n");
  const reactionRows = managed
    .flatMap((m) => {
      const period = PERIOD_MS;
      const react = reactions(bursts[m], reach * 0.9);
      const row = (what: string, ms: number[]) =>
        ms.length === 0
          ? `| ${m} | ${what} | 0 | - | - | - |`
          : `| ${m} | ${what} | ${ms.length} | ${f0(percentile(ms, 50))} ms | ${f0(Math.max(...ms))} ms | ${f2(percentile(ms, 50) / period)} / ${f2(Math.max(...ms) / period)} |`;
      return [row("first raise", react.firstRaiseMs), row("limit covers the demand", react.coveredMs)];
    })
    .join("\n");
  const reactionVerdict = managed
    .map((m) => {
      const covered = reactions(bursts[m], reach * 0.9).coveredMs;
      const worst = covered.length === 0 ? Number.POSITIVE_INFINITY : Math.max(...covered);
      return `${m}: ${verdict(worst <= 2 * PERIOD_MS)}`;
    })
    .join("; ");
  const costLines = managed
    .map((m) => {
      const b = bursts[m];
      const stats = (kind: TickReport["kind"], what: string) => {
        const of = b.reports.filter((r) => r.kind === kind);
        if (of.length === 0) return `no ${kind} ticks`;
        const ms = of.map((r) => r.durationMs);
        const applied = of.filter((r) => r.changes.length > 0).length;
        return (
          `${kind} ticks (${what}) mean ${f2(ms.reduce((x, y) => x + y, 0) / ms.length)} ms, ` +
          `p95 ${f2(percentile(ms, 95))} ms, max ${f2(Math.max(...ms))} ms over ${ms.length} ticks, ${applied} with a docker update`
        );
      };
      const managerCpuMs = b.processCpuMs - bursts.static.processCpuMs;
      return (
        `- ${m}: ${stats("period", "scrape 2 containers + device + host, decide, apply")}; ` +
        `${stats("fast", "read 2 containers' CPU counters, decideFast, apply")}; ` +
        `bench process CPU over the window ${f0(b.processCpuMs)} ms vs ${f0(bursts.static.processCpuMs)} ms in the static run, ` +
        `so the manager costs **${f1(managerCpuMs / b.windowS)}m** (millicores); ` +
        `dockerd ${f0(b.dockerdCpuMs)} ms vs ${f0(bursts.static.dockerdCpuMs)} ms (${f1((b.dockerdCpuMs - bursts.static.dockerdCpuMs) / b.windowS)}m for docker update and the 5-s list/inspect)`
      );
    })
    .join("\n");

  const md = `# Resource manager: dynamic vs static vs no per-container limits

Command: \`flock /tmp/shoal-bench.lock npx ts-node bench/resource-manager.ts\` (the host is shared: the lock keeps benchmarks from overlapping; burst period ${BURST_PERIOD_S} s, window ${WINDOW_S} s x ${ROUNDS} rounds, web ${WEB_S} s)

- Date: ${startedAt.toISOString()} (whole run ${f0(totalS)} s)
- Machine: ${cpus.length} x ${cpus[0]?.model ?? "?"}, ${f0(os.totalmem() / 1024 ** 3)} GiB RAM, ${os.type()} ${os.release()}, cgroup v1 (cgroupfs)
- Node.js ${process.version}; Docker Engine at /var/run/docker.sock
- Load average (1, 5, 15 min) of the host, shared with other work: ${loadAtStart.map(f2).join(", ")} at the start, ${loadAtEnd.map(f2).join(", ")} at the end
- Controller: default parameters (period ${PERIOD_MS} ms, fastPeriodMs ${DEFAULT_CONTROLLER_PARAMS.fastPeriodMs}, cpuRecentWindowMs ${DEFAULT_CONTROLLER_PARAMS.cpuRecentWindowMs}, cpuUpFactor ${DEFAULT_CONTROLLER_PARAMS.cpuUpFactor}, cpuThrottledRatioUp ${DEFAULT_CONTROLLER_PARAMS.cpuThrottledRatioUp}, cpuDownPeriods ${DEFAULT_CONTROLLER_PARAMS.cpuDownPeriods}, see docs/resource-manager.md) and, as a variant, the same with the fast path off (fastPeriodMs 0)

## 1. Work done by two phase-shifted bursty containers on a 1-CPU device

Each \`shoal/demo-loadgen\` (band 100m-1000m, 16-256 MiB, from apps/demo-loadgen/shoal.yaml) bursts
1000m (+48 MiB) for ${BURST_PERIOD_S / 2} s of every ${BURST_PERIOD_S} s and idles at 50m otherwise; B starts
half a period after A, so their bursts alternate. Work = loadgen iterations in a ${WINDOW_S} s window
starting 2 s after B started, device capped at ${CAPACITY.cpuMillicores}m / ${CAPACITY.memoryMiB} MiB by its cgroup. All modes run
in this one run, one after the other, in ${ROUNDS} interleaved rounds (${MODES.join(", ")}; again), summed below: the host is
shared with other work (last column), and interleaving spreads that load over every mode.

| mode | per-container CPU limit | iterations A | iterations B | total | vs static | vs unconstrained | device CPU mean / max (m) | device mem max (MiB) | OOM kills | rest of the host: mean CPU (m), max load1 |
|---|---|---|---|---|---|---|---|---|---|---|
${MODES.map((m) => {
  const b = bursts[m];
  return `| ${m} | ${limitOf[m]} | ${f0(b.iterations[0])} | ${f0(b.iterations[1])} | ${f0(total(m))} | ${f2(total(m) / total("static"))} | ${f2(total(m) / total("unconstrained"))} | ${f0(b.deviceCpuMean)} / ${f0(b.deviceCpuMax)} | ${f0(b.deviceMemoryMaxMiB)} | ${b.oomKills} | ${f0(b.otherHostMillicores)}, ${f2(b.load1)} |`;
}).join("\n")}

${ratioLines}

Per round (dynamic / static, dynamic / unconstrained; dynamic-no-fast / static, dynamic-no-fast / unconstrained):
${Array.from({ length: ROUNDS }, (_, i) => {
  const t = (m: Mode) => runs[m][i].iterations.reduce((a, b) => a + b, 0);
  return `round ${i + 1}: ${f2(t("dynamic") / t("static"))}, ${f2(t("dynamic") / t("unconstrained"))}; ${f2(t("dynamic-no-fast") / t("static"))}, ${f2(t("dynamic-no-fast") / t("unconstrained"))}`;
}).join("; ")}
- OOM kills: ${ooms} (target 0); device CPU above its cap (+5 % measurement slack) in any mode: ${capExceeded ? "YES" : "no"}
${decisionLines}

## 2. Reaction time to a load step (every burst start in the window of the managed runs)

A burst start takes a container from 50m to 1000m while its limit sits at the band's min (100m).
Reachable demand: ${reach}m (the other container keeps its min); "covered" = limit >= ${f0(reach * 0.9)}m.
Times are from the step (loadgen clock) to the end of the tick (period or fast) that applied the
change, its \`docker update\` done; in control periods of ${PERIOD_MS} ms.

| run | | steps | median | max | in control periods (median / max) |
|---|---|---|---|---|---|
${reactionRows}

Target <= 2 control periods to cover the demand (worst case): ${reactionVerdict}.

## 3. Web latency next to a noisy neighbour (1-CPU device)

\`shoal/demo-web\` (busybox httpd, band 50m-500m) next to a 2-thread loadgen bursting 2000m for 5 s of
every 10 s. ${WEB_S * 20} sequential GETs at 20/s, a new connection each, from the host over 127.0.0.1.
"manager" = default parameters (fast path on); "no limits" = each container's quota is the device's 1000m.

| mode | requests | errors | p50 ms | p95 ms | p99 ms | max ms |
|---|---|---|---|---|---|---|
${webs.map((w) => `| ${w.mode} | ${w.requests} | ${w.errors} | ${f1(w.p50)} | ${f1(w.p95)} | ${f1(w.p99)} | ${f1(w.max)} |`).join("\n")}

p95 with the manager / without limits: ${f2(web("manager").p95 / web("no limits").p95)}

## 4. Cost of the manager

${costLines}
`;
  const out = process.env.SHOAL_BENCH_OUT ?? path.join(ROOT, "bench/results/resource-manager.md");
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, md);
  console.log(md);
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(async () => {
    await removeBenchContainers().catch(() => undefined);
    for (const deviceId of devices) await removeDeviceCgroup({ deviceId }).catch(() => undefined);
  });
