/**
 * Deploys the Shoal contracts: ShoalToken, DeviceRegistry, AppRegistry, PlacementRegistry, ResourceLog.
 *
 *   npx hardhat run scripts/deploy.ts --network localhost
 *   SHOAL_HEARTBEAT_TTL=30 npx hardhat run scripts/deploy.ts --network localhost   # a short TTL for demos
 *
 * Parameters default to {@link DEFAULT_PARAMETERS}; the environment overrides them (see
 * {@link parametersFromEnv}): SHOAL_MIN_STAKE and SHOAL_COLLATERAL_PER_PLACEMENT (tokens), SHOAL_HEARTBEAT_TTL and SHOAL_UNBONDING_DELAY
 * (seconds), SHOAL_LIVENESS_SLASH_BPS and SHOAL_BOUNTY_BPS (basis points), SHOAL_CLAIM_DEADLINE and
 * SHOAL_TIMELOCK_DELAY (seconds).
 *
 * grants the PlacementRegistry its PLACEMENT_ROLE on the DeviceRegistry, hands DEFAULT_ADMIN_ROLE of both
 * registries to a ShoalTimelock (OpenZeppelin TimelockController; the deployer proposes, anyone executes),
 * mints local tokens to the first ten signers and writes deployments/<network>.json. Tests and other scripts import {@link deployShoal}.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Signer } from "ethers";
import type { HardhatRuntimeEnvironment } from "hardhat/types";
import { deploymentFile } from "../tasks/lib/context";
import type { ShoalTimelock } from "../typechain-types";
import { connectShoalContracts, type ShoalContracts } from "../workers/src";

/** DeviceRegistry parameters, as its `Parameters` struct. */
export interface ShoalParameters {
  /** Least stake to enroll and to claim, in token base units. */
  minStake: bigint;
  /** Stake each live placement locks on top of minStake, and a liveness slash takes per placement held. */
  collateralPerPlacement: bigint;
  /** Seconds after its last heartbeat at which a device is stale. */
  heartbeatTtl: number;
  /** Seconds between an exit request and the withdrawal (> heartbeatTtl). */
  unbondingDelay: number;
  /** Fraction of the stake a liveness fault costs, in basis points. */
  livenessSlashBps: number;
  /** Caller's share of a liveness slash, in basis points. */
  bountyBps: number;
  /** PlacementRegistry: seconds a claim may stay unconfirmed before anyone may fail it (1 s to 30 days). */
  claimDeadline: number;
  /** Seconds every admin change waits in the timelock before it can be executed. */
  timelockDelay: number;
}

export interface DeployShoalOptions {
  /** Deployer and admin of every contract (default: the first signer). */
  admin?: Signer;
  /** Receives slashed stake less bounties (default: the admin). */
  treasury?: string;
  /** Overrides of {@link DEFAULT_PARAMETERS}. */
  parameters?: Partial<ShoalParameters>;
  /** Accounts to mint local tokens to (default: none). */
  mintTo?: string[];
  /** Tokens minted to each of `mintTo`, in base units (default 10,000 SHOAL). */
  mintAmount?: bigint;
  /**
   * "timelock" (default): DEFAULT_ADMIN_ROLE of both registries goes to a ShoalTimelock whose proposer
   * and canceller is `admin`, executor anyone, delay `parameters.timelockDelay`; `admin` keeps only
   * PAUSER_ROLE. "direct": `admin` keeps DEFAULT_ADMIN_ROLE (unit tests of the registries' own rules).
   */
  governance?: "timelock" | "direct";
}

export interface ShoalDeployment extends Omit<ShoalContracts, "resourceLog"> {
  resourceLog: NonNullable<ShoalContracts["resourceLog"]>;
  parameters: ShoalParameters;
  treasury: string;
  /** The timelock holding the admin roles, or undefined with governance "direct". */
  timelock?: ShoalTimelock;
  /** Block in which each contract was deployed. */
  blockNumbers: Record<
    "ShoalToken" | "DeviceRegistry" | "AppRegistry" | "PlacementRegistry" | "ResourceLog",
    number
  > & {
    ShoalTimelock?: number;
  };
}

const ONE_TOKEN = 10n ** 18n;

/**
 * Local defaults: 100 SHOAL minimum plus 10 SHOAL per live placement, 5 min TTL, 1 h unbonding, 10 % liveness slash, 20 % of it as bounty,
 * 10 min to confirm a claim, admin changes delayed 1 day by the timelock.
 */
export const DEFAULT_PARAMETERS: ShoalParameters = {
  minStake: 100n * ONE_TOKEN,
  collateralPerPlacement: 10n * ONE_TOKEN,
  heartbeatTtl: 300,
  unbondingDelay: 3600,
  livenessSlashBps: 1000,
  bountyBps: 2000,
  claimDeadline: 600,
  timelockDelay: 86_400,
};

/** Deploys and wires the five contracts with `admin` (first signer by default). */
export async function deployShoal(
  hre: HardhatRuntimeEnvironment,
  options: DeployShoalOptions = {},
): Promise<ShoalDeployment> {
  const { ethers } = hre;
  const admin = options.admin ?? (await ethers.getSigners())[0];
  const adminAddress = await admin.getAddress();
  const treasury = options.treasury ?? adminAddress;
  const parameters: ShoalParameters = { ...DEFAULT_PARAMETERS, ...options.parameters };

  const deploy = async (name: string, args: unknown[]) => {
    const factory = await ethers.getContractFactory(name, admin);
    const contract = await factory.deploy(...args);
    const receipt = await contract.deploymentTransaction()!.wait();
    return { contract, blockNumber: receipt!.blockNumber };
  };

  const token = await deploy("ShoalToken", [adminAddress]);
  const devices = await deploy("DeviceRegistry", [
    await token.contract.getAddress(),
    adminAddress,
    treasury,
    deviceParameters(parameters),
  ]);
  const apps = await deploy("AppRegistry", []);
  const placements = await deploy("PlacementRegistry", [
    await apps.contract.getAddress(),
    await devices.contract.getAddress(),
    adminAddress,
    parameters.claimDeadline,
  ]);
  // Asks the DeviceRegistry who operates a device; no admin, nothing to wire.
  const resourceLog = await deploy("ResourceLog", [await devices.contract.getAddress()]);

  const addressOf = async (d: { contract: { getAddress(): Promise<string> } }) => ({
    address: await d.contract.getAddress(),
  });
  const bound = connectShoalContracts(
    {
      ShoalToken: await addressOf(token),
      DeviceRegistry: await addressOf(devices),
      AppRegistry: await addressOf(apps),
      PlacementRegistry: await addressOf(placements),
      ResourceLog: await addressOf(resourceLog),
    },
    admin,
  );
  const {
    devices: deviceRegistry,
    placements: placementRegistry,
    apps: appRegistry,
    token: shoalToken,
  } = bound;
  // The PlacementRegistry slashes liveness faults and counts outcomes, and is told of new deployments.
  const placementAddress = await placementRegistry.getAddress();
  await (await deviceRegistry.grantRole(await deviceRegistry.PLACEMENT_ROLE(), placementAddress)).wait();
  await (await appRegistry.setObserver(placementAddress)).wait();
  // Its live placements block a device's exit.
  await (await deviceRegistry.setPlacementRegistry(placementAddress)).wait();
  const mintAmount = options.mintAmount ?? 10_000n * ONE_TOKEN;
  for (const account of options.mintTo ?? []) {
    await (await shoalToken.mint(account, mintAmount)).wait();
  }

  let timelock: { contract: unknown; blockNumber: number } | undefined;
  if ((options.governance ?? "timelock") === "timelock") {
    // The admin proposes (and may cancel); anyone executes what has waited out the delay.
    timelock = await deploy("ShoalTimelock", [
      parameters.timelockDelay,
      [adminAddress],
      [hre.ethers.ZeroAddress],
      hre.ethers.ZeroAddress,
    ]);
    const timelockAddress = await (timelock.contract as ShoalTimelock).getAddress();
    for (const registry of [deviceRegistry, placementRegistry] as const) {
      const role = await registry.DEFAULT_ADMIN_ROLE();
      await (await registry.grantRole(role, timelockAddress)).wait();
      await (await registry.renounceRole(role, adminAddress)).wait();
    }
  }

  return {
    token: shoalToken,
    devices: deviceRegistry,
    apps: appRegistry,
    placements: placementRegistry,
    resourceLog: bound.resourceLog!,
    parameters,
    treasury,
    timelock: timelock?.contract as ShoalTimelock | undefined,
    blockNumbers: {
      ShoalToken: token.blockNumber,
      DeviceRegistry: devices.blockNumber,
      AppRegistry: apps.blockNumber,
      PlacementRegistry: placements.blockNumber,
      ResourceLog: resourceLog.blockNumber,
      ...(timelock && { ShoalTimelock: timelock.blockNumber }),
    },
  };
}

/** The DeviceRegistry's `Parameters` struct out of {@link ShoalParameters}. */
function deviceParameters(p: ShoalParameters) {
  return {
    minStake: p.minStake,
    collateralPerPlacement: p.collateralPerPlacement,
    heartbeatTtl: p.heartbeatTtl,
    unbondingDelay: p.unbondingDelay,
    livenessSlashBps: p.livenessSlashBps,
    bountyBps: p.bountyBps,
  };
}

/** Environment variable of each parameter that the deploy script reads. */
export const PARAMETER_ENV = {
  SHOAL_MIN_STAKE: "minStake",
  SHOAL_COLLATERAL_PER_PLACEMENT: "collateralPerPlacement",
  SHOAL_HEARTBEAT_TTL: "heartbeatTtl",
  SHOAL_UNBONDING_DELAY: "unbondingDelay",
  SHOAL_LIVENESS_SLASH_BPS: "livenessSlashBps",
  SHOAL_BOUNTY_BPS: "bountyBps",
  SHOAL_CLAIM_DEADLINE: "claimDeadline",
  SHOAL_TIMELOCK_DELAY: "timelockDelay",
} as const satisfies Record<string, keyof ShoalParameters>;

/**
 * Parameter overrides from the environment; unset or empty variables keep the defaults. A bad value
 * throws one sentence naming the variable, the value and what is allowed, before anything is sent.
 */
export function parametersFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<ShoalParameters> {
  const out: Partial<ShoalParameters> = {};
  const whole = (name: string, value: string, min: number, max: number): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max)
      throw new Error(`${name}: "${value}" is not allowed; use a whole number from ${min} to ${max}`);
    return n;
  };
  for (const [name, field] of Object.entries(PARAMETER_ENV)) {
    const value = env[name];
    if (value === undefined || value.trim() === "") continue;
    if (field === "minStake" || field === "collateralPerPlacement") {
      if (!/^\d+(\.\d{1,18})?$/.test(value.trim()) || value.trim().split(".")[0].length > 6)
        throw new Error(
          `${name}: "${value}" is not allowed; give an amount of tokens below 1,000,000 such as 100 or 0.5`,
        );
      const amount = parseTokens(value.trim());
      if (amount <= 0n && field === "minStake")
        throw new Error(`${name}: "${value}" is not allowed; give a positive amount of tokens`);
      out[field] = amount;
    } else if (field === "livenessSlashBps" || field === "bountyBps") {
      out[field] = whole(name, value, 0, 10_000);
    } else if (field === "claimDeadline") {
      out[field] = whole(name, value, 1, 30 * 24 * 3600);
    } else if (field === "timelockDelay") {
      out[field] = whole(name, value, 0, 30 * 24 * 3600);
    } else {
      out[field] = whole(name, value, 1, 2 ** 32 - 1);
    }
  }
  const ttl = out.heartbeatTtl ?? DEFAULT_PARAMETERS.heartbeatTtl;
  const unbonding = out.unbondingDelay ?? DEFAULT_PARAMETERS.unbondingDelay;
  if (unbonding <= ttl)
    throw new Error(
      `SHOAL_UNBONDING_DELAY: ${unbonding} s is not more than the heartbeat TTL (${ttl} s); the contract needs unbonding > TTL`,
    );
  return out;
}

function parseTokens(value: string): bigint {
  const [whole, fraction = ""] = value.split(".");
  return BigInt(whole) * ONE_TOKEN + BigInt(fraction.padEnd(18, "0"));
}

async function main(): Promise<void> {
  const hre: HardhatRuntimeEnvironment = require("hardhat");
  let parameters: Partial<ShoalParameters>;
  try {
    parameters = parametersFromEnv();
  } catch (error) {
    console.error(`deploy: ${(error as Error).message}`);
    process.exitCode = 2;
    return;
  }
  const signers = await hre.ethers.getSigners();
  const mintTo = await Promise.all(signers.slice(0, 10).map((s) => s.getAddress()));
  const d = await deployShoal(hre, { mintTo, parameters });
  const { chainId } = await hre.ethers.provider.getNetwork();

  const contracts = {
    ShoalToken: { address: await d.token.getAddress(), blockNumber: d.blockNumbers.ShoalToken },
    DeviceRegistry: { address: await d.devices.getAddress(), blockNumber: d.blockNumbers.DeviceRegistry },
    AppRegistry: { address: await d.apps.getAddress(), blockNumber: d.blockNumbers.AppRegistry },
    PlacementRegistry: {
      address: await d.placements.getAddress(),
      blockNumber: d.blockNumbers.PlacementRegistry,
    },
    ResourceLog: { address: await d.resourceLog.getAddress(), blockNumber: d.blockNumbers.ResourceLog },
  };
  const timelockAddress = await d.timelock!.getAddress();
  const record = {
    chainId: Number(chainId),
    network: hre.network.name,
    deployedAt: new Date().toISOString(),
    contracts,
    parameters: {
      minStake: d.parameters.minStake.toString(),
      collateralPerPlacement: d.parameters.collateralPerPlacement.toString(),
      heartbeatTtl: d.parameters.heartbeatTtl,
      unbondingDelay: d.parameters.unbondingDelay,
      livenessSlashBps: d.parameters.livenessSlashBps,
      bountyBps: d.parameters.bountyBps,
      claimDeadline: d.parameters.claimDeadline,
      treasury: d.treasury,
      mintedPerAccount: (10_000n * ONE_TOKEN).toString(),
      mintedTo: mintTo,
    },
    governance: {
      ShoalTimelock: { address: timelockAddress, blockNumber: d.blockNumbers.ShoalTimelock },
      minDelay: d.parameters.timelockDelay,
      proposer: await signers[0].getAddress(),
    },
  };
  const file = deploymentFile(hre);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(record, null, 2) + "\n");

  console.log(`Shoal deployed on ${hre.network.name} (chainId ${chainId}):`);
  for (const [name, c] of Object.entries(contracts)) {
    console.log(`  ${name.padEnd(18)} ${c.address}  (block ${c.blockNumber})`);
  }
  console.log(
    `  minStake ${hre.ethers.formatEther(d.parameters.minStake)} SHOAL + ` +
      `${hre.ethers.formatEther(d.parameters.collateralPerPlacement)} per placement, heartbeat TTL ${d.parameters.heartbeatTtl} s, ` +
      `unbonding ${d.parameters.unbondingDelay} s, liveness slash ${d.parameters.livenessSlashBps} bps, ` +
      `bounty ${d.parameters.bountyBps} bps`,
  );
  console.log(
    `  admin roles held by ShoalTimelock ${timelockAddress} (delay ${d.parameters.timelockDelay} s, proposer ` +
      `${await signers[0].getAddress()}); PAUSER_ROLE stays with the deployer`,
  );
  console.log(
    `  minted 10000 SHOAL to ${mintTo.length} accounts; wrote ${path.relative(process.cwd(), file)}`,
  );
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
