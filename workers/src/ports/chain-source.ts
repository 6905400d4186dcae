/**
 * The chain as the worker reads it: a stream of decoded contract events in block order, delivered
 * in batches, with reorgs reported as their own batch. Implementations checkpoint after the handler
 * of a batch resolved, so a crash re-delivers at most the last unacknowledged batch and never
 * skips one; consumers de-duplicate by `ChainEvent.id`.
 */

import type { BlockRef, ChainEvent } from "../domain/chain-event";

// The event types are the domain's (workers/src/domain/chain-event.ts); re-exported for the port's users.
export type { BlockRef, ChainEvent, JsonValue, ShoalContractName } from "../domain/chain-event";

/** What a handler receives: new logs, or the news that blocks it already saw are gone. */
export type ChainBatch =
  | {
      type: "logs";
      chainId: number;
      fromBlock: number;
      toBlock: number;
      /** Hash of `toBlock`: the batch is consistent with the chain ending there. */
      toBlockHash: string;
      logs: ChainEvent[];
    }
  | {
      type: "reorg";
      chainId: number;
      /**
       * Highest block both chains share. Everything the handler derived from later blocks is void;
       * the source re-delivers from `commonAncestor.number + 1`. When the reorg is deeper than the
       * remembered window the ancestor is `startBlock - 1` (hash null): re-derive from scratch.
       */
      commonAncestor: BlockRef;
      /** The last block delivered before the reorg, as the handler saw it. */
      replacedHead: BlockRef;
    };

export interface ChainBatchHandler {
  (batch: ChainBatch, options: { signal?: AbortSignal }): Promise<void>;
}

/** What one `poll()` did. */
export type PollOutcome =
  | { type: "idle"; head: number; safeHead: number; checkpoint: number }
  | { type: "logs"; head: number; safeHead: number; checkpoint: number; fromBlock: number; events: number }
  | { type: "reorg"; head: number; safeHead: number; checkpoint: number; commonAncestor: BlockRef };

export interface ChainSourceStatus {
  chainId: number;
  /** Last delivered and acknowledged block (startBlock - 1 before the first batch). */
  checkpoint: BlockRef;
  /** Chain head at the last poll, or null before the first poll. */
  head: number | null;
  /** head - confirmations: the newest block the source delivers. */
  safeHead: number | null;
}

export interface ChainSource {
  readonly chainId: number;
  /** First block read; a reorg deeper than the window re-derives from here. */
  readonly startBlock: number;
  /** Blocks of history whose hashes are kept for reorg detection. */
  readonly reorgWindow: number;
  /**
   * One step: detect a reorg (and report it), or deliver the next batch up to the safe head, or
   * report idle. Resolves after the handler resolved and the checkpoint was persisted; rejects
   * (checkpoint unchanged) when the RPC or the handler failed.
   */
  poll(handler: ChainBatchHandler, options?: { signal?: AbortSignal }): Promise<PollOutcome>;
  /**
   * Polls until `signal` aborts: back to back while behind, every poll interval when idle, with
   * backoff after retryable failures (logged, never thrown). Rejects only on a fatal error.
   */
  run(handler: ChainBatchHandler, options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Forgets everything after `block`: the next poll delivers from block + 1. For consumers whose own
   * state is behind the checkpoint (lost or older data); re-delivery is safe, skipping is not.
   */
  rewind(block: number, options?: { signal?: AbortSignal }): Promise<void>;
  status(): ChainSourceStatus;
}
