/** The controller's tunables and their defaults. */

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
