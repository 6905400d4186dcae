import { ShoalError } from "../../errors";

/**
 * What kind of problem an issue is; only changes how the issue reads:
 * - `invalid`: the value is there but not allowed (`path: "abc" is not a CPU quantity; ...`)
 * - `missing`: a required field is absent (`path is missing; ...`)
 * - `unknown-key`: a key the schema does not know (`path is not a known key; ...`)
 * - `refused`: a key Shoal refuses because it weakens device isolation
 * - `syntax`: the text is not YAML/JSON at all, or not UTF-8
 * - `yaml`: YAML that parses but would change or drop data (tags, 1.1 rules, duplicate or
 *   non-string keys, nesting too deep), reported at the node that uses it
 * - `size`: the manifest is larger than workers accept
 */
export type ManifestIssueKind =
  "invalid" | "missing" | "unknown-key" | "refused" | "syntax" | "yaml" | "size";

/** One problem of a manifest. */
export interface ManifestIssue {
  kind: ManifestIssueKind;
  /** Dotted path of the field, like "resources.cpu.max" or "ports[0].containerPort"; "" for the whole document. */
  path: string;
  /** The offending value; undefined when the field is missing. */
  value: unknown;
  /** What is wrong, as a predicate of the value: "is not a CPU quantity". */
  problem: string;
  /** What is allowed instead: 'use millicores like "250m" or cores like "0.5"'. */
  allowed: string;
  /** 1-based line in the source text, when the parser gives one. */
  line?: number;
  /** The issue as one line, without the source prefix. */
  message: string;
}

export interface ManifestErrorOptions {
  /** Name of the file or CID the manifest came from, used as the prefix of each line. */
  source?: string;
  cause?: unknown;
}

/** A manifest that is not valid: every issue found, not just the first. Never retryable. */
export class ManifestError extends ShoalError {
  override name = "ManifestError";
  readonly issues: readonly ManifestIssue[];
  readonly source: string | undefined;

  constructor(issues: readonly ManifestIssue[], options: ManifestErrorOptions = {}) {
    const where = options.source ?? "manifest";
    const count = issues.length === 1 ? "1 issue" : `${issues.length} issues`;
    super(`${where} is not a valid Shoal manifest (${count}):`, {
      cause: options.cause,
      metaMessages: issues.map((issue) => formatIssueLine(issue, options.source)),
      details: "",
      retryable: false,
    });
    this.issues = issues;
    this.source = options.source;
  }
}

// Long enough for a CID or an image reference, short enough to keep an issue on one line.
const MAX_VALUE_CHARS = 120;

// JSON.stringify escapes C0 controls only; these would still reach a terminal as they are.
const UNSAFE_IN_TERMINAL = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** JSON text with every character that could move the cursor or reorder text written as \uXXXX. */
export function safeJson(value: unknown): string | undefined {
  return JSON.stringify(value)?.replace(
    UNSAFE_IN_TERMINAL,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Renders a value the way a user would write it, shortened to one readable line. */
export function describeValue(value: unknown): string {
  let text: string;
  if (value === undefined) text = "nothing";
  else if (typeof value === "number" && !Number.isFinite(value)) text = String(value);
  else {
    try {
      text = safeJson(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 3)}...` : text;
}

/** The issue as one line without the source prefix. */
export function formatIssueMessage(issue: Omit<ManifestIssue, "message" | "line">): string {
  const path = issue.path === "" ? "(manifest)" : issue.path;
  switch (issue.kind) {
    case "syntax":
      return `${issue.problem}; ${issue.allowed}`;
    case "missing":
    case "unknown-key":
    case "yaml":
    case "size":
      return `${path} ${issue.problem}; ${issue.allowed}`;
    default:
      return `${path}: ${describeValue(issue.value)} ${issue.problem}; ${issue.allowed}`;
  }
}

/** `shoal.yaml:12: resources.cpu.max: "abc" is not a CPU quantity; use ...` */
export function formatIssueLine(issue: ManifestIssue, source?: string): string {
  const where = [source, issue.line].filter((part) => part !== undefined && part !== "").join(":");
  return where === "" ? issue.message : `${where}: ${issue.message}`;
}

/** Builds an issue and its message. */
export function makeIssue(fields: Omit<ManifestIssue, "message">): ManifestIssue {
  return { ...fields, message: formatIssueMessage(fields) };
}
