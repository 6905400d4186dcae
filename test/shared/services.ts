// Where the real services of a test run live, and a check that each one answers, so a test that
// needs a stopped service fails with one sentence naming it instead of a socket error.
import { JsonRpcProvider } from "ethers";
import Docker from "dockerode";
import mqtt from "mqtt";
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

/**
 * Clears the retained device presences (`shoal/v1/devices/+/status`) that earlier test files left
 * on the shared broker. Every file deploys its own registries, so their device ids start at 1 again:
 * a worker's election subscribes to every presence and verifies each against its own registry, and
 * another run's "device 1 online" (signed by another operator, or by a device not enrolled here) is
 * dropped and counted as forged or unknown-device. A file that asserts a worker's drop counts starts
 * from a broker that holds only its own fleet's presences. Resolves with how many it cleared.
 */
export async function clearRetainedPresences(mqttUrl: string, settleMs = 500): Promise<number> {
  const client = await mqtt.connectAsync(mqttUrl, {
    clientId: `clear-presences-${process.pid}-${Date.now()}`,
  });
  try {
    const topics = new Set<string>();
    client.on("message", (topic, payload, packet) => {
      if (packet.retain && payload.length > 0) topics.add(topic);
    });
    await client.subscribeAsync("shoal/v1/devices/+/status", { qos: 1 });
    // The broker sends the retained messages right after the SUBACK; none comes after a pause.
    await new Promise((r) => setTimeout(r, settleMs));
    await client.unsubscribeAsync("shoal/v1/devices/+/status");
    for (const topic of topics) await client.publishAsync(topic, "", { qos: 1, retain: true });
    return topics.size;
  } finally {
    await client.endAsync();
  }
}
