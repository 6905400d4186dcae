/**
 * Peer-to-peer delivery benchmark (issue 14). For images of shoal/demo-web:1.0.0 plus one layer
 * of 2, 50 and 200 MiB of random data, all into one fresh Docker Engine that this bench starts (own data-root,
 * exec-root, pidfile, socket; its own bridge, `--iptables=false`), in the same run:
 *
 *   (a) the worker's delivery path (`createDelivery(...).ensureImage`: manifest fetch and check,
 *       image tar streamed by CID from Kubo into `docker load`, platform check, pin, CID tag) on a
 *       fresh Kubo node whose only peer is the publisher's node;
 *   (b) the same on another fresh Kubo node whose only peer is the node of (a), which holds the
 *       image pinned (the publisher is not its peer: Routing none, no MDNS, no bootstrap);
 *   (c) a bare `docker load -i` of the same tar;
 *   (d) a `docker pull` of the same image from a local registry (Debian's docker-registry, started
 *       here on 127.0.0.1:29600);
 *   (e) for the breakdown, the bitswap fetch alone: the tar streamed by CID (Kubo `cat`, read to
 *       the end, nothing loaded) on a third fresh node whose only peer is the publisher.
 *
 *   (f) with a chain (SHOAL_RPC_URL; --no-worker leaves it out): the whole cold placement through a
 *       real worker process on this engine and a fresh Kubo node of its own: deploy receipt to the
 *       container started, and to Running on chain (startBenchWorker below).
 *
 * Before each measurement the engine does not have the image. Also this process's RSS (which runs
 * the delivery code) while the 200 MB image streams, against its idle RSS.
 *
 * Every daemon is started and stopped by its recorded PID; the temp dir holds all their state.
 *
 * Run: npm run -s build:worker && npm run -s bench:delivery -- [--runs 2] [--no-worker] [--out FILE]
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  canonicalManifestBytes,
  createDelivery,
  createDockerClient,
  createDockerRuntime,
  createKuboContentStore,
  parseManifest,
} from "../workers/src";
import { JsonRpcProvider, Wallet } from "ethers";
import { AppRegistry__factory, PlacementRegistry__factory } from "../typechain-types";
import { PLACEMENT_STATES } from "../workers/src";
import { devWallet, runHardhat } from "../scripts/lib/local-chain";
import { KuboNode, makeSwarmKey } from "../test/shared/kubo-nodes";
import { freePort, PrivateBroker, waitFor, WorkerProcess } from "../test/shared/processes";
import { requireChain, serviceUrls } from "../test/shared/services";

const ROOT = path.resolve(__dirname, "..");
const SIZES_MB = [2, 50, 200];
const PLATFORM = "linux/amd64";
const REGISTRY = "127.0.0.1:29600";
/** The fresh engine's own bridge (an address from the top of the project's device pool). */
const BENCH_BRIDGE = "shoal-bd0";
const BENCH_BRIDGE_CIDR = "10.213.255.1/24";
const BASE_IMAGE = "shoal/demo-web:1.0.0";
const KUBO_PORTS = 29500; // 29500-29599: this bench's Kubo API and swarm ports
const MiB = 1024 * 1024;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** A daemon started by this bench, stopped by its PID (SIGTERM, SIGKILL after 20 s). */
class Daemon {
  private child?: ChildProcess;
  log = "";
  constructor(
    readonly name: string,
    readonly command: string,
    readonly args: string[],
  ) {}
  start(): void {
    this.child = spawn(this.command, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (chunk: Buffer) => (this.log = (this.log + chunk.toString()).slice(-20_000));
    this.child.stdout!.on("data", keep);
    this.child.stderr!.on("data", keep);
  }
  get exited(): boolean {
    return this.child === undefined || this.child.exitCode !== null || this.child.signalCode !== null;
  }
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || this.exited) return;
    const done = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    await done;
    clearTimeout(timer);
  }
}

interface Row {
  mb: number;
  /** (f): deploy receipt -> the container's StartedAt in the bench engine, through a worker. */
  workerStartS?: number;
  /** (f): deploy receipt -> the placement seen Running on chain. */
  workerChainS?: number;
  tarBytes: number;
  publisherS: number;
  peerS: number;
  loadS: number;
  pullS: number;
  fetchS: number;
  peerFromA: number;
  peerFromPublisher: number;
}

async function main() {
  const runs = Number(arg("--runs") ?? "1");
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(`--runs is ${JSON.stringify(arg("--runs"))}; use a whole number of at least 1.`);
    process.exit(2);
  }
  const out = arg("--out");
  const withWorker = !process.argv.includes("--no-worker");
  const sizes = (arg("--sizes") ?? SIZES_MB.join(",")).split(",").map(Number);
  if (!sizes.every((mb) => Number.isInteger(mb) && mb >= 1 && mb <= 1024)) {
    console.error(
      `--sizes is ${JSON.stringify(arg("--sizes"))}; use MB values from 1 to 1024, comma-separated.`,
    );
    process.exit(2);
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), "shoal-bd-"));
  const sock = path.join(dir, "engine.sock");
  const dockerEnv = { ...process.env, DOCKER_HOST: `unix://${sock}` };
  const sh = (command: string) => execFileSync("bash", ["-c", command], { env: dockerEnv, stdio: "pipe" });
  await writeFile(path.join(dir, "daemon.json"), "{}\n");
  const engine = new Daemon("dockerd", "dockerd", [
    "--config-file",
    path.join(dir, "daemon.json"),
    "--data-root",
    path.join(dir, "engine-data"),
    "--exec-root",
    path.join(dir, "engine-exec"),
    "--pidfile",
    path.join(dir, "engine.pid"),
    "--host",
    `unix://${sock}`,
    // Its own bridge, never `--bridge=none`: a dockerd started with that deletes the host's docker0
    // (Docker's removeDefaultBridgeInterface), which breaks the machine's own engine.
    `--bridge=${BENCH_BRIDGE}`,
    "--iptables=false",
  ]);
  await mkdir(path.join(dir, "registry"));
  await writeFile(
    path.join(dir, "registry.yml"),
    `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(dir, "registry")}\n  delete:\n    enabled: true\nhttp:\n  addr: ${REGISTRY}\nlog:\n  level: warn\n`,
  );
  const registry = new Daemon("registry", "docker-registry", ["serve", path.join(dir, "registry.yml")]);
  const key = path.join(dir, "swarm.key");
  const kubos: KuboNode[] = [];
  const stops: (() => Promise<unknown>)[] = [];
  const results: { rows: Row[]; rss: { idle: number; peakA: number; peakB: number } }[] = [];
  let nextPort = KUBO_PORTS;
  const newKubo = async (name: string) => {
    const node = new KuboNode(path.join(dir, `ipfs-${name}`), key);
    [node.apiPort, node.swarmPort] = [nextPort++, nextPort++];
    kubos.push(node);
    await node.start();
    return node;
  };
  const engineHasImages = () => sh("docker images -q").toString().trim() !== "";
  const clearEngine = () => {
    const ids = sh("docker images -q --no-trunc | awk '!seen[$0]++'").toString().trim();
    if (ids) sh(`docker rmi -f ${ids.split("\n").join(" ")} >/dev/null`);
    if (engineHasImages()) throw new Error("the bench engine still holds images");
  };
  try {
    execFileSync("ip", ["link", "add", BENCH_BRIDGE, "type", "bridge"]);
    execFileSync("ip", ["addr", "add", BENCH_BRIDGE_CIDR, "dev", BENCH_BRIDGE]);
    execFileSync("ip", ["link", "set", BENCH_BRIDGE, "up"]);
    engine.start();
    registry.start();
    await waitFor(
      "the bench's Docker Engine answers",
      async () => {
        if (engine.exited) throw new Error(`dockerd exited:\n${engine.log}`);
        try {
          sh("docker version >/dev/null");
          return true;
        } catch {
          return undefined;
        }
      },
      60_000,
    );
    await waitFor(
      "the registry answers",
      async () => {
        if (registry.exited) throw new Error(`docker-registry exited:\n${registry.log}`);
        return (await fetch(`http://${REGISTRY}/v2/`).catch(() => undefined))?.ok || undefined;
      },
      30_000,
    );
    await makeSwarmKey(key);
    const publisher = await newKubo("publisher");
    const runtime = createDockerRuntime({ docker: createDockerClient(sock) });
    const yaml = await readFile(path.join(ROOT, "apps/demo-web/shoal.yaml"), "utf8");
    // The images are demo-web plus one layer of random data, so that a worker can run them. The
    // base comes from the machine's engine (docker save: read only), into this bench's engine.
    const baseTar = path.join(dir, "demo-web.tar");
    execFileSync("docker", ["save", "-o", baseTar, BASE_IMAGE], { stdio: "pipe" });
    const worker = withWorker ? await startBenchWorker(dir, publisher, sock, newKubo) : undefined;
    if (worker) stops.push(() => worker.stop());

    for (let r = 1; r <= runs; r++) {
      // Fresh device nodes per run: a peers only with the publisher, b only with a.
      const a = await newKubo(`a${r}`);
      const b = await newKubo(`b${r}`);
      const c = await newKubo(`c${r}`);
      await createKuboContentStore({ url: c.url }).keepPeer(publisher.multiaddr);
      await createKuboContentStore({ url: a.url }).keepPeer(publisher.multiaddr);
      await createKuboContentStore({ url: b.url }).keepPeer(a.multiaddr);
      const rows: Row[] = [];
      const rss = { idle: 0, peakA: 0, peakB: 0 };
      for (const mb of sizes) {
        const ref = `shoal-bench/delivery:${process.pid}-${r}-${mb}`;
        const remote = `${REGISTRY}/shoal-bench/delivery:${process.pid}-${r}-${mb}`;
        const tar = path.join(dir, `${mb}.tar`);
        const layer = path.join(dir, `layer-${mb}`);
        sh(
          `mkdir -p ${layer} && head -c ${mb * MiB} /dev/urandom > ${layer}/blob && docker load -q -i ${baseTar} >/dev/null` +
            ` && c=$(docker create ${BASE_IMAGE}) && docker cp ${layer}/blob $c:/blob && docker commit $c ${ref} >/dev/null && docker rm $c >/dev/null && rm -rf ${layer}` +
            ` && docker save -o ${tar} ${ref} && docker tag ${ref} ${remote} && docker push -q ${remote} >/dev/null`,
        );
        clearEngine();
        const tarBytes = (await stat(tar)).size;
        const publish = createKuboContentStore({ url: publisher.url });
        const { cid } = await publish.add(
          (async function* () {
            for await (const chunk of createReadStream(tar)) yield chunk as Uint8Array;
          })(),
        );
        const manifestCid = (
          await publish.add(canonicalManifestBytes(parseManifest(yaml), { [PLATFORM]: cid }))
        ).cid;

        /** The worker's delivery path on `node`, timed; samples this process's RSS when asked. */
        const deliver = async (node: KuboNode, sample: boolean) => {
          const delivery = createDelivery({
            contentStore: createKuboContentStore({ url: node.url }),
            runtime,
            platform: PLATFORM,
          });
          let peak = 0;
          const timer = sample
            ? setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10)
            : undefined;
          const started = performance.now();
          const result = await delivery.ensureImage({ manifestCid, imageCid: cid });
          const s = (performance.now() - started) / 1000;
          clearInterval(timer);
          if (!result.fetched) throw new Error(`delivery on ${node.repo} did not fetch ${cid}`);
          clearEngine();
          return { s, peak };
        };
        const timed = (command: string) => {
          const started = performance.now();
          sh(command);
          const s = (performance.now() - started) / 1000;
          clearEngine();
          return s;
        };

        if (mb === 200) {
          global.gc?.();
          await new Promise((resolve) => setTimeout(resolve, 1000));
          rss.idle = process.memoryUsage().rss;
        }
        const fetchStarted = performance.now();
        for await (const chunk of createKuboContentStore({ url: c.url }).cat(cid)) void chunk;
        const fetchS = (performance.now() - fetchStarted) / 1000;
        const fromPublisher = await deliver(a, mb === 200);
        const peerFromA0 = await b.receivedFrom(a.peerId);
        const peerFromPublisher0 = await b.receivedFrom(publisher.peerId);
        const fromPeer = await deliver(b, mb === 200);
        // (f): the whole cold placement through the worker, from the publisher (its own version).
        const placed = worker
          ? await worker.coldPlacement(`bd-${process.pid}-${r}-${mb}`, tar, yaml, clearEngine)
          : undefined;
        const row: Row = {
          mb,
          workerStartS: placed?.startS,
          workerChainS: placed?.chainS,
          tarBytes,
          publisherS: fromPublisher.s,
          peerS: fromPeer.s,
          loadS: timed(`docker load -q -i ${tar} >/dev/null`),
          pullS: timed(`docker pull -q ${remote} >/dev/null`),
          fetchS,
          peerFromA: (await b.receivedFrom(a.peerId)) - peerFromA0,
          peerFromPublisher: (await b.receivedFrom(publisher.peerId)) - peerFromPublisher0,
        };
        if (mb === 200) [rss.peakA, rss.peakB] = [fromPublisher.peak, fromPeer.peak];
        rows.push(row);
        console.log(`run ${r}`, JSON.stringify(row));
        await rm(tar, { force: true });
      }
      results.push({ rows, rss });
      await a.stop();
      await b.stop();
      await c.stop();
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    for (const node of kubos) await node.stop();
    await registry.stop();
    try {
      if (!engine.exited) clearEngine();
    } catch {
      // the data-root goes with the temp dir anyway
    }
    await engine.stop();
    try {
      execFileSync("ip", ["link", "del", BENCH_BRIDGE], { stdio: "ignore" });
    } catch {
      // never made (the run failed before the engine started)
    }
    await rm(dir, { recursive: true, force: true });
  }

  const f = (n: number) => n.toFixed(2);
  const opt = (n: number | undefined) => (n === undefined ? "-" : f(n));
  const kubo = execFileSync("bash", [path.join(ROOT, "scripts/kubo-node.sh"), "bin"])
    .toString()
    .trim();
  const versions = [
    execFileSync(kubo, ["version"]).toString().trim(),
    execFileSync("dockerd", ["--version"]).toString().trim(),
    execFileSync("docker-registry", ["--version"]).toString().trim(),
  ].join("; ");
  const tables = results
    .map(
      ({ rows, rss }, i) => `### Run ${i + 1}

| image | tar MB | (a) from publisher | (b) from peer | (c) bare docker load | (d) registry pull | (e) bitswap fetch only | (f) worker: receipt to container started | (f) receipt to Running on chain | (a) / (d) | (b) / (d) | (b) / (a) | (a) / (c) | (f) started / (d) | MB b got from a / from publisher (ledger) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
${rows
  .map(
    (x) =>
      `| ${x.mb} MB | ${(x.tarBytes / 1e6).toFixed(1)} | ${f(x.publisherS)} | ${f(x.peerS)} | ${f(x.loadS)} | ${f(x.pullS)} | ${f(x.fetchS)} | ${opt(x.workerStartS)} | ${opt(x.workerChainS)} | ${f(x.publisherS / x.pullS)} | ${f(x.peerS / x.pullS)} | ${f(x.peerS / x.publisherS)} | ${f(x.publisherS / x.loadS)} | ${x.workerStartS === undefined ? "-" : f(x.workerStartS / x.pullS)} | ${(x.peerFromA / 1e6).toFixed(1)} / ${(x.peerFromPublisher / 1e6).toFixed(1)} |`,
  )
  .join("\n")}

RSS of the process running the delivery code, 200 MB image: idle ${(rss.idle / MiB).toFixed(1)} MiB; peak while (a) streamed ${(rss.peakA / MiB).toFixed(1)} MiB (+${((rss.peakA - rss.idle) / MiB).toFixed(1)}); peak while (b) streamed ${(rss.peakB / MiB).toFixed(1)} MiB (+${((rss.peakB - rss.idle) / MiB).toFixed(1)}).
`,
    )
    .join("\n");
  const report = `# Image delivery: peer-to-peer over the private IPFS swarm vs a registry pull

Command: \`npm run -s bench:delivery -- ${process.argv.slice(2).join(" ")}\`

Date: ${new Date().toISOString()}
Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, Node ${process.version}
Versions: ${versions}
Load (uptime at the end): ${execFileSync("uptime").toString().trim()}

All into one fresh Docker Engine started by the bench (own data-root, exec-root, socket;
its own bridge and \`--iptables=false\`), which does not hold the image before each step. Times in
seconds, wall clock. (a) and (b) time the worker's delivery path, \`createDelivery(...).ensureImage\`:
manifest fetched by CID and checked, image tar streamed by CID from the device's Kubo node into
\`docker load\`, platform check, pin, \`shoal-cid:\` tag. (a): a fresh Kubo node whose only peer is the
publisher's node; (b): a fresh Kubo node whose only peer is (a)'s node, which holds the image
pinned (no DHT, no mDNS, no bootstrap: the publisher is out of its reach; the ledger column shows
where its bytes came from). (c): \`docker load -i\` of the same tar file. (d): \`docker pull\` of the same
image from Debian's docker-registry on 127.0.0.1:29600 (pushed there before, not timed). (e): the
bitswap fetch alone, the tar read by CID to the end on a third fresh node peered with the publisher.
(f): the whole cold placement through a real worker process (compiled, \`workers/bin/shoal-worker.js\`)
on this engine and a fresh Kubo node of its own, on fresh contracts of the local chain: a version
published from the tar by \`app:publish\` (publisher node as provider), one replica deployed; from
the deploy receipt's arrival to the container's StartedAt, and to the placement seen Running on
chain (polled every 50 ms). The worker's claim delay is 100 ms (bench/worker.ts's settings).
Images: shoal/demo-web:1.0.0 (2 MB, so the worker can run it) plus one layer of random data
(\`docker commit\`), saved with \`docker save\`.

${tables}`;
  if (out) await writeFile(out, report);
  console.log(report);
}

function deploymentOf(logs: readonly { topics: readonly string[]; data: string }[]): bigint {
  const iface = AppRegistry__factory.createInterface();
  for (const log of logs) {
    const parsed = (() => {
      try {
        return iface.parseLog(log);
      } catch {
        return null;
      }
    })();
    if (parsed?.name === "DeploymentCreated") return parsed.args.deploymentId as bigint;
  }
  throw new Error("the deploy receipt holds no DeploymentCreated event");
}

/** The worker's settings the latency depends on: those of bench/worker.ts (docs/worker.md has the defaults). */
const WORKER_CONFIG = { claim: { maxDelayMs: 100, jitterMs: 0 }, reconcileIntervalMs: 500 };
const DEVICE_ACCOUNT = 9;

/**
 * (f): a real worker process on this bench's engine and a fresh Kubo node of its own, on fresh
 * contracts of the local chain (SHOAL_RPC_URL, `scripts/services.sh up`): the device is enrolled
 * with that node's endpoint, and the worker's peering connects it to the version's provider (the
 * publisher's node, recorded by app:publish). coldPlacement() publishes a version from the tar,
 * deploys one replica and times the deploy receipt's arrival to (1) the container's StartedAt in
 * the engine and (2) the placement seen Running on chain; then stops the deployment and waits
 * until the worker removed the container.
 */
async function startBenchWorker(
  dir: string,
  publisher: KuboNode,
  sock: string,
  newKubo: (name: string) => Promise<KuboNode>,
) {
  const urls = serviceUrls();
  await requireChain(urls);
  const cli = (env: NodeJS.ProcessEnv, ...args: string[]) =>
    runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: dir, ...env }).then((result) => {
      if (result.status !== 0)
        throw new Error(`hardhat ${args[0]} failed:\n${result.stdout}\n${result.stderr}`);
      return result.stdout;
    });
  await cli({}, "run", "scripts/deploy.ts");
  const record = JSON.parse(await readFile(path.join(dir, "localhost.json"), "utf8")) as {
    contracts: Record<string, { address: string }>;
  };
  const provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
  const owner = new Wallet(devWallet(0).privateKey, provider);
  const apps = AppRegistry__factory.connect(record.contracts.AppRegistry.address, owner);
  const placements = PlacementRegistry__factory.connect(record.contracts.PlacementRegistry.address, provider);
  const node = await newKubo("worker");
  const enrolled = await cli(
    { SHOAL_KUBO_URL: node.url },
    "device:enroll",
    "--account",
    String(DEVICE_ACCOUNT),
    "--stake",
    "200",
    "--cpu",
    "1",
    "--memory",
    "1Gi",
  );
  const deviceId = /device (\d+) enrolled/.exec(enrolled)![1];
  const broker = new PrivateBroker(await freePort(), dir);
  await broker.start();
  const config = path.join(dir, "worker.json");
  await writeFile(config, JSON.stringify(WORKER_CONFIG));
  const worker = new WorkerProcess(
    {
      SHOAL_RPC_URL: urls.rpcUrl,
      SHOAL_OPERATOR_KEY: devWallet(DEVICE_ACCOUNT).privateKey,
      SHOAL_DEVICE_ID: deviceId,
      SHOAL_DEPLOYMENTS_FILE: path.join(dir, "localhost.json"),
      SHOAL_MQTT_URL: broker.url,
      SHOAL_KUBO_URL: node.url,
      SHOAL_DOCKER_SOCKET: sock,
      SHOAL_DATA_DIR: path.join(dir, "worker"),
      SHOAL_POLL_INTERVAL_MS: "100",
      SHOAL_RESOURCES_ENABLED: "false",
      SHOAL_LOG_LEVEL: "info",
    },
    ["--config", config],
  );
  worker.start();
  await waitFor(
    "the worker to start",
    async () => {
      if (!worker.running) throw new Error(`the worker exited:\n${worker.tail()}`);
      return worker.log.includes("worker started") || undefined;
    },
    60_000,
    100,
  );
  const docker = createDockerClient(sock);
  const ourContainers = () =>
    docker.listContainers({ all: true, filters: { label: ["io.shoal.managed=true"] } });

  return {
    async stop() {
      await worker.stop();
      await broker.stop();
      provider.destroy();
    },
    async coldPlacement(app: string, tar: string, yaml: string, clearEngine: () => void) {
      const manifest = path.join(dir, `${app}.yaml`);
      await writeFile(
        manifest,
        yaml
          .replace(/^name: demo-web$/m, `name: ${app}`)
          .replace(/ref: shoal\/demo-web:1\.0\.0.*$/m, `tar: ${path.basename(tar)}`),
      );
      await cli({ SHOAL_KUBO_URL: publisher.url }, "app:publish", "--manifest", manifest);
      const appId = await apps.appIdOf(app);
      clearEngine();
      const tx = await apps.createDeployment(appId, 1, 1, []);
      const receipt = await tx.wait();
      const t0 = Date.now();
      const deploymentId = deploymentOf(receipt!.logs);
      const placementId = await waitFor(
        `the worker claims deployment ${deploymentId}`,
        async () => {
          const id = await placements.activePlacementOf(deploymentId, BigInt(deviceId));
          return id === 0n ? undefined : id;
        },
        120_000,
        50,
      );
      await waitFor(
        `placement ${placementId} Running on chain`,
        async () => {
          if (!worker.running) throw new Error(`the worker exited:\n${worker.tail()}`);
          return (
            PLACEMENT_STATES[Number(await placements.placementState(placementId))] === "Running" || undefined
          );
        },
        300_000,
        50,
      );
      const chainS = (Date.now() - t0) / 1000;
      const [container] = await ourContainers();
      const started = (await docker.getContainer(container.Id).inspect()).State.StartedAt;
      const startS = (Date.parse(started) - t0) / 1000;
      await (await apps.stopDeployment(deploymentId)).wait();
      await waitFor(
        "the worker removes the container",
        async () => (await ourContainers()).length === 0 || undefined,
        120_000,
        200,
      );
      clearEngine();
      return { startS, chainS };
    },
  };
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
