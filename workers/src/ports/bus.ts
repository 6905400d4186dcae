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
  /**
   * The device that signed it, when the bus verifies signatures (the signed bus); else undefined.
   * On a deferred subscription, the device the message names until `confirm` says it signed it.
   */
  sender?: string;
  /**
   * Deferred verification only (SubscribeOptions.verify): whether the message is fully verified
   * already. Absent elsewhere: every delivered message is as verified as the bus makes it.
   */
  confirmed?: boolean;
  /**
   * Deferred verification only: completes the check (a bus that verifies against the chain reads
   * the sender there now, unless `confirmed`). Resolves true when the message is to be believed,
   * false when it is dropped (and counted by reason); never rejects. Call it as often as needed:
   * it checks once.
   */
  confirm?(): Promise<boolean>;
}

export interface SubscribeOptions {
  qos?: Qos;
  signal?: AbortSignal;
  /**
   * "full" (default): only messages the bus verified completely are delivered. "deferred": a bus
   * that verifies signatures delivers every message that passes the checks needing no outside
   * read (signature, topic ownership, replay, age) with `confirmed` and `confirm`, and reads
   * nothing until `confirm` is called: for a consumer that needs only a few of many senders
   * verified (the bridge election, among the presences of the whole fleet). A bus that verifies
   * nothing ignores it.
   */
  verify?: "full" | "deferred";
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
    options?: SubscribeOptions,
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
