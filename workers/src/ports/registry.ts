/**
 * The on-chain registries as one device's worker sees them: its device, the deployments it may
 * claim, its placements, and the transactions it sends. Ids of placements are decimal strings
 * (uint64 on chain); the other ids fit in a number.
 */

import type { DeviceStatus, FailureCode, PlacementState } from "../domain/chain-enums";
import type { ChainResourceBand } from "../domain/band";
import type { DeploymentRef, PlacementRef } from "../domain/placement";
import { ShoalError } from "../errors";

export { FAILURE_CODES, PLACEMENT_STATES } from "../domain/chain-enums";
export type { DeviceStatus, FailureCode, PlacementState };

/**
 * Views read at this block (latest − confirmations) when given; "pending" reads the node's pending
 * state, mined blocks plus the transactions waiting in its pool (the claimer's last check).
 */
export interface ReadOptions {
  blockTag?: number | "pending";
  signal?: AbortSignal;
}

/** The chain's resource band struct (workers/src/domain/band.ts has the domain's and the converters). */
export type Band = ChainResourceBand;

export interface DeviceView {
  deviceId: number;
  status: DeviceStatus;
  platform: string;
  /** Label keys as the chain stores them (bytes8 hex); compare, do not display. */
  labelKeys: string[];
  cpuCapacityMillicores: number;
  memoryCapacityMiB: number;
  cpuReservedMillicores: number;
  memoryReservedMiB: number;
  livePlacements: number;
  /** Unix seconds. */
  lastHeartbeat: number;
  heartbeatTtlS: number;
}

export interface DeploymentView extends DeploymentRef {
  generation: number;
  replicas: number;
  liveReplicas: number;
  active: boolean;
}

export interface ReplicaTerms extends DeploymentRef {
  generation: number;
  platformSupported: boolean;
  band: Band;
  requiredLabelKeys: string[];
}

export interface PlacementView extends PlacementRef {
  state: PlacementState;
}

export interface VersionView {
  appId: number;
  version: number;
  manifestCid: string;
  /** The image for the asked platform; undefined when the version has none. */
  imageCid: string | undefined;
  band: Band;
}

export interface TxResult {
  hash: string;
  gasUsed: bigint;
  blockNumber: number;
}

/**
 * A heartbeat as the node accepted it: it is mined later, and the next beat reads its receipt
 * (a beat mined reverted is thrown, named, from the beat after it).
 */
export interface HeartbeatResult {
  /** The transaction that carries this beat. */
  hash: string;
  /**
   * "new": a transaction of its own; "replaced": it replaced the previous beat, unmined for too
   * long (same nonce, fresh fees); "pending": nothing was sent, the previous beat (`hash`) is not
   * mined yet and will record the device's liveness when it is.
   */
  sent: "new" | "replaced" | "pending";
  /** The block of the previous beat when this beat found it mined; undefined for the first beat. */
  previousBlock?: number;
}

export interface Registry {
  readonly deviceId: number;
  blockNumber(options?: { signal?: AbortSignal }): Promise<number>;
  device(options?: ReadOptions): Promise<DeviceView>;
  /** How many deployments exist: their ids are 1..count, active or not. */
  deploymentCount(options?: ReadOptions): Promise<number>;
  deployment(deploymentId: number, options?: ReadOptions): Promise<DeploymentView>;
  replicaTerms(deploymentId: number, platform: string, options?: ReadOptions): Promise<ReplicaTerms>;
  /** This device's live placement of a deployment, if any. */
  activePlacementOf(deploymentId: number, options?: ReadOptions): Promise<string | undefined>;
  /** This device's placements in claim order (append-only), a page at a time. */
  placementsOfDevice(offset: number, limit: number, options?: ReadOptions): Promise<PlacementView[]>;
  placementState(placementId: string, options?: ReadOptions): Promise<PlacementState>;
  /** Every placement of a deployment, oldest first (its history included). */
  placementsOfDeployment(deploymentId: number, options?: ReadOptions): Promise<PlacementView[]>;
  version(appId: number, version: number, platform: string, options?: ReadOptions): Promise<VersionView>;
  /**
   * Sends the device's heartbeat and returns once the node accepted it, without waiting for it to
   * be mined; first reads the previous beat's receipt and throws a RegistryError naming the
   * contract's error when that beat was mined reverted.
   */
  heartbeat(options?: { signal?: AbortSignal }): Promise<HeartbeatResult>;
  claim(
    deploymentId: number,
    options?: { signal?: AbortSignal },
  ): Promise<TxResult & { placementId: string }>;
  confirm(placementId: string, options?: { signal?: AbortSignal }): Promise<TxResult>;
  fail(placementId: string, code: FailureCode, options?: { signal?: AbortSignal }): Promise<TxResult>;
  release(placementId: string, options?: { signal?: AbortSignal }): Promise<TxResult>;
}

/**
 * What every Registry implementation throws: a revert carries the contract's custom error by name
 * (final for this input), anything else (network, node restart, nonce race) is retryable.
 */
export class RegistryError extends ShoalError {
  override name = "RegistryError";
  /** The contract's custom error, when the call reverted with one. */
  readonly errorName: string | undefined;
  readonly errorArgs: readonly unknown[];
  constructor(
    shortMessage: string,
    options: {
      cause?: unknown;
      retryable?: boolean;
      errorName?: string;
      errorArgs?: readonly unknown[];
    } = {},
  ) {
    super(shortMessage, options);
    this.errorName = options.errorName;
    this.errorArgs = options.errorArgs ?? [];
  }
}

/**
 * What a keeper sends: the permissionless liveness transactions. Each first simulates the call
 * (an `eth_call` from the operator's address, no nonce used), so a keeper that lost the race learns
 * it from a revert that cost nothing; only then does it send.
 */
export interface KeeperRegistry {
  /** The signing address (the device's operator): who collects an expiry bounty. */
  readonly address: string;
  /** Expires a stale device's open placements at once; the caller collects the bounty. */
  expireDevice(deviceId: number, options?: { signal?: AbortSignal }): Promise<TxResult>;
  /** Records a placement of an expired device generation as Expired, freeing its replica. */
  finalizeExpired(placementId: string, options?: { signal?: AbortSignal }): Promise<TxResult>;
  /** Ends a claim not confirmed within the claim deadline as Failed (ClaimDeadlineMissed). */
  finalizeOverdueClaim(placementId: string, options?: { signal?: AbortSignal }): Promise<TxResult>;
  /** The claim deadline in seconds, or undefined when the deployed registry has none. */
  claimDeadlineS(options?: ReadOptions): Promise<number | undefined>;
  /** The heartbeat TTL in seconds. */
  heartbeatTtlS(options?: ReadOptions): Promise<number>;
}

/** What the peering sends: the device's own IPFS endpoint (owner or operator may set it). */
export interface EndpointRegistry {
  /** Sets this device's endpoint (its Kubo node's multiaddr with /p2p/<peer id>). */
  setEndpoint(endpoint: string, options?: { signal?: AbortSignal }): Promise<TxResult>;
}
