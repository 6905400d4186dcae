/**
 * App developer tasks: publish a shoal.yaml (images and manifest to IPFS, version on chain), then
 * deploy, scale, roll, stop and list. Thin: parse, call, print; the manifest rules live in
 * workers/src/domain/manifest and the contract rules on chain.
 */
import { createReadStream, existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { task, types } from "hardhat/config";
import type { HardhatRuntimeEnvironment } from "hardhat/types";
import {
  canonicalManifestBytes,
  createKuboContentStore,
  exportImage,
  imagePlatformMatches,
  inspectImageTar,
  labelsProblem,
  bandToChain,
  isRetryable,
  MAX_MANIFEST_BYTES,
  ManifestError,
  parseManifest,
  preferredAddress,
  resourceBand,
  splitLabels,
  validateCanonicalManifest,
  chainSenderLookup,
  createVerifier,
  topics,
  type EndpointsPayload,
  type Manifest,
  type Platform,
} from "../workers/src";
import { JsonRpcProvider } from "ethers";
import mqtt from "mqtt";
import type { ContentStore } from "../workers/src";
import { shoalContext, type ShoalContext } from "./lib/context";
import { fail, formatBytes, orFail, progress, table } from "./lib/output";

const DEFAULT_KUBO = process.env.SHOAL_KUBO_URL ?? "http://127.0.0.1:5401";
/** A published manifest is small; refuse anything bigger when reading one back. */

export interface PublishResult {
  status: "published" | "unchanged";
  app: string;
  appId: number;
  semver: string;
  version: number;
  manifestCid: string;
  imageCids: Record<string, string>;
  txHash?: string;
  gasUsed?: string;
  /** The provider announced on chain (the publisher's Kubo node), when one was. */
  provider?: string;
}

// kubo-rpc-client and dockerode add about 0.6 s to every Hardhat command: the entry point loads
// them on the first call (workers/src/index.ts).

function contentStore(url: string): ContentStore {
  return createKuboContentStore({ url });
}

async function readAll(iterable: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of iterable) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Reads and validates the manifest and checks that every image source exists locally. */
async function loadManifest(file: string): Promise<{ manifest: Manifest; dir: string }> {
  if (!existsSync(file)) fail(`--manifest: ${file} does not exist`);
  let manifest: Manifest;
  try {
    // Bytes, not text: parseManifest refuses what is not UTF-8 instead of reading it lossily.
    manifest = parseManifest(readFileSync(file), { source: path.relative(process.cwd(), file) });
  } catch (error) {
    if (error instanceof ManifestError) fail(error.message);
    throw error;
  }
  const dir = path.dirname(file);
  for (const [platform, source] of Object.entries(manifest.images)) {
    if (source?.tar !== undefined) {
      const tar = path.resolve(dir, source.tar);
      if (!existsSync(tar) || !statSync(tar).isFile()) {
        fail(`${file}: images.${platform}.tar: "${source.tar}" is not a file (resolved to ${tar})`);
      }
      // The worker refuses such a tar after fetching it (workers/src/delivery.ts); refuse it here,
      // before anything is added to IPFS or sent to the chain.
      const { images } = await orFail(`reading images.${platform}.tar "${source.tar}"`, () =>
        inspectImageTar(tar),
      );
      if (images.length !== 1) {
        fail(
          `${file}: images.${platform}.tar: "${source.tar}" holds ${images.length} images; a Shoal image tar holds exactly one (docker save one image)`,
        );
      }
      if (!imagePlatformMatches(platform, images[0].platform)) {
        fail(
          `${file}: images.${platform}.tar: "${source.tar}" is built for ${images[0].platform || "no platform"}, not ${platform}; list it under ${images[0].platform || "its platform"} or build it for ${platform}`,
        );
      }
    }
  }
  return { manifest, dir };
}

/** Adds (or only hashes) each platform's image; returns the CIDs by platform. */
async function addImages(
  manifest: Manifest,
  dir: string,
  store: ContentStore,
  onlyHash: boolean,
): Promise<Record<string, string>> {
  const Docker = require("dockerode") as typeof import("dockerode");
  const docker = new Docker();
  const cids: Record<string, string> = {};
  for (const platform of Object.keys(manifest.images).sort() as Platform[]) {
    const source = manifest.images[platform]!;
    let stream: NodeJS.ReadableStream;
    let total: number | undefined;
    let label: string;
    if (source.tar !== undefined) {
      const tar = path.resolve(dir, source.tar);
      stream = createReadStream(tar);
      total = statSync(tar).size;
      label = `${platform} ${source.tar}`;
    } else {
      const exported = await orFail(`images.${platform}.ref`, () =>
        exportImage(docker, source.ref!, platform),
      );
      stream = exported.stream;
      total = exported.size;
      label = `${platform} ${source.ref}`;
    }
    const bar = onlyHash ? undefined : progress(label, total);
    const added = await orFail(`adding ${label} to IPFS`, () =>
      store.add(stream as AsyncIterable<Uint8Array>, { onlyHash, onProgress: (bytes) => bar?.update(bytes) }),
    );
    bar?.done(`${formatBytes(added.size)} -> ${added.cid}`);
    cids[platform] = added.cid;
  }
  return cids;
}

/**
 * The semver of a published version, read from its manifest on IPFS; undefined when the manifest
 * cannot be read. Kubo being down is not that: it fails the task with its own sentence instead of
 * reporting that no version matches.
 */
async function semverOf(store: ContentStore, manifestCid: string): Promise<string | undefined> {
  try {
    const bytes = await readAll(
      store.cat(manifestCid, { maxBytes: MAX_MANIFEST_BYTES, signal: AbortSignal.timeout(10_000) }),
    );
    const version = (JSON.parse(bytes.toString("utf8")) as { version?: unknown }).version;
    return typeof version === "string" ? version : undefined;
  } catch (error) {
    if (isRetryable(error))
      return orFail(`reading manifest ${manifestCid} from IPFS`, () => Promise.reject(error));
    return undefined;
  }
}

async function appIdByName(ctx: ShoalContext, name: string): Promise<number> {
  const appId = Number(await ctx.apps.appIdOf(name));
  if (appId === 0) fail(`--app: no app named "${name}" is registered; publish it first with app:publish`);
  return appId;
}

/**
 * The chain's version number for `requested`: a number ("3") as is, a semver ("1.2.0") by reading
 * the versions' manifests, or the latest version that is not deprecated when omitted.
 */
async function resolveVersion(
  ctx: ShoalContext,
  appId: number,
  requested: string | undefined,
  kubo: string,
): Promise<number> {
  const count = Number((await ctx.apps.app(appId)).versionCount);
  if (count === 0) fail(`app ${appId} has no published version yet; publish one with app:publish`);
  if (requested === undefined) {
    for (let n = count; n >= 1; n--) if (!(await ctx.apps.version(appId, n)).deprecated) return n;
    fail(`every version of app ${appId} is deprecated; publish a new one or name one with --app-version`);
  }
  if (/^\d+$/.test(requested)) {
    const n = Number(requested);
    if (n < 1 || n > count) fail(`--app-version ${requested}: app ${appId} has versions 1..${count}`);
    return n;
  }
  const store = contentStore(kubo);
  for (let n = count; n >= 1; n--) {
    if ((await semverOf(store, (await ctx.apps.version(appId, n)).manifestCid)) === requested) return n;
  }
  fail(
    `--app-version ${requested}: no version of app ${appId} has that manifest version (give a semver or a version number 1..${count})`,
  );
}

/** The deployment a command acts on: --deployment ID, or the only active deployment of --app. */
async function resolveDeployment(
  ctx: ShoalContext,
  args: { deployment?: number; app?: string },
): Promise<number> {
  if (args.deployment !== undefined) {
    const count = Number(await ctx.apps.deploymentCount());
    if (args.deployment < 1 || args.deployment > count)
      fail(`--deployment ${args.deployment}: deployments are 1..${count}`);
    return args.deployment;
  }
  if (args.app === undefined) fail("name the deployment with --deployment ID or --app NAME");
  const appId = await appIdByName(ctx, args.app);
  const active: number[] = [];
  const count = Number(await ctx.apps.deploymentCount());
  for (let id = 1; id <= count; id++) {
    const summary = await ctx.apps.deploymentSummary(id);
    if (Number(summary.appId) === appId && summary.active) active.push(id);
  }
  if (active.length === 0)
    fail(`--app ${args.app}: the app has no active deployment; create one with app:deploy`);
  if (active.length > 1)
    fail(
      `--app ${args.app}: the app has ${active.length} active deployments (${active.join(", ")}); pick one with --deployment`,
    );
  return active[0];
}

function parseLabels(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const labels = splitLabels(value);
  const problem = labelsProblem(labels);
  if (problem) fail(`--labels: ${problem}`);
  return labels;
}

async function send(what: string, tx: () => Promise<{ wait(): Promise<unknown> }>) {
  const response = await orFail(what, tx);
  const receipt = (await orFail(what, () => response.wait())) as {
    hash: string;
    gasUsed: bigint;
    logs: unknown[];
  };
  return receipt;
}

export async function publishApp(
  hre: HardhatRuntimeEnvironment,
  args: { manifest: string; kubo: string; account?: string; provider?: string },
): Promise<PublishResult> {
  if (args.provider !== undefined && args.provider !== "none" && !/^\/\S+\/p2p\/\w+$/.test(args.provider)) {
    fail(
      `--provider "${args.provider}" is not a multiaddr with a peer id; give one like /ip4/192.0.2.1/tcp/4001/p2p/12D3KooW..., or "none"`,
    );
  }
  const file = path.resolve(args.manifest);
  const { manifest, dir } = await loadManifest(file);
  const ctx = await shoalContext(hre, args.account);
  const store = contentStore(args.kubo);

  let appId = Number(await ctx.apps.appIdOf(manifest.name));
  if (appId !== 0) {
    const owner = await ctx.apps.appOwner(appId);
    if (owner.toLowerCase() !== ctx.signerAddress.toLowerCase()) {
      fail(
        `app "${manifest.name}" (id ${appId}) belongs to ${owner}, not to ${ctx.signerAddress}; only its owner publishes versions`,
      );
    }
  }

  // A version with the same semver: same bytes -> nothing to do; different bytes -> refuse. Both
  // decided from hashes alone, so neither path writes to IPFS or the chain.
  if (appId !== 0) {
    const count = Number((await ctx.apps.app(appId)).versionCount);
    for (let n = count; n >= 1; n--) {
      const existing = await ctx.apps.version(appId, n);
      if ((await semverOf(store, existing.manifestCid)) !== manifest.version) continue;
      const imageCids = await addImages(manifest, dir, store, true);
      const { cid } = await store.add(canonicalManifestBytes(manifest, imageCids), { onlyHash: true });
      if (cid !== existing.manifestCid) {
        fail(
          `${manifest.name} ${manifest.version} is already published as version ${n} (manifest ${existing.manifestCid}), ` +
            `and this manifest differs (${cid}); published versions are immutable, so bump \`version\` in ${args.manifest}`,
        );
      }
      console.log(`${manifest.name} ${manifest.version} is already published as version ${n}: nothing to do`);
      return {
        status: "unchanged",
        app: manifest.name,
        appId,
        semver: manifest.version,
        version: n,
        manifestCid: cid,
        imageCids,
      };
    }
  }

  const imageCids = await addImages(manifest, dir, store, false);
  const manifestBytes = canonicalManifestBytes(manifest, imageCids);
  const { cid: manifestCid } = await orFail("adding the manifest to IPFS", () => store.add(manifestBytes));
  console.log(`manifest: ${manifestBytes.byteLength} bytes -> ${manifestCid}`);

  let gasUsed = 0n;
  if (appId === 0) {
    const receipt = await send(`registering app "${manifest.name}"`, () =>
      ctx.apps.registerApp(manifest.name),
    );
    gasUsed += receipt.gasUsed;
    appId = Number(await ctx.apps.appIdOf(manifest.name));
    console.log(
      `registered app "${manifest.name}" as app ${appId} (tx ${receipt.hash}, gas ${receipt.gasUsed})`,
    );
  }
  const band = resourceBand(manifest);
  const platforms = Object.keys(imageCids).sort();
  const receipt = await send(`publishing ${manifest.name} ${manifest.version}`, () =>
    ctx.apps.publishVersion(
      appId,
      manifestCid,
      platforms,
      platforms.map((p) => imageCids[p]),
      bandToChain(band),
    ),
  );
  gasUsed += receipt.gasUsed;
  const version = Number((await ctx.apps.app(appId)).versionCount);
  console.log(
    `published ${manifest.name} ${manifest.version} as app ${appId} version ${version} (tx ${receipt.hash}, gas ${receipt.gasUsed})`,
  );
  // Where devices fetch the version from: this Kubo node, unless told otherwise (docs/tasks.md).
  let provider = args.provider === "none" ? undefined : args.provider;
  if (args.provider === undefined) {
    const self = await store.identity().catch(() => undefined);
    provider = self && preferredAddress(self);
    if (provider === undefined)
      console.log(
        `warning: the Kubo node at ${args.kubo} announces no TCP address; no provider recorded (devices fetch from peers only)`,
      );
  }
  if (provider !== undefined) {
    const announced = await send(`announcing the provider of ${manifest.name} ${manifest.version}`, () =>
      ctx.apps.announceProvider(appId, version, provider),
    );
    gasUsed += announced.gasUsed;
    console.log(`provider: ${provider} (tx ${announced.hash}, gas ${announced.gasUsed})`);
  }
  return {
    provider,
    status: "published",
    app: manifest.name,
    appId,
    semver: manifest.version,
    version,
    manifestCid,
    imageCids,
    txHash: receipt.hash,
    gasUsed: gasUsed.toString(),
  };
}

task(
  "app:publish",
  "Validates a shoal.yaml, adds its images and manifest to IPFS and publishes the version on chain",
)
  .addOptionalParam("manifest", "Path to the app's shoal.yaml", "shoal.yaml")
  .addOptionalParam("kubo", "Kubo RPC API URL (env SHOAL_KUBO_URL)", DEFAULT_KUBO)
  .addOptionalParam("account", "Signer: account index or address of the network", "0")
  .addOptionalParam(
    "provider",
    'The IPFS node devices fetch the version from, a multiaddr with /p2p/<id>; "none" records none (default: the --kubo node\'s address)',
  )
  .setAction((args, hre) => publishApp(hre, args));

task("app:deploy", "Asks for N replicas of an app version, placed by the devices themselves")
  .addParam("app", "App name")
  .addOptionalParam("appVersion", "Version number or manifest semver (default: latest not deprecated)")
  .addOptionalParam("replicas", "Replicas (default: the manifest's `replicas`)", undefined, types.int)
  .addOptionalParam("labels", "Required device labels, comma separated key=value (default: the manifest's)")
  .addOptionalParam("kubo", "Kubo RPC API URL, to read the manifest (env SHOAL_KUBO_URL)", DEFAULT_KUBO)
  .addOptionalParam("account", "Signer: account index or address of the network", "0")
  .setAction(async (args, hre) => {
    const ctx = await shoalContext(hre, args.account);
    const appId = await appIdByName(ctx, args.app);
    const version = await resolveVersion(ctx, appId, args.appVersion, args.kubo);
    let replicas: number | undefined = args.replicas;
    let labels = parseLabels(args.labels);
    if (replicas === undefined || labels === undefined) {
      const cid = (await ctx.apps.version(appId, version)).manifestCid;
      const store = contentStore(args.kubo);
      const bytes = await orFail(`reading manifest ${cid} from IPFS`, () =>
        readAll(store.cat(cid, { maxBytes: MAX_MANIFEST_BYTES })),
      );
      const published = validateCanonicalManifest(bytes, { source: cid });
      replicas ??= published.replicas;
      labels ??= published.requiredLabels;
    }
    if (!Number.isInteger(replicas) || replicas < 1)
      fail(`--replicas ${replicas}: give a whole number of at least 1`);
    const receipt = await send(`deploying ${args.app} version ${version}`, () =>
      ctx.apps.createDeployment(appId, version, replicas!, labels!),
    );
    const deploymentId = Number(await ctx.apps.deploymentCount());
    console.log(
      `deployment ${deploymentId}: ${args.app} version ${version}, ${replicas} replica(s)` +
        `${labels.length ? `, labels ${labels.join(",")}` : ""} (tx ${receipt.hash}, gas ${receipt.gasUsed})`,
    );
    return { deploymentId, appId, version, replicas, labels, txHash: receipt.hash };
  });

task("app:scale", "Changes the replica count of a deployment")
  .addOptionalParam("deployment", "Deployment id", undefined, types.int)
  .addOptionalParam("app", "App name (when it has exactly one active deployment)")
  .addParam("replicas", "New replica count (>= 1; app:stop stops)", undefined, types.int)
  .addOptionalParam("account", "Signer: account index or address of the network", "0")
  .setAction(async (args, hre) => {
    const ctx = await shoalContext(hre, args.account);
    const id = await resolveDeployment(ctx, args);
    if (args.replicas < 1)
      fail(`--replicas ${args.replicas}: give at least 1, or stop the deployment with app:stop`);
    const before = Number((await ctx.apps.deploymentSummary(id)).replicas);
    const receipt = await send(`scaling deployment ${id}`, () => ctx.apps.scaleDeployment(id, args.replicas));
    console.log(
      `deployment ${id}: ${before} -> ${args.replicas} replica(s) (tx ${receipt.hash}, gas ${receipt.gasUsed})`,
    );
    return { deploymentId: id, previousReplicas: before, replicas: args.replicas, txHash: receipt.hash };
  });

task("app:roll", "Rolls a deployment to a newer version; devices replace the old replicas")
  .addOptionalParam("deployment", "Deployment id", undefined, types.int)
  .addOptionalParam("app", "App name (when it has exactly one active deployment)")
  .addOptionalParam("appVersion", "Version number or manifest semver (default: latest not deprecated)")
  .addOptionalParam("kubo", "Kubo RPC API URL, to resolve a semver (env SHOAL_KUBO_URL)", DEFAULT_KUBO)
  .addOptionalParam("account", "Signer: account index or address of the network", "0")
  .setAction(async (args, hre) => {
    const ctx = await shoalContext(hre, args.account);
    const id = await resolveDeployment(ctx, args);
    const summary = await ctx.apps.deploymentSummary(id);
    const version = await resolveVersion(ctx, Number(summary.appId), args.appVersion, args.kubo);
    const receipt = await send(`rolling deployment ${id}`, () => ctx.apps.rollDeployment(id, version));
    console.log(
      `deployment ${id}: version ${summary.version} -> ${version} (tx ${receipt.hash}, gas ${receipt.gasUsed})`,
    );
    return { deploymentId: id, previousVersion: Number(summary.version), version, txHash: receipt.hash };
  });

task("app:stop", "Stops a deployment; devices release its replicas")
  .addOptionalParam("deployment", "Deployment id", undefined, types.int)
  .addOptionalParam("app", "App name (when it has exactly one active deployment)")
  .addOptionalParam("account", "Signer: account index or address of the network", "0")
  .setAction(async (args, hre) => {
    const ctx = await shoalContext(hre, args.account);
    const id = await resolveDeployment(ctx, args);
    const receipt = await send(`stopping deployment ${id}`, () => ctx.apps.stopDeployment(id));
    console.log(`deployment ${id}: stopped (tx ${receipt.hash}, gas ${receipt.gasUsed})`);
    return { deploymentId: id, txHash: receipt.hash };
  });

task("app:list", "Lists apps, their versions and deployments")
  .addFlag("json", "Print JSON instead of tables")
  .setAction(async (args, hre) => {
    const ctx = await shoalContext(hre);
    const apps = [];
    for (let appId = 1; appId <= Number(await ctx.apps.appCount()); appId++) {
      const app = await ctx.apps.app(appId);
      const versions = [];
      for (let n = 1; n <= Number(app.versionCount); n++) {
        const v = await ctx.apps.version(appId, n);
        versions.push({
          version: n,
          manifestCid: v.manifestCid,
          platforms: [...v.platforms],
          deprecated: v.deprecated,
          cpuMillicores: [Number(v.band.cpuMinMillicores), Number(v.band.cpuMaxMillicores)],
          memoryMiB: [Number(v.band.memoryMinMiB), Number(v.band.memoryMaxMiB)],
        });
      }
      apps.push({ appId, name: app.name, owner: app.owner, versions });
    }
    const deployments = [];
    for (let id = 1; id <= Number(await ctx.apps.deploymentCount()); id++) {
      const d = await ctx.apps.deploymentSummary(id);
      const usage = await ctx.placements.deploymentUsage(id);
      deployments.push({
        deploymentId: id,
        appId: Number(d.appId),
        version: Number(d.version),
        replicas: Number(d.replicas),
        live: Number(usage.liveReplicas),
        active: d.active,
      });
    }
    if (args.json) {
      console.log(JSON.stringify({ apps, deployments }, null, 2));
      return { apps, deployments };
    }
    const names = new Map(apps.map((a) => [a.appId, a.name]));
    console.log(
      table(
        ["app", "id", "version", "platforms", "cpu (m)", "memory (MiB)", "manifest", "deprecated"],
        apps.flatMap((a) =>
          a.versions.map((v) => [
            a.name,
            String(a.appId),
            String(v.version),
            v.platforms.join(","),
            v.cpuMillicores.join(".."),
            v.memoryMiB.join(".."),
            v.manifestCid,
            v.deprecated ? "yes" : "",
          ]),
        ),
      ),
    );
    console.log();
    console.log(
      table(
        ["deployment", "app", "version", "replicas", "live", "state"],
        deployments.map((d) => [
          String(d.deploymentId),
          names.get(d.appId) ?? String(d.appId),
          String(d.version),
          String(d.replicas),
          String(d.live),
          d.active ? "active" : "stopped",
        ]),
      ),
    );
    return { apps, deployments };
  });

/** One row of app:endpoints: a replica and where one of its ports answers. */
export interface EndpointRow {
  app: string;
  appVersion: string;
  version: string;
  deviceId: string;
  deviceAddress: string;
  hostPort: number;
  protocol: string;
  containerPort: number;
  name?: string;
  placementId: string;
  deploymentId: string;
  since: string;
}

task("app:endpoints", "Lists where an app's replicas answer, from the devices' signed endpoints on MQTT")
  .addParam("app", "App name")
  .addOptionalParam(
    "mqtt",
    "MQTT broker URL (env SHOAL_MQTT_URL)",
    process.env.SHOAL_MQTT_URL ?? "mqtt://127.0.0.1:1883",
  )
  .addOptionalParam("settleMs", "Wait this long after the last retained message arrives", 750, types.int)
  .addFlag("json", "Print JSON instead of a table")
  .setAction(async (args, hre) => {
    const ctx = await shoalContext(hre);
    await appIdByName(ctx, args.app);
    if (!Number.isInteger(args.settleMs) || args.settleMs < 100 || args.settleMs > 60_000)
      fail(`--settle-ms: ${args.settleMs} is out of range; use 100 to 60000`);
    const url = (hre.network.config as { url?: string }).url;
    if (url === undefined)
      fail(`network "${hre.network.name}" has no JSON-RPC url to check signatures against`);
    const provider = new JsonRpcProvider(url, ctx.deployment.chainId, { staticNetwork: true });
    // Only what a device's operator on chain signed, on that device's own topic, is believed.
    const verifier = createVerifier({
      lookup: chainSenderLookup(provider, ctx.deployment.contracts.DeviceRegistry.address),
    });
    const client = await orFail(`could not reach the MQTT broker at ${redactUrl(args.mqtt)}`, () =>
      mqtt.connectAsync(args.mqtt, {
        clientId: `shoal-endpoints-${process.pid}-${Date.now()}`,
        clean: true,
        connectTimeout: 5_000,
        reconnectPeriod: 0,
      }),
    );
    const rows = new Map<string, EndpointRow[]>();
    let verifying = Promise.resolve();
    let last = Date.now();
    try {
      client.on("message", (topic, buffer) => {
        last = Date.now();
        verifying = verifying.then(async () => {
          if (buffer.length === 0) return void rows.delete(topic);
          const checked = await verifier.verify(topic, buffer);
          if (!checked.ok) return;
          const p = JSON.parse(checked.payload) as EndpointsPayload;
          if (p.app !== args.app) return;
          rows.set(
            topic,
            p.ports.map((port) => ({
              app: p.app,
              appVersion: p.appVersion,
              version: p.version,
              deviceId: p.deviceId,
              deviceAddress: p.deviceAddress,
              hostPort: port.hostPort,
              protocol: port.protocol,
              containerPort: port.containerPort,
              ...(port.name !== undefined ? { name: port.name } : {}),
              placementId: p.placementId,
              deploymentId: p.deploymentId,
              since: p.since,
            })),
          );
        });
      });
      await client.subscribeAsync(`${topics.root}/devices/+/endpoints/+`, { qos: 1 });
      // Retained messages come right after the subscription; stop once they stopped coming.
      last = Date.now();
      while (Date.now() - last < args.settleMs) await new Promise((r) => setTimeout(r, 50));
      await verifying;
    } finally {
      await client.endAsync();
      provider.destroy();
    }
    const all = [...rows.values()]
      .flat()
      .sort((a, b) => Number(a.placementId) - Number(b.placementId) || a.containerPort - b.containerPort);
    if (args.json) {
      console.log(JSON.stringify(all, null, 2));
      return;
    }
    console.log(
      table(
        ["address", "protocol", "container port", "device", "placement", "version", "since"],
        all.map((r) => [
          `${r.deviceAddress}:${r.hostPort}`,
          r.protocol,
          `${r.containerPort}${r.name ? ` (${r.name})` : ""}`,
          r.deviceId,
          r.placementId,
          `${r.appVersion} (v${r.version})`,
          r.since,
        ]),
      ),
    );
  });

/** A broker URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}
