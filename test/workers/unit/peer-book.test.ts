// The peer book (pure): what the chain's events make of it and which peers a device keeps
// connected. The real swarm is in test/workers/integration/p2p-delivery.test.ts.
import { expect } from "chai";
import {
  applyPeerEvent,
  choosePeers,
  emptyPeerBook,
  peerIdOf,
  preferredAddress,
  type ChainEvent,
  type PeerBook,
} from "../../../workers/src";

let n = 0;
const ev = (contract: ChainEvent["contract"], event: string, args: ChainEvent["args"]): ChainEvent => ({
  id: `1:0x${(++n).toString(16)}:0`,
  chainId: 1,
  contract,
  address: "0x",
  event,
  args,
  blockNumber: n,
  blockHash: "0x",
  txHash: "0x",
  logIndex: 0,
  timestamp: n,
});
const addr = (peer: string, host = "10.0.0.1") => `/ip4/${host}/tcp/4001/p2p/${peer}`;
const enrolled = (deviceId: number, endpoint: string) =>
  ev("DeviceRegistry", "DeviceEnrolled", { deviceId, endpoint });

function bookOf(events: ChainEvent[]): PeerBook {
  const book = emptyPeerBook();
  for (const e of events) applyPeerEvent(book, e);
  return book;
}

describe("peer book", () => {
  it("tracks endpoints, their changes and exits", () => {
    const book = emptyPeerBook();
    expect(applyPeerEvent(book, enrolled(1, addr("A")))).to.equal(true);
    expect(
      applyPeerEvent(
        book,
        ev("DeviceRegistry", "DeviceEndpointChanged", { deviceId: 1, endpoint: addr("A2") }),
      ),
    ).to.equal(true);
    expect(
      applyPeerEvent(
        book,
        ev("DeviceRegistry", "DeviceEndpointChanged", { deviceId: 1, endpoint: addr("A2") }),
      ),
    ).to.equal(false);
    expect(book.devices).to.deep.equal({ 1: addr("A2") });
    expect(applyPeerEvent(book, ev("DeviceRegistry", "DeviceExited", { deviceId: 1 }))).to.equal(true);
    expect(book.devices).to.deep.equal({});
    expect(applyPeerEvent(book, ev("DeviceRegistry", "DeviceHeartbeat", { deviceId: 1 }))).to.equal(false);
  });

  it("maps a version's CIDs to it and collects its providers once each", () => {
    const book = bookOf([
      ev("AppRegistry", "VersionPublished", {
        appId: 3,
        version: 2,
        manifestCid: "bafyM",
        imageCids: ["bafkI"],
      }),
      ev("AppRegistry", "VersionProviderAnnounced", { appId: 3, version: 2, provider: addr("P") }),
    ]);
    expect(book.versionOfCid).to.deep.equal({ bafyM: "3/2", bafkI: "3/2" });
    expect(
      applyPeerEvent(
        book,
        ev("AppRegistry", "VersionProviderAnnounced", { appId: 3, version: 2, provider: addr("P") }),
      ),
    ).to.equal(false);
    expect(book.providers).to.deep.equal({ "3/2": [addr("P")] });
  });

  const cases: { name: string; maxPeers: number; focus: string[]; expected: string[] }[] = [
    {
      name: "focused providers first (newest first), then the nearest devices, then other providers",
      maxPeers: 10,
      focus: ["1/1"],
      expected: [addr("P2"), addr("P1"), addr("D6"), addr("D4"), addr("D7"), addr("D2"), addr("Q")],
    },
    {
      name: "capped: providers of the fetch win",
      maxPeers: 3,
      focus: ["1/1"],
      expected: [addr("P2"), addr("P1"), addr("D6")],
    },
    {
      name: "no focus: neighbours on both sides first",
      maxPeers: 3,
      focus: [],
      expected: [addr("D6"), addr("D4"), addr("D7")],
    },
  ];
  for (const c of cases) {
    it(`chooses peers: ${c.name}`, () => {
      const book = bookOf([
        ...[2, 4, 5, 6, 7].map((d) => enrolled(d, addr(`D${d}`))),
        enrolled(8, "/ip4/10.0.0.8/tcp/4001"), // names no peer: skipped
        enrolled(9, addr("P1")), // the same node as a provider: counted once
        ev("AppRegistry", "VersionProviderAnnounced", { appId: 1, version: 1, provider: addr("P1") }),
        ev("AppRegistry", "VersionProviderAnnounced", { appId: 1, version: 1, provider: addr("P2") }),
        ev("AppRegistry", "VersionProviderAnnounced", { appId: 2, version: 1, provider: addr("Q") }),
      ]);
      // Device 5 is this one (its own endpoint is D5; its Kubo node is D5 too).
      const chosen = choosePeers(book, {
        self: { deviceId: 5, peerId: "D5" },
        maxPeers: c.maxPeers,
        focus: c.focus,
      });
      expect(chosen).to.deep.equal(c.expected);
    });
  }

  it("never chooses this node, even under another device's endpoint", () => {
    const book = bookOf([enrolled(1, addr("ME")), enrolled(2, addr("ME")), enrolled(3, addr("X"))]);
    expect(choosePeers(book, { self: { deviceId: 1, peerId: "ME" }, maxPeers: 5, focus: [] })).to.deep.equal([
      addr("X"),
    ]);
  });

  it("reads peer ids and prefers a non-loopback address", () => {
    expect(peerIdOf(addr("12D3KooWabc"))).to.equal("12D3KooWabc");
    expect(peerIdOf("/ip4/1.2.3.4/tcp/1")).to.equal(undefined);
    const loop = "/ip4/127.0.0.1/tcp/4001/p2p/X";
    expect(preferredAddress({ peerId: "X", addresses: [loop, "/ip4/10.1.1.1/tcp/4001/p2p/X"] })).to.equal(
      "/ip4/10.1.1.1/tcp/4001/p2p/X",
    );
    expect(
      preferredAddress({ peerId: "X", addresses: [loop, "/ip4/10.1.1.1/udp/4001/quic-v1/p2p/X"] }),
    ).to.equal(loop);
    expect(preferredAddress({ peerId: "X", addresses: [] })).to.equal(undefined);
  });
});
