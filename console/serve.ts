/**
 * Serves the built console (dist/console) and a deployments.json beside it: the deployments file
 * of the chain with the URLs the browser should use (`rpcUrl`, `mqttUrl`) added. Static files only;
 * the page reads the chain and the broker itself, so any static host can do this job.
 *
 *   ts-node console/serve.ts run             serve in the foreground
 *   ts-node console/serve.ts start           serve in the background (pid in <SHOAL_HOME>/run), print the URL
 *   ts-node console/serve.ts stop            stop the background server (recorded PID only)
 *
 * Environment: SHOAL_CONSOLE_PORT (4173), SHOAL_RPC_URL, SHOAL_MQTT_WS_URL, SHOAL_DEPLOYMENTS_FILE
 * (deployments/localhost.json), SHOAL_HOME (.shoal).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { livePid, spawnDetached, stopRecorded } from "../scripts/fleet/processes";

const ROOT = path.resolve(__dirname, "..");
export const CONSOLE_DIR = path.join(ROOT, "dist/console");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

export interface ConsoleServerOptions {
  port: number;
  host?: string;
  /** Built files (default dist/console). */
  dir?: string;
  deploymentsFile: string;
  rpcUrl: string;
  /** ws:// URL of the broker's websockets listener ("" for none). */
  mqttUrl: string;
  topicRoot?: string;
}

export interface ConsoleServer {
  url: string;
  close(): Promise<void>;
}

export async function serveConsole(options: ConsoleServerOptions): Promise<ConsoleServer> {
  const dir = options.dir ?? CONSOLE_DIR;
  if (!existsSync(path.join(dir, "index.html")))
    throw new Error(
      `${path.relative(process.cwd(), dir) || dir}/index.html is missing; run npm run build:console first`,
    );
  const host = options.host ?? "127.0.0.1";
  const server: Server = createServer((req, res) => {
    const send = (status: number, type: string, body: string | Buffer) => {
      res.writeHead(status, {
        "content-type": type,
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "GET or HEAD only\n");
    const pathname = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    if (pathname === "/deployments.json") {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(readFileSync(options.deploymentsFile, "utf8")) as Record<string, unknown>;
      } catch (error) {
        return send(404, "text/plain", `no deployments file: ${(error as Error).message}\n`);
      }
      const body = {
        ...record,
        rpcUrl: options.rpcUrl,
        mqttUrl: options.mqttUrl,
        ...(options.topicRoot ? { topicRoot: options.topicRoot } : {}),
      };
      return send(200, TYPES[".json"], `${JSON.stringify(body, null, 2)}\n`);
    }
    const file = path.join(dir, pathname === "/" ? "index.html" : pathname);
    if (!file.startsWith(dir + path.sep) || !existsSync(file) || !statSync(file).isFile())
      return send(404, "text/plain", "not found\n");
    send(200, TYPES[path.extname(file)] ?? "application/octet-stream", readFileSync(file));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => resolve());
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://${host}:${port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function fromEnv(): ConsoleServerOptions {
  const port = process.env.SHOAL_CONSOLE_PORT ?? "4173";
  if (!/^\d+$/.test(port) || Number(port) > 65535)
    throw new Error(`SHOAL_CONSOLE_PORT "${port}" is not allowed; give a port number from 0 to 65535`);
  return {
    port: Number(port),
    deploymentsFile: path.resolve(
      process.env.SHOAL_DEPLOYMENTS_FILE ?? path.join(ROOT, "deployments/localhost.json"),
    ),
    rpcUrl: process.env.SHOAL_RPC_URL ?? "http://127.0.0.1:8545",
    mqttUrl: process.env.SHOAL_MQTT_WS_URL ?? "ws://127.0.0.1:1884",
  };
}

async function main(command: string | undefined): Promise<number> {
  const home = process.env.SHOAL_HOME ?? path.join(ROOT, ".shoal");
  const pidFile = path.join(home, "run/console.pid");
  const options = fromEnv();
  const url = `http://127.0.0.1:${options.port}/`;
  switch (command) {
    case "run": {
      const server = await serveConsole(options);
      console.log(`console: serving ${server.url}`);
      return new Promise(() => undefined);
    }
    case "start": {
      if (livePid(pidFile) !== undefined) {
        console.log(`Console: ${url} (already running)`);
        return 0;
      }
      spawnDetached({
        command: path.join(ROOT, "node_modules/.bin/ts-node"),
        args: ["--transpile-only", __filename, "run"],
        env: process.env,
        cwd: ROOT,
        logFile: path.join(home, "logs/console.log"),
        pidFile,
      });
      for (let i = 0; i < 100; i++) {
        const ok = await fetch(url, { method: "HEAD" }).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) {
          console.log(`Console: ${url}`);
          return 0;
        }
        if (livePid(pidFile) === undefined) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      console.error(`console: the server did not start; see ${path.join(home, "logs/console.log")}`);
      return 1;
    }
    case "stop":
      if (await stopRecorded(pidFile)) console.error("console: stopped");
      return 0;
    default:
      console.error("Usage: console/serve.ts run | start | stop");
      return 2;
  }
}

if (require.main === module) {
  main(process.argv[2]).then(
    (code) => process.exit(code),
    (error) => {
      console.error(`console: ${(error as Error).message}`);
      process.exit(1);
    },
  );
}
