/**
 * Live state over MQTT-over-WebSockets, read only: device presence (retained `status`), metrics
 * summaries and resource-manager decisions (not retained: the console sees those published while
 * it is open), and bridged chain events, which only prompt a chain refresh. Nothing here is trusted
 * for chain facts; the broker is anonymous until broker credentials land (issue 16).
 */
import mqtt from "mqtt";
import type { Decision } from "./model";

export type { Decision };

export type BrokerState = "off" | "connecting" | "connected" | "unreachable";

export interface DeviceStatus {
  status: "online" | "offline";
  reason: string;
  at: string;
}

export interface DeviceMetrics {
  at: string;
  capacity?: { cpuMillicores: number; memoryMiB: number };
  device?: { cpuMillicores: number; memoryMiB: number };
  containers: {
    placementId: string;
    limits: { cpuMillicores: number; memoryMiB: number };
    cpuMillicores?: number;
    memoryWorkingSetMiB?: number;
  }[];
}

export interface LiveState {
  broker: BrokerState;
  /** Last error text from the broker connection, for the banner. */
  error: string;
  status: Map<number, DeviceStatus>;
  metrics: Map<number, DeviceMetrics>;
  decisions: Map<number, Decision[]>;
}

export interface Live {
  readonly state: LiveState;
  /** Called after every change (throttled by the caller's render loop). */
  onChange(listener: (what: "broker" | "devices" | "chain") => void): void;
  close(): void;
}

const MAX_DECISIONS = 2000;

export function createLive(options: { url: string; topicRoot: string; chainId?: number }): Live {
  const state: LiveState = {
    broker: options.url === "" ? "off" : "connecting",
    error: "",
    status: new Map(),
    metrics: new Map(),
    decisions: new Map(),
  };
  const listeners: ((what: "broker" | "devices" | "chain") => void)[] = [];
  const emit = (what: "broker" | "devices" | "chain") => listeners.forEach((l) => l(what));
  if (options.url === "") return { state, onChange: (l) => listeners.push(l), close: () => undefined };

  const root = options.topicRoot;
  const client = mqtt.connect(options.url, {
    clientId: `shoal-console-${Math.random().toString(16).slice(2, 10)}`,
    clean: true,
    // A quick first verdict and steady retries: the banner reflects the broker within seconds.
    connectTimeout: 3_000,
    reconnectPeriod: 2_000,
    keepalive: 10,
  });
  const setBroker = (broker: BrokerState, error = state.error) => {
    if (state.broker === broker && state.error === error) return;
    state.broker = broker;
    state.error = error;
    emit("broker");
  };
  client.on("connect", () => {
    setBroker("connected", "");
    client.subscribe(
      {
        [`${root}/devices/+/status`]: { qos: 1 },
        [`${root}/devices/+/metrics`]: { qos: 0 },
        [`${root}/devices/+/resources`]: { qos: 1 },
        [`${root}/chain/${options.chainId ?? "+"}/#`]: { qos: 0 },
      },
      (error) => error && setBroker("unreachable", `subscribe failed: ${error.message}`),
    );
  });
  client.on("error", (error) => setBroker("unreachable", error.message));
  client.on("close", () => setBroker("unreachable", state.error || "connection closed"));
  client.on("offline", () => setBroker("unreachable", state.error || "offline"));
  client.on("message", (topic, payload) => {
    if (payload.length === 0) return;
    const rest = topic.slice(root.length + 1).split("/");
    if (rest[0] === "chain") return emit("chain");
    if (rest[0] !== "devices" || rest.length !== 3) return;
    const id = Number(rest[1]);
    if (!Number.isInteger(id)) return;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
    } catch {
      return; // not ours; the console shows only what it can read
    }
    if (rest[2] === "status") state.status.set(id, body as unknown as DeviceStatus);
    else if (rest[2] === "metrics") state.metrics.set(id, body as unknown as DeviceMetrics);
    else if (rest[2] === "resources") {
      const list = state.decisions.get(id) ?? [];
      list.push(body as unknown as Decision);
      if (list.length > MAX_DECISIONS) list.splice(0, list.length - MAX_DECISIONS);
      state.decisions.set(id, list);
    } else return;
    emit("devices");
  });
  return {
    state,
    onChange: (l) => listeners.push(l),
    close: () => void client.end(true),
  };
}
