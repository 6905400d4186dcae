// The task options no other test touches, and placement:history across a roll (issue 13 item 3),
// run as a user runs them: Hardhat child processes against the test run's real chain and Kubo.
// Each option gets a success case and a bad-input case (one sentence naming the option, the value
// and what is allowed; exit 1; nothing changed on chain). Claims are made by the test as the
// devices' operators, as workers would; rolls, stops and the history go through the CLI.
import { expect } from "chai";
import Docker from "dockerode";
import { JsonRpcProvider, type Signer } from "ethers";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { AppRegistry, DeviceRegistry, PlacementRegistry, ShoalToken } from "../../typechain-types";
import { PLACEMENT_STATES } from "../../workers/src";
import { runHardhat, type CliResult, devWallet } from "../../scripts/lib/local-chain";
import { deployInto, enrollArgs, enrolledId, registriesOf } from "../shared/cli";
import { requireChain, requireDocker, requireKubo, serviceUrls } from "../shared/services";

const urls = serviceUrls();
const ROOT = path.resolve(__dirname, "../..");
const WEB_MANIFEST = path.join(ROOT, "apps/demo-web/shoal.yaml");

function expectOk(result: CliResult): string {
  expect(result.status, `exit ${result.status}\n${result.stdout}\n${result.stderr}`).to.equal(0);
  return result.stdout;
}

/** The one line a user reads on a refusal: exit 1, "Error: " and the sentence, no stack. */
function errorLine(result: CliResult): string {
  expect(result.status, `expected exit 1\n${result.stdout}\n${result.stderr}`).to.equal(1);
  expect(result.stderr).to.match(/^Error: /);
  expect(result.stderr, "a stack trace").to.not.match(/^\s+at /m);
  return result.stderr.slice("Error: ".length).trim();
}

async function kuboCat(cid: string): Promise<Buffer> {
  const response = await fetch(`${urls.kuboUrl}/api/v0/cat?arg=${cid}`, { method: "POST" });
  expect(response.ok, `cat ${cid}: HTTP ${response.status}`).to.equal(true);
  return Buffer.from(await response.arrayBuffer());
}

type Row = {
  event: string;
  block: number;
  placementId: number;
  deploymentId: number;
  deviceId: number;
  state: string;
  reason: string;
};

describe("task options and placement:history across a roll, as a user runs them", function () {
  this.timeout(300_000);

  let dir: string;
  let provider: JsonRpcProvider;
  let wallets: Signer[];
  let token: ShoalToken;
  let apps: AppRegistry;
  let devices: DeviceRegistry;
  let placements: PlacementRegistry;
  const cli = (...args: string[]) =>
    runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: dir, SHOAL_KUBO_URL: urls.kuboUrl });

  /** What a refused command must leave as it was: every deployment, device and the signers' nonces. */
  async function chainState() {
    const deployments = [];
    for (let id = 1; id <= Number(await apps.deploymentCount()); id++) {
      const d = await apps.deploymentSummary(id);
      deployments.push([d.version, d.replicas, d.active, d.generation].map(String));
    }
    return {
      deployments,
      devices: String(await devices.deviceCount()),
      apps: String(await apps.appCount()),
      nonces: await Promise.all(wallets.map(async (w) => provider.getTransactionCount(await w.getAddress()))),
    };
  }

  async function enrollAs(account: number, ...extra: string[]): Promise<number> {
    return Number(enrolledId(expectOk(await cli(...enrollArgs(account, { labels: "region=eu", extra })))));
  }

  async function claim(as: Signer, deploymentId: number, deviceId: number): Promise<number> {
    const receipt = await (await placements.connect(as).claim(deploymentId, deviceId)).wait();
    const claimed = receipt!.logs
      .map((log) => placements.interface.parseLog(log))
      .find((e) => e?.name === "PlacementClaimed");
    return Number(claimed!.args.placementId);
  }

  async function history(...args: string[]): Promise<Row[]> {
    return JSON.parse(expectOk(await cli("placement:history", ...args, "--json"))) as Row[];
  }

  before(async function () {
    await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls)]);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-task-options-"));
    const record = await deployInto(dir);
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
    wallets = Array.from({ length: 10 }, (_, i) => devWallet(i).connect(provider));
    ({ token, apps, devices, placements } = registriesOf(record, wallets[0]));
  });

  after(async function () {
    provider?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe("app:publish with a docker-save tar image", function () {
    it("adds exactly the tar's bytes as the image and publishes the version", async function () {
      const docker = new Docker({ socketPath: urls.dockerSocket });
      const chunks: Buffer[] = [];
      for await (const chunk of await docker.getImage("shoal/demo-web:1.0.0").get())
        chunks.push(chunk as Buffer);
      const tar = Buffer.concat(chunks);
      await writeFile(path.join(dir, "web.tar"), tar);
      const yaml = (await readFile(WEB_MANIFEST, "utf8"))
        .replace("name: demo-web", "name: tar-web")
        .replace(/ref: shoal\/demo-web:1\.0\.0.*/, "tar: ./web.tar");
      await writeFile(path.join(dir, "tar-web.yaml"), yaml);

      const out = expectOk(await cli("app:publish", "--manifest", path.join(dir, "tar-web.yaml")));
      expect(out).to.match(/published tar-web 1\.0\.0 as app 1 version 1/);
      const version = await apps.version(1, 1);
      expect([...version.platforms]).to.deep.equal(["linux/amd64"]);
      expect(Buffer.compare(await kuboCat(version.imageCids[0]), tar)).to.equal(0);
    });

    it("refuses a tar path that is a directory, naming the field, and changes nothing", async function () {
      const yaml = (await readFile(path.join(dir, "tar-web.yaml"), "utf8")).replace(
        'version: "1.0.0"',
        'version: "1.0.1"',
      );
      await writeFile(path.join(dir, "tar-dir.yaml"), yaml.replace("tar: ./web.tar", "tar: ./sub.tar"));
      await mkdtemp(path.join(dir, "sub.tar"));
      const before = await chainState();
      const message = errorLine(await cli("app:publish", "--manifest", path.join(dir, "tar-dir.yaml")));
      expect(message).to.match(/images\.linux\/amd64\.tar: "\.\/sub\.tar" is not a file \(resolved to /);
      expect(await chainState()).to.deep.equal(before);
      expect((await apps.app(1)).versionCount).to.equal(1n);
    });
  });

  describe("app:publish --account", function () {
    it("registers a new app to the signer it names", async function () {
      const yaml = (await readFile(path.join(dir, "tar-web.yaml"), "utf8")).replace(
        "name: tar-web",
        "name: own-web",
      );
      await writeFile(path.join(dir, "own-web.yaml"), yaml);
      expect(
        expectOk(await cli("app:publish", "--manifest", path.join(dir, "own-web.yaml"), "--account", "3")),
      ).to.match(/published own-web 1\.0\.0 as app 2 version 1/);
      expect(await apps.appOwner(2)).to.equal(await wallets[3].getAddress());
    });

    it("refuses a new version from an account that does not own the app, changing nothing", async function () {
      const yaml = (await readFile(path.join(dir, "own-web.yaml"), "utf8")).replace(
        'version: "1.0.0"',
        'version: "1.0.1"',
      );
      await writeFile(path.join(dir, "own-web-1.0.1.yaml"), yaml);
      const before = await chainState();
      expect(
        errorLine(
          await cli("app:publish", "--manifest", path.join(dir, "own-web-1.0.1.yaml"), "--account", "4"),
        ),
      ).to.equal(
        `app "own-web" (id 2) belongs to ${await wallets[3].getAddress()}, not to ${await wallets[4].getAddress()}; only its owner publishes versions`,
      );
      expect(await chainState()).to.deep.equal(before);
      expect((await apps.app(2)).versionCount).to.equal(1n);
    });
  });

  describe("device:enroll --platform and --operator", function () {
    it("enrolls an arm64 device whose worker signs with another key, which may then heartbeat", async function () {
      const operator = await wallets[9].getAddress();
      const deviceId = await enrollAs(8, "--platform", "linux/arm64", "--operator", operator);
      const device = await devices.device(deviceId);
      expect([device.platform, device.operator, device.owner]).to.deep.equal([
        "linux/arm64",
        operator,
        await wallets[8].getAddress(),
      ]);
      // The operator key is the device's signer: its heartbeat is accepted.
      expectOk(await cli("device:heartbeat", "--account", "9", "--device", String(deviceId)));
    });

    it("refuses an operator that is not an address, before approving anything", async function () {
      const before = await chainState();
      const allowance = await token.allowance(await wallets[7].getAddress(), await devices.getAddress());
      const enroll = (operator: string) => cli(...enrollArgs(7, { extra: ["--operator", operator] }));
      expect(errorLine(await enroll("0x1234"))).to.equal(
        '--operator "0x1234": give the address of the key the worker signs with',
      );
      expect(errorLine(await enroll("0x0000000000000000000000000000000000000000"))).to.equal(
        '--operator "0x0000000000000000000000000000000000000000": give the address of the key the worker signs with',
      );
      expect(await chainState()).to.deep.equal(before);
      expect(await token.allowance(await wallets[7].getAddress(), await devices.getAddress())).to.equal(
        allowance,
      );
    });
  });

  describe("app:roll --app, app:stop --app and placement:history across the roll", function () {
    let devA: number;
    let devB: number;
    let deployment: number;
    let rollBlock: number;
    const [A, B] = [5, 6];

    it("rolls by app name; history shows each generation and each superseded release once", async function () {
      expectOk(await cli("app:publish", "--manifest", WEB_MANIFEST));
      devA = await enrollAs(A);
      devB = await enrollAs(B);
      expectOk(await cli("app:deploy", "--app", "demo-web", "--replicas", "2", "--labels", "region=eu"));
      deployment = Number(await apps.deploymentCount());
      const p1 = await claim(wallets[A], deployment, devA);
      const p2 = await claim(wallets[B], deployment, devB);
      await (await placements.connect(wallets[A]).confirm(p1)).wait();
      await (await placements.connect(wallets[B]).confirm(p2)).wait();

      const v2 = (await readFile(WEB_MANIFEST, "utf8")).replace('version: "1.0.0"', 'version: "1.1.0"');
      await writeFile(path.join(dir, "web-v2.yaml"), v2);
      expectOk(await cli("app:publish", "--manifest", path.join(dir, "web-v2.yaml")));
      const demoWeb = Number(await apps.appIdOf("demo-web"));
      expect(expectOk(await cli("app:roll", "--app", "demo-web"))).to.include(
        `deployment ${deployment}: version 1 -> 2`,
      );
      rollBlock = await provider.getBlockNumber();
      expect((await apps.deploymentSummary(deployment)).version).to.equal(2n);

      // Before the devices act, the chain derives Superseded for both old placements.
      const during = await history("--deployment", String(deployment));
      expect(
        during.filter((r) => r.event === "(derived)").map((r) => [r.placementId, r.state]),
      ).to.deep.equal([
        [p1, "Superseded"],
        [p2, "Superseded"],
      ]);

      // Device A's claim of the new version replaces its old placement in one transaction;
      // device B releases its old one first, then claims.
      const p3 = await claim(wallets[A], deployment, devA);
      await (await placements.connect(wallets[B]).release(p2)).wait();
      const p4 = await claim(wallets[B], deployment, devB);
      await (await placements.connect(wallets[A]).confirm(p3)).wait();
      await (await placements.connect(wallets[B]).confirm(p4)).wait();

      const rows = await history("--deployment", String(deployment));
      const v = (n: number) => `app ${demoWeb} v${n}, 50m/16MiB reserved`;
      expect(
        rows.map((r) => [r.event, r.placementId, r.deviceId, r.state, r.reason.split(" by ")[0]]),
      ).to.deep.equal([
        ["PlacementClaimed", p1, devA, "Claimed", v(1)],
        ["PlacementClaimed", p2, devB, "Claimed", v(1)],
        ["PlacementConfirmed", p1, devA, "Running", ""],
        ["PlacementConfirmed", p2, devB, "Running", ""],
        ["PlacementReleased", p1, devA, "Released", "Superseded"],
        ["PlacementClaimed", p3, devA, "Claimed", v(2)],
        ["PlacementReleased", p2, devB, "Released", "Superseded"],
        ["PlacementClaimed", p4, devB, "Claimed", v(2)],
        ["PlacementConfirmed", p3, devA, "Running", ""],
        ["PlacementConfirmed", p4, devB, "Running", ""],
      ]);
      // The last row of each placement is what the chain's view says now: no "(derived)" row repeats it.
      for (const p of [p1, p2, p3, p4]) {
        const last = rows.filter((r) => r.placementId === p).at(-1)!;
        expect(last.state, `placement ${p}`).to.equal(
          PLACEMENT_STATES[Number(await placements.placementState(p))],
        );
      }
    });

    it("--app narrows the history to the app's deployments; a bad --app or two filters are refused", async function () {
      expect(await history("--app", "demo-web")).to.deep.equal(
        await history("--deployment", String(deployment)),
      );
      expect(await history("--app", "tar-web")).to.deep.equal([]);
      expect(errorLine(await cli("placement:history", "--app", "nope"))).to.equal(
        '--app: no app named "nope" is registered',
      );
      expect(
        errorLine(await cli("placement:history", "--app", "demo-web", "--device", String(devA))),
      ).to.equal("give at most one of --app, --deployment, --device, --placement (got --app, --device)");
    });

    it("--from-block reads from that block on", async function () {
      const rows = await history("--deployment", String(deployment), "--from-block", String(rollBlock + 1));
      expect(rows.length).to.equal(6);
      expect(rows.every((r) => r.block > rollBlock)).to.equal(true);
      expect(rows[0]).to.include({ event: "PlacementReleased", deviceId: devA });
    });

    it("refuses a --from-block outside the chain, naming the value and the range", async function () {
      const head = await provider.getBlockNumber();
      expect(errorLine(await cli("placement:history", "--from-block", String(head + 1000)))).to.match(
        new RegExp(`^--from-block ${head + 1000}: give a block from 0 to the chain's head, \\d+$`),
      );
      // A negative block Hardhat's own parser refuses (HH301) before the task runs.
    });

    it("refuses --app when it does not pick exactly one active deployment, changing nothing", async function () {
      const before = await chainState();
      expect(errorLine(await cli("app:roll", "--app", "nope"))).to.equal(
        '--app: no app named "nope" is registered; publish it first with app:publish',
      );
      // A second active deployment of the app makes --app ambiguous.
      expectOk(await cli("app:deploy", "--app", "demo-web", "--replicas", "1", "--labels", "region=eu"));
      const second = Number(await apps.deploymentCount());
      const withSecond = await chainState();
      for (const command of ["app:roll", "app:stop"]) {
        expect(errorLine(await cli(command, "--app", "demo-web"))).to.equal(
          `--app demo-web: the app has 2 active deployments (${deployment}, ${second}); pick one with --deployment`,
        );
      }
      expect(await chainState()).to.deep.equal(withSecond);
      expect(withSecond.deployments.slice(0, before.deployments.length)).to.deep.equal(before.deployments);
      expectOk(await cli("app:stop", "--deployment", String(second)));
    });

    it("stops by app name, and then refuses to stop it again", async function () {
      expect(expectOk(await cli("app:stop", "--app", "demo-web"))).to.include(
        `deployment ${deployment}: stopped`,
      );
      expect((await apps.deploymentSummary(deployment)).active).to.equal(false);
      const before = await chainState();
      expect(errorLine(await cli("app:stop", "--app", "demo-web"))).to.equal(
        "--app demo-web: the app has no active deployment; create one with app:deploy",
      );
      expect(await chainState()).to.deep.equal(before);
    });
  });
});
