// The console's pure parts, table-driven: its configuration from the deployments file and the URL,
// the timeline's CSV and durations, and the series of the resource-decision chart.
import { expect } from "chai";
import { getBytes, sha256, verifyMessage, Wallet } from "ethers";
import { loadConfig } from "../../console/src/config";
import { decisionSeries, durations, timelineCsv } from "../../console/src/model";
import {
  createMessageVerifier,
  dropSummary,
  trustBadge,
  withoutCredentials,
  type SenderView,
} from "../../console/src/verify";
import { timelineJson, type TimelineRow } from "../../tasks/lib/timeline";
import { createSealer } from "../../workers/src";

const A = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const B = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512";
const C = "0x9fE46736679d2D9a65F0a7c6aDa6DFc0dE2d4fC5";
const FILE = {
  chainId: 31337,
  rpcUrl: "http://127.0.0.1:8545",
  mqttUrl: "ws://127.0.0.1:1884",
  contracts: {
    AppRegistry: { address: A, blockNumber: 3 },
    DeviceRegistry: { address: B, blockNumber: 2 },
    PlacementRegistry: { address: C, blockNumber: 4 },
  },
};
const serve = (body: unknown, status = 200) =>
  (async () => new Response(JSON.stringify(body), { status })) as unknown as typeof fetch;

function row(over: Partial<TimelineRow>): TimelineRow {
  return {
    time: "2026-11-30T21:00:00.000Z",
    block: 10,
    tx: "0xab",
    logIndex: 0,
    event: "PlacementClaimed",
    placementId: 1,
    deploymentId: 1,
    deviceId: 1,
    state: "Claimed",
    reason: "",
    ...over,
  };
}

describe("console: pure parts", function () {
  describe("loadConfig", function () {
    it("reads the deployments file, and the URL overrides it", async function () {
      const fromFile = await loadConfig("", serve(FILE));
      expect(fromFile).to.include({ rpcUrl: FILE.rpcUrl, mqttUrl: FILE.mqttUrl, chainId: 31337 });
      expect(fromFile.contracts.PlacementRegistry).to.deep.equal({ address: C, blockNumber: 4 });
      const overridden = await loadConfig(
        `?rpc=http://127.0.0.1:18545&mqtt=&PlacementRegistry=${A}`,
        serve(FILE),
      );
      expect(overridden.rpcUrl).to.equal("http://127.0.0.1:18545");
      expect(overridden.mqttUrl).to.equal("");
      expect(overridden.contracts.PlacementRegistry).to.deep.equal({ address: A, blockNumber: 0 });
    });

    for (const [query, message] of [
      ["?AppRegistry=0x12", 'AppRegistry "0x12" is not allowed; give a 0x-prefixed 20-byte hex address'],
      [
        "?mqtt=mqtt://127.0.0.1:1883",
        'mqtt "mqtt://127.0.0.1:1883" is not allowed; give a ws:// or wss:// URL',
      ],
      ["?fromBlock=-1", 'fromBlock "-1" is not allowed; give a block number (0 or more)'],
    ])
      it(`refuses ${query} with one sentence naming it`, async function () {
        const error = await loadConfig(query, serve(FILE)).then(
          () => undefined,
          (e: Error) => e,
        );
        expect(error?.message).to.include(message);
      });

    it("names what is missing when there is no deployments file", async function () {
      const error = await loadConfig("", serve({}, 404)).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error?.message).to.match(/^no address for AppRegistry: deployments.json: HTTP 404; give /);
    });
  });

  it("timelineCsv: a header, the JSON's columns in order, RFC 4180 quoting", function () {
    const csv = timelineCsv([row({ reason: 'ScaleDown by 0xab, "quoted"' })]);
    expect(csv).to.equal(
      "time,block,tx,logIndex,event,placementId,deploymentId,deviceId,state,reason\r\n" +
        '2026-11-30T21:00:00.000Z,10,0xab,0,PlacementClaimed,1,1,1,Claimed,"ScaleDown by 0xab, ""quoted"""\r\n',
    );
    expect(timelineJson([row({})])).to.equal(`${JSON.stringify([row({})], null, 2)}\n`);
  });

  it("durations: since the claim and since the previous step, per placement; none for derived rows", function () {
    const rows = [
      row({}),
      row({ placementId: 2, time: "2026-11-30T21:00:01.000Z" }),
      row({ event: "PlacementConfirmed", time: "2026-11-30T21:00:04.000Z" }),
      row({ event: "PlacementReleased", time: "2026-11-30T21:00:10.000Z" }),
      row({ placementId: 2, event: "(derived)", time: "", block: 0 }),
    ];
    expect(durations(rows)).to.deep.equal([
      { sinceClaim: undefined, sincePrevious: undefined },
      { sinceClaim: undefined, sincePrevious: undefined },
      { sinceClaim: 4, sincePrevious: 4 },
      { sinceClaim: 10, sincePrevious: 6 },
      {},
    ]);
  });

  it("decisionSeries: one step series per placement of the resource, from the first old limit", function () {
    const d = (placementId: string, resource: string, at: string, from: number, to: number) => ({
      seq: 0,
      at,
      deviceId: "1",
      placementId,
      resource,
      from,
      to,
      reason: "throttled",
      metric: "m",
      value: 0,
      threshold: 0,
    });
    const series = decisionSeries(
      [
        d("7", "cpu", "2026-11-30T21:00:00.000Z", 100, 200),
        d("7", "memory", "2026-11-30T21:00:00.000Z", 16, 32),
        d("7", "cpu", "2026-11-30T21:00:05.000Z", 200, 150),
        d("8", "cpu", "2026-11-30T21:00:06.000Z", 50, 80),
      ],
      "cpu",
    );
    const t = Date.parse("2026-11-30T21:00:00.000Z");
    expect(series).to.deep.equal([
      {
        name: "placement 7",
        points: [
          [t, 100],
          [t, 200],
          [t + 5000, 150],
        ],
      },
      {
        name: "placement 8",
        points: [
          [t + 6000, 50],
          [t + 6000, 80],
        ],
      },
    ]);
  });

  describe("message verification (the worker's envelope and rules, in the browser)", function () {
    const operator = Wallet.createRandom();
    const other = Wallet.createRandom();
    const NOW = 1_796_000_000_000;
    const status = (id: string, text = "online") => `{"v":1,"deviceId":"${id}","status":"${text}"}`;
    const topic = (id: string, what = "status") => `shoal/v1/devices/${id}/${what}`;
    const CHAIN = "shoal/v1/chain/31337/DeviceRegistry/DeviceOperatorChanged";

    function setup(
      devices: Record<string, SenderView | undefined> = { "1": { operator: operator.address, active: true } },
    ) {
      let now = NOW;
      const lookups: string[] = [];
      const verifier = createMessageVerifier({
        crypto: { sha256: (data) => sha256(data) },
        recover: (root, signature) => verifyMessage(getBytes(root), signature),
        lookup: async (id) => (lookups.push(id), devices[id]),
        now: () => now,
      });
      const seal = (
        key: { privateKey: string },
        d: string,
        m: { topic: string; payload: string; retain?: boolean }[],
        at = now,
      ) =>
        createSealer({ operatorKey: key.privateKey, deviceId: d, now: () => at }).seal(
          m.map((x) => ({ ...x, retain: x.retain ?? true })),
        );
      return { verifier, seal, lookups, devices, tick: (ms: number) => (now += ms) };
    }

    it("believes a message its device's operator signed, and names the signer", async function () {
      const { verifier, seal } = setup();
      const [sealed] = seal(operator, "1", [{ topic: topic("1"), payload: status("1") }]);
      const checked = await verifier.verify(topic("1"), sealed);
      expect(checked).to.deep.include({ ok: true, payload: status("1"), signer: operator.address });
      expect(verifier.devices.get("1")).to.deep.equal({ verified: 1, signer: operator.address, dropped: {} });
      expect(dropSummary(verifier.dropped)).to.equal("");
    });

    it("checks every message of a batch by its Merkle proof, with one chain lookup per device", async function () {
      const { verifier, seal, lookups } = setup();
      const batch = seal(operator, "1", [
        { topic: topic("1"), payload: status("1") },
        { topic: topic("1", "metrics"), payload: '{"at":"x","containers":[]}', retain: false },
        { topic: topic("1", "resources"), payload: '{"seq":1}', retain: false },
      ]);
      const topics = [topic("1"), topic("1", "metrics"), topic("1", "resources")];
      for (const [i, m] of batch.entries()) expect((await verifier.verify(topics[i], m)).ok).to.equal(true);
      expect(lookups).to.deep.equal(["1"]);
    });

    const drops: [string, (t: ReturnType<typeof setup>) => Promise<[string, string][]>, string, string][] = [
      ["an unsigned message", async () => [[topic("1"), status("1", "offline")]], "unsigned", "1"],
      [
        "a sig member that does not parse",
        async () => [[topic("1"), `{"a":1,"sig":{"v":1}}`]],
        "malformed",
        "1",
      ],
      [
        "a message signed by a key that is not the operator's",
        async ({ seal }) =>
          seal(other, "1", [{ topic: topic("1"), payload: status("1", "offline") }]).map((m) => [
            topic("1"),
            m,
          ]),
        "forged",
        "1",
      ],
      [
        "a payload changed after sealing",
        async ({ seal }) =>
          seal(operator, "1", [{ topic: topic("1"), payload: status("1") }]).map((m) => [
            topic("1"),
            m.replace('"online"', '"offline"'),
          ]),
        "forged",
        "1",
      ],
      [
        "a message moved to another device's topic",
        async ({ seal }) =>
          seal(operator, "1", [{ topic: topic("1"), payload: status("1") }]).map((m) => [topic("2"), m]),
        "forged",
        "2",
      ],
      [
        "a device that is not enrolled",
        async ({ seal }) =>
          seal(operator, "9", [{ topic: topic("9"), payload: status("9") }]).map((m) => [topic("9"), m]),
        "unknown-device",
        "9",
      ],
      [
        "a bridged chain event from a device that is not active",
        async ({ seal, devices }) => {
          devices["1"] = { operator: operator.address, active: false };
          return seal(operator, "1", [{ topic: CHAIN, payload: '{"args":{}}', retain: false }]).map((m) => [
            CHAIN,
            m,
          ]);
        },
        "unknown-device",
        "1",
      ],
      [
        "an older message after a newer one (replay)",
        async ({ seal, tick }) => {
          const [old] = seal(operator, "1", [{ topic: topic("1"), payload: status("1", "offline") }]);
          tick(5);
          const [latest] = seal(operator, "1", [{ topic: topic("1"), payload: status("1") }]);
          return [
            [topic("1"), latest],
            [topic("1"), old],
          ];
        },
        "replayed",
        "1",
      ],
      [
        "an event sealed more than 60 s ago",
        async ({ seal }) =>
          seal(
            operator,
            "1",
            [{ topic: topic("1", "resources"), payload: '{"seq":1}', retain: false }],
            NOW - 61_000,
          ).map((m) => [topic("1", "resources"), m]),
        "stale",
        "1",
      ],
    ];
    for (const [what, messages, reason, device] of drops)
      it(`drops ${what}: ${reason}, counted for device ${device}`, async function () {
        const t = setup();
        const results = [];
        for (const [to, m] of await messages(t)) results.push(await t.verifier.verify(to, m));
        expect(results.at(-1)).to.deep.equal({ ok: false, reason });
        expect(t.verifier.dropped[reason as "forged"]).to.equal(1);
        expect(t.verifier.devices.get(device)?.dropped).to.deep.equal({ [reason]: 1 });
      });

    it("takes a retained message delivered again as the same message, not a replay", async function () {
      const { verifier, seal } = setup();
      const [sealed] = seal(operator, "1", [{ topic: topic("1"), payload: status("1") }]);
      expect((await verifier.verify(topic("1"), sealed)).ok).to.equal(true);
      expect(await verifier.verify(topic("1"), sealed)).to.deep.equal({ ok: false, reason: "duplicate" });
      expect(dropSummary(verifier.dropped)).to.equal("");
    });

    it("follows the chain when the operator changes: the old key is forged at once, the new one believed", async function () {
      const { verifier, seal, tick } = setup();
      const [first] = seal(operator, "1", [{ topic: topic("1"), payload: status("1") }]);
      expect((await verifier.verify(topic("1"), first)).ok).to.equal(true);
      verifier.observe("1", { operator: other.address, active: true });
      tick(5);
      const [byOld] = seal(operator, "1", [{ topic: topic("1"), payload: status("1", "offline") }]);
      expect(await verifier.verify(topic("1"), byOld)).to.deep.equal({ ok: false, reason: "forged" });
      tick(5);
      const [byNew] = seal(other, "1", [{ topic: topic("1"), payload: status("1") }]);
      expect(await verifier.verify(topic("1"), byNew)).to.deep.include({ ok: true, signer: other.address });
    });

    it("says in words what a device's badge and the drop counter mean", function () {
      const short = (a: string) => `${a.slice(0, 6)}…`;
      expect(trustBadge(undefined, short)).to.deep.equal({
        text: "no verified message yet",
        cls: "unknown",
        signer: "",
      });
      expect(trustBadge({ verified: 3, signer: operator.address, dropped: {} }, short)).to.deep.equal({
        text: `signed by operator ${operator.address.slice(0, 6)}…`,
        cls: "ok",
        signer: operator.address,
      });
      expect(trustBadge({ verified: 0, dropped: { forged: 2, unsigned: 1 } }, short).text).to.equal(
        "no verified message yet; 3 dropped: unsigned 1, forged 2",
      );
    });
  });

  it("never shows a password: URLs lose their user and password", function () {
    for (const [given, shown] of [
      ["ws://shoal-viewer:s3cret@127.0.0.1:1884", "ws://127.0.0.1:1884"],
      ["wss://viewer@broker.example:443/mqtt", "wss://broker.example:443/mqtt"],
      ["ws://127.0.0.1:1884", "ws://127.0.0.1:1884"],
      [
        "connect ws://u:p@10.0.0.1:1/x failed; http://a:b@h:8545",
        "connect ws://10.0.0.1:1/x failed; http://h:8545",
      ],
    ])
      expect(withoutCredentials(given)).to.equal(shown);
  });
});
