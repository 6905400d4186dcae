// The conformance suite of the ChainSource port (workers/src/ports/chain-source.ts): what every
// implementation must do, asserted only through the port, in the style of MQTT.js's
// abstract_store tests. Run it from an integration test with
// `chainSourceConformance(name, makeFixture)`; reorgs, RPC failures and block ranges are proven
// per implementation next to that call (see chain-source.test.ts).
import { expect } from "chai";
import type { ChainBatch, ChainEvent, ChainSource, PollOutcome } from "../../workers/src";
import { rejectionOf } from "./registry-conformance";

export interface ChainSourceFixture {
  /**
   * A source over the fixture's contracts; sources made with the same `state` name share their
   * persisted checkpoint (a restart), others start from the contracts' first block.
   */
  makeSource(options: { confirmations: number; state?: string }): ChainSource;
  /** Causes one contract event in a new block; resolves with its block number. */
  emit(): Promise<number>;
  /** Mines empty blocks. */
  mine(blocks: number): Promise<void>;
  /** Ids (`chainId:txHash:logIndex`) of every event of the contracts up to `toBlock`, in chain order. */
  eventIds(toBlock: number): Promise<string[]>;
  teardown(): Promise<void>;
}

const eventsOf = (batches: ChainBatch[]): ChainEvent[] =>
  batches.flatMap((b) => (b.type === "logs" ? b.logs : []));

/** Polls until idle; returns the batches delivered. */
async function drain(source: ChainSource): Promise<ChainBatch[]> {
  const batches: ChainBatch[] = [];
  let outcome: PollOutcome;
  do {
    outcome = await source.poll(async (b) => void batches.push(b));
  } while (outcome.type !== "idle");
  return batches;
}

export function chainSourceConformance(name: string, makeFixture: () => Promise<ChainSourceFixture>): void {
  describe(`ChainSource conformance: ${name}`, function () {
    this.timeout(120_000);
    let fixture: ChainSourceFixture;
    let states = 0;
    const fresh = (confirmations = 0) => fixture.makeSource({ confirmations, state: `fresh-${++states}` });

    before(async function () {
      fixture = await makeFixture();
    });

    after(async function () {
      await fixture?.teardown();
    });

    it("delivers every event once, in chain order, in contiguous batches, then reports idle", async function () {
      await fixture.emit();
      const source = fresh();
      const before = source.status();
      expect(before.checkpoint.number).to.equal(source.startBlock - 1);
      expect(before.head).to.equal(null);
      const batches = await drain(source);
      const status = source.status();
      const events = eventsOf(batches);
      expect(events.map((e) => e.id)).to.deep.equal(await fixture.eventIds(status.checkpoint.number));
      const logs = batches.filter((b) => b.type === "logs");
      expect(logs[0].fromBlock).to.equal(source.startBlock);
      for (let i = 1; i < logs.length; i++) expect(logs[i].fromBlock).to.equal(logs[i - 1].toBlock + 1);
      expect(logs.at(-1)!.toBlock).to.equal(status.checkpoint.number);
      expect(status.checkpoint.hash).to.equal(logs.at(-1)!.toBlockHash);
      expect(status.safeHead).to.equal(status.checkpoint.number);
      for (const e of events) {
        expect(e.id).to.equal(`${source.chainId}:${e.txHash}:${e.logIndex}`);
        expect(e.chainId).to.equal(source.chainId);
      }
      const idle = await source.poll(async () => expect.fail("nothing new to deliver"));
      expect(idle).to.deep.include({ type: "idle", checkpoint: status.checkpoint.number });
    });

    it("holds an event back until it has the confirmations asked for", async function () {
      const source = fresh(2);
      await drain(source);
      const block = await fixture.emit();
      expect(eventsOf(await drain(source)).some((e) => e.blockNumber === block)).to.equal(false);
      expect(source.status().checkpoint.number).to.be.below(block);
      await fixture.mine(2);
      const later = eventsOf(await drain(source));
      expect(later.filter((e) => e.blockNumber === block)).to.have.length.above(0);
      expect(source.status().checkpoint.number).to.be.at.least(block);
    });

    it("keeps the checkpoint when the handler fails, and delivers the same batch again", async function () {
      const source = fresh();
      await drain(source);
      await fixture.emit();
      const checkpoint = source.status().checkpoint;
      let seen: ChainBatch | undefined;
      const error = await rejectionOf(
        source.poll(async (b) => {
          seen = b;
          throw new Error("handler failed");
        }),
        "poll with a failing handler",
      );
      expect(error.message).to.equal("handler failed");
      expect(source.status().checkpoint).to.deep.equal(checkpoint);
      let again: ChainBatch | undefined;
      await source.poll(async (b) => void (again = b));
      expect(again).to.deep.equal(seen);
    });

    it("resumes a restarted source from the persisted checkpoint without repeating or missing an event", async function () {
      const state = `restart-${++states}`;
      const first = eventsOf(await drain(fixture.makeSource({ confirmations: 0, state })));
      await fixture.emit();
      const second = eventsOf(await drain(fixture.makeSource({ confirmations: 0, state })));
      expect(second.length).to.be.above(0);
      const all = [...first, ...second].map((e) => e.id);
      expect(all).to.deep.equal(await fixture.eventIds(second.at(-1)!.blockNumber));
    });

    it("delivers again everything after the block it is rewound to", async function () {
      const source = fresh();
      const events = eventsOf(await drain(source));
      const middle = events[Math.floor(events.length / 2)];
      await source.rewind(middle.blockNumber - 1);
      expect(source.status().checkpoint.number).to.equal(middle.blockNumber - 1);
      const again = eventsOf(await drain(source));
      expect(again.map((e) => e.id)).to.deep.equal(
        events.filter((e) => e.blockNumber >= middle.blockNumber).map((e) => e.id),
      );
    });

    it("runs until its signal aborts, delivering what arrives meanwhile", async function () {
      const source = fresh();
      await drain(source);
      const controller = new AbortController();
      const delivered: ChainEvent[] = [];
      const running = source.run(
        async (b) => {
          if (b.type === "logs") delivered.push(...b.logs);
        },
        { signal: controller.signal },
      );
      const block = await fixture.emit();
      const deadline = Date.now() + 30_000;
      while (!delivered.some((e) => e.blockNumber === block) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(delivered.map((e) => e.blockNumber)).to.include(block);
      controller.abort();
      await running;
      const settled = await Promise.race([
        source.run(async () => undefined, { signal: AbortSignal.abort() }).then(() => "returned"),
        new Promise((r) => setTimeout(() => r("still running after 5 s"), 5_000)),
      ]);
      expect(settled, "run() with an aborted signal").to.equal("returned");
    });
  });
}
