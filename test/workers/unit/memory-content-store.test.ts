// The in-memory content store of hollow devices: the CIDs Kubo gives content of one chunk (the
// reference computation of the ContentStore conformance suite), read back, pinned, bounded.
import { expect } from "chai";
import { randomBytes } from "node:crypto";
import { createMemoryContentStore, isRetryable } from "../../../workers/src";
import { rawLeafCid } from "../../shared/content-store-conformance";

async function readAll(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

describe("in-memory content store", function () {
  it("gives content of one chunk Kubo's CID, however it arrives, and reads it back", async function () {
    const store = createMemoryContentStore();
    const content = randomBytes(300_000);
    async function* pieces() {
      for (let i = 0; i < content.length; i += 65_536) yield content.subarray(i, i + 65_536);
    }
    const added = await store.add(content);
    expect(added).to.deep.equal({ cid: rawLeafCid(content), size: content.length });
    expect(await store.add(pieces())).to.deep.equal(added);
    expect(await readAll(store.cat(added.cid))).to.deep.equal(content);
    expect(await store.isPinned(added.cid)).to.equal(true);
  });

  it("stores nothing for a hash-only add, and refuses a read past maxBytes or of a CID it lacks", async function () {
    const store = createMemoryContentStore();
    const content = randomBytes(2048);
    const { cid } = await store.add(content, { onlyHash: true });
    expect(await store.isPinned(cid)).to.equal(false);
    const missing = await readAll(store.cat(cid)).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(missing?.message).to.include(cid);
    await store.add(content);
    const tooBig = await readAll(store.cat(cid, { maxBytes: 1024 })).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(tooBig?.message).to.include("is larger than");
    expect(isRetryable(tooBig)).to.equal(false);
  });

  it("refuses content of more than one chunk and a string that is not a CID, naming them", async function () {
    const store = createMemoryContentStore();
    const big = await store.add(randomBytes(1024 * 1024 + 1)).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(big?.message).to.match(/more than 1048576 bytes/);
    const bad = await store.pin("not-a-cid").then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(bad?.message).to.include('"not-a-cid"');
  });
});
