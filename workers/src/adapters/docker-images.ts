/** Exporting a local Docker image as a `docker save` tar stream, checked against its platform. */
import type Docker from "dockerode";
import { ShoalError } from "../errors";

export class ImageExportError extends ShoalError {
  override name = "ImageExportError";
}

export interface ExportedImage {
  /** The `docker save` tar of the image. */
  stream: NodeJS.ReadableStream;
  /** Image ID (sha256:...). */
  id: string;
  /** Uncompressed size Docker reports; the tar is about this large. */
  size: number;
}

/** "linux/arm/v7" -> { os: "linux", architecture: "arm", variant: "v7" } */
export function splitPlatform(platform: string): { os: string; architecture: string; variant?: string } {
  const [os, architecture, variant] = platform.split("/");
  return { os, architecture, variant };
}

/**
 * Streams `docker save` of `ref` after checking that the image exists locally and is built for
 * `platform`. Never pulls: no registry is assumed.
 */
export async function exportImage(docker: Docker, ref: string, platform: string): Promise<ExportedImage> {
  const image = docker.getImage(ref);
  let info: Awaited<ReturnType<Docker.Image["inspect"]>>;
  try {
    info = await image.inspect();
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    throw new ImageExportError(
      status === 404
        ? `image "${ref}" is not in the local Docker Engine; build or load it first (Shoal never pulls from a registry)`
        : `the Docker Engine could not inspect image "${ref}"`,
      { cause: error, retryable: status !== 404 },
    );
  }
  const wanted = splitPlatform(platform);
  const variant = (info as { Variant?: string }).Variant;
  if (
    info.Os !== wanted.os ||
    info.Architecture !== wanted.architecture ||
    (wanted.variant && variant !== wanted.variant)
  ) {
    const actual = [info.Os, info.Architecture, variant].filter(Boolean).join("/");
    throw new ImageExportError(
      `image "${ref}" is built for ${actual}, but the manifest lists it under ${platform}; list it under ${actual} or build it for ${platform}`,
    );
  }
  return { stream: await image.get(), id: info.Id, size: info.Size };
}

/** What a `docker save` tar holds, read from its index without loading it into any engine. */
export interface ImageTarInfo {
  /** One entry per image in the tar, with the platform its config names ("linux/amd64"). */
  images: { config: string; platform: string }[];
}

const TAR_BLOCK = 512;
// manifest.json and image configs are small; a larger one is not a docker save index.
const MAX_TAR_INDEX_BYTES = 4 * 1024 * 1024;

/**
 * Reads the images a `docker save` tar file holds and their platforms: its `manifest.json` (both
 * the legacy layout and the OCI one Docker 25+ writes carry it) and each image's config. Only
 * those entries are read; the layers are skipped by their sizes, so a 1 GiB tar costs a few reads.
 */
export async function inspectImageTar(file: string): Promise<ImageTarInfo> {
  const { open } = await import("node:fs/promises");
  const handle = await open(file, "r");
  try {
    const wanted = new Map<string, Buffer>();
    const offsets = new Map<string, { offset: number; size: number }>();
    const header = Buffer.alloc(TAR_BLOCK);
    let position = 0;
    let longName: string | undefined;
    for (;;) {
      const { bytesRead } = await handle.read(header, 0, TAR_BLOCK, position);
      if (bytesRead < TAR_BLOCK || header.every((b) => b === 0)) break;
      const size = parseInt(header.toString("ascii", 124, 136).replace(/\0.*$/s, "").trim() || "0", 8);
      const type = String.fromCharCode(header[156] || 48);
      const body = position + TAR_BLOCK;
      if (Number.isNaN(size)) throw new ImageExportError(`${file} is not a tar archive`);
      if (type === "L") {
        // GNU long name: the next entry's name is this entry's content.
        const name = Buffer.alloc(Math.min(size, 4096));
        await handle.read(name, 0, name.length, body);
        longName = name.toString("utf8").replace(/\0.*$/s, "");
      } else {
        const prefix = header.toString("utf8", 345, 500).replace(/\0.*$/s, "");
        const short = header.toString("utf8", 0, 100).replace(/\0.*$/s, "");
        const name = (longName ?? (prefix ? `${prefix}/${short}` : short)).replace(/^\.\//, "");
        longName = undefined;
        if (type === "0" || type === "\0") offsets.set(name, { offset: body, size });
      }
      position = body + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    }
    const read = async (name: string): Promise<Buffer> => {
      const entry = offsets.get(name);
      if (entry === undefined || entry.size > MAX_TAR_INDEX_BYTES) {
        throw new ImageExportError(`${file} is not a docker save tar (no usable ${name})`);
      }
      const cached = wanted.get(name);
      if (cached) return cached;
      const bytes = Buffer.alloc(entry.size);
      await handle.read(bytes, 0, entry.size, entry.offset);
      wanted.set(name, bytes);
      return bytes;
    };
    let index: { Config?: unknown }[];
    try {
      index = JSON.parse((await read("manifest.json")).toString("utf8")) as { Config?: unknown }[];
      if (!Array.isArray(index)) throw new Error("not a list");
    } catch (error) {
      if (error instanceof ImageExportError) throw error;
      throw new ImageExportError(`${file} is not a docker save tar (its manifest.json is not a list)`);
    }
    const images: ImageTarInfo["images"] = [];
    for (const entry of index) {
      const config = String(entry.Config);
      let parsed: { os?: unknown; architecture?: unknown; variant?: unknown };
      try {
        parsed = JSON.parse((await read(config)).toString("utf8")) as typeof parsed;
      } catch (error) {
        if (error instanceof ImageExportError) throw error;
        throw new ImageExportError(`${file} is not a docker save tar (image config ${config} is not JSON)`);
      }
      const platform = [parsed.os, parsed.architecture, parsed.variant]
        .filter((part) => typeof part === "string" && part !== "")
        .join("/");
      images.push({ config, platform });
    }
    return { images };
  } finally {
    await handle.close();
  }
}

/** True when an image built for `actual` runs as `platform` (a platform without variant takes any). */
export function imagePlatformMatches(platform: string, actual: string): boolean {
  const want = splitPlatform(platform);
  const got = splitPlatform(actual);
  return (
    want.os === got.os &&
    want.architecture === got.architecture &&
    (want.variant === undefined || want.variant === got.variant)
  );
}
