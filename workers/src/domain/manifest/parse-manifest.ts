import { isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Document, Node } from "yaml";
import { ManifestError, makeIssue } from "./manifest-error";
import type { ManifestIssue } from "./manifest-error";
import { normalizeSource } from "./normalize";
import type { Manifest } from "./types";
import { collectIssues, finishIssues, isRecord, MAX_MANIFEST_BYTES } from "./validate";
import type { PathSegment } from "./validate";

export interface ParseManifestOptions {
  /** File name used as the prefix of every issue line; defaults to "shoal.yaml". */
  source?: string;
}

/** YAML anchors/aliases could expand a small file into a huge object ("billion laughs"). */
const MAX_ALIAS_COUNT = 50;

/**
 * Parses and validates a shoal.yaml. Returns the normalized manifest, or throws a ManifestError
 * listing every issue found, each with its YAML line.
 */
export function parseManifest(text: string, options: ParseManifestOptions = {}): Manifest {
  const source = options.source ?? "shoal.yaml";
  if (text.length > MAX_MANIFEST_BYTES) {
    throw new ManifestError(
      [
        makeIssue({
          kind: "syntax",
          path: "",
          value: undefined,
          problem: `the file has ${text.length} characters`,
          allowed: `a manifest has at most ${MAX_MANIFEST_BYTES}`,
        }),
      ],
      { source },
    );
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // One error per line: the parser often reports a cascade of follow-up errors for one mistake.
    const seenLines = new Set<number>();
    const firstPerLine = doc.errors.filter((error) => {
      const line = lineCounter.linePos(error.pos[0]).line;
      if (seenLines.has(line)) return false;
      seenLines.add(line);
      return true;
    });
    const issues = firstPerLine.map((error) =>
      makeIssue({
        kind: "syntax",
        path: "",
        value: undefined,
        problem: `YAML syntax error: ${error.message}`,
        allowed: "fix the YAML syntax",
        line: lineCounter.linePos(error.pos[0]).line,
      }),
    );
    throw new ManifestError(issues, { source, cause: doc.errors[0] });
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (cause) {
    throw new ManifestError(
      [
        makeIssue({
          kind: "syntax",
          path: "",
          value: undefined,
          problem: `cannot be read: ${(cause as Error).message}`,
          allowed: "use plain YAML without deep aliases",
        }),
      ],
      { source, cause },
    );
  }

  const raw = collectIssues(data, "source");
  if (raw.length > 0) {
    const located = finishIssues(raw, (segments, atKey) => lineOf(doc, lineCounter, segments, atKey));
    throw new ManifestError(located.map(makeIssue) as ManifestIssue[], { source });
  }
  if (!isRecord(data)) throw new Error("unreachable: a valid manifest is a mapping");
  return normalizeSource(data);
}

/**
 * The 1-based line of the YAML node at `segments`: the key's line when `atKey`, else the value's.
 * Walks as deep as the document goes, so a missing field reports its parent's line.
 */
function lineOf(
  doc: Document,
  lineCounter: LineCounter,
  segments: readonly PathSegment[],
  atKey: boolean,
): number | undefined {
  const lineAt = (node: unknown): number | undefined => {
    const range = (node as Node | null)?.range;
    return range ? lineCounter.linePos(range[0]).line : undefined;
  };
  let node: unknown = doc.contents;
  let line = lineAt(node);
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const last = i === segments.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(segment));
      if (!pair) return line;
      const keyLine = lineAt(pair.key) ?? line;
      if (last && atKey) return keyLine;
      // A scalar reports its own line; a mapping or list reports its key's line, which is where
      // the user reads its name (the collection itself starts on the next line).
      line = isScalar(pair.value) ? (lineAt(pair.value) ?? keyLine) : keyLine;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)];
      if (item === undefined) return line;
      line = lineAt(item) ?? line;
      node = item;
    } else {
      return line;
    }
  }
  return line;
}
