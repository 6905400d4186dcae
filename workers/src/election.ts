/**
 * The bridge election as a running service (the rule is pure, in domain/election.ts): it keeps the
 * view of who is online from the retained presence messages on `<root>/devices/+/status`, tells
 * the worker whether it is one of the elected bridges, and which devices' bridged chain events to
 * take as hints.
 *
 * Deferred verification (issue 17): the presences arrive checked for everything that needs no
 * chain read (ports/bus.ts, `verify: "deferred"`). `online()` (the claimer's ranking) takes the
 * latest presence of every device, confirmed or not: a forged one shifts a claim by one tier at
 * most, and the contract decides every claim. Bridges are elected from confirmed presences only,
 * and only the presences that can decide the election are confirmed (presencesToConfirm: a few
 * devices, not the fleet); while one of those is being confirmed the election does not change, so
 * a worker does not elect itself because the confirmations of lower ids are still in flight. A
 * presence that fails its confirmation is dropped (and counted by the bus) and the device falls
 * back to its previous presence, which brings the next candidate in.
 *
 * Takeover: a bridge that dies without a goodbye is marked offline by its Last Will, which the
 * broker publishes 1.5 keepalives (default 22.5 s) after the last packet; every worker then
 * elects the next device at once. A worker that has just started waits `settleMs` for the retained
 * presences before it decides, so it does not bridge for the moment it sees only itself.
 */
import type { Logger } from "pino";
import {
  electBridges,
  parsePresence,
  presencesToConfirm,
  sameBridges,
  type PresenceEntry,
} from "./domain/election";
import { createTopics } from "./domain/topics";
import { sleep } from "./lib/supervise";
import type { Bus } from "./ports/bus";

export interface ElectionDeps {
  /**
   * The signed bus: a presence counts for the election once confirmed (signed by its own device's
   * operator); see the file comment. A bus that does not verify delivers every presence as is.
   */
  bus: Bus;
  deviceId: string | number;
  /** How many bridges the fleet elects (validated by the config: 1-5). */
  count: number;
  /** Whether this device may bridge (bridge.enabled); announced in its presence. */
  candidate: boolean;
  logger: Logger;
  topicRoot?: string;
  /** Wait for the retained presences after subscribing, before the first decision (default 2 s). */
  settleMs?: number;
}

export interface Election {
  /** Subscribes to the presences and resolves once the view has settled. */
  start(options?: { signal?: AbortSignal }): Promise<void>;
  /** The elected bridges, lowest id first. */
  bridges(): readonly string[];
  /**
   * The devices online in this view, this one included (ids as decimal strings): the claimer
   * ranks itself among them (domain/scoring.ts claimRank). Empty until the view has settled.
   */
  online(): readonly string[];
  /** Whether this device is one of them. */
  isBridge(): boolean;
  /** Whether bridged chain events signed by this device are taken as hints (it is elected). */
  trusts(deviceId: string | undefined): boolean;
  /** Called with the new bridges whenever the election changes; returns the unsubscribe. */
  onChange(listener: (bridges: readonly string[]) => void): () => void;
  /** Resolves when this device's role equals `bridge`, or when the signal aborts. */
  until(bridge: boolean, signal: AbortSignal): Promise<void>;
}

/**
 * Unconfirmed presences kept per device, newest last: when the newest fails its confirmation the
 * one before is tried. Bounded: only the broker (its admin) can put several on one device's topic.
 */
const MAX_UNCONFIRMED = 4;

interface Heard {
  /** null: the retained status was cleared. */
  entry: PresenceEntry | null;
  confirm(): Promise<boolean>;
}

export function createElection(deps: ElectionDeps): Election {
  const { bus, count, candidate } = deps;
  const self = String(deps.deviceId);
  const log = deps.logger.child({ component: "election" });
  const topics = createTopics(deps.topicRoot);
  const selfEntry: PresenceEntry = { online: true, bridge: candidate };
  // This worker is online from its own standpoint; the others learn it from its presence.
  /** Every device's latest presence, confirmed or not (online()). */
  const all = new Map<string, PresenceEntry>([[self, selfEntry]]);
  /** Every device's latest confirmed presence (the election). */
  const confirmed = new Map<string, PresenceEntry>([[self, selfEntry]]);
  /** Presences newer than the confirmed one, not yet confirmed, oldest first. */
  const unconfirmed = new Map<string, Heard[]>();
  /** Devices whose newest unconfirmed presence is being confirmed. */
  const confirming = new Set<string>();
  let settled = false;
  let elected: string[] = [];
  const listeners = new Set<(bridges: readonly string[]) => void>();
  /** online() of the current view, rebuilt only when `all` changes (version). */
  let version = 0;
  let onlineOf: { version: number; ids: readonly string[] } | undefined;

  const put = (view: Map<string, PresenceEntry>, id: string, entry: PresenceEntry | null | undefined) => {
    if (entry === null || entry === undefined) view.delete(id);
    else view.set(id, entry);
  };
  /** `all` of device `id` after its confirmed or unconfirmed presences changed. */
  const refresh = (id: string) => {
    const heard = unconfirmed.get(id);
    const latest = heard === undefined ? confirmed.get(id) : heard[heard.length - 1].entry;
    const old = all.get(id);
    if (old?.online === latest?.online && old?.bridge === latest?.bridge) return;
    put(all, id, latest);
    version++;
  };

  const confirmNewest = (id: string) => {
    const heard = unconfirmed.get(id);
    if (heard === undefined || confirming.has(id)) return;
    const newest = heard[heard.length - 1];
    confirming.add(id);
    void newest.confirm().then((ok) => {
      confirming.delete(id);
      const now = unconfirmed.get(id);
      const at = now?.indexOf(newest) ?? -1;
      // Superseded meanwhile by a confirmed presence: its answer no longer matters.
      if (now !== undefined && at >= 0) {
        if (ok) {
          put(confirmed, id, newest.entry);
          now.splice(0, at + 1); // the older ones are superseded (their sequence numbers are lower)
        } else {
          now.splice(at, 1);
          log.debug({ device: id }, "dropped a presence that failed its confirmation");
        }
        if (now.length === 0) unconfirmed.delete(id);
        refresh(id);
      }
      recompute();
    });
  };

  const recompute = () => {
    if (!settled) return;
    // The election holds while a presence that can decide it is unconfirmed: confirm those first.
    let holding = false;
    for (const id of presencesToConfirm(all, confirmed, elected, count)) {
      if (!unconfirmed.has(id)) continue;
      holding = true;
      confirmNewest(id);
    }
    if (holding) return;
    const next = electBridges(confirmed, count);
    if (sameBridges(next, elected)) return;
    const was = elected.includes(self);
    elected = next;
    const is = elected.includes(self);
    log.info(
      { bridges: elected, self: is ? "bridge" : "follower" },
      was === is ? "bridges changed" : is ? "elected a bridge" : "no longer a bridge",
    );
    for (const l of listeners) l(elected);
  };

  const election: Election = {
    async start({ signal } = {}) {
      const prefix = `${topics.root}/devices/`;
      await bus.subscribe(
        `${topics.root}/devices/+/status`,
        ({ topic, payload, confirmed: sure, confirm }) => {
          const id = topic.slice(prefix.length, -"/status".length);
          if (id === self) return;
          const entry = parsePresence(Buffer.from(payload).toString("utf8"));
          if (entry === undefined) return;
          if (confirm === undefined || sure === true) {
            // Confirmed (or a bus that verifies nothing): it supersedes every older presence.
            put(confirmed, id, entry);
            unconfirmed.delete(id);
          } else {
            const heard = unconfirmed.get(id) ?? [];
            heard.push({ entry, confirm });
            if (heard.length > MAX_UNCONFIRMED) heard.shift();
            unconfirmed.set(id, heard);
          }
          refresh(id);
          recompute();
        },
        { qos: 1, signal, verify: "deferred" },
      );
      // The view settles on a connected bus: the retained presences come right behind the
      // SUBACK, which a bus still waiting for its CONNACK has not had (on a starved machine 228
      // of 300 hollow devices saw no presence that way and each elected itself a bridge).
      await bus.ready({ signal }).catch(() => undefined);
      await sleep(deps.settleMs ?? 2_000, signal);
      settled = true;
      recompute();
    },
    bridges: () => elected,
    online() {
      if (!settled) return [];
      if (onlineOf?.version !== version)
        onlineOf = { version, ids: [...all].filter(([, p]) => p.online).map(([id]) => id) };
      return onlineOf.ids;
    },
    isBridge: () => elected.includes(self),
    trusts: (deviceId) => deviceId !== undefined && elected.includes(deviceId),
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    until(bridge, signal) {
      if (election.isBridge() === bridge || signal.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          off();
          signal.removeEventListener("abort", done);
          resolve();
        };
        const off = election.onChange(() => election.isBridge() === bridge && done());
        signal.addEventListener("abort", done, { once: true });
      });
    },
  };
  return election;
}
