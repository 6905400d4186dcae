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
export * from "./domain/chain-enums";
export * from "./domain/chain-event";
export * from "./domain/container-spec";
export * from "./domain/controller";
export * from "./domain/deployment-record";
export * from "./domain/desired-state";
export * from "./domain/host-usage";
export * from "./domain/labels";
export * from "./domain/manifest";
export * from "./domain/placement";
export * from "./domain/plan";
export * from "./domain/scoring";
export * from "./domain/topics";
export * from "./errors";

// ---- ports
export * from "./ports/bus";
export * from "./ports/chain-source";
export * from "./ports/content-store";
export * from "./ports/metrics";
export * from "./ports/registry";
export * from "./ports/runtime";

// ---- lib, services, adapters
export * from "./lib/json-file";
export * from "./lib/supervise";
export * from "./bridge";
export * from "./claimer";
export * from "./config";
export * from "./delivery";
export * from "./metrics";
export * from "./reconciler";
export * from "./resource-manager";
export * from "./adapters/cgroup-metrics";
export * from "./adapters/device-cgroup";
export * from "./adapters/ethers-chain-source";
export * from "./adapters/ethers-registry";
export * from "./adapters/host-metrics";

// ---- adapters over heavy clients (dockerode, kubo-rpc-client, mqtt): their types here, their code
// loaded on the first call, because loading them adds about 0.6 s to every Hardhat command (the
// tasks import this entry point). Their errors live in the ports (RuntimeError, BusError).
import type * as DockerClient from "./adapters/docker-client";
import type * as DockerImages from "./adapters/docker-images";
import type * as DockerRuntime from "./adapters/docker-runtime";
import type * as Kubo from "./adapters/kubo";
import type * as MqttBus from "./adapters/mqtt-bus";
export type { ExportedImage, ImageExportError } from "./adapters/docker-images";
export type { DockerRuntimeOptions } from "./adapters/docker-runtime";
export type { ContentStoreError, KuboContentStoreOptions } from "./adapters/kubo";
export type { MqttBus, MqttBusDeps } from "./adapters/mqtt-bus";

const load = {
  dockerClient: () => require("./adapters/docker-client") as typeof DockerClient,
  dockerImages: () => require("./adapters/docker-images") as typeof DockerImages,
  dockerRuntime: () => require("./adapters/docker-runtime") as typeof DockerRuntime,
  kubo: () => require("./adapters/kubo") as typeof Kubo,
  mqttBus: () => require("./adapters/mqtt-bus") as typeof MqttBus,
};
export const createDockerClient: typeof DockerClient.createDockerClient = (...args) =>
  load.dockerClient().createDockerClient(...args);
export const exportImage: typeof DockerImages.exportImage = (...args) =>
  load.dockerImages().exportImage(...args);
export const splitPlatform: typeof DockerImages.splitPlatform = (...args) =>
  load.dockerImages().splitPlatform(...args);
export const createDockerRuntime: typeof DockerRuntime.createDockerRuntime = (...args) =>
  load.dockerRuntime().createDockerRuntime(...args);
export const toCreateOptions: typeof DockerRuntime.toCreateOptions = (...args) =>
  load.dockerRuntime().toCreateOptions(...args);
export const translateDockerError: typeof DockerRuntime.translateDockerError = (...args) =>
  load.dockerRuntime().translateDockerError(...args);
export const createKuboContentStore: typeof Kubo.createKuboContentStore = (...args) =>
  load.kubo().createKuboContentStore(...args);
export const createMqttBus: typeof MqttBus.createMqttBus = (...args) => load.mqttBus().createMqttBus(...args);
