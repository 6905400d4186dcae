// Smoke test of the four real services every other test builds on. Each block first checks that
// its service answers, so a stopped service fails with a message naming it.
import { expect } from "chai";
import Docker from "dockerode";
import { ContractFactory, JsonRpcProvider } from "ethers";
import { create as createKubo } from "kubo-rpc-client";
import mqtt from "mqtt";
import { randomBytes, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { devWallet } from "../../scripts/lib/local-chain";
import {
  requireChain,
  requireDocker,
  requireKubo,
  requireMqtt,
  serviceUrls,
  ServiceUnavailableError,
} from "../shared/services";

const urls = serviceUrls();

describe("smoke: real local services", function () {
  describe("a service that is down", function () {
    // Port 1 on loopback and a missing socket: nothing listens there.
    const down = {
      rpcUrl: "http://127.0.0.1:1",
      kuboUrl: "http://127.0.0.1:1",
      mqttUrl: "mqtt://127.0.0.1:1",
      dockerSocket: "/nonexistent/docker.sock",
    };
    const cases = [
      { check: requireChain, says: "The Hardhat node at http://127.0.0.1:1 is not reachable" },
      { check: requireKubo, says: "The Kubo RPC API at http://127.0.0.1:1 is not reachable" },
      { check: requireMqtt, says: "The MQTT broker at mqtt://127.0.0.1:1 is not reachable" },
      { check: requireDocker, says: "The Docker Engine at unix:///nonexistent/docker.sock is not reachable" },
    ];
    for (const { check, says } of cases) {
      it(`fails with a message naming it: "${says}"`, async function () {
        const error = await check(down).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).to.be.instanceOf(ServiceUnavailableError);
        expect((error as Error).message)
          .to.include(says)
          .and.include("scripts/services.sh up");
      });
    }
  });

  describe("chain (Hardhat node)", function () {
    before(() => requireChain(urls));

    it("compiles a contract with the offline solc and deploys it", async function () {
      const solc = require("solc");
      const source = `// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;
contract Counter {
  uint256 public count;
  event Incremented(uint256 count);
  function increment() external { count += 1; emit Incremented(count); }
}`;
      const output = JSON.parse(
        solc.compile(
          JSON.stringify({
            language: "Solidity",
            sources: { "Counter.sol": { content: source } },
            settings: {
              evmVersion: "cancun",
              outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
            },
          }),
        ),
      );
      expect(output.errors ?? [], JSON.stringify(output.errors)).to.deep.equal([]);
      const { abi, evm } = output.contracts["Counter.sol"].Counter;

      // cacheTimeout -1: ethers caches identical calls for 250 ms, which would hand the second
      // transaction a stale nonce on an automining node.
      const provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
      try {
        const wallet = devWallet(0).connect(provider);
        const counter = await new ContractFactory(abi, evm.bytecode.object, wallet).deploy();
        await counter.waitForDeployment();
        const receipt = await (await counter.getFunction("increment")()).wait();
        expect(receipt?.status).to.equal(1);
        expect(await counter.getFunction("count")()).to.equal(1n);
      } finally {
        provider.destroy();
      }
    });
  });

  describe("IPFS (Kubo)", function () {
    before(() => requireKubo(urls));

    it("adds bytes as CIDv1 with raw leaves and reads the same bytes back by CID", async function () {
      const kubo = createKubo({ url: urls.kuboUrl });
      const bytes = randomBytes(300_000); // more than one 256 KiB chunk, so the DAG has two leaves
      const { cid } = await kubo.add(bytes, {
        cidVersion: 1,
        rawLeaves: true,
        chunker: "size-262144",
        pin: true,
      });
      expect(cid.version).to.equal(1);
      expect(cid.toString()).to.match(/^bafy/);

      const chunks: Uint8Array[] = [];
      for await (const chunk of kubo.cat(cid)) chunks.push(chunk);
      expect(Buffer.compare(Buffer.concat(chunks), bytes)).to.equal(0);

      const leaves = [];
      for await (const link of kubo.ls(cid)) leaves.push(link.cid.toString());
      expect(leaves).to.have.length(2);
      for (const leaf of leaves) expect(leaf).to.match(/^bafk/); // raw leaves
      await kubo.pin.rm(cid);
    });
  });

  describe("MQTT (Mosquitto)", function () {
    before(() => requireMqtt(urls));

    it("delivers a QoS 1 message to a subscriber", async function () {
      const topic = `shoal/v1/test/smoke/${randomUUID()}`;
      const subscriber = await mqtt.connectAsync(urls.mqttUrl, { clientId: `smoke-sub-${randomUUID()}` });
      const publisher = await mqtt.connectAsync(urls.mqttUrl, { clientId: `smoke-pub-${randomUUID()}` });
      try {
        const granted = await subscriber.subscribeAsync(topic, { qos: 1 });
        expect(granted[0]?.qos).to.equal(1);
        const received = new Promise<mqtt.IPublishPacket>((resolve) =>
          subscriber.on("message", (_topic, _payload, packet) => resolve(packet)),
        );
        await publisher.publishAsync(topic, "hello edge", { qos: 1 });
        const packet = await received;
        expect(packet.qos).to.equal(1);
        expect(packet.payload.toString()).to.equal("hello edge");
      } finally {
        await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
      }
    });
  });

  describe("containers (Docker Engine)", function () {
    const docker = new Docker({ socketPath: urls.dockerSocket });
    const label = { "io.shoal.test": "smoke" };
    let workDir: string;

    before(async () => {
      await requireDocker(urls);
      workDir = await mkdtemp(path.join(tmpdir(), "shoal-smoke-"));
    });
    after(async () => {
      const leftovers = await docker.listContainers({
        all: true,
        filters: { label: ["io.shoal.test=smoke"] },
      });
      await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
      await rm(workDir, { recursive: true, force: true });
    });

    it("loads the locally built image from a tar and enforces CPU and memory limits in its cgroup", async function () {
      // The tar is what IPFS will deliver later: `docker save` output, streamed into `docker load`.
      const image = "shoal/base:1";
      const tar = path.join(workDir, "base.tar");
      await pipeline(await docker.getImage(image).get(), createWriteStream(tar));
      const load = await docker.loadImage(createReadStream(tar));
      const loaded = await new Promise<unknown[]>((resolve, reject) =>
        docker.modem.followProgress(load, (error, output) => (error ? reject(error) : resolve(output))),
      );
      expect(JSON.stringify(loaded)).to.include(image);

      const container = await docker.createContainer({
        Image: image,
        Labels: label,
        // cgroup v1 and v2 name the same limits differently; print whichever this host has.
        Cmd: [
          "sh",
          "-c",
          "if [ -f /sys/fs/cgroup/cpu.max ]; then cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max; " +
            "else echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); " +
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; fi",
        ],
        Tty: true, // raw output, without Docker's stream-multiplexing frame headers
        HostConfig: { NanoCpus: 500_000_000, Memory: 64 * 1024 * 1024, NetworkMode: "none" },
      });
      await container.start();
      const { StatusCode } = await container.wait();
      const logs = (await container.logs({ stdout: true, stderr: true })).toString("utf8");
      await container.remove();

      expect(StatusCode, logs).to.equal(0);
      const lines = logs.split(/\r?\n/).filter(Boolean);
      expect(lines).to.deep.equal(["50000 100000", String(64 * 1024 * 1024)]);
    });
  });
});
