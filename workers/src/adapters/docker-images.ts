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
