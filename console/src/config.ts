/**
 * Where the console reads from: the JSON-RPC URL, the contracts and the MQTT-over-WebSockets URL.
 * They come from a deployments file (scripts/deploy.ts writes deployments/<network>.json; the
 * console's server adds `rpcUrl` and `mqttUrl` to it) and the page's query parameters override it:
 *
 *   ?deployments=<url>   the deployments file (default: deployments.json beside the page)
 *   ?rpc=<url>           JSON-RPC endpoint
 *   ?mqtt=<ws url>       MQTT over WebSockets (empty: chain data only)
 *   ?topicRoot=<root>    MQTT topic root (default shoal/v1)
 *   ?AppRegistry=0x…&DeviceRegistry=0x…&PlacementRegistry=0x…&fromBlock=<n>   contracts without a file
 */
import { withoutCredentials } from "./verify";

export const CONTRACTS = ["AppRegistry", "DeviceRegistry", "PlacementRegistry"] as const;
export type ContractName = (typeof CONTRACTS)[number];

export interface ConsoleConfig {
  rpcUrl: string;
  /** "" when no broker is configured: the console then shows chain data only. */
  mqttUrl: string;
  topicRoot: string;
  chainId?: number;
  contracts: Record<ContractName, { address: string; blockNumber: number }>;
  heartbeatTtl?: number;
  /** Where each value came from, shown on the page so a reader knows what they trust. */
  source: string;
}

interface DeploymentsFile {
  chainId?: number;
  rpcUrl?: string;
  mqttUrl?: string;
  topicRoot?: string;
  contracts?: Partial<Record<string, { address: string; blockNumber: number }>>;
  parameters?: { heartbeatTtl?: number };
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

export async function loadConfig(search: string, fetchImpl: typeof fetch = fetch): Promise<ConsoleConfig> {
  const params = new URLSearchParams(search);
  const fileUrl = params.get("deployments") ?? "deployments.json";
  let file: DeploymentsFile = {};
  let fileError: string | undefined;
  try {
    // The console server sends it with cache-control: no-store.
    const response = await fetchImpl(fileUrl);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    file = (await response.json()) as DeploymentsFile;
  } catch (error) {
    fileError = `${fileUrl}: ${(error as Error).message}`;
  }

  const fromBlock = params.get("fromBlock");
  if (fromBlock !== null && !/^\d+$/.test(fromBlock))
    throw new ConfigError(`fromBlock "${fromBlock}" is not allowed; give a block number (0 or more)`);
  const contracts = {} as ConsoleConfig["contracts"];
  for (const name of CONTRACTS) {
    const fromUrl = params.get(name);
    if (fromUrl !== null && !ADDRESS.test(fromUrl))
      throw new ConfigError(`${name} "${fromUrl}" is not allowed; give a 0x-prefixed 20-byte hex address`);
    const entry = file.contracts?.[name];
    const address = fromUrl ?? entry?.address;
    if (address === undefined)
      throw new ConfigError(
        `no address for ${name}: ${fileError ?? `${fileUrl} has none`}; ` +
          `give ?deployments=<url of a deployments file> or ?${name}=0x…`,
      );
    contracts[name] = {
      address,
      blockNumber: fromBlock !== null ? Number(fromBlock) : fromUrl === null ? (entry?.blockNumber ?? 0) : 0,
    };
  }
  const rpcUrl = params.get("rpc") ?? file.rpcUrl;
  if (rpcUrl === undefined || rpcUrl === "")
    throw new ConfigError(`no JSON-RPC URL: ${fileError ?? `${fileUrl} has no rpcUrl`}; give ?rpc=<url>`);
  const mqttUrl = params.get("mqtt") ?? file.mqttUrl ?? "";
  if (mqttUrl !== "" && !/^wss?:\/\//.test(mqttUrl))
    throw new ConfigError(
      `mqtt "${withoutCredentials(mqttUrl)}" is not allowed; give a ws:// or wss:// URL (MQTT over WebSockets)`,
    );
  return {
    rpcUrl,
    mqttUrl,
    topicRoot: params.get("topicRoot") ?? file.topicRoot ?? "shoal/v1",
    chainId: file.chainId,
    contracts,
    heartbeatTtl: file.parameters?.heartbeatTtl,
    source: fileError === undefined ? fileUrl : "query parameters",
  };
}
