/**
 * Host CPU, memory and load from /proc: cheap reads, once per control period. Synchronous, like the
 * cgroup reads (adapters/cgroup-metrics.ts): procfs files never wait on a disk.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import type { HostCounters } from "../domain/host-usage";
import { ShoalError } from "../errors";

// The counters and usage types, and the usage between two reads, are the domain's.
export type { HostCounters, HostUsage } from "../domain/host-usage";
export { hostUsageBetween } from "../domain/host-usage";

/** Parses /proc/stat, /proc/meminfo and /proc/loadavg texts (pure, for tests). */
export function parseHostCounters(
  stat: string,
  meminfo: string,
  loadavg: string,
  atMs: number,
): HostCounters {
  const cpuLine = stat.split("\n").find((line) => line.startsWith("cpu "));
  if (cpuLine === undefined) throw new ShoalError("/proc/stat has no aggregate cpu line");
  // user nice system idle iowait irq softirq steal (guest time is already inside user/nice).
  const fields = cpuLine.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  const cpus = stat.split("\n").filter((line) => /^cpu[0-9]+ /.test(line)).length;
  const kib = (key: string) => {
    const m = new RegExp(`^${key}:\\s+([0-9]+) kB`, "m").exec(meminfo);
    return m ? Number(m[1]) * 1024 : 0;
  };
  const [load1, load5, load15] = loadavg.trim().split(/\s+/).slice(0, 3).map(Number);
  return {
    atMs,
    cpuBusyTicks: total - idle,
    cpuTotalTicks: total,
    cpus: Math.max(1, cpus),
    memoryTotalBytes: kib("MemTotal"),
    memoryAvailableBytes: kib("MemAvailable"),
    load1,
    load5,
    load15,
  };
}

/** Reads the host counters; `now` gives monotonic ms. */
export async function readHostCounters(
  options: { procRoot?: string; now?: () => number } = {},
): Promise<HostCounters> {
  const procRoot = options.procRoot ?? "/proc";
  const now = options.now ?? (() => performance.now());
  try {
    const [stat, meminfo, loadavg] = ["stat", "meminfo", "loadavg"].map((f) =>
      readFileSync(path.join(procRoot, f), "utf8"),
    );
    return parseHostCounters(stat, meminfo, loadavg, now());
  } catch (error) {
    if (error instanceof ShoalError) throw error;
    throw new ShoalError(`could not read host metrics from ${procRoot}`, { cause: error, retryable: true });
  }
}
