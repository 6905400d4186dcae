/**
 * The public entry point of the worker's code: what tasks, scripts (the fleet), benches and tests
 * import, never a deep path into workers/src (ESLint's no-restricted-imports enforces it).
 *
 * One home per concept (docs/architecture.md, "One vocabulary"): ids and their codecs, resource
 * bands, labels, placement states and the reducer from events to state, the manifest, topic names,
 * in the pure domain; the ports; the adapters and services for tests and benches.
 */

// ---- domain (pure)
export * from "./domain/band";
export * from "./domain/bounded";
export * from "./domain/chain-enums";
export * from "./domain/chain-event";
export * from "./domain/container-spec";
export * from "./domain/controller";
export * from "./domain/deployment-record";
export * from "./domain/election";
export * from "./domain/desired-state";
export * from "./domain/envelope";
export * from "./domain/host-usage";
export * from "./domain/image-retention";
export * from "./domain/keeper";
export * from "./domain/manifest";
export * from "./domain/message-verifier";
export * from "./domain/peer-book";
export * from "./domain/placement";
export * from "./domain/plan";
export * from "./domain/resource-log";
export * from "./domain/scoring";
export * from "./domain/topics";
export * from "./errors";

// ---- ports
export * from "./ports/bus";
export * from "./ports/chain-source";
export * from "./ports/content-store";
export * from "./ports/metrics";
export * from "./ports/registry";
export * from "./ports/resource-anchor";
export * from "./ports/runtime";

// ---- lib (small, pure of library clients)
export * from "./lib/json-file";
export * from "./lib/supervise";

// ---- services and adapters: their types here, their code loaded on first use. Loading them at
// once (typechain bindings, pino, prom-client, dockerode, kubo-rpc-client, mqtt) doubles the start
// of every Hardhat command, since the tasks import this entry point; functions are wrappers, classes
// and constants getters, both typed as the real thing.
import type * as BridgeModule from "./bridge";
import type * as ClaimerModule from "./claimer";
import type * as ElectionModule from "./election";
import type * as ConfigModule from "./config";
import type * as DeliveryModule from "./delivery";
import type * as ImageRetentionModule from "./image-retention";
import type * as KeeperModule from "./keeper";
import type * as PeeringModule from "./peering";
import type * as MetricsModule from "./metrics";
import type * as ReconcilerModule from "./reconciler";
import type * as HealthProberModule from "./health-prober";
import type * as ResourceManagerModule from "./resource-manager";
import type * as ResourceLogModule from "./resource-log";
import type * as EthersResourceLogModule from "./adapters/ethers-resource-log";
import type * as SignedBusModule from "./signed-bus";
import type * as CgroupMetricsModule from "./adapters/cgroup-metrics";
import type * as DeviceCgroupModule from "./adapters/device-cgroup";
import type * as DockerClientModule from "./adapters/docker-client";
import type * as DockerImagesModule from "./adapters/docker-images";
import type * as DockerRuntimeModule from "./adapters/docker-runtime";
import type * as EthersChainSourceModule from "./adapters/ethers-chain-source";
import type * as EthersRegistryModule from "./adapters/ethers-registry";
import type * as EthersHeartbeatModule from "./adapters/ethers-heartbeat";
import type * as HostMetricsModule from "./adapters/host-metrics";
import type * as KuboModule from "./adapters/kubo";
import type * as MqttBusModule from "./adapters/mqtt-bus";
import type * as ShoalContractsModule from "./adapters/shoal-contracts";
import type * as MemoryRuntimeModule from "./adapters/memory-runtime";
import type * as MemoryContentStoreModule from "./adapters/memory-content-store";
import type * as HollowModule from "./hollow";
export type * from "./bridge";
export type * from "./claimer";
export type * from "./election";
export type * from "./config";
export type * from "./delivery";
export type * from "./image-retention";
export type * from "./keeper";
export type * from "./peering";
export type * from "./metrics";
export type * from "./reconciler";
export type * from "./health-prober";
export type * from "./endpoints";
export type * from "./resource-manager";
export type * from "./resource-log";
export type * from "./adapters/ethers-resource-log";
export type * from "./signed-bus";
export type * from "./adapters/cgroup-metrics";
export type * from "./adapters/device-cgroup";
export type * from "./adapters/docker-client";
export type * from "./adapters/docker-images";
export type * from "./adapters/docker-runtime";
export type * from "./adapters/ethers-chain-source";
export type * from "./adapters/ethers-registry";
export type * from "./adapters/host-metrics";
export type * from "./adapters/kubo";
export type * from "./adapters/mqtt-bus";
export type * from "./adapters/shoal-contracts";
export type * from "./adapters/memory-runtime";
export type * from "./adapters/memory-content-store";
export type * from "./hollow";

const once = <M>(load: () => M) => {
  let module: M | undefined;
  return () => (module ??= load());
};
const load = {
  bridge: once(() => require("./bridge") as typeof BridgeModule),
  claimer: once(() => require("./claimer") as typeof ClaimerModule),
  election: once(() => require("./election") as typeof ElectionModule),
  config: once(() => require("./config") as typeof ConfigModule),
  delivery: once(() => require("./delivery") as typeof DeliveryModule),
  imageRetention: once(() => require("./image-retention") as typeof ImageRetentionModule),
  keeper: once(() => require("./keeper") as typeof KeeperModule),
  peering: once(() => require("./peering") as typeof PeeringModule),
  metrics: once(() => require("./metrics") as typeof MetricsModule),
  reconciler: once(() => require("./reconciler") as typeof ReconcilerModule),
  healthProber: once(() => require("./health-prober") as typeof HealthProberModule),
  resourceManager: once(() => require("./resource-manager") as typeof ResourceManagerModule),
  signedBus: once(() => require("./signed-bus") as typeof SignedBusModule),
  cgroupMetrics: once(() => require("./adapters/cgroup-metrics") as typeof CgroupMetricsModule),
  deviceCgroup: once(() => require("./adapters/device-cgroup") as typeof DeviceCgroupModule),
  dockerClient: once(() => require("./adapters/docker-client") as typeof DockerClientModule),
  dockerImages: once(() => require("./adapters/docker-images") as typeof DockerImagesModule),
  dockerRuntime: once(() => require("./adapters/docker-runtime") as typeof DockerRuntimeModule),
  ethersChainSource: once(() => require("./adapters/ethers-chain-source") as typeof EthersChainSourceModule),
  ethersRegistry: once(() => require("./adapters/ethers-registry") as typeof EthersRegistryModule),
  ethersHeartbeat: once(() => require("./adapters/ethers-heartbeat") as typeof EthersHeartbeatModule),
  hostMetrics: once(() => require("./adapters/host-metrics") as typeof HostMetricsModule),
  kubo: once(() => require("./adapters/kubo") as typeof KuboModule),
  mqttBus: once(() => require("./adapters/mqtt-bus") as typeof MqttBusModule),
  resourceLog: once(() => require("./resource-log") as typeof ResourceLogModule),
  ethersResourceLog: once(() => require("./adapters/ethers-resource-log") as typeof EthersResourceLogModule),
  shoalContracts: once(() => require("./adapters/shoal-contracts") as typeof ShoalContractsModule),
  memoryRuntime: once(() => require("./adapters/memory-runtime") as typeof MemoryRuntimeModule),
  memoryContentStore: once(
    () => require("./adapters/memory-content-store") as typeof MemoryContentStoreModule,
  ),
  hollow: once(() => require("./hollow") as typeof HollowModule),
};

export const createResourceLog: typeof ResourceLogModule.createResourceLog = (...args) =>
  load.resourceLog().createResourceLog(...args);
export const createEthersResourceAnchor: typeof EthersResourceLogModule.createEthersResourceAnchor = (
  ...args
) => load.ethersResourceLog().createEthersResourceAnchor(...args);
export declare const RESOURCE_LOG_FILE: typeof ResourceLogModule.RESOURCE_LOG_FILE;
lazyValue("RESOURCE_LOG_FILE", () => load.resourceLog().RESOURCE_LOG_FILE);
export const connectShoalContracts: typeof ShoalContractsModule.connectShoalContracts = (...args) =>
  load.shoalContracts().connectShoalContracts(...args);

/** Exports `name` as a getter into its module, loaded on first read. */
function lazyValue(name: string, get: () => unknown): void {
  Object.defineProperty(exports, name, { enumerable: true, get });
}

export const createBridge: typeof BridgeModule.createBridge = (...args) =>
  load.bridge().createBridge(...args);
export declare const BridgeError: typeof BridgeModule.BridgeError;
export type BridgeError = BridgeModule.BridgeError;
lazyValue("BridgeError", () => load.bridge().BridgeError);
export const deploymentsTouchedBy: typeof ClaimerModule.deploymentsTouchedBy = (...args) =>
  load.claimer().deploymentsTouchedBy(...args);
export const createClaimer: typeof ClaimerModule.createClaimer = (...args) =>
  load.claimer().createClaimer(...args);
export const createElection: typeof ElectionModule.createElection = (...args) =>
  load.election().createElection(...args);
export const loadConfig: typeof ConfigModule.loadConfig = (...args) => load.config().loadConfig(...args);
export declare const ConfigError: typeof ConfigModule.ConfigError;
export type ConfigError = ConfigModule.ConfigError;
lazyValue("ConfigError", () => load.config().ConfigError);
export declare const ENV: typeof ConfigModule.ENV;
lazyValue("ENV", () => load.config().ENV);
export const createDelivery: typeof DeliveryModule.createDelivery = (...args) =>
  load.delivery().createDelivery(...args);
export const createImageRetention: typeof ImageRetentionModule.createImageRetention = (...args) =>
  load.imageRetention().createImageRetention(...args);
export declare const DeliveryError: typeof DeliveryModule.DeliveryError;
export type DeliveryError = DeliveryModule.DeliveryError;
lazyValue("DeliveryError", () => load.delivery().DeliveryError);
export const createWorkerMetrics: typeof MetricsModule.createWorkerMetrics = (...args) =>
  load.metrics().createWorkerMetrics(...args);
export const serveMetrics: typeof MetricsModule.serveMetrics = (...args) =>
  load.metrics().serveMetrics(...args);
export const createReconciler: typeof ReconcilerModule.createReconciler = (...args) =>
  load.reconciler().createReconciler(...args);
export const createHealthProber: typeof HealthProberModule.createHealthProber = (...args) =>
  load.healthProber().createHealthProber(...args);
export const probeOnce: typeof HealthProberModule.probeOnce = (...args) =>
  load.healthProber().probeOnce(...args);
export const createResourceManager: typeof ResourceManagerModule.createResourceManager = (...args) =>
  load.resourceManager().createResourceManager(...args);
export const parseFlatKeyed: typeof CgroupMetricsModule.parseFlatKeyed = (...args) =>
  load.cgroupMetrics().parseFlatKeyed(...args);
export const parseV1Cpu: typeof CgroupMetricsModule.parseV1Cpu = (...args) =>
  load.cgroupMetrics().parseV1Cpu(...args);
export const parseV2Cpu: typeof CgroupMetricsModule.parseV2Cpu = (...args) =>
  load.cgroupMetrics().parseV2Cpu(...args);
export const parseV1Counters: typeof CgroupMetricsModule.parseV1Counters = (...args) =>
  load.cgroupMetrics().parseV1Counters(...args);
export const parseV2Counters: typeof CgroupMetricsModule.parseV2Counters = (...args) =>
  load.cgroupMetrics().parseV2Counters(...args);
export const createCgroupMetrics: typeof CgroupMetricsModule.createCgroupMetrics = (...args) =>
  load.cgroupMetrics().createCgroupMetrics(...args);
export const createCgroupMetricsSource: typeof CgroupMetricsModule.createCgroupMetricsSource = (...args) =>
  load.cgroupMetrics().createCgroupMetricsSource(...args);
export declare const CgroupMetricsError: typeof CgroupMetricsModule.CgroupMetricsError;
export type CgroupMetricsError = CgroupMetricsModule.CgroupMetricsError;
lazyValue("CgroupMetricsError", () => load.cgroupMetrics().CgroupMetricsError);
export const deviceCgroupParent: typeof DeviceCgroupModule.deviceCgroupParent = (...args) =>
  load.deviceCgroup().deviceCgroupParent(...args);
export const detectCgroupVersion: typeof DeviceCgroupModule.detectCgroupVersion = (...args) =>
  load.deviceCgroup().detectCgroupVersion(...args);
export const ensureDeviceCgroup: typeof DeviceCgroupModule.ensureDeviceCgroup = (...args) =>
  load.deviceCgroup().ensureDeviceCgroup(...args);
export const removeDeviceCgroup: typeof DeviceCgroupModule.removeDeviceCgroup = (...args) =>
  load.deviceCgroup().removeDeviceCgroup(...args);
export declare const DEFAULT_CGROUP_ROOT: typeof DeviceCgroupModule.DEFAULT_CGROUP_ROOT;
lazyValue("DEFAULT_CGROUP_ROOT", () => load.deviceCgroup().DEFAULT_CGROUP_ROOT);
export declare const SHOAL_CGROUP_DIR: typeof DeviceCgroupModule.SHOAL_CGROUP_DIR;
lazyValue("SHOAL_CGROUP_DIR", () => load.deviceCgroup().SHOAL_CGROUP_DIR);
export declare const DeviceCgroupError: typeof DeviceCgroupModule.DeviceCgroupError;
export type DeviceCgroupError = DeviceCgroupModule.DeviceCgroupError;
lazyValue("DeviceCgroupError", () => load.deviceCgroup().DeviceCgroupError);
export const createDockerClient: typeof DockerClientModule.createDockerClient = (...args) =>
  load.dockerClient().createDockerClient(...args);
export const splitPlatform: typeof DockerImagesModule.splitPlatform = (...args) =>
  load.dockerImages().splitPlatform(...args);
export const exportImage: typeof DockerImagesModule.exportImage = (...args) =>
  load.dockerImages().exportImage(...args);
export const inspectImageTar: typeof DockerImagesModule.inspectImageTar = (...args) =>
  load.dockerImages().inspectImageTar(...args);
export const imagePlatformMatches: typeof DockerImagesModule.imagePlatformMatches = (...args) =>
  load.dockerImages().imagePlatformMatches(...args);
export declare const ImageExportError: typeof DockerImagesModule.ImageExportError;
export type ImageExportError = DockerImagesModule.ImageExportError;
lazyValue("ImageExportError", () => load.dockerImages().ImageExportError);
export const translateDockerError: typeof DockerRuntimeModule.translateDockerError = (...args) =>
  load.dockerRuntime().translateDockerError(...args);
export const createDockerRuntime: typeof DockerRuntimeModule.createDockerRuntime = (...args) =>
  load.dockerRuntime().createDockerRuntime(...args);
export const toCreateOptions: typeof DockerRuntimeModule.toCreateOptions = (...args) =>
  load.dockerRuntime().toCreateOptions(...args);
export const createLogDecoder: typeof EthersChainSourceModule.createLogDecoder = (...args) =>
  load.ethersChainSource().createLogDecoder(...args);
export const contractsFromDeployment: typeof EthersChainSourceModule.contractsFromDeployment = (...args) =>
  load.ethersChainSource().contractsFromDeployment(...args);
export const createEthersChainSource: typeof EthersChainSourceModule.createEthersChainSource = (...args) =>
  load.ethersChainSource().createEthersChainSource(...args);
export declare const ChainSourceError: typeof EthersChainSourceModule.ChainSourceError;
export type ChainSourceError = EthersChainSourceModule.ChainSourceError;
lazyValue("ChainSourceError", () => load.ethersChainSource().ChainSourceError);
export declare const REGISTRY_CONTRACTS: typeof EthersChainSourceModule.REGISTRY_CONTRACTS;
lazyValue("REGISTRY_CONTRACTS", () => load.ethersChainSource().REGISTRY_CONTRACTS);
export const translateChainError: typeof EthersRegistryModule.translateChainError = (...args) =>
  load.ethersRegistry().translateChainError(...args);
export const isUnderpriced: typeof EthersHeartbeatModule.isUnderpriced = (...args) =>
  load.ethersHeartbeat().isUnderpriced(...args);
export const createEthersRegistry: typeof EthersRegistryModule.createEthersRegistry = (...args) =>
  load.ethersRegistry().createEthersRegistry(...args);
export const parseHostCounters: typeof HostMetricsModule.parseHostCounters = (...args) =>
  load.hostMetrics().parseHostCounters(...args);
export const readHostCounters: typeof HostMetricsModule.readHostCounters = (...args) =>
  load.hostMetrics().readHostCounters(...args);
export const createKuboContentStore: typeof KuboModule.createKuboContentStore = (...args) =>
  load.kubo().createKuboContentStore(...args);
export declare const ContentStoreError: typeof KuboModule.ContentStoreError;
export type ContentStoreError = KuboModule.ContentStoreError;
lazyValue("ContentStoreError", () => load.kubo().ContentStoreError);
export const createMqttBus: typeof MqttBusModule.createMqttBus = (...args) =>
  load.mqttBus().createMqttBus(...args);
export const primePacketLengthCache: typeof MqttBusModule.primePacketLengthCache = (...args) =>
  load.mqttBus().primePacketLengthCache(...args);
export const createKeeper: typeof KeeperModule.createKeeper = (...args) =>
  load.keeper().createKeeper(...args);
export const createPeering: typeof PeeringModule.createPeering = (...args) =>
  load.peering().createPeering(...args);
export const preferredAddress: typeof PeeringModule.preferredAddress = (...args) =>
  load.peering().preferredAddress(...args);
export const createSealer: typeof SignedBusModule.createSealer = (...args) =>
  load.signedBus().createSealer(...args);
export const chainSenderLookup: typeof SignedBusModule.chainSenderLookup = (...args) =>
  load.signedBus().chainSenderLookup(...args);
export const createVerifier: typeof SignedBusModule.createVerifier = (...args) =>
  load.signedBus().createVerifier(...args);
export const createSignedBus: typeof SignedBusModule.createSignedBus = (...args) =>
  load.signedBus().createSignedBus(...args);
export const createMemoryRuntime: typeof MemoryRuntimeModule.createMemoryRuntime = (...args) =>
  load.memoryRuntime().createMemoryRuntime(...args);
export const hollowImageTar: typeof MemoryRuntimeModule.hollowImageTar = (...args) =>
  load.memoryRuntime().hollowImageTar(...args);
export const createMemoryContentStore: typeof MemoryContentStoreModule.createMemoryContentStore = (...args) =>
  load.memoryContentStore().createMemoryContentStore(...args);
export const rawLeafCid: typeof MemoryContentStoreModule.rawLeafCid = (...args) =>
  load.memoryContentStore().rawLeafCid(...args);
export declare const MemoryContentStoreError: typeof MemoryContentStoreModule.MemoryContentStoreError;
export type MemoryContentStoreError = MemoryContentStoreModule.MemoryContentStoreError;
lazyValue("MemoryContentStoreError", () => load.memoryContentStore().MemoryContentStoreError);
export const enrollHollowDevices: typeof HollowModule.enrollHollowDevices = (...args) =>
  load.hollow().enrollHollowDevices(...args);
export const runHollowDevices: typeof HollowModule.runHollowDevices = (...args) =>
  load.hollow().runHollowDevices(...args);
export const hollowOperatorKey: typeof HollowModule.hollowOperatorKey = (...args) =>
  load.hollow().hollowOperatorKey(...args);
export declare const HollowError: typeof HollowModule.HollowError;
export type HollowError = HollowModule.HollowError;
lazyValue("HollowError", () => load.hollow().HollowError);
export const publishHollowApp: typeof HollowModule.publishHollowApp = (...args) =>
  load.hollow().publishHollowApp(...args);
export const addHollowAppContent: typeof HollowModule.addHollowAppContent = (...args) =>
  load.hollow().addHollowAppContent(...args);
