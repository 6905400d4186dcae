import { expect } from "chai";
import Docker from "dockerode";
import { readFileSync } from "node:fs";
import path from "node:path";
import pino from "pino";
import { createCgroupMetricsSource } from "../../../workers/src";
import { ensureDeviceCgroup, removeDeviceCgroup } from "../../../workers/src";
import { createDockerRuntime } from "../../../workers/src";
import { createMqttBus, type MqttBus } from "../../../workers/src";
import { containerSpec, type ContainerSpec } from "../../../workers/src";
import type { DecisionRecord } from "../../../workers/src";
import { parseManifest, toPublishedManifest } from "../../../workers/src";
import type { PublishedManifest } from "../../../workers/src";
import { createWorkerMetrics } from "../../../workers/src";
import { createResourceManager, type TickReport } from "../../../workers/src";
import { waitFor } from "../../shared/processes";
import { requireDocker, requireMqtt, serviceUrls } from "../../shared/services";

/**
 * The resource manager against real containers of shoal/demo-loadgen under a real per-device
 * cgroup (1 CPU, 512 MiB), publishing on the real MQTT broker. Three placements compete:
 * 1. a stepper: 800m bursts, 6 s on, 6 s off (its limit must follow the step up, by the fast path
 *    too; how fast is measured by bench/resource-manager.ts);
 * 2. a grower: memory climbing 16 MiB/s to 160 MiB from a 48 MiB initial limit (raised before any
 *    OOM kill);
 * 3. a steady 2-thread burner that wants all it can get (the youngest: it yields first).
 * Throughout, the limits stay inside the device's capacity and the device's measured CPU too.
 */

const LOADGEN_IMAGE = "shoal/demo-loadgen:1.0.0";
const TEST_LABEL = "dev.shoal.test";
const RUN_ID = `resource-manager-${process.pid}-${Date.now()}`;
const FAKE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
const ROOT = path.join(__dirname, "../../..");
const TOPIC_ROOT = `test-${RUN_ID}/v1`;
const CAPACITY = { cpuMillicores: 1000, memoryMiB: 512 };
const PERIOD_MS = 1000;
const TICKS = 22;

function loadgenManifest(env: Record<string, string>): PublishedManifest {
  const manifest = parseManifest(readFileSync(path.join(ROOT, "apps/demo-loadgen/shoal.yaml"), "utf8"));
  const published = toPublishedManifest(manifest, { "linux/amd64": FAKE_CID });
  return { ...published, env: { ...published.env, ...env } };
}

describe("resource manager: live resizing of real containers inside a device's capacity", function () {
  this.timeout(90_000);
  const docker = new Docker({ socketPath: serviceUrls().dockerSocket });
  const runtime = createDockerRuntime({ docker });
  const logger = pino({ level: process.env.SHOAL_TEST_LOG ?? "silent" });
  const deviceId = `rm${process.pid}`;
  const reports: TickReport[] = [];
  const received: DecisionRecord[] = [];
  const ids: Record<"stepper" | "grower" | "burner", string> = { stepper: "", grower: "", burner: "" };
  const specs = new Map<string, ContainerSpec>();
  const promMetrics = createWorkerMetrics({ deviceId: 1 });
  let publisher: MqttBus;
  let subscriber: MqttBus;
  const evictions: string[] = [];

  before(async function () {
    await requireDocker();
    await requireMqtt();
    expect(
      await runtime.imageExists(LOADGEN_IMAGE),
      `${LOADGEN_IMAGE}: run scripts/images/build.sh`,
    ).to.equal(true);
    const { cgroupParent } = await ensureDeviceCgroup({ deviceId, ...CAPACITY });
    publisher = createMqttBus({
      url: serviceUrls().mqttUrl,
      clientId: `${RUN_ID}-pub`,
      logger,
      topicRoot: TOPIC_ROOT,
    });
    subscriber = createMqttBus({
      url: serviceUrls().mqttUrl,
      clientId: `${RUN_ID}-sub`,
      logger,
      topicRoot: TOPIC_ROOT,
    });
    await Promise.all([publisher.ready(), subscriber.ready()]);
    await subscriber.subscribe(`${TOPIC_ROOT}/devices/${deviceId}/resources`, (message) => {
      received.push(JSON.parse(Buffer.from(message.payload).toString("utf8")) as DecisionRecord);
    });

    const identity = (placementId: string) => ({
      deviceId,
      placementId,
      deploymentId: "1",
      appId: "1",
      version: "1",
    });
    const options = { cgroupParent, extraLabels: { [TEST_LABEL]: RUN_ID } };
    const stepper = containerSpec(
      identity("1"),
      loadgenManifest({
        PROFILE: "bursts",
        CPU_MILLICORES: "800",
        MEMORY_MIB: "0",
        BURST_PERIOD_S: "12",
        BURST_DUTY: "0.5",
        IDLE_MILLICORES: "50",
      }),
      LOADGEN_IMAGE,
      options,
    );
    const grower = containerSpec(
      identity("2"),
      loadgenManifest({ PROFILE: "steady", CPU_MILLICORES: "50", MEMORY_MIB: "160", MEMORY_STEP_MIB: "16" }),
      LOADGEN_IMAGE,
      options,
    );
    const burner = containerSpec(
      identity("3"),
      loadgenManifest({ PROFILE: "steady", CPU_MILLICORES: "1500", MEMORY_MIB: "0" }),
      LOADGEN_IMAGE,
      options,
    );
    // The grower starts well below what it will need: 48 MiB for a 160 MiB working set.
    const growerSpec = { ...grower, limits: { ...grower.limits, memoryMiB: 48 } };
    for (const [name, spec] of [
      ["stepper", stepper],
      ["grower", growerSpec],
      ["burner", burner],
    ] as const) {
      const { container } = await runtime.ensureRunning(spec);
      ids[name] = container.id;
      specs.set(container.placementId, spec);
    }
  });

  after(async () => {
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${TEST_LABEL}=${RUN_ID}`] },
    });
    await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    await Promise.all([publisher?.close(), subscriber?.close()]);
    await removeDeviceCgroup({ deviceId });
  });

  it("runs the control loop for 22 periods", async () => {
    const manager = createResourceManager({
      deviceId,
      capacity: CAPACITY,
      runtime,
      metrics: createCgroupMetricsSource({ cgroupParent: `/shoal/device-${deviceId}` }),
      // The worker takes the band from the placement on chain; here, from the spec it was made from.
      bandOf: (c) => specs.get(c.placementId)?.band,
      evict: async (placementId) => {
        evictions.push(placementId);
      },
      bus: publisher,
      topicRoot: TOPIC_ROOT,
      params: { periodMs: PERIOD_MS },
      logger,
      promMetrics,
      onTick: (report) => reports.push(report),
    });
    const controller = new AbortController();
    const running = manager.run({ signal: controller.signal });
    // Three times the run's nominal length: a host too busy for that fails here, by name.
    await waitFor(
      `${TICKS} control periods`,
      async () => reports.filter((r) => r.kind === "period").length >= TICKS,
      3 * TICKS * PERIOD_MS,
      100,
    );
    controller.abort();
    await running;
    expect(evictions).to.deep.equal([]);
  });

  // How fast the manager reacts (3 control periods, or half a period with the fast path) and
  // whether the limit reaches the whole demand before the burst ends are a benchmark's numbers
  // (bench/resource-manager.ts, "reaction time"), not a test's: on a shared 2-core host other
  // processes take CPU the stepper would use, so it is throttled less and its limit rises later
  // or less far, which is the controller working as designed. The tests assert the order of
  // events and what caused them.
  /** The stepper's CPU decisions in the order they were made, with the kind of tick of each. */
  const stepperCpu = () =>
    reports
      .flatMap((r) => r.decisions.map((d) => ({ ...d, kind: r.kind })))
      .filter((d) => d.containerId === ids.stepper && d.resource === "cpu");
  const stepperCpuRaises = () => stepperCpu().filter((d) => d.to > d.from);

  // Order from the manager's own records, not from the loadgen's clock: on a busy host the
  // stepper's phases drift against the wall clock the reports carry.
  it("lowers the idle stepper's CPU, then raises it again when its load returns, because it is throttled", () => {
    const decisions = stepperCpu();
    const lowered = decisions.findIndex((d) => d.to < d.from && d.to <= 200);
    expect(lowered, "lowered to 200m or less while idle").to.be.at.least(0);
    const raised = decisions.slice(lowered + 1).find((d) => d.to > d.from && d.reason === "throttled");
    expect(raised, "raised again, for throttling, after the lowering").to.not.equal(undefined);
    expect(raised!.from).to.be.at.most(200);
    expect(Date.parse(raised!.at)).to.be.at.least(Date.parse(decisions[lowered].at));
  });

  it("with the fast path, raises in a fast tick between periods, and publishes the record", async () => {
    const fast = stepperCpuRaises().filter((d) => d.kind === "fast");
    expect(fast.length, "a raise decided by the fast path").to.be.above(0);
    const { kind: _kind, ...raise } = fast[0];
    // The fast path's own metrics: the raise came from the recent CPU counters.
    expect(raise.metric).to.be.oneOf(["cpu.recentThrottledRatio", "cpu.recentUtilization"]);
    const published = await waitFor(
      "the raise on MQTT",
      async () => received.find((d) => d.seq === raise.seq),
      10_000,
      50,
    );
    expect(published, "published on MQTT as it was decided").to.deep.equal(raise);
  });

  it("raises the grower's memory ahead of its working set: no OOM kill", async () => {
    const info = await docker.getContainer(ids.grower).inspect();
    expect(info.State.Running).to.equal(true);
    expect(info.State.OOMKilled).to.equal(false);
    const finalLimit = reports.at(-1)!.limits[ids.grower].memoryMiB;
    expect(finalLimit).to.be.greaterThan(160);
    expect(info.HostConfig.Memory).to.equal(finalLimit * 1024 * 1024);
    for (const r of reports) {
      const u = r.usage[ids.grower];
      if (u === undefined) continue;
      expect(u.oomKills).to.equal(0);
      expect(u.memoryWorkingSetMiB, r.at).to.be.below(r.limits[ids.grower].memoryMiB);
    }
    const raises = reports
      .flatMap((r) => r.decisions)
      .filter((d) => d.containerId === ids.grower && d.resource === "memory" && d.to > d.from);
    expect(raises.length).to.be.greaterThan(0);
    expect(raises.every((d) => d.reason === "memory-pressure")).to.equal(true);
  });

  it("never exceeds the device's capacity: the sum of limits, and the measured CPU", () => {
    for (const r of reports) {
      const limits = Object.values(r.limits);
      expect(
        limits.reduce((s, l) => s + l.cpuMillicores, 0),
        r.at,
      ).to.be.at.most(CAPACITY.cpuMillicores);
      expect(
        limits.reduce((s, l) => s + l.memoryMiB, 0),
        r.at,
      ).to.be.at.most(CAPACITY.memoryMiB);
      if (r.device !== undefined) {
        expect(r.device.cpuMillicores, r.at).to.be.at.most(CAPACITY.cpuMillicores * 1.05);
        expect(r.device.memoryMiB, r.at).to.be.at.most(CAPACITY.memoryMiB);
      }
    }
    // The demand (2.35 CPUs) is above the capacity: the allocation must have reached it. (The
    // measured peak depends on what else the shared host runs, so it is not asserted.)
    const allocated = Math.max(
      ...reports.map((r) => Object.values(r.limits).reduce((sum, l) => sum + l.cpuMillicores, 0)),
    );
    expect(allocated).to.be.at.least(0.9 * CAPACITY.cpuMillicores);
  });

  it("publishes every decision on MQTT as a v1 record and counts it in /metrics", async () => {
    const decisions = reports.flatMap((r) => r.decisions);
    expect(decisions.length).to.be.greaterThan(3);
    await waitFor("every decision on MQTT", async () => received.length >= decisions.length, 10_000, 50);
    expect(received.map((d) => d.seq).sort((a, b) => a - b)).to.deep.equal(decisions.map((d) => d.seq));
    expect(received.every((d) => d.v === 1 && d.deviceId === deviceId)).to.equal(true);
    const text = await promMetrics.registry.metrics();
    expect(text).to.match(
      /shoal_resource_decisions_total\{resource="cpu",reason="throttled",device="1"\} [1-9]/,
    );
    expect(text).to.match(/shoal_container_memory_limit_mib\{placement="2",device="1"\} [0-9]+/);
  });
});
