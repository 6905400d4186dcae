/**
 * Live state over MQTT-over-WebSockets, read only: device presence (retained `status`), metrics
 * summaries and resource-manager decisions (not retained: the console sees those published while
 * it is open), and bridged chain events, which only prompt a chain refresh. Nothing here is trusted
 * for chain facts. Every message is checked in the browser before it is shown (verify.ts: the
 * signature envelope, the signer against the device's operator on chain, replay and age); the rest is
 * dropped and counted by device and reason.
 */
import { getBytes, sha256, verifyMessage } from "ethers";
import mqtt from "mqtt";
import type { Decision } from "./model";
import { createMessageVerifier, type DeviceTrust, type DropReason, type SenderView } from "./verify";

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
  /** Per device: believed messages, their signer, and drops by reason. */
  trust: Map<number, DeviceTrust>;
  /** Drops by reason, all topics. */
  dropped: Record<DropReason, number>;
}

export interface Live {
  readonly state: LiveState;
  /** Called after every change (throttled by the caller's render loop). */
  onChange(listener: (what: "broker" | "devices" | "chain") => void): void;
  /** What the chain says of a device now: a different operator or status than cached is taken at once. */
  observe(deviceId: number, view: SenderView | undefined): void;
  close(): void;
}

const MAX_DECISIONS = 2000;

export function createLive(options: {
  url: string;
  topicRoot: string;
  chainId?: number;
  /** DeviceRegistry.device(id) as the signer check needs it. */
  sender: (deviceId: string) => Promise<SenderView | undefined>;
}): Live {
  const verifier = createMessageVerifier({
    crypto: { sha256: (data) => sha256(data) },
    recover: (root, signature) => verifyMessage(getBytes(root), signature),
    lookup: options.sender,
    now: Date.now,
  });
  const state: LiveState = {
    broker: options.url === "" ? "off" : "connecting",
    error: "",
    status: new Map(),
    metrics: new Map(),
    decisions: new Map(),
    trust: new Map(),
    dropped: verifier.dropped,
  };
  const listeners: ((what: "broker" | "devices" | "chain") => void)[] = [];
  const emit = (what: "broker" | "devices" | "chain") => listeners.forEach((l) => l(what));
  const observe = (deviceId: number, view: SenderView | undefined) =>
    verifier.observe(String(deviceId), view);
  if (options.url === "")
    return { state, onChange: (l) => listeners.push(l), observe, close: () => undefined };

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
  // One message at a time, in arrival order: sequence numbers are judged in that order.
  let tail = Promise.resolve();
  client.on("message", (topic, payload) => {
    if (payload.length === 0) return; // a cleared retained topic asserts nothing
    const text = new TextDecoder().decode(payload);
    tail = tail.then(() => receive(topic, text)).catch((error) => console.error(error));
  });
  const syncTrust = () => {
    state.trust.clear();
    for (const [id, t] of verifier.devices) state.trust.set(Number(id), t);
  };
  async function receive(topic: string, text: string): Promise<void> {
    const checked = await verifier.verify(topic, text);
    syncTrust();
    if (!checked.ok) {
      if (checked.reason !== "duplicate") emit("devices");
      return;
    }
    const rest = topic.slice(root.length + 1).split("/");
    if (rest[0] === "chain") return emit("chain");
    if (rest[0] !== "devices" || rest.length !== 3) return emit("devices");
    const id = Number(rest[1]);
    if (!Number.isInteger(id)) return;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(checked.payload) as Record<string, unknown>;
    } catch {
      return; // signed but not ours to read; the console shows only what it can read
    }
    if (rest[2] === "status") state.status.set(id, body as unknown as DeviceStatus);
    else if (rest[2] === "metrics") state.metrics.set(id, body as unknown as DeviceMetrics);
    else if (rest[2] === "resources") {
      const list = state.decisions.get(id) ?? [];
      list.push(body as unknown as Decision);
      if (list.length > MAX_DECISIONS) list.splice(0, list.length - MAX_DECISIONS);
      state.decisions.set(id, list);
    }
    emit("devices");
  }
  return {
    state,
    onChange: (l) => listeners.push(l),
    observe,
    close: () => void client.end(true),
  };
}
