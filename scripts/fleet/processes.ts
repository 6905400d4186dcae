/**
 * Processes the fleet owns: detached children whose PID and kernel start time are recorded in a pid
 * file ("<pid> <start time>", the format of scripts/services.sh), so that a later `fleet down` (or
 * `npm run down`) signals exactly those processes and never a recycled PID. Nothing is ever found
 * or killed by name.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

export class FleetError extends Error {
  override name = "FleetError";
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks); undefined when the process is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** The PID recorded in `file` if that very process still runs. */
export function livePid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const [pid, start] = readFileSync(file, "utf8").trim().split(/\s+/);
  const n = Number(pid);
  if (!Number.isInteger(n) || n <= 0) return undefined;
  return processStartTime(n) !== undefined && processStartTime(n) === start ? n : undefined;
}

export interface DetachedOptions {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** stdout and stderr are appended here. */
  logFile: string;
  pidFile: string;
}

/** Starts a process in its own session (a terminal's Ctrl-C does not reach it) and records it. */
export function spawnDetached(options: DetachedOptions): number {
  mkdirSync(path.dirname(options.logFile), { recursive: true });
  mkdirSync(path.dirname(options.pidFile), { recursive: true });
  const fd = openSync(options.logFile, "a");
  try {
    const child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ["ignore", fd, fd],
    });
    if (child.pid === undefined) throw new FleetError(`could not start ${options.command}`);
    child.unref();
    writeFileSync(options.pidFile, `${child.pid} ${processStartTime(child.pid) ?? ""}\n`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Stops the process recorded in `pidFile` with `signal` (SIGKILL after `graceMs`), then removes the
 * file. Returns whether a live process was signalled.
 */
export async function stopRecorded(
  pidFile: string,
  options: { signal?: NodeJS.Signals; graceMs?: number } = {},
): Promise<boolean> {
  const pid = livePid(pidFile);
  if (pid === undefined) {
    rmSync(pidFile, { force: true });
    return false;
  }
  const start = processStartTime(pid);
  const alive = () => start !== undefined && processStartTime(pid) === start;
  try {
    process.kill(pid, options.signal ?? "SIGTERM");
  } catch {
    // gone in between
  }
  const deadline = Date.now() + (options.graceMs ?? 20_000);
  while (alive() && Date.now() < deadline) await sleep(100);
  if (alive()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone in between
    }
    while (alive()) await sleep(50);
  }
  rmSync(pidFile, { force: true });
  return true;
}

export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; signal?: AbortSignal } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (options.signal?.aborted) throw new FleetError(`stopped while waiting for ${what}`);
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(options.intervalMs ?? 500);
  }
  const last = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
  throw new FleetError(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${last}`);
}

export { sleep };
