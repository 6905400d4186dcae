// Peer-to-peer delivery with real services: a Hardhat node, Docker, and three Kubo nodes of one
// private swarm on 127.0.0.1 (a publisher and one per device, started here). Two worker processes
// find their peers on chain: the publisher from `app:publish`'s VersionProviderAnnounced, each
// other from DeviceEnrolled. Device B's cold placement is fetched over bitswap from the publisher
// (Kubo's own ledger says so); then the publisher stops and device C gets the version from B,
// which runs it and keeps it pinned.
//
// The devices share the machine's Docker Engine (distinct device names); a per-run image with
// random content keeps the CID this test's own, and C's cold cache is B's image minus the
// `shoal-cid:<cid>` tag, which is what a separate engine would have.
import { expect } from "chai";
import Docker from "dockerode";
import { JsonRpcProvider } from "ethers";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { PLACEMENT_STATES } from "../../../workers/src";
import {
  AppRegistry__factory,
  PlacementRegistry__factory,
  type PlacementRegistry,
} from "../../../typechain-types";
import { runHardhat, devWallet } from "../../../scripts/lib/local-chain";
import { KuboNode, makeSwarmKey } from "../../shared/kubo-nodes";
import { deployInto, deviceKeyOf, enrollArgs, enrolledId, ok, type DeploymentRecord } from "../../shared/cli";
import { freePort, PrivateBroker, testWorker, waitFor, WorkerProcess } from "../../shared/processes";
import { requireChain, requireDocker, serviceUrls } from "../../shared/services";

const urls = serviceUrls();
const ROOT = path.resolve(__dirname, "../../..");
const run = promisify(execFile);
const RUN = `${process.pid}-${Date.now().toString(36)}`;
const APP = `p2p-${RUN}`;
const IMAGE = `shoal-p2p-test/web:${RUN}`;
const OPERATORS = { b: 8, c: 9 }; // hardhat account indexes of the two device owners

describe("peer-to-peer delivery over a private IPFS swarm", function () {
  this.timeout(300_000);

  const docker = new Docker({ socketPath: urls.dockerSocket });
  let dir: string;
  let broker: PrivateBroker;
  let provider: JsonRpcProvider;
  let placements: PlacementRegistry;
  let record: DeploymentRecord;
  const kubo: Record<"publisher" | "b" | "c", KuboNode> = {} as never;
  const workers: Record<string, WorkerProcess> = {};
  const deviceIds: Record<string, string> = {};
  let imageCid: string;
  let imageBytes: number;
  const cli = (env: Record<string, string>, ...args: string[]) =>
    runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: dir, ...env });

  const deviceKey = (name: string) => deviceKeyOf(record, deviceIds[name]);

  async function runningPlacement(name: string, deploymentId: number): Promise<string> {
    const id = await waitFor(
      `device ${name} claims deployment ${deploymentId}`,
      async () => {
        const p = await placements.activePlacementOf(deploymentId, BigInt(deviceIds[name]));
        return p === 0n ? undefined : p;
      },
      60_000,
    );
    await waitFor(
      `device ${name}'s placement Running on chain`,
      async () => PLACEMENT_STATES[Number(await placements.placementState(id))] === "Running",
      120_000,
    );
    return id.toString();
  }

  function startWorker(name: "b" | "c") {
    workers[name] = testWorker({
      dir,
      rpcUrl: urls.rpcUrl,
      mqttUrl: broker.url,
      kuboUrl: kubo[name].url,
      operatorKey: devWallet(OPERATORS[name]).privateKey,
      deviceId: deviceIds[name],
      dataDir: path.join(dir, `worker-${name}`),
      env: { SHOAL_RESOURCES_ENABLED: "false" },
    });
    workers[name].start();
  }

  before(async function () {
    await Promise.all([requireChain(urls), requireDocker(urls)]);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-p2p-"));
    const key = path.join(dir, "swarm.key");
    await makeSwarmKey(key);
    for (const name of ["publisher", "b", "c"] as const) {
      kubo[name] = new KuboNode(path.join(dir, `ipfs-${name}`), key);
      await kubo[name].start();
    }
    broker = new PrivateBroker(await freePort(), dir);
    await broker.start();

    // A per-run image: demo-web plus 1 MiB of random bytes, so no other run shares its CID.
    const container = await docker.createContainer({ Image: "shoal/demo-web:1.0.0" });
    try {
      await writeFile(path.join(dir, "noise"), randomBytes(1024 * 1024));
      await run("docker", ["cp", path.join(dir, "noise"), `${container.id}:/noise`]);
      await container.commit({ repo: IMAGE.split(":")[0], tag: RUN });
    } finally {
      await container.remove({ force: true });
    }
    const manifest = (await readFile(path.join(ROOT, "apps/demo-web/shoal.yaml"), "utf8"))
      .replace(/^name: demo-web$/m, `name: ${APP}`)
      .replace(/ref: shoal\/demo-web:1\.0\.0/, `ref: ${IMAGE}`);
    await writeFile(path.join(dir, "shoal.yaml"), manifest);

    record = await deployInto(dir);
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
    placements = PlacementRegistry__factory.connect(record.contracts.PlacementRegistry.address, provider);

    const published = ok(
      await cli(
        { SHOAL_KUBO_URL: kubo.publisher.url },
        "app:publish",
        "--manifest",
        path.join(dir, "shoal.yaml"),
      ),
    );
    expect(published).to.include(`provider: ${kubo.publisher.multiaddr}`);
    const apps = AppRegistry__factory.connect(record.contracts.AppRegistry.address, provider);
    const appId = await apps.appIdOf(APP);
    imageCid = (await apps.version(appId, 1)).imageCids[0];
    // The tar's bytes (the DAG's blocks are a little more).
    imageBytes = (await kubo.publisher.rpc<{ Size: number }>("files/stat", `/ipfs/${imageCid}`)).Size;
    expect(imageBytes).to.be.above(1024 * 1024);

    for (const name of ["b", "c"] as const) {
      // No --endpoint: device:enroll reads it from the device's Kubo node.
      const out = ok(
        await cli(
          { SHOAL_KUBO_URL: kubo[name].url },
          ...enrollArgs(OPERATORS[name], { labels: `p2p=${name}`, endpoint: false }),
        ),
      );
      expect(out).to.include(`endpoint: ${kubo[name].multiaddr}`);
      deviceIds[name] = enrolledId(out);
    }
    startWorker("b");
    startWorker("c");
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed")
      for (const [name, w] of Object.entries(workers)) console.log(`--- worker ${name} ---\n${w.tail(40)}`);
  });

  after(async function () {
    await Promise.all(Object.values(workers).map((w) => w.stop()));
    await broker?.stop();
    provider?.destroy();
    for (const name of ["b", "c"]) {
      if (!record || !deviceIds[name]) continue;
      const leftovers = await docker.listContainers({
        all: true,
        filters: { label: [`io.shoal.device=${deviceKey(name)}`] },
      });
      await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    }
    for (const ref of [IMAGE, imageCid && `shoal-cid:${imageCid}`])
      if (ref)
        await docker
          .getImage(ref)
          .remove({ force: true })
          .catch(() => undefined);
    await Promise.all(Object.values(kubo).map((k) => k?.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  it("fetches a cold placement on device B over bitswap from the publisher node, verified and pinned", async function () {
    expect(await kubo.b.isPinned(imageCid), "B has the image before the deploy").to.equal(false);
    const before = await kubo.b.receivedFrom(kubo.publisher.peerId);
    ok(await cli({}, "app:deploy", "--app", APP, "--replicas", "1", "--labels", "p2p=b"));
    await runningPlacement("b", 1);

    // Kubo's own accounting: the image's bytes came from the publisher's node over bitswap.
    const fromPublisher = (await kubo.b.receivedFrom(kubo.publisher.peerId)) - before;
    expect(fromPublisher, "bytes B received from the publisher (bitswap ledger)").to.be.at.least(imageBytes);
    expect((await kubo.b.bitswapStat()).DataReceived).to.be.at.least(fromPublisher);
    // Verified: every block matched its hash (Kubo), the tar loaded as the chain's image (delivery),
    // and B pinned it, which delivery does only after both.
    expect(await kubo.b.isPinned(imageCid), "B keeps the image pinned").to.equal(true);
    expect(workers.b.log).to.match(new RegExp(`"imageCid":"${imageCid}".*"msg":"image delivered"`));
    const image = await docker.getImage(`shoal-cid:${imageCid}`).inspect();
    expect(image.Id).to.equal((await docker.getImage(IMAGE).inspect()).Id);
  });

  it("with the publisher node stopped, device C gets the version from device B, which runs it", async function () {
    await kubo.publisher.stop();
    // C's engine has never seen the image: on the shared engine, that is B's image without the tag.
    // B's worker stops first, or its next reconcile pass would tag the image again from its own
    // node; B's container and B's Kubo node (which holds the pin) keep running.
    await workers.b.stop();
    await docker.getImage(`shoal-cid:${imageCid}`).remove({ noprune: true });
    const before = await kubo.c.receivedFrom(kubo.b.peerId);
    ok(await cli({}, "app:deploy", "--app", APP, "--replicas", "1", "--labels", "p2p=c"));
    await runningPlacement("c", 2);

    const fromB = (await kubo.c.receivedFrom(kubo.b.peerId)) - before;
    expect(fromB, "bytes C received from B (bitswap ledger)").to.be.at.least(imageBytes);
    expect(await kubo.c.isPinned(imageCid), "C keeps the image pinned, to serve the next device").to.equal(
      true,
    );
    expect(workers.c.log).to.match(new RegExp(`"imageCid":"${imageCid}".*"msg":"image delivered"`));
  });
});
