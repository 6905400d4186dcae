/** What the controller decides: its input and output, and the decision records it publishes. */
import { createHash } from "node:crypto";
import type { ResourceLimits } from "../container-spec";
import { stableStringify } from "../manifest/canonical";
import type { ControllerParams } from "./params";
import type { ControlledContainer, ControllerState, DeviceCapacity } from "./state";

export type DecisionResource = "cpu" | "memory" | "placement";

/**
 * Why a limit changed:
 * throttled / cpu-saturated (CPU up; by the period or the fast path), cpu-idle (CPU down after cpuDownPeriods idle periods),
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
  /** ISO time of the control period (or fast-path tick) that made the decision. */
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
