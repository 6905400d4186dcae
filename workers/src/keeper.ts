/**
 * The keeper: every worker keeps the chain live for the others. From the chain events its source
 * delivers it keeps a ledger of devices, open placements and expired ones (domain/keeper.ts), and
 * when a duty comes due it sends the permissionless transaction after a jittered delay:
 *   expireDevice(deviceId)              a device that stopped heartbeating while holding replicas
 *   finalizeExpired(placementId)        each placement of an expired device, freeing its replica
 *   finalizeOverdueClaim(placementId)   a claim not confirmed Running within the claim deadline
 * Each worker draws its own delay, so usually one transaction wins; the others simulate the call
 * first (an eth_call, no nonce, no gas), see it revert and stay quiet (a debug line). A device
 * never expires itself, nor a device whose owner or operator is its own key.
 *
 * Costs grow with what changed: the ledger is updated per event and holds only live entities; the
 * chain is read only for a due duty. The ledger is saved next to the chain checkpoint (at most every
 * `saveIntervalMs`), and `open()` rewinds the source to the saved block, so a restart replays the
 * unsaved tail, never the history (a first start derives it once, as the bridge does).
 */
import path from "node:path";
import type { Logger } from "pino";
import { readJsonFile, writeJsonFileAtomic } from "./lib/json-file";
import {
  actAtMs,
  applyKeeperEvent,
  emptyLedger,
  keeperDuties,
  type KeeperDuty,
  type KeeperLedger,
} from "./domain/keeper";
import type { ChainBatch, ChainSource } from "./ports/chain-source";
import type { KeeperRegistry, TxResult } from "./ports/registry";

/** Reverts that mean someone else did it first, or the duty is not (or no longer) due: quiet. */
const LOST_RACE = new Set([
  "PlacementRegistryDeviceFresh",
  "PlacementRegistryNoLivePlacements",
  "PlacementRegistryInvalidTransition",
  "PlacementRegistryNotExpired",
  "PlacementRegistryUnknownPlacement",
  "PlacementRegistryPlacementExpired",
  "PlacementRegistryClaimNotOverdue",
  "PlacementRegistryPlacementSuperseded",
]);

/** The contract's custom error, as the registry adapter reports it (RegistryError), if any. */
function revertOf(error: unknown): { errorName?: string; errorArgs: readonly unknown[] } {
  const e = error as { errorName?: unknown; errorArgs?: unknown };
  return {
    errorName: typeof e?.errorName === "string" ? e.errorName : undefined,
    errorArgs: Array.isArray(e?.errorArgs) ? e.errorArgs : [],
  };
}

export type KeeperOutcome =
  | { duty: KeeperDuty; result: "sent"; tx: TxResult }
  | { duty: KeeperDuty; result: "lost"; reason: string }
  | { duty: KeeperDuty; result: "error"; error: unknown };

export interface KeeperDeps {
  registry: KeeperRegistry;
  deviceId: number;
  /** Its status says whether the ledger is current: no duty is acted on while catching up. */
  source: Pick<ChainSource, "chainId" | "startBlock" | "rewind" | "status">;
  /** Where the ledger file goes (the worker's data dir). */
  dataDir: string;
  logger: Logger;
  /** Each duty waits 0..jitterMs past its time, drawn once per duty and worker. */
  jitterMs: number;
  /** After an attempt, the same duty waits this long for its event before trying again. */
  retryMs?: number;
  /** The ledger is written at most this often (default 5 s); a restart replays the rest. */
  saveIntervalMs?: number;
  random?: () => number;
  now?: () => number;
  onOutcome?: (outcome: KeeperOutcome) => void;
}

export interface Keeper {
  /** Loads the saved ledger, reads the TTL and claim deadline, rewinds the source to the ledger. */
  open(options?: { signal?: AbortSignal }): Promise<void>;
  /** The chain source's handler (call it with every batch, after open()). */
  handle(batch: ChainBatch, options?: { signal?: AbortSignal }): Promise<void>;
  /** Acts on duties as they come due until the signal aborts. */
  run(options?: { signal?: AbortSignal }): Promise<void>;
  ledger(): KeeperLedger;
}

interface LedgerFile {
  version: 1;
  chainId: number;
  startBlock: number;
  block: number;
  ledger: KeeperLedger;
}

export function createKeeper(deps: KeeperDeps): Keeper {
  const { registry, source, logger, jitterMs } = deps;
  const retryMs = deps.retryMs ?? 30_000;
  const saveIntervalMs = deps.saveIntervalMs ?? 5_000;
  const random = deps.random ?? Math.random;
  const now = deps.now ?? Date.now;
  const file = path.join(deps.dataDir, "keeper-ledger.json");
  const self = { deviceId: deps.deviceId, address: registry.address };

  let ledger = emptyLedger();
  /** The last block applied to the ledger. */
  let block = source.startBlock - 1;
  let savedAt = 0;
  let dirtySinceSave = false;
  /** The newest block timestamp seen (ms): chain time when the chain runs ahead of the wall clock. */
  let chainMs = 0;
  /** Per duty: this worker's draw for its jitter, and when it may try again after an attempt. */
  const draws = new Map<string, number>();
  const heldUntil = new Map<string, number>();
  let wake: (() => void) | undefined;

  const nowMs = () => Math.max(now(), chainMs);
  /** Replaying old blocks, the ledger is behind: a device looks stale until its next heartbeat. */
  const caughtUp = () => {
    const { safeHead, checkpoint } = source.status();
    return safeHead !== null && checkpoint.number >= safeHead && block >= checkpoint.number;
  };

  const save = async (force = false) => {
    if (!dirtySinceSave || (!force && now() - savedAt < saveIntervalMs)) return;
    const content: LedgerFile = {
      version: 1,
      chainId: source.chainId,
      startBlock: source.startBlock,
      block,
      ledger,
    };
    await writeJsonFileAtomic(file, content);
    savedAt = now();
    dirtySinceSave = false;
  };

  const describe = (d: KeeperDuty) =>
    d.kind === "expireDevice" ? `expireDevice(${d.deviceId})` : `${d.kind}(${d.placementId})`;

  const send = (d: KeeperDuty, signal?: AbortSignal): Promise<TxResult> => {
    if (d.kind === "expireDevice") return registry.expireDevice(d.deviceId, { signal });
    if (d.kind === "finalizeExpired") return registry.finalizeExpired(d.placementId, { signal });
    return registry.finalizeOverdueClaim(d.placementId, { signal });
  };

  /** One attempt; never throws (the next one comes with the duty's next time). */
  const attempt = async (duty: KeeperDuty, signal?: AbortSignal): Promise<KeeperOutcome> => {
    heldUntil.set(duty.key, now() + retryMs);
    try {
      const tx = await send(duty, signal);
      logger.info({ tx: tx.hash, gasUsed: Number(tx.gasUsed) }, `keeper: ${describe(duty)}`);
      return { duty, result: "sent", tx };
    } catch (error) {
      if (signal?.aborted) throw error;
      const { errorName: name, errorArgs } = revertOf(error);
      if (name !== undefined && LOST_RACE.has(name)) {
        learnFrom(duty, name, errorArgs);
        logger.debug({ reason: name }, `keeper: ${describe(duty)} not needed (lost the race or not due)`);
        return { duty, result: "lost", reason: name };
      }
      logger.warn({ err: error, retryInMs: retryMs }, `keeper: ${describe(duty)} failed`);
      return { duty, result: "error", error };
    }
  };

  /** A revert that names a newer fact than the ledger's (an event not delivered yet) corrects it. */
  const learnFrom = (duty: KeeperDuty, name: string, args: readonly unknown[]) => {
    if (name === "PlacementRegistryDeviceFresh" && duty.kind === "expireDevice") {
      const d = ledger.devices[String(duty.deviceId)];
      const seen = Number(args[1]);
      if (d !== undefined && seen > d.lastHeartbeat) d.lastHeartbeat = seen;
    } else if (name === "PlacementRegistryClaimNotOverdue") {
      heldUntil.set(duty.key, Number(args[1]) * 1000);
    }
  };

  return {
    async open({ signal } = {}) {
      const saved = await readJsonFile<LedgerFile>(file);
      if (
        saved?.version === 1 &&
        saved.chainId === source.chainId &&
        saved.startBlock === source.startBlock
      ) {
        ledger = saved.ledger;
        block = saved.block;
      } else if (saved !== undefined) {
        logger.warn({ file }, "keeper: the saved ledger is of another chain or deployment; deriving anew");
      }
      const [ttl, deadline] = await Promise.all([
        registry.heartbeatTtlS({ signal }),
        registry.claimDeadlineS({ signal }),
      ]);
      // A saved value came with a later event than this read: the ledger's wins.
      ledger.heartbeatTtlS ??= ttl;
      ledger.claimDeadlineS ??= deadline ?? null;
      logger.info(
        { block, heartbeatTtlS: ledger.heartbeatTtlS, claimDeadlineS: ledger.claimDeadlineS },
        ledger.claimDeadlineS === null
          ? "keeper: open (this registry has no claim deadline: overdue claims are not finalized)"
          : "keeper: open",
      );
      // A no-op unless the source is ahead of the ledger (a first start, or an unsaved tail).
      await source.rewind(block, { signal });
    },

    async handle(batch) {
      if (batch.type === "reorg") {
        // The ledger keeps no journal: a fact a reorg removed stays until an event overrides it.
        // Harmless: every duty is simulated before it is sent, so a wrong one costs one eth_call.
        logger.warn(
          { commonAncestor: batch.commonAncestor.number },
          "keeper: reorg; the ledger may be ahead",
        );
        block = Math.min(block, batch.commonAncestor.number);
        return;
      }
      if (batch.toBlock <= block) return;
      let changed = false;
      for (const e of batch.logs) {
        if (e.blockNumber <= block) continue;
        chainMs = Math.max(chainMs, e.timestamp * 1000);
        if (applyKeeperEvent(ledger, e)) changed = true;
      }
      block = batch.toBlock;
      dirtySinceSave = true;
      if (changed) wake?.();
      await save();
    },

    async run({ signal } = {}) {
      while (!signal?.aborted) {
        const duties = keeperDuties(ledger, { self });
        const live = new Set(duties.map((d) => d.key));
        for (const key of draws.keys())
          if (!live.has(key)) {
            draws.delete(key);
            heldUntil.delete(key);
          }
        let next = caughtUp() ? Infinity : nowMs() + 1000;
        for (const duty of duties) {
          if (signal?.aborted || !caughtUp()) break;
          let draw = draws.get(duty.key);
          if (draw === undefined) draws.set(duty.key, (draw = random()));
          const at = Math.max(actAtMs(duty, draw, jitterMs), heldUntil.get(duty.key) ?? 0);
          if (at > nowMs()) {
            next = Math.min(next, at);
            continue;
          }
          deps.onOutcome?.(await attempt(duty, signal));
          next = Math.min(next, heldUntil.get(duty.key) ?? Infinity);
        }
        await save().catch((error: unknown) =>
          logger.warn({ err: error }, "keeper: could not save the ledger"),
        );
        // Sleep until the next duty's time (new events wake it sooner); at most a minute, so a
        // wall clock that lags the chain catches up.
        if (signal?.aborted) break;
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal?.removeEventListener("abort", done);
            wake = undefined;
            resolve();
          };
          const timer = setTimeout(done, Math.min(60_000, Math.max(50, next - nowMs())));
          wake = done;
          signal?.addEventListener("abort", done, { once: true });
        });
      }
      await save(true).catch((error: unknown) =>
        logger.warn({ err: error }, "keeper: could not save the ledger"),
      );
    },

    ledger: () => ledger,
  };
}
