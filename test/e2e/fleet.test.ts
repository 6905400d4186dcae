// The whole system end to end: a fleet of three devices (small, medium, large), each a real
// shoal-worker process with its own key, stake and data dir, on the test run's Hardhat node, Kubo and
// a private Mosquitto. Each device is a host of its own (network namespace, Docker Engine, Kubo node,
// worker; scripts/fleet/hosts.ts) when this machine allows it, and then every device's engine must
// hold only its own containers and images, fetched over the private swarm from the publisher node. It runs the fleet's four scenarios (scale, kill, spike, roll) and
// checks every outcome through three views that do not share code with the workers: the chain (the
// auditor's placement:history task and the registries' logs), an MQTT subscriber of its own, and
// Docker (inspect). Expected states and limits; no lost event, and no repeat beyond what at-least-once
// bridging by every worker allows.
import { expect } from "chai";
import Docker from "dockerode";
import { JsonRpcProvider } from "ethers";
import mqtt from "mqtt";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  deployDemo,
  fleetDocker,
  labelMatcher,
  type Fleet,
  type FleetDocker,
} from "../../scripts/fleet/fleet";
import { livePlacements, connectContracts, PLACEMENT_STATES } from "../../scripts/fleet/chain";
import { FAILURE_CODES, RELEASE_REASONS } from "../../workers/src";
import {
  KILL_BOUNDS_S,
  scenarioKill,
  scenarioRoll,
  scenarioScale,
  scenarioSpike,
  type ScenarioContext,
} from "../../scripts/fleet/scenarios";
import type { TimelineRow } from "../../tasks/placement";
import { runHardhat, type CliResult } from "../../scripts/lib/local-chain";
import { deviceNetwork, printFleetOnFailure, startTestFleet } from "../shared/fleet";
import { freePort, PrivateBroker, waitFor } from "../shared/processes";
import { requireChain, requireDocker, requireKubo, serviceUrls } from "../shared/services";

const urls = serviceUrls();
const TTL_S = 20;
const MiB = 1024 * 1024;

/** What every view says of a placement. */
interface PlacementFacts {
  deviceId: number;
  deploymentId: number;
  version: number;
  state: string;
  releaseReason: string | null;
  failure: string | null;
  band: { cpuMinMillicores: number; cpuMaxMillicores: number; memoryMinMiB: number; memoryMaxMiB: number };
}

interface Received {
  topic: string;
  payload: Record<string, unknown>;
  raw: string;
}

function ok(result: CliResult): string {
  expect(result.status, `${result.stdout}\n${result.stderr}`).to.equal(0);
  return result.stdout;
}

describe("e2e: a three-device fleet through scale, kill, spike and roll", function () {
  this.timeout(180_000);

  const docker = new Docker({ socketPath: urls.dockerSocket });
  /** The fleet's engines: one per device on isolated hosts, else the machine's. */
  let engines: FleetDocker;
  const network = deviceNetwork();
  const started = Date.now();
  let dir: string;
  let broker: PrivateBroker;
  let fleet: Fleet;
  let ctx: ScenarioContext;
  let subscriber: mqtt.MqttClient;
  let record: { chainId: number; contracts: Record<string, { address: string; blockNumber: number }> };
  const received: Received[] = [];
  const log: string[] = [];
  const env = () => ({ SHOAL_DEPLOYMENTS_DIR: dir, SHOAL_KUBO_URL: urls.kuboUrl });

  const history = async (...args: string[]): Promise<TimelineRow[]> =>
    JSON.parse(ok(await runHardhat(["placement:history", "--json", ...args], env()))) as TimelineRow[];
  /** The latest retained state of each placement as the MQTT subscriber saw it. */
  const mqttPlacements = () => {
    const states = new Map<string, Record<string, unknown>>();
    for (const m of received)
      if (/^shoal\/v1\/placements\/\d+\/state$/.test(m.topic))
        states.set(String(m.payload.placementId), m.payload);
    return states;
  };
  /** The fleet device a container belongs to, from its io.shoal.device label. */
  const deviceOf = (label: string | undefined) => labelMatcher(fleet.state)(label);
  /** Shoal containers with `label` on this fleet's devices (other fleets may reuse placement ids). */
  const containersOf = async (label: string) => {
    const all = await engines.listContainers({
      all: true,
      filters: { label: ["io.shoal.managed=true", label] },
    });
    return all.filter((c) => deviceOf(c.Labels["io.shoal.device"]) !== undefined);
  };
  /** A device as the chain has it now. */
  const connectedDevice = async (deviceId: number) => {
    const c = connectContracts(urls.rpcUrl, record as Parameters<typeof connectContracts>[1]);
    try {
      return await c.devices.device(deviceId);
    } finally {
      c.close();
    }
  };
  const inspectLimits = async (id: string) => {
    const host = (await engines.getContainer(id).inspect()).HostConfig;
    return {
      cpuMillicores: Math.round((host.CpuQuota! / host.CpuPeriod!) * 1000),
      memoryMiB: host.Memory! / MiB,
    };
  };

  before(async function () {
    // Three device hosts, three enrollments and two publications: minutes on a busy 2-core machine.
    this.timeout(360_000);
    await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls)]);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-e2e-"));
    broker = new PrivateBroker(await freePort(), dir, undefined, network?.gateway);
    await broker.start();
    ok(await runHardhat(["run", "scripts/deploy.ts"], { ...env(), SHOAL_HEARTBEAT_TTL: String(TTL_S) }));
    record = JSON.parse(await readFile(path.join(dir, "localhost.json"), "utf8"));

    // Subscribed before any worker starts, so every bridged message is seen from the first one.
    subscriber = await mqtt.connectAsync(broker.url, { clientId: `shoal-e2e-${process.pid}`, clean: true });
    subscriber.on("message", (topic, payload) => {
      if (payload.length === 0) return;
      const raw = payload.toString("utf8");
      received.push({ topic, payload: JSON.parse(raw) as Record<string, unknown>, raw });
    });
    await subscriber.subscribeAsync("shoal/v1/#", { qos: 1 });

    fleet = await startTestFleet({
      devices: 3,
      urls,
      mqttUrl: broker.url,
      dir,
      docker,
      network,
      log,
    });
    engines = fleetDocker(fleet.state);
    ctx = { fleet, say: (line) => log.push(line) };
    await deployDemo(fleet, ["demo-web"], ctx.say);
    const c = connectContracts(urls.rpcUrl, record as Parameters<typeof connectContracts>[1]);
    try {
      await waitFor(
        "demo-web's 2 replicas Running",
        async () => {
          const live = await livePlacements(c, fleet.state.demo["demo-web"]);
          return live.length === 2 && live.every((p) => p.state === "Running");
        },
        90_000,
        500,
      );
    } finally {
      c.close();
    }
  });

  afterEach(function () {
    printFleetOnFailure(this.currentTest, fleet, log, { progress: 30, device: 15 });
  });

  after(async function () {
    this.timeout(120_000);
    await fleet?.stop();
    await subscriber?.endAsync();
    await broker?.stop();
    if (fleet && network === undefined) {
      const left = await containersOf("io.shoal.managed=true");
      expect(left, "containers left behind by the fleet").to.deep.equal([]);
    }
    // Isolated: the device hosts went with the fleet (namespaces, engines, Kubo nodes, their files).
    for (const d of fleet?.state.devices ?? [])
      if (d.host) {
        expect(existsSync(d.host.netnsPath), `${d.host.netnsPath} left behind`).to.equal(false);
        expect(existsSync(d.host.dir), `${d.host.dir} left behind`).to.equal(false);
      }
    await rm(dir, { recursive: true, force: true });
    console.log(`      e2e fleet: ${Math.round((Date.now() - started) / 1000)} s in all`);
  });

  it("(a) scale: a third device claims on scale-up, replicas are released on scale-down and reclaimed", async function () {
    const r = await scenarioScale(ctx);
    const devices = fleet.state.devices.map((d) => d.deviceId);
    expect(r.replicas).to.deep.equal({ original: 2, up: 3, down: 1 });
    expect(r.claimedOnScaleUp).to.have.length(1);
    expect(r.releasedOnScaleDown).to.have.length(2);
    expect(r.claimedOnRestore).to.have.length(1);
    expect(devices).to.include(r.claimedOnScaleUp[0].deviceId);

    // The devices' own workers released the surplus, each with its operator key, as ScaleDown: the
    // scenario releases nothing, so a worker that keeps its replica fails this.
    for (const released of r.releasedOnScaleDown) {
      expect(released.releasedBy, `releaser of ${released.placementId}`).to.equal(released.operator);
      expect(released.reason, `reason of ${released.placementId}`).to.equal("ScaleDown");
    }
    // chain: the auditor's timeline shows the claim and the ScaleDown releases.
    const rows = await history("--deployment", String(r.deploymentId));
    for (const released of r.releasedOnScaleDown) {
      const row = rows.find(
        (x) => String(x.placementId) === released.placementId && x.event === "PlacementReleased",
      );
      expect(row?.reason, `release of ${released.placementId}`).to.equal(`ScaleDown by ${released.operator}`);
    }
    expect(
      rows.some(
        (x) => String(x.placementId) === r.claimedOnScaleUp[0].placementId && x.event === "PlacementClaimed",
      ),
    ).to.equal(true);
    // MQTT: the retained states say the same.
    await waitFor("MQTT to show the releases", async () =>
      r.releasedOnScaleDown.every((x) => mqttPlacements().get(x.placementId)?.releaseReason === "ScaleDown"),
    );
    // Docker: released placements have no container; the restored one runs.
    for (const x of r.releasedOnScaleDown)
      expect(await containersOf(`io.shoal.placement=${x.placementId}`)).to.deep.equal([]);
    const [restored] = await containersOf(`io.shoal.placement=${r.claimedOnRestore[0].placementId}`);
    expect(restored.State).to.equal("running");
  });

  it("(b) kill -9 a worker: after the TTL the other workers expire and slash it, finalize and reclaim its replicas", async function () {
    const since = received.length;
    const r = await scenarioKill(ctx);
    expect(r.staleAfterS).to.be.at.most(TTL_S + 5);
    // No script keeps: the fleet heals by itself within the TTL + the documented bounds.
    expect(r.expiredAfterS, "expired (s after the kill)").to.be.at.most(TTL_S + KILL_BOUNDS_S.expired);
    expect(r.finalizedAfterS, "finalized (s after the kill)").to.be.at.most(TTL_S + KILL_BOUNDS_S.finalized);
    expect(r.reclaimedAfterS, "reclaimed (s after the kill)").to.be.at.most(TTL_S + KILL_BOUNDS_S.reclaimed);
    // The transactions came from the surviving workers' operator keys: not the test's, not the
    // dead device's own (its bounty is never its own).
    const dead = (await connectedDevice(r.deviceId)).operator;
    expect(r.survivingOperators).to.have.length(fleet.state.devices.length - 1);
    expect(r.survivingOperators).to.include(r.expiredBy);
    expect(r.bountyRecipient).to.equal(r.expiredBy);
    expect(r.finalizedBy.map((f) => f.placementId).sort()).to.deep.equal(
      r.expiredPlacements.map((x) => x.placementId).sort(),
    );
    for (const f of r.finalizedBy)
      expect(r.survivingOperators, `finalizer of ${f.placementId}`).to.include(f.from);
    expect([r.expiredBy, ...r.finalizedBy.map((f) => f.from)]).to.not.include(dead);
    // 10 % liveness slash plus the collateral (10 SHOAL by default) of each placement it held; 20 % of it
    // to the keeper.
    const collateral = 10n * 10n ** 18n;
    expect(BigInt(r.slashed)).to.equal(
      BigInt(r.stakeBefore) / 10n + collateral * BigInt(r.expiredPlacements.length),
    );
    expect(BigInt(r.bounty)).to.equal(BigInt(r.slashed) / 5n);
    expect(BigInt(r.stakeAfter)).to.equal(BigInt(r.stakeBefore) - BigInt(r.slashed));
    expect(r.reclaimed.length).to.equal(r.expiredPlacements.length);
    for (const x of r.reclaimed) expect(x.deviceId).to.not.equal(r.deviceId);
    console.log(
      `      (b) TTL ${TTL_S} s; after the kill: stale ${r.staleAfterS} s, expired ${r.expiredAfterS} s, ` +
        `finalized ${r.finalizedAfterS} s, reclaimed ${r.reclaimedAfterS} s`,
    );

    // chain: the expired placements end Expired; the reclaims are claims by other devices.
    const rows = await history();
    for (const x of r.expiredPlacements) {
      const last = rows.filter((row) => String(row.placementId) === x.placementId).at(-1);
      expect(last?.state, `placement ${x.placementId}`).to.equal("Expired");
    }
    // MQTT: the broker announced the dead worker (Last Will), the bridge carried the slash, and the
    // device's retained chain state has the new stake; then the restarted worker is online again.
    const after = received.slice(since);
    const status = after
      .filter((m) => m.topic === `shoal/v1/devices/${r.deviceId}/status`)
      .map((m) => `${m.payload.status}/${m.payload.reason}`);
    expect(status).to.include("offline/connection-lost");
    expect(status.at(-1)).to.equal("online/connected");
    const slash = after.find((m) => m.topic.endsWith("/DeviceRegistry/DeviceSlashed"));
    expect((slash?.payload.args as Record<string, unknown>)?.deviceId).to.equal(r.deviceId);
    await waitFor("the device's retained stake on MQTT", async () =>
      received.some(
        (m) => m.topic === `shoal/v1/devices/${r.deviceId}/chain` && String(m.payload.stake) === r.stakeAfter,
      ),
    );
    for (const x of r.expiredPlacements)
      await waitFor(
        `MQTT: placement ${x.placementId} Expired`,
        async () => mqttPlacements().get(x.placementId)?.state === "Expired",
      );
    // Docker: the expired replicas' containers are gone (removed by the restarted worker), the
    // reclaimed ones run on their new devices.
    for (const x of r.expiredPlacements)
      expect(await containersOf(`io.shoal.placement=${x.placementId}`)).to.deep.equal([]);
    for (const x of r.reclaimed) {
      const [c] = await containersOf(`io.shoal.placement=${x.placementId}`);
      expect(c.State).to.equal("running");
      expect(deviceOf(c.Labels["io.shoal.device"])).to.equal(x.deviceId);
    }
  });

  it("(c) load spike: the resource manager raises the CPU limit during a burst and lowers it after", async function () {
    this.timeout(240_000);
    const r = await scenarioSpike(ctx, { burstS: 25, idleS: 45 });
    expect(r.peakMillicores).to.be.above(r.band.cpuMinMillicores);
    expect(r.peakMillicores).to.be.at.most(Math.min(r.band.cpuMaxMillicores, r.deviceCpuMillicores));
    expect(r.finalMillicores).to.be.below(r.peakMillicores);
    expect(r.finalMillicores).to.be.at.least(r.band.cpuMinMillicores);
    // MQTT: the manager published its decisions, up and then down.
    const decisions = received
      .filter(
        (m) =>
          m.topic === `shoal/v1/devices/${r.deviceId}/resources` && m.payload.placementId === r.placementId,
      )
      .map((m) => m.payload as { resource: string; from: number; to: number });
    expect(decisions.some((d) => d.resource === "cpu" && d.to > d.from)).to.equal(true);
    expect(decisions.some((d) => d.resource === "cpu" && d.to < d.from)).to.equal(true);
  });

  it("(d) roll: a new version is published and every replica replaced by one of it", async function () {
    const r = await scenarioRoll(ctx);
    expect(r.to).to.be.above(r.from);
    expect(r.placements).to.have.length(2);
    expect(r.page).to.include(r.semver);

    // Each replaced placement ended Released (its reservation freed), not left Superseded: on
    // chain, in the auditor's timeline (its last recorded event), and on MQTT.
    const rows = await history("--deployment", String(r.deploymentId));
    const c = connectContracts(urls.rpcUrl, record as Parameters<typeof connectContracts>[1]);
    try {
      for (const old of r.replaced) {
        expect(
          PLACEMENT_STATES[Number(await c.placements.placementState(old.placementId))],
          `chain state of ${old.placementId}`,
        ).to.equal("Released");
        const last = rows
          .filter((row) => String(row.placementId) === old.placementId && row.block > 0)
          .at(-1);
        expect(last?.event, `last event of ${old.placementId}`).to.equal("PlacementReleased");
        await waitFor(
          `MQTT: placement ${old.placementId} Released`,
          async () => mqttPlacements().get(old.placementId)?.state === "Released",
        );
      }
    } finally {
      c.close();
    }
    await waitFor("MQTT: the deployment at the new version", async () =>
      received.some(
        (m) => m.topic === `shoal/v1/deployments/${r.deploymentId}/state` && m.payload.version === r.to,
      ),
    );
    const containers = await containersOf(`io.shoal.deployment=${r.deploymentId}`);
    expect(containers.map((c) => c.Labels["io.shoal.version"]).sort()).to.deep.equal([
      String(r.to),
      String(r.to),
    ]);
  });

  it("the three views agree: chain, placement:history, the MQTT retained states and Docker; no event lost", async function () {
    const rows = await history();
    // The chain's own view of every placement, band from the registry (the version it was claimed
    // for), release reason and failure from its code.
    const chain = new Map<string, PlacementFacts>();
    const c = connectContracts(urls.rpcUrl, record as Parameters<typeof connectContracts>[1]);
    try {
      for (const deploymentId of new Set(rows.map((r) => r.deploymentId))) {
        for (const p of await c.placements.placementsOfDeployment(deploymentId, 0, 1000)) {
          const state = PLACEMENT_STATES[Number(p.state)];
          const b = await c.apps.bandAt(deploymentId, p.deploymentGeneration);
          chain.set(p.placementId.toString(), {
            deviceId: Number(p.deviceId),
            deploymentId: Number(p.deploymentId),
            version: Number(p.version),
            state,
            releaseReason: state === "Released" ? RELEASE_REASONS[Number(p.code)] : null,
            failure: state === "Failed" ? FAILURE_CODES[Number(p.code)] : null,
            band: {
              cpuMinMillicores: Number(b.cpuMinMillicores),
              cpuMaxMillicores: Number(b.cpuMaxMillicores),
              memoryMinMiB: Number(b.memoryMinMiB),
              memoryMaxMiB: Number(b.memoryMaxMiB),
            },
          });
        }
      }
    } finally {
      c.close();
    }
    expect([...chain.keys()].sort(), "placements on chain vs in the timeline").to.deep.equal(
      [...new Set(rows.map((r) => String(r.placementId)))].sort(),
    );

    // MQTT: every field the bridge derives equals the chain's.
    const fromMqtt = (id: string): PlacementFacts | undefined => {
      const m = mqttPlacements().get(id);
      if (m === undefined) return undefined;
      const band = m.band as PlacementFacts["band"];
      return {
        deviceId: Number(m.deviceId),
        deploymentId: Number(m.deploymentId),
        version: Number(m.version),
        state: String(m.state),
        releaseReason: (m.releaseReason as string | null) ?? null,
        failure: (m.failure as string | null) ?? null,
        band: {
          cpuMinMillicores: band.cpuMinMillicores,
          cpuMaxMillicores: band.cpuMaxMillicores,
          memoryMinMiB: band.memoryMinMiB,
          memoryMaxMiB: band.memoryMaxMiB,
        },
      };
    };
    await waitFor(
      "MQTT's retained state of every placement to match the chain",
      async () => [...chain].every(([id, facts]) => JSON.stringify(fromMqtt(id)) === JSON.stringify(facts)),
      30_000,
    ).catch(() => undefined);
    for (const [id, facts] of chain) expect(fromMqtt(id), `MQTT's placement ${id}`).to.deep.equal(facts);

    // placement:history: the same device, deployment, version, band minimum (the claim's
    // reservation), release reason and failure; its last recorded event gives the state.
    for (const [id, facts] of chain) {
      const mine = rows.filter((r) => String(r.placementId) === id);
      const claim = mine.find((r) => r.event === "PlacementClaimed");
      const recorded = mine.filter((r) => r.block > 0).at(-1)!;
      const release = mine.filter((r) => r.event === "PlacementReleased").at(-1);
      const failed = mine.filter((r) => r.event === "PlacementFailed").at(-1);
      const fromHistory = {
        deviceId: recorded.deviceId,
        deploymentId: recorded.deploymentId,
        version: Number(/ v(\d+),/.exec(claim?.reason ?? "")?.[1]),
        reserved: claim?.reason
          .match(/(\d+)m\/(\d+)MiB reserved$/)
          ?.slice(1)
          .map(Number),
        state: {
          PlacementReleased: "Released",
          PlacementFailed: "Failed",
          PlacementExpired: "Expired",
          PlacementConfirmed: "Running",
          PlacementClaimed: "Claimed",
        }[recorded.event],
        releaseReason: release ? release.reason.split(" by ")[0] : null,
        failure: failed ? failed.reason : null,
      };
      expect(fromHistory, `placement:history of ${id}`).to.deep.equal({
        deviceId: facts.deviceId,
        deploymentId: facts.deploymentId,
        version: facts.version,
        reserved: [facts.band.cpuMinMillicores, facts.band.memoryMinMiB],
        state: facts.state,
        releaseReason: facts.releaseReason,
        failure: facts.failure,
      });
    }

    // Docker: one running container per Running placement, on its device, within its band.
    for (const [id, facts] of chain) {
      const cs = await containersOf(`io.shoal.placement=${id}`);
      if (facts.state === "Running") {
        expect(cs, `containers of running placement ${id}`).to.have.length(1);
        expect(cs[0].State).to.equal("running");
        expect(deviceOf(cs[0].Labels["io.shoal.device"])).to.equal(facts.deviceId);
        const limits = await inspectLimits(cs[0].Id);
        expect(limits.cpuMillicores).to.be.within(facts.band.cpuMinMillicores, facts.band.cpuMaxMillicores);
        expect(limits.memoryMiB).to.be.within(facts.band.memoryMinMiB, facts.band.memoryMaxMiB);
      } else {
        expect(cs, `containers of ${facts.state} placement ${id}`).to.deep.equal([]);
      }
    }

    // Every event of the three registries reached MQTT; none that the chain does not have.
    const provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true });
    const expected: string[] = [];
    try {
      for (const name of ["AppRegistry", "DeviceRegistry", "PlacementRegistry"]) {
        const logs = await provider.getLogs({
          address: record.contracts[name].address,
          fromBlock: record.contracts[name].blockNumber,
        });
        for (const l of logs) expected.push(`${record.chainId}:${l.transactionHash}:${l.index}`);
      }
    } finally {
      provider.destroy();
    }
    const events = () =>
      received.filter(
        (m) => m.topic.startsWith(`shoal/v1/chain/${record.chainId}/`) && !m.topic.endsWith("/reorg"),
      );
    await waitFor(
      "every chain event on MQTT",
      async () => new Set(events().map((m) => String(m.payload.id))).size >= expected.length,
      30_000,
    );
    const byId = new Map<string, Received[]>();
    for (const m of events()) byId.set(String(m.payload.id), [...(byId.get(String(m.payload.id)) ?? []), m]);
    expect([...byId.keys()].sort()).to.deep.equal(expected.sort());
    // The elected bridges (2 of the 3 workers) publish every event at least once; after the kill -9
    // a re-sent batch and the successor's first block may repeat some: an id may arrive up to 4
    // times, always with the same content. Each bridge signs its own copy, so the signature
    // envelope differs and is left out of the comparison.
    for (const [id, copies] of byId) {
      expect(copies.length, `copies of ${id}`).to.be.at.most(fleet.state.devices.length + 1);
      const contents = new Set(copies.map((c) => JSON.stringify({ ...c.payload, sig: undefined })));
      expect(contents.size, `distinct payloads of ${id}`).to.equal(1);
    }
  });

  it("each device's engine holds only its own containers and the images of what it ran, delivered from IPFS", async function () {
    // Shared mode has one engine for all devices: this machine then cannot show what the test asks.
    expect(network, "isolated device hosts (root, ip, nsenter, dockerd)").to.not.equal(undefined);
    const c = connectContracts(urls.rpcUrl, record as Parameters<typeof connectContracts>[1]);
    try {
      const rows = await history();
      for (const d of fleet.state.devices) {
        const engine = engines.forDevice(d.deviceId);
        // Containers: only this device's (by its io.shoal.device label), nothing else at all.
        const containers = await engine.listContainers({ all: true });
        for (const x of containers)
          expect(
            deviceOf(x.Labels["io.shoal.device"]),
            `device of ${x.Names[0]} on ${d.host!.name}`,
          ).to.equal(d.deviceId);
        // Images: only those of versions of deployments this device held a placement of, as the
        // worker loads them from IPFS (tagged shoal-cid:<image CID>); a device that held none has none.
        const cids = new Set<string>();
        for (const deploymentId of new Set(
          rows.filter((r) => r.deviceId === d.deviceId).map((r) => r.deploymentId),
        )) {
          const summary = await c.apps.deploymentSummary(deploymentId);
          for (let v = 1; v <= Number(summary.version); v++)
            for (const cid of (await c.apps.version(summary.appId, v)).imageCids) cids.add(cid);
        }
        const images = await engine.listImages();
        for (const image of images) {
          const cidTags = (image.RepoTags ?? []).filter((t) => t.startsWith("shoal-cid:"));
          expect(cidTags, `image ${image.Id} on device ${d.deviceId} came from IPFS`).to.not.deep.equal([]);
          for (const tag of cidTags)
            expect([...cids], `device ${d.deviceId} ran no version with image ${tag}`).to.include(
              tag.slice(10),
            );
        }
      }
    } finally {
      c.close();
    }
  });
});
