import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import {
  AMD64,
  DEVICE_CPU,
  DEVICE_LABELS,
  DEVICE_MEMORY,
  ENDPOINT,
  MIN_STAKE,
  COLLATERAL,
  DEVICE_STAKE,
  ONE,
  TTL,
  UNBONDING,
  deployFixture,
  deviceFixture,
  labelKey,
  platformKey,
} from "../shared/fixtures";

const DeviceStatus = { None: 0, Active: 1, Exiting: 2, Exited: 3 };
const SlashKind = { Liveness: 0, Fault: 1 };
const EVIDENCE = "bafkreiaxnnnb7qz2focittuqq3ya25q7rcv3bqynnczfzao5brt6dt2bdq";

describe("DeviceRegistry", () => {
  describe("enroll", () => {
    it("test_enroll_storesDeviceAndPullsStake", async () => {
      const { devices, token, deviceOwner, operator } = await loadFixture(deployFixture);
      const before = await token.balanceOf(deviceOwner.address);
      const tx = devices
        .connect(deviceOwner)
        .enroll(operator.address, AMD64, DEVICE_CPU, DEVICE_MEMORY, DEVICE_LABELS, ENDPOINT, MIN_STAKE);
      await expect(tx)
        .to.emit(devices, "DeviceEnrolled")
        .withArgs(
          1,
          deviceOwner.address,
          operator.address,
          AMD64,
          DEVICE_CPU,
          DEVICE_MEMORY,
          DEVICE_LABELS,
          ENDPOINT,
          MIN_STAKE,
        );
      await expect(tx).to.changeTokenBalances(token, [deviceOwner, devices], [-MIN_STAKE, MIN_STAKE]);
      const d = await devices.device(1);
      expect(d.owner).to.equal(deviceOwner.address);
      expect(d.operator).to.equal(operator.address);
      expect(d.status).to.equal(DeviceStatus.Active);
      expect(d.stake).to.equal(MIN_STAKE);
      expect(d.cpuMillicores).to.equal(DEVICE_CPU);
      expect(d.memoryMiB).to.equal(DEVICE_MEMORY);
      expect(d.platform).to.equal(AMD64);
      expect(d.labels).to.deep.equal(DEVICE_LABELS.map(labelKey));
      expect(d.lastHeartbeat).to.equal(await time.latest());
      expect(await devices.deviceCount()).to.equal(1);
      expect(await devices.totalStaked()).to.equal(MIN_STAKE);
      expect(await token.balanceOf(await devices.getAddress())).to.equal(MIN_STAKE);
      expect(before - (await token.balanceOf(deviceOwner.address))).to.equal(MIN_STAKE);
      const c = await devices.claimContext(1);
      expect(c.platformKey).to.equal(platformKey(AMD64));
      expect(c.staked).to.equal(true);
      expect(c.fresh).to.equal(true);
      expect(await devices.isAuthorized(1, operator.address)).to.equal(true);
      expect(await devices.isAuthorized(1, deviceOwner.address)).to.equal(true);
      expect(await devices.isAuthorized(2, ethers.ZeroAddress)).to.equal(false);
      const r = await devices.reputation(1);
      expect([r.completed, r.failed, r.expired]).to.deep.equal([0n, 0n, 0n]);
    });

    it("test_enroll_failsIfInputInvalid", async () => {
      const { devices, deviceOwner, operator } = await loadFixture(deployFixture);
      const d = devices.connect(deviceOwner);
      const ok = [
        operator.address,
        AMD64,
        DEVICE_CPU,
        DEVICE_MEMORY,
        DEVICE_LABELS,
        ENDPOINT,
        MIN_STAKE,
      ] as const;
      await expect(d.enroll(ethers.ZeroAddress, ok[1], ok[2], ok[3], ok[4], ok[5], ok[6]))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryInvalidOperator")
        .withArgs(ethers.ZeroAddress);
      await expect(d.enroll(ok[0], "amd64", ok[2], ok[3], ok[4], ok[5], ok[6]))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryInvalidPlatform")
        .withArgs("amd64");
      await expect(d.enroll(ok[0], ok[1], 0, ok[3], ok[4], ok[5], ok[6]))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryInvalidCapacity")
        .withArgs(0, DEVICE_MEMORY);
      await expect(d.enroll(ok[0], ok[1], ok[2], 0, ok[4], ok[5], ok[6]))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryInvalidCapacity")
        .withArgs(DEVICE_CPU, 0);
      await expect(d.enroll(ok[0], ok[1], ok[2], ok[3], ok[4], "", ok[6]))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryInvalidEndpoint")
        .withArgs("");
      await expect(d.enroll(ok[0], ok[1], ok[2], ok[3], ok[4], ok[5], MIN_STAKE - 1n))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryInsufficientStake")
        .withArgs(MIN_STAKE - 1n, MIN_STAKE);
      const tooBig = 2n ** 96n;
      await expect(d.enroll(ok[0], ok[1], ok[2], ok[3], ok[4], ok[5], tooBig))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryStakeTooLarge")
        .withArgs(tooBig);
      await expect(d.enroll(ok[0], ok[1], ok[2], ok[3], ["x=1", "x=1"], ok[5], ok[6]))
        .to.be.revertedWithCustomError(devices, "LabelsDuplicate")
        .withArgs("x=1");
    });

    it("test_enroll_failsIfPaused", async () => {
      const { devices, admin, deviceOwner, operator } = await loadFixture(deployFixture);
      await expect(devices.connect(admin).pause()).to.emit(devices, "Paused").withArgs(admin.address);
      await expect(
        devices.connect(deviceOwner).enroll(operator.address, AMD64, 1, 1, [], ENDPOINT, MIN_STAKE),
      ).to.be.revertedWithCustomError(devices, "EnforcedPause");
      await expect(devices.connect(admin).unpause()).to.emit(devices, "Unpaused").withArgs(admin.address);
      await expect(
        devices.connect(deviceOwner).enroll(operator.address, AMD64, 1, 1, [], ENDPOINT, MIN_STAKE),
      ).to.emit(devices, "DeviceEnrolled");
    });

    it("test_pause_failsIfNotPauser", async () => {
      const { devices, other } = await loadFixture(deployFixture);
      await expect(devices.connect(other).pause())
        .to.be.revertedWithCustomError(devices, "AccessControlUnauthorizedAccount")
        .withArgs(other.address, await devices.PAUSER_ROLE());
    });
  });

  describe("heartbeat", () => {
    it("test_heartbeat_updatesLastHeartbeat", async () => {
      const { devices, operator, deviceOwner } = await loadFixture(deviceFixture);
      await time.increase(100);
      await expect(devices.connect(operator).heartbeat(1)).to.emit(devices, "DeviceHeartbeat").withArgs(1);
      expect((await devices.device(1)).lastHeartbeat).to.equal(await time.latest());
      await expect(devices.connect(deviceOwner).heartbeat(1)).to.emit(devices, "DeviceHeartbeat").withArgs(1);
    });

    it("test_heartbeat_staleAfterTtl", async () => {
      const { devices } = await loadFixture(deviceFixture);
      expect(await devices.isStale(1)).to.equal(false);
      await time.increase(TTL + 1);
      expect(await devices.isStale(1)).to.equal(true);
      expect((await devices.claimContext(1)).fresh).to.equal(false);
    });

    it("test_heartbeat_failsIfUnauthorized", async () => {
      const { devices, other } = await loadFixture(deviceFixture);
      await expect(devices.connect(other).heartbeat(1))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryUnauthorizedAccount")
        .withArgs(1, other.address);
    });

    it("test_heartbeat_failsIfExited", async () => {
      const { devices, deviceOwner, operator } = await loadFixture(deviceFixture);
      await devices.connect(deviceOwner).requestExit(1);
      await devices.connect(operator).heartbeat(1);
      await time.increase(UNBONDING);
      await devices.connect(deviceOwner).completeExit(1);
      await expect(devices.connect(operator).heartbeat(1))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryNotActive")
        .withArgs(1, DeviceStatus.Exited);
    });
  });

  describe("operator and endpoint", () => {
    it("test_setOperator_changesOperator", async () => {
      const { devices, deviceOwner, operator, operator2 } = await loadFixture(deviceFixture);
      await expect(devices.connect(deviceOwner).setOperator(1, operator2.address))
        .to.emit(devices, "DeviceOperatorChanged")
        .withArgs(1, operator.address, operator2.address);
      expect(await devices.isAuthorized(1, operator.address)).to.equal(false);
    });

    it("test_setOperator_failsIfNotOwnerOrZero", async () => {
      const { devices, deviceOwner, operator } = await loadFixture(deviceFixture);
      await expect(devices.connect(operator).setOperator(1, operator.address))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryNotDeviceOwner")
        .withArgs(1, operator.address);
      await expect(devices.connect(deviceOwner).setOperator(1, ethers.ZeroAddress))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryInvalidOperator")
        .withArgs(ethers.ZeroAddress);
      await expect(devices.connect(deviceOwner).setOperator(5, operator.address))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryUnknownDevice")
        .withArgs(5);
    });

    it("test_setEndpoint_emitsEndpoint", async () => {
      const { devices, operator, other } = await loadFixture(deviceFixture);
      const ep = "/ip4/10.0.0.9/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
      await expect(devices.connect(operator).setEndpoint(1, ep))
        .to.emit(devices, "DeviceEndpointChanged")
        .withArgs(1, ep);
      await expect(devices.connect(other).setEndpoint(1, ep))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryUnauthorizedAccount")
        .withArgs(1, other.address);
      const long = "x".repeat(257);
      await expect(devices.connect(operator).setEndpoint(1, long))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryInvalidEndpoint")
        .withArgs(long);
    });
  });

  describe("stake", () => {
    it("test_topUp_addsStake", async () => {
      const { devices, token, deviceOwner } = await loadFixture(deviceFixture);
      const tx = devices.connect(deviceOwner).topUp(1, 50n * ONE);
      await expect(tx)
        .to.emit(devices, "DeviceStakeIncreased")
        .withArgs(1, deviceOwner.address, 50n * ONE, DEVICE_STAKE + 50n * ONE);
      await expect(tx).to.changeTokenBalances(token, [deviceOwner, devices], [-50n * ONE, 50n * ONE]);
      expect(await devices.totalStaked()).to.equal(DEVICE_STAKE + 50n * ONE);
    });

    it("test_topUp_failsIfZeroOrTooLargeOrNotActive", async () => {
      const { devices, deviceOwner, token, admin } = await loadFixture(deviceFixture);
      await expect(devices.connect(deviceOwner).topUp(1, 0)).to.be.revertedWithCustomError(
        devices,
        "DeviceRegistryZeroAmount",
      );
      const huge = 2n ** 96n;
      await token.connect(admin).mint(deviceOwner.address, huge);
      await expect(devices.connect(deviceOwner).topUp(1, huge))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryStakeTooLarge")
        .withArgs(huge + DEVICE_STAKE);
      await devices.connect(deviceOwner).requestExit(1);
      await expect(devices.connect(deviceOwner).topUp(1, ONE))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryNotActive")
        .withArgs(1, DeviceStatus.Exiting);
    });

    it("test_exit_queueDelayComplete", async () => {
      const { devices, token, deviceOwner } = await loadFixture(deviceFixture);
      const tx = await devices.connect(deviceOwner).requestExit(1);
      const withdrawableAt = (await time.latest()) + UNBONDING;
      await expect(tx).to.emit(devices, "DeviceExitRequested").withArgs(1, withdrawableAt, DEVICE_STAKE);
      expect((await devices.device(1)).status).to.equal(DeviceStatus.Exiting);
      await expect(devices.connect(deviceOwner).completeExit(1))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryUnbonding")
        .withArgs(1, withdrawableAt);
      await time.increaseTo(withdrawableAt);
      const done = devices.connect(deviceOwner).completeExit(1);
      await expect(done).to.emit(devices, "DeviceExited").withArgs(1, deviceOwner.address, DEVICE_STAKE);
      await expect(done).to.changeTokenBalances(token, [deviceOwner, devices], [DEVICE_STAKE, -DEVICE_STAKE]);
      const d = await devices.device(1);
      expect(d.status).to.equal(DeviceStatus.Exited);
      expect(d.stake).to.equal(0);
      expect(await devices.totalStaked()).to.equal(0);
    });

    it("test_exit_stakeSlashableDuringUnbonding", async () => {
      const { devices, token, deviceOwner, slasher, treasury } = await loadFixture(deviceFixture);
      await devices.connect(deviceOwner).requestExit(1);
      await devices.connect(slasher).slash(1, 30n * ONE, EVIDENCE);
      await time.increase(UNBONDING);
      await expect(devices.connect(deviceOwner).completeExit(1))
        .to.emit(devices, "DeviceExited")
        .withArgs(1, deviceOwner.address, DEVICE_STAKE - 30n * ONE);
      expect(await token.balanceOf(treasury.address)).to.equal(30n * ONE);
    });

    it("test_exit_failsIfNotOwnerOrWrongStatus", async () => {
      const { devices, deviceOwner, operator, slasher } = await loadFixture(deviceFixture);
      await expect(devices.connect(operator).requestExit(1))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryNotDeviceOwner")
        .withArgs(1, operator.address);
      await expect(devices.connect(deviceOwner).completeExit(1))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryNotExiting")
        .withArgs(1, DeviceStatus.Active);
      await devices.connect(deviceOwner).requestExit(1);
      await expect(devices.connect(deviceOwner).requestExit(1))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryNotActive")
        .withArgs(1, DeviceStatus.Exiting);
      // A device slashed to nothing exits with nothing to transfer.
      await devices.connect(slasher).slash(1, DEVICE_STAKE, EVIDENCE);
      await time.increase(UNBONDING);
      await expect(devices.connect(deviceOwner).completeExit(1))
        .to.emit(devices, "DeviceExited")
        .withArgs(1, deviceOwner.address, 0);
    });
  });

  describe("slash", () => {
    it("test_slash_takesAmountToTreasury", async () => {
      const { devices, token, slasher, treasury } = await loadFixture(deviceFixture);
      const amount = DEVICE_STAKE - MIN_STAKE + 40n * ONE;
      const tx = devices.connect(slasher).slash(1, amount, EVIDENCE);
      await expect(tx)
        .to.emit(devices, "DeviceSlashed")
        .withArgs(
          1,
          slasher.address,
          SlashKind.Fault,
          amount,
          0,
          ethers.ZeroAddress,
          MIN_STAKE - 40n * ONE,
          EVIDENCE,
        );
      await expect(tx).to.changeTokenBalances(token, [devices, treasury], [-amount, amount]);
      expect(await devices.totalStaked()).to.equal(MIN_STAKE - 40n * ONE);
      // Below the minimum the device can no longer claim.
      expect((await devices.claimContext(1)).staked).to.equal(false);
    });

    it("test_slash_capsAtStake", async () => {
      const { devices, slasher } = await loadFixture(deviceFixture);
      await expect(devices.connect(slasher).slash(1, DEVICE_STAKE * 2n, EVIDENCE))
        .to.emit(devices, "DeviceSlashed")
        .withArgs(1, slasher.address, SlashKind.Fault, DEVICE_STAKE, 0, ethers.ZeroAddress, 0, EVIDENCE);
      await expect(devices.connect(slasher).slash(1, 1, EVIDENCE))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryNothingToSlash")
        .withArgs(1);
    });

    it("test_slash_failsIfNotSlasherOrBadInput", async () => {
      const { devices, slasher, other } = await loadFixture(deviceFixture);
      await expect(devices.connect(other).slash(1, 1, EVIDENCE))
        .to.be.revertedWithCustomError(devices, "AccessControlUnauthorizedAccount")
        .withArgs(other.address, await devices.SLASHER_ROLE());
      await expect(devices.connect(slasher).slash(1, 0, EVIDENCE)).to.be.revertedWithCustomError(
        devices,
        "DeviceRegistryZeroAmount",
      );
      await expect(devices.connect(slasher).slash(1, 1, ""))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryMissingEvidence")
        .withArgs(1);
      await expect(devices.connect(slasher).slash(7, 1, EVIDENCE))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryUnknownDevice")
        .withArgs(7);
    });

    it("test_slashLiveness_and_recordOutcome_failIfNotPlacementRole", async () => {
      const { devices, other } = await loadFixture(deviceFixture);
      const role = await devices.PLACEMENT_ROLE();
      await expect(devices.connect(other).slashLiveness(1, other.address, 1))
        .to.be.revertedWithCustomError(devices, "AccessControlUnauthorizedAccount")
        .withArgs(other.address, role);
      await expect(devices.connect(other).recordOutcome(1, 0))
        .to.be.revertedWithCustomError(devices, "AccessControlUnauthorizedAccount")
        .withArgs(other.address, role);
    });

    it("test_slashLiveness_paysBountyAndTreasury", async () => {
      const { devices, token, admin, other, treasury } = await loadFixture(deviceFixture);
      await devices.connect(admin).grantRole(await devices.PLACEMENT_ROLE(), admin.address);
      // 10 % of the stake plus the collateral of the 2 placements held.
      const slashed = (DEVICE_STAKE * 1000n) / 10_000n + 2n * COLLATERAL;
      const bounty = (slashed * 2000n) / 10_000n;
      const tx = devices.connect(admin).slashLiveness(1, other.address, 2);
      await expect(tx)
        .to.emit(devices, "DeviceSlashed")
        .withArgs(
          1,
          admin.address,
          SlashKind.Liveness,
          slashed,
          bounty,
          other.address,
          DEVICE_STAKE - slashed,
          "",
        );
      await expect(tx).to.changeTokenBalances(
        token,
        [devices, other, treasury],
        [-slashed, bounty, slashed - bounty],
      );
      expect((await devices.reputation(1)).expired).to.equal(2);
      await devices.connect(admin).recordOutcome(1, 0);
      await devices.connect(admin).recordOutcome(1, 1);
      await devices.connect(admin).recordOutcome(1, 2);
      const r = await devices.reputation(1);
      expect([r.completed, r.failed, r.expired]).to.deep.equal([1n, 1n, 3n]);
    });

    it("test_slashLiveness_collateralCappedAtStake", async () => {
      const { devices, admin, other } = await loadFixture(deviceFixture);
      await devices.connect(admin).grantRole(await devices.PLACEMENT_ROLE(), admin.address);
      // 10 % of the stake plus 100 placements' collateral is more than the stake: all of it goes.
      await expect(devices.connect(admin).slashLiveness(1, other.address, 100))
        .to.emit(devices, "DeviceSlashed")
        .withArgs(
          1,
          admin.address,
          SlashKind.Liveness,
          DEVICE_STAKE,
          (DEVICE_STAKE * 2000n) / 10_000n,
          other.address,
          0,
          "",
        );
    });

    it("test_slashLiveness_noBountyWithoutRecipient", async () => {
      const { devices, token, admin, treasury } = await loadFixture(deviceFixture);
      await devices.connect(admin).grantRole(await devices.PLACEMENT_ROLE(), admin.address);
      const slashed = (DEVICE_STAKE * 1000n) / 10_000n + COLLATERAL;
      const tx = devices.connect(admin).slashLiveness(1, ethers.ZeroAddress, 1);
      await expect(tx)
        .to.emit(devices, "DeviceSlashed")
        .withArgs(
          1,
          admin.address,
          SlashKind.Liveness,
          slashed,
          0,
          ethers.ZeroAddress,
          DEVICE_STAKE - slashed,
          "",
        );
      await expect(tx).to.changeTokenBalances(token, [devices, treasury], [-slashed, slashed]);
    });

    it("test_requestExit_withoutLinkedPlacementRegistry", async () => {
      const [admin, owner] = await ethers.getSigners();
      const token = await ethers.deployContract("ShoalToken", [admin.address]);
      const bare = await ethers.deployContract("DeviceRegistry", [
        await token.getAddress(),
        admin.address,
        admin.address,
        {
          minStake: ONE,
          collateralPerPlacement: ONE,
          heartbeatTtl: 60,
          unbondingDelay: 61,
          livenessSlashBps: 1000,
          bountyBps: 2000,
        },
      ]);
      expect(await bare.placementRegistry()).to.equal(ethers.ZeroAddress);
      await token.mint(owner.address, ONE);
      await token.connect(owner).approve(await bare.getAddress(), ONE);
      await bare.connect(owner).enroll(owner.address, AMD64, 1000, 1024, [], ENDPOINT, ONE);
      await expect(bare.connect(owner).requestExit(1)).to.emit(bare, "DeviceExitRequested");
      await expect(bare.setPlacementRegistry(ethers.ZeroAddress))
        .to.be.revertedWithCustomError(bare, "DeviceRegistryInvalidPlacementRegistry")
        .withArgs(ethers.ZeroAddress);
      await expect(bare.setPlacementRegistry(owner.address))
        .to.emit(bare, "PlacementRegistrySet")
        .withArgs(owner.address);
    });

    it("test_slashLiveness_zeroStakeAndZeroBounty", async () => {
      const { devices, token, admin, other, slasher, treasury } = await loadFixture(deviceFixture);
      await devices.connect(admin).grantRole(await devices.PLACEMENT_ROLE(), admin.address);
      await devices.connect(admin).setParameters({
        minStake: MIN_STAKE,
        collateralPerPlacement: COLLATERAL,
        heartbeatTtl: TTL,
        unbondingDelay: UNBONDING,
        livenessSlashBps: 1000,
        bountyBps: 0,
      });
      const slashed = (DEVICE_STAKE * 1000n) / 10_000n + COLLATERAL;
      await expect(devices.connect(admin).slashLiveness(1, other.address, 1)).to.changeTokenBalances(
        token,
        [other, treasury],
        [0, slashed],
      );
      await devices.connect(slasher).slash(1, DEVICE_STAKE, EVIDENCE);
      await expect(devices.connect(admin).slashLiveness(1, other.address, 1)).not.to.emit(
        devices,
        "DeviceSlashed",
      );
      expect((await devices.reputation(1)).expired).to.equal(2);
    });
  });

  describe("administration", () => {
    it("test_setParameters_updates", async () => {
      const { devices, admin } = await loadFixture(deployFixture);
      const p = {
        minStake: ONE,
        collateralPerPlacement: 2n * ONE,
        heartbeatTtl: 60,
        unbondingDelay: 61,
        livenessSlashBps: 10_000,
        bountyBps: 10_000,
      };
      await expect(devices.connect(admin).setParameters(p))
        .to.emit(devices, "ParametersChanged")
        .withArgs([ONE, 2n * ONE, 60, 61, 10_000, 10_000]);
      const q = await devices.parameters();
      expect(q.minStake).to.equal(ONE);
      expect(q.heartbeatTtl).to.equal(60);
    });

    it("test_setParameters_failsIfInvalid", async () => {
      const { devices, admin, other } = await loadFixture(deployFixture);
      const base = {
        minStake: ONE,
        collateralPerPlacement: ONE,
        heartbeatTtl: 60,
        unbondingDelay: 61,
        livenessSlashBps: 100,
        bountyBps: 100,
      };
      const bad = [
        { ...base, minStake: 0n },
        { ...base, heartbeatTtl: 0 },
        // Equal to the TTL is not enough: the device must be slashable before it can withdraw.
        { ...base, unbondingDelay: 60 },
        { ...base, livenessSlashBps: 10_001 },
        { ...base, bountyBps: 10_001 },
      ];
      for (const p of bad) {
        await expect(devices.connect(admin).setParameters(p))
          .to.be.revertedWithCustomError(devices, "DeviceRegistryInvalidParameters")
          .withArgs([
            p.minStake,
            p.collateralPerPlacement,
            p.heartbeatTtl,
            p.unbondingDelay,
            p.livenessSlashBps,
            p.bountyBps,
          ]);
      }
      await expect(devices.connect(other).setParameters(base))
        .to.be.revertedWithCustomError(devices, "AccessControlUnauthorizedAccount")
        .withArgs(other.address, ethers.ZeroHash);
    });

    it("test_setTreasury_updates", async () => {
      const { devices, admin, other } = await loadFixture(deployFixture);
      await expect(devices.connect(admin).setTreasury(other.address))
        .to.emit(devices, "TreasuryChanged")
        .withArgs(other.address);
      expect(await devices.treasury()).to.equal(other.address);
      await expect(devices.connect(admin).setTreasury(ethers.ZeroAddress))
        .to.be.revertedWithCustomError(devices, "DeviceRegistryInvalidTreasury")
        .withArgs(ethers.ZeroAddress);
    });

    it("test_views_failIfUnknownDevice", async () => {
      const { devices, token } = await loadFixture(deployFixture);
      expect(await devices.token()).to.equal(await token.getAddress());
      for (const call of [
        () => devices.device(1),
        () => devices.reputation(1),
        () => devices.claimContext(1),
        () => devices.isStale(1),
        () => devices.missingLabel(1, []),
      ]) {
        await expect(call())
          .to.be.revertedWithCustomError(devices, "DeviceRegistryUnknownDevice")
          .withArgs(1);
      }
    });

    it("test_missingLabel_returnsFirstMissing", async () => {
      const { devices } = await loadFixture(deviceFixture);
      expect(await devices.missingLabel(1, [labelKey("tier=edge"), labelKey("region=eu-west")])).to.equal(
        "0x" + "00".repeat(8),
      );
      expect(await devices.missingLabel(1, [labelKey("tier=edge"), labelKey("gpu=a100")])).to.equal(
        labelKey("gpu=a100"),
      );
    });
  });
});

describe("ShoalToken", () => {
  it("test_mint_onlyMinter", async () => {
    const { token, admin, other } = await loadFixture(deployFixture);
    await expect(token.connect(admin).mint(other.address, ONE)).to.changeTokenBalance(token, other, ONE);
    await expect(token.connect(other).mint(other.address, ONE))
      .to.be.revertedWithCustomError(token, "AccessControlUnauthorizedAccount")
      .withArgs(other.address, await token.MINTER_ROLE());
    expect(await token.symbol()).to.equal("SHOAL");
  });
});
