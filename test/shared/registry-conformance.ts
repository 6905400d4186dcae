// The conformance suite of the Registry port (workers/src/ports/registry.ts): what every
// implementation must do, asserted only through the port, in the style of MQTT.js's
// abstract_store tests. Run it from an integration test with
// `registryConformance(name, makeFixture)`; implementation-specific proofs (nonces, receipts
// that never come) live next to that call.
import { expect } from "chai";
import { ShoalError, isRetryable } from "../../workers/src";
import type { Band, Registry } from "../../workers/src";

export interface RegistryFixture {
  /** The registry of an enrolled, active device with no placements yet. */
  registry: Registry;
  /** The device's platform and what it was enrolled with. */
  device: { platform: string; cpuMillicores: number; memoryMiB: number; labelCount: number };
  /** An active deployment of `replicas` replicas the device may claim (labels and platform fit). */
  deployment: {
    deploymentId: number;
    appId: number;
    version: number;
    replicas: number;
    band: Band;
    manifestCid: string;
    imageCid: string;
  };
  /** The same device's registry through a node nobody answers at. */
  unreachable: Registry;
  teardown(): Promise<void>;
}

/** A platform no fixture enrolls or publishes. */
const OTHER_PLATFORM = "linux/riscv64";

/** Settles `promise` and returns its rejection, failing when it resolves. */
export async function rejectionOf(promise: Promise<unknown>, what: string): Promise<Error> {
  return promise.then(
    () => expect.fail(`${what} should reject`),
    (error: unknown) => error as Error,
  );
}

export function registryConformance(name: string, makeFixture: () => Promise<RegistryFixture>): void {
  describe(`Registry conformance: ${name}`, function () {
    this.timeout(120_000);
    let fixture: RegistryFixture;
    let registry: Registry;

    before(async function () {
      fixture = await makeFixture();
      registry = fixture.registry;
    });

    after(async function () {
      await fixture?.teardown();
    });

    it("reads the device as enrolled, with nothing reserved", async function () {
      const device = await registry.device();
      expect(device).to.deep.include({
        deviceId: registry.deviceId,
        status: "Active",
        platform: fixture.device.platform,
        cpuCapacityMillicores: fixture.device.cpuMillicores,
        memoryCapacityMiB: fixture.device.memoryMiB,
        cpuReservedMillicores: 0,
        memoryReservedMiB: 0,
        livePlacements: 0,
      });
      expect(device.labelKeys).to.have.length(fixture.device.labelCount);
      expect(device.heartbeatTtlS).to.be.greaterThan(0);
    });

    it("reads the deployment, its terms per platform and its version", async function () {
      const d = fixture.deployment;
      expect(await registry.deploymentCount()).to.be.at.least(d.deploymentId);
      const terms = await registry.replicaTerms(d.deploymentId, fixture.device.platform);
      expect(await registry.deployment(d.deploymentId)).to.deep.equal({
        deploymentId: d.deploymentId,
        appId: d.appId,
        version: d.version,
        generation: terms.generation,
        replicas: d.replicas,
        liveReplicas: 0,
        active: true,
      });
      expect(terms).to.deep.include({
        deploymentId: d.deploymentId,
        appId: d.appId,
        version: d.version,
        platformSupported: true,
        band: d.band,
      });
      expect((await registry.replicaTerms(d.deploymentId, OTHER_PLATFORM)).platformSupported).to.equal(false);
      expect(await registry.version(d.appId, d.version, fixture.device.platform)).to.deep.equal({
        appId: d.appId,
        version: d.version,
        manifestCid: d.manifestCid,
        imageCid: d.imageCid,
        band: d.band,
      });
      expect((await registry.version(d.appId, d.version, OTHER_PLATFORM)).imageCid).to.equal(undefined);
    });

    it("claims, confirms and releases a placement, and every view follows", async function () {
      const d = fixture.deployment;
      const claimed = await registry.claim(d.deploymentId);
      expect(claimed.hash).to.match(/^0x[0-9a-f]{64}$/);
      expect(claimed.gasUsed > 0n).to.equal(true);
      expect(claimed.blockNumber).to.equal(await registry.blockNumber());
      const id = claimed.placementId;
      expect(await registry.activePlacementOf(d.deploymentId)).to.equal(id);
      expect(await registry.placementState(id)).to.equal("Claimed");
      const device = await registry.device();
      expect(device).to.deep.include({
        livePlacements: 1,
        cpuReservedMillicores: d.band.cpuMinMillicores,
        memoryReservedMiB: d.band.memoryMinMiB,
      });
      expect((await registry.deployment(d.deploymentId)).liveReplicas).to.equal(1);

      await registry.confirm(id);
      expect(await registry.placementState(id)).to.equal("Running");
      const mine = await registry.placementsOfDevice(0, 100);
      expect(mine.find((p) => p.placementId === id)).to.deep.equal({
        placementId: id,
        deploymentId: d.deploymentId,
        deviceId: registry.deviceId,
        appId: d.appId,
        version: d.version,
        state: "Running",
      });

      await registry.release(id);
      expect(await registry.placementState(id)).to.equal("Released");
      expect(await registry.activePlacementOf(d.deploymentId)).to.equal(undefined);
      expect((await registry.device()).livePlacements).to.equal(0);
      const history = await registry.placementsOfDeployment(d.deploymentId);
      expect(history.map((p) => [p.placementId, p.state])).to.deep.include([id, "Released"]);
    });

    it("reports a failure with its code", async function () {
      const { placementId } = await registry.claim(fixture.deployment.deploymentId);
      await registry.fail(placementId, "StartFailed");
      expect(await registry.placementState(placementId)).to.equal("Failed");
      expect(await registry.activePlacementOf(fixture.deployment.deploymentId)).to.equal(undefined);
    });

    it("sends a heartbeat that reaches the chain; the next beat finds it mined", async function () {
      const before = await registry.device();
      const first = await registry.heartbeat();
      expect(first.hash).to.match(/^0x[0-9a-f]{64}$/);
      expect(first.sent).to.equal("new");
      // The beat returns once the node accepted it: wait (bounded) for the block that records it.
      let after = await registry.device();
      for (let i = 0; i < 100 && after.lastHeartbeat <= before.lastHeartbeat; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        after = await registry.device();
      }
      expect(after.lastHeartbeat, "the device's last heartbeat moved").to.be.greaterThan(
        before.lastHeartbeat,
      );
      const second = await registry.heartbeat();
      expect(second.sent).to.equal("new");
      expect(second.hash).to.not.equal(first.hash);
      expect(second.previousBlock).to.be.a("number");
      expect(second.previousBlock).to.be.at.most(await registry.blockNumber());
    });

    it("refuses what the contracts refuse with a final (non-retryable) error, changing nothing", async function () {
      const { placementId } = await registry.claim(fixture.deployment.deploymentId);
      await registry.release(placementId);
      const error = await rejectionOf(registry.confirm(placementId), "confirming a released placement");
      expect(error).to.be.instanceOf(ShoalError);
      expect(isRetryable(error)).to.equal(false);
      expect(error.message).to.include(placementId);
      expect(await registry.placementState(placementId)).to.equal("Released");
    });

    it("gives a retryable error when the node cannot be reached", async function () {
      for (const call of [() => fixture.unreachable.blockNumber(), () => fixture.unreachable.device()]) {
        const error = await rejectionOf(call(), "a read from an unreachable node");
        expect(error).to.be.instanceOf(ShoalError);
        expect(isRetryable(error)).to.equal(true);
      }
    });

    it("rejects at once on an aborted signal and sends nothing", async function () {
      const signal = AbortSignal.abort();
      const d = fixture.deployment;
      const head = await registry.blockNumber();
      const device = await registry.device();
      const calls: Array<[string, () => Promise<unknown>]> = [
        ["blockNumber", () => registry.blockNumber({ signal })],
        ["device", () => registry.device({ signal })],
        ["deploymentCount", () => registry.deploymentCount({ signal })],
        ["deployment", () => registry.deployment(d.deploymentId, { signal })],
        ["replicaTerms", () => registry.replicaTerms(d.deploymentId, fixture.device.platform, { signal })],
        ["activePlacementOf", () => registry.activePlacementOf(d.deploymentId, { signal })],
        ["placementsOfDevice", () => registry.placementsOfDevice(0, 10, { signal })],
        ["placementsOfDeployment", () => registry.placementsOfDeployment(d.deploymentId, { signal })],
        ["placementState", () => registry.placementState("1", { signal })],
        ["version", () => registry.version(d.appId, d.version, fixture.device.platform, { signal })],
        ["heartbeat", () => registry.heartbeat({ signal })],
        ["claim", () => registry.claim(d.deploymentId, { signal })],
        ["confirm", () => registry.confirm("1", { signal })],
        ["fail", () => registry.fail("1", "Other", { signal })],
        ["release", () => registry.release("1", { signal })],
      ];
      for (const [method, call] of calls) {
        const started = performance.now();
        const error = await rejectionOf(call(), `${method} with an aborted signal`);
        // No round trip to the node may happen first; 250 ms is far above a local call's cost and
        // far below an RPC timeout.
        expect(performance.now() - started, method).to.be.below(250);
        expect(error, method).to.be.instanceOf(ShoalError);
        expect(error.message, method).to.match(/aborted/);
        expect(isRetryable(error), method).to.equal(false);
      }
      // Nothing was sent: no block, no heartbeat, no claim.
      expect(await registry.blockNumber()).to.equal(head);
      expect(await registry.device()).to.deep.equal(device);
      expect(await registry.activePlacementOf(d.deploymentId)).to.equal(undefined);
    });

    it("rejects a read in flight as soon as its signal aborts", async function () {
      const controller = new AbortController();
      const pending = registry.placementsOfDeployment(fixture.deployment.deploymentId, {
        signal: controller.signal,
      });
      // Aborted in the same tick the request went out: no local node answers that fast.
      controller.abort();
      const error = await rejectionOf(pending, "a read aborted in flight");
      expect(error).to.be.instanceOf(ShoalError);
      expect(error.message).to.match(/aborted/);
      // The registry is still usable afterwards.
      expect(await registry.deploymentCount()).to.be.at.least(fixture.deployment.deploymentId);
    });
  });
}
