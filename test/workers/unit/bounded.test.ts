// The worker's long-lived collections stay bounded: a size-capped cache and ids kept as ranges.
import { expect } from "chai";
import { IdRanges, setBounded } from "../../../workers/src";

describe("bounded: a cache capped in size", () => {
  it("test_setBounded_dropsTheOldestPastTheCap", () => {
    const map = new Map<number, string>();
    for (let i = 1; i <= 2_000; i++) setBounded(map, i, `v${i}`, 100);
    expect(map.size).to.equal(100);
    expect(map.has(1900)).to.equal(false);
    expect(map.get(1901)).to.equal("v1901");
    expect(map.get(2000)).to.equal("v2000");
  });

  it("test_setBounded_replacingAKeyKeepsTheSize", () => {
    const map = new Map([["a", 1]]);
    setBounded(map, "a", 2, 1);
    expect([...map]).to.deep.equal([["a", 2]]);
  });
});

describe("bounded: ids as ranges", () => {
  const cases: Array<{ name: string; add: number[]; ranges: number; has: number[]; lacks: number[] }> = [
    { name: "in order", add: [1, 2, 3, 4], ranges: 1, has: [1, 4], lacks: [0, 5] },
    { name: "in reverse", add: [4, 3, 2, 1], ranges: 1, has: [1, 2, 3, 4], lacks: [5] },
    { name: "a gap filled last joins two ranges", add: [1, 2, 4, 5, 3], ranges: 1, has: [3], lacks: [6] },
    { name: "with a hole", add: [2, 3, 5, 6], ranges: 2, has: [2, 6], lacks: [1, 4, 7] },
    { name: "repeated", add: [7, 7, 7], ranges: 1, has: [7], lacks: [6, 8] },
  ];
  for (const c of cases) {
    it(`test_IdRanges_${c.name.replace(/\W+/g, "_")}`, () => {
      const ids = new IdRanges();
      for (const id of c.add) ids.add(id);
      expect(ids.rangeCount).to.equal(c.ranges);
      for (const id of c.has) expect(ids.has(id), `has ${id}`).to.equal(true);
      for (const id of c.lacks) expect(ids.has(id), `lacks ${id}`).to.equal(false);
    });
  }

  it("test_IdRanges_holdsTwoRangesForTheSoaksPattern", () => {
    // Deployment 1 runs throughout; 2, 3, ... are created and stopped one after another.
    const ids = new IdRanges();
    for (let id = 2; id <= 10_000; id++) ids.add(id);
    expect(ids.rangeCount).to.equal(1);
    expect(ids.has(1)).to.equal(false);
    ids.add(10_002);
    expect(ids.rangeCount).to.equal(2);
  });

  it("test_IdRanges_agreesWithASetOnRandomIds", () => {
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const ids = new IdRanges();
    const set = new Set<number>();
    for (let i = 0; i < 2_000; i++) {
      const id = Math.floor(random() * 500);
      ids.add(id);
      set.add(id);
    }
    for (let id = 0; id < 520; id++) expect(ids.has(id), `id ${id}`).to.equal(set.has(id));
  });
});
