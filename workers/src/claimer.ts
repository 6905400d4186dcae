/**
 * The claimer: finds deployments that want more replicas than they have, scores this device's fit
 * for each, and claims on chain after a delay that shrinks as the score grows. No coordinator: the
 * best-fitting device usually claims first, and the contract turns every later claim for the same
 * replica into a custom error, which here is a quiet, normal "lost".
 */
import type { Logger } from "pino";
import { decodePlacementId, isLivePlacement } from "./domain/placement";
import { IdRanges } from "./domain/bounded";
import { sleepOrThrow } from "./lib/supervise";
import {
  claimDelayMs,
  claimRank,
  fit,
  rankedClaimDelayMs,
  type ClaimDelayOptions,
  type RankedClaimOptions,
} from "./domain/scoring";
import type { ChainEvent } from "./ports/chain-source";
import {
  RegistryError,
  type DeploymentView,
  type DeviceView,
  type Registry,
  type ReplicaTerms,
} from "./ports/registry";

/**
 * Reverts that mean another device, or a change of the deployment (scaled, rolled, stopped), got
 * there while this device waited: a quiet "lost", not an error.
 */
const LOST_RACE = new Set([
  "PlacementRegistryReplicasExhausted",
  "PlacementRegistryAlreadyPlaced",
  "PlacementRegistryDeploymentNotActive",
  "PlacementRegistryCpuCapacityExceeded",
  "PlacementRegistryMemoryCapacityExceeded",
  "PlacementRegistryPlatformUnsupported",
  "PlacementRegistryLabelMissing",
]);

/** Fit failures that can pass without an event of the deployment (this device's usage drops). */
const CAPACITY = new Set(["cpu", "memory"]);

export type ClaimOutcome =
  | { deploymentId: number; result: "won"; placementId: string; delayMs: number; score: number }
  | { deploymentId: number; result: "lost"; reason: string; delayMs: number; score: number }
  | { deploymentId: number; result: "skipped"; reason: string };

export interface ClaimerDeps {
  registry: Registry;
  platform: string;
  logger: Logger;
  options: ClaimDelayOptions;
  /**
   * The devices online now (this one included), from the bridge election's presences: with two or
   * more, claims follow the ranked order of domain/scoring.ts (usually one claim per replica, even
   * when many devices see a deployment in the same block); without, the score-based delay.
   */
  online?: () => readonly string[];
  /** This device's id, for its rank among `online`. */
  deviceId?: string;
  /** Tiers of the ranked order (default: a 4-s step, 4 tiers, the options' jitter). */
  ranked?: Partial<RankedClaimOptions>;
  /** Host load 0..1 for the score; 0 when unknown. */
  hostLoad?: () => number;
  /**
   * Every deployment is re-read at least this often even without an event touching it: a safety
   * net, not the mechanism (default 5 min).
   */
  resyncMs?: number;
  random?: () => number;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  onOutcome?: (outcome: ClaimOutcome) => void;
}

export interface Claimer {
  /**
   * One pass over the deployments that may need this device: new ones, those chain events touched
   * since the last pass, and those still wanting replicas it could not take. Resolves with what it
   * did; errors other than lost races throw (and the pass's deployments are read again next time).
   */
  pass(options?: { signal?: AbortSignal }): Promise<ClaimOutcome[]>;
  /** Chain events changed these deployments (or, with "all", possibly any): re-read them next pass. */
  touch(deploymentIds: Iterable<number> | "all"): void;
  /**
   * Chain events heard (bridged or read): the deployments they touch (deploymentsTouchedBy) are
   * read again next pass, except a new deployment, which is read only once this device's claim
   * tier for it comes, and not at all when the claims heard by then fill it.
   */
  hear(events: readonly ChainEvent[]): void;
  /**
   * Events may have been missed (a reconnect; the resync timer): the next pass reads the deployment
   * count and the deployments this device holds or last saw wanting replicas. Not every deployment:
   * a full deployment of other devices changes only with an event, and N devices re-reading all of
   * them on every reconnect or resync was N x deployments reads each time.
   */
  catchUp(): void;
  /** Milliseconds until a deployment waiting for this device's tier is due, if one waits. */
  nextReadInMs(): number | undefined;
  /** Whether this device held a placement of the deployment when it last read it (or claimed one since). */
  holds(deploymentId: number): boolean;
}

/** Device events that change whether this device may claim at all: every deployment is re-read. */
const DEVICE_WIDE = new Set([
  "DeviceEnrolled",
  "DeviceOperatorChanged",
  "DeviceExitRequested",
  "DeviceExited",
  "DeviceSlashed",
  "DeviceExpired",
  "ParametersChanged",
]);

/**
 * A deferred deployment is read this long before its tier's claim time, so the read (three calls)
 * is done when the claim is due.
 */
const READ_LEAD_MS = 1_000;

/** Events that only fill a deployment's replicas: they never give another device one to claim. */
const FILLS = new Set(["PlacementClaimed", "PlacementConfirmed"]);

/**
 * The deployments a batch of chain events touched, for `Claimer.touch`: by the `deploymentId`
 * argument, or by a placement id's upper bits (placement ids are `deploymentId << 32 | n`).
 * With `holds` given, another device's claim or confirm touches only a deployment this device
 * holds a placement of (a roll completing elsewhere frees its superseded one): else every claim of
 * a deployment of R replicas had all N devices read it again, R x N reads per deployment.
 */
export function deploymentsTouchedBy(
  events: readonly ChainEvent[],
  self?: string,
  holds?: (deploymentId: number) => boolean,
): Set<number> | "all" {
  const ids = new Set<number>();
  for (const e of events) {
    if (DEVICE_WIDE.has(e.event)) {
      // Another device's enrollment, exit or expiry changes nothing this device may claim (the
      // placements it frees come with their own events); with `self` given those are skipped,
      // else a fleet of N re-read every deployment N times per wave of enrollments.
      const about = e.args.deviceId;
      if (self === undefined || about === undefined || String(about) === self) return "all";
      continue;
    }
    const { deploymentId, placementId } = e.args;
    const id =
      typeof deploymentId === "number"
        ? deploymentId
        : typeof placementId === "string" && /^\d+$/.test(placementId)
          ? decodePlacementId(placementId).deploymentId
          : undefined;
    if (id === undefined) continue;
    if (holds && FILLS.has(e.event) && String(e.args.deviceId) !== self && !holds(id)) continue;
    ids.add(id);
  }
  return ids;
}

export function createClaimer(deps: ClaimerDeps): Claimer {
  const { registry, platform, logger } = deps;
  const random = deps.random ?? Math.random;
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? sleepOrThrow;
  const hostLoad = deps.hostLoad ?? (() => 0);
  const resyncMs = deps.resyncMs ?? 300_000;
  const ranked: RankedClaimOptions = {
    stepMs: 4_000,
    tiers: 4,
    jitterMs: deps.options.jitterMs,
    ...deps.ranked,
  };
  /** The delay of a claim on `d` with fit `score`: by rank among the online devices when known. */
  const delayOf = (d: DeploymentView, score: number) => {
    const online = deps.online?.() ?? [];
    if (deps.deviceId === undefined || online.length < 2) return claimDelayMs(score, random(), deps.options);
    const wanted = Math.max(1, d.replicas - d.liveReplicas);
    return rankedClaimDelayMs(claimRank(d.deploymentId, deps.deviceId, online), wanted, random(), ranked);
  };

  // What to read, so a pass costs O(deployments that changed), not O(every deployment ever made).
  /** Deployments 1..known have been seen. */
  let known = 0;
  /** To read on the next pass: new, touched by an event, or still wanting what this device lacked. */
  const pending = new Set<number>();
  /**
   * Stopped, with nothing of this device's left: stopping is final, so never read again. Ranges,
   * not one entry per deployment: ids are handed out in order, so a long run holds a few ranges.
   */
  const finished = new IdRanges();
  let resyncAt = 0;
  /**
   * Read the deployment count on the next pass: at start, at every resync, after a reconnect and
   * when an event names a deployment beyond `known` (a bridged DeploymentCreated). Not on every
   * timer pass: with N devices that poll was N reads per pass for nothing new.
   */
  let countDue = true;
  /** Deployments this device holds a placement of, as last read (for `deploymentsTouchedBy`). */
  const held = new Set<number>();
  /** Deployments that wanted replicas when last read: with `held`, what a resync reads again. */
  const open = new Set<number>();
  /**
   * New deployments heard (a bridged DeploymentCreated) and not yet read: when, how many replicas,
   * and how many claims of them have been heard since. A device ranked in a later tier reads one
   * only when its tier comes, and not at all when the earlier tiers' claims filled it: at N
   * devices and deployments of R replicas, about 4R devices read each one instead of all N.
   */
  const announced = new Map<
    number,
    { heardAt: number; replicas: number; claimed: number; readAt?: number }
  >();
  /** Deployments beyond `known` learnt from their DeploymentCreated: the count read skips them. */
  const ahead = new Set<number>();
  /** Whether to read `id` on this pass: "wait" for its tier, "skip" when heard filled. */
  const gate = (id: number): "read" | "wait" | "skip" => {
    const a = announced.get(id);
    if (a === undefined) return "read";
    if (a.claimed >= a.replicas) {
      announced.delete(id);
      return "skip";
    }
    if (a.readAt === undefined) {
      // The rank is O(online): computed once per deployment, not on every pass.
      const online = deps.online?.() ?? [];
      if (deps.deviceId === undefined || online.length < 2) return "read";
      const rank = claimRank(id, deps.deviceId, online);
      const tier = Math.min(Math.floor(rank / Math.max(1, a.replicas)), ranked.tiers);
      a.readAt = a.heardAt + tier * ranked.stepMs - READ_LEAD_MS;
    }
    return now() >= a.readAt ? "read" : "wait";
  };

  const score = (device: DeviceView, terms: ReplicaTerms) =>
    fit(
      {
        platform: device.platform,
        labels: device.labelKeys,
        cpuCapacityMillicores: device.cpuCapacityMillicores,
        memoryCapacityMiB: device.memoryCapacityMiB,
        cpuReservedMillicores: device.cpuReservedMillicores,
        memoryReservedMiB: device.memoryReservedMiB,
        load: hostLoad(),
      },
      {
        platforms: terms.platformSupported ? [device.platform] : [],
        requiredLabels: terms.requiredLabelKeys,
        cpuMinMillicores: terms.band.cpuMinMillicores,
        memoryMinMiB: terms.band.memoryMinMiB,
      },
    );

  /**
   * After a scale-down more replicas are live than asked for. Every device holding one computes
   * the same answer from the chain alone: the newest live placements are the excess (they have run
   * the shortest), and only their devices release them, so the count stops at the replicas asked
   * for without a race.
   */
  const shed = async (d: DeploymentView, mine: string, signal?: AbortSignal) => {
    const live = (await registry.placementsOfDeployment(d.deploymentId, { signal }))
      .filter((p) => isLivePlacement(p.state))
      .map((p) => BigInt(p.placementId))
      .sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    const excess = live.slice(0, Math.max(0, live.length - d.replicas));
    if (!excess.includes(BigInt(mine))) return;
    const { hash } = await registry.release(mine, { signal });
    held.delete(d.deploymentId);
    logger.info(
      { deploymentId: d.deploymentId, placementId: mine, tx: hash },
      "released a replica after a scale-down",
    );
  };

  /** Frees this device's placement of a deployment that is stopped or replaced elsewhere. */
  const release = async (placementId: string, why: string, signal?: AbortSignal) => {
    const { hash } = await registry.release(placementId, { signal });
    held.delete(decodePlacementId(placementId).deploymentId);
    logger.info({ placementId, tx: hash }, `released a placement: ${why}`);
  };

  interface Candidate {
    deployment: DeploymentView;
    /** This device's superseded placement (the deployment rolled): the claim replaces it. */
    superseded?: string;
    delayMs: number;
    score: number;
  }

  /**
   * What this device does about one deployment, from a fresh read: nothing, claim it (a
   * candidate), shed or release what it holds. Returns whether to read it again next pass even
   * without an event (it wants replicas this device could not take for lack of capacity).
   */
  const consider = async (
    d: DeploymentView,
    device: DeviceView,
    out: { candidates: Candidate[]; excess: { deployment: DeploymentView; mine: string }[] },
    record: (outcome: ClaimOutcome) => void,
    signal?: AbortSignal,
  ): Promise<boolean> => {
    // The terms matter only when replicas are wanted: then read them alongside, not after.
    const wanted = d.active && d.liveReplicas < d.replicas;
    const [mine, terms] = await Promise.all([
      registry.activePlacementOf(d.deploymentId, { signal }),
      wanted ? registry.replicaTerms(d.deploymentId, platform, { signal }) : undefined,
    ]);
    if (mine === undefined) held.delete(d.deploymentId);
    else held.add(d.deploymentId);
    if (wanted) open.add(d.deploymentId);
    else open.delete(d.deploymentId);
    if (!d.active) {
      // Stopping superseded every placement; ours is released so the reconciler removes it.
      if (mine !== undefined) await release(mine, `deployment ${d.deploymentId} stopped`, signal);
      finished.add(d.deploymentId);
      return false;
    }
    const superseded =
      mine !== undefined && (await registry.placementState(mine, { signal })) === "Superseded"
        ? mine
        : undefined;
    if (mine !== undefined && superseded === undefined) {
      if (d.liveReplicas > d.replicas) out.excess.push({ deployment: d, mine });
      return false;
    }
    if (terms === undefined) {
      // Not wanted: nothing to claim; a superseded placement of ours is no longer needed.
      if (superseded !== undefined)
        await release(superseded, `deployment ${d.deploymentId} rolled and is complete`, signal);
      return false;
    }
    const result = score(device, terms);
    if (!result.fits) {
      if (superseded !== undefined)
        await release(superseded, `the new version of deployment ${d.deploymentId} does not fit`, signal);
      record({
        deploymentId: d.deploymentId,
        result: "skipped",
        reason: `${result.reason}: ${result.detail}`,
      });
      return CAPACITY.has(result.reason);
    }
    // A deployment read when its tier came has waited already since it was heard.
    const waited = now() - (announced.get(d.deploymentId)?.heardAt ?? now());
    out.candidates.push({
      deployment: d,
      superseded,
      score: result.score,
      delayMs: Math.max(0, delayOf(d, result.score) - waited),
    });
    return false;
  };

  const claim = async (c: Candidate, signal?: AbortSignal): Promise<ClaimOutcome> => {
    const { deploymentId } = c.deployment;
    // Last check against the node's pending state: claims of earlier tiers (or of devices that
    // heard the deployment sooner) may be waiting in the pool, not yet mined; the claim's gas
    // estimate, at latest, would pass, and the claim would be mined after them and revert.
    if (c.superseded === undefined) {
      const now_ = await registry.deployment(deploymentId, { blockTag: "pending", signal });
      if (!now_.active || now_.liveReplicas >= now_.replicas) {
        logger.debug({ deploymentId }, "replicas taken by pending claims: not claiming");
        return { deploymentId, result: "lost", reason: "PendingClaims", delayMs: c.delayMs, score: c.score };
      }
    }
    try {
      const { placementId, hash } = await registry.claim(deploymentId, { signal });
      logger.info(
        { deploymentId, placementId, delayMs: c.delayMs, score: c.score, tx: hash },
        "claimed a replica",
      );
      held.add(deploymentId);
      return { deploymentId, result: "won", placementId, delayMs: c.delayMs, score: c.score };
    } catch (error) {
      if (!(error instanceof RegistryError && error.errorName && LOST_RACE.has(error.errorName))) throw error;
      logger.debug({ deploymentId, reason: error.errorName }, "lost the claim race");
      if (c.superseded !== undefined)
        await release(c.superseded, `deployment ${deploymentId} is replaced elsewhere`, signal);
      return { deploymentId, result: "lost", reason: error.errorName, delayMs: c.delayMs, score: c.score };
    }
  };

  /**
   * The pending deployments to read now. New deployments whose tier has not come stay pending;
   * those whose claims, heard meanwhile, filled them leave (an event that frees a replica brings
   * them back).
   */
  const due = () =>
    [...pending].filter((id) => {
      const g = gate(id);
      if (g === "skip") pending.delete(id);
      return g === "read";
    });

  const touch = (deploymentIds: Iterable<number> | "all") => {
    if (deploymentIds === "all") {
      countDue = true;
      for (let id = 1; id <= known; id++) if (!finished.has(id)) pending.add(id);
      for (const id of ahead) pending.add(id);
      return;
    }
    for (const id of deploymentIds)
      if (!finished.has(id) && (id <= known || ahead.has(id))) pending.add(id);
      else if (id > known) countDue = true;
  };

  const catchUp = () => {
    countDue = true;
    touch([...held, ...open]);
  };

  return {
    touch,
    catchUp,
    holds: (deploymentId) => held.has(deploymentId),
    nextReadInMs() {
      let next: number | undefined;
      for (const id of pending) {
        const readAt = announced.get(id)?.readAt;
        if (readAt !== undefined && (next === undefined || readAt < next)) next = readAt;
      }
      return next === undefined ? undefined : Math.max(0, next - now());
    },
    hear(events) {
      for (const e of events) {
        const id =
          e.args.deploymentId ??
          (typeof e.args.placementId === "string" && /^\d+$/.test(e.args.placementId)
            ? decodePlacementId(e.args.placementId).deploymentId
            : undefined);
        if (typeof id !== "number") continue;
        if (e.event === "DeploymentCreated" && id > known && !ahead.has(id)) {
          // Its id is known from the event: no count read needed to find it.
          ahead.add(id);
          announced.set(id, { heardAt: now(), replicas: Number(e.args.replicas), claimed: 0 });
        } else if (e.event === "PlacementClaimed") {
          const a = announced.get(id);
          if (a) a.claimed++;
        }
      }
      touch(deploymentsTouchedBy(events, deps.deviceId, (id) => held.has(id)));
    },

    async pass({ signal } = {}) {
      const outcomes: ClaimOutcome[] = [];
      const record = (outcome: ClaimOutcome) => {
        outcomes.push(outcome);
        deps.onOutcome?.(outcome);
      };
      if (now() >= resyncAt) {
        // The safety net for a missed event.
        resyncAt = now() + resyncMs;
        catchUp();
      }
      // Nothing new and nothing due: no read at all (events and the resync bring work).
      if (!countDue && due().length === 0) return outcomes;
      const readCount = countDue;
      countDue = false;
      const [device, count] = await Promise.all([
        registry.device({ signal }),
        readCount ? registry.deploymentCount({ signal }) : known,
      ]).catch((error: unknown) => {
        countDue ||= readCount;
        throw error;
      });
      for (; known < count; known++) if (!ahead.delete(known + 1)) pending.add(known + 1);
      const ids = due().sort((a, b) => a - b);
      if (device.status !== "Active" || ids.length === 0) return outcomes;
      for (const id of ids) pending.delete(id);
      const out = {
        candidates: [] as Candidate[],
        excess: [] as { deployment: DeploymentView; mine: string }[],
      };
      try {
        const views = await Promise.all(ids.map((id) => registry.deployment(id, { signal })));
        for (const d of views) {
          if (await consider(d, device, out, record, signal)) pending.add(d.deploymentId);
          announced.delete(d.deploymentId);
        }
      } catch (error) {
        for (const id of ids) pending.add(id);
        throw error;
      }

      // Best first; each delay counts from the start of the pass, as every device's does. The
      // contract decides: a claim that can no longer succeed (filled, rolled, stopped, no room)
      // fails its gas estimate, costs nothing, and is a quiet loss.
      out.candidates.sort((a, b) => a.delayMs - b.delayMs);
      const started = now();
      try {
        for (const candidate of out.candidates) {
          await sleep(Math.max(0, candidate.delayMs - (now() - started)), signal);
          const outcome = await claim(candidate, signal);
          // Capacity may free up without an event of this deployment; the rest comes with one.
          // Pending claims may still revert (a claim that reverts emits nothing): read it again.
          if (
            outcome.result === "lost" &&
            (outcome.reason.includes("CapacityExceeded") || outcome.reason === "PendingClaims")
          )
            pending.add(outcome.deploymentId);
          record(outcome);
        }
        for (const { deployment, mine } of out.excess) await shed(deployment, mine, signal);
      } catch (error) {
        // Unfinished work (an RPC failed, or shutdown): look at these deployments again next pass.
        for (const { deployment } of [...out.candidates, ...out.excess]) pending.add(deployment.deploymentId);
        throw error;
      }
      return outcomes;
    },
  };
}
