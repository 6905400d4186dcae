/**
 * The deployment record scripts/deploy.ts writes (deployments/<network>.json): the chain id and,
 * per contract, its address and the block it was deployed in. Read by the worker, the tasks, the
 * fleet, benches and tests.
 */
import { ShoalError } from "../errors";
import type { ShoalContractName } from "./chain-event";

export interface DeployedContract {
  address: string;
  blockNumber: number;
}

/**
 * Contracts a deployment may lack (older records): the ResourceLog (issue 16). Their events are not
 * bridged; the worker and the tasks use them when the record names them.
 */
export type OptionalContractName = "ResourceLog";

export interface DeploymentRecord {
  chainId: number;
  contracts: Record<ShoalContractName, DeployedContract> &
    Partial<Record<OptionalContractName, DeployedContract>>;
  /** Hardhat's network name, the time of the deployment and its parameters, as deploy.ts wrote them. */
  network?: string;
  deployedAt?: string;
  parameters?: { heartbeatTtl?: number; minStake?: string; [name: string]: unknown };
}

export const SHOAL_CONTRACTS: readonly ShoalContractName[] = [
  "AppRegistry",
  "DeviceRegistry",
  "PlacementRegistry",
  "ShoalToken",
];

/** Parses and checks a deployment record's JSON text; `source` names the file in the message. */
export function parseDeploymentRecord(text: string, source: string): DeploymentRecord {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ShoalError(`${source}: not JSON (${(error as Error).message})`);
  }
  const record = data as Partial<DeploymentRecord>;
  if (!Number.isInteger(record?.chainId))
    throw new ShoalError(`${source}: chainId is missing or not an integer`);
  const optional: OptionalContractName[] = ["ResourceLog"];
  for (const name of [...SHOAL_CONTRACTS, ...optional.filter((n) => record.contracts?.[n] !== undefined)]) {
    const c = record.contracts?.[name];
    if (typeof c?.address !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(c.address)) {
      throw new ShoalError(`${source}: contracts.${name}.address is missing or not an address`);
    }
    if (!Number.isInteger(c.blockNumber)) {
      throw new ShoalError(`${source}: contracts.${name}.blockNumber is missing or not an integer`);
    }
  }
  return record as DeploymentRecord;
}
