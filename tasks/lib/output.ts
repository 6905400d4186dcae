/** Terminal output of the tasks: clear errors, tables, and a progress line for long uploads. */
import { HardhatPluginError } from "hardhat/plugins";
import { ShoalError } from "../../workers/src";

const PLUGIN = "shoal";

/**
 * Stops the task with one clear sentence and a non-zero exit, without a stack trace (printed by
 * reportTaskErrorsPlainly in cli-errors.ts).
 */
export function fail(message: string, cause?: Error): never {
  throw new HardhatPluginError(PLUGIN, message, cause);
}

/** Runs `action`, turning any error into a task failure whose message starts with `what`. */
export async function orFail<T>(what: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (HardhatPluginError.isHardhatPluginError(error)) throw error;
    // A Shoal error's short message is its sentence; its full message adds "Details:" lines.
    const reason =
      revertReason(error) ??
      (error instanceof ShoalError
        ? error.shortMessage
        : error instanceof Error
          ? error.message
          : String(error));
    fail(`${what}: ${reason}`, error instanceof Error ? error : undefined);
  }
}

/** "ContractError(arg, ...)" for a custom-error revert decoded by ethers, else undefined. */
export function revertReason(error: unknown): string | undefined {
  const revert = (error as { revert?: { name: string; args: unknown[] } } | undefined)?.revert;
  if (!revert) return undefined;
  const args = revert.args.map((arg) => (typeof arg === "string" ? JSON.stringify(arg) : String(arg)));
  return `the contract reverted with ${revert.name}(${args.join(", ")})`;
}

/** A plain text table: columns padded to their widest cell. */
export function table(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return "(none)";
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (cell ?? "").padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

export interface Progress {
  update(bytes: number): void;
  done(summary: string): void;
}

/**
 * A one-line progress bar on stderr when it is a terminal; otherwise a line at start and at the
 * end, so logs stay readable. `total` may be unknown (a `docker save` stream).
 */
export function progress(label: string, total?: number): Progress {
  const tty = process.stderr.isTTY === true;
  const started = Date.now();
  let lastDraw = 0;
  if (!tty) process.stderr.write(`${label}: uploading${total ? ` ${formatBytes(total)}` : ""}\n`);
  return {
    update(bytes) {
      if (!tty || Date.now() - lastDraw < 100) return;
      lastDraw = Date.now();
      const rate = bytes / Math.max((Date.now() - started) / 1000, 0.001);
      let bar = "";
      if (total) {
        const fraction = Math.min(bytes / total, 1);
        const filled = Math.round(fraction * 24);
        bar = `[${"#".repeat(filled)}${".".repeat(24 - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% `;
      }
      process.stderr.write(`\r${label}: ${bar}${formatBytes(bytes)} at ${formatBytes(rate)}/s\x1b[K`);
    },
    done(summary) {
      // The bar lives on stderr; the result belongs on stdout with the rest of the task's output.
      if (tty) process.stderr.write("\r\x1b[K");
      process.stdout.write(`${label}: ${summary}\n`);
    },
  };
}
