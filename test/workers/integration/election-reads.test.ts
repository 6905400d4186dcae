// What the bridge election reads from the chain for a fleet of presences (issue 17), against a real
// Hardhat node and a private Mosquitto: 60 devices enrolled, each with its own operator, their
// retained presences on the broker (the lowest id's forged: signed by a key that is not its
// operator). Every eth_call the worker's provider sends is counted. A subscription that verifies
// every presence in full (what the election did before) reads the operator of every device; the
// election with deferred verification reads the few that can decide it, drops the forged one and
// elects the next ids, and still counts every device online for the claimer.
import { expect } from "chai";
import { JsonRpcProvider, Wallet } from "ethers";
import mqtt from "mqtt";
import pino from "pino";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  chainSenderLookup,
  createElection,
  createMqttBus,
  createSealer,
  createSignedBus,
  createVerifier,
  enrollHollowDevices,
  type Bus,
  type DeploymentRecord,
  type HollowDevice,
} from "../../../workers/src";
import { devWallet } from "../../../scripts/lib/local-chain";
import { deployInto } from "../../shared/cli";
import { freePort, PrivateBroker, waitFor } from "../../shared/processes";
import { requireChain, serviceUrls } from "../../shared/services";

const urls = serviceUrls();
const DEVICES = 60;
const COUNT = 2;

describe("election reads: the operators of the few presences that decide it, not the fleet's", function () {
  this.timeout(180_000);

  let dir: string;
  let broker: PrivateBroker;
  let record: DeploymentRecord;
  let devices: HollowDevice[];
  const buses: Bus[] = [];
  const stop = new AbortController();

  /** A worker's signed bus over its own MQTT connection, and the eth_calls its provider sends. */
  async function workerBus(device: HollowDevice, name: string) {
    const provider = new JsonRpcProvider(urls.rpcUrl, record.chainId, {
      staticNetwork: true,
      cacheTimeout: -1,
    });
    const calls: string[] = [];
    await provider.on(
      "debug",
      (info: { action: string; payload?: { method: string } | { method: string }[] }) => {
        if (info.action !== "sendRpcPayload") return;
        for (const p of [info.payload ?? []].flat()) if (p.method === "eth_call") calls.push(p.method);
      },
    );
    const sealer = createSealer({ operatorKey: device.operatorKey, deviceId: device.deviceId });
    const bus = createSignedBus({
      bus: createMqttBus({
        url: broker.url,
        clientId: `election-reads-${name}-${process.pid}`,
        deviceId: device.deviceId,
        logger: pino({ level: "silent" }),
        seal: (topic, payload) => sealer.seal([{ topic, payload, retain: true }])[0],
      }),
      sealer,
      verifier: createVerifier({
        lookup: chainSenderLookup(provider, record.contracts.DeviceRegistry.address),
        ttlMs: 300_000,
      }),
    });
    buses.push(bus);
    await bus.ready();
    return { bus, calls, provider };
  }

  before(async function () {
    await requireChain(urls);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-election-reads-"));
    broker = new PrivateBroker(await freePort(), dir);
    await broker.start();
    record = (await deployInto(dir)) as DeploymentRecord;
    devices = await enrollHollowDevices({
      rpcUrl: urls.rpcUrl,
      record,
      ownerKey: devWallet(0).privateKey,
      count: DEVICES,
      spec: { cpuMillicores: 400, memoryMiB: 256, platform: "linux/amd64", labels: [] },
    });
    // Every device's retained presence, as its worker publishes it; the lowest id's forged.
    const client = await mqtt.connectAsync(broker.url, { clientId: `election-reads-${process.pid}` });
    for (const [i, d] of devices.entries()) {
      const topic = `shoal/v1/devices/${d.deviceId}/status`;
      const payload = JSON.stringify({
        v: 1,
        deviceId: String(d.deviceId),
        status: "online",
        clientId: `hollow-${d.deviceId}`,
        reason: "connected",
        at: new Date().toISOString(),
      });
      const key = i === 0 ? Wallet.createRandom().privateKey : d.operatorKey;
      const [signed] = createSealer({ operatorKey: key, deviceId: d.deviceId }).seal([
        { topic, payload, retain: true },
      ]);
      await client.publishAsync(topic, signed, { qos: 1, retain: true });
    }
    await client.endAsync();
  });

  after(async function () {
    stop.abort();
    for (const bus of buses) await bus.close().catch(() => undefined);
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`reads ${DEVICES} operators to verify every presence in full, about ${COUNT} for the election`, async function () {
    const self = devices[DEVICES - 1];
    // Before: every presence verified in full, as the election's subscription did.
    const full = await workerBus(self, "full");
    let delivered = 0;
    await full.bus.subscribe("shoal/v1/devices/+/status", () => delivered++, { qos: 1 });
    // Every other device's genuine presence and this one's own; the forged one dropped.
    await waitFor(`${DEVICES - 1} verified presences`, async () => delivered >= DEVICES - 1);
    const before = full.calls.length;
    console.log(`      full verification: ${before} eth_calls for ${DEVICES} presences`);
    expect(before).to.be.at.least(DEVICES - 1);

    // After: the election, on a worker bus of its own (nothing cached).
    const worker = await workerBus(self, "election");
    const election = createElection({
      bus: worker.bus,
      deviceId: self.deviceId,
      count: COUNT,
      candidate: true,
      logger: pino({ level: "silent" }),
    });
    await election.start({ signal: stop.signal });
    const expected = devices.slice(1, 1 + COUNT).map((d) => String(d.deviceId));
    await waitFor("the election", async () => election.bridges().length === COUNT);
    // Settled: nothing more is read while the view does not change.
    await new Promise((r) => setTimeout(r, 1_000));
    const after = worker.calls.length;
    console.log(`      deferred verification (election): ${after} eth_calls for ${DEVICES} presences`);
    expect(election.bridges(), "the lowest ids after the forged one").to.deep.equal(expected);
    expect(after, "the elected, the forged one and at most one more").to.be.at.most(COUNT + 2);
    // 58 other genuine presences and its own: the forged one is gone once its confirmation failed.
    expect(election.online(), "every genuine presence counts as online").to.have.length(DEVICES - 1);
  });
});
