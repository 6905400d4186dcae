import { expect } from "chai";
import { createHash } from "node:crypto";
import {
  DEFAULT_CONTROLLER_PARAMS,
  comparePriority,
  decide,
  decideFast,
  decisionRecordHash,
  decisionRecordJson,
  decisionsDigest,
  initialControllerState,
  recentCpu,
  usageBetween,
  type CgroupCounters,
  type CpuCounters,
  type RecentCpu,
  type ContainerUsage,
  type ControlInput,
  type ControlledContainer,
  type ControllerState,
} from "../../../workers/src";

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

describe("controller: a container whose band is not known yet", function () {
  it("stays where it is and keeps its memory reservation", () => {
    // The resource manager pins a container at its limits until the band is read from the chain.
    const limits = { cpuMillicores: 50, memoryMiB: 64, memoryReservationMiB: 16 };
    const band = { cpuMillicoresMin: 50, cpuMillicoresMax: 50, memoryMiBMin: 64, memoryMiBMax: 64 };
    const c = container("c1", { cpu: 50, mem: 64 }, { cpuThrottledRatio: 1, memoryWorkingSetMiB: 60 });
    const out = run([{ ...c, band, limits, pinned: true }]);
    expect(out.limits.c1).to.deep.equal(limits);
    expect(out.changes).to.deep.equal([]);
    // Once known, the band's min is the reservation again.
    const known = run([{ ...c, limits: { ...limits, memoryReservationMiB: 64 } }]);
    expect(known.limits.c1.memoryReservationMiB).to.equal(BAND.memoryMiBMin);
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
    const firstJson =
      '{"at":"2026-11-26T10:00:00.000Z","containerId":"c1","deviceId":"7","from":100,"metric":"cpu.throttledRatio",' +
      '"placementId":"1","reason":"throttled","resource":"cpu","seq":41,"threshold":0.05,"to":1000,"v":1,"value":1}';
    expect(decisionRecordJson(first)).to.equal(firstJson);
    // The hash and the digest recomputed here from their definition (sha256 of the canonical
    // JSON; a chain from 32 zero bytes), not only their shape.
    const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest();
    expect(decisionRecordHash(first)).to.equal(`0x${sha256(firstJson).toString("hex")}`);
    const secondJson = decisionRecordJson(out.decisions[1]);
    expect(secondJson).to.include('"containerId":"c2"').and.include('"seq":42');
    const h1 = sha256(Buffer.concat([Buffer.alloc(32), sha256(firstJson)]));
    const h2 = sha256(Buffer.concat([h1, sha256(secondJson)]));
    const digest = decisionsDigest(out.decisions);
    expect(digest).to.equal(`0x${h2.toString("hex")}`);
    expect(decisionsDigest([...out.decisions].reverse())).to.equal(digest);
    expect(decisionsDigest([out.decisions[0], { ...out.decisions[1], to: 500 }])).to.not.equal(digest);
    expect(decisionsDigest([])).to.equal(`0x${"0".repeat(64)}`);
  });
});

describe("controller: the fast path (recent CPU, decideFast)", function () {
  const CAP = { cpuMillicores: 1000, memoryMiB: 512 };

  /**
   * Cumulative CPU counters from intervals (oldest first): each `ms` long, using `cpu` millicores,
   * throttled in every CFS period when `throttled` (one CFS period per 100 ms).
   */
  function samples(intervals: Array<{ ms?: number; cpu: number; throttled?: boolean }>): CpuCounters[] {
    const out: CpuCounters[] = [
      { atMs: 10_000, cpuUsageNs: 5e9, cpuPeriods: 500, cpuThrottledPeriods: 20, cpuThrottledNs: 0 },
    ];
    for (const { ms = 100, cpu, throttled = false } of intervals) {
      const last = out[out.length - 1];
      const periods = Math.round(ms / 100);
      out.push({
        atMs: last.atMs + ms,
        cpuUsageNs: last.cpuUsageNs + cpu * ms * 1e3,
        cpuPeriods: last.cpuPeriods + periods,
        cpuThrottledPeriods: last.cpuThrottledPeriods + (throttled ? periods : 0),
        cpuThrottledNs: last.cpuThrottledNs + (throttled ? ms * 0.5e6 : 0),
      });
    }
    return out;
  }
  const idle = (n = 4) => samples(Array.from({ length: n }, () => ({ cpu: 50 })));
  const busy = (limit: number, n = 4) =>
    samples(Array.from({ length: n }, () => ({ cpu: limit, throttled: true })));

  function fast(containers: ControlledContainer[], capacity = CAP, params: ControlInput["params"] = {}) {
    const state = initialControllerState(7);
    return { state, out: decideFast({ deviceId: "7", at: AT, capacity, containers, state, params }) };
  }
  const at = (cpu: number, cpuSamples: CpuCounters[], extra: Partial<ControlledContainer> = {}) =>
    container(extra.containerId ?? "c1", { cpu, mem: 64 }, {}, { ...extra, cpuSamples });

  it("recentCpu: the window, the newest interval, and the starved streak", () => {
    const rows: Array<{ name: string; samples: CpuCounters[]; limit: number; expect: Partial<RecentCpu> }> = [
      {
        name: "one sample: nothing to judge",
        samples: samples([]),
        limit: 100,
        expect: { windowMs: 0, lastMs: 0 },
      },
      {
        name: "window reaches back cpuRecentWindowMs (the newest sample at least that old)",
        samples: samples([{ cpu: 900 }, { cpu: 900 }, { cpu: 50 }, { cpu: 50 }, { cpu: 50 }]),
        limit: 900,
        expect: { windowMs: 300, cpuMillicores: 50, lastMs: 100, lastCpuMillicores: 50, starvedIntervals: 0 },
      },
      {
        name: "shorter than the window right after a change",
        samples: samples([{ cpu: 200 }, { cpu: 400 }]),
        limit: 900,
        expect: { windowMs: 200, cpuMillicores: 300 },
      },
      {
        name: "throttled at its quota: every interval counts",
        samples: busy(100, 3),
        limit: 100,
        expect: { lastThrottledRatio: 1, starvedIntervals: 3 },
      },
      {
        name: "throttled at half its quota (CFS slice artefact): throttled, but not starved",
        samples: samples([
          { cpu: 50, throttled: true },
          { cpu: 50, throttled: true },
        ]),
        limit: 100,
        expect: { lastThrottledRatio: 1, starvedIntervals: 0 },
      },
      {
        name: "the streak counts from the newest interval back",
        samples: samples([{ cpu: 100, throttled: true }, { cpu: 50 }, { cpu: 100, throttled: true }]),
        limit: 100,
        expect: { starvedIntervals: 1 },
      },
    ];
    for (const row of rows) expect(recentCpu(row.samples, row.limit), row.name).to.deep.include(row.expect);
    const restarted = [...busy(100, 2), { ...busy(100, 1)[0], cpuUsageNs: 0, atMs: 99_999 }];
    expect(recentCpu(restarted, 100).windowMs, "counters went backwards").to.equal(0);
  });

  const cases: Array<{
    name: string;
    containers: ControlledContainer[];
    capacity?: { cpuMillicores: number; memoryMiB: number };
    cpu: Record<string, number>;
    decisions: string[];
  }> = [
    {
      name: "nobody starved -> nothing (an idle container keeps its limit: lowering waits for the period)",
      containers: [at(900, idle(), { containerId: "c1" }), at(100, idle(), { containerId: "c2" })],
      cpu: { c1: 900, c2: 100 },
      decisions: [],
    },
    {
      name: "throttled once -> takes the idle slack of a higher-priority neighbour at once (hand-off)",
      containers: [at(900, idle(), { containerId: "c1" }), at(100, busy(100, 1), { containerId: "c2" })],
      cpu: { c1: 100, c2: 900 },
      decisions: ["c1:reclaimed", "c2:throttled"],
    },
    {
      name: "throttled once -> raised into free capacity (x cpuUpFactor)",
      containers: [at(100, busy(100, 1), { containerId: "c1" })],
      cpu: { c1: 1000 },
      decisions: ["c1:throttled"],
    },
    {
      name: "using cpuUtilizationUp of its quota over a whole window, unthrottled -> CPU up (saturated)",
      containers: [at(200, samples([{ cpu: 190 }, { cpu: 195 }, { cpu: 190 }]), { containerId: "c1" })],
      cpu: { c1: 1000 },
      decisions: ["c1:cpu-saturated"],
    },
    {
      name: "throttled once, only a sliver of slack -> no raise (not worth restarting its observation)",
      containers: [
        at(100, busy(100, 1), { containerId: "c1" }),
        // c2's burst is ending: mean (900 + 770 + 100) / 3 = 590 -> keeps 890 of its 900.
        at(900, samples([{ cpu: 900 }, { cpu: 900 }, { cpu: 770 }, { cpu: 100 }]), { containerId: "c2" }),
      ],
      cpu: { c1: 100, c2: 900 },
      decisions: [],
    },
    {
      name: "throttled once -> a busy lower-priority neighbour is not shrunk (first sign only)",
      containers: [at(100, busy(100, 1), { containerId: "c1" }), at(900, busy(900), { containerId: "c2" })],
      cpu: { c1: 100, c2: 900 },
      decisions: [],
    },
    {
      name: "starved for cpuStarvedIntervals -> shrinks the busy lower-priority neighbour (contention)",
      containers: [at(100, busy(100, 2), { containerId: "c1" }), at(900, busy(900), { containerId: "c2" })],
      cpu: { c1: 900, c2: 100 },
      decisions: ["c1:throttled", "c2:contention"],
    },
    {
      name: "throttled twice at half its quota -> still a first sign only: no contention",
      containers: [
        at(
          100,
          samples([
            { cpu: 50, throttled: true },
            { cpu: 50, throttled: true },
          ]),
          { containerId: "c1" },
        ),
        at(900, busy(900), { containerId: "c2" }),
      ],
      cpu: { c1: 100, c2: 900 },
      decisions: [],
    },
    {
      name: "a lower-priority container never shrinks a higher-priority one, however starved",
      containers: [at(900, busy(900), { containerId: "c1" }), at(100, busy(100, 3), { containerId: "c2" })],
      cpu: { c1: 900, c2: 100 },
      decisions: [],
    },
    {
      name: "idle but its limit changed less than a window ago -> its slack is kept (hysteresis)",
      containers: [
        at(900, samples([{ cpu: 50 }, { cpu: 50 }]), { containerId: "c1" }),
        at(100, busy(100, 1), { containerId: "c2" }),
      ],
      cpu: { c1: 900, c2: 100 },
      decisions: [],
    },
    {
      name: "a burst that ended inside the window -> part of the slack now, the rest when the window is idle",
      containers: [
        at(900, samples([{ cpu: 900 }, { cpu: 900 }, { cpu: 50 }, { cpu: 50 }]), { containerId: "c1" }),
        at(100, busy(100, 1), { containerId: "c2" }),
      ],
      // c1's mean over the last 300 ms: (900 + 50 + 50) / 3 = 333 -> keeps 333 * 1.5 = 500.
      cpu: { c1: 500, c2: 500 },
      decisions: ["c1:reclaimed", "c2:throttled"],
    },
    {
      name: "the CPU floors do not fit -> nothing (eviction is the period's decision)",
      containers: [
        at(600, idle(), { containerId: "c1", band: { ...BAND, cpuMillicoresMin: 600 } }),
        at(600, busy(600, 3), { containerId: "c2", band: { ...BAND, cpuMillicoresMin: 600 } }),
      ],
      cpu: { c1: 600, c2: 600 },
      decisions: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { state, out } = fast(c.containers, c.capacity);
      const cpu = Object.fromEntries(Object.entries(out.limits).map(([id, l]) => [id, l.cpuMillicores]));
      expect(cpu).to.deep.equal(c.cpu);
      expect(out.decisions.map((d) => `${d.containerId}:${d.reason}`)).to.deep.equal(c.decisions);
      expect(out.evictions).to.deep.equal([]);
      for (const cc of c.containers) {
        expect(out.limits[cc.containerId].memoryMiB, "memory untouched").to.equal(cc.limits.memoryMiB);
      }
      if (c.decisions.length === 0) expect(out.state, "no decision: the same state").to.equal(state);
    });
  }

  it("records a fast decision like any other: the triggering metric, value and threshold", () => {
    const { out } = fast([
      at(900, idle(), { containerId: "c1" }),
      at(100, busy(100, 1), { containerId: "c2" }),
    ]);
    expect(out.decisions.map((d) => d.seq)).to.deep.equal([7, 8]);
    expect(out.state.seq).to.equal(9);
    expect(out.decisions[1]).to.deep.equal({
      v: 1,
      seq: 8,
      at: AT,
      deviceId: "7",
      placementId: "2",
      containerId: "c2",
      resource: "cpu",
      from: 100,
      to: 900,
      reason: "throttled",
      metric: "cpu.recentThrottledRatio",
      value: 1,
      threshold: DEFAULT_CONTROLLER_PARAMS.cpuThrottledRatioUp,
    });
    expect(out.decisions[0]).to.include({ metric: "device.cpuDemand", value: 1800, threshold: 1000 });
  });

  it("leaves memory alone, even under pressure (that is the period's decision)", () => {
    const c = container(
      "c1",
      { cpu: 100, mem: 64 },
      { memoryWorkingSetMiB: 63 },
      { cpuSamples: busy(100, 1) },
    );
    const { out } = fast([c]);
    expect(out.limits.c1).to.deep.equal({ cpuMillicores: 1000, memoryMiB: 64, memoryReservationMiB: 16 });
    expect(out.decisions.map((d) => d.resource)).to.deep.equal(["cpu"]);
  });

  it("decide() with recent samples: judges what a container does now, not its whole last period", () => {
    // c1's burst ended 400 ms ago; over the whole period it was busy and throttled. c2 steps up now.
    const c1 = (cpuSamples?: CpuCounters[]) =>
      container("c1", { cpu: 900, mem: 64 }, { cpuMillicores: 560, cpuThrottledRatio: 0.6 }, { cpuSamples });
    const c2 = (cpuSamples?: CpuCounters[]) =>
      container("c2", { cpu: 100, mem: 64 }, { cpuMillicores: 60, cpuThrottledRatio: 0.2 }, { cpuSamples });
    const whole = run([c1(), c2()], CAP);
    expect([whole.limits.c1.cpuMillicores, whole.limits.c2.cpuMillicores], "period only").to.deep.equal([
      900, 100,
    ]);
    const recent = run([c1(idle()), c2(busy(100, 1))], CAP);
    expect([recent.limits.c1.cpuMillicores, recent.limits.c2.cpuMillicores], "recent").to.deep.equal([
      100, 900,
    ]);
    expect(recent.decisions.map((d) => `${d.containerId}:${d.reason}:${d.metric}`)).to.deep.equal([
      "c1:reclaimed:device.cpuDemand",
      "c2:throttled:cpu.recentThrottledRatio",
    ]);
  });

  it("never leaves the band or the capacity, with fast ticks between the periods (randomized)", () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const caps = { cpuMillicores: 1500, memoryMiB: 700 };
    const ids = ["c1", "c2", "c3"];
    let limits = ids.map(() => ({ cpuMillicores: 100, memoryMiB: 64, memoryReservationMiB: 16 }));
    const rings: CpuCounters[][] = ids.map(() => samples([]));
    let state = initialControllerState();
    const violations: string[] = [];
    let changed = 0;
    for (let i = 0; i < 1000; i++) {
      const period = i % 10 === 0;
      const cs = limits.map((l, k) => {
        const last = rings[k][rings[k].length - 1];
        const used = random() * l.cpuMillicores;
        const throttled = random() < 0.3;
        rings[k].push({
          atMs: last.atMs + 100,
          cpuUsageNs: last.cpuUsageNs + used * 1e5,
          cpuPeriods: last.cpuPeriods + 1,
          cpuThrottledPeriods: last.cpuThrottledPeriods + (throttled ? 1 : 0),
          cpuThrottledNs: last.cpuThrottledNs,
        });
        rings[k] = rings[k].slice(-5);
        return container(
          ids[k],
          { cpu: l.cpuMillicores, mem: l.memoryMiB },
          {
            cpuMillicores: used,
            cpuThrottledRatio: throttled ? 0.5 : 0,
            memoryWorkingSetMiB: random() * 0.8 * l.memoryMiB,
          },
          { cpuSamples: rings[k] },
        );
      });
      const input = { deviceId: "7", at: AT, capacity: caps, containers: cs, state };
      const out = period ? decide(input) : decideFast(input);
      state = out.state;
      limits = cs.map((c) => out.limits[c.containerId]);
      cs.forEach((c, k) => {
        if (out.limits[c.containerId].cpuMillicores !== c.limits.cpuMillicores) rings[k] = rings[k].slice(-1);
      });
      const cpuSum = limits.reduce((s, l) => s + l.cpuMillicores, 0);
      const memSum = limits.reduce((s, l) => s + l.memoryMiB, 0);
      if (cpuSum > caps.cpuMillicores) violations.push(`tick ${i}: cpu sum ${cpuSum}`);
      if (memSum > caps.memoryMiB) violations.push(`tick ${i}: memory sum ${memSum}`);
      for (const l of limits) {
        if (l.cpuMillicores < BAND.cpuMillicoresMin || l.cpuMillicores > BAND.cpuMillicoresMax)
          violations.push(`tick ${i}: cpu ${l.cpuMillicores}`);
      }
      if (!period && out.decisions.some((d) => d.resource !== "cpu"))
        violations.push(`tick ${i}: fast non-cpu`);
      changed += out.changes.length;
    }
    expect(violations).to.deep.equal([]);
    expect(changed, "the walk exercised the fast path").to.be.greaterThan(100);
  });
});
