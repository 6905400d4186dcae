/**
 * An in-memory container runtime for hollow devices (Kubemark's hollow nodes): it keeps containers
 * and images as records and runs no process. It implements the whole Runtime port with the Docker
 * adapter's semantics (idempotent calls, spec-hash conflicts, the non-root user rule, label
 * ownership), so the real reconciler and delivery drive it unchanged; only what a process would do
 * (serve a port, exit, get OOM-killed) never happens. Published ports get a host port number that
 * nothing listens on.
 *
 * Images come in as `docker save` tars, read here (manifest.json and the image config; layers are
 * skipped): a hollow device still fetches the tar from its content store and checks its platform.
 * hollowImageTar() makes the smallest such tar, for benches and tests.
 */
import { createHash } from "node:crypto";
import { effectiveUser, specHash, type ContainerSpec } from "../domain/container-spec";
import type { ActualContainer } from "../domain/plan";
import {
  RuntimeError,
  type EnsureRunningResult,
  type ImageInfo,
  type LoadedImage,
  type ResourceUpdate,
  type Runtime,
} from "../ports/runtime";

export interface MemoryRuntimeOptions {
  /** Largest image tar loadImage accepts (the tar is held in memory). Default 16 MiB. */
  maxImageBytes?: number;
}

interface ImageRecord {
  info: Omit<ImageInfo, "tags">;
}

interface ContainerRecord {
  container: ActualContainer;
  /** The id of the image it was created from. */
  imageId: string;
}

const BLOCK = 512;

/** The Runtime port, plus a synchronous look at every container (for progress lines and checks). */
export interface MemoryRuntime extends Runtime {
  /** Every container of every device id, as copies. */
  all(): ActualContainer[];
}

/** The runtime; every instance has its own containers and images (one per hollow device). */
export function createMemoryRuntime(options: MemoryRuntimeOptions = {}): MemoryRuntime {
  const maxImageBytes = options.maxImageBytes ?? 16 * 1024 * 1024;
  const images = new Map<string, ImageRecord>();
  /** repo:tag -> image id */
  const tags = new Map<string, string>();
  /** repo:tag -> when it was set */
  const taggedAt = new Map<string, string>();
  const containers = new Map<string, ContainerRecord>();
  let nextPort = 40_000;
  let sequence = 0;

  const now = () => new Date().toISOString();
  const aborted = (signal?: AbortSignal) => {
    if (signal?.aborted)
      throw new RuntimeError("the runtime call was aborted", { reason: "aborted", cause: signal.reason });
  };
  const imageOf = (ref: string): ImageRecord | undefined => images.get(tags.get(ref) ?? normalize(ref));
  const tagsOf = (id: string) => [...tags].filter(([, image]) => image === id).map(([tag]) => tag);
  const find = (idOrName: string) =>
    containers.get(idOrName) ?? [...containers.values()].find((c) => c.container.name === idOrName);
  const copy = (c: ActualContainer): ActualContainer => ({
    ...c,
    limits: { ...c.limits },
    ports: c.ports.map((p) => ({ ...p })),
  });

  function create(spec: ContainerSpec, hash: string): ContainerRecord {
    const image = imageOf(spec.image);
    if (image === undefined) {
      throw new RuntimeError(`image ${spec.image} is not loaded; deliver it before starting ${spec.name}`, {
        reason: "not-found",
      });
    }
    const user = effectiveUser(spec, image.info.user);
    if (!user.ok) {
      throw new RuntimeError(`${spec.name} would not run as a non-root user: ${user.problem}`, {
        reason: "unsafe-user",
      });
    }
    const id = createHash("sha256").update(`${spec.name} ${++sequence} ${process.pid}`).digest("hex");
    const record: ContainerRecord = {
      container: {
        id,
        name: spec.name,
        deviceId: spec.identity.deviceId,
        placementId: spec.identity.placementId,
        deploymentId: spec.identity.deploymentId,
        appId: spec.identity.appId,
        version: spec.identity.version,
        specHash: hash,
        state: "created",
        exitCode: undefined,
        oomKilled: false,
        createdAt: now(),
        startedAt: undefined,
        finishedAt: undefined,
        limits: { ...spec.limits, pidsLimit: spec.pidsLimit },
        ports: spec.ports.map((p) => ({ ...p, hostPort: nextPort++ })),
      },
      imageId: image.info.id,
    };
    containers.set(id, record);
    return record;
  }

  function start(record: ContainerRecord): void {
    if (record.container.state === "running") return;
    record.container.state = "running";
    record.container.startedAt = now();
    record.container.exitCode = undefined;
  }

  function stop(record: ContainerRecord): void {
    if (record.container.state !== "running") return;
    record.container.state = "exited";
    // A process that takes SIGTERM well exits 0.
    record.container.exitCode = 0;
    record.container.finishedAt = now();
  }

  return {
    all: () => [...containers.values()].map((c) => copy(c.container)),

    async list({ deviceId, signal }) {
      aborted(signal);
      return [...containers.values()]
        .filter((c) => c.container.deviceId === deviceId)
        .map((c) => copy(c.container));
    },

    async inspect(id, { signal } = {}) {
      aborted(signal);
      const record = find(id);
      return record && copy(record.container);
    },

    async ensureRunning(spec, { signal } = {}): Promise<EnsureRunningResult> {
      aborted(signal);
      const hash = specHash(spec);
      const existing = find(spec.name);
      if (existing !== undefined && existing.container.specHash !== hash) {
        throw new RuntimeError(
          `${spec.name} exists with spec ${existing.container.specHash}, not ${hash}; recreate it`,
          { reason: "conflict" },
        );
      }
      const record = existing ?? create(spec, hash);
      const outcome =
        existing === undefined ? "created" : existing.container.state === "running" ? "kept" : "started";
      start(record);
      return { container: copy(record.container), outcome };
    },

    async start(id, { signal } = {}) {
      aborted(signal);
      const record = find(id);
      if (record === undefined)
        throw new RuntimeError(`container ${id} does not exist`, { reason: "not-found" });
      start(record);
    },

    async stop(id, { signal } = {}) {
      aborted(signal);
      const record = find(id);
      if (record !== undefined) stop(record);
    },

    async remove(id, { signal } = {}) {
      aborted(signal);
      const record = find(id);
      if (record !== undefined) containers.delete(record.container.id);
    },

    async updateResources(id, limits: ResourceUpdate, { signal } = {}) {
      aborted(signal);
      const record = find(id);
      if (record === undefined)
        throw new RuntimeError(`container ${id} does not exist`, { reason: "not-found" });
      if (limits.memoryReservationMiB > limits.memoryMiB) {
        throw new RuntimeError(
          `memory reservation ${limits.memoryReservationMiB} MiB is above the limit ${limits.memoryMiB} MiB`,
          { reason: "invalid" },
        );
      }
      record.container.limits = {
        cpuMillicores: limits.cpuMillicores,
        memoryMiB: limits.memoryMiB,
        memoryReservationMiB: limits.memoryReservationMiB,
        pidsLimit: limits.pidsLimit ?? record.container.limits.pidsLimit,
      };
    },

    async sweep({ deviceId, keep, signal }) {
      aborted(signal);
      const removed: string[] = [];
      for (const { container } of [...containers.values()]) {
        if (container.deviceId !== deviceId || keep.has(container.placementId)) continue;
        containers.delete(container.id);
        removed.push(container.id);
      }
      return removed;
    },

    async loadImage(tar, { signal } = {}): Promise<LoadedImage[]> {
      aborted(signal);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of tar as AsyncIterable<Uint8Array>) {
        aborted(signal);
        size += chunk.byteLength;
        if (size > maxImageBytes) {
          throw new RuntimeError(`the image tar is larger than the ${maxImageBytes} bytes allowed`, {
            reason: "image-invalid",
          });
        }
        chunks.push(Buffer.from(chunk));
      }
      const loaded = readImageTar(Buffer.concat(chunks));
      for (const image of loaded) {
        images.set(image.info.id, { info: image.info });
        for (const tag of image.tags) tags.set(tag, image.info.id);
      }
      return loaded.map((image) => ({ id: image.info.id, tags: image.tags }));
    },

    async inspectImage(ref, { signal } = {}) {
      aborted(signal);
      const image = imageOf(ref);
      return image && { ...image.info, tags: tagsOf(image.info.id) };
    },

    async imageExists(ref, { signal } = {}) {
      aborted(signal);
      return imageOf(ref) !== undefined;
    },

    async tagImage(ref, target, { signal } = {}) {
      aborted(signal);
      const image = imageOf(ref);
      if (image === undefined) throw new RuntimeError(`image ${ref} is not loaded`, { reason: "not-found" });
      tags.set(normalize(target), image.info.id);
      taggedAt.set(normalize(target), now());
    },

    async untagImage(ref, { signal } = {}) {
      aborted(signal);
      const name = normalize(ref);
      taggedAt.delete(name);
      if (tags.delete(name)) return;
      // An id: the image goes when no tag is left (Docker refuses a tagged one without force).
      if (images.has(name) && tagsOf(name).length === 0) images.delete(name);
    },

    async listImageTags(repository, { signal } = {}) {
      aborted(signal);
      return [...tags]
        .filter(([tag]) => tag.startsWith(`${repository}:`))
        .map(([tag, imageId]) => ({ tag, imageId, taggedAt: taggedAt.get(tag) }));
    },

    async containersUsingImage(ref, { signal } = {}) {
      aborted(signal);
      const image = imageOf(ref);
      if (image === undefined) return 0;
      return [...containers.values()].filter((c) => c.imageId === image.info.id).length;
    },
  };
}

/** "repo" means "repo:latest", as in Docker; ids stay as they are. */
function normalize(ref: string): string {
  if (ref.startsWith("sha256:")) return ref;
  const slash = ref.lastIndexOf("/");
  return ref.slice(slash + 1).includes(":") ? ref : `${ref}:latest`;
}

export interface HollowImageOptions {
  /** Default "linux/amd64". */
  platform?: string;
  /** The image's USER. Default "10001:10001". */
  user?: string;
  /** repo:tag references the tar carries. Default none (an image saved by id). */
  repoTags?: string[];
  /** Makes the image id differ between images of the same platform and user. */
  label?: string;
}

/** The smallest `docker save` tar: a manifest and an image config, no layers. */
export function hollowImageTar(options: HollowImageOptions = {}): Buffer {
  const [os, architecture, variant] = (options.platform ?? "linux/amd64").split("/");
  const config = Buffer.from(
    JSON.stringify({
      architecture,
      os,
      ...(variant ? { variant } : {}),
      config: { User: options.user ?? "10001:10001", Labels: { "dev.shoal.hollow": options.label ?? "" } },
      rootfs: { type: "layers", diff_ids: [] },
    }),
  );
  const digest = createHash("sha256").update(config).digest("hex");
  const manifest = Buffer.from(
    JSON.stringify([{ Config: `${digest}.json`, RepoTags: options.repoTags ?? [], Layers: [] }]),
  );
  return Buffer.concat([
    tarEntry("manifest.json", manifest),
    tarEntry(`${digest}.json`, config),
    Buffer.alloc(2 * BLOCK),
  ]);
}

function tarEntry(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, "utf8");
  header.write("0000644\0", 100);
  header.write("0000000\0", 108);
  header.write("0000000\0", 116);
  header.write(`${content.length.toString(8).padStart(11, "0")}\0`, 124);
  header.write("00000000000\0", 136);
  header.write("        ", 148);
  header.write("0", 156);
  header.write("ustar\0", 257);
  header.write("00", 263);
  const sum = header.reduce((total, byte) => total + byte, 0);
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  const padding = (BLOCK - (content.length % BLOCK)) % BLOCK;
  return Buffer.concat([header, content, Buffer.alloc(padding)]);
}

function invalid(problem: string): RuntimeError {
  return new RuntimeError(`not a docker save image tar: ${problem}`, { reason: "image-invalid" });
}

/** The images of a `docker save` tar (docker and OCI layouts name the config file differently). */
function readImageTar(tar: Buffer): { info: Omit<ImageInfo, "tags">; tags: string[] }[] {
  const files = new Map<string, Buffer>();
  for (let offset = 0; offset + BLOCK <= tar.length;) {
    const header = tar.subarray(offset, offset + BLOCK);
    if (header.every((byte) => byte === 0)) break;
    const stored = parseInt(header.subarray(148, 156).toString("latin1").replace(/\0.*$/, "").trim(), 8);
    const sum = header.reduce((total, byte, i) => total + (i >= 148 && i < 156 ? 32 : byte), 0);
    if (!Number.isFinite(stored) || stored !== sum) throw invalid(`bad header checksum at byte ${offset}`);
    const name = header.subarray(0, 100).toString("utf8").replace(/\0.*$/s, "");
    const size = parseInt(header.subarray(124, 136).toString("latin1").replace(/\0.*$/, "").trim() || "0", 8);
    const start = offset + BLOCK;
    if (start + size > tar.length) throw invalid(`${name} is cut short`);
    if (name === "manifest.json" || name.endsWith(".json") || name.startsWith("blobs/"))
      files.set(name, tar.subarray(start, start + size));
    offset = start + Math.ceil(size / BLOCK) * BLOCK;
  }
  const manifestBytes = files.get("manifest.json");
  if (manifestBytes === undefined) throw invalid("it has no manifest.json");
  let manifest: { Config: string; RepoTags?: string[] | null }[];
  try {
    manifest = JSON.parse(manifestBytes.toString("utf8"));
  } catch (error) {
    throw new RuntimeError("not a docker save image tar: manifest.json is not JSON", {
      reason: "image-invalid",
      cause: error,
    });
  }
  return manifest.map((entry) => {
    const configBytes = files.get(entry.Config);
    if (configBytes === undefined) throw invalid(`its config ${entry.Config} is missing`);
    const config = JSON.parse(configBytes.toString("utf8")) as {
      os?: string;
      architecture?: string;
      variant?: string;
      config?: { User?: string };
    };
    return {
      info: {
        id: `sha256:${createHash("sha256").update(configBytes).digest("hex")}`,
        os: config.os ?? "",
        architecture: config.architecture ?? "",
        variant: config.variant || undefined,
        user: config.config?.User ?? "",
        size: configBytes.length,
      },
      tags: (entry.RepoTags ?? []).map(normalize),
    };
  });
}
