/**
 * The reconcile loop: desired state (this device's live placements on chain, read at
 * latest − confirmations) vs actual state (its containers in Docker, by label) -> plan() -> apply
 * each action on its own. On success a claimed placement is confirmed Running on chain; a failure
 * the device can prove (bad manifest, image that cannot be fetched, OOM kill, a container that will
 * not start) is reported Failed with its code.
 *
 * Shape from kubelet's SyncPod: if reading either side fails, the pass aborts and touches nothing —
 * running containers keep running while the chain or IPFS is unreachable — and the next pass
 * retries. Retry and backoff live here and nowhere else: per placement, exponential, reset by
 * success. Triggers (new logs, MQTT messages, a timer) only mark the loop dirty.
 */
import type { Logger } from "pino";
import { containerSpec, specHash, type ContainerSpecOptions } from "./domain/container-spec";
import { plan, type ActualContainer, type DesiredPlacement, type PlanAction } from "./domain/plan";
import { createHealthProber, type ProbeTarget } from "./health-prober";
import type { ReplicaEndpoints } from "./endpoints";
import { DeliveryError, type Delivery } from "./delivery";
import type { ImageRetention } from "./image-retention";
import { isRetryable } from "./errors";
import { sleep } from "./lib/supervise";
import { keepsContainer } from "./domain/placement";
import type { WorkerMetrics } from "./metrics";
import type { FailureCode, PlacementView, Registry } from "./ports/registry";
import type { Runtime } from "./ports/runtime";
import type { Platform } from "./domain/manifest";

export interface ReconcilerDeps {
  registry: Registry;
  /**
   * The device's name in Docker (labels, container names): unique per chain and registry, so
   * workers of several chains (a fleet and a test run, say) can share one Docker host.
   */
  deviceKey: string;
  runtime: Runtime;
  delivery: Delivery;
  platform: Platform;
  logger: Logger;
  metrics?: WorkerMetrics;
  confirmations: number;
  /** Longest wait between passes when nothing marks the loop dirty. */
  intervalMs: number;
  /**
   * A timer pass (nothing marked the loop dirty) checks the containers against the placements
   * last read, without reading the chain, unless this long has passed since the last chain read
   * (default 60 s): chain changes come as events (bridged or read) that mark the loop dirty, so
   * the timer only catches missed events, and N devices do not poll the chain every intervalMs.
   */
  chainResyncMs?: number;
  /** Extra container options (the resource manager's per-device cgroup parent, say). */
  containerOptions?: ContainerSpecOptions;
  /**
   * Lets go of images no placement needs (image-retention.ts); swept after each pass with the
   * image CIDs of the device's live placements. None: every delivered image stays pinned.
   */
  retention?: ImageRetention;
  /** Called after a container was started, recreated or removed (the resource manager re-reads). */
  onContainersChanged?: () => void;
  /**
   * In each pass, before its actions: the replicas that run with the desired spec and answer
   * (healthy, or running without a health check) once the pass is done, with their published ports
   * (discovery, endpoints.ts). Resolves when they are published; a pass that stops or recreates a
   * replica waits for that (up to ENDPOINT_DRAIN_MS) first, so subscribers stop using it before it
   * stops answering. Never rejects.
   */
  onEndpoints?: (replicas: ReplicaEndpoints[]) => Promise<void>;
  /** Backoff bounds for a placement whose action failed. */
  backoff?: { initialMs: number; maxMs: number };
  now?: () => number;
}

export interface PassResult {
  actions: PlanAction[];
  failed: { placementId: string; error: string }[];
  /** A pass on the placements last read found work that needs a fresh read: it did nothing. */
  needsChain?: true;
}

export interface Reconciler {
  /** Asks for a pass as soon as the current one (if any) ends. */
  markDirty(reason: string): void;
  /**
   * One pass. Throws when reading the desired or actual state failed (nothing was touched).
   * `readChain: false` takes the placements last read instead of reading them (default true), and
   * does nothing (`needsChain`) when they call for more than keeping or restarting in place.
   */
  pass(options?: { signal?: AbortSignal; readChain?: boolean }): Promise<PassResult>;
  /** Passes until the signal aborts; the pass under way when it aborts is finished first. */
  run(options: { signal: AbortSignal }): Promise<void>;
}

const PAGE = 32;
/**
 * Actions taken only on a fresh read of the chain: what runs (start, stop) and what the chain is
 * told (complete, report-failure). The placement may have been released, expired or stopped since
 * the last read. Keeping, waiting and restarting in place need no read: a device whose uplink is
 * down keeps its replicas running.
 */
const NEEDS_FRESH_READ = new Set<PlanAction["type"]>(["start", "stop", "complete", "report-failure"]);
/** How long a pass that stops a replica waits for its endpoint's withdrawal to be published. */
const ENDPOINT_DRAIN_MS = 2_000;

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const { registry, runtime, delivery, logger } = deps;
  const deviceId = deps.deviceKey;
  const now = deps.now ?? Date.now;
  const backoff = deps.backoff ?? { initialMs: 1_000, maxMs: 60_000 };
  /** Non-terminal placements of this device, by id; the newest one seen marks where paging stops. */
  const tracked = new Map<string, PlacementView>();
  let newestSeen: string | undefined;
  const retryAt = new Map<string, { at: number; delayMs: number }>();
  let dirty = true;
  /** Something on chain may have changed (an event, a claim, a reconnect): the next pass reads it. */
  let chainDirty = true;
  let chainReadAt = -Infinity;
  const chainResyncMs = deps.chainResyncMs ?? 60_000;
  let wake: (() => void) | undefined;
  /** The app name, semver and port names of each desired placement, for its endpoints. */
  const apps = new Map<
    string,
    { app: string; appVersion: string; portNames: Map<string, string | undefined> }
  >();
  /** Whether a pass has pruned unused deployment networks since the worker started. */
  let networksPruned = false;
  /** Restarts for being unhealthy since each placement's replica was last healthy. */
  const unhealthyRestarts = new Map<string, number>();
  // httpGet checks (exec checks are Docker's); a changed verdict asks for a pass.
  const prober = createHealthProber({
    logger: logger.child({ component: "health" }),
    onChange: () => markDirty("health"),
  });
  /** Versions are immutable once published: read each once (bounded: the apps this device runs). */
  const versions = new Map<string, Awaited<ReturnType<Registry["version"]>>>();

  /** New placements since the last pass (the device's list is newest first), then fresh states. */
  async function readDesired(blockTag: number, signal?: AbortSignal): Promise<PlacementView[]> {
    const fresh: PlacementView[] = [];
    scan: for (let offset = 0; ; offset += PAGE) {
      const page = await registry.placementsOfDevice(offset, PAGE, { blockTag, signal });
      for (const p of page) {
        if (p.placementId === newestSeen) break scan;
        fresh.push(p);
      }
      if (page.length < PAGE) break;
    }
    if (fresh.length > 0) newestSeen = fresh[0].placementId;
    for (const p of fresh) if (keepsContainer(p.state)) tracked.set(p.placementId, p);
    const states = await Promise.all(
      [...tracked.keys()].map(
        async (id) => [id, await registry.placementState(id, { blockTag, signal })] as const,
      ),
    );
    for (const [id, state] of states) {
      const p = tracked.get(id)!;
      if (keepsContainer(state)) tracked.set(id, { ...p, state });
      else tracked.delete(id);
    }
    return [...tracked.values()];
  }

  const failOnChain = async (placementId: string, code: FailureCode, reason: string) => {
    logger.warn({ placementId, code, reason }, "reporting placement failed");
    await registry.fail(placementId, code);
    deps.metrics?.chainTransactions.inc({ method: "fail", result: "ok" });
    tracked.delete(placementId);
  };

  /** The container each desired placement should run, or none yet (its spec cannot be had now). */
  async function toDesired(
    placements: PlacementView[],
    liveImages: Set<string>,
    signal?: AbortSignal,
  ): Promise<DesiredPlacement[]> {
    const desired: DesiredPlacement[] = [];
    for (const p of placements) {
      const key = `${p.appId}:${p.version}`;
      let version = versions.get(key);
      if (version === undefined) {
        version = await registry.version(p.appId, p.version, deps.platform, { signal });
        if (versions.size >= 256) versions.delete(versions.keys().next().value!);
        versions.set(key, version);
      }
      // Live even while it cannot be delivered: a CID never delivered has no tag to judge anyway.
      if (version.imageCid) liveImages.add(version.imageCid);
      if (!version.imageCid) {
        // The claim checked the platform; a version without our image cannot happen, but report it.
        await failOnChain(
          p.placementId,
          "ImageFetchFailed",
          `version ${p.version} has no ${deps.platform} image`,
        );
        continue;
      }
      try {
        const image = await delivery.ensureImage({
          manifestCid: version.manifestCid,
          imageCid: version.imageCid,
          signal,
        });
        const spec = containerSpec(
          {
            deviceId,
            placementId: p.placementId,
            deploymentId: String(p.deploymentId),
            appId: String(p.appId),
            version: String(p.version),
          },
          image.manifest,
          image.imageRef,
          deps.containerOptions,
        );
        desired.push({ placementId: p.placementId, container: { spec, specHash: specHash(spec) } });
        apps.set(p.placementId, {
          app: image.manifest.name,
          appVersion: image.manifest.version,
          portNames: new Map(
            image.manifest.ports.map((port) => [`${port.containerPort}/${port.protocol}`, port.name]),
          ),
        });
      } catch (error) {
        if (error instanceof DeliveryError && !error.retryable) {
          await failOnChain(p.placementId, error.code, error.shortMessage);
          continue;
        }
        if (signal?.aborted) throw error;
        logger.warn({ placementId: p.placementId, err: error }, "delivery failed; will retry");
        desired.push({ placementId: p.placementId });
      }
    }
    return desired;
  }

  async function apply(action: PlanAction, state: string | undefined, signal?: AbortSignal): Promise<void> {
    const confirmIfClaimed = async (running: boolean) => {
      if (state === "Claimed" && running) {
        await registry.confirm(action.placementId);
        deps.metrics?.chainTransactions.inc({ method: "confirm", result: "ok" });
        const p = tracked.get(action.placementId);
        if (p) tracked.set(action.placementId, { ...p, state: "Running" });
        logger.info({ placementId: action.placementId }, "placement running, confirmed on chain");
      }
    };
    switch (action.type) {
      case "start": {
        const { container } = await runtime.ensureRunning(action.spec, { signal });
        await confirmIfClaimed(container.state === "running");
        if (container.state !== "running")
          throw new Error(`container ${container.name} is ${container.state} after start`);
        return;
      }
      case "keep":
        return confirmIfClaimed(true);
      case "restart":
        logger.info(
          { placementId: action.placementId, containerId: action.containerId, reason: action.reason },
          "starting the container again in place",
        );
        await runtime.start(action.containerId, { signal });
        return;
      case "recreate": {
        if (action.unhealthy) {
          unhealthyRestarts.set(action.placementId, (unhealthyRestarts.get(action.placementId) ?? 0) + 1);
          logger.warn(
            { placementId: action.placementId, reason: action.reason },
            "restarting an unhealthy replica",
          );
        }
        await runtime.stop(action.containerId, { signal });
        await runtime.remove(action.containerId, { signal });
        const { container } = await runtime.ensureRunning(action.spec, { signal });
        await confirmIfClaimed(container.state === "running");
        return;
      }
      case "stop":
        logger.info(
          { placementId: action.placementId, containerId: action.containerId, reason: action.reason },
          "stopping a replica",
        );
        await runtime.stop(action.containerId, { signal });
        await runtime.remove(action.containerId, { signal });
        return;
      case "report-failure":
        // An unhealthy replica still runs: stop it first, so it answers nobody from here on.
        if (action.code === "HealthCheckFailed") await runtime.stop(action.containerId, { signal });
        await failOnChain(action.placementId, action.code, action.reason);
        unhealthyRestarts.delete(action.placementId);
        return;
      case "complete":
        await registry.release(action.placementId);
        deps.metrics?.chainTransactions.inc({ method: "release", result: "ok" });
        tracked.delete(action.placementId);
        return;
      case "wait":
        return;
    }
  }

  /** The replicas that answer after this pass's actions: kept as they are, and healthy. */
  function answering(
    actions: readonly PlanAction[],
    checked: readonly ActualContainer[],
  ): ReplicaEndpoints[] {
    const kept = new Set(actions.filter((a) => a.type === "keep").map((a) => a.containerId));
    const replicas: ReplicaEndpoints[] = [];
    for (const c of checked) {
      const app = apps.get(c.placementId);
      if (!kept.has(c.id) || app === undefined || (c.health !== undefined && c.health !== "healthy"))
        continue;
      replicas.push({
        placementId: c.placementId,
        deploymentId: c.deploymentId,
        appId: c.appId,
        version: c.version,
        app: app.app,
        appVersion: app.appVersion,
        ports: c.ports.map((port) => {
          const name = app.portNames.get(`${port.containerPort}/${port.protocol}`);
          return name === undefined ? port : { ...port, name };
        }),
      });
    }
    return replicas;
  }

  async function pass({
    signal,
    readChain = true,
  }: { signal?: AbortSignal; readChain?: boolean } = {}): Promise<PassResult> {
    const started = now();
    const end = deps.metrics?.reconcileDuration.startTimer();
    try {
      // Read both sides first (at once); any error here aborts the pass before anything is touched.
      const liveImages = new Set<string>();
      const placements = readChain
        ? registry
            .blockNumber({ signal })
            .then((head) => readDesired(Math.max(0, head - deps.confirmations), signal))
        : Promise.resolve([...tracked.values()]);
      const [desired, actual] = await Promise.all([
        placements.then((p) => toDesired(p, liveImages, signal)),
        runtime.list({ deviceId, signal }),
      ]);
      // The engine's start time is read after its containers: had it been read first, an engine
      // restarting in between would show exits newer than the time read, and they would count as
      // the app's own. Read after, the error can only go the other way (an exit counted as the
      // engine's: one more start in place, never a moved replica).
      const engineStartedAt = await runtime.engineStartedAt?.({ signal });
      const checked = withHealth(desired, actual);
      const actions = plan({
        desired: desired.map((d) => ({ ...d, unhealthyRestarts: unhealthyRestarts.get(d.placementId) ?? 0 })),
        actual: checked,
        engineStartedAt,
        now: new Date(now()).toISOString(),
      });
      if (!readChain && actions.some((a) => NEEDS_FRESH_READ.has(a.type)))
        return { actions: [], failed: [], needsChain: true };

      // Drain first: the replicas this pass stops or recreates leave the endpoints before they stop
      // answering. Only replicas kept as they are answer now: a started or recreated one is reported
      // from the next pass on (with the port the engine picked).
      if (deps.onEndpoints) {
        const published = deps.onEndpoints(answering(actions, checked));
        if (actions.some((a) => a.type === "stop" || a.type === "recreate"))
          // Bounded: a broker that does not answer must not keep a replica running.
          await sleep(ENDPOINT_DRAIN_MS, signal, { onWake: (wake) => void published.then(wake, wake) });
      }

      const failed: PassResult["failed"] = [];
      for (const action of actions) {
        const retry = retryAt.get(action.placementId);
        if (retry && retry.at > now() && action.type !== "stop" && action.type !== "keep") continue;
        try {
          await apply(action, tracked.get(action.placementId)?.state, signal);
          if (action.type !== "wait") retryAt.delete(action.placementId);
          if (action.type === "start" || action.type === "recreate" || action.type === "stop") {
            deps.onContainersChanged?.();
          }
        } catch (error) {
          if (signal?.aborted) throw error;
          const delayMs = Math.min(backoff.maxMs, (retry?.delayMs ?? backoff.initialMs / 2) * 2);
          retryAt.set(action.placementId, { at: now() + delayMs, delayMs });
          failed.push({
            placementId: action.placementId,
            error: error instanceof Error ? error.message : String(error),
          });
          logger.warn(
            {
              placementId: action.placementId,
              action: action.type,
              retryInMs: delayMs,
              retryable: isRetryable(error),
              err: error,
            },
            "action failed; the next pass retries it",
          );
        }
      }
      // A deployment network outlives its last container only until the pass that removed it.
      if (
        runtime.pruneNetworks &&
        (!networksPruned || actions.some((a) => a.type === "stop" || a.type === "recreate"))
      ) {
        try {
          const removed = await runtime.pruneNetworks({ deviceId, signal });
          networksPruned = true;
          if (removed.length > 0) logger.info({ networks: removed }, "removed unused deployment networks");
        } catch (error) {
          if (signal?.aborted) throw error;
          logger.warn({ err: error }, "could not remove unused deployment networks; the next pass retries");
        }
      }
      for (const id of [...apps.keys()]) if (!tracked.has(id)) apps.delete(id);
      // After the actions: a container stopped in this pass no longer holds its image.
      if (deps.retention) {
        try {
          await deps.retention.sweep({ live: liveImages, signal });
        } catch (error) {
          if (signal?.aborted) throw error;
          logger.warn({ err: error }, "image retention sweep failed; the next pass retries");
        }
      }
      // A placement that needs no action any more (gone from both sides) needs no retry time.
      const acted = new Set(actions.map((a) => a.placementId));
      for (const id of retryAt.keys()) if (!acted.has(id)) retryAt.delete(id);
      for (const id of unhealthyRestarts.keys()) if (!acted.has(id)) unhealthyRestarts.delete(id);
      if (deps.metrics) {
        deps.metrics.placements.reset();
        for (const p of tracked.values()) deps.metrics.placements.inc({ state: p.state });
      }
      end?.({ result: failed.length ? "partial" : "ok" });
      logger.debug(
        { ms: now() - started, actions: actions.map((a) => `${a.type}:${a.placementId}`) },
        "reconcile pass",
      );
      return { actions, failed };
    } catch (error) {
      end?.({ result: "aborted" });
      throw error;
    }
  }

  /**
   * The running containers with their health: Docker's verdict on exec checks as listed, the
   * prober's on httpGet checks (which this hands the running ones to). A healthy replica's count
   * of unhealthy restarts starts over.
   */
  function withHealth(desired: DesiredPlacement[], actual: ActualContainer[]): ActualContainer[] {
    const specs = new Map(desired.map((d) => [d.placementId, d.container?.spec]));
    const targets: ProbeTarget[] = [];
    const out = actual.map((c) => {
      const probe = specs.get(c.placementId)?.httpProbe;
      if (probe === undefined || c.state !== "running" || c.address === undefined) return c;
      targets.push({
        containerId: c.id,
        placementId: c.placementId,
        address: c.address,
        probe,
        startedAt: c.startedAt,
      });
      return { ...c, health: prober.health(c.id) ?? "starting" };
    });
    prober.sync(targets);
    for (const c of out) if (c.health === "healthy") unhealthyRestarts.delete(c.placementId);
    return out;
  }

  function markDirty(reason: string): void {
    logger.trace({ reason }, "reconcile marked dirty");
    dirty = true;
    chainDirty = true;
    wake?.();
  }

  return {
    markDirty,
    pass,
    async run({ signal }) {
      while (!signal.aborted) {
        if (!dirty) {
          await sleep(deps.intervalMs, signal, { onWake: (w) => (wake = w) });
          wake = undefined;
          if (signal.aborted) break;
        }
        dirty = false;
        const readChain = chainDirty || now() - chainReadAt >= chainResyncMs;
        if (readChain) {
          chainDirty = false;
          chainReadAt = now();
        }
        try {
          // The pass itself is not aborted by shutdown: finish it, then stop (graceful SIGTERM).
          const result = await pass({ readChain });
          if (result.needsChain) {
            chainDirty = true;
            dirty = true;
          }
        } catch (error) {
          if (readChain) chainDirty = true;
          logger.warn(
            { err: error, retryable: isRetryable(error) },
            "reconcile pass aborted; nothing was changed",
          );
          dirty = false;
        }
      }
      prober.close();
    },
  };
}
