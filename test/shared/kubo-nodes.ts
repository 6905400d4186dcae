// Extra Kubo nodes of one private swarm on 127.0.0.1, for tests and benchmarks of peer-to-peer
// delivery: each has its own repo, API and swarm port, all share one swarm key
// (scripts/kubo-node.sh configures them). Started and stopped by recorded PID, never by name.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { freePort, waitFor } from "./processes";

const ROOT = path.resolve(__dirname, "../..");
const run = promisify(execFile);
const SCRIPT = path.join(ROOT, "scripts/kubo-node.sh");

/** Writes a new swarm key to `file` (unless it exists). */
export async function makeSwarmKey(file: string): Promise<void> {
  await run("bash", [SCRIPT, "swarm-key", file]);
}

export class KuboNode {
  private child?: ChildProcess;
  log = "";
  apiPort = 0;
  swarmPort = 0;
  peerId = "";

  constructor(
    readonly repo: string,
    readonly swarmKey: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  /** The address other nodes dial, with the peer id. */
  get multiaddr(): string {
    return `/ip4/127.0.0.1/tcp/${this.swarmPort}/p2p/${this.peerId}`;
  }

  async start(): Promise<void> {
    if (this.apiPort === 0) [this.apiPort, this.swarmPort] = [await freePort(), await freePort()];
    await mkdir(path.dirname(this.repo), { recursive: true });
    await run("bash", [
      SCRIPT,
      "configure",
      this.repo,
      `/ip4/127.0.0.1/tcp/${this.apiPort}`,
      `/ip4/127.0.0.1/tcp/${this.swarmPort}`,
      this.swarmKey,
    ]);
    const { stdout } = await run("bash", [SCRIPT, "bin"]);
    this.child = spawn(stdout.trim(), ["daemon"], {
      env: { ...process.env, IPFS_PATH: this.repo, LIBP2P_FORCE_PNET: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout!.on("data", (chunk) => (this.log += chunk));
    this.child.stderr!.on("data", (chunk) => (this.log += chunk));
    const id = await waitFor(
      `Kubo in ${this.repo} ready`,
      async () => {
        if (this.child?.exitCode !== null) throw new Error(`Kubo exited:\n${this.log}`);
        return this.rpc<{ ID: string }>("id").catch(() => undefined);
      },
      60_000,
    );
    this.peerId = id.ID;
  }

  /** SIGTERM to the recorded process, SIGKILL after 10 s. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const done = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await done;
    clearTimeout(timer);
  }

  /** One RPC call (POST /api/v0/<command>?arg=...), JSON answer. */
  async rpc<T>(command: string, ...args: string[]): Promise<T> {
    const query = args.map((a) => `arg=${encodeURIComponent(a)}`).join("&");
    const response = await fetch(`${this.url}/api/v0/${command}${query ? `?${query}` : ""}`, {
      method: "POST",
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`kubo ${command}: ${text}`);
    return JSON.parse(text) as T;
  }

  /** What Kubo's bitswap ledger says this node received from `peerId`. */
  async receivedFrom(peerId: string): Promise<number> {
    return (await this.rpc<{ Recv: number }>("bitswap/ledger", peerId)).Recv;
  }

  async bitswapStat(): Promise<{ DataReceived: number; BlocksReceived: number }> {
    return this.rpc("bitswap/stat");
  }

  async isPinned(cid: string): Promise<boolean> {
    const answer = await this.rpc<{ Keys: Record<string, unknown> }>("pin/ls", cid).catch(() => undefined);
    return answer !== undefined && cid in answer.Keys;
  }
}
