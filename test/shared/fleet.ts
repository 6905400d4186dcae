// Fleets in tests: the device ids a new fleet may take on a Docker host that other fleets share.
import type Docker from "dockerode";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Fleet } from "../../scripts/fleet/fleet";
import { isolationUnavailable, readHosts } from "../../scripts/fleet/hosts";

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
