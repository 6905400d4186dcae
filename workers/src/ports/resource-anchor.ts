/**
 * Where a device's resource-log epochs are anchored (contracts/ResourceLog.sol): the head that the
 * next anchor must continue, the anchoring transaction, and the anchors so far (for a worker that
 * lost its data dir, and for auditors).
 */
import type { EpochAnchor } from "../domain/resource-log";

export type { EpochAnchor };

export interface AnchorHead {
  /** Epochs anchored so far: the next epoch's index. */
  epochs: number;
  /** The seq the next epoch must start at. */
  nextSeq: number;
}

export interface ResourceAnchor {
  head(deviceId: number, options?: { signal?: AbortSignal }): Promise<AnchorHead>;
  /** Sends the anchor and waits for its receipt; a revert is fatal, anything else retryable. */
  anchor(
    deviceId: number,
    epoch: EpochAnchor,
    options?: { signal?: AbortSignal },
  ): Promise<{ hash: string; gasUsed: bigint }>;
  /** Every anchor of the device, in epoch order (from the chain's events). */
  anchors(deviceId: number, options?: { signal?: AbortSignal }): Promise<EpochAnchor[]>;
}
