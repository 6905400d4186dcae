// The keeper's ledger and duties (pure, table-driven), and the keeper service's race handling
// against an in-memory registry: when it acts, that a lost race is quiet, that a revert naming a
// newer fact corrects the ledger. The real contracts and workers are in test/e2e/fleet.test.ts.
import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import {
  actAtMs,
  applyKeeperEvent,
  emptyLedger,
  keeperDuties,
  type KeeperDuty,
  type KeeperEvent,
  type KeeperLedger,
} from "../../../workers/src";
import { RegistryError } from "../../../workers/src";
import { createKeeper, type KeeperOutcome } from "../../../workers/src";
import type { ChainBatch, ChainSourceStatus } from "../../../workers/src";
import type { KeeperRegistry, TxResult } from "../../../workers/src";

const ME = "0x00000000000000000000000000000000000000aa";
const OTHER = "0x00000000000000000000000000000000000000bb";
const SELF = { deviceId: 1, address: ME };
const TTL = 20;

const ev = (event: string, timestamp: number, args: Record<string, unknown>): KeeperEvent => ({
  event,
  timestamp,
  args,
});
const enrolled = (deviceId: number, t: number, operator = OTHER, owner = OTHER) =>
  ev("DeviceEnrolled", t, { deviceId, owner, operator });
const heartbeat = (deviceId: number, t: number) => ev("DeviceHeartbeat", t, { deviceId });
const claimed = (placementId: string, deviceId: number, t: number, deviceGeneration = 0) =>
  ev("PlacementClaimed", t, { placementId, deviceId, deploymentId: 1, deviceGeneration });
const confirmed = (placementId: string, t: number) => ev("PlacementConfirmed", t, { placementId });
const expired = (deviceId: number, t: number, generation = 0) =>
  ev("DeviceExpired", t, { deviceId, generation, expiredBy: OTHER, placements: 1 });

function ledgerOf(events: KeeperEvent[], claimDeadlineS: number | null = null): KeeperLedger {
  const ledger = emptyLedger(TTL, claimDeadlineS);
  for (const e of events) applyKeeperEvent(ledger, e);
  return ledger;
}
const brief = (duties: KeeperDuty[]) =>
  duties.map((d) => `${d.kind}(${d.kind === "expireDevice" ? d.deviceId : d.placementId})@${d.dueAt}`);

describe("keeper ledger and duties (pure)", function () {
  const cases: { name: string; events: KeeperEvent[]; claimDeadlineS?: number; duties: string[] }[] = [
    { name: "nothing enrolled: no duty", events: [], duties: [] },
    {
      name: "a device holding nothing is never expired, however stale",
      events: [enrolled(2, 100)],
      duties: [],
    },
    {
      name: "a device holding a placement is due at its last heartbeat + TTL + 1",
      events: [enrolled(2, 100), claimed("11", 2, 105), heartbeat(2, 110)],
      duties: ["expireDevice(2)@131"],
    },
    {
      name: "this device is never expired by itself",
      events: [enrolled(1, 100, ME), claimed("11", 1, 105)],
      duties: [],
    },
    {
      name: "nor a device whose operator is this worker's key",
      events: [enrolled(3, 100, ME), claimed("11", 3, 105)],
      duties: [],
    },
    {
      name: "nor a device whose owner is this worker's key",
      events: [enrolled(3, 100, OTHER, ME), claimed("11", 3, 105)],
      duties: [],
    },
    {
      name: "an operator changed to this worker's key stops the duty",
      events: [
        enrolled(3, 100),
        claimed("11", 3, 105),
        ev("DeviceOperatorChanged", 106, { deviceId: 3, previousOperator: OTHER, newOperator: ME }),
      ],
      duties: [],
    },
    {
      name: "a released placement leaves nothing to expire",
      events: [
        enrolled(2, 100),
        claimed("11", 2, 105),
        ev("PlacementReleased", 106, { placementId: "11", deviceId: 2 }),
      ],
      duties: [],
    },
    {
      name: "an expired device's placements of that generation are finalized at once",
      events: [
        enrolled(2, 100),
        claimed("11", 2, 105),
        claimed("12", 2, 106),
        claimed("21", 3, 106),
        expired(2, 140),
      ],
      duties: ["finalizeExpired(11)@140", "finalizeExpired(12)@140"],
    },
    {
      name: "a claim made after the expiry (a newer generation) stays open",
      events: [enrolled(2, 100), claimed("11", 2, 105), expired(2, 140), claimed("13", 2, 150, 1)],
      duties: ["finalizeExpired(11)@140", "expireDevice(2)@121"],
    },
    {
      name: "a finalized placement is done",
      events: [
        enrolled(2, 100),
        claimed("11", 2, 105),
        expired(2, 140),
        ev("PlacementExpired", 141, { placementId: "11", deviceId: 2 }),
      ],
      duties: [],
    },
    {
      name: "with a claim deadline, a claim of another device is due at claimedAt + deadline",
      events: [enrolled(2, 100), heartbeat(2, 200), claimed("11", 2, 105)],
      claimDeadlineS: 60,
      duties: ["finalizeOverdueClaim(11)@165", "expireDevice(2)@221"],
    },
    {
      name: "a confirmed claim is not overdue",
      events: [enrolled(2, 100), heartbeat(2, 200), claimed("11", 2, 105), confirmed("11", 110)],
      claimDeadlineS: 60,
      duties: ["expireDevice(2)@221"],
    },
    {
      name: "this device's own claims are not finalized by itself",
      events: [enrolled(1, 100, ME), claimed("11", 1, 105)],
      claimDeadlineS: 60,
      duties: [],
    },
    {
      name: "without a claim deadline on chain there is no overdue duty",
      events: [enrolled(2, 100), heartbeat(2, 200), claimed("11", 2, 105)],
      duties: ["expireDevice(2)@221"],
    },
    {
      name: "ClaimDeadlineChanged sets the deadline (the registry's admin, through the timelock)",
      events: [
        enrolled(2, 100),
        heartbeat(2, 200),
        claimed("11", 2, 105),
        ev("ClaimDeadlineChanged", 106, { claimDeadline: 30 }),
      ],
      duties: ["finalizeOverdueClaim(11)@135", "expireDevice(2)@221"],
    },
    {
      name: "a heartbeat older than the one known does not move the time back",
      events: [enrolled(2, 100), claimed("11", 2, 105), heartbeat(2, 130), heartbeat(2, 120)],
      duties: ["expireDevice(2)@151"],
    },
    {
      name: "ParametersChanged moves the TTL",
      events: [
        enrolled(2, 100),
        claimed("11", 2, 105),
        ev("ParametersChanged", 101, { parameters: { heartbeatTtl: 50 } }),
      ],
      duties: ["expireDevice(2)@151"],
    },
  ];
  for (const c of cases)
    it(c.name, function () {
      const duties = keeperDuties(ledgerOf(c.events, c.claimDeadlineS), { self: SELF });
      expect(brief(duties)).to.have.members(c.duties);
      expect(duties).to.have.length(c.duties.length);
    });

  it("orders duties by time, and the ledger keeps no ended placement (no history)", function () {
    const events: KeeperEvent[] = [enrolled(2, 100), enrolled(3, 100), heartbeat(3, 90)];
    for (let i = 1; i <= 500; i++) {
      events.push(claimed(String(i), 2, 100 + i));
      events.push(ev("PlacementReleased", 100 + i, { placementId: String(i), deviceId: 2 }));
    }
    events.push(claimed("9999", 3, 700), claimed("9998", 2, 700));
    const ledger = ledgerOf(events);
    expect(Object.keys(ledger.placements)).to.have.members(["9999", "9998"]);
    expect(brief(keeperDuties(ledger, { self: SELF }))).to.deep.equal([
      "expireDevice(2)@121",
      "expireDevice(3)@121",
    ]);
  });

  it("reports whether an event changed the ledger (re-delivered events change nothing)", function () {
    const ledger = emptyLedger(TTL);
    expect(applyKeeperEvent(ledger, heartbeat(2, 100))).to.equal(true);
    expect(applyKeeperEvent(ledger, heartbeat(2, 100))).to.equal(false);
    expect(applyKeeperEvent(ledger, ev("AppRegistered", 1, { appId: 1 }))).to.equal(false);
    expect(applyKeeperEvent(ledger, confirmed("77", 1))).to.equal(false);
  });

  const jitters: [number, number, number][] = [
    [0, 5000, 100_000],
    [1, 5000, 105_000],
    [0.5, 5000, 102_500],
    [2, 5000, 105_000],
    [0.5, 0, 100_000],
  ];
  for (const [random, jitterMs, expected] of jitters)
    it(`acts at the due time + jitter × random (random ${random}, jitter ${jitterMs} ms)`, function () {
      const duty: KeeperDuty = { kind: "expireDevice", key: "device:2", deviceId: 2, dueAt: 100 };
      expect(actAtMs(duty, random, jitterMs)).to.equal(expected);
    });
});

/** A chain in memory: stale device 2 holds placement 11; the keeper's calls are recorded. */
class FakeKeeperRegistry implements KeeperRegistry {
  readonly address = ME;
  readonly calls: string[] = [];
  /** The next call of each kind reverts with this custom error (and args). */
  readonly reverts = new Map<string, { name: string; args: unknown[] }>();
  deadline: number | undefined = undefined;
  private tx = (): TxResult => ({ hash: `0x${this.calls.length}`, gasUsed: 50_000n, blockNumber: 1 });
  private call(kind: string, target: string | number): TxResult {
    this.calls.push(`${kind}(${target})`);
    const revert = this.reverts.get(kind);
    if (revert)
      throw new RegistryError(`${kind}: reverted with ${revert.name}`, {
        errorName: revert.name,
        errorArgs: revert.args,
      });
    return this.tx();
  }
  expireDevice = async (id: number) => this.call("expireDevice", id);
  finalizeExpired = async (id: string) => this.call("finalizeExpired", id);
  finalizeOverdueClaim = async (id: string) => this.call("finalizeOverdueClaim", id);
  claimDeadlineS = async () => this.deadline;
  heartbeatTtlS = async () => TTL;
}

describe("keeper service (in-memory registry)", function () {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(path.join(tmpdir(), "shoal-keeper-"))));
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  function setup(options: { nowMs: number; random?: number; head?: number }) {
    const registry = new FakeKeeperRegistry();
    const clock = { ms: options.nowMs };
    const status: ChainSourceStatus = {
      chainId: 31337,
      checkpoint: { number: options.head ?? 10, hash: null },
      head: options.head ?? 10,
      safeHead: options.head ?? 10,
    };
    const rewound: number[] = [];
    const outcomes: KeeperOutcome[] = [];
    const keeper = createKeeper({
      registry,
      deviceId: SELF.deviceId,
      source: {
        chainId: 31337,
        startBlock: 1,
        rewind: async (block) => void rewound.push(block),
        status: () => status,
      },
      dataDir: dir,
      logger: pino({ level: "silent" }),
      jitterMs: 4000,
      retryMs: 60_000,
      random: () => options.random ?? 0.5,
      now: () => clock.ms,
      onOutcome: (o) => outcomes.push(o),
    });
    const batch = (toBlock: number, logs: KeeperEvent[]): ChainBatch => ({
      type: "logs",
      chainId: 31337,
      fromBlock: toBlock,
      toBlock,
      toBlockHash: "0x",
      logs: logs.map((e, i) => ({
        ...e,
        id: `31337:0x${toBlock}:${i}`,
        chainId: 31337,
        contract: "PlacementRegistry",
        address: "0x",
        args: e.args as never,
        blockNumber: toBlock,
        blockHash: "0x",
        txHash: "0x",
        logIndex: i,
      })),
    });
    /** Runs the keeper until it has produced `n` outcomes (or 300 ms passed). */
    const runUntil = async (n: number) => {
      const controller = new AbortController();
      const running = keeper.run({ signal: controller.signal });
      const deadline = Date.now() + 300;
      while (outcomes.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      controller.abort();
      await running;
    };
    return { registry, keeper, clock, outcomes, rewound, batch, runUntil, status };
  }

  const stale = [enrolled(2, 100), claimed("11", 2, 105), heartbeat(2, 110)];

  it("expires a stale device once its time + this worker's jitter has passed, not before", async function () {
    const t = setup({ nowMs: 131_000 + 1999, random: 0.5 });
    await t.keeper.open();
    await t.keeper.handle(t.batch(10, stale));
    await t.runUntil(1);
    expect(t.registry.calls, "2 s jitter not yet over").to.deep.equal([]);
    t.clock.ms = 131_000 + 2000;
    await t.runUntil(1);
    expect(t.registry.calls).to.deep.equal(["expireDevice(2)"]);
    expect(t.outcomes.map((o) => o.result)).to.deep.equal(["sent"]);
  });

  it("does nothing while the chain source is still catching up (the ledger is behind)", async function () {
    const t = setup({ nowMs: 1_000_000 });
    await t.keeper.open();
    await t.keeper.handle(t.batch(10, stale));
    t.status.safeHead = 50;
    await t.runUntil(1);
    expect(t.registry.calls).to.deep.equal([]);
  });

  it("a lost race is quiet and not retried until retryMs; a newer heartbeat in the revert moves the time", async function () {
    const t = setup({ nowMs: 200_000 });
    t.registry.reverts.set("expireDevice", { name: "PlacementRegistryDeviceFresh", args: [2, 190] });
    await t.keeper.open();
    await t.keeper.handle(t.batch(10, stale));
    await t.runUntil(2);
    expect(t.outcomes.map((o) => o.result)).to.deep.equal(["lost"]);
    expect(t.keeper.ledger().devices["2"].lastHeartbeat).to.equal(190);
  });

  it("finalizes each expired placement after the device's expiry event", async function () {
    const t = setup({ nowMs: 150_000 });
    await t.keeper.open();
    await t.keeper.handle(
      t.batch(10, [...stale, claimed("12", 2, 106), claimed("31", 3, 106), expired(2, 140)]),
    );
    await t.runUntil(2);
    expect(t.registry.calls).to.have.members(["finalizeExpired(11)", "finalizeExpired(12)"]);
  });

  it("finalizes an overdue claim of another device when the chain has a claim deadline", async function () {
    const t = setup({ nowMs: 105_000 + 60_000 + 2000 });
    t.registry.deadline = 60;
    await t.keeper.open();
    await t.keeper.handle(t.batch(10, [enrolled(2, 100), heartbeat(2, 160), claimed("11", 2, 105)]));
    await t.runUntil(1);
    expect(t.registry.calls).to.deep.equal(["finalizeOverdueClaim(11)"]);
  });

  it("saves the ledger and, restarted, rewinds the source to the saved block, not to the start", async function () {
    const t = setup({ nowMs: 0 });
    await t.keeper.open();
    expect(t.rewound).to.deep.equal([0]);
    await t.keeper.handle(t.batch(10, stale));
    await t.runUntil(0); // a run saves on exit
    const again = setup({ nowMs: 0 });
    await again.keeper.open();
    expect(again.rewound).to.deep.equal([10]);
    expect(Object.keys(again.keeper.ledger().placements)).to.deep.equal(["11"]);
  });
});
