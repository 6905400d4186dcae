// The local development chain as tests, benchmarks and the fleet reach it: Hardhat's well-known
// accounts, and Hardhat tasks run the way a user runs them, as child processes against the
// Hardhat node ("localhost"); callers pass SHOAL_DEPLOYMENTS_DIR so a running fleet's
// deployments/localhost.json is untouched.
import { spawn } from "node:child_process";
import path from "node:path";
import { HDNodeWallet, Mnemonic } from "ethers";

/** Hardhat's well-known development mnemonic: the local accounts and nothing else. */
export const DEV_MNEMONIC = "test test test test test test test test test test test junk";

/** Local account `index` of the development mnemonic (Hardhat's account order). */
export function devWallet(index: number): HDNodeWallet {
  return HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(DEV_MNEMONIC), `m/44'/60'/0'/0/${index}`);
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

const ROOT = path.resolve(__dirname, "../..");
const HARDHAT = path.join(ROOT, "node_modules/.bin/hardhat");

/** `hardhat --network localhost <args>`; resolves with its exit status and output, never rejects on a failed task. */
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
