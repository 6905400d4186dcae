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
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { CgroupCounters } from "../domain/controller";
import { ShoalError } from "../errors";
import type { MetricsSample, MetricsSource } from "../resource-manager";
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
  /**
   * Counters of a Docker container: its cgroup is `<cgroupParent>/<id>` with the cgroupfs driver
   * (parent default "/docker"), or system.slice/docker-<id>.scope with the systemd driver.
   */
  readContainer(
    containerId: string,
    options?: { cgroupParent?: string; signal?: AbortSignal },
  ): Promise<CgroupCounters | undefined>;
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
  const cpu = parseFlatKeyed(files.cpuStat);
  const mem = parseFlatKeyed(files.memoryStat);
  const oom = parseFlatKeyed(files.oomControl);
  const usage = parseNumber(files.memoryUsage);
  const limit = parseNumber(files.memoryLimit);
  return {
    atMs,
    cpuUsageNs: parseNumber(files.cpuacctUsage),
    cpuPeriods: cpu.nr_periods ?? 0,
    cpuThrottledPeriods: cpu.nr_throttled ?? 0,
    cpuThrottledNs: cpu.throttled_time ?? 0,
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
  const cpu = parseFlatKeyed(files.cpuStat);
  const mem = parseFlatKeyed(files.memoryStat);
  const events = parseFlatKeyed(files.memoryEvents);
  const usage = parseNumber(files.memoryCurrent);
  return {
    atMs,
    cpuUsageNs: (cpu.usage_usec ?? 0) * 1000,
    cpuPeriods: cpu.nr_periods ?? 0,
    cpuThrottledPeriods: cpu.nr_throttled ?? 0,
    cpuThrottledNs: (cpu.throttled_usec ?? 0) * 1000,
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

  async function read(cgroupPath: string, signal?: AbortSignal): Promise<CgroupCounters | undefined> {
    signal?.throwIfAborted();
    const v = await getVersion();
    const rel = cgroupPath.replace(/^\/+/, "");
    const file = (controller: string | undefined, name: string) =>
      controller === undefined ? path.join(root, rel, name) : path.join(root, controller, rel, name);
    try {
      if (v === 2) {
        const [cpuStat, memoryCurrent, memoryStat, memoryMax, memoryEvents] = await Promise.all(
          ["cpu.stat", "memory.current", "memory.stat", "memory.max", "memory.events"].map((n) =>
            readFile(file(undefined, n), "utf8"),
          ),
        );
        return parseV2Counters({ cpuStat, memoryCurrent, memoryStat, memoryMax, memoryEvents }, now());
      }
      const [cpuacctUsage, cpuStat, memoryUsage, memoryStat, memoryLimit, oomControl] = await Promise.all([
        readFile(file("cpuacct", "cpuacct.usage"), "utf8"),
        readFile(file("cpu", "cpu.stat"), "utf8"),
        readFile(file("memory", "memory.usage_in_bytes"), "utf8"),
        readFile(file("memory", "memory.stat"), "utf8"),
        readFile(file("memory", "memory.limit_in_bytes"), "utf8"),
        readFile(file("memory", "memory.oom_control"), "utf8"),
      ]);
      return parseV1Counters(
        { cpuacctUsage, cpuStat, memoryUsage, memoryStat, memoryLimit, oomControl },
        now(),
      );
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

  return {
    version: getVersion,
    readCgroup: (cgroupPath, opts = {}) => read(cgroupPath, opts.signal),
    async readContainer(containerId, opts = {}) {
      if (!/^[0-9a-f]{12,64}$/.test(containerId)) {
        throw new CgroupMetricsError(`"${containerId}" is not a Docker container id (hex)`);
      }
      const parent = opts.cgroupParent ?? "/docker";
      const direct = await read(`${parent}/${containerId}`, opts.signal);
      if (direct !== undefined || opts.cgroupParent !== undefined) return direct;
      return read(`/system.slice/docker-${containerId}.scope`, opts.signal);
    },
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
  };
}
