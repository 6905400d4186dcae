// The conformance suite of the ContentStore port (workers/src/ports/content-store.ts): what every
// implementation must do, asserted only through the port, in the style of MQTT.js's
// abstract_store tests. Run it from an integration test with
// `contentStoreConformance(name, makeFixture)`.
import { expect } from "chai";
import { createHash, randomBytes } from "node:crypto";
import { ShoalError, isRetryable } from "../../workers/src";
import type { ContentStore } from "../../workers/src";
import { rejectionOf } from "./registry-conformance";

export interface ContentStoreFixture {
  store: ContentStore;
  /** The same kind of store at an address where nothing answers. */
  unreachable: ContentStore;
}

const MiB = 1024 * 1024;

/**
 * The CID of content of at most one chunk (1 MiB) under IMPORT_SETTINGS, computed here from the
 * spec rather than by any IPFS library: CIDv1 (0x01), raw codec (0x55), sha2-256 multihash
 * (0x12, 32 bytes), in multibase base32 lower case ("b" prefix, no padding).
 */
export function rawLeafCid(content: Uint8Array): string {
  const bytes = Buffer.concat([
    Buffer.from([0x01, 0x55, 0x12, 0x20]),
    createHash("sha256").update(content).digest(),
  ]);
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let bits = 0;
  let value = 0;
  let out = "b";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

async function readAll(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

async function* inPieces(content: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < content.length; i += size) yield content.subarray(i, i + size);
}

export function contentStoreConformance(name: string, makeFixture: () => Promise<ContentStoreFixture>): void {
  describe(`ContentStore conformance: ${name}`, function () {
    this.timeout(60_000);
    let store: ContentStore;
    let fixture: ContentStoreFixture;

    before(async function () {
      fixture = await makeFixture();
      store = fixture.store;
    });

    it("gives content of one chunk the CID the import settings define, and reads it back", async function () {
      const content = randomBytes(4096);
      const added = await store.add(content);
      expect(added).to.deep.equal({ cid: rawLeafCid(content), size: content.length });
      expect(await readAll(store.cat(added.cid))).to.deep.equal(content);
    });

    it("gives the same CID for the same bytes however they arrive, and reads several chunks back whole", async function () {
      // 2.5 chunks: a DAG of three raw leaves under one root.
      const content = randomBytes(2.5 * MiB);
      const progress: number[] = [];
      const whole = await store.add(content, { onProgress: (bytes) => progress.push(bytes) });
      const streamed = await store.add(inPieces(content, 64 * 1024));
      expect(streamed).to.deep.equal(whole);
      expect(whole.size).to.equal(content.length);
      expect(whole.cid).to.match(/^bafy/); // dag-pb root: more than one chunk
      expect(progress.at(-1)).to.equal(content.length);
      expect(progress).to.deep.equal([...progress].sort((a, b) => a - b));
      expect(await readAll(store.cat(whole.cid))).to.deep.equal(content);
    });

    it("computes the CID without storing when asked for the hash only", async function () {
      const content = randomBytes(2048);
      const hashed = await store.add(content, { onlyHash: true });
      expect(hashed.cid).to.equal(rawLeafCid(content));
      expect(await store.isPinned(hashed.cid)).to.equal(false);
      expect(await store.add(content)).to.deep.equal(hashed);
      expect(await store.isPinned(hashed.cid)).to.equal(true);
    });

    it("pins idempotently, so garbage collection keeps the content", async function () {
      const { cid } = await store.add(randomBytes(1024));
      await store.pin(cid);
      await store.pin(cid);
      expect(await store.isPinned(cid)).to.equal(true);
    });

    it("stops reading past maxBytes with a final error", async function () {
      const content = randomBytes(3 * MiB);
      const { cid } = await store.add(content);
      const error = await rejectionOf(readAll(store.cat(cid, { maxBytes: MiB })), "cat past maxBytes");
      expect(error).to.be.instanceOf(ShoalError);
      expect(isRetryable(error)).to.equal(false);
      expect(error.message).to.include(cid);
      expect(await readAll(store.cat(cid, { maxBytes: content.length }))).to.have.length(content.length);
    });

    it("refuses a string that is not a CID, naming it", async function () {
      for (const call of [
        () => readAll(store.cat("not-a-cid")),
        () => store.isPinned("not-a-cid"),
        () => store.pin("not-a-cid"),
      ]) {
        const error = await rejectionOf(call(), "a call with a bad CID");
        expect(error).to.be.instanceOf(ShoalError);
        expect(error.message).to.include('"not-a-cid"');
        expect(isRetryable(error)).to.equal(false);
      }
    });

    it("rejects on an aborted signal", async function () {
      const signal = AbortSignal.abort();
      const { cid } = await store.add(randomBytes(512));
      for (const [method, call] of [
        ["add", () => store.add(randomBytes(512), { signal })],
        ["cat", () => readAll(store.cat(cid, { signal }))],
        ["isPinned", () => store.isPinned(cid, { signal })],
        ["pin", () => store.pin(cid, { signal })],
      ] as const) {
        const error = await rejectionOf(call(), `${method} with an aborted signal`);
        expect(error, method).to.be.instanceOf(ShoalError);
        expect(isRetryable(error), method).to.equal(false);
      }
    });

    it("gives a retryable error when the node cannot be reached", async function () {
      const error = await rejectionOf(fixture.unreachable.add(randomBytes(16)), "add to an unreachable node");
      expect(error).to.be.instanceOf(ShoalError);
      expect(isRetryable(error)).to.equal(true);
    });
  });
}
