/**
 * The container runtime of a device: a small driver interface in the spirit of Nomad's
 * plugins/drivers/driver.go. Containers are owned by label (SHOAL_LABELS), never by name alone; the
 * spec they are created from is built (and hardened) by the pure containerSpec(), so an
 * implementation only translates it. Every method is idempotent where the name says so: stopping a
 * stopped container or removing a removed one succeeds.
 *
 * Errors are RuntimeError (adapters/docker-runtime.ts) with `retryable` set for an unreachable
 * engine or a server error, and not for a request the engine refused (bad spec, missing image).
 */
import type { ContainerSpec, ResourceLimits } from "../domain/container-spec";
import { ShoalError } from "../errors";
import type { ActualContainer, ContainerState } from "../domain/plan";

export type { ActualContainer, ContainerState };

export interface SignalOptions {
  signal?: AbortSignal;
}

export interface EnsureRunningResult {
  /** The container after the call, running (or exited again if its process died at once). */
  container: ActualContainer;
  /** created: a new container; started: an existing one with the same spec hash was started; kept: it was running. */
  outcome: "created" | "started" | "kept";
}

export interface ImageInfo {
  /** sha256:... */
  id: string;
  /** repo:tag references of the image. */
  tags: string[];
  os: string;
  architecture: string;
  variant: string | undefined;
  /** The image's USER ("" when unset, i.e. root). */
  user: string;
  /** Bytes, as the engine reports. */
  size: number;
}

export interface LoadedImage {
  id: string;
  /** Tags the tar carried (empty for an image saved by id). */
  tags: string[];
}

export interface ResourceUpdate extends ResourceLimits {
  pidsLimit?: number;
}

export interface Runtime {
  /**
   * When the engine that answers now started (ISO time), or undefined when the runtime cannot tell
   * (a remote engine). plan() reads a container's exit before that as the engine's doing. Rejects
   * (retryable) when the runtime can tell that the engine is stopping: the exits it shows then may
   * be its own doing, and must not be judged until it has started again.
   */
  engineStartedAt?(options?: SignalOptions): Promise<string | undefined>;
  /** Shoal containers of the device (by label), in any state. */
  list(options: { deviceId: string } & SignalOptions): Promise<ActualContainer[]>;
  /** One container by id or name; undefined when it does not exist. */
  inspect(id: string, options?: SignalOptions): Promise<ActualContainer | undefined>;
  /**
   * Idempotent create + start. A container of the same name with the same spec hash is kept (and
   * started when it is not running); one with another hash is not touched and a RuntimeError with
   * reason "conflict" is thrown (plan() should have asked for recreate). Refuses images whose user
   * would be root (see effectiveUser).
   */
  ensureRunning(spec: ContainerSpec, options?: SignalOptions): Promise<EnsureRunningResult>;
  /** Starts an existing container; already running is fine. */
  start(id: string, options?: SignalOptions): Promise<void>;
  /** SIGTERM, then SIGKILL after timeoutS (default 10); already stopped or gone is fine. */
  stop(id: string, options?: { timeoutS?: number } & SignalOptions): Promise<void>;
  /** Removes a container (killing it if still running); already gone is fine. */
  remove(id: string, options?: SignalOptions): Promise<void>;
  /** Changes CPU quota, memory limit and reservation (and PIDs limit) in place, without a restart. */
  updateResources(id: string, limits: ResourceUpdate, options?: SignalOptions): Promise<void>;
  /**
   * Removes the device's deployment networks (ContainerSpec.deploymentNetwork, created by
   * ensureRunning) that no container uses any more. Returns their names. Optional: a runtime
   * without networks has none to remove.
   */
  pruneNetworks?(options: { deviceId: string } & SignalOptions): Promise<string[]>;
  /**
   * Stops and removes the device's Shoal containers whose placement is not in `keep` (the sweeper
   * of dangling containers, like Nomad's reconcile_dangling). Returns the removed container ids.
   */
  sweep(
    options: { deviceId: string; keep: ReadonlySet<string>; timeoutS?: number } & SignalOptions,
  ): Promise<string[]>;
  /** Streams a `docker save` tar into the engine (never buffered whole); returns what it loaded. */
  loadImage(
    tar: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
    options?: SignalOptions,
  ): Promise<LoadedImage[]>;
  /** undefined when no image has this reference. */
  inspectImage(ref: string, options?: SignalOptions): Promise<ImageInfo | undefined>;
  imageExists(ref: string, options?: SignalOptions): Promise<boolean>;
  /** Tags `ref` as `target` ("repo:tag"), moving the tag if it pointed elsewhere. */
  tagImage(ref: string, target: string, options?: SignalOptions): Promise<void>;
  /** Removes one reference (a tag, or the image when it is the last); missing is fine. */
  untagImage(ref: string, options?: SignalOptions): Promise<void>;
  /** Every tag of the engine in `repository` ("shoal-cid"), with when it was set (ISO, if known). */
  listImageTags(repository: string, options?: SignalOptions): Promise<ImageTag[]>;
  /** How many containers of the engine (any device, any state) were created from the image `ref` names. */
  containersUsingImage(ref: string, options?: SignalOptions): Promise<number>;
}

export interface ImageTag {
  /** "repo:tag" */
  tag: string;
  /** sha256:... */
  imageId: string;
  /** When the tag was last set, ISO; undefined when the engine does not say. */
  taggedAt: string | undefined;
}

/**
 * Why a runtime call failed: unavailable (engine unreachable), server (5xx), aborted, conflict (a
 * container of that name with another spec, or an operation already under way), not-found, invalid
 * (the engine refused the request), image-invalid (a tar docker load refused), unsafe-user.
 */
export type RuntimeErrorReason =
  | "unavailable"
  | "server"
  | "aborted"
  | "conflict"
  | "not-found"
  | "invalid"
  | "image-invalid"
  | "unsafe-user";

export class RuntimeError extends ShoalError {
  override name = "RuntimeError";
  readonly reason: RuntimeErrorReason;
  readonly statusCode: number | undefined;

  constructor(
    shortMessage: string,
    options: {
      reason: RuntimeErrorReason;
      statusCode?: number;
      cause?: unknown;
      retryable?: boolean;
      details?: string;
    },
  ) {
    super(shortMessage, {
      cause: options.cause,
      details: options.details,
      retryable: options.retryable ?? ["unavailable", "server", "conflict"].includes(options.reason),
    });
    this.reason = options.reason;
    this.statusCode = options.statusCode;
  }
}
