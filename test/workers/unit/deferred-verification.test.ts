// Deferred verification of presences (issue 17): the verifier checks what needs no chain read at
// once and reads a sender's operator only on confirm; the signed bus delivers a deferred
// subscription's messages with confirm(); the election confirms only the presences that can decide
// it. The operator lookup is an in-memory table that counts its calls (the chain read it stands
// for is DeviceRegistry.device(id)); the bus under the signed bus is an in-memory broker of
// retained messages. The same paths against Mosquitto and Hardhat: integration/election.test.ts,
// integration/trust.test.ts.
import { expect } from "chai";
import { Wallet } from "ethers";
import pino from "pino";
import {
  createElection,
  createSealer,
  createSignedBus,
  createVerifier,
  type Bus,
  type BusMessage,
  type Election,
  type SenderView,
} from "../../../workers/src";

const SELF = "500";
type Key = { privateKey: string; address: string };
const keys = new Map<string, Key>();
const keyOf = (id: string): Key => {
  const key = keys.get(id) ?? Wallet.createRandom();
  keys.set(id, key);
  return key;
};

/** Operators by device id, and a lookup that counts its calls; `gate` holds every lookup until opened. */
function chainTable() {
  const table = new Map<string, SenderView>();
  const calls: string[] = [];
  let open: () => void = () => undefined;
  let gate: Promise<void> | undefined;
  return {
    table,
    calls,
    enroll(id: string) {
      table.set(id, { operator: keyOf(id).address, active: true });
    },
    hold() {
      gate = new Promise<void>((resolve) => (open = resolve));
    },
    release() {
      gate = undefined;
      open();
    },
    lookup: async (id: string) => {
      calls.push(id);
      await gate;
      return table.get(id);
    },
  };
}

/** An in-memory broker: retained messages per topic, delivered on subscribe and on publish. */
function memoryBus() {
  const retained = new Map<string, Uint8Array>();
  const handlers: Array<{ filter: RegExp; handler: (m: BusMessage) => void }> = [];
  const toRegExp = (filter: string) => new RegExp(`^${filter.replace(/\+/g, "[^/]+").replace(/#$/, ".*")}$`);
  const bus: Bus = {
    state: "connected",
    ready: async () => undefined,
    on: () => () => undefined,
    close: async () => undefined,
    async publish(topic, payload, options = {}) {
      const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
      if (options.retain) retained.set(topic, bytes);
      for (const h of handlers)
        if (h.filter.test(topic)) h.handler({ topic, payload: bytes, retained: false });
    },
    async subscribe(filter, handler) {
      const entry = { filter: toRegExp(filter), handler };
      handlers.push(entry);
      for (const [topic, payload] of retained)
        if (entry.filter.test(topic)) handler({ topic, payload, retained: true });
      return async () => void handlers.splice(handlers.indexOf(entry), 1);
    },
  };
  return bus;
}

const statusTopic = (id: string) => `shoal/v1/devices/${id}/status`;
const presence = (id: string, status: "online" | "offline", bridge = true) =>
  JSON.stringify({ v: 1, deviceId: id, status, clientId: `c${id}`, reason: "connected", at: "t", bridge });
/** A presence of device `id` sealed by `key` (its operator's unless said otherwise). */
const sealed = (id: string, status: "online" | "offline", key: Key = keyOf(id), at = Date.now()) =>
  createSealer({ operatorKey: key.privateKey, deviceId: id, now: () => at }).seal([
    { topic: statusTopic(id), payload: presence(id, status), retain: true },
  ])[0];

const until = async (what: string, ok: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe("deferred verification: the verifier", function () {
  it("reads no operator until confirm, then once; a sender already read is confirmed at once", async function () {
    const chain = chainTable();
    chain.enroll("1");
    const v = createVerifier({ lookup: chain.lookup });
    const first = await v.check(statusTopic("1"), sealed("1", "online"));
    expect(first).to.include({ ok: true, confirmed: false });
    expect(chain.calls, "no read before confirm").to.deep.equal([]);
    if (!first.ok) throw new Error("unreachable");
    expect((await first.confirm()).ok).to.equal(true);
    expect((await first.confirm()).ok, "a second confirm answers the same").to.equal(true);
    expect(chain.calls).to.deep.equal(["1"]);
    const second = await v.check(statusTopic("1"), sealed("1", "offline", keyOf("1"), Date.now() + 1));
    expect(second, "cached: confirmed at once").to.include({ ok: true, confirmed: true });
    expect(chain.calls, "from the cache").to.deep.equal(["1"]);
  });

  it("drops what needs no chain read at once and counts a failed confirmation by its reason", async function () {
    const chain = chainTable();
    chain.enroll("1");
    const v = createVerifier({ lookup: chain.lookup });
    // Device 2 speaking on device 1's topic: the topic's owner is not the sender, no read needed.
    const moved = createSealer({ operatorKey: keyOf("2").privateKey, deviceId: "2" }).seal([
      { topic: statusTopic("1"), payload: presence("1", "online"), retain: true },
    ])[0];
    expect(await v.check(statusTopic("1"), moved)).to.deep.equal({ ok: false, reason: "forged" });
    expect(await v.check(statusTopic("1"), presence("1", "online"))).to.deep.equal({
      ok: false,
      reason: "unsigned",
    });
    expect(chain.calls).to.deep.equal([]);
    const stranger = await v.check(statusTopic("1"), sealed("1", "online", Wallet.createRandom()));
    if (!stranger.ok) throw new Error("a forged signature passes until confirmed");
    expect((await stranger.confirm()).ok).to.equal(false);
    expect(v.dropped).to.deep.equal({ forged: 2, unsigned: 1 });
  });

  it("records a sequence number only on confirmation: a forged high one does not make genuine messages replayed", async function () {
    const chain = chainTable();
    chain.enroll("1");
    const v = createVerifier({ lookup: chain.lookup });
    const t = Date.now();
    // Forged with a sequence number an hour ahead of the device's own.
    const forged = await v.check(
      statusTopic("1"),
      sealed("1", "offline", Wallet.createRandom(), t + 3_600_000),
    );
    if (!forged.ok) throw new Error("a forged signature passes until confirmed");
    const genuine = await v.check(statusTopic("1"), sealed("1", "online", keyOf("1"), t));
    expect(genuine, "not judged against the unconfirmed number").to.include({ ok: true });
    expect((await forged.confirm()).ok).to.equal(false);
    if (!genuine.ok) throw new Error("unreachable");
    expect((await genuine.confirm()).ok, "genuine after the forged one failed").to.equal(true);
    // And the same through verify (the sender is cached now): the next genuine one is believed.
    expect((await v.verify(statusTopic("1"), sealed("1", "offline", keyOf("1"), t + 1))).ok).to.equal(true);
    // A genuine older one is a replay of the confirmed number.
    expect(await v.check(statusTopic("1"), sealed("1", "online", keyOf("1"), t - 1))).to.deep.equal({
      ok: false,
      reason: "replayed",
    });
    expect(v.dropped).to.deep.equal({ forged: 1, replayed: 1 });
  });
});

describe("deferred verification: the signed bus", function () {
  it("delivers a deferred subscription's messages unconfirmed with confirm(), without prefetching; others in full", async function () {
    const chain = chainTable();
    const inner = memoryBus();
    for (const id of ["1", "2", "3"]) {
      chain.enroll(id);
      await inner.publish(statusTopic(id), sealed(id, "online"), { retain: true });
    }
    await inner.publish(statusTopic("4"), sealed("4", "online", Wallet.createRandom()), { retain: true });
    const bus = createSignedBus({
      bus: inner,
      sealer: createSealer({ operatorKey: keyOf(SELF).privateKey, deviceId: SELF }),
      verifier: createVerifier({ lookup: chain.lookup }),
    });
    const deferred: BusMessage[] = [];
    await bus.subscribe("shoal/v1/devices/+/status", (m) => deferred.push(m), { verify: "deferred" });
    await until("4 deferred presences", () => deferred.length === 4);
    expect(chain.calls, "nothing read").to.deep.equal([]);
    expect(deferred.map((m) => [m.sender, m.confirmed])).to.deep.equal([
      ["1", false],
      ["2", false],
      ["3", false],
      ["4", false],
    ]);
    expect(await deferred[1].confirm!()).to.equal(true);
    expect(await deferred[3].confirm!()).to.equal(false);
    expect(chain.calls).to.deep.equal(["2", "4"]);

    // A full subscription verifies each message before delivering it. Device 2's presence was
    // confirmed above, so its second delivery is a replay (the worker never resubscribes).
    const full: BusMessage[] = [];
    await bus.subscribe("shoal/v1/devices/+/status", (m) => full.push(m));
    await until("2 verified presences", () => full.length === 2);
    await new Promise((r) => setTimeout(r, 20));
    expect(full.map((m) => [m.sender, m.confirm])).to.deep.equal([
      ["1", undefined],
      ["3", undefined],
    ]);
    expect(chain.calls).to.deep.equal(["2", "4", "1", "3"]);
  });
});

describe("deferred verification: the election", function () {
  const elections: Election[] = [];
  const controller = new AbortController();
  after(() => controller.abort());

  async function start(bus: Bus, options: { count?: number; settleMs?: number } = {}) {
    const election = createElection({
      bus,
      deviceId: SELF,
      count: options.count ?? 2,
      candidate: true,
      logger: pino({ level: "silent" }),
      settleMs: options.settleMs ?? 20,
    });
    elections.push(election);
    await election.start({ signal: controller.signal });
    return election;
  }

  /** A fleet of `n` devices (ids 1..n) online, their retained presences on the broker. */
  async function fleet(n: number, forge: string[] = []) {
    const chain = chainTable();
    const inner = memoryBus();
    for (let i = 1; i <= n; i++) {
      const id = String(i);
      chain.enroll(id);
      const key = forge.includes(id) ? Wallet.createRandom() : keyOf(id);
      await inner.publish(statusTopic(id), sealed(id, "online", key), { retain: true });
    }
    const verifier = createVerifier({ lookup: chain.lookup });
    const bus = createSignedBus({
      bus: inner,
      sealer: createSealer({ operatorKey: keyOf(SELF).privateKey, deviceId: SELF }),
      verifier,
    });
    return { chain, inner, bus, verifier };
  }

  it("with 200 presences at start, reads about `count` operators and elects the lowest verified ids", async function () {
    const { chain, bus } = await fleet(200);
    const election = await start(bus);
    await until("an election", () => election.bridges().length === 2);
    expect(election.bridges()).to.deep.equal(["1", "2"]);
    expect(election.isBridge()).to.equal(false);
    expect(chain.calls.length, `operators read: ${chain.calls.join(",")}`).to.be.at.most(2 + 2);
    expect(election.online(), "every presence counts for the claimer's ranking").to.have.length(201);
  });

  it("drops a forged presence of a low id and elects the next id", async function () {
    const { chain, bus, verifier } = await fleet(200, ["1"]);
    const election = await start(bus);
    await until("an election", () => election.bridges().length === 2);
    expect(election.bridges()).to.deep.equal(["2", "3"]);
    expect(verifier.dropped).to.deep.equal({ forged: 1 });
    expect(chain.calls.length, `operators read: ${chain.calls.join(",")}`).to.be.at.most(2 + 3);
    expect(election.online(), "the forged presence is gone once it failed").to.not.include("1");
    expect(election.online(), "unconfirmed presences count").to.include("200");
  });

  it("does not change while a confirmation it depends on is pending: no self-election after the settle period", async function () {
    const { chain, bus } = await fleet(10);
    chain.hold();
    const election = await start(bus, { count: 3 });
    await until("the confirmations to start", () => chain.calls.length >= 3);
    await new Promise((r) => setTimeout(r, 100));
    expect(election.bridges(), "held while the lowest ids are being confirmed").to.deep.equal([]);
    expect(election.isBridge()).to.equal(false);
    expect(election.online()).to.have.length(11);
    chain.release();
    await until("an election", () => election.bridges().length === 3);
    expect(election.bridges()).to.deep.equal(["1", "2", "3"]);
  });

  it("confirms a current bridge's offline before applying it, and ignores a forged one", async function () {
    const { chain, inner, bus, verifier } = await fleet(20);
    const election = await start(bus);
    await until("an election", () => election.bridges().length === 2);
    expect(election.bridges()).to.deep.equal(["1", "2"]);
    await inner.publish(statusTopic("1"), sealed("1", "offline", Wallet.createRandom(), Date.now() + 5), {
      retain: true,
    });
    await until("the forged offline to be dropped", () => verifier.dropped.forged === 1);
    expect(election.bridges(), "a forged offline changes nothing").to.deep.equal(["1", "2"]);
    const before = chain.calls.length;
    await inner.publish(statusTopic("1"), sealed("1", "offline", keyOf("1"), Date.now() + 10), {
      retain: true,
    });
    await until("the genuine offline to move the election", () => election.bridges()[0] !== "1");
    expect(election.bridges()).to.deep.equal(["2", "3"]);
    expect(chain.calls.length - before, "device 3 read; device 1 from the cache").to.equal(1);
    expect(election.online()).to.not.include("1");
  });
});
