/**
 * The console's check of every MQTT message, pure (hashing, recovery, the chain lookup and the clock
 * are injected): the same envelope codec and rules as the worker's signed bus (docs/mqtt.md "Signed
 * messages", workers/src/domain/envelope.ts), plus what the page shows: per device, who signed what
 * it believed and how many of its messages were dropped, and why. Unit-tested in
 * test/console/pure.test.ts; wired to ethers and the chain in live.ts.
 */
import {
  DROP_REASONS,
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
} from "../../workers/src/domain/envelope";

export { DROP_REASONS, type DropReason, type SenderView };

export interface MessageVerifierDeps {
  crypto: EnvelopeCrypto;
  /** EIP-191 recovery of the 32-byte root's signer (ethers' verifyMessage); throws on a bad signature. */
  recover(root: string, signature: string): string;
  /** DeviceRegistry.device(id): operator and whether Active, undefined when not enrolled. */
  lookup(deviceId: string): Promise<SenderView | undefined>;
  now(): number;
  /** An event (r=0) sealed further than this from now is stale (default 60 s, as the worker). */
  maxAgeMs?: number;
  /** How long a device's operator is cached when nothing says it changed (default 60 s). */
  ttlMs?: number;
}

/** What the page knows about one device's messages. */
export interface DeviceTrust {
  /** Messages believed. */
  verified: number;
  /** The signer of the last believed message (the device's operator at that time). */
  signer?: string;
  dropped: Partial<Record<DropReason, number>>;
}

export type Check =
  | { ok: true; payload: string; envelope: Envelope; signer: string }
  /** The very message already believed, delivered again (a retained message on resubscribe). */
  | { ok: false; reason: "duplicate" }
  | { ok: false; reason: DropReason };

export interface MessageVerifier {
  /** Checks one message; call in arrival order, one at a time (sequence numbers are per order). */
  verify(topic: string, text: string): Promise<Check>;
  /** The chain says device `id` is now `view`: a cached view that differs is replaced. */
  observe(deviceId: string, view: SenderView | undefined): void;
  /** Forgets a device's cached view (a verified bridged event says it changed). */
  forget(deviceId: string): void;
  /** Drops by reason, all devices and topics together. */
  readonly dropped: Record<DropReason, number>;
  readonly devices: Map<string, DeviceTrust>;
}

export function createMessageVerifier(deps: MessageVerifierDeps): MessageVerifier {
  const maxAgeMs = deps.maxAgeMs ?? 60_000;
  const ttlMs = deps.ttlMs ?? 60_000;
  const senders = new Map<
    string,
    { at: number; view: Promise<SenderView | undefined>; known?: SenderView }
  >();
  const signers = new Map<string, string>();
  // Per sender and topic: the last believed sequence number and its signature (to tell a retained
  // message delivered again from a replay).
  const last = new Map<string, { n: number; s: string }>();
  const dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  const devices = new Map<string, DeviceTrust>();

  const trust = (d: string) => {
    let t = devices.get(d);
    if (t === undefined) devices.set(d, (t = { verified: 0, dropped: {} }));
    return t;
  };
  const drop = (reason: DropReason, device: string | undefined): Check => {
    dropped[reason]++;
    if (device !== undefined) {
      const t = trust(device);
      t.dropped[reason] = (t.dropped[reason] ?? 0) + 1;
    }
    return { ok: false, reason };
  };
  const sender = (d: string) => {
    const cached = senders.get(d);
    if (cached && deps.now() - cached.at < ttlMs) return cached.view;
    const entry: { at: number; view: Promise<SenderView | undefined>; known?: SenderView } = {
      at: deps.now(),
      view: deps.lookup(d),
    };
    entry.view.then(
      (v) => (entry.known = v),
      () => senders.get(d) === entry && senders.delete(d),
    );
    senders.set(d, entry);
    return entry.view;
  };

  return {
    dropped,
    devices,
    forget: (d) => void senders.delete(d),
    observe(d, view) {
      const cached = senders.get(d);
      if (cached?.known === undefined) return;
      const same =
        view !== undefined &&
        cached.known.operator.toLowerCase() === view.operator.toLowerCase() &&
        cached.known.active === view.active;
      if (!same) senders.set(d, { at: deps.now(), view: Promise.resolve(view), known: view });
    },
    async verify(topic, text) {
      // A device topic names its device even when the message cannot be read: count it there.
      const owner = ownerOfTopic(topic);
      const parsed = detachEnvelope(text);
      if (!parsed.ok) return drop(parsed.reason, owner);
      const { envelope: e, payload } = parsed;
      const device = owner ?? e.d;
      const root = rootOf(
        leafHash({ topic, d: e.d, n: e.n, t: e.t, r: e.r, payload }, deps.crypto),
        e.p,
        deps.crypto,
      );
      const key = `${root}${e.s}`;
      let signer = signers.get(key);
      if (signer === undefined) {
        try {
          signer = deps.recover(root, e.s);
        } catch {
          return drop("forged", device);
        }
        if (signers.size >= 10_000) signers.delete(signers.keys().next().value!);
        signers.set(key, signer);
      }
      let view: SenderView | undefined;
      try {
        view = await sender(e.d);
      } catch {
        // The chain cannot be read: nothing is believed while it cannot be checked.
        return drop("unknown-device", device);
      }
      const seqKey = `${e.d} ${topic}`;
      const previous = last.get(seqKey);
      if (previous !== undefined && previous.n === e.n && previous.s === e.s)
        return { ok: false, reason: "duplicate" };
      const verdict = judge({
        topic,
        envelope: e,
        signer,
        sender: view,
        lastSeq: previous?.n,
        nowMs: deps.now(),
        maxAgeMs,
      });
      if (!verdict.ok) return drop(verdict.reason!, device);
      last.set(seqKey, { n: e.n, s: e.s });
      const t = trust(device);
      t.verified++;
      t.signer = signer;
      const changed = senderChangedBy(topic, payload);
      if (changed !== undefined) senders.delete(changed);
      return { ok: true, payload, envelope: e, signer };
    },
  };
}

/** "3 dropped: forged 2, unsigned 1", or "" when nothing was dropped. */
export function dropSummary(dropped: Partial<Record<DropReason, number>>): string {
  const parts = DROP_REASONS.filter((r) => (dropped[r] ?? 0) > 0).map((r) => `${r} ${dropped[r]}`);
  if (parts.length === 0) return "";
  const total = DROP_REASONS.reduce((n, r) => n + (dropped[r] ?? 0), 0);
  return `${total} dropped: ${parts.join(", ")}`;
}

/** The verification badge of a device: its text and how it looks (ok, warn or unknown). */
export function trustBadge(
  t: DeviceTrust | undefined,
  shortAddress: (a: string) => string,
): { text: string; cls: "ok" | "warn" | "unknown"; signer: string } {
  const drops = t === undefined ? "" : dropSummary(t.dropped);
  const signed = t?.signer === undefined ? "" : `signed by operator ${shortAddress(t.signer)}`;
  const text = [signed || "no verified message yet", drops].filter(Boolean).join("; ");
  return { text, cls: drops ? "warn" : signed ? "ok" : "unknown", signer: t?.signer ?? "" };
}

/** Any URL in `text` without its user and password: `ws://u:p@host:1884` -> `ws://host:1884`. */
export function withoutCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s@/?#]*@/gi, "$1");
}
