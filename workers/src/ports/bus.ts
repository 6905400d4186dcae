/**
 * The message bus between workers, dashboards and the chain bridge (MQTT in production).
 *
 * Delivery policy, shared by every implementation: `publish` never queues behind a dead
 * connection. While disconnected it rejects at once with a retryable ShoalError (and counts the
 * failure), so the caller decides: the bridge leaves its batch unacknowledged and the chain source
 * re-delivers it later, which is both bounded (nothing piles up in memory) and lossless (the chain
 * is the queue). A publish that was sent but not acknowledged within the timeout also rejects;
 * the implementation may still deliver it later, so consumers de-duplicate by id.
 */
import type { Qos } from "../domain/topics";
import { ShoalError } from "../errors";

export type BusState = "connecting" | "connected" | "reconnecting" | "closed";

export type BusEvent =
  | { type: "connected" }
  | { type: "disconnected"; reason: string }
  | { type: "reconnecting" }
  | { type: "closed" }
  | { type: "publish-failed"; topic: string; error: Error };

export interface PublishOptions {
  /** Default 1. */
  qos?: Qos;
  /** Default false. */
  retain?: boolean;
  signal?: AbortSignal;
}

export interface BusMessage {
  topic: string;
  payload: Uint8Array;
  retained: boolean;
  /** The device that signed it, when the bus verifies signatures (the signed bus); else undefined. */
  sender?: string;
}

export type MessageHandler = (message: BusMessage) => void;

export interface Bus {
  readonly state: BusState;
  /** Resolves once connected (at once when already connected); rejects when closed or aborted. */
  ready(options?: { signal?: AbortSignal }): Promise<void>;
  /** Resolves when the broker acknowledged the message (QoS 1/2) or it was written (QoS 0). */
  publish(topic: string, payload: string | Uint8Array, options?: PublishOptions): Promise<void>;
  /** Subscribes; kept across reconnects. Resolves with the function that unsubscribes. */
  subscribe(
    filter: string,
    handler: MessageHandler,
    options?: { qos?: Qos; signal?: AbortSignal },
  ): Promise<() => Promise<void>>;
  /** Listens to connection and failure events; returns the function that stops listening. */
  on(listener: (event: BusEvent) => void): () => void;
  /** Announces a graceful goodbye where the implementation has one, then disconnects. */
  close(options?: { signal?: AbortSignal }): Promise<void>;
}

/** What every Bus implementation throws; `retryable` when the broker may take it later. */
export class BusError extends ShoalError {
  override name = "BusError";
}
