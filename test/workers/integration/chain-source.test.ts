// The ethers chain source against the real Hardhat node: order and exactly-once delivery,
// confirmations, checkpoint restarts and reorgs (made with evm_snapshot / evm_revert).
import { expect } from "chai";
import { JsonRpcProvider, type Signer } from "ethers";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import {
  AppRegistry__factory,
  DeviceRegistry__factory,
  PlacementRegistry__factory,
  ShoalToken__factory,
  type AppRegistry,
  type DeviceRegistry,
  type PlacementRegistry,
  type ShoalToken,
} from "../../../typechain-types";
import {
  ChainSourceError,
  contractsFromDeployment,
  createEthersChainSource,
  type EthersChainSourceDeps,
} from "../../../workers/src";
import {
  advance,
  applyEvents,
  emptyDesiredState,
  initialDerived,
  rollback,
  type DerivedState,
} from "../../../workers/src";
import { isRetryable } from "../../../workers/src";
import type { ChainBatch, ChainEvent, ChainSource, PollOutcome } from "../../../workers/src";
import { runHardhat, devWallet } from "../../../scripts/lib/local-chain";
import { waitFor } from "../../shared/processes";
import { requireChain, serviceUrls } from "../../shared/services";

const urls = serviceUrls();
const logger = pino({ level: process.env.SHOAL_TEST_LOG ?? "silent" });
// The minimum stake (100) plus collateral for the placements it claims (10 each, scripts/deploy.ts).
const STAKE = 200n * 10n ** 18n;
const BAND = { cpuMinMillicores: 50, cpuMaxMillicores: 500, memoryMinMiB: 16, memoryMaxMiB: 64 };
const CID = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq";

describe("chain source (ethers) against a real Hardhat node", function () {
  this.timeout(180_000);

  let tmp: string;
  let provider: JsonRpcProvider;
  let admin: Signer;
  let device: Signer;
  let token: ShoalToken;
  let apps: AppRegistry;
  let devices: DeviceRegistry;
  let placements: PlacementRegistry;
  let base: Pick<EthersChainSourceDeps, "chainId" | "contracts" | "startBlock">;
  let dirs = 0;
  /** Head before the scripted sequence: later events are the script's. */
  let scriptStart: number;

  const mine = (blocks = 1) => provider.send("hardhat_mine", [`0x${blocks.toString(16)}`]);
  const head = async () => Number(await provider.send("eth_blockNumber", []));
  const send = async (tx: Promise<{ wait(): Promise<unknown> }>) => void (await (await tx).wait());

  function source(options: Partial<EthersChainSourceDeps> & { dataDir?: string } = {}): ChainSource {
    return createEthersChainSource({
      rpcUrl: urls.rpcUrl,
      logger,
      confirmations: 0,
      dataDir: options.dataDir ?? path.join(tmp, `source-${++dirs}`),
      ...base,
      ...options,
    });
  }

  /** Polls until idle; returns every batch delivered. */
  async function drain(s: ChainSource, handler?: (b: ChainBatch) => void): Promise<ChainBatch[]> {
    const batches: ChainBatch[] = [];
    let outcome: PollOutcome;
    do {
      outcome = await s.poll(async (b) => {
        batches.push(b);
        handler?.(b);
      });
    } while (outcome.type !== "idle");
    return batches;
  }

  const eventsOf = (batches: ChainBatch[]) => batches.flatMap((b) => (b.type === "logs" ? b.logs : []));

  /** Every log of the contracts, straight from eth_getLogs, as ids in chain order. */
  async function expectedIds(toBlock: number): Promise<string[]> {
    const logs = await provider.getLogs({
      address: Object.values(base.contracts) as string[],
      fromBlock: base.startBlock,
      toBlock,
    });
    return logs.map((l) => `${base.chainId}:${l.transactionHash.toLowerCase()}:${l.index}`);
  }

  before(async function () {
    await requireChain(urls);
    tmp = await mkdtemp(path.join(tmpdir(), "shoal-chain-source-"));
    const deployed = await runHardhat(["run", "scripts/deploy.ts"], { SHOAL_DEPLOYMENTS_DIR: tmp });
    expect(deployed.status, deployed.stderr).to.equal(0);
    const record = JSON.parse(await readFile(path.join(tmp, "localhost.json"), "utf8"));
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
    [admin, device] = [0, 1].map((i) => devWallet(i).connect(provider));
    const at = (name: string) => record.contracts[name].address as string;
    token = ShoalToken__factory.connect(at("ShoalToken"), admin);
    apps = AppRegistry__factory.connect(at("AppRegistry"), admin);
    devices = DeviceRegistry__factory.connect(at("DeviceRegistry"), admin);
    placements = PlacementRegistry__factory.connect(at("PlacementRegistry"), admin);
    base = { chainId: record.chainId, ...contractsFromDeployment(record) };

    scriptStart = await head();
    // The scripted sequence: a device, an app with a version and a deployment, a placement claimed
    // and confirmed, a heartbeat.
    await send(token.connect(device).approve(await devices.getAddress(), 10n * STAKE));
    await send(
      devices
        .connect(device)
        .enroll(
          await device.getAddress(),
          "linux/amd64",
          4000,
          8192,
          ["region=eu-west"],
          "/ip4/127.0.0.1/tcp/4001",
          STAKE,
        ),
    );
    await send(apps.registerApp("chain-source-test"));
    await send(apps.publishVersion(1, CID, ["linux/amd64"], [CID], BAND));
    await send(apps.createDeployment(1, 1, 2, ["region=eu-west"]));
    await send(placements.connect(device).claim(1, 1));
    const [claimed] = await placements.placementsOfDevice(1, 0, 1);
    await send(placements.connect(device).confirm(claimed.placementId));
    await send(devices.connect(device).heartbeat(1));
  });

  after(async function () {
    provider?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("delivers every event of the contracts once, in chain order, in contiguous batches", async function () {
    const s = source({ maxBlockRange: 3 });
    const batches = await drain(s);
    const tip = s.status().checkpoint.number;
    const events = eventsOf(batches);

    expect(events.map((e) => e.id)).to.deep.equal(await expectedIds(tip));
    expect(new Set(events.map((e) => e.id)).size).to.equal(events.length);
    const logBatches = batches.filter((b) => b.type === "logs");
    expect(logBatches[0].fromBlock).to.equal(base.startBlock);
    for (let i = 1; i < logBatches.length; i++) {
      expect(logBatches[i].fromBlock).to.equal(logBatches[i - 1].toBlock + 1);
      expect(logBatches[i].toBlock - logBatches[i].fromBlock).to.be.lessThan(3);
    }
    const scripted = events.filter((e) => e.blockNumber > scriptStart).map((e) => `${e.contract}.${e.event}`);
    expect(scripted).to.deep.equal([
      "DeviceRegistry.DeviceEnrolled",
      "AppRegistry.AppRegistered",
      "AppRegistry.VersionPublished",
      "AppRegistry.DeploymentCreated",
      "PlacementRegistry.PlacementClaimed",
      "PlacementRegistry.PlacementConfirmed",
      "DeviceRegistry.DeviceHeartbeat",
    ]);

    const claimedEvent = events.find((e) => e.event === "PlacementClaimed")!;
    expect(claimedEvent.args).to.deep.include({
      deploymentId: 1,
      deviceId: 1,
      appId: 1,
      version: 1,
      band: BAND,
    });
    // Deployment 1, first placement: (1 << 32) | 1, a decimal string as the port promises.
    expect(claimedEvent.args.placementId).to.equal(String((1n << 32n) | 1n));
    const block = (await provider.getBlock(claimedEvent.blockNumber))!;
    expect(claimedEvent).to.include({ blockHash: block.hash, timestamp: block.timestamp });
    const state = applyEvents(emptyDesiredState(), events).state;
    expect(Object.values(state.placements).map((p) => p.state)).to.deep.equal(["Running"]);
    expect(state.devices["1"].lastHeartbeat).to.not.equal(null);
  });

  it("holds events back until they have enough confirmations", async function () {
    const CONFIRMATIONS = 3;
    const s = source({ confirmations: CONFIRMATIONS });
    await drain(s);
    await send(devices.connect(device).heartbeat(1));
    const txBlock = await head();
    // Other test files may mine on the shared node too, so check the rule on every poll rather
    // than exact block counts.
    for (let extra = 0; extra <= CONFIRMATIONS; extra++) {
      const batches = await drain(s);
      const status = s.status();
      const delivered = eventsOf(batches).some((e) => e.blockNumber === txBlock);
      if (status.head! - CONFIRMATIONS < txBlock) {
        expect(status.checkpoint.number).to.be.lessThan(txBlock);
        expect(delivered).to.equal(false);
      } else {
        expect(status.checkpoint.number).to.be.at.least(txBlock);
        break;
      }
      await mine();
    }
    expect(s.status().checkpoint.number).to.be.at.least(txBlock);
  });

  it("resumes from the checkpoint after a restart without missing or repeating an event", async function () {
    const dataDir = path.join(tmp, "restart");
    const first = eventsOf(await drain(source({ dataDir, maxBlockRange: 4 })));
    await send(devices.connect(device).heartbeat(1));
    await send(devices.connect(device).setEndpoint(1, "/ip4/127.0.0.2/tcp/4001"));

    // A handler that dies on its first batch leaves the checkpoint where it was: the next process
    // gets that batch again.
    const crashing = source({ dataDir, maxBlockRange: 4 });
    let seen: ChainEvent[] = [];
    await crashing
      .poll(async (b) => {
        seen = b.type === "logs" ? b.logs : [];
        throw new Error("crash before acknowledging");
      })
      .then(
        () => expect.fail("poll should reject"),
        (error: Error) => expect(error.message).to.equal("crash before acknowledging"),
      );
    expect(seen.length).to.be.greaterThan(0);

    const second = eventsOf(await drain(source({ dataDir, maxBlockRange: 4 })));
    expect(second.slice(0, seen.length).map((e) => e.id)).to.deep.equal(seen.map((e) => e.id));
    const tip = await head();
    const all = [...first, ...second].map((e) => e.id);
    expect(all).to.deep.equal((await expectedIds(tip)).slice(0, all.length));
    expect(new Set(all).size).to.equal(all.length);
    expect(second.map((e) => e.event)).to.include.members(["DeviceHeartbeat", "DeviceEndpointChanged"]);
  });

  it("treats an unreachable node as retryable: poll rejects, run backs off and keeps going", async function () {
    const dead = source({ rpcUrl: "http://127.0.0.1:1", pollIntervalMs: 10, maxBackoffMs: 40 });
    const error = await dead
      .poll(async () => undefined)
      .then(
        () => expect.fail("poll should reject"),
        (e: unknown) => e,
      );
    expect(error).to.be.instanceOf(ChainSourceError);
    expect(isRetryable(error)).to.equal(true);
    expect((error as Error).message).to.match(/the chain RPC at http:\/\/127\.0\.0\.1:1 is not reachable/);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    await dead.run(async () => undefined, { signal: controller.signal });
    expect(dead.status().checkpoint.number).to.equal(base.startBlock - 1);

    // "Keeps going", counted rather than slept on: a node that answers every request with HTTP
    // 503 sees the source come back, again and again, until the signal aborts.
    let requests = 0;
    const server = createServer((_request, response) => {
      requests++;
      response.writeHead(503).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const failing = source({ rpcUrl: `http://127.0.0.1:${port}`, pollIntervalMs: 10, maxBackoffMs: 40 });
      const retrying = new AbortController();
      const running = failing.run(async () => undefined, { signal: retrying.signal });
      await waitFor("three attempts", async () => requests >= 3, 30_000, 10);
      retrying.abort();
      await running;
      expect(failing.status().checkpoint.number).to.equal(base.startBlock - 1);
    } finally {
      server.close();
    }
  });

  it("detects a reorg, reports the common ancestor and re-derives what a fresh source derives", async function () {
    const start = await provider.send("evm_snapshot", []);
    try {
      const dataDir = path.join(tmp, "reorg");
      let derived: DerivedState = initialDerived(base.startBlock - 1);
      const reorgs: Array<Extract<ChainBatch, { type: "reorg" }>> = [];
      const follow = (b: ChainBatch) => {
        if (b.type === "logs") derived = advance(derived, b.logs, b.toBlock, 64).derived;
        else {
          reorgs.push(b);
          derived = rollback(derived, b.commonAncestor.number).derived;
        }
      };
      const s = source({ dataDir });
      await drain(s, follow);
      const forkPoint = await provider.getBlock("latest");
      const fork = await provider.send("evm_snapshot", []);

      // Fork A: the placement fails, two heartbeats.
      const [p] = await placements.placementsOfDevice(1, 0, 1);
      await send(placements.connect(device).fail(p.placementId, 3));
      await send(devices.connect(device).heartbeat(1));
      await send(devices.connect(device).heartbeat(1));
      const forkA = eventsOf(await drain(s, follow));
      expect(forkA.map((e) => e.event)).to.include("PlacementFailed");
      expect(Object.values(derived.state.placements)[0].state).to.equal("Failed");

      // Fork B from the same parent: the placement is released instead, one block shorter.
      expect(await provider.send("evm_revert", [fork])).to.equal(true);
      await send(placements.connect(device).release(p.placementId));
      await send(devices.connect(device).setEndpoint(1, "/ip4/10.0.0.1/tcp/4001"));

      const afterReorg = await drain(s, follow);
      expect(afterReorg[0].type).to.equal("reorg");
      expect(reorgs).to.have.length(1);
      expect(reorgs[0].commonAncestor).to.deep.equal({ number: forkPoint!.number, hash: forkPoint!.hash });
      expect(reorgs[0].replacedHead.number).to.equal(forkPoint!.number + 3);
      const forkB = eventsOf(afterReorg);
      expect(forkB.map((e) => e.event)).to.deep.equal(["PlacementReleased", "DeviceEndpointChanged"]);

      const fresh = eventsOf(await drain(source({})));
      expect(derived.state).to.deep.equal(applyEvents(emptyDesiredState(), fresh).state);
      expect([...derived.journal.map((e) => e.id)]).to.deep.equal(
        fresh.filter((e) => e.blockNumber > derived.baseBlock).map((e) => e.id),
      );
      expect(Object.values(derived.state.placements)[0]).to.include({
        state: "Released",
        releaseReason: "ByDevice",
      });

      // And a restart after the reorg neither repeats nor misses anything.
      expect(eventsOf(await drain(source({ dataDir })))).to.deep.equal([]);
    } finally {
      await provider.send("evm_revert", [start]);
    }
  });
});
