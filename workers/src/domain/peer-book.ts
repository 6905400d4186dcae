/**
 * The peer book: which IPFS nodes of the fleet a device may fetch from, derived purely from chain
 * events, and the rule that picks the ones its Kubo node keeps connected (docs/architecture.md,
 * "Peer-to-peer delivery"). No I/O, no clock.
 *
 * Sources: every enrolled device's endpoint (DeviceEnrolled, DeviceEndpointChanged; gone with
 * DeviceExited) and every version's providers (AppRegistry.VersionProviderAnnounced, which
 * `app:publish` emits with the publisher node's address). VersionPublished maps each manifest and
 * image CID to its version, so a fetch by CID finds the version's providers.
 */
import type { ChainEvent, JsonValue } from "./chain-event";

export interface PeerBook {
  /** deviceId -> its endpoint (multiaddr ending in /p2p/<peer id>). */
  devices: Record<string, string>;
  /** "appId/version" -> provider multiaddrs, oldest announcement first, no duplicates. */
  providers: Record<string, string[]>;
  /** manifest or image CID -> "appId/version". */
  versionOfCid: Record<string, string>;
}

export function emptyPeerBook(): PeerBook {
  return { devices: {}, providers: {}, versionOfCid: {} };
}

const str = (v: JsonValue | undefined) => String(v);

/** Applies one event; true when the book changed. */
export function applyPeerEvent(book: PeerBook, e: ChainEvent): boolean {
  const a = e.args;
  if (e.contract === "DeviceRegistry") {
    const id = str(a.deviceId);
    if (e.event === "DeviceEnrolled" || e.event === "DeviceEndpointChanged") {
      if (book.devices[id] === str(a.endpoint)) return false;
      book.devices[id] = str(a.endpoint);
      return true;
    }
    if (e.event === "DeviceExited" && id in book.devices) {
      delete book.devices[id];
      return true;
    }
    return false;
  }
  if (e.contract !== "AppRegistry") return false;
  const key = `${str(a.appId)}/${str(a.version)}`;
  if (e.event === "VersionPublished") {
    book.versionOfCid[str(a.manifestCid)] = key;
    for (const cid of Array.isArray(a.imageCids) ? a.imageCids : []) book.versionOfCid[str(cid)] = key;
    return true;
  }
  if (e.event === "VersionProviderAnnounced") {
    const list = (book.providers[key] ??= []);
    const provider = str(a.provider);
    if (list.includes(provider)) return false;
    list.push(provider);
    return true;
  }
  return false;
}

/** The peer id a multiaddr names (its last /p2p/ or /ipfs/ part), or undefined. */
export function peerIdOf(multiaddr: string): string | undefined {
  const match = /\/(?:p2p|ipfs)\/([^/]+)\/?$/.exec(multiaddr);
  return match?.[1];
}

export interface ChoosePeersParams {
  self: { deviceId: number; peerId: string };
  /** At most this many peers. */
  maxPeers: number;
  /** Versions ("appId/version") this device is fetching or runs: their providers come first. */
  focus: Iterable<string>;
}

/**
 * The multiaddrs to keep connected, best first, at most maxPeers, one per peer id, never this
 * node itself, only addresses that name a peer:
 *   1. the providers of the focused versions (the newest announcement first: the publisher may have
 *      moved), since they surely hold what the device needs now;
 *   2. the other devices, nearest device id first on a ring (d+1, d-1, d+2, ...), so that with a
 *      cap smaller than the fleet every device still has neighbours on both sides and the peering
 *      graph stays connected;
 *   3. the providers of every other version, newest version first.
 */
export function choosePeers(book: PeerBook, { self, maxPeers, focus }: ChoosePeersParams): string[] {
  const chosen: string[] = [];
  const seen = new Set<string>([self.peerId]);
  const take = (multiaddr: string) => {
    if (chosen.length >= maxPeers) return;
    const id = peerIdOf(multiaddr);
    if (id === undefined || seen.has(id)) return;
    seen.add(id);
    chosen.push(multiaddr);
  };
  const focused = new Set(focus);
  for (const key of focused) for (const p of [...(book.providers[key] ?? [])].reverse()) take(p);

  const others = Object.keys(book.devices)
    .map(Number)
    .filter((id) => id !== self.deviceId)
    .sort((x, y) => ringDistance(self.deviceId, x) - ringDistance(self.deviceId, y) || x - y);
  for (const id of others) take(book.devices[String(id)]);

  const versions = Object.keys(book.providers)
    .filter((key) => !focused.has(key))
    .sort((x, y) => compareVersionKeys(y, x));
  for (const key of versions) for (const p of [...book.providers[key]].reverse()) take(p);
  return chosen;
}

// No wrap-around: device ids only grow, and nearness is all the order needs.
function ringDistance(self: number, other: number): number {
  const d = other - self;
  // d+1 before d-1 at the same distance.
  return d > 0 ? 2 * d - 1 : -2 * d;
}

function compareVersionKeys(x: string, y: string): number {
  const [ax, vx] = x.split("/").map(Number);
  const [ay, vy] = y.split("/").map(Number);
  return ax - ay || vx - vy;
}
