/**
 * Scale: N hollow devices (workers/src/hollow.ts) in this process on 2-s blocks, deployments
 * totalling N replicas, and what it costs.
 *
 *   npx ts-node --transpile-only bench/scale.ts [--sizes 10,100,300,1000] [--block-s 2] [--idle-s 20]
 *        [--timeout-s 300] [--no-plot] [--log-level error|warn|info|debug] [--rows-from FILE] (earlier rows, as printed, to show and plot too;
 *        with --sizes "" nothing new runs)
 *
 * What runs: the services of scripts/services.sh for the broker (Mosquitto with the dynamic security
 * plugin: every device gets its own user, as the fleet does); a Hardhat node of the bench's own on a
 * free port with interval mining (evm_setIntervalMining, Hardhat's 30M gas limit); in front of it a
 * counting JSON-RPC proxy (a child process) that every device and the bench's chain reads go
 * through, counting HTTP requests, JSON-RPC calls by method and sent transactions by function.
 * For each N: fresh contracts, N devices enrolled in batches (400m CPU, 256 MiB each), broker users,
 * an independent MQTT subscriber to shoal/v1/chain/#, the devices started; then an idle window of
 * --idle-s (RPC and CPU at rest), then ceil(N/10) deployments of a hollow app (100m band minimum)
 * totalling N replicas sent at once, and the time from the block that included the last deploy to
 * the block of the last PlacementConfirmed of those deployments.
 *
 * Measured per N: time to all Running; claim transactions per placement (claim() calls sent, at the
 * proxy, over placements); RPC requests/s (HTTP and JSON-RPC calls, total and per device) at rest
 * and during the placement window; MQTT messages per chain event (subscriber); CPU of the broker,
 * the chain and this process (the devices: every one of them bridges in the baseline) in % of one
 * core; memory per hollow device (RSS growth over N). Writes bench/results/scale.md and scale.png.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import mqtt from "mqtt";
import { JsonRpcProvider } from "ethers";
import {
  enrollHollowDevices,
  publishHollowApp,
  runHollowDevices,
  type DeploymentRecord,
} from "../workers/src";
import {
  AppRegistry__factory,
  DeviceRegistry__factory,
  PlacementRegistry__factory,
} from "../typechain-types";
import { withoutCredentials } from "../scripts/fleet/credentials";
import { provisionHollowDevices } from "../scripts/hollow";
import { devWallet, runHardhat } from "../scripts/lib/local-chain";
import { freePort, waitFor } from "../test/shared/processes";

const ROOT = path.resolve(__dirname, "..");
const RESULTS = path.join(ROOT, "bench/results");

interface Args {
  sizes: number[];
  blockS: number;
  idleS: number;
  timeoutS: number;
  plot: boolean;
  /** The hollow workers' log level (default error). */
  logLevel: "error" | "warn" | "info" | "debug";
  /** Rows of earlier runs (the JSON lines this bench prints), shown and plotted with this run's. */
  rowsFrom?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    sizes: [10, 100, 300, 1000],
    blockS: 2,
    idleS: 20,
    timeoutS: 300,
    plot: true,
    logLevel: "error",
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const whole = (name: string, min: number) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < min)
        throw new Error(`${name} "${value}": give a whole number of at least ${min}`);
      i++;
      return n;
    };
    if (flag === "--sizes") {
      args.sizes = (value ?? "")
        .split(",")
        .filter(Boolean)
        .map((s) => Number(s));
      if (args.sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 5000))
        throw new Error(`--sizes "${value}": give device counts from 1 to 5000, comma separated`);
      i++;
    } else if (flag === "--block-s") args.blockS = whole("--block-s", 1);
    else if (flag === "--idle-s") args.idleS = whole("--idle-s", 1);
    else if (flag === "--timeout-s") args.timeoutS = whole("--timeout-s", 10);
    else if (flag === "--no-plot") args.plot = false;
    else if (flag === "--log-level") {
      if (!["error", "warn", "info", "debug"].includes(value ?? ""))
        throw new Error(`--log-level "${value}": give error, warn, info or debug`);
      args.logLevel = value as Args["logLevel"];
      i++;
    } else if (flag === "--rows-from") {
      if (!value) throw new Error("--rows-from needs a file of JSON rows (lines starting with {)");
      args.rowsFrom = value;
      i++;
    } else throw new Error(`${flag}: unknown option; see the header of bench/scale.ts`);
  }
  return args;
}

// ---- the counting JSON-RPC proxy (a child process, so the devices' event loop does not slow it)

const PROXY = String.raw`
const http = require("node:http");
const { Transaction } = require("ethers");
const [port, target, selectorsJson, readsJson] = process.argv.slice(1);
const selectors = JSON.parse(selectorsJson);
const reads = JSON.parse(readsJson);
let counts = { http: 0, calls: 0, methods: {}, txs: {}, reads: {}, retried: 0, failed: 0, dropped: 0 };
// Upstream: a bounded pool of keep-alive sockets to the node (requests beyond it queue here, not
// as new connections on the node); the node keeps idle sockets 65 s (http-keep-alive.js).
const agent = new http.Agent({ keepAlive: true, maxSockets: 32, keepAliveMsecs: 10_000 });
process.on("uncaughtException", (e) => process.stderr.write("rpc proxy: " + e.message + "\n"));
function count(call) {
  counts.calls++;
  counts.methods[call.method] = (counts.methods[call.method] || 0) + 1;
  if (call.method === "eth_sendRawTransaction") {
    let name = "other";
    try { name = selectors[Transaction.from(call.params[0]).data.slice(0, 10)] || "other"; } catch {}
    counts.txs[name] = (counts.txs[name] || 0) + 1;
  }
  if (call.method === "eth_call") {
    let name = "other";
    try { name = reads[String(call.params[0].data || call.params[0].input).slice(0, 10)] || "other"; } catch {}
    counts.reads[name] = (counts.reads[name] || 0) + 1;
  }
}
// One retry of a request whose pooled socket the node had closed (ECONNRESET, "socket hang up"):
// JSON-RPC reads are idempotent and a resent raw transaction is rejected as known, not sent twice.
function forward(body, res, attempt) {
  const up = http.request(target, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": body.length } }, (r) => {
    r.on("error", () => res.destroy());
    res.writeHead(r.statusCode || 502, { "content-type": "application/json" });
    r.pipe(res);
  });
  // A device that gave up on a request (its own timeout) closes it: drop it here too, queued or
  // sent. Forwarded anyway, requests nobody waits for queued without bound (N = 300: 2,471 open
  // client sockets, every device timing out behind them).
  const drop = () => { if (!res.writableFinished) up.destroy(); };
  res.on("close", drop);
  up.on("error", (e) => {
    res.off("close", drop);
    if (res.destroyed) { counts.dropped++; return; }
    if (attempt === 0 && !res.headersSent) { counts.retried++; forward(body, res, 1); return; }
    counts.failed++;
    if (!res.headersSent) { res.writeHead(502); res.end(String(e)); } else res.destroy();
  });
  up.end(body);
}
const server = http.createServer((req, res) => {
  if (req.url === "/__counts") { res.end(JSON.stringify(counts)); return; }
  if (req.url === "/__reset") { counts = { http: 0, calls: 0, methods: {}, txs: {}, reads: {}, retried: 0, failed: 0, dropped: 0 }; res.end("{}"); return; }
  const chunks = [];
  req.on("error", () => {});
  res.on("error", () => {});
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    counts.http++;
    try { const p = JSON.parse(body.toString("utf8")); (Array.isArray(p) ? p : [p]).forEach(count); } catch {}
    forward(body, res, 0);
  });
});
// Node's server closes an idle keep-alive socket after 5 s; a device's client (another event loop,
// starved on a loaded machine) may reuse it just then and see ECONNRESET. Keep idle sockets 65 s,
// as the node does, and never time a request out here (the device's own timeout decides).
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.listen({ port: Number(port), host: "127.0.0.1", backlog: 4096 }, () => process.stdout.write("ready\n"));
`;

interface Counts {
  http: number;
  retried: number;
  failed: number;
  /** Requests the device closed before the node answered (its timeout), not forwarded further. */
  dropped: number;
  calls: number;
  methods: Record<string, number>;
  txs: Record<string, number>;
  /** eth_call by contract function (absent in rows of older runs). */
  reads?: Record<string, number>;
}

// ---- process CPU from /proc (clock ticks of 10 ms on Linux)

function cpuTicks(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return NaN;
  }
}

/** % of one core used by `pid` between two tick readings `seconds` apart. */
const cpuPercent = (ticks: number, seconds: number) => (ticks / 100 / seconds) * 100;

interface Row {
  n: number;
  finished: boolean;
  note: string;
  enrollS: number;
  runningS: number | undefined;
  placements: number;
  claimTxs: number;
  idleHttpPerS: number;
  idleCallsPerS: number;
  busyHttpPerS: number;
  busyCallsPerS: number;
  events: number;
  messages: number;
  brokerCpu: number;
  chainCpu: number;
  devicesCpu: number;
  memoryPerDeviceMiB: number;
  failedDevices: number;
  /** Elected bridges (the devices with the lowest ids, run in a child process of their own). */
  bridges?: number;
  /** CPU of the bridges' process, % of one core, at rest and while placing. */
  bridgeCpuIdle?: number;
  bridgeCpu?: number;
  /** Events (in the measured windows) with more than 2 copies, and the most copies of one event. */
  eventsOver2?: number;
  maxCopies?: number;
  /** JSON-RPC calls/s by method, the busiest, at rest and while placing. */
  idleMethods?: Record<string, number>;
  busyMethods?: Record<string, number>;
  /** Claim transactions that reverted or failed (claim txs sent minus placements won). */
  idleTxs?: Record<string, number>;
  busyTxs?: Record<string, number>;
  /** eth_call per second while placing, by contract function. */
  busyReads?: Record<string, number>;
  /** From the first device's start to a settled RPC rate: seconds, HTTP requests, calls, by method. */
  startupS?: number;
  startupHttp?: number;
  startupCalls?: number;
  startupMethods?: Record<string, number>;
  /** Load average (1, 5, 15 min) when the size finished. */
  load?: number[];
  /** Requests the proxy resent after a reset, and those that failed twice. */
  proxyRetried?: number;
  proxyFailed?: number;
  proxyDropped?: number;
}

const BRIDGES = 2;

/** The busiest methods of a count, per second. */
const perSecond = (methods: Record<string, number>, seconds: number) =>
  Object.fromEntries(
    Object.entries(methods)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([m, c]) => [m, Math.round((c / seconds) * 100) / 100]),
  );

async function runSize(
  n: number,
  args: Args,
  env: { proxyUrl: string; nodeUrl: string; brokerPid: number; nodePid: number },
): Promise<Row> {
  const say = (line: string) => process.stdout.write(`[scale N=${n}] ${line}\n`);
  const dir = await mkdtemp(path.join(os.tmpdir(), `shoal-scale-${n}-`));
  const adminUrl = process.env.SHOAL_MQTT_URL ?? "mqtt://127.0.0.1:1883";
  const viewUrl = process.env.SHOAL_MQTT_VIEW_URL ?? adminUrl;
  const stop = new AbortController();
  const row: Row = {
    n,
    finished: false,
    note: "",
    enrollS: 0,
    runningS: undefined,
    placements: 0,
    claimTxs: 0,
    idleHttpPerS: 0,
    idleCallsPerS: 0,
    busyHttpPerS: 0,
    busyCallsPerS: 0,
    events: 0,
    messages: 0,
    brokerCpu: 0,
    chainCpu: 0,
    devicesCpu: 0,
    memoryPerDeviceMiB: 0,
    failedDevices: 0,
  };
  const provider = new JsonRpcProvider(env.nodeUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
  const counts = async (): Promise<Counts> =>
    (await fetch(`${env.proxyUrl}/__counts`)).json() as Promise<Counts>;
  let subscriber: mqtt.MqttClient | undefined;
  let fleet: ReturnType<typeof runHollowDevices> | undefined;
  let bridgeProcess: ChildProcess | undefined;
  try {
    const deployed = await runHardhat(["run", "scripts/deploy.ts"], {
      SHOAL_DEPLOYMENTS_DIR: dir,
      SHOAL_RPC_URL: env.nodeUrl,
    });
    if (deployed.status !== 0) throw new Error(`deploy failed: ${deployed.stderr}`);
    const file = path.join(dir, "localhost.json");
    const record = JSON.parse(await readFile(file, "utf8")) as DeploymentRecord;
    const owner = devWallet(0).privateKey;

    const enrollStart = Date.now();
    const enrolled = await enrollHollowDevices({
      rpcUrl: env.nodeUrl,
      record,
      ownerKey: owner,
      count: n,
      spec: { cpuMillicores: 400, memoryMiB: 256, platform: "linux/amd64", labels: [] },
      onProgress: (done, total) => say(`enrolled ${done}/${total}`),
    });
    row.enrollS = (Date.now() - enrollStart) / 1000;
    say(`enrolled ${n} in ${row.enrollS.toFixed(1)} s`);
    const devices = await provisionHollowDevices(adminUrl, record, enrolled, 1, (done) =>
      say(`broker users ${done}/${n}`),
    );

    const copies = new Map<string, { count: number; block: number }>();
    subscriber = await mqtt.connectAsync(viewUrl, {
      clientId: `shoal-scale-${process.pid}-${n}`,
      clean: true,
    });
    subscriber.on("message", (_topic, payload) => {
      try {
        const { id, blockNumber } = JSON.parse(payload.toString("utf8")) as {
          id?: string;
          blockNumber?: number;
        };
        if (id) {
          const seen = copies.get(id);
          if (seen) seen.count++;
          else copies.set(id, { count: 1, block: blockNumber ?? 0 });
        }
      } catch {
        // not an event
      }
    });
    await subscriber.subscribeAsync(`shoal/v1/chain/${record.chainId}/#`, { qos: 0 });

    // The elected bridges are the lowest online ids: devices 1 and 2 run in a child process, so
    // their CPU is theirs alone; every device, these included, is a bridge candidate as by default.
    const appName = `scale-${n}`;
    const bridgeDevices = devices.slice(0, Math.min(BRIDGES, n - 1));
    const optionsFile = path.join(dir, "bridges.json");
    writeFileSync(
      optionsFile,
      JSON.stringify({
        rpcUrl: env.proxyUrl,
        deploymentsFile: file,
        mqttUrl: withoutCredentials(adminUrl),
        devices: bridgeDevices,
        dataDir: path.join(dir, "devices"),
        apps: [appName],
      }),
    );
    bridgeProcess = spawn(
      process.execPath,
      ["-r", "ts-node/register/transpile-only", path.join(ROOT, "scripts/hollow-child.ts"), optionsFile],
      { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
    );
    let bridgesStarted = 0;
    bridgeProcess.stdout!.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) {
        if (line.startsWith("started")) bridgesStarted++;
        if (line.startsWith("failed")) row.failedDevices++;
      }
    });
    row.bridges = bridgeDevices.length;
    await waitFor("the bridges' process", async () => bridgesStarted >= bridgeDevices.length, 120_000, 250);

    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let started = bridgeDevices.length;
    fleet = runHollowDevices(
      {
        rpcUrl: env.proxyUrl,
        deploymentsFile: file,
        mqttUrl: withoutCredentials(adminUrl),
        devices: devices.slice(bridgeDevices.length),
        dataDir: path.join(dir, "devices"),
        logLevel: args.logLevel,
        onProgress: (event) => {
          if (event.type === "started" && ++started % 100 === 0) say(`started ${started}/${n}`);
          if (event.type === "failed") row.failedDevices++;
        },
      },
      stop.signal,
    );
    const app = await publishHollowApp({
      rpcUrl: env.nodeUrl,
      record,
      ownerKey: owner,
      contentStore: fleet.contentStore,
      name: appName,
    });
    await fetch(`${env.proxyUrl}/__reset`);
    const startAt = Date.now();
    await waitFor("every device launched", async () => started >= n, 600_000, 500);
    // Let every worker connect, verify the fleet's presences (each device reads each sender once:
    // N² reads fleet-wide) and catch up before the window at rest: settled when a 10-s window
    // sees fewer than 10 + 0.2 N requests per second, or after 10 minutes.
    for (let last = 0; Date.now() - startAt < 600_000;) {
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      const { http } = await counts();
      const rate = (http - last) / 10;
      last = http;
      say(`starting: ${rate.toFixed(0)} HTTP req/s`);
      if (rate < 10 + 0.2 * n) break;
    }
    const startup = await counts();
    row.startupS = (Date.now() - startAt) / 1000;
    row.startupHttp = startup.http;
    row.startupCalls = startup.calls;
    row.startupMethods = perSecond(startup.methods, 1);
    row.memoryPerDeviceMiB = (process.memoryUsage().rss - rssBefore) / (n - bridgeDevices.length) / 2 ** 20;

    // At rest. Events are counted from here on: at start every device catches up with the
    // election (the history it may bridge while it sees only itself is not the steady state).
    const windowBlock = await provider.getBlockNumber();
    await fetch(`${env.proxyUrl}/__reset`);
    const idleStart = Date.now();
    const bridgeIdle0 = cpuTicks(bridgeProcess.pid!);
    await new Promise((resolve) => setTimeout(resolve, args.idleS * 1000));
    const idle = await counts();
    const idleS = (Date.now() - idleStart) / 1000;
    row.bridgeCpuIdle = cpuPercent(cpuTicks(bridgeProcess.pid!) - bridgeIdle0, idleS);
    row.idleHttpPerS = idle.http / idleS;
    row.idleCallsPerS = idle.calls / idleS;
    row.idleMethods = perSecond(idle.methods, idleS);
    row.idleTxs = idle.txs;
    say(`at rest: ${row.idleHttpPerS.toFixed(1)} HTTP req/s, ${row.idleCallsPerS.toFixed(1)} calls/s`);

    // Deployments totalling N replicas, sent at once.
    await fetch(`${env.proxyUrl}/__reset`);
    const cpu0 = {
      broker: cpuTicks(env.brokerPid),
      chain: cpuTicks(env.nodePid),
      bridges: cpuTicks(bridgeProcess.pid!),
      self: process.cpuUsage(),
    };
    const busyStart = Date.now();
    const apps = AppRegistry__factory.connect(
      record.contracts.AppRegistry.address,
      devWallet(0).connect(provider),
    );
    let nonce = await provider.getTransactionCount(devWallet(0).address, "pending");
    const sizes: number[] = [];
    for (let left = n; left > 0; left -= 10) sizes.push(Math.min(10, left));
    const sent = [];
    for (const replicas of sizes)
      sent.push(
        await apps.createDeployment(app.appId, app.version, replicas, [], {
          nonce: nonce++,
          gasLimit: 1_000_000n,
        }),
      );
    const receipts = await Promise.all(sent.map((tx) => tx.wait()));
    const deploymentIds = new Set<number>();
    let deployBlock = 0;
    for (const receipt of receipts) {
      deployBlock = Math.max(deployBlock, receipt!.blockNumber);
      for (const log of receipt!.logs) {
        const parsed = apps.interface.parseLog(log);
        if (parsed?.name === "DeploymentCreated") deploymentIds.add(Number(parsed.args.deploymentId));
      }
    }
    const deployTime = (await provider.getBlock(deployBlock))!.timestamp;
    say(`${sizes.length} deployment(s) of ${n} replicas mined in block ${deployBlock}`);

    const placements = PlacementRegistry__factory.connect(
      record.contracts.PlacementRegistry.address,
      provider,
    );
    const confirmed = new Map<string, number>();
    let from = deployBlock;
    const deadline = Date.now() + args.timeoutS * 1000;
    let lastSay = 0;
    while (Date.now() < deadline) {
      const head = await provider.getBlockNumber();
      if (head >= from) {
        const logs = await placements.queryFilter(placements.filters.PlacementConfirmed(), from, head);
        for (const log of logs)
          if (deploymentIds.has(Number(log.args.deploymentId)))
            confirmed.set(log.args.placementId.toString(), log.blockNumber);
        from = head + 1;
      }
      if (confirmed.size >= n) break;
      if (Date.now() - lastSay > 10_000) {
        say(`${confirmed.size}/${n} Running`);
        lastSay = Date.now();
      }
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    const busyS = (Date.now() - busyStart) / 1000;
    const busy = await counts();
    const self = process.cpuUsage(cpu0.self);
    row.brokerCpu = cpuPercent(cpuTicks(env.brokerPid) - cpu0.broker, busyS);
    row.chainCpu = cpuPercent(cpuTicks(env.nodePid) - cpu0.chain, busyS);
    row.bridgeCpu = cpuPercent(cpuTicks(bridgeProcess.pid!) - cpu0.bridges, busyS);
    row.busyMethods = perSecond(busy.methods, busyS);
    row.busyTxs = busy.txs;
    row.busyReads = perSecond(busy.reads ?? {}, busyS);
    row.proxyRetried = idle.retried + busy.retried;
    row.proxyFailed = idle.failed + busy.failed;
    row.proxyDropped = (idle.dropped ?? 0) + (busy.dropped ?? 0);
    row.devicesCpu = ((self.user + self.system) / 1e6 / busyS) * 100;
    row.busyHttpPerS = busy.http / busyS;
    row.busyCallsPerS = busy.calls / busyS;
    row.placements = confirmed.size;
    row.claimTxs = busy.txs.claim ?? 0;
    if (confirmed.size >= n) {
      const lastBlock = Math.max(...confirmed.values());
      row.runningS = (await provider.getBlock(lastBlock))!.timestamp - deployTime;
      row.finished = true;
      say(`all ${n} Running ${row.runningS} s after the deploys were mined`);
    } else {
      row.note = `${confirmed.size}/${n} Running after ${args.timeoutS} s`;
      say(row.note);
    }
    // Let the last events reach the broker, then count copies of the run's events.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const counted = [...copies.values()].filter((c) => c.block > windowBlock);
    row.events = counted.length;
    row.messages = counted.reduce((a, c) => a + c.count, 0);
    row.eventsOver2 = counted.filter((c) => c.count > 2).length;
    row.maxCopies = Math.max(0, ...counted.map((c) => c.count));
  } catch (error) {
    row.note = `failed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`;
    say(row.note);
  } finally {
    stop.abort();
    if (fleet) {
      const done = await Promise.race([
        fleet.done.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 60_000)),
      ]);
      if (!done) say("some devices did not stop within 60 s");
    }
    if (bridgeProcess && bridgeProcess.exitCode === null) {
      const exited = new Promise((resolve) => bridgeProcess!.once("exit", resolve));
      bridgeProcess.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 60_000))]);
      if (bridgeProcess.exitCode === null) bridgeProcess.kill("SIGKILL");
    }
    row.load = os.loadavg().map((l) => Math.round(l * 10) / 10);
    await subscriber?.endAsync(true);
    provider.destroy();
    await rm(dir, { recursive: true, force: true });
  }
  return row;
}

function fmt(value: number | undefined, digits = 1): string {
  return value === undefined || !Number.isFinite(value) ? "–" : value.toFixed(digits);
}

function markdown(rows: Row[], args: Args, command: string): string {
  const lines = [
    `Command: \`${command}\` (see the header of bench/scale.ts for what it runs).`,
    "",
    `- Written: ${new Date().toISOString()}; block time ${args.blockS} s (interval mining, 30M gas limit); rest window ${args.idleS} s`,
    `- Machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node.js ${process.version}; shared with the other helpers' builds and tests (load average per row)`,
    `- Design measured: elected bridges (${BRIDGES}, the lowest online ids, run in a process of their own); followers learn events from MQTT`,
    "",
    "| N | all Running after mined (s) | claim tx / placement | RPC HTTP req/s at rest (per device) | RPC calls/s at rest | RPC HTTP req/s placing (per device) | RPC calls/s placing | MQTT copies / chain event (max) | broker CPU % | bridges CPU % rest / placing | chain CPU % | devices CPU % (per device) | memory / device (MiB) | enroll (s) | load avg 1/5/15 | note |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.n} | ${fmt(r.runningS, 0)} | ${r.placements ? fmt(r.claimTxs / r.placements, 2) : "–"} | ${fmt(r.idleHttpPerS)} (${fmt(r.idleHttpPerS / r.n, 2)}) | ${fmt(r.idleCallsPerS)} | ${fmt(r.busyHttpPerS)} (${fmt(r.busyHttpPerS / r.n, 2)}) | ${fmt(r.busyCallsPerS)} | ${r.events ? `${fmt(r.messages / r.events, 2)} (${r.maxCopies ?? "–"})` : "–"} | ${fmt(r.brokerCpu, 0)} | ${fmt(r.bridgeCpuIdle, 0)} / ${fmt(r.bridgeCpu, 0)} | ${fmt(r.chainCpu, 0)} | ${fmt(r.devicesCpu, 0)} (${fmt(r.devicesCpu / r.n, 2)}) | ${fmt(r.memoryPerDeviceMiB, 2)} | ${fmt(r.enrollS, 0)} | ${r.load?.join(" / ") ?? "–"} | ${r.note || (r.failedDevices ? `${r.failedDevices} device(s) failed` : "")} |`,
    );
  }
  lines.push("", "Busiest JSON-RPC methods (calls/s) and transactions sent, per N:", "");
  for (const r of rows) {
    const list = (m?: Record<string, number>) =>
      m
        ? Object.entries(m)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ")
        : "–";
    lines.push(
      `- N = ${r.n}: at rest ${list(r.idleMethods)}; placing ${list(r.busyMethods)}${r.busyReads ? ` (eth_call: ${list(r.busyReads)})` : ""}; txs placing ${list(r.busyTxs)}; start-up (calls in all) ${r.startupS === undefined ? "–" : `${fmt(r.startupS, 0)} s, ${r.startupHttp} HTTP requests, ${r.startupCalls} calls: ${list(r.startupMethods)}`}`,
    );
  }
  lines.push(
    "",
    "Targets at N = 1,000: all Running ≤ 60 s after mined; ≤ 1.2 claim tx per placement; ≤ 3 MQTT copies per chain event; total RPC ≤ 50 req/s.",
    "",
    "![scale](scale.png)",
  );
  return lines.join("\n");
}

/**
 * Writes the generated part of bench/results/scale.md (between the markers), keeping what was
 * written by hand around it.
 */
function writeResults(rows: Row[], args: Args, command: string) {
  const file = path.join(RESULTS, "scale.md");
  const begin = "<!-- generated by bench/scale.ts -->";
  const end = "<!-- end of generated -->";
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    // first run
  }
  const generated = `${begin}\n${markdown(rows, args, command)}\n${end}`;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  text =
    a >= 0 && b > a
      ? text.slice(0, a) + generated + text.slice(b + end.length)
      : `# Scale: hollow devices on 2-s blocks\n\n${generated}\n`;
  writeFileSync(file, text);
}

/** The curves as an SVG, rendered to PNG by Debian's chromium through playwright-core. */
async function plot(rows: Row[], file: string): Promise<string> {
  const done = rows.filter((r) => r.events > 0 || r.idleHttpPerS > 0);
  const series = [
    { name: "RPC HTTP req/s at rest", color: "#d62728", values: done.map((r) => r.idleHttpPerS) },
    {
      name: "MQTT copies per chain event",
      color: "#1f77b4",
      values: done.map((r) => (r.events ? r.messages / r.events : NaN)),
    },
    { name: "s to all Running", color: "#2ca02c", values: done.map((r) => r.runningS ?? NaN) },
    {
      name: "claim tx per placement x10",
      color: "#9467bd",
      values: done.map((r) => (r.placements ? (10 * r.claimTxs) / r.placements : NaN)),
    },
  ];
  const W = 800;
  const H = 480;
  const pad = 60;
  const xs = done.map((r) => Math.log10(r.n));
  const all = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && v > 0);
  const yMax = Math.log10(Math.max(10, ...all) * 1.5);
  const yMin = Math.log10(Math.max(0.1, Math.min(1, ...all) / 1.5));
  const xMin = Math.min(...xs, 1);
  const xMax = Math.max(...xs, 3);
  const X = (x: number) => pad + ((x - xMin) / (xMax - xMin || 1)) * (W - 2 * pad);
  const Y = (y: number) => H - pad - ((Math.log10(y) - yMin) / (yMax - yMin)) * (H - 2 * pad);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">Shoal with N hollow devices on 2-s blocks (${BRIDGES} elected bridges)</text>`,
    `<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="black"/>`,
    `<line x1="${pad}" y1="${pad}" x2="${pad}" y2="${H - pad}" stroke="black"/>`,
    `<text x="${W / 2}" y="${H - 15}" text-anchor="middle">devices N (log)</text>`,
  ];
  for (const r of done)
    parts.push(`<text x="${X(Math.log10(r.n))}" y="${H - pad + 16}" text-anchor="middle">${r.n}</text>`);
  for (let e = Math.ceil(yMin); e <= Math.floor(yMax); e++)
    parts.push(
      `<text x="${pad - 6}" y="${Y(10 ** e) + 4}" text-anchor="end">${10 ** e}</text>`,
      `<line x1="${pad}" y1="${Y(10 ** e)}" x2="${W - pad}" y2="${Y(10 ** e)}" stroke="#ddd"/>`,
    );
  series.forEach((s, i) => {
    const points = s.values
      .map((v, j) => (Number.isFinite(v) && v > 0 ? `${X(xs[j])},${Y(v)}` : undefined))
      .filter(Boolean);
    if (points.length > 0)
      parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points.join(" ")}"/>`);
    for (const p of points) {
      const [px, py] = (p as string).split(",");
      parts.push(`<circle cx="${px}" cy="${py}" r="3" fill="${s.color}"/>`);
    }
    parts.push(
      `<rect x="${pad + 10}" y="${pad + i * 18 - 9}" width="12" height="4" fill="${s.color}"/>`,
      `<text x="${pad + 28}" y="${pad + i * 18 - 4}">${s.name}</text>`,
    );
  });
  parts.push("</svg>");
  const svg = parts.join("\n");
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: W, height: H } });
    await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
    await page.screenshot({ path: file });
  } finally {
    await browser.close();
  }
  return svg;
}

function readRows(file: string | undefined): Row[] {
  if (file === undefined) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Row)
    .sort((a, b) => a.n - b.n);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const command = `npx ts-node --transpile-only bench/scale.ts ${process.argv.slice(2).join(" ")}`.trim();
  if (args.sizes.length === 0) {
    const rows = readRows(args.rowsFrom);
    writeResults(rows, args, command);
    if (args.plot) await plot(rows, path.join(RESULTS, "scale.png"));
    return;
  }
  const brokerPid = Number(
    readFileSync(
      path.join(process.env.SHOAL_HOME ?? path.join(ROOT, ".shoal"), "run/mosquitto.pid"),
      "utf8",
    ).split(" ")[0],
  );
  const nodePort = await freePort();
  const node: ChildProcess = spawn(
    path.join(ROOT, "node_modules/.bin/hardhat"),
    ["node", "--hostname", "127.0.0.1", "--port", String(nodePort)],
    {
      cwd: ROOT,
      stdio: "ignore",
      // As scripts/services.sh does: idle keep-alive sockets live 65 s, not 5 s, so the proxy's
      // pooled sockets are not closed under it (ECONNRESET on a busy machine).
      env: {
        ...process.env,
        NO_COLOR: "1",
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --require ${path.join(ROOT, "scripts/lib/http-keep-alive.js")}`,
      },
    },
  );
  const nodeUrl = `http://127.0.0.1:${nodePort}`;
  const proxyPort = await freePort();
  const placementsIface = PlacementRegistry__factory.createInterface();
  const devicesIface = DeviceRegistry__factory.createInterface();
  const selectors = Object.fromEntries([
    ...(["claim", "confirm", "fail", "release"] as const).map((name) => [
      placementsIface.getFunction(name).selector,
      name,
    ]),
    [devicesIface.getFunction("heartbeat").selector, "heartbeat"],
  ]);
  // eth_call by function, to tell which reads grow with N.
  const readNames: Record<string, string> = {};
  for (const [contract, iface] of [
    ["AppRegistry", AppRegistry__factory.createInterface()],
    ["DeviceRegistry", devicesIface],
    ["PlacementRegistry", placementsIface],
  ] as const)
    iface.forEachFunction((f) => (readNames[f.selector] = `${contract}.${f.name}`));
  const proxy = spawn(
    process.execPath,
    ["-e", PROXY, String(proxyPort), nodeUrl, JSON.stringify(selectors), JSON.stringify(readNames)],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const proxyReady = new Promise<void>((resolve, reject) => {
    proxy.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("ready") && resolve());
    proxy.on("exit", (code) => reject(new Error(`the counting RPC proxy exited (${code})`)));
  });
  const rows = readRows(args.rowsFrom);
  // Stopped by a signal, the `finally` below never runs: stop the node and the proxy here too.
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      proxy.kill();
      node.kill();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  try {
    await proxyReady;
    const rpc = (method: string, params: unknown[]) =>
      fetch(nodeUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      }).then((response) => response.json());
    await waitFor(
      "the bench's Hardhat node",
      () =>
        rpc("eth_chainId", []).then(
          () => true,
          () => false,
        ),
      180_000,
      1_000,
    );
    await rpc("evm_setAutomine", [false]);
    await rpc("evm_setIntervalMining", [args.blockS * 1000]);
    for (const n of args.sizes) {
      rows.push(
        await runSize(n, args, {
          proxyUrl: `http://127.0.0.1:${proxyPort}`,
          nodeUrl,
          brokerPid,
          nodePid: node.pid!,
        }),
      );
      mkdirSync(RESULTS, { recursive: true });
      rows.sort((a, b) => a.n - b.n);
      writeResults(rows, args, command);
      process.stdout.write(`${JSON.stringify(rows.find((r) => r.n === n))}\n`);
    }
    if (args.plot) await plot(rows, path.join(RESULTS, "scale.png"));
  } finally {
    proxy.kill();
    node.kill();
  }
}

// A socket error nobody listens for (seen once from a connection of the 100 devices) must not end
// the whole run: log it; the row's numbers show what it cost.
process.on("uncaughtException", (error) => process.stderr.write(`bench/scale: uncaught ${error.message}\n`));

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `bench/scale: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
