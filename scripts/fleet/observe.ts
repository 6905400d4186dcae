/**
 * What the fleet view shows, gathered from two independent sources and never from the workers'
 * internals: MQTT (retained placement, deployment and device state, worker presence, resource
 * decisions, bridged chain events de-duplicated by id) and Docker (each container's CPU and memory
 * limits from `inspect`, and its usage from its cgroup files: cheap, no `docker stats` stream).
 * Every MQTT message is verified first (workers/src/signed-bus.ts): only what a device's operator on
 * chain signed, for a topic that device may speak on, neither replayed nor stale, is shown; the rest
 * is counted in the snapshot's `dropped`.
 */
import { readFileSync } from "node:fs";
import Docker from "dockerode";
import type { FleetDocker } from "./fleet";
import { JsonRpcProvider } from "ethers";
import mqtt from "mqtt";
import {
  chainSenderLookup,
  createVerifier,
  type ChainResourceBand,
  type DeploymentRef,
  type EndpointsPayload,
  type PlacementRef,
} from "../../workers/src";

/** A placement's retained state on MQTT (the bridge's PlacementDesired), as far as the view needs it. */
export interface PlacementView extends PlacementRef {
  state: string;
  failure: string | null;
  releaseReason: string | null;
  band?: ChainResourceBand;
}

export interface DeploymentView extends DeploymentRef {
  replicas: number;
  active: boolean;
}

export interface DeviceChainView {
  stake: string;
  status: string;
  cpuMillicores: number;
  memoryMiB: number;
  lastHeartbeat?: { timestamp: number };
}

export interface ContainerView {
  id: string;
  name: string;
  deviceId: number;
  placementId: string;
  deploymentId: string;
  version: string;
  running: boolean;
  cpuLimitMillicores: number;
  memoryLimitMiB: number;
  cgroupParent: string;
  /** Over the last sampling interval; undefined on the first sample or when the cgroup is unreadable. */
  cpuUsageMillicores?: number;
  memoryUsageMiB?: number;
}

export interface DecisionView {
  seq: number;
  at: string;
  placementId: string;
  resource: string;
  from: number;
  to: number;
  reason: string;
}

export interface EventView {
  id: string;
  contract: string;
  event: string;
  blockNumber: number;
  args: Record<string, unknown>;
}

export interface FleetSnapshot {
  at: Date;
  mqttConnected: boolean;
  presence: Map<number, { status: string; reason: string }>;
  devices: Map<number, DeviceChainView>;
  placements: Map<string, PlacementView>;
  deployments: Map<number, DeploymentView>;
  containers: ContainerView[];
  /** Device cgroup usage and caps when the resource manager made one (shoal/device-<id>). */
  deviceCgroups: Map<
    number,
    { cpuCapMillicores?: number; memoryCapMiB?: number; cpuUsageMillicores?: number }
  >;
  /** Where each answering replica is reached (retained endpoints, issue 15), by placement id. */
  endpoints: Map<string, EndpointsPayload>;
  /** Latest resource decisions, newest last. */
  decisions: (DecisionView & { deviceId: number })[];
  /** Bridged chain events, de-duplicated by id, in arrival order (the latest 200). */
  events: EventView[];
  eventCount: number;
  /**
   * The chain's clock now, estimated from the newest block time seen on MQTT (a Hardhat node's
   * block times run ahead of the wall clock when it mines faster than one block a second).
   */
  chainTime?: number;
  /** Messages that repeated an id already seen (every worker bridges; consumers de-duplicate). */
  repeats: number;
  /** Messages refused by verification, by reason (unsigned, forged, replayed, stale...). */
  dropped: Readonly<Record<string, number>>;
}

export interface ObserverOptions {
  /** A read-only broker user is enough (SHOAL_MQTT_VIEW_URL of scripts/services.sh). */
  mqttUrl: string;
  chainId: number;
  /** The DeviceRegistry whose operators sign the messages (fleet.json's deviceRegistry). */
  deviceRegistry: string;
  deviceIds: number[];
  /** io.shoal.device label -> device id (labelMatcher), for the fleet's devices only. */
  deviceOfLabel: (label: string | undefined) => number | undefined;
  /** Names of each device's cgroup under /shoal (device-<name>); default the id. */
  cgroupNames?: (deviceId: number) => string[];
  /** Retained state updated before this block time (s) belongs to an older deployment: ignored. */
  sinceTimestamp: number;
  dockerSocket?: string;
  /** The fleet's engines (one per device on isolated devices); default: the one at dockerSocket. */
  docker?: Pick<FleetDocker, "listContainers" | "getContainer">;
  cgroupRoot?: string;
  /** JSON-RPC endpoint: each device's operator (to verify messages) and the latest block time. */
  rpcUrl: string;
  /** How often Docker is sampled (ms); default 2000. */
  dockerIntervalMs?: number;
}

export interface Observer {
  snapshot(): FleetSnapshot;
  /** Samples Docker now (the periodic sampling also runs on its own). */
  sampleDocker(): Promise<void>;
  close(): Promise<void>;
}

const MiB = 1024 * 1024;
const ENDPOINTS_TOPIC = /^shoal\/v1\/devices\/([^/]+)\/endpoints\/([^/]+)$/;
const TOPIC = /^shoal\/v1\/(devices|placements|deployments)\/([^/]+)\/(status|chain|resources|state)$/;

function readNumber(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, "utf8").trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function memoryStat(file: string, key: string): number | undefined {
  try {
    const line = readFileSync(file, "utf8")
      .split("\n")
      .find((l) => l.startsWith(`${key} `));
    return line === undefined ? undefined : Number(line.split(" ")[1]);
  } catch {
    return undefined;
  }
}

/**
 * cgroup v1 paths of a container (Docker's cgroupfs driver: <controller><parent>/<id>), falling back
 * to v2's unified layout.
 */
function cgroupUsage(root: string, parent: string, id: string): { cpuNs?: number; memoryBytes?: number } {
  const dir = `${parent || "/docker"}/${id}`;
  const v1Cpu = readNumber(`${root}/cpuacct${dir}/cpuacct.usage`);
  if (v1Cpu !== undefined) {
    const usage = readNumber(`${root}/memory${dir}/memory.usage_in_bytes`);
    const inactive = memoryStat(`${root}/memory${dir}/memory.stat`, "total_inactive_file") ?? 0;
    return { cpuNs: v1Cpu, memoryBytes: usage === undefined ? undefined : Math.max(0, usage - inactive) };
  }
  const usec = memoryStat(`${root}${dir}/cpu.stat`, "usage_usec");
  const current = readNumber(`${root}${dir}/memory.current`);
  const inactive = memoryStat(`${root}${dir}/memory.stat`, "inactive_file") ?? 0;
  return {
    cpuNs: usec === undefined ? undefined : usec * 1000,
    memoryBytes: current === undefined ? undefined : Math.max(0, current - inactive),
  };
}

export async function createObserver(options: ObserverOptions): Promise<Observer> {
  const root = options.cgroupRoot ?? "/sys/fs/cgroup";
  const docker: Pick<FleetDocker, "listContainers" | "getContainer"> =
    options.docker ?? new Docker({ socketPath: options.dockerSocket ?? "/var/run/docker.sock" });
  const ids = new Set(options.deviceIds);
  const snap: FleetSnapshot = {
    at: new Date(),
    mqttConnected: false,
    presence: new Map(),
    devices: new Map(),
    placements: new Map(),
    deployments: new Map(),
    containers: [],
    deviceCgroups: new Map(),
    endpoints: new Map(),
    decisions: [],
    events: [],
    eventCount: 0,
    repeats: 0,
    dropped: {},
  };
  const provider = new JsonRpcProvider(options.rpcUrl, options.chainId, { staticNetwork: true });
  const verifier = createVerifier({ lookup: chainSenderLookup(provider, options.deviceRegistry) });
  snap.dropped = verifier.dropped;
  let newestBlockTime: { timestamp: number; seenAtMs: number } | undefined;
  const sawBlockTime = (timestamp: unknown) => {
    const t = Number(timestamp);
    if (Number.isFinite(t) && t > 0 && (newestBlockTime === undefined || t > newestBlockTime.timestamp))
      newestBlockTime = { timestamp: t, seenAtMs: Date.now() };
  };
  const seen = new Set<string>();
  const fresh = (payload: { chainId?: number; updated?: { timestamp?: number } }) =>
    (payload.chainId === undefined || payload.chainId === options.chainId) &&
    (payload.updated?.timestamp === undefined || payload.updated.timestamp >= options.sinceTimestamp);

  const client = mqtt.connect(options.mqttUrl, {
    clientId: `shoal-fleet-view-${process.pid}-${Date.now()}`,
    clean: true,
    reconnectPeriod: 2000,
    connectTimeout: 5000,
  });
  client.on("connect", () => {
    snap.mqttConnected = true;
    void client.subscribeAsync(
      [
        "shoal/v1/devices/+/status",
        "shoal/v1/devices/+/chain",
        "shoal/v1/devices/+/resources",
        "shoal/v1/devices/+/endpoints/+",
        "shoal/v1/placements/+/state",
        "shoal/v1/deployments/+/state",
        `shoal/v1/chain/${options.chainId}/+/+`,
      ],
      { qos: 1 },
    );
  });
  client.on("close", () => (snap.mqttConnected = false));
  client.on("error", () => undefined); // reconnects; the view shows "MQTT down"
  // Verified one at a time in arrival order (a device's cache miss must not reorder its messages).
  let verifying = Promise.resolve();
  client.on("message", (topic, buffer) => {
    if (buffer.length === 0) {
      // A cleared retained state; a cleared endpoint is a replica that no longer answers.
      const cleared = ENDPOINTS_TOPIC.exec(topic);
      if (cleared) verifying = verifying.then(() => void snap.endpoints.delete(cleared[2]));
      return;
    }
    verifying = verifying
      .then(async () => {
        const result = await verifier.verify(topic, buffer);
        if (result.ok) show(topic, result.payload);
      })
      .catch(() => undefined);
  });
  const show = (topic: string, text: string) => {
    let payload: Record<string, unknown>;
    try {
      payload = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (topic.startsWith(`shoal/v1/chain/${options.chainId}/`)) {
      sawBlockTime(payload.timestamp);
      const id = String(payload.id);
      if (seen.has(id)) {
        snap.repeats += 1;
        return;
      }
      seen.add(id);
      snap.eventCount += 1;
      snap.events.push({
        id,
        contract: String(payload.contract),
        event: String(payload.event),
        blockNumber: Number(payload.blockNumber),
        args: (payload.args ?? {}) as Record<string, unknown>,
      });
      if (snap.events.length > 200) snap.events.splice(0, snap.events.length - 200);
      return;
    }
    const endpoint = ENDPOINTS_TOPIC.exec(topic);
    if (endpoint) {
      if (ids.has(Number(endpoint[1])))
        snap.endpoints.set(endpoint[2], payload as unknown as EndpointsPayload);
      return;
    }
    const m = TOPIC.exec(topic);
    if (!m) return;
    const [, kind, id, leaf] = m;
    if (kind === "devices") {
      const deviceId = Number(id);
      if (!ids.has(deviceId)) return;
      if (leaf === "status")
        snap.presence.set(deviceId, { status: String(payload.status), reason: String(payload.reason) });
      else if (leaf === "chain" && fresh(payload))
        snap.devices.set(deviceId, payload as unknown as DeviceChainView);
      else if (leaf === "resources") {
        snap.decisions.push({ ...(payload as unknown as DecisionView), deviceId });
        if (snap.decisions.length > 100) snap.decisions.splice(0, snap.decisions.length - 100);
      }
    } else if (kind === "placements" && leaf === "state" && fresh(payload)) {
      const p = payload as unknown as PlacementView;
      if (ids.has(Number(p.deviceId))) snap.placements.set(String(p.placementId), p);
    } else if (kind === "deployments" && leaf === "state" && fresh(payload)) {
      const d = payload as unknown as DeploymentView;
      snap.deployments.set(Number(d.deploymentId), d);
    }
  };

  const previous = new Map<string, { cpuNs: number; atMs: number }>();
  const previousDevice = new Map<number, { cpuNs: number; atMs: number }>();
  let sampling: Promise<void> | undefined;
  async function latestBlockTime(): Promise<void> {
    try {
      const response = await fetch(options.rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "eth_getBlockByNumber",
          params: ["latest", false],
        }),
        signal: AbortSignal.timeout(2000),
      });
      const { result } = (await response.json()) as { result?: { timestamp?: string } };
      if (result?.timestamp) sawBlockTime(Number(BigInt(result.timestamp)));
    } catch {
      // the view shows what it has; ages fall back to the newest block time seen on MQTT
    }
  }

  async function sample(): Promise<void> {
    await latestBlockTime();
    const summaries = await docker.listContainers({
      all: true,
      filters: { label: ["io.shoal.managed=true"] },
    });
    const mine = summaries.filter((s) => options.deviceOfLabel(s.Labels["io.shoal.device"]) !== undefined);
    const now = Date.now();
    const out: ContainerView[] = [];
    for (const s of mine) {
      let info: Docker.ContainerInspectInfo;
      try {
        info = await docker.getContainer(s.Id).inspect();
      } catch {
        continue; // removed in between
      }
      const host = info.HostConfig;
      const view: ContainerView = {
        id: s.Id,
        name: (s.Names[0] ?? "").replace(/^\//, ""),
        deviceId: options.deviceOfLabel(s.Labels["io.shoal.device"])!,
        placementId: s.Labels["io.shoal.placement"] ?? "",
        deploymentId: s.Labels["io.shoal.deployment"] ?? "",
        version: s.Labels["io.shoal.version"] ?? "",
        running: info.State.Running,
        cpuLimitMillicores:
          host.CpuQuota && host.CpuPeriod ? Math.round((host.CpuQuota / host.CpuPeriod) * 1000) : 0,
        memoryLimitMiB: host.Memory ? Math.round(host.Memory / MiB) : 0,
        cgroupParent: host.CgroupParent ?? "",
      };
      if (view.running) {
        const usage = cgroupUsage(root, view.cgroupParent, s.Id);
        if (usage.memoryBytes !== undefined)
          view.memoryUsageMiB = Math.round((usage.memoryBytes / MiB) * 10) / 10;
        if (usage.cpuNs !== undefined) {
          const before = previous.get(s.Id);
          if (before !== undefined && now > before.atMs)
            view.cpuUsageMillicores = Math.max(
              0,
              Math.round(((usage.cpuNs - before.cpuNs) / 1e6 / (now - before.atMs)) * 1000),
            );
          previous.set(s.Id, { cpuNs: usage.cpuNs, atMs: now });
        }
      }
      out.push(view);
    }
    for (const deviceId of ids) {
      const names = options.cgroupNames?.(deviceId) ?? [String(deviceId)];
      const dir =
        names
          .map((n) => `/shoal/device-${n}`)
          .find((d) => readNumber(`${root}/cpu${d}/cpu.cfs_quota_us`) !== undefined) ??
        `/shoal/device-${names[0]}`;
      const quota = readNumber(`${root}/cpu${dir}/cpu.cfs_quota_us`);
      const period = readNumber(`${root}/cpu${dir}/cpu.cfs_period_us`);
      const memory = readNumber(`${root}/memory${dir}/memory.limit_in_bytes`);
      const cpuNs = readNumber(`${root}/cpuacct${dir}/cpuacct.usage`);
      if (quota === undefined && memory === undefined) {
        snap.deviceCgroups.delete(deviceId);
        continue;
      }
      const before = previousDevice.get(deviceId);
      let cpuUsageMillicores: number | undefined;
      if (cpuNs !== undefined) {
        if (before !== undefined && now > before.atMs)
          cpuUsageMillicores = Math.round(((cpuNs - before.cpuNs) / 1e6 / (now - before.atMs)) * 1000);
        previousDevice.set(deviceId, { cpuNs, atMs: now });
      }
      snap.deviceCgroups.set(deviceId, {
        cpuCapMillicores:
          quota !== undefined && quota > 0 && period ? Math.round((quota / period) * 1000) : undefined,
        memoryCapMiB: memory !== undefined && memory < 2 ** 62 ? Math.round(memory / MiB) : undefined,
        cpuUsageMillicores,
      });
    }
    snap.containers = out.sort((a, b) => a.deviceId - b.deviceId || a.name.localeCompare(b.name));
  }
  const sampleDocker = () => (sampling ??= sample().finally(() => (sampling = undefined)));
  await sampleDocker().catch(() => undefined);
  const timer = setInterval(
    () => void sampleDocker().catch(() => undefined),
    options.dockerIntervalMs ?? 2000,
  );

  return {
    snapshot() {
      snap.at = new Date();
      snap.chainTime =
        newestBlockTime &&
        newestBlockTime.timestamp + Math.floor((Date.now() - newestBlockTime.seenAtMs) / 1000);
      return snap;
    },
    sampleDocker,
    async close() {
      clearInterval(timer);
      await sampling?.catch(() => undefined);
      await client.endAsync(true).catch(() => undefined);
      provider.destroy();
    },
  };
}
