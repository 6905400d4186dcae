/** The containers the controller manages, the device's capacity and the state kept between periods. */
import type { ResourceLimits } from "../container-spec";
import type { ResourceBand } from "../manifest";
import type { ContainerUsage, CpuCounters } from "./measurements";

/** A running container the controller manages. */
export interface ControlledContainer {
  containerId: string;
  /** Decimal placement id from the chain. */
  placementId: string;
  band: ResourceBand;
  /** The limits the container has now (as last applied). cpuMillicores 0 = no quota. */
  limits: ResourceLimits;
  /** Undefined on the first period of a container (one read is not a rate): its limits are kept. */
  usage?: ContainerUsage;
  /**
   * With the fast path on: the container's CPU samples since its last CPU change, oldest first,
   * reaching back at least cpuRecentWindowMs once that long has passed. Its recent CPU
   * (`recentCpu`) then decides "starved now" and its idle slack instead of `usage` (still used for
   * the slow idle rule and memory). Required by decideFast.
   */
  cpuSamples?: readonly CpuCounters[];
  /** Explicit priority, higher first (default 0), compared before the band-derived rule. */
  priority?: number;
  /**
   * Its band is not known (yet): `band` is its current limits, so it stays where it is, and its
   * memory reservation is kept as it is (a pinned band's min is the limit, not a reservation).
   */
  pinned?: boolean;
}

export interface DeviceCapacity {
  cpuMillicores: number;
  memoryMiB: number;
}

/** Hysteresis counters of one container. */
export interface ContainerControlState {
  cpuIdlePeriods: number;
  memoryIdlePeriods: number;
}

export interface ControllerState {
  /** Next decision sequence number of the device (a decision log is append-only). */
  seq: number;
  containers: Record<string, ContainerControlState>;
}

export function initialControllerState(seq = 0): ControllerState {
  return { seq, containers: {} };
}
