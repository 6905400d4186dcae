/**
 * Content-addressed storage (IPFS). The publish task adds images and manifests; the device worker
 * reads them back by CID. Every implementation must produce the same CID for the same bytes, so
 * the import settings are part of the contract, not of one adapter.
 */

/** Import settings of every add: CIDv1, raw leaves, fixed 1 MiB chunks, sha2-256. */
export const IMPORT_SETTINGS = {
  cidVersion: 1,
  rawLeaves: true,
  chunker: "size-1048576",
  hashAlg: "sha2-256",
} as const;

export interface AddOptions {
  /** Compute the CID only: store and pin nothing. */
  onlyHash?: boolean;
  /** Called with the running total of bytes imported. */
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
}

export interface AddResult {
  cid: string;
  /** Bytes of content (not of the DAG). */
  size: number;
}

export interface CatOptions {
  /** Fail once more than this many bytes arrived: a CID from the chain is untrusted input. */
  maxBytes?: number;
  signal?: AbortSignal;
}

/** The node's own place in the swarm. */
export interface NodeIdentity {
  /** Its libp2p peer id, e.g. "12D3KooW...". */
  peerId: string;
  /** The addresses it announces, each ending in /p2p/<peerId>. */
  addresses: string[];
}

export interface ContentStore {
  /** Adds (and pins, unless onlyHash) the content; the CID follows IMPORT_SETTINGS. */
  add(content: Uint8Array | AsyncIterable<Uint8Array>, options?: AddOptions): Promise<AddResult>;
  /** Streams the content of a CID. */
  cat(cid: string, options?: CatOptions): AsyncIterable<Uint8Array>;
  /** True when the CID's blocks are pinned on this node. */
  isPinned(cid: string, options?: { signal?: AbortSignal }): Promise<boolean>;
  /** Pins the CID recursively (fetching missing blocks), so garbage collection keeps it; idempotent. */
  pin(cid: string, options?: { signal?: AbortSignal }): Promise<void>;
  /** Removes the CID's recursive pin, so garbage collection may drop it; idempotent. */
  unpin(cid: string, options?: { signal?: AbortSignal }): Promise<void>;

  // ---- the swarm: which peers the node keeps connected (bitswap asks connected peers)

  /** This node's peer id and announced addresses. */
  identity(options?: { signal?: AbortSignal }): Promise<NodeIdentity>;
  /** The peers the node keeps connected (reconnecting when a connection drops), by peer id. */
  keptPeers(options?: { signal?: AbortSignal }): Promise<string[]>;
  /**
   * Keeps the peer at `multiaddr` (with its /p2p/<id>) connected from now on and dials it once
   * right away; a dial failure is not an error (the node keeps trying). Idempotent.
   */
  keepPeer(multiaddr: string, options?: { signal?: AbortSignal }): Promise<void>;
  /** Stops keeping a peer connected (the connection may stay open until the node trims it). */
  dropPeer(peerId: string, options?: { signal?: AbortSignal }): Promise<void>;
}
