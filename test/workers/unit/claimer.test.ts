// The claimer's bookkeeping against an in-memory registry (pure logic; the real contracts are in
// the worker and fleet tests): which deployments a pass reads, what it claims, releases and
// re-reads, and how chain events steer it.
import { expect } from "chai";
import pino from "pino";
import { placementIdOf, RegistryError } from "../../../workers/src";
import { claimRank, createClaimer, deploymentsTouchedBy, type ClaimOutcome } from "../../../workers/src";
import type { ChainEvent } from "../../../workers/src";
import type {
  DeploymentView,
  DeviceView,
  PlacementState,
  PlacementView,
  Registry,
} from "../../../workers/src";

const DEVICE = 7;
const BAND = { cpuMinMillicores: 100, cpuMaxMillicores: 500, memoryMinMiB: 64, memoryMaxMiB: 128 };

/** Deployments and this device's placements, with a log of what the claimer read and sent. */
class FakeRegistry implements Registry {
  readonly deviceId = DEVICE;
  readonly deployments = new Map<number, DeploymentView & { labels?: string[] }>();
  /** This device's placement of each deployment, and its state. */
  readonly mine = new Map<number, { id: string; state: PlacementState }>();
  readonly reads: number[] = [];
  /** Reads of the device and of the deployment count (what a pass costs before any deployment). */
  deviceReads = 0;
  countReads = 0;
  readonly sent: string[] = [];
  state: DeviceView = {
    deviceId: DEVICE,
    status: "Active",
    platform: "linux/amd64",
    labelKeys: [],
    cpuCapacityMillicores: 1000,
    memoryCapacityMiB: 1024,
    cpuReservedMillicores: 0,
    memoryReservedMiB: 0,
    livePlacements: 0,
    lastHeartbeat: 0,
    heartbeatTtlS: 300,
  };
  /** The next claim of a deployment reverts with this custom error. */
  readonly claimReverts = new Map<number, string>();
  failReads = false;

  add(replicas: number, extra: Partial<DeploymentView & { labels: string[] }> = {}): number {
    const id = this.deployments.size + 1;
    this.deployments.set(id, {
      deploymentId: id,
      appId: 1,
      version: 1,
      generation: 1,
      replicas,
      liveReplicas: 0,
      active: true,
      ...extra,
    });
    return id;
  }

  blockNumber = async () => 1;
  device = async () => {
    this.deviceReads++;
    return this.state;
  };
  deploymentCount = async () => {
    this.countReads++;
    return this.deployments.size;
  };
  /** Deployments read at "pending" (the claimer's last check before a claim). */
  readonly pendingReads: number[] = [];
  /** Claims other devices have sent, not yet mined: counted only at "pending". */
  readonly pendingClaims = new Map<number, number>();
  deployment = async (id: number, options?: { blockTag?: number | "pending" }) => {
    if (this.failReads) throw new RegistryError("RPC down", { retryable: true });
    const d = { ...this.deployments.get(id)! };
    if (options?.blockTag === "pending") {
      this.pendingReads.push(id);
      return { ...d, liveReplicas: d.liveReplicas + (this.pendingClaims.get(id) ?? 0) };
    }
    this.reads.push(id);
    return d;
  };
  replicaTerms = async (id: number) => ({
    deploymentId: id,
    appId: 1,
    version: 1,
    generation: 1,
    platformSupported: true,
    band: BAND,
    requiredLabelKeys: this.deployments.get(id)!.labels ?? [],
  });
  activePlacementOf = async (id: number) => {
    const p = this.mine.get(id);
    return p && ["Claimed", "Running", "Superseded"].includes(p.state) ? p.id : undefined;
  };
  placementState = async (placementId: string) =>
    [...this.mine.values()].find((p) => p.id === placementId)?.state ?? "None";
  placementsOfDevice = async (): Promise<PlacementView[]> => [];
  placementsOfDeployment = async (id: number): Promise<PlacementView[]> => {
    const d = this.deployments.get(id)!;
    const p = this.mine.get(id);
    // Ours is the newest live placement: the first one shed after a scale-down.
    return Array.from({ length: d.liveReplicas }, (_, i) => ({
      placementId: i === d.liveReplicas - 1 && p ? p.id : String(placementIdOf(id, i + 1)),
      deploymentId: id,
      deviceId: i === d.liveReplicas - 1 && p ? DEVICE : 99,
      appId: 1,
      version: 1,
      state: "Running" as const,
    }));
  };
  version = async () => {
    throw new Error("not used by the claimer");
  };
  heartbeat = async () => ({ hash: "0x", sent: "new" as const });
  claim = async (id: number) => {
    this.sent.push(`claim ${id}`);
    const revert = this.claimReverts.get(id);
    if (revert)
      throw new RegistryError(`claiming deployment ${id}: reverted with ${revert}()`, { errorName: revert });
    const d = this.deployments.get(id)!;
    d.liveReplicas++;
    const placementId = String(placementIdOf(id, 100));
    this.mine.set(id, { id: placementId, state: "Claimed" });
    return { hash: "0x", gasUsed: 0n, blockNumber: 1, placementId };
  };
  confirm = async () => ({ hash: "0x", gasUsed: 0n, blockNumber: 1 });
  fail = async () => ({ hash: "0x", gasUsed: 0n, blockNumber: 1 });
  release = async (placementId: string) => {
    this.sent.push(`release ${placementId}`);
    for (const [id, p] of this.mine)
      if (p.id === placementId) {
        p.state = "Released";
        this.deployments.get(id)!.liveReplicas--;
      }
    return { hash: "0x", gasUsed: 0n, blockNumber: 1 };
  };
}

function setup(
  options: {
    resyncMs?: number;
    online?: () => readonly string[];
    deviceId?: string;
    random?: () => number;
  } = {},
) {
  const registry = new FakeRegistry();
  let clock = 0;
  const outcomes: ClaimOutcome[] = [];
  const claimer = createClaimer({
    registry,
    platform: "linux/amd64",
    logger: pino({ level: "silent" }),
    options: { maxDelayMs: 100, jitterMs: 0 },
    resyncMs: options.resyncMs,
    online: options.online,
    deviceId: options.deviceId,
    random: options.random,
    now: () => clock,
    sleep: async (ms) => void (clock += ms),
    onOutcome: (o) => outcomes.push(o),
  });
  return {
    registry,
    claimer,
    outcomes,
    advance: (ms: number) => void (clock += ms),
    /** One pass; the deployment ids it read. */
    async pass(): Promise<number[]> {
      registry.reads.length = 0;
      await claimer.pass();
      return [...registry.reads].sort((a, b) => a - b);
    },
  };
}

const event = (name: string, args: ChainEvent["args"]): ChainEvent => ({
  id: `31337:0x${name}:0`,
  chainId: 31337,
  contract: name.startsWith("Device") ? "DeviceRegistry" : "PlacementRegistry",
  address: "0x0000000000000000000000000000000000000001",
  event: name,
  args,
  blockNumber: 1,
  blockHash: "0x",
  txHash: "0x",
  logIndex: 0,
  timestamp: 0,
});

describe("claimer: what a pass reads, claims and releases", function () {
  it("reads every deployment once, then only new and touched ones", async function () {
    const t = setup();
    const full = t.registry.add(1, { liveReplicas: 1 });
    const wanted = t.registry.add(1);
    expect(await t.pass()).to.deep.equal([full, wanted]);
    expect(t.registry.sent).to.deep.equal([`claim ${wanted}`]);

    expect(await t.pass(), "nothing changed: nothing read").to.deep.equal([]);
    const added = t.registry.add(2);
    expect(await t.pass(), "a new deployment comes with its event, not from a poll").to.deep.equal([]);
    t.claimer.touch([added]); // its DeploymentCreated, bridged
    expect(await t.pass()).to.deep.equal([added]);
    t.claimer.touch([full]);
    expect(await t.pass()).to.deep.equal([full]);
    t.claimer.touch("all");
    expect(await t.pass()).to.deep.equal([full, wanted, added]);
    expect(t.registry.sent).to.deep.equal([`claim ${wanted}`, `claim ${added}`]);
  });

  it("reads nothing at all on a timer pass with no event and nothing waiting", async function () {
    const t = setup();
    t.registry.add(1, { liveReplicas: 1 });
    await t.pass();
    expect([t.registry.deviceReads, t.registry.countReads]).to.deep.equal([1, 1]);
    for (let i = 0; i < 5; i++) await t.pass();
    expect([t.registry.deviceReads, t.registry.countReads], "5 idle passes").to.deep.equal([1, 1]);
    t.claimer.touch([1]);
    await t.pass();
    expect([t.registry.deviceReads, t.registry.countReads], "a touched deployment: no count").to.deep.equal([
      2, 1,
    ]);
    t.claimer.touch("all"); // a reconnect or a reorg: the count too
    await t.pass();
    expect(t.registry.countReads).to.equal(2);
  });

  it("re-reads, after resyncMs even without events, the count and what it holds or saw wanting", async function () {
    const t = setup({ resyncMs: 60_000 });
    const full = t.registry.add(1, { liveReplicas: 1 });
    const held = t.registry.add(2, { liveReplicas: 1 });
    t.registry.mine.set(held, { id: placementIdOf(held, 1).toString(), state: "Running" });
    const open = t.registry.add(1, { labels: ["gpu=true"] }); // wants a replica this device cannot take
    await t.pass();
    t.advance(59_000);
    expect(await t.pass()).to.deep.equal([]);
    t.advance(1_000);
    const countReads = t.registry.countReads;
    expect(await t.pass(), "a full deployment of others waits for its events").to.deep.equal([held, open]);
    expect(t.registry.countReads).to.equal(countReads + 1);
    expect(full).to.equal(1);
    t.claimer.catchUp(); // a reconnect: the same bounded read, at once
    expect(await t.pass()).to.deep.equal([held, open]);
    expect(t.registry.countReads).to.equal(countReads + 2);
  });

  it("releases its placement of a stopped deployment once, and never reads it again", async function () {
    const t = setup();
    const id = t.registry.add(1);
    await t.pass();
    const placementId = t.registry.mine.get(id)!.id;
    // stopDeployment bumps the generation: the placement is superseded and the deployment inactive.
    t.registry.deployments.get(id)!.active = false;
    t.registry.mine.get(id)!.state = "Superseded";
    t.claimer.touch([id]);
    expect(await t.pass()).to.deep.equal([id]);
    expect(t.registry.sent).to.deep.equal([`claim ${id}`, `release ${placementId}`]);
    t.claimer.touch("all");
    t.claimer.touch([id]);
    expect(await t.pass()).to.deep.equal([]);
  });

  it("releases a superseded placement when the rolled deployment is complete without it", async function () {
    const t = setup();
    const id = t.registry.add(1);
    await t.pass();
    const old = t.registry.mine.get(id)!;
    old.state = "Superseded"; // rolled: another device already holds the new generation's replica
    t.registry.deployments.get(id)!.generation = 2;
    t.claimer.touch([id]);
    await t.pass();
    expect(t.registry.sent).to.deep.equal([`claim ${id}`, `release ${old.id}`]);
  });

  it("sheds its replica after a scale-down only when it is among the newest", async function () {
    const t = setup();
    const id = t.registry.add(3);
    await t.pass();
    const d = t.registry.deployments.get(id)!;
    d.liveReplicas = 3;
    d.replicas = 2;
    t.claimer.touch([id]);
    await t.pass();
    expect(t.registry.sent).to.deep.equal([`claim ${id}`, `release ${t.registry.mine.get(id)!.id}`]);
  });

  it("treats a lost race as quiet, and re-reads only when capacity was the reason", async function () {
    const t = setup();
    const filled = t.registry.add(1);
    const noRoom = t.registry.add(1);
    t.registry.claimReverts.set(filled, "PlacementRegistryReplicasExhausted");
    t.registry.claimReverts.set(noRoom, "PlacementRegistryCpuCapacityExceeded");
    await t.pass();
    expect(t.outcomes.map((o) => [o.deploymentId, o.result, "reason" in o ? o.reason : ""])).to.deep.equal([
      [filled, "lost", "PlacementRegistryReplicasExhausted"],
      [noRoom, "lost", "PlacementRegistryCpuCapacityExceeded"],
    ]);
    expect(await t.pass(), "the filled one waits for an event").to.deep.equal([noRoom]);
  });

  it("keeps re-reading a deployment it lacks capacity for, not one it lacks labels for", async function () {
    const t = setup();
    t.registry.add(1, { labels: ["0x72656769"] }); // a label this device does not have
    const big = t.registry.add(1);
    t.registry.state = { ...t.registry.state, cpuReservedMillicores: 950 };
    await t.pass();
    expect(t.outcomes.map((o) => (o.result === "skipped" ? o.reason.split(":")[0] : o.result))).to.deep.equal(
      ["labels", "cpu"],
    );
    expect(await t.pass()).to.deep.equal([big]);
    t.registry.state = { ...t.registry.state, cpuReservedMillicores: 0 };
    await t.pass();
    expect(t.registry.sent).to.deep.equal([`claim ${big}`]);
    expect(await t.pass()).to.deep.equal([]);
  });

  it("does not send a claim when pending claims of other devices already take the replicas", async function () {
    const t = setup();
    const id = t.registry.add(2);
    t.registry.pendingClaims.set(id, 2); // two claims in the node's pool, not yet mined
    await t.pass();
    expect(t.registry.pendingReads).to.deep.equal([id]);
    expect(t.registry.sent, "no claim sent").to.deep.equal([]);
    expect(t.outcomes.map((o) => o.result === "lost" && o.reason)).to.deep.equal(["PendingClaims"]);
    // One of those claims reverted (no event says so): the next pass reads the deployment again.
    t.registry.pendingClaims.set(id, 1);
    expect(await t.pass()).to.deep.equal([id]);
    expect(t.registry.sent).to.deep.equal([`claim ${id}`]);
  });

  it("reads the same deployments again after a pass that failed", async function () {
    const t = setup();
    const id = t.registry.add(1, { liveReplicas: 1 });
    t.registry.failReads = true;
    let failed = false;
    await t.claimer.pass().catch(() => (failed = true));
    expect(failed).to.equal(true);
    t.registry.failReads = false;
    expect(await t.pass()).to.deep.equal([id]);
  });

  it("does nothing while the device is not Active, and catches up when it is", async function () {
    const t = setup();
    const id = t.registry.add(1);
    t.registry.state = { ...t.registry.state, status: "Exiting" };
    expect(await t.pass()).to.deep.equal([]);
    t.registry.state = { ...t.registry.state, status: "Active" };
    expect(await t.pass()).to.deep.equal([id]);
    expect(t.registry.sent).to.deep.equal([`claim ${id}`]);
  });
});

describe("claimer: ranked claims when the fleet is known", function () {
  const fleet = Array.from({ length: 50 }, (_, i) => String(i + 1));

  it("claims at once when ranked among the replicas wanted, a step per tier later otherwise", async function () {
    // Deployment 1 wants 3 replicas: over the 50 devices, those ranked 0-2 claim at 0 ms, 3-5 at
    // one step (4 s), and so on up to the last tier (4 steps).
    const delays: number[] = [];
    for (const self of fleet) {
      const t = setup({ online: () => fleet, deviceId: self, random: () => 0 });
      t.registry.add(3);
      await t.pass();
      const won = t.outcomes[0];
      expect(won.result, `device ${self}`).to.equal("won");
      delays.push(won.result === "won" ? won.delayMs : -1);
    }
    const at = (ms: number) => delays.filter((d) => d === ms).length;
    expect([at(0), at(4_000), at(8_000), at(12_000)]).to.deep.equal([3, 3, 3, 3]);
    expect(at(16_000), "everyone else shares the last tier").to.equal(50 - 12);
  });

  it("uses the score-based delay while it knows no other device", async function () {
    const t = setup({ online: () => ["7"], deviceId: "7", random: () => 0 });
    t.registry.add(3);
    await t.pass();
    const won = t.outcomes[0];
    expect(won.result === "won" && won.delayMs).to.be.below(100); // maxDelayMs × (1 − score)
  });
});

describe("claimer: deployments touched by chain events", function () {
  it("takes the deployment from deploymentId or from a placement id's upper bits", function () {
    const placementOf5 = placementIdOf(5, 3).toString();
    expect(
      deploymentsTouchedBy([
        event("DeploymentScaled", { deploymentId: 2, replicas: 3 }),
        event("PlacementConfirmed", { placementId: placementOf5, deviceId: 1 }),
        event("DeviceHeartbeat", { deviceId: 1 }),
      ]),
    ).to.deep.equal(new Set([2, 5]));
  });

  it("asks for every deployment after events that change who may claim", function () {
    for (const name of ["DeviceSlashed", "DeviceExpired", "ParametersChanged", "DeviceExitRequested"])
      expect(deploymentsTouchedBy([event(name, { deviceId: 1 })]), name).to.equal("all");
  });

  it("given its own id, ignores other devices' enrollments and expiries, not its own", function () {
    const others = [
      event("DeviceEnrolled", { deviceId: 8 }),
      event("DeviceExpired", { deviceId: 9 }),
      event("PlacementClaimed", { placementId: placementIdOf(4, 1).toString(), deviceId: 8 }),
    ];
    expect(deploymentsTouchedBy(others, "7")).to.deep.equal(new Set([4]));
    expect(deploymentsTouchedBy([event("DeviceSlashed", { deviceId: 7 })], "7")).to.equal("all");
    expect(deploymentsTouchedBy([event("ParametersChanged", {})], "7")).to.equal("all");
  });

  it("given what it holds, skips other devices' claims and confirms of deployments it holds nothing of", function () {
    const p = (deploymentId: number, n: number) => placementIdOf(deploymentId, n).toString();
    const holds = (id: number) => id === 2;
    const events = [
      event("PlacementClaimed", { placementId: p(1, 1), deviceId: 8 }), // fills 1: nothing for 7
      event("PlacementConfirmed", { placementId: p(3, 1), deviceId: 8 }), // fills 3: nothing for 7
      event("PlacementClaimed", { placementId: p(2, 2), deviceId: 8 }), // 7 holds one of 2 (a roll)
      event("PlacementConfirmed", { placementId: p(4, 1), deviceId: 7 }), // its own
      event("PlacementReleased", { placementId: p(5, 1), deviceId: 8 }), // frees a replica of 5
    ];
    expect(deploymentsTouchedBy(events, "7", holds)).to.deep.equal(new Set([2, 4, 5]));
    expect(deploymentsTouchedBy(events, "7")).to.deep.equal(new Set([1, 2, 3, 4, 5]));
  });

  it("knows the deployments it holds a placement of, from its reads and its claims", async function () {
    const t = setup();
    const held = t.registry.add(2, { liveReplicas: 1 });
    t.registry.mine.set(held, { id: placementIdOf(held, 1).toString(), state: "Running" });
    const other = t.registry.add(1, { liveReplicas: 1 });
    const open = t.registry.add(1);
    await t.pass();
    expect(t.outcomes.map((o) => o.result)).to.deep.equal(["won"]);
    expect([held, other, open].map((id) => t.claimer.holds(id))).to.deep.equal([true, false, true]);
  });
});

describe("claimer: a new deployment is read when this device's claim tier comes", function () {
  const fleet = Array.from({ length: 50 }, (_, i) => String(i + 1));
  const created = (deploymentId: number, replicas: number) =>
    event("DeploymentCreated", { deploymentId, appId: 1, version: 1, replicas, generation: 1 });
  const claimed = (deploymentId: number, n: number, deviceId: number) =>
    event("PlacementClaimed", { placementId: placementIdOf(deploymentId, n).toString(), deviceId });
  /** A device of the 50 in the given tier for deployment 1 of 3 replicas. */
  const deviceInTier = (tier: number) =>
    fleet.find((self) => Math.min(Math.floor(claimRank(1, self, fleet) / 3), 4) === tier)!;
  /** The claimer of device `self` after its start-up pass (which reads the device and the count). */
  const started = async (self: string) => {
    const t = setup({ online: () => fleet, deviceId: self, random: () => 0 });
    await t.pass();
    t.registry.deviceReads = 0;
    t.registry.countReads = 0;
    return t;
  };

  it("reads nothing before its tier, then reads and claims at the tier's time from when it heard", async function () {
    const t = await started(deviceInTier(2));
    const id = t.registry.add(3);
    t.claimer.hear([created(id, 3)]);
    expect(await t.pass(), "tier 2 of 4-s steps: nothing at 0 s").to.deep.equal([]);
    expect([t.registry.deviceReads, t.registry.countReads], "not even the device or the count").to.deep.equal(
      [0, 0],
    );
    expect(t.claimer.nextReadInMs(), "the worker wakes the claimer then").to.equal(7_000);
    t.advance(6_000);
    expect(await t.pass()).to.deep.equal([]);
    t.advance(1_000); // 7 s: one second before the tier's 8 s, to have read it by then
    expect(await t.pass()).to.deep.equal([id]);
    const won = t.outcomes[0];
    expect(won.result === "won" && won.delayMs, "8 s from the event, not from the read").to.equal(1_000);
    expect(t.registry.countReads, "its id came with the event: no count read").to.equal(0);
  });

  it("never reads it when the claims heard before its tier fill it, and reads it once one is freed", async function () {
    const t = await started(deviceInTier(3));
    const id = t.registry.add(3, { liveReplicas: 3 });
    t.claimer.hear([created(id, 3)]);
    t.claimer.hear([claimed(id, 1, 90), claimed(id, 2, 91), claimed(id, 3, 92)]);
    t.advance(20_000);
    expect(await t.pass()).to.deep.equal([]);
    expect(t.registry.deviceReads).to.equal(0);
    t.registry.deployments.get(id)!.liveReplicas = 2;
    t.claimer.hear([
      event("PlacementReleased", { placementId: placementIdOf(id, 2).toString(), deviceId: 91 }),
    ]);
    expect(await t.pass()).to.deep.equal([id]);
    expect(t.registry.sent).to.deep.equal([`claim ${id}`]);
  });

  it("of 50 devices hearing a deployment of 3, only the first tier reads it when its claims are heard", async function () {
    const readers: string[] = [];
    for (const self of fleet) {
      const t = await started(self);
      const id = t.registry.add(3);
      t.claimer.hear([created(id, 3)]);
      await t.pass();
      // The first tier claims within the block: its claims reach everyone 2 s later.
      t.advance(2_000);
      t.claimer.hear([claimed(id, 1, 90), claimed(id, 2, 91), claimed(id, 3, 92)]);
      t.advance(30_000);
      await t.pass();
      if (t.registry.deviceReads > 0) readers.push(self);
    }
    expect(readers).to.deep.equal(fleet.filter((self) => claimRank(1, self, fleet) < 3));
  });
});
