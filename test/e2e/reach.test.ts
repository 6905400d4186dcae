// Apps the network can reach, tenants that cannot reach each other, health checks that run
// (issue 15), end to end on a two-device fleet: each device a host of its own (network namespace,
// Docker Engine, Kubo node, worker) when this machine allows it. Every check is one a user would
// make: `app:endpoints --json`, an HTTP request from the uplink, nc from inside containers,
// the placement's state on chain.
import { expect } from "chai";
import Docker from "dockerode";
import mqtt from "mqtt";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { deployDemo, fleetDocker, type Fleet, type FleetDocker } from "../../scripts/fleet/fleet";
import { connectContracts, livePlacements, placementsOfDeployment, runTask } from "../../scripts/fleet/chain";
import { runHardhat } from "../../scripts/lib/local-chain";
import { FAILURE_CODES, PLACEMENT_STATES } from "../../workers/src";
import type { EndpointRow } from "../../tasks/app";
import { deviceNetwork, printFleetOnFailure, startTestFleet } from "../shared/fleet";
import { freePort, PrivateBroker, waitFor } from "../shared/processes";
import { requireChain, requireDocker, requireKubo, serviceUrls } from "../shared/services";

const urls = serviceUrls();
const ROOT = path.resolve(__dirname, "../..");
const TEST_LABEL = "dev.shoal.test";
const RUN_ID = `reach-${process.pid}-${Date.now()}`;

/** A loadgen that holds no load: a tenant's container to look around from. */
function loadgenManifest(name: string, egress: "none" | "outbound"): string {
  return `name: ${name}
version: "1.0.0"
images: { linux/amd64: { ref: "shoal/demo-loadgen:1.0.0" } }
env: { PROFILE: steady, CPU_MILLICORES: "0", MEMORY_MIB: "0" }
resources: { cpu: { min: 50m, max: 200m }, memory: { min: 16Mi, max: 64Mi } }
restartPolicy: always
egress: ${egress}
writablePaths: [{ path: /tmp, size: 1Mi }]
`;
}

describe("e2e: endpoints, tenant isolation, egress and health checks on isolated devices (issue 15)", function () {
  this.timeout(240_000);

  const docker = new Docker({ socketPath: urls.dockerSocket });
  const network = deviceNetwork();
  let dir: string;
  let broker: PrivateBroker;
  let fleet: Fleet;
  let engines: FleetDocker;
  const log: string[] = [];
  let webDeployment: number;
  const deployments: Record<string, number> = {};
  let record: Parameters<typeof connectContracts>[1];

  const task = (...args: string[]) => runTask(args, fleet.taskEnv);
  const endpoints = async (app: string): Promise<EndpointRow[]> =>
    JSON.parse(await task("app:endpoints", "--app", app, "--json", "--mqtt", broker.url)) as EndpointRow[];
  const withContracts = async <T>(fn: (c: ReturnType<typeof connectContracts>) => Promise<T>) => {
    const c = connectContracts(urls.rpcUrl, record);
    try {
      return await fn(c);
    } finally {
      c.close();
    }
  };
  /** Publishes a manifest written here and deploys it, pinned to one device of the fleet. */
  async function deploy(name: string, text: string, deviceIndex: number): Promise<number> {
    const file = path.join(dir, `${name}.yaml`);
    await writeFile(file, text);
    await task("app:publish", "--manifest", file);
    const out = await task(
      "app:deploy",
      "--app",
      name,
      "--replicas",
      "1",
      "--labels",
      `fleet=device-${deviceIndex}`,
    );
    deployments[name] = Number(/deployment (\d+):/.exec(out)![1]);
    return deployments[name];
  }
  /** The running container of a deployment on a device, as its engine shows it. */
  async function containerOf(deploymentId: number, deviceId: number): Promise<Docker.ContainerInspectInfo> {
    return waitFor(
      `a running container of deployment ${deploymentId} on device ${deviceId}`,
      async () => {
        const engine = engines.forDevice(deviceId);
        const [c] = await engine.listContainers({
          filters: {
            label: ["io.shoal.managed=true", `io.shoal.deployment=${deploymentId}`],
            status: ["running"],
          },
        });
        return c && fleet.state.devices.some((d) => c.Labels["io.shoal.device"]?.endsWith(`-${d.deviceId}`))
          ? engine.getContainer(c.Id).inspect()
          : undefined;
      },
      90_000,
      500,
    );
  }
  /** Runs a command inside a running container; its exit code and output. */
  async function exec(deviceId: number, containerId: string, cmd: string[]) {
    const container = engines.forDevice(deviceId).getContainer(containerId);
    const e = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const stream = await e.start({});
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    return { exitCode: (await e.inspect()).ExitCode, output: Buffer.concat(chunks).toString("latin1") };
  }
  /**
   * An HTTP/1.0 GET with busybox nc (the demo images' busybox wget crashes with -q or -T): exit 0
   * and the response when it connects, 1 when it cannot connect within 3 s.
   */
  const httpGet = (host: string, port: number) => [
    "sh",
    "-c",
    `printf 'GET /info.json HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${port}`,
  ];
  const addressOf = (info: Docker.ContainerInspectInfo) =>
    Object.values(info.NetworkSettings.Networks)[0]!.IPAddress;

  before(async function () {
    this.timeout(420_000);
    await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls)]);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-reach-"));
    broker = new PrivateBroker(await freePort(), dir, undefined, network?.gateway);
    await broker.start();
    const deployed = await runHardhat(["run", "scripts/deploy.ts"], {
      SHOAL_DEPLOYMENTS_DIR: dir,
      SHOAL_KUBO_URL: urls.kuboUrl,
      SHOAL_HEARTBEAT_TTL: "20",
    });
    expect(deployed.status, deployed.stderr).to.equal(0);
    record = JSON.parse(await readFile(path.join(dir, "localhost.json"), "utf8"));
    fleet = await startTestFleet({
      devices: 2,
      urls,
      mqttUrl: broker.url,
      dir,
      docker,
      network,
      log,
    });
    engines = fleetDocker(fleet.state);
    webDeployment = (await deployDemo(fleet, ["demo-web"], (line) => log.push(line)))["demo-web"];
    await withContracts((c) =>
      waitFor(
        "demo-web's 2 replicas Running",
        async () => {
          const live = await livePlacements(c, webDeployment);
          return live.length === 2 && live.every((p) => p.state === "Running");
        },
        120_000,
        500,
      ),
    );
  });

  afterEach(function () {
    printFleetOnFailure(this.currentTest, fleet, log, { progress: 20, device: 25 });
  });

  after(async function () {
    this.timeout(120_000);
    for (const engine of fleet ? fleet.state.devices.map((d) => engines.forDevice(d.deviceId)) : []) {
      const mine = await engine
        .listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${RUN_ID}`] } })
        .catch(() => []);
      await Promise.all(mine.map((c) => engine.getContainer(c.Id).remove({ force: true })));
    }
    await fleet?.stop();
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("lists both replicas' endpoints, each answering from the uplink with its version", async () => {
    const rows = await waitFor(
      "2 endpoints of demo-web",
      async () => {
        const r = await endpoints("demo-web");
        return r.length === 2 ? r : undefined;
      },
      60_000,
      1000,
    );
    const devices = fleet.state.devices;
    expect(new Set(rows.map((r) => r.deviceId))).to.deep.equal(
      new Set(devices.map((d) => String(d.deviceId))),
    );
    for (const row of rows) {
      const device = devices.find((d) => String(d.deviceId) === row.deviceId)!;
      // Isolated: published on the device's own address, which the uplink reaches; shared: loopback.
      expect(row.deviceAddress).to.equal(device.host?.address ?? "127.0.0.1");
      expect(row).to.include({ app: "demo-web", appVersion: "1.0.0", protocol: "tcp", containerPort: 8080 });
      expect(row.deploymentId).to.equal(String(webDeployment));
      const response = await fetch(`http://${row.deviceAddress}:${row.hostPort}/info.json`, {
        signal: AbortSignal.timeout(5000),
      });
      expect(response.status).to.equal(200);
      const info = (await response.json()) as { name: string; version: string; hostname: string };
      expect(info).to.include({ name: "demo-web", version: "1.0.0" });
      // The answer comes from that placement's container on that device.
      const container = await containerOf(webDeployment, device.deviceId);
      expect(container.Config.Labels["io.shoal.placement"]).to.equal(row.placementId);
      expect(info.hostname).to.equal(container.Config.Hostname);
    }
  });

  it("keeps another tenant out of demo-web's network, lets the same deployment in, and enforces egress", async () => {
    const [first] = fleet.state.devices;
    const web = await containerOf(webDeployment, first.deviceId);
    const webAddress = addressOf(web);
    const outbound = await containerOf(
      await deploy("tenant-out", loadgenManifest("tenant-out", "outbound"), 1),
      first.deviceId,
    );
    const sealed = await containerOf(
      await deploy("tenant-none", loadgenManifest("tenant-none", "none"), 1),
      first.deviceId,
    );
    // Each deployment has a network of its own; egress none's is internal.
    expect(web.HostConfig.NetworkMode).to.not.equal(outbound.HostConfig.NetworkMode);
    expect(
      (await engines.forDevice(first.deviceId).getNetwork(sealed.HostConfig.NetworkMode!).inspect()).Internal,
    ).to.equal(true);

    const fromOtherTenant = await exec(first.deviceId, outbound.Id, httpGet(webAddress, 8080));
    // nc's own verdict (1: could not connect), not a crash of the tool.
    expect(fromOtherTenant.exitCode, `another tenant reached demo-web: ${fromOtherTenant.output}`).to.equal(
      1,
    );
    expect(fromOtherTenant.output).to.not.include('"version"');

    // A second replica of the same deployment on this device joins the same network: a container
    // from demo-web's own image there, as the worker would start it.
    const engine = engines.forDevice(first.deviceId);
    const sibling = await engine.createContainer({
      Image: web.Config.Image,
      Entrypoint: httpGet(webAddress, 8080),
      Labels: { [TEST_LABEL]: RUN_ID },
      HostConfig: { NetworkMode: web.HostConfig.NetworkMode, ReadonlyRootfs: true, CapDrop: ["ALL"] },
    });
    await sibling.start();
    const { StatusCode } = (await sibling.wait()) as { StatusCode: number };
    const siblingLog = (await sibling.logs({ stdout: true, stderr: true })).toString("latin1");
    expect(StatusCode, siblingLog).to.equal(0);
    expect(siblingLog).to.include('"version":"1.0.0"');

    // Egress: the uplink is the chain's forwarder on the device network's gateway. Without device
    // hosts (a machine that cannot make them) no uplink address exists that a container could
    // reach, and the internal network asserted above is what enforces egress none.
    if (network !== undefined) {
      const nc = httpGet(network.gateway, Number(new URL(urls.rpcUrl).port));
      const out = await exec(first.deviceId, outbound.Id, nc);
      expect(out.exitCode, `egress outbound could not connect: ${out.output}`).to.equal(0);
      const none = await exec(first.deviceId, sealed.Id, nc);
      expect(none.exitCode, `egress none connected to the uplink: ${none.output}`).to.equal(1);
    }
  });

  it("restarts a replica whose health check always fails, then reports it HealthCheckFailed with no endpoint", async () => {
    const web = await readFile(path.join(ROOT, "apps/demo-web/shoal.yaml"), "utf8");
    const sick = web
      .replace("name: demo-web", "name: sick-web")
      .replace(
        /healthCheck:[^]*$/,
        "healthCheck:\n  httpGet: { port: 8080, path: /missing }\n  intervalSeconds: 1\n  timeoutSeconds: 1\n  retries: 1\n",
      );
    const second = fleet.state.devices[1];
    const deploymentId = await deploy("sick-web", sick, 2);
    const placementId = await withContracts((c) =>
      waitFor(`a claim of deployment ${deploymentId}`, async () => {
        const id = await c.placements.activePlacementOf(deploymentId, second.deviceId);
        return id === 0n ? undefined : id;
      }),
    );
    const placement = await withContracts((c) =>
      waitFor(
        `placement ${placementId} Failed`,
        async () => {
          const p = await c.placements.placement(placementId);
          return PLACEMENT_STATES[Number(p.state)] === "Failed" ? p : undefined;
        },
        120_000,
        1000,
      ),
    );
    expect(FAILURE_CODES[Number(placement.code)]).to.equal("HealthCheckFailed");
    const restarts = (await readFile(second.logFile, "utf8"))
      .split("\n")
      .filter(
        (line) =>
          line.includes("restarting an unhealthy replica") && line.includes(`"placementId":"${placementId}"`),
      );
    expect(restarts.length, "restarts before Failed").to.equal(2);
    expect(await endpoints("sick-web")).to.deep.equal([]);
    await task("app:stop", "--app", "sick-web");
  });

  it("withdraws the endpoint of a replica removed by a scale-down before the replica stops", async () => {
    expect(await endpoints("demo-web")).to.have.length(2);
    // When each endpoint topic is cleared, as a subscriber sees it (app:endpoints takes seconds to start).
    const cleared = new Map<string, number>();
    const watcher = await mqtt.connectAsync(broker.url, { clientId: `reach-${process.pid}`, clean: true });
    watcher.on("message", (topic, payload) => {
      if (payload.length === 0) cleared.set(topic.split("/").at(-1)!, Date.now());
    });
    await watcher.subscribeAsync("shoal/v1/devices/+/endpoints/+", { qos: 1 });
    try {
      await task("app:scale", "--app", "demo-web", "--replicas", "1");
      let releasedAt = 0;
      const kept = await withContracts((c) =>
        waitFor(
          "one demo-web placement released",
          async () => {
            const all = await placementsOfDeployment(c, webDeployment);
            const live = all.filter((p) => p.state === "Running" || p.state === "Claimed");
            releasedAt = Date.now();
            return live.length === 1 ? { live, gone: all.find((p) => p.state === "Released")! } : undefined;
          },
          60_000,
          100,
        ),
      );
      const gone = String(kept.gone.placementId);
      // The removal is the worker's own: no test step clears the topic or stops the container.
      const at = await waitFor(
        "the removed endpoint cleared on MQTT",
        async () => cleared.get(gone),
        30_000,
        50,
      );
      console.log(`      endpoint cleared ${at - releasedAt} ms after the release was seen on chain`);
      // Drained first: the worker published the withdrawal before it stopped the container.
      const device = fleet.state.devices.find((d) => d.deviceId === kept.gone.deviceId)!;
      const lines = await waitFor(
        `device ${device.deviceId}'s worker stopping placement ${gone}`,
        async () => {
          const mine = (await readFile(device.logFile, "utf8"))
            .split("\n")
            .filter((line) => line.includes(`"placementId":"${gone}"`));
          return mine.some((line) => line.includes("stopping a replica")) ? mine : undefined;
        },
        30_000,
        250,
      );
      const withdrawn = lines.findIndex((line) => line.includes("endpoints withdrawn"));
      const stopping = lines.findIndex((line) => line.includes("stopping a replica"));
      expect(withdrawn, "the endpoint withdrawn in the worker's log").to.be.at.least(0);
      expect(withdrawn, "withdrawn before the replica was stopped").to.be.below(stopping);
      const rows = await endpoints("demo-web");
      expect(rows.map((r) => r.placementId)).to.deep.equal([String(kept.live[0].placementId)]);
    } finally {
      await watcher.endAsync();
    }
  });
});
