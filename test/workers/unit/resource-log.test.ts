import { expect } from "chai";
import { createHash } from "node:crypto";
import {
  GENESIS_HASH,
  appendEntries,
  decisionRecordJson,
  decisionsDigest,
  entryHash,
  epochDocumentJson,
  epochDue,
  recordOf,
  sealEpoch,
  verifyResourceLog,
  type DecisionRecord,
  type EpochAnchor,
  type EpochDocument,
  type LogEntry,
} from "../../../workers/src";

function record(seq: number, to = 100 + seq): DecisionRecord {
  return {
    v: 1,
    seq,
    at: `2026-11-30T10:00:${String(seq % 60).padStart(2, "0")}.000Z`,
    deviceId: "7",
    placementId: "12",
    containerId: "c1",
    resource: "cpu",
    from: 100,
    to,
    reason: "throttled",
    metric: "cpu.throttledRatio",
    value: 1,
    threshold: 0.05,
  };
}

/** Three epochs of 4, 3 and 2 records, their documents and anchors, as the worker makes them. */
function world(): { docs: EpochDocument[]; anchors: EpochAnchor[] } {
  let head = { nextSeq: 0, lastHash: GENESIS_HASH };
  const docs: EpochDocument[] = [];
  let seq = 0;
  for (const [epoch, size] of [4, 3, 2].entries()) {
    const prev = head.lastHash;
    const out = appendEntries(
      head,
      Array.from({ length: size }, () => record(seq++)),
    );
    head = out.head;
    docs.push(sealEpoch("7", epoch, prev, out.entries));
  }
  const anchors = docs.map((d, i) => ({
    epoch: d.epoch,
    firstSeq: d.firstSeq,
    count: d.count,
    lastHash: d.lastHash,
    cid: `cid-${i}`,
  }));
  return { docs, anchors };
}

const verify = (
  docs: (EpochDocument | Error)[],
  anchors: EpochAnchor[],
  range: { from?: number; to?: number } = {},
) =>
  verifyResourceLog({
    deviceId: "7",
    anchors,
    documents: new Map(docs.map((d, i) => [i, JSON.parse(JSON.stringify(d)) as unknown])),
    ...range,
  });

describe("resource log (domain)", () => {
  it("chains each entry to the one before it with sha256(prev || sha256(record))", () => {
    const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest();
    const { entries, head } = appendEntries({ nextSeq: 0, lastHash: GENESIS_HASH }, [record(0), record(1)]);
    const h0 = sha256(Buffer.concat([Buffer.alloc(32), sha256(decisionRecordJson(record(0)))]));
    const h1 = sha256(Buffer.concat([h0, sha256(decisionRecordJson(record(1)))]));
    expect(entries.map((e) => e.prev)).to.deep.equal([GENESIS_HASH, `0x${h0.toString("hex")}`]);
    expect(entries.map((e) => e.hash)).to.deep.equal([`0x${h0.toString("hex")}`, `0x${h1.toString("hex")}`]);
    expect(head).to.deep.equal({ nextSeq: 2, lastHash: `0x${h1.toString("hex")}` });
    // An epoch from genesis ends at the digest the controller's docs define.
    expect(head.lastHash).to.equal(decisionsDigest([record(0), record(1)]));
    expect(recordOf(entries[1])).to.deep.equal(record(1));
    expect(entryHash(entries[1].prev, entries[1])).to.equal(entries[1].hash);
  });

  it("refuses records that do not continue the log", () => {
    expect(() => appendEntries({ nextSeq: 5, lastHash: GENESIS_HASH }, [record(6)])).to.throw(
      /seq 6 .* at 5/,
    );
  });

  it("writes an epoch as sorted-key JSON, the same bytes for the same epoch", () => {
    const { docs } = world();
    const json = epochDocumentJson(docs[1]);
    expect(json.startsWith('{"count":3,"deviceId":"7","entries":[')).to.equal(true);
    expect(epochDocumentJson(JSON.parse(json) as EpochDocument)).to.equal(json);
  });

  const bounds = { maxRecords: 4, maxAgeMs: 1000 };
  for (const [count, openedAt, now, due] of [
    [0, undefined, 10_000, false],
    [3, 0, 999, false],
    [4, 0, 1, true],
    [1, 0, 1000, true],
  ] as const) {
    it(`an epoch of ${count} opened at ${openedAt} is ${due ? "" : "not "}due at ${now}`, () => {
      expect(epochDue(count, openedAt, now, bounds)).to.equal(due);
    });
  }

  describe("verify", () => {
    it("finds nothing wrong in an intact log", () => {
      const { docs, anchors } = world();
      expect(verify(docs, anchors)).to.deep.equal({ findings: [], epochsChecked: 3, recordsChecked: 9 });
      expect(verify(docs, anchors, { from: 1, to: 2 }).findings).to.deep.equal([]);
    });

    type Case = [string, (docs: EpochDocument[], anchors: EpochAnchor[]) => void, Record<string, unknown>[]];
    const cases: Case[] = [
      [
        "an edited field (naming it)",
        (docs) => (docs[1].entries[1].to = 999),
        [{ kind: "edit", epoch: 1, seq: 5, field: "to" }],
      ],
      [
        "an edited field whose fingerprints were dropped",
        (docs) => {
          docs[1].entries[1].reason = "cpu-idle";
          delete (docs[1].entries[1] as Partial<LogEntry>).sums;
        },
        [{ kind: "edit", epoch: 1, seq: 5, field: "hash" }],
      ],
      [
        "a removed record (gap)",
        (docs) => docs[0].entries.splice(2, 1),
        [
          { kind: "gap", epoch: 0, seq: 2, field: "seq" },
          { kind: "gap", epoch: 0, field: "count" },
        ],
      ],
      [
        "two records swapped (reorder)",
        (docs) => docs[0].entries.splice(1, 2, docs[0].entries[2], docs[0].entries[1]),
        [{ kind: "reorder", epoch: 0, seq: 1, field: "seq" }],
      ],
      [
        "a record repeated",
        (docs) => docs[2].entries.push(docs[2].entries[1]),
        [
          { kind: "reorder", epoch: 2, seq: 8, field: "seq" },
          { kind: "anchor-mismatch", epoch: 2, field: "count" },
        ],
      ],
      [
        "a record replaced by another, rehashed (link broken)",
        (docs) => {
          const [e] = appendEntries({ nextSeq: 5, lastHash: GENESIS_HASH }, [record(5, 7)]).entries;
          docs[1].entries[1] = e;
        },
        [
          { kind: "link", epoch: 1, seq: 5, field: "prev" },
          { kind: "link", epoch: 1, seq: 6, field: "prev" },
        ],
      ],
    ];
    for (const [name, tamper, expected] of cases) {
      it(`names ${name}`, () => {
        const { docs, anchors } = world();
        tamper(docs, anchors);
        const found = verify(docs, anchors).findings.map((f) => {
          const picked: Record<string, unknown> = { kind: f.kind, epoch: f.epoch };
          if (f.seq !== undefined) picked.seq = f.seq;
          if (f.field !== undefined) picked.field = f.field;
          return picked;
        });
        expect(found).to.deep.equal(expected);
      });
    }

    it("names an epoch whose records cannot be fetched, and one not anchored", () => {
      const { docs, anchors } = world();
      const result = verifyResourceLog({
        deviceId: "7",
        anchors,
        documents: new Map<number, unknown>([
          [0, docs[0]],
          [1, new Error("not found")],
          [2, docs[2]],
        ]),
        to: 3,
      });
      expect(result.findings.map((f) => [f.kind, f.epoch])).to.deep.equal([
        ["missing-epoch", 1],
        ["missing-epoch", 3],
      ]);
      expect(result.findings[0].message).to.equal(
        "epoch 1: its records (CID cid-1) could not be fetched: not found",
      );
      expect(result.findings[1].message).to.equal(
        "epoch 3 is not anchored on chain (device 7 has 3 anchored epochs)",
      );
    });

    it("checks an epoch's first link against the previous anchor", () => {
      const { docs, anchors } = world();
      anchors[0].lastHash = `0x${"ab".repeat(32)}`;
      const findings = verify(docs, anchors, { from: 1, to: 1 }).findings;
      expect(findings.map((f) => [f.kind, f.epoch, f.seq, f.field])).to.deep.equal([["link", 1, 4, "prev"]]);
    });

    it("keeps LogEntry flat: the record's fields plus prev, hash and sums", () => {
      const { docs } = world();
      const entry: LogEntry = docs[0].entries[0];
      expect(Object.keys(entry).sort()).to.deep.equal(
        [...Object.keys(record(0)), "hash", "prev", "sums"].sort(),
      );
    });
  });
});
