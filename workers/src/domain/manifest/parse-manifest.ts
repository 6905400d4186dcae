import { isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Document, Node, Pair, YAMLMap } from "yaml";
import { stableStringify } from "./canonical";
import { ManifestError, makeIssue } from "./manifest-error";
import type { ManifestIssue } from "./manifest-error";
import { normalizeSource } from "./normalize";
import type { Manifest } from "./types";
import {
  collectIssues,
  displayPath,
  finishIssues,
  isRecord,
  MAX_MANIFEST_BYTES,
  MAX_NESTING_DEPTH,
} from "./validate";
import type { PathSegment } from "./validate";
import { decodeUtf8, findDeepNesting, findRawControl, utf8Length } from "./yaml-text";
import type { TextIssue } from "./yaml-text";

export interface ParseManifestOptions {
  /** File name used as the prefix of every issue line; defaults to "shoal.yaml". */
  source?: string;
}

/** YAML anchors/aliases could expand a small file into a huge object ("billion laughs"). */
const MAX_ALIAS_COUNT = 50;

/**
 * The tags of YAML 1.2's core schema, which only say what plain YAML already means. Every other
 * tag changes or drops data: `!!omap` and `!!set` become empty mappings, `!!binary` a byte array,
 * `!!timestamp` a date, and an unknown tag is silently read as a string.
 */
const CORE_TAGS = new Set(
  ["str", "int", "float", "bool", "null", "map", "seq"].map((t) => `tag:yaml.org,2002:${t}`),
);

/** A CIDv1 in base32 (sha2-256), the usual length of an image CID, for the size estimate. */
const TYPICAL_CID = `b${"a".repeat(58)}`;

/**
 * Parses and validates a shoal.yaml: its bytes (checked to be UTF-8) or its text. Returns the
 * normalized manifest, or throws a ManifestError listing every issue found, each with its YAML line.
 */
export function parseManifest(input: string | Uint8Array, options: ParseManifestOptions = {}): Manifest {
  const source = options.source ?? "shoal.yaml";
  const refuse = (issues: ManifestIssue[], cause?: unknown): never => {
    throw new ManifestError(issues, { source, cause });
  };
  const textIssue = (issue: TextIssue, kind: "syntax" | "yaml" = "syntax"): ManifestIssue =>
    makeIssue({ kind, path: "", value: undefined, ...issue });

  // Counted before anything else reads the input: the workers refuse a larger manifest.
  const bytes = typeof input === "string" ? utf8Length(input) : input.byteLength;
  if (bytes > MAX_MANIFEST_BYTES) {
    refuse([
      makeIssue({
        kind: "size",
        path: "",
        value: undefined,
        problem: `is ${bytes} bytes`,
        allowed: `a manifest has at most ${MAX_MANIFEST_BYTES} bytes, the most a worker fetches`,
      }),
    ]);
  }
  let text: string;
  if (typeof input === "string") text = input;
  else {
    const decoded = decodeUtf8(input);
    if (!("text" in decoded)) return refuse([textIssue(decoded)]);
    text = decoded.text;
  }
  const raw = findRawControl(text);
  if (raw) refuse([textIssue(raw)]);
  const deep = findDeepNesting(text);
  if (deep) refuse([textIssue(deep, "yaml")]);

  const lineCounter = new LineCounter();
  // uniqueKeys is off because yamlIssues() names the duplicated key, and also finds duplicates
  // the parser's check misses (1 and "1" are two YAML keys, but one JSON key).
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false, merge: true });
  const lineOfOffset = (offset: number) => lineCounter.linePos(offset).line;
  if (doc.errors.length > 0) {
    // One error per line: the parser often reports a cascade of follow-up errors for one mistake.
    const seenLines = new Set<number>();
    const firstPerLine = doc.errors.filter((error) => {
      const line = lineOfOffset(error.pos[0]);
      if (seenLines.has(line)) return false;
      seenLines.add(line);
      return true;
    });
    const issues = firstPerLine.map((error) => {
      const line = lineOfOffset(error.pos[0]);
      if (error.code === "MULTIPLE_DOCS") {
        return textIssue({
          problem: `holds more than one YAML document (another one starts on line ${line})`,
          allowed: "a manifest is one document: remove the '---' line and what follows it, or split the file",
          line,
        });
      }
      if (error.code === "RESOURCE_EXHAUSTION") {
        return textIssue(
          {
            problem: "nests too deeply for the YAML parser",
            allowed: "a manifest needs 4 levels of nesting",
            line,
          },
          "yaml",
        );
      }
      return textIssue({
        problem: `YAML syntax error: ${error.message}`,
        allowed: "fix the YAML syntax",
        line,
      });
    });
    refuse(issues, doc.errors[0]);
  }
  const structural = yamlIssues(doc, text, lineOfOffset);
  if (structural.length > 0) refuse(structural);

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (cause) {
    const message = (cause as Error).message;
    const [problem, allowed] =
      cause instanceof RangeError
        ? ["nests too deeply once its aliases are expanded", "use plain YAML without deep aliases"]
        : /alias count/i.test(message)
          ? [
              `expands its aliases into too much data (more than ${MAX_ALIAS_COUNT} nodes)`,
              "write the values out, or use fewer aliases",
            ]
          : /merge sources/i.test(message)
            ? ["has a merge key (<<) whose value is not a mapping", "merge a mapping or an alias of one"]
            : [`cannot be read: ${message}`, "use plain YAML without deep aliases"];
    refuse([makeIssue({ kind: "yaml", path: "", value: undefined, problem, allowed })], cause);
  }

  const issues = collectIssues(data, "source");
  if (issues.length > 0) {
    const located = finishIssues(issues, (segments, atKey) => lineOf(doc, lineCounter, segments, atKey));
    refuse(located.map(makeIssue));
  }
  if (!isRecord(data)) throw new Error("unreachable: a valid manifest is a mapping");
  const manifest = normalizeSource(data);

  // Aliases and defaults make the published form larger than the file; the worker's limit is on
  // the published bytes. Typical CIDs stand in for the images here; canonicalManifest() checks the
  // exact bytes once the images' CIDs are known.
  const { images, ...body } = manifest;
  const estimate = utf8Length(
    stableStringify({
      ...body,
      images: Object.fromEntries(Object.keys(images).map((p) => [p, { cid: TYPICAL_CID }])),
    }),
  );
  if (estimate > MAX_MANIFEST_BYTES) {
    refuse([
      makeIssue({
        kind: "size",
        path: "",
        value: undefined,
        problem: `would publish as about ${estimate} bytes of canonical JSON (aliases expanded, defaults written out)`,
        allowed: `workers accept at most ${MAX_MANIFEST_BYTES} bytes: shorten env, command, args or the description`,
      }),
    ]);
  }
  return manifest;
}

/**
 * YAML that parses but would not mean what it says once read into JSON: a `%YAML 1.1` directive,
 * tags outside the core schema, aliases or collections as keys, keys written twice (also when
 * spelled differently, like 1 and "1"), and nesting deeper than MAX_NESTING_DEPTH.
 */
function yamlIssues(doc: Document, text: string, lineOfOffset: (offset: number) => number): ManifestIssue[] {
  const issues: ManifestIssue[] = [];
  const lineAt = (node: unknown): number | undefined => {
    const range = (node as Node | null)?.range;
    return range ? lineOfOffset(range[0]) : undefined;
  };
  const push = (segments: readonly PathSegment[], node: unknown, problem: string, allowed: string) =>
    issues.push(
      makeIssue({
        kind: "yaml",
        path: displayPath(segments),
        value: undefined,
        problem,
        allowed,
        ...(lineAt(node) !== undefined ? { line: lineAt(node)! } : {}),
      }),
    );

  const directive = doc.directives?.yaml;
  if (directive?.explicit && directive.version !== "1.2") {
    const at = /^%YAML/m.exec(text);
    issues.push(
      makeIssue({
        kind: "yaml",
        path: "",
        value: undefined,
        problem: `declares %YAML ${directive.version}, whose rules read yes/no as booleans, 0777 as octal and 1:30 as 90`,
        allowed: "remove the directive: manifests are read as YAML 1.2",
        ...(at ? { line: lineOfOffset(at.index) } : {}),
      }),
    );
  }

  const checkTag = (node: Node, segments: readonly PathSegment[]) => {
    const tag = node.tag;
    if (tag === undefined || CORE_TAGS.has(tag)) return;
    const shown = tag.replace(/^tag:yaml\.org,2002:/, "!!");
    push(
      segments,
      node,
      `has the YAML tag ${shown}, which would change or drop its data`,
      "remove the tag: a manifest holds plain mappings, lists, strings, numbers and booleans",
    );
  };

  const visit = (node: unknown, segments: PathSegment[], depth: number): void => {
    if (!isScalar(node) && !isCollection(node)) return; // aliases are checked where their anchor is
    checkTag(node, segments);
    if (depth > MAX_NESTING_DEPTH) {
      push(
        segments,
        node,
        `nests more than ${MAX_NESTING_DEPTH} levels deep`,
        "a manifest needs 4 levels of nesting",
      );
      return;
    }
    if (isSeq(node)) {
      node.items.forEach((item, index) => visit(item, [...segments, index], depth + 1));
      return;
    }
    if (!isMap(node)) return;
    const seen = new Map<string, { line: number | undefined; spelling: string }>();
    for (const pair of node.items) {
      const key = pair.key;
      if (isAlias(key)) {
        push(
          segments,
          key,
          `has an alias (*${key.source}) as a key`,
          "write the key out: keys are plain names",
        );
        continue;
      }
      if (!isScalar(key)) {
        push(segments, key, `has a ${isSeq(key) ? "list" : "mapping"} as a key`, "keys are plain names");
        continue;
      }
      if (typeof key.value === "symbol") {
        // A merge key (<<): its keys come from the anchored mapping, checked where it is written.
        visit(pair.value, segments, depth);
        continue;
      }
      checkTag(key, [...segments, String(key.value)]);
      const name = String(key.value);
      const spelling = key.source ?? name;
      const written = text.slice(key.range?.[0] ?? 0, key.range?.[1] ?? 0) || spelling;
      const first = seen.get(name);
      if (first !== undefined) {
        push(
          [...segments, name],
          key,
          first.spelling === written
            ? `is written twice (also on line ${first.line})`
            : `is written twice: ${written} here and ${first.spelling} on line ${first.line} both read as the key "${name}"`,
          "write each key once",
        );
      } else seen.set(name, { line: lineAt(key), spelling: written });
      visit(pair.value, [...segments, name], depth + 1);
    }
  };
  visit(doc.contents, [], 1);
  return issues;
}

/** The node an alias points to, or the node itself. */
function resolved(doc: Document, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

/** The pair of `key` in `map`, following merge keys (<<) into the mappings they bring in. */
function findPair(doc: Document, map: YAMLMap, key: string, depth = 0): Pair | undefined {
  const own = map.items.find(
    (p) => isScalar(p.key) && typeof p.key.value !== "symbol" && String(p.key.value) === key,
  );
  if (own || depth > MAX_NESTING_DEPTH) return own;
  for (const pair of map.items) {
    if (!isScalar(pair.key) || typeof pair.key.value !== "symbol") continue;
    const value = resolved(doc, pair.value);
    const sources = isSeq(value) ? value.items.map((item) => resolved(doc, item)) : [value];
    for (const merged of sources) {
      const found = isMap(merged) ? findPair(doc, merged, key, depth + 1) : undefined;
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * The 1-based line of the YAML node at `segments`: the key's line when `atKey`, else the value's.
 * Walks as deep as the document goes, so a missing field reports its parent's line; follows aliases
 * and merge keys, so a key brought in by a merge reports the line where it is written.
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
    node = resolved(doc, node);
    if (isMap(node)) {
      const pair = findPair(doc, node, String(segment));
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
