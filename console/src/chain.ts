/**
 * Everything the console reads from the chain, straight from the browser over JSON-RPC with ethers
 * and the contracts' ABIs (from Hardhat's artifacts; only the `abi` field is bundled). Calls made
 * together go out as one JSON-RPC batch. Logs are read incrementally: each refresh asks only for
 * the blocks since the last one.
 */
import { Contract, Interface, JsonRpcProvider, type Log } from "ethers";
import { abi as appAbi } from "../../artifacts/contracts/AppRegistry.sol/AppRegistry.json";
import { abi as deviceAbi } from "../../artifacts/contracts/DeviceRegistry.sol/DeviceRegistry.json";
import { abi as placementAbi } from "../../artifacts/contracts/PlacementRegistry.sol/PlacementRegistry.json";
import type { AppRegistry, DeviceRegistry, PlacementRegistry } from "../../typechain-types";
import {
  buildTimeline,
  PLACEMENT_EVENTS,
  type PlacementLog,
  type TimelineFilter,
  type TimelineRow,
} from "../../tasks/lib/timeline";
import { DEVICE_STATUSES, PLACEMENT_STATES } from "../../workers/src/domain/chain-enums";
import type { ConsoleConfig } from "./config";

export interface Band {
  cpuMinMillicores: number;
  cpuMaxMillicores: number;
  memoryMinMiB: number;
  memoryMaxMiB: number;
}

export interface DeviceView {
  deviceId: number;
  owner: string;
  operator: string;
  status: string;
  stake: bigint;
  cpuMillicores: number;
  memoryMiB: number;
  lastHeartbeat: number;
  platform: string;
  labels: string[];
  endpoint: string;
  stale: boolean;
  cpuReservedMillicores: number;
  memoryReservedMiB: number;
  livePlacements: number;
  reputation: { completed: number; failed: number; expired: number };
}

export interface VersionView {
  version: number;
  band: Band;
  publishedAt: number;
  deprecated: boolean;
  manifestCid: string;
  platforms: string[];
  imageCids: string[];
}

export interface AppView {
  appId: number;
  name: string;
  owner: string;
  versions: VersionView[];
}

export interface PlacementView {
  placementId: number;
  deviceId: number;
  version: number;
  state: string;
}

export interface DeploymentView {
  deploymentId: number;
  appId: number;
  appName: string;
  version: number;
  generation: number;
  replicas: number;
  liveReplicas: number;
  active: boolean;
  requiredLabels: string[];
  /** Live (Claimed or Running) placements of the current generation. */
  live: PlacementView[];
}

export interface SlashView {
  block: number;
  time: string;
  tx: string;
  kind: string;
  amount: bigint;
  bounty: bigint;
  stake: bigint;
  evidenceCid: string;
}

const LIVE = new Set(["Claimed", "Running"]);

export type ChainReader = ReturnType<typeof createChainReader>;

export function createChainReader(config: ConsoleConfig) {
  // cacheTimeout -1: every refresh reads the chain anew. staticNetwork: no eth_chainId per call.
  const provider = new JsonRpcProvider(config.rpcUrl, config.chainId, {
    staticNetwork: config.chainId !== undefined,
    cacheTimeout: -1,
    batchMaxCount: 100,
  });
  const apps = new Contract(config.contracts.AppRegistry.address, appAbi, provider) as unknown as AppRegistry;
  const devices = new Contract(
    config.contracts.DeviceRegistry.address,
    deviceAbi,
    provider,
  ) as unknown as DeviceRegistry;
  const placements = new Contract(
    config.contracts.PlacementRegistry.address,
    placementAbi,
    provider,
  ) as unknown as PlacementRegistry;
  const placementIface = new Interface(placementAbi);
  const deviceIface = new Interface(deviceAbi);
  const appIface = new Interface(appAbi);

  const blockTimes = new Map<number, number>();
  const placementLogs: PlacementLog[] = [];
  let placementLogsTo = config.contracts.PlacementRegistry.blockNumber - 1;
  const endpoints = new Map<number, string>();
  const labels = new Map<number, string[]>();
  const requiredLabels = new Map<number, string[]>();
  let deviceLogsTo = config.contracts.DeviceRegistry.blockNumber - 1;
  let appLogsTo = config.contracts.AppRegistry.blockNumber - 1;

  async function blockTime(block: number): Promise<number> {
    let t = blockTimes.get(block);
    if (t === undefined) {
      const b = await provider.getBlock(block);
      if (b === null) throw new Error(`block ${block} is not on the chain`);
      t = b.timestamp;
      blockTimes.set(block, t);
    }
    return t;
  }

  async function logs(address: string, iface: Interface, names: readonly string[], from: number, to: number) {
    if (to < from) return [];
    const topics = names.map((n) => iface.getEvent(n)!.topicHash);
    const raw = await provider.getLogs({ address, topics: [topics], fromBlock: from, toBlock: to });
    return raw.map((log: Log) => ({ log, parsed: iface.parseLog(log)! }));
  }

  /** Brings the placement logs up to `head`. */
  async function syncPlacementLogs(head: number): Promise<void> {
    const fresh = await logs(
      config.contracts.PlacementRegistry.address,
      placementIface,
      PLACEMENT_EVENTS,
      placementLogsTo + 1,
      head,
    );
    for (const { log, parsed } of fresh)
      placementLogs.push({
        blockNumber: log.blockNumber,
        transactionHash: log.transactionHash,
        index: log.index,
        eventName: parsed.name,
        args: parsed.args,
      });
    placementLogsTo = Math.max(placementLogsTo, head);
  }

  async function syncDeviceLogs(head: number): Promise<void> {
    const fresh = await logs(
      config.contracts.DeviceRegistry.address,
      deviceIface,
      ["DeviceEnrolled", "DeviceEndpointChanged"],
      deviceLogsTo + 1,
      head,
    );
    for (const { parsed } of fresh) {
      const id = Number(parsed.args.deviceId);
      endpoints.set(id, String(parsed.args.endpoint));
      if (parsed.name === "DeviceEnrolled") labels.set(id, [...parsed.args.labels].map(String));
    }
    deviceLogsTo = Math.max(deviceLogsTo, head);
  }

  async function syncAppLogs(head: number): Promise<void> {
    const fresh = await logs(
      config.contracts.AppRegistry.address,
      appIface,
      ["DeploymentCreated"],
      appLogsTo + 1,
      head,
    );
    for (const { parsed } of fresh)
      requiredLabels.set(Number(parsed.args.deploymentId), [...parsed.args.requiredLabels].map(String));
    appLogsTo = Math.max(appLogsTo, head);
  }

  const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

  /** Every placement of a deployment, oldest first, in pages of 100. */
  async function allPlacementsOf(deploymentId: number) {
    const out = [];
    for (let offset = 0; ; offset += 100) {
      const page = await placements.placementsOfDeployment(deploymentId, offset, 100);
      out.push(...page);
      if (page.length < 100) return out;
    }
  }

  return {
    provider,
    async head(): Promise<{ number: number; timestamp: number }> {
      const block = await provider.getBlock("latest");
      if (block === null) throw new Error("the node returned no latest block");
      blockTimes.set(block.number, block.timestamp);
      return { number: block.number, timestamp: block.timestamp };
    },

    async blockNumber(): Promise<number> {
      return provider.getBlockNumber();
    },

    /** A device's operator and whether it is Active (undefined: not enrolled), for message checks. */
    async sender(deviceId: string): Promise<{ operator: string; active: boolean } | undefined> {
      const d = await devices.device(BigInt(deviceId));
      const status = DEVICE_STATUSES[Number(d.status)];
      if (status === undefined || status === "None") return undefined;
      return { operator: d.operator, active: status === "Active" };
    },

    async devices(head: number): Promise<DeviceView[]> {
      const [count] = await Promise.all([devices.deviceCount(), syncDeviceLogs(head)]);
      return Promise.all(
        range(Number(count)).map(async (id) => {
          const [d, rep, usage, stale] = await Promise.all([
            devices.device(id),
            devices.reputation(id),
            placements.deviceUsage(id),
            devices.isStale(id),
          ]);
          return {
            deviceId: id,
            owner: d.owner,
            operator: d.operator,
            status: DEVICE_STATUSES[Number(d.status)],
            stake: d.stake,
            cpuMillicores: Number(d.cpuMillicores),
            memoryMiB: Number(d.memoryMiB),
            lastHeartbeat: Number(d.lastHeartbeat),
            platform: d.platform,
            labels: labels.get(id) ?? [],
            endpoint: endpoints.get(id) ?? "",
            stale,
            cpuReservedMillicores: Number(usage.cpuReservedMillicores),
            memoryReservedMiB: Number(usage.memoryReservedMiB),
            livePlacements: Number(usage.livePlacements),
            reputation: {
              completed: Number(rep.completed),
              failed: Number(rep.failed),
              expired: Number(rep.expired),
            },
          };
        }),
      );
    },

    async apps(): Promise<AppView[]> {
      const count = Number(await apps.appCount());
      return Promise.all(
        range(count).map(async (appId) => {
          const a = await apps.app(appId);
          const versions = await Promise.all(
            range(Number(a.versionCount)).map(async (v) => {
              const x = await apps.version(appId, v);
              return {
                version: v,
                band: band(x.band),
                publishedAt: Number(x.publishedAt),
                deprecated: x.deprecated,
                manifestCid: x.manifestCid,
                platforms: [...x.platforms],
                imageCids: [...x.imageCids],
              };
            }),
          );
          return { appId, name: a.name, owner: a.owner, versions };
        }),
      );
    },

    async deployments(head: number, appNames: Map<number, string>): Promise<DeploymentView[]> {
      const [count] = await Promise.all([apps.deploymentCount(), syncAppLogs(head)]);
      return Promise.all(
        range(Number(count)).map(async (id) => {
          const [d, usage, page] = await Promise.all([
            apps.deploymentSummary(id),
            placements.deploymentUsage(id),
            allPlacementsOf(id),
          ]);
          const generation = Number(d.generation);
          return {
            deploymentId: id,
            appId: Number(d.appId),
            appName: appNames.get(Number(d.appId)) ?? `app ${d.appId}`,
            version: Number(d.version),
            generation,
            replicas: Number(d.replicas),
            liveReplicas: Number(usage.liveReplicas),
            active: d.active,
            requiredLabels: requiredLabels.get(id) ?? [],
            live: page
              .filter(
                (p) =>
                  Number(p.deploymentGeneration) === generation &&
                  LIVE.has(PLACEMENT_STATES[Number(p.state)]),
              )
              .map((p) => ({
                placementId: Number(p.placementId),
                deviceId: Number(p.deviceId),
                version: Number(p.version),
                state: PLACEMENT_STATES[Number(p.state)],
              })),
          };
        }),
      );
    },

    async deploymentIdsOf(appId: number): Promise<number[]> {
      const count = Number(await apps.deploymentCount());
      const summaries = await Promise.all(range(count).map((id) => apps.deploymentSummary(id)));
      return range(count).filter((id) => Number(summaries[id - 1].appId) === appId);
    },

    /** The placement timeline, as `placement:history` builds it, for the given filter. */
    async timeline(head: number, filter: TimelineFilter): Promise<TimelineRow[]> {
      await syncPlacementLogs(head);
      const kept = placementLogs.filter(
        (l) =>
          (filter.device === undefined || Number(l.args.deviceId) === filter.device) &&
          (filter.deployments === undefined || filter.deployments.has(Number(l.args.deploymentId))),
      );
      // Read what the rows need in parallel (one batch), then build them from the caches.
      const blocks = [...new Set(kept.map((l) => l.blockNumber))];
      const ids = [...new Set(kept.map((l) => Number(l.args.placementId)))];
      const [, states] = await Promise.all([
        Promise.all(blocks.map(blockTime)),
        Promise.all(ids.map((id) => placements.placementState(id).then((s) => [id, Number(s)] as const))),
      ]);
      const stateOf = new Map(states);
      return buildTimeline([...kept], filter, {
        timeOf: async (block) => new Date((await blockTime(block)) * 1000).toISOString(),
        stateOf: async (id) => stateOf.get(id) ?? Number(await placements.placementState(id)),
      });
    },

    async slashes(deviceId: number): Promise<SlashView[]> {
      const found = await devices.queryFilter(
        devices.filters.DeviceSlashed(deviceId),
        config.contracts.DeviceRegistry.blockNumber,
      );
      return Promise.all(
        found.map(async (log) => ({
          block: log.blockNumber,
          time: new Date((await blockTime(log.blockNumber)) * 1000).toISOString(),
          tx: log.transactionHash,
          kind: Number(log.args.kind) === 0 ? "Liveness" : "Fault",
          amount: log.args.amount,
          bounty: log.args.bounty,
          stake: log.args.stake,
          evidenceCid: log.args.evidenceCid,
        })),
      );
    },

    close: () => provider.destroy(),
  };
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
