import Ajv2020 from "ajv/dist/2020";
import type { ErrorObject, ValidateFunction } from "ajv";
import manifestSchema from "./manifest.schema.json";
import publishedManifestSchema from "./published-manifest.schema.json";
import { safeJson } from "./manifest-error";
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
/** The platforms a manifest may list, so the only ones a device can usefully offer. */
export const PLATFORMS: readonly string[] = manifestSchema.$defs.platform.enum;

/** Paths where a tmpfs would hide or replace what the kernel and runtime provide. */
const RESERVED_PATH_ROOTS = ["proc", "sys", "dev"];

/** Files Docker bind-mounts into every container; a tmpfs over one fails to start or hides it. */
const DOCKER_MANAGED_FILES = ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"];

/** Deepest nesting a manifest may have; its schema needs 4 levels, YAML parsers recurse per level. */
export const MAX_NESTING_DEPTH = 32;

/**
 * Characters refused in every free-text field: C0 controls other than tab and newline (NUL cuts a
 * string short in C, ESC starts terminal escapes, CR overwrites a printed line), DEL, C1 controls
 * (0x9B is a one-byte CSI) and the bidi embeddings, overrides and isolates (U+202A-U+202E,
 * U+2066-U+2069) that make text display in another order than it runs ("Trojan Source").
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
/** The same plus tab and newline, for one-line fields such as the description. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTER_ONE_LINE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

const CHARACTER_NAMES: Record<number, string> = {
  0x00: "NUL",
  0x07: "BEL",
  0x08: "BS",
  0x09: "TAB",
  0x0a: "LF",
  0x0d: "CR",
  0x1b: "ESC",
  0x7f: "DEL",
  0x9b: "CSI",
  0x202a: "LEFT-TO-RIGHT EMBEDDING",
  0x202b: "RIGHT-TO-LEFT EMBEDDING",
  0x202c: "POP DIRECTIONAL FORMATTING",
  0x202d: "LEFT-TO-RIGHT OVERRIDE",
  0x202e: "RIGHT-TO-LEFT OVERRIDE",
  0x2066: "LEFT-TO-RIGHT ISOLATE",
  0x2067: "RIGHT-TO-LEFT ISOLATE",
  0x2068: "FIRST STRONG ISOLATE",
  0x2069: "POP DIRECTIONAL ISOLATE",
  0xfeff: "BYTE ORDER MARK",
};

/** "U+001B (ESC)": a character named so that the message itself never contains it. */
export function describeCharacter(code: number): string {
  const hex = `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  const name = CHARACTER_NAMES[code];
  return name ? `${hex} (${name})` : hex;
}

/** The first refused control character of `text` and its index, or undefined. */
export function findControlCharacter(
  text: string,
  oneLine = false,
): { code: number; index: number } | undefined {
  const match = (oneLine ? CONTROL_CHARACTER_ONE_LINE : CONTROL_CHARACTER).exec(text);
  return match ? { code: match[0].codePointAt(0)!, index: match.index } : undefined;
}

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
  ajv.addVocabulary(["x-allowed", "x-problem", "x-refused", "x-quantity", "x-probe-path"]);
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

  if (schema["x-probe-path"] === true && error.keyword === "pattern" && typeof error.data === "string") {
    const probe = probePathProblem(error.data);
    if (probe) return { kind: "invalid", segments: base, atKey: false, value: error.data, ...probe };
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
  checkText(data, push);

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
      const normalized = `/${parts.join("/")}`;
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
      } else if (
        DOCKER_MANAGED_FILES.some((file) => normalized === file || normalized.startsWith(`${file}/`))
      ) {
        push(
          pathSegments,
          path,
          "is a file Docker manages: it writes /etc/hosts, /etc/resolv.conf and /etc/hostname into every container",
          'use a directory the app owns, like "/tmp" or "/var/cache/app"',
        );
      } else if (RESERVED_PATH_ROOTS.includes(parts[0]!)) {
        push(
          pathSegments,
          path,
          `is under /${parts[0]}, which the runtime provides`,
          'use an application directory like "/tmp" or "/var/cache/app"',
        );
      } else {
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
    resource === "cpu"
      ? "use a CPU quantity from 1m to 64 cores"
      : `use a memory quantity from ${MEMORY_MIB_MIN}Mi to 64Gi`;
  // Docker refuses to start a container whose memory limit is below its minimum, and the resource
  // manager may lower the limit to `min`: a band below it could never run.
  const below =
    resource === "cpu"
      ? "is below the minimum"
      : `is below ${MEMORY_MIB_MIN}Mi, the smallest memory limit Docker accepts`;
  const parsed: { min?: number; max?: number } = {};
  for (const end of ["min", "max"] as const) {
    const value = band[end];
    if (value === undefined) continue;
    const result = resource === "cpu" ? tryParseCpuMillicores(value) : tryParseMemoryMiB(value);
    if (!result.ok) {
      push(["resources", resource, end], value, result.problem, result.allowed);
      continue;
    }
    if (result.value < lowest) push(["resources", resource, end], value, below, range);
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

/** Free-text fields: no control characters, and a command whose program is not empty. */
function checkText(
  data: Record<string, unknown>,
  push: (segments: PathSegment[], value: unknown, problem: string, allowed: string) => void,
): void {
  const text = (segments: PathSegment[], value: unknown, oneLine = false) => {
    if (typeof value !== "string") return;
    const found = findControlCharacter(value, oneLine);
    if (!found) return;
    push(
      segments,
      value,
      `contains the control character ${describeCharacter(found.code)} at index ${found.index}`,
      oneLine
        ? "use printable text on one line: control characters, tabs, newlines and bidi overrides are refused"
        : "use printable text: tab and newline are the only control characters allowed, and bidi overrides are refused",
    );
  };
  const list = (key: PathSegment[], value: unknown, program: boolean) => {
    if (!Array.isArray(value)) return;
    value.forEach((item, index) => text([...key, index], item));
    const first: unknown = value[0];
    if (program && typeof first === "string" && first.trim() === "") {
      push(
        [...key, 0],
        first,
        first === "" ? "is empty" : "is blank",
        'the first entry is the program to run, like "/bin/httpd"',
      );
    }
  };
  text(["description"], data.description, true);
  list(["command"], data.command, true);
  list(["args"], data.args, false);
  if (isRecord(data.env)) for (const [name, value] of Object.entries(data.env)) text(["env", name], value);
  if (isRecord(data.healthCheck)) list(["healthCheck", "exec"], data.healthCheck.exec, true);
  if (isRecord(data.images)) {
    for (const [platform, source] of Object.entries(data.images)) {
      if (isRecord(source)) text(["images", platform, "tar"], source.tar, true);
    }
  }
}

/**
 * Why an HTTP probe path would leave the container, or undefined. The worker probes
 * http://<container>:<port><path>, so anything a URL parser reads as a host (a scheme, "//host",
 * "/\\host", which WHATWG URLs read as "//host") would send the probe, and the worker's network
 * position, to another host: a neighbour, the device itself, or a cloud metadata service.
 */
export function probePathProblem(path: string): { problem: string; allowed: string } | undefined {
  const allowed = 'a probe only targets its own container: give the path alone, like "/healthz"';
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):[/\\]{2}/.exec(path);
  const networkPath = /^[/\\]{2}/.test(path);
  if (scheme || networkPath) {
    const host = hostOf(scheme ? path : `http:${path.replace(/\\/g, "/")}`);
    const what = scheme
      ? `an absolute ${scheme[1]!.toLowerCase()} URL`
      : "a network-path reference (//host/...)";
    return { problem: `is ${what}${host ? ` to ${describeHost(host)}` : ""}`, allowed };
  }
  if (path.includes("\\")) {
    return {
      problem: "contains a backslash, which URL parsers read as '/', so the path could name another host",
      allowed: `${allowed}, using '/' only`,
    };
  }
  return undefined;
}

function hostOf(url: string): string | undefined {
  try {
    const host = new URL(url).hostname;
    return host === "" ? undefined : host;
  } catch {
    return undefined;
  }
}

function describeHost(host: string): string {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (/^169\.254\./.test(bare) || bare === "fd00:ec2::254")
    return `${host}, a link-local address where cloud metadata services answer`;
  if (/^fe[89ab][0-9a-f]?:/.test(bare)) return `${host}, a link-local address`;
  if (bare === "metadata.google.internal" || bare === "metadata") return `${host}, a cloud metadata service`;
  if (bare === "localhost" || /^127\./.test(bare) || bare === "::1" || bare === "0.0.0.0")
    return `${host}, the device itself`;
  return `another host (${host})`;
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
    else out += `[${safeJson(segment)}]`;
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
