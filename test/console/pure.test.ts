// The console's pure parts, table-driven: its configuration from the deployments file and the URL,
// the timeline's CSV and durations, and the series of the resource-decision chart.
import { expect } from "chai";
import { loadConfig } from "../../console/src/config";
import { decisionSeries, durations, timelineCsv } from "../../console/src/model";
import { timelineJson, type TimelineRow } from "../../tasks/lib/timeline";

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
});
