/**
 * An in-memory content store for hollow devices: content of one chunk (at most 1 MiB, what a
 * manifest and a hollow image tar are) under the CID Kubo gives it with IMPORT_SETTINGS (CIDv1, raw
 * leaf, sha2-256), so a CID on chain names the same bytes here and on a real node. One store is
 * shared by every hollow device of a process, as a swarm that already holds every block; larger
 * content (a DAG of several chunks) is refused. It has no swarm: it names no peer of its own and
 * only remembers which peers it was asked to keep.
 */
import { createHash } from "node:crypto";
import { ShoalError } from "../errors";
import type { AddOptions, AddResult, CatOptions, ContentStore } from "../ports/content-store";

const CHUNK = 1024 * 1024;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

export class MemoryContentStoreError extends ShoalError {
  override name = "MemoryContentStoreError";
}

/** The CID of content of at most one chunk: CIDv1, raw codec, sha2-256, base32 ("b..."). */
export function rawLeafCid(content: Uint8Array): string {
  const bytes = Buffer.concat([
    Buffer.from([0x01, 0x55, 0x12, 0x20]),
    createHash("sha256").update(content).digest(),
  ]);
  let bits = 0;
  let value = 0;
  let out = "b";
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

function checkCid(cid: string): void {
  if (!/^b[a-z2-7]{20,}$/.test(cid))
    throw new MemoryContentStoreError(`"${cid}" is not a CID; expected a CIDv1 such as "bafk..."`);
}

function checkSignal(signal?: AbortSignal): void {
  if (signal?.aborted) throw new MemoryContentStoreError("aborted", { cause: signal.reason });
}

export function createMemoryContentStore(): ContentStore {
  const blocks = new Map<string, Uint8Array>();
  const pins = new Set<string>();
  const kept = new Map<string, string>();

  return {
    async add(content, options: AddOptions = {}): Promise<AddResult> {
      checkSignal(options.signal);
      const parts: Buffer[] = [];
      let size = 0;
      for await (const chunk of content instanceof Uint8Array ? [content] : content) {
        size += chunk.byteLength;
        if (size > CHUNK) {
          throw new MemoryContentStoreError(
            `content of more than ${CHUNK} bytes needs a DAG of chunks, which the in-memory store does not build`,
          );
        }
        parts.push(Buffer.from(chunk));
        options.onProgress?.(size);
      }
      const bytes = Buffer.concat(parts);
      const cid = rawLeafCid(bytes);
      if (!options.onlyHash) {
        blocks.set(cid, bytes);
        pins.add(cid);
      }
      return { cid, size: bytes.length };
    },

    async *cat(cid: string, options: CatOptions = {}) {
      checkCid(cid);
      checkSignal(options.signal);
      const bytes = blocks.get(cid);
      if (bytes === undefined) {
        // A real node would look for providers; here nobody else can have it.
        throw new MemoryContentStoreError(`${cid} is not in the in-memory store`);
      }
      if (options.maxBytes !== undefined && bytes.length > options.maxBytes)
        throw new MemoryContentStoreError(`${cid} is larger than the ${options.maxBytes} bytes allowed`);
      yield bytes;
    },

    async isPinned(cid, { signal } = {}) {
      checkCid(cid);
      checkSignal(signal);
      return pins.has(cid);
    },

    async pin(cid, { signal } = {}) {
      checkCid(cid);
      checkSignal(signal);
      if (!blocks.has(cid)) throw new MemoryContentStoreError(`${cid} is not in the in-memory store`);
      pins.add(cid);
    },

    async unpin(cid, { signal } = {}) {
      checkCid(cid);
      checkSignal(signal);
      pins.delete(cid);
    },

    async identity({ signal } = {}) {
      checkSignal(signal);
      return { peerId: "", addresses: [] };
    },

    async keptPeers({ signal } = {}) {
      checkSignal(signal);
      return [...kept.keys()];
    },

    async keepPeer(multiaddr, { signal } = {}) {
      checkSignal(signal);
      const peerId = /\/p2p\/([^/]+)$/.exec(multiaddr)?.[1];
      if (!peerId) throw new MemoryContentStoreError(`"${multiaddr}" does not end in /p2p/<peer id>`);
      kept.set(peerId, multiaddr);
    },

    async dropPeer(peerId, { signal } = {}) {
      checkSignal(signal);
      kept.delete(peerId);
    },
  };
}
