/**
 * The worker's configuration: a JSON file (--config) and/or environment variables, environment
 * winning. Every value is checked up front, and a bad one stops the worker with one sentence naming
 * the field, the value and what is allowed, before anything is started.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { ShoalError } from "./errors";
import { DEFAULT_BRIDGES, MAX_BRIDGES, MIN_BRIDGES } from "./domain/election";

export interface WorkerConfig {
  /** EVM JSON-RPC endpoint. */
  rpcUrl: string;
  /** Hex private key of the device's operator (the key the worker signs with). */
  operatorKey: string;
  /** The device's id in the DeviceRegistry. */
  deviceId: number;
  /** deployments/<network>.json written by scripts/deploy.ts. */
  deploymentsFile: string;
  mqttUrl: string;
  /**
   * The device's own broker credentials (docs/operate-a-device.md): from mqttUsername/mqttPassword
   * or the user:password of mqttUrl, which is then stored without them so no log line shows them.
   */
  mqttUsername?: string;
  mqttPassword?: string;
  kuboUrl: string;
  /** Docker Engine socket path. */
  dockerSocket: string;
  /** Checkpoints and local state of this device. */
  dataDir: string;
  /** Blocks behind the head that count as final. */
  confirmations: number;
  /** How often the chain is polled for new logs. */
  pollIntervalMs: number;
  /** Longest wait between two reconcile passes when nothing marks the loop dirty. */
  reconcileIntervalMs: number;
  /** Seconds between heartbeats; 0 = a third of the contract's heartbeat TTL. */
  heartbeatIntervalS: number;
  /** Prometheus /metrics port on metricsHost; 0 turns the endpoint off. */
  metricsPort: number;
  metricsHost: string;
  claim: { enabled: boolean; maxDelayMs: number; jitterMs: number };
  /**
   * The chain -> MQTT bridge: `count` devices (1-5) are elected from the online presences to read
   * the chain and publish its events; the others learn events from MQTT. enabled false: this
   * device is never elected. See docs/worker.md, "Bridge election".
   */
  bridge: { enabled: boolean; count: number };
  /**
   * The keeper: expires stale devices and finalizes expired placements and overdue claims of other
   * devices, each duty `0..jitterMs` after it comes due (drawn per duty), and at most once per
   * `retryMs` while its event has not arrived. See docs/worker.md.
   */
  keeper: { enabled: boolean; jitterMs: number; retryMs: number };
  /**
   * The resource manager: caps the device's containers at its enrolled capacity (a per-device
   * cgroup) and resizes each container within its band every `periodMs`; between two periods its
   * fast path reads the CPU counters every `fastPeriodMs` and raises a throttled container at once
   * (0, or not below periodMs, turns it off). See docs/resource-manager.md.
   */
  resources: {
    enabled: boolean;
    periodMs: number;
    fastPeriodMs: number;
    /**
     * The anchored decision log: an epoch closes at `epochMaxRecords` decisions or `epochMaxAgeMs`
     * after its first, whichever comes first, and is then stored in Kubo and anchored on chain.
     */
    epochMaxRecords: number;
    epochMaxAgeMs: number;
  };
  /**
   * Peering (docs/worker.md, "Peering"): keeps the device's Kubo node connected to at most
   * `maxPeers` fleet peers found on chain (version providers first, then the nearest devices),
   * checked every `refreshMs` and on every endpoint change. `updateEndpoint`: when the enrolled
   * endpoint names another peer id than the Kubo node's, set it on chain (true) or only warn.
   */
  peering: { enabled: boolean; maxPeers: number; refreshMs: number; updateEndpoint: boolean };
  /**
   * Where replicas' ports are published (docs/worker.md, "Exposure"): an address of the device
   * (127.0.0.1 keeps them on the device; in the fleet the device's own address), and optionally a
   * host-port range (hostPortMin..hostPortMax; 0 and 0: any free port).
   */
  exposure: { address: string; hostPortMin: number; hostPortMax: number };
  /** false: no app on this device may open outbound connections (all run as egress none). */
  outboundAllowed: boolean;
  /**
   * Image retention (docs/worker.md, "Image retention"): the device keeps pinned and loaded the
   * images of its live placements, those any container uses, those delivered less than `minAgeMs`
   * ago and the `keepRecent` most recently used others; it unpins and untags the rest, looking
   * again when its placements change and every `intervalMs`. Disabled: every image stays pinned.
   */
  imageRetention: { enabled: boolean; keepRecent: number; minAgeMs: number; intervalMs: number };
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
}

export class ConfigError extends ShoalError {
  override name = "ConfigError";
}

const DEFAULTS: Omit<WorkerConfig, "operatorKey" | "deviceId" | "mqttUsername" | "mqttPassword"> = {
  rpcUrl: "http://127.0.0.1:8545",
  deploymentsFile: "deployments/localhost.json",
  mqttUrl: "mqtt://127.0.0.1:1883",
  kuboUrl: "http://127.0.0.1:5401",
  dockerSocket: "/var/run/docker.sock",
  dataDir: ".shoal/worker",
  confirmations: 0,
  pollIntervalMs: 1000,
  reconcileIntervalMs: 5000,
  heartbeatIntervalS: 0,
  metricsPort: 0,
  metricsHost: "127.0.0.1",
  claim: { enabled: true, maxDelayMs: 2000, jitterMs: 250 },
  bridge: { enabled: true, count: DEFAULT_BRIDGES },
  keeper: { enabled: true, jitterMs: 5000, retryMs: 30_000 },
  resources: {
    enabled: true,
    periodMs: 1000,
    fastPeriodMs: 100,
    epochMaxRecords: 64,
    epochMaxAgeMs: 300_000,
  },
  peering: { enabled: true, maxPeers: 16, refreshMs: 30_000, updateEndpoint: false },
  exposure: { address: "127.0.0.1", hostPortMin: 0, hostPortMax: 0 },
  outboundAllowed: true,
  imageRetention: { enabled: true, keepRecent: 3, minAgeMs: 600_000, intervalMs: 300_000 },
  logLevel: "info",
};

/** Environment variable of each top-level field. */
export const ENV: Record<string, keyof WorkerConfig> = {
  SHOAL_RPC_URL: "rpcUrl",
  SHOAL_OPERATOR_KEY: "operatorKey",
  SHOAL_DEVICE_ID: "deviceId",
  SHOAL_DEPLOYMENTS_FILE: "deploymentsFile",
  SHOAL_MQTT_URL: "mqttUrl",
  SHOAL_MQTT_USERNAME: "mqttUsername",
  SHOAL_MQTT_PASSWORD: "mqttPassword",
  SHOAL_KUBO_URL: "kuboUrl",
  SHOAL_DOCKER_SOCKET: "dockerSocket",
  SHOAL_DATA_DIR: "dataDir",
  SHOAL_CONFIRMATIONS: "confirmations",
  SHOAL_POLL_INTERVAL_MS: "pollIntervalMs",
  SHOAL_METRICS_PORT: "metricsPort",
  SHOAL_LOG_LEVEL: "logLevel",
  SHOAL_OUTBOUND_ALLOWED: "outboundAllowed",
};

/** Nested settings with an environment variable of their own. */
const NESTED_ENV: Record<string, [string, string]> = {
  SHOAL_RESOURCES_ENABLED: ["resources", "enabled"],
  SHOAL_RESOURCES_EPOCH_MAX_RECORDS: ["resources", "epochMaxRecords"],
  SHOAL_RESOURCES_EPOCH_MAX_AGE_MS: ["resources", "epochMaxAgeMs"],
  SHOAL_PEERING_ENABLED: ["peering", "enabled"],
  SHOAL_PEERING_MAX_PEERS: ["peering", "maxPeers"],
  SHOAL_PEERING_UPDATE_ENDPOINT: ["peering", "updateEndpoint"],
  SHOAL_BRIDGES: ["bridge", "count"],
  SHOAL_EXPOSURE_ADDRESS: ["exposure", "address"],
  SHOAL_IMAGE_RETENTION_ENABLED: ["imageRetention", "enabled"],
  SHOAL_IMAGE_RETENTION_KEEP_RECENT: ["imageRetention", "keepRecent"],
  SHOAL_IMAGE_RETENTION_MIN_AGE_MS: ["imageRetention", "minAgeMs"],
};

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;

function bad(field: string, value: unknown, allowed: string): never {
  throw new ConfigError(`${field}: ${JSON.stringify(value)} is not allowed; ${allowed}`);
}

function integer(field: string, value: unknown, min: number, max: number): number {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max)
    bad(field, value, `use a whole number from ${min} to ${max}`);
  return n;
}

function url(field: string, value: unknown, protocols: string[]): string {
  if (typeof value !== "string") bad(field, value, `use a ${protocols.join(" or ")} URL`);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    bad(field, value, `use a ${protocols.join(" or ")} URL such as ${protocols[0]}//127.0.0.1`);
  }
  if (!protocols.includes(parsed.protocol)) bad(field, value, `use a ${protocols.join(" or ")} URL`);
  return value;
}

function text(field: string, value: unknown): string {
  if (typeof value !== "string" || value.trim() === "") bad(field, value, "use a non-empty string");
  return value;
}

function flag(field: string, value: unknown): boolean {
  if (value === "true" || value === "1") return true;
  if (value === "false" || value === "0") return false;
  if (typeof value !== "boolean") bad(field, value, "use true or false");
  return value;
}

/** Splits user:password out of the broker URL; explicit settings win over the URL's. */
function mqttCredentials(
  mqttUrl: string,
  merged: Record<string, unknown>,
): Pick<WorkerConfig, "mqttUrl" | "mqttUsername" | "mqttPassword"> {
  const parsed = new URL(mqttUrl);
  const fromUrl = {
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
  };
  parsed.username = "";
  parsed.password = "";
  const username = merged.mqttUsername ?? fromUrl.username;
  const password = merged.mqttPassword ?? fromUrl.password;
  if (username !== undefined) text("mqttUsername", username);
  // Never echo a password, even a malformed one.
  if (password !== undefined && (typeof password !== "string" || password === ""))
    throw new ConfigError("mqttPassword: the value is not a password; use a non-empty string");
  return {
    mqttUrl: parsed.toString().replace(/\/$/, ""),
    ...(username === undefined ? {} : { mqttUsername: username as string }),
    ...(password === undefined ? {} : { mqttPassword: password as string }),
  };
}

/** Reads, merges and validates the configuration; relative paths resolve against `cwd`. */
export function loadConfig(
  options: { file?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): WorkerConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  let fromFile: Record<string, unknown> = {};
  if (options.file) {
    let raw: string;
    try {
      raw = readFileSync(options.file, "utf8");
    } catch (error) {
      throw new ConfigError(`--config: cannot read ${options.file}`, { cause: error });
    }
    try {
      fromFile = JSON.parse(raw) as Record<string, unknown>;
    } catch (error) {
      throw new ConfigError(`--config: ${options.file} is not valid JSON`, { cause: error });
    }
    if (typeof fromFile !== "object" || fromFile === null || Array.isArray(fromFile)) {
      bad("--config", fromFile, "the file must hold a JSON object");
    }
    const known = new Set([
      ...Object.keys(DEFAULTS),
      "operatorKey",
      "deviceId",
      "mqttUsername",
      "mqttPassword",
    ]);
    for (const key of Object.keys(fromFile)) {
      if (!known.has(key))
        bad(
          key,
          fromFile[key],
          `it is not a worker setting; known settings: ${[...known].sort().join(", ")}`,
        );
    }
  }
  const merged: Record<string, unknown> = { ...DEFAULTS, ...fromFile };
  for (const [variable, field] of Object.entries(ENV)) {
    if (env[variable] !== undefined && env[variable] !== "") merged[field] = env[variable];
  }
  for (const [variable, [field, key]] of Object.entries(NESTED_ENV)) {
    const value = env[variable];
    if (value !== undefined && value !== "") merged[field] = { ...(merged[field] as object), [key]: value };
  }
  const nested = (field: string, defaults: Record<string, unknown>): Record<string, unknown> => {
    const value = merged[field] ?? {};
    if (typeof value !== "object" || value === null || Array.isArray(value))
      bad(field, value, "use an object");
    for (const key of Object.keys(value))
      if (!(key in defaults))
        bad(
          `${field}.${key}`,
          (value as Record<string, unknown>)[key],
          `known: ${Object.keys(defaults).join(", ")}`,
        );
    return { ...defaults, ...value };
  };

  if (merged.operatorKey === undefined)
    bad(
      "operatorKey",
      undefined,
      "set SHOAL_OPERATOR_KEY or operatorKey to the device operator's hex private key",
    );
  if (typeof merged.operatorKey !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(merged.operatorKey)) {
    // Never echo a key, even a malformed one.
    throw new ConfigError("operatorKey: the value is not a private key; use 0x followed by 64 hex digits");
  }
  if (merged.deviceId === undefined)
    bad(
      "deviceId",
      undefined,
      "set SHOAL_DEVICE_ID or deviceId to the enrolled device's id (device:list shows it)",
    );
  const claim = nested("claim", DEFAULTS.claim);
  const bridge = nested("bridge", DEFAULTS.bridge);
  const keeper = nested("keeper", DEFAULTS.keeper);
  const resources = nested("resources", DEFAULTS.resources);
  const peering = nested("peering", DEFAULTS.peering);
  const exposure = nested("exposure", DEFAULTS.exposure);
  if (typeof exposure.address !== "string" || isIP(exposure.address) === 0)
    bad(
      "exposure.address",
      exposure.address,
      "use an IP address of the device, like 127.0.0.1 or 10.213.0.10",
    );
  const hostPortMin = integer("exposure.hostPortMin", exposure.hostPortMin, 0, 65_535);
  const hostPortMax = integer("exposure.hostPortMax", exposure.hostPortMax, 0, 65_535);
  if (
    (hostPortMin === 0) !== (hostPortMax === 0) ||
    hostPortMin > hostPortMax ||
    (hostPortMin > 0 && hostPortMin < 1024)
  )
    bad(
      "exposure.hostPortMin",
      hostPortMin,
      `use 0 and 0 (any free port) or a range 1024 <= hostPortMin <= hostPortMax <= 65535 (hostPortMax is ${hostPortMax})`,
    );
  const imageRetention = nested("imageRetention", DEFAULTS.imageRetention);
  const logLevel = merged.logLevel;
  const mqtt = mqttCredentials(url("mqttUrl", merged.mqttUrl, ["mqtt:", "mqtts:", "ws:", "wss:"]), merged);
  if (!LOG_LEVELS.includes(logLevel as (typeof LOG_LEVELS)[number]))
    bad("logLevel", logLevel, `use one of ${LOG_LEVELS.join(", ")}`);

  return {
    rpcUrl: url("rpcUrl", merged.rpcUrl, ["http:", "https:", "ws:", "wss:"]),
    operatorKey: merged.operatorKey,
    deviceId: integer("deviceId", merged.deviceId, 1, 2 ** 32 - 1),
    deploymentsFile: path.resolve(cwd, text("deploymentsFile", merged.deploymentsFile)),
    ...mqtt,
    kuboUrl: url("kuboUrl", merged.kuboUrl, ["http:", "https:"]),
    dockerSocket: path.resolve(cwd, text("dockerSocket", merged.dockerSocket)),
    dataDir: path.resolve(cwd, text("dataDir", merged.dataDir)),
    confirmations: integer("confirmations", merged.confirmations, 0, 1000),
    pollIntervalMs: integer("pollIntervalMs", merged.pollIntervalMs, 50, 600_000),
    reconcileIntervalMs: integer("reconcileIntervalMs", merged.reconcileIntervalMs, 100, 3_600_000),
    heartbeatIntervalS: integer("heartbeatIntervalS", merged.heartbeatIntervalS, 0, 86_400),
    metricsPort: integer("metricsPort", merged.metricsPort, 0, 65_535),
    metricsHost: text("metricsHost", merged.metricsHost),
    claim: {
      enabled: flag("claim.enabled", claim.enabled),
      maxDelayMs: integer("claim.maxDelayMs", claim.maxDelayMs, 0, 600_000),
      jitterMs: integer("claim.jitterMs", claim.jitterMs, 0, 60_000),
    },
    bridge: {
      enabled: flag("bridge.enabled", bridge.enabled),
      count: integer("bridge.count", bridge.count, MIN_BRIDGES, MAX_BRIDGES),
    },
    keeper: {
      enabled: flag("keeper.enabled", keeper.enabled),
      jitterMs: integer("keeper.jitterMs", keeper.jitterMs, 0, 600_000),
      retryMs: integer("keeper.retryMs", keeper.retryMs, 1000, 3_600_000),
    },
    resources: {
      enabled: flag("resources.enabled", resources.enabled),
      periodMs: integer("resources.periodMs", resources.periodMs, 100, 60_000),
      fastPeriodMs: integer("resources.fastPeriodMs", resources.fastPeriodMs, 0, 60_000),
      epochMaxRecords: integer("resources.epochMaxRecords", resources.epochMaxRecords, 1, 10_000),
      epochMaxAgeMs: integer("resources.epochMaxAgeMs", resources.epochMaxAgeMs, 1000, 86_400_000),
    },
    peering: {
      enabled: flag("peering.enabled", peering.enabled),
      maxPeers: integer("peering.maxPeers", peering.maxPeers, 1, 1000),
      refreshMs: integer("peering.refreshMs", peering.refreshMs, 1000, 3_600_000),
      updateEndpoint: flag("peering.updateEndpoint", peering.updateEndpoint),
    },
    exposure: { address: exposure.address, hostPortMin, hostPortMax },
    outboundAllowed: flag("outboundAllowed", merged.outboundAllowed),
    imageRetention: {
      enabled: flag("imageRetention.enabled", imageRetention.enabled),
      keepRecent: integer("imageRetention.keepRecent", imageRetention.keepRecent, 0, 1000),
      minAgeMs: integer("imageRetention.minAgeMs", imageRetention.minAgeMs, 0, 86_400_000),
      intervalMs: integer("imageRetention.intervalMs", imageRetention.intervalMs, 1000, 86_400_000),
    },
    logLevel: logLevel as WorkerConfig["logLevel"],
  };
}
