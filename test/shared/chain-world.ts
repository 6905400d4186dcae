// A fresh set of Shoal contracts on the shared Hardhat node with one enrolled device and one
// deployment it may claim: the world the Registry and ChainSource conformance suites run in.
import { expect } from "chai";
import { JsonRpcProvider, type Wallet, type HDNodeWallet } from "ethers";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { AppRegistry__factory, DeviceRegistry__factory, ShoalToken__factory } from "../../typechain-types";
import { devWallet, runHardhat } from "../../scripts/lib/local-chain";
import { requireChain, serviceUrls } from "./services";

export const WORLD_PLATFORM = "linux/amd64";
export const WORLD_BAND = {
  cpuMinMillicores: 100,
  cpuMaxMillicores: 500,
  memoryMinMiB: 32,
  memoryMaxMiB: 64,
};
export const WORLD_MANIFEST_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
export const WORLD_IMAGE_CID = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq";

export interface ChainWorld {
  rpcUrl: string;
  provider: JsonRpcProvider;
  chainId: number;
  /** deployments/<network>.json as scripts/deploy.ts wrote it. */
  record: { chainId: number; contracts: Record<string, { address: string; blockNumber: number }> };
  operator: HDNodeWallet | Wallet;
  deviceId: number;
  device: { platform: string; cpuMillicores: number; memoryMiB: number; labelCount: number };
  deployment: {
    deploymentId: number;
    appId: number;
    version: number;
    replicas: number;
    band: typeof WORLD_BAND;
    manifestCid: string;
    imageCid: string;
  };
  close(): Promise<void>;
}

/**
 * Deploys the contracts, enrolls dev account `operatorIndex` as device 1 (its own operator) and
 * creates deployment 1 of app 1 version 1 with 2 replicas that the device may claim.
 */
export async function chainWorld(operatorIndex: number): Promise<ChainWorld> {
  const { rpcUrl } = serviceUrls();
  await requireChain();
  const dir = await mkdtemp(path.join(tmpdir(), "shoal-world-"));
  const deployed = await runHardhat(["run", "scripts/deploy.ts"], { SHOAL_DEPLOYMENTS_DIR: dir });
  expect(deployed.status, deployed.stderr).to.equal(0);
  const record = JSON.parse(await readFile(path.join(dir, "localhost.json"), "utf8"));
  const provider = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
  const admin = devWallet(0).connect(provider);
  const operator = devWallet(operatorIndex).connect(provider);
  const at = (name: string) => record.contracts[name].address as string;
  const send = async (tx: Promise<{ wait(): Promise<unknown> }>) => void (await (await tx).wait());

  // The minimum stake (100) plus collateral for a few placements (10 each, scripts/deploy.ts).
  const stake = 200n * 10n ** 18n;
  const device = { platform: WORLD_PLATFORM, cpuMillicores: 2000, memoryMiB: 1024, labelCount: 1 };
  // scripts/deploy.ts mints to the first ten dev accounts only: the admin passes the stake on.
  await send(ShoalToken__factory.connect(at("ShoalToken"), admin).transfer(operator.address, stake));
  await send(ShoalToken__factory.connect(at("ShoalToken"), operator).approve(at("DeviceRegistry"), stake));
  await send(
    DeviceRegistry__factory.connect(at("DeviceRegistry"), operator).enroll(
      operator.address,
      device.platform,
      device.cpuMillicores,
      device.memoryMiB,
      ["region=test"],
      "/ip4/127.0.0.1/tcp/4001",
      stake,
    ),
  );
  const apps = AppRegistry__factory.connect(at("AppRegistry"), admin);
  await send(apps.registerApp("conformance"));
  await send(apps.publishVersion(1, WORLD_MANIFEST_CID, [WORLD_PLATFORM], [WORLD_IMAGE_CID], WORLD_BAND));
  await send(apps.createDeployment(1, 1, 2, ["region=test"]));

  return {
    rpcUrl,
    provider,
    chainId: record.chainId,
    record,
    operator,
    deviceId: 1,
    device,
    deployment: {
      deploymentId: 1,
      appId: 1,
      version: 1,
      replicas: 2,
      band: WORLD_BAND,
      manifestCid: WORLD_MANIFEST_CID,
      imageCid: WORLD_IMAGE_CID,
    },
    async close() {
      provider.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
