/**
 * The registries' Solidity enums by name, in declaration order (index = the on-chain value).
 * One copy for the worker, the tasks and the fleet tools: keep in step with contracts/interfaces.
 */
export const PLACEMENT_STATES = [
  "None",
  "Claimed",
  "Running",
  "Released",
  "Failed",
  "Expired",
  "Superseded",
] as const;
export const FAILURE_CODES = [
  "None",
  "ImageFetchFailed",
  "ManifestInvalid",
  "StartFailed",
  "OOMKilled",
  "Evicted",
  "HealthCheckFailed",
  "Other",
  "ClaimDeadlineMissed",
] as const;
export const RELEASE_REASONS = [
  "None",
  "ByDevice",
  "ByAppOwner",
  "ScaleDown",
  "Superseded",
  "DeploymentStopped",
] as const;
export const DEVICE_STATUSES = ["None", "Active", "Exiting", "Exited"] as const;

export type PlacementState = (typeof PLACEMENT_STATES)[number];
/** FailureCode names, None excluded: what a worker can report. */
export type FailureCode = Exclude<(typeof FAILURE_CODES)[number], "None">;
export type ReleaseReason = (typeof RELEASE_REASONS)[number];
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];
