// Child processes a test owns: a private Mosquitto it can stop and restart, and shoal-worker
// processes it can SIGTERM or kill -9. Each records its own PID; nothing is ever killed by name.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { serviceUrls } from "./services";

const ROOT = path.resolve(__dirname, "../..");

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ""}`,
  );
}

async function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => (clearTimeout(timer), resolve(true)));
  });
}

/**
 * A Mosquitto of the test's own, with persistence so sessions survive a restart, and with MQTT over
 * WebSockets on `wsPort` when given (on loopback: see scripts/services.sh for why "lo").
 */
export class PrivateBroker {
  private child?: ChildProcess;
  constructor(
    readonly port: number,
    private readonly dir: string,
    readonly wsPort?: number,
    /** A second address to listen on: the device bridge's, for workers on isolated device hosts. */
    readonly bindAddress?: string,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.wsPort}`;
  }

  async start(): Promise<void> {
    const bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find(existsSync) ?? "mosquitto";
    const conf = path.join(this.dir, "mosquitto.conf");
    writeFileSync(
      conf,
      [
        `listener ${this.port} 127.0.0.1`,
        ...(this.bindAddress ? [`listener ${this.port} ${this.bindAddress}`] : []),
        ...(this.wsPort === undefined ? [] : [`listener ${this.wsPort} lo`, "protocol websockets"]),
        "allow_anonymous true",
        "persistence true",
        `persistence_location ${this.dir}/`,
        "user root",
        "",
      ].join("\n"),
    );
    this.child = spawn(bin, ["-c", conf], { stdio: "ignore" });
    await waitFor(`mosquitto on ${this.port}`, () => canConnect(this.port), 10_000, 100);
    if (this.wsPort !== undefined)
      await waitFor(`mosquitto websockets on ${this.wsPort}`, () => canConnect(this.wsPort!), 10_000, 100);
  }

  /** SIGTERM: Mosquitto writes its persistence file and exits. */
  async stop(): Promise<void> {
    if (!this.child) return;
    this.child.kill("SIGTERM");
    if (!(await exited(this.child, 10_000))) this.child.kill("SIGKILL");
    this.child = undefined;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => (socket.end(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

/** A shoal-worker child process with its log kept for failure messages. */
export class WorkerProcess {
  private child?: ChildProcess;
  log = "";
  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly args: string[] = [],
  ) {}

  start(): void {
    // Executed, not run through `node`: its first line carries the worker's V8 flags.
    this.child = spawn(path.join(ROOT, "workers/bin/shoal-worker.js"), this.args, {
      cwd: ROOT,
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout!.on("data", (chunk) => (this.log += chunk));
    this.child.stderr!.on("data", (chunk) => (this.log += chunk));
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** kill -9: no chance to finish anything. */
  async crash(): Promise<void> {
    if (!this.child) return;
    this.child.kill("SIGKILL");
    await exited(this.child, 10_000);
  }

  /** SIGTERM; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (!this.child) return null;
    const child = this.child;
    child.kill("SIGTERM");
    if (!(await exited(child, 30_000))) child.kill("SIGKILL");
    return child.exitCode;
  }

  /** The JSON lines of its log (it logs one JSON object a line) from character `from` on. */
  jsonLines<T = Record<string, unknown>>(from = 0): T[] {
    return this.log
      .slice(from)
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as T);
  }

  tail(lines = 30): string {
    return this.log.trim().split("\n").slice(-lines).join("\n");
  }
}

/** The environment of a shoal-worker child process (the variables of docs/worker.md). */
export function workerEnvironment(o: {
  rpcUrl: string;
  operatorKey: string;
  deviceId: string;
  deploymentsFile: string;
  mqttUrl: string;
  kuboUrl: string;
  /** SHOAL_DOCKER_SOCKET; left unset when not given. */
  dockerSocket?: string;
  dataDir: string;
  logLevel: string;
  metricsPort?: number;
}): NodeJS.ProcessEnv {
  return {
    SHOAL_RPC_URL: o.rpcUrl,
    SHOAL_OPERATOR_KEY: o.operatorKey,
    SHOAL_DEVICE_ID: o.deviceId,
    SHOAL_DEPLOYMENTS_FILE: o.deploymentsFile,
    SHOAL_MQTT_URL: o.mqttUrl,
    SHOAL_KUBO_URL: o.kuboUrl,
    ...(o.dockerSocket === undefined ? {} : { SHOAL_DOCKER_SOCKET: o.dockerSocket }),
    SHOAL_DATA_DIR: o.dataDir,
    SHOAL_LOG_LEVEL: o.logLevel,
    ...(o.metricsPort === undefined ? {} : { SHOAL_METRICS_PORT: String(o.metricsPort) }),
  };
}

/**
 * Writes `dir`/worker.json, the settings of the integration tests' workers: a claim within 300 ms
 * (jitter 50 ms) and a reconcile pass every second, plus the sections in `more`. Returns its path.
 */
export async function writeWorkerConfig(dir: string, more: Record<string, unknown> = {}): Promise<string> {
  const file = path.join(dir, "worker.json");
  await writeFile(
    file,
    JSON.stringify({ claim: { maxDelayMs: 300, jitterMs: 50 }, reconcileIntervalMs: 1000, ...more }),
  );
  return file;
}

export interface TestWorkerOptions {
  /** The test's directory, with the deployment record (localhost.json) scripts/deploy.ts wrote. */
  dir: string;
  /** Default: the services' chain RPC (serviceUrls). */
  rpcUrl?: string;
  mqttUrl: string;
  /** Default: the services' Kubo API (serviceUrls). */
  kuboUrl?: string;
  operatorKey: string;
  deviceId: string;
  /** Default: `<dir>/worker`. */
  dataDir?: string;
  /** More variables, or other values (SHOAL_DOCKER_SOCKET, SHOAL_METRICS_PORT...). */
  env?: NodeJS.ProcessEnv;
  args?: string[];
}

/** A shoal-worker as the integration tests run it, not started yet: polling every 250 ms, logging at debug. */
export function testWorker(o: TestWorkerOptions): WorkerProcess {
  const urls = serviceUrls();
  const env = workerEnvironment({
    rpcUrl: o.rpcUrl ?? urls.rpcUrl,
    operatorKey: o.operatorKey,
    deviceId: o.deviceId,
    deploymentsFile: path.join(o.dir, "localhost.json"),
    mqttUrl: o.mqttUrl,
    kuboUrl: o.kuboUrl ?? urls.kuboUrl,
    dataDir: o.dataDir ?? path.join(o.dir, "worker"),
    logLevel: "debug",
  });
  return new WorkerProcess({ ...env, SHOAL_POLL_INTERVAL_MS: "250", ...o.env }, o.args);
}
