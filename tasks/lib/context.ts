/**
 * What every task needs: the contracts of the selected network (from deployments/<network>.json,
 * written by scripts/deploy.ts) bound to the chosen signer (connectShoalContracts). The bindings
 * (typechain-types) load on first use through the worker's entry point: a clean checkout has none
 * until the first compile, and hardhat.config.ts loads this file.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { HardhatRuntimeEnvironment } from "hardhat/types";
import type { Signer } from "ethers";
import {
  connectShoalContracts,
  parseDeploymentRecord,
  type DeploymentRecord,
  type ShoalContractName,
  type ShoalContracts,
} from "../../workers/src";
import { fail } from "./output";

export type { DeploymentRecord };
export type ContractName = ShoalContractName;

export interface ShoalContext extends ShoalContracts {
  deployment: DeploymentRecord;
  signer: Signer;
  signerAddress: string;
}

/** deployments/<network>.json, or under SHOAL_DEPLOYMENTS_DIR (tests keep theirs apart). */
export function deploymentFile(hre: HardhatRuntimeEnvironment): string {
  const dir = process.env.SHOAL_DEPLOYMENTS_DIR ?? path.join(hre.config.paths.root, "deployments");
  return path.join(dir, `${hre.network.name}.json`);
}

export function readDeployment(hre: HardhatRuntimeEnvironment): DeploymentRecord {
  const file = deploymentFile(hre);
  if (!existsSync(file)) {
    fail(
      `no Shoal deployment for network "${hre.network.name}": ${path.relative(process.cwd(), file)} is missing; ` +
        `deploy first with \`npx hardhat run scripts/deploy.ts --network ${hre.network.name}\` (npm start does it for localhost)`,
    );
  }
  return parseDeploymentRecord(readFileSync(file, "utf8"), path.relative(process.cwd(), file));
}

/**
 * The signer: `account` is an index into the network's accounts ("0", the default) or one of their
 * addresses.
 */
export async function resolveSigner(hre: HardhatRuntimeEnvironment, account = "0"): Promise<Signer> {
  const signers = await hre.ethers.getSigners();
  if (/^\d+$/.test(account)) {
    const signer = signers[Number(account)];
    if (!signer)
      fail(
        `--account ${account}: the network "${hre.network.name}" has ${signers.length} accounts (0..${signers.length - 1})`,
      );
    return signer;
  }
  const match = signers.find((s) => s.address.toLowerCase() === account.toLowerCase());
  if (!match)
    fail(
      `--account ${account}: not an account of network "${hre.network.name}"; give an index or one of its addresses`,
    );
  return match;
}

export async function shoalContext(hre: HardhatRuntimeEnvironment, account?: string): Promise<ShoalContext> {
  const deployment = readDeployment(hre);
  const chainId = Number((await hre.ethers.provider.getNetwork()).chainId);
  if (chainId !== deployment.chainId) {
    fail(
      `${path.relative(process.cwd(), deploymentFile(hre))} was written for chain ${deployment.chainId}, but network ` +
        `"${hre.network.name}" is chain ${chainId}; redeploy or pick the right --network`,
    );
  }
  const signer = await resolveSigner(hre, account);
  const at = (name: ContractName) => deployment.contracts[name].address;
  const code = await hre.ethers.provider.getCode(at("AppRegistry"));
  if (code === "0x") {
    fail(
      `no contract at ${at("AppRegistry")} on network "${hre.network.name}" (was the node restarted?); ` +
        `redeploy with \`npx hardhat run scripts/deploy.ts --network ${hre.network.name}\``,
    );
  }
  return {
    deployment,
    signer,
    signerAddress: await signer.getAddress(),
    ...connectShoalContracts(deployment.contracts, signer),
  };
}
