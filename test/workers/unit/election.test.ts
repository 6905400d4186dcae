// The bridge election rule (pure, table-driven): who bridges for a given view of the online
// presences, how a presence message changes the view, where a successor takes over, and the
// de-duplication of copies by chain coordinates. The running election is in
// test/workers/integration/election.test.ts.
import { expect } from "chai";
import {
  applyPresence,
  createSeenEvents,
  electBridges,
  SEEN_EVENTS,
  eventCoordinates,
  presencesToConfirm,
  quietThrough,
  sameBridges,
  type PresenceView,
} from "../../../workers/src";
import { loadConfig } from "../../../workers/src";

const view = (entries: Array<[string, boolean, boolean?]>): PresenceView =>
  new Map(entries.map(([id, online, bridge = true]) => [id, { online, bridge }]));
const status = (s: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ v: 1, deviceId: "x", status: s, clientId: "c", reason: "connected", at: "t", ...extra });

describe("election: bridges from the online presences", function () {
  const cases: Array<{ name: string; view: PresenceView; count: number; expected: string[] }> = [
    {
      name: "the k lowest online ids",
      view: view([
        ["3", true],
        ["1", true],
        ["2", true],
      ]),
      count: 2,
      expected: ["1", "2"],
    },
    {
      name: "numeric order, not string order",
      view: view([
        ["10", true],
        ["9", true],
        ["100", true],
      ]),
      count: 2,
      expected: ["9", "10"],
    },
    {
      name: "an offline device is skipped",
      view: view([
        ["1", false],
        ["2", true],
        ["3", true],
      ]),
      count: 2,
      expected: ["2", "3"],
    },
    {
      name: "a device that never bridges is skipped",
      view: view([
        ["1", true, false],
        ["2", true],
        ["3", true],
      ]),
      count: 1,
      expected: ["2"],
    },
    {
      name: "fewer online than k: all of them",
      view: view([
        ["5", true],
        ["6", false],
      ]),
      count: 3,
      expected: ["5"],
    },
    { name: "nobody online: no bridge", view: view([["5", false]]), count: 2, expected: [] },
    {
      name: "ids that are not canonical decimals are ignored",
      view: view([
        ["abc", true],
        ["01", true],
        ["7", true],
      ]),
      count: 2,
      expected: ["7"],
    },
    {
      name: "ids beyond 2^53 compare exactly",
      view: view([
        ["9007199254740993", true],
        ["9007199254740992", true],
      ]),
      count: 1,
      expected: ["9007199254740992"],
    },
  ];
  for (const c of cases) {
    it(c.name, function () {
      expect(electBridges(c.view, c.count)).to.deep.equal(c.expected);
    });
  }

  it("every device computes the same bridges whatever the order it heard the presences in", function () {
    const messages: Array<[string, string]> = [
      ["4", status("online")],
      ["2", status("online")],
      ["3", status("online")],
      ["2", status("offline")],
      ["1", status("online", { bridge: false })],
    ];
    const forwards = messages.reduce((v, [id, p]) => applyPresence(v, id, p), new Map() as PresenceView);
    // Per device the order is kept (MQTT orders one publisher's messages on one topic).
    const interleaved = [messages[4], messages[0], messages[1], messages[2], messages[3]].reduce(
      (v, [id, p]) => applyPresence(v, id, p),
      new Map() as PresenceView,
    );
    expect(electBridges(forwards, 2)).to.deep.equal(["3", "4"]);
    expect(electBridges(interleaved, 2)).to.deep.equal(["3", "4"]);
  });
});

describe("election: presence messages", function () {
  const cases: Array<{
    name: string;
    payload: string;
    expected: { online: boolean; bridge: boolean } | undefined;
  }> = [
    { name: "online", payload: status("online"), expected: { online: true, bridge: true } },
    {
      name: "offline (goodbye or Last Will)",
      payload: status("offline", { reason: "connection-lost" }),
      expected: { online: false, bridge: true },
    },
    {
      name: "online, never a bridge",
      payload: status("online", { bridge: false }),
      expected: { online: true, bridge: false },
    },
    { name: "a cleared retained status removes the device", payload: "", expected: undefined },
  ];
  for (const c of cases) {
    it(c.name, function () {
      const next = applyPresence(view([["1", true]]), "1", c.payload);
      expect(next.get("1")).to.deep.equal(c.expected);
    });
  }

  it("ignores what is not a status and returns the same view when nothing changed", function () {
    const v = view([["1", true]]);
    expect(applyPresence(v, "1", "not json")).to.equal(v);
    expect(applyPresence(v, "1", JSON.stringify({ status: "sleeping" }))).to.equal(v);
    expect(applyPresence(v, "1", status("online"))).to.equal(v);
  });

  it("compares elections by their members", function () {
    expect(sameBridges(["1", "2"], ["1", "2"])).to.equal(true);
    expect(sameBridges(["1", "2"], ["1", "3"])).to.equal(false);
    expect(sameBridges(["1"], ["1", "2"])).to.equal(false);
  });
});

describe("election: which presences are confirmed (deferred verification)", function () {
  const cases: Array<{
    name: string;
    all: PresenceView;
    confirmed: PresenceView;
    current: string[];
    count: number;
    expected: string[];
  }> = [
    {
      name: "at a cold start: only the lowest ids of every presence heard",
      all: view([...Array.from({ length: 200 }, (_, i): [string, boolean] => [String(i + 1), true])]),
      confirmed: view([["500", true]]),
      current: [],
      count: 2,
      expected: ["1", "2", "500"],
    },
    {
      name: "an unconfirmed offline of a current bridge: the bridge and its successor",
      all: view([
        ["1", false],
        ["2", true],
        ["3", true],
        ["4", true],
      ]),
      confirmed: view([
        ["1", true],
        ["2", true],
      ]),
      current: ["1", "2"],
      count: 2,
      expected: ["2", "3", "1"],
    },
    {
      name: "a device the confirmed view would elect though its latest presence says offline",
      all: view([
        ["5", false],
        ["6", true],
      ]),
      confirmed: view([
        ["5", true],
        ["6", true],
      ]),
      current: [],
      count: 1,
      expected: ["6", "5"],
    },
  ];
  for (const c of cases)
    it(c.name, function () {
      expect([...presencesToConfirm(c.all, c.confirmed, c.current, c.count)]).to.deep.equal(c.expected);
    });
});

describe("election: takeover and copies", function () {
  const cases: Array<{ name: string; cursors: number[]; head: number; expected: number }> = [
    { name: "nothing heard: publish everything", cursors: [], head: 50, expected: -1 },
    { name: "the highest cursor heard", cursors: [10, 30, 20], head: 50, expected: 30 },
    {
      name: "a cursor beyond the head (a lie or a faster node) is capped",
      cursors: [1_000_000],
      head: 50,
      expected: 50,
    },
    { name: "garbage is ignored", cursors: [Number.NaN, 1.5, 7], head: 50, expected: 7 },
  ];
  for (const c of cases) {
    it(c.name, function () {
      expect(quietThrough(c.cursors, c.head)).to.equal(c.expected);
    });
  }

  it("passes the first copy of an event and drops the others, whichever bridge sent them", function () {
    const seen = createSeenEvents(3);
    const a = eventCoordinates({ blockHash: "0xAB", logIndex: 0 });
    expect(seen.first(a)).to.equal(true);
    expect(seen.first(eventCoordinates({ blockHash: "0xab", logIndex: 0 }))).to.equal(false);
    expect(seen.first(eventCoordinates({ blockHash: "0xab", logIndex: 1 }))).to.equal(true);
    // Bounded: the oldest coordinates are forgotten first.
    seen.first("c");
    seen.first("d");
    expect(seen.size).to.equal(3);
    expect(seen.first(a)).to.equal(true);
  });

  it("holds at most SEEN_EVENTS coordinates by default, and still knows the newest of them", function () {
    const seen = createSeenEvents();
    const coordinates = (i: number) =>
      eventCoordinates({ blockHash: `0x${i.toString(16).padStart(64, "0")}`, logIndex: i % 7 });
    let firsts = 0;
    for (let i = 0; i < 5 * SEEN_EVENTS; i++) if (seen.first(coordinates(i))) firsts++;
    expect(firsts).to.equal(5 * SEEN_EVENTS);
    expect(seen.size).to.equal(SEEN_EVENTS);
    // A copy within the last SEEN_EVENTS events is recognised; one from before them is not.
    expect(seen.first(coordinates(5 * SEEN_EVENTS - 1))).to.equal(false);
    expect(seen.first(coordinates(4 * SEEN_EVENTS))).to.equal(false);
    expect(seen.first(coordinates(4 * SEEN_EVENTS - 1))).to.equal(true);
  });
});

describe("election: configuration", function () {
  const base = {
    SHOAL_OPERATOR_KEY: `0x${"11".repeat(32)}`,
    SHOAL_DEVICE_ID: "1",
  };
  it("elects 2 bridges by default", function () {
    expect(loadConfig({ env: base }).bridge).to.deep.equal({ enabled: true, count: 2 });
  });
  it("takes 1-5 from SHOAL_BRIDGES", function () {
    expect(loadConfig({ env: { ...base, SHOAL_BRIDGES: "1" } }).bridge.count).to.equal(1);
    expect(loadConfig({ env: { ...base, SHOAL_BRIDGES: "5" } }).bridge.count).to.equal(5);
  });
  for (const value of ["0", "6", "2.5", "two"]) {
    it(`refuses SHOAL_BRIDGES=${value} in one sentence naming the field and the range`, function () {
      expect(() => loadConfig({ env: { ...base, SHOAL_BRIDGES: value } })).to.throw(
        `bridge.count: "${value}" is not allowed; use a whole number from 1 to 5`,
      );
    });
  }
});
