/** ContentStore over a Kubo node's RPC API (kubo-rpc-client). */
import { CID, create } from "kubo-rpc-client";
import { ShoalError } from "../errors";
import { IMPORT_SETTINGS, type AddOptions, type CatOptions, type ContentStore } from "../ports/content-store";

export interface KuboContentStoreOptions {
  /** RPC API URL, e.g. http://127.0.0.1:5401. */
  url: string;
}

export class ContentStoreError extends ShoalError {
  override name = "ContentStoreError";
}

/** Connection failures are worth retrying; anything Kubo answered with is not. */
function translate(action: string, url: string, error: unknown): ContentStoreError {
  if (error instanceof ContentStoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const unreachable = /ECONNREFUSED|ECONNRESET|fetch failed|socket hang up|ETIMEDOUT/i.test(
    `${message} ${error instanceof Error && error.cause instanceof Error ? error.cause.message : ""}`,
  );
  return new ContentStoreError(
    unreachable ? `Kubo at ${url} is not reachable (${action})` : `Kubo could not ${action}`,
    { cause: error, retryable: unreachable },
  );
}

function parseCid(cid: string): CID {
  try {
    return CID.parse(cid);
  } catch (error) {
    throw new ContentStoreError(`"${cid}" is not a CID; expected a CIDv1 such as "bafk..."`, {
      cause: error,
    });
  }
}

export function createKuboContentStore({ url }: KuboContentStoreOptions): ContentStore {
  const kubo = create({ url });
  return {
    async add(content, options: AddOptions = {}) {
      let size = 0;
      try {
        const result = await kubo.add(content, {
          ...IMPORT_SETTINGS,
          onlyHash: options.onlyHash ?? false,
          pin: !options.onlyHash,
          signal: options.signal,
          progress: (bytes) => {
            size = bytes;
            options.onProgress?.(bytes);
          },
        });
        // result.size is the DAG's cumulative size (content plus the root's links) for content of
        // more than one chunk; the port promises the content's bytes, which progress counted.
        return { cid: result.cid.toString(), size: size > 0 ? size : result.size };
      } catch (error) {
        throw translate("add content", url, error);
      }
    },

    async *cat(cid, options: CatOptions = {}) {
      const parsed = parseCid(cid);
      let received = 0;
      try {
        for await (const chunk of kubo.cat(parsed, { signal: options.signal })) {
          received += chunk.byteLength;
          if (options.maxBytes !== undefined && received > options.maxBytes) {
            throw new ContentStoreError(`${cid} is larger than the ${options.maxBytes} bytes allowed`);
          }
          yield chunk;
        }
      } catch (error) {
        throw translate(`read ${cid}`, url, error);
      }
    },

    async isPinned(cid, options = {}) {
      const parsed = parseCid(cid);
      try {
        for await (const pin of kubo.pin.ls({ paths: [parsed], signal: options.signal })) {
          if (pin.cid.equals(parsed)) return true;
        }
        return false;
      } catch (error) {
        // Kubo answers "not pinned" as an error rather than an empty list.
        if (error instanceof Error && /not pinned/i.test(error.message)) return false;
        throw translate(`check the pin of ${cid}`, url, error);
      }
    },

    async pin(cid, options = {}) {
      const parsed = parseCid(cid);
      try {
        await kubo.pin.add(parsed, { recursive: true, signal: options.signal });
      } catch (error) {
        throw translate(`pin ${cid}`, url, error);
      }
    },
  };
}
