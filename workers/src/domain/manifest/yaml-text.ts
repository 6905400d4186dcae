import { describeCharacter } from "./validate";

/**
 * Checks of a shoal.yaml's text before the YAML parser sees it: encoding, raw control characters
 * and nesting. Each returns one issue (problem, allowed, line) or undefined. They run before the
 * parser because the parser cannot be trusted with what they catch: a lossy decoder has already
 * replaced bad bytes, a bidi override makes the file read differently than it parses, and a
 * 40 KB file of "[" makes the parser exhaust the stack, then the heap (a crash, not an error).
 */

export interface TextIssue {
  problem: string;
  allowed: string;
  line?: number;
}

/**
 * Deepest flow nesting ("[", "{") and widest block indentation the parser is given. Real manifests
 * need 4 levels and a dozen columns; the parser takes about a second per thousand levels and runs
 * out of memory near twenty thousand.
 */
export const MAX_FLOW_DEPTH = 64;
export const MAX_INDENT_COLUMNS = 256;

const SAVE_AS_UTF8 = "save the file as UTF-8 without a byte order mark";

/** Decodes the bytes of a file as strict UTF-8, or says why it is not. */
export function decodeUtf8(bytes: Uint8Array): { text: string } | TextIssue {
  const bom: [number[], string][] = [
    [[0xef, 0xbb, 0xbf], "starts with a UTF-8 byte order mark"],
    [[0xff, 0xfe, 0x00, 0x00], "is UTF-32 (little-endian) text"],
    [[0x00, 0x00, 0xfe, 0xff], "is UTF-32 (big-endian) text"],
    [[0xff, 0xfe], "is UTF-16 (little-endian) text"],
    [[0xfe, 0xff], "is UTF-16 (big-endian) text"],
  ];
  for (const [mark, problem] of bom) {
    if (mark.every((byte, i) => bytes[i] === byte)) return { problem, allowed: SAVE_AS_UTF8, line: 1 };
  }
  // Without a BOM, UTF-16 shows as a NUL byte next to every ASCII character.
  if (bytes.length >= 2 && (bytes[0] === 0) !== (bytes[1] === 0)) {
    const order = bytes[0] === 0 ? "big" : "little";
    return { problem: `is UTF-16 (${order}-endian) text`, allowed: SAVE_AS_UTF8, line: 1 };
  }
  const bad = firstInvalidUtf8(bytes);
  if (bad !== undefined) {
    let line = 1;
    for (let i = 0; i < bad; i++) if (bytes[i] === 0x0a) line++;
    return {
      problem: `has a byte that is not UTF-8 (0x${bytes[bad]!.toString(16).padStart(2, "0")} at byte ${bad})`,
      allowed: SAVE_AS_UTF8,
      line,
    };
  }
  return { text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
}

/** Offset of the first byte that does not belong to well-formed UTF-8 (RFC 3629), or undefined. */
function firstInvalidUtf8(bytes: Uint8Array): number | undefined {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min = 0x80;
    let max = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) min = 0xa0; // overlong
      if (b === 0xed) max = 0x9f; // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) min = 0x90; // overlong
      if (b === 0xf4) max = 0x8f; // above U+10FFFF
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      const [lo, hi] = k === 1 ? [min, max] : [0x80, 0xbf];
      if (c < lo || c > hi) return i;
    }
    i += need + 1;
  }
  return undefined;
}

/** Bytes of `text` as UTF-8, counted without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

// Raw characters refused anywhere in the text, comments included: C0 controls other than tab, LF
// and CR, DEL, C1 controls, bidi embeddings/overrides/isolates and a byte order mark.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const RAW_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\ufeff]/;

/** The first raw control character of the text, with its line and column. */
export function findRawControl(text: string): TextIssue | undefined {
  const match = RAW_CONTROL.exec(text);
  if (!match) return undefined;
  const before = text.slice(0, match.index);
  const line = before.split("\n").length;
  const column = match.index - before.lastIndexOf("\n");
  const code = match[0].codePointAt(0)!;
  return {
    problem:
      code === 0xfeff && match.index === 0
        ? "starts with a byte order mark"
        : `has the control character ${describeCharacter(code)} at column ${column}`,
    allowed:
      code === 0xfeff && match.index === 0
        ? SAVE_AS_UTF8
        : "remove it: a manifest is printable text (tabs and newlines aside), and control characters can make a file display differently than it reads",
    line,
  };
}

/**
 * A cheap upper bound of the nesting, counted before parsing. Flow brackets are counted outside
 * comments and quoted scalars; a quote counts only where a scalar can start, so a stray quote
 * inside plain text cannot hide brackets from the count (an over-count only refuses earlier).
 */
export function findDeepNesting(text: string): TextIssue | undefined {
  const allowed = `a manifest needs 4 levels of nesting; at most ${MAX_FLOW_DEPTH} flow levels and ${MAX_INDENT_COLUMNS} columns of indentation are read`;
  let depth = 0;
  let line = 1;
  let lineStart = true;
  let indent = 0;
  let previous = "\n"; // the last character that was not a space
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\n") {
      line++;
      lineStart = true;
      indent = 0;
      previous = "\n";
      continue;
    }
    if (lineStart) {
      if (
        c === " " ||
        c === "\t" ||
        ((c === "-" || c === "?" || c === ":") && /[ \t\n]/.test(text[i + 1] ?? "\n"))
      ) {
        if (++indent > MAX_INDENT_COLUMNS)
          return { problem: `is indented by more than ${MAX_INDENT_COLUMNS} columns`, allowed, line };
        continue;
      }
      lineStart = false;
    }
    if (c === " " || c === "\t" || c === "\r") continue;
    if (c === "#" && /[ \t\n]/.test(text[i - 1] ?? "\n")) {
      while (i + 1 < text.length && text[i + 1] !== "\n") i++;
      continue;
    }
    if ((c === '"' || c === "'") && /[\n:\-?[{,]/.test(previous)) {
      // Skip the quoted scalar; "" inside '...' and \" inside "..." are escapes.
      for (i++; i < text.length; i++) {
        const q = text[i]!;
        if (q === "\n") line++;
        if (c === '"' && q === "\\") {
          if (text[i + 1] === "\n") line++;
          i++;
        } else if (q === c) {
          if (c === "'" && text[i + 1] === "'") i++;
          else break;
        }
      }
      previous = c;
      continue;
    }
    if (c === "[" || c === "{") {
      if (++depth > MAX_FLOW_DEPTH)
        return { problem: `nests more than ${MAX_FLOW_DEPTH} flow collections ("[" or "{")`, allowed, line };
    } else if ((c === "]" || c === "}") && depth > 0) depth--;
    previous = c;
  }
  return undefined;
}
