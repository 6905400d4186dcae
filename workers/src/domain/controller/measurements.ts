/** What the controller reads: cgroup counters, usage over a period, recent CPU samples. */
import { DEFAULT_CONTROLLER_PARAMS, type ControllerParams } from "./params";

/** Cumulative counters of one cgroup at one instant, as the metrics adapter reads them. */
export interface CgroupCounters {
  /** Monotonic ms of the read. */
  atMs: number;
  cpuUsageNs: number;
  /** CFS enforcement periods elapsed, and those in which the cgroup was throttled. */
  cpuPeriods: number;
  cpuThrottledPeriods: number;
  cpuThrottledNs: number;
  memoryUsageBytes: number;
  /** Usage minus inactive file cache: what the kernel cannot drop without swapping or killing. */
  memoryWorkingSetBytes: number;
  /** Current hard limit; Infinity when unlimited. */
  memoryLimitBytes: number;
  /** OOM kills in this cgroup since it was created. */
  oomKills: number;
}

/** The CPU counters alone: what the fast path reads (two small files per container). */
export type CpuCounters = Pick<
  CgroupCounters,
  "atMs" | "cpuUsageNs" | "cpuPeriods" | "cpuThrottledPeriods" | "cpuThrottledNs"
>;

/**
 * A container's CPU over the recent past, judged from its fast-path samples (`recentCpu`). The
 * manager keeps only samples taken since the container's last CPU change: older ones describe
 * another quota.
 */
export interface RecentCpu {
  /** Span of the samples, up to about cpuRecentWindowMs + fastPeriodMs; 0 = fewer than two samples. */
  windowMs: number;
  /** Mean CPU over the window. */
  cpuMillicores: number;
  /** Length of the newest interval between two samples (about fastPeriodMs); 0 = none. */
  lastMs: number;
  /** CPU over the newest interval. */
  lastCpuMillicores: number;
  /** Share of the CFS periods of the newest interval in which the container was throttled. */
  lastThrottledRatio: number;
  /**
   * Intervals in a row, newest first, throttled in at least cpuThrottledRatioUp of their CFS periods
   * while using at least cpuStarvedUtilization of the quota.
   */
  starvedIntervals: number;
}

const NO_RECENT_CPU: Readonly<RecentCpu> = Object.freeze({
  windowMs: 0,
  cpuMillicores: 0,
  lastMs: 0,
  lastCpuMillicores: 0,
  lastThrottledRatio: 0,
  starvedIntervals: 0,
});

/**
 * Recent CPU from a container's samples (oldest first) under a quota of `limitMillicores`: the
 * window runs from the newest sample at least cpuRecentWindowMs older than the last one (or the
 * oldest, when none is that old) to the last one. Counters that go backwards (a recreated cgroup)
 * give no window.
 */
export function recentCpu(
  samples: readonly CpuCounters[],
  limitMillicores: number,
  params: Partial<ControllerParams> = {},
): RecentCpu {
  const p: ControllerParams = { ...DEFAULT_CONTROLLER_PARAMS, ...params };
  const windowMs = p.cpuRecentWindowMs;
  const last = samples.at(-1);
  const previous = samples.at(-2);
  if (last === undefined || previous === undefined) return { ...NO_RECENT_CPU };
  let first = samples[0];
  for (const s of samples) {
    if (last.atMs - s.atMs < windowMs) break;
    first = s;
  }
  const span = last.atMs - first.atMs;
  const lastMs = last.atMs - previous.atMs;
  const cpuNs = last.cpuUsageNs - first.cpuUsageNs;
  const lastNs = last.cpuUsageNs - previous.cpuUsageNs;
  const periods = last.cpuPeriods - previous.cpuPeriods;
  const throttled = last.cpuThrottledPeriods - previous.cpuThrottledPeriods;
  if (!(span > 0 && lastMs > 0) || cpuNs < 0 || lastNs < 0 || periods < 0 || throttled < 0)
    return { ...NO_RECENT_CPU };
  const ratio = (a: CpuCounters, b: CpuCounters) => {
    const n = b.cpuPeriods - a.cpuPeriods;
    return n > 0 ? Math.min(1, Math.max(0, (b.cpuThrottledPeriods - a.cpuThrottledPeriods) / n)) : 0;
  };
  // Throttled, and used at least cpuStarvedUtilization of the quota (m x ms x 1e3 = ns of CPU).
  const starved = (a: CpuCounters, b: CpuCounters) =>
    ratio(a, b) >= p.cpuThrottledRatioUp &&
    b.cpuUsageNs - a.cpuUsageNs >= p.cpuStarvedUtilization * limitMillicores * (b.atMs - a.atMs) * 1e3;
  let starvedIntervals = 0;
  for (let i = samples.length - 1; i > 0 && starved(samples[i - 1], samples[i]); i--) starvedIntervals += 1;
  return {
    windowMs: span,
    cpuMillicores: (cpuNs / (span * 1e6)) * 1000,
    lastMs,
    lastCpuMillicores: (lastNs / (lastMs * 1e6)) * 1000,
    lastThrottledRatio: ratio(previous, last),
    starvedIntervals,
  };
}

/** What a container used over one control period, derived from two reads of its counters. */
export interface ContainerUsage {
  /** Length of the measured interval. */
  periodMs: number;
  cpuMillicores: number;
  /** Share of CFS periods in which the container was throttled (0 when no period elapsed). */
  cpuThrottledRatio: number;
  memoryUsageMiB: number;
  memoryWorkingSetMiB: number;
  /** Change of the working set over the interval, scaled to one control period; negative when shrinking. */
  memoryGrowthMiB: number;
  /** OOM kills during the interval. */
  oomKills: number;
}

const MiB = 1024 * 1024;

/**
 * Usage between two reads of one container's counters; undefined when they cannot be compared (no
 * time elapsed, or counters went backwards because the container was recreated under the same id).
 */
export function usageBetween(
  previous: CgroupCounters,
  current: CgroupCounters,
  periodMs: number = DEFAULT_CONTROLLER_PARAMS.periodMs,
): ContainerUsage | undefined {
  const elapsedMs = current.atMs - previous.atMs;
  if (!(elapsedMs > 0)) return undefined;
  const cpuNs = current.cpuUsageNs - previous.cpuUsageNs;
  const periods = current.cpuPeriods - previous.cpuPeriods;
  const throttled = current.cpuThrottledPeriods - previous.cpuThrottledPeriods;
  const ooms = current.oomKills - previous.oomKills;
  if (cpuNs < 0 || periods < 0 || throttled < 0 || ooms < 0) return undefined;
  return {
    periodMs: elapsedMs,
    cpuMillicores: (cpuNs / (elapsedMs * 1e6)) * 1000,
    cpuThrottledRatio: periods > 0 ? Math.min(1, throttled / periods) : 0,
    memoryUsageMiB: current.memoryUsageBytes / MiB,
    memoryWorkingSetMiB: current.memoryWorkingSetBytes / MiB,
    memoryGrowthMiB:
      ((current.memoryWorkingSetBytes - previous.memoryWorkingSetBytes) / MiB) * (periodMs / elapsedMs),
    oomKills: ooms,
  };
}
