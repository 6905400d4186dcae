// The Hardhat tasks end to end, as a user runs them: child processes against the test run's real
// Hardhat node and Kubo, checked through the chain's views, Kubo and Docker.
import { expect } from "chai";
import Docker from "dockerode";
import { JsonRpcProvider, type Signer } from "ethers";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { AppRegistry, DeviceRegistry, PlacementRegistry, ShoalToken } from "../../typechain-types";
import { canonicalManifestBytes, parseManifest } from "../../workers/src";
import { runHardhat, type CliResult, devWallet } from "../../scripts/lib/local-chain";
import { deployInto, enrollArgs, enrolledId, registriesOf } from "../shared/cli";
import { requireChain, requireDocker, requireKubo, serviceUrls } from "../shared/services";

const urls = serviceUrls();
const ROOT = path.resolve(__dirname, "../..");
const WEB_MANIFEST = path.join(ROOT, "apps/demo-web/shoal.yaml");

function expectOk(result: CliResult): CliResult {
  expect(result.status, `exit ${result.status}\n${result.stdout}\n${result.stderr}`).to.equal(0);
  return result;
}

/**
 * The error a user sees: exit status 1 and stderr holding "Error: " and the message, nothing else;
 * no stack trace, even though Hardhat believes it runs in CI on a Linux machine without a display.
 */
function errorLine(result: CliResult): string {
  expect(result.status, `expected exit 1\n${result.stdout}\n${result.stderr}`).to.equal(1);
  expect(result.stderr, "stderr").to.match(/^Error: /);
  expect(result.stderr, "a stack trace").to.not.match(/^\s+at /m);
  expect(result.stderr, "Hardhat's own error line").to.not.include("Error in plugin");
  return result.stderr.slice("Error: ".length).trim();
}

async function kuboCat(cid: string): Promise<Buffer> {
  const response = await fetch(`${urls.kuboUrl}/api/v0/cat?arg=${cid}`, { method: "POST" });
  expect(response.ok, `cat ${cid}: HTTP ${response.status}`).to.equal(true);
  return Buffer.from(await response.arrayBuffer());
}

async function kuboObjectCount(): Promise<number> {
  const response = await fetch(`${urls.kuboUrl}/api/v0/repo/stat`, { method: "POST" });
  return ((await response.json()) as { NumObjects: number }).NumObjects;
}

async function dockerSave(ref: string): Promise<Buffer> {
  const docker = new Docker({ socketPath: urls.dockerSocket });
  const chunks: Buffer[] = [];
  for await (const chunk of await docker.getImage(ref).get()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe("tasks: publish, deploy, enroll and audit against a real chain and Kubo", function () {
  this.timeout(180_000);

  let deploymentsDir: string;
  let provider: JsonRpcProvider;
  let wallets: Signer[];
  let token: ShoalToken;
  let apps: AppRegistry;
  let devices: DeviceRegistry;
  let placements: PlacementRegistry;
  const cli = (...args: string[]) =>
    runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: deploymentsDir, SHOAL_KUBO_URL: urls.kuboUrl });

  before(async function () {
    await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls)]);
    deploymentsDir = await mkdtemp(path.join(tmpdir(), "shoal-tasks-"));
    const record = await deployInto(deploymentsDir);
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
    wallets = Array.from({ length: 8 }, (_, i) => devWallet(i).connect(provider));
    ({ token, apps, devices, placements } = registriesOf(record, wallets[0]));
  });

  after(async function () {
    provider?.destroy();
    if (deploymentsDir) await rm(deploymentsDir, { recursive: true, force: true });
  });

  describe("app:publish", function () {
    let imageCid: string;
    let manifestCid: string;

    it("adds the image and the canonical manifest to Kubo and publishes the version on chain", async function () {
      const out = expectOk(await cli("app:publish", "--manifest", WEB_MANIFEST)).stdout;
      expect(out).to.match(/published demo-web 1\.0\.0 as app 1 version 1 \(tx 0x[0-9a-f]{64}, gas \d+\)/);
      // Where devices fetch it: the Kubo node's swarm address (on the device network's bridge when
      // the test run made one, else loopback), announced on chain (VersionProviderAnnounced).
      const swarmHost = (process.env.SHOAL_BIND_ADDRESS || "127.0.0.1").replaceAll(".", "\\.");
      expect(out).to.match(
        new RegExp(`provider: /ip4/${swarmHost}/tcp/\\d+/p2p/12D3KooW\\w+ \\(tx 0x[0-9a-f]{64}, gas \\d+\\)`),
      );

      const appId = await apps.appIdOf("demo-web");
      expect(appId).to.equal(1n);
      const version = await apps.version(appId, 1);
      [imageCid, manifestCid] = [version.imageCids[0], version.manifestCid];
      expect([...version.platforms]).to.deep.equal(["linux/amd64"]);
      expect(version.band.cpuMinMillicores).to.equal(50n);
      expect(version.band.cpuMaxMillicores).to.equal(500n);
      expect(version.band.memoryMinMiB).to.equal(16n);
      expect(version.band.memoryMaxMiB).to.equal(64n);
      expect(out).to.include(imageCid).and.include(manifestCid);
    });

    it("stores exactly the `docker save` bytes of the image and the canonical manifest, byte for byte", async function () {
      expect(Buffer.compare(await kuboCat(imageCid), await dockerSave("shoal/demo-web:1.0.0"))).to.equal(0);
      const manifest = parseManifest(await readFile(WEB_MANIFEST, "utf8"));
      const expected = Buffer.from(canonicalManifestBytes(manifest, { "linux/amd64": imageCid }));
      expect(Buffer.compare(await kuboCat(manifestCid), expected)).to.equal(0);
    });

    it("is a clear no-op when the same manifest is published again", async function () {
      const out = expectOk(await cli("app:publish", "--manifest", WEB_MANIFEST)).stdout;
      expect(out).to.include("demo-web 1.0.0 is already published as version 1: nothing to do");
      expect((await apps.app(1)).versionCount).to.equal(1n);
    });

    it("refuses a changed manifest under an already published version, changing nothing", async function () {
      const dir = await mkdtemp(path.join(tmpdir(), "shoal-manifest-"));
      const changed = (await readFile(WEB_MANIFEST, "utf8")).replace("replicas: 2", "replicas: 3");
      await writeFile(path.join(dir, "shoal.yaml"), changed);
      const objects = await kuboObjectCount();
      const message = errorLine(await cli("app:publish", "--manifest", path.join(dir, "shoal.yaml")));
      expect(message).to.match(
        /^demo-web 1\.0\.0 is already published as version 1 \(manifest bafk\w+\), and this manifest differs/,
      );
      expect(message).to.include("bump `version`");
      expect((await apps.app(1)).versionCount).to.equal(1n);
      expect(await kuboObjectCount()).to.equal(objects);
      await rm(dir, { recursive: true });
    });

    describe("bad manifests fail with their own message and leave nothing on chain or in IPFS", function () {
      const base = `schemaVersion: 1
name: bad-app
version: "1.0.0"
images:
  linux/amd64:
    ref: shoal/demo-web:1.0.0
resources:
  cpu: { min: 50m, max: 500m }
  memory: { min: 16Mi, max: 64Mi }
`;
      const cases: Array<{ name: string; yaml: string; says: RegExp }> = [
        {
          name: "privileged",
          yaml: base + "privileged: true\n",
          says: /:10: privileged: true is refused; a privileged container/,
        },
        {
          name: "host network",
          yaml: base + "hostNetwork: true\n",
          says: /:10: hostNetwork: true is refused/,
        },
        {
          name: "cpu min above max",
          yaml: base.replace("min: 50m, max: 500m", "min: 2, max: 500m"),
          says: /:8: resources\.cpu\.min: 2 is more than resources\.cpu\.max \("500m"\)/,
        },
        {
          name: "memory without a unit",
          yaml: base.replace("max: 64Mi", "max: 64"),
          says: /:9: resources\.memory\.max: 64 is a bare number; add a binary unit/,
        },
        {
          name: "bad name",
          yaml: base.replace("name: bad-app", "name: Bad_App!"),
          says: /:2: name: "Bad_App!" /,
        },
        {
          name: "no image",
          yaml: base.replace(/images:[\s\S]*?1\.0\.0\n/, ""),
          says: /:1: images is missing; it is required/,
        },
        {
          name: "a tar that does not exist",
          yaml: base.replace("ref: shoal/demo-web:1.0.0", "tar: ./missing.tar"),
          says: /images\.linux\/amd64\.tar: "\.\/missing\.tar" is not a file/,
        },
        {
          name: "an image that is not in Docker",
          yaml: base.replace("shoal/demo-web:1.0.0", "shoal/not-built:9"),
          says: /images\.linux\/amd64\.ref: image "shoal\/not-built:9" is not in the local Docker Engine/,
        },
      ];
      let dir: string;
      let objectsBefore: number;
      let appsBefore: bigint;
      before(async () => {
        dir = await mkdtemp(path.join(tmpdir(), "shoal-bad-"));
        objectsBefore = await kuboObjectCount();
        appsBefore = await apps.appCount();
      });
      after(async () => {
        expect(await apps.appCount(), "apps on chain").to.equal(appsBefore);
        expect(await kuboObjectCount(), "objects in Kubo").to.equal(objectsBefore);
        await rm(dir, { recursive: true, force: true });
      });
      for (const { name, yaml, says } of cases) {
        it(name, async function () {
          const file = path.join(dir, `${name.replace(/\W+/g, "-")}.yaml`);
          await writeFile(file, yaml);
          expect(errorLine(await cli("app:publish", "--manifest", file))).to.match(says);
        });
      }

      it("prints the list of issues once, without a stack (issue 11)", async function () {
        const file = path.join(dir, "two-issues.yaml");
        await writeFile(file, base.replace("name: bad-app", "name: Bad_App") + "privileged: true\n");
        const result = await cli("app:publish", "--manifest", file);
        const lines = errorLine(result).split("\n");
        expect(lines).to.have.length(3);
        expect(lines[0]).to.match(/two-issues\.yaml is not a valid Shoal manifest \(2 issues\):$/);
        expect(lines[1]).to.match(/two-issues\.yaml:2: name: "Bad_App" is not a valid app name/);
        expect(lines[2]).to.match(/two-issues\.yaml:10: privileged: true is refused/);
      });

      it("refuses a manifest saved as UTF-16, naming the encoding", async function () {
        const file = path.join(dir, "utf16.yaml");
        await writeFile(file, Buffer.from(`\ufeff${base}`, "utf16le"));
        expect(errorLine(await cli("app:publish", "--manifest", file))).to.match(
          /utf16\.yaml:1: is UTF-16 \(little-endian\) text; save the file as UTF-8 without a byte order mark$/,
        );
      });
    });
  });

  describe("app:deploy, app:scale, app:roll, app:stop, app:list", function () {
    it("deploys with the manifest's replicas and labels by default, then scales, rolls and stops", async function () {
      expect(expectOk(await cli("app:deploy", "--app", "demo-web")).stdout).to.match(
        /deployment 1: demo-web version 1, 2 replica\(s\)/,
      );
      let d = await apps.deploymentSummary(1);
      expect([d.appId, d.version, d.replicas, d.active]).to.deep.equal([1n, 1n, 2n, true]);

      expect(expectOk(await cli("app:scale", "--app", "demo-web", "--replicas", "3")).stdout).to.include(
        "deployment 1: 2 -> 3 replica(s)",
      );
      expect((await apps.deploymentSummary(1)).replicas).to.equal(3n);

      // A second version to roll to: the same image under a new semver, published by the task.
      const dir = await mkdtemp(path.join(tmpdir(), "shoal-v2-"));
      const v2 = (await readFile(WEB_MANIFEST, "utf8")).replace(/version: "1\.0\.0"/, 'version: "1.1.0"');
      await writeFile(path.join(dir, "shoal.yaml"), v2);
      expectOk(await cli("app:publish", "--manifest", path.join(dir, "shoal.yaml")));
      await rm(dir, { recursive: true });

      expect(
        expectOk(await cli("app:roll", "--deployment", "1", "--app-version", "1.1.0")).stdout,
      ).to.include("deployment 1: version 1 -> 2");
      d = await apps.deploymentSummary(1);
      expect(d.version).to.equal(2n);

      const listed = JSON.parse(expectOk(await cli("app:list", "--json")).stdout);
      expect(listed.apps[0].versions.map((v: { version: number }) => v.version)).to.deep.equal([1, 2]);
      expect(listed.deployments[0]).to.include({ deploymentId: 1, version: 2, replicas: 3, active: true });

      expect(expectOk(await cli("app:stop", "--deployment", "1")).stdout).to.include("deployment 1: stopped");
      expect((await apps.deploymentSummary(1)).active).to.equal(false);
    });

    it("names the bad value and what is allowed", async function () {
      expect(errorLine(await cli("app:deploy", "--app", "nope", "--replicas", "1"))).to.equal(
        '--app: no app named "nope" is registered; publish it first with app:publish',
      );
      expect(errorLine(await cli("app:deploy", "--app", "demo-web", "--app-version", "7"))).to.equal(
        "--app-version 7: app 1 has versions 1..2",
      );
      expect(errorLine(await cli("app:deploy", "--app", "demo-web", "--labels", "region"))).to.match(
        /^--labels: "region" is not a label; use key=value where the key is/,
      );
      expect(errorLine(await cli("app:scale", "--deployment", "9", "--replicas", "1"))).to.equal(
        "--deployment 9: deployments are 1..1",
      );
    });

    it("says in one sentence, without a stack, that Kubo is down (issue 11)", async function () {
      const down = "http://127.0.0.1:9"; // discard port: nothing listens on loopback
      const manifestCid = (await apps.version(1, 1)).manifestCid;
      const deployments = await apps.deploymentCount();
      expect(
        errorLine(await cli("app:deploy", "--app", "demo-web", "--app-version", "1", "--kubo", down)),
      ).to.equal(
        `reading manifest ${manifestCid} from IPFS: Kubo at ${down} is not reachable (read ${manifestCid})`,
      );
      // A semver is resolved through Kubo too: "no version matches" would be the wrong sentence.
      expect(
        errorLine(
          await cli(
            "app:deploy",
            "--app",
            "demo-web",
            "--app-version",
            "1.0.0",
            "--replicas",
            "1",
            "--kubo",
            down,
          ),
        ),
      ).to.match(new RegExp(`^reading manifest \\w+ from IPFS: Kubo at ${down} is not reachable`));
      expect(await apps.deploymentCount()).to.equal(deployments);
    });
  });

  describe("device:enroll, device:heartbeat, device:exit, device:withdraw, device:list", function () {
    it("stakes and enrolls in one command, then exits and withdraws the stake after the delay", async function () {
      const owner = await wallets[6].getAddress();
      const balance = await token.balanceOf(owner);
      const out = expectOk(
        await cli(
          ...enrollArgs(6, { stake: "150", cpu: "500m", memory: "256Mi", labels: "region=eu,tier=edge" }),
        ),
      ).stdout;
      const deviceId = Number(enrolledId(out));
      const device = await devices.device(deviceId);
      expect([device.owner, device.cpuMillicores, device.memoryMiB, device.platform]).to.deep.equal([
        owner,
        500n,
        256n,
        "linux/amd64",
      ]);
      expect(await token.balanceOf(owner)).to.equal(balance - 150n * 10n ** 18n);

      expectOk(await cli("device:heartbeat", "--account", "6", "--device", String(deviceId)));
      const listed = JSON.parse(expectOk(await cli("device:list", "--json")).stdout);
      expect(listed.find((d: { deviceId: number }) => d.deviceId === deviceId)).to.include({
        status: "Active",
        stake: "150.0",
        cpuMillicores: 500,
        memoryMiB: 256,
        stale: false,
      });

      expect(
        expectOk(await cli("device:exit", "--account", "6", "--device", String(deviceId))).stdout,
      ).to.include("Exiting; withdrawable at");
      expect(
        errorLine(await cli("device:withdraw", "--account", "6", "--device", String(deviceId))),
      ).to.match(/DeviceRegistryUnbonding/);
      const { unbondingDelay } = await devices.parameters();
      await provider.send("evm_increaseTime", [Number(unbondingDelay) + 1]);
      await provider.send("evm_mine", []);
      expectOk(await cli("device:withdraw", "--account", "6", "--device", String(deviceId)));
      expect(await token.balanceOf(owner)).to.equal(balance);
    });

    it("names the bad value and what is allowed", async function () {
      const enroll = (...extra: string[]) =>
        cli("device:enroll", "--endpoint", "/ip4/127.0.0.1/tcp/4001", ...extra);
      expect(errorLine(await enroll("--stake", "150", "--cpu", "1x", "--memory", "1Gi"))).to.equal(
        '--cpu "1x" is not a CPU quantity; use millicores like "250m" or cores like "0.5"',
      );
      expect(errorLine(await enroll("--stake", "1", "--cpu", "1", "--memory", "1Gi"))).to.equal(
        "--stake 1: the minimum stake is 100.0 tokens",
      );
      expect(errorLine(await cli("device:heartbeat", "--device", "99"))).to.match(
        /^--device 99: devices are 1\.\.\d+$/,
      );
    });

    it("checks labels and values before it approves the stake, so bad input changes nothing on chain", async function () {
      const owner = await wallets[7].getAddress();
      const registry = await devices.getAddress();
      const before = async () => ({
        allowance: await token.allowance(owner, registry),
        balance: await token.balanceOf(owner),
        devices: await devices.deviceCount(),
        nonce: await provider.getTransactionCount(owner),
      });
      const start = await before();
      const enroll = (...extra: string[]) =>
        cli("device:enroll", "--account", "7", "--stake", "150", "--cpu", "1", "--memory", "1Gi", ...extra);
      const cases: [string[], string | RegExp][] = [
        [
          ["--labels", "region=eu,gpu", "--endpoint", "/ip4/127.0.0.1/tcp/4001"],
          /^--labels: "gpu" is not a label; use key=value where the key is 1 to 31 lowercase letters/,
        ],
        [
          ["--labels", "region=eu,region=us", "--endpoint", "/ip4/127.0.0.1/tcp/4001"],
          '--labels: "region=us" repeats the key "region" (also "region=eu"); give each key at most once',
        ],
        [
          ["--labels", "a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9", "--endpoint", "/ip4/127.0.0.1/tcp/4001"],
          "--labels: 9 labels are too many; give at most 8",
        ],
        [
          ["--endpoint", `/dns4/${"x".repeat(300)}`],
          /^--endpoint "\/dns4\/x+" is not a multiaddr; give the device's IPFS address like \/ip4\/192\.0\.2\.10\/tcp\/4001/,
        ],
        [
          ["--platform", "linux/amd65", "--endpoint", "/ip4/127.0.0.1/tcp/4001"],
          /^--platform "linux\/amd65" is not a platform a manifest can name; use one of linux\/amd64, /,
        ],
      ];
      for (const [args, says] of cases) {
        const message = errorLine(await enroll(...args));
        if (typeof says === "string") expect(message).to.equal(says);
        else expect(message).to.match(says);
      }
      expect(await before()).to.deep.equal(start);
    });
  });

  describe("placement:history", function () {
    it("rebuilds the timeline of claims, confirms, failures, releases and expiries from the chain", async function () {
      // Two devices; the test drives the contracts directly, as workers would.
      const [ownerA, ownerB, keeper] = [wallets[3], wallets[4], wallets[5]];
      const stake = 200n * 10n ** 18n;
      const enroll = async (owner: Signer, labels: string[]) => {
        await (await token.connect(owner).approve(await devices.getAddress(), stake)).wait();
        const receipt = await (
          await devices
            .connect(owner)
            .enroll(
              await owner.getAddress(),
              "linux/amd64",
              1000,
              512,
              labels,
              "/ip4/127.0.0.1/tcp/4001",
              stake,
            )
        ).wait();
        const enrolled = receipt!.logs
          .map((log) => devices.interface.parseLog(log))
          .find((e) => e?.name === "DeviceEnrolled");
        return Number(enrolled!.args.deviceId);
      };
      const [devA, devB] = [await enroll(ownerA, ["region=eu"]), await enroll(ownerB, ["region=eu"])];
      expectOk(await cli("app:deploy", "--app", "demo-web", "--app-version", "1", "--replicas", "2"));
      const deployment = Number(await apps.deploymentCount());
      const asA = placements.connect(ownerA);
      const asB = placements.connect(ownerB);
      const claim = async (as: PlacementRegistry, device: number) => {
        const receipt = await (await as.claim(deployment, device)).wait();
        const claimed = receipt!.logs
          .map((log) => placements.interface.parseLog(log))
          .find((e) => e?.name === "PlacementClaimed");
        return Number(claimed!.args.placementId);
      };

      const p1 = await claim(asA, devA);
      const p2 = await claim(asB, devB);
      await (await asA.confirm(p1)).wait();
      await (await asB.fail(p2, 3)).wait(); // StartFailed
      const p3 = await claim(asB, devB);
      await (await asB.confirm(p3)).wait();
      await (await asA.release(p1)).wait();
      const p4 = await claim(asA, devA);
      // Device A goes silent past the TTL; B keeps its heartbeat; a keeper expires A.
      const { heartbeatTtl } = await devices.parameters();
      await provider.send("evm_increaseTime", [Number(heartbeatTtl) + 1]);
      await (await devices.connect(ownerB).heartbeat(devB)).wait();
      await (await placements.connect(keeper).expireDevice(devA)).wait();

      type Row = { event: string; placementId: number; deviceId: number; state: string; reason: string };
      const history = async () =>
        (
          JSON.parse(
            expectOk(await cli("placement:history", "--deployment", String(deployment), "--json")).stdout,
          ) as Row[]
        ).map((r) => [r.event, r.placementId, r.deviceId, r.state, r.reason.split(" by ")[0]]);
      const recorded = [
        ["PlacementClaimed", p1, devA, "Claimed", "app 1 v1, 50m/16MiB reserved"],
        ["PlacementClaimed", p2, devB, "Claimed", "app 1 v1, 50m/16MiB reserved"],
        ["PlacementConfirmed", p1, devA, "Running", ""],
        ["PlacementFailed", p2, devB, "Failed", "StartFailed"],
        ["PlacementClaimed", p3, devB, "Claimed", "app 1 v1, 50m/16MiB reserved"],
        ["PlacementConfirmed", p3, devB, "Running", ""],
        ["PlacementReleased", p1, devA, "Released", "ByDevice"],
        ["PlacementClaimed", p4, devA, "Claimed", "app 1 v1, 50m/16MiB reserved"],
      ];
      // Before anyone finalizes it, p4's expiry is derived from the device's expiry.
      expect(await history()).to.deep.equal([
        ...recorded,
        ["(derived)", p4, devA, "Expired", "device missed its heartbeat TTL; finalizeExpired() records it"],
      ]);

      await (await placements.connect(keeper).finalizeExpired(p4)).wait();
      const final = await history();
      expect(final.slice(0, -1)).to.deep.equal(recorded);
      expect(final.at(-1)!.slice(0, 4)).to.deep.equal(["PlacementExpired", p4, devA, "Expired"]);

      // The device view narrows the same timeline to one device.
      const ofB = JSON.parse(
        expectOk(await cli("placement:history", "--device", String(devB), "--json")).stdout,
      ) as Row[];
      expect(ofB.map((r) => [r.placementId, r.state])).to.deep.equal([
        [p2, "Claimed"],
        [p2, "Failed"],
        [p3, "Claimed"],
        [p3, "Running"],
      ]);
      // And the table form is readable.
      const table = expectOk(await cli("placement:history", "--placement", String(p2))).stdout;
      expect(table).to.match(
        /^time\s+block\s+tx\s+event\s+placement\s+deployment\s+device\s+state\s+reason/m,
      );
      expect(table).to.match(/PlacementFailed\s+\d+\s+\d+\s+\d+\s+Failed\s+StartFailed/);
    });
  });
});
