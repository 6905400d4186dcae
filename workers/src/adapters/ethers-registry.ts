/** The Registry port over ethers v6 and the typechain bindings of the three registries. */
import {
  Interface,
  NonceManager,
  Wallet,
  id as keccakText,
  isError,
  type CallExceptionError,
  type JsonRpcProvider,
  type TransactionReceipt,
} from "ethers";
import {
  AppRegistry__factory,
  DeviceRegistry__factory,
  PlacementRegistry__factory,
} from "../../../typechain-types";
import { DEVICE_STATUSES } from "../domain/chain-enums";
import {
  FAILURE_CODES,
  PLACEMENT_STATES,
  RegistryError,
  type Band,
  type DeploymentView,
  type FailureCode,
  type EndpointRegistry,
  type KeeperRegistry,
  type PlacementView,
  type Registry,
  type TxResult,
} from "../ports/registry";
import { setBounded } from "../domain/bounded";
import { onAbort } from "../lib/supervise";
import { createHeartbeat, type HeartbeatOptions } from "./ethers-heartbeat";

/** App versions read and kept (immutable; a long-lived worker would otherwise keep every one). */
const VERSION_CACHE_SIZE = 1_000;

// The port's error (workers/src/ports/registry.ts), re-exported for this adapter's users.
export { RegistryError };
export type { HeartbeatOptions } from "./ethers-heartbeat";

/**
 * Every custom error of the three registries. ethers names a revert only when the called contract's
 * ABI declares it; a gas estimate, or an error raised by another registry during the call, arrives
 * as "unknown custom error" with raw data, which this decodes by name.
 */
const REGISTRY_ERRORS = new Interface(
  [...AppRegistry__factory.abi, ...DeviceRegistry__factory.abi, ...PlacementRegistry__factory.abi].filter(
    (fragment) => fragment.type === "error",
  ),
);

/**
 * The revert data of an error: ethers puts it in `data`; a node that reverts the transaction at
 * `eth_sendRawTransaction` (Hardhat's automine does) reaches ethers as an UNKNOWN_ERROR with the
 * data nested in the JSON-RPC error (`error.data.data`).
 */
function revertData(error: unknown, depth = 0): string | undefined {
  if (depth > 4 || typeof error !== "object" || error === null) return undefined;
  const { data } = error as { data?: unknown };
  if (typeof data === "string") return /^0x[0-9a-fA-F]{8}/.test(data) ? data : undefined;
  for (const key of ["data", "error", "info"]) {
    const found = revertData((error as Record<string, unknown>)[key], depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

function decodeRevert(error: unknown): { name: string; args: readonly unknown[] } | undefined {
  const known = (error as { revert?: { name: string; args: readonly unknown[] } | null }).revert;
  if (known) return known;
  const data = revertData(error);
  if (data === undefined) return undefined;
  try {
    const parsed = REGISTRY_ERRORS.parseError(data);
    return parsed ? { name: parsed.name, args: [...parsed.args] } : undefined;
  } catch {
    return undefined;
  }
}

/** A revert is final for this input; anything else (network, node restart, nonce race) may pass later. */
export function translateChainError(action: string, error: unknown): RegistryError {
  if (error instanceof RegistryError) return error;
  const revert = decodeRevert(error);
  if (revert) {
    const args = revert.args.map((a) => String(a)).join(", ");
    return new RegistryError(`${action}: reverted with ${revert.name}(${args})`, {
      cause: error,
      errorName: revert.name,
      errorArgs: revert.args,
    });
  }
  const code = (error as { code?: string }).code;
  const final = code === "CALL_EXCEPTION" || code === "INVALID_ARGUMENT";
  return new RegistryError(
    `${action}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`,
    {
      cause: error,
      retryable: !final,
    },
  );
}

/** The error of a call whose signal aborted; the signal's reason is its cause. */
export function registryAbortError(action: string, signal: AbortSignal): RegistryError {
  return new RegistryError(`${action} was aborted`, { cause: signal.reason });
}

/**
 * Settles with `work()`, or rejects with an abort error as soon as `signal` aborts. ethers' calls
 * take no signal, so the request itself runs on: a read's answer is dropped, and a transaction
 * already handed to the node may still be mined (the reconciler's next pass reads the chain).
 * An already aborted signal rejects before `work` starts, so nothing is sent.
 */
function abortable<T>(action: string, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
  if (!signal) return work();
  if (signal.aborted) return Promise.reject(registryAbortError(action, signal));
  return new Promise<T>((resolve, reject) => {
    // One listener on the signal however many calls wait on it (a claimer pass reads every
    // deployment it considers at once: 30 of them put 30 listeners on the worker's signal and
    // Node warned of a leak), removed when the work settles: see lib/supervise.ts.
    const off = onAbort(signal, () => reject(registryAbortError(action, signal)));
    work().then(resolve, reject).finally(off);
  });
}

export interface EthersRegistryOptions {
  provider: JsonRpcProvider;
  /** How heartbeats reuse fees and when they replace a stuck one (./ethers-heartbeat.ts). */
  heartbeat?: HeartbeatOptions;
  /** Addresses of the registries, from deployments/<network>.json (scripts/deploy.ts). */
  contracts: Record<"AppRegistry" | "DeviceRegistry" | "PlacementRegistry", { address: string }>;
  operatorKey: string;
  deviceId: number;
}

function band(b: {
  cpuMinMillicores: bigint;
  cpuMaxMillicores: bigint;
  memoryMinMiB: bigint;
  memoryMaxMiB: bigint;
}): Band {
  return {
    cpuMinMillicores: Number(b.cpuMinMillicores),
    cpuMaxMillicores: Number(b.cpuMaxMillicores),
    memoryMinMiB: Number(b.memoryMinMiB),
    memoryMaxMiB: Number(b.memoryMaxMiB),
  };
}

export function createEthersRegistry({
  provider,
  contracts,
  operatorKey,
  deviceId,
  heartbeat: heartbeatOptions,
}: EthersRegistryOptions): Registry & KeeperRegistry & EndpointRegistry {
  // One nonce sequence per worker: heartbeats, claims, confirms and keeper calls may overlap.
  const wallet = new Wallet(operatorKey, provider);
  const signer = new NonceManager(wallet);
  const apps = AppRegistry__factory.connect(contracts.AppRegistry.address, signer);
  const devices = DeviceRegistry__factory.connect(contracts.DeviceRegistry.address, signer);
  const placements = PlacementRegistry__factory.connect(contracts.PlacementRegistry.address, signer);
  const versions = new Map<
    string,
    { manifestCid: string; platforms: string[]; imageCids: string[]; band: Band }
  >();

  const read = <T>(action: string, call: () => Promise<T>, signal?: AbortSignal): Promise<T> =>
    abortable(action, signal, async () => {
      try {
        return await call();
      } catch (error) {
        throw translateChainError(action, error);
      }
    });

  const send = (
    action: string,
    call: () => Promise<{ to: string | null; data: string; wait(): Promise<TransactionReceipt | null> }>,
    signal?: AbortSignal,
  ): Promise<TransactionReceipt> =>
    abortable(action, signal, async () => {
      let sent: Awaited<ReturnType<typeof call>> | undefined;
      try {
        sent = await call();
        const receipt = await sent.wait();
        if (!receipt) throw new Error("no receipt");
        return receipt;
      } catch (error) {
        // A failed send may leave the local nonce ahead of the chain's; resync on the next send.
        signer.reset();
        if (sent && isError(error, "CALL_EXCEPTION") && error.receipt)
          throw await minedRevert(action, sent, error);
        throw translateChainError(action, error);
      }
    });
  /**
   * A transaction mined with status 0 carries no revert data (eth_estimateGas passed against the
   * state before another transaction of the same block, typically a lost claim race on 2-s blocks).
   * The same call replayed on the state after that block names the reason; when the replay passes
   * (the state moved on since) the error says only that it reverted.
   */
  const minedRevert = (
    action: string,
    sent: { to: string | null; data: string },
    error: CallExceptionError,
  ): Promise<RegistryError> =>
    nameMinedRevert(action, sent, error.receipt!.blockNumber, error.receipt!.hash, error);
  const nameMinedRevert = async (
    action: string,
    sent: { to: string | null; data: string },
    block: number,
    hash: string,
    cause?: unknown,
  ): Promise<RegistryError> => {
    try {
      await provider.call({ from: wallet.address, to: sent.to, data: sent.data, blockTag: block });
    } catch (replayed) {
      const named = translateChainError(action, replayed);
      if (named.errorName) return named;
    }
    return new RegistryError(`${action}: reverted in block ${block} (${hash})`, {
      cause,
      retryable: false,
    });
  };
  const heartbeatCall = {
    to: contracts.DeviceRegistry.address,
    data: devices.interface.encodeFunctionData("heartbeat", [deviceId]),
  };
  const beat = createHeartbeat({
    provider,
    wallet,
    nonces: signer,
    ...heartbeatCall,
    action: `heartbeat of device ${deviceId}`,
    translate: translateChainError,
    nameMinedRevert: (action, block, hash) => nameMinedRevert(action, heartbeatCall, block, hash),
    abortError: registryAbortError,
    options: heartbeatOptions,
  });
  const txResult = (r: TransactionReceipt): TxResult => ({
    hash: r.hash,
    gasUsed: r.gasUsed,
    blockNumber: r.blockNumber,
  });
  const overrides = (o?: { blockTag?: number | "pending" }) =>
    o?.blockTag === undefined ? {} : { blockTag: o.blockTag };

  const readDeployment = async (
    id: number,
    options?: { blockTag?: number | "pending" },
  ): Promise<DeploymentView> => {
    const [s, usage] = await Promise.all([
      apps.deploymentSummary(id, overrides(options)),
      placements.deploymentUsage(id, overrides(options)),
    ]);
    // Usage counts live replicas of the generation it last saw; after a roll nothing of the new
    // generation is live until the first claim syncs it.
    const live = Number(usage.generation) === Number(s.generation) ? Number(usage.liveReplicas) : 0;
    return {
      deploymentId: id,
      appId: Number(s.appId),
      version: Number(s.version),
      generation: Number(s.generation),
      replicas: Number(s.replicas),
      liveReplicas: live,
      active: s.active,
    };
  };

  return {
    deviceId,

    blockNumber: (options) =>
      read("reading the block number", () => provider.getBlockNumber(), options?.signal),

    device: (options) =>
      read(
        `reading device ${deviceId}`,
        async () => {
          const [d, usage, parameters] = await Promise.all([
            devices.device(deviceId, overrides(options)),
            placements.deviceUsage(deviceId, overrides(options)),
            devices.parameters(overrides(options)),
          ]);
          return {
            deviceId,
            status: DEVICE_STATUSES[Number(d.status)],
            platform: d.platform,
            labelKeys: [...d.labels],
            cpuCapacityMillicores: Number(d.cpuMillicores),
            memoryCapacityMiB: Number(d.memoryMiB),
            cpuReservedMillicores: Number(usage.cpuReservedMillicores),
            memoryReservedMiB: Number(usage.memoryReservedMiB),
            livePlacements: Number(usage.livePlacements),
            lastHeartbeat: Number(d.lastHeartbeat),
            heartbeatTtlS: Number(parameters.heartbeatTtl),
          };
        },
        options?.signal,
      ),

    deploymentCount: (options) =>
      read(
        "reading the deployment count",
        async () => Number(await apps.deploymentCount(overrides(options))),
        options?.signal,
      ),

    deployment: (deploymentId, options) =>
      read(
        `reading deployment ${deploymentId}`,
        () => readDeployment(deploymentId, options),
        options?.signal,
      ),

    replicaTerms: (deploymentId, platform, options) =>
      read(
        `reading the terms of deployment ${deploymentId}`,
        async () => {
          const t = await apps.claimTerms(deploymentId, platformKey(platform), overrides(options));
          return {
            deploymentId,
            appId: Number(t.appId),
            version: Number(t.version),
            generation: Number(t.generation),
            platformSupported: t.platformSupported,
            band: band(t.band),
            requiredLabelKeys: [...t.requiredLabels],
          };
        },
        options?.signal,
      ),

    activePlacementOf: (deploymentId, options) =>
      read(
        `reading the placement of deployment ${deploymentId}`,
        async () => {
          const id = await placements.activePlacementOf(deploymentId, deviceId, overrides(options));
          return id === 0n ? undefined : id.toString();
        },
        options?.signal,
      ),

    placementsOfDevice: (offset, limit, options) =>
      read(
        `reading placements of device ${deviceId}`,
        async () =>
          (await placements.placementsOfDevice(deviceId, offset, limit, overrides(options))).map(
            placementView,
          ),
        options?.signal,
      ),

    placementsOfDeployment: (deploymentId, options) =>
      read(
        `reading placements of deployment ${deploymentId}`,
        async () => {
          const all: PlacementView[] = [];
          for (let offset = 0; ; offset += 100) {
            const page = await placements.placementsOfDeployment(
              deploymentId,
              offset,
              100,
              overrides(options),
            );
            all.push(...page.map(placementView));
            if (page.length < 100) return all;
          }
        },
        options?.signal,
      ),

    placementState: (placementId, options) =>
      read(
        `reading placement ${placementId}`,
        async () =>
          PLACEMENT_STATES[Number(await placements.placementState(BigInt(placementId), overrides(options)))],
        options?.signal,
      ),

    version: (appId, versionNumber, platform, options) =>
      read(
        `reading version ${versionNumber} of app ${appId}`,
        async () => {
          // Versions are immutable: read each once.
          const key = `${appId}/${versionNumber}`;
          let v = versions.get(key);
          if (!v) {
            const raw = await apps.version(appId, versionNumber, overrides(options));
            v = {
              manifestCid: raw.manifestCid,
              platforms: [...raw.platforms],
              imageCids: [...raw.imageCids],
              band: band(raw.band),
            };
            setBounded(versions, key, v, VERSION_CACHE_SIZE);
          }
          const index = v.platforms.indexOf(platform);
          return {
            appId,
            version: versionNumber,
            manifestCid: v.manifestCid,
            imageCid: index < 0 ? undefined : v.imageCids[index],
            band: v.band,
          };
        },
        options?.signal,
      ),

    setEndpoint: async (endpoint, options) =>
      txResult(
        await send(
          `endpoint of device ${deviceId}`,
          () => devices.setEndpoint(deviceId, endpoint),
          options?.signal,
        ),
      ),

    heartbeat: (options) =>
      abortable(`heartbeat of device ${deviceId}`, options?.signal, () => beat(options?.signal)),

    claim: async (deploymentId, options) => {
      const receipt = await send(
        `claiming deployment ${deploymentId}`,
        () => placements.claim(deploymentId, deviceId),
        options?.signal,
      );
      const claimed = receipt.logs
        .map((log) => placements.interface.parseLog(log))
        .find((event) => event?.name === "PlacementClaimed");
      return { ...txResult(receipt), placementId: String(claimed!.args.placementId) };
    },

    confirm: async (placementId, options) =>
      txResult(
        await send(
          `confirming placement ${placementId}`,
          () => placements.confirm(BigInt(placementId)),
          options?.signal,
        ),
      ),

    fail: async (placementId, code: FailureCode, options) =>
      txResult(
        await send(
          `reporting placement ${placementId} failed (${code})`,
          () => placements.fail(BigInt(placementId), FAILURE_CODES.indexOf(code)),
          options?.signal,
        ),
      ),

    release: async (placementId, options) =>
      txResult(
        await send(
          `releasing placement ${placementId}`,
          () => placements.release(BigInt(placementId)),
          options?.signal,
        ),
      ),

    address: wallet.address,

    expireDevice: async (id) => {
      const action = `expiring device ${id}`;
      await read(action, () => placements.expireDevice.staticCall(id));
      return txResult(await send(action, () => placements.expireDevice(id)));
    },

    finalizeExpired: async (placementId) => {
      const action = `finalizing expired placement ${placementId}`;
      await read(action, () => placements.finalizeExpired.staticCall(BigInt(placementId)));
      return txResult(await send(action, () => placements.finalizeExpired(BigInt(placementId))));
    },

    finalizeOverdueClaim: async (placementId) => {
      const action = `finalizing overdue claim ${placementId}`;
      await read(action, () => placements.finalizeOverdueClaim.staticCall(BigInt(placementId)));
      return txResult(await send(action, () => placements.finalizeOverdueClaim(BigInt(placementId))));
    },

    claimDeadlineS: (options) =>
      read("reading the claim deadline", async () => {
        try {
          return Number(await placements.claimDeadline(overrides(options)));
        } catch (error) {
          // A registry deployed before claim deadlines has no such function: an empty revert.
          const e = error as { code?: string; data?: string | null };
          if (e.code === "CALL_EXCEPTION" && (e.data === "0x" || e.data == null)) return undefined;
          throw error;
        }
      }),

    heartbeatTtlS: (options) =>
      read("reading the heartbeat TTL", async () =>
        Number((await devices.parameters(overrides(options))).heartbeatTtl),
      ),
  };
}

function placementView(p: {
  placementId: bigint;
  deploymentId: bigint;
  deviceId: bigint;
  appId: bigint;
  version: bigint;
  state: bigint;
}): PlacementView {
  return {
    placementId: p.placementId.toString(),
    deploymentId: Number(p.deploymentId),
    deviceId: Number(p.deviceId),
    appId: Number(p.appId),
    version: Number(p.version),
    state: PLACEMENT_STATES[Number(p.state)],
  };
}

/** keccak256 of the platform text: the key the registries use (contracts/libraries/Platforms.sol). */
function platformKey(platform: string): string {
  return keccakText(platform);
}
