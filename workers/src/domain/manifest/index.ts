/**
 * The Shoal app manifest: shoal.yaml in, validated and normalized; canonical JSON out for IPFS; the
 * resource band for the chain. Pure: no I/O, no clock. Used by the Hardhat tasks and the workers.
 */
export { parseManifest } from "./parse-manifest";
export { MAX_MANIFEST_BYTES } from "./validate";
export type { ParseManifestOptions } from "./parse-manifest";
export {
  canonicalManifest,
  canonicalManifestBytes,
  stableStringify,
  toPublishedManifest,
  validateCanonicalManifest,
} from "./canonical";
export type { ValidateCanonicalManifestOptions } from "./canonical";
export { resourceBand } from "./resource-band";
export { labelsProblem, splitLabels } from "./labels";
export {
  CPU_MILLICORES_MAX,
  CPU_MILLICORES_MIN,
  MEMORY_MIB_MAX,
  MEMORY_MIB_MIN,
  formatCpuMillicores,
  formatMemoryMiB,
  parseCpuMillicores,
  parseMemoryMiB,
  tryParseCpuMillicores,
  tryParseMemoryMiB,
} from "./quantity";
export type { QuantityResult } from "./quantity";
export { ManifestError, formatIssueLine } from "./manifest-error";
export type { ManifestErrorOptions, ManifestIssue, ManifestIssueKind } from "./manifest-error";
export { MANIFEST_SCHEMA_ID, PUBLISHED_MANIFEST_SCHEMA_ID, MAX_REQUIRED_LABELS } from "./validate";
export { PLATFORMS } from "./validate";
export { default as manifestSchema } from "./manifest.schema.json";
export { default as publishedManifestSchema } from "./published-manifest.schema.json";
export type * from "./types";
