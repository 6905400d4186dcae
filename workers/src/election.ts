/**
 * The bridge election as a running service (the rule is pure, in domain/election.ts): it keeps the
 * view of who is online from the verified, retained presence messages on
 * `<root>/devices/+/status`, tells the worker whether it is one of the elected bridges, and which
 * devices' bridged chain events to take as hints.
 *
 * Takeover: a bridge that dies without a goodbye is marked offline by its Last Will, which the
 * broker publishes 1.5 keepalives (default 22.5 s) after the last packet; every worker then
 * elects the next device at once. A worker that has just started waits `settleMs` for the retained
 * presences before it decides, so it does not bridge for the moment it sees only itself.
 */
import type { Logger } from "pino";
import {
  applyPresence,
  electBridges,
  sameBridges,
  type PresenceEntry,
  type PresenceView,
} from "./domain/election";
import { createTopics } from "./domain/topics";
import { sleep } from "./lib/supervise";
import type { Bus } from "./ports/bus";

export interface ElectionDeps {
  /** The signed bus: only verified presences (each signed by its own device) count. */
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

export function createElection(deps: ElectionDeps): Election {
  const { bus, count, candidate } = deps;
  const self = String(deps.deviceId);
  const log = deps.logger.child({ component: "election" });
  const topics = createTopics(deps.topicRoot);
  const selfEntry: PresenceEntry = { online: true, bridge: candidate };
  // This worker is online from its own standpoint; the others learn it from its presence.
  let view: PresenceView = new Map([[self, selfEntry]]);
  let settled = false;
  let elected: string[] = [];
  const listeners = new Set<(bridges: readonly string[]) => void>();
  /** online() of the current view, rebuilt only when the view changes. */
  let onlineOf: { view: PresenceView; ids: readonly string[] } | undefined;

  const recompute = () => {
    if (!settled) return;
    const next = electBridges(view, count);
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
        ({ topic, payload }) => {
          const id = topic.slice(prefix.length, -"/status".length);
          if (id === self) return;
          view = applyPresence(view, id, Buffer.from(payload).toString("utf8"));
          recompute();
        },
        { qos: 1, signal },
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
      if (onlineOf?.view !== view)
        onlineOf = { view, ids: [...view].filter(([, p]) => p.online).map(([id]) => id) };
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
