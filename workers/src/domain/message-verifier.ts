/**
 * The check of one received message (docs/mqtt.md "Signed messages"): the envelope read, the Merkle
 * root rebuilt from the message and its proof, the root's signer recovered (once per batch), the
 * device's operator read from the chain (cached), then the rules of `judge`. One pipeline for the
 * worker's signed bus (workers/src/signed-bus.ts) and the console (console/src/verify.ts), pure so
 * the console bundles it: hashing, signer recovery, the chain lookup and the clock are injected.
 *
 * What differs between the two is a parameter: how the very message already believed on a topic,
 * delivered again, is answered (`redelivery`), and what a drop or a believed message is counted
 * against (`onDrop`, `onVerified`).
 *
 * Deferred verification (`check`, issue 17): every step that needs no chain read runs at once (the
 * envelope, the proof, the signer, topic ownership, age, replay against the last *confirmed*
 * sequence number) and the message is handed on unconfirmed with a `confirm` that reads the
 * sender's operator and applies the rest of `judge` later, only if the consumer needs it. A
 * sequence number is recorded for a sender only once a message is confirmed, so a forged message
 * with a high number cannot make the device's genuine later messages look replayed. The bridge
 * election takes the fleet's presences this way: it confirms the few that can elect a bridge, not
 * all N (N devices each reading N operators was N² chain reads at a cold start).
 */
import { setBounded } from "./bounded";
import {
  detachEnvelope,
  judge,
  leafHash,
  ownerOfTopic,
  rootOf,
  senderChangedBy,
  type DropReason,
  type Envelope,
  type EnvelopeCrypto,
  type SenderView,
} from "./envelope";

export interface MessageVerifierDeps {
  crypto: EnvelopeCrypto;
  /** EIP-191 recovery of the 32-byte root's signer (ethers' verifyMessage); throws on a bad signature. */
  recover(root: string, signature: string): string;
  /** DeviceRegistry.device(id): operator and whether Active, undefined when not enrolled. */
  lookup(deviceId: string): Promise<SenderView | undefined>;
  now(): number;
  /** An event (r=0) sealed further than this from now is stale (default 60 s). */
  maxAgeMs?: number;
  /** How long a device's operator is cached when nothing says it changed (default 60 s). */
  ttlMs?: number;
  /**
   * The message last believed on its topic (same sequence number and signature), delivered again:
   * "quiet" answers `duplicate`, counted nowhere (a retained message on a resubscribe: the console);
   * "replay" judges it like any other, so it is dropped and counted as replayed (the worker).
   */
  redelivery: "quiet" | "replay";
  /**
   * Each drop. `device` is the device the message is about: the one its topic names, else the
   * sender its envelope names, else (an unreadable message on a topic of no device) undefined.
   */
  onDrop?(topic: string, reason: DropReason, device: string | undefined): void;
  /** Each believed message, with the device it is about (as for onDrop) and its signer. */
  onVerified?(device: string, signer: string): void;
  /**
   * Merkle roots already computed, by topic and message text, shared by the verifiers of one
   * process (bounded by the caller's setBounded). A pure memo: the same topic and text always give
   * the same root. It matters where many verifiers hear the same messages: the hollow devices of
   * bench/scale.ts, each hashing every bridged event's proof (~10 SHA-256 for a batch of 1,000),
   * spent a third of their process's CPU on it while placing at N = 300.
   */
  roots?: Map<string, string>;
}

export type Check =
  | { ok: true; payload: string; envelope: Envelope; signer: string }
  /** The very message already believed, delivered again (only with redelivery "quiet"). */
  | { ok: false; reason: "duplicate" }
  | { ok: false; reason: DropReason };

/**
 * A message that passed every check that needs no chain read. `confirmed`: the rest was checked
 * too (the sender's view was cached and fresh), so `confirm` answers at once with this very result.
 * Otherwise `confirm` reads the sender's view (cached as for `verify`), applies the remaining rules
 * and records the sequence number; a failure is counted as a drop by its reason. It runs once: a
 * second call returns the first call's promise.
 */
export type Pending =
  | {
      ok: true;
      payload: string;
      envelope: Envelope;
      /** Recovered from the signature; whether it is the sender's operator is what `confirm` checks. */
      signer: string;
      confirmed: boolean;
      confirm(): Promise<Check>;
    }
  | { ok: false; reason: "duplicate" }
  | { ok: false; reason: DropReason };

export interface MessageVerifier {
  /** Checks one message; call in arrival order, one at a time (sequence numbers are per order). */
  verify(topic: string, text: string): Promise<Check>;
  /**
   * Checks one message without reading the chain, unless the sender's view is cached (then it is
   * confirmed at once). Call in arrival order, as `verify`; `confirm` may be called at any time.
   */
  check(topic: string, text: string): Promise<Pending>;
  /** The chain says device `id` is now `view`: a cached view that differs is replaced. */
  observe(deviceId: string, view: SenderView | undefined): void;
  /** Forgets a device's cached view (its operator or status changed). */
  forget(deviceId: string): void;
  /**
   * Starts reading device `id`'s view now if it is not cached, so that a burst of messages from
   * many senders (the retained presences of a fleet, delivered at subscribe) is read in one batch
   * of concurrent calls instead of one at a time by the in-order verification.
   */
  prefetch(deviceId: string): void;
}

/**
 * Recovered signers kept (one per batch seen), and devices whose view is cached: bounded. A batch's
 * messages arrive together, so a few hundred recent batches save every recovery that can be saved;
 * 10,000 made a worker's cache grow for hours (its own bridge seals ~2,500 batches an hour under
 * the soak's load: bench/results/soak.md). A miss costs one recovery, never a wrong verdict.
 */
const MAX_SIGNERS = 256;
/** Shared roots (MessageVerifierDeps.roots): the copies of one message arrive within seconds. */
const MAX_ROOTS = 2_048;
const MAX_SENDERS = 10_000;

export function createMessageVerifier(deps: MessageVerifierDeps): MessageVerifier {
  const maxAgeMs = deps.maxAgeMs ?? 60_000;
  const ttlMs = deps.ttlMs ?? 60_000;
  type Sender = { at: number; view: Promise<SenderView | undefined>; known?: SenderView };
  const senders = new Map<string, Sender>();
  // Root+signature -> recovered signer: one recovery per batch.
  const signers = new Map<string, string>();
  // Per sender and topic: the last believed sequence number and its signature (to tell a retained
  // message delivered again from a replay).
  const last = new Map<string, { n: number; s: string }>();

  // The envelope's device id is the sender's word: cap the cache so made-up ids cannot grow it.
  const cacheSender = (d: string, entry: Sender) => setBounded(senders, d, entry, MAX_SENDERS);
  const sender = (d: string) => {
    const cached = senders.get(d);
    if (cached && deps.now() - cached.at < ttlMs) return cached.view;
    const entry: Sender = { at: deps.now(), view: deps.lookup(d) };
    entry.view.then(
      (v) => (entry.known = v),
      () => senders.get(d) === entry && senders.delete(d),
    );
    cacheSender(d, entry);
    return entry.view;
  };
  const drop = (
    topic: string,
    reason: DropReason,
    device: string | undefined,
  ): { ok: false; reason: DropReason } => {
    deps.onDrop?.(topic, reason, device);
    return { ok: false, reason };
  };

  /** The sender's view when it is cached and fresh (a read under way included): no new chain read. */
  const cachedFresh = (d: string) => {
    const cached = senders.get(d);
    return cached !== undefined && deps.now() - cached.at < ttlMs;
  };

  /**
   * `early`: judge now what needs no sender view (deferred); else leave every rule to the
   * confirmation, so `verify` judges in judge's order (authority before replay before age).
   */
  async function check(topic: string, text: string, early = true): Promise<Pending> {
    // A device topic names its device even when the message cannot be read: count it there.
    const owner = ownerOfTopic(topic);
    const parsed = detachEnvelope(text);
    if (!parsed.ok) return drop(topic, parsed.reason, owner);
    const { envelope: e, payload } = parsed;
    const device = owner ?? e.d;
    const memo = deps.roots === undefined ? undefined : `${topic}\n${text}`;
    let root = memo === undefined ? undefined : deps.roots!.get(memo);
    if (root === undefined) {
      root = rootOf(
        leafHash({ topic, d: e.d, n: e.n, t: e.t, r: e.r, payload }, deps.crypto),
        e.p,
        deps.crypto,
      );
      if (memo !== undefined) setBounded(deps.roots!, memo, root, MAX_ROOTS);
    }
    const key = `${root}${e.s}`;
    let signer = signers.get(key);
    if (signer === undefined) {
      try {
        signer = deps.recover(root, e.s);
      } catch {
        return drop(topic, "forged", device);
      }
      setBounded(signers, key, signer, MAX_SIGNERS);
    }
    const seqKey = `${e.d} ${topic}`;
    const previous = last.get(seqKey);
    if (deps.redelivery === "quiet" && previous !== undefined && previous.n === e.n && previous.s === e.s)
      return { ok: false, reason: "duplicate" };
    // The rules of `judge` that need no sender view, the signer standing in for the operator:
    // the confirmation judges the rest. Replay is judged against the last confirmed number only.
    // A message both forged and replayed (or stale) is counted as the latter here.
    const now = early
      ? judge({
          topic,
          envelope: e,
          signer,
          sender: { operator: signer, active: true },
          lastSeq: previous?.n,
          nowMs: deps.now(),
          maxAgeMs,
        })
      : { ok: true };
    if (!now.ok) return drop(topic, now.reason!, device);
    const s = signer;

    let confirmation: Promise<Check> | undefined;
    const confirm = async (): Promise<Check> => {
      let view: SenderView | undefined;
      try {
        view = await sender(e.d);
      } catch {
        // The chain cannot be read: nothing is believed while it cannot be checked (dropped, not queued).
        return drop(topic, "unknown-device", device);
      }
      // Judged again as a whole: another message from the sender may have been confirmed meanwhile.
      const verdict = judge({
        topic,
        envelope: e,
        signer: s,
        sender: view,
        lastSeq: last.get(seqKey)?.n,
        nowMs: deps.now(),
        maxAgeMs,
      });
      if (!verdict.ok) return drop(topic, verdict.reason!, device);
      last.set(seqKey, { n: e.n, s: e.s });
      deps.onVerified?.(device, s);
      const changed = senderChangedBy(topic, payload);
      if (changed !== undefined) senders.delete(changed);
      return { ok: true, payload, envelope: e, signer: s };
    };
    const once = () => (confirmation ??= confirm());
    if (cachedFresh(e.d)) {
      const result = await once();
      return result.ok ? { ...result, confirmed: true, confirm: once } : result;
    }
    return { ok: true, payload, envelope: e, signer: s, confirmed: false, confirm: once };
  }

  return {
    forget: (d) => void senders.delete(d),
    observe(d, view) {
      const cached = senders.get(d);
      if (cached?.known === undefined) return;
      const same =
        view !== undefined &&
        cached.known.operator.toLowerCase() === view.operator.toLowerCase() &&
        cached.known.active === view.active;
      if (!same) cacheSender(d, { at: deps.now(), view: Promise.resolve(view), known: view });
    },
    prefetch(d) {
      sender(d).catch(() => undefined);
    },
    verify: async (topic, text) => {
      const pending = await check(topic, text, false);
      return pending.ok ? pending.confirm() : pending;
    },
    check: (topic, text) => check(topic, text),
  };
}
