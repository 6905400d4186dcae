/**
 * Claims and allocation: what each container wants, needs and must keep of a resource, and how a
 * device's capacity is shared out by priority (see the rules in ./index.ts).
 */
import type { ControllerParams } from "./params";
import { recentCpu, type RecentCpu } from "./measurements";
import type { ContainerControlState, ControlledContainer } from "./state";
import type { DecisionReason } from "./decisions";

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
export interface Claim {
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

export interface Entry {
  container: ControlledContainer;
  state: ContainerControlState;
  cpu: Claim;
  memory: Claim;
}

export function roundUpTo(value: number, step: number): number {
  return Math.ceil(value / step - 1e-9) * step;
}

export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/** Why a container counts as starved now: the signal, and the usage its raise starts from. */
export interface Starvation {
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
export function starvation(
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

export function cpuClaim(
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

export function memoryClaim(
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

export function floorsMetric(resource: "cpu" | "memory"): string {
  return resource === "cpu" ? "device.cpuFloorsMillicores" : "device.memoryFloorsMiB";
}

export function round4(v: number): number {
  return Math.round(v * 10_000) / 10_000;
}

/**
 * Allocates one resource across the entries (highest priority first), in place on `grant`.
 * Returns the entries to evict (lowest priority first) when the floors do not fit.
 */
export function allocate(
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
