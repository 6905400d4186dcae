// Where the real services of a test run live, and a check that each one answers, so a test that
// needs a stopped service fails with one sentence naming it instead of a socket error.
import { JsonRpcProvider } from "ethers";
import Docker from "dockerode";
import net from "node:net";
import { removeDeviceCgroup } from "../../workers/src";

export interface ServiceUrls {
  rpcUrl: string;
  kuboUrl: string;
  mqttUrl: string;
  dockerSocket: string;
}

/** URLs as scripts/services.sh exports them (see `scripts/services.sh env`), with its defaults. */
export function serviceUrls(env: NodeJS.ProcessEnv = process.env): ServiceUrls {
  const dockerHost = env.DOCKER_HOST ?? "unix:///var/run/docker.sock";
  return {
    rpcUrl: env.SHOAL_RPC_URL ?? "http://127.0.0.1:8545",
    kuboUrl: env.SHOAL_KUBO_URL ?? "http://127.0.0.1:5401",
    mqttUrl: env.SHOAL_MQTT_URL ?? "mqtt://127.0.0.1:1883",
    dockerSocket: dockerHost.replace(/^unix:\/\//, ""),
  };
}

const HINT = "start the local services with `bash scripts/services.sh up`";

export class ServiceUnavailableError extends Error {
  constructor(service: string, url: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`${service} at ${url} is not reachable (${reason}); ${HINT}`, { cause });
    this.name = "ServiceUnavailableError";
  }
}

async function probe(service: string, url: string, check: () => Promise<unknown>): Promise<void> {
  try {
    await check();
  } catch (error) {
    throw new ServiceUnavailableError(service, url, error);
  }
}

function tcpConnect(host: string, port: number, timeoutMs = 2_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.end();
      resolve();
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export const requireChain = (urls = serviceUrls()) =>
  probe("The Hardhat node", urls.rpcUrl, async () => {
    const provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true });
    try {
      await provider.send("eth_chainId", []);
    } finally {
      provider.destroy();
    }
  });

export const requireKubo = (urls = serviceUrls()) =>
  probe("The Kubo RPC API", urls.kuboUrl, async () => {
    const response = await fetch(`${urls.kuboUrl}/api/v0/id`, {
      method: "POST",
      signal: AbortSignal.timeout(2_000),
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
  });

export const requireMqtt = (urls = serviceUrls()) =>
  probe("The MQTT broker", urls.mqttUrl, () => {
    const url = new URL(urls.mqttUrl);
    return tcpConnect(url.hostname, Number(url.port || 1883));
  });

export const requireDocker = (urls = serviceUrls()) =>
  probe("The Docker Engine", `unix://${urls.dockerSocket}`, () =>
    new Docker({ socketPath: urls.dockerSocket }).ping(),
  );

/** Removes what a test's worker left of device `deviceKey`: its containers (by label) and its cgroup. */
export async function removeDeviceLeftovers(docker: Docker, deviceKey: string): Promise<void> {
  const leftovers = await docker.listContainers({
    all: true,
    filters: { label: [`io.shoal.device=${deviceKey}`] },
  });
  await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  await removeDeviceCgroup({ deviceId: deviceKey });
}
