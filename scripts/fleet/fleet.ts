/**
 * A local edge fleet: N simulated devices of different sizes and labels on one machine, each with its
 * own operator key (hardhat accounts 1..N), stake, data dir and worker process, against the chain,
 * Kubo and MQTT broker given. Each device's capacity is enforced by its worker (the per-device
 * cgroup of the resource manager), not here: the fleet enrolls and starts, nothing more.
 *
 * Every worker is a detached process recorded in a pid file, and the fleet as a whole in a state
 * file (fleet.json), so that the fleet can be stopped, inspected or driven by scenarios from another
 * process (`fleet down`, `fleet view`, `fleet scenario ...`, `npm run down`).
 */
import { deviceCredentials, provisionDevice, withoutCredentials } from "./credentials";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import Docker from "dockerode";
import { devWallet } from "../lib/local-chain";
import { connectContracts, readDeploymentRecord, ROOT, runTask, type TaskEnv } from "./chain";
import { removeDeviceCgroup } from "../../workers/src";
import { FleetError, livePid, sleep, spawnDetached, stopRecorded, waitFor } from "./processes";
import {
  createDeviceHost,
  ensureSwarmKey,
  inDevice,
  readHosts,
  teardownHosts,
  type DeviceHostRecord,
  type NetworkRecord,
} from "./hosts";

export interface DeviceProfile {
  name: string;
  cpu: string;
  memory: string;
  /** Tokens staked at enrollment. */
  stake: string;
  labels: string[];
}

/** The sizes the fleet cycles through: device i gets PROFILES[(i - 1) % 3]. */
export const PROFILES: readonly DeviceProfile[] = [
  { name: "small", cpu: "500m", memory: "256Mi", stake: "150", labels: ["size=small", "region=eu-west"] },
  { name: "medium", cpu: "1", memory: "512Mi", stake: "200", labels: ["size=medium", "region=eu-west"] },
  { name: "large", cpu: "2", memory: "1Gi", stake: "300", labels: ["size=large", "region=eu-central"] },
];

/**
 * Hardhat accounts: 0 publishes apps, 1..MAX_DEVICES operate devices. No account plays keeper: the
 * workers expire stale devices and finalize their placements themselves.
 */
export const MAX_DEVICES = 8;
export const PUBLISHER_ACCOUNT = 0;

export interface FleetDevice {
  /** 1-based position in the fleet (also the hardhat account of its operator); files go by deviceId. */
  index: number;
  deviceId: number;
  account: number;
  address: string;
  profile: DeviceProfile;
  dataDir: string;
  pidFile: string;
  logFile: string;
  configFile: string;
  /** Isolated mode: the device's own host (namespace, address, engine, Kubo node). */
  host?: DeviceHostRecord;
}

/** What fleet.json holds: enough for another process to find, drive and stop the fleet. */
export interface FleetState {
  v: 1;
  createdAt: string;
  rpcUrl: string;
  kuboUrl: string;
  mqttUrl: string;
  dockerSocket: string;
  deploymentsFile: string;
  chainId: number;
  /** The DeviceRegistry's address: with the chain id it names the devices in Docker (deviceLabels). */
  deviceRegistry: string;
  heartbeatTtlS: number;
  /** Block timestamp (s) of the contracts' deployment: older retained MQTT state is not ours. */
  sinceTimestamp: number;
  devices: FleetDevice[];
  /** Deployments the fleet created for the demo apps, by app name. */
  demo: Record<string, number>;
  /**
   * Isolated mode: the device network (bridge, subnet) and the SHOAL_HOME whose hosts.json records
   * the device hosts. Absent in shared mode (one engine and Kubo node for every device).
   */
  isolated?: { home: string; network: NetworkRecord };
}

export interface FleetOptions {
  devices: number;
  rpcUrl: string;
  kuboUrl: string;
  mqttUrl: string;
  dockerSocket?: string;
  /** deployments/<network>.json of the contracts to use. */
  deploymentsFile: string;
  /** Root of the fleet's files: device-<deviceId>/ data dirs and fleet.json. */
  dataDir: string;
  /** Where pid files go (default <dataDir>/run). */
  runDir?: string;
  /**
   * Lowest device id the fleet may get. Ids are global per Docker host (container labels, cgroup
   * names); a second fleet on the same host reserves ids above the first one's by enrolling
   * placeholder devices first. Default: whatever the registry hands out next.
   */
  firstDeviceId?: number;
  /** Worker settings merged over the fleet's defaults (see workers/src/config.ts). */
  workerConfig?: Record<string, unknown>;
  logLevel?: string;
  onProgress?: (line: string) => void;
  /**
   * Isolated devices: each device a host of its own (hosts.ts) on the network recorded under
   * `home` (ensureNetwork; the services must listen on its gateway, SHOAL_BIND_ADDRESS). Devices
   * are made before they enroll, so that each enrolls with its own Kubo node's multiaddr.
   */
  isolated?: { home: string; liveRestore?: boolean | ((index: number) => boolean) };
}

/**
 * The subset of dockerode the fleet's tools use, over every engine of the fleet: one in shared
 * mode, one per device in isolated mode (listContainers fans out; getContainer goes to the engine
 * that listed the id, or finds it).
 */
export interface FleetDocker {
  listContainers(options: Docker.ContainerListOptions): Promise<Docker.ContainerInfo[]>;
  getContainer(id: string): {
    inspect(): Promise<Docker.ContainerInspectInfo>;
    remove(o?: object): Promise<unknown>;
  };
  /** The engine of one device. */
  forDevice(deviceId: number): Docker;
}

export function fleetDocker(state: FleetState): FleetDocker {
  const shared = new Docker({ socketPath: state.dockerSocket });
  const engines = new Map<number, Docker>();
  for (const d of state.devices)
    engines.set(d.deviceId, d.host ? new Docker({ socketPath: d.host.dockerSocket }) : shared);
  const all = [...new Set(engines.values())];
  if (all.length === 0) all.push(shared);
  const owner = new Map<string, Docker>();
  const find = async (id: string): Promise<Docker> => {
    const known = owner.get(id);
    if (known) return known;
    for (const e of all)
      if (
        await e
          .getContainer(id)
          .inspect()
          .then(
            () => true,
            () => false,
          )
      )
        return e;
    return all[0];
  };
  return {
    async listContainers(options) {
      const lists = await Promise.all(
        all.map(async (e) => {
          const list = await e.listContainers(options);
          for (const c of list) owner.set(c.Id, e);
          return list;
        }),
      );
      return lists.flat();
    },
    getContainer(id) {
      return {
        inspect: async () => (await find(id)).getContainer(id).inspect(),
        remove: async (o = {}) => (await find(id)).getContainer(id).remove(o),
      };
    },
    forDevice(deviceId) {
      return engines.get(deviceId) ?? shared;
    },
  };
}

export interface Fleet {
  readonly state: FleetState;
  readonly stateFile: string;
  readonly taskEnv: TaskEnv;
  device(deviceId: number): FleetDevice;
  /** Whether the device's worker process runs. */
  running(deviceId: number): boolean;
  /** kill -9 the device's worker: no clean exit, no offline message (the broker's Last Will speaks). */
  crashWorker(deviceId: number): Promise<void>;
  startWorker(deviceId: number): void;
  /** Resolves once every worker (or the given ones) logged "worker started". */
  waitStarted(deviceIds?: number[], timeoutMs?: number): Promise<void>;
  /**
   * Stops the workers (SIGTERM) and, unless `keepContainers`, removes the containers of every device
   * of this deployment (the fleet's, and any other's such as a hand-started worker's: stop that
   * worker first, or it starts them again).
   */
  stop(options?: { keepContainers?: boolean }): Promise<void>;
  saveState(): void;
}

const WORKER_BIN = path.join(ROOT, "workers/bin/shoal-worker.js");

function fleetWorkerConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    // Quick claims and reconciles: a demo should show a change within seconds, not the defaults' tens.
    claim: { maxDelayMs: 1500, jitterMs: 250 },
    reconcileIntervalMs: 2000,
    pollIntervalMs: 500,
    // 0 = a third of the contract's TTL, which the fleet's short TTL keeps at a few seconds.
    heartbeatIntervalS: 0,
    // Keepers act within 3 s of a duty coming due (the kill scenario's bounds count on it), and
    // retry a duty whose event has not come after 10 s.
    keeper: { jitterMs: 3000, retryMs: 10_000 },
    ...overrides,
  };
}

/** A service URL on 127.0.0.1 as a device host reaches it: on the bridge's address. */
export function viaUplink(url: string, gateway: string | undefined): string {
  if (gateway === undefined) return url;
  const u = new URL(url);
  if (u.hostname === "127.0.0.1" || u.hostname === "localhost") u.hostname = gateway;
  return u.toString().replace(/\/$/, url.endsWith("/") ? "/" : "");
}

function workerEnv(state: FleetState, device: FleetDevice, logLevel: string): NodeJS.ProcessEnv {
  // The device's own broker user (provisioned at enrollment), never the admin of state.mqttUrl.
  const credentials = deviceCredentials(state.mqttUrl, state.deviceRegistry, device.deviceId);
  const gateway = device.host ? state.isolated?.network.gateway : undefined;
  return {
    ...process.env,
    SHOAL_RPC_URL: viaUplink(state.rpcUrl, gateway),
    SHOAL_OPERATOR_KEY: devWallet(device.account).privateKey,
    SHOAL_DEVICE_ID: String(device.deviceId),
    SHOAL_DEPLOYMENTS_FILE: state.deploymentsFile,
    SHOAL_MQTT_URL: viaUplink(withoutCredentials(state.mqttUrl), gateway),
    SHOAL_MQTT_USERNAME: credentials?.username ?? "",
    SHOAL_MQTT_PASSWORD: credentials?.password ?? "",
    SHOAL_KUBO_URL: device.host?.kuboApiUrl ?? state.kuboUrl,
    SHOAL_DOCKER_SOCKET: device.host?.dockerSocket ?? state.dockerSocket,
    SHOAL_DATA_DIR: device.dataDir,
    SHOAL_LOG_LEVEL: logLevel,
  };
}

/**
 * The values a device's containers may carry in their io.shoal.device label: the worker's device key
 * (`<chainId>-<first 8 hex digits of the DeviceRegistry>-<id>`, unique across chains and
 * deployments sharing one Docker host) or, from workers before it, the bare id.
 */
export function deviceLabels(
  state: Pick<FleetState, "chainId" | "deviceRegistry">,
  deviceId: number,
): string[] {
  const registry = (state.deviceRegistry ?? "").slice(2, 10).toLowerCase();
  return [`${state.chainId}-${registry}-${deviceId}`, String(deviceId)];
}

/** io.shoal.device label -> fleet device id, for the fleet's devices only. */
export function labelMatcher(state: FleetState): (label: string | undefined) => number | undefined {
  const byLabel = new Map<string, number>();
  for (const d of state.devices)
    for (const label of deviceLabels(state, d.deviceId)) byLabel.set(label, d.deviceId);
  return (label) => (label === undefined ? undefined : byLabel.get(label));
}

/** Reads the fleet state file written by startFleet. */
export function readFleetState(stateFile: string): FleetState {
  if (!existsSync(stateFile))
    throw new FleetError(
      `no fleet is recorded in ${path.relative(process.cwd(), stateFile)}; start one with \`fleet up\``,
    );
  return JSON.parse(readFileSync(stateFile, "utf8")) as FleetState;
}

/** A handle on a recorded fleet (started by this process or another). */
export function openFleet(stateFile: string, options: { logLevel?: string } = {}): Fleet {
  const state = readFleetState(stateFile);
  // fleet.json files written before deviceRegistry was recorded: read it from the deployment.
  state.deviceRegistry ??= readDeploymentRecord(state.deploymentsFile).contracts.DeviceRegistry.address;
  const logLevel = options.logLevel ?? "info";
  const docker = fleetDocker(state);
  const taskEnv: TaskEnv = {
    rpcUrl: state.rpcUrl,
    kuboUrl: state.kuboUrl,
    deploymentsDir: path.dirname(state.deploymentsFile),
  };
  const device = (deviceId: number) => {
    const d = state.devices.find((x) => x.deviceId === deviceId);
    if (d === undefined)
      throw new FleetError(
        `device ${deviceId} is not in this fleet; its devices are ${state.devices.map((x) => x.deviceId).join(", ")}`,
      );
    return d;
  };
  // "worker started" lines count from where each log stood when this handle started the worker.
  const startMarks = new Map<number, number>();
  const startWorker = (deviceId: number) => {
    const d = device(deviceId);
    if (livePid(d.pidFile) !== undefined) return;
    startMarks.set(deviceId, logSize(d.logFile));
    // Executed, not run through `node`: its first line carries the worker's V8 flags. On a device
    // host the worker runs in the device's namespace (nsenter execs it: the recorded PID is its own).
    const [command, ...prefix] = d.host ? [...inDevice(d.host), WORKER_BIN] : [WORKER_BIN];
    spawnDetached({
      command,
      args: [...prefix, "--config", d.configFile],
      env: workerEnv(state, d, logLevel),
      cwd: ROOT,
      logFile: d.logFile,
      pidFile: d.pidFile,
    });
  };
  const fleet: Fleet = {
    state,
    stateFile,
    taskEnv,
    device,
    running: (deviceId) => livePid(device(deviceId).pidFile) !== undefined,
    async crashWorker(deviceId) {
      await stopRecorded(device(deviceId).pidFile, { signal: "SIGKILL", graceMs: 5_000 });
    },
    startWorker,
    async waitStarted(deviceIds = state.devices.map((d) => d.deviceId), timeoutMs = 60_000) {
      await waitFor(
        `the workers of devices ${deviceIds.join(", ")} to start`,
        () =>
          deviceIds.every((id) => {
            const d = device(id);
            if (livePid(d.pidFile) === undefined)
              throw new FleetError(
                `the worker of device ${id} exited; last lines of ${d.logFile}:\n${tail(d.logFile, 8)}`,
              );
            return startedSince(d.logFile, startMarks.get(id) ?? 0);
          }),
        { timeoutMs, intervalMs: 300 },
      );
    },
    async stop(options = {}) {
      await Promise.all(state.devices.map((d) => stopRecorded(d.pidFile, { graceMs: 20_000 })));
      if (options.keepContainers) return;
      if (state.isolated !== undefined) {
        // Each device's engine holds only its own containers: the hosts go, and their engines with them.
        const names = state.devices.flatMap((d) => (d.host ? [d.host.name] : []));
        await teardownHosts(state.isolated.home, names);
        await removeCgroups();
        return;
      }
      const mine = labelMatcher(state);
      const containers = await docker.listContainers({
        all: true,
        filters: { label: ["io.shoal.managed=true"] },
      });
      await Promise.all(
        containers
          .filter((c) => mine(c.Labels["io.shoal.device"]) !== undefined)
          .map((c) =>
            docker
              .getContainer(c.Id)
              .remove({ force: true })
              .catch(() => undefined),
          ),
      );
      // Devices of the same deployment that are not the fleet's (a worker the user started by hand,
      // README "Run a device worker"): their containers go too, so nothing of this chain is left.
      const ours = `${state.chainId}-${(state.deviceRegistry ?? "").slice(2, 10).toLowerCase()}-`;
      const strays = (
        await docker.listContainers({ all: true, filters: { label: ["io.shoal.managed=true"] } })
      ).filter((c) => c.Labels["io.shoal.device"]?.startsWith(ours));
      await Promise.all(
        strays.map((c) =>
          docker
            .getContainer(c.Id)
            .remove({ force: true })
            .catch(() => undefined),
        ),
      );
      for (const label of new Set(strays.map((c) => c.Labels["io.shoal.device"])))
        await removeDeviceCgroup({ deviceId: label }).catch(() => undefined);
      await removeCgroups();
    },
    saveState() {
      // Owner-only: mqttUrl may carry the broker admin's credentials.
      writeFileSync(stateFile, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
    },
  };
  // The workers leave their device cgroups behind (their containers may outlive them); with the
  // containers gone, the fleet removes them too. Best effort: a busy one is left for the next down.
  async function removeCgroups(): Promise<void> {
    for (const d of state.devices)
      for (const name of deviceLabels(state, d.deviceId))
        for (let attempt = 0; attempt < 5; attempt++) {
          try {
            await removeDeviceCgroup({ deviceId: name });
            break;
          } catch {
            await sleep(300);
          }
        }
  }
  return fleet;
}

function logSize(file: string): number {
  try {
    return readFileSync(file).length;
  } catch {
    return 0;
  }
}

function startedSince(file: string, offset: number): boolean {
  try {
    return readFileSync(file).subarray(offset).toString("utf8").includes('"msg":"worker started"');
  } catch {
    return false;
  }
}

export function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Enrolls `options.devices` devices with the device:enroll task (in parallel: one account each) and
 * starts their workers. Throws before starting anything when an option is out of range.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const say = options.onProgress ?? (() => undefined);
  if (!Number.isInteger(options.devices) || options.devices < 1 || options.devices > MAX_DEVICES)
    throw new FleetError(
      `--devices ${options.devices}: give a whole number from 1 to ${MAX_DEVICES} (the local accounts 1..${MAX_DEVICES} operate the devices)`,
    );
  const record = readDeploymentRecord(options.deploymentsFile);
  const taskEnv: TaskEnv = {
    rpcUrl: options.rpcUrl,
    kuboUrl: options.kuboUrl,
    deploymentsDir: path.dirname(options.deploymentsFile),
  };
  const contracts = connectContracts(options.rpcUrl, record);
  let heartbeatTtlS: number;
  let sinceTimestamp: number;
  try {
    let chainId: number;
    try {
      chainId = Number(await contracts.provider.send("eth_chainId", []));
    } catch (error) {
      throw new FleetError(
        `the chain at ${options.rpcUrl} does not answer (${(error as Error).message.split("\n")[0]}); start the services first (npm start)`,
      );
    }
    if (chainId !== record.chainId)
      throw new FleetError(
        `${options.deploymentsFile} is for chain ${record.chainId}, but ${options.rpcUrl} is chain ${chainId}`,
      );
    if ((await contracts.provider.getCode(record.contracts.DeviceRegistry.address)) === "0x")
      throw new FleetError(
        `no contract at ${record.contracts.DeviceRegistry.address} (was the chain restarted?); redeploy the contracts`,
      );
    heartbeatTtlS = Number((await contracts.devices.parameters()).heartbeatTtl);
    const block = await contracts.provider.getBlock(record.contracts.DeviceRegistry.blockNumber);
    sinceTimestamp = block?.timestamp ?? 0;
    if (options.firstDeviceId !== undefined) await reserveDeviceIds(contracts, options.firstDeviceId, say);
  } finally {
    contracts.close();
  }

  mkdirSync(options.dataDir, { recursive: true });
  const runDir = options.runDir ?? path.join(options.dataDir, "run");
  let hosts: DeviceHostRecord[] = [];
  let network: NetworkRecord | undefined;
  if (options.isolated !== undefined) {
    const home = options.isolated.home;
    network = readHosts(home).network;
    if (network === undefined)
      throw new FleetError(`no device network is recorded in ${home}/hosts.json; \`fleet net-up\` makes one`);
    const publisher = await publisherPeer(options.kuboUrl, network.gateway);
    const started = Date.now();
    const liveRestore = options.isolated.liveRestore ?? true;
    hosts = await Promise.all(
      Array.from({ length: options.devices }, (_, i) =>
        createDeviceHost({
          home,
          swarmKeyFile: ensureSwarmKey(path.join(home, "swarm.key")),
          peers: publisher ? [publisher] : [],
          liveRestore: typeof liveRestore === "function" ? liveRestore(i + 1) : liveRestore,
        }),
      ),
    ).catch(async (error) => {
      await teardownHosts(
        home,
        readHosts(home).devices.map((d) => d.name),
      ).catch(() => undefined);
      throw error;
    });
    say(
      `made ${hosts.length} device host(s) on ${network.bridge} (${network.subnet}) in ${((Date.now() - started) / 1000).toFixed(1)} s: ` +
        hosts.map((h) => h.address).join(", "),
    );
  }
  say(`enrolling ${options.devices} device(s) with device:enroll`);
  const enrolled = await Promise.all(
    Array.from({ length: options.devices }, async (_, i) => {
      const index = i + 1;
      const profile = PROFILES[i % PROFILES.length];
      const host = hosts[i] as DeviceHostRecord | undefined;
      const out = await runTask(
        [
          "device:enroll",
          "--account",
          String(index),
          "--stake",
          profile.stake,
          "--cpu",
          profile.cpu,
          "--memory",
          profile.memory,
          "--labels",
          [...profile.labels, `fleet=device-${index}`].join(","),
          "--endpoint",
          host?.kuboMultiaddr ?? "/ip4/127.0.0.1/tcp/4001",
        ],
        taskEnv,
      );
      const match = /device (\d+) enrolled: .* operator (0x[0-9a-fA-F]{40})/.exec(out);
      if (!match) throw new FleetError(`device:enroll printed no device id: ${out.trim()}`);
      const deviceId = Number(match[1]);
      // Named by the chain's id, the one every tool and log line shows (not the fleet position).
      const dataDir = path.join(options.dataDir, `device-${deviceId}`);
      rmSync(dataDir, { recursive: true, force: true });
      mkdirSync(dataDir, { recursive: true });
      const device: FleetDevice = {
        index,
        deviceId,
        account: index,
        address: match[2],
        profile: { ...profile, labels: [...profile.labels, `fleet=device-${index}`] },
        dataDir,
        pidFile: path.join(runDir, `fleet-device-${deviceId}.pid`),
        logFile: path.join(dataDir, "worker.log"),
        configFile: path.join(dataDir, "worker.json"),
        ...(host ? { host } : {}),
      };
      say(
        `  device ${deviceId}: ${profile.name} (${profile.cpu} CPU, ${profile.memory}), stake ${profile.stake}, account ${index}` +
          (host ? `, host ${host.address}` : ""),
      );
      return device;
    }),
  );

  for (const d of enrolled)
    if (await provisionDevice(options.mqttUrl, record.contracts.DeviceRegistry.address, d.deviceId))
      say(`  device ${d.deviceId}: broker user provisioned`);

  const state: FleetState = {
    v: 1,
    createdAt: new Date().toISOString(),
    rpcUrl: options.rpcUrl,
    kuboUrl: options.kuboUrl,
    mqttUrl: options.mqttUrl,
    dockerSocket: options.dockerSocket ?? "/var/run/docker.sock",
    deploymentsFile: path.resolve(options.deploymentsFile),
    chainId: record.chainId,
    deviceRegistry: record.contracts.DeviceRegistry.address,
    heartbeatTtlS,
    sinceTimestamp,
    devices: enrolled,
    demo: {},
    ...(network && options.isolated ? { isolated: { home: options.isolated.home, network } } : {}),
  };
  for (const d of enrolled)
    writeFileSync(
      d.configFile,
      JSON.stringify(
        fleetWorkerConfig({
          // A device host publishes its replicas' ports on its own address, where the uplink reaches them.
          ...(d.host ? { exposure: { address: d.host.address } } : {}),
          ...options.workerConfig,
        }),
        null,
        2,
      ) + "\n",
    );
  const stateFile = path.join(options.dataDir, "fleet.json");
  // Owner-only: mqttUrl may carry the broker admin's credentials.
  writeFileSync(stateFile, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });

  const fleet = openFleet(stateFile, { logLevel: options.logLevel });
  say(
    `starting ${enrolled.length} worker(s); logs in ${path.relative(process.cwd(), options.dataDir)}/device-*/worker.log`,
  );
  try {
    for (const d of enrolled) fleet.startWorker(d.deviceId);
    await fleet.waitStarted();
  } catch (error) {
    await fleet.stop();
    throw error;
  }
  return fleet;
}

/**
 * The publisher Kubo node as a device host reaches it: its peer id and its swarm addresses on the
 * bridge (services.sh with SHOAL_BIND_ADDRESS). undefined when it has none there (offline).
 */
async function publisherPeer(
  kuboUrl: string,
  gateway: string,
): Promise<{ id: string; addrs: string[] } | undefined> {
  const response = await fetch(`${kuboUrl}/api/v0/id`, {
    method: "POST",
    signal: AbortSignal.timeout(5_000),
  });
  if (!response.ok) throw new FleetError(`the Kubo node at ${kuboUrl} answered ${response.status} to id`);
  const id = (await response.json()) as { ID: string; Addresses: string[] | null };
  const addrs = (id.Addresses ?? [])
    .filter((a) => a.startsWith(`/ip4/${gateway}/tcp/`))
    .map((a) => a.replace(/\/p2p\/.*$/, ""));
  return addrs.length > 0 ? { id: id.ID, addrs } : undefined;
}

/**
 * Enrolls placeholder devices (account 0, minimum stake, no worker) until the next id is at least
 * `firstDeviceId`, so that this fleet's ids differ from another fleet's on the same Docker host.
 */
async function reserveDeviceIds(
  c: ReturnType<typeof connectContracts>,
  firstDeviceId: number,
  say: (line: string) => void,
): Promise<void> {
  const count = Number(await c.devices.deviceCount());
  const needed = firstDeviceId - 1 - count;
  if (needed <= 0) return;
  say(`reserving device ids 1..${firstDeviceId - 1} with ${needed} placeholder enrollment(s)`);
  const owner = c.as(0);
  const { minStake } = await c.devices.parameters();
  const registry = await c.devices.getAddress();
  await (await owner.token.approve(registry, minStake * BigInt(needed))).wait();
  for (let i = 0; i < needed; i++) {
    await (
      await owner.devices.enroll(
        await owner.signer.getAddress(),
        "placeholder/none",
        1,
        1,
        [],
        "/ip4/127.0.0.1/tcp/0",
        minStake,
      )
    ).wait();
  }
}

/** Publishes the demo apps with app:publish and deploys each with app:deploy. */
export async function deployDemo(
  fleet: Fleet,
  apps: string[],
  say: (line: string) => void = () => undefined,
): Promise<Record<string, number>> {
  for (const app of apps) {
    const manifest = path.join(ROOT, "apps", app, "shoal.yaml");
    if (!existsSync(manifest)) throw new FleetError(`demo app "${app}": ${manifest} does not exist`);
    say(`publishing ${app} (app:publish)`);
    await runTask(["app:publish", "--manifest", manifest], fleet.taskEnv);
    say(`deploying ${app} (app:deploy)`);
    const out = await runTask(["app:deploy", "--app", app], fleet.taskEnv);
    const id = /deployment (\d+):/.exec(out);
    if (!id) throw new FleetError(`app:deploy printed no deployment id: ${out.trim()}`);
    fleet.state.demo[app] = Number(id[1]);
    say(`  ${out.trim().split("\n").at(-1)}`);
  }
  fleet.saveState();
  return fleet.state.demo;
}
