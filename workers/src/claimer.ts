/**
 * The claimer: finds deployments that want more replicas than they have, scores this device's fit
 * for each, and claims on chain after a delay that shrinks as the score grows. No coordinator: the
 * best-fitting device usually claims first, and the contract turns every later claim for the same
 * replica into a custom error, which here is a quiet, normal "lost".
 */
import type { Logger } from "pino";
import { claimDelayMs, fit, type ClaimDelayOptions } from "./domain/scoring";
import { RegistryError } from "./adapters/ethers-registry";
import type { DeploymentView, DeviceView, Registry } from "./ports/registry";

/** Reverts that mean another device (or a change of the deployment) got there first. */
const LOST_RACE = new Set([
  "PlacementRegistryReplicasExhausted",
  "PlacementRegistryAlreadyPlaced",
  "PlacementRegistryDeploymentNotActive",
  "PlacementRegistryCpuCapacityExceeded",
  "PlacementRegistryMemoryCapacityExceeded",
]);

export type ClaimOutcome =
  | { deploymentId: number; result: "won"; placementId: string; delayMs: number; score: number }
  | { deploymentId: number; result: "lost"; reason: string; delayMs: number; score: number }
  | { deploymentId: number; result: "skipped"; reason: string };

export interface ClaimerDeps {
  registry: Registry;
  platform: string;
  logger: Logger;
  options: ClaimDelayOptions;
  /** Host load 0..1 for the score; 0 when unknown. */
  hostLoad?: () => number;
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  onOutcome?: (outcome: ClaimOutcome) => void;
}

export interface Claimer {
  /** One pass over the deployments; resolves with what it did. Errors other than lost races throw. */
  pass(options?: { signal?: AbortSignal }): Promise<ClaimOutcome[]>;
}

const abortableSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

export function createClaimer(deps: ClaimerDeps): Claimer {
  const { registry, platform, logger } = deps;
  const random = deps.random ?? Math.random;
  const sleep = deps.sleep ?? abortableSleep;
  const hostLoad = deps.hostLoad ?? (() => 0);

  const score = (device: DeviceView, terms: Awaited<ReturnType<Registry["replicaTerms"]>>) =>
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
   * Whether this device should try for `d`: it wants replicas and this device has none of its
   * current generation. A superseded placement here (the deployment rolled) is replaced by the
   * claim, which releases it in the same transaction.
   */
  const wants = async (
    d: DeploymentView,
    signal?: AbortSignal,
  ): Promise<{ skip?: string; superseded?: string }> => {
    if (!d.active) return { skip: "stopped" };
    const mine = await registry.activePlacementOf(d.deploymentId, { signal });
    if (mine === undefined) return d.liveReplicas >= d.replicas ? { skip: "replicas complete" } : {};
    if ((await registry.placementState(mine, { signal })) !== "Superseded")
      return { skip: "already placed here" };
    return d.liveReplicas >= d.replicas
      ? { skip: "replicas complete", superseded: mine }
      : { superseded: mine };
  };

  /**
   * After a scale-down more replicas are live than asked for. Every device holding one computes
   * the same answer from the chain alone: the newest live placements are the excess (they have run
   * the shortest), and only their devices release them, so the count stops at the replicas asked
   * for without a race.
   */
  const shed = async (d: DeploymentView, mine: string, signal?: AbortSignal) => {
    const live = (await registry.placementsOfDeployment(d.deploymentId, { signal }))
      .filter((p) => p.state === "Claimed" || p.state === "Running")
      .map((p) => BigInt(p.placementId))
      .sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    const excess = live.slice(0, Math.max(0, live.length - d.replicas));
    if (!excess.includes(BigInt(mine))) return;
    const { hash } = await registry.release(mine, { signal });
    logger.info(
      { deploymentId: d.deploymentId, placementId: mine, tx: hash },
      "released a replica after a scale-down",
    );
  };

  /** A superseded placement this device could not replace: free the device and the replica. */
  const releaseSuperseded = async (placementId: string | undefined, signal?: AbortSignal) => {
    if (placementId === undefined) return;
    const { hash } = await registry.release(placementId, { signal });
    logger.info({ placementId, tx: hash }, "released a superseded placement that another device replaces");
  };

  return {
    async pass({ signal } = {}) {
      const outcomes: ClaimOutcome[] = [];
      const record = (outcome: ClaimOutcome) => {
        outcomes.push(outcome);
        deps.onOutcome?.(outcome);
      };
      let device = await registry.device({ signal });
      if (device.status !== "Active") return outcomes;

      const candidates: { deployment: DeploymentView; delayMs: number; score: number }[] = [];
      const excess: { deployment: DeploymentView; mine: string }[] = [];
      for (const deployment of await registry.deployments({ signal })) {
        const { skip, superseded } = await wants(deployment, signal);
        if (skip === "already placed here" && deployment.liveReplicas > deployment.replicas) {
          const mine = await registry.activePlacementOf(deployment.deploymentId, { signal });
          if (mine !== undefined) excess.push({ deployment, mine });
        }
        if (skip) {
          await releaseSuperseded(superseded, signal);
          continue;
        }
        const terms = await registry.replicaTerms(deployment.deploymentId, platform, { signal });
        const result = score(device, terms);
        if (!result.fits) {
          record({
            deploymentId: deployment.deploymentId,
            result: "skipped",
            reason: `${result.reason}: ${result.detail}`,
          });
          continue;
        }
        candidates.push({
          deployment,
          score: result.score,
          delayMs: claimDelayMs(result.score, random(), deps.options),
        });
      }

      // Best first; each delay counts from the start of the pass, as every device's does.
      candidates.sort((a, b) => a.delayMs - b.delayMs);
      const started = Date.now();
      for (const { deployment, delayMs, score: s } of candidates) {
        await sleep(Math.max(0, delayMs - (Date.now() - started)), signal);
        // Someone may have filled it while we waited, and our own earlier claims used capacity.
        const fresh = await registry.deployment(deployment.deploymentId, { signal });
        const { skip, superseded } = await wants(fresh, signal);
        if (skip) {
          await releaseSuperseded(superseded, signal);
          record({ deploymentId: deployment.deploymentId, result: "lost", reason: skip, delayMs, score: s });
          continue;
        }
        device = await registry.device({ signal });
        const refit = score(
          device,
          await registry.replicaTerms(deployment.deploymentId, platform, { signal }),
        );
        if (!refit.fits) {
          await releaseSuperseded(superseded, signal);
          record({
            deploymentId: deployment.deploymentId,
            result: "skipped",
            reason: `${refit.reason}: ${refit.detail}`,
          });
          continue;
        }
        try {
          const { placementId, hash } = await registry.claim(deployment.deploymentId, { signal });
          logger.info(
            { deploymentId: deployment.deploymentId, placementId, delayMs, score: s, tx: hash },
            "claimed a replica",
          );
          record({ deploymentId: deployment.deploymentId, result: "won", placementId, delayMs, score: s });
        } catch (error) {
          if (error instanceof RegistryError && error.errorName && LOST_RACE.has(error.errorName)) {
            logger.debug(
              { deploymentId: deployment.deploymentId, reason: error.errorName },
              "lost the claim race",
            );
            await releaseSuperseded(superseded, signal);
            record({
              deploymentId: deployment.deploymentId,
              result: "lost",
              reason: error.errorName,
              delayMs,
              score: s,
            });
            continue;
          }
          throw error;
        }
      }
      for (const { deployment, mine } of excess) await shed(deployment, mine, signal);
      return outcomes;
    },
  };
}
