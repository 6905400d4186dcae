/** Host CPU and memory: the counters read at one instant, and the usage between two reads (pure). */

/** Cumulative host counters at one instant. */
export interface HostCounters {
  atMs: number;
  /** Jiffies spent busy (everything but idle and iowait) and in total, over all CPUs. */
  cpuBusyTicks: number;
  cpuTotalTicks: number;
  cpus: number;
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
  load1: number;
  load5: number;
  load15: number;
}

export interface HostUsage {
  /** 0..1 of all CPUs. */
  cpuUtilization: number;
  /** Busy CPUs in millicores (1000 = one core fully busy). */
  cpuMillicores: number;
  memoryUsedMiB: number;
  memoryTotalMiB: number;
  load1: number;
}

const MiB = 1024 * 1024;

/** Host usage between two reads. */
export function hostUsageBetween(previous: HostCounters, current: HostCounters): HostUsage {
  const total = current.cpuTotalTicks - previous.cpuTotalTicks;
  const busy = current.cpuBusyTicks - previous.cpuBusyTicks;
  const utilization = total > 0 ? Math.min(1, Math.max(0, busy / total)) : 0;
  return {
    cpuUtilization: utilization,
    cpuMillicores: utilization * current.cpus * 1000,
    memoryUsedMiB: (current.memoryTotalBytes - current.memoryAvailableBytes) / MiB,
    memoryTotalMiB: current.memoryTotalBytes / MiB,
    load1: current.load1,
  };
}
