import type { ContainerSpec, ResourceLimits } from "./container-spec";

/**
 * plan(): what to do with each placement of one device, from what should run (chain) and what does
 * run (Docker, by label). Pure, like Nomad's diffAllocs and kubelet's computePodActions: the
 * reconciler applies each action on its own, keeps going when one fails, and lets the next pass
 * retry (backoff lives in the reconciler, keyed by placement).
 *
 * Rules, in order, for each placement:
 * - several containers for one placement: keep the best one (running with the desired hash, then
 *   running, then the desired hash, then the newest) and stop the others;
 * - desired but its spec is not known yet (manifest or image unavailable): touch nothing that runs;
 * - desired, no container: start;
 * - spec hash differs: recreate (stop, remove, then start: never two instances at once);
 * - state unknown (or removing), dead, restarting or paused: recreate (stop before starting again);
 * - running but unhealthy (its health check failed `retries` times in a row): restart it (recreate),
 *   unless its restartPolicy is never or it was already restarted HEALTH_RESTARTS_BEFORE_FAILED
 *   times for being unhealthy without a healthy check since: then report HealthCheckFailed;
 * - running: keep;
 * - created (never started, e.g. the worker died between create and start): restart; created
 *   with a non-zero exit code (the engine refused to start it): StartFailed under restartPolicy
 *   never, else restart;
 * - exited because its engine stopped or restarted (see `stoppedByEngine`): restart in place, whatever
 *   the restart policy and exit code say: the app did not end, its engine ended it;
 * - exited: by the restart policy and the exit, see `exitedAction`;
 * - container without a desired placement: stop (and remove).
 * Stop actions come first in the result, so a sequential applier never runs two instances.
 */

/** Container states as the runtime reports them. */
export type ContainerState = "running" | "exited" | "created" | "restarting" | "paused" | "dead" | "unknown";

/** One Shoal container as the runtime sees it (Runtime.list). */
export interface ActualContainer {
  id: string;
  name: string;
  deviceId: string;
  /** "" when the label is missing: such a container is never desired. */
  placementId: string;
  deploymentId: string;
  appId: string;
  version: string;
  specHash: string;
  state: ContainerState;
  /** Exit code of the last run, or of a start the engine refused; undefined while it has never exited. */
  exitCode: number | undefined;
  oomKilled: boolean;
  /** ISO times from the runtime; undefined when never started / never finished. */
  createdAt: string | undefined;
  startedAt: string | undefined;
  finishedAt: string | undefined;
  limits: ResourceLimits & { pidsLimit: number | undefined };
  ports: { containerPort: number; protocol: "tcp" | "udp"; hostIp: string; hostPort: number }[];
  /**
   * Health by the container's check: Docker's own HEALTHCHECK (exec), or the worker's HTTP probe
   * (httpGet, overlaid by the reconciler). undefined when the container has no check.
   */
  health?: ContainerHealth;
  /** The container's address on its network (what the worker's HTTP probe targets); undefined when none. */
  address?: string;
}

export type ContainerHealth = "starting" | "healthy" | "unhealthy";

/**
 * Restarts of a replica for being unhealthy, without a healthy check in between, after which the
 * next unhealthy verdict ends the placement as Failed(HealthCheckFailed) instead: the replica is
 * started 1 + 2 = 3 times, and unhealthy each time, before the device gives it up.
 */
export const HEALTH_RESTARTS_BEFORE_FAILED = 2;

export interface DesiredPlacement {
  placementId: string;
  /**
   * The container to run and its hash; undefined while the manifest or image cannot be had (Kubo
   * unreachable, say). Then an existing container is left as it is and nothing is started.
   */
  container?: { spec: ContainerSpec; specHash: string };
  /** Restarts for being unhealthy since the replica was last healthy (the reconciler counts them). */
  unhealthyRestarts?: number;
}

/** Failure codes plan() reports; a subset of the chain's FailureCode. */
export type PlanFailureCode = "OOMKilled" | "StartFailed" | "HealthCheckFailed";

export type PlanAction =
  /** No container: create and start one (Runtime.ensureRunning). */
  | { type: "start"; placementId: string; spec: ContainerSpec; specHash: string }
  /** Running with the desired spec. */
  | { type: "keep"; placementId: string; containerId: string }
  /** Start the existing container again (same spec); `exitCode` is undefined for a created one never tried. */
  | {
      type: "restart";
      placementId: string;
      containerId: string;
      exitCode: number | undefined;
      reason: string;
    }
  /** Stop and remove the container, then start one from `spec`; `unhealthy` when its health check failed. */
  | {
      type: "recreate";
      placementId: string;
      containerId: string;
      spec: ContainerSpec;
      specHash: string;
      reason: string;
      unhealthy?: true;
    }
  /** Stop and remove the container: its placement is not desired here, or it is a duplicate. */
  | { type: "stop"; placementId: string; containerId: string; reason: "not-desired" | "duplicate" }
  /**
   * Report Failed(code) on chain; the container stays (stopped) for inspection until the placement
   * goes. A HealthCheckFailed container may still run: the reconciler stops it first.
   */
  | {
      type: "report-failure";
      placementId: string;
      containerId: string;
      code: PlanFailureCode;
      reason: string;
    }
  /** Exited 0 under on-failure or never: the app finished; the reconciler releases the placement. */
  | { type: "complete"; placementId: string; containerId: string }
  /** Nothing can be done this pass: the spec is not known yet. */
  | { type: "wait"; placementId: string; containerId: string | undefined; reason: string };

export type PlanActionType = PlanAction["type"];
type StopAction = Extract<PlanAction, { type: "stop" }>;

export interface PlanInput {
  desired: readonly DesiredPlacement[];
  actual: readonly ActualContainer[];
  /**
   * When the engine that now answers started (ISO time; Runtime.engineStartedAt); undefined when
   * the runtime cannot tell, and then every exit counts as the app's own.
   */
  engineStartedAt?: string;
  /** The time of this pass (ISO); with engineStartedAt it holds back exits that may be a shutdown's. */
  now?: string;
}

/**
 * How long an exit that would end a placement (complete, report-failure) waits before it counts as
 * the app's own. An engine that stops answers the API while it stops its containers, each within
 * its stop timeout (10 s by default), so an app that exits at once on the engine's SIGTERM is seen
 * exited under the engine that is going away. Once the engine is back, its new start time makes
 * the exit the engine's (stoppedByEngine); an engine still up after this window did not stop.
 */
export const ENGINE_SHUTDOWN_SETTLE_MS = 15_000;

/**
 * How long after an engine starts an exit may still be its doing: an engine that starts without
 * live-restore stops the containers it finds still running while it restores them, a few seconds
 * after it starts (60 s leaves room for a slow disk and many containers).
 */
export const ENGINE_RESTORE_GRACE_MS = 60_000;

/**
 * Whether a container's last exit was its engine's doing (the engine stopped, or restarted
 * without live-restore) rather than the app's: the container was started by an earlier engine
 * (startedAt before the engine now running started) and exited no later than that engine's
 * restore (finishedAt before engineStartedAt + ENGINE_RESTORE_GRACE_MS). An OOM kill is the
 * kernel's verdict on the app and never counts. Docker records no cause for an exit; this reads it
 * from Docker's own times. An app that ends on its own in the last moments before its engine stops
 * counts as stopped by the engine: it is started once more and, when it ends again, handled as
 * usual; the opposite mistake would move a healthy replica to another device.
 */
export function stoppedByEngine(
  container: Pick<ActualContainer, "state" | "startedAt" | "finishedAt" | "oomKilled">,
  engineStartedAt: string | undefined,
): boolean {
  if (container.state !== "exited" || container.oomKilled || engineStartedAt === undefined) return false;
  if (container.startedAt === undefined || container.finishedAt === undefined) return false;
  const engine = Date.parse(engineStartedAt);
  const started = Date.parse(container.startedAt);
  const finished = Date.parse(container.finishedAt);
  if ([engine, started, finished].some(Number.isNaN)) return false;
  return started < engine && finished < engine + ENGINE_RESTORE_GRACE_MS;
}

export function plan({ desired, actual, engineStartedAt, now }: PlanInput): PlanAction[] {
  const byPlacement = new Map<string, ActualContainer[]>();
  for (const container of actual) {
    const list = byPlacement.get(container.placementId) ?? [];
    list.push(container);
    byPlacement.set(container.placementId, list);
  }
  const stops: StopAction[] = [];
  const others: PlanAction[] = [];
  const desiredIds = new Set<string>();

  for (const placement of [...desired].sort((a, b) => compareIds(a.placementId, b.placementId))) {
    if (desiredIds.has(placement.placementId)) continue;
    desiredIds.add(placement.placementId);
    const containers = byPlacement.get(placement.placementId) ?? [];
    const keeper = pickKeeper(containers, placement.container?.specHash);
    for (const extra of containers) {
      if (extra !== keeper) {
        stops.push({
          type: "stop",
          placementId: placement.placementId,
          containerId: extra.id,
          reason: "duplicate",
        });
      }
    }
    others.push(placementAction(placement, keeper, engineStartedAt, now));
  }

  for (const container of actual) {
    if (desiredIds.has(container.placementId) && container.placementId !== "") continue;
    stops.push({
      type: "stop",
      placementId: container.placementId,
      containerId: container.id,
      reason: "not-desired",
    });
  }
  stops.sort(
    (a, b) => compareIds(a.placementId, b.placementId) || compareStrings(a.containerId, b.containerId),
  );
  return [...stops, ...others];
}

function placementAction(
  placement: DesiredPlacement,
  container: ActualContainer | undefined,
  engineStartedAt: string | undefined,
  now: string | undefined,
): PlanAction {
  const { placementId } = placement;
  const want = placement.container;
  if (want === undefined) {
    return {
      type: "wait",
      placementId,
      containerId: container?.id,
      reason: "the placement's manifest or image is not available yet",
    };
  }
  if (container === undefined)
    return { type: "start", placementId, spec: want.spec, specHash: want.specHash };
  const recreate = (reason: string): PlanAction => ({
    type: "recreate",
    placementId,
    containerId: container.id,
    spec: want.spec,
    specHash: want.specHash,
    reason,
  });
  if (container.specHash !== want.specHash)
    return recreate(`spec hash ${container.specHash || "(none)"} is not the desired ${want.specHash}`);
  switch (container.state) {
    case "running":
      if (container.health === "unhealthy") return unhealthyAction(placement, container, want.spec);
      return { type: "keep", placementId, containerId: container.id };
    case "created":
      if (container.exitCode !== undefined && container.exitCode !== 0)
        return refusedAction(placementId, container, want.spec);
      return {
        type: "restart",
        placementId,
        containerId: container.id,
        exitCode: undefined,
        reason: "created but never started",
      };
    case "exited":
      if (stoppedByEngine(container, engineStartedAt))
        return {
          type: "restart",
          placementId,
          containerId: container.id,
          exitCode: container.exitCode,
          reason: `stopped by its engine (exited with ${container.exitCode ?? -1} at ${container.finishedAt}; the engine started at ${engineStartedAt}): started again in place`,
        };
      return settled(exitedAction(placementId, container, want.spec), container, engineStartedAt, now);
    default:
      // unknown (including "removing"), dead, restarting, paused: stop before starting again.
      return recreate(`state ${container.state}: stop before starting again`);
  }
}

/** Holds back an exit that would end the placement until ENGINE_SHUTDOWN_SETTLE_MS have passed. */
function settled(
  action: PlanAction,
  container: ActualContainer,
  engineStartedAt: string | undefined,
  now: string | undefined,
): PlanAction {
  if (action.type !== "complete" && action.type !== "report-failure") return action;
  if (engineStartedAt === undefined || now === undefined || container.oomKilled) return action;
  const finished = Date.parse(container.finishedAt ?? "");
  if (Number.isNaN(finished) || Date.parse(now) >= finished + ENGINE_SHUTDOWN_SETTLE_MS) return action;
  return {
    type: "wait",
    placementId: action.placementId,
    containerId: container.id,
    reason: `exited at ${container.finishedAt}; its engine may be stopping, so the exit counts as the app's from ${new Date(finished + ENGINE_SHUTDOWN_SETTLE_MS).toISOString()}`,
  };
}

/**
 * An exited container with the desired spec. An OOM kill at the band's max memory means the app
 * does not fit what it declared: report OOMKilled. Below the max the resource manager had shrunk
 * the limit, so it counts as an ordinary failure and the restart policy decides.
 */
function exitedAction(placementId: string, container: ActualContainer, spec: ContainerSpec): PlanAction {
  const containerId = container.id;
  const exitCode = container.exitCode ?? -1;
  const policy = spec.restartPolicy;
  if (container.oomKilled && (container.limits.memoryMiB >= spec.band.memoryMiBMax || policy === "never")) {
    return {
      type: "report-failure",
      placementId,
      containerId,
      code: "OOMKilled",
      reason: `killed for running out of memory at ${container.limits.memoryMiB} MiB (band max ${spec.band.memoryMiBMax} MiB)`,
    };
  }
  const failed = exitCode !== 0 || container.oomKilled;
  if (policy === "always" || (policy === "on-failure" && failed)) {
    return {
      type: "restart",
      placementId,
      containerId,
      exitCode: container.exitCode,
      reason: `exited with ${exitCode}${container.oomKilled ? " (OOM killed)" : ""}; restartPolicy ${policy}`,
    };
  }
  if (!failed) return { type: "complete", placementId, containerId };
  return {
    type: "report-failure",
    placementId,
    containerId,
    code: "StartFailed",
    reason: `exited with ${exitCode}; restartPolicy never`,
  };
}

/**
 * A running replica whose health check failed `retries` times in a row. Restarted like an exit
 * (the app is not doing its work), as a new container so its check starts over, unless the
 * restart policy is never or it was restarted for this HEALTH_RESTARTS_BEFORE_FAILED times without
 * a healthy check since: then the device reports HealthCheckFailed.
 */
function unhealthyAction(
  placement: DesiredPlacement,
  container: ActualContainer,
  spec: ContainerSpec,
): PlanAction {
  const { placementId } = placement;
  const restarts = placement.unhealthyRestarts ?? 0;
  if (spec.restartPolicy === "never" || restarts >= HEALTH_RESTARTS_BEFORE_FAILED) {
    return {
      type: "report-failure",
      placementId,
      containerId: container.id,
      code: "HealthCheckFailed",
      reason:
        spec.restartPolicy === "never"
          ? "unhealthy; restartPolicy never"
          : `unhealthy after ${restarts} restarts for failed health checks`,
    };
  }
  return {
    type: "recreate",
    placementId,
    containerId: container.id,
    spec,
    specHash: placement.container!.specHash,
    reason: `unhealthy (restart ${restarts + 1} of ${HEALTH_RESTARTS_BEFORE_FAILED}; restartPolicy ${spec.restartPolicy})`,
    unhealthy: true,
  };
}

/**
 * A created container with a non-zero exit code: the engine refused to start it (its command does
 * not exist or is not executable: 127, 126). Under restartPolicy never that is the app failing to
 * start; otherwise it is started again, each failed attempt backing off in the reconciler.
 */
function refusedAction(placementId: string, container: ActualContainer, spec: ContainerSpec): PlanAction {
  const reason = `the engine could not start it (exit ${container.exitCode}); restartPolicy ${spec.restartPolicy}`;
  if (spec.restartPolicy === "never")
    return { type: "report-failure", placementId, containerId: container.id, code: "StartFailed", reason };
  return { type: "restart", placementId, containerId: container.id, exitCode: container.exitCode, reason };
}

/** The container to keep among those of one placement. */
function pickKeeper(
  containers: readonly ActualContainer[],
  wantedHash: string | undefined,
): ActualContainer | undefined {
  if (containers.length <= 1) return containers[0];
  const rank = (c: ActualContainer) =>
    c.state === "running" && c.specHash === wantedHash
      ? 0
      : c.state === "running"
        ? 1
        : c.specHash === wantedHash
          ? 2
          : 3;
  return [...containers].sort(
    (a, b) =>
      rank(a) - rank(b) ||
      // Newest first: ISO times compare as strings.
      compareStrings(b.createdAt ?? "", a.createdAt ?? "") ||
      compareStrings(a.id, b.id),
  )[0];
}

/** Decimal ids by value, then anything else as strings. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || compareStrings(a, b);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
