// Image retention: the policy (pure, table-driven) and the sweep over the in-memory runtime and
// content store (what it unpins and untags, in which order, how often it runs). Against Docker and
// Kubo: test/workers/integration/image-retention.test.ts.
import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  containerSpec,
  createImageRetention,
  createMemoryContentStore,
  createMemoryRuntime,
  hollowImageTar,
  imageRefForCid,
  retainImages,
  type DeliveredImage,
} from "../../../workers/src";
import { demoWebManifest } from "../../shared/runtime-conformance";

const MIN = 60_000;
const NOW = 1_000 * MIN;
const img = (cid: string, lastUsedMinAgo: number, extra: Partial<DeliveredImage> = {}): DeliveredImage => ({
  cid,
  lastUsedAt: NOW - lastUsedMinAgo * MIN,
  deliveredAt: NOW - 100 * MIN,
  inUse: false,
  ...extra,
});

describe("image retention policy (retainImages)", () => {
  const cases: {
    name: string;
    images: DeliveredImage[];
    live?: string[];
    keepRecent: number;
    keep: Record<string, string>;
    release: string[];
  }[] = [
    {
      name: "keeps the live versions and the N most recently used others, releases the rest oldest first",
      images: [img("a", 50), img("b", 10), img("c", 30), img("d", 20), img("e", 40)],
      live: ["a"],
      keepRecent: 2,
      keep: { a: "live", b: "recent", d: "recent" },
      release: ["e", "c"],
    },
    {
      name: "never releases an image a container uses, and it takes no recent slot",
      images: [img("a", 50, { inUse: true }), img("b", 10), img("c", 30)],
      keepRecent: 1,
      keep: { a: "in-use", b: "recent" },
      release: ["c"],
    },
    {
      name: "keeps an image delivered less than minAgeMs ago (its container may not exist yet)",
      images: [img("a", 50, { deliveredAt: NOW - 5 * MIN }), img("b", 10)],
      keepRecent: 0,
      keep: { a: "young" },
      release: ["b"],
    },
    {
      name: "keepRecent 0 keeps only live, in-use and young images",
      images: [img("a", 1), img("b", 2)],
      live: ["b"],
      keepRecent: 0,
      keep: { b: "live" },
      release: ["a"],
    },
    {
      name: "fewer images than keepRecent: nothing is released",
      images: [img("a", 1), img("b", 2)],
      keepRecent: 3,
      keep: { a: "recent", b: "recent" },
      release: [],
    },
    {
      name: "ties in last use are broken by CID, whatever the input order",
      images: [img("z", 5), img("m", 5), img("a", 5)],
      keepRecent: 1,
      keep: { a: "recent" },
      release: ["z", "m"],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const decision = retainImages({
        images: c.images,
        live: new Set(c.live ?? []),
        keepRecent: c.keepRecent,
        minAgeMs: 10 * MIN,
        now: NOW,
      });
      expect(Object.fromEntries(decision.keep.map((k) => [k.cid, k.reason]))).to.deep.equal(c.keep);
      expect(decision.release).to.deep.equal(c.release);
    });
  }
});

describe("image retention sweep (in-memory runtime and content store)", () => {
  async function* bytes(buffer: Buffer) {
    yield new Uint8Array(buffer);
  }

  /** Three delivered images, the way delivery leaves them: pinned, then tagged shoal-cid:<cid>. */
  async function setup(now: { t: number }, dataDir?: string) {
    const runtime = createMemoryRuntime();
    const contentStore = createMemoryContentStore();
    const cids: string[] = [];
    for (const label of ["v1", "v2", "v3"]) {
      const tar = hollowImageTar({ label });
      const { cid } = await contentStore.add(new Uint8Array(tar));
      const [loaded] = await runtime.loadImage(bytes(tar));
      await contentStore.pin(cid);
      await runtime.tagImage(loaded.id, imageRefForCid(cid));
      cids.push(cid);
    }
    // The runtime stamps tags with the real clock: start the test's clock after the last one.
    now.t = Date.now() + 1000;
    const retention = createImageRetention({
      runtime,
      contentStore,
      keepRecent: 1,
      minAgeMs: 0,
      intervalMs: 10 * MIN,
      dataDir,
      now: () => now.t,
    });
    return { runtime, contentStore, cids, retention };
  }

  it("unpins and untags what the policy releases, keeps live, in-use and recent images", async () => {
    const now = { t: Date.now() };
    const { runtime, contentStore, cids, retention } = await setup(now);
    const [v1, v2, v3] = cids;
    // All three ran; then v1 ended, then v2: v3 alone is live now.
    await retention.sweep({ live: new Set([v1, v2, v3]) });
    now.t += MIN;
    expect((await retention.sweep({ live: new Set([v2, v3]) })).release).to.deep.equal([]);
    now.t += MIN;
    const result = await retention.sweep({ live: new Set([v3]) });
    expect(result.ran).to.equal(true);
    expect(result.release).to.deep.equal([v1]);
    expect(await contentStore.isPinned(v1)).to.equal(false);
    expect(await runtime.imageExists(imageRefForCid(v1))).to.equal(false);
    for (const cid of [v2, v3]) {
      expect(await contentStore.isPinned(cid), cid).to.equal(true);
      expect(await runtime.imageExists(imageRefForCid(cid)), cid).to.equal(true);
    }
  });

  it("keeps an image a container was made from even when it is neither live nor recent", async () => {
    const now = { t: Date.now() };
    const { runtime, contentStore, cids, retention } = await setup(now);
    const [v1, v2, v3] = cids;
    await retention.sweep({ live: new Set([v1, v2, v3]) });
    now.t += MIN;
    const { container } = await runtime.ensureRunning(
      containerSpec(
        { deviceId: "retention", placementId: "1", deploymentId: "1", appId: "1", version: "1" },
        demoWebManifest(v1),
        imageRefForCid(v1),
      ),
    );
    await retention.sweep({ live: new Set([v2, v3]) });
    now.t += MIN;
    const result = await retention.sweep({ live: new Set([v3]) });
    expect(result.keep.find((k) => k.cid === v1)?.reason).to.equal("in-use");
    expect(await contentStore.isPinned(v1)).to.equal(true);
    expect(result.release).to.deep.equal([]);
    await runtime.remove(container.id);
    // Its container gone, v1 is an ordinary image, and the most recently used one (it was in use
    // at the last sweep): v2 goes instead.
    now.t += 11 * MIN;
    const after = await retention.sweep({ live: new Set([v3]) });
    expect(after.release).to.deep.equal([v2]);
  });

  it("sweeps when the live set changes or intervalMs passed, not at every pass", async () => {
    const now = { t: Date.now() };
    const { cids, retention } = await setup(now);
    expect((await retention.sweep({ live: new Set([cids[0]]) })).ran).to.equal(true);
    now.t += MIN;
    expect((await retention.sweep({ live: new Set([cids[0]]) })).ran).to.equal(false);
    expect((await retention.sweep({ live: new Set([cids[1]]) })).ran).to.equal(true);
    now.t += 10 * MIN;
    expect((await retention.sweep({ live: new Set([cids[1]]) })).ran).to.equal(true);
  });

  it("never releases an image that was never live on this device (another device's, on a shared engine)", async () => {
    const now = { t: Date.now() };
    const { contentStore, cids, retention } = await setup(now);
    now.t += 60 * MIN;
    const result = await retention.sweep({ live: new Set([cids[2]]) });
    expect(result.release).to.deep.equal([]);
    for (const cid of cids) expect(await contentStore.isPinned(cid), cid).to.equal(true);
  });

  it("remembers across a restart which versions ran here and when", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "shoal-retention-"));
    try {
      const now = { t: Date.now() };
      const { runtime, contentStore, cids, retention } = await setup(now, dataDir);
      const [v1, v2, v3] = cids;
      await retention.sweep({ live: new Set([v1, v2, v3]) });
      now.t += MIN;
      await retention.sweep({ live: new Set([v2, v3]) });
      // A new worker process: same engine, content store and data dir.
      const restarted = createImageRetention({
        runtime,
        contentStore,
        keepRecent: 1,
        minAgeMs: 0,
        intervalMs: 10 * MIN,
        dataDir,
        now: () => now.t + MIN,
      });
      const result = await restarted.sweep({ live: new Set([v3]) });
      expect(result.release).to.deep.equal([v1]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
