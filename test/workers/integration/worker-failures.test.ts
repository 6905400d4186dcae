// The failure paths of a deploy, end to end against the real services: a Hardhat node, Kubo,
// Mosquitto and Docker, with one shoal-worker process whose RPC and Kubo connections go through
// proxies this test can cut. Each broken version ends in the failure code the reconciler documents,
// on chain and on MQTT; a start that Docker refuses is retried with a growing backoff; an outage of
// the chain RPC and of Kubo in the middle of a deploy is ridden out by the worker alone; /metrics
// tells what happened.
import { expect } from "chai";
import Docker from "dockerode";
import { JsonRpcProvider, type ContractTransactionResponse } from "ethers";
import mqtt from "mqtt";
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  bandToChain,
  canonicalManifestBytes,
  createKuboContentStore,
  exportImage,
  FAILURE_CODES,
  parseManifest,
  PLACEMENT_STATES,
  RELEASE_REASONS,
  placementIdOf,
  resourceBand,
} from "../../../workers/src";
import {
  AppRegistry__factory,
  DeviceRegistry__factory,
  PlacementRegistry__factory,
  type AppRegistry,
  type PlacementRegistry,
} from "../../../typechain-types";
import { devWallet, runHardhat } from "../../../scripts/lib/local-chain";
import { deployInto, deviceKeyOf, enrollArgs, enrolledId, ok, type DeploymentRecord } from "../../shared/cli";
import { freePort, testWorker, waitFor, writeWorkerConfig, WorkerProcess } from "../../shared/processes";
import {
  clearRetainedPresences,
  removeDeviceLeftovers,
  requireChain,
  requireDocker,
  requireKubo,
  requireMqtt,
  serviceUrls,
} from "../../shared/services";
import { otherPlatformTar, savedTar } from "../../shared/image-tars";
import { TcpProxy } from "../../shared/tcp-proxy";

const urls = serviceUrls();
const OPERATOR = 7; // hardhat account of this test's device owner and operator
const PLATFORM = "linux/amd64";
const LABEL = "role=failures"; // every deployment here requires it: only this device claims them
const EVICT_OPERATOR = 8; // the second device's owner and operator (the eviction test)
const EVICT_LABEL = "role=eviction";
const WEB_IMAGE = "shoal/demo-web:1.0.0";
const LOADGEN_IMAGE = "shoal/demo-loadgen:1.0.0";

/** A small manifest; `extra` lines are appended (restartPolicy, env, command...). */
function manifestYaml(name: string, image: string, memory: string, extra: string[] = []): string {
  return [
    "schemaVersion: 1",
    `name: ${name}`,
    'version: "1.0.0"',
    "images:",
    `  ${PLATFORM}:`,
    `    ref: ${image}`,
    "resources:",
    "  cpu: { min: 50m, max: 500m }",
    `  memory: { min: 16Mi, max: ${memory} }`,
    "writablePaths:",
    "  - path: /tmp",
    "    size: 1Mi",
    ...extra,
    "",
  ].join("\n");
}

interface LogLine {
  level: number;
  time: number;
  msg: string;
  placementId?: string;
  code?: string;
  reason?: string;
  retryInMs?: number;
  action?: string;
}

describe("worker failure paths: failure codes, backoff, RPC and Kubo outages, metrics", function () {
  this.timeout(300_000);

  const docker = new Docker({ socketPath: urls.dockerSocket });
  let dir: string;
  let record: DeploymentRecord;
  let provider: JsonRpcProvider;
  let apps: AppRegistry;
  let placements: PlacementRegistry;
  let deviceId: string;
  let appId: bigint;
  let versions = 0;
  let rpc: { proxy: TcpProxy; url: string };
  let kubo: { proxy: TcpProxy; url: string };
  let worker: WorkerProcess;
  let metricsPort: number;
  let subscriber: mqtt.MqttClient;
  /** The last retained state of each placement on MQTT, by placement id. */
  const mqttStates = new Map<string, { state: string; failure: string | null }>();
  /** Image ids this test made Docker load (through the worker), removed in after(). */
  const imagesToRemove = new Set<string>();
  const cids: Record<string, string> = {};
  let decisionsOnMqtt = 0;
  const tagsBefore = new Set<string>();

  const cli = (...args: string[]) =>
    runHardhat(args, { SHOAL_DEPLOYMENTS_DIR: dir, SHOAL_KUBO_URL: urls.kuboUrl });
  const deviceKey = () => deviceKeyOf(record, deviceId);
  const containersOf = (placementId: string) =>
    docker.listContainers({
      all: true,
      filters: { label: [`io.shoal.device=${deviceKey()}`, `io.shoal.placement=${placementId}`] },
    });
  const mined = async (tx: Promise<ContractTransactionResponse>) => void (await (await tx).wait());
  const stateOf = async (placementId: string) =>
    PLACEMENT_STATES[Number(await placements.placementState(BigInt(placementId)))];
  const logLines = (): LogLine[] => worker.jsonLines<LogLine>();

  /** Adds content to the real Kubo node (not through the proxy): the developer's side. */
  const add = async (content: Uint8Array | NodeJS.ReadableStream): Promise<string> =>
    (
      await createKuboContentStore({ url: urls.kuboUrl }).add(
        content instanceof Uint8Array ? content : (content as AsyncIterable<Uint8Array>),
      )
    ).cid;

  /**
   * Publishes a version (manifest bytes as given, or the canonical form of `yaml` naming
   * `imageCid`) and deploys one replica that only this test's device may claim. Returns the id of
   * the deployment's first placement, which this device will claim.
   */
  async function deploy(yaml: string, imageCid: string, manifestBytes?: Uint8Array): Promise<string> {
    const manifest = parseManifest(yaml);
    const manifestCid = await add(
      manifestBytes ?? canonicalManifestBytes(manifest, { [PLATFORM]: imageCid }),
    );
    await mined(
      apps.publishVersion(appId, manifestCid, [PLATFORM], [imageCid], bandToChain(resourceBand(manifest))),
    );
    const version = ++versions;
    const deploymentId = await apps.createDeployment.staticCall(appId, version, 1, [LABEL]);
    await mined(apps.createDeployment(appId, version, 1, [LABEL]));
    return placementIdOf(deploymentId, 1).toString();
  }

  /** Waits for the placement to end Failed on chain and on MQTT; returns the code. */
  async function failureOf(placementId: string): Promise<{ chain: string; mqtt: string | null }> {
    await waitFor(
      `placement ${placementId} Failed on chain`,
      async () => (await stateOf(placementId)) === "Failed",
      90_000,
    );
    const onChain = FAILURE_CODES[Number((await placements.placement(BigInt(placementId))).code)];
    const onMqtt = await waitFor(
      `placement ${placementId} Failed on MQTT`,
      async () => (mqttStates.get(placementId)?.state === "Failed" ? mqttStates.get(placementId) : undefined),
      30_000,
    );
    return { chain: onChain, mqtt: onMqtt.failure };
  }

  /** The reason the worker logged when it reported the placement failed. */
  const reportedReason = (placementId: string) =>
    logLines().find((l) => l.msg === "reporting placement failed" && l.placementId === placementId)?.reason;

  /** Stops a deployment (the app owner's call) so that the device does not claim it again. */
  const stopDeployment = (placementId: string) => mined(apps.stopDeployment(BigInt(placementId) >> 32n));

  async function scrape(): Promise<Map<string, number>> {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const values = new Map<string, number>();
    for (const line of text.split("\n")) {
      if (line.startsWith("#") || line.trim() === "") continue;
      const at = line.lastIndexOf(" ");
      // Drop the device label every series carries, so keys read like the metric names in the docs.
      const key = line
        .slice(0, at)
        .replace(/device="[^"]*",?/, "")
        .replace(/\{\}$/, "")
        .replace(/,\}$/, "}");
      values.set(key, Number(line.slice(at + 1)));
    }
    return values;
  }

  before(async function () {
    await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls), requireMqtt(urls)]);
    // The /metrics test counts every message the worker dropped: no presence of another run's fleet.
    await clearRetainedPresences(urls.mqttUrl);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-failures-"));
    record = await deployInto(dir);
    provider = new JsonRpcProvider(urls.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
    const owner = devWallet(0).connect(provider);
    apps = AppRegistry__factory.connect(record.contracts.AppRegistry.address, owner);
    placements = PlacementRegistry__factory.connect(record.contracts.PlacementRegistry.address, provider);
    appId = await apps.registerApp.staticCall("failures");
    await mined(apps.registerApp("failures"));

    deviceId = enrolledId(
      ok(await cli(...enrollArgs(OPERATOR, { stake: "300", cpu: "2", memory: "1Gi", labels: LABEL }))),
    );

    for (const [name, ref] of [
      ["web", WEB_IMAGE],
      ["loadgen", LOADGEN_IMAGE],
    ]) {
      const exported = await exportImage(docker, ref, PLATFORM);
      cids[name] = await add(exported.stream);
    }
    for (const image of await docker.listImages())
      for (const tag of image.RepoTags ?? []) tagsBefore.add(tag);

    subscriber = await mqtt.connectAsync(urls.mqttUrl, { clientId: `failures-test-${process.pid}` });
    subscriber.on("message", (topic, payload) => {
      if (topic === `shoal/v1/devices/${deviceId}/resources`) decisionsOnMqtt++;
      const match = /^shoal\/v1\/placements\/(\d+)\/state$/.exec(topic);
      if (!match || payload.length === 0) return;
      const body = JSON.parse(payload.toString()) as {
        chainId: number;
        state: string;
        failure: string | null;
      };
      if (body.chainId === record.chainId) mqttStates.set(match[1], body);
    });
    await subscriber.subscribeAsync(
      ["shoal/v1/placements/+/state", `shoal/v1/devices/${deviceId}/resources`],
      { qos: 1 },
    );

    rpc = TcpProxy.forUrl(urls.rpcUrl, await freePort());
    kubo = TcpProxy.forUrl(urls.kuboUrl, await freePort());
    await rpc.proxy.start();
    await kubo.proxy.start();
    metricsPort = await freePort();
    const config = await writeWorkerConfig(dir, { keeper: { enabled: false } });
    await mkdir(path.join(dir, "worker"), { recursive: true });
    worker = testWorker({
      dir,
      rpcUrl: rpc.url,
      mqttUrl: urls.mqttUrl,
      kuboUrl: kubo.url,
      operatorKey: devWallet(OPERATOR).privateKey,
      deviceId,
      dataDir: path.join(dir, "worker"),
      env: { SHOAL_DOCKER_SOCKET: urls.dockerSocket, SHOAL_METRICS_PORT: String(metricsPort) },
      args: ["--config", config],
    });
    worker.start();
    await waitFor("the worker to start", async () => worker.log.includes("worker started"), 60_000);
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") console.log(`--- worker log ---\n${worker?.tail(60)}`);
  });

  after(async function () {
    await worker?.stop();
    await subscriber?.endAsync();
    await rpc?.proxy.cut();
    await kubo?.proxy.cut();
    provider?.destroy();
    if (record && deviceId) {
      await removeDeviceLeftovers(docker, deviceKey());
    }
    // The CID tags the worker set, unless another run had set them already (then they are not ours).
    for (const cid of Object.values(cids).filter((c) => !tagsBefore.has(`shoal-cid:${c}`))) {
      await docker
        .getImage(`shoal-cid:${cid}`)
        .remove({ noprune: true })
        .catch(() => undefined);
    }
    for (const id of imagesToRemove) {
      await docker
        .getImage(id)
        .remove({ force: true })
        .catch(() => undefined);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // A broken version ends in its documented failure code, on chain and on MQTT.
  it("ManifestInvalid: the manifest CID holds no valid manifest", async function () {
    const placementId = await deploy(
      manifestYaml("broken-manifest", WEB_IMAGE, "64Mi"),
      cids.web,
      new TextEncoder().encode('{"schemaVersion":1,"name":"Not A Valid Name!"}'),
    );
    expect(await failureOf(placementId)).to.deep.equal({ chain: "ManifestInvalid", mqtt: "ManifestInvalid" });
    expect(await containersOf(placementId)).to.have.length(0);
    await stopDeployment(placementId);
  });

  it("ImageFetchFailed: the image CID holds bytes that are not an image tar", async function () {
    const garbage = await add(randomBytes(256 * 1024));
    const placementId = await deploy(manifestYaml("garbage-image", WEB_IMAGE, "64Mi"), garbage);
    expect(await failureOf(placementId)).to.deep.equal({
      chain: "ImageFetchFailed",
      mqtt: "ImageFetchFailed",
    });
    expect(reportedReason(placementId)).to.equal(`image ${garbage} could not be loaded into Docker`);
    expect(await containersOf(placementId)).to.have.length(0);
    await stopDeployment(placementId);
  });

  it("StartFailed: the app exits non-zero at once under restartPolicy never", async function () {
    // loadgen exits 2 on a bad knob (scripts/images/loadgen/loadgen.c).
    const placementId = await deploy(
      manifestYaml("exits-at-once", LOADGEN_IMAGE, "64Mi", [
        "restartPolicy: never",
        "env:",
        "  PROFILE: no-such-profile",
      ]),
      cids.loadgen,
    );
    expect(await failureOf(placementId)).to.deep.equal({ chain: "StartFailed", mqtt: "StartFailed" });
    expect(reportedReason(placementId)).to.equal("exited with 2; restartPolicy never");
    await stopDeployment(placementId);
  });

  it("StartFailed: Docker cannot start the app's command under restartPolicy never", async function () {
    const placementId = await deploy(
      manifestYaml("cannot-exec-once", WEB_IMAGE, "64Mi", [
        "restartPolicy: never",
        "command: [/no-such-binary]",
      ]),
      cids.web,
    );
    expect(await failureOf(placementId)).to.deep.equal({ chain: "StartFailed", mqtt: "StartFailed" });
    expect(reportedReason(placementId)).to.equal(
      "the engine could not start it (exit 127); restartPolicy never",
    );
    await stopDeployment(placementId);
  });

  it("OOMKilled: the app grows past its band's memory maximum", async function () {
    const placementId = await deploy(
      manifestYaml("outgrows-its-band", LOADGEN_IMAGE, "24Mi", [
        "restartPolicy: on-failure",
        "env:",
        "  PROFILE: steady",
        '  CPU_MILLICORES: "50"',
        '  MEMORY_MIB: "96"',
      ]),
      cids.loadgen,
    );
    expect(await failureOf(placementId)).to.deep.equal({ chain: "OOMKilled", mqtt: "OOMKilled" });
    expect(reportedReason(placementId)).to.match(/^killed for running out of memory at 24 MiB/);
    await stopDeployment(placementId);
  });

  // Image tars that are not one image of the platform they are listed under: app:publish refuses
  // them before it writes anything, and a worker that is handed one anyway (published without the
  // task) reports ImageFetchFailed.
  it("app:publish refuses a tar with two images or of another platform, with one sentence and no chain change", async function () {
    const tars = path.join(dir, "tars");
    await mkdir(tars, { recursive: true });
    const two = await savedTar(tars, [WEB_IMAGE, LOADGEN_IMAGE]);
    const other = await otherPlatformTar(tars, WEB_IMAGE, "arm64");
    const one = await savedTar(tars, [WEB_IMAGE]);
    const manifestFile = async (name: string, tar: string) => {
      const file = path.join(tars, `${name}.yaml`);
      await writeFile(
        file,
        manifestYaml(name, WEB_IMAGE, "64Mi").replace(`ref: ${WEB_IMAGE}`, `tar: ${tar}`),
      );
      return file;
    };
    const from = await provider.getBlockNumber();
    for (const [name, tar, sentence] of [
      ["two-images-tar", two, `holds 2 images; a Shoal image tar holds exactly one`],
      ["arm64-tar", other.file, `is built for linux/arm64, not ${PLATFORM}`],
    ]) {
      const result = await cli("app:publish", "--manifest", await manifestFile(name, tar));
      expect(result.status, result.stdout).to.equal(1);
      const lines = result.stderr.trim().split("\n");
      expect(lines, result.stderr).to.have.length(1);
      expect(lines[0]).to.include(`images.${PLATFORM}.tar: "${tar}" ${sentence}`);
      expect(await apps.appIdOf(name), `app ${name} registered`).to.equal(0n);
    }
    expect(await apps.queryFilter("*" as never, from + 1), "AppRegistry events").to.have.length(0);

    // The same task takes a tar of one image of the right platform.
    ok(await cli("app:publish", "--manifest", await manifestFile("one-image-tar", one)));
    expect(await apps.appIdOf("one-image-tar")).to.not.equal(0n);
  });

  it("the worker reports ImageFetchFailed for a tar with two images and for one of another platform", async function () {
    const tars = path.join(dir, "tars");
    const two = await add(createReadStream(await savedTar(tars, [WEB_IMAGE, LOADGEN_IMAGE])));
    const other = await otherPlatformTar(tars, WEB_IMAGE, "arm64");
    imagesToRemove.add(other.imageId);
    const otherCid = await add(createReadStream(other.file));
    for (const [name, cid, reason] of [
      ["two-images", two, `image ${two} holds 2 images; a Shoal image tar holds exactly one`],
      ["arm64", otherCid, `image ${otherCid} is built for linux/arm64, not ${PLATFORM}`],
    ]) {
      const placementId = await deploy(manifestYaml(name, WEB_IMAGE, "64Mi"), cid);
      expect(await failureOf(placementId)).to.deep.equal({
        chain: "ImageFetchFailed",
        mqtt: "ImageFetchFailed",
      });
      expect(reportedReason(placementId)).to.equal(reason);
      expect(await containersOf(placementId)).to.have.length(0);
      await stopDeployment(placementId);
    }
  });

  it("retries a container Docker will not start with a doubling backoff, without a second container", async function () {
    const placementId = await deploy(
      manifestYaml("cannot-exec", WEB_IMAGE, "64Mi", [
        "restartPolicy: on-failure",
        "command: [/no-such-binary]",
      ]),
      cids.web,
    );
    const attempts = () =>
      logLines().filter(
        (l) => l.msg === "action failed; the next pass retries it" && l.placementId === placementId,
      );
    await waitFor("four failed start attempts", async () => attempts().length >= 4, 90_000);
    const seen = attempts().slice(0, 4);
    // reconciler.ts: 1 s doubling per placement (to 60 s). The first attempt creates the container,
    // the next ones start the one Docker created.
    expect(seen.map((a) => a.retryInMs)).to.deep.equal([1000, 2000, 4000, 8000]);
    expect(seen.map((a) => a.action)).to.deep.equal(["start", "restart", "restart", "restart"]);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i].time - seen[i - 1].time, `attempt ${i + 1} waited its backoff`).to.be.at.least(
        seen[i - 1].retryInMs!,
      );
    }
    expect(await containersOf(placementId)).to.have.length(1);
    expect(await stateOf(placementId)).to.equal("Claimed");
    await stopDeployment(placementId);
    await waitFor(
      "the container removed",
      async () => (await containersOf(placementId)).length === 0,
      60_000,
    );
  });

  it("rides out a Kubo outage and a chain RPC outage in the middle of a deploy, by itself", async function () {
    const first = await deploy(manifestYaml("steady-web", WEB_IMAGE, "64Mi"), cids.web);
    await waitFor("the first replica Running", async () => (await stateOf(first)) === "Running", 90_000);
    const [running] = await containersOf(first);
    const startedAt = (await docker.getContainer(running.Id).inspect()).State.StartedAt;

    // A new manifest (same image): the worker must fetch it from Kubo, which is now away.
    await kubo.proxy.cut();
    const second = await deploy(
      manifestYaml("steady-web-2", WEB_IMAGE, "64Mi", ["env:", "  APP_NAME: second"]),
      cids.web,
    );
    await waitFor("the claim", async () => (await stateOf(second)) === "Claimed", 60_000);
    await waitFor(
      "the worker to find Kubo away",
      async () => logLines().some((l) => l.msg === "delivery failed; will retry" && l.placementId === second),
      60_000,
    );
    expect(await containersOf(second), "nothing started without the manifest").to.have.length(0);

    // Now the chain goes away too, and Kubo returns: the worker may not act until the chain is back.
    const abortedBefore = logLines().filter(
      (l) => l.msg === "reconcile pass aborted; nothing was changed",
    ).length;
    await rpc.proxy.cut();
    await kubo.proxy.restore();
    await waitFor(
      "a reconcile pass aborted for want of the chain",
      async () =>
        logLines().filter((l) => l.msg === "reconcile pass aborted; nothing was changed").length >
        abortedBefore,
      60_000,
    );
    expect(await stateOf(second)).to.equal("Claimed");
    await rpc.proxy.restore();

    await waitFor("the second replica Running", async () => (await stateOf(second)) === "Running", 120_000);
    expect(await containersOf(second)).to.have.length(1);
    const after = await docker.getContainer(running.Id).inspect();
    expect(after.State.Running, "the first replica kept running").to.equal(true);
    expect(after.State.StartedAt, "the first replica was not restarted").to.equal(startedAt);
    await waitFor("Running on MQTT", async () => mqttStates.get(second)?.state === "Running", 30_000);
  });

  // docs/worker.md, "Eviction": a device whose containers' working sets no longer fit its enrolled
  // memory releases the lowest-priority placement (no failure, no reputation lost) and removes it.
  it("evicts through the worker: releases the placement as the device, removes its container, costs no reputation", async function () {
    const evictDir = path.join(dir, "evict");
    await mkdir(evictDir, { recursive: true });
    const evictDevice = enrolledId(
      ok(
        await cli(
          ...enrollArgs(EVICT_OPERATOR, {
            stake: "300",
            memory: "160Mi",
            labels: EVICT_LABEL,
            endpoint: "/ip4/127.0.0.1/tcp/4002",
          }),
        ),
      ),
    );
    const evictKey = deviceKeyOf(record, evictDevice);
    const evictions: { placementId: string; reason: string }[] = [];
    const onDecision = (topic: string, payload: Buffer) => {
      if (topic !== `shoal/v1/devices/${evictDevice}/resources`) return;
      const d = JSON.parse(payload.toString()) as { placementId: string; resource: string; reason: string };
      if (d.resource === "placement") evictions.push({ placementId: d.placementId, reason: d.reason });
    };
    subscriber.on("message", onDecision);
    await subscriber.subscribeAsync(`shoal/v1/devices/${evictDevice}/resources`, { qos: 1 });
    const second = testWorker({
      dir,
      mqttUrl: urls.mqttUrl,
      operatorKey: devWallet(EVICT_OPERATOR).privateKey,
      deviceId: evictDevice,
      dataDir: evictDir,
      env: { SHOAL_DOCKER_SOCKET: urls.dockerSocket },
      args: ["--config", path.join(dir, "worker.json")],
    });
    second.start();
    const deployments: bigint[] = [];
    try {
      // Two replicas that reserve 16 MiB each (the chain lets both in) but hold 70 MiB each: their
      // floors (working set / 0.85) add up to about 170 MiB, more than the 160 MiB the device has.
      for (const name of ["hungry-a", "hungry-b"]) {
        const yaml = manifestYaml(name, LOADGEN_IMAGE, "128Mi", [
          "restartPolicy: always",
          "env:",
          "  PROFILE: steady",
          '  CPU_MILLICORES: "20"',
          '  MEMORY_MIB: "70"',
        ]);
        const manifest = parseManifest(yaml);
        const manifestCid = await add(canonicalManifestBytes(manifest, { [PLATFORM]: cids.loadgen }));
        await mined(
          apps.publishVersion(
            appId,
            manifestCid,
            [PLATFORM],
            [cids.loadgen],
            bandToChain(resourceBand(manifest)),
          ),
        );
        const version = ++versions;
        const deploymentId = await apps.createDeployment.staticCall(appId, version, 1, [EVICT_LABEL]);
        await mined(apps.createDeployment(appId, version, 1, [EVICT_LABEL]));
        deployments.push(deploymentId);
      }
      // The first placement of the device to end, whichever way: it must be a release.
      const ended = await waitFor(
        "a placement of the evicting device to end",
        async () => {
          const from = record.contracts.PlacementRegistry.blockNumber;
          const device = BigInt(evictDevice);
          const [failed] = await placements.queryFilter(
            placements.filters.PlacementFailed(undefined, undefined, device),
            from,
          );
          const [released] = await placements.queryFilter(
            placements.filters.PlacementReleased(undefined, undefined, device),
            from,
          );
          return failed ?? released;
        },
        120_000,
      );
      expect(
        ended.fragment.name,
        `${ended.fragment.name} ${FAILURE_CODES[Number(ended.args[3])] ?? ""}: an eviction must release, not fail`,
      ).to.equal("PlacementReleased");
      const released = ended as Awaited<
        ReturnType<typeof placements.queryFilter<typeof placements.filters.PlacementReleased>>
      >[number];
      const evictedId = released.args.placementId.toString();
      expect(RELEASE_REASONS[Number(released.args.reason)]).to.equal("ByDevice");
      expect(released.args.releasedBy).to.equal(devWallet(EVICT_OPERATOR).address);
      expect(evictions[0], "the eviction decision on MQTT").to.deep.equal({
        placementId: evictedId,
        reason: "evicted",
      });
      await waitFor(
        "the evicted container removed",
        async () =>
          (
            await docker.listContainers({
              all: true,
              filters: { label: [`io.shoal.device=${evictKey}`, `io.shoal.placement=${evictedId}`] },
            })
          ).length === 0,
        60_000,
      );
      const failed = await placements.queryFilter(
        placements.filters.PlacementFailed(undefined, undefined, BigInt(evictDevice)),
        record.contracts.PlacementRegistry.blockNumber,
      );
      expect(failed, "no placement of the device failed").to.have.length(0);
      const devices = DeviceRegistry__factory.connect(record.contracts.DeviceRegistry.address, provider);
      expect((await devices.reputation(BigInt(evictDevice))).failed, "failures in its reputation").to.equal(
        0n,
      );
    } finally {
      subscriber.off("message", onDecision);
      for (const id of deployments) await mined(apps.stopDeployment(id)).catch(() => undefined);
      await second.stop();
      await removeDeviceLeftovers(docker, evictKey);
    }
  });

  it("serves /metrics that match what the chain and Docker say happened", async function () {
    const filter = (event: string) =>
      placements.queryFilter(
        placements.filters[event as "PlacementClaimed"](undefined, undefined, BigInt(deviceId)),
        record.contracts.PlacementRegistry.blockNumber,
      );
    const [claimed, confirmed, failed] = await Promise.all(
      ["PlacementClaimed", "PlacementConfirmed", "PlacementFailed"].map(filter),
    );
    const live = await Promise.all(
      claimed.map(async (e) => [e.args[0].toString(), await stateOf(e.args[0].toString())] as const),
    );
    const running = live
      .filter(([, state]) => state === "Running")
      .map(([id]) => id)
      .sort();
    const containers = (
      await docker.listContainers({
        filters: { label: [`io.shoal.device=${deviceKey()}`], status: ["running"] },
      })
    )
      .map((c) => c.Labels["io.shoal.placement"])
      .sort();
    expect(containers, "the running containers are the Running placements").to.deep.equal(running);

    // A reconcile pass and a resource-manager period after the last change, the gauges have settled.
    const metrics = await waitFor(
      "the gauges to settle",
      async () => {
        const m = await scrape();
        return m.get('shoal_placements{state="Running"}') === running.length &&
          running.every((id) => m.has(`shoal_container_cpu_limit_millicores{placement="${id}"}`))
          ? m
          : undefined;
      },
      30_000,
    );
    expect(metrics.get('shoal_claims_total{result="won"}'), "claims won").to.equal(claimed.length);
    expect(metrics.get('shoal_chain_transactions_total{method="confirm",result="ok"}'), "confirms").to.equal(
      confirmed.length,
    );
    expect(
      metrics.get('shoal_chain_transactions_total{method="fail",result="ok"}') ?? 0,
      "failures reported",
    ).to.equal(failed.length);
    expect(metrics.get('shoal_placements{state="Claimed"}') ?? 0, "claims still open").to.equal(
      live.filter(([, state]) => state === "Claimed").length,
    );
    const containerSeries = [...metrics.keys()]
      .filter((k) => k.startsWith("shoal_container_cpu_limit_millicores{"))
      .map((k) => /placement="(\d+)"/.exec(k)![1])
      .sort();
    expect(containerSeries, "a CPU limit series per running container").to.deep.equal(running);
    expect(metrics.get("shoal_bridge_lag_blocks"), "the bridge caught up").to.be.at.most(2);

    // Every resource decision counted was published, and the other way round.
    const decisions = (m: Map<string, number>) =>
      [...m.entries()]
        .filter(([k]) => k.startsWith("shoal_resource_decisions_total{"))
        .reduce((a, [, v]) => a + v, 0);
    await waitFor(
      "the decisions counted to match those published",
      async () => decisions(await scrape()) === decisionsOnMqtt,
      30_000,
    );

    // Every message of this run was signed by a worker: nothing dropped, until an unsigned one comes.
    const drops = (m: Map<string, number>) =>
      [...m.entries()]
        .filter(([k]) => k.startsWith("shoal_bus_messages_dropped_total{"))
        .reduce((a, [, v]) => a + v, 0);
    expect(drops(metrics), "messages dropped before the unsigned one").to.equal(0);
    await subscriber.publishAsync(
      `shoal/v1/chain/${record.chainId}/PlacementRegistry/PlacementReleased`,
      JSON.stringify({ id: `${record.chainId}:0x${"00".repeat(32)}:0`, args: {} }),
      { qos: 1 },
    );
    const after = await waitFor(
      "the unsigned message counted",
      async () => {
        const m = await scrape();
        return drops(m) > 0 ? m : undefined;
      },
      30_000,
    );
    expect(after.get('shoal_bus_messages_dropped_total{reason="unsigned"}')).to.equal(1);
    expect(drops(after)).to.equal(1);
  });
});
