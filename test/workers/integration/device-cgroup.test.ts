import { expect } from "chai";
import Docker from "dockerode";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import {
  createCgroupMetrics,
  createCgroupMetricsSource,
  parseV1Counters,
  parseV1Cpu,
  parseV2Counters,
  parseV2Cpu,
} from "../../../workers/src";
import { hostUsageBetween, parseHostCounters } from "../../../workers/src";
import type { CgroupCounters } from "../../../workers/src";
import {
  DEFAULT_CGROUP_ROOT,
  DeviceCgroupError,
  detectCgroupVersion,
  ensureDeviceCgroup,
  removeDeviceCgroup,
} from "../../../workers/src";
import { createDockerRuntime } from "../../../workers/src";
import { containerSpec } from "../../../workers/src";
import { parseManifest, toPublishedManifest } from "../../../workers/src";
import type { PublishedManifest } from "../../../workers/src";
import { waitFor } from "../../shared/processes";
import { requireDocker, serviceUrls } from "../../shared/services";

/**
 * The per-device cgroup on the real kernel: its caps hold for every container under it, even one
 * whose own limits are larger than the device (a 2-thread burner on a 0.5 CPU device; a container
 * allowed 256 MiB on a 64 MiB device). Containers carry the run's label and are removed in after(),
 * and so are the cgroups.
 */

const LOADGEN_IMAGE = "shoal/demo-loadgen:1.0.0";
const TEST_LABEL = "dev.shoal.test";
const RUN_ID = `device-cgroup-${process.pid}-${Date.now()}`;
const FAKE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
const ROOT = path.join(__dirname, "../../..");
const MiB = 1024 * 1024;

function loadgenManifest(env: Record<string, string>): PublishedManifest {
  const manifest = parseManifest(readFileSync(path.join(ROOT, "apps/demo-loadgen/shoal.yaml"), "utf8"));
  const published = toPublishedManifest(manifest, { "linux/amd64": FAKE_CID });
  return { ...published, env: { ...published.env, ...env } };
}

describe("device cgroup: the device's capacity, enforced by the kernel", function () {
  this.timeout(90_000);
  const docker = new Docker({ socketPath: serviceUrls().dockerSocket });
  const runtime = createDockerRuntime({ docker });
  const deviceId = `t${process.pid}`;
  const identity = { deviceId, placementId: "1", deploymentId: "1", appId: "1", version: "1" };

  before(async () => {
    await requireDocker();
    expect(
      await runtime.imageExists(LOADGEN_IMAGE),
      `${LOADGEN_IMAGE}: run scripts/images/build.sh`,
    ).to.equal(true);
  });

  after(async () => {
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${TEST_LABEL}=${RUN_ID}`] },
    });
    await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    await removeDeviceCgroup({ deviceId });
  });

  it("writes the capacity as the cgroup's CPU quota and memory limit, idempotently", async () => {
    const first = await ensureDeviceCgroup({ deviceId, cpuMillicores: 750, memoryMiB: 96 });
    expect(first.cgroupParent).to.equal(`/shoal/device-${deviceId}`);
    const again = await ensureDeviceCgroup({ deviceId, cpuMillicores: 500, memoryMiB: 64 });
    expect(again).to.deep.equal(first);
    if ((await detectCgroupVersion()) === 1) {
      const cpu = path.join(DEFAULT_CGROUP_ROOT, "cpu", first.cgroupParent);
      expect(readFileSync(path.join(cpu, "cpu.cfs_quota_us"), "utf8").trim()).to.equal("50000");
      expect(readFileSync(path.join(cpu, "cpu.cfs_period_us"), "utf8").trim()).to.equal("100000");
      const memory = path.join(DEFAULT_CGROUP_ROOT, "memory", first.cgroupParent);
      expect(Number(readFileSync(path.join(memory, "memory.limit_in_bytes"), "utf8"))).to.equal(64 * MiB);
    } else {
      const dir = path.join(DEFAULT_CGROUP_ROOT, first.cgroupParent);
      expect(readFileSync(path.join(dir, "cpu.max"), "utf8").trim()).to.equal("50000 100000");
      expect(Number(readFileSync(path.join(dir, "memory.max"), "utf8"))).to.equal(64 * MiB);
    }
  });

  it("refuses a device id that is not a plain name, and a capacity CFS cannot express", async () => {
    for (const bad of ["../x", "a/b", "", ".."]) {
      const error = await ensureDeviceCgroup({ deviceId: bad, cpuMillicores: 500, memoryMiB: 64 }).catch(
        (e) => e,
      );
      expect(error, bad).to.be.instanceOf(DeviceCgroupError);
    }
    const error = await ensureDeviceCgroup({ deviceId, cpuMillicores: 5, memoryMiB: 64 }).catch((e) => e);
    expect(error).to.be.instanceOf(DeviceCgroupError);
    expect((error as Error).message).to.match(/cpuMillicores 5/);
  });

  it("holds two 2-thread burners, each allowed the whole device, to the device's 0.5 CPU together", async () => {
    const { cgroupParent } = await ensureDeviceCgroup({ deviceId, cpuMillicores: 500, memoryMiB: 64 });
    const manifest = loadgenManifest({ PROFILE: "steady", CPU_MILLICORES: "2000", MEMORY_MIB: "0" });
    const ids: string[] = [];
    // Removed whatever happens: the cgroup test after this one needs the device cgroup empty.
    try {
      for (const placementId of ["10", "11"]) {
        const spec = containerSpec({ ...identity, placementId }, manifest, LOADGEN_IMAGE, {
          cgroupParent,
          extraLabels: { [TEST_LABEL]: RUN_ID },
        });
        // Each container's own quota is the device's whole capacity (cgroup v1 refuses a child quota
        // above its parent's): together they would use 1 CPU, so only the device cgroup can hold them.
        const { container } = await runtime.ensureRunning({
          ...spec,
          limits: { ...spec.limits, cpuMillicores: 500 },
        });
        expect((await docker.getContainer(container.id).inspect()).HostConfig.CgroupParent).to.equal(
          cgroupParent,
        );
        ids.push(container.id);
      }
      const metrics = createCgroupMetrics();
      const read = () =>
        Promise.all([
          metrics.readCgroup(cgroupParent),
          ...ids.map((id) => metrics.readContainer(id, { cgroupParent })),
        ]) as Promise<CgroupCounters[]>;
      // No fixed sleeps, no lower bound on the rate and no throttling count: how much CPU a shared
      // 2-core host gives the burners is not this test's business (bench/resource-manager.ts
      // measures rates), and a starved burner is never throttled. The window ends when the device
      // cgroup has used 1.5 CPU-seconds (the condition, waited for: 3 s at the cap, longer on a busy
      // host). The bound is what the kernel guarantees over any window: the quota, plus at most one
      // 100 ms CFS period of burst at each end, i.e. 10 % slack on a window of 3 s or more.
      const before = await read();
      const after = await waitFor(
        "1.5 CPU-seconds used by the device cgroup",
        async () => {
          const counters = await read();
          return counters[0].cpuUsageNs - before[0].cpuUsageNs >= 1.5e9 ? counters : undefined;
        },
        // 20 times the 3 s it takes at the cap, inside the suite's 90 s timeout.
        60_000,
        100,
      );
      const rate = (i: number) =>
        ((after[i].cpuUsageNs - before[i].cpuUsageNs) / ((after[i].atMs - before[i].atMs) * 1e6)) * 1000;
      expect(rate(0), "device").to.be.at.most(550);
      expect(rate(1) + rate(2), "both containers").to.be.at.most(550);
      for (const i of [1, 2]) {
        expect(after[i].cpuUsageNs, `container ${i} gets a share`).to.be.greaterThan(before[i].cpuUsageNs);
      }
      // The fast path's read: the CPU counters alone, the same ones, a moment later.
      const cpuOnly = await createCgroupMetricsSource({ cgroupParent }).sampleCpu!(ids);
      expect([...cpuOnly.keys()]).to.deep.equal(ids);
      ids.forEach((id, i) => {
        const c = cpuOnly.get(id)!;
        expect(Object.keys(c).sort()).to.deep.equal([
          "atMs",
          "cpuPeriods",
          "cpuThrottledNs",
          "cpuThrottledPeriods",
          "cpuUsageNs",
        ]);
        expect(c.cpuUsageNs).to.be.at.least(after[i + 1].cpuUsageNs);
        expect(c.cpuPeriods).to.be.at.least(after[i + 1].cpuPeriods);
        expect(c.atMs).to.be.greaterThan(after[i + 1].atMs);
      });
    } finally {
      for (const id of ids) await runtime.remove(id);
    }
  });

  it("OOM-kills a container allowed 256 MiB that grows past the device's 64 MiB", async () => {
    const { cgroupParent } = await ensureDeviceCgroup({ deviceId, cpuMillicores: 500, memoryMiB: 64 });
    const spec = containerSpec(
      { ...identity, placementId: "2" },
      loadgenManifest({ PROFILE: "steady", CPU_MILLICORES: "10", MEMORY_MIB: "200", MEMORY_STEP_MIB: "64" }),
      LOADGEN_IMAGE,
      { cgroupParent, extraLabels: { [TEST_LABEL]: RUN_ID } },
    );
    expect(spec.limits.memoryMiB).to.equal(256);
    const { container } = await runtime.ensureRunning(spec);
    // It allocates 64 MiB a step: well within a minute it passes the device's 64 MiB.
    const exited = await waitFor(
      "the container to be killed",
      async () => {
        const info = await runtime.inspect(container.id);
        return info?.state === "exited" ? info : undefined;
      },
      60_000,
      200,
    );
    // Killed by the device's limit: the container's own (256 MiB) was never reached.
    expect(exited!.oomKilled).to.equal(true);
    await runtime.remove(container.id);
  });

  it("removes the device cgroup from every hierarchy, and refuses while a container is inside", async () => {
    const { cgroupParent } = await ensureDeviceCgroup({ deviceId, cpuMillicores: 500, memoryMiB: 64 });
    const spec = containerSpec(
      { ...identity, placementId: "3" },
      loadgenManifest({ PROFILE: "steady", CPU_MILLICORES: "10", MEMORY_MIB: "0" }),
      LOADGEN_IMAGE,
      { cgroupParent, extraLabels: { [TEST_LABEL]: RUN_ID } },
    );
    const { container } = await runtime.ensureRunning(spec);
    const busy = await removeDeviceCgroup({ deviceId }).catch((e) => e);
    expect(busy).to.be.instanceOf(DeviceCgroupError);
    expect((busy as DeviceCgroupError).retryable).to.equal(true);
    await runtime.remove(container.id);
    await removeDeviceCgroup({ deviceId });
    await removeDeviceCgroup({ deviceId }); // missing is fine
    const left = readdirSync(DEFAULT_CGROUP_ROOT).filter((h) =>
      existsSync(path.join(DEFAULT_CGROUP_ROOT, h, cgroupParent)),
    );
    expect(left).to.deep.equal([]);
  });
});

describe("cgroup and host metrics: the files of cgroup v1 and v2, and /proc", function () {
  it("reads the same counters from v1 and v2 files", () => {
    const v1 = parseV1Counters(
      {
        cpuacctUsage: "2500000000\n",
        cpuStat: "nr_periods 40\nnr_throttled 10\nthrottled_time 900000000\nnr_bursts 0\n",
        memoryUsage: `${100 * MiB}\n`,
        memoryStat: `cache 0\ninactive_file ${5 * MiB}\ntotal_inactive_file ${20 * MiB}\n`,
        memoryLimit: "9223372036854771712\n",
        oomControl: "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
      },
      7,
    );
    const v2 = parseV2Counters(
      {
        cpuStat:
          "usage_usec 2500000\nuser_usec 2000000\nnr_periods 40\nnr_throttled 10\nthrottled_usec 900000\n",
        memoryCurrent: `${100 * MiB}\n`,
        memoryStat: `anon ${80 * MiB}\ninactive_file ${20 * MiB}\n`,
        memoryMax: "max\n",
        memoryEvents: "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n",
      },
      7,
    );
    const expected = {
      atMs: 7,
      cpuUsageNs: 2_500_000_000,
      cpuPeriods: 40,
      cpuThrottledPeriods: 10,
      cpuThrottledNs: 900_000_000,
      memoryUsageBytes: 100 * MiB,
      memoryWorkingSetBytes: 80 * MiB, // usage - inactive file cache (v1: the hierarchical total)
      memoryLimitBytes: Number.POSITIVE_INFINITY,
      oomKills: 2,
    };
    expect(v1).to.deep.equal(expected);
    expect(v2).to.deep.equal(expected);
    // The fast path's CPU-only parse gives the same CPU counters.
    const cpu = {
      atMs: 7,
      cpuUsageNs: 2_500_000_000,
      cpuPeriods: 40,
      cpuThrottledPeriods: 10,
      cpuThrottledNs: 900_000_000,
    };
    expect(
      parseV1Cpu(
        {
          cpuacctUsage: "2500000000\n",
          cpuStat: "nr_periods 40\nnr_throttled 10\nthrottled_time 900000000\n",
        },
        7,
      ),
    ).to.deep.equal(cpu);
    expect(
      parseV2Cpu("usage_usec 2500000\nnr_periods 40\nnr_throttled 10\nthrottled_usec 900000\n", 7),
    ).to.deep.equal(cpu);
  });

  it("reads host CPU, memory and load from /proc", () => {
    const stat = (busy: number, idle: number) =>
      `cpu  ${busy} 0 0 ${idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\ncpu1 1 0 0 1 0 0 0 0 0 0\nintr 1\n`;
    const meminfo = "MemTotal:       24000000 kB\nMemFree:        1000 kB\nMemAvailable:   20000000 kB\n";
    const a = parseHostCounters(stat(100, 900), meminfo, "0.50 0.40 0.30 1/100 42\n", 0);
    const b = parseHostCounters(stat(200, 1000), meminfo, "1.00 0.40 0.30 1/100 42\n", 1000);
    expect(a).to.include({ cpus: 2, cpuBusyTicks: 100, cpuTotalTicks: 1000, load1: 0.5 });
    const usage = hostUsageBetween(a, b);
    expect(usage.cpuUtilization).to.equal(0.5);
    expect(usage.cpuMillicores).to.equal(1000);
    expect(Math.round(usage.memoryUsedMiB)).to.equal(Math.round((4_000_000 * 1024) / MiB));
  });
});
