/**
 * Placements: their ids and which states count as live. One home for the worker, the tasks, the
 * fleet tools, benches and tests (contracts/PlacementRegistry.sol is the authority).
 */
import { FAILURE_CODES, RELEASE_REASONS, type PlacementState } from "./chain-enums";

/** What names a deployment and what it runs: the fields every deployment record shares. */
export interface DeploymentRef {
  deploymentId: number;
  appId: number;
  /** The app version number on chain (not the manifest's semver). */
  version: number;
}

/** What names a placement and what it runs: the fields every placement record shares. */
export interface PlacementRef {
  /** uint64 on chain, so a decimal string. */
  placementId: string;
  deploymentId: number;
  deviceId: number;
  appId: number;
  version: number;
}

/**
 * A placement id is `deploymentId << 32 | replica`, a uint64 on chain: the deployment is readable
 * from the id alone, and replica numbers count from 1 within their deployment.
 */
export function placementIdOf(deploymentId: number | bigint, replica: number | bigint): bigint {
  return (BigInt(deploymentId) << 32n) | BigInt(replica);
}

/** The deployment and replica number of a placement id (bigint, number or decimal string). */
export function decodePlacementId(id: bigint | number | string): { deploymentId: number; replica: number } {
  const n = BigInt(id);
  return { deploymentId: Number(n >> 32n), replica: Number(n & 0xffffffffn) };
}

/** `deployment.replica`, e.g. "3.1": how people read a placement id. */
export function shortPlacementId(id: bigint | number | string): string {
  const { deploymentId, replica } = decodePlacementId(id);
  return `${deploymentId}.${replica}`;
}

/** The placement states that hold one of their deployment's replicas (and the device's capacity). */
export const LIVE_PLACEMENT_STATES: readonly PlacementState[] = ["Claimed", "Running"];

/** Claimed or Running: the placement holds a replica of its deployment and capacity on its device. */
export function isLivePlacement(state: string): boolean {
  return (LIVE_PLACEMENT_STATES as readonly string[]).includes(state);
}

/**
 * Live or Superseded: its container should still run. A superseded placement (its deployment
 * rolled or stopped) keeps running until it is released, so a roll is make-before-break.
 */
export function keepsContainer(state: string): boolean {
  return isLivePlacement(state) || state === "Superseded";
}

/** What a placement event makes of the placement: its new state, and why when it ended. */
export interface PlacementTransition {
  state: PlacementState;
  /** ReleaseReason name, on PlacementReleased. */
  releaseReason?: string;
  /** FailureCode name, on PlacementFailed. */
  failure?: string;
}

/**
 * The one transition function from placement events to state, as the chain's placementState()
 * reads afterwards; the bridge's reducer (desired-state.ts) and placement:history both use it. A
 * release is Released whatever its reason (Superseded included: the chain reads Released once a
 * superseded placement is released). `args` are the event's, by name (numbers, bigints or strings).
 */
export function placementTransition(
  event: string,
  args: { reason?: unknown; code?: unknown },
): PlacementTransition | undefined {
  switch (event) {
    case "PlacementClaimed":
      return { state: "Claimed" };
    case "PlacementConfirmed":
      return { state: "Running" };
    case "PlacementReleased":
      return {
        state: "Released",
        releaseReason: RELEASE_REASONS[Number(args.reason)] ?? String(args.reason),
      };
    case "PlacementFailed":
      return { state: "Failed", failure: FAILURE_CODES[Number(args.code)] ?? String(args.code) };
    case "PlacementExpired":
      return { state: "Expired" };
    default:
      return undefined;
  }
}
