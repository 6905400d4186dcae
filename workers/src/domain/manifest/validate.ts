import Ajv2020 from "ajv/dist/2020";
import type { ErrorObject, ValidateFunction } from "ajv";
import manifestSchema from "./manifest.schema.json";
import publishedManifestSchema from "./published-manifest.schema.json";
import type { ManifestIssue, ManifestIssueKind } from "./manifest-error";
import {
  CPU_MILLICORES_MAX,
  CPU_MILLICORES_MIN,
  MEMORY_MIB_MAX,
  MEMORY_MIB_MIN,
  tryParseCpuMillicores,
  tryParseMemoryMiB,
} from "./quantity";

/**
 * Validation shared by shoal.yaml and the published JSON: the JSON Schema first (structure, types,
 * patterns, refused keys), then the checks a schema cannot express (min <= max, quantity bounds,
 * duplicates). Issues come back with a path as segments so the caller can map them to source lines.
 */

export const MANIFEST_SCHEMA_ID = manifestSchema.$id;
export const PUBLISHED_MANIFEST_SCHEMA_ID = publishedManifestSchema.$id;

/** Default size of a writable path given as a bare string. */
export const DEFAULT_WRITABLE_PATH_SIZE_MIB = 16;

/** Larger than any sane manifest; keeps a pasted binary from reaching the parser. */
export const MAX_MANIFEST_BYTES = 256 * 1024;
export const WRITABLE_PATH_SIZE_MIB_MIN = 1;
export const WRITABLE_PATH_SIZE_MIB_MAX = 1024;
export const MAX_REQUIRED_LABELS = 8;

/** Paths where a tmpfs would hide or replace what the kernel and runtime provide. */
const RESERVED_PATH_ROOTS = ["proc", "sys", "dev"];

export type PathSegment = string | number;

/** An issue before it is tied to a source line. */
export interface RawIssue {
  kind: ManifestIssueKind;
  segments: PathSegment[];
  /** True when the issue is about the key itself (unknown, refused, bad name), so its line is the key's. */
  atKey: boolean;
  value: unknown;
  problem: string;
  allowed: string;
}

export type ManifestFlavor = "source" | "published";

type SchemaNode = Record<string, unknown>;

let validators: { source: ValidateFunction; published: ValidateFunction } | undefined;

function getValidators(): { source: ValidateFunction; published: ValidateFunction } {
  if (validators) return validators;
  // allErrors: report every issue in one go. verbose: errors carry their schema, which holds the
  // human texts (x-problem, x-allowed, x-refused) that make the messages specific.
  const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
  ajv.addVocabulary(["x-allowed", "x-problem", "x-refused", "x-quantity"]);
  ajv.addSchema(manifestSchema);
  ajv.addSchema(publishedManifestSchema);
  const source = ajv.getSchema(MANIFEST_SCHEMA_ID);
  const published = ajv.getSchema(PUBLISHED_MANIFEST_SCHEMA_ID);
  if (!source || !published) throw new Error("manifest schemas failed to compile");
  validators = { source, published };
  return validators;
}

/** All issues of `data` as a manifest of the given flavor; empty when it is valid. */
export function collectIssues(data: unknown, flavor: ManifestFlavor): RawIssue[] {
  const validate = getValidators()[flavor];
  const schemaIssues = validate(data) ? [] : fromAjvErrors(validate.errors ?? [], data);
  const reported = schemaIssues.map((issue) => displayPath(issue.segments));
  // A semantic check of a field the schema already rejected (or of something inside it) would
  // only repeat the same problem in other words.
  const semantic = semanticIssues(data, flavor).filter((issue) => {
    const path = displayPath(issue.segments);
    return !reported.some(
      (r) => path === r || path.startsWith(`${r}.`) || path.startsWith(`${r}[`) || r === "",
    );
  });
  return [...schemaIssues, ...semantic];
}

// ---------------------------------------------------------------------------------------------
// Schema errors -> issues

function fromAjvErrors(errors: readonly ErrorObject[], root: unknown): RawIssue[] {
  const issues: RawIssue[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    const issue = fromAjvError(error, root);
    if (!issue) continue;
    const key = displayPath(issue.segments);
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

function fromAjvError(error: ErrorObject, root: unknown): RawIssue | undefined {
  const base = pointerSegments(error.instancePath, root);
  const schema = (error.parentSchema ?? {}) as SchemaNode;
  const params = error.params as Record<string, unknown>;
  const xProblem = typeof schema["x-problem"] === "string" ? schema["x-problem"] : undefined;
  const xAllowed = typeof schema["x-allowed"] === "string" ? schema["x-allowed"] : undefined;

  // propertyNames: ajv reports the inner failure with `propertyName`, then a summary we skip.
  const propertyName = (error as ErrorObject & { propertyName?: string }).propertyName;
  if (error.keyword === "propertyNames") return undefined;
  if (propertyName !== undefined) {
    return {
      kind: "invalid",
      segments: [...base, propertyName],
      atKey: true,
      value: propertyName,
      problem: xProblem ?? genericProblem(error, propertyName),
      allowed: xAllowed !== undefined ? asInstruction(xAllowed) : genericAllowed(error),
    };
  }

  switch (error.keyword) {
    case "required": {
      const missing = String(params.missingProperty);
      const property = resolveSchema(((schema.properties ?? {}) as Record<string, SchemaNode>)[missing]);
      return {
        kind: "missing",
        segments: [...base, missing],
        atKey: false,
        value: undefined,
        problem: "is missing",
        allowed: `it is required: ${stringOr(property?.["x-allowed"], stringOr(property?.description, "see docs/manifest.md")).replace(/^use /, "")}`,
      };
    }
    case "additionalProperties": {
      const extra = String(params.additionalProperty);
      const known = Object.entries((schema.properties ?? {}) as Record<string, SchemaNode>)
        .filter(([, sub]) => sub["x-refused"] === undefined)
        .map(([name]) => name);
      const suggestion = closest(extra, known);
      return {
        kind: "unknown-key",
        segments: [...base, extra],
        atKey: true,
        value: getAt(root, [...base, extra]),
        problem: `is not a known key${suggestion ? ` (did you mean "${suggestion}"?)` : ""}`,
        allowed: known.length > 0 ? `allowed keys here: ${known.join(", ")}` : "no keys are allowed here",
      };
    }
    case "not":
      if (typeof schema["x-refused"] === "string") {
        return {
          kind: "refused",
          segments: base,
          atKey: true,
          value: error.data,
          problem: "is refused",
          allowed: schema["x-refused"],
        };
      }
      break;
    case "uniqueItems": {
      const j = Number(params.j);
      const i = Number(params.i);
      return {
        kind: "invalid",
        segments: [...base, Math.max(i, j)],
        atKey: false,
        value: getAt(root, [...base, Math.max(i, j)]),
        problem: `is listed twice (also at index ${Math.min(i, j)})`,
        allowed: xAllowed !== undefined ? asInstruction(xAllowed) : "each entry at most once",
      };
    }
    default:
      break;
  }

  const quantity = schema["x-quantity"];
  if (quantity === "cpu" || quantity === "memory") {
    const parsed = quantity === "cpu" ? tryParseCpuMillicores(error.data) : tryParseMemoryMiB(error.data);
    if (!parsed.ok) {
      return {
        kind: "invalid",
        segments: base,
        atKey: false,
        value: error.data,
        problem: parsed.problem,
        allowed: parsed.allowed,
      };
    }
  }

  const allowed = xAllowed !== undefined ? asInstruction(xAllowed) : genericAllowed(error);
  if (error.keyword === "type" && (error.data === null || error.data === undefined)) {
    return { kind: "missing", segments: base, atKey: false, value: undefined, problem: "is empty", allowed };
  }
  // A wrong type reads better as "is a number, not a string" than as the field's generic problem.
  const problem =
    error.keyword === "type"
      ? genericProblem(error, error.data)
      : (xProblem ?? genericProblem(error, error.data));
  return { kind: "invalid", segments: base, atKey: false, value: error.data, problem, allowed };
}

/** Schema texts are noun phrases ("an integer from 1 to 65535"); a message tells the user what to do. */
function asInstruction(allowed: string): string {
  return /^(use|give|write|add|remove) /.test(allowed) ? allowed : `use ${allowed}`;
}

function genericProblem(error: ErrorObject, value: unknown): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "type":
      return `is ${kindOf(value)}, not ${typeNames(params.type)}`;
    case "minimum":
    case "exclusiveMinimum":
      return `is less than ${String(params.limit)}`;
    case "maximum":
    case "exclusiveMaximum":
      return `is more than ${String(params.limit)}`;
    case "minLength":
      return `is shorter than ${String(params.limit)} characters`;
    case "maxLength":
      return `is longer than ${String(params.limit)} characters`;
    case "minItems":
      return `has ${countOf(value)} entries, fewer than ${String(params.limit)}`;
    case "maxItems":
      return `has ${countOf(value)} entries, more than ${String(params.limit)}`;
    case "minProperties":
      return `has ${countOf(value)} keys, fewer than ${String(params.limit)}`;
    case "maxProperties":
      return `has ${countOf(value)} keys, more than ${String(params.limit)}`;
    case "enum":
    case "const":
      return "is not allowed";
    case "pattern":
      return "has the wrong format";
    default:
      return `is not valid (${error.message ?? error.keyword})`;
  }
}

function genericAllowed(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "type":
      return `use ${typeNames(params.type)}`;
    case "enum":
      return `use one of ${(params.allowedValues as unknown[]).map((v) => String(v)).join(", ")}`;
    case "const":
      return `use ${JSON.stringify(params.allowedValue)}`;
    default:
      return "see docs/manifest.md";
  }
}

function typeNames(type: unknown): string {
  const names: Record<string, string> = {
    object: "a mapping",
    array: "a list",
    string: "a string",
    integer: "an integer",
    number: "a number",
    boolean: "true or false",
    null: "null",
  };
  const list = Array.isArray(type) ? type : String(type).split(",");
  return list.map((t) => names[String(t)] ?? String(t)).join(" or ");
}

function kindOf(value: unknown): string {
  if (value === null || value === undefined) return "empty";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a number";
  if (typeof value === "boolean") return "a boolean";
  return "a string";
}

function countOf(value: unknown): number {
  if (Array.isArray(value)) return value.length;
  if (isRecord(value)) return Object.keys(value).length;
  return 0;
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === "string" ? value : fallback;
}

/** Follows a `$ref` (all refs point into manifest.schema.json) and merges the siblings over it. */
function resolveSchema(node: SchemaNode | undefined): SchemaNode | undefined {
  if (!node || typeof node.$ref !== "string") return node;
  const pointer = node.$ref.slice(node.$ref.indexOf("#") + 1);
  let target: unknown = manifestSchema;
  for (const part of pointer.split("/").slice(1)) {
    target = isRecord(target) ? target[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
  }
  return isRecord(target) ? { ...target, ...node } : node;
}

/**
 * A likely typo: equal ignoring case and separators, or within an edit distance (transpositions
 * count once) of less than a third of the word, so "replica" suggests "replicas" but "gpu" does not
 * suggest "cpu".
 */
function closest(word: string, candidates: readonly string[]): string | undefined {
  const squash = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  let best: { name: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = squash(candidate) === squash(word) ? 0 : editDistance(word, candidate);
    if (distance < word.length / 3 && (!best || distance < best.distance))
      best = { name: candidate, distance };
  }
  return best?.name;
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        value = Math.min(value, d[i - 2]![j - 2]! + 1);
      d[i]![j] = value;
    }
  }
  return d[a.length]![b.length]!;
}

// ---------------------------------------------------------------------------------------------
// Checks the schema cannot express

function semanticIssues(data: unknown, flavor: ManifestFlavor): RawIssue[] {
  if (!isRecord(data)) return [];
  const issues: RawIssue[] = [];
  const push = (segments: PathSegment[], value: unknown, problem: string, allowed: string) =>
    issues.push({ kind: "invalid", segments, atKey: false, value, problem, allowed });

  checkBand(data, "cpu", push);
  checkBand(data, "memory", push);

  const ports = Array.isArray(data.ports) ? data.ports : [];
  const seenPorts = new Map<string, number>();
  const seenNames = new Map<string, number>();
  ports.forEach((port, index) => {
    if (!isRecord(port)) return;
    const key = `${String(port.containerPort)}/${String(port.protocol ?? "tcp")}`;
    const first = seenPorts.get(key);
    if (first !== undefined) {
      push(
        ["ports", index, "containerPort"],
        port.containerPort,
        `is listed twice for ${String(port.protocol ?? "tcp")} (also ports[${first}])`,
        "each containerPort and protocol at most once",
      );
    } else seenPorts.set(key, index);
    if (typeof port.name === "string") {
      const firstName = seenNames.get(port.name);
      if (firstName !== undefined) {
        push(
          ["ports", index, "name"],
          port.name,
          `is used twice (also ports[${firstName}])`,
          "give each port its own name",
        );
      } else seenNames.set(port.name, index);
    }
  });

  const labels = Array.isArray(data.requiredLabels) ? data.requiredLabels : [];
  const labelKeys = new Map<string, number>();
  labels.forEach((label, index) => {
    if (typeof label !== "string" || !label.includes("=")) return;
    const key = label.slice(0, label.indexOf("="));
    const first = labelKeys.get(key);
    if (first !== undefined) {
      push(
        ["requiredLabels", index],
        label,
        `repeats the key "${key}" (also requiredLabels[${first}])`,
        "each label key at most once: a device has one value per key",
      );
    } else labelKeys.set(key, index);
  });

  const writable = Array.isArray(data.writablePaths) ? data.writablePaths : [];
  const seenPaths = new Map<string, number>();
  writable.forEach((entry, index) => {
    const isObject = isRecord(entry);
    const path = isObject ? entry.path : entry;
    const pathSegments: PathSegment[] = isObject
      ? ["writablePaths", index, "path"]
      : ["writablePaths", index];
    if (typeof path === "string" && path.startsWith("/")) {
      const parts = path.split("/").filter((part) => part !== "");
      if (parts.some((part) => part === "." || part === "..")) {
        push(
          pathSegments,
          path,
          "contains a '.' or '..' segment",
          'write the plain absolute path, like "/tmp"',
        );
      } else if (parts.length === 0) {
        push(
          pathSegments,
          path,
          "is the root filesystem",
          'the root filesystem is always read-only; list the directories the app writes to, like "/tmp"',
        );
      } else if (RESERVED_PATH_ROOTS.includes(parts[0]!)) {
        push(
          pathSegments,
          path,
          `is under /${parts[0]}, which the runtime provides`,
          'use an application directory like "/tmp" or "/var/cache/app"',
        );
      } else {
        const normalized = `/${parts.join("/")}`;
        const first = seenPaths.get(normalized);
        if (first !== undefined)
          push(
            pathSegments,
            path,
            `is listed twice (also writablePaths[${first}])`,
            "each path at most once",
          );
        else seenPaths.set(normalized, index);
      }
    }
    if (isObject && entry.size !== undefined) {
      const size = tryParseMemoryMiB(entry.size);
      if (!size.ok) push(["writablePaths", index, "size"], entry.size, size.problem, size.allowed);
      else if (size.value < WRITABLE_PATH_SIZE_MIB_MIN || size.value > WRITABLE_PATH_SIZE_MIB_MAX) {
        push(
          ["writablePaths", index, "size"],
          entry.size,
          "is out of range",
          "use a tmpfs size from 1Mi to 1Gi",
        );
      }
    }
  });

  const health = data.healthCheck;
  if (isRecord(health)) {
    const hasExec = health.exec !== undefined;
    const hasHttp = health.httpGet !== undefined;
    if (hasExec === hasHttp) {
      push(
        ["healthCheck"],
        health,
        hasExec ? "has both exec and httpGet" : "has neither exec nor httpGet",
        "give exactly one of exec: [...] or httpGet: { port, path }",
      );
    }
    const interval = typeof health.intervalSeconds === "number" ? health.intervalSeconds : 10;
    const timeout = typeof health.timeoutSeconds === "number" ? health.timeoutSeconds : 3;
    if (timeout > interval) {
      push(
        ["healthCheck", "timeoutSeconds"],
        timeout,
        `is longer than intervalSeconds (${interval})`,
        "a timeout of at most the interval, so checks never overlap",
      );
    }
    if (isRecord(health.httpGet) && typeof health.httpGet.port === "number") {
      const port = health.httpGet.port;
      const declared = ports.some(
        (p) => isRecord(p) && p.containerPort === port && (p.protocol ?? "tcp") === "tcp",
      );
      if (!declared) {
        push(
          ["healthCheck", "httpGet", "port"],
          port,
          "is not a tcp port listed in ports",
          "probe one of the app's declared tcp ports",
        );
      }
    }
  }

  if (flavor === "source" && isRecord(data.images)) {
    for (const [platform, source] of Object.entries(data.images)) {
      if (isRecord(source) && source.ref !== undefined && source.tar !== undefined) {
        push(["images", platform], source, "has both ref and tar", "give exactly one of ref or tar");
      }
    }
  }
  return issues;
}

function checkBand(
  data: Record<string, unknown>,
  resource: "cpu" | "memory",
  push: (segments: PathSegment[], value: unknown, problem: string, allowed: string) => void,
): void {
  const resources = data.resources;
  if (!isRecord(resources) || !isRecord(resources[resource])) return;
  const band = resources[resource] as Record<string, unknown>;
  const [lowest, highest] =
    resource === "cpu" ? [CPU_MILLICORES_MIN, CPU_MILLICORES_MAX] : [MEMORY_MIB_MIN, MEMORY_MIB_MAX];
  const range =
    resource === "cpu" ? "use a CPU quantity from 1m to 64 cores" : "use a memory quantity from 4Mi to 64Gi";
  const parsed: { min?: number; max?: number } = {};
  for (const end of ["min", "max"] as const) {
    const value = band[end];
    if (value === undefined) continue;
    const result = resource === "cpu" ? tryParseCpuMillicores(value) : tryParseMemoryMiB(value);
    if (!result.ok) {
      push(["resources", resource, end], value, result.problem, result.allowed);
      continue;
    }
    if (result.value < lowest) push(["resources", resource, end], value, "is below the minimum", range);
    else if (result.value > highest) push(["resources", resource, end], value, "is above the maximum", range);
    else parsed[end] = result.value;
  }
  if (parsed.min !== undefined && parsed.max !== undefined && parsed.min > parsed.max) {
    push(
      ["resources", resource, "min"],
      band.min,
      `is more than resources.${resource}.max (${JSON.stringify(band.max)})`,
      "min must be at most max",
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Paths

/** JSON pointer -> segments, with array indexes as numbers (decided by walking the data). */
function pointerSegments(pointer: string, root: unknown): PathSegment[] {
  if (pointer === "") return [];
  const segments: PathSegment[] = [];
  let node: unknown = root;
  for (const raw of pointer.split("/").slice(1)) {
    const part = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(node)) {
      segments.push(Number(part));
      node = node[Number(part)];
    } else {
      segments.push(part);
      node = isRecord(node) ? node[part] : undefined;
    }
  }
  return segments;
}

/** ["resources","cpu","max"] -> "resources.cpu.max"; ["images","linux/amd64"] -> 'images["linux/amd64"]'. */
export function displayPath(segments: readonly PathSegment[]): string {
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

function getAt(root: unknown, segments: readonly PathSegment[]): unknown {
  let node = root;
  for (const segment of segments) {
    if (Array.isArray(node) && typeof segment === "number") node = node[segment];
    else if (isRecord(node)) node = node[String(segment)];
    else return undefined;
  }
  return node;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Ties raw issues to lines (when a locator is given) and renders their messages. */
export function finishIssues(
  raw: readonly RawIssue[],
  locate?: (segments: readonly PathSegment[], atKey: boolean) => number | undefined,
): Omit<ManifestIssue, "message">[] {
  const issues = raw.map((issue) => {
    const line = locate?.(issue.segments, issue.atKey);
    return {
      kind: issue.kind,
      path: displayPath(issue.segments),
      value: issue.value,
      problem: issue.problem,
      allowed: issue.allowed,
      ...(line !== undefined ? { line } : {}),
    };
  });
  // Stable sort by line, so the list reads top to bottom like the file.
  return issues
    .map((issue, index) => ({ issue, index }))
    .sort((a, b) => (a.issue.line ?? Infinity) - (b.issue.line ?? Infinity) || a.index - b.index)
    .map(({ issue }) => issue);
}
