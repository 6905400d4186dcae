import { ManifestError, makeIssue } from "./manifest-error";

/**
 * CPU and memory quantities.
 *
 * CPU: millicores "250m" (integer), or cores as a number (0.5) or numeric string ("0.5", "2") with
 * at most 3 decimals, since 1m is the smallest step the chain stores.
 * Memory: binary units only, "64Mi" or "1Gi"/"1.5Gi", and always a whole number of MiB, because the
 * chain stores MiB as integers. Decimal units ("512M", "1G") are refused rather than guessed: they
 * differ from the binary ones by 5-7%, which is the kind of error that only shows up as an OOM kill.
 */

export const CPU_MILLICORES_MIN = 1;
export const CPU_MILLICORES_MAX = 64_000;
/** Docker refuses a memory limit below 6 MiB ("Minimum memory limit allowed is 6MB"). */
export const MEMORY_MIB_MIN = 6;
export const MEMORY_MIB_MAX = 64 * 1024;

export const CPU_ALLOWED = 'use millicores like "250m" or cores like "0.5"';
export const MEMORY_ALLOWED = 'use binary units like "64Mi" or "1Gi"';

/** The result of parsing a quantity without throwing: the value, or why not. */
export type QuantityResult = { ok: true; value: number } | { ok: false; problem: string; allowed: string };

// Long digit strings would lose precision as numbers; no sane quantity needs more than this.
const MAX_QUANTITY_CHARS = 16;

export function tryParseCpuMillicores(input: unknown): QuantityResult {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0)
      return { ok: false, problem: "is not a CPU quantity", allowed: CPU_ALLOWED };
    const millis = input * 1000;
    const rounded = Math.round(millis);
    // Floating point: 0.1 * 1000 is 100.00000000000001, so compare with a tolerance far below 1m.
    if (Math.abs(millis - rounded) > 1e-6) {
      return {
        ok: false,
        problem: "has more than 3 decimals",
        allowed: "the smallest CPU step is 1m (0.001 cores)",
      };
    }
    return { ok: true, value: rounded };
  }
  if (typeof input !== "string" || input.length > MAX_QUANTITY_CHARS) {
    return { ok: false, problem: "is not a CPU quantity", allowed: CPU_ALLOWED };
  }
  const milli = /^([0-9]+)m$/.exec(input);
  if (milli) return { ok: true, value: Number(milli[1]) };
  const cores = /^([0-9]+)(?:\.([0-9]+))?$/.exec(input);
  if (cores) {
    const fraction = cores[2] ?? "";
    if (fraction.length > 3) {
      return {
        ok: false,
        problem: "has more than 3 decimals",
        allowed: "the smallest CPU step is 1m (0.001 cores)",
      };
    }
    return { ok: true, value: Number(cores[1]) * 1000 + Number(fraction.padEnd(3, "0")) };
  }
  if (/^[0-9]+(\.[0-9]+)?M$/.test(input)) {
    return {
      ok: false,
      problem: "is not a CPU quantity",
      allowed: 'millicores take a lowercase "m", like "250m"',
    };
  }
  if (/^[0-9]+\.[0-9]+m$/.test(input)) {
    return {
      ok: false,
      problem: "is not a whole number of millicores",
      allowed: "the smallest CPU step is 1m",
    };
  }
  return { ok: false, problem: "is not a CPU quantity", allowed: CPU_ALLOWED };
}

export function tryParseMemoryMiB(input: unknown): QuantityResult {
  if (typeof input === "number") {
    return {
      ok: false,
      problem: "is a bare number",
      allowed: 'add a binary unit, like "64Mi" or "1Gi" (a bare number would mean bytes to Docker)',
    };
  }
  if (typeof input !== "string" || input.length > MAX_QUANTITY_CHARS) {
    return { ok: false, problem: "is not a memory quantity", allowed: MEMORY_ALLOWED };
  }
  const match = /^([0-9]+)(?:\.([0-9]+))?(Mi|Gi)$/.exec(input);
  if (match) {
    const whole = Number(match[1]);
    const fraction = match[2] ?? "";
    const perUnit = match[3] === "Gi" ? 1024 : 1;
    // Exact integer arithmetic: MiB = whole*perUnit + fraction*perUnit/10^digits, which must be whole.
    const scale = 10 ** fraction.length;
    const fractionMiB = Number(fraction === "" ? "0" : fraction) * perUnit;
    if (fractionMiB % scale !== 0) {
      return {
        ok: false,
        problem: "is not a whole number of MiB",
        allowed: 'the chain stores whole MiB; use a value like "1536Mi"',
      };
    }
    return { ok: true, value: whole * perUnit + fractionMiB / scale };
  }
  const other = /^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)$/.exec(input);
  if (other) {
    const [, amount, unit] = other as unknown as [string, string, string];
    if (unit === "MiB" || unit === "GiB") {
      return {
        ok: false,
        problem: `writes the unit as "${unit}"`,
        allowed: `write "${amount}${unit.slice(0, 2)}"`,
      };
    }
    if (["M", "G", "MB", "GB", "m", "g", "mb", "gb"].includes(unit)) {
      const binary = unit.toUpperCase().startsWith("G") ? "Gi" : "Mi";
      return {
        ok: false,
        problem: "uses a decimal unit",
        allowed: `Shoal takes binary units only; write "${amount}${binary}" if that is what you mean (1Mi = 1024 x 1024 bytes)`,
      };
    }
    return {
      ok: false,
      problem: `has the unit "${unit}", which Shoal does not take`,
      allowed: MEMORY_ALLOWED,
    };
  }
  if (/^[0-9]+$/.test(input)) {
    return { ok: false, problem: "has no unit", allowed: 'add a binary unit, like "64Mi" or "1Gi"' };
  }
  return { ok: false, problem: "is not a memory quantity", allowed: MEMORY_ALLOWED };
}

function unwrap(result: QuantityResult, input: unknown, field: string): number {
  if (result.ok) return result.value;
  throw new ManifestError([
    makeIssue({
      kind: "invalid",
      path: field,
      value: input,
      problem: result.problem,
      allowed: result.allowed,
    }),
  ]);
}

/** "250m" -> 250, "0.5" -> 500, 1 -> 1000. Throws a ManifestError naming `field`. No bounds check. */
export function parseCpuMillicores(input: string | number, field = "cpu"): number {
  return unwrap(tryParseCpuMillicores(input), input, field);
}

/** "64Mi" -> 64, "1Gi" -> 1024, "1.5Gi" -> 1536. Throws a ManifestError naming `field`. No bounds check. */
export function parseMemoryMiB(input: string, field = "memory"): number {
  return unwrap(tryParseMemoryMiB(input), input, field);
}

/** 250 -> "250m", 1000 -> "1000m": always millicores, so the canonical form is unique. */
export function formatCpuMillicores(millicores: number): string {
  assertNonNegativeInteger(millicores, "millicores");
  return `${millicores}m`;
}

/** 64 -> "64Mi", 1024 -> "1Gi", 1536 -> "1536Mi": Gi only when exact, so the canonical form is unique. */
export function formatMemoryMiB(mib: number): string {
  assertNonNegativeInteger(mib, "mib");
  return mib > 0 && mib % 1024 === 0 ? `${mib / 1024}Gi` : `${mib}Mi`;
}

function assertNonNegativeInteger(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ManifestError([
      makeIssue({
        kind: "invalid",
        path: field,
        value,
        problem: "is not a non-negative integer",
        allowed: "pass a whole number",
      }),
    ]);
  }
}
