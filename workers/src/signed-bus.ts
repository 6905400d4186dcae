/**
 * Trust on the wire (docs/mqtt.md, "Signed messages"): a Bus decorator that seals every message the
 * worker publishes with its operator key and verifies every message it receives, and the verifier
 * that the fleet view uses on its own MQTT client.
 *
 * Publishing: messages published within batchWindowMs of the first (default 2 ms; at most 1,000)
 * form one batch; the operator key signs the batch's Merkle root once (EIP-191) and each message
 * carries its proof (domain/envelope.ts). The inner bus receives the messages in call order, in the
 * same turn the batch is sealed. The window matters under load: a bridge with 1,000 publishes in
 * flight gets its acknowledgements a few at a time, and a signature per few messages (~1 ms each)
 * would cap it near 1,000 events/s.
 *
 * Receiving (the pipeline is domain/message-verifier.ts, shared with the console): a message is
 * delivered to the handler only if its signer is, on chain, the operator of the device it names
 * (DeviceRegistry.device(id).operator, cached for ttlMs and forgotten at once when a verified
 * bridged event says the device's operator or status changed), the device may speak on that topic,
 * and it is neither replayed nor stale. Everything else is dropped and counted by
 * reason. Verification runs in arrival order, one message at a time.
 *
 * A subscription with `verify: "deferred"` (the bridge election's presences) gets every message
 * that passes the checks needing no chain read, with `confirmed` and a `confirm()` that reads the
 * sender's operator only when the consumer asks (ports/bus.ts); its senders are not prefetched.
 */
import { createHash } from "node:crypto";
import { JsonRpcProvider, Wallet, getBytes, keccak256, verifyMessage } from "ethers";
import type { Counter } from "prom-client";
import { DeviceRegistry__factory } from "../../typechain-types";
import {
  attachEnvelope,
  detachEnvelope,
  ENVELOPE_VERSION,
  leafHash,
  merkle,
  nextSequence,
  type DropReason,
  type EnvelopeCrypto,
  type SenderView,
} from "./domain/envelope";
import { createMessageVerifier, type Check, type Pending } from "./domain/message-verifier";
import { DEVICE_STATUSES } from "./domain/chain-enums";
import { setBounded } from "./domain/bounded";
import type { Bus, BusMessage, PublishOptions } from "./ports/bus";

const crypto: EnvelopeCrypto = { sha256: (data) => `0x${createHash("sha256").update(data).digest("hex")}` };

// ---------------------------------------------------------------------------------------------------
// Sealing

export interface Sealer {
  readonly deviceId: string;
  readonly address: string;
  /** Seals messages as one batch: one signature, one proof each. Synchronous. */
  seal(messages: readonly { topic: string; payload: string; retain: boolean }[]): string[];
}

export function createSealer(deps: {
  operatorKey: string;
  deviceId: string | number;
  now?: () => number;
}): Sealer {
  const wallet = new Wallet(deps.operatorKey);
  const now = deps.now ?? Date.now;
  const d = String(deps.deviceId);
  let last = 0;
  return {
    deviceId: d,
    address: wallet.address,
    seal(messages) {
      const t = now();
      const fields = messages.map((m) => {
        last = nextSequence(last, t);
        return { topic: m.topic, d, n: last, t, r: (m.retain ? 1 : 0) as 0 | 1, payload: m.payload };
      });
      const { root, proofs } = merkle(
        fields.map((f) => leafHash(f, crypto)),
        crypto,
      );
      const s = wallet.signingKey.sign(hashRoot(root)).serialized;
      return fields.map((f, i) =>
        attachEnvelope(f.payload, { v: ENVELOPE_VERSION, d, n: f.n, t, r: f.r, p: proofs[i], s }),
      );
    },
  };
}

/** EIP-191 personal_sign digest of the 32-byte root (what `signMessage(getBytes(root))` signs). */
function hashRoot(root: string): string {
  const bytes = getBytes(root);
  const prefix = new TextEncoder().encode(`\x19Ethereum Signed Message:\n${bytes.length}`);
  const all = new Uint8Array(prefix.length + bytes.length);
  all.set(prefix);
  all.set(bytes, prefix.length);
  return keccak256(all);
}

// ---------------------------------------------------------------------------------------------------
// Verifying

/** The device's operator and whether it is active, or undefined when it is not enrolled. */
export type SenderLookup = (deviceId: string) => Promise<SenderView | undefined>;

/** Reads DeviceRegistry.device(id) over JSON-RPC. */
export function chainSenderLookup(provider: JsonRpcProvider, deviceRegistry: string): SenderLookup {
  const registry = DeviceRegistry__factory.connect(deviceRegistry, provider);
  return async (deviceId) => {
    const device = await registry.device(BigInt(deviceId));
    const status = DEVICE_STATUSES[Number(device.status)];
    if (status === undefined || status === "None") return undefined;
    return { operator: device.operator, active: status === "Active" };
  };
}

/** A message believed, or dropped and why (the worker counts a redelivered message as replayed). */
export type VerifyResult = Check;

export interface Verifier {
  /** Verifies one received message; empty payloads (cleared retained topics) pass unjudged. */
  verify(topic: string, payload: Uint8Array | string): Promise<VerifyResult>;
  /**
   * The checks of `verify` that need no chain read, and a `confirm` for the rest (see
   * MessageVerifier.check); empty payloads pass unjudged and confirmed.
   */
  check(topic: string, payload: Uint8Array | string): Promise<Pending>;
  /** Drops the cached view of a device (its operator or status changed). */
  forget(deviceId: string): void;
  /** Starts reading the sender of a received message now (see MessageVerifier.prefetch). */
  prefetch?(payload: Uint8Array | string): void;
  /** Drops counted by reason since creation. */
  readonly dropped: Readonly<Record<string, number>>;
}

export interface VerifierOptions {
  lookup: SenderLookup;
  /** An event (r=0) sealed longer ago than this, or this far in the future, is stale (default 60 s). */
  maxAgeMs?: number;
  /** How long a device's operator is cached when no event says it changed (default 60 s). */
  ttlMs?: number;
  /** shoal_bus_messages_dropped_total{reason} of the worker's /metrics. */
  droppedCounter?: Counter<"reason">;
  onDrop?: (topic: string, reason: DropReason) => void;
  now?: () => number;
}

/**
 * The worker's verifier: the pipeline of domain/message-verifier.ts with ethers' recovery, every
 * drop counted by reason, and a redelivered message counted as a replay (the worker never
 * resubscribes to retained topics, so a message seen twice is someone sending it again).
 */
/**
 * Signers recovered in this process, by root and signature, shared by every verifier in it: one
 * worker has one verifier, but the hollow devices of bench/scale.ts (N in one process) each verify
 * the same N presences, N² recoveries of about 1 ms at start instead of N. Bounded.
 */
const recovered = new Map<string, string>();
const MAX_RECOVERED = 4_096;
const recover = (root: string, signature: string): string => {
  const key = `${root}${signature}`;
  let signer = recovered.get(key);
  if (signer === undefined) {
    signer = verifyMessage(getBytes(root), signature);
    setBounded(recovered, key, signer, MAX_RECOVERED);
  }
  return signer;
};

/** A cleared retained topic: it asserts nothing, so it is not judged. */
const cleared: Check = { ok: true, payload: "", envelope: undefined as never, signer: "" };

/**
 * Merkle roots computed in this process, by topic and message text, shared as `recovered` is: the
 * hollow devices of one process hear the same bridged events, and each hashed every proof again.
 */
const roots = new Map<string, string>();

export function createVerifier(options: VerifierOptions): Verifier {
  const dropped: Record<string, number> = {};
  const decoder = new TextDecoder();
  const pipeline = createMessageVerifier({
    crypto,
    recover,
    roots,
    lookup: options.lookup,
    now: options.now ?? Date.now,
    maxAgeMs: options.maxAgeMs,
    ttlMs: options.ttlMs,
    redelivery: "replay",
    onDrop(topic, reason) {
      dropped[reason] = (dropped[reason] ?? 0) + 1;
      options.droppedCounter?.inc({ reason });
      options.onDrop?.(topic, reason);
    },
  });

  return {
    dropped,
    forget: (d) => pipeline.forget(d),
    prefetch(raw) {
      const parsed = detachEnvelope(typeof raw === "string" ? raw : decoder.decode(raw));
      if (parsed.ok && /^\d+$/.test(parsed.envelope.d)) pipeline.prefetch(parsed.envelope.d);
    },
    async verify(topic, raw) {
      const text = typeof raw === "string" ? raw : decoder.decode(raw);
      if (text === "") return cleared;
      return pipeline.verify(topic, text);
    },
    async check(topic, raw) {
      const text = typeof raw === "string" ? raw : decoder.decode(raw);
      if (text === "") return { ...cleared, confirmed: true, confirm: () => Promise.resolve(cleared) };
      return pipeline.check(topic, text);
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The decorator

export interface SignedBusDeps {
  bus: Bus;
  sealer: Sealer;
  verifier: Verifier;
  /** How long the first message of a batch waits for others (default 2 ms). */
  batchWindowMs?: number;
  /** A batch this large is sealed at once (default 1,000). */
  maxBatch?: number;
}

/** The Bus with every publish sealed and every received message verified (see the file comment). */
export function createSignedBus(deps: SignedBusDeps): Bus {
  const { bus, sealer, verifier, batchWindowMs = 2, maxBatch = 1_000 } = deps;
  let timer: NodeJS.Timeout | undefined;
  type Pending = {
    topic: string;
    payload: string;
    options: PublishOptions;
    resolve: () => void;
    reject: (error: unknown) => void;
  };
  let queue: Pending[] = [];

  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    const batch = queue;
    queue = [];
    // A cleared retained topic (empty payload) carries no signature: it asserts nothing.
    const signable = batch.filter((m) => m.payload !== "");
    let sealed: string[];
    try {
      // A batch of clears only has nothing to sign (and a Merkle tree needs a leaf).
      sealed =
        signable.length === 0
          ? []
          : sealer.seal(
              signable.map((m) => ({
                topic: m.topic,
                payload: m.payload,
                retain: m.options.retain ?? false,
              })),
            );
    } catch (error) {
      for (const m of batch) m.reject(error);
      return;
    }
    let i = 0;
    for (const m of batch) {
      const payload = m.payload === "" ? "" : sealed[i++];
      bus.publish(m.topic, payload, m.options).then(m.resolve, m.reject);
    }
  };

  return {
    get state() {
      return bus.state;
    },
    ready: (options) => bus.ready(options),
    on: (listener) => bus.on(listener),
    close: (options) => bus.close(options),
    publish(topic, payload, options = {}) {
      const text = typeof payload === "string" ? payload : new TextDecoder().decode(payload);
      return new Promise<void>((resolve, reject) => {
        queue.push({ topic, payload: text, options, resolve, reject });
        if (queue.length >= maxBatch) flush();
        else timer ??= setTimeout(flush, batchWindowMs);
      });
    },
    subscribe(filter, handler, options) {
      let tail = Promise.resolve();
      const deferred = options?.verify === "deferred";
      return bus.subscribe(
        filter,
        (message: BusMessage) => {
          // A deferred subscription reads no sender it is not asked to confirm.
          if (!deferred) verifier.prefetch?.(message.payload);
          tail = tail
            .then(async () => {
              if (deferred) {
                const pending = await verifier.check(message.topic, message.payload);
                if (!pending.ok) return;
                handler({
                  ...message,
                  payload: new TextEncoder().encode(pending.payload),
                  sender: pending.payload === "" ? undefined : pending.envelope.d,
                  confirmed: pending.confirmed,
                  confirm: () => pending.confirm().then((c) => c.ok),
                });
                return;
              }
              const result = await verifier.verify(message.topic, message.payload);
              if (!result.ok) return;
              const sender = result.payload === "" ? undefined : result.envelope.d;
              handler({ ...message, payload: new TextEncoder().encode(result.payload), sender });
            })
            .catch(() => undefined); // the inner bus logs handler errors; one must not stall the rest
        },
        options,
      );
    },
  };
}
