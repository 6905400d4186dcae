/**
 * Governance: the deploy script hands DEFAULT_ADMIN_ROLE of both registries to a ShoalTimelock. Every change
 * that could hurt devices at once (lowering the TTL, granting PLACEMENT_ROLE or SLASHER_ROLE, changing slash
 * amounts, shortening the claim deadline) waits out the delay in public before it applies.
 */
import { expect } from "chai";
import hre, { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import type { BaseContract } from "ethers";
import { deployShoal, DEFAULT_PARAMETERS } from "../../scripts/deploy";

const DELAY = 3600;
const ZERO = ethers.ZeroHash;
/** TimelockController's state bit for Ready (1 << OperationState.Ready). */
const READY = ethers.toBeHex(1n << 2n, 32);

async function governedFixture() {
  const [admin, other, mallory] = await ethers.getSigners();
  const shoal = await deployShoal(hre, { admin, parameters: { timelockDelay: DELAY } });
  const timelock = shoal.timelock!;
  /** Schedules `data` on `target` through the timelock and returns a function that executes it. */
  const propose = async (target: BaseContract, data: string, salt = ZERO) => {
    const to = await target.getAddress();
    await (await timelock.connect(admin).schedule(to, 0, data, ZERO, salt, DELAY)).wait();
    const id = await timelock.hashOperation(to, 0, data, ZERO, salt);
    return { id, execute: () => timelock.connect(other).execute(to, 0, data, ZERO, salt) };
  };
  return { ...shoal, timelock, admin, other, mallory, propose };
}

describe("Governance (timelock)", () => {
  it("test_deploy_adminRolesBelongToTheTimelock", async () => {
    const { devices, placements, timelock, admin } = await loadFixture(governedFixture);
    const t = await timelock.getAddress();
    for (const registry of [devices, placements]) {
      const role = await registry.DEFAULT_ADMIN_ROLE();
      expect(await registry.hasRole(role, t)).to.equal(true);
      expect(await registry.hasRole(role, admin.address)).to.equal(false);
      // Pausing stays with the deployer: it stops new work, it takes nothing from a device.
      expect(await registry.hasRole(await registry.PAUSER_ROLE(), admin.address)).to.equal(true);
    }
    expect(await timelock.getMinDelay()).to.equal(DELAY);
    expect(await timelock.hasRole(await timelock.PROPOSER_ROLE(), admin.address)).to.equal(true);
  });

  it("test_admin_cannotActWithoutTheTimelock", async () => {
    const { devices, placements, admin } = await loadFixture(governedFixture);
    const role = await devices.DEFAULT_ADMIN_ROLE();
    const p = { ...DEFAULT_PARAMETERS, heartbeatTtl: 10, unbondingDelay: 11 };
    await expect(
      devices.connect(admin).setParameters({
        minStake: p.minStake,
        collateralPerPlacement: p.collateralPerPlacement,
        heartbeatTtl: p.heartbeatTtl,
        unbondingDelay: p.unbondingDelay,
        livenessSlashBps: p.livenessSlashBps,
        bountyBps: p.bountyBps,
      }),
    )
      .to.be.revertedWithCustomError(devices, "AccessControlUnauthorizedAccount")
      .withArgs(admin.address, role);
    await expect(devices.connect(admin).grantRole(await devices.SLASHER_ROLE(), admin.address))
      .to.be.revertedWithCustomError(devices, "AccessControlUnauthorizedAccount")
      .withArgs(admin.address, role);
    await expect(placements.connect(admin).setClaimDeadline(1))
      .to.be.revertedWithCustomError(placements, "AccessControlUnauthorizedAccount")
      .withArgs(admin.address, role);
  });

  it("test_lowerTtlAndSlashAmounts_waitOutTheDelay", async () => {
    const { devices, timelock, propose } = await loadFixture(governedFixture);
    const next = {
      minStake: DEFAULT_PARAMETERS.minStake,
      collateralPerPlacement: 50n * 10n ** 18n,
      heartbeatTtl: 30,
      unbondingDelay: 60,
      livenessSlashBps: 5000,
      bountyBps: DEFAULT_PARAMETERS.bountyBps,
    };
    const op = await propose(devices, devices.interface.encodeFunctionData("setParameters", [next]));
    await expect(op.execute())
      .to.be.revertedWithCustomError(timelock, "TimelockUnexpectedOperationState")
      .withArgs(op.id, READY);
    expect((await devices.parameters()).heartbeatTtl).to.equal(DEFAULT_PARAMETERS.heartbeatTtl);
    await time.increase(DELAY);
    await expect(op.execute())
      .to.emit(devices, "ParametersChanged")
      .withArgs([next.minStake, next.collateralPerPlacement, 30, 60, 5000, next.bountyBps]);
    expect((await devices.parameters()).heartbeatTtl).to.equal(30);
  });

  it("test_grantPlacementAndSlasherRoles_waitOutTheDelay", async () => {
    const { devices, timelock, mallory, propose } = await loadFixture(governedFixture);
    for (const name of ["PLACEMENT_ROLE", "SLASHER_ROLE"] as const) {
      const role = await devices[name]();
      const op = await propose(
        devices,
        devices.interface.encodeFunctionData("grantRole", [role, mallory.address]),
      );
      await expect(op.execute())
        .to.be.revertedWithCustomError(timelock, "TimelockUnexpectedOperationState")
        .withArgs(op.id, READY);
      expect(await devices.hasRole(role, mallory.address)).to.equal(false);
      await time.increase(DELAY);
      await expect(op.execute())
        .to.emit(devices, "RoleGranted")
        .withArgs(role, mallory.address, await timelock.getAddress());
    }
  });

  it("test_claimDeadline_changesThroughTheTimelock", async () => {
    const { placements, propose } = await loadFixture(governedFixture);
    const op = await propose(placements, placements.interface.encodeFunctionData("setClaimDeadline", [60]));
    await time.increase(DELAY);
    await expect(op.execute()).to.emit(placements, "ClaimDeadlineChanged").withArgs(60);
    expect(await placements.claimDeadline()).to.equal(60);
  });

  it("test_onlyTheProposerSchedulesAndNoOneSkipsTheDelay", async () => {
    const { devices, timelock, admin, mallory } = await loadFixture(governedFixture);
    const to = await devices.getAddress();
    const data = devices.interface.encodeFunctionData("grantRole", [
      await devices.SLASHER_ROLE(),
      mallory.address,
    ]);
    await expect(timelock.connect(mallory).schedule(to, 0, data, ZERO, ZERO, DELAY))
      .to.be.revertedWithCustomError(timelock, "AccessControlUnauthorizedAccount")
      .withArgs(mallory.address, await timelock.PROPOSER_ROLE());
    await expect(timelock.connect(admin).schedule(to, 0, data, ZERO, ZERO, DELAY - 1))
      .to.be.revertedWithCustomError(timelock, "TimelockInsufficientDelay")
      .withArgs(DELAY - 1, DELAY);
    // The delay itself can only change through the timelock.
    await expect(timelock.connect(admin).updateDelay(0))
      .to.be.revertedWithCustomError(timelock, "TimelockUnauthorizedCaller")
      .withArgs(admin.address);
  });

  it("test_proposerCanCancelBeforeExecution", async () => {
    const { devices, timelock, admin, mallory, propose } = await loadFixture(governedFixture);
    const role = await devices.SLASHER_ROLE();
    const op = await propose(
      devices,
      devices.interface.encodeFunctionData("grantRole", [role, mallory.address]),
    );
    await expect(timelock.connect(admin).cancel(op.id)).to.emit(timelock, "Cancelled").withArgs(op.id);
    await time.increase(DELAY);
    await expect(op.execute()).to.be.revertedWithCustomError(timelock, "TimelockUnexpectedOperationState");
    expect(await devices.hasRole(role, mallory.address)).to.equal(false);
  });
});
