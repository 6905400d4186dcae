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
  /** One RPC call of the API that kubo-rpc-client does not cover (swarm peering). */
  async function rpc<T>(
    action: string,
    command: string,
    args: string[],
    signal: AbortSignal | undefined,
  ): Promise<T> {
    const query = args.map((a) => `arg=${encodeURIComponent(a)}`).join("&");
    let response: Response;
    try {
      response = await fetch(`${url}/api/v0/${command}${query ? `?${query}` : ""}`, {
        method: "POST",
        signal,
      });
    } catch (error) {
      throw translate(action, url, error);
    }
    const text = await response.text();
    if (!response.ok) {
      let message = text;
      try {
        message = (JSON.parse(text) as { Message?: string }).Message ?? text;
      } catch {
        // not JSON: keep the text
      }
      throw new ContentStoreError(`Kubo could not ${action}: ${message.trim()}`);
    }
    return (text ? JSON.parse(text) : {}) as T;
  }

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

    async unpin(cid, options = {}) {
      const parsed = parseCid(cid);
      try {
        await kubo.pin.rm(parsed, { recursive: true, signal: options.signal });
      } catch (error) {
        if (error instanceof Error && /not pinned/i.test(error.message)) return;
        throw translate(`unpin ${cid}`, url, error);
      }
    },

    async identity(options = {}) {
      const id = await rpc<{ ID: string; Addresses: string[] | null }>(
        "read its identity",
        "id",
        [],
        options.signal,
      );
      return { peerId: id.ID, addresses: id.Addresses ?? [] };
    },

    async keptPeers(options = {}) {
      const list = await rpc<{ Peers: { ID: string }[] | null }>(
        "list its peering set",
        "swarm/peering/ls",
        [],
        options.signal,
      );
      return (list.Peers ?? []).map((p) => p.ID);
    },

    async keepPeer(multiaddr, options = {}) {
      await rpc("add a peer to its peering set", "swarm/peering/add", [multiaddr], options.signal);
      // Peering dials in the background with a backoff; one dial now makes the peer usable at once.
      await rpc("connect to a peer", "swarm/connect", [multiaddr], options.signal).catch((error: unknown) => {
        if (options.signal?.aborted || (error instanceof ContentStoreError && error.retryable)) throw error;
      });
    },

    async dropPeer(peerId, options = {}) {
      await rpc("remove a peer from its peering set", "swarm/peering/rm", [peerId], options.signal).catch(
        (error: unknown) => {
          if (error instanceof ContentStoreError && !error.retryable && /not|unknown/i.test(error.message))
            return;
          throw error;
        },
      );
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
