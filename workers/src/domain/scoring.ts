/**
 * How well a device fits a deployment's replica, and how long it waits before claiming it.
 *
 * No scheduler decides placements: every device that could run a replica claims it on chain after
 * a delay that shrinks as its score grows, so the best-fitting device usually sends its claim
 * first and the others lose the race quietly (the contract rejects claims beyond the replica
 * count). Pure: the random jitter is an input.
 */

export interface DeviceFitInput {
  platform: string;
  /** "key=value" labels the device offers. */
  labels: readonly string[];
  cpuCapacityMillicores: number;
  memoryCapacityMiB: number;
  /** Reserved on chain by live placements (band minimums). */
  cpuReservedMillicores: number;
  memoryReservedMiB: number;
  /** Measured host load, 0 (idle) to 1 (saturated); 0 when unknown. */
  load: number;
}

export interface FitTerms {
  /** Platforms the version has an image for. */
  platforms: readonly string[];
  requiredLabels: readonly string[];
  cpuMinMillicores: number;
  memoryMinMiB: number;
}

export type Fit =
  | { fits: true; score: number }
  | { fits: false; reason: "platform" | "labels" | "cpu" | "memory"; detail: string };

/** Weights of free CPU, free memory and idleness in the score; they sum to 1. */
export const SCORE_WEIGHTS = { cpu: 0.45, memory: 0.35, idle: 0.2 } as const;

/**
 * A score in [0, 1]: the share of the device that stays free after this replica (spreading load,
 * as the resource manager needs headroom to grow containers toward their max), and how idle it is.
 */
export function fit(device: DeviceFitInput, terms: FitTerms): Fit {
  if (!terms.platforms.includes(device.platform)) {
    return {
      fits: false,
      reason: "platform",
      detail: `no image for ${device.platform} (has ${terms.platforms.join(", ")})`,
    };
  }
  const missing = terms.requiredLabels.filter((label) => !device.labels.includes(label));
  if (missing.length > 0)
    return { fits: false, reason: "labels", detail: `missing label(s) ${missing.join(", ")}` };
  const cpuFree = device.cpuCapacityMillicores - device.cpuReservedMillicores - terms.cpuMinMillicores;
  if (cpuFree < 0)
    return {
      fits: false,
      reason: "cpu",
      detail: `needs ${terms.cpuMinMillicores}m, ${cpuFree + terms.cpuMinMillicores}m free`,
    };
  const memoryFree = device.memoryCapacityMiB - device.memoryReservedMiB - terms.memoryMinMiB;
  if (memoryFree < 0) {
    return {
      fits: false,
      reason: "memory",
      detail: `needs ${terms.memoryMinMiB} MiB, ${memoryFree + terms.memoryMinMiB} MiB free`,
    };
  }
  const score =
    SCORE_WEIGHTS.cpu * (cpuFree / device.cpuCapacityMillicores) +
    SCORE_WEIGHTS.memory * (memoryFree / device.memoryCapacityMiB) +
    SCORE_WEIGHTS.idle * (1 - clamp01(device.load));
  return { fits: true, score: clamp01(score) };
}

export interface ClaimDelayOptions {
  /** Delay of a device that scores 0. */
  maxDelayMs: number;
  /** Added at random (0..jitterMs) so equal scores do not collide every time. */
  jitterMs: number;
}

/** Milliseconds to wait before claiming: maxDelay × (1 − score) + jitter × random. */
export function claimDelayMs(score: number, random: number, options: ClaimDelayOptions): number {
  return Math.round(options.maxDelayMs * (1 - clamp01(score)) + options.jitterMs * clamp01(random));
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

/**
 * Claim order when a device knows who else is online (the retained presences of the bridge
 * election): with interval mining every claim sent within one block is mined together, so a
 * delay that only shrinks with the score lets every equally fit device claim the same replica in
 * the same block, and all but one revert (wasted claim transactions, measured by bench/scale.ts).
 * Instead every online device has a rank for each deployment, the same on every device: the order
 * of rankKey(deployment, device) among the online devices. The `wanted` best-ranked devices claim
 * at once (one replica each: a device holds at most one of a deployment), the next `wanted` one
 * step later if replicas are still free, and so on; a device that does not fit simply does not
 * claim, and its replica falls to the next tier. Pure.
 */
export interface RankedClaimOptions {
  /** Wait between tiers: long enough for the previous tier's claims to be mined (a block or more). */
  stepMs: number;
  /** Tiers after the first that wait their turn; devices ranked beyond them share the last one. */
  tiers: number;
  /** Added at random (0..jitterMs) within a tier. */
  jitterMs: number;
}

const idKeys = new Map<string, number>();

/** FNV-1a of a device id, remembered (the fleet's ids, a few thousand at most). */
function idKey(deviceId: string): number {
  let h = idKeys.get(deviceId);
  if (h !== undefined) return h;
  h = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) h = Math.imul(h ^ deviceId.charCodeAt(i), 0x01000193) >>> 0;
  if (idKeys.size > 100_000) idKeys.clear();
  idKeys.set(deviceId, h);
  return h;
}

/** A 32-bit finalizer (murmur3's fmix32): nearby inputs give unrelated outputs. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** The key that orders devices for one deployment: a hash of both, the same on every device. */
export function rankKey(deploymentId: number, deviceId: string): number {
  return mix32(idKey(deviceId) ^ mix32(Math.imul(deploymentId, 0x9e3779b1)));
}

/**
 * This device's rank (0 = first) for `deploymentId` among `online` (device ids, this device
 * included or not): how many online devices have a lower key, ties broken by id. O(online).
 */
export function claimRank(deploymentId: number, self: string, online: readonly string[]): number {
  const mine = rankKey(deploymentId, self);
  let rank = 0;
  for (const other of online) {
    if (other === self) continue;
    const k = rankKey(deploymentId, other);
    if (k < mine || (k === mine && other < self)) rank++;
  }
  return rank;
}

/**
 * Milliseconds to wait before claiming one of `wanted` free replicas at `rank`:
 * tier × stepMs + jitter, where tier = floor(rank / wanted), capped at `tiers`.
 */
export function rankedClaimDelayMs(
  rank: number,
  wanted: number,
  random: number,
  options: RankedClaimOptions,
): number {
  const tier = Math.min(Math.floor(rank / Math.max(1, wanted)), options.tiers);
  return tier * options.stepMs + Math.round(options.jitterMs * clamp01(random));
}
