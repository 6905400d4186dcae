import { expect } from "chai";
import {
  claimDelayMs,
  claimRank,
  fit,
  rankedClaimDelayMs,
  type DeviceFitInput,
  type FitTerms,
} from "../../../workers/src";

const device: DeviceFitInput = {
  platform: "linux/amd64",
  labels: ["region=eu", "tier=edge"],
  cpuCapacityMillicores: 1000,
  memoryCapacityMiB: 512,
  cpuReservedMillicores: 0,
  memoryReservedMiB: 0,
  load: 0,
};
const terms: FitTerms = {
  platforms: ["linux/amd64"],
  requiredLabels: [],
  cpuMinMillicores: 100,
  memoryMinMiB: 64,
};

describe("scoring: fit and claim delay", function () {
  const refusals: Array<[string, Partial<DeviceFitInput>, Partial<FitTerms>, string, string]> = [
    [
      "another platform",
      { platform: "linux/arm64" },
      {},
      "platform",
      "no image for linux/arm64 (has linux/amd64)",
    ],
    [
      "a missing label",
      {},
      { requiredLabels: ["region=us", "tier=edge"] },
      "labels",
      "missing label(s) region=us",
    ],
    ["too little CPU", { cpuReservedMillicores: 950 }, {}, "cpu", "needs 100m, 50m free"],
    ["too little memory", { memoryReservedMiB: 500 }, {}, "memory", "needs 64 MiB, 12 MiB free"],
  ];
  for (const [name, d, t, reason, detail] of refusals) {
    it(`refuses ${name}`, function () {
      expect(fit({ ...device, ...d }, { ...terms, ...t })).to.deep.equal({ fits: false, reason, detail });
    });
  }

  it("fits exactly at capacity with score from idleness only", function () {
    const result = fit({ ...device, cpuReservedMillicores: 900, memoryReservedMiB: 448 }, terms);
    expect(result).to.deep.equal({ fits: true, score: 0.2 });
  });

  it("prefers the emptier, idler device", function () {
    const empty = fit(device, terms);
    const half = fit({ ...device, cpuReservedMillicores: 500, memoryReservedMiB: 256 }, terms);
    const busy = fit({ ...device, load: 0.9 }, terms);
    if (!empty.fits || !half.fits || !busy.fits) throw new Error("all should fit");
    expect(empty.score).to.be.greaterThan(half.score).and.greaterThan(busy.score);
    // 0.45 × 0.9 + 0.35 × 0.875 + 0.2 × 1
    expect(empty.score).to.be.closeTo(0.91125, 1e-9);
  });

  it("turns a higher score into a shorter delay, bounded by max + jitter", function () {
    const options = { maxDelayMs: 2000, jitterMs: 200 };
    expect(claimDelayMs(1, 0, options)).to.equal(0);
    expect(claimDelayMs(0, 1, options)).to.equal(2200);
    expect(claimDelayMs(0.75, 0.5, options)).to.equal(600);
    expect(claimDelayMs(0.9, 0, options)).to.be.lessThan(claimDelayMs(0.5, 0, options));
    expect(claimDelayMs(Number.NaN, 2, options)).to.equal(2200);
  });
});

describe("scoring: ranked claim order", function () {
  const fleet = Array.from({ length: 200 }, (_, i) => String(i + 1));

  it("gives every online device a different rank, the same whatever order the view lists them in", function () {
    const ranks = fleet.map((id) => claimRank(42, id, fleet));
    expect([...ranks].sort((a, b) => a - b)).to.deep.equal(fleet.map((_, i) => i));
    const shuffled = [...fleet].reverse();
    expect(fleet.map((id) => claimRank(42, id, shuffled))).to.deep.equal(ranks);
  });

  it("orders the fleet differently for each deployment (spreads the first claims)", function () {
    const first = (deployment: number) => fleet.find((id) => claimRank(deployment, id, fleet) === 0);
    const leaders = new Set(Array.from({ length: 50 }, (_, d) => first(d + 1)));
    expect(leaders.size).to.be.above(35);
  });

  it("waits a step per tier of `wanted` ranks, up to the last tier", function () {
    const options = { stepMs: 4_000, tiers: 4, jitterMs: 200 };
    expect(rankedClaimDelayMs(0, 10, 0, options)).to.equal(0);
    expect(rankedClaimDelayMs(9, 10, 0, options)).to.equal(0);
    expect(rankedClaimDelayMs(10, 10, 0, options)).to.equal(4_000);
    expect(rankedClaimDelayMs(999, 10, 1, options)).to.equal(16_200);
    expect(rankedClaimDelayMs(3, 0, 0, options), "wanted 0 counts as 1").to.equal(12_000);
  });
});
