// The signed envelope (workers/src/domain/envelope.ts) and the verifier of workers/src/signed-bus.ts
// with an in-memory operator table: what is accepted, and each reason a message is dropped.
import { expect } from "chai";
import { createHash } from "node:crypto";
import { Wallet, getBytes, verifyMessage } from "ethers";
import {
  attachEnvelope,
  detachEnvelope,
  judge,
  merkle,
  nextSequence,
  rootOf,
  type Envelope,
  senderChangedBy,
} from "../../../workers/src";
import { createMessageVerifier, createSealer, createVerifier } from "../../../workers/src";

const sha256 = (d: Uint8Array) => `0x${createHash("sha256").update(d).digest("hex")}`;
const crypto = { sha256 };
const opA = Wallet.createRandom();
const opB = Wallet.createRandom();
const devices: Record<string, { operator: string; active: boolean }> = {
  "1": { operator: opA.address, active: true },
  "2": { operator: opB.address, active: true },
  "3": { operator: Wallet.createRandom().address, active: false },
};
const NOW = 1_800_000_000_000;
const verifier = () => createVerifier({ lookup: async (d) => devices[d], now: () => NOW });
const sealer = (key: string, d: number, at = NOW) =>
  createSealer({ operatorKey: key, deviceId: d, now: () => at });

describe("envelope codec", function () {
  it("attaches and detaches a signature without changing the signed bytes", function () {
    const e: Envelope = { v: 1, d: "1", n: 5, t: NOW, r: 0, p: [], s: `0x${"ab".repeat(65)}` };
    for (const payload of ['{"a":1}', '{"a":{"sig":2},"b":",\\"sig\\":"}', "{}"]) {
      const parsed = detachEnvelope(attachEnvelope(payload, e));
      expect(parsed).to.deep.equal({ ok: true, payload, envelope: e });
      expect(JSON.parse(attachEnvelope(payload, e)).sig).to.deep.equal(e);
    }
    expect(detachEnvelope('{"a":1}')).to.deep.equal({ ok: false, reason: "unsigned" });
    expect(detachEnvelope('{"a":1,"sig":{"v":1}}')).to.deep.equal({ ok: false, reason: "malformed" });
  });

  it("gives every leaf of any batch size a proof to the same root", function () {
    for (const n of [1, 2, 3, 5, 8, 13, 1000]) {
      const leaves = Array.from({ length: n }, (_, i) => sha256(new TextEncoder().encode(String(i))));
      const { root, proofs } = merkle(leaves, crypto);
      leaves.forEach((leaf, i) => expect(rootOf(leaf, proofs[i], crypto), `${n}/${i}`).to.equal(root));
      if (n > 1) expect(rootOf(leaves[0], proofs[1], crypto)).not.to.equal(root);
    }
  });

  it("keeps sequence numbers increasing within a millisecond and across restarts", function () {
    expect(nextSequence(0, 5)).to.equal(5000);
    expect(nextSequence(5000, 5)).to.equal(5001);
    expect(nextSequence(5001, 6)).to.equal(6000);
  });

  it("judges authority before replay before age", function () {
    const e = (over: Partial<Envelope>): Envelope => ({
      v: 1,
      d: "1",
      n: 10,
      t: NOW,
      r: 0,
      p: [],
      s: "0x",
      ...over,
    });
    const base = {
      signer: opA.address,
      sender: devices["1"],
      lastSeq: undefined,
      nowMs: NOW,
      maxAgeMs: 60_000,
    };
    const cases: [string, Parameters<typeof judge>[0], string | undefined][] = [
      ["own topic", { ...base, topic: "shoal/v1/devices/1/status", envelope: e({}) }, undefined],
      ["another's topic", { ...base, topic: "shoal/v1/devices/2/status", envelope: e({}) }, "forged"],
      [
        "wrong signer",
        { ...base, signer: opB.address, topic: "shoal/v1/chain/1/X/Y", envelope: e({}) },
        "forged",
      ],
      [
        "not enrolled",
        { ...base, sender: undefined, topic: "shoal/v1/chain/1/X/Y", envelope: e({}) },
        "unknown-device",
      ],
      [
        "inactive bridge",
        {
          ...base,
          sender: { ...devices["1"], active: false },
          topic: "shoal/v1/chain/1/X/Y",
          envelope: e({}),
        },
        "unknown-device",
      ],
      ["replay", { ...base, lastSeq: 10, topic: "shoal/v1/chain/1/X/Y", envelope: e({}) }, "replayed"],
      ["old event", { ...base, topic: "shoal/v1/chain/1/X/Y", envelope: e({ t: NOW - 61_000 }) }, "stale"],
      [
        "old retained state",
        { ...base, topic: "shoal/v1/placements/1/state", envelope: e({ t: 0, r: 1 }) },
        undefined,
      ],
    ];
    for (const [name, input, reason] of cases) expect(judge(input).reason, name).to.equal(reason);
  });
});

describe("signed bus verifier", function () {
  it("accepts a batch sealed by the sender's operator and returns the payload without its signature", async function () {
    const v = verifier();
    const messages = [0, 1, 2].map((i) => ({
      topic: `shoal/v1/chain/1/C/E${i}`,
      payload: `{"i":${i}}`,
      retain: false,
    }));
    const sealed = sealer(opA.privateKey, 1).seal(messages);
    for (const [i, m] of messages.entries()) {
      const result = await v.verify(m.topic, sealed[i]);
      expect(result).to.include({ ok: true, payload: m.payload });
    }
    expect(v.dropped).to.deep.equal({});
  });

  it("drops moved, edited, forged, replayed, stale and unsigned messages by reason", async function () {
    const v = verifier();
    const topic = "shoal/v1/devices/2/resources";
    const [genuine] = sealer(opB.privateKey, 2).seal([{ topic, payload: '{"to":1}', retain: false }]);
    expect((await v.verify(topic, genuine)).ok).to.equal(true);
    const drops: [string, string, string][] = [
      ["shoal/v1/devices/2/metrics", genuine, "forged"], // moved to another topic: another signer recovers
      [topic, genuine.replace('"to":1', '"to":9'), "forged"], // edited
      [topic, sealer(opA.privateKey, 2).seal([{ topic, payload: "{}", retain: false }])[0], "forged"],
      [topic, sealer(opA.privateKey, 1).seal([{ topic, payload: "{}", retain: false }])[0], "forged"],
      [topic, genuine, "replayed"],
      // (on a topic with no accepted message yet: on `topic` an old one is a replay first)
      [
        "shoal/v1/devices/2/metrics",
        sealer(opB.privateKey, 2, NOW - 120_000).seal([
          { topic: "shoal/v1/devices/2/metrics", payload: "{}", retain: false },
        ])[0],
        "stale",
      ],
      [topic, '{"to":1}', "unsigned"],
      [
        "shoal/v1/chain/1/C/E",
        sealer(Wallet.createRandom().privateKey, 9).seal([
          { topic: "shoal/v1/chain/1/C/E", payload: "{}", retain: false },
        ])[0],
        "unknown-device",
      ],
    ];
    for (const [t, payload, reason] of drops)
      expect(await v.verify(t, payload), reason).to.deep.equal({ ok: false, reason });
    expect(v.dropped).to.deep.equal({ forged: 4, replayed: 1, stale: 1, unsigned: 1, "unknown-device": 1 });
  });
});

describe("message verifier: roots shared by the verifiers of one process", function () {
  it("hashes a message's proof once for all of them, and any other text again", async function () {
    let hashes = 0;
    const counting = { sha256: (d: Uint8Array) => (hashes++, sha256(d)) };
    const roots = new Map<string, string>();
    const pipeline = () =>
      createMessageVerifier({
        crypto: counting,
        recover: (root, signature) => verifyMessage(getBytes(root), signature),
        lookup: async (d) => devices[d],
        now: () => NOW,
        redelivery: "replay",
        roots,
      });
    const messages = Array.from({ length: 8 }, (_, i) => ({
      topic: `shoal/v1/chain/1/C/E${i}`,
      payload: `{"i":${i}}`,
      retain: false,
    }));
    const sealed = sealer(opA.privateKey, 1).seal(messages);
    const [first, second] = [pipeline(), pipeline()];
    expect(await first.verify(messages[3].topic, sealed[3])).to.include({ ok: true });
    expect(hashes, "a leaf and a proof of 3 nodes").to.equal(4);
    expect(await second.verify(messages[3].topic, sealed[3])).to.include({ ok: true });
    expect(hashes, "the second verifier hashes nothing").to.equal(4);
    const edited = sealed[4].replace('"i":4', '"i":5');
    expect(await second.verify(messages[4].topic, edited)).to.include({ ok: false, reason: "forged" });
    expect(hashes, "another text is hashed").to.equal(8);
  });
});

describe("senderChangedBy", function () {
  const chain = "shoal/v1/chain/31337/DeviceRegistry";
  const cases: [string, string, string | undefined][] = [
    [`${chain}/DeviceOperatorChanged`, '{"args":{"deviceId":"7"}}', "7"],
    [`${chain}/DeviceSlashed`, '{"args":{"deviceId":3}}', "3"],
    [`${chain}/DeviceExited`, '{"args":{"deviceId":"4"}}', "4"],
    [`${chain}/DeviceHeartbeat`, '{"args":{"deviceId":"7"}}', undefined],
    ["shoal/v1/chain/31337/PlacementRegistry/PlacementClaimed", '{"args":{"deviceId":"7"}}', undefined],
    [`${chain}/DeviceOperatorChanged`, "not json", undefined],
    [`${chain}/DeviceOperatorChanged`, '{"args":{}}', undefined],
    ["shoal/v1/devices/7/status", '{"deviceId":"7"}', undefined],
  ];
  for (const [topic, payload, expected] of cases)
    it(`${topic.split("/").slice(-1)[0]} ${payload} -> ${expected}`, () =>
      expect(senderChangedBy(topic, payload)).to.equal(expected));
});
