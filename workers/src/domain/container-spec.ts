import { createHash } from "node:crypto";
import { ShoalError } from "../errors";
// The modules, not the index, which also loads the YAML parser a device never needs.
import { stableStringify } from "./manifest/canonical";
import { parseMemoryMiB } from "./manifest/quantity";
import { resourceBand } from "./manifest/resource-band";
import type { PublishedManifest, ResourceBand, RestartPolicy } from "./manifest";

/**
 * The container a placement runs, as plain data: what the Docker adapter creates and what the spec
 * hash covers. Every hardening choice of Shoal lives here, in one pure function, so a unit test can
 * prove it and the adapter only translates field names. Pure: no I/O, no clock (hashing is pure).
 */

/** Labels every Shoal container carries; ownership is by label, never by name or image. */
export const SHOAL_LABELS = {
  managed: "io.shoal.managed",
  device: "io.shoal.device",
  placement: "io.shoal.placement",
  deployment: "io.shoal.deployment",
  app: "io.shoal.app",
  version: "io.shoal.version",
  specHash: "io.shoal.spec-hash",
} as const;

/** Docker repository under which delivery tags each image by its content CID: `shoal-cid:<cid>`. */
export const IMAGE_CID_REPOSITORY = "shoal-cid";

/** Image reference of the image whose `docker save` tar has this CID. */
export function imageRefForCid(cid: string): string {
  return `${IMAGE_CID_REPOSITORY}:${cid}`;
}

/** Which placement a container belongs to. Ids are the chain's integers as decimal strings. */
export interface PlacementIdentity {
  deviceId: string;
  placementId: string;
  deploymentId: string;
  appId: string;
  /** The app version number on chain (not the manifest's semver). */
  version: string;
}

/** Limits the resource manager moves at run time (`docker update`), within the band. */
export interface ResourceLimits {
  /** CPU quota in millicores; 1000 = one core. */
  cpuMillicores: number;
  /** Hard memory limit (also the memory+swap limit: no swap). */
  memoryMiB: number;
  /** Soft limit the kernel reclaims down to under memory pressure. */
  memoryReservationMiB: number;
}

export interface PublishedPort {
  containerPort: number;
  protocol: "tcp" | "udp";
  /** The device owner's exposure address (default 127.0.0.1: reachable on the device only). */
  hostIp: string;
  /** Host ports the engine may pick from ("30000-30999"), or "" for any free port. */
  hostPorts: string;
}

/** Where the device publishes replicas' ports: the owner's setting (worker config `exposure`). */
export interface Exposure {
  /** An address of the device; 127.0.0.1 keeps replicas reachable on the device only. */
  address: string;
  /** Host ports to publish on, inclusive; absent: any free port. */
  hostPortRange?: { min: number; max: number };
}

/**
 * The Docker network of one deployment on one device (issue 15): a bridge of its own, so replicas
 * of other deployments cannot reach it (Docker's isolation rules between bridges) while replicas of
 * this deployment on this device can (inter-container traffic on one bridge). `internal` when the
 * app has no egress: Docker then gives the bridge no route out and publishes no ports.
 */
export interface DeploymentNetwork {
  internal: boolean;
}

export interface TmpfsMount {
  path: string;
  sizeMiB: number;
  /** Mount options as Docker takes them: "rw,noexec,nosuid,nodev,size=8m,mode=1777". */
  options: string;
}

/**
 * The isolation of every Shoal container. The literal types make a weaker setting a type error, so
 * nothing downstream of containerSpec() can loosen it by accident.
 */
export interface Hardening {
  privileged: false;
  readonlyRootfs: true;
  capDrop: readonly ["ALL"];
  securityOpt: readonly ["no-new-privileges"];
  /** Own IPC namespace without /dev/shm: the only writable places are the declared tmpfs mounts. */
  ipcMode: "none";
  /** "" = Docker's default, a private PID namespace (never "host"). */
  pidMode: "";
  /** "" = the daemon's default user namespace setting (never "host"). */
  usernsMode: "";
  /** "" = Docker's default, a private UTS namespace (never "host"). */
  utsMode: "";
  /** Private cgroup namespace: on a cgroup v1 host Docker's default is the host's. */
  cgroupnsMode: "private";
  /** No binds, volumes or devices, ever: nothing of the host is mounted. */
  hostMounts: readonly [];
}

export const HARDENING: Hardening = Object.freeze({
  privileged: false,
  readonlyRootfs: true,
  capDrop: Object.freeze(["ALL"]) as readonly ["ALL"],
  securityOpt: Object.freeze(["no-new-privileges"]) as readonly ["no-new-privileges"],
  ipcMode: "none",
  pidMode: "",
  usernsMode: "",
  utsMode: "",
  cgroupnsMode: "private",
  hostMounts: Object.freeze([]) as readonly [],
});

export interface ExecHealthCheck {
  /** Docker's form: ["CMD", ...argv]. */
  test: string[];
  intervalS: number;
  timeoutS: number;
  retries: number;
  startPeriodS: number;
}

/**
 * An httpGet check, made by the worker from outside the container (an image need not hold an HTTP
 * client): GET http://<container address>:<port><path>, healthy on 2xx or 3xx.
 */
export interface HttpProbe {
  port: number;
  /** Validated by the manifest: a path on the container, never a URL or another host. */
  path: string;
  intervalS: number;
  timeoutS: number;
  retries: number;
  startPeriodS: number;
}

export interface ContainerSpec {
  /** `shoal-<deviceId>-<placementId>`: a second create of the same placement collides instead of duplicating. */
  name: string;
  identity: PlacementIdentity;
  /** Image reference, `shoal-cid:<cid>`: content-addressed, so the hash pins the image. */
  image: string;
  /** Replaces the image's ENTRYPOINT (manifest `command`). */
  entrypoint?: string[];
  /** Replaces the image's CMD (manifest `args`). */
  cmd?: string[];
  /** Sorted by key. */
  env: Record<string, string>;
  /** From the manifest; when absent the image's USER is used if it is a numeric non-root uid (see effectiveUser). */
  user?: { uid: number; gid: number };
  ports: PublishedPort[];
  tmpfs: TmpfsMount[];
  /** Initial limits; the resource manager changes them in place later without touching the hash. */
  limits: ResourceLimits;
  pidsLimit: number;
  /** Relative CPU weight under contention, from the band's min (1000m = 1024 shares, as kubelet does). */
  cpuShares: number;
  band: ResourceBand;
  hardening: Hardening;
  /** Docker network the container joins; a bridge network, never "host". */
  network: string;
  /** Set when `network` is the deployment's own, which the runtime creates when missing. */
  deploymentNetwork?: DeploymentNetwork;
  /** Parent cgroup (the resource manager puts all containers of a device under one). */
  cgroupParent?: string;
  /** An exec check, run by Docker's own HEALTHCHECK inside the container. */
  healthCheck?: ExecHealthCheck;
  /** An httpGet check, made by the worker (health-prober.ts). */
  httpProbe?: HttpProbe;
  /** Shoal's restart policy, applied by plan(); Docker's own restart policy is always "no". */
  restartPolicy: RestartPolicy;
  stopTimeoutS: number;
  /** json-file log rotation: an edge device's disk is small. */
  logging: { maxSizeMiB: number; maxFiles: number };
  /** Extra labels (e.g. a test run id); may not use the io.shoal. prefix. */
  extraLabels: Record<string, string>;
}

export interface ContainerSpecOptions {
  /** Initial CPU quota, clamped into the band. Default: the band's min (what the claim reserved). */
  initialCpuMillicores?: number;
  /** Default 128: enough for a shell, a server and its workers; stops fork bombs. */
  pidsLimit?: number;
  /**
   * A network to join instead of the deployment's own (tests; "bridge" is Docker's shared default,
   * which gives no isolation between deployments).
   */
  network?: string;
  /** The device owner's exposure of ports. Default { address: "127.0.0.1" }. */
  exposure?: Exposure;
  /** false: the device owner forbids outbound access for every app (all run as egress none). Default true. */
  outboundAllowed?: boolean;
  cgroupParent?: string;
  /** Seconds between SIGTERM and SIGKILL on stop. Default 10. */
  stopTimeoutS?: number;
  /** Default { maxSizeMiB: 10, maxFiles: 2 }. */
  logging?: { maxSizeMiB: number; maxFiles: number };
  extraLabels?: Record<string, string>;
}

export const DEFAULT_PIDS_LIMIT = 128;
export const DEFAULT_STOP_TIMEOUT_S = 10;
/** CFS refuses quotas under 1 ms per period; with a 100 ms period that is 10 millicores. */
export const CPU_PERIOD_US = 100_000;
export const MIN_CPU_QUOTA_US = 1_000;

/** A placement or option that cannot give a safe container. Never retryable. */
export class ContainerSpecError extends ShoalError {
  override name = "ContainerSpecError";
}

/**
 * The Docker network of a deployment on a device: `shoal-<deviceId>-d<deploymentId>`, with
 * `-internal` when it has no egress (a change of egress is a new network, never a changed one).
 */
export function deploymentNetworkName(deviceId: string, deploymentId: string, internal: boolean): string {
  return `shoal-${deviceId}-d${deploymentId}${internal ? "-internal" : ""}`;
}

/** The container name of a placement on a device. */
export function containerName(deviceId: string, placementId: string): string {
  return `shoal-${deviceId}-${placementId}`;
}

const ID_PATTERN = /^[0-9A-Za-z_.-]{1,64}$/;

/**
 * The container of `placement` running `manifest` from `imageRef`: initial limits from the band
 * (CPU quota at `initialCpuMillicores`, default the band's min; memory limit at the band's max so
 * the app is never killed below what it declared; reservation at the band's min), and the full
 * hardening of HARDENING.
 */
export function containerSpec(
  placement: PlacementIdentity,
  manifest: PublishedManifest,
  imageRef: string,
  options: ContainerSpecOptions = {},
): ContainerSpec {
  for (const [field, value] of Object.entries(placement)) {
    if (!ID_PATTERN.test(value)) {
      throw new ContainerSpecError(`placement ${field} "${value}" is not a valid id; use decimal digits`);
    }
  }
  for (const key of Object.keys(options.extraLabels ?? {})) {
    if (key.startsWith("io.shoal.")) {
      throw new ContainerSpecError(
        `extra label "${key}" uses the reserved io.shoal. prefix; pick another key`,
      );
    }
  }
  const band = resourceBand(manifest);
  const initialCpu = clamp(
    options.initialCpuMillicores ?? band.cpuMillicoresMin,
    band.cpuMillicoresMin,
    band.cpuMillicoresMax,
  );
  const internal = manifest.egress === "none" || options.outboundAllowed === false;
  const exposure = options.exposure ?? { address: "127.0.0.1" };
  const range = exposure.hostPortRange;
  const spec: ContainerSpec = {
    name: containerName(placement.deviceId, placement.placementId),
    identity: { ...placement },
    image: imageRef,
    env: Object.fromEntries(Object.entries(manifest.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    // An internal network has no way in from outside: Docker publishes no ports there.
    ports: (internal && options.network === undefined ? [] : [...manifest.ports])
      .sort((a, b) => a.containerPort - b.containerPort || a.protocol.localeCompare(b.protocol))
      .map((port) => ({
        containerPort: port.containerPort,
        protocol: port.protocol,
        hostIp: exposure.address,
        hostPorts: range ? `${range.min}-${range.max}` : "",
      })),
    tmpfs: [...manifest.writablePaths]
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
      .map((entry) => {
        const sizeMiB = parseMemoryMiB(entry.size, "writablePaths[].size");
        // noexec: scratch space is for data, not for code fetched at run time. mode 1777: any uid may write.
        return { path: entry.path, sizeMiB, options: `rw,noexec,nosuid,nodev,size=${sizeMiB}m,mode=1777` };
      }),
    limits: {
      cpuMillicores: initialCpu,
      memoryMiB: band.memoryMiBMax,
      memoryReservationMiB: band.memoryMiBMin,
    },
    pidsLimit: options.pidsLimit ?? DEFAULT_PIDS_LIMIT,
    cpuShares: Math.max(2, Math.round((band.cpuMillicoresMin * 1024) / 1000)),
    band,
    hardening: HARDENING,
    network: options.network ?? deploymentNetworkName(placement.deviceId, placement.deploymentId, internal),
    restartPolicy: manifest.restartPolicy,
    stopTimeoutS: options.stopTimeoutS ?? DEFAULT_STOP_TIMEOUT_S,
    logging: options.logging ?? { maxSizeMiB: 10, maxFiles: 2 },
    extraLabels: { ...(options.extraLabels ?? {}) },
  };
  if (spec.network === "host" || spec.network.startsWith("container:")) {
    throw new ContainerSpecError(`network "${spec.network}" shares a namespace; use a bridge network`);
  }
  if (options.network === undefined) spec.deploymentNetwork = { internal };
  if (manifest.command !== undefined) spec.entrypoint = [...manifest.command];
  if (manifest.args !== undefined) spec.cmd = [...manifest.args];
  if (manifest.user !== undefined)
    spec.user = { uid: manifest.user.uid, gid: manifest.user.gid ?? manifest.user.uid };
  if (options.cgroupParent !== undefined) spec.cgroupParent = options.cgroupParent;
  const check = manifest.healthCheck;
  // exec checks run inside the container by Docker's HEALTHCHECK; httpGet checks are made by the
  // worker from outside, since an image need not hold an HTTP client.
  const timing = check && {
    intervalS: check.intervalSeconds,
    timeoutS: check.timeoutSeconds,
    retries: check.retries,
    startPeriodS: check.startPeriodSeconds,
  };
  if (check?.exec !== undefined) spec.healthCheck = { test: ["CMD", ...check.exec], ...timing! };
  if (check?.httpGet !== undefined)
    spec.httpProbe = { port: check.httpGet.port, path: check.httpGet.path, ...timing! };
  return spec;
}

/** Stable hash of everything that defines the container: `sha256:<hex>` of its stable JSON. */
export function specHash(spec: ContainerSpec): string {
  return `sha256:${createHash("sha256").update(stableStringify(spec)).digest("hex")}`;
}

/** The labels of the container: identity, ownership and the spec hash, plus the extra labels. */
export function containerLabels(spec: ContainerSpec, hash: string = specHash(spec)): Record<string, string> {
  return {
    ...spec.extraLabels,
    [SHOAL_LABELS.managed]: "true",
    [SHOAL_LABELS.device]: spec.identity.deviceId,
    [SHOAL_LABELS.placement]: spec.identity.placementId,
    [SHOAL_LABELS.deployment]: spec.identity.deploymentId,
    [SHOAL_LABELS.app]: spec.identity.appId,
    [SHOAL_LABELS.version]: spec.identity.version,
    [SHOAL_LABELS.specHash]: hash,
  };
}

/** CFS quota in microseconds per CPU_PERIOD_US for a number of millicores (at least 1 ms). */
export function cpuQuotaUs(cpuMillicores: number): number {
  return Math.max(MIN_CPU_QUOTA_US, Math.round((cpuMillicores * CPU_PERIOD_US) / 1000));
}

export type EffectiveUser = { ok: true; user: string } | { ok: false; problem: string };

/**
 * The user the container runs as: the manifest's `uid:gid`, else the image's USER when it is a
 * numeric non-root uid (with an optional numeric non-root gid). Names are refused because what
 * they resolve to inside the image cannot be checked before the process starts; root is refused
 * always. Shoal does not silently substitute another uid: a file layout built for one user would
 * fail in confusing ways under another.
 */
export function effectiveUser(
  spec: Pick<ContainerSpec, "user">,
  imageUser: string | undefined,
): EffectiveUser {
  if (spec.user !== undefined) {
    if (spec.user.uid === 0 || spec.user.gid === 0)
      return { ok: false, problem: "the manifest's user is root" };
    return { ok: true, user: `${spec.user.uid}:${spec.user.gid}` };
  }
  const raw = (imageUser ?? "").trim();
  if (raw === "") {
    return {
      ok: false,
      problem: "the image has no USER (it would run as root); set user.uid in the manifest",
    };
  }
  const match = /^([0-9]+)(?::([0-9]+))?$/.exec(raw);
  if (!match) {
    return {
      ok: false,
      problem: `the image's USER "${raw}" is not numeric; set user.uid in the manifest`,
    };
  }
  const uid = Number(match[1]);
  const gid = match[2] === undefined ? uid : Number(match[2]);
  if (uid === 0 || gid === 0) {
    return {
      ok: false,
      problem: `the image's USER "${raw}" is root; set a non-root user.uid in the manifest`,
    };
  }
  return { ok: true, user: `${uid}:${gid}` };
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
