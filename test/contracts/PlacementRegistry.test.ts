import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, mine, time } from "@nomicfoundation/hardhat-network-helpers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import {
  AMD64,
  ARM64,
  BAND,
  BAND_V2,
  CLAIM_DEADLINE,
  COLLATERAL,
  DEVICE_STAKE,
  ENDPOINT,
  MIN_STAKE,
  ONE,
  TTL,
  claimedFixture,
  deployFixture,
  deploymentFixture,
  labelKey,
  placementIdOf,
  platformKey,
  runningFixture,
} from "../shared/fixtures";

const State = { None: 0, Claimed: 1, Running: 2, Released: 3, Failed: 4, Expired: 5, Superseded: 6 };
const Failure = {
  None: 0,
  ImageFetchFailed: 1,
  ManifestInvalid: 2,
  StartFailed: 3,
  OOMKilled: 4,
  Evicted: 5,
  HealthCheckFailed: 6,
  Other: 7,
  ClaimDeadlineMissed: 8,
};
const Reason = { None: 0, ByDevice: 1, ByAppOwner: 2, ScaleDown: 3, Superseded: 4, DeploymentStopped: 5 };
const DeviceStatus = { Active: 1, Exiting: 2 };
const bandTuple = (b: typeof BAND) => [
  b.cpuMinMillicores,
  b.cpuMaxMillicores,
  b.memoryMinMiB,
  b.memoryMaxMiB,
];
const EVIDENCE = "bafkreiaxnnnb7qz2focittuqq3ya25q7rcv3bqynnczfzao5brt6dt2bdq";

type F = Awaited<ReturnType<typeof deploymentFixture>>;

/** Enrolls one more device owned by `owner` and returns its id. */
async function enroll(
  f: F,
  owner: HardhatEthersSigner,
  operator: HardhatEthersSigner,
  opts: { platform?: string; cpu?: number; memory?: number; labels?: string[] } = {},
): Promise<number> {
  await f.devices
    .connect(owner)
    .enroll(
      operator.address,
      opts.platform ?? AMD64,
      opts.cpu ?? 4000,
      opts.memory ?? 8192,
      opts.labels ?? ["region=eu-west"],
      ENDPOINT,
      DEVICE_STAKE,
    );
  return Number(await f.devices.deviceCount());
}

describe("PlacementRegistry", () => {
  describe("claim", () => {
    it("test_claim_emitsEverythingTheWorkerNeeds", async () => {
      const f = await loadFixture(deploymentFixture);
      const id = placementIdOf(1, 1);
      await expect(f.placements.connect(f.operator).claim(1, 1))
        .to.emit(f.placements, "PlacementClaimed")
        .withArgs(id, 1, 1, 1, 1, 1, 0, bandTuple(BAND));
      const u = await f.placements.deviceUsage(1);
      expect(u.cpuReservedMillicores).to.equal(BAND.cpuMinMillicores);
      expect(u.memoryReservedMiB).to.equal(BAND.memoryMinMiB);
      expect(u.livePlacements).to.equal(1);
      expect(u.placementCount).to.equal(1);
      expect(u.lastPlacementId).to.equal(id);
      const d = await f.placements.deploymentUsage(1);
      expect([d.generation, d.liveReplicas, d.placementCount]).to.deep.equal([1n, 1n, 1n]);
      expect(await f.placements.activePlacementOf(1, 1)).to.equal(id);
      expect(await f.placements.placementState(id)).to.equal(State.Claimed);
      const p = await f.placements.placement(id);
      expect(p.deploymentId).to.equal(1);
      expect(p.deviceId).to.equal(1);
      expect(p.appId).to.equal(1);
      expect(p.version).to.equal(1);
      expect(p.claimedAt).to.equal(await time.latest());
      expect(await f.placements.appRegistry()).to.equal(await f.apps.getAddress());
      expect(await f.placements.deviceRegistry()).to.equal(await f.devices.getAddress());
    });

    it("test_claim_byOwnerToo", async () => {
      const f = await loadFixture(deploymentFixture);
      await expect(f.placements.connect(f.deviceOwner).claim(1, 1)).to.emit(f.placements, "PlacementClaimed");
    });

    it("test_claim_failsIfUnauthorized", async () => {
      const f = await loadFixture(deploymentFixture);
      await expect(f.placements.connect(f.other).claim(1, 1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryUnauthorizedAccount")
        .withArgs(1, f.other.address);
    });

    it("test_claim_failsIfUnknownDeviceOrDeployment", async () => {
      const f = await loadFixture(deploymentFixture);
      await expect(f.placements.connect(f.operator).claim(1, 9))
        .to.be.revertedWithCustomError(f.devices, "DeviceRegistryUnknownDevice")
        .withArgs(9);
      await expect(f.placements.connect(f.operator).claim(9, 1))
        .to.be.revertedWithCustomError(f.apps, "AppRegistryUnknownDeployment")
        .withArgs(9);
    });

    it("test_claim_failsIfDeviceExiting", async () => {
      const f = await loadFixture(deploymentFixture);
      await f.devices.connect(f.deviceOwner).requestExit(1);
      await expect(f.placements.connect(f.operator).claim(1, 1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryDeviceNotActive")
        .withArgs(1, DeviceStatus.Exiting);
    });

    it("test_claim_failsIfDeviceUnderstaked", async () => {
      const f = await loadFixture(deploymentFixture);
      await f.devices.connect(f.slasher).slash(1, DEVICE_STAKE - MIN_STAKE + ONE, EVIDENCE);
      await expect(f.placements.connect(f.operator).claim(1, 1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryDeviceUnderstaked")
        .withArgs(1, MIN_STAKE - ONE);
    });

    it("test_claim_failsIfDeviceStale", async () => {
      const f = await loadFixture(deploymentFixture);
      const last = (await f.devices.device(1)).lastHeartbeat;
      await time.increase(TTL + 1);
      await expect(f.placements.connect(f.operator).claim(1, 1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryDeviceStale")
        .withArgs(1, last);
      await f.devices.connect(f.operator).heartbeat(1);
      await expect(f.placements.connect(f.operator).claim(1, 1)).to.emit(f.placements, "PlacementClaimed");
    });

    it("test_claim_failsIfDeploymentStopped", async () => {
      const f = await loadFixture(deploymentFixture);
      await f.apps.connect(f.appOwner).stopDeployment(1);
      await expect(f.placements.connect(f.operator).claim(1, 1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryDeploymentNotActive")
        .withArgs(1);
    });

    it("test_claim_failsIfPlatformUnsupported", async () => {
      const f = await loadFixture(deploymentFixture);
      const arm = await enroll(f, f.deviceOwner2, f.operator2, { platform: ARM64 });
      await f.apps.connect(f.appOwner).createDeployment(1, 2, 1, []);
      await expect(f.placements.connect(f.operator2).claim(2, arm))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryPlatformUnsupported")
        .withArgs(2, arm, platformKey(ARM64));
      // Version 1 has an arm64 image.
      await expect(f.placements.connect(f.operator2).claim(1, arm)).to.emit(f.placements, "PlacementClaimed");
    });

    it("test_claim_failsIfLabelMissing", async () => {
      const f = await loadFixture(deploymentFixture);
      const us = await enroll(f, f.deviceOwner2, f.operator2, { labels: ["region=us-east"] });
      await expect(f.placements.connect(f.operator2).claim(1, us))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryLabelMissing")
        .withArgs(1, us, labelKey("region=eu-west"));
    });

    it("test_claim_failsIfCapacityExceeded", async () => {
      const f = await loadFixture(deploymentFixture);
      const small = await enroll(f, f.deviceOwner2, f.operator2, { cpu: 300, memory: 200 });
      await f.apps.connect(f.appOwner).createDeployment(1, 1, 1, []);
      await f.placements.connect(f.operator2).claim(1, small);
      await expect(f.placements.connect(f.operator2).claim(2, small))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryCpuCapacityExceeded")
        .withArgs(small, 250, 50);
      const lowMem = await enroll(f, f.deviceOwner2, f.operator2, { cpu: 4000, memory: 200 });
      await f.placements.connect(f.operator2).claim(1, lowMem);
      await expect(f.placements.connect(f.operator2).claim(2, lowMem))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryMemoryCapacityExceeded")
        .withArgs(lowMem, 128, 72);
    });

    it("test_claim_failsIfAlreadyPlaced", async () => {
      const f = await loadFixture(claimedFixture);
      await expect(f.placements.connect(f.operator).claim(1, 1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryAlreadyPlaced")
        .withArgs(1, 1, f.placementId);
    });

    it("test_claim_failsIfReplicasExhausted", async () => {
      const f = await loadFixture(deploymentFixture);
      await f.apps.connect(f.appOwner).scaleDeployment(1, 1);
      await f.placements.connect(f.operator).claim(1, 1);
      const second = await enroll(f, f.deviceOwner2, f.operator2);
      await expect(f.placements.connect(f.operator2).claim(1, second))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryReplicasExhausted")
        .withArgs(1, 1, 1);
    });

    it("test_claim_failsIfPaused", async () => {
      const f = await loadFixture(deploymentFixture);
      await expect(f.placements.connect(f.admin).pause())
        .to.emit(f.placements, "Paused")
        .withArgs(f.admin.address);
      await expect(f.placements.connect(f.operator).claim(1, 1)).to.be.revertedWithCustomError(
        f.placements,
        "EnforcedPause",
      );
      await expect(f.placements.connect(f.other).unpause())
        .to.be.revertedWithCustomError(f.placements, "AccessControlUnauthorizedAccount")
        .withArgs(f.other.address, await f.placements.PAUSER_ROLE());
      await expect(f.placements.connect(f.admin).unpause())
        .to.emit(f.placements, "Unpaused")
        .withArgs(f.admin.address);
      await expect(f.placements.connect(f.operator).claim(1, 1)).to.emit(f.placements, "PlacementClaimed");
    });
  });

  describe("confirm", () => {
    it("test_confirm_movesToRunning", async () => {
      const f = await loadFixture(claimedFixture);
      await expect(f.placements.connect(f.operator).confirm(f.placementId))
        .to.emit(f.placements, "PlacementConfirmed")
        .withArgs(f.placementId, 1, 1);
      expect(await f.placements.placementState(f.placementId)).to.equal(State.Running);
      const p = await f.placements.placement(f.placementId);
      expect(p.runningAt).to.equal(await time.latest());
    });

    it("test_confirm_failsIfTwiceOrUnknownOrUnauthorized", async () => {
      const f = await loadFixture(runningFixture);
      await expect(f.placements.connect(f.operator).confirm(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidTransition")
        .withArgs(f.placementId, State.Running);
      await expect(f.placements.connect(f.operator).confirm(placementIdOf(1, 2)))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryUnknownPlacement")
        .withArgs(placementIdOf(1, 2));
      await expect(f.placements.connect(f.other).confirm(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryUnauthorizedAccount")
        .withArgs(1, f.other.address);
    });
  });

  describe("fail", () => {
    it("test_fail_freesCapacityAndCountsFailure", async () => {
      const f = await loadFixture(runningFixture);
      await expect(f.placements.connect(f.operator).fail(f.placementId, Failure.OOMKilled))
        .to.emit(f.placements, "PlacementFailed")
        .withArgs(f.placementId, 1, 1, Failure.OOMKilled, State.Running);
      expect(await f.placements.placementState(f.placementId)).to.equal(State.Failed);
      const u = await f.placements.deviceUsage(1);
      expect([u.cpuReservedMillicores, u.memoryReservedMiB, u.livePlacements]).to.deep.equal([0n, 0n, 0n]);
      expect((await f.placements.deploymentUsage(1)).liveReplicas).to.equal(0);
      expect((await f.devices.reputation(1)).failed).to.equal(1);
      expect(await f.placements.activePlacementOf(1, 1)).to.equal(0);
      expect((await f.placements.placement(f.placementId)).code).to.equal(Failure.OOMKilled);
      // The replica can be claimed again, by the same device.
      await expect(f.placements.connect(f.operator).claim(1, 1)).to.emit(f.placements, "PlacementClaimed");
    });

    it("test_fail_fromClaimed", async () => {
      const f = await loadFixture(claimedFixture);
      await expect(f.placements.connect(f.operator).fail(f.placementId, Failure.ImageFetchFailed))
        .to.emit(f.placements, "PlacementFailed")
        .withArgs(f.placementId, 1, 1, Failure.ImageFetchFailed, State.Claimed);
    });

    it("test_fail_failsIfCodeNoneOrEnded", async () => {
      const f = await loadFixture(claimedFixture);
      await expect(f.placements.connect(f.operator).fail(f.placementId, Failure.None))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidFailureCode")
        .withArgs(Failure.None);
      await f.placements.connect(f.operator).fail(f.placementId, Failure.StartFailed);
      await expect(f.placements.connect(f.operator).fail(f.placementId, Failure.StartFailed))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidTransition")
        .withArgs(f.placementId, State.Failed);
    });

    it("test_fail_failsIfUnauthorized", async () => {
      const f = await loadFixture(claimedFixture);
      await expect(f.placements.connect(f.appOwner).fail(f.placementId, Failure.Evicted))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryUnauthorizedAccount")
        .withArgs(1, f.appOwner.address);
    });
  });

  describe("release", () => {
    it("test_release_byDeviceCountsCompletion", async () => {
      const f = await loadFixture(runningFixture);
      await expect(f.placements.connect(f.operator).release(f.placementId))
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(f.placementId, 1, 1, Reason.ByDevice, f.operator.address, State.Running);
      expect(await f.placements.placementState(f.placementId)).to.equal(State.Released);
      expect((await f.devices.reputation(1)).completed).to.equal(1);
      expect((await f.placements.deviceUsage(1)).cpuReservedMillicores).to.equal(0);
      await expect(f.placements.connect(f.operator).release(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidTransition")
        .withArgs(f.placementId, State.Released);
    });

    it("test_release_byAppOwner", async () => {
      const f = await loadFixture(claimedFixture);
      await expect(f.placements.connect(f.appOwner).release(f.placementId))
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(f.placementId, 1, 1, Reason.ByAppOwner, f.appOwner.address, State.Claimed);
      expect((await f.devices.reputation(1)).completed).to.equal(0);
    });

    it("test_release_scaleDownWhileSurplus", async () => {
      const f = await loadFixture(claimedFixture);
      const second = await enroll(f, f.deviceOwner2, f.operator2);
      await f.placements.connect(f.operator2).claim(1, second);
      await expect(f.apps.connect(f.appOwner).scaleDeployment(1, 1)).to.emit(f.apps, "DeploymentScaled");
      // Two live, one asked for: claims are refused and the first release is a scale-down.
      const third = await enroll(f, f.other, f.other);
      await expect(f.placements.connect(f.other).claim(1, third))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryReplicasExhausted")
        .withArgs(1, 1, 2);
      await expect(f.placements.connect(f.appOwner).release(placementIdOf(1, 2)))
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(placementIdOf(1, 2), 1, second, Reason.ScaleDown, f.appOwner.address, State.Claimed);
      await expect(f.placements.connect(f.operator).release(f.placementId))
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(f.placementId, 1, 1, Reason.ByDevice, f.operator.address, State.Claimed);
    });

    it("test_release_supersededByAnyoneOnceTheNewGenerationRuns", async () => {
      const f = await loadFixture(runningFixture);
      await f.apps.connect(f.appOwner).scaleDeployment(1, 1);
      await f.apps.connect(f.appOwner).rollDeployment(1, 2);
      expect(await f.placements.placementState(f.placementId)).to.equal(State.Superseded);
      expect((await f.placements.deploymentUsage(1)).liveReplicas).to.equal(0);
      // Mid-roll a stranger cannot stop the old replica: nothing of the new generation runs yet.
      await expect(f.placements.connect(f.other).release(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryRollInProgress")
        .withArgs(f.placementId, 0, 1);
      const next = await enroll(f, f.deviceOwner2, f.operator2);
      await f.placements.connect(f.operator2).claim(1, next);
      const fresh = placementIdOf(1, 2);
      await expect(f.placements.connect(f.other).release(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryRollInProgress")
        .withArgs(f.placementId, 0, 1);
      await f.placements.connect(f.operator2).confirm(fresh);
      expect((await f.placements.deploymentUsage(1)).runningReplicas).to.equal(1);
      await expect(f.placements.connect(f.other).release(f.placementId))
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(f.placementId, 1, 1, Reason.Superseded, f.other.address, State.Running);
      expect((await f.placements.deviceUsage(1)).cpuReservedMillicores).to.equal(0);
      // The old generation's end does not touch the new generation's counts.
      const u = await f.placements.deploymentUsage(1);
      expect([u.liveReplicas, u.runningReplicas]).to.deep.equal([1n, 1n]);
    });

    it("test_release_supersededByDeviceOrAppOwnerMidRoll", async () => {
      const f = await loadFixture(runningFixture);
      await f.placements.connect(f.deviceOwner2).claim(1, await enroll(f, f.deviceOwner2, f.operator2));
      await f.apps.connect(f.appOwner).rollDeployment(1, 2);
      await expect(f.placements.connect(f.operator).release(f.placementId))
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(f.placementId, 1, 1, Reason.Superseded, f.operator.address, State.Running);
      await expect(f.placements.connect(f.appOwner).release(placementIdOf(1, 2)))
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(placementIdOf(1, 2), 1, 2, Reason.Superseded, f.appOwner.address, State.Claimed);
    });

    it("test_release_supersededByAnyoneOnceTheDeviceIsStale", async () => {
      const f = await loadFixture(runningFixture);
      await f.apps.connect(f.appOwner).rollDeployment(1, 2);
      await time.increase(TTL + 1);
      await expect(f.placements.connect(f.other).release(f.placementId))
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(f.placementId, 1, 1, Reason.Superseded, f.other.address, State.Running);
    });

    it("test_release_stoppedByAnyone", async () => {
      const f = await loadFixture(claimedFixture);
      await f.apps.connect(f.appOwner).stopDeployment(1);
      await expect(f.placements.connect(f.other).release(f.placementId))
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(f.placementId, 1, 1, Reason.DeploymentStopped, f.other.address, State.Claimed);
    });

    it("test_release_failsIfUnauthorized", async () => {
      const f = await loadFixture(claimedFixture);
      await expect(f.placements.connect(f.other).release(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryUnauthorizedAccount")
        .withArgs(1, f.other.address);
    });

    it("test_claim_afterRollReplacesSupersededPlacement", async () => {
      const f = await loadFixture(runningFixture);
      await f.apps.connect(f.appOwner).rollDeployment(1, 2);
      const next = placementIdOf(1, 2);
      const tx = f.placements.connect(f.operator).claim(1, 1);
      await expect(tx)
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(f.placementId, 1, 1, Reason.Superseded, f.operator.address, State.Running);
      await expect(tx)
        .to.emit(f.placements, "PlacementClaimed")
        .withArgs(next, 1, 1, 1, 2, 2, 0, bandTuple(BAND_V2));
      const u = await f.placements.deviceUsage(1);
      expect(u.cpuReservedMillicores).to.equal(BAND_V2.cpuMinMillicores);
      expect(u.livePlacements).to.equal(1);
      expect((await f.placements.deploymentUsage(1)).liveReplicas).to.equal(1);
      expect((await f.devices.reputation(1)).completed).to.equal(1);
      expect((await f.placements.placement(next)).version).to.equal(2);
      expect((await f.placements.placement(f.placementId)).version).to.equal(1);
    });

    it("test_claim_afterRollReplacesClaimedSupersededWithoutCompletion", async () => {
      const f = await loadFixture(claimedFixture);
      await f.apps.connect(f.appOwner).rollDeployment(1, 2);
      await expect(f.placements.connect(f.operator).claim(1, 1))
        .to.emit(f.placements, "PlacementReleased")
        .withArgs(f.placementId, 1, 1, Reason.Superseded, f.operator.address, State.Claimed);
      expect((await f.devices.reputation(1)).completed).to.equal(0);
    });
  });

  describe("expiry and liveness slashing", () => {
    it("test_expireDevice_slashesPaysBountyAndExpiresPlacements", async () => {
      const f = await loadFixture(runningFixture);
      await time.increase(TTL + 1);
      // 10 % of the stake plus the collateral of the one placement held.
      const slashed = (DEVICE_STAKE * 1000n) / 10_000n + COLLATERAL;
      const bounty = (slashed * 2000n) / 10_000n;
      const tx = f.placements.connect(f.other).expireDevice(1);
      await expect(tx).to.emit(f.placements, "DeviceExpired").withArgs(1, f.other.address, 0, 1);
      await expect(tx)
        .to.emit(f.devices, "DeviceSlashed")
        .withArgs(
          1,
          await f.placements.getAddress(),
          0,
          slashed,
          bounty,
          f.other.address,
          DEVICE_STAKE - slashed,
          "",
        );
      await expect(tx).to.changeTokenBalances(
        f.token,
        [f.devices, f.other, f.treasury],
        [-slashed, bounty, slashed - bounty],
      );
      const expiredAt = await time.latest();
      const expiredBlock = await ethers.provider.getBlockNumber();
      expect(await f.devices.totalStaked()).to.equal(DEVICE_STAKE - slashed);
      expect((await f.devices.reputation(1)).expired).to.equal(1);
      const u = await f.placements.deviceUsage(1);
      expect([u.cpuReservedMillicores, u.memoryReservedMiB, u.livePlacements, u.generation]).to.deep.equal([
        0n,
        0n,
        0n,
        1n,
      ]);
      expect(await f.placements.placementState(f.placementId)).to.equal(State.Expired);
      const p = await f.placements.placement(f.placementId);
      expect([p.endedAt, p.endedBlock]).to.deep.equal([BigInt(expiredAt), BigInt(expiredBlock)]);
      const h = await f.placements.placementHistory(f.placementId);
      expect(h.map((t) => Number(t.state))).to.deep.equal([State.Claimed, State.Running, State.Expired]);
      expect(h[2].blockNumber).to.equal(expiredBlock);
      // The replica still counts until finalized.
      expect((await f.placements.deploymentUsage(1)).liveReplicas).to.equal(1);
      await mine(3);
      await expect(f.placements.connect(f.other).finalizeExpired(f.placementId))
        .to.emit(f.placements, "PlacementExpired")
        .withArgs(f.placementId, 1, 1, 0, expiredAt, expiredBlock, State.Running);
      expect((await f.placements.deploymentUsage(1)).liveReplicas).to.equal(0);
      expect(await f.placements.activePlacementOf(1, 1)).to.equal(0);
      const h2 = await f.placements.placementHistory(f.placementId);
      expect(h2[2].blockNumber).to.equal(expiredBlock);
    });

    it("test_expireDevice_failsIfFreshOrNothingLive", async () => {
      const f = await loadFixture(claimedFixture);
      const last = (await f.devices.device(1)).lastHeartbeat;
      await expect(f.placements.connect(f.other).expireDevice(1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryDeviceFresh")
        .withArgs(1, last);
      await time.increase(TTL + 1);
      await f.placements.connect(f.other).expireDevice(1);
      // Expired once per generation: the second call finds nothing live.
      await expect(f.placements.connect(f.other).expireDevice(1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryNoLivePlacements")
        .withArgs(1);
    });

    it("test_expiredPlacement_refusesDeviceTransitions", async () => {
      const f = await loadFixture(claimedFixture);
      await time.increase(TTL + 1);
      await f.placements.connect(f.other).expireDevice(1);
      for (const call of [
        () => f.placements.connect(f.operator).confirm(f.placementId),
        () => f.placements.connect(f.operator).release(f.placementId),
        () => f.placements.connect(f.operator).fail(f.placementId, Failure.Evicted),
      ]) {
        await expect(call())
          .to.be.revertedWithCustomError(f.placements, "PlacementRegistryPlacementExpired")
          .withArgs(f.placementId);
      }
    });

    it("test_finalizeExpired_failsIfNotExpiredOrEnded", async () => {
      const f = await loadFixture(claimedFixture);
      await expect(f.placements.finalizeExpired(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryNotExpired")
        .withArgs(f.placementId);
      await time.increase(TTL + 1);
      await f.placements.connect(f.other).expireDevice(1);
      await f.placements.finalizeExpired(f.placementId);
      await expect(f.placements.finalizeExpired(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidTransition")
        .withArgs(f.placementId, State.Expired);
      await expect(f.placements.finalizeExpired(placementIdOf(4, 4)))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryUnknownPlacement")
        .withArgs(placementIdOf(4, 4));
    });

    it("test_claim_afterExpiryFinalizesOldPlacement", async () => {
      const f = await loadFixture(claimedFixture);
      await time.increase(TTL + 1);
      await f.placements.connect(f.other).expireDevice(1);
      await f.devices.connect(f.operator).heartbeat(1);
      await f.devices.connect(f.deviceOwner).topUp(1, MIN_STAKE);
      const tx = f.placements.connect(f.operator).claim(1, 1);
      await expect(tx).to.emit(f.placements, "PlacementExpired");
      await expect(tx)
        .to.emit(f.placements, "PlacementClaimed")
        .withArgs(placementIdOf(1, 2), 1, 1, 1, 1, 1, 1, bandTuple(BAND));
      expect((await f.placements.deploymentUsage(1)).liveReplicas).to.equal(1);
      expect((await f.placements.deviceUsage(1)).livePlacements).to.equal(1);
    });

    it("test_expireDevice_byItsOwnOwnerOrOperatorPaysNoBounty", async () => {
      for (const who of ["operator", "deviceOwner"] as const) {
        const f = await loadFixture(runningFixture);
        await time.increase(TTL + 1);
        const caller = f[who];
        const slashed = (DEVICE_STAKE * 1000n) / 10_000n + COLLATERAL;
        const tx = f.placements.connect(caller).expireDevice(1);
        await expect(tx).to.emit(f.placements, "DeviceExpired").withArgs(1, caller.address, 0, 1);
        await expect(tx)
          .to.emit(f.devices, "DeviceSlashed")
          .withArgs(
            1,
            await f.placements.getAddress(),
            0,
            slashed,
            0,
            ethers.ZeroAddress,
            DEVICE_STAKE - slashed,
            "",
          );
        await expect(tx).to.changeTokenBalances(f.token, [caller, f.treasury], [0, slashed]);
      }
    });

    it("test_expireDevice_slashGrowsWithPlacementsHeld", async () => {
      const f = await loadFixture(runningFixture);
      await f.apps.connect(f.appOwner).createDeployment(1, 1, 1, []);
      await f.apps.connect(f.appOwner).createDeployment(1, 1, 1, []);
      await f.placements.connect(f.operator).claim(2, 1);
      await f.placements.connect(f.operator).claim(3, 1);
      await time.increase(TTL + 1);
      const slashed = (DEVICE_STAKE * 1000n) / 10_000n + 3n * COLLATERAL;
      const bounty = (slashed * 2000n) / 10_000n;
      await expect(f.placements.connect(f.other).expireDevice(1))
        .to.emit(f.devices, "DeviceSlashed")
        .withArgs(
          1,
          await f.placements.getAddress(),
          0,
          slashed,
          bounty,
          f.other.address,
          DEVICE_STAKE - slashed,
          "",
        );
    });
  });

  describe("v2 rules", () => {
    it("test_confirm_failsAfterRollOrStop", async () => {
      for (const change of ["roll", "stop"] as const) {
        const f = await loadFixture(claimedFixture);
        if (change === "roll") await f.apps.connect(f.appOwner).rollDeployment(1, 2);
        else await f.apps.connect(f.appOwner).stopDeployment(1);
        await expect(f.placements.connect(f.operator).confirm(f.placementId))
          .to.be.revertedWithCustomError(f.placements, "PlacementRegistryPlacementSuperseded")
          .withArgs(f.placementId, 1, 2);
        const h = await f.placements.placementHistory(f.placementId);
        expect(h.map((t) => Number(t.state))).to.deep.equal([State.Claimed]);
        expect((await f.devices.reputation(1)).completed).to.equal(0);
      }
    });

    it("test_onDeploymentGenerationChanged_onlyAppRegistry", async () => {
      const f = await loadFixture(deploymentFixture);
      await expect(f.placements.connect(f.other).onDeploymentGenerationChanged(1, 5))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryNotAppRegistry")
        .withArgs(f.other.address);
    });

    it("test_claim_failsWithoutCollateralForOneMore", async () => {
      const f = await loadFixture(deploymentFixture);
      const lean = await enroll(f, f.deviceOwner2, f.operator2);
      // Leave the minimum plus the collateral of exactly one placement.
      await f.devices.connect(f.slasher).slash(lean, DEVICE_STAKE - MIN_STAKE - COLLATERAL, EVIDENCE);
      await f.apps.connect(f.appOwner).createDeployment(1, 1, 1, []);
      await expect(f.placements.connect(f.operator2).claim(1, lean)).to.emit(
        f.placements,
        "PlacementClaimed",
      );
      await expect(f.placements.connect(f.operator2).claim(2, lean))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInsufficientCollateral")
        .withArgs(lean, MIN_STAKE + COLLATERAL, MIN_STAKE + 2n * COLLATERAL);
      await f.devices.connect(f.deviceOwner2).topUp(lean, COLLATERAL);
      await expect(f.placements.connect(f.operator2).claim(2, lean)).to.emit(
        f.placements,
        "PlacementClaimed",
      );
    });

    it("test_claim_failsIfVersionDeprecated", async () => {
      const f = await loadFixture(deploymentFixture);
      await f.apps.connect(f.appOwner).deprecateVersion(1, 1);
      await expect(f.placements.connect(f.operator).claim(1, 1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryVersionDeprecated")
        .withArgs(1, 1, 1);
    });

    it("test_requestExit_refusedWhileLiveThenCompletesOnceStale", async () => {
      const f = await loadFixture(runningFixture);
      await expect(f.devices.connect(f.deviceOwner).requestExit(1))
        .to.be.revertedWithCustomError(f.devices, "DeviceRegistryLivePlacements")
        .withArgs(1, 1);
      await f.placements.connect(f.operator).release(f.placementId);
      await f.devices.connect(f.deviceOwner).requestExit(1);
      // The worker keeps heartbeating during the unbonding: the exit waits until it has been stale a TTL.
      await time.increase(3600 - 10);
      await f.devices.connect(f.operator).heartbeat(1);
      const last = (await f.devices.device(1)).lastHeartbeat;
      await time.increase(20);
      await expect(f.devices.connect(f.deviceOwner).completeExit(1))
        .to.be.revertedWithCustomError(f.devices, "DeviceRegistryExitWhileFresh")
        .withArgs(1, last);
      await time.increaseTo(last + BigInt(TTL) + 1n);
      await expect(f.devices.connect(f.deviceOwner).completeExit(1))
        .to.emit(f.devices, "DeviceExited")
        .withArgs(1, f.deviceOwner.address, DEVICE_STAKE);
    });

    it("test_completeExit_staleUnderCurrentTtl", async () => {
      const f = await loadFixture(deploymentFixture);
      await f.devices.connect(f.deviceOwner).requestExit(1);
      await time.increase(3600);
      // Raising the TTL during the exit makes the device fresh again: no withdrawal until it is stale.
      const p = await f.devices.parameters();
      await f.devices.connect(f.admin).setParameters({
        minStake: p.minStake,
        collateralPerPlacement: p.collateralPerPlacement,
        heartbeatTtl: 7200,
        unbondingDelay: 7201,
        livenessSlashBps: p.livenessSlashBps,
        bountyBps: p.bountyBps,
      });
      const last = (await f.devices.device(1)).lastHeartbeat;
      await expect(f.devices.connect(f.deviceOwner).completeExit(1))
        .to.be.revertedWithCustomError(f.devices, "DeviceRegistryExitWhileFresh")
        .withArgs(1, last);
    });

    it("test_setPlacementRegistry_deployerOnce", async () => {
      const f = await loadFixture(deployFixture);
      expect(await f.devices.placementRegistry()).to.equal(await f.placements.getAddress());
      await expect(f.devices.connect(f.other).setPlacementRegistry(f.other.address))
        .to.be.revertedWithCustomError(f.devices, "DeviceRegistryNotDeployer")
        .withArgs(f.other.address);
      await expect(f.devices.connect(f.admin).setPlacementRegistry(f.other.address))
        .to.be.revertedWithCustomError(f.devices, "DeviceRegistryInvalidPlacementRegistry")
        .withArgs(await f.placements.getAddress());
    });
  });

  describe("claim deadline", () => {
    it("test_finalizeOverdueClaim_failsTheClaimAndFreesItsReplica", async () => {
      const f = await loadFixture(claimedFixture);
      const claimedAt = (await f.placements.placement(f.placementId)).claimedAt;
      await time.increaseTo(claimedAt + BigInt(CLAIM_DEADLINE));
      await expect(f.placements.connect(f.other).finalizeOverdueClaim(f.placementId))
        .to.emit(f.placements, "PlacementFailed")
        .withArgs(f.placementId, 1, 1, Failure.ClaimDeadlineMissed, State.Claimed);
      expect(await f.placements.placementState(f.placementId)).to.equal(State.Failed);
      expect((await f.placements.placement(f.placementId)).code).to.equal(Failure.ClaimDeadlineMissed);
      const u = await f.placements.deviceUsage(1);
      expect([u.cpuReservedMillicores, u.memoryReservedMiB, u.livePlacements]).to.deep.equal([0n, 0n, 0n]);
      expect((await f.placements.deploymentUsage(1)).liveReplicas).to.equal(0);
      expect(await f.placements.activePlacementOf(1, 1)).to.equal(0);
      expect((await f.devices.reputation(1)).failed).to.equal(1);
      // The replica is free again: the same device (or another) may claim it.
      await f.devices.connect(f.operator).heartbeat(1);
      await expect(f.placements.connect(f.operator).claim(1, 1)).to.emit(f.placements, "PlacementClaimed");
    });

    it("test_finalizeOverdueClaim_failsIfNotOverdue", async () => {
      const f = await loadFixture(claimedFixture);
      const claimedAt = (await f.placements.placement(f.placementId)).claimedAt;
      const deadline = claimedAt + BigInt(CLAIM_DEADLINE);
      // A heartbeating device is not enough to keep a claim past the deadline, but before it nothing moves.
      await time.setNextBlockTimestamp(deadline - 1n);
      await expect(f.placements.connect(f.other).finalizeOverdueClaim(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryClaimNotOverdue")
        .withArgs(f.placementId, deadline);
    });

    it("test_finalizeOverdueClaim_failsIfRunningOrEnded", async () => {
      const f = await loadFixture(runningFixture);
      await time.increase(CLAIM_DEADLINE + 1);
      await expect(f.placements.connect(f.other).finalizeOverdueClaim(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidTransition")
        .withArgs(f.placementId, State.Running);
      await f.placements.connect(f.operator).release(f.placementId);
      await expect(f.placements.connect(f.other).finalizeOverdueClaim(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidTransition")
        .withArgs(f.placementId, State.Released);
      await expect(f.placements.finalizeOverdueClaim(placementIdOf(1, 9)))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryUnknownPlacement")
        .withArgs(placementIdOf(1, 9));
    });

    it("test_finalizeOverdueClaim_failsIfDeviceExpired", async () => {
      const f = await loadFixture(claimedFixture);
      await time.increase(Math.max(TTL, CLAIM_DEADLINE) + 1);
      await f.placements.connect(f.other).expireDevice(1);
      await expect(f.placements.connect(f.other).finalizeOverdueClaim(f.placementId))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryPlacementExpired")
        .withArgs(f.placementId);
    });

    it("test_fail_workerCannotReportClaimDeadlineMissed", async () => {
      const f = await loadFixture(claimedFixture);
      await expect(f.placements.connect(f.operator).fail(f.placementId, Failure.ClaimDeadlineMissed))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidFailureCode")
        .withArgs(Failure.ClaimDeadlineMissed);
    });

    it("test_setClaimDeadline_adminOnlyAndBounded", async () => {
      const f = await loadFixture(deploymentFixture);
      expect(await f.placements.claimDeadline()).to.equal(CLAIM_DEADLINE);
      const role = await f.placements.DEFAULT_ADMIN_ROLE();
      await expect(f.placements.connect(f.other).setClaimDeadline(60))
        .to.be.revertedWithCustomError(f.placements, "AccessControlUnauthorizedAccount")
        .withArgs(f.other.address, role);
      for (const bad of [0, 30 * 24 * 3600 + 1]) {
        await expect(f.placements.connect(f.admin).setClaimDeadline(bad))
          .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidClaimDeadline")
          .withArgs(bad);
      }
      await expect(f.placements.connect(f.admin).setClaimDeadline(60))
        .to.emit(f.placements, "ClaimDeadlineChanged")
        .withArgs(60);
      expect(await f.placements.claimDeadline()).to.equal(60);
    });
  });

  describe("views", () => {
    it("test_placementHistory_fullLifecycle", async () => {
      const f = await loadFixture(claimedFixture);
      const claimedBlock = await ethers.provider.getBlockNumber();
      await mine(2);
      await f.placements.connect(f.operator).confirm(f.placementId);
      const runningBlock = await ethers.provider.getBlockNumber();
      await f.placements.connect(f.operator).fail(f.placementId, Failure.Evicted);
      const endedBlock = await ethers.provider.getBlockNumber();
      const h = await f.placements.placementHistory(f.placementId);
      expect(h.map((t) => [Number(t.state), Number(t.code), Number(t.blockNumber)])).to.deep.equal([
        [State.Claimed, 0, claimedBlock],
        [State.Running, 0, runningBlock],
        [State.Failed, Failure.Evicted, endedBlock],
      ]);
      expect(await f.placements.placementState(placementIdOf(1, 9))).to.equal(State.None);
      await expect(f.placements.placementHistory(placementIdOf(1, 9)))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryUnknownPlacement")
        .withArgs(placementIdOf(1, 9));
      await expect(f.placements.placement(placementIdOf(1, 9)))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryUnknownPlacement")
        .withArgs(placementIdOf(1, 9));
    });

    it("test_placementHistory_claimedOnly", async () => {
      const f = await loadFixture(claimedFixture);
      const h = await f.placements.placementHistory(f.placementId);
      expect(h.length).to.equal(1);
      expect(h[0].state).to.equal(State.Claimed);
    });

    it("test_pagedViews_walkDeploymentAndDevice", async () => {
      const f = await loadFixture(deploymentFixture);
      await f.apps.connect(f.appOwner).createDeployment(1, 1, 2, []);
      await f.apps.connect(f.appOwner).createDeployment(1, 1, 2, []);
      // Device 1 claims deployments 1, 2, 3; device 2 claims deployment 1.
      const second = await enroll(f, f.deviceOwner2, f.operator2);
      for (const dep of [1, 2, 3]) await f.placements.connect(f.operator).claim(dep, 1);
      await f.placements.connect(f.operator2).claim(1, second);

      const ofDeployment = await f.placements.placementsOfDeployment(1, 0, 10);
      expect(ofDeployment.map((p) => p.placementId)).to.deep.equal([
        placementIdOf(1, 1),
        placementIdOf(1, 2),
      ]);
      expect(ofDeployment.map((p) => p.deviceId)).to.deep.equal([1n, BigInt(second)]);
      expect((await f.placements.placementsOfDeployment(1, 1, 10)).length).to.equal(1);
      expect((await f.placements.placementsOfDeployment(1, 2, 10)).length).to.equal(0);
      expect((await f.placements.placementsOfDeployment(1, 0, 1)).length).to.equal(1);

      const ofDevice = await f.placements.placementsOfDevice(1, 0, 10);
      expect(ofDevice.map((p) => p.placementId)).to.deep.equal([
        placementIdOf(3, 1),
        placementIdOf(2, 1),
        placementIdOf(1, 1),
      ]);
      const page2 = await f.placements.placementsOfDevice(1, 1, 1);
      expect(page2.map((p) => p.placementId)).to.deep.equal([placementIdOf(2, 1)]);
      expect((await f.placements.placementsOfDevice(1, 3, 1)).length).to.equal(0);
      expect(ofDevice.every((p) => Number(p.state) === State.Claimed)).to.equal(true);
    });

    it("test_cursorPages_walkWholeHistoriesInOrder", async () => {
      const f = await loadFixture(deploymentFixture);
      const second = await enroll(f, f.deviceOwner2, f.operator2);
      // Device 1 claims and releases deployment 1 five times; device 2 claims once in between.
      for (let i = 0; i < 5; i++) {
        const id = await f.placements.connect(f.operator).claim.staticCall(1, 1);
        await f.placements.connect(f.operator).claim(1, 1);
        if (i === 2) await f.placements.connect(f.operator2).claim(1, second);
        await f.placements.connect(f.operator).release(id);
      }
      const walk = async (
        read: (cursor: bigint) => Promise<[{ placementId: bigint }[], bigint]>,
      ): Promise<bigint[][]> => {
        const pages: bigint[][] = [];
        let cursor = 0n;
        do {
          const [page, next] = await read(cursor);
          pages.push(page.map((p) => p.placementId));
          cursor = next;
        } while (cursor !== 0n);
        return pages;
      };
      const ofDevice = await walk((c) => f.placements.placementsOfDeviceFrom(1, c, 2));
      expect(ofDevice).to.deep.equal([
        [placementIdOf(1, 6), placementIdOf(1, 5)],
        [placementIdOf(1, 3), placementIdOf(1, 2)],
        [placementIdOf(1, 1)],
      ]);
      expect(ofDevice.flat()).to.deep.equal(
        (await f.placements.placementsOfDevice(1, 0, 100)).map((p) => p.placementId),
      );
      const ofDeployment = await walk((c) => f.placements.placementsOfDeploymentFrom(1, c, 4));
      expect(ofDeployment).to.deep.equal([
        [1, 2, 3, 4].map((n) => placementIdOf(1, n)),
        [5, 6].map((n) => placementIdOf(1, n)),
      ]);
      // Nothing yet: an empty page and no next cursor.
      expect(await f.placements.placementsOfDeviceFrom(9, 0, 5)).to.deep.equal([[], 0n]);
      expect(await f.placements.placementsOfDeploymentFrom(9, 0, 5)).to.deep.equal([[], 0n]);
    });

    it("test_cursorPages_failIfCursorForeign", async () => {
      const f = await loadFixture(claimedFixture);
      for (const bad of [placementIdOf(1, 2), placementIdOf(2, 1)]) {
        await expect(f.placements.placementsOfDeviceFrom(1, bad, 1))
          .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidCursor")
          .withArgs(bad);
        await expect(f.placements.placementsOfDeploymentFrom(1, bad, 1))
          .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidCursor")
          .withArgs(bad);
      }
      await expect(f.placements.placementsOfDeviceFrom(0, f.placementId + 5n, 1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidCursor")
        .withArgs(f.placementId + 5n);
      await expect(f.placements.placementsOfDeploymentFrom(1, placementIdOf(1, 0), 1))
        .to.be.revertedWithCustomError(f.placements, "PlacementRegistryInvalidCursor")
        .withArgs(placementIdOf(1, 0));
    });

    it("test_cursorPages_costTheSameDeepInAHistory", async () => {
      const f = await loadFixture(deploymentFixture);
      for (let i = 0; i < 40; i++) {
        const id = await f.placements.connect(f.operator).claim.staticCall(1, 1);
        await f.placements.connect(f.operator).claim(1, 1);
        await f.placements.connect(f.operator).release(id);
      }
      const first = await f.placements.placementsOfDeviceFrom.estimateGas(1, 0, 5);
      const deep = await f.placements.placementsOfDeviceFrom.estimateGas(1, placementIdOf(1, 5), 5);
      expect(Number(deep)).to.be.closeTo(Number(first), Number(first) * 0.05);
      // The offset view walks what it skips.
      const skipping = await f.placements.placementsOfDevice.estimateGas(1, 35, 5);
      expect(skipping > first + 35n * 2000n).to.equal(true);
    });
  });
});
