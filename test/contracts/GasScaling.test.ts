/**
 * O(1) in practice: claim, confirm, heartbeat and expire cost the same gas (within 12 gas) in a world with
 * 1 device and 1 placement and in one with 1,000 devices and 1,000 placements (all of one deployment, so
 * the deployment's own placement count grows too). The measured device does the same thing in both.
 */
import { expect } from "chai";
import hre, { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import type { ContractTransactionResponse } from "ethers";
import { deployShoal, DEFAULT_PARAMETERS } from "../../scripts/deploy";

const CID = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq";
const BAND = { cpuMinMillicores: 250, cpuMaxMillicores: 1000, memoryMinMiB: 128, memoryMaxMiB: 512 };
const ENDPOINT = "/ip4/192.168.1.20/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
const LABELS = ["region=eu-west", "tier=edge"];
const X = 1; // the crowded deployment
const H = 2; // a helper deployment the measured device claims first, so its usage slot is warm

async function world(others: number) {
  const [admin, appOwner, crowd, measured, other] = await ethers.getSigners();
  const { token, devices, apps, placements } = await deployShoal(hre, {
    admin,
    mintTo: [crowd.address, measured.address],
    mintAmount: 10_000_000n * 10n ** 18n,
  });
  const stake = DEFAULT_PARAMETERS.minStake + 10n * DEFAULT_PARAMETERS.collateralPerPlacement;
  await token.connect(crowd).approve(await devices.getAddress(), ethers.MaxUint256);
  await token.connect(measured).approve(await devices.getAddress(), ethers.MaxUint256);
  await apps.connect(appOwner).registerApp("crowded");
  await apps.connect(appOwner).publishVersion(1, CID, ["linux/amd64"], [CID], BAND);
  await apps.connect(appOwner).createDeployment(1, 1, 5000, ["region=eu-west"]);
  await apps.connect(appOwner).createDeployment(1, 1, 5000, ["region=eu-west"]);
  const d = devices.connect(crowd);
  const p = placements.connect(crowd);
  for (let i = 1; i <= others; i++) {
    await d.enroll(crowd.address, "linux/amd64", 4000, 8192, LABELS, ENDPOINT, stake);
    await p.claim(X, i);
  }
  await devices
    .connect(measured)
    .enroll(measured.address, "linux/amd64", 4000, 8192, LABELS, ENDPOINT, stake);
  const m = others + 1;
  await placements.connect(measured).claim(H, m);
  return { devices, placements, measured, other, m };
}

const small = () => world(1);
const large = () => world(1000);

async function gas(tx: Promise<ContractTransactionResponse>): Promise<bigint> {
  return (await (await tx).wait())!.gasUsed;
}

/** The same four operations by the measured device, in the given world. */
async function measure(w: Awaited<ReturnType<typeof world>>) {
  const { devices, placements, measured, other, m } = w;
  const heartbeat = await gas(devices.connect(measured).heartbeat(m));
  const claim = await gas(placements.connect(measured).claim(X, m));
  const id = await placements.activePlacementOf(X, m);
  const confirm = await gas(placements.connect(measured).confirm(id));
  await time.increase(DEFAULT_PARAMETERS.heartbeatTtl + 1);
  const expire = await gas(placements.connect(other).expireDevice(m));
  return { heartbeat, claim, confirm, expire };
}

describe("Gas scaling", function () {
  this.timeout(300_000);

  it("test_gas_sameWith1And1000DevicesAndPlacements", async function () {
    const a = await measure(await loadFixture(small));
    const big = await loadFixture(large);
    expect((await big.placements.deploymentUsage(X)).liveReplicas).to.equal(1000);
    expect(await big.devices.deviceCount()).to.equal(1001);
    const b = await measure(big);
    // The only difference allowed is calldata: the measured device's id is 1001 (two non-zero
    // bytes) instead of 2 (one), and a non-zero calldata byte costs 16 gas instead of 4, so 12.
    // Anything that grows with the number of devices or placements costs far more than that.
    for (const op of ["heartbeat", "claim", "confirm", "expire"] as const) {
      const diff = b[op] > a[op] ? b[op] - a[op] : a[op] - b[op];
      expect(diff, `${op}: ${a[op]} with 1, ${b[op]} with 1,000`).to.be.lte(12n);
    }
    if (process.env.SHOAL_VERBOSE) console.log({ with1: a, with1000: b });
  });
});
