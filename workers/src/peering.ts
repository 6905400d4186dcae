/**
 * Peering: keeps this device's Kubo node connected to the fleet peers it needs, found on chain
 * (domain/peer-book.ts), so that bitswap fetches a version's content from whichever of them holds
 * it: the publisher's node announced at `app:publish`, or another device that runs the version
 * (a device keeps what it runs pinned, so it serves it on).
 *
 * The peer book is derived from the chain source's batches and saved in dataDir (like the keeper's
 * ledger); `open()` rewinds the source to the saved block, so a first start reads the history once.
 * `run()` syncs the Kubo node's peering set with choosePeers() on every change of the book, every
 * `refreshMs`, and before each fetch (`prepareFetch`, which focuses the fetched version's providers).
 * Only peers the book knows are ever dropped: peers an operator added by hand stay.
 *
 * The device's own endpoint: once the book is caught up, the enrolled endpoint's peer id is compared
 * with the Kubo node's; when they differ the worker sets the endpoint on chain (`updateEndpoint`)
 * or warns once, since other devices could not fetch from this one.
 */
import path from "node:path";
import type { Logger } from "pino";
import { applyPeerEvent, choosePeers, emptyPeerBook, peerIdOf, type PeerBook } from "./domain/peer-book";
import { readJsonFile, writeJsonFileAtomic } from "./lib/json-file";
import type { ChainBatch, ChainEvent, ChainSource } from "./ports/chain-source";
import type { ContentStore, NodeIdentity } from "./ports/content-store";
import type { EndpointRegistry } from "./ports/registry";

export interface PeeringDeps {
  contentStore: ContentStore;
  source: ChainSource;
  /** Set when the worker may update its endpoint on chain; without it a mismatch is only logged. */
  registry?: EndpointRegistry;
  deviceId: number;
  dataDir: string;
  logger: Logger;
  maxPeers: number;
  refreshMs: number;
}

export interface PeeringStatus {
  /** This node, once read. */
  self: NodeIdentity | undefined;
  /** The multiaddrs kept connected after the last sync. */
  kept: string[];
}

export interface Peering {
  open(options?: { signal?: AbortSignal }): Promise<void>;
  /** The chain source's handler (call it with every batch, after open()). */
  handle(batch: ChainBatch, options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * A chain event a follower heard from an elected bridge over MQTT (followers read no chain
   * between catch-ups): applied to the book like one of a batch.
   */
  hear(event: ChainEvent): Promise<void>;
  run(options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Before fetching `cid`: connect to the providers of its version (and the usual peers) now.
   * Never throws: a fetch goes on with whatever peers the node has.
   */
  prepareFetch(cid: string, options?: { signal?: AbortSignal }): Promise<void>;
  status(): PeeringStatus;
}

interface BookFile {
  version: 1;
  chainId: number;
  startBlock: number;
  block: number;
  book: PeerBook;
}

/** How many versions stay focused: the ones fetched most recently. */
const FOCUS_SIZE = 8;

export function createPeering(deps: PeeringDeps): Peering {
  const { contentStore, source, logger, maxPeers, refreshMs, deviceId } = deps;
  const file = path.join(deps.dataDir, "peer-book.json");
  let book = emptyPeerBook();
  let block = source.startBlock - 1;
  let self: NodeIdentity | undefined;
  let kept: string[] = [];
  let endpointChecked = false;
  const focus: string[] = [];
  let wake: (() => void) | undefined;
  let dirty = true;
  let syncing: Promise<void> | undefined;

  const caughtUp = () => {
    const { safeHead, checkpoint } = source.status();
    return safeHead !== null && checkpoint.number >= safeHead && block >= checkpoint.number;
  };

  async function sync(signal?: AbortSignal): Promise<void> {
    self ??= await contentStore.identity({ signal });
    const wanted = choosePeers(book, { self: { deviceId, peerId: self.peerId }, maxPeers, focus });
    const wantedIds = new Set(wanted.map(peerIdOf));
    const known = new Set<string>();
    for (const m of [...Object.values(book.devices), ...Object.values(book.providers).flat()]) {
      const id = peerIdOf(m);
      if (id !== undefined) known.add(id);
    }
    const current = new Set(await contentStore.keptPeers({ signal }));
    for (const id of current) {
      if (known.has(id) && !wantedIds.has(id)) {
        await contentStore.dropPeer(id, { signal });
        logger.info({ peer: id }, "peering: dropped a peer");
      }
    }
    const nowKept: string[] = [];
    for (const multiaddr of wanted) {
      try {
        await contentStore.keepPeer(multiaddr, { signal });
        nowKept.push(multiaddr);
        if (!current.has(peerIdOf(multiaddr) as string))
          logger.info({ peer: multiaddr }, "peering: added a peer");
      } catch (error) {
        signal?.throwIfAborted();
        // A malformed or stale endpoint on chain is that device's problem, not this worker's.
        logger.warn({ peer: multiaddr, err: error }, "peering: could not add a peer");
      }
    }
    kept = nowKept;
    if (!endpointChecked && caughtUp()) await checkOwnEndpoint(signal);
  }

  async function checkOwnEndpoint(signal?: AbortSignal): Promise<void> {
    if (self === undefined) return;
    endpointChecked = true;
    const enrolled = book.devices[String(deviceId)];
    if (enrolled !== undefined && peerIdOf(enrolled) === self.peerId) return;
    const mine = preferredAddress(self);
    if (deps.registry === undefined || mine === undefined) {
      logger.warn(
        { enrolled, kuboPeerId: self.peerId, suggested: mine },
        "peering: the enrolled endpoint does not name this device's Kubo node; other devices cannot fetch from it (set it with device:set-endpoint, or peering.updateEndpoint)",
      );
      return;
    }
    try {
      const tx = await deps.registry.setEndpoint(mine, { signal });
      logger.info({ endpoint: mine, previous: enrolled, tx: tx.hash }, "peering: set this device's endpoint");
    } catch (error) {
      signal?.throwIfAborted();
      endpointChecked = false;
      logger.warn({ err: error, endpoint: mine }, "peering: could not set this device's endpoint");
    }
  }

  /** One sync at a time; a request during one runs after it. */
  function syncNow(signal?: AbortSignal): Promise<void> {
    const next = (syncing ?? Promise.resolve()).catch(() => undefined).then(() => sync(signal));
    syncing = next;
    return next;
  }

  return {
    async open({ signal } = {}) {
      const saved = await readJsonFile<BookFile>(file);
      if (
        saved?.version === 1 &&
        saved.chainId === source.chainId &&
        saved.startBlock === source.startBlock
      ) {
        book = saved.book;
        block = saved.block;
      }
      await source.rewind(block, { signal });
    },

    async handle(batch) {
      if (batch.type === "reorg") {
        // Endpoints only ever get newer; a reorged-away one is corrected by the next event, and a
        // dial to a stale address costs nothing but a warning.
        block = Math.min(block, batch.commonAncestor.number);
        return;
      }
      if (batch.toBlock <= block) return;
      let changed = false;
      for (const e of batch.logs) if (e.blockNumber > block && applyPeerEvent(book, e)) changed = true;
      block = batch.toBlock;
      const content: BookFile = {
        version: 1,
        chainId: source.chainId,
        startBlock: source.startBlock,
        block,
        book,
      };
      if (changed) {
        await writeJsonFileAtomic(file, content);
        dirty = true;
        wake?.();
      }
      if (!endpointChecked && caughtUp()) wake?.();
    },

    async hear(event) {
      if (!applyPeerEvent(book, event)) return;
      const content: BookFile = {
        version: 1,
        chainId: source.chainId,
        startBlock: source.startBlock,
        block,
        book,
      };
      await writeJsonFileAtomic(file, content);
      dirty = true;
      wake?.();
    },

    async run({ signal } = {}) {
      while (!signal?.aborted) {
        if (dirty || (!endpointChecked && caughtUp())) {
          dirty = false;
          try {
            await syncNow(signal);
          } catch (error) {
            if (signal?.aborted) return;
            dirty = true;
            logger.warn({ err: error }, "peering: sync failed; retrying");
          }
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            dirty = true;
            resolve();
          }, refreshMs);
          const done = () => {
            clearTimeout(timer);
            signal?.removeEventListener("abort", done);
            wake = undefined;
            resolve();
          };
          wake = done;
          signal?.addEventListener("abort", done, { once: true });
        });
      }
    },

    async prepareFetch(cid, { signal } = {}) {
      const version = book.versionOfCid[cid];
      if (version !== undefined) {
        const at = focus.indexOf(version);
        if (at >= 0) focus.splice(at, 1);
        focus.unshift(version);
        focus.length = Math.min(focus.length, FOCUS_SIZE);
      }
      try {
        await syncNow(signal);
      } catch (error) {
        if (signal?.aborted) return;
        logger.warn({ err: error, cid }, "peering: could not connect the peers for a fetch");
      }
    },

    status: () => ({ self, kept: [...kept] }),
  };
}

/** The address other devices should dial: a non-loopback TCP one when there is one. */
export function preferredAddress(self: NodeIdentity): string | undefined {
  const tcp = self.addresses.filter((a) => /^\/ip[46]\/[^/]+\/tcp\/\d+\/p2p\//.test(a));
  return tcp.find((a) => !/^\/ip4\/127\.|^\/ip6\/::1\//.test(a)) ?? tcp[0];
}
