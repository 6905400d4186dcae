/**
 * The device's anchored resource log (issue 16; docs/resource-manager.md, "Anchored log"). The
 * resource manager appends every tick's decisions here before it publishes them; each is linked
 * into the hash chain (domain/resource-log.ts) and the open epoch is written to
 * `<dataDir>/resource-log.json` (atomic write + fsync, like the chain checkpoint) before `append`
 * returns: write before publish, so a decision anyone heard of is on disk, and a kill -9 loses at
 * most a decision applied in the instant before it (the next decision's `from` shows the limit the
 * kernel has).
 *
 * The log's loop (`run`) seals the open epoch when it is due (epochMaxRecords entries, or
 * epochMaxAgeMs after its first), adds the sealed epoch's canonical JSON to the device's Kubo node
 * (pinned), and anchors it on chain. A sealed epoch stays in the file until the chain holds its
 * anchor: a failed add or transaction (RPC down) is retried by the loop, and a crash after the
 * transaction is recognised by the chain's head at the next pass, never anchored twice.
 */
import path from "node:path";
import type { Logger } from "pino";
import type { DecisionRecord } from "./domain/controller";
import {
  GENESIS_HASH,
  appendEntries,
  epochDocumentJson,
  epochDue,
  sealEpoch,
  type EpochBounds,
  type EpochDocument,
  type LogEntry,
  type LogHead,
} from "./domain/resource-log";
import { ShoalError } from "./errors";
import { readJsonFile, writeJsonFileAtomic } from "./lib/json-file";
import { loop } from "./lib/supervise";
import type { ContentStore } from "./ports/content-store";
import type { ResourceAnchor } from "./ports/resource-anchor";

export const RESOURCE_LOG_FILE = "resource-log.json";

/** The file's content. */
interface LogState {
  v: 1;
  deviceId: string;
  /** Index of the next epoch to seal. */
  epochs: number;
  head: LogHead;
  /** Wall-clock ms of the open epoch's first entry. */
  openedAt?: number;
  open: LogEntry[];
  /** Sealed epochs not yet anchored, oldest first; `cid` once added to Kubo. */
  sealed: (EpochDocument & { cid?: string })[];
}

export class ResourceLogError extends ShoalError {
  override name = "ResourceLogError";
}

export interface ResourceLogDeps {
  deviceId: number;
  dataDir: string;
  bounds: EpochBounds;
  store: Pick<ContentStore, "add">;
  /** Absent: epochs are stored in Kubo but not anchored (a deployment without a ResourceLog). */
  anchor?: ResourceAnchor;
  logger: Logger;
  /** How often the loop looks for a due epoch (ms); default 1000. */
  checkIntervalMs?: number;
  /** Wall clock (ms); default Date.now. */
  wallClock?: () => number;
  /** Called after each anchor (metrics, tests). */
  onAnchored?: (info: { epoch: number; count: number; cid: string; tx: string; gasUsed: bigint }) => void;
}

export interface ResourceLog {
  /** Reads the file (or, with none, the chain's anchors) and returns where the log continues. */
  open(options?: { signal?: AbortSignal }): Promise<LogHead>;
  /** Links the records (seqs continuing the head) and writes the open epoch to disk. */
  append(records: readonly DecisionRecord[]): Promise<void>;
  /** Seals due epochs, stores and anchors them, until the signal aborts. */
  run(options: { signal: AbortSignal }): Promise<void>;
  /** Seals, stores and anchors whatever is due now (one pass of `run`). */
  pass(options?: { signal?: AbortSignal }): Promise<void>;
  status(): { epochs: number; nextSeq: number; open: number; sealed: number };
}

export function createResourceLog(deps: ResourceLogDeps): ResourceLog {
  const file = path.join(deps.dataDir, RESOURCE_LOG_FILE);
  const deviceId = String(deps.deviceId);
  const wallClock = deps.wallClock ?? (() => Date.now());
  const log = deps.logger.child({ component: "resource-log" });
  let state: LogState | undefined;
  // One writer at a time: append (resource manager) and the loop's seal/anchor share the file.
  let tail: Promise<unknown> = Promise.resolve();
  const locked = <T>(work: () => Promise<T>): Promise<T> => {
    const next = tail.then(work, work);
    tail = next.catch(() => undefined);
    return next;
  };
  const current = (): LogState => {
    if (state === undefined) throw new ResourceLogError("the resource log is not open yet");
    return state;
  };
  const save = () => writeJsonFileAtomic(file, current());

  async function open(options: { signal?: AbortSignal } = {}): Promise<LogHead> {
    const stored = await readJsonFile<LogState>(file);
    if (stored !== undefined) {
      if (stored.v !== 1 || stored.deviceId !== deviceId)
        throw new ResourceLogError(
          `${file} is not the resource log of device ${deviceId}; move it away to start over`,
        );
      state = stored;
    } else {
      // No file (a new device, or a lost data dir): continue after the last anchor, if any.
      const anchors = (await deps.anchor?.anchors(deps.deviceId, options)) ?? [];
      const last = anchors.at(-1);
      state = {
        v: 1,
        deviceId,
        epochs: anchors.length,
        head: last
          ? { nextSeq: last.firstSeq + last.count, lastHash: last.lastHash }
          : { nextSeq: 0, lastHash: GENESIS_HASH },
        open: [],
        sealed: [],
      };
      await save();
    }
    log.info({ ...status(), file }, "resource log opened");
    return { ...state.head };
  }

  function append(records: readonly DecisionRecord[]): Promise<void> {
    return locked(async () => {
      const s = current();
      if (records.length === 0) return;
      const { entries, head } = appendEntries(s.head, records);
      s.head = head;
      if (s.open.length === 0) s.openedAt = wallClock();
      s.open.push(...entries);
      // Kept in memory when the write fails: the next append or pass writes it.
      await save();
    });
  }

  async function seal(): Promise<void> {
    await locked(async () => {
      const s = current();
      if (!epochDue(s.open.length, s.openedAt, wallClock(), deps.bounds)) return;
      const prev = s.open[0].prev;
      s.sealed.push(sealEpoch(deviceId, s.epochs, prev, s.open));
      s.epochs += 1;
      s.open = [];
      s.openedAt = undefined;
      await save();
    });
  }

  async function storeAndAnchor(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const doc = current().sealed[0];
      if (doc === undefined || signal?.aborted) return;
      if (doc.cid === undefined) {
        const { cid: _cid, ...plain } = doc;
        const { cid } = await deps.store.add(new TextEncoder().encode(epochDocumentJson(plain)), { signal });
        await locked(async () => {
          doc.cid = cid;
          await save();
        });
      }
      const cid = doc.cid!;
      if (deps.anchor !== undefined) {
        const head = await deps.anchor.head(deps.deviceId, { signal });
        if (head.epochs < doc.epoch)
          throw new ResourceLogError(
            `epoch ${doc.epoch} cannot be anchored: the chain holds ${head.epochs} epochs of device ${deviceId}`,
          );
        if (head.epochs === doc.epoch) {
          const { hash, gasUsed } = await deps.anchor.anchor(
            deps.deviceId,
            { epoch: doc.epoch, firstSeq: doc.firstSeq, count: doc.count, lastHash: doc.lastHash, cid },
            { signal },
          );
          log.info(
            { epoch: doc.epoch, count: doc.count, cid, tx: hash, gasUsed: Number(gasUsed) },
            "epoch anchored",
          );
          deps.onAnchored?.({ epoch: doc.epoch, count: doc.count, cid, tx: hash, gasUsed });
        } else {
          log.info({ epoch: doc.epoch, cid }, "epoch already anchored (before a restart)");
        }
      } else {
        log.info(
          { epoch: doc.epoch, count: doc.count, cid },
          "epoch stored; no ResourceLog in the deployment to anchor it",
        );
      }
      await locked(async () => {
        current().sealed.shift();
        await save();
      });
    }
  }

  async function pass(options: { signal?: AbortSignal } = {}): Promise<void> {
    await seal();
    await storeAndAnchor(options.signal);
  }

  function status() {
    const s = current();
    return { epochs: s.epochs, nextSeq: s.head.nextSeq, open: s.open.length, sealed: s.sealed.length };
  }

  return {
    open,
    append,
    pass,
    status,
    run: ({ signal }) =>
      loop("resource log", () => pass({ signal }), {
        intervalMs: deps.checkIntervalMs ?? 1000,
        signal,
        // An add or an anchor that fails (Kubo or the RPC down) is tried again, with backoff.
        policy: "always",
        backoff: { initialMs: 1000, maxMs: 30_000 },
        onError: ({ error, delayMs }) =>
          log.warn({ err: error, retryInMs: delayMs }, "could not store or anchor an epoch; retrying"),
      }).done,
  };
}
