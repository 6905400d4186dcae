import { expect } from "chai";
import { createRequire } from "node:module";
import { primePacketLengthCache } from "../../../workers/src";

// mqtt-packet as mqtt.js loads it: the instance whose length cache the worker primes.
const packets = createRequire(require.resolve("mqtt"))("mqtt-packet") as {
  writeToStream(
    packet: object,
    stream: { write(chunk: Uint8Array): boolean; destroy(error?: Error): void },
  ): boolean;
};

/** The encoded remaining length mqtt-packet writes for a QoS 0 publish of `length` (its 2nd chunk). */
function lengthChunk(length: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  const sink = {
    write: (chunk: Uint8Array) => chunks.push(chunk) > 0,
    destroy: (error?: Error) => {
      throw error;
    },
  };
  packets.writeToStream({ cmd: "publish", topic: "p", qos: 0, payload: Buffer.alloc(length - 3) }, sink);
  return chunks[1];
}

describe("mqtt bus: mqtt-packet's cache of packet lengths", function () {
  it("holds every length below 16 KiB in a few shared Buffer pool blocks, not one block per length", function () {
    primePacketLengthCache();
    // The way a worker writes: other allocations move the shared pool on between two new lengths.
    // Unprimed, every length would come from a fresh pool block and keep it (8 KiB for 2 bytes).
    const blocks = new Set<ArrayBufferLike>();
    let lengths = 0;
    for (let length = 3; length < 16_384; length += 97) {
      const chunk = lengthChunk(length);
      expect(chunk.byteLength, `bytes encoding ${length}`).to.equal(length < 128 ? 1 : 2);
      blocks.add(chunk.buffer);
      lengths++;
      Buffer.allocUnsafe(Buffer.poolSize >>> 2);
      Buffer.allocUnsafe(Buffer.poolSize >>> 2);
      Buffer.allocUnsafe(Buffer.poolSize >>> 2);
    }
    expect(lengths).to.equal(169);
    // Priming writes 16,381 packets back to back, each taking 8 bytes of the pool (alignment) for
    // its length and 8 for its topic's length (number cache off): 32 blocks of 8 KiB, 0.25 MiB.
    expect(blocks.size).to.be.at.most(40);
  });

  it("does not build mqtt-packet's cache of 65,536 two-byte numbers (6.5 MiB) while priming", function () {
    primePacketLengthCache();
    const numbers = createRequire(require.resolve("mqtt"))("mqtt-packet/numbers") as {
      cache: Record<number, Buffer>;
    };
    expect(Object.keys(numbers.cache)).to.have.length(0);
  });
});
