import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import {
  AMD64,
  ARM64,
  BAND,
  BAND_V2,
  IMAGE_AMD64,
  IMAGE_AMD64_V2,
  IMAGE_ARM64,
  MANIFEST_V1,
  MANIFEST_V2,
  appFixture,
  deployFixture,
  deploymentFixture,
  labelKey,
  platformKey,
} from "../shared/fixtures";

const bandTuple = (b: typeof BAND) => [
  b.cpuMinMillicores,
  b.cpuMaxMillicores,
  b.memoryMinMiB,
  b.memoryMaxMiB,
];

describe("AppRegistry", () => {
  describe("setObserver", () => {
    it("test_setObserver_setsOnceByDeployer", async () => {
      const [deployer, other] = await ethers.getSigners();
      const bare = await ethers.deployContract("AppRegistry", deployer);
      expect(await bare.observer()).to.equal(ethers.ZeroAddress);
      // Without an observer deployments still work.
      await bare.registerApp("solo");
      await bare.publishVersion(1, MANIFEST_V1, [AMD64], [IMAGE_AMD64], BAND);
      await expect(bare.createDeployment(1, 1, 1, [])).to.emit(bare, "DeploymentCreated");
      await bare.publishVersion(1, MANIFEST_V1, [AMD64], [IMAGE_AMD64], BAND);
      await expect(bare.rollDeployment(1, 2)).to.emit(bare, "DeploymentRolled");
      await expect(bare.stopDeployment(1)).to.emit(bare, "DeploymentStopped");
      await expect(bare.connect(other).setObserver(other.address))
        .to.be.revertedWithCustomError(bare, "AppRegistryNotDeployer")
        .withArgs(other.address);
      await expect(bare.setObserver(ethers.ZeroAddress))
        .to.be.revertedWithCustomError(bare, "AppRegistryInvalidObserver")
        .withArgs(ethers.ZeroAddress);
      await expect(bare.setObserver(other.address)).to.emit(bare, "ObserverSet").withArgs(other.address);
      expect(await bare.observer()).to.equal(other.address);
      await expect(bare.setObserver(deployer.address))
        .to.be.revertedWithCustomError(bare, "AppRegistryInvalidObserver")
        .withArgs(other.address);
    });

    it("test_onDeploymentCreated_failsIfNotAppRegistry", async () => {
      const { placements, apps, other } = await loadFixture(deployFixture);
      expect(await apps.observer()).to.equal(await placements.getAddress());
      await expect(placements.connect(other).onDeploymentCreated(1))
        .to.be.revertedWithCustomError(placements, "PlacementRegistryNotAppRegistry")
        .withArgs(other.address);
    });
  });

  describe("registerApp", () => {
    it("test_registerApp_storesOwnerAndName", async () => {
      const { apps, appOwner } = await loadFixture(deployFixture);
      await expect(apps.connect(appOwner).registerApp("hello"))
        .to.emit(apps, "AppRegistered")
        .withArgs(1, appOwner.address, "hello");
      const app = await apps.app(1);
      expect(app.owner).to.equal(appOwner.address);
      expect(app.name).to.equal("hello");
      expect(app.versionCount).to.equal(0);
      expect(await apps.appIdOf("hello")).to.equal(1);
      expect(await apps.appIdOf("nope")).to.equal(0);
      expect(await apps.appOwner(1)).to.equal(appOwner.address);
      expect(await apps.appCount()).to.equal(1);
    });

    it("test_registerApp_failsIfNameInvalid", async () => {
      const { apps } = await loadFixture(deployFixture);
      await expect(apps.registerApp(""))
        .to.be.revertedWithCustomError(apps, "AppRegistryInvalidName")
        .withArgs("");
      const long = "x".repeat(65);
      await expect(apps.registerApp(long))
        .to.be.revertedWithCustomError(apps, "AppRegistryInvalidName")
        .withArgs(long);
    });

    it("test_registerApp_onlyCanonicalSlugs", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      const bad = [
        "Hello", // case variant of "hello"
        "HELLO",
        "h\u0435llo", // Cyrillic e, a homoglyph
        "hel\u200blo", // zero-width space
        "hello\u00a0", // no-break space
        "hello ",
        "hello-", // ends with '-'
        "-hello",
        "1hello", // starts with a digit
        "hello_world",
        "hello.world",
      ];
      for (const name of bad) {
        await expect(apps.connect(appOwner).registerApp(name))
          .to.be.revertedWithCustomError(apps, "AppRegistryInvalidName")
          .withArgs(name);
      }
      for (const name of ["a", "demo-web", "x1", "a--b", "z".repeat(64)]) {
        await expect(apps.connect(appOwner).registerApp(name)).to.emit(apps, "AppRegistered");
      }
    });

    it("test_registerApp_failsIfNameTaken", async () => {
      const { apps, other } = await loadFixture(appFixture);
      await expect(apps.connect(other).registerApp("hello"))
        .to.be.revertedWithCustomError(apps, "AppRegistryNameTaken")
        .withArgs("hello", 1);
    });
  });

  describe("transferApp", () => {
    it("test_transferApp_movesOwnership", async () => {
      const { apps, appOwner, other } = await loadFixture(appFixture);
      await expect(apps.connect(appOwner).transferApp(1, other.address))
        .to.emit(apps, "AppTransferred")
        .withArgs(1, appOwner.address, other.address);
      expect(await apps.appOwner(1)).to.equal(other.address);
      await expect(apps.connect(appOwner).deprecateVersion(1, 1))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnauthorizedAccount")
        .withArgs(1, appOwner.address);
    });

    it("test_transferApp_failsIfZeroOwner", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      await expect(apps.connect(appOwner).transferApp(1, ethers.ZeroAddress))
        .to.be.revertedWithCustomError(apps, "AppRegistryInvalidOwner")
        .withArgs(ethers.ZeroAddress);
    });

    it("test_transferApp_failsIfNotOwner", async () => {
      const { apps, other } = await loadFixture(appFixture);
      await expect(apps.connect(other).transferApp(1, other.address))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnauthorizedAccount")
        .withArgs(1, other.address);
    });

    it("test_transferApp_failsIfUnknownApp", async () => {
      const { apps, other } = await loadFixture(appFixture);
      await expect(apps.connect(other).transferApp(9, other.address))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnknownApp")
        .withArgs(9);
      await expect(apps.app(9)).to.be.revertedWithCustomError(apps, "AppRegistryUnknownApp").withArgs(9);
    });
  });

  describe("publishVersion", () => {
    it("test_publishVersion_storesImmutableVersion", async () => {
      const { apps, appOwner } = await loadFixture(deployFixture);
      await apps.connect(appOwner).registerApp("hello");
      await expect(
        apps
          .connect(appOwner)
          .publishVersion(1, MANIFEST_V1, [AMD64, ARM64], [IMAGE_AMD64, IMAGE_ARM64], BAND),
      )
        .to.emit(apps, "VersionPublished")
        .withArgs(1, 1, MANIFEST_V1, [AMD64, ARM64], [IMAGE_AMD64, IMAGE_ARM64], bandTuple(BAND));
      const v = await apps.version(1, 1);
      expect(v.manifestCid).to.equal(MANIFEST_V1);
      expect(v.platforms).to.deep.equal([AMD64, ARM64]);
      expect(v.imageCids).to.deep.equal([IMAGE_AMD64, IMAGE_ARM64]);
      expect(v.band.cpuMinMillicores).to.equal(250);
      expect(v.deprecated).to.equal(false);
      expect(v.publishedAt).to.be.greaterThan(0);
      expect(await apps.imageOf(1, 1, ARM64)).to.equal(IMAGE_ARM64);
      expect(await apps.imageOf(1, 1, "linux/riscv64")).to.equal("");
      expect((await apps.app(1)).versionCount).to.equal(1);
    });

    it("test_publishVersion_failsIfCidInvalid", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      const o = apps.connect(appOwner);
      await expect(o.publishVersion(1, "", [AMD64], [IMAGE_AMD64], BAND))
        .to.be.revertedWithCustomError(apps, "AppRegistryInvalidCid")
        .withArgs("");
      const long = "b".repeat(129);
      await expect(o.publishVersion(1, MANIFEST_V1, [AMD64], [long], BAND))
        .to.be.revertedWithCustomError(apps, "AppRegistryInvalidCid")
        .withArgs(long);
    });

    it("test_publishVersion_failsIfPlatformCountInvalid", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      const o = apps.connect(appOwner);
      await expect(o.publishVersion(1, MANIFEST_V1, [], [], BAND))
        .to.be.revertedWithCustomError(apps, "AppRegistryInvalidPlatformCount")
        .withArgs(0, 0, 8);
      await expect(o.publishVersion(1, MANIFEST_V1, [AMD64, ARM64], [IMAGE_AMD64], BAND))
        .to.be.revertedWithCustomError(apps, "AppRegistryInvalidPlatformCount")
        .withArgs(2, 1, 8);
      const nine = Array.from({ length: 9 }, (_, i) => `linux/p${i}`);
      await expect(
        o.publishVersion(
          1,
          MANIFEST_V1,
          nine,
          nine.map(() => IMAGE_AMD64),
          BAND,
        ),
      )
        .to.be.revertedWithCustomError(apps, "AppRegistryInvalidPlatformCount")
        .withArgs(9, 9, 8);
    });

    it("test_publishVersion_failsIfBandInvalid", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      const o = apps.connect(appOwner);
      const bad = [
        { cpuMinMillicores: 0, cpuMaxMillicores: 1, memoryMinMiB: 1, memoryMaxMiB: 1 },
        { cpuMinMillicores: 2, cpuMaxMillicores: 1, memoryMinMiB: 1, memoryMaxMiB: 1 },
        { cpuMinMillicores: 1, cpuMaxMillicores: 1, memoryMinMiB: 0, memoryMaxMiB: 1 },
        { cpuMinMillicores: 1, cpuMaxMillicores: 1, memoryMinMiB: 2, memoryMaxMiB: 1 },
      ];
      for (const b of bad) {
        await expect(o.publishVersion(1, MANIFEST_V1, [AMD64], [IMAGE_AMD64], b))
          .to.be.revertedWithCustomError(apps, "AppRegistryInvalidBand")
          .withArgs(...bandTuple(b));
      }
    });

    it("test_publishVersion_failsIfPlatformInvalidOrDuplicate", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      const o = apps.connect(appOwner);
      for (const p of ["linux", "/amd64", "linux/", "x".repeat(28) + "/abc"]) {
        await expect(o.publishVersion(1, MANIFEST_V1, [p], [IMAGE_AMD64], BAND))
          .to.be.revertedWithCustomError(apps, "AppRegistryInvalidPlatform")
          .withArgs(p);
      }
      await expect(o.publishVersion(1, MANIFEST_V1, [AMD64, AMD64], [IMAGE_AMD64, IMAGE_ARM64], BAND))
        .to.be.revertedWithCustomError(apps, "AppRegistryDuplicatePlatform")
        .withArgs(AMD64);
    });

    it("test_publishVersion_failsIfNotOwner", async () => {
      const { apps, other } = await loadFixture(appFixture);
      await expect(apps.connect(other).publishVersion(1, MANIFEST_V1, [AMD64], [IMAGE_AMD64], BAND))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnauthorizedAccount")
        .withArgs(1, other.address);
    });
  });

  describe("deprecateVersion", () => {
    it("test_deprecateVersion_marksVersion", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      await expect(apps.connect(appOwner).deprecateVersion(1, 1))
        .to.emit(apps, "VersionDeprecated")
        .withArgs(1, 1);
      expect((await apps.version(1, 1)).deprecated).to.equal(true);
    });

    it("test_deprecateVersion_failsIfAlreadyDeprecated", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      await apps.connect(appOwner).deprecateVersion(1, 1);
      await expect(apps.connect(appOwner).deprecateVersion(1, 1))
        .to.be.revertedWithCustomError(apps, "AppRegistryVersionDeprecated")
        .withArgs(1, 1);
    });

    it("test_deprecateVersion_failsIfUnknownVersion", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      for (const v of [0, 3]) {
        await expect(apps.connect(appOwner).deprecateVersion(1, v))
          .to.be.revertedWithCustomError(apps, "AppRegistryUnknownVersion")
          .withArgs(1, v);
      }
      await expect(apps.version(1, 3))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnknownVersion")
        .withArgs(1, 3);
    });
  });

  describe("announceProvider", () => {
    const PROVIDER = "/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";

    it("test_announceProvider_emitsTheAddress", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      await expect(apps.connect(appOwner).announceProvider(1, 1, PROVIDER))
        .to.emit(apps, "VersionProviderAnnounced")
        .withArgs(1, 1, PROVIDER);
      // A deprecated version still has running replicas that fetch it.
      await apps.connect(appOwner).deprecateVersion(1, 1);
      await expect(apps.connect(appOwner).announceProvider(1, 1, PROVIDER)).to.emit(
        apps,
        "VersionProviderAnnounced",
      );
    });

    it("test_announceProvider_failsIfProviderInvalid", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      for (const provider of ["", "/" + "a".repeat(256)]) {
        await expect(apps.connect(appOwner).announceProvider(1, 1, provider))
          .to.be.revertedWithCustomError(apps, "AppRegistryInvalidProvider")
          .withArgs(provider);
      }
    });

    it("test_announceProvider_failsIfUnknownVersionOrNotOwner", async () => {
      const { apps, appOwner, other } = await loadFixture(appFixture);
      await expect(apps.connect(appOwner).announceProvider(1, 3, PROVIDER))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnknownVersion")
        .withArgs(1, 3);
      await expect(apps.connect(other).announceProvider(1, 1, PROVIDER))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnauthorizedAccount")
        .withArgs(1, other.address);
    });
  });

  describe("createDeployment", () => {
    it("test_createDeployment_storesDeployment", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      const v1 = await apps.version(1, 1);
      await expect(apps.connect(appOwner).createDeployment(1, 1, 3, ["region=eu-west", "gpu=none"]))
        .to.emit(apps, "DeploymentCreated")
        .withArgs(
          1,
          1,
          1,
          3,
          1,
          ["region=eu-west", "gpu=none"],
          [bandTuple(BAND), v1.publishedAt, false, MANIFEST_V1, [AMD64, ARM64], [IMAGE_AMD64, IMAGE_ARM64]],
        );
      const d = await apps.deployment(1);
      expect(d.appId).to.equal(1);
      expect(d.version).to.equal(1);
      expect(d.generation).to.equal(1);
      expect(d.replicas).to.equal(3);
      expect(d.active).to.equal(true);
      expect(d.requiredLabels).to.deep.equal([labelKey("region=eu-west"), labelKey("gpu=none")]);
      expect(await apps.deploymentCount()).to.equal(1);
      expect(await apps.deploymentVersionAt(1, 1)).to.equal(1);
      const s = await apps.deploymentSummary(1);
      expect(s.owner).to.equal(appOwner.address);
      expect(s.replicas).to.equal(3);
    });

    it("test_createDeployment_failsIfReplicasZero", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      await expect(apps.connect(appOwner).createDeployment(1, 1, 0, []))
        .to.be.revertedWithCustomError(apps, "AppRegistryInvalidReplicas")
        .withArgs(0);
    });

    it("test_createDeployment_failsIfVersionDeprecatedOrUnknown", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      await apps.connect(appOwner).deprecateVersion(1, 1);
      await expect(apps.connect(appOwner).createDeployment(1, 1, 1, []))
        .to.be.revertedWithCustomError(apps, "AppRegistryVersionDeprecated")
        .withArgs(1, 1);
      await expect(apps.connect(appOwner).createDeployment(1, 7, 1, []))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnknownVersion")
        .withArgs(1, 7);
    });

    it("test_createDeployment_failsIfLabelsInvalid", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      const o = apps.connect(appOwner);
      const nine = Array.from({ length: 9 }, (_, i) => `k${i}=v`);
      await expect(o.createDeployment(1, 1, 1, nine))
        .to.be.revertedWithCustomError(apps, "LabelsTooMany")
        .withArgs(9, 8);
      for (const l of ["novalue", "=v", "k=", "k".repeat(64) + "=v"]) {
        await expect(o.createDeployment(1, 1, 1, [l]))
          .to.be.revertedWithCustomError(apps, "LabelsInvalid")
          .withArgs(l);
      }
      await expect(o.createDeployment(1, 1, 1, ["a=b", "a=b"]))
        .to.be.revertedWithCustomError(apps, "LabelsDuplicate")
        .withArgs("a=b");
    });

    it("test_createDeployment_failsIfNotOwner", async () => {
      const { apps, other } = await loadFixture(appFixture);
      await expect(apps.connect(other).createDeployment(1, 1, 1, []))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnauthorizedAccount")
        .withArgs(1, other.address);
    });
  });

  describe("scale, roll, stop", () => {
    it("test_scaleDeployment_setsReplicas", async () => {
      const { apps, appOwner } = await loadFixture(deploymentFixture);
      await expect(apps.connect(appOwner).scaleDeployment(1, 5))
        .to.emit(apps, "DeploymentScaled")
        .withArgs(1, 1, 3, 5);
      expect((await apps.deployment(1)).replicas).to.equal(5);
    });

    it("test_scaleDeployment_upFailsIfVersionDeprecated", async () => {
      const { apps, appOwner } = await loadFixture(appFixture);
      await apps.connect(appOwner).createDeployment(1, 1, 2, []);
      await apps.connect(appOwner).deprecateVersion(1, 1);
      await expect(apps.connect(appOwner).scaleDeployment(1, 3))
        .to.be.revertedWithCustomError(apps, "AppRegistryVersionDeprecated")
        .withArgs(1, 1);
      await expect(apps.connect(appOwner).scaleDeployment(1, 1))
        .to.emit(apps, "DeploymentScaled")
        .withArgs(1, 1, 2, 1);
    });

    it("test_scaleDeployment_failsIfZeroOrUnchanged", async () => {
      const { apps, appOwner } = await loadFixture(deploymentFixture);
      await expect(apps.connect(appOwner).scaleDeployment(1, 0))
        .to.be.revertedWithCustomError(apps, "AppRegistryInvalidReplicas")
        .withArgs(0);
      await expect(apps.connect(appOwner).scaleDeployment(1, 3))
        .to.be.revertedWithCustomError(apps, "AppRegistryReplicasUnchanged")
        .withArgs(1, 3);
    });

    it("test_scaleDeployment_failsIfUnknownOrNotOwner", async () => {
      const { apps, appOwner, other } = await loadFixture(deploymentFixture);
      await expect(apps.connect(appOwner).scaleDeployment(2, 1))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnknownDeployment")
        .withArgs(2);
      await expect(apps.connect(other).scaleDeployment(1, 1))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnauthorizedAccount")
        .withArgs(1, other.address);
      await expect(apps.deployment(2))
        .to.be.revertedWithCustomError(apps, "AppRegistryUnknownDeployment")
        .withArgs(2);
    });

    it("test_rollDeployment_bumpsGeneration", async () => {
      const { apps, appOwner } = await loadFixture(deploymentFixture);
      const v2 = await apps.version(1, 2);
      await expect(apps.connect(appOwner).rollDeployment(1, 2))
        .to.emit(apps, "DeploymentRolled")
        .withArgs(1, 1, 2, 1, 2, [
          bandTuple(BAND_V2),
          v2.publishedAt,
          false,
          MANIFEST_V2,
          [AMD64],
          [IMAGE_AMD64_V2],
        ]);
      const d = await apps.deployment(1);
      expect(d.version).to.equal(2);
      expect(d.generation).to.equal(2);
      expect(await apps.deploymentVersionAt(1, 1)).to.equal(1);
      expect(await apps.deploymentVersionAt(1, 2)).to.equal(2);
      expect((await apps.bandAt(1, 1)).cpuMinMillicores).to.equal(BAND.cpuMinMillicores);
      expect((await apps.bandAt(1, 2)).cpuMinMillicores).to.equal(BAND_V2.cpuMinMillicores);
      const t = await apps.claimTerms(1, platformKey(AMD64));
      expect(t.platformSupported).to.equal(true);
      expect(t.version).to.equal(2);
      expect(t.band.cpuMinMillicores).to.equal(BAND_V2.cpuMinMillicores);
      expect((await apps.claimTerms(1, platformKey(ARM64))).platformSupported).to.equal(false);
    });

    it("test_rollDeployment_failsIfNotNewer", async () => {
      const { apps, appOwner } = await loadFixture(deploymentFixture);
      await expect(apps.connect(appOwner).rollDeployment(1, 1))
        .to.be.revertedWithCustomError(apps, "AppRegistryVersionNotNewer")
        .withArgs(1, 1, 1);
    });

    it("test_rollDeployment_failsIfDeprecated", async () => {
      const { apps, appOwner } = await loadFixture(deploymentFixture);
      await apps.connect(appOwner).deprecateVersion(1, 2);
      await expect(apps.connect(appOwner).rollDeployment(1, 2))
        .to.be.revertedWithCustomError(apps, "AppRegistryVersionDeprecated")
        .withArgs(1, 2);
    });

    it("test_stopDeployment_deactivates", async () => {
      const { apps, appOwner } = await loadFixture(deploymentFixture);
      await expect(apps.connect(appOwner).stopDeployment(1))
        .to.emit(apps, "DeploymentStopped")
        .withArgs(1, 1, 2);
      const d = await apps.deployment(1);
      expect(d.active).to.equal(false);
      expect(d.generation).to.equal(2);
      expect(await apps.deploymentVersionAt(1, 2)).to.equal(1);
    });

    it("test_stopDeployment_failsIfStopped", async () => {
      const { apps, appOwner } = await loadFixture(deploymentFixture);
      await apps.connect(appOwner).stopDeployment(1);
      for (const call of [
        () => apps.connect(appOwner).stopDeployment(1),
        () => apps.connect(appOwner).scaleDeployment(1, 4),
        () => apps.connect(appOwner).rollDeployment(1, 2),
      ]) {
        await expect(call()).to.be.revertedWithCustomError(apps, "AppRegistryDeploymentStopped").withArgs(1);
      }
    });
  });
});
