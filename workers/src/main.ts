/**
 * shoal-worker: one process per edge device. Wiring only: `connect` (deployment record, chain,
 * device), `buildParts` (adapters and services), `runLoops` (start them). Six loops share one
 * AbortSignal, supervised by lib/supervise.ts:
 *   bridge role      (only while this device is an elected bridge, election.ts):
 *                    chain source -> bridge (MQTT) and keeper; on every device, bridged events
 *                    from the elected bridges mark the reconciler and the claimer dirty
 *   claimer          (claims replicas this device fits, after a score-based delay)
 *   reconciler       (chain desired state vs Docker actual state)
 *   heartbeat        (liveness on chain, well inside the TTL)
 *   resource manager (live resizing inside the bands and the device's capacity)
 *   keeper           (part of the bridge role: expires stale devices, finalizes expired
 *                    placements and overdue claims)
 * SIGTERM/SIGINT: stop taking work, finish the reconcile pass under way, publish offline, exit 0.
 * A fatal error in any loop stops the others, is logged with its cause, and exits 1.
 */
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import os from "node:os";
import { JsonRpcProvider, Network } from "ethers";
import pino, { type Logger } from "pino";
import { createCgroupMetricsSource } from "./adapters/cgroup-metrics";
import { ensureDeviceCgroup } from "./adapters/device-cgroup";
import { createEthersChainSource, contractsFromDeployment } from "./adapters/ethers-chain-source";
import { createDockerClient } from "./adapters/docker-client";
import { createDockerRuntime } from "./adapters/docker-runtime";
import { createEthersRegistry } from "./adapters/ethers-registry";
import { createKuboContentStore } from "./adapters/kubo";
import { createMqttBus } from "./adapters/mqtt-bus";
import { createBridge } from "./bridge";
import { createClaimer } from "./claimer";
import { ConfigError, ENV, loadConfig, type WorkerConfig } from "./config";
import { createDelivery } from "./delivery";
import { createImageRetention } from "./image-retention";
import { createElection } from "./election";
import { createSeenEvents, eventCoordinates, quietThrough } from "./domain/election";
import { followedChainFilters } from "./domain/topics";
import { createKeeper } from "./keeper";
import { createPeering } from "./peering";
import { bandFromChain, type ResourceBand } from "./domain/band";
import { parseDeploymentRecord, type DeploymentRecord } from "./domain/deployment-record";
import type { Platform } from "./domain/manifest";
import { isRetryable, ShoalError } from "./errors";
import { setBounded } from "./domain/bounded";
import { backoffDelay, loop, onAbort, retry, sleep, superviseAll } from "./lib/supervise";
import { createWorkerMetrics, serveMetrics, type WorkerMetrics } from "./metrics";
import type { MessageHandler } from "./ports/bus";
import type { ChainEvent } from "./ports/chain-source";
import type { ContentStore } from "./ports/content-store";
import type { DeviceView, EndpointRegistry, KeeperRegistry, Registry } from "./ports/registry";
import type { Runtime } from "./ports/runtime";
import { createReconciler } from "./reconciler";
import { createEndpointPublisher } from "./endpoints";
import { chainSenderLookup, createSealer, createSignedBus, createVerifier } from "./signed-bus";
import { createResourceManager } from "./resource-manager";
import { createResourceLog } from "./resource-log";
import { createEthersResourceAnchor } from "./adapters/ethers-resource-log";

const HELP = `Usage: shoal-worker [--config FILE]

Runs the Shoal worker of one enrolled edge device: bridges chain events to MQTT, claims replicas
this device fits, fetches images and manifests from IPFS, runs them hardened in Docker and confirms
them on chain.

Options:
  --config FILE   JSON settings (see docs/worker.md); environment variables override them
  --help          this text

Environment:
${Object.entries(ENV)
  .map(([variable, field]) => `  ${variable.padEnd(24)} ${field}`)
  .join("\n")}
`;

function parseArgs(argv: string[]): { help: boolean; config?: string } {
  const args: { help: boolean; config?: string } = { help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") args.help = true;
    else if (arg === "--config") {
      if (!argv[i + 1]) throw new ConfigError("--config needs a file path");
      args.config = argv[++i];
    } else if (arg.startsWith("--config=")) args.config = arg.slice("--config=".length);
    else throw new ConfigError(`${arg}: unknown option; see shoal-worker --help`);
  }
  return args;
}

/** The chain id, waiting for the RPC endpoint to answer (a device may boot before its network). */
async function chainIdOf(rpcUrl: string, logger: Logger, signal: AbortSignal): Promise<number> {
  const chainId = await retry(
    "reach the chain RPC",
    async () => {
      const probe = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true });
      try {
        return Number(await probe.send("eth_chainId", []));
      } finally {
        probe.destroy();
      }
    },
    {
      signal,
      retryable: () => true,
      backoff: { initialMs: 500, maxMs: 15_000 },
      onRetry: ({ error, delayMs }) =>
        logger.warn({ rpcUrl, err: error, retryInMs: delayMs }, "chain RPC not reachable yet"),
    },
  );
  if (chainId === undefined) throw new ShoalError("stopped while waiting for the chain RPC");
  return chainId;
}

/** What the chain says about this worker's device, read once at start. */
interface Connection {
  record: DeploymentRecord;
  chainId: number;
  provider: JsonRpcProvider;
  registry: Registry & KeeperRegistry & EndpointRegistry;
  device: DeviceView;
  platform: Platform;
  /**
   * The device's name in Docker and the cgroup tree: chain, registry and id, so devices of several
   * chains on one host never touch each other's containers.
   */
  deviceKey: string;
}

/** Reads the deployment record, waits for the chain and checks that the device is enrolled on it. */
async function connect(config: WorkerConfig, signal: AbortSignal, logger: Logger): Promise<Connection> {
  const deviceId = config.deviceId;
  const record = parseDeploymentRecord(readFileSync(config.deploymentsFile, "utf8"), config.deploymentsFile);
  const chainId = await chainIdOf(config.rpcUrl, logger, signal);
  if (chainId !== record.chainId) {
    throw new ConfigError(
      `deploymentsFile: ${config.deploymentsFile} is for chain ${record.chainId}, but ${config.rpcUrl} is chain ${chainId}`,
    );
  }
  // cacheTimeout -1: ethers' 250 ms call cache would otherwise hand out stale nonces and states.
  const provider = new JsonRpcProvider(config.rpcUrl, Network.from(chainId), {
    staticNetwork: true,
    cacheTimeout: -1,
    pollingInterval: config.pollIntervalMs,
  });
  const registry = createEthersRegistry({
    provider,
    contracts: record.contracts,
    operatorKey: config.operatorKey,
    deviceId,
  });
  const device = await registry.device();
  if (device.status === "None") {
    provider.destroy();
    throw new ConfigError(`deviceId: ${deviceId} is not enrolled on chain ${chainId}`);
  }
  const platform = device.platform as Platform;
  logger.info(
    { deviceId, platform, chainId, capacity: [device.cpuCapacityMillicores, device.memoryCapacityMiB] },
    "device",
  );
  const deviceKey = `${chainId}-${record.contracts.DeviceRegistry.address.slice(2, 10).toLowerCase()}-${deviceId}`;
  return { record, chainId, provider, registry, device, platform, deviceKey };
}

/** The device's enrolled capacity as a cgroup every container runs under, when resources are managed. */
async function deviceCgroup(config: WorkerConfig, { device, deviceKey }: Connection) {
  if (!config.resources.enabled) return undefined;
  return ensureDeviceCgroup({
    deviceId: deviceKey,
    cpuMillicores: device.cpuCapacityMillicores,
    memoryMiB: device.memoryCapacityMiB,
  }).catch((error: unknown) => {
    throw new ConfigError(
      "resources.enabled: the device cgroup could not be created (the worker needs root and a writable " +
        "/sys/fs/cgroup); set resources.enabled to false to run without capacity caps or live resizing",
      { cause: error },
    );
  });
}

/** Bands of app versions kept at once: more than a device runs, fewer than a long life sees. */
const BAND_CACHE_SIZE = 1_000;

/**
 * The band of a container's app version, from the registry. Versions are immutable, so a miss is
 * fetched once and the container is left at its limits until then.
 */
function bandLookup(registry: Registry, platform: Platform) {
  const bands = new Map<string, ResourceBand | "pending">();
  return (container: { appId: string; version: string }): ResourceBand | undefined => {
    const key = `${container.appId}/${container.version}`;
    const band = bands.get(key);
    if (band === undefined) {
      setBounded(bands, key, "pending", BAND_CACHE_SIZE);
      registry.version(Number(container.appId), Number(container.version), platform).then(
        (v) => setBounded(bands, key, bandFromChain(v.band), BAND_CACHE_SIZE),
        () => bands.delete(key),
      );
    }
    return band === "pending" ? undefined : band;
  };
}

/**
 * Adapters a caller may supply instead of Docker and Kubo: hollow devices (workers/src/hollow.ts)
 * run the same worker over in-memory ones.
 */
export interface WorkerAdapters {
  runtime?: Runtime;
  contentStore?: ContentStore;
}

/** Every part of the worker, built and connected, nothing started. */
async function buildParts(
  config: WorkerConfig,
  conn: Connection,
  metrics: WorkerMetrics,
  logger: Logger,
  adapters: WorkerAdapters = {},
) {
  const { registry, platform, deviceKey, chainId, record, device } = conn;
  const deviceId = config.deviceId;
  const runtime =
    adapters.runtime ??
    createDockerRuntime({
      docker: createDockerClient(config.dockerSocket),
      socketPath: config.dockerSocket,
    });
  const contentStore = adapters.contentStore ?? createKuboContentStore({ url: config.kuboUrl });
  const { contracts, startBlock } = contractsFromDeployment(record);
  const source = createEthersChainSource({
    rpcUrl: config.rpcUrl,
    chainId,
    contracts,
    startBlock,
    dataDir: config.dataDir,
    logger: logger.child({ component: "chain-source" }),
    confirmations: config.confirmations,
    pollIntervalMs: config.pollIntervalMs,
  });
  const peering = config.peering.enabled
    ? createPeering({
        contentStore,
        source,
        registry: config.peering.updateEndpoint ? registry : undefined,
        deviceId,
        dataDir: config.dataDir,
        logger: logger.child({ component: "peering" }),
        maxPeers: config.peering.maxPeers,
        refreshMs: config.peering.refreshMs,
      })
    : undefined;
  const delivery = createDelivery({
    contentStore,
    runtime,
    platform,
    logger: logger.child({ component: "delivery" }),
    beforeFetch: peering?.prepareFetch,
  });
  // Every message out is sealed with the operator key, every message in verified against the chain.
  const sealer = createSealer({ operatorKey: config.operatorKey, deviceId });
  const bus = createSignedBus({
    bus: createMqttBus({
      url: config.mqttUrl,
      username: config.mqttUsername,
      password: config.mqttPassword,
      clientId: `shoal-worker-${chainId}-${deviceId}`,
      deviceId,
      bridgeCandidate: config.bridge.enabled,
      logger,
      onPublishFailure: () => metrics.mqttPublishFailures.inc(),
      seal: (topic, payload) => sealer.seal([{ topic, payload, retain: true }])[0],
    }),
    sealer,
    verifier: createVerifier({
      lookup: chainSenderLookup(conn.provider, record.contracts.DeviceRegistry.address),
      // 5 min, not 60 s: the events that change a sender forget it at once, and a follower re-read
      // each bridge every minute for nothing (N/30 reads per second from a fleet of N).
      ttlMs: 300_000,
      droppedCounter: metrics.busMessagesDropped,
      onDrop: (topic, reason) => logger.debug({ topic, reason }, "dropped an unverified message"),
    }),
  });
  const cgroup = await deviceCgroup(config, conn);
  // The anchored decision log (issue 16): seqs continue from the persisted log across restarts.
  const resourceLogContract = record.contracts.ResourceLog;
  const resourceLog = cgroup
    ? createResourceLog({
        deviceId,
        dataDir: config.dataDir,
        bounds: { maxRecords: config.resources.epochMaxRecords, maxAgeMs: config.resources.epochMaxAgeMs },
        store: createKuboContentStore({ url: config.kuboUrl }),
        anchor: resourceLogContract
          ? createEthersResourceAnchor({
              provider: conn.provider,
              contract: resourceLogContract,
              operatorKey: config.operatorKey,
            })
          : undefined,
        logger,
      })
    : undefined;
  const firstSeq = (await resourceLog?.open())?.nextSeq;
  const resourceManager = cgroup
    ? createResourceManager({
        deviceId: String(deviceId),
        runtimeDeviceId: deviceKey,
        capacity: { cpuMillicores: device.cpuCapacityMillicores, memoryMiB: device.memoryCapacityMiB },
        runtime,
        metrics: createCgroupMetricsSource({ cgroupParent: cgroup.cgroupParent }),
        bandOf: bandLookup(registry, platform),
        evict: async (placementId) => {
          // Give the replica back so that a device with room claims it, then free ours. A release,
          // not a failure: the device kept its enrolled capacity and the app its band; the working
          // sets outgrew the reservations, which is nobody's fault, so it must not cost the device
          // reputation (docs/worker.md, "Eviction"). The decision on MQTT says why.
          await registry.release(placementId);
          metrics.chainTransactions.inc({ method: "release", result: "ok" });
          reconciler.markDirty("evicted");
        },
        bus,
        firstSeq,
        log: resourceLog,
        params: { periodMs: config.resources.periodMs, fastPeriodMs: config.resources.fastPeriodMs },
        logger,
        promMetrics: metrics,
      })
    : undefined;
  // Discovery (issue 15): the answering replicas' endpoints, retained under the device's topics.
  const endpoints = createEndpointPublisher({
    bus,
    deviceId: String(deviceId),
    exposureAddress: config.exposure.address,
    logger: logger.child({ component: "endpoints" }),
  });
  const retention = config.imageRetention.enabled
    ? createImageRetention({
        runtime,
        contentStore,
        keepRecent: config.imageRetention.keepRecent,
        minAgeMs: config.imageRetention.minAgeMs,
        intervalMs: config.imageRetention.intervalMs,
        dataDir: config.dataDir,
        logger: logger.child({ component: "image-retention" }),
      })
    : undefined;
  const reconciler = createReconciler({
    registry,
    deviceKey,
    runtime,
    delivery,
    retention,
    platform,
    logger: logger.child({ component: "reconciler" }),
    metrics,
    confirmations: config.confirmations,
    intervalMs: config.reconcileIntervalMs,
    containerOptions: {
      ...(cgroup ? { cgroupParent: cgroup.cgroupParent } : {}),
      exposure: {
        address: config.exposure.address,
        ...(config.exposure.hostPortMin > 0
          ? { hostPortRange: { min: config.exposure.hostPortMin, max: config.exposure.hostPortMax } }
          : {}),
      },
      outboundAllowed: config.outboundAllowed,
    },
    onContainersChanged: () => resourceManager?.refresh(),
    onEndpoints: (replicas) =>
      endpoints
        .update(replicas)
        .catch((error: unknown) =>
          logger.warn({ err: error }, "could not publish endpoints; the next pass retries"),
        ),
  });
  const election = createElection({
    bus,
    deviceId,
    count: config.bridge.count,
    candidate: config.bridge.enabled,
    logger,
  });
  const claimer = createClaimer({
    registry,
    platform,
    logger: logger.child({ component: "claimer" }),
    options: { maxDelayMs: config.claim.maxDelayMs, jitterMs: config.claim.jitterMs },
    online: () => election.online(),
    deviceId: String(deviceId),
    hostLoad: () => Math.min(1, os.loadavg()[0] / os.cpus().length),
    onOutcome: (outcome) => {
      metrics.claims.inc({ result: outcome.result });
      if (outcome.result === "won") reconciler.markDirty("claimed");
    },
  });
  const keeper = config.keeper.enabled
    ? createKeeper({
        registry,
        deviceId,
        source,
        dataDir: config.dataDir,
        logger: logger.child({ component: "keeper" }),
        jitterMs: config.keeper.jitterMs,
        retryMs: config.keeper.retryMs,
        onOutcome: (o) =>
          o.result === "sent" && metrics.chainTransactions.inc({ method: o.duty.kind, result: "ok" }),
      })
    : undefined;
  const bridge = createBridge({
    source,
    bus,
    dataDir: config.dataDir,
    logger: logger.child({ component: "bridge" }),
  });
  return {
    runtime,
    bus,
    resourceManager,
    resourceLog,
    reconciler,
    claimer,
    source,
    bridge,
    keeper,
    peering,
    election,
  };
}

type Parts = Awaited<ReturnType<typeof buildParts>>;

/**
 * Starts every loop on `signal` and waits for them. The first loop to fail fatally aborts `stop`,
 * so the others finish their step and return, and its error is rethrown: a worker never runs on
 * without its chain source, bridge or any other loop.
 */
async function runLoops(
  config: WorkerConfig,
  conn: Connection,
  parts: Parts,
  metrics: WorkerMetrics,
  stop: AbortController,
  logger: Logger,
): Promise<void> {
  const { signal } = stop;
  const { registry, device } = conn;
  const {
    bus,
    claimer,
    reconciler,
    resourceManager,
    resourceLog,
    source,
    bridge,
    keeper,
    peering,
    election,
  } = parts;
  const onError = ({
    loop: name,
    error,
    retryable,
    delayMs,
  }: {
    loop: string;
    error: unknown;
    retryable: boolean;
    delayMs: number;
  }) => logger.warn({ loop: name, err: error, retryable, retryInMs: delayMs }, `${name} failed; retrying`);

  const heartbeatS = config.heartbeatIntervalS || Math.max(1, Math.floor(device.heartbeatTtlS / 3));
  const heartbeat = loop(
    "heartbeat",
    async () => {
      // Returns once the node accepted the beat; a beat mined reverted is thrown by the next one.
      const beat = await registry.heartbeat({ signal });
      if (beat.sent === "pending") {
        logger.debug({ tx: beat.hash }, "heartbeat: the previous beat is not mined yet; nothing sent");
        return;
      }
      metrics.chainTransactions.inc({ method: "heartbeat", result: "ok" });
      logger.debug({ tx: beat.hash, sent: beat.sent, previousBlock: beat.previousBlock }, "heartbeat");
    },
    { intervalMs: heartbeatS * 1000, signal, policy: "always", onError },
  );
  // A deployment waiting for this device's claim tier is read when the tier comes, not on the
  // next timer pass (reconcileIntervalMs, 5 s by default, would make each tier late).
  let tierTimer: NodeJS.Timeout | undefined;
  const claims = config.claim.enabled
    ? loop(
        "claimer",
        async () => {
          await claimer.pass({ signal });
          clearTimeout(tierTimer);
          const inMs = claimer.nextReadInMs();
          if (inMs !== undefined) tierTimer = setTimeout(() => claims?.poke(), inMs).unref();
        },
        { intervalMs: config.reconcileIntervalMs, signal, policy: "always", onError },
      )
    : undefined;

  // New chain logs (this worker's source, while it bridges) and events bridged by the elected
  // bridges mark the loops dirty and tell the claimer which deployments to re-read. Both are hints:
  // every decision is taken on a fresh read of the chain, so a forged or missing event costs a read
  // (or waits for the next pass), never a wrong action.
  const self = String(config.deviceId);
  const onChange = (reason: string, events: readonly ChainEvent[] | "reorg") => {
    if (events === "reorg") claimer.touch("all");
    else claimer.hear(events);
    // The reconciler acts on this device's placements only, and every placement and device event
    // names its device: other devices' events would cost a pass of reads each for nothing (its
    // timer pass, reconcileIntervalMs, is the safety net).
    if (events === "reorg" || events.some((e) => String(e.args.deviceId) === self))
      reconciler.markDirty(reason);
    claims?.poke();
  };
  /**
   * A follower's peer book: its chain source reads the peer events at start and after each
   * reconnect (from the book's saved block to the head: one bounded read, not a poll), and between
   * those the book hears them from the bridges. A bridge feeds it from its own chain source.
   */
  const catchUpPeering = async () => {
    if (!peering || election.isBridge()) return;
    try {
      while (!signal.aborted && (await source.poll(peering.handle, { signal })).type !== "idle");
    } catch (error) {
      if (!signal.aborted)
        logger.warn(
          { err: error },
          "peering: could not catch up with the chain; the bridges' events fill the book",
        );
    }
  };
  // Opening the book can fail fatally (a data dir of another chain): the supervisor below reports
  // it. `peeringCaughtUp` only orders the bridge role and reconnects after it, and never rejects.
  const peeringOpened = (async () => {
    await peering?.open({ signal });
    await catchUpPeering();
  })();
  let peeringCaughtUp = peeringOpened.catch(() => undefined);
  const seen = createSeenEvents();
  /** Highest block of a bridged event heard from an elected bridge: where a successor takes over. */
  let heardThrough = -1;
  const onBridged: MessageHandler = ({ topic, payload, sender }) => {
    // Only the elected bridges speak for the chain; anyone else's "event" is not even a hint.
    if (sender !== self && !election.trusts(sender)) {
      metrics.busMessagesDropped.inc({ reason: "not-a-bridge" });
      return;
    }
    let event: ChainEvent | undefined;
    try {
      event = JSON.parse(Buffer.from(payload).toString("utf8")) as ChainEvent;
    } catch {
      // not an event of ours; the next pass reads the chain anyway
    }
    if (event?.args && typeof event.blockHash === "string" && typeof event.logIndex === "number") {
      // Copies from several bridges are one event: de-duplicated by its chain coordinates.
      if (!seen.first(eventCoordinates(event))) return;
      if (Number.isSafeInteger(event.blockNumber)) heardThrough = Math.max(heardThrough, event.blockNumber);
      onChange("mqtt", [event]);
      peering
        ?.hear(event)
        .catch((error: unknown) => logger.warn({ err: error }, "peering: could not record a peer event"));
    } else if (topic.endsWith("/reorg")) onChange("mqtt", "reorg");
  };
  // The events this device acts on, not all of them: heartbeats, most of a fleet's events, stay
  // with the bridges (domain/topics.ts followedChainFilters).
  for (const filter of followedChainFilters(conn.chainId))
    await bus
      .subscribe(filter, onBridged)
      .catch((error: unknown) =>
        logger.warn(
          { err: error, filter },
          "could not subscribe to chain events; relying on the reconcile passes",
        ),
      );
  // Catch-up after a (re)connect: events sent while this device was away are not replayed (QoS 1,
  // clean session), so the claimer reads the deployment count and what it holds or saw wanting
  // (Claimer.catchUp), and the reconciler re-reads this device's placements: a bounded chain read,
  // not a log replay.
  bus.on((event) => {
    if (event.type !== "connected") return;
    claimer.catchUp();
    reconciler.markDirty("reconnected");
    claims?.poke();
    peeringCaughtUp = peeringCaughtUp.then(catchUpPeering);
  });

  /**
   * The bridge role: while this device is elected, its chain source feeds the bridge and the
   * keeper. A successor starts from its own checkpoint and derives quietly through the block
   * before the last one it heard from the bridges (each bridge publishes in block order, so every
   * earlier block is complete on the broker), capped at the chain's head.
   */
  const bridgeRole = async () => {
    await election.start({ signal });
    let failures = 0;
    while (!signal.aborted) {
      await election.until(true, signal);
      if (signal.aborted) break;
      const role = new AbortController();
      const offStop = onAbort(signal, () => role.abort());
      const offDemoted = election.onChange(() => !election.isBridge() && role.abort());
      try {
        await peeringCaughtUp;
        const head = await retry("read the chain head", () => conn.provider.getBlockNumber(), { signal });
        if (head === undefined) break;
        const through = quietThrough([heardThrough - 1], head);
        bridge.quietThrough(through);
        logger.info({ quietThrough: through, bridges: election.bridges() }, "bridging");
        await bridge.open({ signal: role.signal });
        await keeper?.open({ signal: role.signal });
        await Promise.all([
          source.run(
            async (batch, options) => {
              if (batch.type === "reorg") onChange("reorg", "reorg");
              else if (batch.logs.length > 0) onChange("chain", batch.logs);
              await bridge.handle(batch, options);
              await keeper?.handle(batch, options);
              await peering?.handle(batch, options);
              const status = source.status();
              if (status.head !== null)
                metrics.bridgeLagBlocks.set(Math.max(0, status.head - status.checkpoint.number));
            },
            { signal: role.signal },
          ),
          keeper?.run({ signal: role.signal }),
        ]);
        failures = 0;
      } catch (error) {
        // A chain RPC that times out while the role opens (the keeper's rewind reads the chain
        // id) is no reason to end the worker: the role starts again after a backoff, as the
        // chain source's own polls do. Anything else is fatal.
        if (signal.aborted || !isRetryable(error)) throw error;
        failures++;
        const delayMs = backoffDelay(failures, { initialMs: 1_000, maxMs: 30_000, jitter: 0.5 });
        logger.warn({ err: error, failures, retryInMs: delayMs }, "bridge role failed; retrying");
        await sleep(delayMs, signal);
      } finally {
        offDemoted();
        offStop();
      }
      if (!signal.aborted) logger.info("stopped bridging");
    }
  };
  const chain = bridgeRole();
  logger.info(
    {
      deviceId: config.deviceId,
      heartbeatS,
      bridge: config.bridge.enabled ? `elected (${config.bridge.count} of the fleet)` : false,
      claim: config.claim.enabled,
    },
    "worker started",
  );
  await superviseAll(
    [
      { name: "bridge role (chain source, bridge, keeper)", done: chain },
      { name: "reconciler", done: reconciler.run({ signal }) },
      ...(resourceManager ? [{ name: "resource manager", done: resourceManager.run({ signal }) }] : []),
      ...(resourceLog ? [{ name: "resource log", done: resourceLog.run({ signal }) }] : []),
      ...(peering
        ? [
            { name: "peering (opening the peer book)", done: peeringOpened },
            { name: "peering", done: peering.run({ signal }) },
          ]
        : []),
      { name: "heartbeat", done: heartbeat.done },
      ...(claims ? [{ name: "claimer", done: claims.done }] : []),
    ],
    (cause) => stop.abort(cause),
  );
}

/**
 * Builds the worker's parts and runs them until `signal` aborts (resolves) or a loop fails fatally
 * (rejects with a LoopError whose cause is the loop's error).
 */
export async function runWorker(
  config: WorkerConfig,
  signal: AbortSignal,
  logger: Logger,
  adapters: WorkerAdapters = {},
): Promise<void> {
  const metrics = createWorkerMetrics({ deviceId: config.deviceId });
  await mkdir(config.dataDir, { recursive: true });
  // Aborted by the caller (SIGTERM) or by the first loop that fails fatally.
  const stop = new AbortController();
  const offSignal = onAbort(signal, () => stop.abort(signal.reason));
  try {
    const conn = await connect(config, stop.signal, logger);
    const parts = await buildParts(config, conn, metrics, logger, adapters);
    const metricsServer =
      config.metricsPort > 0
        ? await serveMetrics(metrics.registry, { host: config.metricsHost, port: config.metricsPort })
        : undefined;
    if (metricsServer)
      logger.info({ url: `http://${config.metricsHost}:${metricsServer.port}/metrics` }, "metrics");
    try {
      await runLoops(config, conn, parts, metrics, stop, logger);
    } finally {
      await parts.bus
        .close()
        .catch((error: unknown) => logger.warn({ err: error }, "could not announce offline"));
      await metricsServer?.close();
      conn.provider.destroy();
    }
  } finally {
    offSignal();
  }
  logger.info("worker stopped");
}

export async function main(argv: string[]): Promise<number> {
  let config: WorkerConfig;
  try {
    const args = parseArgs(argv);
    if (args.help) {
      process.stdout.write(HELP);
      return 0;
    }
    config = loadConfig({ file: args.config });
  } catch (error) {
    process.stderr.write(`shoal-worker: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  const logger = pino({ level: config.logLevel, base: { device: config.deviceId } });
  const controller = new AbortController();
  const stop = (signalName: string) => {
    if (controller.signal.aborted) return;
    logger.info({ signal: signalName }, "stopping: finishing the current pass");
    controller.abort();
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  try {
    await runWorker(config, controller.signal, logger);
    return 0;
  } catch (error) {
    logger.fatal({ err: error }, error instanceof Error ? error.message : String(error));
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
