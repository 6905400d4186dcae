// Fleets in tests: the device ids a new fleet may take on a Docker host that other fleets share.
import type Docker from "dockerode";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { startFleet, tail, type Fleet } from "../../scripts/fleet/fleet";
import { isolationUnavailable, readHosts } from "../../scripts/fleet/hosts";
import type { ServiceUrls } from "./services";

const ROOT = path.resolve(__dirname, "../..");

/**
 * Workers label containers (and name cgroups) with a device key of chain, registry and id, so fleets
 * of different deployments share one Docker host. Workers before that used the bare id: against
 * such containers this fleet takes ids above theirs, by enrolling placeholders first.
 */
export function firstFreeDeviceId(docker: Docker): Promise<number> {
  return docker.listContainers({ all: true, filters: { label: ["io.shoal.managed=true"] } }).then((cs) => {
    const used = cs.map((c) => Number(c.Labels["io.shoal.device"])).filter(Number.isInteger);
    for (const dir of ["/sys/fs/cgroup/cpu/shoal", "/sys/fs/cgroup/shoal"])
      if (existsSync(dir))
        for (const name of readdirSync(dir)) {
          const m = /^device-(\d+)$/.exec(name);
          if (m) used.push(Number(m[1]));
        }
    const recorded = path.join(ROOT, ".shoal/fleet/fleet.json");
    if (existsSync(recorded))
      for (const d of (JSON.parse(readFileSync(recorded, "utf8")) as Fleet["state"]).devices)
        used.push(d.deviceId);
    return Math.max(1, ...used.map((n) => n + 1));
  });
}

/**
 * The device network of this test run (scripts/test.sh makes it with `fleet net-up` and starts the
 * services on its gateway, SHOAL_BIND_ADDRESS), for fleets of isolated device hosts. undefined when
 * this machine cannot make device hosts (not root, no ip/nsenter/dockerd): the fleet then runs in
 * shared mode. Throws when it could but the run made no network: a fleet test must not silently
 * test the fallback instead.
 */
export function deviceNetwork(): { home: string; gateway: string } | undefined {
  if (isolationUnavailable() !== undefined) return undefined;
  const home = process.env.SHOAL_HOME ?? path.join(ROOT, ".shoal");
  const network = readHosts(home).network;
  if (network === undefined || process.env.SHOAL_BIND_ADDRESS !== network.gateway)
    throw new Error(
      `no device network in ${home}/hosts.json matches SHOAL_BIND_ADDRESS=${process.env.SHOAL_BIND_ADDRESS ?? ""}; ` +
        "run the tests through npm test, or make one with `fleet net-up` and start the services with SHOAL_BIND_ADDRESS set to it",
    );
  return { home, gateway: network.gateway };
}

/**
 * A fleet of `devices` for an end-to-end test: the run's chain, Kubo and engine, the test's own
 * broker, debug logs, and isolated device hosts when the run made a device network. Progress lines
 * go to `log` (printed by `printFleetOnFailure`).
 */
export async function startTestFleet(options: {
  devices: number;
  urls: ServiceUrls;
  mqttUrl: string;
  /** The test's folder: scripts/deploy.ts wrote localhost.json there; the fleet's data goes below. */
  dir: string;
  docker: Docker;
  network: { home: string } | undefined;
  log: string[];
}): Promise<Fleet> {
  const { urls, network, log } = options;
  return startFleet({
    devices: options.devices,
    rpcUrl: urls.rpcUrl,
    kuboUrl: urls.kuboUrl,
    mqttUrl: options.mqttUrl,
    dockerSocket: urls.dockerSocket,
    deploymentsFile: path.join(options.dir, "localhost.json"),
    dataDir: path.join(options.dir, "fleet"),
    firstDeviceId: await firstFreeDeviceId(options.docker),
    logLevel: "debug",
    onProgress: (line) => log.push(line),
    ...(network ? { isolated: { home: network.home } } : {}),
  });
}

/** After a failed test: the fleet's last progress lines and the tail of each device's log. */
export function printFleetOnFailure(
  test: Mocha.Test | undefined,
  fleet: Fleet | undefined,
  log: readonly string[],
  lines = { progress: 20, device: 15 },
): void {
  if (test?.state !== "failed") return;
  console.log(`--- fleet progress ---\n${log.slice(-lines.progress).join("\n")}`);
  for (const d of fleet?.state.devices ?? [])
    console.log(`--- device ${d.deviceId} ---\n${tail(d.logFile, lines.device)}`);
}
