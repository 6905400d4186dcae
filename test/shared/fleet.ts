// Fleets in tests: the device ids a new fleet may take on a Docker host that other fleets share.
import type Docker from "dockerode";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Fleet } from "../../scripts/fleet/fleet";

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
