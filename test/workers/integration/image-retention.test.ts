// Image retention against the real Docker Engine and Kubo node (issue 14): three versions of this
// run's own, delivered by the worker's delivery code, then swept with keepRecent 0. The released
// version is gone from Kubo's pins and from the engine (image and tag); the live one and the one a
// container was created from stay, pinned and tagged. The policy itself: test/workers/unit/image-retention.test.ts.
import { expect } from "chai";
import Docker from "dockerode";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  canonicalManifestBytes,
  createDelivery,
  createDockerRuntime,
  createImageRetention,
  createKuboContentStore,
  imageRefForCid,
  parseManifest,
} from "../../../workers/src";
import { requireDocker, requireKubo, serviceUrls } from "../../shared/services";

const run = promisify(execFile);
const ROOT = join(__dirname, "..", "..", "..");
const PLATFORM = "linux/amd64";
const TEST_LABEL = "dev.shoal.test";
const RUN_ID = `retention-${process.pid}-${Date.now()}`;

describe("image retention (Docker Engine and Kubo)", function () {
  this.timeout(120_000);
  const urls = serviceUrls();
  const docker = new Docker({ socketPath: urls.dockerSocket });
  const contentStore = createKuboContentStore({ url: urls.kuboUrl });
  const runtime = createDockerRuntime({ docker, socketPath: urls.dockerSocket });
  let dir: string;
  const cids: string[] = [];
  const manifests: string[] = [];
  const containers: string[] = [];

  before(async function () {
    await requireDocker(urls);
    await requireKubo(urls);
    dir = await mkdtemp(join(tmpdir(), "shoal-retention-"));
    const yaml = await readFile(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8");
    for (const version of ["v1", "v2", "v3"]) {
      // One image per version, nobody else's: a one-file layer naming this run, saved by id (no
      // tag in the tar) and removed again, so delivery loads it and its CID tag is its only name.
      const layer = join(dir, `${version}.tar`);
      await writeFile(join(dir, "id"), `${RUN_ID} ${version}\n`);
      await run("tar", ["-C", dir, "-cf", layer, "id"]);
      const { stdout } = await run("docker", [
        "import",
        "--change",
        `LABEL ${TEST_LABEL}=${RUN_ID}`,
        "--change",
        "USER 10001:10001",
        layer,
      ]);
      const id = stdout.trim();
      const image = join(dir, `${version}-image.tar`);
      await run("docker", ["save", "-o", image, id]);
      await run("docker", ["rmi", id]);
      const { cid } = await contentStore.add(await readFile(image));
      cids.push(cid);
      manifests.push(
        (await contentStore.add(canonicalManifestBytes(parseManifest(yaml), { [PLATFORM]: cid }))).cid,
      );
    }
    // add() pins: as published. Unpin, so that only delivery's pin is left to judge.
    for (const cid of cids) await contentStore.unpin(cid);
  });

  after(async function () {
    for (const id of containers)
      await docker
        .getContainer(id)
        .remove({ force: true })
        .catch(() => undefined);
    for (const cid of cids) {
      await runtime.untagImage(imageRefForCid(cid)).catch(() => undefined);
      await contentStore.unpin(cid).catch(() => undefined);
    }
    for (const cid of manifests) await contentStore.unpin(cid).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("unpins and removes the version no placement needs; keeps the live one and the one a container uses", async function () {
    const delivery = createDelivery({ contentStore, runtime, platform: PLATFORM });
    const imageIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const result = await delivery.ensureImage({ manifestCid: manifests[i], imageCid: cids[i] });
      expect(result.fetched).to.equal(true);
      imageIds.push(result.imageId);
      expect(await contentStore.isPinned(cids[i])).to.equal(true);
    }
    const [v1, v2, v3] = cids;
    // v1's container exists (created, never started): it holds its image.
    const container = await docker.createContainer({
      Image: imageRefForCid(v1),
      Cmd: ["/id"],
      Labels: { [TEST_LABEL]: RUN_ID },
    });
    containers.push(container.id);

    const retention = createImageRetention({
      runtime,
      contentStore,
      keepRecent: 0,
      minAgeMs: 0,
      intervalMs: 60_000,
      dataDir: dir,
    });
    // All three ran here; now only v3 is live.
    await retention.sweep({ live: new Set([v1, v2, v3]) });
    const result = await retention.sweep({ live: new Set([v3]) });
    expect(result.release).to.deep.equal([v2]);
    expect(result.failed).to.deep.equal([]);

    expect(await contentStore.isPinned(v2), "v2 unpinned in Kubo").to.equal(false);
    expect(await runtime.imageExists(imageRefForCid(v2)), "v2's tag gone").to.equal(false);
    expect(await runtime.imageExists(imageIds[1]), "v2's image gone from the engine").to.equal(false);
    for (const [i, cid] of [
      [0, v1],
      [2, v3],
    ] as const) {
      expect(await contentStore.isPinned(cid), `${cid} pinned`).to.equal(true);
      expect((await runtime.inspectImage(imageRefForCid(cid)))?.id).to.equal(imageIds[i]);
    }

    // The container gone, v1 is released at the next sweep (forced: the live set is the same).
    await container.remove({ force: true });
    const next = await retention.sweep({ live: new Set([v3]), force: true });
    expect(next.release).to.deep.equal([v1]);
    expect(await contentStore.isPinned(v1)).to.equal(false);
    expect(await runtime.imageExists(imageIds[0])).to.equal(false);
  });
});
