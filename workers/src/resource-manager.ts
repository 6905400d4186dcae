/**
 * The resource manager of a device: every control period it reads the metrics of the device's
 * running containers, asks the pure controller (domain/controller.ts) for their next limits, applies
 * the changes in place with `docker update` (no restart), hands evictions to the caller, and
 * publishes every decision on `<root>/devices/<deviceId>/resources` (and a metrics summary on
 * `<root>/devices/<deviceId>/metrics`).
 *
 * Like the reconciler, a tick that fails part-way aborts and the next tick retries: the controller
 * works from the limits that were actually applied, so a failed `docker update` is simply asked
 * for again.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { HostCounters, HostUsage } from "./adapters/host-metrics";
import { hostUsageBetween } from "./adapters/host-metrics";
import type { ResourceLimits } from "./domain/container-spec";
import {
  DEFAULT_CONTROLLER_PARAMS,
  decide,
  decisionRecordJson,
  initialControllerState,
  usageBetween,
} from "./domain/controller";
import type {
  CgroupCounters,
  ContainerUsage,
  ControlledContainer,
  ControllerParams,
  ControllerState,
  DecisionRecord,
  DeviceCapacity,
  Eviction,
} from "./domain/controller";
import type { ResourceBand } from "./domain/manifest";
import { TOPIC_ROOT } from "./domain/topics";
import type { WorkerMetrics } from "./metrics";
import type { Bus } from "./ports/bus";
import type { ActualContainer, Runtime } from "./ports/runtime";

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
}

export type ResourceManagerMetrics = Pick<
  WorkerMetrics,
  | "resourceDecisions"
  | "resourceTickDuration"
  | "containerCpuLimit"
  | "containerMemoryLimit"
  | "containerCpuUsage"
  | "containerCpuThrottledRatio"
  | "containerMemoryWorkingSet"
  | "deviceCpuUsage"
  | "deviceMemoryUsage"
  | "mqttPublishFailures"
>;

export interface ResourceManagerDeps {
  /** The device's id on chain: in the decision records and the MQTT topics. */
  deviceId: string;
  /**
   * The `io.shoal.device` label of the device's containers, when the worker labels them with
   * another key than the chain id (e.g. chain + registry + id); default `deviceId`.
   */
  runtimeDeviceId?: string;
  /** The device's enrolled capacity (also the caps of its cgroup, see adapters/device-cgroup.ts). */
  capacity: DeviceCapacity;
  runtime: Pick<Runtime, "list" | "updateResources">;
  metrics: MetricsSource;
  /**
   * The resource band of a container's placement (from the chain's placement or the manifest).
   * A container without a known band is pinned at its current limits: it counts against the
   * capacity but is never changed.
   */
  bandOf: (container: ActualContainer) => ResourceBand | undefined;
  /**
   * Gives a placement up: the worker releases it on chain with reason Evicted (so another device
   * can claim it) and removes its container. The manager stops managing it at once.
   */
  evict: (placementId: string, reason: "Evicted", options: { signal?: AbortSignal }) => Promise<void>;
  bus?: Pick<Bus, "publish">;
  /** Topic root, default shoal/v1. */
  topicRoot?: string;
  params?: Partial<ControllerParams>;
  logger: Logger;
  promMetrics?: ResourceManagerMetrics;
  /** Explicit priority of a placement (higher wins); default: none (see comparePriority). */
  priorityOf?: (container: ActualContainer) => number | undefined;
  /** How often the container list is re-read from the runtime; default 5000 ms. */
  inventoryRefreshMs?: number;
  /** Publish a metrics summary every this many ticks (0 = never); default 5. */
  metricsEveryTicks?: number;
  /** Monotonic ms; default performance.now. */
  now?: () => number;
  /** Wall clock for the decision records; default Date.now. */
  wallClock?: () => number;
  /** First decision sequence number (continue a log across restarts); default 0. */
  firstSeq?: number;
  /** Called with the report of every tick (dashboards, tests, benchmarks). */
  onTick?: (report: TickReport) => void;
}

/** What one tick saw and did (for logs, tests and benchmarks). */
export interface TickReport {
  at: string;
  durationMs: number;
  decisions: DecisionRecord[];
  changes: { containerId: string; placementId: string; from: ResourceLimits; to: ResourceLimits }[];
  evictions: Eviction[];
  /** Usage by container id over the last period (absent on a container's first period). */
  usage: Record<string, ContainerUsage>;
  /** Limits by container id after the tick, as applied. */
  limits: Record<string, ResourceLimits>;
  /** The device cgroup's CPU (millicores) and memory (MiB) over the last period. */
  device?: { cpuMillicores: number; memoryMiB: number; oomKills: number };
  host?: HostUsage;
  /** docker update calls that failed (retried next tick). */
  applyErrors: number;
}

export interface ResourceManager {
  tick(options?: { signal?: AbortSignal }): Promise<TickReport>;
  /** Ticks every period until the signal aborts; errors of a tick are logged and the loop goes on. */
  run(options: { signal: AbortSignal }): Promise<void>;
  /**
   * Re-reads the container list at the next tick instead of waiting for inventoryRefreshMs: call it
   * after starting a container (the reconciler), so the new one is managed from its first second.
   */
  refresh(): void;
}

interface Tracked {
  container: ActualContainer;
  limits: ResourceLimits;
  band: ResourceBand | undefined;
  previous?: CgroupCounters;
}

export function createResourceManager(deps: ResourceManagerDeps): ResourceManager {
  const params: ControllerParams = { ...DEFAULT_CONTROLLER_PARAMS, ...deps.params };
  const { deviceId, logger } = deps;
  const log = logger.child({ component: "resource-manager", deviceId });
  const now = deps.now ?? (() => performance.now());
  const wallClock = deps.wallClock ?? (() => Date.now());
  const refreshMs = deps.inventoryRefreshMs ?? 5_000;
  const metricsEvery = deps.metricsEveryTicks ?? 5;
  const root = deps.topicRoot ?? TOPIC_ROOT;
  const resourcesTopic = `${root}/devices/${deviceId}/resources`;
  const metricsTopic = `${root}/devices/${deviceId}/metrics`;

  let state: ControllerState = initialControllerState(deps.firstSeq ?? 0);
  const tracked = new Map<string, Tracked>();
  const evicted = new Set<string>();
  let inventoryAt = Number.NEGATIVE_INFINITY;
  let previousHost: HostCounters | undefined;
  let previousDevice: CgroupCounters | undefined;
  let ticks = 0;

  async function refreshInventory(signal?: AbortSignal): Promise<void> {
    const listed = await deps.runtime.list({ deviceId: deps.runtimeDeviceId ?? deviceId, signal });
    const seen = new Set<string>();
    for (const c of listed) {
      if (c.state !== "running" || c.placementId === "" || evicted.has(c.placementId)) continue;
      seen.add(c.id);
      const band = deps.bandOf(c);
      const existing = tracked.get(c.id);
      // The runtime's view is the truth: it shows what the kernel has, whoever changed it.
      tracked.set(c.id, {
        container: c,
        limits: {
          cpuMillicores: c.limits.cpuMillicores,
          memoryMiB: c.limits.memoryMiB,
          memoryReservationMiB: c.limits.memoryReservationMiB,
        },
        band,
        previous: existing?.previous,
      });
    }
    for (const id of [...tracked.keys()]) if (!seen.has(id)) tracked.delete(id);
    // An evicted placement whose container is gone needs no memory of it any more.
    const placements = new Set(listed.map((c) => c.placementId));
    for (const p of [...evicted]) if (!placements.has(p)) evicted.delete(p);
    inventoryAt = now();
  }

  async function publish(topic: string, payload: string, qos: 0 | 1, signal?: AbortSignal): Promise<void> {
    if (deps.bus === undefined) return;
    try {
      await deps.bus.publish(topic, payload, { qos, retain: false, signal });
    } catch (error) {
      deps.promMetrics?.mqttPublishFailures.inc();
      log.warn({ err: error, topic }, "could not publish; the decision stays in the log and /metrics");
    }
  }

  async function tick(options: { signal?: AbortSignal } = {}): Promise<TickReport> {
    const { signal } = options;
    const started = now();
    if (started - inventoryAt >= refreshMs) await refreshInventory(signal);
    let sample = await deps.metrics.sample([...tracked.keys()], { signal });
    if ([...tracked.keys()].some((id) => !sample.containers.has(id))) {
      // A container went away (or was replaced): list again now rather than at the next refresh.
      await refreshInventory(signal);
      sample = await deps.metrics.sample([...tracked.keys()], { signal });
    }

    const usage: Record<string, ContainerUsage> = {};
    const controlled: ControlledContainer[] = [];
    for (const [id, t] of tracked) {
      const counters = sample.containers.get(id);
      if (counters === undefined) continue;
      const u = t.previous === undefined ? undefined : usageBetween(t.previous, counters, params.periodMs);
      t.previous = counters;
      if (u !== undefined) usage[id] = u;
      // No band known: pin it where it is, so it still counts against the capacity.
      const band: ResourceBand = t.band ?? {
        cpuMillicoresMin: t.limits.cpuMillicores,
        cpuMillicoresMax: t.limits.cpuMillicores,
        memoryMiBMin: t.limits.memoryMiB,
        memoryMiBMax: t.limits.memoryMiB,
      };
      controlled.push({
        containerId: id,
        placementId: t.container.placementId,
        band,
        limits: t.limits,
        usage: u,
        priority: deps.priorityOf?.(t.container),
      });
    }

    const at = new Date(wallClock()).toISOString();
    const out = decide({
      deviceId,
      at,
      capacity: deps.capacity,
      containers: controlled,
      state,
      params,
    });
    state = out.state;

    // Lower before raising, so the sum of the limits never goes over the capacity in between.
    const grows = (c: (typeof out.changes)[number]) =>
      c.to.cpuMillicores > c.from.cpuMillicores || c.to.memoryMiB > c.from.memoryMiB ? 1 : 0;
    const ordered = [...out.changes].sort((a, b) => grows(a) - grows(b));
    const failed = new Set<string>();
    for (const change of ordered) {
      try {
        await deps.runtime.updateResources(change.containerId, change.to, { signal });
        const t = tracked.get(change.containerId);
        if (t !== undefined) t.limits = change.to;
      } catch (error) {
        failed.add(change.containerId);
        log.warn(
          { err: error, placementId: change.placementId, from: change.from, to: change.to },
          "docker update failed; the next period asks again",
        );
      }
    }

    for (const e of out.evictions) {
      evicted.add(e.placementId);
      tracked.delete(e.containerId);
      log.warn(
        { placementId: e.placementId, resource: e.resource },
        "evicting placement: device over capacity",
      );
      try {
        await deps.evict(e.placementId, "Evicted", { signal });
      } catch (error) {
        log.error({ err: error, placementId: e.placementId }, "eviction failed; the worker retries it");
      }
    }

    // Only decisions that took effect are published; a failed update leaves a gap in seq.
    const decisions = out.decisions.filter((d) => d.resource === "placement" || !failed.has(d.containerId));
    for (const d of decisions) {
      deps.promMetrics?.resourceDecisions.inc({ resource: d.resource, reason: d.reason });
      log.info(
        {
          placementId: d.placementId,
          resource: d.resource,
          from: d.from,
          to: d.to,
          reason: d.reason,
          metric: d.metric,
          value: d.value,
        },
        "resource decision",
      );
    }
    await Promise.all(decisions.map((d) => publish(resourcesTopic, decisionRecordJson(d), 1, signal)));

    let device: TickReport["device"];
    if (sample.device !== undefined && previousDevice !== undefined) {
      const u = usageBetween(previousDevice, sample.device, params.periodMs);
      if (u !== undefined) {
        device = { cpuMillicores: u.cpuMillicores, memoryMiB: u.memoryUsageMiB, oomKills: u.oomKills };
      }
    }
    previousDevice = sample.device;
    const host =
      sample.host !== undefined && previousHost !== undefined
        ? hostUsageBetween(previousHost, sample.host)
        : undefined;
    previousHost = sample.host;

    const limits: Record<string, ResourceLimits> = {};
    for (const [id, t] of tracked) limits[id] = t.limits;
    const m = deps.promMetrics;
    if (m !== undefined) {
      m.containerCpuLimit.reset();
      m.containerMemoryLimit.reset();
      m.containerCpuUsage.reset();
      m.containerCpuThrottledRatio.reset();
      m.containerMemoryWorkingSet.reset();
      for (const [id, t] of tracked) {
        const placement = t.container.placementId;
        m.containerCpuLimit.set({ placement }, t.limits.cpuMillicores);
        m.containerMemoryLimit.set({ placement }, t.limits.memoryMiB);
        const u = usage[id];
        if (u !== undefined) {
          m.containerCpuUsage.set({ placement }, u.cpuMillicores);
          m.containerCpuThrottledRatio.set({ placement }, u.cpuThrottledRatio);
          m.containerMemoryWorkingSet.set({ placement }, u.memoryWorkingSetMiB);
        }
      }
      if (device !== undefined) {
        m.deviceCpuUsage.set(device.cpuMillicores);
        m.deviceMemoryUsage.set(device.memoryMiB);
      }
    }

    ticks += 1;
    if (deps.bus !== undefined && metricsEvery > 0 && ticks % metricsEvery === 0) {
      const payload = {
        v: 1,
        deviceId,
        at,
        capacity: deps.capacity,
        host: host && {
          cpuMillicores: Math.round(host.cpuMillicores),
          memoryUsedMiB: Math.round(host.memoryUsedMiB),
          memoryTotalMiB: Math.round(host.memoryTotalMiB),
          load1: host.load1,
        },
        device: device && {
          cpuMillicores: Math.round(device.cpuMillicores),
          memoryMiB: Math.round(device.memoryMiB),
        },
        containers: [...tracked].map(([id, t]) => ({
          placementId: t.container.placementId,
          containerId: id,
          limits: t.limits,
          cpuMillicores: usage[id] && Math.round(usage[id].cpuMillicores),
          cpuThrottledRatio: usage[id] && Math.round(usage[id].cpuThrottledRatio * 1000) / 1000,
          memoryWorkingSetMiB: usage[id] && Math.round(usage[id].memoryWorkingSetMiB),
          memoryUsageBytes: sample.containers.get(id)?.memoryUsageBytes,
        })),
      };
      await publish(metricsTopic, JSON.stringify(payload), 0, signal);
    }

    const durationMs = now() - started;
    m?.resourceTickDuration.observe(durationMs / 1000);
    const report: TickReport = {
      at,
      durationMs,
      decisions,
      changes: out.changes.filter((c) => !failed.has(c.containerId)),
      evictions: out.evictions,
      usage,
      limits,
      device,
      host,
      applyErrors: failed.size,
    };
    deps.onTick?.(report);
    return report;
  }

  return {
    tick,
    refresh() {
      inventoryAt = Number.NEGATIVE_INFINITY;
    },
    async run({ signal }) {
      const period = params.periodMs;
      let next = now();
      while (!signal.aborted) {
        try {
          await tick({ signal });
        } catch (error) {
          if (signal.aborted) break;
          log.error({ err: error }, "resource-manager tick failed; retrying next period");
        }
        // Drift-free schedule; after a long tick, skip the missed periods instead of bunching up.
        next += period;
        const t = now();
        if (next < t) next = t;
        try {
          await sleep(next - t, undefined, { signal });
        } catch {
          break;
        }
      }
    },
  };
}
