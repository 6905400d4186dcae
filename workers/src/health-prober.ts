/**
 * The worker's httpGet health checks (issue 15). An exec check runs inside the container by
 * Docker's own HEALTHCHECK; an httpGet check cannot, because an image need not hold an HTTP client,
 * so the worker makes it: GET http://<container address>:<port><path> from the device's network
 * namespace (where the worker runs), healthy on a 2xx or 3xx answer within the timeout. Redirects
 * are never followed: a probe only ever reaches its own container, whose address the worker takes
 * from the engine, never from the app (the manifest refuses URLs and hosts in the path).
 *
 * Semantics as Docker's HEALTHCHECK: the first check after `intervalS`, `retries` failures in a row
 * make the container unhealthy, failures within `startPeriodS` of its start do not count, one
 * success makes it healthy again. The reconciler hands over the running containers each pass
 * (sync) and reads the verdicts (health); a change of verdict asks for a pass (onChange).
 */
import type { Logger } from "pino";
import type { HttpProbe } from "./domain/container-spec";
import type { ContainerHealth } from "./domain/plan";

export interface ProbeTarget {
  containerId: string;
  placementId: string;
  /** The container's address on its network. */
  address: string;
  probe: HttpProbe;
  /** ISO time the container started (for the start period). */
  startedAt: string | undefined;
}

export interface HealthProber {
  /** The containers to probe from now on; the checks of any others stop. */
  sync(targets: readonly ProbeTarget[]): void;
  /** The verdict on a container so far; undefined when it is not probed. */
  health(containerId: string): ContainerHealth | undefined;
  /** Stops every check. */
  close(): void;
}

export interface HealthProberOptions {
  logger: Logger;
  /** A verdict changed (to healthy or unhealthy): the reconciler should look. */
  onChange: (containerId: string, health: ContainerHealth) => void;
  now?: () => number;
}

interface Probed {
  target: ProbeTarget;
  health: ContainerHealth;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  abort: AbortController;
}

/** One GET: healthy on 2xx or 3xx (not followed) within the timeout. */
export async function probeOnce(
  address: string,
  probe: Pick<HttpProbe, "port" | "path" | "timeoutS">,
  signal?: AbortSignal,
): Promise<{ ok: boolean; detail: string }> {
  const host = address.includes(":") ? `[${address}]` : address;
  const timeout = AbortSignal.timeout(probe.timeoutS * 1000);
  try {
    const response = await fetch(`http://${host}:${probe.port}${probe.path}`, {
      redirect: "manual",
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    await response.body?.cancel();
    return { ok: response.status >= 200 && response.status < 400, detail: `HTTP ${response.status}` };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return { ok: false, detail: cause?.code ?? (error instanceof Error ? error.name : String(error)) };
  }
}

export function createHealthProber({ logger, onChange, now = Date.now }: HealthProberOptions): HealthProber {
  const probed = new Map<string, Probed>();

  function schedule(entry: Probed): void {
    entry.timer = setTimeout(() => void check(entry), entry.target.probe.intervalS * 1000);
    entry.timer.unref();
  }

  async function check(entry: Probed): Promise<void> {
    const { target } = entry;
    const result = await probeOnce(target.address, target.probe, entry.abort.signal);
    if (probed.get(target.containerId) !== entry) return; // dropped while the request ran
    const before = entry.health;
    if (result.ok) {
      entry.failures = 0;
      entry.health = "healthy";
    } else {
      const started = Date.parse(target.startedAt ?? "");
      const inStartPeriod =
        !Number.isNaN(started) && now() < started + target.probe.startPeriodS * 1000 && before === "starting";
      if (!inStartPeriod) entry.failures += 1;
      if (entry.failures >= target.probe.retries) entry.health = "unhealthy";
      logger.debug(
        { placementId: target.placementId, failures: entry.failures, detail: result.detail },
        "http health check failed",
      );
    }
    if (entry.health !== before) {
      logger.info(
        { placementId: target.placementId, containerId: target.containerId, health: entry.health },
        "health changed",
      );
      onChange(target.containerId, entry.health);
    }
    schedule(entry);
  }

  function drop(containerId: string): void {
    const entry = probed.get(containerId);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.abort.abort();
    probed.delete(containerId);
  }

  return {
    sync(targets) {
      const wanted = new Set(targets.map((t) => t.containerId));
      for (const id of [...probed.keys()]) if (!wanted.has(id)) drop(id);
      for (const target of targets) {
        const existing = probed.get(target.containerId);
        if (existing && existing.target.address === target.address) {
          existing.target = target;
          continue;
        }
        drop(target.containerId);
        const entry: Probed = {
          target,
          health: "starting",
          failures: 0,
          timer: undefined,
          abort: new AbortController(),
        };
        probed.set(target.containerId, entry);
        schedule(entry);
      }
    },
    health: (containerId) => probed.get(containerId)?.health,
    close() {
      for (const id of [...probed.keys()]) drop(id);
    },
  };
}
