/**
 * The fleet's scenarios, each one an action a user takes plus the outcome it should have, checked on
 * the chain and in Docker (the end-to-end test adds MQTT and placement:history on top):
 *   scale  scale a deployment up and down and watch claims move between devices (the workers
 *          release the surplus themselves)
 *   kill   kill -9 a device's worker: after the heartbeat TTL the other workers (keepers) expire
 *          it on chain, its stake is slashed, and they finalize and reclaim its replicas
 *   spike  a CPU load spike: the resource manager raises the container's CPU limit, then lowers it
 *   roll   publish a new app version and roll the deployment to it
 * Each returns a plain result object (printed by the CLI as JSON with --json) and throws a
 * ScenarioError naming what did not happen.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import mqtt from "mqtt";
import YAML from "yaml";
import {
  connectContracts,
  livePlacements,
  PLACEMENT_STATES,
  placementsOfDeployment,
  placementsOfDevice,
  readDeploymentRecord,
  ROOT,
  runTask,
  type Contracts,
  type PlacementInfo,
} from "./chain";
import { isLivePlacement, keepsContainer, RELEASE_REASONS, shortPlacementId } from "../../workers/src";
import { fleetDocker, labelMatcher, type Fleet, type FleetDocker } from "./fleet";
import { inDevice } from "./hosts";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);
import { FleetError, sleep, waitFor } from "./processes";

export class ScenarioError extends FleetError {
  override name = "ScenarioError";
  constructor(
    message: string,
    readonly code: "failed" | "needs-resource-manager" = "failed",
  ) {
    super(message);
  }
}

export interface ScenarioContext {
  fleet: Fleet;
  say: (line: string) => void;
  /** Scales every wait (a slow machine); default 1. */
  patience?: number;
}

export const SCENARIOS = ["scale", "kill", "spike", "roll"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

interface Env {
  c: Contracts;
  docker: FleetDocker;
  fleet: Fleet;
  say: (line: string) => void;
  ms: (seconds: number) => number;
}

async function withEnv<T>(ctx: ScenarioContext, body: (env: Env) => Promise<T>): Promise<T> {
  const record = readDeploymentRecord(ctx.fleet.state.deploymentsFile);
  const c = connectContracts(ctx.fleet.state.rpcUrl, record);
  const docker = fleetDocker(ctx.fleet.state);
  try {
    return await body({
      c,
      docker,
      fleet: ctx.fleet,
      say: ctx.say,
      ms: (seconds) => seconds * 1000 * (ctx.patience ?? 1),
    });
  } finally {
    c.close();
  }
}

const pid = (p: PlacementInfo) => p.placementId.toString();
const short = shortPlacementId;

/** Shoal containers with `label` on the fleet's own devices (another fleet may reuse the same ids). */
async function containersOf(env: Pick<Env, "docker" | "fleet">, label: string) {
  const mine = labelMatcher(env.fleet.state);
  const all = await env.docker.listContainers({
    all: true,
    filters: { label: ["io.shoal.managed=true", label] },
  });
  return all.filter((c) => mine(c.Labels["io.shoal.device"]) !== undefined);
}

/** Waits until the deployment has exactly `replicas` live placements, all Running, on distinct devices. */
async function settled(
  env: Env,
  deploymentId: number,
  replicas: number,
  timeoutS = 60,
): Promise<PlacementInfo[]> {
  return waitFor(
    `deployment ${deploymentId} to run ${replicas} replica(s)`,
    async () => {
      const live = await livePlacements(env.c, deploymentId);
      if (live.length !== replicas || live.some((p) => p.state !== "Running")) return undefined;
      if (new Set(live.map((p) => p.deviceId)).size !== live.length)
        throw new ScenarioError(`deployment ${deploymentId} has two replicas on one device`);
      // Docker agrees: one running container per live placement.
      for (const p of live) {
        const cs = await containersOf(env, `io.shoal.placement=${pid(p)}`);
        if (cs.length !== 1 || cs[0].State !== "running") return undefined;
      }
      return live;
    },
    { timeoutMs: env.ms(timeoutS), intervalMs: 500 },
  );
}

async function noContainers(env: Env, placements: string[], timeoutS = 60): Promise<void> {
  await waitFor(
    `the containers of placements ${placements.join(", ")} to be removed`,
    async () => {
      for (const id of placements)
        if ((await containersOf(env, `io.shoal.placement=${id}`)).length > 0) return false;
      return true;
    },
    { timeoutMs: env.ms(timeoutS), intervalMs: 500 },
  );
}

export interface Released {
  placementId: string;
  deviceId: number;
  /** Who sent the release (PlacementReleased.releasedBy). */
  releasedBy: string;
  /** The device's operator: a worker's release is sent with it. */
  operator: string;
  /** ReleaseReason name. */
  reason: string;
}

/**
 * Waits for the workers to give back what the deployment no longer wants (a scale-down or a stop):
 * the devices holding the surplus release it themselves. Nothing is released here; a worker that
 * does not do its job fails the scenario. Returns who released each placement of `before` that
 * ended, read from its PlacementReleased event.
 */
async function waitReleased(
  env: Env,
  deploymentId: number,
  keep: number,
  before: PlacementInfo[],
  timeoutS = 30,
): Promise<Released[]> {
  // A stopped deployment's placements read as Superseded until their devices release them.
  const holding = async () =>
    (await placementsOfDeployment(env.c, deploymentId)).filter((p) => keepsContainer(p.state));
  try {
    await waitFor(
      `the workers to release deployment ${deploymentId}'s replicas beyond ${keep}`,
      async () => (await holding()).length <= keep,
      { timeoutMs: env.ms(timeoutS), intervalMs: 500 },
    );
  } catch {
    throw new ScenarioError(
      `no worker released deployment ${deploymentId}'s surplus within ${timeoutS} s: still held ${describe(await holding())}`,
    );
  }
  const live = await holding();
  const released: Released[] = [];
  for (const p of before) {
    if (live.some((l) => l.placementId === p.placementId)) continue;
    const [event] = await env.c.placements.queryFilter(
      env.c.placements.filters.PlacementReleased(p.placementId),
    );
    if (event === undefined)
      throw new ScenarioError(`placement ${pid(p)} ended without a PlacementReleased event (${p.state})`);
    released.push({
      placementId: pid(p),
      deviceId: p.deviceId,
      releasedBy: event.args.releasedBy,
      operator: (await env.c.devices.device(p.deviceId)).operator,
      reason: RELEASE_REASONS[Number(event.args.reason)],
    });
  }
  return released;
}

function demoDeployment(fleet: Fleet, app: string, given?: number): number {
  const id = given ?? fleet.state.demo[app];
  if (id === undefined)
    throw new ScenarioError(
      `the fleet has no ${app} deployment; start it with the demo apps (fleet up without --no-demo) or pass --deployment ID`,
    );
  return id;
}

const describe = (ps: PlacementInfo[]) =>
  ps.map((p) => `${shortPlacementId(p.placementId)}@device ${p.deviceId}`).join(", ") || "none";

// ---------------------------------------------------------------------------------------------- (a)

export interface ScaleResult {
  deploymentId: number;
  replicas: { original: number; up: number; down: number };
  claimedOnScaleUp: { placementId: string; deviceId: number }[];
  /** Released by the devices' own workers (the scenario releases nothing). */
  releasedOnScaleDown: Released[];
  claimedOnRestore: { placementId: string; deviceId: number }[];
}

export function scenarioScale(
  ctx: ScenarioContext,
  options: { deploymentId?: number; up?: number; down?: number } = {},
): Promise<ScaleResult> {
  return withEnv(ctx, async (env) => {
    const { fleet, say, c } = env;
    const deploymentId = demoDeployment(fleet, "demo-web", options.deploymentId);
    const original = Number((await c.apps.deploymentSummary(deploymentId)).replicas);
    const up = options.up ?? Math.min(fleet.state.devices.length, original + 1);
    const down = options.down ?? 1;
    if (up <= original || up > fleet.state.devices.length)
      throw new ScenarioError(
        `--up ${up}: give more than the current ${original} replica(s) and at most the ${fleet.state.devices.length} devices (one replica per device)`,
      );
    if (down < 1 || down >= up)
      throw new ScenarioError(`--down ${down}: give at least 1 and less than --up ${up}`);

    const before = await settled(env, deploymentId, original);
    say(`deployment ${deploymentId}: ${original} replica(s) on ${describe(before)}`);

    say(`scaling up to ${up} (app:scale)`);
    await runTask(
      ["app:scale", "--deployment", String(deploymentId), "--replicas", String(up)],
      fleet.taskEnv,
    );
    const afterUp = await settled(env, deploymentId, up);
    const claimed = afterUp.filter((p) => !before.some((b) => b.placementId === p.placementId));
    say(`  claimed: ${describe(claimed)}; now on ${describe(afterUp)}`);

    say(`scaling down to ${down} (app:scale)`);
    await runTask(
      ["app:scale", "--deployment", String(deploymentId), "--replicas", String(down)],
      fleet.taskEnv,
    );
    const released = await waitReleased(env, deploymentId, down, afterUp);
    const afterDown = await settled(env, deploymentId, down);
    await noContainers(
      env,
      released.map((r) => r.placementId),
    );
    say(
      `  released: ${released
        .map(
          (r) =>
            `${short(r.placementId)}@device ${r.deviceId} (${r.reason}) by ${r.releasedBy === r.operator ? "its worker" : r.releasedBy}`,
        )
        .join(", ")}`,
    );

    say(`restoring ${original} replica(s) (app:scale)`);
    await runTask(
      ["app:scale", "--deployment", String(deploymentId), "--replicas", String(original)],
      fleet.taskEnv,
    );
    const restored = await settled(env, deploymentId, original);
    const reclaimed = restored.filter((p) => !afterDown.some((b) => b.placementId === p.placementId));
    say(`  claimed: ${describe(reclaimed)}; now on ${describe(restored)}`);
    return {
      deploymentId,
      replicas: { original, up, down },
      claimedOnScaleUp: claimed.map((p) => ({ placementId: pid(p), deviceId: p.deviceId })),
      releasedOnScaleDown: released,
      claimedOnRestore: reclaimed.map((p) => ({ placementId: pid(p), deviceId: p.deviceId })),
    };
  });
}

// ---------------------------------------------------------------------------------------------- (b)

export interface KillResult {
  deviceId: number;
  heartbeatTtlS: number;
  /** Seconds from the kill to the chain reporting the device stale. */
  staleAfterS: number;
  /** Seconds from the kill to the workers' DeviceExpired, and to the last PlacementExpired. */
  expiredAfterS: number;
  finalizedAfterS: number;
  /** Seconds from the kill to every replica running again on the other devices. */
  reclaimedAfterS: number;
  expiredPlacements: { placementId: string; deploymentId: number }[];
  stakeBefore: string;
  stakeAfter: string;
  slashed: string;
  bounty: string;
  /** Who sent expireDevice (DeviceExpired.expiredBy) and who got the bounty (DeviceSlashed). */
  expiredBy: string;
  bountyRecipient: string;
  /** Who sent each finalizeExpired (the PlacementExpired transaction's sender). */
  finalizedBy: { placementId: string; from: string }[];
  /** The operators of the fleet's other devices, whose workers keep the chain live. */
  survivingOperators: string[];
  reclaimed: { placementId: string; deploymentId: number; deviceId: number }[];
  /** Whether the worker was started again (it then removes the expired placements' containers). */
  restarted: boolean;
}

/**
 * Bound on the workers' keeping after the TTL (seconds): the keeper notices within a poll, waits
 * its jitter (the fleet's keeper.jitterMs, 3 s) before expireDevice and again before each
 * finalizeExpired, then the others claim after their score delay (at most 1.75 s) and start the
 * replica. docs/worker.md ("Keeper") states the same numbers.
 */
export const KILL_BOUNDS_S = { expired: 10, finalized: 20, reclaimed: 45 } as const;

/**
 * kill -9 a device's worker and watch the fleet heal by itself: no script keeps the chain live. The
 * other workers notice the device go stale, one of them expires it (and collects the bounty),
 * they finalize its placements, and the freed replicas are claimed by the others.
 */
export function scenarioKill(
  ctx: ScenarioContext,
  options: { deviceId?: number; restart?: boolean } = {},
): Promise<KillResult> {
  return withEnv(ctx, async (env) => {
    const { fleet, say, c } = env;
    let deviceId = options.deviceId;
    if (deviceId === undefined) {
      let most = 0;
      for (const d of fleet.state.devices) {
        const n = Number((await c.placements.deviceUsage(d.deviceId)).livePlacements);
        if (n > most) [most, deviceId] = [n, d.deviceId];
      }
      if (deviceId === undefined)
        throw new ScenarioError("no device of the fleet holds a live placement; deploy something first");
    }
    const dead = deviceId;
    fleet.device(dead);
    if (!fleet.running(dead)) throw new ScenarioError(`the worker of device ${dead} is not running`);
    const survivors = fleet.state.devices.filter((d) => d.deviceId !== dead && fleet.running(d.deviceId));
    if (survivors.length === 0)
      throw new ScenarioError(`device ${dead} is the fleet's only running device: no worker would keep`);
    const survivingOperators = await Promise.all(
      survivors.map(async (d) => (await c.devices.device(d.deviceId)).operator),
    );
    const held = (await placementsOfDevice(c, dead)).filter((p) => isLivePlacement(p.state));
    if (held.length === 0)
      throw new ScenarioError(`device ${dead} holds no live placement; nothing would move`);
    const stakeBefore = (await c.devices.device(dead)).stake;
    const deployments = [...new Set(held.map((p) => p.deploymentId))];
    const liveBefore = new Set<bigint>();
    for (const id of deployments) for (const p of await livePlacements(c, id)) liveBefore.add(p.placementId);
    const ttl = fleet.state.heartbeatTtlS;
    const fromBlock = await c.provider.getBlockNumber();

    say(`kill -9 the worker of device ${dead} (holds ${describe(held)}); heartbeat TTL ${ttl} s`);
    await fleet.crashWorker(dead);
    const killedAt = Date.now();
    const since = () => Math.round((Date.now() - killedAt) / 1000);
    await waitFor(`device ${dead} to go stale on chain`, async () => c.devices.isStale(dead), {
      timeoutMs: env.ms(ttl + 30),
      intervalMs: 1000,
    });
    const staleAfterS = since();
    say(`  stale after ${staleAfterS} s; waiting for a worker to expire it (nobody else will)`);

    const expiry = await waitFor(
      `a worker to expire device ${dead} (expireDevice)`,
      async () => (await c.placements.queryFilter(c.placements.filters.DeviceExpired(dead), fromBlock))[0],
      { timeoutMs: env.ms(KILL_BOUNDS_S.expired + 30), intervalMs: 500 },
    );
    const expiredAfterS = since();
    const [slash] = await c.devices.queryFilter(c.devices.filters.DeviceSlashed(dead), expiry.blockNumber);
    if (slash === undefined) throw new ScenarioError(`device ${dead} was expired but not slashed`);
    const { amount: slashed, bounty, bountyRecipient } = slash.args;
    const stakeAfter = (await c.devices.device(dead)).stake;
    if (stakeBefore - stakeAfter !== slashed || slashed === 0n)
      throw new ScenarioError(
        `device ${dead}'s stake went from ${stakeBefore} to ${stakeAfter}, but DeviceSlashed reported ${slashed}`,
      );
    const expiredBy = expiry.args.expiredBy;
    say(
      `  expired after ${expiredAfterS} s by ${expiredBy} (device ${survivors[survivingOperators.indexOf(expiredBy)]?.deviceId ?? "?"}'s worker); ` +
        `slashed ${fmtTokens(slashed)} SHOAL, bounty ${fmtTokens(bounty)}; stake ${fmtTokens(stakeBefore)} -> ${fmtTokens(stakeAfter)}`,
    );

    // expireDevice is O(1); each placement is finalized on its own (by the workers), which frees
    // its replica. A re-claim by the same device would finalize too; the dead one claims nothing.
    const finalized = await waitFor(
      `the workers to finalize ${describe(held)}`,
      async () => {
        const events = await c.placements.queryFilter(c.placements.filters.PlacementExpired(), fromBlock);
        const mine = events.filter((e) => held.some((p) => p.placementId === e.args.placementId));
        return mine.length === held.length ? mine : undefined;
      },
      { timeoutMs: env.ms(KILL_BOUNDS_S.finalized + 30), intervalMs: 500 },
    );
    const finalizedAfterS = since();
    const finalizedBy = await Promise.all(
      finalized.map(async (e) => ({
        placementId: e.args.placementId.toString(),
        from: (await e.getTransaction()).from,
      })),
    );
    say(
      `  finalized after ${finalizedAfterS} s: ${finalizedBy.map((f) => `${short(f.placementId)} by ${f.from}`).join(", ")}; waiting for the other devices to reclaim`,
    );

    const reclaimed: KillResult["reclaimed"] = [];
    for (const deploymentId of deployments) {
      const summary = await c.apps.deploymentSummary(deploymentId);
      if (!summary.active) continue;
      const live = await settled(env, deploymentId, Number(summary.replicas), 90);
      for (const p of live) {
        if (p.deviceId === dead) throw new ScenarioError(`the dead device ${dead} holds ${pid(p)} again`);
        if (!liveBefore.has(p.placementId))
          reclaimed.push({ placementId: pid(p), deploymentId, deviceId: p.deviceId });
      }
    }
    const reclaimedAfterS = since();
    say(
      `  reclaimed after ${reclaimedAfterS} s: ${reclaimed.map((r) => `${short(r.placementId)}@device ${r.deviceId}`).join(", ") || "none"}`,
    );

    const restart = options.restart ?? true;
    if (restart) {
      say(`restarting the worker of device ${dead}: it heartbeats again and removes its expired containers`);
      fleet.startWorker(dead);
      await fleet.waitStarted([dead]);
      await noContainers(env, held.map(pid));
    }
    return {
      deviceId: dead,
      heartbeatTtlS: ttl,
      staleAfterS,
      expiredAfterS,
      finalizedAfterS,
      reclaimedAfterS,
      expiredPlacements: held.map((p) => ({ placementId: pid(p), deploymentId: p.deploymentId })),
      stakeBefore: stakeBefore.toString(),
      stakeAfter: stakeAfter.toString(),
      slashed: slashed.toString(),
      bounty: bounty.toString(),
      expiredBy,
      bountyRecipient,
      finalizedBy,
      survivingOperators,
      reclaimed,
      restarted: restart,
    };
  });
}

function fmtTokens(amount: bigint): string {
  const whole = amount / 10n ** 18n;
  const frac = (amount % 10n ** 18n) / 10n ** 16n;
  return frac === 0n ? String(whole) : `${whole}.${String(frac).padStart(2, "0")}`;
}

// ---------------------------------------------------------------------------------------------- (c)

export interface SpikeResult {
  deploymentId: number;
  placementId: string;
  deviceId: number;
  band: { cpuMinMillicores: number; cpuMaxMillicores: number };
  deviceCpuMillicores: number;
  /** CPU limits seen, in order, each with the seconds since the replica ran. */
  limits: { atS: number; cpuMillicores: number }[];
  peakMillicores: number;
  raisedAfterS: number;
  loweredAfterS: number;
  finalMillicores: number;
  /** Decisions on shoal/v1/devices/<id>/resources for this placement. */
  decisions: { from: number; to: number; reason: string; resource: string }[];
}

/** The spike app: the load generator's image with a square-wave profile (bursts, then idle). */
function spikeManifest(dir: string, burstS: number, idleS: number): string {
  const doc = YAML.parse(readFileSync(path.join(ROOT, "apps/demo-loadgen/shoal.yaml"), "utf8")) as Record<
    string,
    unknown
  >;
  doc.name = "demo-spike";
  doc.description = "CPU spikes: the load generator in bursts, for the resource manager scenario";
  doc.env = {
    PROFILE: "bursts",
    CPU_MILLICORES: "800",
    MEMORY_MIB: "16",
    BURST_PERIOD_S: String(burstS + idleS),
    BURST_DUTY: String(burstS / (burstS + idleS)),
    IDLE_MILLICORES: "20",
  };
  doc.replicas = 1;
  const file = path.join(dir, "shoal.yaml");
  writeFileSync(file, YAML.stringify(doc));
  return file;
}

export function scenarioSpike(
  ctx: ScenarioContext,
  options: { burstS?: number; idleS?: number } = {},
): Promise<SpikeResult> {
  return withEnv(ctx, async (env) => {
    const { fleet, say, c, docker } = env;
    const burstS = options.burstS ?? 30;
    const idleS = options.idleS ?? 60;
    const dir = mkdtempSync(path.join(tmpdir(), "shoal-spike-"));
    const decisions: SpikeResult["decisions"] = [];
    const mqttClient = await mqtt.connectAsync(fleet.state.mqttUrl, {
      clientId: `shoal-fleet-spike-${process.pid}-${Date.now()}`,
    });
    let deploymentId: number | undefined;
    try {
      say("publishing demo-spike (the load generator in bursts) and deploying 1 replica");
      await runTask(["app:publish", "--manifest", spikeManifest(dir, burstS, idleS)], fleet.taskEnv);
      const out = await runTask(["app:deploy", "--app", "demo-spike", "--replicas", "1"], fleet.taskEnv);
      deploymentId = Number(/deployment (\d+):/.exec(out)?.[1]);
      fleet.state.demo["demo-spike"] = deploymentId;
      fleet.saveState();
      const [placement] = await settled(env, deploymentId, 1, 90);
      const placementId = pid(placement);
      const ranAt = Date.now();
      const band = await c.apps.bandAt(deploymentId, placement.deploymentGeneration);
      const cpuMin = Number(band.cpuMinMillicores);
      const cpuMax = Number(band.cpuMaxMillicores);
      const deviceCpu = Number((await c.devices.device(placement.deviceId)).cpuMillicores);
      mqttClient.on("message", (_topic, payload) => {
        try {
          const d = JSON.parse(payload.toString("utf8")) as SpikeResult["decisions"][number] & {
            placementId: string;
          };
          if (d.placementId === placementId && d.resource === "cpu")
            decisions.push({ from: d.from, to: d.to, reason: d.reason, resource: d.resource });
        } catch {
          // not a decision record
        }
      });
      await mqttClient.subscribeAsync(`shoal/v1/devices/${placement.deviceId}/resources`, { qos: 1 });
      say(
        `  placement ${short(placementId)} runs on device ${placement.deviceId} at ${cpuMin}m (band ${cpuMin}m..${cpuMax}m); ` +
          `bursts of 800m for ${burstS} s, then ${idleS} s idle`,
      );

      const [container] = await containersOf(env, `io.shoal.placement=${placementId}`);
      const limits: SpikeResult["limits"] = [];
      const cpuLimit = async () => {
        const host = (await docker.getContainer(container.Id).inspect()).HostConfig;
        const m = host.CpuQuota && host.CpuPeriod ? Math.round((host.CpuQuota / host.CpuPeriod) * 1000) : 0;
        if (limits.at(-1)?.cpuMillicores !== m)
          limits.push({ atS: Math.round((Date.now() - ranAt) / 1000), cpuMillicores: m });
        return m;
      };
      let peak = await cpuLimit();
      try {
        await waitFor(
          "the CPU limit to rise above the band minimum during the burst",
          async () => {
            peak = Math.max(peak, await cpuLimit());
            return peak > cpuMin;
          },
          { timeoutMs: env.ms(burstS), intervalMs: 1000 },
        );
      } catch {
        throw new ScenarioError(
          `the CPU limit of placement ${placementId} stayed at ${peak}m (band minimum ${cpuMin}m) through a ${burstS} s burst of 800m, ` +
            `and ${decisions.length} resource decision(s) arrived on shoal/v1/devices/${placement.deviceId}/resources: ` +
            "this scenario needs the resource manager wired into the worker (issue 6)",
          "needs-resource-manager",
        );
      }
      const raisedAfterS = Math.round((Date.now() - ranAt) / 1000);
      say(
        `  raised: ${cpuMin}m -> ${limits.at(-1)?.cpuMillicores}m after ${raisedAfterS} s; following the burst`,
      );
      // Until the burst ends, the limit follows it; then it must come down.
      while (Date.now() - ranAt < burstS * 1000) {
        peak = Math.max(peak, await cpuLimit());
        await sleep(1000);
      }
      let final = peak;
      await waitFor(
        `the CPU limit to come down from its peak of ${peak}m after the burst`,
        async () => {
          final = await cpuLimit();
          return final < peak;
        },
        { timeoutMs: env.ms(idleS - 10), intervalMs: 1000 },
      );
      const loweredAfterS = Math.round((Date.now() - ranAt) / 1000);
      say(`  lowered: ${peak}m -> ${final}m at ${loweredAfterS} s (${decisions.length} decisions on MQTT)`);
      return {
        deploymentId,
        placementId,
        deviceId: placement.deviceId,
        band: { cpuMinMillicores: cpuMin, cpuMaxMillicores: cpuMax },
        deviceCpuMillicores: deviceCpu,
        limits,
        peakMillicores: peak,
        raisedAfterS,
        loweredAfterS,
        finalMillicores: final,
        decisions,
      };
    } finally {
      await mqttClient.endAsync().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      if (deploymentId !== undefined && Number.isInteger(deploymentId)) {
        say(`stopping demo-spike (app:stop --deployment ${deploymentId})`);
        try {
          const live = await livePlacements(c, deploymentId);
          await runTask(["app:stop", "--deployment", String(deploymentId)], fleet.taskEnv);
          await waitReleased(env, deploymentId, 0, live);
          await noContainers(env, (await placementsOfDeployment(c, deploymentId)).map(pid));
        } catch (error) {
          say(`  could not stop it: ${(error as Error).message}`);
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------- (d)

export interface RollResult {
  deploymentId: number;
  from: number;
  to: number;
  semver: string;
  replaced: { placementId: string; deviceId: number }[];
  placements: { placementId: string; deviceId: number }[];
  /** What a new replica's page says. */
  page: string;
}

export function scenarioRoll(
  ctx: ScenarioContext,
  options: { deploymentId?: number } = {},
): Promise<RollResult> {
  return withEnv(ctx, async (env) => {
    const { fleet, say, c } = env;
    const deploymentId = demoDeployment(fleet, "demo-web", options.deploymentId);
    const summary = await c.apps.deploymentSummary(deploymentId);
    const replicas = Number(summary.replicas);
    const before = await settled(env, deploymentId, replicas);
    const from = Number(summary.version);
    const count = Number((await c.apps.app(summary.appId)).versionCount);
    const semver = `1.${count}.0`;

    const dir = mkdtempSync(path.join(tmpdir(), "shoal-roll-"));
    try {
      const doc = YAML.parse(readFileSync(path.join(ROOT, "apps/demo-web/shoal.yaml"), "utf8")) as Record<
        string,
        unknown
      >;
      doc.version = semver;
      doc.env = { ...(doc.env as Record<string, string>), APP_VERSION: semver };
      writeFileSync(path.join(dir, "shoal.yaml"), YAML.stringify(doc));
      say(`publishing demo-web ${semver} (app:publish)`);
      await runTask(["app:publish", "--manifest", path.join(dir, "shoal.yaml")], fleet.taskEnv);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    say(`rolling deployment ${deploymentId} to ${semver} (app:roll)`);
    const out = await runTask(
      ["app:roll", "--deployment", String(deploymentId), "--app-version", semver],
      fleet.taskEnv,
    );
    const to = Number(/-> (\d+)/.exec(out)?.[1]);

    const after = await waitFor(
      `deployment ${deploymentId} to run ${replicas} replica(s) of version ${to}`,
      async () => {
        const live = await settled(env, deploymentId, replicas, 5).catch(() => undefined);
        return live?.every((p) => p.version === to) ? live : undefined;
      },
      { timeoutMs: env.ms(90), intervalMs: 1000 },
    );
    await noContainers(env, before.map(pid));
    // Make-before-break leaves nothing behind: each replaced placement ends Released (by its
    // device's claim of the new version, or its release), not Superseded with its reservation held.
    await waitFor(
      `the replaced placements ${describe(before)} to end Released`,
      async () => {
        for (const p of before)
          if (PLACEMENT_STATES[Number(await c.placements.placementState(p.placementId))] !== "Released")
            return false;
        return true;
      },
      { timeoutMs: env.ms(30), intervalMs: 500 },
    ).catch(async () => {
      const states = await Promise.all(
        before.map(
          async (p) =>
            `${short(pid(p))} ${PLACEMENT_STATES[Number(await c.placements.placementState(p.placementId))]}`,
        ),
      );
      throw new ScenarioError(`a replaced placement did not end Released within 30 s: ${states.join(", ")}`);
    });
    const old = await containersOf(env, `io.shoal.deployment=${deploymentId}`);
    const stale = old.filter((x) => x.Labels["io.shoal.version"] !== String(to));
    if (stale.length > 0)
      throw new ScenarioError(
        `containers of the old version still exist: ${stale.map((x) => x.Names[0]).join(", ")}`,
      );
    say(`  replaced ${describe(before)} with ${describe(after)}`);

    const [first] = await containersOf(env, `io.shoal.placement=${pid(after[0])}`);
    const binding = first.Ports.find((p) => p.PrivatePort === 8080 && !p.IP?.includes(":"));
    const port = binding?.PublicPort;
    // Ports are published on the device's exposure address (a fleet device's own address; else
    // 127.0.0.1), asked from inside the device's namespace when it is a host of its own.
    const address = binding?.IP && binding.IP !== "0.0.0.0" ? binding.IP : "127.0.0.1";
    const host = fleet.state.devices.find((d) => d.deviceId === after[0].deviceId)?.host;
    const get = async (url: string) =>
      host
        ? (
            await execFileAsync(inDevice(host)[0], [
              ...inDevice(host).slice(1),
              "curl",
              "-fsS",
              "-m",
              "5",
              url,
            ])
          ).stdout
        : (await fetch(url)).text();
    const page = port
      ? await waitFor("the new page", () => get(`http://${address}:${port}/`), {
          timeoutMs: env.ms(15),
        })
      : "";
    if (!page.includes(semver))
      throw new ScenarioError(`a new replica's page does not show version ${semver}`);
    say(`  http://${address}:${port}/ shows ${semver}`);
    return {
      deploymentId,
      from,
      to,
      semver,
      replaced: before.map((p) => ({ placementId: pid(p), deviceId: p.deviceId })),
      placements: after.map((p) => ({ placementId: pid(p), deviceId: p.deviceId })),
      page: page.trim().slice(0, 200),
    };
  });
}
