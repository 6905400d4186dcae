/**
 * Device hosts: each device of a local fleet as a host of its own on this machine. A device host is
 * a network namespace that the project makes, joined by a veth pair to a bridge the project owns,
 * with an address in the project's subnet and its default route via the bridge; inside it run its
 * own Docker Engine (own data-root, exec-root, pidfile, socket and iptables, live-restore on) and
 * its own Kubo node (own repo and peer id, swarm and API on the device address, in the fleet's
 * private swarm). The worker runs in the namespace too (see fleet.ts). The chain, the broker and the
 * publisher Kubo node sit on the uplink: they listen on the bridge's address (services.sh,
 * SHOAL_BIND_ADDRESS).
 *
 *   uplink (root namespace)                       device host (netns shoal-<run>-h<n>)
 *   chain, broker, publisher Kubo on 10.213.X.1   eth0 10.213.X.n, default via 10.213.X.1
 *   bridge shoal-<run> ---- veth shv<run>-<n> ---- dockerd (docker0 inside), Kubo, worker
 *
 * Every daemon is started with `nsenter --net=/var/run/netns/<name>` (which execs, so the recorded
 * PID is the daemon's), never `ip netns exec`: that one remounts /sys, hides the cgroup tree and
 * dockerd then fails. Everything made is recorded in <SHOAL_HOME>/hosts.json before it is made, so
 * that `teardownHosts` (npm run down, the tests' teardown, and a new start after a crash) removes
 * exactly that: containers of the device engines, the daemons by recorded PID, whatever else still
 * runs in the namespaces the project made (a container's shim), mounts under the device dirs, the
 * namespaces, the links, the bridge and the iptables rules. Names carry a random run id, so two
 * runs (npm start and npm test) never collide; each run takes its own /24.
 */
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";
import { FleetError, livePid, sleep, spawnDetached, stopRecorded, waitFor } from "./processes";

const run = promisify(execFile);

/** The project's device subnets: each run takes the first /24 of this /16 no route uses yet. */
export const DEVICE_SUBNET_POOL = "10.213.0.0/16";
/** First host octet a device gets (.1 is the bridge). */
const FIRST_HOST = 10;
const KUBO_API_PORT = 5001;
const KUBO_SWARM_PORT = 4001;
const NETNS_DIR = "/var/run/netns";

export interface NetworkRecord {
  runId: string;
  bridge: string;
  /** e.g. 10.213.0.0/24 */
  subnet: string;
  /** The bridge's address: the uplink services listen here. */
  gateway: string;
  /** iptables rules added (arguments after -I/-D), removed at teardown. */
  iptables: string[][];
}

export interface DeviceHostRecord {
  name: string;
  /** The namespace's file: nsenter --net=<this>. */
  netnsPath: string;
  vethHost: string;
  address: string;
  dir: string;
  dockerSocket: string;
  dockerPidFile: string;
  kuboRepo: string;
  kuboPidFile: string;
  kuboApiUrl: string;
  /** Swarm multiaddr with the peer id: the device's endpoint on chain. */
  kuboMultiaddr: string;
  peerId: string;
  liveRestore: boolean;
}

export interface HostsState {
  v: 1;
  network?: NetworkRecord;
  devices: DeviceHostRecord[];
}

/** Why isolated devices cannot be made here, or undefined when they can. */
export function isolationUnavailable(): string | undefined {
  if (process.getuid?.() !== 0)
    return "isolated devices need root (network namespaces, veth, a dockerd per device)";
  for (const bin of ["ip", "nsenter", "dockerd", "iptables"])
    if (!onPath(bin)) return `isolated devices need \`${bin}\`, which is not on the PATH`;
  return undefined;
}

function onPath(bin: string): boolean {
  return (process.env.PATH ?? "")
    .split(":")
    .concat(["/usr/sbin", "/sbin"])
    .some((dir) => dir !== "" && existsSync(path.join(dir, bin)));
}

export function hostsStateFile(home: string): string {
  return path.join(home, "hosts.json");
}

export function readHosts(home: string): HostsState {
  const file = hostsStateFile(home);
  if (!existsSync(file)) return { v: 1, devices: [] };
  return JSON.parse(readFileSync(file, "utf8")) as HostsState;
}

function writeHosts(home: string, state: HostsState): void {
  mkdirSync(home, { recursive: true });
  writeFileSync(hostsStateFile(home), JSON.stringify(state, null, 2) + "\n");
}

async function ip(...args: string[]): Promise<string> {
  return (await run("ip", args)).stdout;
}

async function inNetns(netnsPath: string, ...args: string[]): Promise<string> {
  return (await run("nsenter", [`--net=${netnsPath}`, "--", ...args])).stdout;
}

/** Parses "a.b.c.0/24"; throws one sentence naming the value when it is not a /24 of IPv4. */
export function parseSubnet(value: string, field = "SHOAL_DEVICE_SUBNET"): { base: string; prefix: number } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(value);
  if (!m || m.slice(1).some((o) => Number(o) > 255))
    throw new FleetError(`${field} "${value}" is not allowed; give an IPv4 /24 such as 10.213.0.0/24`);
  return { base: `${m[1]}.${m[2]}.${m[3]}`, prefix: 24 };
}

/** The first /24 of DEVICE_SUBNET_POOL that no route of this machine covers. */
async function freeSubnet(): Promise<string> {
  const routes = await ip("-4", "route", "show", "table", "all");
  const used = new Set<number>();
  for (const line of routes.split("\n")) {
    const m = /^(?:\S+\s+)?10\.213\.(\d+)\.\d+(?:\/(\d+))?/.exec(line.trim());
    if (m && (m[2] === undefined || Number(m[2]) >= 24)) used.add(Number(m[1]));
    else if (m)
      return Promise.reject(
        new FleetError(`a route covers ${DEVICE_SUBNET_POOL} (${line.trim()}); set SHOAL_DEVICE_SUBNET`),
      );
  }
  for (let n = 0; n < 256; n++) if (!used.has(n)) return `10.213.${n}.0/24`;
  throw new FleetError(`every /24 of ${DEVICE_SUBNET_POOL} is in use; set SHOAL_DEVICE_SUBNET`);
}

/**
 * The run's network: a bridge with the subnet's first address, and FORWARD accepts between its
 * ports (this machine's Docker sets the FORWARD policy to DROP and bridged frames pass iptables).
 * Idempotent: a recorded, still present network is returned as it is.
 */
export async function ensureNetwork(home: string, options: { subnet?: string } = {}): Promise<NetworkRecord> {
  const state = readHosts(home);
  if (state.network !== undefined) {
    const present = await ip("-br", "link", "show", state.network.bridge).then(
      () => true,
      () => false,
    );
    if (present) return state.network;
    await teardownHosts(home);
  }
  const subnet = options.subnet ?? process.env.SHOAL_DEVICE_SUBNET ?? (await freeSubnet());
  const { base } = parseSubnet(subnet);
  const runId = randomBytes(2).toString("hex");
  const network: NetworkRecord = {
    runId,
    bridge: `shoal-${runId}`,
    subnet,
    gateway: `${base}.1`,
    iptables: [],
  };
  // Recorded before it exists: a crash in between leaves a record that teardown clears.
  writeHosts(home, { v: 1, network, devices: [] });
  await ip("link", "add", network.bridge, "type", "bridge");
  await ip("addr", "add", `${network.gateway}/24`, "dev", network.bridge);
  await ip("link", "set", network.bridge, "up");
  for (const rule of [["FORWARD", "-i", network.bridge, "-o", network.bridge, "-j", "ACCEPT"]]) {
    network.iptables.push(rule);
    writeHosts(home, { v: 1, network, devices: [] });
    await run("iptables", ["-I", ...rule]);
  }
  return network;
}

export interface DeviceHostOptions {
  home: string;
  /** The fleet's swarm key file (see swarmKey()). */
  swarmKeyFile: string;
  /** Peers every device keeps connected (the publisher node): `Peering.Peers` of its Kubo config. */
  peers?: { id: string; addrs: string[] }[];
  /** Docker's live-restore (default on); tests switch it off to see containers stopped by the engine. */
  liveRestore?: boolean;
}

/** Writes a private swarm key (Kubo's pnet format) unless one is there; returns its path. */
export function ensureSwarmKey(file: string): string {
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString("hex")}\n`, {
      mode: 0o600,
    });
  }
  return file;
}

function kuboBin(): string {
  const version = process.env.SHOAL_KUBO_VERSION ?? "v0.42.0";
  const cache =
    process.env.SHOAL_CACHE ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(process.env.HOME ?? "/root", ".cache"), "shoal");
  const candidates = [process.env.SHOAL_IPFS_BIN, path.join(cache, "bin", `ipfs-${version}`)];
  for (const c of candidates) if (c && existsSync(c)) return c;
  if (onPath("ipfs")) return "ipfs";
  throw new FleetError("no Kubo binary (ipfs) found; `bash scripts/services.sh up kubo` builds one");
}

/**
 * Makes one device host on the run's network and starts its engine and Kubo node; resolves when
 * both answer. The record is written before anything is made.
 */
export async function createDeviceHost(options: DeviceHostOptions): Promise<DeviceHostRecord> {
  const { home } = options;
  const state = readHosts(home);
  const network = state.network;
  if (network === undefined) throw new FleetError("no device network recorded; call ensureNetwork first");
  const taken = new Set(state.devices.map((d) => Number(d.address.split(".")[3])));
  let octet = FIRST_HOST;
  while (taken.has(octet)) octet++;
  if (octet > 254) throw new FleetError(`no address left in ${network.subnet}`);
  const { base } = parseSubnet(network.subnet);
  const name = `shoal-${network.runId}-h${octet}`;
  const dir = path.join(home, "hosts", name);
  const address = `${base}.${octet}`;
  const device: DeviceHostRecord = {
    name,
    netnsPath: path.join(NETNS_DIR, name),
    vethHost: `shv${network.runId}-${octet}`,
    address,
    dir,
    dockerSocket: path.join(dir, "docker.sock"),
    dockerPidFile: path.join(dir, "run", "dockerd.pid"),
    kuboRepo: path.join(dir, "ipfs"),
    kuboPidFile: path.join(dir, "run", "kubo.pid"),
    kuboApiUrl: `http://${address}:${KUBO_API_PORT}`,
    kuboMultiaddr: "",
    peerId: "",
    liveRestore: options.liveRestore ?? true,
  };
  state.devices.push(device);
  writeHosts(home, state);

  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, "run"), { recursive: true });
  const peer = `shp${network.runId}-${octet}`;
  await ip("netns", "add", name);
  await ip("link", "add", device.vethHost, "type", "veth", "peer", "name", peer);
  await ip("link", "set", peer, "netns", name);
  await ip("link", "set", device.vethHost, "master", network.bridge, "up");
  const ns = device.netnsPath;
  await inNetns(ns, "ip", "link", "set", peer, "name", "eth0");
  await inNetns(ns, "ip", "addr", "add", `${address}/24`, "dev", "eth0");
  await inNetns(ns, "ip", "link", "set", "eth0", "up");
  await inNetns(ns, "ip", "link", "set", "lo", "up");
  await inNetns(ns, "ip", "route", "add", "default", "via", network.gateway);

  await Promise.all([startEngine(device), initKubo(device, options)]);
  startKubo(device);
  await Promise.all([
    waitFor(`the Docker Engine of ${name}`, () => engineAnswers(device), {
      timeoutMs: 60_000,
      intervalMs: 100,
    }),
    waitFor(`the Kubo node of ${name}`, () => kuboAnswers(device), { timeoutMs: 60_000, intervalMs: 100 }),
  ]);
  device.kuboMultiaddr = `/ip4/${address}/tcp/${KUBO_SWARM_PORT}/p2p/${device.peerId}`;
  const latest = readHosts(home);
  latest.devices = latest.devices.map((d) => (d.name === name ? device : d));
  writeHosts(home, latest);
  return device;
}

function dockerdArgs(device: DeviceHostRecord): string[] {
  return [
    `--net=${device.netnsPath}`,
    "--",
    "dockerd",
    `--data-root=${path.join(device.dir, "docker")}`,
    `--exec-root=${path.join(device.dir, "exec")}`,
    `--pidfile=${path.join(device.dir, "run", "dockerd.self.pid")}`,
    `--host=unix://${device.dockerSocket}`,
    // iptables stay on: they are the namespace's own tables (NAT for the containers, port publishing).
    "--iptables=true",
    "--userland-proxy=false",
    ...(device.liveRestore ? ["--live-restore"] : []),
  ];
}

/** Starts (or starts again) the device's dockerd; the recorded PID is dockerd's (nsenter execs). */
export function startEngine(device: DeviceHostRecord): Promise<void> {
  if (livePid(device.dockerPidFile) !== undefined) return Promise.resolve();
  spawnDetached({
    command: "nsenter",
    args: dockerdArgs(device),
    env: process.env,
    cwd: device.dir,
    logFile: path.join(device.dir, "dockerd.log"),
    pidFile: device.dockerPidFile,
  });
  return Promise.resolve();
}

/** Stops the device's dockerd (SIGTERM, as an operator's restart does); its containers stay with live-restore. */
export async function stopEngine(device: DeviceHostRecord): Promise<void> {
  await stopRecorded(device.dockerPidFile, { graceMs: 30_000 });
}

/** Restarts the device's engine and waits until it answers again. */
export async function restartEngine(device: DeviceHostRecord): Promise<void> {
  await stopEngine(device);
  await startEngine(device);
  await waitFor(`the Docker Engine of ${device.name}`, () => engineAnswers(device), {
    timeoutMs: 60_000,
    intervalMs: 100,
  });
}

export function deviceDocker(device: Pick<DeviceHostRecord, "dockerSocket">): Docker {
  return new Docker({ socketPath: device.dockerSocket });
}

async function engineAnswers(device: DeviceHostRecord): Promise<boolean> {
  if (livePid(device.dockerPidFile) === undefined)
    throw new FleetError(
      `the Docker Engine of ${device.name} exited; see ${path.join(device.dir, "dockerd.log")}`,
    );
  try {
    await deviceDocker(device).ping();
    return true;
  } catch {
    return false;
  }
}

async function initKubo(device: DeviceHostRecord, options: DeviceHostOptions): Promise<void> {
  const env = { ...process.env, IPFS_PATH: device.kuboRepo };
  await run(kuboBin(), ["init", "--empty-repo", "--profile=test"], { env });
  const file = path.join(device.kuboRepo, "config");
  const config = JSON.parse(readFileSync(file, "utf8")) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  device.peerId = config.Identity.PeerID as string;
  config.Addresses.API = `/ip4/${device.address}/tcp/${KUBO_API_PORT}`;
  // The gateway only on the namespace's own loopback: nothing uses it.
  config.Addresses.Gateway = "/ip4/127.0.0.1/tcp/8080";
  config.Addresses.Swarm = [`/ip4/${device.address}/tcp/${KUBO_SWARM_PORT}`];
  config.Addresses.Announce = [`/ip4/${device.address}/tcp/${KUBO_SWARM_PORT}`];
  config.Bootstrap = [];
  config.Discovery = { MDNS: { Enabled: false } };
  config.Routing = { ...(config.Routing ?? {}), Type: "none" };
  // The fleet lives on private addresses: no address filter may refuse them.
  config.Swarm = { ...(config.Swarm ?? {}), AddrFilters: null };
  config.Peering = { Peers: (options.peers ?? []).map((p) => ({ ID: p.id, Addrs: p.addrs })) };
  writeFileSync(file, JSON.stringify(config, null, 2));
  writeFileSync(path.join(device.kuboRepo, "swarm.key"), readFileSync(options.swarmKeyFile), { mode: 0o600 });
}

function startKubo(device: DeviceHostRecord): void {
  spawnDetached({
    command: "nsenter",
    args: [`--net=${device.netnsPath}`, "--", kuboBin(), "daemon"],
    env: { ...process.env, IPFS_PATH: device.kuboRepo, LIBP2P_FORCE_PNET: "1" },
    cwd: device.dir,
    logFile: path.join(device.dir, "kubo.log"),
    pidFile: device.kuboPidFile,
  });
}

async function kuboAnswers(device: DeviceHostRecord): Promise<boolean> {
  if (livePid(device.kuboPidFile) === undefined)
    throw new FleetError(`the Kubo node of ${device.name} exited; see ${path.join(device.dir, "kubo.log")}`);
  try {
    const r = await fetch(`${device.kuboApiUrl}/api/v0/id`, {
      method: "POST",
      signal: AbortSignal.timeout(1000),
    });
    return r.ok;
  } catch {
    return false;
  }
}

/** Command prefix that runs a program in the device's namespace. */
export function inDevice(device: Pick<DeviceHostRecord, "netnsPath">): string[] {
  return ["nsenter", `--net=${device.netnsPath}`, "--"];
}

/**
 * Removes one device host: its engine's containers, its daemons (recorded PIDs), whatever else
 * still runs in its namespace (a container's shim: the namespace is the project's own, so all in
 * it is), mounts under its dir, the namespace (its veth goes with it) and the dir.
 */
async function teardownDevice(device: DeviceHostRecord): Promise<void> {
  if (livePid(device.dockerPidFile) !== undefined) {
    const docker = deviceDocker(device);
    const all = await docker.listContainers({ all: true }).catch(() => []);
    await Promise.all(
      all.map((c) =>
        docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
  }
  await Promise.all([
    stopRecorded(device.kuboPidFile, { graceMs: 10_000 }),
    stopRecorded(device.dockerPidFile, { graceMs: 20_000 }),
  ]);
  if (existsSync(device.netnsPath)) {
    const pids = await ip("netns", "pids", device.name).catch(() => "");
    for (const pid of pids.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone in between
      }
    }
    if (pids.trim() !== "") await sleep(300);
    await ip("netns", "del", device.name).catch(() => undefined);
  }
  await ip("link", "del", device.vethHost).catch(() => undefined);
  unmountUnder(device.dir);
  rmSync(device.dir, { recursive: true, force: true });
}

/** Lazily unmounts everything mounted under `dir` (dockerd's data-root bind, overlays), deepest first. */
function unmountUnder(dir: string): void {
  const prefix = path.resolve(dir) + "/";
  const points = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((p): p is string => p !== undefined && (p + "/").startsWith(prefix))
    .map((p) => p.replace(/\\040/g, " "))
    .sort((a, b) => b.length - a.length);
  for (const p of points) {
    try {
      execFileSync("umount", ["-l", p], { stdio: "ignore" });
    } catch {
      // already gone
    }
  }
}

/** Removes the recorded device hosts (all, or those named) and, when none is left, the network. */
export async function teardownHosts(home: string, names?: string[]): Promise<void> {
  const state = readHosts(home);
  const gone = state.devices.filter((d) => names === undefined || names.includes(d.name));
  await Promise.all(gone.map((d) => teardownDevice(d)));
  state.devices = state.devices.filter((d) => !gone.includes(d));
  if (names !== undefined && state.devices.length > 0) return writeHosts(home, state);
  if (names !== undefined) return writeHosts(home, state);
  const network = state.network;
  if (network !== undefined) {
    for (const rule of network.iptables) await run("iptables", ["-D", ...rule]).catch(() => undefined);
    await ip("link", "del", network.bridge).catch(() => undefined);
  }
  rmSync(hostsStateFile(home), { force: true });
  rmSync(path.join(home, "hosts"), { recursive: true, force: true });
}
