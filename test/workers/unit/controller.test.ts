import { expect } from "chai";
import {
  DEFAULT_CONTROLLER_PARAMS,
  comparePriority,
  decide,
  decisionRecordHash,
  decisionRecordJson,
  decisionsDigest,
  initialControllerState,
  usageBetween,
  type CgroupCounters,
  type ContainerUsage,
  type ControlInput,
  type ControlledContainer,
  type ControllerState,
} from "../../../workers/src/domain/controller";

const AT = "2026-11-26T10:00:00.000Z";
const BAND = { cpuMillicoresMin: 100, cpuMillicoresMax: 1000, memoryMiBMin: 16, memoryMiBMax: 256 };
const BIG = { cpuMillicores: 4000, memoryMiB: 4096 };

function usage(partial: Partial<ContainerUsage> = {}): ContainerUsage {
  return {
    periodMs: 1000,
    cpuMillicores: 0,
    cpuThrottledRatio: 0,
    memoryUsageMiB: 8,
    memoryWorkingSetMiB: 8,
    memoryGrowthMiB: 0,
    oomKills: 0,
    ...partial,
  };
}

function container(
  id: string,
  limits: { cpu: number; mem: number },
  u: Partial<ContainerUsage> | undefined,
  extra: Partial<ControlledContainer> = {},
): ControlledContainer {
  return {
    containerId: id,
    placementId: id.replace(/\D/g, "") || "1",
    band: BAND,
    limits: { cpuMillicores: limits.cpu, memoryMiB: limits.mem, memoryReservationMiB: 16 },
    usage: u === undefined ? undefined : usage(u),
    ...extra,
  };
}

function run(
  containers: ControlledContainer[],
  capacity = BIG,
  state: ControllerState = initialControllerState(),
  params: ControlInput["params"] = {},
) {
  return decide({ deviceId: "7", at: AT, capacity, containers, state, params });
}

/** Runs `n` periods with the same usage, feeding back limits and state; returns every output. */
function periods(n: number, c: ControlledContainer, capacity = BIG) {
  let state = initialControllerState();
  let limits = c.limits;
  const outs = [];
  for (let i = 0; i < n; i++) {
    const out = run([{ ...c, limits }], capacity, state);
    state = out.state;
    limits = out.limits[c.containerId];
    outs.push(out);
  }
  return outs;
}

describe("controller: decide() per container", function () {
  const cases: Array<{
    name: string;
    limits: { cpu: number; mem: number };
    usage: Partial<ContainerUsage> | undefined;
    capacity?: { cpuMillicores: number; memoryMiB: number };
    cpu: number;
    mem: number;
    reasons: string[];
  }> = [
    {
      name: "throttled -> CPU up by cpuUpFactor (x10, here to the band's max)",
      limits: { cpu: 100, mem: 64 },
      usage: { cpuMillicores: 100, cpuThrottledRatio: 0.95 },
      cpu: 1000,
      mem: 64,
      reasons: ["cpu:throttled"],
    },
    {
      name: "saturated without throttling -> CPU up",
      limits: { cpu: 200, mem: 64 },
      usage: { cpuMillicores: 190, cpuThrottledRatio: 0 },
      cpu: 1000,
      mem: 64,
      reasons: ["cpu:cpu-saturated"],
    },
    {
      name: "throttled at the band's max -> no change",
      limits: { cpu: 1000, mem: 64 },
      usage: { cpuMillicores: 1000, cpuThrottledRatio: 1 },
      cpu: 1000,
      mem: 64,
      reasons: [],
    },
    {
      name: "throttled -> CPU up, but never above the device capacity",
      limits: { cpu: 300, mem: 64 },
      usage: { cpuMillicores: 300, cpuThrottledRatio: 1 },
      capacity: { cpuMillicores: 500, memoryMiB: 4096 },
      cpu: 500,
      mem: 64,
      reasons: ["cpu:throttled"],
    },
    {
      name: "busy but not starved -> kept",
      limits: { cpu: 500, mem: 64 },
      usage: { cpuMillicores: 350 },
      cpu: 500,
      mem: 64,
      reasons: [],
    },
    {
      name: "one idle period -> kept (hysteresis)",
      limits: { cpu: 800, mem: 64 },
      usage: { cpuMillicores: 50 },
      cpu: 800,
      mem: 64,
      reasons: [],
    },
    {
      name: "working set near the limit -> memory up before an OOM",
      limits: { cpu: 500, mem: 64 },
      usage: { cpuMillicores: 300, memoryWorkingSetMiB: 56 },
      cpu: 500,
      mem: 80, // ceil(56 / 0.7)
      reasons: ["memory:memory-pressure"],
    },
    {
      name: "working set growing fast -> memory up early (predicted)",
      limits: { cpu: 500, mem: 128 },
      usage: { cpuMillicores: 300, memoryWorkingSetMiB: 64, memoryGrowthMiB: 32 },
      cpu: 500,
      mem: 183, // ceil((64 + 2 * 32) / 0.7)
      reasons: ["memory:memory-pressure"],
    },
    {
      name: "memory pressure -> up, but never above the band's max",
      limits: { cpu: 500, mem: 240 },
      usage: { cpuMillicores: 300, memoryWorkingSetMiB: 230 },
      cpu: 500,
      mem: 256,
      reasons: ["memory:memory-pressure"],
    },
    {
      name: "an OOM kill -> memory doubled",
      limits: { cpu: 500, mem: 32 },
      usage: { cpuMillicores: 300, memoryWorkingSetMiB: 2, oomKills: 1 },
      cpu: 500,
      mem: 64,
      reasons: ["memory:oom-kill"],
    },
    {
      name: "first period (no usage yet) -> limits kept",
      limits: { cpu: 300, mem: 64 },
      usage: undefined,
      cpu: 300,
      mem: 64,
      reasons: [],
    },
    {
      name: "started without a quota (0) -> brought into the band",
      limits: { cpu: 0, mem: 512 },
      usage: undefined,
      cpu: 1000,
      mem: 256,
      reasons: ["cpu:band", "memory:band"],
    },
    {
      name: "below the band -> raised to the band's min",
      limits: { cpu: 50, mem: 8 },
      usage: { cpuMillicores: 10 },
      cpu: 100,
      mem: 16,
      reasons: ["cpu:band", "memory:band"],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const out = run([container("c1", c.limits, c.usage)], c.capacity ?? BIG);
      expect(out.limits.c1.cpuMillicores, "cpu").to.equal(c.cpu);
      expect(out.limits.c1.memoryMiB, "memory").to.equal(c.mem);
      expect(out.decisions.map((d) => `${d.resource}:${d.reason}`)).to.deep.equal(c.reasons);
      expect(out.changes.length).to.equal(c.reasons.length > 0 ? 1 : 0);
    });
  }

  it("idle -> CPU down after cpuDownPeriods idle periods, to usage plus headroom, never below min", () => {
    const idle = periods(6, container("c1", { cpu: 800, mem: 64 }, { cpuMillicores: 100 }));
    expect(idle.map((o) => o.limits.c1.cpuMillicores)).to.deep.equal([800, 800, 800, 800, 150, 150]);
    expect(idle[4].decisions[0]).to.include({
      reason: "cpu-idle",
      from: 800,
      to: 150,
      metric: "cpu.utilization",
    });
    const veryIdle = periods(5, container("c1", { cpu: 800, mem: 64 }, { cpuMillicores: 5 }));
    expect(veryIdle[4].limits.c1.cpuMillicores).to.equal(BAND.cpuMillicoresMin);
  });

  it("idle streak is broken by one busy period", () => {
    let state = initialControllerState();
    const seen: number[] = [];
    for (const used of [50, 50, 700, 50, 50, 50, 50, 50]) {
      const out = run([container("c1", { cpu: 800, mem: 64 }, { cpuMillicores: used })], BIG, state);
      state = out.state;
      seen.push(out.limits.c1.cpuMillicores);
    }
    expect(seen).to.deep.equal([800, 800, 800, 800, 800, 800, 800, 100]);
  });

  it("memory comes down slowly: after memoryDownPeriods, at most to 80 % per step, keeping headroom", () => {
    const outs = periods(
      30,
      container("c1", { cpu: 500, mem: 256 }, { cpuMillicores: 300, memoryWorkingSetMiB: 20 }),
    );
    const mem = outs.map((o) => o.limits.c1.memoryMiB);
    expect(mem.slice(0, 9).every((m) => m === 256)).to.equal(true);
    expect(mem[9]).to.equal(204); // floor(256 * 0.8)
    expect(mem[19]).to.equal(163);
    expect(Math.min(...mem)).to.be.at.least(20 + DEFAULT_CONTROLLER_PARAMS.memoryHeadroomMiB);
    expect(outs[9].decisions[0]).to.include({
      resource: "memory",
      reason: "memory-idle",
      from: 256,
      to: 204,
    });
  });
});

describe("controller: decide() over the device's capacity", function () {
  const CAP = { cpuMillicores: 1000, memoryMiB: 512 };

  it("takes idle slack back at once (down to usage plus headroom) when another container is throttled (no hysteresis)", () => {
    const out = run(
      [
        container("c1", { cpu: 900, mem: 64 }, { cpuMillicores: 40 }),
        container("c2", { cpu: 100, mem: 64 }, { cpuMillicores: 100, cpuThrottledRatio: 1 }),
      ],
      CAP,
    );
    // c1 down to max(min, 40 * 1.5); c2 wants 1000 and gets what is left.
    expect(out.limits.c1.cpuMillicores).to.equal(100);
    expect(out.limits.c2.cpuMillicores).to.equal(900);
    expect(out.decisions.find((d) => d.containerId === "c1")).to.include({
      reason: "reclaimed",
      metric: "device.cpuDemand",
      threshold: 1000,
    });
  });

  it("shrinks the lowest-priority container towards its min first", () => {
    // Equal bands: the older placement (c1) outranks c2 and c3.
    const out = run(
      [
        container("c1", { cpu: 400, mem: 64 }, { cpuMillicores: 400, cpuThrottledRatio: 1 }),
        container("c2", { cpu: 300, mem: 64 }, { cpuMillicores: 300, cpuThrottledRatio: 1 }),
        container("c3", { cpu: 300, mem: 64 }, { cpuMillicores: 300, cpuThrottledRatio: 1 }),
      ],
      CAP,
    );
    // wants: 1000 each; floors 100: c3 and c2 go to their min, c1 gets the rest.
    expect([out.limits.c1, out.limits.c2, out.limits.c3].map((l) => l.cpuMillicores)).to.deep.equal([
      800, 100, 100,
    ]);
    expect(out.decisions.filter((d) => d.reason === "contention").map((d) => d.containerId)).to.deep.equal([
      "c2",
      "c3",
    ]);
  });

  it("an explicit priority and a higher guaranteed share outrank age", () => {
    const guaranteed = { ...BAND, cpuMillicoresMin: 500, cpuMillicoresMax: 500 };
    const rows: Array<[string, ControlledContainer, ControlledContainer]> = [
      ["older first", container("c1", { cpu: 1, mem: 1 }, {}), container("c2", { cpu: 1, mem: 1 }, {})],
      [
        "placement ids compare as integers",
        container("c9", { cpu: 1, mem: 1 }, {}),
        container("c10", { cpu: 1, mem: 1 }, {}),
      ],
      [
        "guaranteed before burstable",
        container("c5", { cpu: 1, mem: 1 }, {}, { band: guaranteed }),
        container("c1", { cpu: 1, mem: 1 }, {}),
      ],
      [
        "explicit priority first",
        container("c5", { cpu: 1, mem: 1 }, {}, { priority: 1 }),
        container("c1", { cpu: 1, mem: 1 }, {}, { band: guaranteed }),
      ],
    ];
    for (const [name, high, low] of rows) {
      expect(comparePriority(high, low), name).to.be.lessThan(0);
      expect(comparePriority(low, high), name).to.be.greaterThan(0);
    }
  });

  it("evicts the lowest-priority placement only when the mins do not fit", () => {
    const band = { ...BAND, cpuMillicoresMin: 400 };
    const out = run(
      [
        container("c1", { cpu: 400, mem: 64 }, { cpuMillicores: 50 }, { band }),
        container("c2", { cpu: 400, mem: 64 }, { cpuMillicores: 50 }, { band }),
        container("c3", { cpu: 400, mem: 64 }, { cpuMillicores: 50 }, { band }),
      ],
      CAP,
    );
    expect(out.evictions).to.deep.equal([{ containerId: "c3", placementId: "3", resource: "cpu" }]);
    expect(Object.keys(out.limits)).to.deep.equal(["c1", "c2"]);
    expect(out.decisions.find((d) => d.reason === "evicted")).to.include({
      resource: "placement",
      placementId: "3",
      from: 400,
      to: 0,
      metric: "device.cpuFloorsMillicores",
      value: 1200,
      threshold: 1000,
    });
  });

  it("evicts for memory when the working sets do not fit, lowest priority first", () => {
    const out = run(
      [
        container("c1", { cpu: 100, mem: 256 }, { memoryWorkingSetMiB: 200 }),
        container("c2", { cpu: 100, mem: 256 }, { memoryWorkingSetMiB: 200 }),
        container("c3", { cpu: 100, mem: 256 }, { memoryWorkingSetMiB: 200 }),
      ],
      { cpuMillicores: 1000, memoryMiB: 600 },
    );
    // Floors: ceil(200 / 0.85) = 236 each, 708 > 600: one placement has to go, the youngest.
    expect(out.evictions.map((e) => [e.placementId, e.resource])).to.deep.equal([["3", "memory"]]);
    expect(Object.values(out.limits).reduce((s, l) => s + l.memoryMiB, 0)).to.be.at.most(600);
  });

  it("with evict off, reports over-capacity and keeps everyone at the floor", () => {
    const band = { ...BAND, cpuMillicoresMin: 600 };
    const out = run(
      [
        container("c1", { cpu: 600, mem: 64 }, { cpuMillicores: 50 }, { band }),
        container("c2", { cpu: 600, mem: 64 }, { cpuMillicores: 50 }, { band }),
      ],
      CAP,
      initialControllerState(),
      { evict: false },
    );
    expect(out.evictions).to.deep.equal([]);
    expect(out.decisions.map((d) => d.reason)).to.deep.equal(["over-capacity"]);
    expect(out.limits.c1.cpuMillicores).to.equal(600);
  });

  it("never leaves the band or the capacity (randomized periods)", () => {
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const caps = { cpuMillicores: 1500, memoryMiB: 700 };
    let limits = [0, 1, 2].map(() => ({ cpuMillicores: 100, memoryMiB: 64, memoryReservationMiB: 16 }));
    let state = initialControllerState();
    const violations: string[] = [];
    let changed = 0;
    for (let i = 0; i < 500; i++) {
      const cs = limits.map((l, k) =>
        container(
          `c${k + 1}`,
          { cpu: l.cpuMillicores, mem: l.memoryMiB },
          {
            cpuMillicores: random() * l.cpuMillicores,
            cpuThrottledRatio: random() < 0.4 ? random() : 0,
            // ws <= 0.8 of the limit: the floors (ws / 0.85) then always fit, so nothing is evicted.
            memoryWorkingSetMiB: random() * 0.8 * l.memoryMiB,
            memoryGrowthMiB: (random() - 0.5) * 40,
            oomKills: random() < 0.02 ? 1 : 0,
          },
        ),
      );
      const out = run(cs, caps, state);
      state = out.state;
      if (out.evictions.length > 0) violations.push(`period ${i}: evicted`);
      limits = cs.map((c) => out.limits[c.containerId]);
      const cpuSum = limits.reduce((s, l) => s + l.cpuMillicores, 0);
      const memSum = limits.reduce((s, l) => s + l.memoryMiB, 0);
      if (cpuSum > caps.cpuMillicores) violations.push(`period ${i}: cpu sum ${cpuSum}`);
      if (memSum > caps.memoryMiB) violations.push(`period ${i}: memory sum ${memSum}`);
      for (const l of limits) {
        if (l.cpuMillicores < BAND.cpuMillicoresMin || l.cpuMillicores > BAND.cpuMillicoresMax)
          violations.push(`period ${i}: cpu ${l.cpuMillicores}`);
        if (l.memoryMiB < BAND.memoryMiBMin || l.memoryMiB > BAND.memoryMiBMax)
          violations.push(`period ${i}: memory ${l.memoryMiB}`);
        if (l.memoryReservationMiB > l.memoryMiB) violations.push(`period ${i}: reservation`);
      }
      changed += out.changes.length;
    }
    expect(violations).to.deep.equal([]);
    expect(changed, "the walk exercised the controller").to.be.greaterThan(100);
  });
});

describe("controller: usage and decision records", function () {
  const counters = (over: Partial<CgroupCounters>): CgroupCounters => ({
    atMs: 0,
    cpuUsageNs: 0,
    cpuPeriods: 0,
    cpuThrottledPeriods: 0,
    cpuThrottledNs: 0,
    memoryUsageBytes: 0,
    memoryWorkingSetBytes: 0,
    memoryLimitBytes: Number.POSITIVE_INFINITY,
    oomKills: 0,
    ...over,
  });

  it("derives rates from two reads, and none across a restart", () => {
    const MiB = 1024 * 1024;
    const a = counters({ atMs: 1000, cpuUsageNs: 1e9, cpuPeriods: 100, memoryWorkingSetBytes: 10 * MiB });
    const b = counters({
      atMs: 3000,
      cpuUsageNs: 2e9,
      cpuPeriods: 120,
      cpuThrottledPeriods: 5,
      memoryUsageBytes: 40 * MiB,
      memoryWorkingSetBytes: 30 * MiB,
      oomKills: 1,
    });
    expect(usageBetween(a, b, 1000)).to.deep.equal({
      periodMs: 2000,
      cpuMillicores: 500,
      cpuThrottledRatio: 0.25,
      memoryUsageMiB: 40,
      memoryWorkingSetMiB: 30,
      memoryGrowthMiB: 10, // 20 MiB over 2 s, per 1 s period
      oomKills: 1,
    });
    expect(usageBetween(b, counters({ atMs: 4000, cpuUsageNs: 5 }))).to.equal(undefined);
    expect(usageBetween(a, a)).to.equal(undefined);
  });

  it("numbers decisions per device and hashes them stably", () => {
    const out = run(
      [
        container("c1", { cpu: 100, mem: 64 }, { cpuMillicores: 100, cpuThrottledRatio: 1 }),
        container("c2", { cpu: 100, mem: 64 }, { cpuMillicores: 100, cpuThrottledRatio: 1 }),
      ],
      BIG,
      initialControllerState(41),
    );
    expect(out.decisions.map((d) => d.seq)).to.deep.equal([41, 42]);
    expect(out.state.seq).to.equal(43);
    const [first] = out.decisions;
    expect(decisionRecordJson(first)).to.equal(
      '{"at":"2026-11-26T10:00:00.000Z","containerId":"c1","deviceId":"7","from":100,"metric":"cpu.throttledRatio",' +
        '"placementId":"1","reason":"throttled","resource":"cpu","seq":41,"threshold":0.05,"to":1000,"v":1,"value":1}',
    );
    expect(decisionRecordHash(first)).to.match(/^0x[0-9a-f]{64}$/);
    const digest = decisionsDigest(out.decisions);
    expect(decisionsDigest([...out.decisions].reverse())).to.equal(digest);
    expect(decisionsDigest([out.decisions[0], { ...out.decisions[1], to: 500 }])).to.not.equal(digest);
    expect(decisionsDigest([])).to.equal(`0x${"0".repeat(64)}`);
  });
});
