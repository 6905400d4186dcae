/**
 * The anchored resource log (issue 16): a device's resource decisions as a hash chain, cut into
 * epochs that the worker stores in IPFS and anchors on chain (contracts/ResourceLog.sol). Pure: the
 * encoding, the hashes, when an epoch is due, and the verification an auditor runs
 * (`resources:verify`). docs/resource-manager.md, "Anchored log", describes the format.
 *
 * Each entry is a decision record plus `prev` (the hash of the entry before it, 32 zero bytes for a
 * device's first) and `hash` = sha256(prev || sha256(canonical JSON of the record)), the same chain
 * step as `decisionsDigest`. An epoch's last hash therefore commits to every record the device ever
 * logged, and the chain of `prev` links runs across epochs.
 */
import { createHash } from "node:crypto";
import { decisionRecordJson, type DecisionRecord } from "./controller";
import { stableStringify } from "./manifest/canonical";

export const RESOURCE_LOG_VERSION = 1;

/** The `prev` of a device's first entry. */
export const GENESIS_HASH = `0x${"0".repeat(64)}`;

/** Record fields, in the canonical (sorted) order. */
const RECORD_FIELDS = [
  "at",
  "containerId",
  "deviceId",
  "from",
  "metric",
  "placementId",
  "reason",
  "resource",
  "seq",
  "threshold",
  "to",
  "v",
  "value",
] as const satisfies readonly (keyof DecisionRecord)[];

/** One entry of the log: a decision record, linked to the one before it. */
export interface LogEntry extends DecisionRecord {
  /** 0x-hex hash of the previous entry (GENESIS_HASH for seq 0 of a new log). */
  prev: string;
  /** 0x-hex sha256(prev || sha256(decisionRecordJson(record))). */
  hash: string;
  /**
   * 8-hex fingerprints of each field (`sha256("<field>=<canonical JSON value>")`), not covered by
   * `hash`: they only let a verifier name the field of an entry whose hash no longer matches.
   */
  sums: Record<string, string>;
}

/** An epoch as stored in IPFS (its canonical JSON) and anchored on chain. */
export interface EpochDocument {
  v: typeof RESOURCE_LOG_VERSION;
  deviceId: string;
  epoch: number;
  firstSeq: number;
  count: number;
  /** Hash of the entry before the epoch's first (the previous epoch's lastHash). */
  prev: string;
  /** Hash of the epoch's last entry: the value anchored on chain. */
  lastHash: string;
  entries: LogEntry[];
}

/** Where a log stands: what the next entry continues. */
export interface LogHead {
  nextSeq: number;
  lastHash: string;
}

/** An anchor as the chain holds it (event ResourceLogAnchored). */
export interface EpochAnchor {
  epoch: number;
  firstSeq: number;
  count: number;
  lastHash: string;
  cid: string;
}

const sha256 = (data: Buffer | string): Buffer => createHash("sha256").update(data).digest();

function hexBytes(hex: string): Buffer {
  if (!/^0x[0-9a-f]{64}$/.test(hex)) return Buffer.alloc(32, 0xff);
  return Buffer.from(hex.slice(2), "hex");
}

/** The record part of an entry (what was decided), without its links. */
export function recordOf(
  entry: DecisionRecord & Partial<Pick<LogEntry, "prev" | "hash" | "sums">>,
): DecisionRecord {
  const record: Record<string, unknown> = {};
  for (const field of RECORD_FIELDS) record[field] = (entry as unknown as Record<string, unknown>)[field];
  return record as unknown as DecisionRecord;
}

/** sha256(prev || sha256(canonical record)), 0x-hex. */
export function entryHash(prev: string, record: DecisionRecord): string {
  const leaf = sha256(decisionRecordJson(recordOf(record)));
  return `0x${sha256(Buffer.concat([hexBytes(prev), leaf])).toString("hex")}`;
}

function fieldSums(record: DecisionRecord): Record<string, string> {
  const sums: Record<string, string> = {};
  for (const field of RECORD_FIELDS)
    sums[field] = sha256(`${field}=${JSON.stringify(record[field])}`)
      .toString("hex")
      .slice(0, 8);
  return sums;
}

/**
 * Links `records` onto the log at `head`. Their seqs must continue head.nextSeq one by one (the
 * resource manager numbers only the decisions that took effect); a record out of line throws, as
 * it would be a bug of the caller, not an input to log.
 */
export function appendEntries(
  head: LogHead,
  records: readonly DecisionRecord[],
): { entries: LogEntry[]; head: LogHead } {
  let { nextSeq, lastHash } = head;
  const entries: LogEntry[] = [];
  for (const r of records) {
    if (r.seq !== nextSeq)
      throw new RangeError(`decision seq ${r.seq} does not continue the log at ${nextSeq}`);
    const record = recordOf(r);
    const hash = entryHash(lastHash, record);
    entries.push({ ...record, prev: lastHash, hash, sums: fieldSums(record) });
    lastHash = hash;
    nextSeq += 1;
  }
  return { entries, head: { nextSeq, lastHash } };
}

/** The epoch of `entries` (non-empty, consecutive), ready to store. */
export function sealEpoch(
  deviceId: string,
  epoch: number,
  prev: string,
  entries: readonly LogEntry[],
): EpochDocument {
  if (entries.length === 0) throw new RangeError("an epoch holds at least one entry");
  return {
    v: RESOURCE_LOG_VERSION,
    deviceId,
    epoch,
    firstSeq: entries[0].seq,
    count: entries.length,
    prev,
    lastHash: entries[entries.length - 1].hash,
    entries: [...entries],
  };
}

/** When an epoch closes: at `maxRecords` entries, or `maxAgeMs` after its first entry. */
export interface EpochBounds {
  maxRecords: number;
  maxAgeMs: number;
}

/** True when the open epoch (entries since `openedAtMs`) must be sealed at `nowMs`. */
export function epochDue(
  count: number,
  openedAtMs: number | undefined,
  nowMs: number,
  bounds: EpochBounds,
): boolean {
  if (count === 0) return false;
  return count >= bounds.maxRecords || (openedAtMs !== undefined && nowMs - openedAtMs >= bounds.maxAgeMs);
}

// ---------------------------------------------------------------------------------------------------
// Verification

export type FindingKind = "missing-epoch" | "gap" | "reorder" | "edit" | "link" | "anchor-mismatch";

/** One thing wrong with a device's log, named precisely enough to find it. */
export interface Finding {
  kind: FindingKind;
  epoch: number;
  seq?: number;
  /** The record or epoch field that does not check out. */
  field?: string;
  message: string;
}

/** What the verifier needs: the anchors (from the chain) and, per epoch, the stored document or why not. */
export interface LogVerifyInput {
  deviceId: string;
  /** Every anchor of the device, in epoch order, as the chain's events hold them. */
  anchors: readonly EpochAnchor[];
  /** Epoch range to check (inclusive); default all anchored. */
  from?: number;
  to?: number;
  /** The document fetched by each anchor's CID (parsed JSON), or an Error when it could not be fetched. */
  documents: ReadonlyMap<number, unknown>;
}

export interface LogVerifyResult {
  findings: Finding[];
  epochsChecked: number;
  recordsChecked: number;
}

function isEntry(value: unknown): value is LogEntry {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The record field whose fingerprint no longer matches, if the sums name one. */
function changedField(entry: LogEntry): string | undefined {
  if (typeof entry.sums !== "object" || entry.sums === null) return undefined;
  const now = fieldSums(recordOf(entry));
  return RECORD_FIELDS.find((f) => entry.sums[f] !== now[f]);
}

/** The range of epochs to check: [from, to], or a finding when it asks for epochs not anchored. */
function range(input: LogVerifyInput): { from: number; to: number; findings: Finding[] } {
  const anchored = input.anchors.length;
  const from = input.from ?? 0;
  const to = input.to ?? anchored - 1;
  const findings: Finding[] = [];
  for (let e = Math.max(from, anchored); e <= to; e++)
    findings.push({
      kind: "missing-epoch",
      epoch: e,
      message: `epoch ${e} is not anchored on chain (device ${input.deviceId} has ${anchored} anchored epochs)`,
    });
  return { from, to: Math.min(to, anchored - 1), findings };
}

/**
 * Checks every record of epochs [from, to] against the anchors and the hash chain, and names each
 * gap (a seq missing), reorder (a seq out of order), edit (a record whose content no longer matches
 * its hash, with the field when its fingerprint shows it), broken link (prev not the hash before),
 * anchor mismatch (count, first seq, last hash) and missing epoch (not anchored, or not fetchable).
 */
export function verifyResourceLog(input: LogVerifyInput): LogVerifyResult {
  const { from, to, findings } = range(input);
  let recordsChecked = 0;
  let epochsChecked = 0;
  for (let e = from; e <= to; e++) {
    const anchor = input.anchors[e];
    if (anchor === undefined || anchor.epoch !== e) {
      findings.push({ kind: "missing-epoch", epoch: e, message: `epoch ${e}: no anchor on chain` });
      continue;
    }
    const previous = e === 0 ? undefined : input.anchors[e - 1];
    if (previous !== undefined && anchor.firstSeq !== previous.firstSeq + previous.count)
      findings.push({
        kind: "gap",
        epoch: e,
        seq: previous.firstSeq + previous.count,
        field: "firstSeq",
        message: `epoch ${e}: anchored firstSeq ${anchor.firstSeq}, but epoch ${e - 1} ended at seq ${previous.firstSeq + previous.count - 1}`,
      });
    const doc = input.documents.get(e);
    epochsChecked += 1;
    if (doc === undefined || doc instanceof Error) {
      findings.push({
        kind: "missing-epoch",
        epoch: e,
        message: `epoch ${e}: its records (CID ${anchor.cid}) could not be fetched${doc instanceof Error ? `: ${doc.message}` : ""}`,
      });
      continue;
    }
    const d = doc as Partial<EpochDocument>;
    const entries = Array.isArray(d.entries) ? d.entries.filter(isEntry) : [];
    // The link into this epoch: the previous anchor's last hash (or genesis).
    let expectedPrev = previous?.lastHash ?? GENESIS_HASH;
    let expectedSeq = anchor.firstSeq;
    // Out of order: named once per inversion, then the records are checked in seq order, so a
    // reorder alone shows up as nothing else.
    for (let i = 1; i < entries.length; i++)
      if (entries[i].seq < entries[i - 1].seq)
        findings.push({
          kind: "reorder",
          epoch: e,
          seq: entries[i].seq,
          field: "seq",
          message: `epoch ${e}: seq ${entries[i].seq} is stored after seq ${entries[i - 1].seq}`,
        });
    for (const entry of [...entries].sort((a, b) => a.seq - b.seq)) {
      recordsChecked += 1;
      const seq = entry.seq;
      if (seq < expectedSeq) {
        findings.push({
          kind: "reorder",
          epoch: e,
          seq,
          field: "seq",
          message: `epoch ${e}: seq ${seq} is stored more than once`,
        });
      } else if (seq > expectedSeq) {
        const missing =
          seq - 1 === expectedSeq ? `seq ${expectedSeq} is` : `seqs ${expectedSeq}..${seq - 1} are`;
        findings.push({
          kind: "gap",
          epoch: e,
          seq: expectedSeq,
          field: "seq",
          message: `epoch ${e}: ${missing} missing (the next stored record is seq ${seq})`,
        });
      } else if (entry.prev !== expectedPrev) {
        findings.push({
          kind: "link",
          epoch: e,
          seq,
          field: "prev",
          message: `epoch ${e}, seq ${seq}: prev ${entry.prev} is not the hash of the record before it (${expectedPrev})`,
        });
      }
      const recomputed = entryHash(entry.prev, entry);
      if (recomputed !== entry.hash) {
        const field = changedField(entry);
        findings.push({
          kind: "edit",
          epoch: e,
          seq,
          field: field ?? "hash",
          message:
            `epoch ${e}, seq ${seq}: the record was edited after it was hashed` +
            (field === undefined
              ? " (its hash does not match its content)"
              : ` (field ${field} = ${JSON.stringify(entry[field as keyof LogEntry])})`),
        });
      }
      expectedPrev = entry.hash;
      expectedSeq = Math.max(expectedSeq, seq + 1);
    }
    if (entries.length !== anchor.count)
      findings.push({
        kind: entries.length < anchor.count ? "gap" : "anchor-mismatch",
        epoch: e,
        field: "count",
        message: `epoch ${e}: holds ${entries.length} records, the anchor says ${anchor.count}`,
      });
    const last = entries.at(-1);
    if (last !== undefined && last.hash !== anchor.lastHash)
      findings.push({
        kind: "anchor-mismatch",
        epoch: e,
        seq: last.seq,
        field: "lastHash",
        message: `epoch ${e}: its last record (seq ${last.seq}) hashes to ${last.hash}, the anchor holds ${anchor.lastHash}`,
      });
  }
  findings.sort((a, b) => a.epoch - b.epoch || (a.seq ?? Infinity) - (b.seq ?? Infinity));
  return { findings, epochsChecked, recordsChecked };
}

/** The epoch document's canonical bytes (what is added to IPFS): JSON with sorted keys. */
export function epochDocumentJson(doc: EpochDocument): string {
  return stableStringify(doc);
}
