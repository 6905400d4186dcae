/**
 * The fleet's access to the chain: the Hardhat tasks as child processes (the way a user runs them),
 * ethers contracts for reads, event queries and placeholder enrollments (no keeper: the workers keep),
 * and the well-known local keys.
 */
import {
  PLACEMENT_STATES,
  connectShoalContracts,
  isLivePlacement,
  parseDeploymentRecord,
  type DeploymentRecord,
  type PlacementState,
  type ShoalContracts,
} from "../../workers/src";
import { readFileSync } from "node:fs";
import path from "node:path";
import { JsonRpcProvider, NonceManager, type Signer } from "ethers";
import { devWallet, runHardhat } from "../lib/local-chain";
import { FleetError } from "./processes";

export const ROOT = path.resolve(__dirname, "../..");

export { PLACEMENT_STATES };
export type PlacementStateName = PlacementState;
export type { DeploymentRecord };

export function readDeploymentRecord(file: string): DeploymentRecord {
  let raw: string;
  try {
    raw = readFileSync(file, "utf8");
  } catch {
    throw new FleetError(
      `${path.relative(process.cwd(), file) || file} is missing; deploy the contracts first ` +
        "(npx hardhat run scripts/deploy.ts --network localhost, which npm start does)",
    );
  }
  return parseDeploymentRecord(raw, path.relative(process.cwd(), file) || file);
}

export interface Contracts extends ShoalContracts {
  provider: JsonRpcProvider;
  /** The same contracts bound to a signer of the given account index (nonces managed locally). */
  as(account: number): ShoalContracts & { signer: Signer };
  close(): void;
}

export function connectContracts(rpcUrl: string, record: DeploymentRecord): Contracts {
  // cacheTimeout -1: no stale reads while polling for a state change.
  const provider = new JsonRpcProvider(rpcUrl, record.chainId, { staticNetwork: true, cacheTimeout: -1 });
  const signers = new Map<number, Signer>();
  return {
    provider,
    ...connectShoalContracts(record.contracts, provider),
    as(account) {
      let signer = signers.get(account);
      if (signer === undefined) {
        signer = new NonceManager(devWallet(account).connect(provider));
        signers.set(account, signer);
      }
      return { signer, ...connectShoalContracts(record.contracts, signer) };
    },
    close: () => provider.destroy(),
  };
}

export interface TaskEnv {
  rpcUrl: string;
  kuboUrl: string;
  /** Directory holding localhost.json (SHOAL_DEPLOYMENTS_DIR). */
  deploymentsDir: string;
}

/**
 * Runs `npx hardhat --network localhost <args>` and returns its stdout; a non-zero exit throws
 * with the task's own error line.
 */
export async function runTask(args: string[], env: TaskEnv): Promise<string> {
  const { status, stdout, stderr } = await runHardhat(args, {
    SHOAL_RPC_URL: env.rpcUrl,
    SHOAL_KUBO_URL: env.kuboUrl,
    SHOAL_DEPLOYMENTS_DIR: env.deploymentsDir,
  });
  if (status === 0) return stdout;
  const lines = `${stderr}\n${stdout}`.trim().split("\n").filter(Boolean);
  const reason = lines.find((l) => /error|revert|not allowed|give |missing/i.test(l)) ?? lines.at(-1);
  throw new FleetError(`hardhat ${args[0]} failed (exit ${status}): ${reason ?? "no output"}`);
}

export interface PlacementInfo {
  placementId: bigint;
  deploymentId: number;
  deviceId: number;
  version: number;
  deploymentGeneration: number;
  state: PlacementStateName;
}

function placementInfo(p: {
  placementId: bigint;
  deploymentId: bigint;
  deviceId: bigint;
  version: bigint;
  deploymentGeneration: bigint;
  state: bigint;
}): PlacementInfo {
  return {
    placementId: p.placementId,
    deploymentId: Number(p.deploymentId),
    deviceId: Number(p.deviceId),
    version: Number(p.version),
    deploymentGeneration: Number(p.deploymentGeneration),
    state: PLACEMENT_STATES[Number(p.state)],
  };
}

/** Every placement of a deployment, oldest first, with its state as read now. */
export async function placementsOfDeployment(c: Contracts, deploymentId: number): Promise<PlacementInfo[]> {
  const out: PlacementInfo[] = [];
  for (let offset = 0; ; offset += 50) {
    const page = await c.placements.placementsOfDeployment(deploymentId, offset, 50);
    out.push(...page.map(placementInfo));
    if (page.length < 50) return out;
  }
}

/** Live (Claimed or Running) placements of a deployment at its current generation. */
export async function livePlacements(c: Contracts, deploymentId: number): Promise<PlacementInfo[]> {
  return (await placementsOfDeployment(c, deploymentId)).filter((p) => isLivePlacement(p.state));
}

/** Placements of a device, newest first (at most `limit`). */
export async function placementsOfDevice(
  c: Contracts,
  deviceId: number,
  limit = 100,
): Promise<PlacementInfo[]> {
  return (await c.placements.placementsOfDevice(deviceId, 0, limit)).map(placementInfo);
}
