/**
 * Fan-out of chain events and RPC load per worker, with and without bridge election (issue 17).
 *
 *   npx hardhat run bench/fanout.ts --network localhost
 *   (env: SHOAL_BENCH_WINDOW_S, default 60: the measured window of each phase)
 *
 * Fresh contracts in a temporary deployments dir, a private Mosquitto, three real shoal-worker
 * processes with the default intervals (poll 1 s, reconcile 5 s), each with its own path on a
 * counting JSON-RPC proxy in front of the Hardhat node (http://127.0.0.1:<proxy>/d<deviceId>), and
 * an independent mqtt.js subscriber that counts the copies of every bridged event. Three phases in
 * the same run, each with fresh worker data dirs and a 20-s warm-up (first derivation) before the
 * window:
 *   bridges = 3   every worker reads the chain and bridges: what the worker did before election
 *   bridges = 2   the default
 *   bridges = 1
 * Workload in each window: one createDeployment every 3 s with a required label no device has, so
 * every worker reads it (claimer) and nothing is claimed (no Docker containers), plus the workers'
 * own heartbeats. Writes bench/results/fanout.md.
 */
import { JsonRpcProvider, Wallet } from "ethers";
import mqtt from "mqtt";
import { createServer, type Server } from "node:http";
import { writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { AppRegistry__factory } from "../typechain-types";
import { detachEnvelope } from "../workers/src";
import { devWallet, runHardhat } from "../scripts/lib/local-chain";
import { enrollArgs, enrolledId } from "../test/shared/cli";
import { freePort, PrivateBroker, WorkerProcess } from "../test/shared/processes";
import { serviceUrls } from "../test/shared/services";

const urls = serviceUrls();
const ROOT = path.resolve(__dirname, "..");
const WINDOW_S = Number(process.env.SHOAL_BENCH_WINDOW_S ?? 60);
const WARMUP_S = 20;
const OPERATORS = [7, 8, 9];
const PHASES = [3, 2, 1];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Counts HTTP requests and JSON-RPC calls per path prefix (/d<id>), forwards them to the node. */
function countingProxy(target: string) {
  const counts = new Map<string, { http: number; calls: number; methods: Map<string, number> }>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const who = (req.url ?? "/").split("/")[1] || "other";
      const entry = counts.get(who) ?? { http: 0, calls: 0, methods: new Map() };
      counts.set(who, entry);
      entry.http++;
      try {
        const parsed = JSON.parse(body) as { method: string } | { method: string }[];
        for (const call of Array.isArray(parsed) ? parsed : [parsed]) {
          entry.calls++;
          entry.methods.set(call.method, (entry.methods.get(call.method) ?? 0) + 1);
        }
      } catch {
        // not JSON-RPC; forwarded anyway
      }
      fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body })
        .then(async (r) => {
          res.writeHead(r.status, { "content-type": "application/json" });
          res.end(await r.text());
        })
        .catch(() => {
          res.writeHead(502);
          res.end();
        });
    });
  });
  return {
    counts,
    reset: () => counts.clear(),
    listen: (port: number) => new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface PhaseResult {
  bridges: number;
  events: number;
  copiesMax: number;
  copiesMean: number;
  senders: string[];
  perWorker: Array<{ deviceId: string; http: number; calls: number; top: string }>;
}

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), "shoal-fanout-"));
  const broker = new PrivateBroker(await freePort(), dir);
  await broker.start();
  const proxy = countingProxy(urls.rpcUrl);
  const proxyPort = await freePort();
  await proxy.listen(proxyPort);
  const env = { SHOAL_DEPLOYMENTS_DIR: dir, SHOAL_KUBO_URL: urls.kuboUrl };
  const must = async (args: string[]) => {
    const r = await runHardhat(args, env);
    if (r.status !== 0) throw new Error(`${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const results: PhaseResult[] = [];
  const provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
  try {
    await must(["run", "scripts/deploy.ts"]);
    const record = JSON.parse(await readFile(path.join(dir, "localhost.json"), "utf8")) as {
      chainId: number;
      contracts: Record<string, { address: string }>;
    };
    await must(["app:publish", "--manifest", path.join(ROOT, "apps/demo-web/shoal.yaml")]);
    const deviceIds: string[] = [];
    for (const account of OPERATORS) {
      deviceIds.push(enrolledId(await must(enrollArgs(account))));
    }
    const owner = new Wallet(devWallet(0).privateKey, provider);
    const apps = AppRegistry__factory.connect(record.contracts.AppRegistry.address, owner);

    const copies = new Map<string, string[]>();
    let counting = false;
    const subscriber = await mqtt.connectAsync(broker.url, {
      clientId: `fanout-${process.pid}`,
      clean: true,
    });
    subscriber.on("message", (topic, payload) => {
      if (!counting || !/^shoal\/v1\/chain\/\d+\/\w+Registry\/\w+$/.test(topic)) return;
      const parsed = detachEnvelope(payload.toString());
      if (!parsed.ok) return;
      const id = (JSON.parse(parsed.payload) as { id: string }).id;
      copies.set(id, [...(copies.get(id) ?? []), parsed.envelope.d]);
    });
    await subscriber.subscribeAsync(`shoal/v1/chain/${record.chainId}/+/+`, { qos: 1 });

    for (const bridges of PHASES) {
      console.log(`phase: bridges=${bridges}`);
      const workers = deviceIds.map((id, i) => {
        const w = new WorkerProcess({
          SHOAL_RPC_URL: `http://127.0.0.1:${proxyPort}/d${id}`,
          SHOAL_OPERATOR_KEY: devWallet(OPERATORS[i]).privateKey,
          SHOAL_DEVICE_ID: id,
          SHOAL_DEPLOYMENTS_FILE: path.join(dir, "localhost.json"),
          SHOAL_MQTT_URL: broker.url,
          SHOAL_KUBO_URL: urls.kuboUrl,
          SHOAL_DOCKER_SOCKET: urls.dockerSocket,
          SHOAL_DATA_DIR: path.join(dir, `phase-${bridges}`, `worker-${id}`),
          SHOAL_RESOURCES_ENABLED: "false",
          SHOAL_BRIDGES: String(bridges),
          SHOAL_LOG_LEVEL: "info",
        });
        w.start();
        return w;
      });
      await sleep(WARMUP_S * 1000);
      proxy.reset();
      copies.clear();
      counting = true;
      const started = Date.now();
      while (Date.now() - started < WINDOW_S * 1000) {
        await (await apps.createDeployment(1, 1, 1, ["zone=nowhere"])).wait();
        await sleep(3_000);
      }
      const elapsedS = (Date.now() - started) / 1000;
      await sleep(3_000); // the last events' copies
      counting = false;
      const perWorker = deviceIds.map((id) => {
        const c = proxy.counts.get(`d${id}`) ?? { http: 0, calls: 0, methods: new Map<string, number>() };
        const top = [...c.methods.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 4)
          .map(([m, n]) => `${m} ${(n / elapsedS).toFixed(2)}`)
          .join(", ");
        return { deviceId: id, http: c.http / elapsedS, calls: c.calls / elapsedS, top };
      });
      const counts = [...copies.values()].map((s) => s.length);
      results.push({
        bridges,
        events: copies.size,
        copiesMax: Math.max(0, ...counts),
        copiesMean: counts.reduce((a, b) => a + b, 0) / Math.max(1, counts.length),
        senders: [...new Set([...copies.values()].flat())].sort(),
        perWorker,
      });
      console.log(JSON.stringify(results.at(-1)));
      await Promise.all(workers.map((w) => w.stop()));
    }
    await subscriber.endAsync();
  } finally {
    provider.destroy();
    await proxy.close();
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }

  const cpus = os.cpus();
  const rows = results.map((r) => {
    const total = r.perWorker.reduce((a, w) => a + w.calls, 0);
    const workerCells = r.perWorker
      .map((w) => `${w.calls.toFixed(2)} (${w.http.toFixed(2)} HTTP)`)
      .join(" | ");
    return `| ${r.bridges}${r.bridges === 3 ? " (every worker: as before election)" : ""} | ${r.events} | ${r.copiesMean.toFixed(2)} / ${r.copiesMax} | ${r.senders.join(", ")} | ${workerCells} | ${total.toFixed(2)} |`;
  });
  const methods = results
    .map((r) => r.perWorker.map((w) => `- bridges=${r.bridges}, device ${w.deviceId}: ${w.top}`).join("\n"))
    .join("\n");
  const md = `# Fan-out: MQTT copies per chain event and RPC requests per worker

Command: \`npx hardhat run bench/fanout.ts --network localhost\` (SHOAL_BENCH_WINDOW_S=${WINDOW_S})

- Date: ${new Date().toISOString()}
- Machine: ${cpus.length} x ${cpus[0]?.model ?? "unknown CPU"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM; load average at the end ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} (shared with other helpers' builds and tests)
- Node.js ${process.version}; Hardhat node (automine) at ${urls.rpcUrl} behind a counting proxy; a private Mosquitto
- Three real shoal-worker processes (devices ${results[0]?.perWorker.map((w) => w.deviceId).join(", ")}), default intervals
  (chain poll 1 s, reconcile and claim passes 5 s, heartbeat a third of the TTL), resources off;
  workload: one createDeployment every 3 s that no device can claim (a required label nobody has)
  plus the heartbeats, over a ${WINDOW_S}-s window after a ${WARMUP_S}-s warm-up; the same run, one phase
  after the other, fresh worker data dirs per phase

| bridges | chain events in the window | MQTT copies per event (mean / max) | publishing devices | RPC calls/s per worker (HTTP requests/s) | total calls/s |
|---|---|---|---|---|---|
${rows.join("\n")}

(columns per worker in the order of the devices above; the workers' columns are JSON-RPC calls,
a batch of N calls is one HTTP request)

Busiest methods (calls/s):
${methods}

Reading: a bridge polls the chain (eth_blockNumber and a header check every second, eth_getLogs
and headers when there are new blocks) and runs the keeper; a follower reads only what it acts on
(its claim and reconcile passes, its heartbeat) and learns events from the bridges' MQTT messages.
`;
  const out = path.resolve(__dirname, "results/fanout.md");
  writeFileSync(out, md);
  console.log(md);
  console.log(`wrote ${out}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
