/**
 * The chain -> MQTT bridge: every event of a delivered batch becomes a QoS 1 message on its
 * contract/event topic, then the retained desired state of every placement, device and deployment
 * the batch touched is republished (once per batch, its final value), then the derived state is
 * persisted (what is live and the reorg window's journal: ended placements and stopped deployments
 * leave it once below the window, their retained state keeps its final value); only then does the handler resolve and the chain source advance its checkpoint.
 *
 * Crash safety: the state file is written after every message of a batch was acknowledged and
 * before the source's checkpoint, so after a crash the state is either behind the checkpoint by
 * nothing or ahead by one batch, which is then skipped as already published. A state file that is
 * missing or behind makes `open()` rewind the source to it: events are re-published (consumers
 * de-duplicate by id), never skipped.
 */
import path from "node:path";
import type { Logger } from "pino";
import { readJsonFile, writeJsonFileAtomic } from "./lib/json-file";
import {
  advance,
  initialDerived,
  restoreDerived,
  rollback,
  type DerivedState,
  type DesiredState,
} from "./domain/desired-state";
import {
  chainEventMessage,
  createTopics,
  reorgMessage,
  stateMessages,
  type OutgoingMessage,
} from "./domain/topics";
import { ShoalError } from "./errors";
import { retry } from "./lib/supervise";
import type { Bus } from "./ports/bus";
import type { ChainBatch, ChainSource } from "./ports/chain-source";

export interface BridgeDeps {
  source: ChainSource;
  bus: Bus;
  /** Directory of the bridge's state file (the source's data dir is fine). */
  dataDir: string;
  logger: Logger;
  /** Root of every topic (default shoal/v1); see createTopics. */
  topicRoot?: string;
  /** File name inside dataDir (default bridge-state.json). */
  stateName?: string;
  /** Publishes awaiting PUBACK at once; bounds memory on a large backlog (default 1,000). */
  maxInFlight?: number;
}

export interface BridgeStats {
  batches: number;
  /** Event messages acknowledged by the broker since start. */
  events: number;
  /** Retained state messages acknowledged since start. */
  states: number;
  reorgs: number;
  /** Last block whose events are published and whose state is derived. */
  block: number;
}

export interface Bridge {
  /** Loads the derived state and rewinds the source to it when the source is ahead. Idempotent. */
  open(options?: { signal?: AbortSignal }): Promise<void>;
  /** The ChainSource handler: pass it to `source.poll` / `source.run`, or wrap it. */
  handle(batch: ChainBatch, options: { signal?: AbortSignal }): Promise<void>;
  /** open(), then source.run(handle) until the signal aborts. */
  run(options?: { signal?: AbortSignal }): Promise<void>;
  /** The desired state as of `stats().block`. */
  state(): DesiredState;
  stats(): BridgeStats;
}

interface StateFile {
  version: 1;
  chainId: number;
  startBlock: number;
  derived: Omit<DerivedState, "state">;
}

export class BridgeError extends ShoalError {
  override name = "BridgeError";
}

export function createBridge(deps: BridgeDeps): Bridge {
  const { source, bus, maxInFlight = 1_000 } = deps;
  const { chainId, startBlock, reorgWindow } = source;
  const file = path.join(deps.dataDir, deps.stateName ?? "bridge-state.json");
  const log = deps.logger.child({ component: "bridge", chainId });
  const topicNames = createTopics(deps.topicRoot);
  let derived: DerivedState | undefined;
  const stats: BridgeStats = { batches: 0, events: 0, states: 0, reorgs: 0, block: startBlock - 1 };

  async function load(): Promise<DerivedState> {
    if (derived) return derived;
    const saved = await readJsonFile<StateFile>(file);
    if (saved && (saved.version !== 1 || saved.chainId !== chainId || saved.startBlock !== startBlock)) {
      throw new BridgeError(`${file} belongs to another chain or deployment; delete it to re-derive`);
    }
    derived = saved ? restoreDerived(saved.derived) : initialDerived(startBlock - 1);
    stats.block = derived.block;
    return derived;
  }

  async function save(next: DerivedState): Promise<void> {
    const { state: _state, ...persisted } = next;
    const content: StateFile = { version: 1, chainId, startBlock, derived: persisted };
    await writeJsonFileAtomic(file, content);
  }

  /** Publishes in order with at most maxInFlight unacknowledged; rejects on the first failure. */
  async function publishAll(messages: readonly OutgoingMessage[], signal?: AbortSignal): Promise<void> {
    let next = 0;
    const lane = async () => {
      while (next < messages.length) {
        if (signal?.aborted) throw new BridgeError("publishing was aborted");
        const m = messages[next++];
        await bus.publish(m.topic, m.payload, { qos: m.qos, retain: m.retain, signal });
      }
    };
    await Promise.all(Array.from({ length: Math.min(maxInFlight, messages.length) }, lane));
  }

  const bridge: Bridge = {
    async open() {
      const current = await load();
      // A no-op unless the source is ahead of the derived state (lost or stale state file).
      await source.rewind(current.block);
    },

    async handle(batch, { signal }) {
      const current = await load();
      if (batch.type === "logs") {
        if (batch.toBlock <= current.block) {
          log.debug({ toBlock: batch.toBlock }, "batch already published; skipping");
          return;
        }
        if (batch.fromBlock > current.block + 1) {
          throw new BridgeError(
            `the source delivers from block ${batch.fromBlock} but the bridge has derived only up to ${current.block}; call open() before polling`,
          );
        }
        const result = advance(current, batch.logs, batch.toBlock, reorgWindow);
        await publishAll(
          result.applied.map((e) => chainEventMessage(e, topicNames)),
          signal,
        );
        const states = stateMessages(chainId, result.values, result.changed, topicNames);
        await publishAll(states, signal);
        await save(result.derived);
        derived = result.derived;
        stats.batches++;
        stats.events += result.applied.length;
        stats.states += states.length;
        stats.block = derived.block;
        return;
      }

      const ancestor = batch.commonAncestor;
      if (ancestor.number < current.baseBlock && ancestor.hash !== null) {
        // The source only reports ancestors inside the window it shares with us, or a full reset.
        throw new BridgeError(
          `reorg to block ${ancestor.number} is below the bridge's base block ${current.baseBlock}; the source and the bridge disagree on the reorg window`,
        );
      }
      const result = rollback(current, ancestor.number);
      const messages = [
        reorgMessage(
          chainId,
          ancestor,
          batch.replacedHead,
          result.removed.map((e) => e.id),
          topicNames,
        ),
        ...stateMessages(chainId, result.derived.state, result.changed, topicNames),
      ];
      await publishAll(messages, signal);
      await save(result.derived);
      derived = result.derived;
      stats.reorgs++;
      stats.states += messages.length - 1;
      stats.block = derived.block;
      log.warn(
        {
          commonAncestor: ancestor.number,
          removed: result.removed.length,
          republished: result.changed.length,
        },
        "reorg: rolled back and republished the changed states",
      );
    },

    async run(options = {}) {
      const { signal } = options;
      // open() reads the chain (the source's first load); a node that is down at start is the
      // same transient failure as later, so wait for it instead of failing the worker.
      await retry("open the bridge", () => bridge.open(options), {
        signal,
        onRetry: ({ error, attempt, delayMs }) =>
          log.warn({ err: error, attempt, delayMs }, "could not open the bridge; retrying"),
      });
      if (signal?.aborted) return;
      await source.run(bridge.handle, options);
    },

    state() {
      return (derived ?? initialDerived(startBlock - 1)).state;
    },

    stats() {
      return { ...stats };
    },
  };
  return bridge;
}
