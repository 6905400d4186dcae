/**
 * Bridge election, pure: which devices read the chain and publish its events to MQTT. Every
 * worker computes the same answer from the same input, the retained presence messages
 * (`shoal/v1/devices/<id>/status`) it has verified, so no vote and no leader lease are needed:
 *
 *   bridges = the `count` lowest device ids among the devices that are online and bridge-capable.
 *
 * Only the presences that can decide it are verified against the chain (presencesToConfirm), not
 * the whole fleet's.
 *
 * Lowest ids, not rendezvous hashing: the set moves only when one of its members goes offline or
 * a lower id comes online, and a reader of the broker can tell the bridges by eye. Hashing would
 * spread the role over the fleet, which matters for load only when the count is large; it is 1-5.
 *
 * When views differ (a Last Will not yet delivered everywhere) two workers may briefly disagree:
 * then an extra bridge publishes a few copies (consumers de-duplicate by chain coordinates) or a
 * consumer ignores a new bridge's hints until its view catches up (it acts only on chain reads).
 * No I/O, no clock.
 */
export const MIN_BRIDGES = 1;
export const MAX_BRIDGES = 5;
export const DEFAULT_BRIDGES = 2;

/** What a device's retained status says, as far as the election cares. */
export interface PresenceEntry {
  online: boolean;
  /** False when the device announced it never bridges (bridge.enabled false); absent means it may. */
  bridge: boolean;
}

/** Device id (decimal string) -> its last verified presence. */
export type PresenceView = ReadonlyMap<string, PresenceEntry>;

/** Whether decimal id `a` is below `b` (canonical decimal strings: no BigInt needed). */
const below = (a: string, b: string) => (a.length !== b.length ? a.length < b.length : a < b);

/** A device id as the chain writes it: decimal, no leading zero. */
const CANONICAL_ID = /^(?:0|[1-9]\d*)$/;

/**
 * The elected bridges, lowest id first. Ids that are not canonical decimal integers are ignored.
 * O(view x count), no sort: a worker runs it on every presence it hears, and a fleet of N starting
 * together sends each worker N presences (a sort of BigInts per message cost a hollow process of
 * N devices N² log N comparisons at start).
 */
export function electBridges(view: PresenceView, count: number): string[] {
  const lowest: string[] = [];
  for (const [id, p] of view) {
    if (!p.online || !p.bridge || !CANONICAL_ID.test(id)) continue;
    if (lowest.length === count && !below(id, lowest[count - 1])) continue;
    let at = lowest.length;
    while (at > 0 && below(id, lowest[at - 1])) at--;
    lowest.splice(at, 0, id);
    if (lowest.length > count) lowest.pop();
  }
  return lowest;
}

/**
 * What one presence message says: the device's entry, `null` when the retained status was cleared
 * (`payload` "": the device is gone), or undefined when the message is not a presence (ignored).
 */
export function parsePresence(payload: string): PresenceEntry | null | undefined {
  if (payload === "") return null;
  let parsed: { status?: unknown; bridge?: unknown };
  try {
    parsed = JSON.parse(payload) as typeof parsed;
  } catch {
    return undefined;
  }
  if (parsed.status !== "online" && parsed.status !== "offline") return undefined;
  return { online: parsed.status === "online", bridge: parsed.bridge !== false };
}

/**
 * The view after one presence message: `payload` is the status JSON, or "" when the retained
 * status was cleared (the device is gone). Returns the same view when nothing changed.
 */
export function applyPresence(view: PresenceView, deviceId: string, payload: string): PresenceView {
  const next = parsePresence(payload);
  if (next === undefined) return view;
  const old = view.get(deviceId);
  if (old?.online === next?.online && old?.bridge === next?.bridge) return view;
  const out = new Map(view);
  if (next === null) out.delete(deviceId);
  else out.set(deviceId, next);
  return out;
}

/**
 * The devices whose unconfirmed presences must be confirmed before the election may change
 * (deferred verification, docs/worker.md "Bridge election"): those the view of every presence
 * heard would elect, those the confirmed view would elect, and the current bridges. Every other
 * device's presence cannot change the outcome: once none of these has an unconfirmed presence,
 * both views elect the same devices (each of them reads the same in both views, and every device
 * that reads differently is in neither election). A failed confirmation removes a presence from
 * the view of all, so the next candidate joins this set, and so on.
 */
export function presencesToConfirm(
  all: PresenceView,
  confirmed: PresenceView,
  current: readonly string[],
  count: number,
): Set<string> {
  return new Set([...electBridges(all, count), ...electBridges(confirmed, count), ...current]);
}

/** Whether two elections name the same devices (order included: both are sorted). */
export function sameBridges(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/**
 * The block through which a newly elected bridge need not publish events again: the highest
 * cursor among the bridges it heard from, capped by what it can itself check (its safe head).
 * A cursor only makes the new bridge quiet for blocks another bridge said it published; a lying
 * cursor delays those events on this bridge only (the other bridges publish them anyway).
 */
export function quietThrough(cursors: Iterable<number>, safeHead: number): number {
  let high = -1;
  for (const c of cursors) if (Number.isSafeInteger(c) && c > high) high = c;
  return Math.min(high, safeHead);
}

/**
 * Chain coordinates of a bridged event, for de-duplicating copies from several bridges: the block
 * hash and log index name one log on one chain, whichever bridge carried it (the event id
 * `chainId:txHash:logIndex` does too, but a reorg can move a transaction to another block).
 */
export function eventCoordinates(e: { blockHash: string; logIndex: number }): string {
  return `${e.blockHash.toLowerCase()}:${e.logIndex}`;
}

/**
 * Events whose coordinates a worker remembers. The copies of one event come from the elected
 * bridges, each publishing the same blocks after the same confirmations, so they arrive within the
 * bridges' lag of each other: seconds. 1,024 events span about 17 minutes at the soak's rate (about
 * one event a second: bench/soak.ts) and 20 s at 50 a second. 10,000 (about 1.5 MB of strings)
 * took a worker three hours to fill and grew its heap by ~0.5 MiB an hour meanwhile (issue 11).
 */
export const SEEN_EVENTS = 1_024;

/**
 * Remembers the coordinates of the last `capacity` events, so the second copy of each is
 * recognised. Bounded: a copy that arrives after `capacity` others is passed on again, which is
 * harmless (every consumer action is taken on a chain read, never on the event alone).
 */
export function createSeenEvents(capacity = SEEN_EVENTS) {
  const seen = new Set<string>();
  return {
    /** True the first time a coordinate is offered, false for every copy after. */
    first(coordinates: string): boolean {
      if (seen.has(coordinates)) return false;
      seen.add(coordinates);
      if (seen.size > capacity) seen.delete(seen.values().next().value!);
      return true;
    },
    get size() {
      return seen.size;
    },
  };
}
