import type {
  Egress,
  HealthCheckSpec,
  ImageSource,
  Manifest,
  ManifestBody,
  PortSpec,
  PublishedImage,
  PublishedManifest,
  WritablePath,
} from "./types";
import { formatCpuMillicores, formatMemoryMiB, parseCpuMillicores, parseMemoryMiB } from "./quantity";
import { DEFAULT_WRITABLE_PATH_SIZE_MIB } from "./validate";

/**
 * Turns data that already passed `collectIssues` into the normalized types: defaults filled in,
 * quantities canonical, writable paths as { path, size }. Never called on unvalidated data, so it
 * trusts the shapes the schema guarantees.
 */

type Data = Record<string, unknown>;

function body(data: Data): ManifestBody {
  const resources = data.resources as {
    cpu: Record<"min" | "max", string | number>;
    memory: Record<"min" | "max", string>;
  };
  const out: ManifestBody = {
    schemaVersion: 1,
    name: data.name as string,
    version: data.version as string,
    env: { ...((data.env as Record<string, string> | undefined) ?? {}) },
    ports: ((data.ports as Partial<PortSpec>[] | undefined) ?? []).map((port) => ({
      containerPort: port.containerPort as number,
      protocol: port.protocol ?? "tcp",
      ...(port.name !== undefined ? { name: port.name } : {}),
    })),
    resources: {
      cpu: {
        min: formatCpuMillicores(parseCpuMillicores(resources.cpu.min)),
        max: formatCpuMillicores(parseCpuMillicores(resources.cpu.max)),
      },
      memory: {
        min: formatMemoryMiB(parseMemoryMiB(resources.memory.min)),
        max: formatMemoryMiB(parseMemoryMiB(resources.memory.max)),
      },
    },
    restartPolicy: (data.restartPolicy as ManifestBody["restartPolicy"] | undefined) ?? "on-failure",
    replicas: (data.replicas as number | undefined) ?? 1,
    requiredLabels: [...((data.requiredLabels as string[] | undefined) ?? [])],
    writablePaths: (
      (data.writablePaths as (string | { path: string; size?: string })[] | undefined) ?? []
    ).map((entry): WritablePath => {
      const path = typeof entry === "string" ? entry : entry.path;
      const size =
        typeof entry === "string" || entry.size === undefined
          ? DEFAULT_WRITABLE_PATH_SIZE_MIB
          : parseMemoryMiB(entry.size);
      // "/tmp/" and "//tmp" mount the same place as "/tmp": one spelling keeps the canonical form unique.
      return {
        path: `/${path
          .split("/")
          .filter((p) => p !== "")
          .join("/")}`,
        size: formatMemoryMiB(size),
      };
    }),
  };
  if (data.description !== undefined) out.description = data.description as string;
  if (data.command !== undefined) out.command = [...(data.command as string[])];
  if (data.args !== undefined) out.args = [...(data.args as string[])];
  if (data.egress !== undefined) out.egress = data.egress as Egress;
  if (data.user !== undefined) out.user = { ...(data.user as { uid: number; gid?: number }) };
  if (data.healthCheck !== undefined) out.healthCheck = healthCheck(data.healthCheck as Data);
  return out;
}

function healthCheck(data: Data): HealthCheckSpec {
  const out: HealthCheckSpec = {
    intervalSeconds: (data.intervalSeconds as number | undefined) ?? 10,
    timeoutSeconds: (data.timeoutSeconds as number | undefined) ?? 3,
    retries: (data.retries as number | undefined) ?? 3,
    startPeriodSeconds: (data.startPeriodSeconds as number | undefined) ?? 0,
  };
  if (data.exec !== undefined) out.exec = [...(data.exec as string[])];
  if (data.httpGet !== undefined) {
    const http = data.httpGet as { port: number; path?: string };
    out.httpGet = { port: http.port, path: http.path ?? "/" };
  }
  return out;
}

export function normalizeSource(data: Data): Manifest {
  const images: Record<string, ImageSource> = {};
  for (const [platform, source] of Object.entries(data.images as Record<string, ImageSource>)) {
    images[platform] = source.ref !== undefined ? { ref: source.ref } : { tar: source.tar as string };
  }
  return { ...body(data), images };
}

export function normalizePublished(data: Data): PublishedManifest {
  const images: Record<string, PublishedImage> = {};
  for (const [platform, image] of Object.entries(data.images as Record<string, PublishedImage>)) {
    images[platform] = { cid: image.cid };
  }
  return { ...body(data), images };
}
