/**
 * The desired state of placements, devices and deployments, derived purely from chain events.
 *
 * `applyEvents` is the reducer. `DerivedState` adds what reorgs need: the state at a base block
 * below the reorg window plus a journal of the events since, so a rollback to any block inside
 * the window is "base + journal up to that block" with no chain access. What is settled below the
 * window (ended placements, stopped deployments without placements) leaves the derived state, so it
 * stays the size of what is live however long the chain runs. No I/O, no clock.
 */
import { chainBandOf, type ChainResourceBand } from "./band";
import { placementTransition, type DeploymentRef, type PlacementRef } from "./placement";
import type { ChainEvent, JsonValue } from "./chain-event";
import { DEVICE_STATUSES, FAILURE_CODES, PLACEMENT_STATES, RELEASE_REASONS } from "./chain-enums";

export { DEVICE_STATUSES, FAILURE_CODES, PLACEMENT_STATES, RELEASE_REASONS };

export type PlacementStateName = (typeof PLACEMENT_STATES)[number];
export type DeviceStatusName = (typeof DEVICE_STATUSES)[number];

/** The event that last changed an entity. */
export interface Provenance {
  eventId: string;
  event: string;
  blockNumber: number;
  timestamp: number;
}

export interface PlacementDesired extends PlacementRef {
  deploymentGeneration: number;
  deviceGeneration: number;
  band: ChainResourceBand;
  state: PlacementStateName;
  /** FailureCode name once Failed. */
  failure: string | null;
  /** ReleaseReason name once Released. */
  releaseReason: string | null;
  claimedBlock: number;
  updated: Provenance;
}

export interface DeviceDesired {
  deviceId: number;
  owner: string;
  operator: string;
  platform: string;
  cpuMillicores: number;
  memoryMiB: number;
  labels: string[];
  endpoint: string;
  /** Token base units, decimal string. */
  stake: string;
  status: DeviceStatusName;
  /** Unix seconds at which an exiting device may withdraw. */
  withdrawableAt: number | null;
  lastHeartbeat: { blockNumber: number; timestamp: number } | null;
  /** The last liveness expiry, if any. */
  lastExpiry: { generation: number; placements: number; blockNumber: number } | null;
  updated: Provenance;
}

export interface DeploymentSpec {
  manifestCid: string;
  platforms: string[];
  imageCids: string[];
  band: ChainResourceBand;
}

export interface DeploymentDesired extends DeploymentRef {
  generation: number;
  replicas: number;
  active: boolean;
  requiredLabels: string[];
  spec: DeploymentSpec;
  updated: Provenance;
}

export interface DesiredState {
  placements: Record<string, PlacementDesired>;
  devices: Record<string, DeviceDesired>;
  deployments: Record<string, DeploymentDesired>;
}

export type EntityKind = "placement" | "device" | "deployment";

export interface EntityRef {
  kind: EntityKind;
  id: string;
}

export function emptyDesiredState(): DesiredState {
  return { placements: {}, devices: {}, deployments: {} };
}

type Args = Record<string, JsonValue>;
const num = (v: JsonValue | undefined) => Number(v);
const str = (v: JsonValue | undefined) => String(v);
const strings = (v: JsonValue | undefined) => (Array.isArray(v) ? v.map(String) : []);

const band = (v: JsonValue | undefined): ChainResourceBand => chainBandOf((v ?? {}) as Args);

function spec(v: JsonValue | undefined): DeploymentSpec {
  const s = (v ?? {}) as Args;
  return {
    manifestCid: str(s.manifestCid),
    platforms: strings(s.platforms),
    imageCids: strings(s.imageCids),
    band: band(s.band),
  };
}

function provenance(e: ChainEvent): Provenance {
  return { eventId: e.id, event: e.event, blockNumber: e.blockNumber, timestamp: e.timestamp };
}

/** The entity an event changes, or null for events that change none (roles, parameters, ...). */
export function entityOf(e: ChainEvent): EntityRef | null {
  switch (e.contract) {
    case "PlacementRegistry":
      if (e.event === "DeviceExpired") return { kind: "device", id: str(e.args.deviceId) };
      return e.event.startsWith("Placement") ? { kind: "placement", id: str(e.args.placementId) } : null;
    case "DeviceRegistry":
      return e.event.startsWith("Device") ? { kind: "device", id: str(e.args.deviceId) } : null;
    case "AppRegistry":
      return e.event.startsWith("Deployment") ? { kind: "deployment", id: str(e.args.deploymentId) } : null;
    default:
      return null;
  }
}

const key = (ref: EntityRef) => `${ref.kind}:${ref.id}`;

/**
 * Applies events in order. Pure: the input state is not modified, unchanged entities are shared.
 * Returns the entities the events touched (in first-touch order), whether or not their fields
 * ended up different.
 */
export function applyEvents(
  state: DesiredState,
  events: readonly ChainEvent[],
): { state: DesiredState; changed: EntityRef[] } {
  // One shallow copy per map and batch, then in-place updates of the copies: a batch of n events
  // costs O(entities + n), not O(entities * n).
  const next: DesiredState = {
    placements: { ...state.placements },
    devices: { ...state.devices },
    deployments: { ...state.deployments },
  };
  const changed = new Map<string, EntityRef>();
  for (const e of events) {
    const ref = entityOf(e);
    if (!ref || !applyOne(next, ref, e)) continue;
    if (!changed.has(key(ref))) changed.set(key(ref), ref);
  }
  return { state: next, changed: [...changed.values()] };
}

/** True when the event changed the entity; events about unknown entities are ignored. */
function applyOne(s: DesiredState, ref: EntityRef, e: ChainEvent): boolean {
  const a = e.args;
  const updated = provenance(e);
  if (ref.kind === "placement") {
    const current = s.placements[ref.id];
    if (e.event === "PlacementClaimed") {
      s.placements[ref.id] = {
        placementId: ref.id,
        deploymentId: num(a.deploymentId),
        deviceId: num(a.deviceId),
        appId: num(a.appId),
        version: num(a.version),
        deploymentGeneration: num(a.deploymentGeneration),
        deviceGeneration: num(a.deviceGeneration),
        band: band(a.band),
        state: "Claimed",
        failure: null,
        releaseReason: null,
        claimedBlock: e.blockNumber,
        updated,
      };
      return true;
    }
    if (!current) return false;
    const t = placementTransition(e.event, a);
    if (t === undefined) return false;
    s.placements[ref.id] = {
      ...current,
      state: t.state,
      ...(t.releaseReason !== undefined ? { releaseReason: t.releaseReason } : {}),
      ...(t.failure !== undefined ? { failure: t.failure } : {}),
      updated,
    };
    return true;
  }

  if (ref.kind === "device") {
    const current = s.devices[ref.id];
    if (e.event === "DeviceEnrolled") {
      s.devices[ref.id] = {
        deviceId: num(a.deviceId),
        owner: str(a.owner),
        operator: str(a.operator),
        platform: str(a.platform),
        cpuMillicores: num(a.cpuMillicores),
        memoryMiB: num(a.memoryMiB),
        labels: strings(a.labels),
        endpoint: str(a.endpoint),
        stake: str(a.stake),
        status: "Active",
        withdrawableAt: null,
        lastHeartbeat: null,
        lastExpiry: null,
        updated,
      };
      return true;
    }
    if (!current) return false;
    let patch: Partial<DeviceDesired>;
    switch (e.event) {
      case "DeviceHeartbeat":
        patch = { lastHeartbeat: { blockNumber: e.blockNumber, timestamp: e.timestamp } };
        break;
      case "DeviceOperatorChanged":
        patch = { operator: str(a.newOperator) };
        break;
      case "DeviceEndpointChanged":
        patch = { endpoint: str(a.endpoint) };
        break;
      case "DeviceStakeIncreased":
      case "DeviceSlashed":
        patch = { stake: str(a.stake) };
        break;
      case "DeviceExitRequested":
        patch = { status: "Exiting", withdrawableAt: num(a.withdrawableAt), stake: str(a.stake) };
        break;
      case "DeviceExited":
        patch = { status: "Exited", stake: "0" };
        break;
      case "DeviceExpired":
        patch = {
          lastExpiry: {
            generation: num(a.generation),
            placements: num(a.placements),
            blockNumber: e.blockNumber,
          },
        };
        break;
      default:
        return false;
    }
    s.devices[ref.id] = { ...current, ...patch, updated };
    return true;
  }

  const current = s.deployments[ref.id];
  if (e.event === "DeploymentCreated") {
    s.deployments[ref.id] = {
      deploymentId: num(a.deploymentId),
      appId: num(a.appId),
      version: num(a.version),
      generation: num(a.generation),
      replicas: num(a.replicas),
      active: true,
      requiredLabels: strings(a.requiredLabels),
      spec: spec(a.spec),
      updated,
    };
    return true;
  }
  if (!current) return false;
  switch (e.event) {
    case "DeploymentScaled":
      s.deployments[ref.id] = { ...current, replicas: num(a.replicas), updated };
      return true;
    case "DeploymentRolled":
      s.deployments[ref.id] = {
        ...current,
        version: num(a.version),
        generation: num(a.generation),
        spec: spec(a.spec),
        updated,
      };
      return true;
    case "DeploymentStopped":
      s.deployments[ref.id] = { ...current, active: false, generation: num(a.generation), updated };
      return true;
    default:
      return false;
  }
}

/** The entity's current value, or undefined when it does not exist (any more). */
export function lookup(
  state: DesiredState,
  ref: EntityRef,
): PlacementDesired | DeviceDesired | DeploymentDesired | undefined {
  if (ref.kind === "placement") return state.placements[ref.id];
  if (ref.kind === "device") return state.devices[ref.id];
  return state.deployments[ref.id];
}

export function allEntities(state: DesiredState): EntityRef[] {
  return [
    ...Object.keys(state.placements).map((id) => ({ kind: "placement" as const, id })),
    ...Object.keys(state.devices).map((id) => ({ kind: "device" as const, id })),
    ...Object.keys(state.deployments).map((id) => ({ kind: "deployment" as const, id })),
  ];
}

// ---------------------------------------------------------------------------------------------------
// Reorg-aware derivation

/** Placement states no event leaves: the contract emits nothing more about such a placement. */
const ENDED_PLACEMENT_STATES: readonly PlacementStateName[] = ["Released", "Failed", "Expired"];

/**
 * The state without what is settled at `block`: placements that ended, and stopped deployments none
 * of whose placements is left, last changed at or below `block`. The chain emits nothing more about
 * them (a stopped deployment takes no claims, an ended placement no transitions), so dropping them
 * changes no later derivation, and once `block` is below the reorg window no reorg the source
 * reports can revive them. Their retained MQTT state is not cleared: it keeps their final value.
 * Returns `state` itself when nothing is settled.
 */
export function withoutSettled(state: DesiredState, block: number): DesiredState {
  const placements = Object.entries(state.placements).filter(
    ([, p]) => ENDED_PLACEMENT_STATES.includes(p.state) && p.updated.blockNumber <= block,
  );
  const ended = new Set(placements.map(([id]) => id));
  const withPlacements = new Set<number>();
  for (const [id, p] of Object.entries(state.placements))
    if (!ended.has(id)) withPlacements.add(p.deploymentId);
  const deployments = Object.entries(state.deployments).filter(
    ([, d]) => !d.active && d.updated.blockNumber <= block && !withPlacements.has(d.deploymentId),
  );
  if (placements.length === 0 && deployments.length === 0) return state;
  const next: DesiredState = {
    ...state,
    placements: { ...state.placements },
    deployments: { ...state.deployments },
  };
  for (const [id] of placements) delete next.placements[id];
  for (const [id] of deployments) delete next.deployments[id];
  return next;
}

export interface DerivedState {
  /** Last block whose events are in `state`. */
  block: number;
  /** Last block folded into `base`; at most `block - window`, so every reorg the source reports is above it. */
  baseBlock: number;
  /** The state as of baseBlock, without what is settled there (see withoutSettled). */
  base: DesiredState;
  /** Events of the blocks after baseBlock, in chain order. */
  journal: ChainEvent[];
  /** base + journal, kept to avoid replaying on every read; settled entities dropped as from base. */
  state: DesiredState;
}

/** Nothing derived yet: the next events start at `block + 1`. */
export function initialDerived(block: number): DerivedState {
  const empty = emptyDesiredState();
  return { block, baseBlock: block, base: empty, journal: [], state: empty };
}

/** Rebuilds `state` from a persisted base and journal. */
export function restoreDerived(saved: Omit<DerivedState, "state">): DerivedState {
  return { ...saved, state: applyEvents(saved.base, saved.journal).state };
}

/**
 * Adds the events of the blocks up to `toBlock` (only those after `derived.block` count, so a
 * re-delivered batch is harmless), folds journal entries at or below `toBlock - window` into the
 * base and drops from base and state what is settled at that floor. `values` is the state right
 * after the events, before anything left it: read the values of `changed` from it, since a batch
 * that spans more than the window may end an entity and settle it at once.
 */
export function advance(
  derived: DerivedState,
  events: readonly ChainEvent[],
  toBlock: number,
  window: number,
): { derived: DerivedState; changed: EntityRef[]; applied: ChainEvent[]; values: DesiredState } {
  if (toBlock <= derived.block) return { derived, changed: [], applied: [], values: derived.state };
  const applied = events.filter((e) => e.blockNumber > derived.block);
  const { state: values, changed } = applyEvents(derived.state, applied);
  let state = values;
  let journal = derived.journal.concat(applied);
  let base = derived.base;
  let baseBlock = derived.baseBlock;
  const floor = toBlock - window;
  if (floor > baseBlock) {
    const cut = journal.findIndex((e) => e.blockNumber > floor);
    const folded = cut < 0 ? journal : journal.slice(0, cut);
    if (folded.length > 0) base = applyEvents(base, folded).state;
    // Both, at the same floor: an entity settled there was last changed in `base`, so `state`
    // holds the same value, and state stays base + journal.
    base = withoutSettled(base, floor);
    state = withoutSettled(state, floor);
    journal = cut < 0 ? [] : journal.slice(cut);
    baseBlock = floor;
  }
  return { derived: { block: toBlock, baseBlock, base, journal, state }, changed, applied, values };
}

/**
 * The state as of `ancestor`. Returns the entities whose value may differ from before (those the
 * dropped events touched) and the dropped events. A reorg below the base (only the source's
 * "deeper than the window" answer, with ancestor = startBlock - 1) starts over from nothing.
 */
export function rollback(
  derived: DerivedState,
  ancestor: number,
): { derived: DerivedState; changed: EntityRef[]; removed: ChainEvent[] } {
  if (ancestor >= derived.block) return { derived, changed: [], removed: [] };
  if (ancestor < derived.baseBlock) {
    return {
      derived: initialDerived(ancestor),
      changed: allEntities(derived.state),
      removed: derived.journal,
    };
  }
  const cut = derived.journal.findIndex((e) => e.blockNumber > ancestor);
  const kept = cut < 0 ? derived.journal : derived.journal.slice(0, cut);
  const removed = cut < 0 ? [] : derived.journal.slice(cut);
  const seen = new Map<string, EntityRef>();
  for (const e of removed) {
    const ref = entityOf(e);
    if (ref) seen.set(key(ref), ref);
  }
  return {
    derived: {
      block: ancestor,
      baseBlock: derived.baseBlock,
      base: derived.base,
      journal: kept,
      state: applyEvents(derived.base, kept).state,
    },
    changed: [...seen.values()],
    removed,
  };
}
