/**
 * Shoal's MQTT topic scheme and payloads, pure: names, the JSON of each message, and the table
 * docs/mqtt.md is written from (a unit test keeps the two in step). Topics are versioned under
 * `shoal/v1` so a v2 scheme can run beside v1 during an upgrade.
 */
import { ShoalError } from "../errors";
import type { BlockRef, ChainEvent } from "./chain-event";
import { lookup, type DesiredState, type EntityRef } from "./desired-state";

export const TOPIC_ROOT = "shoal/v1";
/** `v` of every payload; bumped on an incompatible payload change. */
export const PAYLOAD_VERSION = 1;

export type Qos = 0 | 1 | 2;

/** A message to publish; `payload` "" with retain clears a retained topic. */
export interface OutgoingMessage {
  topic: string;
  payload: string;
  qos: Qos;
  retain: boolean;
}

/** A topic level must be non-empty and free of separators and wildcards. */
function level(value: string | number, what: string): string {
  const s = String(value);
  if (s === "" || /[/+#]/.test(s) || s.includes("\0")) {
    throw new ShoalError(
      `${what} "${s}" cannot be an MQTT topic level; it must be non-empty without / + # or NUL`,
    );
  }
  return s;
}

/**
 * The topic names under `root` (default `shoal/v1`). Another root namespaces a fleet that shares a
 * broker with others (and keeps parallel test runs apart).
 */
export function createTopics(root: string = TOPIC_ROOT) {
  if (root === "" || root.startsWith("/") || root.endsWith("/") || /[+#]/.test(root) || root.includes("\0")) {
    throw new ShoalError(
      `topic root "${root}" must be non-empty, without a leading or trailing / and without + #`,
    );
  }
  const prefix = `${root}/chain/`;
  return {
    root,
    chainEvent: (chainId: number, contract: string, event: string) =>
      `${root}/chain/${level(chainId, "chainId")}/${level(contract, "contract")}/${level(event, "event")}`,
    chainReorg: (chainId: number) => `${root}/chain/${level(chainId, "chainId")}/reorg`,
    placementState: (placementId: string | number) =>
      `${root}/placements/${level(placementId, "placementId")}/state`,
    deploymentState: (deploymentId: string | number) =>
      `${root}/deployments/${level(deploymentId, "deploymentId")}/state`,
    deviceChain: (deviceId: string | number) => `${root}/devices/${level(deviceId, "deviceId")}/chain`,
    deviceStatus: (deviceId: string | number) => `${root}/devices/${level(deviceId, "deviceId")}/status`,
    /** Retained endpoints of one running replica, under its device's own topics (issue 15). */
    deviceEndpoints: (deviceId: string | number, placementId: string | number) =>
      `${root}/devices/${level(deviceId, "deviceId")}/endpoints/${level(placementId, "placementId")}`,
    /** `{ chainId, contract, event }` of a bridged-event topic, or null for any other topic. */
    parseChainEvent(topic: string): { chainId: number; contract: string; event: string } | null {
      if (!topic.startsWith(prefix)) return null;
      const m = /^(\d+)\/([^/]+)\/([^/]+)$/.exec(topic.slice(prefix.length));
      return m ? { chainId: Number(m[1]), contract: m[2], event: m[3] } : null;
    },
  };
}

export type Topics = ReturnType<typeof createTopics>;

/**
 * The DeviceRegistry events a device worker follows: those that change who may claim (the
 * claimer), who signs for a device (the signed bus) and where its peers are (the peer book).
 */
export const FOLLOWED_DEVICE_EVENTS = [
  "DeviceEnrolled",
  "DeviceOperatorChanged",
  "DeviceEndpointChanged",
  "DeviceExitRequested",
  "DeviceExited",
  "DeviceSlashed",
  "ParametersChanged",
] as const;

/**
 * The DeviceRegistry events no device worker needs from the broker. DeviceHeartbeat is one per
 * device per heartbeat interval, most of a resting fleet's events, and only the keepers use it,
 * which run on the bridges and read the chain: a follower subscribed to it would receive the beats
 * of all N devices, N x N deliveries fleet-wide. A unit test checks that every event of the
 * contract's ABI is in one list or the other.
 */
export const UNFOLLOWED_DEVICE_EVENTS = [
  "DeviceHeartbeat",
  "DeviceStakeIncreased",
  // governance, which no worker acts on
  "PlacementRegistrySet",
  "TreasuryChanged",
  "Paused",
  "Unpaused",
  "RoleAdminChanged",
  "RoleGranted",
  "RoleRevoked",
] as const;

/**
 * The filters a device worker subscribes to for bridged chain events of chain `chainId`: every
 * AppRegistry and PlacementRegistry event (deployments, versions, placements), the followed
 * DeviceRegistry events and the reorg notices. Token transfers and heartbeats are left out.
 */
export function followedChainFilters(chainId: number, t: Topics = topics): string[] {
  return [
    `${t.root}/chain/${chainId}/AppRegistry/#`,
    `${t.root}/chain/${chainId}/PlacementRegistry/#`,
    ...FOLLOWED_DEVICE_EVENTS.map((event) => t.chainEvent(chainId, "DeviceRegistry", event)),
    t.chainReorg(chainId),
  ];
}

/** The topics under the default root. */
export const topics: Topics = createTopics();

/** MQTT filter matching: `+` is one level, a trailing `#` any number (including none). */
export function topicMatches(filter: string, topic: string): boolean {
  return levelsMatch(filter.split("/"), topic.split("/"));
}

/**
 * topicMatches on filter and topic already split into levels: a bus that dispatches each message
 * to several subscriptions splits the topic once and each filter once, at subscribe.
 */
export function levelsMatch(f: readonly string[], t: readonly string[]): boolean {
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

// ---------------------------------------------------------------------------------------------------
// Payloads

export type ChainEventPayload = { v: typeof PAYLOAD_VERSION } & ChainEvent;

export function chainEventMessage(e: ChainEvent, t: Topics = topics): OutgoingMessage {
  const payload: ChainEventPayload = { v: PAYLOAD_VERSION, ...e };
  return {
    topic: t.chainEvent(e.chainId, e.contract, e.event),
    payload: JSON.stringify(payload),
    qos: 1,
    retain: false,
  };
}

export interface ReorgPayload {
  v: typeof PAYLOAD_VERSION;
  chainId: number;
  commonAncestor: BlockRef;
  replacedHead: BlockRef;
  /** Ids of the bridged events that are no longer on the chain. */
  removedIds: string[];
}

export function reorgMessage(
  chainId: number,
  commonAncestor: BlockRef,
  replacedHead: BlockRef,
  removedIds: string[],
  t: Topics = topics,
): OutgoingMessage {
  const payload: ReorgPayload = { v: PAYLOAD_VERSION, chainId, commonAncestor, replacedHead, removedIds };
  return { topic: t.chainReorg(chainId), payload: JSON.stringify(payload), qos: 1, retain: false };
}

export function entityTopic(ref: EntityRef, t: Topics = topics): string {
  if (ref.kind === "placement") return t.placementState(ref.id);
  if (ref.kind === "device") return t.deviceChain(ref.id);
  return t.deploymentState(ref.id);
}

/**
 * Retained desired-state messages for the given entities: their current value with `v` and
 * `chainId`, or an empty payload (which clears the retained message) when the entity is gone.
 */
export function stateMessages(
  chainId: number,
  state: DesiredState,
  refs: readonly EntityRef[],
  t: Topics = topics,
): OutgoingMessage[] {
  return refs.map((ref) => {
    const value = lookup(state, ref);
    const payload = value === undefined ? "" : JSON.stringify({ v: PAYLOAD_VERSION, chainId, ...value });
    return { topic: entityTopic(ref, t), payload, qos: 1, retain: true };
  });
}

export type DevicePresence = "online" | "offline";

export interface DeviceStatusPayload {
  v: typeof PAYLOAD_VERSION;
  deviceId: string;
  status: DevicePresence;
  /** MQTT client id of the worker. */
  clientId: string;
  /** "connected", "shutdown" (graceful close) or "connection-lost" (Last Will). */
  reason: "connected" | "shutdown" | "connection-lost";
  /** ISO time the worker wrote the message; for the Last Will, the time it connected. */
  at: string;
  /** False when the device never bridges (bridge.enabled false): the election skips it. */
  bridge?: boolean;
}

export function deviceStatusMessage(p: Omit<DeviceStatusPayload, "v">, t: Topics = topics): OutgoingMessage {
  const payload: DeviceStatusPayload = { v: PAYLOAD_VERSION, ...p };
  return { topic: t.deviceStatus(p.deviceId), payload: JSON.stringify(payload), qos: 1, retain: true };
}

/** One published port of a replica: where a client connects (deviceAddress:hostPort). */
export interface EndpointPort {
  protocol: "tcp" | "udp";
  containerPort: number;
  hostPort: number;
  /** The manifest's port name, when it has one. */
  name?: string;
}

/** Where one running, healthy replica answers (retained; cleared when it stops or turns unhealthy). */
export interface EndpointsPayload {
  v: typeof PAYLOAD_VERSION;
  deviceId: string;
  /** The device owner's exposure address, which every port below is published on. */
  deviceAddress: string;
  placementId: string;
  deploymentId: string;
  appId: string;
  /** The app's name and the manifest's semver. */
  app: string;
  appVersion: string;
  /** The version number on chain. */
  version: string;
  ports: EndpointPort[];
  /** ISO time the worker first saw the replica answer (or run, without a health check). */
  since: string;
}

export function endpointsMessage(p: Omit<EndpointsPayload, "v">, t: Topics = topics): OutgoingMessage {
  const payload: EndpointsPayload = { v: PAYLOAD_VERSION, ...p };
  return {
    topic: t.deviceEndpoints(p.deviceId, p.placementId),
    payload: JSON.stringify(payload),
    qos: 1,
    retain: true,
  };
}

// ---------------------------------------------------------------------------------------------------
// The table of docs/mqtt.md

export interface TopicSpec {
  pattern: string;
  qos: Qos;
  retained: boolean;
  publisher: string;
  payload: string;
}

export const TOPIC_TABLE: readonly TopicSpec[] = [
  {
    pattern: "shoal/v1/chain/<chainId>/<Contract>/<Event>",
    qos: 1,
    retained: false,
    publisher: "bridge",
    payload:
      "v, id (`<chainId>:<txHash>:<logIndex>`), chainId, contract, address, event, args, blockNumber, blockHash, txHash, logIndex, timestamp",
  },
  {
    pattern: "shoal/v1/chain/<chainId>/reorg",
    qos: 1,
    retained: false,
    publisher: "bridge",
    payload: "v, chainId, commonAncestor {number, hash}, replacedHead {number, hash}, removedIds[]",
  },
  {
    pattern: "shoal/v1/placements/<placementId>/state",
    qos: 1,
    retained: true,
    publisher: "bridge",
    payload:
      "v, chainId, placementId, deploymentId, deviceId, appId, version, deploymentGeneration, deviceGeneration, band, state, failure, releaseReason, claimedBlock, updated",
  },
  {
    pattern: "shoal/v1/deployments/<deploymentId>/state",
    qos: 1,
    retained: true,
    publisher: "bridge",
    payload:
      "v, chainId, deploymentId, appId, version, generation, replicas, active, requiredLabels, spec, updated",
  },
  {
    pattern: "shoal/v1/devices/<deviceId>/chain",
    qos: 1,
    retained: true,
    publisher: "bridge",
    payload:
      "v, chainId, deviceId, owner, operator, platform, cpuMillicores, memoryMiB, labels, endpoint, stake, status, withdrawableAt, lastHeartbeat, lastExpiry, updated",
  },
  {
    pattern: "shoal/v1/devices/<deviceId>/status",
    qos: 1,
    retained: true,
    publisher: "each worker's bus (online on connect, offline on close, Last Will offline)",
    payload:
      "v, deviceId, status (online | offline), clientId, reason (connected | shutdown | connection-lost), at, bridge (false: never elected a bridge)",
  },
  {
    pattern: "shoal/v1/devices/<deviceId>/endpoints/<placementId>",
    qos: 1,
    retained: true,
    publisher: "the device's reconciler (cleared when the replica stops, fails or turns unhealthy)",
    payload:
      "v, deviceId, deviceAddress, placementId, deploymentId, appId, app, appVersion, version, ports[] {protocol, containerPort, hostPort, name}, since",
  },
];
