/**
 * The resource manager of a device: every control period it reads the metrics of the device's
 * running containers, asks the pure controller (domain/controller/) for their next limits, applies
 * the changes in place with `docker update` (no restart), hands evictions to the caller, and
 * publishes every decision on `<root>/devices/<deviceId>/resources` (and a metrics summary on
 * `<root>/devices/<deviceId>/metrics`).
 *
 * Between two periods, the fast path (`fastTick`, every fastPeriodMs, default 100 ms) reads only
 * the CPU counters of the containers (microseconds per file) and asks `decideFast` whether one is
 * throttled now; if so it is raised at once, taking idle slack from the others, instead of waiting
 * for the next period. Both paths run in one loop, one at a time, and share the controller's state
 * and decision sequence.
 *
 * Like the reconciler, a tick that fails part-way aborts and the next tick retries: the controller
 * works from the limits that were actually applied, so a failed `docker update` is simply asked
 * for again.
 */
import type { Logger } from "pino";
import type { HostCounters, HostUsage } from "./domain/host-usage";
import { hostUsageBetween } from "./domain/host-usage";
import type { ResourceLimits } from "./domain/container-spec";
import {
  DEFAULT_CONTROLLER_PARAMS,
  decide,
  decideFast,
  decisionRecordJson,
  initialControllerState,
  recentCpu,
  usageBetween,
} from "./domain/controller";
import type {
  CgroupCounters,
  ContainerUsage,
  ControlledContainer,
  ControlOutput,
  ControllerParams,
  ControllerState,
  CpuCounters,
  DecisionRecord,
  DeviceCapacity,
  Eviction,
  RecentCpu,
} from "./domain/controller";
import type { ResourceBand } from "./domain/manifest";
import { TOPIC_ROOT } from "./domain/topics";
import { sleep } from "./lib/supervise";
import type { WorkerMetrics } from "./metrics";
import type { Bus } from "./ports/bus";
import type { MetricsSource } from "./ports/metrics";
import type { ActualContainer, Runtime } from "./ports/runtime";

// The metrics port (workers/src/ports/metrics.ts), re-exported for the manager's users.
export type { MetricsSample, MetricsSource } from "./ports/metrics";

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
   * Gives a placement up: the worker releases it on chain (a release, not a failure: see
   * docs/worker.md, "Eviction") so another device can claim it, and removes its container. The
   * manager stops managing it at once.
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
  /**
   * The device's decision log (workers/src/resource-log.ts): every tick's decisions are appended,
   * and written to disk, before they are published. Its `nextSeq` is the `firstSeq` to pass.
   */
  log?: { append(records: readonly DecisionRecord[]): Promise<void> };
  /** Called with the report of every tick (dashboards, tests, benchmarks). */
  onTick?: (report: TickReport) => void;
}

/** What one tick saw and did (for logs, tests and benchmarks). */
export interface TickReport {
  /** A control period's tick, or a fast-path tick between two periods (CPU only). */
  kind: "period" | "fast";
  at: string;
  durationMs: number;
  decisions: DecisionRecord[];
  changes: { containerId: string; placementId: string; from: ResourceLimits; to: ResourceLimits }[];
  evictions: Eviction[];
  /** Usage by container id over the last period (absent on a container's first period; empty in a fast tick). */
  usage: Record<string, ContainerUsage>;
  /**
   * Recent CPU by container id, as the controller judged it (with the fast path on; a fast tick
   * computes it only for an `onTick` listener).
   */
  recentCpu: Record<string, RecentCpu>;
  /** Limits by container id after the tick, as applied. */
  limits: Record<string, ResourceLimits>;
  /** The device cgroup's CPU (millicores) and memory (MiB) over the last period. */
  device?: { cpuMillicores: number; memoryMiB: number; oomKills: number };
  host?: HostUsage;
  /** docker update calls that failed (retried next tick). */
  applyErrors: number;
}

export interface ResourceManager {
  /** One control period: scrape everything, decide(), apply, publish. */
  tick(options?: { signal?: AbortSignal }): Promise<TickReport>;
  /**
   * One fast-path tick: read the CPU counters, decideFast(), apply, publish. A no-op (kind "fast",
   * nothing decided) when the fast path is off or a container's counters are missing (the next
   * period re-reads the inventory).
   */
  fastTick(options?: { signal?: AbortSignal }): Promise<TickReport>;
  /**
   * Ticks every period, and fast-ticks every fastPeriodMs in between, until the signal aborts;
   * errors of a tick are logged and the loop goes on.
   */
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
  /** CPU samples since the last CPU change, oldest first, trimmed to the recent window. */
  cpuSamples: CpuCounters[];
  /** Monotonic ms before which new samples are ignored (just after a CPU change). */
  settleUntil: number;
}

/**
 * After a CPU change, samples are ignored for one CFS period (the quota's period, 100 ms, as the
 * Docker runtime sets it): the kernel counts a throttle only at the end of its CFS period, so a
 * throttle under the old quota would otherwise show up in the first interval under the new one.
 */
const CPU_SETTLE_MS = 100;

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
  const fastOn =
    params.fastPeriodMs > 0 && params.fastPeriodMs < params.periodMs && deps.metrics.sampleCpu !== undefined;

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
      const sameCpu = existing !== undefined && existing.limits.cpuMillicores === c.limits.cpuMillicores;
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
        // Samples taken under another quota (a new container, or changed by someone else) would
        // mislead the window.
        cpuSamples: sameCpu ? existing.cpuSamples : [],
        settleUntil: sameCpu ? existing.settleUntil : now() + CPU_SETTLE_MS,
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

  /** A tracked container as the controller sees it (without its usage). */
  function controlledOf(id: string, t: Tracked): ControlledContainer {
    // No band known: pin it where it is, so it still counts against the capacity.
    const band: ResourceBand = t.band ?? {
      cpuMillicoresMin: t.limits.cpuMillicores,
      cpuMillicoresMax: t.limits.cpuMillicores,
      memoryMiBMin: t.limits.memoryMiB,
      memoryMiBMax: t.limits.memoryMiB,
    };
    return {
      containerId: id,
      placementId: t.container.placementId,
      band,
      limits: t.limits,
      priority: deps.priorityOf?.(t.container),
      ...(t.band === undefined ? { pinned: true } : {}),
    };
  }

  /** Adds a CPU sample; keeps the newest one at least a window old and every one after it. */
  function remember(t: Tracked, counters: CpuCounters): void {
    if (now() < t.settleUntil) return;
    const samples = t.cpuSamples;
    const last = samples.at(-1);
    if (last !== undefined && counters.atMs <= last.atMs) return;
    if (last !== undefined && counters.cpuUsageNs < last.cpuUsageNs) samples.length = 0;
    samples.push(counters);
    const horizon = counters.atMs - params.cpuRecentWindowMs;
    let first = 0;
    while (first + 1 < samples.length && samples[first + 1].atMs <= horizon) first += 1;
    if (first > 0) samples.splice(0, first);
  }

  /**
   * Applies the controller's changes (`docker update`), logs, counts and publishes the decisions
   * that took effect (an eviction's always), then carries out the evictions. A container whose CPU changed starts a new sample
   * window: samples under the old quota say nothing about the new one.
   */
  async function apply(
    out: ControlOutput,
    signal: AbortSignal | undefined,
  ): Promise<{ decisions: DecisionRecord[]; failed: Set<string> }> {
    // Lower before raising, so the sum of the limits never goes over the capacity in between.
    const grows = (c: (typeof out.changes)[number]) =>
      c.to.cpuMillicores > c.from.cpuMillicores || c.to.memoryMiB > c.from.memoryMiB ? 1 : 0;
    const ordered = [...out.changes].sort((a, b) => grows(a) - grows(b));
    const failed = new Set<string>();
    for (const change of ordered) {
      try {
        await deps.runtime.updateResources(change.containerId, change.to, { signal });
        const t = tracked.get(change.containerId);
        if (t !== undefined) {
          if (change.to.cpuMillicores !== t.limits.cpuMillicores) {
            t.cpuSamples = [];
            t.settleUntil = now() + CPU_SETTLE_MS;
          }
          t.limits = change.to;
        }
      } catch (error) {
        failed.add(change.containerId);
        log.warn(
          { err: error, placementId: change.placementId, from: change.from, to: change.to },
          "docker update failed; the next period asks again",
        );
      }
    }

    // Only decisions that took effect are logged and published, numbered without gaps: a seq
    // missing from the log is then always a record lost or removed (the anchored log's check).
    const firstSeq = out.decisions[0]?.seq ?? state.seq;
    const decisions = out.decisions
      .filter((d) => d.resource === "placement" || !failed.has(d.containerId))
      .map((d, i) => ({ ...d, seq: firstSeq + i }));
    state = { ...state, seq: firstSeq + decisions.length };
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
    // Write before publish: a decision is on disk before anyone hears of it (docs/resource-manager.md).
    if (decisions.length > 0 && deps.log !== undefined) {
      try {
        await deps.log.append(decisions);
      } catch (error) {
        log.error({ err: error }, "could not write the decision log; kept in memory, written with the next");
      }
    }
    await Promise.all(decisions.map((d) => publish(resourcesTopic, decisionRecordJson(d), 1, signal)));

    // Evictions last: their decisions are logged and heard before the release goes to the chain.
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
    return { decisions, failed };
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
    const recent: Record<string, RecentCpu> = {};
    const controlled: ControlledContainer[] = [];
    for (const [id, t] of tracked) {
      const counters = sample.containers.get(id);
      if (counters === undefined) continue;
      const u = t.previous === undefined ? undefined : usageBetween(t.previous, counters, params.periodMs);
      t.previous = counters;
      if (u !== undefined) usage[id] = u;
      if (fastOn) {
        remember(t, counters);
        recent[id] = recentCpu(t.cpuSamples, t.limits.cpuMillicores, params);
      }
      controlled.push({
        ...controlledOf(id, t),
        usage: u,
        cpuSamples: fastOn ? t.cpuSamples : undefined,
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
    const { decisions, failed } = await apply(out, signal);

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
      kind: "period",
      at,
      durationMs,
      decisions,
      changes: out.changes.filter((c) => !failed.has(c.containerId)),
      evictions: out.evictions,
      usage,
      recentCpu: recent,
      limits,
      device,
      host,
      applyErrors: failed.size,
    };
    deps.onTick?.(report);
    return report;
  }

  async function fastTick(options: { signal?: AbortSignal } = {}): Promise<TickReport> {
    const { signal } = options;
    const started = now();
    const at = new Date(wallClock()).toISOString();
    const recent: Record<string, RecentCpu> = {};
    const report = (out?: ControlOutput, decisions: DecisionRecord[] = [], failed = new Set<string>()) => {
      const limits: Record<string, ResourceLimits> = {};
      for (const [id, t] of tracked) limits[id] = t.limits;
      const r: TickReport = {
        kind: "fast",
        at,
        durationMs: now() - started,
        decisions,
        changes: (out?.changes ?? []).filter((c) => !failed.has(c.containerId)),
        evictions: [],
        usage: {},
        recentCpu: recent,
        limits,
        applyErrors: failed.size,
      };
      deps.onTick?.(r);
      return r;
    };
    if (!fastOn || tracked.size === 0) return report();
    const ids = [...tracked.keys()];
    const counters = await deps.metrics.sampleCpu!(ids, { signal });
    // A container gone (or not yet readable) still holds its limit: rather than allocate around it,
    // leave it to the next period, which lists the containers again.
    if (ids.some((id) => !counters.has(id))) return report();
    const controlled: ControlledContainer[] = [];
    for (const [id, t] of tracked) {
      remember(t, counters.get(id)!);
      // For the report only (the controller judges the samples itself): skipped when nobody listens.
      if (deps.onTick !== undefined) recent[id] = recentCpu(t.cpuSamples, t.limits.cpuMillicores, params);
      controlled.push({ ...controlledOf(id, t), cpuSamples: t.cpuSamples });
    }
    const out = decideFast({ deviceId, at, capacity: deps.capacity, containers: controlled, state, params });
    if (out.changes.length === 0 && out.decisions.length === 0) return report();
    state = out.state;
    const { decisions, failed } = await apply(out, signal);
    const m = deps.promMetrics;
    if (m !== undefined) {
      for (const c of out.changes) {
        const t = tracked.get(c.containerId);
        if (t !== undefined) m.containerCpuLimit.set({ placement: c.placementId }, t.limits.cpuMillicores);
      }
    }
    return report(out, decisions, failed);
  }

  /** Sleeps until monotonic `t`; false when the signal aborted. */
  async function until(t: number, signal: AbortSignal): Promise<boolean> {
    return sleep(Math.max(0, t - now()), signal);
  }

  return {
    tick,
    fastTick,
    refresh() {
      inventoryAt = Number.NEGATIVE_INFINITY;
    },
    async run({ signal }) {
      const period = params.periodMs;
      const fast = fastOn ? params.fastPeriodMs : 0;
      let next = now();
      while (!signal.aborted) {
        const started = now();
        try {
          await tick({ signal });
        } catch (error) {
          if (signal.aborted) break;
          log.error({ err: error }, "resource-manager tick failed; retrying next period");
        }
        // Drift-free schedule; after a long tick, skip the missed periods instead of bunching up.
        next += period;
        if (next < now()) next = now();
        // Fast ticks every `fast` ms after this period's tick, none within half a fast period of
        // the next one (which reads the same counters anyway).
        for (let t = started + fast; fast > 0 && t <= next - fast / 2; t += fast) {
          if (!(await until(t, signal))) return;
          try {
            await fastTick({ signal });
          } catch (error) {
            if (signal.aborted) return;
            log.warn({ err: error }, "resource-manager fast tick failed; the next one retries");
          }
          if (now() > t + fast) t = now() - fast / 2; // a slow fast tick: do not bunch up either
        }
        if (!(await until(next, signal))) return;
      }
    },
  };
}
