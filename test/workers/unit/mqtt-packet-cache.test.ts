import { expect } from "chai";
import { execFileSync } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(__dirname, "../../..");

/**
 * Runs `body` in a fresh Node process with the worker's entry point loaded: mqtt-packet's caches are
 * module state, and the other tests of this mocha process (every MQTT client they start) fill them
 * first. Prints what `body` returns, as JSON.
 */
function inFreshProcess<T>(body: string): T {
  const script = `
    const { createRequire } = require("node:module");
    const { primePacketLengthCache } = require("./workers/src");
    // mqtt-packet as mqtt.js loads it: the instance whose length cache the worker primes.
    const mqttRequire = createRequire(require.resolve("mqtt"));
    const packets = mqttRequire("mqtt-packet");
    const result = (() => { ${body} })();
    process.stdout.write(JSON.stringify(result));
  `;
  const out = execFileSync(process.execPath, ["-r", "ts-node/register/transpile-only", "-e", script], {
    cwd: ROOT,
    encoding: "utf8",
  });
  return JSON.parse(out) as T;
}

describe("mqtt bus: mqtt-packet's cache of packet lengths", function () {
  this.timeout(60_000);

  it("holds every length below 16 KiB in a few shared Buffer pool blocks, not one block per length", function () {
    const { lengths, blocks, widths } = inFreshProcess<{
      lengths: number;
      blocks: number;
      widths: string[];
    }>(`
      primePacketLengthCache();
      /** The encoded remaining length of a QoS 0 publish of \`length\` (its 2nd chunk). */
      const lengthChunk = (length) => {
        const chunks = [];
        const sink = { write: (chunk) => chunks.push(chunk) > 0, destroy: (error) => { throw error; } };
        packets.writeToStream({ cmd: "publish", topic: "p", qos: 0, payload: Buffer.alloc(length - 3) }, sink);
        return chunks[1];
      };
      // The way a worker writes: other allocations move the shared pool on between two new
      // lengths. Unprimed, every length would come from a fresh pool block and keep it.
      const blocks = new Set();
      const widths = [];
      let lengths = 0;
      for (let length = 3; length < 16384; length += 97) {
        const chunk = lengthChunk(length);
        if (chunk.byteLength !== (length < 128 ? 1 : 2)) widths.push(length + ": " + chunk.byteLength);
        blocks.add(chunk.buffer);
        lengths++;
        for (let i = 0; i < 3; i++) Buffer.allocUnsafe(Buffer.poolSize >>> 2);
      }
      return { lengths, blocks: blocks.size, widths };
    `);
    expect(widths, "lengths encoded in the wrong number of bytes").to.deep.equal([]);
    expect(lengths).to.equal(169);
    // Priming writes 16,381 packets back to back, each taking 8 bytes of the pool (alignment) for
    // its length and 8 for its topic's length (number cache off): 32 blocks of 8 KiB, 0.25 MiB.
    expect(blocks).to.be.at.most(40);
  });

  it("does not build mqtt-packet's cache of 65,536 two-byte numbers (6.5 MiB) while priming", function () {
    const cached = inFreshProcess<number>(`
      primePacketLengthCache();
      return Object.keys(mqttRequire("mqtt-packet/numbers").cache).length;
    `);
    expect(cached).to.equal(0);
  });
});
