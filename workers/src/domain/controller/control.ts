/** decide() and decideFast(): one control step, as named steps over the claims and the allocation. */
import type { ResourceLimits } from "../container-spec";
import { DEFAULT_CONTROLLER_PARAMS, type ControllerParams } from "./params";
import { recentCpu } from "./measurements";
import type { ContainerControlState, ControlledContainer } from "./state";
import {
  DECISION_RECORD_VERSION,
  type ControlInput,
  type ControlOutput,
  type DecisionReason,
  type DecisionRecord,
  type DecisionResource,
  type Eviction,
} from "./decisions";
import {
  allocate,
  clamp,
  comparePriority,
  cpuClaim,
  floorsMetric,
  memoryClaim,
  starvation,
  type Claim,
  type Entry,
} from "./allocation";

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

/** The per-container claims of a step, sorted by priority, and the container states they update. */
function claimsOf(input: ControlInput, p: ControllerParams, fast: boolean) {
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
      cpu: cpuClaim(container, state, capacity.cpuMillicores, p, fast),
      memory: fast ? pinnedMemory(container) : memoryClaim(container, state, capacity.memoryMiB, p),
    };
  });
  return { entries, nextStates };
}

type RecordDecision = (
  e: Entry,
  resource: DecisionResource,
  from: number,
  to: number,
  reason: DecisionReason,
  metric: string,
  value: number,
  threshold: number,
) => void;

/** Collects the step's decision records, numbered from the state's seq in the order they are made. */
function decisionRecorder(input: ControlInput) {
  const decisions: DecisionRecord[] = [];
  let seq = input.state.seq;
  const record: RecordDecision = (e, resource, from, to, reason, metric, value, threshold) => {
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
  return { decisions, record, seq: () => seq };
}

/** What the allocation gave each kept container, why it was cut, and who was evicted. */
interface Grants {
  cpuGrant: Map<Entry, number>;
  memoryGrant: Map<Entry, number>;
  cpuNote: Map<Entry, DecisionReason>;
  memoryNote: Map<Entry, DecisionReason>;
  evicted: Set<Entry>;
  evictions: Eviction[];
}

/** The fast path's allocation: CPU only; undefined when it would evict or hold everyone at the floors. */
function allocateFast(entries: Entry[], capacity: ControlInput["capacity"]): Grants | undefined {
  const grants: Grants = {
    cpuGrant: new Map(),
    memoryGrant: new Map(),
    cpuNote: new Map(),
    memoryNote: new Map(),
    evicted: new Set(),
    evictions: [],
  };
  const cpu = allocate(entries, (e) => e.cpu, capacity.cpuMillicores, grants.cpuGrant, grants.cpuNote);
  // Evicting, or holding everyone at the floors, is for the period's decide().
  if (cpu.evict.length > 0 || cpu.overCapacity) return undefined;
  for (const e of entries) grants.memoryGrant.set(e, e.memory.current);
  return grants;
}

/**
 * The period's allocation of both resources. Evicting for one resource frees the other too, so
 * both are allocated again until neither evicts; with eviction off, an over-committed resource is
 * reported once and held at the floors.
 */
function allocateWithEvictions(
  entries: Entry[],
  capacity: ControlInput["capacity"],
  p: ControllerParams,
  record: RecordDecision,
): Grants {
  const evictions: Eviction[] = [];
  const evicted = new Set<Entry>();
  for (;;) {
    const live = entries.filter((e) => !evicted.has(e));
    const cpuGrant = new Map<Entry, number>();
    const memoryGrant = new Map<Entry, number>();
    const cpuNote = new Map<Entry, DecisionReason>();
    const memoryNote = new Map<Entry, DecisionReason>();
    const grants = { cpuGrant, memoryGrant, cpuNote, memoryNote, evicted, evictions };
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
      return grants;
    }
    const victim = cpu.evict[0] ?? memory.evict[0];
    if (victim === undefined) return grants;
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
}

/**
 * The new limits of every kept container, a decision record for every resource that changed
 * (naming the device-wide demand when the others shrank it), and the changes to apply. Evicted
 * containers leave `nextStates`.
 */
function applyGrants(
  entries: Entry[],
  grants: Grants,
  nextStates: Record<string, ContainerControlState>,
  capacity: ControlInput["capacity"],
  fast: boolean,
  record: RecordDecision,
) {
  const { cpuGrant, memoryGrant, cpuNote, memoryNote, evicted } = grants;
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
      memoryReservationMiB: Math.min(
        fast || e.container.pinned ? from.memoryReservationMiB : e.container.band.memoryMiBMin,
        memory,
      ),
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
  return { limits, changes };
}

/** One step: claims, then allocation (with evictions in the period's step), then the new limits. */
function control(input: ControlInput, fast: boolean): ControlOutput {
  const p: ControllerParams = { ...DEFAULT_CONTROLLER_PARAMS, ...input.params };
  const capacity = input.capacity;
  // The common case between periods, ten times a second: nobody starved, nothing to allocate.
  if (fast && !input.containers.some((c) => cpuStarvedNow(c, capacity.cpuMillicores, p)))
    return unchanged(input);
  const { entries, nextStates } = claimsOf(input, p, fast);
  const recorder = decisionRecorder(input);
  const grants = fast
    ? allocateFast(entries, capacity)
    : allocateWithEvictions(entries, capacity, p, recorder.record);
  if (grants === undefined) return unchanged(input);
  const { limits, changes } = applyGrants(entries, grants, nextStates, capacity, fast, recorder.record);
  if (fast && recorder.decisions.length === 0) return unchanged(input);
  return {
    state: { seq: recorder.seq(), containers: nextStates },
    limits,
    changes,
    decisions: recorder.decisions,
    evictions: grants.evictions,
  };
}
