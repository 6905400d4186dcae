/**
 * Hollow devices, as Kubernetes' Kubemark hollow nodes: one process runs the real worker (chain
 * source, bridge, bus, claimer, keeper, reconciler, delivery: runWorker of main.ts, not a copy) of
 * many devices, each with its own operator key, on-chain enrollment, broker user and MQTT
 * connection, over an in-memory container runtime and one in-memory content store shared by all of
 * them. No Docker, no Kubo; the resource manager is off (there are no cgroups to measure).
 *
 * Wiring only, like main.ts: enrollHollowDevices() stakes and enrolls N devices in batches (many
 * transactions in flight per block), runHollowDevices() runs their workers until a signal. The CLI
 * is scripts/hollow.ts.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import {
  JsonRpcProvider,
  Network,
  NonceManager,
  Wallet,
  id,
  parseEther,
  type TransactionResponse,
} from "ethers";
import pino, { type Logger } from "pino";
import { AppRegistry__factory, DeviceRegistry__factory, ShoalToken__factory } from "../../typechain-types";
import { createMemoryContentStore } from "./adapters/memory-content-store";
import { createMemoryRuntime, hollowImageTar, type MemoryRuntime } from "./adapters/memory-runtime";
import { loadConfig, type WorkerConfig } from "./config";
import { bandToChain } from "./domain/band";
import type { DeploymentRecord } from "./domain/deployment-record";
import { canonicalManifestBytes, parseManifest, resourceBand, type Platform } from "./domain/manifest";
import { ShoalError } from "./errors";
import { runWorker } from "./main";
import type { ContentStore } from "./ports/content-store";

export class HollowError extends ShoalError {
  override name = "HollowError";
}

export interface HollowDevice {
  deviceId: number;
  /** Hex private key of the device's operator. */
  operatorKey: string;
  /** The device's own broker user, when the broker has users (scripts/fleet/credentials.ts). */
  mqtt?: { username: string; password: string };
}

export interface HollowDeviceSpec {
  cpuMillicores: number;
  memoryMiB: number;
  platform: string;
  labels: string[];
}

export interface EnrollHollowOptions {
  rpcUrl: string;
  record: DeploymentRecord;
  /** Pays the gas of each device's first transactions and stakes for it; holds the token's MINTER_ROLE. */
  ownerKey: string;
  count: number;
  spec: HollowDeviceSpec;
  /** Stake per device in token base units. Default: the DeviceRegistry's minStake plus 10 collaterals. */
  stake?: bigint;
  /** Native currency each operator receives for its own transactions. Default 1 ETH. */
  gasFunds?: bigint;
  /** Transactions sent before waiting for their receipts. Default 200. */
  batch?: number;
  /** Seed of the operator keys (deterministic, so a rerun finds the same operators). */
  seed?: string;
  onProgress?: (done: number, total: number, what: string) => void;
}

/** The operator key of hollow device `index` (1-based) under `seed`: a hash, never a secret. */
export function hollowOperatorKey(seed: string, index: number): string {
  return id(`shoal hollow operator ${seed} ${index}`);
}

/**
 * Enrolls `count` devices owned by `ownerKey`, each with its own operator: mints and approves the
 * stakes once, then sends the operators' gas money and the enrollments `batch` at a time with
 * explicit nonces, so a 2-s block holds hundreds of them. Returns the devices in enrollment order.
 */
export async function enrollHollowDevices(options: EnrollHollowOptions): Promise<HollowDevice[]> {
  const { record, count, spec } = options;
  const batch = options.batch ?? 200;
  const seed = options.seed ?? `${record.chainId}-${record.contracts.DeviceRegistry.address.toLowerCase()}`;
  const provider = new JsonRpcProvider(options.rpcUrl, Network.from(record.chainId), {
    staticNetwork: true,
    cacheTimeout: -1,
    pollingInterval: 250,
  });
  try {
    const owner = new Wallet(options.ownerKey, provider);
    const devices = DeviceRegistry__factory.connect(record.contracts.DeviceRegistry.address, owner);
    const token = ShoalToken__factory.connect(record.contracts.ShoalToken.address, owner);
    const parameters = await devices.parameters();
    const stake = options.stake ?? parameters.minStake + 10n * parameters.collateralPerPlacement;
    const gasFunds = options.gasFunds ?? parseEther("1");
    const operators = Array.from({ length: count }, (_, i) => new Wallet(hollowOperatorKey(seed, i + 1)));
    const say = options.onProgress ?? (() => undefined);

    // Fees and nonces are set here once, so each transaction costs one eth_sendRawTransaction and
    // hundreds fit in one block; gas limits are fixed above what enroll and a transfer use.
    const fees = await provider.getFeeData();
    const overrides = {
      maxFeePerGas: (fees.maxFeePerGas ?? 10n ** 10n) * 2n,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas ?? 10n ** 9n,
      chainId: record.chainId,
    };
    let nonce = await provider.getTransactionCount(owner.address, "pending");
    await (await token.mint(owner.address, stake * BigInt(count), { ...overrides, nonce: nonce++ })).wait();
    await (
      await token.approve(record.contracts.DeviceRegistry.address, stake * BigInt(count), {
        ...overrides,
        nonce: nonce++,
      })
    ).wait();

    const ids: number[] = [];
    for (let start = 0; start < count; start += batch) {
      // Sent one after the other (an automining node refuses a nonce ahead of the next one), and
      // awaited together: the receipts of a batch arrive in a block or two.
      const sent: TransactionResponse[] = [];
      for (const [i, operator] of operators.slice(start, start + batch).entries()) {
        sent.push(
          await owner.sendTransaction({
            to: operator.address,
            value: gasFunds,
            gasLimit: 21_000n,
            ...overrides,
            nonce: nonce++,
          }),
        );
        sent.push(
          await devices.enroll(
            operator.address,
            spec.platform,
            spec.cpuMillicores,
            spec.memoryMiB,
            spec.labels,
            `/ip4/127.0.0.1/tcp/4001/p2p/hollow-${start + i + 1}`,
            stake,
            { gasLimit: 1_000_000n, ...overrides, nonce: nonce++ },
          ),
        );
      }
      const registry = await devices.getAddress();
      const receipts = await Promise.all(sent.map((tx) => tx.wait()));
      for (const receipt of receipts) {
        for (const log of receipt?.logs ?? []) {
          const parsed = log.address === registry ? devices.interface.parseLog(log) : null;
          if (parsed?.name === "DeviceEnrolled") ids.push(Number(parsed.args.deviceId));
        }
      }
      say(Math.min(count, start + batch), count, "enrolled");
    }
    if (ids.length !== count) throw new HollowError(`enrolled ${ids.length} of ${count} hollow devices`);
    return ids.map((deviceId, i) => ({ deviceId, operatorKey: operators[i].privateKey }));
  } finally {
    provider.destroy();
  }
}

export interface RunHollowOptions {
  rpcUrl: string;
  deploymentsFile: string;
  /** The broker, without credentials; each device connects as its own user (HollowDevice.mqtt). */
  mqttUrl: string;
  devices: readonly HollowDevice[];
  /** Each device's checkpoints go to <dataDir>/device-<id>. */
  dataDir: string;
  /** Shared by every device (default: a new in-memory store): publish the apps' content into it. */
  contentStore?: ContentStore;
  /** Settings every device gets on top of the worker's defaults (pollIntervalMs, claim, keeper...). */
  config?: Partial<Omit<WorkerConfig, "deviceId" | "operatorKey">>;
  /** One line per device start and stop is at "info"; the workers log at this level. Default "warn". */
  logLevel?: WorkerConfig["logLevel"];
  logger?: Logger;
  /** Called once per device whose worker was launched, and once when it stopped or failed. */
  onProgress?: (event: { type: "started" | "stopped" | "failed"; deviceId: number; error?: unknown }) => void;
  /** Devices are started this many at a time, so N connections do not hit the broker at once. Default 25. */
  startBatch?: number;
}

export interface HollowFleet {
  /** Each device's in-memory runtime, for tests and benches that look inside. */
  runtimes: ReadonlyMap<number, MemoryRuntime>;
  contentStore: ContentStore;
  /** Resolves when every worker stopped (the signal aborted, or they failed). */
  done: Promise<{ failed: number }>;
}

/** Starts the workers of `devices` in this process; they run until `signal` aborts. */
export function runHollowDevices(options: RunHollowOptions, signal: AbortSignal): HollowFleet {
  const contentStore = options.contentStore ?? createMemoryContentStore();
  const logger = options.logger ?? pino({ level: options.logLevel ?? "warn" });
  const runtimes = new Map<number, MemoryRuntime>();
  const startBatch = options.startBatch ?? 25;
  const report = options.onProgress ?? (() => undefined);
  const workers: Promise<boolean>[] = [];

  const configOf = (device: HollowDevice): WorkerConfig => {
    const config = loadConfig({
      env: {
        SHOAL_RPC_URL: options.rpcUrl,
        SHOAL_OPERATOR_KEY: device.operatorKey,
        SHOAL_DEVICE_ID: String(device.deviceId),
        SHOAL_DEPLOYMENTS_FILE: options.deploymentsFile,
        SHOAL_MQTT_URL: options.mqttUrl,
        ...(device.mqtt
          ? { SHOAL_MQTT_USERNAME: device.mqtt.username, SHOAL_MQTT_PASSWORD: device.mqtt.password }
          : {}),
        SHOAL_DATA_DIR: path.join(options.dataDir, `device-${device.deviceId}`),
        SHOAL_RESOURCES_ENABLED: "false",
        SHOAL_PEERING_ENABLED: "false",
        SHOAL_LOG_LEVEL: options.logLevel ?? "warn",
      },
    });
    return {
      ...config,
      ...options.config,
      resources: { ...config.resources, enabled: false },
      peering: { ...config.peering, enabled: false },
    };
  };

  const started = (async () => {
    for (let i = 0; i < options.devices.length && !signal.aborted; i += startBatch) {
      await Promise.all(
        options.devices.slice(i, i + startBatch).map(async (device) => {
          const config = configOf(device);
          await mkdir(config.dataDir, { recursive: true });
          const runtime = createMemoryRuntime();
          runtimes.set(device.deviceId, runtime);
          const child = logger.child({ device: device.deviceId });
          workers.push(
            runWorker(config, signal, child, { runtime, contentStore }).then(
              () => {
                report({ type: "stopped", deviceId: device.deviceId });
                return true;
              },
              (error: unknown) => {
                child.error({ err: error }, "hollow device failed");
                report({ type: "failed", deviceId: device.deviceId, error });
                return false;
              },
            ),
          );
          report({ type: "started", deviceId: device.deviceId });
        }),
      );
      // Let the batch connect before the next one: a broker and a node take N connections better in steps.
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();

  const done = started.then(async () => {
    const results = await Promise.all(workers);
    return { failed: results.filter((ok) => !ok).length };
  });
  return { runtimes, contentStore, done };
}

export interface HollowAppOptions {
  rpcUrl: string;
  record: DeploymentRecord;
  /** The app owner. */
  ownerKey: string;
  /** Where the hollow devices fetch from: the manifest and a hollowImageTar() are added to it. */
  contentStore: ContentStore;
  name: string;
  platform?: Platform;
  /** The band's CPU minimum (what a claim reserves), e.g. "100m". Default "100m". */
  cpuMin?: string;
  /** The band's memory minimum, e.g. "16Mi". Default "16Mi". */
  memoryMin?: string;
}

export interface HollowApp {
  appId: number;
  version: number;
  manifestCid: string;
  imageCid: string;
}

/**
 * Adds a hollow app's manifest and image to `contentStore` and returns their CIDs: the same bytes,
 * so the same CIDs, for the same options, which lets hollow devices of another process (with a
 * store of their own) run an app publishHollowApp() published.
 */
export async function addHollowAppContent(
  contentStore: ContentStore,
  options: Pick<HollowAppOptions, "name" | "platform" | "cpuMin" | "memoryMin">,
): Promise<{ manifestCid: string; imageCid: string; band: ReturnType<typeof bandToChain> }> {
  const platform = options.platform ?? "linux/amd64";
  const manifest = parseManifest(
    [
      "schemaVersion: 1",
      `name: ${options.name}`,
      'version: "1.0.0"',
      "images:",
      `  ${platform}:`,
      `    ref: shoal/${options.name}:hollow`,
      "resources:",
      `  cpu: { min: ${options.cpuMin ?? "100m"}, max: 500m }`,
      `  memory: { min: ${options.memoryMin ?? "16Mi"}, max: 64Mi }`,
      "restartPolicy: always",
    ].join("\n"),
    { source: `hollow app ${options.name}` },
  );
  const { cid: imageCid } = await contentStore.add(hollowImageTar({ platform, label: options.name }));
  const { cid: manifestCid } = await contentStore.add(
    canonicalManifestBytes(manifest, { [platform]: imageCid }),
  );
  return { manifestCid, imageCid, band: bandToChain(resourceBand(manifest)) };
}

/**
 * Registers an app whose image is a hollowImageTar() and publishes one version of it, with the
 * manifest and image in `contentStore` (what app:publish does with Kubo and a real image).
 */
export async function publishHollowApp(options: HollowAppOptions): Promise<HollowApp> {
  const platform = options.platform ?? "linux/amd64";
  const { manifestCid, imageCid, band } = await addHollowAppContent(options.contentStore, options);
  const provider = new JsonRpcProvider(options.rpcUrl, Network.from(options.record.chainId), {
    staticNetwork: true,
    cacheTimeout: -1,
    pollingInterval: 250,
  });
  try {
    const apps = AppRegistry__factory.connect(
      options.record.contracts.AppRegistry.address,
      new NonceManager(new Wallet(options.ownerKey, provider)),
    );
    await (await apps.registerApp(options.name)).wait();
    const appId = Number(await apps.appIdOf(options.name));
    await (await apps.publishVersion(appId, manifestCid, [platform], [imageCid], band)).wait();
    const version = Number((await apps.app(appId)).versionCount);
    return { appId, version, manifestCid, imageCid };
  } finally {
    provider.destroy();
  }
}
