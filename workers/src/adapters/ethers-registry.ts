/** The Registry port over ethers v6 and the typechain bindings of the three registries. */
import {
  NonceManager,
  Wallet,
  id as keccakText,
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
  type PlacementView,
  type Registry,
  type TxResult,
} from "../ports/registry";

// The port's error (workers/src/ports/registry.ts), re-exported for this adapter's users.
export { RegistryError };

/** A revert is final for this input; anything else (network, node restart, nonce race) may pass later. */
export function translateChainError(action: string, error: unknown): RegistryError {
  if (error instanceof RegistryError) return error;
  const revert = (error as { revert?: { name: string; args: readonly unknown[] } }).revert;
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

export interface EthersRegistryOptions {
  provider: JsonRpcProvider;
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
}: EthersRegistryOptions): Registry {
  // One nonce sequence per worker: heartbeats, claims and confirms may overlap.
  const signer = new NonceManager(new Wallet(operatorKey, provider));
  const apps = AppRegistry__factory.connect(contracts.AppRegistry.address, signer);
  const devices = DeviceRegistry__factory.connect(contracts.DeviceRegistry.address, signer);
  const placements = PlacementRegistry__factory.connect(contracts.PlacementRegistry.address, signer);
  const versions = new Map<
    string,
    { manifestCid: string; platforms: string[]; imageCids: string[]; band: Band }
  >();

  const read = async <T>(action: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      throw translateChainError(action, error);
    }
  };

  const send = async (
    action: string,
    call: () => Promise<{ wait(): Promise<TransactionReceipt | null> }>,
  ): Promise<TransactionReceipt> => {
    try {
      const receipt = await (await call()).wait();
      if (!receipt) throw new Error("no receipt");
      return receipt;
    } catch (error) {
      // A failed send may leave the local nonce ahead of the chain's; resync on the next send.
      signer.reset();
      throw translateChainError(action, error);
    }
  };
  const txResult = (r: TransactionReceipt): TxResult => ({
    hash: r.hash,
    gasUsed: r.gasUsed,
    blockNumber: r.blockNumber,
  });
  const overrides = (o?: { blockTag?: number }) =>
    o?.blockTag === undefined ? {} : { blockTag: o.blockTag };

  const readDeployment = async (id: number, options?: { blockTag?: number }): Promise<DeploymentView> => {
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

    blockNumber: () => read("reading the block number", () => provider.getBlockNumber()),

    device: (options) =>
      read(`reading device ${deviceId}`, async () => {
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
      }),

    deploymentCount: (options) =>
      read("reading the deployment count", async () =>
        Number(await apps.deploymentCount(overrides(options))),
      ),

    deployment: (deploymentId, options) =>
      read(`reading deployment ${deploymentId}`, () => readDeployment(deploymentId, options)),

    replicaTerms: (deploymentId, platform, options) =>
      read(`reading the terms of deployment ${deploymentId}`, async () => {
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
      }),

    activePlacementOf: (deploymentId, options) =>
      read(`reading the placement of deployment ${deploymentId}`, async () => {
        const id = await placements.activePlacementOf(deploymentId, deviceId, overrides(options));
        return id === 0n ? undefined : id.toString();
      }),

    placementsOfDevice: (offset, limit, options) =>
      read(`reading placements of device ${deviceId}`, async () =>
        (await placements.placementsOfDevice(deviceId, offset, limit, overrides(options))).map(placementView),
      ),

    placementsOfDeployment: (deploymentId, options) =>
      read(`reading placements of deployment ${deploymentId}`, async () => {
        const all: PlacementView[] = [];
        for (let offset = 0; ; offset += 100) {
          const page = await placements.placementsOfDeployment(deploymentId, offset, 100, overrides(options));
          all.push(...page.map(placementView));
          if (page.length < 100) return all;
        }
      }),

    placementState: (placementId, options) =>
      read(
        `reading placement ${placementId}`,
        async () =>
          PLACEMENT_STATES[Number(await placements.placementState(BigInt(placementId), overrides(options)))],
      ),

    version: (appId, versionNumber, platform, options) =>
      read(`reading version ${versionNumber} of app ${appId}`, async () => {
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
          versions.set(key, v);
        }
        const index = v.platforms.indexOf(platform);
        return {
          appId,
          version: versionNumber,
          manifestCid: v.manifestCid,
          imageCid: index < 0 ? undefined : v.imageCids[index],
          band: v.band,
        };
      }),

    heartbeat: async () =>
      txResult(await send(`heartbeat of device ${deviceId}`, () => devices.heartbeat(deviceId))),

    claim: async (deploymentId) => {
      const receipt = await send(`claiming deployment ${deploymentId}`, () =>
        placements.claim(deploymentId, deviceId),
      );
      const claimed = receipt.logs
        .map((log) => placements.interface.parseLog(log))
        .find((event) => event?.name === "PlacementClaimed");
      return { ...txResult(receipt), placementId: String(claimed!.args.placementId) };
    },

    confirm: async (placementId) =>
      txResult(
        await send(`confirming placement ${placementId}`, () => placements.confirm(BigInt(placementId))),
      ),

    fail: async (placementId, code: FailureCode) =>
      txResult(
        await send(`reporting placement ${placementId} failed (${code})`, () =>
          placements.fail(BigInt(placementId), FAILURE_CODES.indexOf(code)),
        ),
      ),

    release: async (placementId) =>
      txResult(
        await send(`releasing placement ${placementId}`, () => placements.release(BigInt(placementId))),
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
