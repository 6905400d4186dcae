// Table-driven tests of the pure MQTT topic mapping, the event ids and payloads, and the
// desired-state reducer with its reorg rollback.
import { expect } from "chai";
import { Interface, type EventFragment } from "ethers";
import { readFileSync } from "node:fs";
import path from "node:path";
import { DeviceRegistry__factory, PlacementRegistry__factory } from "../../../typechain-types";
import { createLogDecoder } from "../../../workers/src";
import {
  advance,
  applyEvents,
  emptyDesiredState,
  initialDerived,
  restoreDerived,
  rollback,
  withoutSettled,
  type DerivedState,
} from "../../../workers/src";
import {
  TOPIC_TABLE,
  FOLLOWED_DEVICE_EVENTS,
  UNFOLLOWED_DEVICE_EVENTS,
  chainEventMessage,
  followedChainFilters,
  deviceStatusMessage,
  createTopics,
  reorgMessage,
  stateMessages,
  topicMatches,
  topics,
} from "../../../workers/src";
import type { ChainEvent, JsonValue, ShoalContractName } from "../../../workers/src";

const CHAIN = 31337;
const OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

function event(
  contract: ShoalContractName,
  name: string,
  args: Record<string, JsonValue>,
  blockNumber: number,
  logIndex = 0,
): ChainEvent {
  const txHash = `0x${blockNumber.toString(16).padStart(60, "0")}${logIndex.toString(16).padStart(4, "0")}`;
  return {
    id: `${CHAIN}:${txHash}:${logIndex}`,
    chainId: CHAIN,
    contract,
    address: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    event: name,
    args,
    blockNumber,
    blockHash: `0x${"b".repeat(60)}${blockNumber.toString(16).padStart(4, "0")}`,
    txHash,
    logIndex,
    timestamp: 1_700_000_000 + blockNumber,
  };
}

const band = { cpuMinMillicores: 50, cpuMaxMillicores: 500, memoryMinMiB: 16, memoryMaxMiB: 64 };
const spec = {
  band,
  publishedAt: 1,
  deprecated: false,
  manifestCid: "bafkm",
  platforms: ["linux/amd64"],
  imageCids: ["bafki"],
};
const enrolled = (deviceId: number, block: number) =>
  event(
    "DeviceRegistry",
    "DeviceEnrolled",
    {
      deviceId,
      owner: OWNER,
      operator: OWNER,
      platform: "linux/amd64",
      cpuMillicores: 2000,
      memoryMiB: 2048,
      labels: ["zone=a"],
      endpoint: "/ip4/127.0.0.1/tcp/4001",
      stake: "100000000000000000000",
    },
    block,
  );
const created = (deploymentId: number, block: number) =>
  event(
    "AppRegistry",
    "DeploymentCreated",
    { deploymentId, appId: 1, version: 1, replicas: 2, generation: 1, requiredLabels: ["zone=a"], spec },
    block,
  );
const claimed = (placementId: string, deviceId: number, block: number, deploymentId = 1) =>
  event(
    "PlacementRegistry",
    "PlacementClaimed",
    {
      placementId,
      deploymentId,
      deviceId,
      appId: 1,
      version: 1,
      deploymentGeneration: 1,
      deviceGeneration: 0,
      band,
    },
    block,
  );
const placementEvent = (
  name: string,
  placementId: string,
  block: number,
  extra: Record<string, JsonValue> = {},
) => event("PlacementRegistry", name, { placementId, deploymentId: 1, deviceId: 1, ...extra }, block);

describe("topics: names", function () {
  const cases: Array<{ name: string; topic: string; expected: string }> = [
    {
      name: "bridged event",
      topic: topics.chainEvent(31337, "PlacementRegistry", "PlacementClaimed"),
      expected: "shoal/v1/chain/31337/PlacementRegistry/PlacementClaimed",
    },
    { name: "reorg", topic: topics.chainReorg(1), expected: "shoal/v1/chain/1/reorg" },
    {
      name: "placement state",
      topic: topics.placementState("18446744073709551615"),
      expected: "shoal/v1/placements/18446744073709551615/state",
    },
    { name: "deployment state", topic: topics.deploymentState(7), expected: "shoal/v1/deployments/7/state" },
    { name: "device chain state", topic: topics.deviceChain(3), expected: "shoal/v1/devices/3/chain" },
    { name: "device status", topic: topics.deviceStatus("3"), expected: "shoal/v1/devices/3/status" },
  ];
  for (const c of cases) {
    it(`maps ${c.name} to ${c.expected}`, function () {
      expect(c.topic).to.equal(c.expected);
    });
  }

  for (const bad of ["", "a/b", "+", "#", "x#"]) {
    it(`refuses the topic level ${JSON.stringify(bad)}`, function () {
      expect(() => topics.deviceStatus(bad)).to.throw(/cannot be an MQTT topic level/);
    });
  }

  it("namespaces every topic under another root", function () {
    const t = createTopics("test/run-1/shoal/v1");
    expect(t.placementState(1)).to.equal("test/run-1/shoal/v1/placements/1/state");
    expect(t.chainEvent(1, "AppRegistry", "AppRegistered")).to.equal(
      "test/run-1/shoal/v1/chain/1/AppRegistry/AppRegistered",
    );
    expect(t.parseChainEvent("test/run-1/shoal/v1/chain/1/AppRegistry/AppRegistered")).to.deep.equal({
      chainId: 1,
      contract: "AppRegistry",
      event: "AppRegistered",
    });
    expect(t.parseChainEvent("shoal/v1/chain/1/AppRegistry/AppRegistered")).to.equal(null);
    for (const bad of ["", "/x", "x/", "a/+/b", "a/#"])
      expect(() => createTopics(bad), bad).to.throw(/topic root/);
  });

  it("parses bridged-event topics back and ignores the others", function () {
    expect(topics.parseChainEvent("shoal/v1/chain/5/AppRegistry/AppRegistered")).to.deep.equal({
      chainId: 5,
      contract: "AppRegistry",
      event: "AppRegistered",
    });
    expect(topics.parseChainEvent("shoal/v1/chain/5/reorg")).to.equal(null);
    expect(topics.parseChainEvent("shoal/v1/devices/1/status")).to.equal(null);
  });

  it("a device worker follows deployment, placement and device-membership events, not heartbeats", function () {
    const followed = followedChainFilters(CHAIN);
    const heard = (contract: string, name: string) =>
      followed.some((f) => topicMatches(f, topics.chainEvent(CHAIN, contract, name)));
    const deviceEvents = DeviceRegistry__factory.createInterface()
      .fragments.filter((f) => f.type === "event")
      .map((f) => (f as EventFragment).name);
    // Every DeviceRegistry event is classified, so a new one cannot be left out unnoticed.
    expect([...FOLLOWED_DEVICE_EVENTS, ...UNFOLLOWED_DEVICE_EVENTS].sort()).to.deep.equal(
      [...new Set(deviceEvents)].sort(),
    );
    for (const name of deviceEvents)
      expect(heard("DeviceRegistry", name), name).to.equal(
        (FOLLOWED_DEVICE_EVENTS as readonly string[]).includes(name),
      );
    for (const name of PlacementRegistry__factory.createInterface()
      .fragments.filter((f) => f.type === "event")
      .map((f) => (f as EventFragment).name))
      expect(heard("PlacementRegistry", name), name).to.equal(true);
    expect(heard("AppRegistry", "DeploymentCreated")).to.equal(true);
    expect(heard("ShoalToken", "Transfer")).to.equal(false);
    expect(followed.some((f) => topicMatches(f, topics.chainReorg(CHAIN)))).to.equal(true);
    expect(heard("DeviceRegistry", "DeviceHeartbeat")).to.equal(false);
  });

  const filters: Array<[string, string, boolean]> = [
    ["shoal/v1/chain/+/+/+", "shoal/v1/chain/1/AppRegistry/AppRegistered", true],
    ["shoal/v1/chain/+/+/+", "shoal/v1/chain/1/reorg", false],
    ["shoal/v1/chain/1/#", "shoal/v1/chain/1/reorg", true],
    ["shoal/v1/#", "shoal/v1", true],
    ["shoal/v1/devices/+/status", "shoal/v1/devices/4/status", true],
    ["shoal/v1/devices/+/status", "shoal/v1/devices/4/chain", false],
    ["shoal/v1/placements/5/state", "shoal/v1/placements/5/state", true],
    ["shoal/v1/placements/5/state", "shoal/v1/placements/50/state", false],
  ];
  for (const [filter, topic, matches] of filters) {
    it(`${filter} ${matches ? "matches" : "does not match"} ${topic}`, function () {
      expect(topicMatches(filter, topic)).to.equal(matches);
    });
  }
});

describe("topics: ids and payloads", function () {
  it("decodes a log into an event with the deterministic id and JSON-safe args", function () {
    const address = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    const iface = new Interface(PlacementRegistry__factory.abi);
    const encoded = iface.encodeEventLog("PlacementClaimed", [
      2n ** 60n,
      1,
      2,
      3,
      4,
      5,
      6,
      [50, 500, 16, 64],
    ]);
    const txHash = `0x${"AB".repeat(32)}`;
    const decoder = createLogDecoder(CHAIN, { PlacementRegistry: address });
    const e = decoder.decode(
      {
        address: address.toLowerCase(),
        ...encoded,
        blockNumber: "0x10",
        blockHash: "0x01",
        transactionHash: txHash,
        logIndex: "0x3",
      },
      1234,
    )!;
    expect(e.id).to.equal(`${CHAIN}:${txHash.toLowerCase()}:3`);
    expect(e).to.include({
      contract: "PlacementRegistry",
      event: "PlacementClaimed",
      blockNumber: 16,
      logIndex: 3,
      timestamp: 1234,
    });
    // uint64 is a decimal string, uint32 a number, structs objects with field names.
    expect(e.args).to.deep.equal({
      placementId: (2n ** 60n).toString(),
      deploymentId: 1,
      deviceId: 2,
      appId: 3,
      version: 4,
      deploymentGeneration: 5,
      deviceGeneration: 6,
      band,
    });
    expect(JSON.parse(JSON.stringify(e))).to.deep.equal(e);
  });

  it("decodes ethers Log objects (index) and skips unknown contracts", function () {
    const address = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    const iface = new Interface(DeviceRegistry__factory.abi);
    const encoded = iface.encodeEventLog("DeviceStakeIncreased", [7, OWNER, 10n ** 20n, 2n * 10n ** 20n]);
    const decoder = createLogDecoder(CHAIN, { DeviceRegistry: address });
    const log = { address, ...encoded, blockNumber: 9, blockHash: "0x02", transactionHash: "0xaa", index: 0 };
    expect(decoder.decode(log, 0)!.args).to.deep.equal({
      deviceId: 7,
      from: OWNER,
      amount: "100000000000000000000",
      stake: "200000000000000000000",
    });
    expect(decoder.decode({ ...log, address: OWNER }, 0)).to.equal(null);
  });

  it("publishes a bridged event at QoS 1, not retained, with its id in the payload", function () {
    const e = claimed("5", 1, 10);
    const m = chainEventMessage(e);
    expect(m).to.include({
      topic: "shoal/v1/chain/31337/PlacementRegistry/PlacementClaimed",
      qos: 1,
      retain: false,
    });
    expect(JSON.parse(m.payload)).to.deep.equal({ v: 1, ...e });
  });

  it("publishes a reorg with the ancestor, the replaced head and the removed ids", function () {
    const m = reorgMessage(CHAIN, { number: 9, hash: "0x09" }, { number: 12, hash: "0x12" }, ["a", "b"]);
    expect(m).to.include({ topic: "shoal/v1/chain/31337/reorg", qos: 1, retain: false });
    expect(JSON.parse(m.payload)).to.deep.equal({
      v: 1,
      chainId: CHAIN,
      commonAncestor: { number: 9, hash: "0x09" },
      replacedHead: { number: 12, hash: "0x12" },
      removedIds: ["a", "b"],
    });
  });

  it("publishes device status retained, and clears the retained state of a vanished entity", function () {
    const m = deviceStatusMessage({
      deviceId: "4",
      status: "offline",
      clientId: "c",
      reason: "shutdown",
      at: "t",
    });
    expect(m).to.include({ topic: "shoal/v1/devices/4/status", qos: 1, retain: true });
    expect(JSON.parse(m.payload)).to.deep.equal({
      v: 1,
      deviceId: "4",
      status: "offline",
      clientId: "c",
      reason: "shutdown",
      at: "t",
    });
    const [cleared] = stateMessages(CHAIN, emptyDesiredState(), [{ kind: "placement", id: "1" }]);
    expect(cleared).to.deep.equal({
      topic: "shoal/v1/placements/1/state",
      payload: "",
      qos: 1,
      retain: true,
    });
  });

  it("docs/mqtt.md lists every topic of the table with its QoS and retain flag", function () {
    const doc = readFileSync(path.resolve(__dirname, "../../../docs/mqtt.md"), "utf8");
    for (const t of TOPIC_TABLE) {
      const row = doc.split("\n").find((line) => line.includes(`\`${t.pattern}\``));
      expect(row, t.pattern).to.not.equal(undefined);
      const cells = row!.split("|").map((cell) => cell.trim());
      expect(cells.slice(2, 4), t.pattern).to.deep.equal([String(t.qos), t.retained ? "yes" : "no"]);
    }
  });
});

describe("desired state: reducer", function () {
  const cases: Array<{
    name: string;
    events: ChainEvent[];
    check: (s: ReturnType<typeof emptyDesiredState>) => void;
  }> = [
    {
      name: "a claimed placement",
      events: [claimed("1", 1, 10)],
      check: (s) =>
        expect(s.placements["1"]).to.include({
          state: "Claimed",
          deviceId: 1,
          deploymentId: 1,
          claimedBlock: 10,
          failure: null,
        }),
    },
    {
      name: "claimed then confirmed is Running",
      events: [claimed("1", 1, 10), placementEvent("PlacementConfirmed", "1", 11)],
      check: (s) => expect(s.placements["1"].state).to.equal("Running"),
    },
    {
      name: "a failure carries its code name",
      events: [
        claimed("1", 1, 10),
        placementEvent("PlacementFailed", "1", 11, { code: 4, previousState: 2 }),
      ],
      check: (s) => expect(s.placements["1"]).to.include({ state: "Failed", failure: "OOMKilled" }),
    },
    {
      name: "a release carries its reason name",
      events: [
        claimed("1", 1, 10),
        placementEvent("PlacementReleased", "1", 11, { reason: 3, releasedBy: OWNER, previousState: 2 }),
      ],
      check: (s) => expect(s.placements["1"]).to.include({ state: "Released", releaseReason: "ScaleDown" }),
    },
    {
      name: "an expiry",
      events: [claimed("1", 1, 10), placementEvent("PlacementExpired", "1", 12)],
      check: (s) => expect(s.placements["1"].state).to.equal("Expired"),
    },
    {
      name: "transitions of unknown placements are ignored",
      events: [placementEvent("PlacementConfirmed", "9", 11)],
      check: (s) => expect(s.placements).to.deep.equal({}),
    },
    {
      name: "an enrolled device with heartbeat, stake and exit",
      events: [
        enrolled(1, 5),
        event("DeviceRegistry", "DeviceHeartbeat", { deviceId: 1 }, 6),
        event(
          "DeviceRegistry",
          "DeviceStakeIncreased",
          { deviceId: 1, from: OWNER, amount: "1", stake: "101" },
          7,
        ),
        event("DeviceRegistry", "DeviceExitRequested", { deviceId: 1, withdrawableAt: 99, stake: "101" }, 8),
      ],
      check: (s) => {
        expect(s.devices["1"]).to.include({
          status: "Exiting",
          stake: "101",
          withdrawableAt: 99,
          platform: "linux/amd64",
        });
        expect(s.devices["1"].lastHeartbeat).to.deep.equal({ blockNumber: 6, timestamp: 1_700_000_006 });
        expect(s.devices["1"].labels).to.deep.equal(["zone=a"]);
      },
    },
    {
      name: "a device expiry and an exit",
      events: [
        enrolled(2, 5),
        event(
          "PlacementRegistry",
          "DeviceExpired",
          { deviceId: 2, expiredBy: OWNER, generation: 1, placements: 3 },
          6,
        ),
        event("DeviceRegistry", "DeviceExited", { deviceId: 2, owner: OWNER, amount: "5" }, 7),
      ],
      check: (s) => {
        expect(s.devices["2"]).to.include({ status: "Exited", stake: "0" });
        expect(s.devices["2"].lastExpiry).to.deep.equal({ generation: 1, placements: 3, blockNumber: 6 });
      },
    },
    {
      name: "a deployment created, scaled, rolled and stopped",
      events: [
        created(1, 3),
        event(
          "AppRegistry",
          "DeploymentScaled",
          { deploymentId: 1, appId: 1, previousReplicas: 2, replicas: 5 },
          4,
        ),
        event(
          "AppRegistry",
          "DeploymentRolled",
          {
            deploymentId: 1,
            appId: 1,
            version: 2,
            previousVersion: 1,
            generation: 2,
            spec: { ...spec, manifestCid: "bafk2" },
          },
          5,
        ),
        event("AppRegistry", "DeploymentStopped", { deploymentId: 1, appId: 1, generation: 3 }, 6),
      ],
      check: (s) => {
        expect(s.deployments["1"]).to.include({ replicas: 5, version: 2, generation: 3, active: false });
        expect(s.deployments["1"].spec).to.deep.equal({
          manifestCid: "bafk2",
          platforms: ["linux/amd64"],
          imageCids: ["bafki"],
          band,
        });
      },
    },
  ];
  for (const c of cases) {
    it(`derives ${c.name}`, function () {
      c.check(applyEvents(emptyDesiredState(), c.events).state);
    });
  }

  it("is pure: the input state is untouched and unchanged entities are shared", function () {
    const first = applyEvents(emptyDesiredState(), [enrolled(1, 1), claimed("1", 1, 2)]).state;
    const snapshot = JSON.stringify(first);
    const { state, changed } = applyEvents(first, [placementEvent("PlacementConfirmed", "1", 3)]);
    expect(JSON.stringify(first)).to.equal(snapshot);
    expect(state.devices["1"]).to.equal(first.devices["1"]);
    expect(changed).to.deep.equal([{ kind: "placement", id: "1" }]);
  });

  it("reports each touched entity once, and none for events outside the model", function () {
    const { changed } = applyEvents(emptyDesiredState(), [
      enrolled(1, 1),
      event("DeviceRegistry", "DeviceHeartbeat", { deviceId: 1 }, 2),
      event("DeviceRegistry", "RoleGranted", { role: "0x00", account: OWNER, sender: OWNER }, 2),
      created(1, 3),
    ]);
    expect(changed).to.deep.equal([
      { kind: "device", id: "1" },
      { kind: "deployment", id: "1" },
    ]);
  });
});

describe("desired state: advance and rollback", function () {
  const WINDOW = 4;
  // One event per block 1..12: enrolment, deployment, claims, confirmations and heartbeats.
  const history: ChainEvent[] = [
    enrolled(1, 1),
    created(1, 2),
    claimed("1", 1, 3),
    placementEvent("PlacementConfirmed", "1", 4),
    event("DeviceRegistry", "DeviceHeartbeat", { deviceId: 1 }, 5),
    claimed("2", 1, 6),
    placementEvent("PlacementFailed", "2", 7, { code: 3, previousState: 1 }),
    event("DeviceRegistry", "DeviceHeartbeat", { deviceId: 1 }, 8),
    claimed("3", 1, 9),
    placementEvent("PlacementConfirmed", "3", 10),
    placementEvent("PlacementReleased", "1", 11, { reason: 1, releasedBy: OWNER, previousState: 2 }),
    event("DeviceRegistry", "DeviceHeartbeat", { deviceId: 1 }, 12),
  ];
  const upTo = (block: number) => history.filter((e) => e.blockNumber <= block);

  function derive(batches: Array<[number, number]>): DerivedState {
    let d = initialDerived(0);
    for (const [from, to] of batches) {
      d = advance(
        d,
        history.filter((e) => e.blockNumber >= from && e.blockNumber <= to),
        to,
        WINDOW,
      ).derived;
    }
    return d;
  }

  it("keeps only the window in the journal and folds the rest into the base", function () {
    const d = derive([
      [1, 3],
      [4, 9],
      [10, 12],
    ]);
    expect(d.baseBlock).to.equal(8);
    expect(d.journal.map((e) => e.blockNumber)).to.deep.equal([9, 10, 11, 12]);
    // What is live: placement 2 failed at block 7, below the window, and left the state.
    const full = applyEvents(emptyDesiredState(), history).state;
    expect(d.state).to.deep.equal(withoutSettled(full, d.baseBlock));
    expect(Object.keys(d.state.placements)).to.deep.equal(["1", "3"]);
    expect(full.placements["2"].state).to.equal("Failed");
    expect(d.base).to.deep.equal(withoutSettled(applyEvents(emptyDesiredState(), upTo(8)).state, 8));
  });

  it("publishes the final value of an entity that ends and settles in one batch", function () {
    // One batch over more blocks than the window: placement 2 fails at 7 and is below the floor (8).
    const r = advance(initialDerived(0), history, 12, WINDOW);
    expect(r.derived.state.placements["2"]).to.equal(undefined);
    expect(r.changed).to.deep.include({ kind: "placement", id: "2" });
    const message = stateMessages(CHAIN, r.values, r.changed).find((m) =>
      m.topic.endsWith("/placements/2/state"),
    );
    expect(JSON.parse(message!.payload).state).to.equal("Failed");
  });

  it("ignores a re-delivered batch", function () {
    const d = derive([[1, 6]]);
    const again = advance(d, upTo(6), 6, WINDOW);
    expect(again.derived).to.equal(d);
    expect(again.applied).to.deep.equal([]);
  });

  for (const ancestor of [8, 9, 10, 11]) {
    it(`rolls back to block ${ancestor} to the same state a fresh derivation reaches`, function () {
      const d = derive([
        [1, 5],
        [6, 12],
      ]);
      const r = rollback(d, ancestor);
      expect(r.derived.block).to.equal(ancestor);
      expect(r.derived.state).to.deep.equal(
        withoutSettled(applyEvents(emptyDesiredState(), upTo(ancestor)).state, d.baseBlock),
      );
      expect(r.removed.map((e) => e.blockNumber)).to.deep.equal(
        history.filter((e) => e.blockNumber > ancestor).map((e) => e.blockNumber),
      );
      // Then re-deriving a different fork from there matches a fresh derivation of that fork.
      const fork = [
        ...upTo(ancestor),
        placementEvent("PlacementFailed", "3", ancestor + 1, { code: 7, previousState: 2 }),
      ];
      const after = advance(r.derived, fork.slice(-1), ancestor + 1, WINDOW).derived;
      expect(after.state).to.deep.equal(
        withoutSettled(applyEvents(emptyDesiredState(), fork).state, after.baseBlock),
      );
    });
  }

  it("names the entities whose retained state must be republished after a rollback", function () {
    const r = rollback(derive([[1, 12]]), 10);
    expect(r.changed).to.deep.equal([
      { kind: "placement", id: "1" },
      { kind: "device", id: "1" },
    ]);
  });

  it("starts over when the reorg is below the base (deeper than the window)", function () {
    const d = derive([[1, 12]]);
    const r = rollback(d, 0);
    expect(r.derived).to.deep.equal(initialDerived(0));
    expect(r.changed).to.have.length(
      Object.keys(d.state.placements).length +
        Object.keys(d.state.devices).length +
        Object.keys(d.state.deployments).length,
    );
  });

  it("survives a JSON round trip of base and journal", function () {
    const d = derive([[1, 12]]);
    const { state: _state, ...persisted } = d;
    const restored = restoreDerived(JSON.parse(JSON.stringify(persisted)));
    expect(restored).to.deep.equal(JSON.parse(JSON.stringify(d)));
  });
});

describe("desired state: settled entities leave it", function () {
  const WINDOW = 8;
  const pid = (deploymentId: number) => ((BigInt(deploymentId) << 32n) | 1n).toString();
  const placement = (
    name: string,
    deploymentId: number,
    block: number,
    extra: Record<string, JsonValue> = {},
  ) =>
    event(
      "PlacementRegistry",
      name,
      { placementId: pid(deploymentId), deploymentId, deviceId: 1, ...extra },
      block,
    );
  const stopped = (deploymentId: number, block: number) =>
    event("AppRegistry", "DeploymentStopped", { deploymentId, generation: 2 }, block);
  const claimedOf = (deploymentId: number, block: number) =>
    claimed(pid(deploymentId), 1, block, deploymentId);
  /**
   * What the soak does, one event a block: a deployment created, claimed and confirmed, then
   * stopped and its placement released; deployment 1 stays running the whole time.
   */
  function cycles(count: number): ChainEvent[] {
    const out: ChainEvent[] = [
      enrolled(1, 1),
      created(1, 2),
      claimedOf(1, 3),
      placement("PlacementConfirmed", 1, 4),
    ];
    let block = 5;
    for (let d = 2; d < count + 2; d++) {
      out.push(created(d, block++), claimedOf(d, block++), placement("PlacementConfirmed", d, block++));
      out.push(stopped(d, block++));
      out.push(
        placement("PlacementReleased", d, block++, { reason: 5, releasedBy: OWNER, previousState: 6 }),
      );
    }
    return out;
  }
  function follow(events: readonly ChainEvent[], batchBlocks: number): DerivedState {
    let d = initialDerived(0);
    const last = events.at(-1)!.blockNumber;
    for (let to = batchBlocks; to < last + batchBlocks; to += batchBlocks) {
      const end = Math.min(to, last);
      d = advance(
        d,
        events.filter((e) => e.blockNumber > end - batchBlocks && e.blockNumber <= end),
        end,
        WINDOW,
      ).derived;
    }
    return d;
  }
  const sizes = (d: DerivedState) => ({
    placements: Object.keys(d.state.placements).length,
    deployments: Object.keys(d.state.deployments).length,
    basePlacements: Object.keys(d.base.placements).length,
    baseDeployments: Object.keys(d.base.deployments).length,
  });

  it("stays the size of what is live after many create/stop cycles", function () {
    const few = follow(cycles(10), 3);
    const many = follow(cycles(1_000), 3);
    // Deployment 1 and its placement, plus at most the cycles inside the window (5 blocks each).
    for (const d of [few, many]) {
      expect(sizes(d).placements).to.be.at.most(1 + Math.ceil(WINDOW / 5) + 1);
      expect(sizes(d).deployments).to.be.at.most(1 + Math.ceil(WINDOW / 5) + 1);
      expect(d.journal.length).to.be.at.most(WINDOW);
    }
    expect(sizes(many)).to.deep.equal(sizes(few));
    const persisted = (d: DerivedState) => JSON.stringify({ ...d, state: undefined }).length;
    expect(persisted(many)).to.be.below(persisted(few) * 1.1);
    expect(many.state.deployments["1"].active).to.equal(true);
    expect(many.state.placements[pid(1)].state).to.equal("Running");
  });

  it("matches a full re-derivation of what is live, whatever the batch size", function () {
    const events = cycles(40);
    const full = applyEvents(emptyDesiredState(), events).state;
    for (const batch of [1, 2, 7, 50, 1_000]) {
      const d = follow(events, batch);
      expect(d.state, `batches of ${batch} blocks`).to.deep.equal(withoutSettled(full, d.baseBlock));
      expect(restoreDerived(JSON.parse(JSON.stringify({ ...d, state: undefined }))).state).to.deep.equal(
        d.state,
      );
    }
  });

  it("keeps a stopped deployment while a placement of it is left, and drops it with the last one", function () {
    const events = [enrolled(1, 1), created(2, 2), claimedOf(2, 3), stopped(2, 4)];
    const d = advance(initialDerived(0), events, 4 + WINDOW, WINDOW).derived;
    expect(d.baseBlock).to.equal(4);
    expect(d.state.deployments["2"].active).to.equal(false);
    expect(d.state.placements[pid(2)].state).to.equal("Claimed");
    const releasedAt = d.block + 1;
    const released = placement("PlacementReleased", 2, releasedAt, {
      reason: 5,
      releasedBy: OWNER,
      previousState: 1,
    });
    const inside = advance(d, [released], releasedAt, WINDOW).derived;
    expect(inside.state.placements[pid(2)].state).to.equal("Released");
    const later = advance(inside, [], releasedAt + WINDOW, WINDOW).derived;
    expect(later.state.deployments["2"]).to.equal(undefined);
    expect(later.state.placements[pid(2)]).to.equal(undefined);
    expect(later.base).to.deep.equal(later.state);
    expect(later.state.devices["1"]).to.not.equal(undefined);
  });

  it("rolls back a stop and a release inside the window after many cycles", function () {
    const events = cycles(200);
    const d = follow(events, 4);
    const last = events.at(-1)!.blockNumber;
    // The last cycle's stop (last - 1) and release (last) are inside the window: undo both.
    const ancestor = last - 2;
    const r = rollback(d, ancestor);
    const deploymentId = 201;
    expect(r.derived.state.deployments[String(deploymentId)].active).to.equal(true);
    expect(r.derived.state.placements[pid(deploymentId)].state).to.equal("Running");
    expect(r.changed).to.deep.equal([
      { kind: "deployment", id: String(deploymentId) },
      { kind: "placement", id: pid(deploymentId) },
    ]);
    const upTo = events.filter((e) => e.blockNumber <= ancestor);
    expect(r.derived.state).to.deep.equal(
      withoutSettled(applyEvents(emptyDesiredState(), upTo).state, d.baseBlock),
    );
    // A different fork from there: the placement fails instead; it settles once below the window.
    const failed = placement("PlacementFailed", deploymentId, ancestor + 1, { code: 3, previousState: 2 });
    const after = advance(r.derived, [failed], ancestor + 1 + WINDOW, WINDOW).derived;
    expect(after.state.placements[pid(deploymentId)]).to.equal(undefined);
    expect(after.state.deployments[String(deploymentId)].active).to.equal(true);
  });
});
