/**
 * shoal-worker: one process per edge device. Wiring only: every behaviour lives in the modules it
 * connects. Four loops share one AbortSignal:
 *   chain source -> bridge (MQTT) -> marks the reconciler and the claimer dirty
 *   claimer      (claims replicas this device fits, after a score-based delay)
 *   reconciler   (chain desired state vs Docker actual state)
 *   heartbeat    (liveness on chain, well inside the TTL)
 * SIGTERM/SIGINT: stop taking work, finish the reconcile pass under way, publish offline, exit 0.
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
import { createClaimer, deploymentsTouchedBy } from "./claimer";
import { ConfigError, ENV, loadConfig, type WorkerConfig } from "./config";
import { createDelivery } from "./delivery";
import { createKeeper } from "./keeper";
import type { Platform } from "./domain/manifest";
import { isRetryable, ShoalError } from "./errors";
import { createWorkerMetrics, serveMetrics } from "./metrics";
import type { ChainEvent } from "./ports/chain-source";
import type { Band } from "./ports/registry";
import { createReconciler } from "./reconciler";
import { chainSenderLookup, createSealer, createSignedBus, createVerifier } from "./signed-bus";
import { createResourceManager } from "./resource-manager";

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

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    signal.addEventListener("abort", wake, { once: true });
  });
}

/** Repeats `step` every `intervalMs` (sooner when poked) until the signal aborts; errors are logged. */
function loop(
  name: string,
  logger: Logger,
  intervalMs: number,
  signal: AbortSignal,
  step: () => Promise<void>,
) {
  let poke: (() => void) | undefined;
  let poked = false;
  const done = (async () => {
    while (!signal.aborted) {
      poked = false;
      try {
        await step();
      } catch (error) {
        if (signal.aborted) break;
        logger.warn({ loop: name, err: error, retryable: isRetryable(error) }, `${name} failed; retrying`);
      }
      if (poked || signal.aborted) continue;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        const timer = setTimeout(wake, intervalMs);
        poke = wake;
        signal.addEventListener("abort", wake, { once: true });
      });
      poke = undefined;
    }
  })();
  return {
    done,
    poke() {
      poked = true;
      poke?.();
    },
  };
}

/** The chain id, waiting for the RPC endpoint to answer (a device may boot before its network). */
async function chainIdOf(rpcUrl: string, logger: Logger, signal: AbortSignal): Promise<number> {
  for (let delay = 500; !signal.aborted; delay = Math.min(delay * 2, 15_000)) {
    const probe = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true });
    try {
      return Number(await probe.send("eth_chainId", []));
    } catch (error) {
      logger.warn({ rpcUrl, err: error, retryInMs: delay }, "chain RPC not reachable yet");
      await sleep(delay, signal);
    } finally {
      probe.destroy();
    }
  }
  throw new ShoalError("stopped while waiting for the chain RPC");
}

export async function runWorker(config: WorkerConfig, signal: AbortSignal, logger: Logger): Promise<void> {
  const deviceId = config.deviceId;
  const metrics = createWorkerMetrics({ deviceId });
  await mkdir(config.dataDir, { recursive: true });

  const record = JSON.parse(readFileSync(config.deploymentsFile, "utf8")) as {
    chainId: number;
    contracts: Record<string, { address: string; blockNumber: number }>;
  };
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
  if (device.status === "None")
    throw new ConfigError(`deviceId: ${deviceId} is not enrolled on chain ${chainId}`);
  const platform = device.platform as Platform;
  logger.info(
    { deviceId, platform, chainId, capacity: [device.cpuCapacityMillicores, device.memoryCapacityMiB] },
    "device",
  );

  const runtime = createDockerRuntime({ docker: createDockerClient(config.dockerSocket) });
  const contentStore = createKuboContentStore({ url: config.kuboUrl });
  const delivery = createDelivery({
    contentStore,
    runtime,
    platform,
    logger: logger.child({ component: "delivery" }),
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
      logger,
      onPublishFailure: () => metrics.mqttPublishFailures.inc(),
      seal: (topic, payload) => sealer.seal([{ topic, payload, retain: true }])[0],
    }),
    sealer,
    verifier: createVerifier({
      lookup: chainSenderLookup(provider, record.contracts.DeviceRegistry.address),
      droppedCounter: metrics.busMessagesDropped,
      onDrop: (topic, reason) => logger.debug({ topic, reason }, "dropped an unverified message"),
    }),
  });

  // The device's name in Docker and the cgroup tree: chain, registry and id, so devices of several
  // chains on one host never touch each other's containers.
  const deviceKey = `${chainId}-${record.contracts.DeviceRegistry.address.slice(2, 10).toLowerCase()}-${deviceId}`;
  // The device's enrolled capacity, enforced by the kernel: every container runs under this cgroup.
  const cgroup = config.resources.enabled
    ? await ensureDeviceCgroup({
        deviceId: deviceKey,
        cpuMillicores: device.cpuCapacityMillicores,
        memoryMiB: device.memoryCapacityMiB,
      }).catch((error: unknown) => {
        throw new ConfigError(
          "resources.enabled: the device cgroup could not be created (the worker needs root and a writable " +
            "/sys/fs/cgroup); set resources.enabled to false to run without capacity caps or live resizing",
          { cause: error },
        );
      })
    : undefined;

  // Bands by app version; versions are immutable, so a miss is fetched once and the container is
  // left at its limits until then.
  const bands = new Map<string, Band | "pending">();
  const resourceManager = cgroup
    ? createResourceManager({
        deviceId: String(deviceId),
        runtimeDeviceId: deviceKey,
        capacity: { cpuMillicores: device.cpuCapacityMillicores, memoryMiB: device.memoryCapacityMiB },
        runtime,
        metrics: createCgroupMetricsSource({ cgroupParent: cgroup.cgroupParent }),
        bandOf: (container) => {
          const key = `${container.appId}/${container.version}`;
          const band = bands.get(key);
          if (band === undefined) {
            bands.set(key, "pending");
            registry.version(Number(container.appId), Number(container.version), platform).then(
              (v) => bands.set(key, v.band),
              () => bands.delete(key),
            );
          }
          return band === "pending" || band === undefined
            ? undefined
            : {
                cpuMillicoresMin: band.cpuMinMillicores,
                cpuMillicoresMax: band.cpuMaxMillicores,
                memoryMiBMin: band.memoryMinMiB,
                memoryMiBMax: band.memoryMaxMiB,
              };
        },
        evict: async (placementId) => {
          // Give the replica back (Failed: Evicted) so a device with room claims it, then free ours.
          await registry.fail(placementId, "Evicted");
          metrics.chainTransactions.inc({ method: "fail", result: "ok" });
          reconciler.markDirty("evicted");
        },
        bus,
        params: { periodMs: config.resources.periodMs, fastPeriodMs: config.resources.fastPeriodMs },
        logger,
        promMetrics: metrics,
      })
    : undefined;

  const reconciler = createReconciler({
    registry,
    deviceKey,
    runtime,
    delivery,
    platform,
    logger: logger.child({ component: "reconciler" }),
    metrics,
    confirmations: config.confirmations,
    intervalMs: config.reconcileIntervalMs,
    containerOptions: cgroup ? { cgroupParent: cgroup.cgroupParent } : undefined,
    onContainersChanged: () => resourceManager?.refresh(),
  });
  const claimer = createClaimer({
    registry,
    platform,
    logger: logger.child({ component: "claimer" }),
    options: { maxDelayMs: config.claim.maxDelayMs, jitterMs: config.claim.jitterMs },
    hostLoad: () => Math.min(1, os.loadavg()[0] / os.cpus().length),
    onOutcome: (outcome) => {
      metrics.claims.inc({ result: outcome.result });
      if (outcome.result === "won") reconciler.markDirty("claimed");
    },
  });

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

  const metricsServer =
    config.metricsPort > 0
      ? await serveMetrics(metrics.registry, { host: config.metricsHost, port: config.metricsPort })
      : undefined;
  if (metricsServer)
    logger.info({ url: `http://${config.metricsHost}:${metricsServer.port}/metrics` }, "metrics");

  const heartbeatS = config.heartbeatIntervalS || Math.max(1, Math.floor(device.heartbeatTtlS / 3));
  const heartbeat = loop("heartbeat", logger, heartbeatS * 1000, signal, async () => {
    const { hash } = await registry.heartbeat();
    metrics.chainTransactions.inc({ method: "heartbeat", result: "ok" });
    logger.debug({ tx: hash }, "heartbeat");
  });
  const claims = config.claim.enabled
    ? loop(
        "claimer",
        logger,
        config.reconcileIntervalMs,
        signal,
        async () => void (await claimer.pass({ signal })),
      )
    : undefined;

  // New chain logs (this worker's source) and bridged events (any worker's, often first) mark the
  // loops dirty and tell the claimer which deployments to re-read. Both are hints: every decision
  // is taken on a fresh read of the chain.
  const onChange = (reason: string, events: readonly ChainEvent[] | "reorg") => {
    claimer.touch(events === "reorg" ? "all" : deploymentsTouchedBy(events));
    reconciler.markDirty(reason);
    claims?.poke();
  };
  await bus
    .subscribe("shoal/v1/chain/#", ({ payload }) => {
      let event: ChainEvent | undefined;
      try {
        event = JSON.parse(Buffer.from(payload).toString("utf8")) as ChainEvent;
      } catch {
        // not an event of ours; the chain source delivers it anyway
      }
      onChange("mqtt", event?.args ? [event] : []);
    })
    .catch((error: unknown) =>
      logger.warn({ err: error }, "could not subscribe to chain events; relying on the chain source"),
    );
  const chain = (async () => {
    if (config.bridge.enabled) await bridge.open({ signal });
    await keeper?.open({ signal });
    await source.run(
      async (batch, options) => {
        if (batch.type === "reorg") onChange("reorg", "reorg");
        else if (batch.logs.length > 0) onChange("chain", batch.logs);
        if (config.bridge.enabled) await bridge.handle(batch, options);
        await keeper?.handle(batch, options);
        const status = source.status();
        if (status.head !== null)
          metrics.bridgeLagBlocks.set(Math.max(0, status.head - status.checkpoint.number));
      },
      { signal },
    );
  })();
  const reconciling = reconciler.run({ signal });
  const resizing = resourceManager?.run({ signal });
  const keeping = keeper?.run({ signal });
  logger.info(
    { deviceId, heartbeatS, bridge: config.bridge.enabled, claim: config.claim.enabled },
    "worker started",
  );

  const results = await Promise.allSettled([
    chain,
    reconciling,
    resizing,
    keeping,
    heartbeat.done,
    claims?.done,
  ]);
  for (const result of results) if (result.status === "rejected" && !signal.aborted) throw result.reason;
  await bus.close().catch((error: unknown) => logger.warn({ err: error }, "could not announce offline"));
  await metricsServer?.close();
  provider.destroy();
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
