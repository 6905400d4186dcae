/** The worker's Prometheus metrics and the /metrics endpoint (loopback by default). */
import http from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface WorkerMetrics {
  registry: Registry;
  reconcileDuration: Histogram<"result">;
  placements: Gauge<"state">;
  bridgeLagBlocks: Gauge;
  mqttPublishFailures: Counter;
  claims: Counter<"result">;
  chainTransactions: Counter<"method" | "result">;
}

export function createWorkerMetrics(labels: { deviceId: number }): WorkerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ device: String(labels.deviceId) });
  collectDefaultMetrics({ register: registry, prefix: "shoal_worker_" });
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
