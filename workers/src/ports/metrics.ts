/**
 * Where the resource manager's measurements come from: host counters, the device cgroup's and each
 * container's (adapters/cgroup-metrics.ts reads them from cgroup files and /proc).
 */
import type { CgroupCounters, CpuCounters } from "../domain/controller";
import type { HostCounters } from "../domain/host-usage";

/** One scrape of the device: host counters, the device cgroup's, and each container's by id. */
export interface MetricsSample {
  atMs: number;
  host?: HostCounters;
  device?: CgroupCounters;
  /** Containers whose cgroup was found; a missing id is a container that went away. */
  containers: Map<string, CgroupCounters>;
}

/** Where the manager's metrics come from (adapters/cgroup-metrics.ts: createCgroupMetricsSource). */
export interface MetricsSource {
  sample(containerIds: readonly string[], options?: { signal?: AbortSignal }): Promise<MetricsSample>;
  /**
   * The CPU counters alone of the containers found, by id: what the fast path reads every
   * fastPeriodMs, so it must be cheap. Optional: without it the fast path is off.
   */
  sampleCpu?(
    containerIds: readonly string[],
    options?: { signal?: AbortSignal },
  ): Promise<Map<string, CpuCounters>>;
}
