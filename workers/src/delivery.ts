/**
 * Delivery: an app version's manifest and image, by CID, from the device's content store into the
 * local Docker Engine. What comes from IPFS is untrusted: the manifest must pass the published
 * schema and name the image CID the chain names; the image must be a single `docker save` image
 * for this device's platform and no bigger than allowed. The tar is streamed into `docker load`,
 * never held whole in memory.
 *
 * Cache: a delivered image is tagged `shoal-cid:<cid>` (imageRefForCid). Only delivery sets tags
 * in that repository, and a tar that carries one itself is refused and its tag removed, so the tag
 * is trusted: when it exists the image is not fetched again. The CID is pinned in the content
 * store before the tag is set, so a tagged image can always be fetched again on another device.
 *
 * Errors are DeliveryError with the failure code the worker reports on chain: ManifestInvalid for
 * a manifest that fails the schema or names another image; ImageFetchFailed for everything about
 * getting the image (content store unreachable, CID not found, too big, not a docker image, wrong
 * platform). `retryable` is true only when trying again may help (content store or engine
 * unreachable).
 */
import type { Logger } from "pino";
import { imageRefForCid, IMAGE_CID_REPOSITORY } from "./domain/container-spec";
// The modules, not the index: a device validates published JSON and never loads the YAML parser.
import { validateCanonicalManifest } from "./domain/manifest/canonical";
import { ManifestError } from "./domain/manifest/manifest-error";
import { MAX_MANIFEST_BYTES } from "./domain/manifest/validate";
import type { Platform, PublishedManifest } from "./domain/manifest";
import { isRetryable, ShoalError } from "./errors";
import { abortable, onAbort } from "./lib/supervise";
import type { ContentStore } from "./ports/content-store";
import type { Runtime } from "./ports/runtime";

export type DeliveryFailureCode = "ImageFetchFailed" | "ManifestInvalid";

export class DeliveryError extends ShoalError {
  override name = "DeliveryError";
  readonly code: DeliveryFailureCode;

  constructor(
    code: DeliveryFailureCode,
    shortMessage: string,
    options: { cause?: unknown; retryable?: boolean } = {},
  ) {
    super(shortMessage, options);
    this.code = code;
  }
}

export interface DeliveryDeps {
  contentStore: ContentStore;
  runtime: Runtime;
  /** This device's platform, e.g. "linux/amd64". */
  platform: Platform;
  logger?: Logger;
  /** Largest image tar accepted. Default 1 GiB. */
  maxImageBytes?: number;
  /** Largest manifest accepted. Default MAX_MANIFEST_BYTES. */
  maxManifestBytes?: number;
  /** Fail a fetch when no byte arrived for this long (a CID nobody provides never ends). Default 60 s. */
  idleTimeoutMs?: number;
  /**
   * Called before content is fetched (not for a cache hit): the peering connects the peers that
   * hold the CID. Must not throw.
   */
  beforeFetch?: (cid: string, options: { signal?: AbortSignal }) => Promise<void>;
}

export interface EnsureImageParams {
  manifestCid: string;
  /** The image CID the chain lists for this platform. */
  imageCid: string;
  /** Default: the device's platform. */
  platform?: Platform;
  signal?: AbortSignal;
}

export interface EnsureImageResult {
  /** `shoal-cid:<imageCid>`: what ContainerSpec.image should be. */
  imageRef: string;
  /** sha256:... */
  imageId: string;
  /** True when this call (or the one it joined) streamed the image from the content store. */
  fetched: boolean;
  manifest: PublishedManifest;
}

export interface Delivery {
  fetchManifest(manifestCid: string, options?: { signal?: AbortSignal }): Promise<PublishedManifest>;
  ensureImage(params: EnsureImageParams): Promise<EnsureImageResult>;
}

const GiB = 1024 * 1024 * 1024;
// Docker tags: [A-Za-z0-9_.-], at most 128 characters; every CID text form fits.
const CID_PATTERN = /^[A-Za-z0-9]{1,128}$/;
// Manifests are immutable by CID: keep the last few validated ones.
const MANIFEST_CACHE_SIZE = 64;

export function createDelivery(deps: DeliveryDeps): Delivery {
  const {
    contentStore,
    runtime,
    platform: devicePlatform,
    maxImageBytes = GiB,
    maxManifestBytes = MAX_MANIFEST_BYTES,
    idleTimeoutMs = 60_000,
  } = deps;
  const manifests = new Map<string, PublishedManifest>();
  const inFlight = new Map<
    string,
    { promise: Promise<{ imageId: string }>; waiters: number; abort: AbortController }
  >();

  async function fetchManifest(manifestCid: string, signal?: AbortSignal): Promise<PublishedManifest> {
    checkCid(manifestCid, "manifest");
    const cached = manifests.get(manifestCid);
    if (cached !== undefined) return cached;
    await deps.beforeFetch?.(manifestCid, { signal });
    const chunks: Uint8Array[] = [];
    let size = 0;
    const watchdog = idleWatchdog(idleTimeoutMs, signal);
    try {
      for await (const chunk of contentStore.cat(manifestCid, {
        maxBytes: maxManifestBytes,
        signal: watchdog.signal,
      })) {
        watchdog.touch();
        size += chunk.byteLength;
        chunks.push(chunk);
      }
    } catch (error) {
      signal?.throwIfAborted();
      if (isTooBig(error)) {
        throw new DeliveryError(
          "ManifestInvalid",
          `manifest ${manifestCid} is larger than ${maxManifestBytes} bytes`,
          {
            cause: error,
          },
        );
      }
      throw new DeliveryError("ImageFetchFailed", `could not fetch manifest ${manifestCid}`, {
        cause: watchdog.timedOut() ? new Error(`no data for ${idleTimeoutMs} ms`) : error,
        retryable: watchdog.timedOut() || isRetryable(error),
      });
    } finally {
      watchdog.stop();
    }
    let manifest: PublishedManifest;
    try {
      manifest = validateCanonicalManifest(concat(chunks, size), { source: `manifest ${manifestCid}` });
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      throw new DeliveryError("ManifestInvalid", error.shortMessage, { cause: error });
    }
    if (manifests.size >= MANIFEST_CACHE_SIZE) manifests.delete(manifests.keys().next().value as string);
    manifests.set(manifestCid, manifest);
    return manifest;
  }

  /** Streams, loads, verifies, pins and tags one image. Shared by every caller waiting for the CID. */
  async function fetchImage(
    imageCid: string,
    platform: Platform,
    signal: AbortSignal,
  ): Promise<{ imageId: string }> {
    const log = deps.logger?.child({ action: "fetch-image", imageCid, platform });
    await deps.beforeFetch?.(imageCid, { signal });
    const started = Date.now();
    let received = 0;
    let sourceError: unknown;
    const watchdog = idleWatchdog(idleTimeoutMs, signal);
    // Errors of the content store are remembered here: docker load only sees a broken stream.
    async function* tar(): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of contentStore.cat(imageCid, {
          maxBytes: maxImageBytes,
          signal: watchdog.signal,
        })) {
          watchdog.touch();
          received += chunk.byteLength;
          yield chunk;
        }
      } catch (error) {
        sourceError = watchdog.timedOut() ? new Error(`no data for ${idleTimeoutMs} ms`) : error;
        throw error;
      }
    }
    let loaded;
    try {
      loaded = await runtime.loadImage(tar(), { signal });
    } catch (error) {
      signal.throwIfAborted();
      if (sourceError !== undefined) {
        const tooBig = isTooBig(sourceError);
        throw new DeliveryError(
          "ImageFetchFailed",
          tooBig
            ? `image ${imageCid} is larger than the ${maxImageBytes} bytes allowed; nothing was loaded`
            : `could not fetch image ${imageCid} from the content store`,
          { cause: sourceError, retryable: !tooBig && (watchdog.timedOut() || isRetryable(sourceError)) },
        );
      }
      throw new DeliveryError("ImageFetchFailed", `image ${imageCid} could not be loaded into Docker`, {
        cause: error,
        retryable: isRetryable(error),
      });
    } finally {
      watchdog.stop();
    }

    // A tar may carry tags of its own; one in Shoal's CID repository would impersonate another
    // image. Remove such tags and refuse the image.
    const forged = loaded.flatMap((image) =>
      image.tags.filter((tag) => tag.startsWith(`${IMAGE_CID_REPOSITORY}:`)),
    );
    if (forged.length > 0) {
      for (const tag of forged) await runtime.untagImage(tag, { signal });
      throw new DeliveryError(
        "ImageFetchFailed",
        `image ${imageCid} carries the reserved tags ${forged.join(", ")}`,
      );
    }
    if (loaded.length !== 1) {
      throw new DeliveryError(
        "ImageFetchFailed",
        `image ${imageCid} holds ${loaded.length} images; a Shoal image tar holds exactly one`,
      );
    }
    const image = await runtime.inspectImage(loaded[0].id, { signal });
    if (image === undefined) {
      throw new DeliveryError("ImageFetchFailed", `image ${imageCid} vanished right after docker load`, {
        retryable: true,
      });
    }
    const actual = [image.os, image.architecture, image.variant].filter(Boolean).join("/");
    if (!platformMatches(platform, image)) {
      throw new DeliveryError(
        "ImageFetchFailed",
        `image ${imageCid} is built for ${actual}, not ${platform}`,
      );
    }
    try {
      await contentStore.pin(imageCid, { signal });
    } catch (error) {
      throw new DeliveryError("ImageFetchFailed", `could not pin image ${imageCid}`, {
        cause: error,
        retryable: isRetryable(error),
      });
    }
    try {
      await runtime.tagImage(image.id, imageRefForCid(imageCid), { signal });
    } catch (error) {
      throw new DeliveryError("ImageFetchFailed", `could not tag image ${imageCid}`, {
        cause: error,
        retryable: isRetryable(error),
      });
    }
    log?.info({ bytes: received, ms: Date.now() - started, imageId: image.id }, "image delivered");
    return { imageId: image.id };
  }

  async function ensureImage({
    manifestCid,
    imageCid,
    platform = devicePlatform,
    signal,
  }: EnsureImageParams) {
    checkCid(imageCid, "image");
    const manifest = await fetchManifest(manifestCid, signal);
    const listed = manifest.images[platform]?.cid;
    if (listed !== imageCid) {
      throw new DeliveryError(
        "ManifestInvalid",
        listed === undefined
          ? `manifest ${manifestCid} lists no image for ${platform}`
          : `manifest ${manifestCid} lists image ${listed} for ${platform}, but the chain names ${imageCid}`,
      );
    }
    const imageRef = imageRefForCid(imageCid);
    let cached;
    try {
      cached = await runtime.inspectImage(imageRef, { signal });
    } catch (error) {
      throw new DeliveryError("ImageFetchFailed", `could not look up image ${imageRef}`, {
        cause: error,
        retryable: isRetryable(error),
      });
    }
    if (cached !== undefined && platformMatches(platform, cached)) {
      return { imageRef, imageId: cached.id, fetched: false, manifest };
    }
    const { imageId } = await joinFetch(imageCid, platform, signal);
    return { imageRef, imageId, fetched: true, manifest };
  }

  /**
   * Single flight per CID: concurrent callers share one fetch. A caller that aborts stops waiting;
   * the fetch itself is aborted only when every caller has.
   */
  async function joinFetch(
    imageCid: string,
    platform: Platform,
    signal?: AbortSignal,
  ): Promise<{ imageId: string }> {
    const key = `${platform} ${imageCid}`;
    let flight = inFlight.get(key);
    if (flight === undefined) {
      const abort = new AbortController();
      const promise = fetchImage(imageCid, platform, abort.signal).finally(() => inFlight.delete(key));
      flight = { promise, waiters: 0, abort };
      inFlight.set(key, flight);
    }
    const current = flight;
    current.waiters++;
    try {
      if (signal === undefined) return await current.promise;
      signal.throwIfAborted();
      return await abortable(current.promise, signal);
    } finally {
      current.waiters--;
      if (current.waiters === 0 && signal?.aborted) current.abort.abort(signal.reason);
    }
  }

  return {
    fetchManifest: (manifestCid, options = {}) => fetchManifest(manifestCid, options.signal),
    ensureImage,
  };
}

function checkCid(cid: string, what: string): void {
  if (!CID_PATTERN.test(cid)) {
    throw new DeliveryError("ManifestInvalid", `the ${what} CID "${cid.slice(0, 140)}" is not a CID`);
  }
}

function platformMatches(
  platform: string,
  image: { os: string; architecture: string; variant: string | undefined },
) {
  const [os, architecture, variant] = platform.split("/");
  return (
    image.os === os &&
    image.architecture === architecture &&
    (variant === undefined || image.variant === variant)
  );
}

/** The content store's maxBytes refusal (kubo adapter: "<cid> is larger than the N bytes allowed"). */
function isTooBig(error: unknown): boolean {
  return error instanceof Error && /is larger than/.test(error.message);
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** An abort signal that fires when `parent` does or when touch() was not called for `idleMs`. */
function idleWatchdog(idleMs: number, parent?: AbortSignal) {
  const controller = new AbortController();
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`no data for ${idleMs} ms`));
    }, idleMs);
    timer.unref?.();
  };
  const offParent = onAbort(parent, () => controller.abort(parent?.reason));
  arm();
  return {
    signal: controller.signal,
    touch: arm,
    timedOut: () => timedOut,
    stop: () => {
      clearTimeout(timer);
      offParent();
    },
  };
}
