import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { AMD64, DEVICE_STAKE, ENDPOINT, deviceFixture } from "../shared/fixtures";

const CID = "bafkreiaxnnnb7qz2focittuqq3ya25q7rcv3bqynnczfzao5brt6dt2bdq";
const HASH_0 = `0x${"11".repeat(32)}`;
const HASH_1 = `0x${"22".repeat(32)}`;
const prefix = (hash: string) => hash.slice(0, 42);

describe("ResourceLog", () => {
  describe("anchor", () => {
    it("test_anchor_storesHeadAndEmitsEvent", async () => {
      const { resourceLog, devices, operator } = await loadFixture(deviceFixture);
      expect(await resourceLog.deviceRegistry()).to.equal(await devices.getAddress());
      await expect(resourceLog.connect(operator).anchor(1, 0, 0, 64, HASH_0, CID))
        .to.emit(resourceLog, "ResourceLogAnchored")
        .withArgs(1, 0, 0, 64, HASH_0, CID, operator.address);
      const h = await resourceLog.head(1);
      expect([h.epochs, h.nextSeq, h.lastHashPrefix]).to.deep.equal([1n, 64n, prefix(HASH_0)]);
      await expect(resourceLog.connect(operator).anchor(1, 1, 64, 3, HASH_1, CID))
        .to.emit(resourceLog, "ResourceLogAnchored")
        .withArgs(1, 1, 64, 3, HASH_1, CID, operator.address);
      const h2 = await resourceLog.head(1);
      expect([h2.epochs, h2.nextSeq, h2.lastHashPrefix]).to.deep.equal([2n, 67n, prefix(HASH_1)]);
    });

    it("test_anchor_ownerMayAnchorToo", async () => {
      const { resourceLog, deviceOwner } = await loadFixture(deviceFixture);
      await expect(resourceLog.connect(deviceOwner).anchor(1, 0, 0, 1, HASH_0, CID))
        .to.emit(resourceLog, "ResourceLogAnchored")
        .withArgs(1, 0, 0, 1, HASH_0, CID, deviceOwner.address);
    });

    it("test_anchor_failsIfNotOperator", async () => {
      const { resourceLog, other, operator2 } = await loadFixture(deviceFixture);
      for (const account of [other, operator2]) {
        await expect(resourceLog.connect(account).anchor(1, 0, 0, 1, HASH_0, CID))
          .to.be.revertedWithCustomError(resourceLog, "ResourceLogUnauthorizedAccount")
          .withArgs(1, account.address);
      }
      // An unknown device has no operator.
      await expect(resourceLog.connect(other).anchor(9, 0, 0, 1, HASH_0, CID))
        .to.be.revertedWithCustomError(resourceLog, "ResourceLogUnauthorizedAccount")
        .withArgs(9, other.address);
      expect((await resourceLog.head(1)).epochs).to.equal(0n);
    });

    it("test_anchor_failsIfOperatorChangedAway", async () => {
      const { resourceLog, devices, deviceOwner, operator, operator2 } = await loadFixture(deviceFixture);
      await devices.connect(deviceOwner).setOperator(1, operator2.address);
      await expect(resourceLog.connect(operator).anchor(1, 0, 0, 1, HASH_0, CID))
        .to.be.revertedWithCustomError(resourceLog, "ResourceLogUnauthorizedAccount")
        .withArgs(1, operator.address);
      await expect(resourceLog.connect(operator2).anchor(1, 0, 0, 1, HASH_0, CID)).to.emit(
        resourceLog,
        "ResourceLogAnchored",
      );
    });

    it("test_anchor_failsIfEpochNotNext", async () => {
      const { resourceLog, operator } = await loadFixture(deviceFixture);
      const log = resourceLog.connect(operator);
      await expect(log.anchor(1, 1, 0, 1, HASH_0, CID))
        .to.be.revertedWithCustomError(resourceLog, "ResourceLogEpochNotNext")
        .withArgs(1, 1, 0);
      await log.anchor(1, 0, 0, 5, HASH_0, CID);
      // The same epoch again (a replay) and one skipped ahead.
      for (const epoch of [0, 2]) {
        await expect(log.anchor(1, epoch, 5, 1, HASH_1, CID))
          .to.be.revertedWithCustomError(resourceLog, "ResourceLogEpochNotNext")
          .withArgs(1, epoch, 1);
      }
    });

    it("test_anchor_failsIfSeqNotNext", async () => {
      const { resourceLog, operator } = await loadFixture(deviceFixture);
      const log = resourceLog.connect(operator);
      await expect(log.anchor(1, 0, 1, 1, HASH_0, CID))
        .to.be.revertedWithCustomError(resourceLog, "ResourceLogSeqNotNext")
        .withArgs(1, 1, 0);
      await log.anchor(1, 0, 0, 5, HASH_0, CID);
      for (const seq of [4, 6]) {
        await expect(log.anchor(1, 1, seq, 1, HASH_1, CID))
          .to.be.revertedWithCustomError(resourceLog, "ResourceLogSeqNotNext")
          .withArgs(1, seq, 5);
      }
    });

    it("test_anchor_failsIfInputInvalid", async () => {
      const { resourceLog, operator } = await loadFixture(deviceFixture);
      const log = resourceLog.connect(operator);
      await expect(log.anchor(1, 0, 0, 0, HASH_0, CID))
        .to.be.revertedWithCustomError(resourceLog, "ResourceLogEmptyEpoch")
        .withArgs(1, 0);
      await expect(log.anchor(1, 0, 0, 1, ethers.ZeroHash, CID))
        .to.be.revertedWithCustomError(resourceLog, "ResourceLogZeroHash")
        .withArgs(1, 0);
      const long = "b".repeat(129);
      for (const cid of ["", long]) {
        await expect(log.anchor(1, 0, 0, 1, HASH_0, cid))
          .to.be.revertedWithCustomError(resourceLog, "ResourceLogInvalidCid")
          .withArgs(1, cid);
      }
      await expect(log.anchor(1, 0, 0, 1, HASH_0, "b".repeat(128))).to.emit(
        resourceLog,
        "ResourceLogAnchored",
      );
    });

    it("test_anchor_devicesAreIndependent", async () => {
      const f = await loadFixture(deviceFixture);
      const { resourceLog, devices, deviceOwner2, operator, operator2 } = f;
      await devices
        .connect(deviceOwner2)
        .enroll(operator2.address, AMD64, 1000, 1024, [], ENDPOINT, DEVICE_STAKE);
      await resourceLog.connect(operator).anchor(1, 0, 0, 3, HASH_0, CID);
      await expect(resourceLog.connect(operator2).anchor(2, 0, 0, 1, HASH_1, CID))
        .to.emit(resourceLog, "ResourceLogAnchored")
        .withArgs(2, 0, 0, 1, HASH_1, CID, operator2.address);
      await expect(resourceLog.connect(operator2).anchor(1, 1, 3, 1, HASH_1, CID))
        .to.be.revertedWithCustomError(resourceLog, "ResourceLogUnauthorizedAccount")
        .withArgs(1, operator2.address);
      expect((await resourceLog.head(1)).nextSeq).to.equal(3n);
      expect((await resourceLog.head(2)).nextSeq).to.equal(1n);
    });

    it("test_gas_anchorWithinTarget", async () => {
      const { resourceLog, operator } = await loadFixture(deviceFixture);
      const log = resourceLog.connect(operator);
      const gas = async (epoch: number, firstSeq: number) =>
        (await (await log.anchor(1, epoch, firstSeq, 64, HASH_0, CID)).wait())!.gasUsed;
      const first = await gas(0, 0);
      const next = await gas(1, 64);
      // The first anchor of a device writes its slot from zero; every later one the same slot again.
      expect(first).to.be.lessThanOrEqual(60_000n);
      expect(next).to.be.lessThanOrEqual(60_000n);
      expect(await gas(2, 128)).to.equal(next);
    });
  });
});
