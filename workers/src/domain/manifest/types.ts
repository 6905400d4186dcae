/**
 * Types of the Shoal app manifest, in the normalized form `parseManifest` returns: defaults filled
 * in, quantities as canonical strings ("250m", "64Mi"), every writable path with its size.
 * The JSON Schemas next to this file are the source of truth for what a manifest may contain.
 */

/** A platform as Docker names it, restricted to the ones Shoal knows. */
export type Platform =
  | "linux/amd64"
  | "linux/arm64"
  | "linux/arm/v7"
  | "linux/arm/v6"
  | "linux/386"
  | "linux/ppc64le"
  | "linux/s390x"
  | "linux/riscv64";

/** Where the publish task finds one platform's image. Local only: never published. */
export type ImageSource = { ref: string; tar?: never } | { tar: string; ref?: never };

/** One platform's image in the published manifest. */
export interface PublishedImage {
  cid: string;
}

export interface PortSpec {
  containerPort: number;
  protocol: "tcp" | "udp";
  name?: string;
}

/** A quantity band; strings are canonical ("250m" for CPU, "64Mi" or "1Gi" for memory). */
export interface QuantityBand {
  min: string;
  max: string;
}

export interface ResourcesSpec {
  cpu: QuantityBand;
  memory: QuantityBand;
}

export type RestartPolicy = "always" | "on-failure" | "never";

/** What a replica may reach beyond its deployment's network on the device; absent means outbound. */
export type Egress = "none" | "outbound";

export interface WritablePath {
  path: string;
  /** tmpfs size, canonical memory quantity like "16Mi". */
  size: string;
}

export interface UserSpec {
  uid: number;
  gid?: number;
}

export interface HealthCheckSpec {
  exec?: string[];
  httpGet?: { port: number; path: string };
  intervalSeconds: number;
  timeoutSeconds: number;
  retries: number;
  startPeriodSeconds: number;
}

/** Fields shared by the source manifest (shoal.yaml) and the published one. */
export interface ManifestBody {
  schemaVersion: 1;
  name: string;
  version: string;
  description?: string;
  command?: string[];
  args?: string[];
  env: Record<string, string>;
  ports: PortSpec[];
  resources: ResourcesSpec;
  restartPolicy: RestartPolicy;
  /** Only when the manifest gives it (older published manifests have none): absent = "outbound". */
  egress?: Egress;
  replicas: number;
  /** Sorted, each "key=value". */
  requiredLabels: string[];
  writablePaths: WritablePath[];
  user?: UserSpec;
  healthCheck?: HealthCheckSpec;
}

/** A validated, normalized shoal.yaml. */
export interface Manifest extends ManifestBody {
  images: Partial<Record<Platform, ImageSource>>;
}

/** A validated published (canonical) manifest, as fetched from IPFS. */
export interface PublishedManifest extends ManifestBody {
  images: Partial<Record<Platform, PublishedImage>>;
}

/** The resource band as the chain stores it: integers. */
export interface ResourceBand {
  cpuMillicoresMin: number;
  cpuMillicoresMax: number;
  memoryMiBMin: number;
  memoryMiBMax: number;
}
