import { createHash } from "node:crypto";
import type { ResourceLimits } from "./container-spec";
import { stableStringify } from "./manifest/canonical";
import type { ResourceBand } from "./manifest";

/**
 * The resource controller: from the limits each container has now and what it used over the last
 * control period, the limits it should have next, inside its band and inside the device's capacity.
 * Pure: no I/O, no clock (the caller passes `at`), so every rule below is a table test.
 *
 * Per container, per resource, three numbers are computed:
 * - `want`: what the container's own rule asks for (raise when throttled or near OOM, lower after a
 *   run of idle periods, else keep);
 * - `need`: what it must keep when others want more: for a starved container its `want` (with the
 *   fast path, only once it has been starved for cpuStarvedIntervals; before, its current limit: a
 *   "tentative" raise, granted from free capacity and idle slack only), for one that is not, its
 *   usage plus headroom (idle slack is reclaimed at once under contention: the slow lowering is only
 *   for a device with room to spare);
 * - `floor`: below this it would not run as promised: the band's min (CPU), or the band's min and
 *   working set / memoryHighRatio (memory: lower would push it into reclaim or OOM).
 * Then, per resource: grant every `want` if the sum fits the capacity; else take slack down to
 * `need`, then cut tentative raises back to `need`, then shrink towards `floor`, lowest priority
 * first in each step; if even the floors do not fit, evict the lowest-priority placement and start
 * over without it.
 *
 * Invariants (tested): every limit is within [band min, min(band max, capacity)], and the limits of
 * the containers kept sum to at most the capacity.
 *
 * Two entry points share these rules: `decide()` once per control period (every resource, every
 * rule), and `decideFast()` between periods, every fastPeriodMs (CPU only: it raises a container
 * throttled now, taking idle slack from the others or shrinking lower-priority ones, and does
 * nothing else). With the fast path on, both judge "starved now" and "idle slack" from the
 * container's recent CPU samples (`cpuSamples`, see `recentCpu`), not from the whole last period: a
 * period-long average still shows the burst that ended half a second ago, and keeps the ended
 * burst's container looking busy while its neighbour's burst starts.
 */

/** Tunables of the controller; DEFAULT_CONTROLLER_PARAMS documents each (also docs/resource-manager.md). */
export interface ControllerParams {
  /** Control period in ms: metrics are scraped and limits decided once per period. */
  periodMs: number;
  /**
   * Fast path, in ms: between control periods the CPU counters are read this often and a container
   * throttled now is raised at once (decideFast). 0, or not below periodMs, turns it off.
   */
  fastPeriodMs: number;
  /**
   * Recent window, in ms: the span of fast samples a container's idle slack is judged on (its mean
   * CPU over the window, plus headroom, is what it keeps when a throttled neighbour needs more), and
   * over which a quota counts as saturated. The window never reaches back before the container's
   * last CPU change, so a limit set less than a window ago is not taken back (hysteresis).
   */
  cpuRecentWindowMs: number;
  /**
   * With the fast path: intervals in a row (each about one CFS period) in which a container was
   * throttled while using at least cpuStarvedUtilization of its quota, before it counts as starved
   * for sure and may shrink busy lower-priority containers (contention). Until then a throttled
   * container is raised from free capacity and idle slack only.
   */
  cpuStarvedIntervals: number;
  /**
   * Usage / quota a throttled interval must reach to count towards cpuStarvedIntervals. A small
   * quota is throttled now and then at half its use (CFS hands quota to each CPU in 5 ms slices,
   * and a slice left on one CPU is missing on another): no hidden demand, and no reason to starve a
   * busy neighbour.
   */
  cpuStarvedUtilization: number;
  /**
   * Share of CFS periods throttled at or above which CPU is raised: within the last control period,
   * or with the fast path within its newest interval.
   */
  cpuThrottledRatioUp: number;
  /**
   * Usage / limit at or above which CPU is raised even without throttling (a saturated quota): over
   * the last control period, or with the fast path over a whole recent window.
   */
  cpuUtilizationUp: number;
  /** Multiplier of the limit when raising CPU (a throttled container's demand is hidden by its quota). */
  cpuUpFactor: number;
  /** Usage / limit below which a period counts as idle. */
  cpuIdleUtilization: number;
  /** Consecutive idle periods before CPU is lowered (hysteresis). */
  cpuDownPeriods: number;
  /** Fraction above measured usage kept when CPU is set from usage (lowering, reclaiming). */
  cpuHeadroom: number;
  /**
   * Millicores above measured usage kept at least when CPU is set from usage: a 1-s average hides
   * the bursts of a request-driven app within each 100 ms CFS period, which a tight quota throttles.
   */
  cpuHeadroomMillicores: number;
  /** Granularity of CPU limits, in millicores; limits are multiples of it. */
  cpuStepMillicores: number;
  /** Working set (plus predicted growth) / limit at or above which memory is raised. */
  memoryHighRatio: number;
  /** Working set / limit aimed at when memory is set from the working set. */
  memoryTargetRatio: number;
  /** Periods of working-set growth (at the last period's rate) the memory limit must absorb. */
  memoryGrowthPeriods: number;
  /** Working set / limit below which a period counts as memory-idle. */
  memoryLowRatio: number;
  /** Consecutive memory-idle periods before memory is lowered (slow: memory comes back slowly). */
  memoryDownPeriods: number;
  /** Each lowering keeps at least this fraction of the memory limit. */
  memoryDownFactor: number;
  /** Lowering never leaves less than this many MiB above the working set. */
  memoryHeadroomMiB: number;
  /** Memory changes smaller than this (MiB) are not made, except to respect the band or capacity. */
  memoryStepMiB: number;
  /** When false, an over-committed device is reported (decision reason "over-capacity") but nothing is evicted. */
  evict: boolean;
}

export const DEFAULT_CONTROLLER_PARAMS: Readonly<ControllerParams> = Object.freeze({
  periodMs: 1000,
  fastPeriodMs: 100,
  cpuRecentWindowMs: 300,
  cpuStarvedIntervals: 2,
  cpuStarvedUtilization: 0.75,
  cpuThrottledRatioUp: 0.05,
  cpuUtilizationUp: 0.9,
  cpuUpFactor: 10,
  cpuIdleUtilization: 0.5,
  cpuDownPeriods: 5,
  cpuHeadroom: 0.5,
  cpuHeadroomMillicores: 50,
  cpuStepMillicores: 10,
  memoryHighRatio: 0.85,
  memoryTargetRatio: 0.7,
  memoryGrowthPeriods: 2,
  memoryLowRatio: 0.5,
  memoryDownPeriods: 10,
  memoryDownFactor: 0.8,
  memoryHeadroomMiB: 32,
  memoryStepMiB: 4,
  evict: true,
});

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

/** A running container the controller manages. */
export interface ControlledContainer {
  containerId: string;
  /** Decimal placement id from the chain. */
  placementId: string;
  band: ResourceBand;
  /** The limits the container has now (as last applied). cpuMillicores 0 = no quota. */
  limits: ResourceLimits;
  /** Undefined on the first period of a container (one read is not a rate): its limits are kept. */
  usage?: ContainerUsage;
  /**
   * With the fast path on: the container's CPU samples since its last CPU change, oldest first,
   * reaching back at least cpuRecentWindowMs once that long has passed. Its recent CPU
   * (`recentCpu`) then decides "starved now" and its idle slack instead of `usage` (still used for
   * the slow idle rule and memory). Required by decideFast.
   */
  cpuSamples?: readonly CpuCounters[];
  /** Explicit priority, higher first (default 0), compared before the band-derived rule. */
  priority?: number;
}

export interface DeviceCapacity {
  cpuMillicores: number;
  memoryMiB: number;
}

/** Hysteresis counters of one container. */
export interface ContainerControlState {
  cpuIdlePeriods: number;
  memoryIdlePeriods: number;
}

export interface ControllerState {
  /** Next decision sequence number of the device (a decision log is append-only). */
  seq: number;
  containers: Record<string, ContainerControlState>;
}

export function initialControllerState(seq = 0): ControllerState {
  return { seq, containers: {} };
}

export type DecisionResource = "cpu" | "memory" | "placement";

/**
 * Why a limit changed:
 * throttled / cpu-saturated (CPU up; by the period or the fast path), cpu-idle (CPU down after cpuDownPeriods idle periods),
 * memory-pressure / oom-kill (memory up), memory-idle (memory down after memoryDownPeriods),
 * reclaimed (idle slack taken back at once because others need it), contention (shrunk towards
 * the band's min because the device is over capacity), band (moved into the band or under the
 * capacity, e.g. a container started unlimited), evicted (the placement is given up), and
 * over-capacity (eviction is disabled and the floors do not fit: all are held at their floors).
 */
export type DecisionReason =
  | "throttled"
  | "cpu-saturated"
  | "cpu-idle"
  | "memory-pressure"
  | "oom-kill"
  | "memory-idle"
  | "reclaimed"
  | "contention"
  | "band"
  | "evicted"
  | "over-capacity";

export const DECISION_RECORD_VERSION = 1;

/**
 * One decision, as published on MQTT and counted in /metrics. Flat, numbers and strings only, so
 * its stable JSON (decisionRecordJson) is the same bytes everywhere and can be hashed into an
 * epoch digest (decisionsDigest) and anchored on chain.
 */
export interface DecisionRecord {
  v: typeof DECISION_RECORD_VERSION;
  /** Per-device sequence number: gaps show lost records. */
  seq: number;
  /** ISO time of the control period (or fast-path tick) that made the decision. */
  at: string;
  deviceId: string;
  placementId: string;
  containerId: string;
  resource: DecisionResource;
  /** Limit before and after: millicores for cpu, MiB for memory; for placement, CPU limit -> 0. */
  from: number;
  to: number;
  reason: DecisionReason;
  /** The metric that triggered the decision, its value and the threshold it crossed. */
  metric: string;
  value: number;
  threshold: number;
}

export interface Eviction {
  containerId: string;
  placementId: string;
  resource: "cpu" | "memory";
}

export interface ControlInput {
  deviceId: string;
  /** ISO time stamped on the decisions. */
  at: string;
  capacity: DeviceCapacity;
  containers: readonly ControlledContainer[];
  state: ControllerState;
  params?: Partial<ControllerParams>;
}

export interface ControlOutput {
  state: ControllerState;
  /** New limits of every container kept (evicted ones are absent), by container id. */
  limits: Record<string, ResourceLimits>;
  /** Containers whose limits differ from their current ones. */
  changes: { containerId: string; placementId: string; from: ResourceLimits; to: ResourceLimits }[];
  decisions: DecisionRecord[];
  evictions: Eviction[];
}

/**
 * Priority order of placements, highest first. A container's explicit `priority` wins; then the
 * band's guaranteed share, cpu min / cpu max (like Kubernetes' QoS classes: an app that reserved
 * all it may use, Guaranteed, outranks one that reserved a tenth, Burstable); then age, older
 * first (a smaller placement id was claimed earlier: the newest arrival moves, the way a newcomer
 * is the first to be asked to leave); then the container id, so the order is total.
 * Returns < 0 when `a` has the higher priority.
 */
export function comparePriority(a: ControlledContainer, b: ControlledContainer): number {
  const explicit = (b.priority ?? 0) - (a.priority ?? 0);
  if (explicit !== 0) return explicit;
  const share = (c: ControlledContainer) =>
    c.band.cpuMillicoresMax > 0 ? c.band.cpuMillicoresMin / c.band.cpuMillicoresMax : 1;
  const byShare = share(b) - share(a);
  if (byShare !== 0) return byShare;
  const age = compareDecimal(a.placementId, b.placementId);
  if (age !== 0) return age;
  return a.containerId < b.containerId ? -1 : a.containerId > b.containerId ? 1 : 0;
}

function compareDecimal(a: string, b: string): number {
  if (/^[0-9]+$/.test(a) && /^[0-9]+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One resource of one container, before the device-wide allocation. */
interface Claim {
  current: number;
  want: number;
  need: number;
  /**
   * A raise on a first sign of starvation (throttled, not yet starved for sure): granted from free
   * capacity and idle slack only; `need` is then the current limit, and the raise above it is cut
   * before any container is shrunk towards its floor.
   */
  tentative?: boolean;
  /**
   * A tentative raise that would not reach this is not made: a few millicores are no help to a
   * container using all of its quota, and the change would restart its observation (recent
   * window, starved streak) just before it may count as starved for sure.
   */
  minGrant?: number;
  floor: number;
  ceiling: number;
  reason: DecisionReason | undefined;
  metric: string;
  value: number;
  threshold: number;
}

interface Entry {
  container: ControlledContainer;
  state: ContainerControlState;
  cpu: Claim;
  memory: Claim;
}

function roundUpTo(value: number, step: number): number {
  return Math.ceil(value / step - 1e-9) * step;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/** Why a container counts as starved now: the signal, and the usage its raise starts from. */
interface Starvation {
  throttled: boolean;
  /** Only the newest interval throttled (fewer than cpuStarvedIntervals): see Claim.tentative. */
  tentative: boolean;
  metric: string;
  value: number;
  threshold: number;
  usedMillicores: number;
}

/**
 * Starved now? With recent samples: throttled in the newest interval (the kernel's own verdict,
 * seen within one fast period), or using cpuUtilizationUp of the quota over a whole recent window
 * (a single short interval is too noisy for that: two 5 ms slices in one 100 ms interval look
 * saturated). Without them: over the last period.
 */
function starvation(
  c: ControlledContainer,
  r: RecentCpu | undefined,
  kept: number,
  p: ControllerParams,
): Starvation | undefined {
  if (r !== undefined) {
    if (r.lastMs > 0 && r.lastThrottledRatio >= p.cpuThrottledRatioUp) {
      return {
        throttled: true,
        tentative: r.starvedIntervals < p.cpuStarvedIntervals,
        metric: "cpu.recentThrottledRatio",
        value: round4(r.lastThrottledRatio),
        threshold: p.cpuThrottledRatioUp,
        usedMillicores: r.lastCpuMillicores,
      };
    }
    const utilization = kept > 0 ? r.cpuMillicores / kept : 0;
    if (r.windowMs >= p.cpuRecentWindowMs && utilization >= p.cpuUtilizationUp) {
      return {
        throttled: false,
        tentative: false,
        metric: "cpu.recentUtilization",
        value: round4(utilization),
        threshold: p.cpuUtilizationUp,
        usedMillicores: r.cpuMillicores,
      };
    }
    return undefined;
  }
  const u = c.usage;
  if (u === undefined) return undefined;
  if (u.cpuThrottledRatio >= p.cpuThrottledRatioUp) {
    return {
      throttled: true,
      tentative: false,
      metric: "cpu.throttledRatio",
      value: round4(u.cpuThrottledRatio),
      threshold: p.cpuThrottledRatioUp,
      usedMillicores: u.cpuMillicores,
    };
  }
  const utilization = kept > 0 ? u.cpuMillicores / kept : 0;
  if (utilization >= p.cpuUtilizationUp) {
    return {
      throttled: false,
      tentative: false,
      metric: "cpu.utilization",
      value: round4(utilization),
      threshold: p.cpuUtilizationUp,
      usedMillicores: u.cpuMillicores,
    };
  }
  return undefined;
}

function cpuClaim(
  c: ControlledContainer,
  s: ContainerControlState,
  capacity: number,
  p: ControllerParams,
  fast: boolean,
): Claim {
  const step = p.cpuStepMillicores;
  const ceiling = Math.min(c.band.cpuMillicoresMax, capacity);
  const floor = Math.min(c.band.cpuMillicoresMin, ceiling);
  const fit = (v: number) => clamp(roundUpTo(v, step), floor, ceiling);
  // 0 = no quota: treat it as unbounded, so it is brought down into the band.
  const current = c.limits.cpuMillicores > 0 ? c.limits.cpuMillicores : Number.POSITIVE_INFINITY;
  const kept = clamp(current, floor, ceiling);
  const base: Claim = {
    current: c.limits.cpuMillicores,
    want: kept,
    need: kept,
    floor,
    ceiling,
    reason: kept !== c.limits.cpuMillicores ? "band" : undefined,
    metric: "cpu.limit",
    value: c.limits.cpuMillicores,
    threshold: kept,
  };
  const u = c.usage;
  const r = c.cpuSamples === undefined ? undefined : recentCpu(c.cpuSamples, kept, p);
  if (fast ? r === undefined : u === undefined) return base;
  const fromUsage = (used: number) =>
    fit(Math.max(used * (1 + p.cpuHeadroom), used + p.cpuHeadroomMillicores));
  const starved = starvation(c, r, kept, p);
  if (starved !== undefined) {
    s.cpuIdlePeriods = 0;
    // The quota hides the real demand: grow geometrically and let the idle rule trim the excess.
    const want = fit(Math.max(kept * p.cpuUpFactor, starved.usedMillicores * (1 + p.cpuHeadroom)));
    return {
      ...base,
      want,
      need: starved.tentative ? kept : want,
      tentative: starved.tentative,
      // What the usage rule would give a container using all of its quota.
      minGrant: starved.tentative ? Math.min(want, fromUsage(kept)) : undefined,
      reason:
        want !== c.limits.cpuMillicores ? (starved.throttled ? "throttled" : "cpu-saturated") : base.reason,
      metric: starved.metric,
      value: starved.value,
      threshold: starved.threshold,
    };
  }
  // What it keeps when others need more: usage plus headroom, over a whole recent window (a limit
  // changed less than a window ago is kept: hysteresis), or over the last period without the fast
  // path.
  const demand =
    r === undefined ? u?.cpuMillicores : r.windowMs >= p.cpuRecentWindowMs ? r.cpuMillicores : undefined;
  const need = demand === undefined ? kept : Math.min(kept, fromUsage(demand));
  // The fast path never lowers a limit on its own: that waits for cpuDownPeriods idle periods.
  if (fast || u === undefined) return { ...base, need };
  const used = u.cpuMillicores;
  const utilization = kept > 0 ? used / kept : 0;
  if (utilization < p.cpuIdleUtilization) {
    s.cpuIdlePeriods += 1;
    // Never below what the recent window shows it uses now.
    const target = fromUsage(Math.max(used, r?.cpuMillicores ?? 0));
    if (s.cpuIdlePeriods >= p.cpuDownPeriods && target < kept) {
      s.cpuIdlePeriods = 0;
      return {
        ...base,
        want: target,
        need: Math.min(need, target),
        reason: "cpu-idle",
        metric: "cpu.utilization",
        value: round4(utilization),
        threshold: p.cpuIdleUtilization,
      };
    }
  } else {
    s.cpuIdlePeriods = 0;
  }
  return {
    ...base,
    need,
    metric: base.reason === "band" ? base.metric : "cpu.utilization",
    value: base.reason === "band" ? base.value : round4(utilization),
    threshold: base.reason === "band" ? base.threshold : p.cpuIdleUtilization,
  };
}

function memoryClaim(
  c: ControlledContainer,
  s: ContainerControlState,
  capacity: number,
  p: ControllerParams,
): Claim {
  const ceiling = Math.min(c.band.memoryMiBMax, capacity);
  const bandFloor = Math.min(c.band.memoryMiBMin, ceiling);
  const current = c.limits.memoryMiB > 0 ? c.limits.memoryMiB : Number.POSITIVE_INFINITY;
  const kept = clamp(current, bandFloor, ceiling);
  const base: Claim = {
    current: c.limits.memoryMiB,
    want: kept,
    need: kept,
    floor: bandFloor,
    ceiling,
    reason: kept !== c.limits.memoryMiB ? "band" : undefined,
    metric: "memory.limit",
    value: c.limits.memoryMiB,
    threshold: kept,
  };
  const u = c.usage;
  if (u === undefined) return base;
  const ws = u.memoryWorkingSetMiB;
  const growth = Math.max(0, u.memoryGrowthMiB) * p.memoryGrowthPeriods;
  const fit = (v: number) => clamp(Math.ceil(v - 1e-9), bandFloor, ceiling);
  // Below ws / highRatio the container would be under pressure at once: that is its floor.
  const floor = fit(ws / p.memoryHighRatio);
  const fromUsage = fit((ws + growth) / p.memoryTargetRatio);
  const ratio = kept > 0 ? ws / kept : 0;
  const predictedRatio = kept > 0 ? (ws + growth) / kept : 0;
  if (u.oomKills > 0 || predictedRatio >= p.memoryHighRatio) {
    s.memoryIdlePeriods = 0;
    const oom = u.oomKills > 0;
    const want = fit(Math.max(fromUsage, oom ? kept * 2 : kept + p.memoryStepMiB));
    return {
      ...base,
      want,
      need: want,
      floor: Math.max(floor, Math.min(want, kept)),
      reason: want !== c.limits.memoryMiB ? (oom ? "oom-kill" : "memory-pressure") : base.reason,
      metric: oom ? "memory.oomKills" : "memory.predictedWorkingSetRatio",
      value: oom ? u.oomKills : round4(predictedRatio),
      threshold: oom ? 0 : p.memoryHighRatio,
    };
  }
  const need = Math.max(floor, Math.min(kept, fromUsage));
  if (ratio < p.memoryLowRatio) {
    s.memoryIdlePeriods += 1;
    if (s.memoryIdlePeriods >= p.memoryDownPeriods) {
      const target = fit(
        Math.max(fromUsage, ws + p.memoryHeadroomMiB, Math.floor(kept * p.memoryDownFactor)),
      );
      if (kept - target >= p.memoryStepMiB) {
        s.memoryIdlePeriods = 0;
        return {
          ...base,
          want: target,
          need,
          floor,
          reason: "memory-idle",
          metric: "memory.workingSetRatio",
          value: round4(ratio),
          threshold: p.memoryLowRatio,
        };
      }
    }
  } else {
    s.memoryIdlePeriods = 0;
  }
  return { ...base, need, floor };
}

function floorsMetric(resource: "cpu" | "memory"): string {
  return resource === "cpu" ? "device.cpuFloorsMillicores" : "device.memoryFloorsMiB";
}

function round4(v: number): number {
  return Math.round(v * 10_000) / 10_000;
}

/**
 * Allocates one resource across the entries (highest priority first), in place on `grant`.
 * Returns the entries to evict (lowest priority first) when the floors do not fit.
 */
function allocate(
  entries: Entry[],
  pick: (e: Entry) => Claim,
  capacity: number,
  grant: Map<Entry, number>,
  note: Map<Entry, DecisionReason>,
): { evict: Entry[]; overCapacity: boolean } {
  const live = [...entries];
  const evict: Entry[] = [];
  for (;;) {
    const floors = live.reduce((sum, e) => sum + pick(e).floor, 0);
    if (floors <= capacity || live.length === 0) break;
    // The floors alone do not fit: the lowest-priority placement goes (live is sorted, highest first).
    evict.push(live.pop() as Entry);
  }
  // A tentative raise cut below its minGrant is dropped (the container keeps its need) and the
  // allocation is done again without it, so the others keep the slack it would have taken.
  const dropped = new Set<Entry>();
  let total: number;
  for (;;) {
    grant.clear();
    note.clear();
    for (const e of live) grant.set(e, dropped.has(e) ? pick(e).need : pick(e).want);
    total = live.reduce((sum, e) => sum + (grant.get(e) as number), 0);
    // Lowest priority first: reclaim slack above need, then cut tentative raises back to need,
    // then shrink towards the floor.
    for (const phase of ["slack", "tentative", "floor"] as const) {
      for (let i = live.length - 1; i >= 0 && total > capacity; i--) {
        const e = live[i];
        const claim = pick(e);
        if (phase !== "floor" && (claim.tentative === true) !== (phase === "tentative")) continue;
        const has = grant.get(e) as number;
        const cut = Math.min(has - (phase === "floor" ? claim.floor : claim.need), total - capacity);
        if (cut <= 0) continue;
        grant.set(e, has - cut);
        total -= cut;
        note.set(e, phase === "floor" ? "contention" : "reclaimed");
      }
    }
    const small = live.find((e) => {
      const claim = pick(e);
      const granted = grant.get(e) as number;
      return (
        !dropped.has(e) && claim.minGrant !== undefined && granted > claim.current && granted < claim.minGrant
      );
    });
    if (small === undefined) break;
    dropped.add(small);
  }
  return { evict, overCapacity: total > capacity };
}

/**
 * One control period: the new limits of every container, the decisions that explain each change,
 * and the placements to evict. `input.state` is not modified.
 */
export function decide(input: ControlInput): ControlOutput {
  return control(input, false);
}

/**
 * Between two periods (the fast path): raises the CPU of every container starved now (see
 * `RecentCpu`; each container needs its `recentCpu`), taking idle slack from the others and then
 * shrinking lower-priority ones, by the same rules and allocation as `decide()`. It does nothing
 * else: memory is untouched, no limit is lowered on its own, nothing is evicted (when the CPU floors
 * do not fit it does nothing). When it decides nothing it returns the limits unchanged and
 * `input.state` itself.
 */
export function decideFast(input: ControlInput): ControlOutput {
  return control(input, true);
}

/** Memory as it is: the fast path does not touch it. */
function pinnedMemory(c: ControlledContainer): Claim {
  const mib = c.limits.memoryMiB;
  return {
    current: mib,
    want: mib,
    need: mib,
    floor: mib,
    ceiling: mib,
    reason: undefined,
    metric: "memory.limit",
    value: mib,
    threshold: mib,
  };
}

function unchanged(input: ControlInput): ControlOutput {
  const limits: Record<string, ResourceLimits> = {};
  for (const c of input.containers) limits[c.containerId] = c.limits;
  return { state: input.state, limits, changes: [], decisions: [], evictions: [] };
}

/** Starved now and below its ceiling (what the fast path checks first, before any allocation). */
function cpuStarvedNow(c: ControlledContainer, capacity: number, p: ControllerParams): boolean {
  if (c.cpuSamples === undefined) return false;
  const ceiling = Math.min(c.band.cpuMillicoresMax, capacity);
  const floor = Math.min(c.band.cpuMillicoresMin, ceiling);
  const kept = clamp(c.limits.cpuMillicores > 0 ? c.limits.cpuMillicores : Infinity, floor, ceiling);
  return kept < ceiling && starvation(c, recentCpu(c.cpuSamples, kept, p), kept, p) !== undefined;
}

function control(input: ControlInput, fast: boolean): ControlOutput {
  const p: ControllerParams = { ...DEFAULT_CONTROLLER_PARAMS, ...input.params };
  const capacity = input.capacity;
  // The common case between periods, ten times a second: nobody starved, nothing to allocate.
  if (fast && !input.containers.some((c) => cpuStarvedNow(c, capacity.cpuMillicores, p)))
    return unchanged(input);
  const containers = [...input.containers].sort(comparePriority);
  const nextStates: Record<string, ContainerControlState> = {};
  const entries: Entry[] = containers.map((container) => {
    const previous = input.state.containers[container.containerId];
    const state: ContainerControlState = previous
      ? { ...previous }
      : { cpuIdlePeriods: 0, memoryIdlePeriods: 0 };
    nextStates[container.containerId] = state;
    return {
      container,
      state,
      cpu: cpuClaim(container, state, capacity.cpuMillicores, p, fast),
      memory: fast ? pinnedMemory(container) : memoryClaim(container, state, capacity.memoryMiB, p),
    };
  });

  const decisions: DecisionRecord[] = [];
  let seq = input.state.seq;
  const record = (
    e: Entry,
    resource: DecisionResource,
    from: number,
    to: number,
    reason: DecisionReason,
    metric: string,
    value: number,
    threshold: number,
  ) => {
    decisions.push({
      v: DECISION_RECORD_VERSION,
      seq: seq++,
      at: input.at,
      deviceId: input.deviceId,
      placementId: e.container.placementId,
      containerId: e.container.containerId,
      resource,
      from,
      to,
      reason,
      metric,
      value,
      threshold,
    });
  };

  const evictions: Eviction[] = [];
  const evicted = new Set<Entry>();
  let cpuGrant = new Map<Entry, number>();
  let memoryGrant = new Map<Entry, number>();
  let cpuNote = new Map<Entry, DecisionReason>();
  let memoryNote = new Map<Entry, DecisionReason>();
  if (fast) {
    const cpu = allocate(entries, (e) => e.cpu, capacity.cpuMillicores, cpuGrant, cpuNote);
    // Evicting, or holding everyone at the floors, is for the period's decide().
    if (cpu.evict.length > 0 || cpu.overCapacity) return unchanged(input);
    for (const e of entries) memoryGrant.set(e, e.memory.current);
  }
  // Evicting for one resource frees the other too, so allocate both again until neither evicts.
  while (!fast) {
    const live = entries.filter((e) => !evicted.has(e));
    cpuGrant = new Map();
    memoryGrant = new Map();
    cpuNote = new Map();
    memoryNote = new Map();
    const cpu = allocate(live, (e) => e.cpu, capacity.cpuMillicores, cpuGrant, cpuNote);
    const memory = allocate(live, (e) => e.memory, capacity.memoryMiB, memoryGrant, memoryNote);
    if (!p.evict) {
      // Report once per period and hold the over-committed resource at the floors; the kernel's
      // device cgroup still enforces the capacity.
      for (const [resource, result, grant, note, cap] of [
        ["cpu", cpu, cpuGrant, cpuNote, capacity.cpuMillicores],
        ["memory", memory, memoryGrant, memoryNote, capacity.memoryMiB],
      ] as const) {
        const first = result.evict[0];
        if (first === undefined) continue;
        const floors = live.reduce((sum, e) => sum + e[resource].floor, 0);
        const { cpuMillicores } = first.container.limits;
        record(
          first,
          "placement",
          cpuMillicores,
          cpuMillicores,
          "over-capacity",
          floorsMetric(resource),
          floors,
          cap,
        );
        for (const e of live) {
          grant.set(e, e[resource].floor);
          note.set(e, "contention");
        }
      }
      break;
    }
    const victim = cpu.evict[0] ?? memory.evict[0];
    if (victim === undefined) break;
    const resource = cpu.evict[0] !== undefined ? "cpu" : "memory";
    const floors = live.reduce((sum, e) => sum + e[resource].floor, 0);
    evicted.add(victim);
    evictions.push({
      containerId: victim.container.containerId,
      placementId: victim.container.placementId,
      resource,
    });
    record(
      victim,
      "placement",
      victim.container.limits.cpuMillicores,
      0,
      "evicted",
      floorsMetric(resource),
      floors,
      resource === "cpu" ? capacity.cpuMillicores : capacity.memoryMiB,
    );
  }

  const limits: Record<string, ResourceLimits> = {};
  const changes: ControlOutput["changes"] = [];
  const cpuTotal = [...cpuGrant.values()].reduce((a, b) => a + b, 0);
  const memoryTotal = [...memoryGrant.values()].reduce((a, b) => a + b, 0);
  for (const e of entries) {
    if (evicted.has(e)) {
      delete nextStates[e.container.containerId];
      continue;
    }
    const from = e.container.limits;
    const cpu = cpuGrant.get(e) as number;
    const memory = memoryGrant.get(e) as number;
    const to: ResourceLimits = {
      cpuMillicores: cpu,
      memoryMiB: memory,
      // The soft limit is the band's min (what the claim reserved), never above the hard limit.
      memoryReservationMiB: fast
        ? from.memoryReservationMiB
        : Math.min(e.container.band.memoryMiBMin, memory),
    };
    limits[e.container.containerId] = to;
    for (const [resource, claim, granted, note, total, cap] of [
      ["cpu", e.cpu, cpu, cpuNote.get(e), cpuTotal, capacity.cpuMillicores],
      ["memory", e.memory, memory, memoryNote.get(e), memoryTotal, capacity.memoryMiB],
    ] as const) {
      if (granted === claim.current) continue;
      // Shrunk below what it had because of the others: the device set this limit, so name the
      // device-wide demand. A raise capped by the others keeps its own reason (it still went up).
      if (note !== undefined && granted !== claim.want && granted < claim.current) {
        const demand = total - granted + claim.want;
        record(e, resource, claim.current, granted, note, `device.${resource}Demand`, demand, cap);
      } else {
        record(
          e,
          resource,
          claim.current,
          granted,
          claim.reason ?? "band",
          claim.metric,
          claim.value,
          claim.threshold,
        );
      }
    }
    if (
      to.cpuMillicores !== from.cpuMillicores ||
      to.memoryMiB !== from.memoryMiB ||
      to.memoryReservationMiB !== from.memoryReservationMiB
    ) {
      changes.push({
        containerId: e.container.containerId,
        placementId: e.container.placementId,
        from,
        to,
      });
    }
  }
  if (fast && decisions.length === 0) return unchanged(input);
  return { state: { seq, containers: nextStates }, limits, changes, decisions, evictions };
}

/** The record's canonical bytes: stable JSON, keys sorted. */
export function decisionRecordJson(record: DecisionRecord): string {
  return stableStringify(record);
}

/** sha256 (hex, 0x-prefixed) of a record's canonical JSON. */
export function decisionRecordHash(record: DecisionRecord): string {
  return `0x${createHash("sha256").update(decisionRecordJson(record)).digest("hex")}`;
}

/**
 * Digest of an epoch's decisions, in seq order, as a hash chain: h0 = 32 zero bytes, h(i+1) =
 * sha256(h(i) || sha256(record i)). One 32-byte value per epoch is what goes on chain; anyone with
 * the MQTT log of the epoch recomputes it, and a dropped, added or altered record changes it.
 */
export function decisionsDigest(records: readonly DecisionRecord[]): string {
  let digest = Buffer.alloc(32);
  for (const r of [...records].sort((a, b) => a.seq - b.seq)) {
    const leaf = createHash("sha256").update(decisionRecordJson(r)).digest();
    digest = createHash("sha256")
      .update(Buffer.concat([digest, leaf]))
      .digest();
  }
  return `0x${digest.toString("hex")}`;
}
