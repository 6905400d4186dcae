/**
 * The console's check of every MQTT message, pure (hashing, recovery, the chain lookup and the clock
 * are injected): the worker's pipeline (workers/src/domain/message-verifier.ts, docs/mqtt.md "Signed
 * messages"), plus what the page shows: per device, who signed what
 * it believed and how many of its messages were dropped, and why. Unit-tested in
 * test/console/pure.test.ts; wired to ethers and the chain in live.ts.
 */
import { DROP_REASONS, type DropReason, type SenderView } from "../../workers/src/domain/envelope";
import {
  createMessageVerifier as createPipeline,
  type Check,
  type MessageVerifierDeps as PipelineDeps,
} from "../../workers/src/domain/message-verifier";

export { DROP_REASONS, type Check, type DropReason, type SenderView };

export type MessageVerifierDeps = Omit<PipelineDeps, "redelivery" | "onDrop" | "onVerified">;

/** What the page knows about one device's messages. */
export interface DeviceTrust {
  /** Messages believed. */
  verified: number;
  /** The signer of the last believed message (the device's operator at that time). */
  signer?: string;
  dropped: Partial<Record<DropReason, number>>;
}

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

/**
 * The page's verifier: the shared pipeline, a retained message delivered again on a resubscribe
 * answered as a quiet duplicate, and every verdict counted against its device.
 */
export function createMessageVerifier(deps: MessageVerifierDeps): MessageVerifier {
  const dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  const devices = new Map<string, DeviceTrust>();
  const trust = (d: string) => {
    let t = devices.get(d);
    if (t === undefined) devices.set(d, (t = { verified: 0, dropped: {} }));
    return t;
  };
  const pipeline = createPipeline({
    ...deps,
    redelivery: "quiet",
    onDrop(_topic, reason, device) {
      dropped[reason]++;
      if (device === undefined) return;
      const t = trust(device);
      t.dropped[reason] = (t.dropped[reason] ?? 0) + 1;
    },
    onVerified(device, signer) {
      const t = trust(device);
      t.verified++;
      t.signer = signer;
    },
  });
  return { ...pipeline, dropped, devices };
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
