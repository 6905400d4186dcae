/**
 * How a task's failure reaches the person who typed it: one sentence on stderr, exit status 1, no
 * stack trace. Hardhat prints its own line and then the full stack whenever it thinks it runs in CI,
 * and it thinks so on any Linux machine without a display (every edge device, every ssh session):
 * `app:deploy` with Kubo down printed the right sentence and a HardhatPluginError stack, and a bad
 * manifest printed its issues twice (once in the message, once in the stack). A stack still shows
 * with --show-stack-traces, and a task run by a script (hre.run) still throws to its caller.
 */
import path from "node:path";
import { task } from "hardhat/config";
import { HardhatContext } from "hardhat/internal/context";
import { HardhatPluginError } from "hardhat/plugins";
import type { HardhatRuntimeEnvironment } from "hardhat/types";
import { ShoalError } from "../../workers/src";

/** The text a user reads for `error`: the sentence of an expected failure, else the error's message. */
export function userMessage(error: unknown, taskName: string): string {
  if (HardhatPluginError.isHardhatPluginError(error)) return error.message;
  // The sentence and its listed issues (a manifest's), without the "Details:" of the cause.
  if (error instanceof ShoalError) return [error.shortMessage, ...error.metaMessages].join("\n");
  const message = error instanceof Error ? error.message : String(error);
  return `${taskName} failed unexpectedly: ${message} (run it again with --show-stack-traces to see where)`;
}

/** True when `taskName` is what the user ran from the command line, not a task called by a script. */
function isCommandLineTask(taskName: string): boolean {
  const entry = require.main?.filename ?? "";
  const hardhatCli = entry.split(path.sep).join("/").includes("/hardhat/internal/cli/");
  return hardhatCli && process.argv.slice(2).includes(taskName);
}

let running = 0;

/**
 * Wraps every task whose name starts with one of `prefixes` (call it after they are defined). The
 * wrapper only changes how a failure of the outermost task is printed; results are untouched.
 */
export function reportTaskErrorsPlainly(prefixes: readonly string[]): void {
  const definitions = HardhatContext.getHardhatContext().tasksDSL.getTaskDefinitions();
  for (const name of Object.keys(definitions)) {
    if (!prefixes.some((prefix) => name.startsWith(prefix))) continue;
    task(name).setAction(async (args: Record<string, unknown>, hre: HardhatRuntimeEnvironment, runSuper) => {
      running++;
      try {
        return await runSuper(args);
      } catch (error) {
        if (running > 1 || hre.hardhatArguments.showStackTraces || !isCommandLineTask(name)) throw error;
        process.stderr.write(`Error: ${userMessage(error, name)}\n`);
        process.exitCode = 1;
        return undefined;
      } finally {
        running--;
      }
    });
  }
}
