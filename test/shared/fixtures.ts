/**
 * Named fixtures for the contract tests, each built on the one before and loaded with `loadFixture`.
 */
import { placementIdOf } from "../../workers/src";
import hre, { ethers } from "hardhat";
import { deployShoal, DEFAULT_PARAMETERS } from "../../scripts/deploy";
import type { IAppRegistry } from "../../typechain-types";

export const ONE = 10n ** 18n;
export const MIN_STAKE = DEFAULT_PARAMETERS.minStake;
export const COLLATERAL = DEFAULT_PARAMETERS.collateralPerPlacement;
/** The fixture device's stake: the minimum plus the collateral of 10 placements. */
export const DEVICE_STAKE = MIN_STAKE + 10n * COLLATERAL;
export const TTL = DEFAULT_PARAMETERS.heartbeatTtl;
export const UNBONDING = DEFAULT_PARAMETERS.unbondingDelay;
export const SLASH_BPS = BigInt(DEFAULT_PARAMETERS.livenessSlashBps);
export const BOUNTY_BPS = BigInt(DEFAULT_PARAMETERS.bountyBps);
export const CLAIM_DEADLINE = DEFAULT_PARAMETERS.claimDeadline;

export const AMD64 = "linux/amd64";
export const ARM64 = "linux/arm64";
export const MANIFEST_V1 = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
export const MANIFEST_V2 = "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
export const IMAGE_AMD64 = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq";
export const IMAGE_ARM64 = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
export const IMAGE_AMD64_V2 = "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvjk7fcnddfgvuqmfa";
export const ENDPOINT = "/ip4/192.168.1.20/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
export const BAND: IAppRegistry.ResourceBandStruct = {
  cpuMinMillicores: 250,
  cpuMaxMillicores: 1000,
  memoryMinMiB: 128,
  memoryMaxMiB: 512,
};
export const BAND_V2: IAppRegistry.ResourceBandStruct = {
  cpuMinMillicores: 500,
  cpuMaxMillicores: 2000,
  memoryMinMiB: 256,
  memoryMaxMiB: 1024,
};
export const DEVICE_CPU = 4000;
export const DEVICE_MEMORY = 8192;
export const DEVICE_LABELS = ["region=eu-west", "tier=edge"];

/** The 8-byte key of a label, as Labels.key computes it. */
export const labelKey = (label: string): string => ethers.id(label).slice(0, 18);
/** The key of a platform, as Platforms.key computes it. */
export const platformKey = (platform: string): string => ethers.id(platform);
/** A placement id from its deployment and its number within the deployment. */
export { placementIdOf };

/** Contracts deployed and wired; accounts funded and approved. */
export async function deployFixture() {
  const [admin, appOwner, deviceOwner, operator, other, slasher, treasury, deviceOwner2, operator2] =
    await ethers.getSigners();
  const shoal = await deployShoal(hre, {
    admin,
    treasury: treasury.address,
    mintTo: [deviceOwner.address, deviceOwner2.address, other.address],
    mintAmount: 100_000n * ONE,
    // The registries' own rules, with the admin acting at once; Governance.test.ts covers the timelock.
    governance: "direct",
  });
  const { token, devices } = shoal;
  await devices.grantRole(await devices.SLASHER_ROLE(), slasher.address);
  const registry = await devices.getAddress();
  for (const s of [deviceOwner, deviceOwner2, other]) {
    await token.connect(s).approve(registry, ethers.MaxUint256);
  }
  return {
    ...shoal,
    admin,
    appOwner,
    deviceOwner,
    operator,
    other,
    slasher,
    treasury,
    deviceOwner2,
    operator2,
  };
}

/** + app "hello" (id 1) with version 1 (amd64 + arm64, BAND) and version 2 (amd64 only, BAND_V2). */
export async function appFixture() {
  const f = await deployFixture();
  const apps = f.apps.connect(f.appOwner);
  await apps.registerApp("hello");
  await apps.publishVersion(1, MANIFEST_V1, [AMD64, ARM64], [IMAGE_AMD64, IMAGE_ARM64], BAND);
  await apps.publishVersion(1, MANIFEST_V2, [AMD64], [IMAGE_AMD64_V2], BAND_V2);
  return f;
}

/** + device 1 (amd64, DEVICE_CPU/DEVICE_MEMORY, DEVICE_LABELS, operator) staked with DEVICE_STAKE. */
export async function deviceFixture() {
  const f = await appFixture();
  await f.devices
    .connect(f.deviceOwner)
    .enroll(f.operator.address, AMD64, DEVICE_CPU, DEVICE_MEMORY, DEVICE_LABELS, ENDPOINT, DEVICE_STAKE);
  return f;
}

/** + deployment 1: version 1 of app 1, 3 replicas, requires region=eu-west. */
export async function deploymentFixture() {
  const f = await deviceFixture();
  await f.apps.connect(f.appOwner).createDeployment(1, 1, 3, ["region=eu-west"]);
  return f;
}

/** + placement (1, 1) of deployment 1 claimed by device 1's operator. */
export async function claimedFixture() {
  const f = await deploymentFixture();
  await f.placements.connect(f.operator).claim(1, 1);
  return { ...f, placementId: placementIdOf(1, 1) };
}

/** + the placement confirmed Running. */
export async function runningFixture() {
  const f = await claimedFixture();
  await f.placements.connect(f.operator).confirm(f.placementId);
  return f;
}
