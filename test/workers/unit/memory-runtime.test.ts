// The Runtime port's conformance suite against the in-memory runtime of hollow devices
// (workers/src/adapters/memory-runtime.ts), with its image loaded from a `docker save` tar the way
// delivery loads one; then what only this runtime promises (a tar's platform and user are read).
import { expect } from "chai";
import { createMemoryRuntime, hollowImageTar } from "../../../workers/src";
import { runtimeConformance } from "../../shared/runtime-conformance";

async function* bytes(buffer: Buffer) {
  yield new Uint8Array(buffer);
}

runtimeConformance("in-memory (hollow devices)", async () => {
  const runtime = createMemoryRuntime();
  const [loaded] = await runtime.loadImage(bytes(hollowImageTar({ repoTags: ["shoal/demo-web:1.0.0"] })));
  expect(loaded.tags).to.deep.equal(["shoal/demo-web:1.0.0"]);
  return {
    runtime,
    webImage: "shoal/demo-web:1.0.0",
    deviceId: "hollow-conformance",
    extraLabels: {},
    teardown: async () => undefined,
    servesPages: false,
  };
});

describe("in-memory runtime: images from docker save tars", function () {
  it("reads the platform and user of a tar and keeps one image per config", async function () {
    const runtime = createMemoryRuntime();
    const tar = hollowImageTar({ platform: "linux/arm64/v8", user: "1000:1000", label: "a" });
    const [first] = await runtime.loadImage(bytes(tar));
    const [again] = await runtime.loadImage(bytes(tar));
    expect(again.id).to.equal(first.id);
    expect(await runtime.inspectImage(first.id)).to.deep.include({
      os: "linux",
      architecture: "arm64",
      variant: "v8",
      user: "1000:1000",
      tags: [],
    });
    const [other] = await runtime.loadImage(bytes(hollowImageTar({ label: "b" })));
    expect(other.id).to.not.equal(first.id);
  });

  it("refuses a tar whose image config is missing, as a non-retryable error", async function () {
    const runtime = createMemoryRuntime();
    const tar = hollowImageTar();
    // Keep the manifest entry (the first 512-byte header and its one block), drop the config.
    const cut = Buffer.concat([tar.subarray(0, 1024), Buffer.alloc(1024)]);
    const error = await runtime.loadImage(bytes(cut)).then(
      () => undefined,
      (e: unknown) => e as { reason?: string; retryable?: boolean },
    );
    expect(error?.reason).to.equal("image-invalid");
    expect(error?.retryable).to.equal(false);
  });
});
