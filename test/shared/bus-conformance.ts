// The conformance suite of the Bus port (workers/src/ports/bus.ts): what every implementation
// must do, asserted only through the port, in the style of MQTT.js's abstract_store tests. Run it
// from an integration test with `busConformance(name, makeFixture)`.
import { expect } from "chai";
import { randomUUID } from "node:crypto";
import { ShoalError, isRetryable } from "../../workers/src";
import type { Bus, BusEvent, BusMessage } from "../../workers/src";
import { rejectionOf } from "./registry-conformance";
import { waitFor } from "./processes";

export interface BusFixture {
  /** A new bus on the real broker; each call is its own connection. */
  connect(): Bus;
  /** A bus whose broker never answers (nothing listens at its address). */
  connectUnreachable(): Bus;
}

const text = (m: BusMessage) => Buffer.from(m.payload).toString("utf8");

export function busConformance(name: string, makeFixture: () => Promise<BusFixture>): void {
  describe(`Bus conformance: ${name}`, function () {
    this.timeout(60_000);
    let fixture: BusFixture;
    const open: Bus[] = [];
    /** A topic root of this run only, so retained messages of other runs never show up. */
    const root = `shoal-test/bus-conformance/${randomUUID()}`;

    const connect = async () => {
      const bus = fixture.connect();
      open.push(bus);
      await bus.ready();
      return bus;
    };
    /** Collects what a subscription receives. */
    const collect = async (bus: Bus, filter: string) => {
      const got: BusMessage[] = [];
      const unsubscribe = await bus.subscribe(filter, (m) => got.push(m));
      return { got, unsubscribe };
    };

    before(async function () {
      fixture = await makeFixture();
    });

    after(async function () {
      await Promise.all(open.map((bus) => bus.close()));
    });

    it("is connected once ready() resolves, and ready() resolves at once afterwards", async function () {
      const bus = await connect();
      expect(bus.state).to.equal("connected");
      await bus.ready();
    });

    it("delivers a publish to a subscriber with its topic and bytes, in call order", async function () {
      const [publisher, subscriber] = await Promise.all([connect(), connect()]);
      const { got } = await collect(subscriber, `${root}/order/#`);
      const payloads = Array.from({ length: 50 }, (_, i) => `message ${i} ✓`);
      await Promise.all(payloads.map((p, i) => publisher.publish(`${root}/order/${i % 3}`, p)));
      await waitFor("50 messages", async () => got.length >= 50, 10_000, 20);
      expect(got.map(text)).to.deep.equal(payloads);
      expect(got[4]).to.deep.include({ topic: `${root}/order/1`, retained: false });
      expect(got[0].payload).to.be.instanceOf(Uint8Array);
    });

    it("delivers on a deferred subscription too: a confirm it gives believes its own publisher's messages", async function () {
      const [publisher, subscriber] = await Promise.all([connect(), connect()]);
      const got: BusMessage[] = [];
      await subscriber.subscribe(`${root}/deferred/+`, (m) => got.push(m), { verify: "deferred" });
      await publisher.publish(`${root}/deferred/a`, '{"x":1}');
      await waitFor("the message", async () => got.length >= 1, 10_000, 20);
      expect(got.map((m) => [m.topic, text(m)])).to.deep.equal([[`${root}/deferred/a`, '{"x":1}']]);
      // A bus that verifies nothing gives no confirm; one that does must confirm a genuine message.
      if (got[0].confirm !== undefined) expect(await got[0].confirm()).to.equal(true);
      else expect(got[0].confirmed).to.equal(undefined);
    });

    it("matches + and # filters as MQTT does", async function () {
      const [publisher, subscriber] = await Promise.all([connect(), connect()]);
      const plus = await collect(subscriber, `${root}/match/+/status`);
      const hash = await collect(subscriber, `${root}/match/#`);
      for (const topic of ["a/status", "a/b/status", "b/status", "b/metrics"]) {
        await publisher.publish(`${root}/match/${topic}`, topic);
      }
      await waitFor("4 messages on #", async () => hash.got.length >= 4, 10_000, 20);
      expect(hash.got.map(text)).to.deep.equal(["a/status", "a/b/status", "b/status", "b/metrics"]);
      expect(plus.got.map(text)).to.deep.equal(["a/status", "b/status"]);
    });

    it("hands a retained message to a later subscriber, marked retained", async function () {
      const publisher = await connect();
      const topic = `${root}/retained`;
      await publisher.publish(topic, "desired state", { retain: true });
      const late = await connect();
      const { got } = await collect(late, topic);
      await waitFor("the retained message", async () => got.length >= 1, 10_000, 20);
      expect(got.map((m) => [text(m), m.retained])).to.deep.equal([["desired state", true]]);
      // An empty retained payload clears it: the next subscriber gets nothing.
      await publisher.publish(topic, "", { retain: true });
    });

    it("hands every retained message to a subscriber that is busy when the broker answers", async function () {
      const publisher = await connect();
      const topics = [1, 2, 3].map((i) => `${root}/busy/${i}/status`);
      for (const topic of topics) await publisher.publish(topic, `online ${topic}`, { retain: true });
      const late = await connect();
      const got: BusMessage[] = [];
      const subscribed = late.subscribe(`${root}/busy/+/status`, (m) => got.push(m));
      // A worker busy with its start (a chain catch-up, a reconcile pass) reads the SUBACK and
      // the retained messages behind it in one go: hold the event loop while they arrive.
      const until = Date.now() + 200;
      while (Date.now() < until);
      await subscribed;
      await waitFor("the three retained messages", async () => got.length >= 3, 10_000, 20);
      expect(got.map(text).sort()).to.deep.equal(topics.map((t) => `online ${t}`).sort());
      for (const topic of topics) await publisher.publish(topic, "", { retain: true });
    });

    it("stops one subscription on unsubscribe and keeps another on the same filter", async function () {
      const [publisher, subscriber] = await Promise.all([connect(), connect()]);
      const filter = `${root}/unsubscribe`;
      const first = await collect(subscriber, filter);
      const second = await collect(subscriber, filter);
      const marker = await collect(subscriber, `${root}/marker`);
      await publisher.publish(filter, "both");
      await waitFor(
        "the first message on both",
        async () => first.got.length + second.got.length >= 2,
        10_000,
        20,
      );
      await first.unsubscribe();
      await publisher.publish(filter, "second only");
      // One publisher, one subscriber connection: the broker keeps their order, so when the marker
      // has arrived every earlier message has too.
      await publisher.publish(`${root}/marker`, "done");
      await waitFor("the marker", async () => marker.got.length >= 1, 10_000, 20);
      expect(first.got.map(text)).to.deep.equal(["both"]);
      expect(second.got.map(text)).to.deep.equal(["both", "second only"]);
      await first.unsubscribe(); // a second call is harmless
    });

    it("reports connection events to listeners until they stop listening", async function () {
      const bus = fixture.connect();
      open.push(bus);
      const events: BusEvent["type"][] = [];
      const stop = bus.on((e) => events.push(e.type));
      await bus.ready();
      expect(events).to.include("connected");
      stop();
      await bus.close();
      expect(events).to.not.include("closed");
    });

    it("closes: state closed, a 'closed' event, and ready() and publish() reject afterwards", async function () {
      const bus = await connect();
      const events: BusEvent["type"][] = [];
      bus.on((e) => events.push(e.type));
      await bus.close();
      expect(bus.state).to.equal("closed");
      expect(events).to.include("closed");
      expect(await rejectionOf(bus.ready(), "ready() after close")).to.be.instanceOf(ShoalError);
      expect(await rejectionOf(bus.publish(`${root}/closed`, "x"), "publish after close")).to.be.instanceOf(
        ShoalError,
      );
      await bus.close(); // idempotent
    });

    it("rejects a publish at once while disconnected, retryable, and reports it", async function () {
      const bus = fixture.connectUnreachable();
      open.push(bus);
      const failures: string[] = [];
      bus.on((e) => e.type === "publish-failed" && failures.push(e.topic));
      const started = performance.now();
      const error = await rejectionOf(bus.publish(`${root}/nowhere`, "x"), "a publish while disconnected");
      // "Never queues behind a dead connection": no connect timeout, no retry may come first.
      expect(performance.now() - started).to.be.below(250);
      expect(error).to.be.instanceOf(ShoalError);
      expect(isRetryable(error)).to.equal(true);
      expect(failures).to.deep.equal([`${root}/nowhere`]);
    });

    it("rejects ready() on an aborted signal, already aborted or aborted while waiting", async function () {
      const bus = fixture.connectUnreachable();
      open.push(bus);
      const aborted = await rejectionOf(bus.ready({ signal: AbortSignal.abort() }), "ready() aborted");
      expect(aborted).to.be.instanceOf(ShoalError);
      expect(aborted.message).to.match(/aborted/);
      const controller = new AbortController();
      const waiting = bus.ready({ signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      expect((await rejectionOf(waiting, "ready() aborted while waiting")).message).to.match(/aborted/);
    });

    it("rejects a publish with an already aborted signal and sends nothing", async function () {
      const [publisher, subscriber] = await Promise.all([connect(), connect()]);
      const topic = `${root}/aborted`;
      const { got } = await collect(subscriber, topic);
      const marker = await collect(subscriber, `${root}/aborted-marker`);
      const error = await rejectionOf(
        publisher.publish(topic, "never", { signal: AbortSignal.abort() }),
        "a publish with an aborted signal",
      );
      expect(error.message).to.match(/aborted/);
      await publisher.publish(`${root}/aborted-marker`, "done");
      await waitFor("the marker", async () => marker.got.length >= 1, 10_000, 20);
      expect(got).to.deep.equal([]);
    });
  });
}
