import { createHash } from "node:crypto";
import type { ResourceLimits } from "./container-spec";
import { stableStringify } from "./manifest";
import type { ResourceBand } from "./manifest";

/**
 * The resource controller: from the limits each container has now and what it used over the last
 * control period, the limits it should have next, inside its band and inside the device's capacity.
 * Pure: no I/O, no clock (the caller passes `at`), so every rule below is a table test.
 *
 * Per container, per resource, three numbers are computed:
 * - `want`: what the container's own rule asks for (raise when throttled or near OOM, lower after a
 *   run of idle periods, else keep);
 * - `need`: what it must keep when others want more: for a starved container its `want`, for one
 *   that is not, its usage plus headroom (idle slack is reclaimed at once under contention: the
 *   slow lowering is only for a device with room to spare);
 * - `floor`: below this it would not run as promised: the band's min (CPU), or the band's min and
 *   working set / memoryHighRatio (memory: lower would push it into reclaim or OOM).
 * Then, per resource: grant every `want` if the sum fits the capacity; else take slack down to
 * `need`, then shrink towards `floor`, lowest priority first; if even the floors do not fit, evict
 * the lowest-priority placement and start over without it.
 *
 * Invariants (tested): every limit is within [band min, min(band max, capacity)], and the limits of
 * the containers kept sum to at most the capacity.
 */

/** Tunables of the controller; DEFAULT_CONTROLLER_PARAMS documents each (also docs/resource-manager.md). */
export interface ControllerParams {
  /** Control period in ms: metrics are scraped and limits decided once per period. */
  periodMs: number;
  /** Share of CFS periods throttled within a control period at or above which CPU is raised. */
  cpuThrottledRatioUp: number;
  /** Usage / limit at or above which CPU is raised even without throttling (a saturated quota). */
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
 * throttled / cpu-saturated (CPU up), cpu-idle (CPU down after cpuDownPeriods idle periods),
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
  /** ISO time of the control period that made the decision. */
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

function cpuClaim(
  c: ControlledContainer,
  s: ContainerControlState,
  capacity: number,
  p: ControllerParams,
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
  if (u === undefined) return base;
  const used = u.cpuMillicores;
  const utilization = kept > 0 ? used / kept : 0;
  const fromUsage = fit(Math.max(used * (1 + p.cpuHeadroom), used + p.cpuHeadroomMillicores));
  if (u.cpuThrottledRatio >= p.cpuThrottledRatioUp || utilization >= p.cpuUtilizationUp) {
    s.cpuIdlePeriods = 0;
    // The quota hides the real demand: grow geometrically and let the idle rule trim the excess.
    const want = fit(Math.max(kept * p.cpuUpFactor, used * (1 + p.cpuHeadroom)));
    const throttled = u.cpuThrottledRatio >= p.cpuThrottledRatioUp;
    return {
      ...base,
      want,
      need: want,
      reason: want !== c.limits.cpuMillicores ? (throttled ? "throttled" : "cpu-saturated") : base.reason,
      metric: throttled ? "cpu.throttledRatio" : "cpu.utilization",
      value: round4(throttled ? u.cpuThrottledRatio : utilization),
      threshold: throttled ? p.cpuThrottledRatioUp : p.cpuUtilizationUp,
    };
  }
  const need = Math.min(kept, fromUsage);
  if (utilization < p.cpuIdleUtilization) {
    s.cpuIdlePeriods += 1;
    if (s.cpuIdlePeriods >= p.cpuDownPeriods && fromUsage < kept) {
      s.cpuIdlePeriods = 0;
      return {
        ...base,
        want: fromUsage,
        need,
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
  for (const e of live) grant.set(e, pick(e).want);
  let total = live.reduce((sum, e) => sum + (grant.get(e) as number), 0);
  // Lowest priority first: reclaim slack above need, then shrink towards the floor.
  for (const phase of ["need", "floor"] as const) {
    for (let i = live.length - 1; i >= 0 && total > capacity; i--) {
      const e = live[i];
      const claim = pick(e);
      const has = grant.get(e) as number;
      const cut = Math.min(has - claim[phase], total - capacity);
      if (cut <= 0) continue;
      grant.set(e, has - cut);
      total -= cut;
      note.set(e, phase === "need" ? "reclaimed" : "contention");
    }
  }
  return { evict, overCapacity: total > capacity };
}

/**
 * One control period: the new limits of every container, the decisions that explain each change,
 * and the placements to evict. `input.state` is not modified.
 */
export function decide(input: ControlInput): ControlOutput {
  const p: ControllerParams = { ...DEFAULT_CONTROLLER_PARAMS, ...input.params };
  const capacity = input.capacity;
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
      cpu: cpuClaim(container, state, capacity.cpuMillicores, p),
      memory: memoryClaim(container, state, capacity.memoryMiB, p),
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
  // Evicting for one resource frees the other too, so allocate both again until neither evicts.
  for (;;) {
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
      memoryReservationMiB: Math.min(e.container.band.memoryMiBMin, memory),
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
