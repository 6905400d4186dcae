/**
 * Randomized sequence of claims, confirms, failures, releases, expiries, finalizations, scale changes,
 * rolls, heartbeats, top-ups and slashes. After every step the chain's accounts are compared with a model
 * rebuilt from the events alone, and the invariants are asserted:
 * - a device's reserved CPU and memory equal the sum over its live placements, and never exceed its capacity;
 * - a deployment's live replicas equal the count of its live placements of the current generation, and a
 *   claim never takes them above N (after a scale-down they only fall until they are under N);
 * - the stakes add up to totalStaked and to the registry's token balance;
 * - a deployment's running replicas equal the count of its Running placements of the current generation,
 *   and nothing is confirmed after a roll or stop;
 * - a stranger releases a superseded placement of an active deployment exactly when the new generation runs
 *   in full or the device is stale (make-before-break);
 * - a claim succeeds only with stake for the minimum plus the collateral of every live placement; an overdue
 *   claim is failed by a keeper exactly when its deadline has passed; a device's own expiry pays no bounty;
 * - admin changes (TTL, collateral, slash amounts, claim deadline) go through the timelock and apply only
 *   once its delay has passed since they were scheduled.
 * Set SHOAL_SEED to replay a sequence; SHOAL_STEPS to change its length.
 */
import { expect } from "chai";
import hre, { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import type { ContractTransactionResponse, Log } from "ethers";
import { deployShoal, DEFAULT_PARAMETERS } from "../../scripts/deploy";

const SEED = Number(process.env.SHOAL_SEED ?? 0x5eed);
const STEPS = Number(process.env.SHOAL_STEPS ?? 500);
const TTL = DEFAULT_PARAMETERS.heartbeatTtl;
const MIN_STAKE = DEFAULT_PARAMETERS.minStake;
const DELAY = 600;
const CID = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq";
const BANDS = [
  { cpuMinMillicores: 250, cpuMaxMillicores: 1000, memoryMinMiB: 128, memoryMaxMiB: 512 },
  { cpuMinMillicores: 500, cpuMaxMillicores: 2000, memoryMinMiB: 256, memoryMaxMiB: 1024 },
  { cpuMinMillicores: 100, cpuMaxMillicores: 400, memoryMinMiB: 64, memoryMaxMiB: 128 },
];
const VERSIONS = 8;
const DEVICES = [
  { platform: "linux/amd64", cpu: 1000, memory: 512, labels: ["region=eu"] },
  { platform: "linux/amd64", cpu: 2000, memory: 1024, labels: ["region=eu", "tier=edge"] },
  { platform: "linux/arm64", cpu: 1500, memory: 1024, labels: ["region=us"] },
  { platform: "linux/arm64", cpu: 600, memory: 300, labels: ["region=eu"] },
  { platform: "linux/amd64", cpu: 1200, memory: 768, labels: ["region=us", "tier=edge"] },
  { platform: "linux/amd64", cpu: 800, memory: 512, labels: [] },
];
const DEPLOYMENTS = [
  { replicas: 3, labels: ["region=eu"] },
  { replicas: 2, labels: [] },
  { replicas: 4, labels: ["tier=edge"] },
  { replicas: 1, labels: [] },
];

/** mulberry32: small, seedable, good enough to pick actions. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function invariantFixture() {
  const signers = await ethers.getSigners();
  const [admin, appOwner, other, slasher] = signers;
  const owners = signers.slice(4, 4 + DEVICES.length);
  const shoal = await deployShoal(hre, {
    admin,
    mintTo: [...owners.map((o) => o.address)],
    mintAmount: 1_000_000n * 10n ** 18n,
    parameters: { timelockDelay: DELAY },
  });
  const { token, devices, apps } = shoal;
  const timelock = shoal.timelock!;
  // Even the fixture's slasher is granted through the timelock.
  const grant = devices.interface.encodeFunctionData("grantRole", [
    await devices.SLASHER_ROLE(),
    slasher.address,
  ]);
  const to = await devices.getAddress();
  await timelock.connect(admin).schedule(to, 0, grant, ethers.ZeroHash, ethers.ZeroHash, DELAY);
  await time.increase(DELAY);
  await timelock.connect(other).execute(to, 0, grant, ethers.ZeroHash, ethers.ZeroHash);
  await apps.connect(appOwner).registerApp("random");
  for (let v = 0; v < VERSIONS; v++) {
    // Every third version has no arm64 image, so arm64 devices meet PlatformUnsupported after some rolls.
    const platforms = v % 3 === 1 ? ["linux/amd64"] : ["linux/amd64", "linux/arm64"];
    await apps.connect(appOwner).publishVersion(
      1,
      CID,
      platforms,
      platforms.map(() => CID),
      BANDS[v % BANDS.length],
    );
  }
  for (const [i, d] of DEVICES.entries()) {
    const o = owners[i];
    await token.connect(o).approve(await devices.getAddress(), ethers.MaxUint256);
    await devices
      .connect(o)
      .enroll(o.address, d.platform, d.cpu, d.memory, d.labels, "/ip4/127.0.0.1/tcp/4001", MIN_STAKE * 2n);
  }
  for (const d of DEPLOYMENTS) await apps.connect(appOwner).createDeployment(1, 1, d.replicas, d.labels);
  return { ...shoal, admin, appOwner, other, slasher, owners };
}

interface ModelPlacement {
  dep: number;
  dev: number;
  depGen: number;
  devGen: number;
  cpu: number;
  mem: number;
  running: boolean;
  ended?: "Released" | "Failed" | "Expired";
}

const STATE_NAMES = ["None", "Claimed", "Running", "Released", "Failed", "Expired", "Superseded"];

describe("Invariants (randomized)", function () {
  this.timeout(600_000);

  it(`test_randomSequence_keepsAccountsBalanced (seed ${SEED}, ${STEPS} steps)`, async () => {
    const f = await loadFixture(invariantFixture);
    const { devices, apps, placements, token, appOwner, other, slasher, owners, admin } = f;
    const timelock = f.timelock!;
    const random = rng(SEED);
    const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];
    const nDev = DEVICES.length;
    const nDep = DEPLOYMENTS.length;

    const model = new Map<bigint, ModelPlacement>();
    const devGen = new Map<number, number>(DEVICES.map((_, i) => [i + 1, 0]));
    const depGen = new Map<number, number>(DEPLOYMENTS.map((_, i) => [i + 1, 1]));
    const depVersion = new Map<number, number>(DEPLOYMENTS.map((_, i) => [i + 1, 1]));
    const prevLive = new Map<number, number>(DEPLOYMENTS.map((_, i) => [i + 1, 0]));
    const counts: Record<string, number> = {};
    /** Timelock operations scheduled and not yet executed, with the time they were scheduled. */
    const pending: { target: string; data: string; salt: string; at: number; what: string }[] = [];
    let salt = 0;

    const apply = (logs: readonly Log[]) => {
      for (const log of logs) {
        const parsed = placements.interface.parseLog(log) ?? apps.interface.parseLog(log);
        if (!parsed) continue;
        const a = parsed.args;
        switch (parsed.name) {
          case "PlacementClaimed":
            model.set(a.placementId, {
              dep: Number(a.deploymentId),
              dev: Number(a.deviceId),
              depGen: Number(a.deploymentGeneration),
              devGen: Number(a.deviceGeneration),
              cpu: Number(a.band.cpuMinMillicores),
              mem: Number(a.band.memoryMinMiB),
              running: false,
            });
            break;
          case "PlacementConfirmed": {
            const p = model.get(a.placementId)!;
            expect(p.depGen, `confirm of ${a.placementId} after a roll or stop`).to.equal(depGen.get(p.dep));
            p.running = true;
            break;
          }
          case "PlacementReleased":
            model.get(a.placementId)!.ended = "Released";
            break;
          case "PlacementFailed":
            model.get(a.placementId)!.ended = "Failed";
            break;
          case "PlacementExpired":
            model.get(a.placementId)!.ended = "Expired";
            break;
          case "DeviceExpired":
            devGen.set(Number(a.deviceId), Number(a.generation) + 1);
            break;
          case "DeploymentRolled":
            depGen.set(Number(a.deploymentId), Number(a.generation));
            depVersion.set(Number(a.deploymentId), Number(a.version));
            break;
          case "DeploymentStopped":
            depGen.set(Number(a.deploymentId), Number(a.generation));
            break;
        }
      }
    };

    /** Sends a transaction; reverts must be custom errors (never a panic, never an unexplained revert). */
    const send = async (name: string, tx: () => Promise<ContractTransactionResponse>): Promise<boolean> => {
      try {
        const receipt = await (await tx()).wait();
        apply(receipt!.logs);
        counts[name] = (counts[name] ?? 0) + 1;
        return true;
      } catch (error) {
        const message = String((error as Error).message);
        expect(message, `${name}: ${message}`).to.match(/reverted with custom error/);
        counts[`${name} (reverted)`] = (counts[`${name} (reverted)`] ?? 0) + 1;
        return false;
      }
    };

    const placementIds = () => [...model.keys()];
    const livePlacementIds = () => [...model.entries()].filter(([, p]) => !p.ended).map(([id]) => id);
    const anyPlacement = () => {
      const live = livePlacementIds();
      return live.length > 0 && random() < 0.85
        ? pick(live)
        : placementIds().length > 0
          ? pick(placementIds())
          : undefined;
    };
    const ownerOf = (id: bigint) => owners[model.get(id)!.dev - 1];

    const check = async (step: number, action: string, claimedDep?: number) => {
      const ctx = `step ${step} (${action}, seed ${SEED})`;
      let stakes = 0n;
      for (let dev = 1; dev <= nDev; dev++) {
        const u = await placements.deviceUsage(dev);
        const live = [...model.values()].filter(
          (p) => p.dev === dev && !p.ended && p.devGen === devGen.get(dev),
        );
        expect(u.generation, `${ctx}: device ${dev} generation`).to.equal(devGen.get(dev));
        expect(u.cpuReservedMillicores, `${ctx}: device ${dev} cpu`).to.equal(
          live.reduce((s, p) => s + p.cpu, 0),
        );
        expect(u.memoryReservedMiB, `${ctx}: device ${dev} memory`).to.equal(
          live.reduce((s, p) => s + p.mem, 0),
        );
        expect(u.livePlacements, `${ctx}: device ${dev} live`).to.equal(live.length);
        expect(u.cpuReservedMillicores, `${ctx}: device ${dev} cpu capacity`).to.be.lte(DEVICES[dev - 1].cpu);
        expect(u.memoryReservedMiB, `${ctx}: device ${dev} memory capacity`).to.be.lte(
          DEVICES[dev - 1].memory,
        );
        stakes += (await devices.device(dev)).stake;
      }
      for (let dep = 1; dep <= nDep; dep++) {
        const chainLive = Number((await placements.deploymentUsage(dep)).liveReplicas);
        const d = await apps.deployment(dep);
        const modelLive = [...model.values()].filter(
          (p) => p.dep === dep && !p.ended && p.depGen === depGen.get(dep),
        );
        expect(chainLive, `${ctx}: deployment ${dep} live`).to.equal(modelLive.length);
        expect(
          (await placements.deploymentUsage(dep)).runningReplicas,
          `${ctx}: deployment ${dep} running`,
        ).to.equal(modelLive.filter((p) => p.running).length);
        if (claimedDep === dep) expect(chainLive, `${ctx}: claim above N`).to.be.lte(Number(d.replicas));
        if (chainLive > Number(d.replicas)) {
          // Over N only after a scale-down, and only ever falling from there.
          expect(chainLive, `${ctx}: deployment ${dep} surplus grew`).to.be.lte(prevLive.get(dep)!);
        }
        prevLive.set(dep, chainLive);
      }
      expect(await devices.totalStaked(), `${ctx}: totalStaked`).to.equal(stakes);
      expect(await token.balanceOf(await devices.getAddress()), `${ctx}: token balance`).to.equal(stakes);
    };

    const fullCheck = async (step: number) => {
      for (const [id, p] of model) {
        let expected: string;
        if (p.ended) expected = p.ended;
        else if (p.devGen !== devGen.get(p.dev)) expected = "Expired";
        else if (p.depGen !== depGen.get(p.dep)) expected = "Superseded";
        else expected = p.running ? "Running" : "Claimed";
        const actual = STATE_NAMES[Number(await placements.placementState(id))];
        expect(actual, `step ${step}: placement ${id}`).to.equal(expected);
      }
    };

    await check(0, "start");
    for (let step = 1; step <= STEPS; step++) {
      const r = random() * 100;
      let action: string;
      let claimedDep: number | undefined;
      if (r < 30) {
        const dep = 1 + Math.floor(random() * nDep);
        const dev = 1 + Math.floor(random() * nDev);
        action = `claim(${dep}, ${dev})`;
        // Workers heartbeat often; most claims come from fresh devices.
        if (random() < 0.6) await send("heartbeat", () => devices.connect(owners[dev - 1]).heartbeat(dev));
        const stake = (await devices.device(dev)).stake;
        const params = await devices.parameters();
        if (await send("claim", () => placements.connect(owners[dev - 1]).claim(dep, dev))) {
          claimedDep = dep;
          const live = (await placements.deviceUsage(dev)).livePlacements;
          expect(stake, `claim(${dep}, ${dev}) without collateral`).to.be.gte(
            params.minStake + params.collateralPerPlacement * live,
          );
        }
      } else if (r < 40) {
        const id = anyPlacement();
        action = `confirm(${id})`;
        if (id !== undefined) await send("confirm", () => placements.connect(ownerOf(id)).confirm(id));
      } else if (r < 46) {
        const id = anyPlacement();
        const code = 1 + Math.floor(random() * 7);
        action = `fail(${id}, ${code})`;
        if (id !== undefined) await send("fail", () => placements.connect(ownerOf(id)).fail(id, code));
      } else if (r < 58) {
        const id = anyPlacement();
        const who = random();
        action = `release(${id})`;
        if (id !== undefined) {
          const caller = who < 0.6 ? ownerOf(id) : who < 0.85 ? appOwner : other;
          const p = model.get(id)!;
          const d = await apps.deployment(p.dep);
          const strangerMidRoll =
            caller === other &&
            !p.ended &&
            p.devGen === devGen.get(p.dev) &&
            p.depGen !== depGen.get(p.dep) &&
            d.active;
          const running = (await placements.deploymentUsage(p.dep)).runningReplicas;
          const stale = await devices.isStale(p.dev);
          const ok = await send("release", () => placements.connect(caller).release(id));
          if (strangerMidRoll)
            expect(
              ok,
              `stranger's release of superseded ${id} (running ${running}/${d.replicas}, stale ${stale})`,
            ).to.equal(running >= d.replicas || stale);
        }
      } else if (r < 64) {
        const dev = 1 + Math.floor(random() * nDev);
        action = `heartbeat(${dev})`;
        await send("heartbeat", () => devices.connect(owners[dev - 1]).heartbeat(dev));
      } else if (r < 67) {
        const seconds = 1 + Math.floor(random() * 120);
        action = `time +${seconds}s`;
        await time.increase(seconds);
      } else if (r < 70) {
        // A keeper fails an unconfirmed claim: only once its deadline has passed.
        const claimed = [...model.entries()].filter(
          ([, p]) => !p.ended && !p.running && p.devGen === devGen.get(p.dev),
        );
        const id = claimed.length > 0 ? pick(claimed)[0] : anyPlacement();
        action = `finalizeOverdueClaim(${id})`;
        if (random() < 0.5) await time.increase(Number(await placements.claimDeadline()));
        if (id !== undefined) {
          const p = await placements.placement(id);
          const deadline = Number(p.claimedAt) + Number(await placements.claimDeadline());
          // Claimed, or superseded while still unconfirmed (it can no longer be confirmed): both fail late.
          const m = model.get(id)!;
          const open = !m.ended && !m.running && m.devGen === devGen.get(m.dev);
          const due = (await time.latest()) + 1 >= deadline && open;
          const ok = await send("finalizeOverdueClaim", () =>
            placements.connect(other).finalizeOverdueClaim(id),
          );
          expect(ok, `finalizeOverdueClaim(${id}) due ${due}`).to.equal(due);
        }
      } else if (r < 72) {
        // Governance: schedule a change of the TTL, collateral, slash share or claim deadline.
        const p = await devices.parameters();
        const ttl = 60 + Math.floor(random() * 600);
        const kind = Math.floor(random() * 2);
        const target = kind === 0 ? devices : placements;
        const data =
          kind === 0
            ? devices.interface.encodeFunctionData("setParameters", [
                {
                  minStake: p.minStake,
                  collateralPerPlacement: BigInt(Math.floor(random() * 20)) * 10n ** 18n,
                  heartbeatTtl: ttl,
                  unbondingDelay: ttl + 3600,
                  livenessSlashBps: 500 + Math.floor(random() * 1000),
                  bountyBps: p.bountyBps,
                },
              ])
            : placements.interface.encodeFunctionData("setClaimDeadline", [60 + Math.floor(random() * 900)]);
        const s = ethers.toBeHex(++salt, 32);
        action = `schedule(${kind === 0 ? "setParameters" : "setClaimDeadline"})`;
        const to = await target.getAddress();
        if (
          await send("schedule", () =>
            timelock.connect(admin).schedule(to, 0, data, ethers.ZeroHash, s, DELAY),
          )
        )
          pending.push({ target: to, data, salt: s, at: await time.latest(), what: action });
      } else if (r < 74) {
        // Anyone executes a scheduled change: it applies only once the delay has passed.
        const op = pending.length > 0 ? pick(pending) : undefined;
        action = `execute(${op?.what})`;
        if (op !== undefined) {
          const ready = (await time.latest()) + 1 >= op.at + DELAY;
          const ok = await send("execute", () =>
            timelock.connect(other).execute(op.target, 0, op.data, ethers.ZeroHash, op.salt),
          );
          expect(ok, `${action} ready ${ready}`).to.equal(ready);
          if (ok) pending.splice(pending.indexOf(op), 1);
        }
      } else if (r < 78) {
        action = `time +TTL`;
        await time.increase(TTL + 1);
      } else if (r < 83) {
        // Mostly devices that hold live placements: the others cannot be expired.
        const holders = [
          ...new Set(
            [...model.values()].filter((p) => !p.ended && p.devGen === devGen.get(p.dev)).map((p) => p.dev),
          ),
        ];
        const dev = holders.length > 0 && random() < 0.8 ? pick(holders) : 1 + Math.floor(random() * nDev);
        action = `expireDevice(${dev})`;
        const keeper = random() < 0.8 ? other : owners[dev - 1];
        const before = await token.balanceOf(keeper.address);
        await send("expireDevice", () => placements.connect(keeper).expireDevice(dev));
        if (keeper !== other)
          expect(await token.balanceOf(keeper.address), `bounty for expiring own device ${dev}`).to.equal(
            before,
          );
      } else if (r < 88) {
        const stale = [...model.entries()].filter(([, p]) => !p.ended && p.devGen !== devGen.get(p.dev));
        const id = stale.length > 0 && random() < 0.8 ? pick(stale)[0] : anyPlacement();
        action = `finalizeExpired(${id})`;
        if (id !== undefined)
          await send("finalizeExpired", () => placements.connect(other).finalizeExpired(id));
      } else if (r < 93) {
        const dep = 1 + Math.floor(random() * nDep);
        const n = 1 + Math.floor(random() * 5);
        action = `scale(${dep}, ${n})`;
        await send("scale", () => apps.connect(appOwner).scaleDeployment(dep, n));
      } else if (r < 96) {
        const dep = 1 + Math.floor(random() * nDep);
        const v = depVersion.get(dep)! + 1;
        action = `roll(${dep}, ${v})`;
        if (v <= VERSIONS) await send("roll", () => apps.connect(appOwner).rollDeployment(dep, v));
      } else if (r < 98) {
        const dev = 1 + Math.floor(random() * nDev);
        action = `topUp(${dev})`;
        await send("topUp", () => devices.connect(owners[dev - 1]).topUp(dev, MIN_STAKE / 2n));
      } else if (r < 99.5 || step < STEPS * 0.8) {
        const dev = 1 + Math.floor(random() * nDev);
        action = `slash(${dev})`;
        await send("slash", () => devices.connect(slasher).slash(dev, MIN_STAKE / 4n, CID));
      } else {
        const dep = 1 + Math.floor(random() * nDep);
        action = `stop(${dep})`;
        await send("stop", () => apps.connect(appOwner).stopDeployment(dep));
      }
      await check(step, action, claimedDep);
      if (step % 50 === 0 || step === STEPS) await fullCheck(step);
    }
    // The sequence must have exercised every kind of transition at least once.
    for (const name of [
      "claim",
      "confirm",
      "fail",
      "release",
      "expireDevice",
      "finalizeExpired",
      "scale",
      "roll",
      "finalizeOverdueClaim",
      "schedule",
      "execute",
    ]) {
      expect(counts[name] ?? 0, `${name} never succeeded: ${JSON.stringify(counts)}`).to.be.greaterThan(0);
    }
    if (process.env.SHOAL_VERBOSE) console.log(counts);
  });
});
