// Deployment networks (issue 15) that a test run's workers made on the machine's shared Docker
// Engine: workers remove a network with the last container they stop, but tests that remove their
// containers themselves leave the network behind, and the engine's address pools hold about 30
// bridges. After the run, remove the Shoal networks this run made (created since it started) that
// no container uses; another run's are in use or younger than ours would be recreated when needed.
import Docker from "dockerode";
import { serviceUrls } from "./services";

// The test process's start: this module is only loaded in the run's last hook.
const STARTED = Date.now() - process.uptime() * 1000;

export async function removeLeftoverNetworks(): Promise<void> {
  const docker = new Docker({ socketPath: serviceUrls().dockerSocket });
  let networks: Docker.NetworkInspectInfo[];
  try {
    networks = await docker.listNetworks({ filters: { label: ["io.shoal.managed=true"] } });
  } catch {
    return; // no engine: no networks
  }
  for (const network of networks) {
    if (Date.parse(network.Created) < STARTED) continue;
    try {
      const info = await docker.getNetwork(network.Id).inspect();
      if (Object.keys(info.Containers ?? {}).length === 0) await docker.getNetwork(network.Id).remove();
    } catch {
      // gone, or joined meanwhile: leave it
    }
  }
}
