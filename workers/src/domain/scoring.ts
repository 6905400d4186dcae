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
