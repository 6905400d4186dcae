import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { DEFAULT_PARAMETERS } from "../../scripts/deploy";
import type { DeviceRegistry, ReentrantToken } from "../../typechain-types";

const STAKE = DEFAULT_PARAMETERS.minStake;

/** A DeviceRegistry staking a hostile token that calls back into the registry on every transfer. */
async function hostileTokenFixture() {
  const [admin, owner] = await ethers.getSigners();
  const token = (await ethers.deployContract("ReentrantToken")) as unknown as ReentrantToken;
  const devices = (await ethers.deployContract("DeviceRegistry", [
    await token.getAddress(),
    admin.address,
    admin.address,
    DEFAULT_PARAMETERS,
  ])) as unknown as DeviceRegistry;
  await token.mint(owner.address, STAKE * 10n);
  await token.connect(owner).approve(await devices.getAddress(), ethers.MaxUint256);
  await devices.connect(owner).enroll(owner.address, "linux/amd64", 1000, 1024, [], "/ip4/127.0.0.1", STAKE);
  return { token, devices, owner };
}

describe("Reentrancy", () => {
  it("test_topUp_failsIfTokenReenters", async () => {
    const { token, devices, owner } = await loadFixture(hostileTokenFixture);
    await token.arm(await devices.getAddress(), devices.interface.encodeFunctionData("topUp", [1, 1n]));
    await expect(devices.connect(owner).topUp(1, STAKE)).to.be.revertedWithCustomError(
      devices,
      "ReentrancyGuardReentrantCall",
    );
  });

  it("test_enroll_failsIfTokenReenters", async () => {
    const { token, devices, owner } = await loadFixture(hostileTokenFixture);
    await token.arm(await devices.getAddress(), devices.interface.encodeFunctionData("completeExit", [1]));
    await expect(
      devices.connect(owner).enroll(owner.address, "linux/amd64", 1000, 1024, [], "/ip4/127.0.0.1", STAKE),
    ).to.be.revertedWithCustomError(devices, "ReentrancyGuardReentrantCall");
  });
});
