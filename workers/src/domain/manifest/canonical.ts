import { ManifestError, makeIssue } from "./manifest-error";
import type { ManifestIssue } from "./manifest-error";
import { normalizePublished } from "./normalize";
import type { Manifest, Platform, PublishedManifest } from "./types";
import {
  collectIssues,
  displayPath,
  finishIssues,
  isRecord,
  MAX_MANIFEST_BYTES,
  MAX_NESTING_DEPTH,
} from "./validate";

/**
 * The published form of a manifest: what goes to IPFS and whose CID goes on chain. The same
 * manifest must always give the same bytes, or the same app version would get two CIDs; so keys are
 * sorted, sets (ports, labels, writable paths) are sorted, quantities are canonical and defaults are
 * written out. Local-only fields (image refs and tar paths) are replaced by the images' CIDs.
 */

export interface ValidateCanonicalManifestOptions {
  /** Where the JSON came from (a CID, a file), used as the prefix of every issue line. */
  source?: string;
  /** Also refuse JSON that is valid but not byte-for-byte canonical. */
  requireCanonicalBytes?: boolean;
}

/** JSON with object keys sorted (by UTF-16 code units) and no whitespace. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value))
    return `[${value.map((item) => stableStringify(item === undefined ? null : item)).join(",")}]`;
  if (isRecord(value)) {
    const entries = Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stableStringify(value[key])}`);
    return `{${entries.join(",")}}`;
  }
  if (typeof value === "number" && !Number.isFinite(value))
    throw new TypeError(`cannot serialize ${value} as JSON`);
  return JSON.stringify(value);
}

/** The published manifest as an object, validated against published-manifest.schema.json. */
export function toPublishedManifest(
  manifest: Manifest,
  imageCids: Partial<Record<Platform, string>>,
): PublishedManifest {
  const platforms = Object.keys(manifest.images).sort() as Platform[];
  const issues: ManifestIssue[] = [];
  for (const platform of platforms) {
    if (typeof imageCids[platform] !== "string") {
      issues.push(
        makeIssue({
          kind: "missing",
          path: displayPath(["images", platform]),
          value: undefined,
          problem: "has no image CID",
          allowed: "pass a CID for every platform of the manifest",
        }),
      );
    }
  }
  for (const platform of Object.keys(imageCids).sort()) {
    if (!(platform in manifest.images)) {
      issues.push(
        makeIssue({
          kind: "invalid",
          path: displayPath(["images", platform]),
          value: imageCids[platform as Platform],
          problem: "is a CID for a platform the manifest does not list",
          allowed: `platforms of this manifest: ${platforms.join(", ")}`,
        }),
      );
    }
  }
  if (issues.length > 0) throw new ManifestError(issues, { source: "image CIDs" });

  const { images: _localImages, ...body } = manifest;
  const published: PublishedManifest = {
    ...body,
    images: Object.fromEntries(
      platforms.map((platform) => [platform, { cid: imageCids[platform] as string }]),
    ),
    ports: [...body.ports].sort(
      (a, b) => a.containerPort - b.containerPort || a.protocol.localeCompare(b.protocol),
    ),
    requiredLabels: [...body.requiredLabels].sort(),
    writablePaths: [...body.writablePaths].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
  };
  // Round trip through the published schema and the workers' size limit: catches bad CIDs and
  // proves workers will accept it.
  const json = stableStringify(published);
  const bytes = new TextEncoder().encode(json).byteLength;
  if (bytes > MAX_MANIFEST_BYTES) {
    throw new ManifestError(
      [
        makeIssue({
          kind: "size",
          path: "",
          value: undefined,
          problem: `is ${bytes} bytes as canonical JSON (aliases expanded, defaults written out)`,
          allowed: `workers accept at most ${MAX_MANIFEST_BYTES} bytes: shorten env, command, args or the description`,
        }),
      ],
      { source: "canonical manifest" },
    );
  }
  return validateCanonicalManifest(JSON.parse(json), { source: "canonical manifest" });
}

/** The canonical JSON text of the published manifest. */
export function canonicalManifest(manifest: Manifest, imageCids: Partial<Record<Platform, string>>): string {
  return stableStringify(toPublishedManifest(manifest, imageCids));
}

/** The canonical JSON as UTF-8 bytes: exactly what is added to IPFS. */
export function canonicalManifestBytes(
  manifest: Manifest,
  imageCids: Partial<Record<Platform, string>>,
): Uint8Array {
  return new TextEncoder().encode(canonicalManifest(manifest, imageCids));
}

/**
 * Validates a published manifest as a worker fetched it: bytes, JSON text or an already parsed
 * value. Throws a ManifestError listing every issue.
 */
export function validateCanonicalManifest(
  json: Uint8Array | string | unknown,
  options: ValidateCanonicalManifestOptions = {},
): PublishedManifest {
  const source = options.source ?? "published manifest";
  let text: string | undefined;
  let data: unknown = json;
  const size = json instanceof Uint8Array ? json.byteLength : typeof json === "string" ? json.length : 0;
  if (size > MAX_MANIFEST_BYTES) {
    throw new ManifestError(
      [
        makeIssue({
          kind: "size",
          path: "",
          value: undefined,
          problem: `is ${size} ${json instanceof Uint8Array ? "bytes" : "characters"}`,
          allowed: `workers accept at most ${MAX_MANIFEST_BYTES} bytes`,
        }),
      ],
      { source },
    );
  }
  if (json instanceof Uint8Array || typeof json === "string") {
    try {
      text = typeof json === "string" ? json : new TextDecoder("utf-8", { fatal: true }).decode(json);
      data = JSON.parse(text);
    } catch (cause) {
      throw new ManifestError(
        [
          makeIssue({
            kind: "syntax",
            path: "",
            value: undefined,
            problem: `is not UTF-8 JSON: ${(cause as Error).message}`,
            allowed: "a published manifest is the canonical JSON made by canonicalManifest()",
          }),
        ],
        { source, cause },
      );
    }
  }
  // The schema validator recurses once per level; refuse a deep document before it gets there.
  if (depthOf(data) > MAX_NESTING_DEPTH) {
    throw new ManifestError(
      [
        makeIssue({
          kind: "yaml",
          path: "",
          value: undefined,
          problem: `nests more than ${MAX_NESTING_DEPTH} levels deep`,
          allowed: "a published manifest has 4 levels of nesting",
        }),
      ],
      { source },
    );
  }
  const raw = collectIssues(data, "published");
  if (raw.length > 0) throw new ManifestError(finishIssues(raw).map(makeIssue), { source });
  if (!isRecord(data)) throw new Error("unreachable: a valid manifest is an object");
  if (options.requireCanonicalBytes) {
    const canonical = stableStringify(data);
    const given = text ?? stableStringify(json);
    if (given !== canonical) {
      throw new ManifestError(
        [
          makeIssue({
            kind: "invalid",
            path: "",
            value: undefined,
            problem: "is valid but not in canonical form",
            allowed: "sorted keys, no whitespace, as made by canonicalManifest()",
          }),
        ],
        { source },
      );
    }
  }
  return normalizePublished(data);
}

/** Nesting depth of JSON data, measured without recursion (the data may be hostile). */
function depthOf(data: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[data, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== "object" || node === null) continue;
    deepest = Math.max(deepest, depth);
    if (deepest > MAX_NESTING_DEPTH) return deepest;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return deepest;
}
