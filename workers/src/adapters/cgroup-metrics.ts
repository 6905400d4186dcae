/**
 * Container and device metrics read straight from cgroup files: a few small reads per container,
 * well under a millisecond each, where one call of the Docker stats API takes 1-2 s (it waits for
 * two samples). cgroup v1 and v2 both; the version is detected on first use.
 *
 * v1: cpuacct.usage, cpu.stat (nr_periods, nr_throttled, throttled_time), memory.usage_in_bytes,
 *     memory.stat (total_inactive_file), memory.limit_in_bytes, memory.oom_control (oom_kill).
 * v2: cpu.stat (usage_usec, nr_periods, nr_throttled, throttled_usec), memory.current,
 *     memory.stat (inactive_file), memory.max, memory.events (oom_kill).
 * Working set = usage - inactive file cache, as cAdvisor and the kubelet compute it.
 *
 * The fast path of the resource manager reads the CPU counters alone (`readCpu`, `sampleCpu`): v1
 * cpuacct.usage and cpu.stat, v2 cpu.stat.
 *
 * The files are read synchronously on purpose: cgroupfs and procfs files are generated in memory
 * and never wait on a disk, and a synchronous read costs about 10 us of CPU where fs/promises
 * costs about 100 us (a round trip through libuv's thread pool per open, read and close), which
 * matters at the fast path's 10 reads a second per container.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import type { CgroupCounters, CpuCounters } from "../domain/controller";
import { ShoalError } from "../errors";
import type { MetricsSample, MetricsSource } from "../ports/metrics";
import { DEFAULT_CGROUP_ROOT, detectCgroupVersion } from "./device-cgroup";
import type { CgroupVersion } from "./device-cgroup";
import { readHostCounters } from "./host-metrics";

export interface CgroupMetricsOptions {
  /** Default /sys/fs/cgroup. */
  root?: string;
  /** Detected from `root` when absent. */
  version?: CgroupVersion;
  /** Monotonic ms; default performance.now. */
  now?: () => number;
}

export interface CgroupMetrics {
  version(): Promise<CgroupVersion>;
  /**
   * Counters of a cgroup given by its path from the cgroup root ("/shoal/device-7"); undefined when
   * it does not exist (a container that just went away).
   */
  readCgroup(cgroupPath: string, options?: { signal?: AbortSignal }): Promise<CgroupCounters | undefined>;
  /** The CPU counters alone of a cgroup (two files on v1, one on v2); undefined when it does not exist. */
  readCpu(cgroupPath: string, options?: { signal?: AbortSignal }): Promise<CpuCounters | undefined>;
  /**
   * Counters of a Docker container: its cgroup is `<cgroupParent>/<id>` with the cgroupfs driver
   * (parent default "/docker"), or system.slice/docker-<id>.scope with the systemd driver.
   */
  readContainer(
    containerId: string,
    options?: { cgroupParent?: string; signal?: AbortSignal },
  ): Promise<CgroupCounters | undefined>;
  /** The CPU counters alone of a Docker container (same cgroup as readContainer). */
  readContainerCpu(
    containerId: string,
    options?: { cgroupParent?: string; signal?: AbortSignal },
  ): Promise<CpuCounters | undefined>;
}

/** Thrown for a cgroup file that exists but cannot be read or parsed. Retryable. */
export class CgroupMetricsError extends ShoalError {
  override name = "CgroupMetricsError";
}

/** "key value" lines -> numbers. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined) out[key] = value === "max" ? Number.POSITIVE_INFINITY : Number(value);
  }
  return out;
}

function parseNumber(text: string): number {
  const t = text.trim();
  return t === "max" ? Number.POSITIVE_INFINITY : Number(t);
}

// v1 reports "no limit" as a page-rounded LONG_MAX; anything above 2^60 is unlimited in practice.
const UNLIMITED_V1 = 2 ** 60;

/** CPU counters from the texts of v1 cpuacct.usage and cpu.stat (pure, for tests). */
export function parseV1Cpu(files: { cpuacctUsage: string; cpuStat: string }, atMs: number): CpuCounters {
  const cpu = parseFlatKeyed(files.cpuStat);
  return {
    atMs,
    cpuUsageNs: parseNumber(files.cpuacctUsage),
    cpuPeriods: cpu.nr_periods ?? 0,
    cpuThrottledPeriods: cpu.nr_throttled ?? 0,
    cpuThrottledNs: cpu.throttled_time ?? 0,
  };
}

/** CPU counters from the text of v2 cpu.stat (pure, for tests). */
export function parseV2Cpu(cpuStat: string, atMs: number): CpuCounters {
  const cpu = parseFlatKeyed(cpuStat);
  return {
    atMs,
    cpuUsageNs: (cpu.usage_usec ?? 0) * 1000,
    cpuPeriods: cpu.nr_periods ?? 0,
    cpuThrottledPeriods: cpu.nr_throttled ?? 0,
    cpuThrottledNs: (cpu.throttled_usec ?? 0) * 1000,
  };
}

/** Counters from the texts of the v1 files (pure, for tests). */
export function parseV1Counters(
  files: {
    cpuacctUsage: string;
    cpuStat: string;
    memoryUsage: string;
    memoryStat: string;
    memoryLimit: string;
    oomControl: string;
  },
  atMs: number,
): CgroupCounters {
  const mem = parseFlatKeyed(files.memoryStat);
  const oom = parseFlatKeyed(files.oomControl);
  const usage = parseNumber(files.memoryUsage);
  const limit = parseNumber(files.memoryLimit);
  return {
    ...parseV1Cpu(files, atMs),
    memoryUsageBytes: usage,
    memoryWorkingSetBytes: Math.max(0, usage - (mem.total_inactive_file ?? mem.inactive_file ?? 0)),
    memoryLimitBytes: limit >= UNLIMITED_V1 ? Number.POSITIVE_INFINITY : limit,
    oomKills: oom.oom_kill ?? 0,
  };
}

/** Counters from the texts of the v2 files (pure, for tests). */
export function parseV2Counters(
  files: {
    cpuStat: string;
    memoryCurrent: string;
    memoryStat: string;
    memoryMax: string;
    memoryEvents: string;
  },
  atMs: number,
): CgroupCounters {
  const mem = parseFlatKeyed(files.memoryStat);
  const events = parseFlatKeyed(files.memoryEvents);
  const usage = parseNumber(files.memoryCurrent);
  return {
    ...parseV2Cpu(files.cpuStat, atMs),
    memoryUsageBytes: usage,
    memoryWorkingSetBytes: Math.max(0, usage - (mem.inactive_file ?? 0)),
    memoryLimitBytes: parseNumber(files.memoryMax),
    oomKills: events.oom_kill ?? 0,
  };
}

export function createCgroupMetrics(options: CgroupMetricsOptions = {}): CgroupMetrics {
  const root = options.root ?? DEFAULT_CGROUP_ROOT;
  const now = options.now ?? (() => performance.now());
  let version: Promise<CgroupVersion> | undefined =
    options.version === undefined ? undefined : Promise.resolve(options.version);
  const getVersion = () => (version ??= detectCgroupVersion(root));

  /**
   * Runs `parse` over the texts of a cgroup's files; undefined when the cgroup is gone. `files` are
   * [controller (v1 hierarchy; ignored on v2), file name] pairs.
   */
  async function read<T>(
    cgroupPath: string,
    signal: AbortSignal | undefined,
    files: (v: CgroupVersion) => [string, string][],
    parse: (v: CgroupVersion, texts: string[], atMs: number) => T,
  ): Promise<T | undefined> {
    signal?.throwIfAborted();
    const v = await getVersion();
    const rel = cgroupPath.replace(/^\/+/, "");
    try {
      const texts = files(v).map(([controller, name]) =>
        readFileSync(v === 2 ? path.join(root, rel, name) : path.join(root, controller, rel, name), "utf8"),
      );
      return parse(v, texts, now());
    } catch (error) {
      const code = (error as { code?: string }).code;
      // ENOENT/ENODEV: the cgroup went away between two reads (its container stopped).
      if (code === "ENOENT" || code === "ENODEV") return undefined;
      throw new CgroupMetricsError(`could not read the counters of cgroup ${cgroupPath}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  const allFiles = (v: CgroupVersion): [string, string][] =>
    v === 2
      ? ["cpu.stat", "memory.current", "memory.stat", "memory.max", "memory.events"].map((n) => ["", n])
      : [
          ["cpuacct", "cpuacct.usage"],
          ["cpu", "cpu.stat"],
          ["memory", "memory.usage_in_bytes"],
          ["memory", "memory.stat"],
          ["memory", "memory.limit_in_bytes"],
          ["memory", "memory.oom_control"],
        ];
  const parseAll = (v: CgroupVersion, t: string[], atMs: number): CgroupCounters =>
    v === 2
      ? parseV2Counters(
          { cpuStat: t[0], memoryCurrent: t[1], memoryStat: t[2], memoryMax: t[3], memoryEvents: t[4] },
          atMs,
        )
      : parseV1Counters(
          {
            cpuacctUsage: t[0],
            cpuStat: t[1],
            memoryUsage: t[2],
            memoryStat: t[3],
            memoryLimit: t[4],
            oomControl: t[5],
          },
          atMs,
        );
  const cpuFiles = (v: CgroupVersion): [string, string][] =>
    v === 2
      ? [["", "cpu.stat"]]
      : [
          ["cpuacct", "cpuacct.usage"],
          ["cpu", "cpu.stat"],
        ];
  const parseCpu = (v: CgroupVersion, t: string[], atMs: number): CpuCounters =>
    v === 2 ? parseV2Cpu(t[0], atMs) : parseV1Cpu({ cpuacctUsage: t[0], cpuStat: t[1] }, atMs);

  /** A container's cgroup: `<parent>/<id>`, or the systemd driver's scope when no parent is given. */
  async function readOfContainer<T>(
    containerId: string,
    opts: { cgroupParent?: string; signal?: AbortSignal },
    readAt: (cgroupPath: string) => Promise<T | undefined>,
  ): Promise<T | undefined> {
    if (!/^[0-9a-f]{12,64}$/.test(containerId)) {
      throw new CgroupMetricsError(`"${containerId}" is not a Docker container id (hex)`);
    }
    const parent = opts.cgroupParent ?? "/docker";
    const direct = await readAt(`${parent}/${containerId}`);
    if (direct !== undefined || opts.cgroupParent !== undefined) return direct;
    return readAt(`/system.slice/docker-${containerId}.scope`);
  }

  return {
    version: getVersion,
    readCgroup: (cgroupPath, opts = {}) => read(cgroupPath, opts.signal, allFiles, parseAll),
    readCpu: (cgroupPath, opts = {}) => read(cgroupPath, opts.signal, cpuFiles, parseCpu),
    readContainer: (containerId, opts = {}) =>
      readOfContainer(containerId, opts, (p) => read(p, opts.signal, allFiles, parseAll)),
    readContainerCpu: (containerId, opts = {}) =>
      readOfContainer(containerId, opts, (p) => read(p, opts.signal, cpuFiles, parseCpu)),
  };
}

export interface CgroupMetricsSourceOptions extends CgroupMetricsOptions {
  /** Parent cgroup of the device's containers (from ensureDeviceCgroup); also read as the device total. */
  cgroupParent?: string;
  /** Default /proc. */
  procRoot?: string;
}

/** The resource manager's metrics source over cgroup files and /proc. */
export function createCgroupMetricsSource(options: CgroupMetricsSourceOptions = {}): MetricsSource {
  const metrics = createCgroupMetrics(options);
  const now = options.now ?? (() => performance.now());
  return {
    async sample(containerIds, opts = {}): Promise<MetricsSample> {
      const { signal } = opts;
      const [host, device, ...containers] = await Promise.all([
        readHostCounters({ procRoot: options.procRoot, now }),
        options.cgroupParent === undefined ? undefined : metrics.readCgroup(options.cgroupParent, { signal }),
        ...containerIds.map((id) =>
          metrics.readContainer(id, { cgroupParent: options.cgroupParent, signal }),
        ),
      ]);
      const byId = new Map<string, CgroupCounters>();
      containerIds.forEach((id, i) => {
        const counters = containers[i];
        if (counters !== undefined) byId.set(id, counters);
      });
      return { atMs: now(), host, device, containers: byId };
    },
    async sampleCpu(containerIds, opts = {}) {
      const byId = new Map<string, CpuCounters>();
      for (const id of containerIds) {
        const counters = await metrics.readContainerCpu(id, {
          cgroupParent: options.cgroupParent,
          signal: opts.signal,
        });
        if (counters !== undefined) byId.set(id, counters);
      }
      return byId;
    },
  };
}
