/**
 * The Shoal contracts of a deployment as typechain instances bound to one runner (a provider for
 * reads, a signer for transactions): the one place that knows which factory goes with which name.
 * scripts/deploy.ts, the fleet (scripts/fleet/chain.ts) and the tasks (tasks/lib/context.ts) build
 * their instances here.
 */
import type { ContractRunner } from "ethers";
import {
  AppRegistry__factory,
  DeviceRegistry__factory,
  PlacementRegistry__factory,
  ResourceLog__factory,
  ShoalToken__factory,
  type AppRegistry,
  type DeviceRegistry,
  type PlacementRegistry,
  type ResourceLog,
  type ShoalToken,
} from "../../../typechain-types";
import type { DeploymentRecord } from "../domain/deployment-record";

export interface ShoalContracts {
  token: ShoalToken;
  devices: DeviceRegistry;
  apps: AppRegistry;
  placements: PlacementRegistry;
  /** Absent when the deployment record names no ResourceLog (deployed before issue 16). */
  resourceLog?: ResourceLog;
}

/** Addresses by contract name: a deployment record's `contracts`, or just-deployed addresses. */
export type ShoalAddresses = {
  [name in keyof DeploymentRecord["contracts"]]: Pick<
    NonNullable<DeploymentRecord["contracts"][name]>,
    "address"
  >;
};

/** Every contract of `contracts` connected to `runner`. */
export function connectShoalContracts(contracts: ShoalAddresses, runner: ContractRunner): ShoalContracts {
  const log = contracts.ResourceLog;
  return {
    token: ShoalToken__factory.connect(contracts.ShoalToken.address, runner),
    devices: DeviceRegistry__factory.connect(contracts.DeviceRegistry.address, runner),
    apps: AppRegistry__factory.connect(contracts.AppRegistry.address, runner),
    placements: PlacementRegistry__factory.connect(contracts.PlacementRegistry.address, runner),
    ...(log && { resourceLog: ResourceLog__factory.connect(log.address, runner) }),
  };
}
