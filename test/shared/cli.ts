// Runs Hardhat tasks the way a user does: as a child process, against the test run's Hardhat node,
// with its own deployments directory so a running fleet's deployments/localhost.json is untouched.
import { spawn } from "node:child_process";
import path from "node:path";

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

const ROOT = path.resolve(__dirname, "../..");
const HARDHAT = path.join(ROOT, "node_modules/.bin/hardhat");

export function runHardhat(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(HARDHAT, ["--network", "localhost", ...args], {
      cwd: ROOT,
      // NO_COLOR: picocolors colours Hardhat's errors whenever CI is set, even without a terminal.
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (status) => resolve({ status: status ?? -1, stdout, stderr }));
  });
}
