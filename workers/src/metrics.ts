/** The worker's Prometheus metrics and the /metrics endpoint (loopback by default). */
import http from "node:http";
import { PerformanceObserver, constants as perfConstants } from "node:perf_hooks";
import v8 from "node:v8";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * V8 heap used right after the last major (mark-compact) collection, in bytes; NaN before the
 * first. Heap used read at an arbitrary time lands anywhere on the collector's sawtooth, so its
 * trend over an hour is mostly noise; its value after a full collection is the live heap (plus what
 * the rest of that task allocated: the observer runs on the next turn of the event loop). One
 * observer per process, however many workers it hosts (hollow devices).
 */
let heapUsedAfterMajorGc = NaN;
let gcObserver: PerformanceObserver | undefined;
function observeMajorGc(): void {
  if (gcObserver !== undefined) return;
  gcObserver = new PerformanceObserver((list) => {
    const major = list
      .getEntries()
      .some(
        (e) =>
          (e as unknown as { detail?: { kind?: number } }).detail?.kind ===
          perfConstants.NODE_PERFORMANCE_GC_MAJOR,
      );
    if (major) heapUsedAfterMajorGc = v8.getHeapStatistics().used_heap_size;
  });
  gcObserver.observe({ entryTypes: ["gc"] });
}

export interface WorkerMetrics {
  registry: Registry;
  reconcileDuration: Histogram<"result">;
  placements: Gauge<"state">;
  bridgeLagBlocks: Gauge;
  mqttPublishFailures: Counter;
  /** Received messages the signed bus refused (workers/src/signed-bus.ts), by reason. */
  busMessagesDropped: Counter<"reason">;
  claims: Counter<"result">;
  chainTransactions: Counter<"method" | "result">;
  /** Resource manager (workers/src/resource-manager.ts): decisions, limits and usage per placement. */
  resourceDecisions: Counter<"resource" | "reason">;
  resourceTickDuration: Histogram;
  containerCpuLimit: Gauge<"placement">;
  containerMemoryLimit: Gauge<"placement">;
  containerCpuUsage: Gauge<"placement">;
  containerCpuThrottledRatio: Gauge<"placement">;
  containerMemoryWorkingSet: Gauge<"placement">;
  deviceCpuUsage: Gauge;
  deviceMemoryUsage: Gauge;
}

export function createWorkerMetrics(labels: { deviceId: number }): WorkerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ device: String(labels.deviceId) });
  collectDefaultMetrics({ register: registry, prefix: "shoal_worker_" });
  observeMajorGc();
  new Gauge({
    name: "shoal_worker_heap_used_after_major_gc_bytes",
    help: "V8 heap used right after the last major (mark-compact) garbage collection: the live heap, for telling a leak from the collector's sawtooth",
    registers: [registry],
    collect() {
      if (Number.isFinite(heapUsedAfterMajorGc)) this.set(heapUsedAfterMajorGc);
    },
  });
  return {
    registry,
    reconcileDuration: new Histogram({
      name: "shoal_reconcile_pass_duration_seconds",
      help: "Duration of one reconcile pass (desired vs actual, then apply)",
      labelNames: ["result"],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    placements: new Gauge({
      name: "shoal_placements",
      help: "Placements of this device by state, as of the last reconcile pass",
      labelNames: ["state"],
      registers: [registry],
    }),
    bridgeLagBlocks: new Gauge({
      name: "shoal_bridge_lag_blocks",
      help: "Blocks between the chain head and the last block bridged to MQTT",
      registers: [registry],
    }),
    mqttPublishFailures: new Counter({
      name: "shoal_mqtt_publish_failures_total",
      help: "MQTT publishes that failed (broker unreachable or refused)",
      registers: [registry],
    }),
    busMessagesDropped: new Counter({
      name: "shoal_bus_messages_dropped_total",
      help: "Received MQTT messages dropped by signature verification or the bridge election, by reason (unsigned, malformed, forged, unknown-device, replayed, stale, not-a-bridge)",
      labelNames: ["reason"],
      registers: [registry],
    }),
    claims: new Counter({
      name: "shoal_claims_total",
      help: "Claim attempts by result (won, lost: another device was faster or the replica is gone, error)",
      labelNames: ["result"],
      registers: [registry],
    }),
    chainTransactions: new Counter({
      name: "shoal_chain_transactions_total",
      help: "Transactions the worker sent, by contract method and result",
      labelNames: ["method", "result"],
      registers: [registry],
    }),
    resourceDecisions: new Counter({
      name: "shoal_resource_decisions_total",
      help: "Resource-manager decisions by resource (cpu, memory, placement) and reason (throttled, cpu-idle, memory-pressure, evicted...)",
      labelNames: ["resource", "reason"],
      registers: [registry],
    }),
    resourceTickDuration: new Histogram({
      name: "shoal_resource_tick_duration_seconds",
      help: "Duration of one resource-manager control period's work (scrape, decide, apply, publish)",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    containerCpuLimit: new Gauge({
      name: "shoal_container_cpu_limit_millicores",
      help: "CPU quota of each placement's container as last applied by the resource manager",
      labelNames: ["placement"],
      registers: [registry],
    }),
    containerMemoryLimit: new Gauge({
      name: "shoal_container_memory_limit_mib",
      help: "Memory limit of each placement's container as last applied by the resource manager",
      labelNames: ["placement"],
      registers: [registry],
    }),
    containerCpuUsage: new Gauge({
      name: "shoal_container_cpu_usage_millicores",
      help: "CPU used by each placement's container over the last control period",
      labelNames: ["placement"],
      registers: [registry],
    }),
    containerCpuThrottledRatio: new Gauge({
      name: "shoal_container_cpu_throttled_ratio",
      help: "Share of CFS periods in which each placement's container was throttled, last control period",
      labelNames: ["placement"],
      registers: [registry],
    }),
    containerMemoryWorkingSet: new Gauge({
      name: "shoal_container_memory_working_set_mib",
      help: "Working set (usage minus inactive file cache) of each placement's container",
      labelNames: ["placement"],
      registers: [registry],
    }),
    deviceCpuUsage: new Gauge({
      name: "shoal_device_cpu_usage_millicores",
      help: "CPU used by all Shoal containers of the device (its cgroup) over the last control period",
      registers: [registry],
    }),
    deviceMemoryUsage: new Gauge({
      name: "shoal_device_memory_usage_mib",
      help: "Memory used by all Shoal containers of the device (its cgroup)",
      registers: [registry],
    }),
  };
}

/** Serves GET /metrics; resolves once listening, with a close function. */
export async function serveMetrics(
  registry: Registry,
  options: { host: string; port: number },
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    if (request.method !== "GET" || request.url !== "/metrics") {
      response.writeHead(404).end("not found; try GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500).end(String(error)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, resolve);
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : options.port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
