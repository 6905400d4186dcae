/** Runtime over the Docker Engine API (dockerode). Translates a ContainerSpec, never adds to it. */
import type Docker from "dockerode";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import {
  CPU_PERIOD_US,
  SHOAL_LABELS,
  containerLabels,
  cpuQuotaUs,
  effectiveUser,
  specHash,
} from "../domain/container-spec";
import type { ContainerSpec } from "../domain/container-spec";
import type { ActualContainer, ContainerState } from "../domain/plan";
import {
  RuntimeError,
  type ImageInfo,
  type ImageTag,
  type LoadedImage,
  type ResourceUpdate,
  type Runtime,
  type RuntimeErrorReason,
} from "../ports/runtime";

// The port's error (workers/src/ports/runtime.ts), re-exported for this adapter's users.
export { RuntimeError, type RuntimeErrorReason };

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOENT",
  "EPIPE",
  "ETIMEDOUT",
  "EACCES",
  "EHOSTUNREACH",
]);

/** dockerode error -> RuntimeError: connection errors and 5xx are retryable, 4xx are not. */
export function translateDockerError(action: string, error: unknown): RuntimeError {
  if (error instanceof RuntimeError) return error;
  const e = error as { statusCode?: number; code?: string; name?: string; json?: { message?: string } };
  const engineMessage = e.json?.message ?? (error instanceof Error ? error.message : String(error));
  if (e.name === "AbortError" || e.code === "ABORT_ERR") {
    return new RuntimeError(`${action} was aborted`, { reason: "aborted", cause: error });
  }
  if (e.statusCode === undefined) {
    if (e.code !== undefined && CONNECTION_CODES.has(e.code)) {
      return new RuntimeError(`the Docker Engine is not reachable (${action})`, {
        reason: "unavailable",
        cause: error,
      });
    }
    return new RuntimeError(`the Docker Engine could not ${action}`, { reason: "unavailable", cause: error });
  }
  const status = e.statusCode;
  const reason: RuntimeErrorReason =
    status >= 500 ? "server" : status === 404 ? "not-found" : status === 409 ? "conflict" : "invalid";
  return new RuntimeError(`the Docker Engine could not ${action} (HTTP ${status})`, {
    reason,
    statusCode: status,
    cause: error,
    details: engineMessage,
  });
}

export interface DockerRuntimeOptions {
  docker: Docker;
  /**
   * The engine's unix socket, when the engine runs on this host: dockerd unlinks and creates it
   * when it starts, so its inode change time is the engine's start (engineStartedAt), and unlinks it
   * when it begins to stop. Without it engineStartedAt is unknown.
   */
  socketPath?: string;
  /** Parallel inspects in list(); a device runs tens of containers at most. Default 8. */
  inspectConcurrency?: number;
}

const MiB = 1024 * 1024;

export function createDockerRuntime({
  docker,
  socketPath,
  inspectConcurrency = 8,
}: DockerRuntimeOptions): Runtime {
  async function call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw translateDockerError(action, error);
    }
  }

  async function inspect(id: string, signal?: AbortSignal): Promise<ActualContainer | undefined> {
    try {
      const info = await docker.getContainer(id).inspect({ abortSignal: signal });
      return toActual(info);
    } catch (error) {
      const translated = translateDockerError(`inspect container ${id}`, error);
      if (translated.reason === "not-found") return undefined;
      throw translated;
    }
  }

  async function list(deviceId: string, signal?: AbortSignal): Promise<ActualContainer[]> {
    const summaries = await call(`list the containers of device ${deviceId}`, () =>
      docker.listContainers({
        all: true,
        filters: { label: [`${SHOAL_LABELS.managed}=true`, `${SHOAL_LABELS.device}=${deviceId}`] },
        abortSignal: signal,
      }),
    );
    const out: ActualContainer[] = [];
    // list gives no exit code, OOM flag or limits: inspect each, a few at a time.
    for (let i = 0; i < summaries.length; i += inspectConcurrency) {
      const batch = await Promise.all(
        summaries.slice(i, i + inspectConcurrency).map((s) => inspect(s.Id, signal)),
      );
      for (const container of batch) if (container !== undefined) out.push(container);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async function start(id: string, signal?: AbortSignal): Promise<void> {
    try {
      await docker.getContainer(id).start({ abortSignal: signal });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 304) return; // already running
      throw translateDockerError(`start container ${id}`, error);
    }
  }

  async function stop(id: string, timeoutS: number, signal?: AbortSignal): Promise<void> {
    try {
      await docker.getContainer(id).stop({ t: timeoutS, abortSignal: signal });
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 304 || status === 404) return; // already stopped / gone
      throw translateDockerError(`stop container ${id}`, error);
    }
  }

  async function remove(id: string, signal?: AbortSignal): Promise<void> {
    try {
      await docker.getContainer(id).remove({ force: true, abortSignal: signal });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return;
      throw translateDockerError(`remove container ${id}`, error);
    }
  }

  async function inspectImage(ref: string, signal?: AbortSignal): Promise<ImageInfo | undefined> {
    try {
      // dockerode's Image.inspect takes no abort signal; it is a short local call.
      signal?.throwIfAborted();
      const info = await docker.getImage(ref).inspect();
      return {
        id: info.Id,
        tags: info.RepoTags ?? [],
        os: info.Os,
        architecture: info.Architecture,
        variant: (info as { Variant?: string }).Variant || undefined,
        user: info.Config?.User ?? "",
        size: info.Size,
      };
    } catch (error) {
      const translated = translateDockerError(`inspect image ${ref}`, error);
      if (translated.reason === "not-found") return undefined;
      throw translated;
    }
  }

  /** The deployment's network on this engine, created (labelled, internal or not) when missing. */
  async function ensureNetwork(spec: ContainerSpec, signal?: AbortSignal): Promise<void> {
    const internal = spec.deploymentNetwork?.internal ?? false;
    try {
      const info = (await docker.getNetwork(spec.network).inspect()) as {
        Internal?: boolean;
      };
      if ((info.Internal ?? false) === internal) return;
      throw new RuntimeError(
        `network ${spec.network} exists with internal=${info.Internal ?? false}, not ${internal}`,
        { reason: "conflict", retryable: false },
      );
    } catch (error) {
      if (error instanceof RuntimeError) throw error;
      const translated = translateDockerError(`inspect network ${spec.network}`, error);
      if (translated.reason !== "not-found") throw translated;
    }
    try {
      await docker.createNetwork({
        Name: spec.network,
        Driver: "bridge",
        Internal: internal,
        CheckDuplicate: true,
        Labels: {
          ...spec.extraLabels,
          [SHOAL_LABELS.managed]: "true",
          [SHOAL_LABELS.device]: spec.identity.deviceId,
          [SHOAL_LABELS.deployment]: spec.identity.deploymentId,
        },
        abortSignal: signal,
      });
    } catch (error) {
      const translated = translateDockerError(`create network ${spec.network}`, error);
      if (translated.reason !== "conflict") throw translated; // 409: made meanwhile
    }
  }

  async function create(spec: ContainerSpec, hash: string, signal?: AbortSignal): Promise<void> {
    const image = await inspectImage(spec.image, signal);
    if (image === undefined) {
      throw new RuntimeError(`image ${spec.image} is not loaded; deliver it before starting ${spec.name}`, {
        reason: "not-found",
      });
    }
    const user = effectiveUser(spec, image.user);
    if (!user.ok) {
      throw new RuntimeError(`${spec.name} would not run as a non-root user: ${user.problem}`, {
        reason: "unsafe-user",
      });
    }
    if (spec.deploymentNetwork !== undefined) await ensureNetwork(spec, signal);
    await call(`create container ${spec.name}`, () =>
      docker.createContainer({ ...toCreateOptions(spec, hash, user.user), abortSignal: signal }),
    );
  }

  return {
    async engineStartedAt() {
      if (socketPath === undefined) return undefined;
      try {
        return (await stat(socketPath)).ctime.toISOString();
      } catch (error) {
        // No socket: the engine is stopping or down. A stopping dockerd closes (and unlinks) its
        // listener first, then stops its containers, and still answers on the connections already
        // open (the HTTP client keeps them alive): list() may just have shown a container it
        // stopped. Answering "unknown" here made plan() take that exit for the app's own and end
        // the placement; an error aborts the pass instead, and the pass after the restart sees the
        // new engine's start time.
        throw new RuntimeError(
          `the Docker Engine's socket ${socketPath} is gone: the engine is stopping or not running`,
          { reason: "unavailable", cause: error },
        );
      }
    },

    list: ({ deviceId, signal }) => list(deviceId, signal),

    inspect: (id, options = {}) => inspect(id, options.signal),

    async ensureRunning(spec, options = {}) {
      const { signal } = options;
      const hash = specHash(spec);
      // Two rounds at most: a concurrent create of the same name makes ours fail with 409, and
      // the second round then finds that container.
      for (let round = 0; round < 2; round++) {
        const existing = await inspect(spec.name, signal);
        if (existing !== undefined) {
          if (existing.specHash !== hash) {
            throw new RuntimeError(
              `container ${spec.name} exists with spec hash ${existing.specHash || "(none)"}, not ${hash}; recreate it`,
              { reason: "conflict" },
            );
          }
          if (existing.state === "running") return { container: existing, outcome: "kept" };
          await start(existing.id, signal);
          return { container: await mustInspect(existing.id, signal), outcome: "started" };
        }
        try {
          await create(spec, hash, signal);
        } catch (error) {
          if (error instanceof RuntimeError && error.statusCode === 409) continue;
          throw error;
        }
        await start(spec.name, signal);
        return { container: await mustInspect(spec.name, signal), outcome: "created" };
      }
      throw new RuntimeError(`container ${spec.name} keeps appearing and disappearing`, {
        reason: "conflict",
      });
    },

    start: (id, options = {}) => start(id, options.signal),

    stop: (id, options = {}) => stop(id, options.timeoutS ?? 10, options.signal),

    remove: (id, options = {}) => remove(id, options.signal),

    async updateResources(id, limits: ResourceUpdate, options = {}) {
      if (limits.memoryReservationMiB > limits.memoryMiB) {
        throw new RuntimeError(
          `memory reservation ${limits.memoryReservationMiB} MiB is above the limit ${limits.memoryMiB} MiB`,
          { reason: "invalid" },
        );
      }
      await call(`update the resources of container ${id}`, () =>
        docker.getContainer(id).update({
          CpuPeriod: CPU_PERIOD_US,
          CpuQuota: cpuQuotaUs(limits.cpuMillicores),
          Memory: limits.memoryMiB * MiB,
          // Equal to Memory: no swap. Docker refuses a Memory above the current MemorySwap otherwise.
          MemorySwap: limits.memoryMiB * MiB,
          MemoryReservation: limits.memoryReservationMiB * MiB,
          ...(limits.pidsLimit !== undefined ? { PidsLimit: limits.pidsLimit } : {}),
          abortSignal: options.signal,
        }),
      );
    },

    async pruneNetworks({ deviceId, signal }) {
      const networks = await call(`list the networks of device ${deviceId}`, () =>
        docker.listNetworks({
          filters: { label: [`${SHOAL_LABELS.managed}=true`, `${SHOAL_LABELS.device}=${deviceId}`] },
          abortSignal: signal,
        }),
      );
      const removed: string[] = [];
      for (const network of networks) {
        try {
          const info = (await docker.getNetwork(network.Id).inspect()) as {
            Containers?: Record<string, unknown>;
          };
          if (Object.keys(info.Containers ?? {}).length > 0) continue;
          await docker.getNetwork(network.Id).remove({ abortSignal: signal });
          removed.push(network.Name);
        } catch (error) {
          // Gone meanwhile, or a container joined it since the inspect (403/409): leave it.
          const translated = translateDockerError(`remove network ${network.Name}`, error);
          if (translated.reason === "unavailable" || translated.reason === "server") throw translated;
        }
      }
      return removed;
    },

    async sweep({ deviceId, keep, timeoutS = 10, signal }) {
      const removed: string[] = [];
      for (const container of await list(deviceId, signal)) {
        if (keep.has(container.placementId) && container.placementId !== "") continue;
        await stop(container.id, timeoutS, signal);
        await remove(container.id, signal);
        removed.push(container.id);
      }
      return removed;
    },

    async loadImage(tar, options = {}) {
      const body =
        tar instanceof Readable
          ? tar
          : Readable.from(tar as AsyncIterable<Uint8Array>, { objectMode: false, highWaterMark: MiB });
      const response = await call("load an image", () =>
        docker.loadImage(body, { quiet: true, abortSignal: options.signal }),
      );
      const text = await call("read the result of docker load", () => readAll(response));
      const ids: string[] = [];
      const tags: string[] = [];
      for (const line of text.split("\n")) {
        if (line.trim() === "") continue;
        let message: { stream?: string; error?: string; errorDetail?: { message?: string } };
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          continue;
        }
        if (message.error !== undefined || message.errorDetail !== undefined) {
          throw new RuntimeError("docker load refused the tar: it is not a docker save archive", {
            reason: "image-invalid",
            details: message.errorDetail?.message ?? message.error,
          });
        }
        const stream = message.stream ?? "";
        for (const m of stream.matchAll(/Loaded image ID: (sha256:[0-9a-f]{64})/g)) ids.push(m[1]);
        for (const m of stream.matchAll(/Loaded image: (\S+)/g)) tags.push(m[1]);
      }
      const byId = new Map<string, LoadedImage>();
      for (const id of ids) byId.set(id, byId.get(id) ?? { id, tags: [] });
      for (const tag of tags) {
        const info = await inspectImage(tag, options.signal);
        if (info === undefined) continue;
        const entry = byId.get(info.id) ?? { id: info.id, tags: [] };
        entry.tags.push(tag);
        byId.set(info.id, entry);
      }
      return [...byId.values()];
    },

    inspectImage: (ref, options = {}) => inspectImage(ref, options.signal),

    async imageExists(ref, options = {}) {
      return (await inspectImage(ref, options.signal)) !== undefined;
    },

    async tagImage(ref, target, options = {}) {
      const slash = target.lastIndexOf("/");
      const colon = target.lastIndexOf(":");
      const [repo, tag] =
        colon > slash ? [target.slice(0, colon), target.slice(colon + 1)] : [target, "latest"];
      await call(`tag image ${ref} as ${target}`, () =>
        docker.getImage(ref).tag({ repo, tag, abortSignal: options.signal }),
      );
    },

    async untagImage(ref, options = {}) {
      try {
        await docker.getImage(ref).remove({ noprune: true, abortSignal: options.signal });
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) return;
        throw translateDockerError(`untag image ${ref}`, error);
      }
    },

    async listImageTags(repository, options = {}) {
      const images = await call(`list images of ${repository}`, () =>
        docker.listImages({ filters: { reference: [repository] }, abortSignal: options.signal }),
      );
      const out: ImageTag[] = [];
      for (const image of images) {
        // LastTagTime is only in the inspect answer; an image gone in between is skipped.
        const info = await docker
          .getImage(image.Id)
          .inspect()
          .catch((error: unknown) => {
            if ((error as { statusCode?: number }).statusCode === 404) return undefined;
            throw translateDockerError(`inspect image ${image.Id}`, error);
          });
        const last = (info as { Metadata?: { LastTagTime?: string } } | undefined)?.Metadata?.LastTagTime;
        // Docker reports "0001-01-01T00:00:00Z" for an image never tagged since it was loaded.
        const taggedAt = last && !last.startsWith("0001-") ? last : undefined;
        for (const tag of image.RepoTags ?? []) {
          if (tag.startsWith(`${repository}:`)) out.push({ tag, imageId: image.Id, taggedAt });
        }
      }
      return out;
    },

    async containersUsingImage(ref, options = {}) {
      // Docker resolves the reference first: no such image, no container made from it.
      if ((await inspectImage(ref, options.signal)) === undefined) return 0;
      const containers = await call(`list containers of image ${ref}`, () =>
        docker.listContainers({ all: true, filters: { ancestor: [ref] }, abortSignal: options.signal }),
      );
      return containers.length;
    },
  };

  async function mustInspect(id: string, signal?: AbortSignal): Promise<ActualContainer> {
    const container = await inspect(id, signal);
    if (container === undefined) {
      throw new RuntimeError(`container ${id} disappeared right after it was started`, {
        reason: "conflict",
      });
    }
    return container;
  }
}

/** The Docker create body of a spec: a field-by-field translation, nothing added. */
export function toCreateOptions(
  spec: ContainerSpec,
  hash: string,
  user: string,
): Docker.ContainerCreateOptions {
  const h = spec.hardening;
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const port of spec.ports) {
    const key = `${port.containerPort}/${port.protocol}`;
    exposed[key] = {};
    // HostPort a range: the engine picks a free port in the owner's range.
    bindings[key] = [{ HostIp: port.hostIp, HostPort: port.hostPorts }];
  }
  // CgroupnsMode (API 1.41) is missing from @types/dockerode's HostConfig.
  const hostConfig: Docker.HostConfig & { CgroupnsMode: string } = {
    Privileged: h.privileged,
    ReadonlyRootfs: h.readonlyRootfs,
    CapDrop: [...h.capDrop],
    CapAdd: [],
    SecurityOpt: [...h.securityOpt],
    IpcMode: h.ipcMode,
    CgroupnsMode: h.cgroupnsMode,
    PidMode: h.pidMode,
    UsernsMode: h.usernsMode,
    UTSMode: h.utsMode,
    Binds: [...h.hostMounts],
    Mounts: [],
    Devices: [],
    Tmpfs: Object.fromEntries(spec.tmpfs.map((t) => [t.path, t.options])),
    NetworkMode: spec.network,
    PortBindings: bindings,
    PublishAllPorts: false,
    CpuPeriod: CPU_PERIOD_US,
    CpuQuota: cpuQuotaUs(spec.limits.cpuMillicores),
    CpuShares: spec.cpuShares,
    Memory: spec.limits.memoryMiB * MiB,
    MemorySwap: spec.limits.memoryMiB * MiB,
    MemoryReservation: spec.limits.memoryReservationMiB * MiB,
    PidsLimit: spec.pidsLimit,
    // Restarts are plan()'s decision (restartPolicy), made where they can be reported.
    RestartPolicy: { Name: "no" },
    LogConfig: {
      Type: "json-file",
      Config: { "max-size": `${spec.logging.maxSizeMiB}m`, "max-file": String(spec.logging.maxFiles) },
    },
    ...(spec.cgroupParent !== undefined ? { CgroupParent: spec.cgroupParent } : {}),
  };
  const options: Docker.ContainerCreateOptions = {
    name: spec.name,
    Image: spec.image,
    Env: Object.entries(spec.env).map(([key, value]) => `${key}=${value}`),
    User: user,
    Labels: containerLabels(spec, hash),
    ExposedPorts: exposed,
    StopTimeout: spec.stopTimeoutS,
    HostConfig: hostConfig,
  };
  if (spec.entrypoint !== undefined) options.Entrypoint = spec.entrypoint;
  if (spec.cmd !== undefined) options.Cmd = spec.cmd;
  if (spec.healthCheck !== undefined) {
    const s = 1_000_000_000;
    options.Healthcheck = {
      Test: spec.healthCheck.test,
      Interval: spec.healthCheck.intervalS * s,
      Timeout: spec.healthCheck.timeoutS * s,
      Retries: spec.healthCheck.retries,
      StartPeriod: spec.healthCheck.startPeriodS * s,
    };
  }
  return options;
}

const STATES: readonly ContainerState[] = ["running", "exited", "created", "restarting", "paused", "dead"];

function toActual(info: Docker.ContainerInspectInfo): ActualContainer {
  const labels = info.Config.Labels ?? {};
  const host = info.HostConfig;
  const status = info.State.Status as ContainerState;
  const period = host.CpuPeriod || CPU_PERIOD_US;
  const cpuMillicores =
    host.CpuQuota !== undefined && host.CpuQuota > 0
      ? Math.round((host.CpuQuota * 1000) / period)
      : host.NanoCpus
        ? Math.round(host.NanoCpus / 1_000_000)
        : 0;
  const ports: ActualContainer["ports"] = [];
  for (const [key, bindings] of Object.entries(info.NetworkSettings.Ports ?? {})) {
    const [port, protocol] = key.split("/");
    for (const binding of bindings ?? []) {
      ports.push({
        containerPort: Number(port),
        protocol: protocol === "udp" ? "udp" : "tcp",
        hostIp: binding.HostIp,
        hostPort: Number(binding.HostPort),
      });
    }
  }
  const health = (info.State as { Health?: { Status?: string } }).Health?.Status;
  const address = Object.values(info.NetworkSettings.Networks ?? {})
    .map((n) => n.IPAddress)
    .find((ip) => ip !== undefined && ip !== "");
  const never = (time: string | undefined) =>
    time === undefined || time.startsWith("0001-") ? undefined : time;
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ""),
    deviceId: labels[SHOAL_LABELS.device] ?? "",
    placementId: labels[SHOAL_LABELS.placement] ?? "",
    deploymentId: labels[SHOAL_LABELS.deployment] ?? "",
    appId: labels[SHOAL_LABELS.app] ?? "",
    version: labels[SHOAL_LABELS.version] ?? "",
    specHash: labels[SHOAL_LABELS.specHash] ?? "",
    state: STATES.includes(status) ? status : "unknown",
    // A start the engine refused (the command does not exist, say) leaves the container "created"
    // with the attempt's exit code (127, 126) and no finish time: an exit all the same.
    exitCode:
      never(info.State.FinishedAt) !== undefined || (status === "created" && info.State.ExitCode !== 0)
        ? info.State.ExitCode
        : undefined,
    oomKilled: info.State.OOMKilled,
    createdAt: never(info.Created),
    startedAt: never(info.State.StartedAt),
    finishedAt: never(info.State.FinishedAt),
    limits: {
      cpuMillicores,
      memoryMiB: Math.round((host.Memory ?? 0) / MiB),
      memoryReservationMiB: Math.round((host.MemoryReservation ?? 0) / MiB),
      pidsLimit: host.PidsLimit ?? undefined,
    },
    ports: ports.sort((a, b) => a.containerPort - b.containerPort),
    ...(health === "starting" || health === "healthy" || health === "unhealthy" ? { health } : {}),
    ...(address !== undefined ? { address } : {}),
  };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8");
}
