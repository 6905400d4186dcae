// The conformance suite of the Runtime port (workers/src/ports/runtime.ts): what every
// implementation must do, asserted only through the port and the served page. Run it from an
// integration test with `runtimeConformance(name, makeFixture)`; implementation-specific proofs
// (docker inspect of the hardening) live next to that call.
import { expect } from "chai";
import { readFileSync } from "fs";
import { join } from "path";
import { containerSpec, specHash } from "../../workers/src";
import type { ContainerSpec, ContainerSpecOptions } from "../../workers/src";
import { canonicalManifestBytes, parseManifest, validateCanonicalManifest } from "../../workers/src";
import type { PublishedManifest } from "../../workers/src";
import { ShoalError } from "../../workers/src";
import { waitFor } from "./processes";
import type { ActualContainer, Runtime } from "../../workers/src";

export interface RuntimeFixture {
  runtime: Runtime;
  /** A local reference of the demo-web image (shoal/demo-web:1.0.0 or a tag of it). */
  webImage: string;
  /** A device id no other test uses, so list() and sweep() see only this suite's containers. */
  deviceId: string;
  /** Labels that let teardown find every container of the run. */
  extraLabels: Record<string, string>;
  /** Removes whatever the suite left behind. */
  teardown(): Promise<void>;
  /**
   * False for a runtime that runs no process (the in-memory runtime of hollow devices): the suite
   * then checks the published port's address but fetches no page from it. Default true.
   */
  servesPages?: boolean;
}

const ROOT = join(__dirname, "..", "..");
/** Any valid CID: the conformance suite runs a local image, the manifest only supplies the spec. */
const FAKE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

export function demoWebManifest(imageCid = FAKE_CID): PublishedManifest {
  const yaml = readFileSync(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8");
  return validateCanonicalManifest(canonicalManifestBytes(parseManifest(yaml), { "linux/amd64": imageCid }));
}

/** Polls `probe` until it returns a value or `timeoutMs` passes (waitFor, probe first). */
export function eventually<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return waitFor(what, probe, timeoutMs, 100);
}

/** The demo-web page served by a container's published port, once it answers. */
export async function pageOf(container: ActualContainer, timeoutMs = 15_000): Promise<string> {
  const port = container.ports.find((p) => p.containerPort === 8080);
  expect(port, "port 8080 is published").to.not.equal(undefined);
  expect(port?.hostIp).to.equal("127.0.0.1");
  return eventually(
    async () => {
      // docker-proxy accepts before the app listens and then hangs: bound every attempt.
      const response = await fetch(`http://127.0.0.1:${port?.hostPort}/`, {
        signal: AbortSignal.timeout(1_000),
      });
      return response.status === 200 ? response.text() : undefined;
    },
    timeoutMs,
    "the demo-web page",
  );
}

export function runtimeConformance(name: string, makeFixture: () => Promise<RuntimeFixture>): void {
  describe(`Runtime conformance: ${name}`, function () {
    this.timeout(120_000);
    let fixture: RuntimeFixture;
    let runtime: Runtime;
    const manifest = demoWebManifest();

    function spec(placementId: string, options: ContainerSpecOptions = {}, m = manifest): ContainerSpec {
      return containerSpec(
        { deviceId: fixture.deviceId, placementId, deploymentId: "1", appId: "1", version: "1" },
        m,
        fixture.webImage,
        { extraLabels: fixture.extraLabels, stopTimeoutS: 5, ...options },
      );
    }

    before(async () => {
      fixture = await makeFixture();
      runtime = fixture.runtime;
    });

    after(async () => {
      if (fixture === undefined) return;
      await runtime.sweep({ deviceId: fixture.deviceId, keep: new Set(), timeoutS: 1 });
      await fixture.teardown();
    });

    it("starts a container from a ContainerSpec, lists it with its identity and limits, and serves the page", async () => {
      const s = spec("1");
      const { container, outcome } = await runtime.ensureRunning(s);
      expect(outcome).to.equal("created");
      expect(container.state).to.equal("running");
      expect(container.name).to.equal(`shoal-${fixture.deviceId}-1`);

      const listed = await runtime.list({ deviceId: fixture.deviceId });
      expect(listed).to.have.length(1);
      const [c] = listed;
      expect(c.id).to.equal(container.id);
      expect({
        deviceId: c.deviceId,
        placementId: c.placementId,
        deploymentId: c.deploymentId,
        appId: c.appId,
        version: c.version,
        specHash: c.specHash,
        state: c.state,
        oomKilled: c.oomKilled,
        exitCode: c.exitCode,
      }).to.deep.equal({
        deviceId: fixture.deviceId,
        placementId: "1",
        deploymentId: "1",
        appId: "1",
        version: "1",
        specHash: specHash(s),
        state: "running",
        oomKilled: false,
        exitCode: undefined,
      });
      expect(c.limits).to.deep.equal({
        cpuMillicores: 50,
        memoryMiB: 64,
        memoryReservationMiB: 16,
        pidsLimit: 128,
      });
      expect(c.startedAt).to.be.a("string");

      if (fixture.servesPages === false) {
        expect(c.ports.map((p) => [p.containerPort, p.hostIp])).to.deep.equal([[8080, "127.0.0.1"]]);
        return;
      }
      const page = await pageOf(c);
      expect(page).to.include("<h1>demo-web</h1>");
      expect(page).to.include('<strong id="version">1.0.0</strong>');
    });

    it("ensureRunning twice keeps the one container", async () => {
      const before = await runtime.list({ deviceId: fixture.deviceId });
      const again = await runtime.ensureRunning(spec("1"));
      expect(again.outcome).to.equal("kept");
      const after = await runtime.list({ deviceId: fixture.deviceId });
      expect(after.map((c) => c.id)).to.deep.equal(before.map((c) => c.id));
      expect(after[0].startedAt).to.equal(before[0].startedAt);
    });

    it("refuses to create a second container for a placement whose container has another spec", async () => {
      const other = spec("1", { pidsLimit: 64 });
      const error = await runtime.ensureRunning(other).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(ShoalError);
      expect((error as { reason?: string }).reason).to.equal("conflict");
      expect(await runtime.list({ deviceId: fixture.deviceId })).to.have.length(1);
    });

    it("updateResources changes the limits in place, without a restart", async () => {
      const [before] = await runtime.list({ deviceId: fixture.deviceId });
      await runtime.updateResources(before.id, {
        cpuMillicores: 250,
        memoryMiB: 48,
        memoryReservationMiB: 24,
        pidsLimit: 96,
      });
      const after = await runtime.inspect(before.id);
      expect(after?.limits).to.deep.equal({
        cpuMillicores: 250,
        memoryMiB: 48,
        memoryReservationMiB: 24,
        pidsLimit: 96,
      });
      expect(after?.state).to.equal("running");
      expect(after?.startedAt).to.equal(before.startedAt);
      // Labels (and so the spec hash) are untouched: plan() still sees the desired spec.
      expect(after?.specHash).to.equal(before.specHash);
      if (fixture.servesPages !== false) await pageOf(after as ActualContainer);
    });

    it("refuses a memory reservation above the limit, as a non-retryable error", async () => {
      const [c] = await runtime.list({ deviceId: fixture.deviceId });
      const error = await runtime
        .updateResources(c.id, { cpuMillicores: 100, memoryMiB: 16, memoryReservationMiB: 32 })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).to.be.instanceOf(ShoalError);
      expect((error as ShoalError).retryable).to.equal(false);
    });

    it("stop, start, stop again and remove are idempotent; an exited container reports its exit code", async () => {
      const [c] = await runtime.list({ deviceId: fixture.deviceId });
      await runtime.stop(c.id, { timeoutS: 5 });
      await runtime.stop(c.id, { timeoutS: 5 });
      const stopped = await runtime.inspect(c.id);
      expect(stopped?.state).to.equal("exited");
      expect(stopped?.exitCode).to.equal(0);
      expect(stopped?.finishedAt).to.be.a("string");

      const restarted = await runtime.ensureRunning(spec("1"));
      expect(restarted.outcome).to.equal("started");
      expect(restarted.container.id).to.equal(c.id);
      await runtime.start(c.id);

      await runtime.remove(c.id);
      await runtime.remove(c.id);
      expect(await runtime.inspect(c.id)).to.equal(undefined);
      await runtime.stop(c.id);
    });

    it("sweep removes the device's containers whose placement is not desired, and only those", async () => {
      await runtime.ensureRunning(spec("11"));
      await runtime.ensureRunning(spec("12"));
      await runtime.ensureRunning(spec("13"));
      const removed = await runtime.sweep({ deviceId: fixture.deviceId, keep: new Set(["12"]), timeoutS: 1 });
      expect(removed).to.have.length(2);
      const left = await runtime.list({ deviceId: fixture.deviceId });
      expect(left.map((c) => c.placementId)).to.deep.equal(["12"]);
      expect(await runtime.list({ deviceId: `${fixture.deviceId}-other` })).to.deep.equal([]);
    });

    it("inspects, tags and untags images; a missing image is undefined, not an error", async () => {
      const info = await runtime.inspectImage(fixture.webImage);
      expect(info?.id).to.match(/^sha256:[0-9a-f]{64}$/);
      expect(info?.os).to.equal("linux");
      expect(info?.user).to.equal("10001:10001");
      const alias = `shoal-conformance:${fixture.deviceId}`;
      await runtime.tagImage(fixture.webImage, alias);
      expect(await runtime.imageExists(alias)).to.equal(true);
      expect((await runtime.inspectImage(alias))?.id).to.equal(info?.id);
      await runtime.untagImage(alias);
      await runtime.untagImage(alias);
      expect(await runtime.imageExists(alias)).to.equal(false);
      expect(await runtime.inspectImage(fixture.webImage)).to.deep.equal(info);
    });

    it("lists a repository's tags with when they were set, and counts the containers made from an image", async () => {
      const repository = "shoal-conformance";
      const alias = `${repository}:${fixture.deviceId}-uses`;
      const before = Date.now();
      await runtime.tagImage(fixture.webImage, alias);
      try {
        const listed = (await runtime.listImageTags(repository)).find((t) => t.tag === alias);
        expect(listed?.imageId).to.equal((await runtime.inspectImage(fixture.webImage))?.id);
        // Docker's clock and ours: allow a second either way.
        expect(Date.parse(listed?.taggedAt ?? "")).to.be.within(before - 1000, Date.now() + 1000);
        expect((await runtime.listImageTags("shoal-conformance-none")).length).to.equal(0);
        expect(await runtime.containersUsingImage("shoal-cid:bafkreinotloaded")).to.equal(0);
        const { container } = await runtime.ensureRunning(
          containerSpec(
            { deviceId: fixture.deviceId, placementId: "31", deploymentId: "1", appId: "1", version: "1" },
            manifest,
            alias,
            { extraLabels: fixture.extraLabels, stopTimeoutS: 5 },
          ),
        );
        // The engine is shared with other tests: at least ours, by any of the image's names.
        expect(await runtime.containersUsingImage(alias)).to.be.at.least(1);
        await runtime.stop(container.id);
        expect(await runtime.containersUsingImage(alias), "a stopped container still uses it").to.be.at.least(
          1,
        );
        await runtime.remove(container.id);
      } finally {
        await runtime.untagImage(alias);
      }
    });

    it("loadImage refuses bytes that are not an image tar, as a non-retryable error", async () => {
      async function* garbage() {
        yield new TextEncoder().encode("this is not a tar archive ".repeat(100));
      }
      const error = await runtime.loadImage(garbage()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(ShoalError);
      expect((error as ShoalError).retryable).to.equal(false);
    });

    it("refuses to start a container whose image is not loaded", async () => {
      const s = containerSpec(
        { deviceId: fixture.deviceId, placementId: "21", deploymentId: "1", appId: "1", version: "1" },
        manifest,
        "shoal-cid:bafkreinotloaded",
        { extraLabels: fixture.extraLabels },
      );
      const error = await runtime.ensureRunning(s).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(ShoalError);
      expect((error as ShoalError).retryable).to.equal(false);
      expect(await runtime.inspect(s.name)).to.equal(undefined);
    });
  });
}
