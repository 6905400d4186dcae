// Shoal's command line (the Hardhat tasks) as the integration tests and benches drive it: each run
// deploys its own contracts into its own deployments directory and enrolls its devices with
// `device:enroll`, as an operator would.
import { expect } from "chai";
import type { ContractRunner } from "ethers";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { runHardhat, type CliResult } from "../../scripts/lib/local-chain";
import {
  AppRegistry__factory,
  DeviceRegistry__factory,
  PlacementRegistry__factory,
  ShoalToken__factory,
} from "../../typechain-types";

/** deployments/<network>.json as scripts/deploy.ts writes it. */
export interface DeploymentRecord {
  chainId: number;
  contracts: Record<string, { address: string; blockNumber: number }>;
}

/** The task's stdout; fails the test, showing what the task printed, unless it exited 0. */
export function ok(result: CliResult): string {
  expect(result.status, `${result.stdout}\n${result.stderr}`).to.equal(0);
  return result.stdout;
}

/** Deploys a fresh set of contracts into `dir` with scripts/deploy.ts; returns the record it wrote. */
export async function deployInto(dir: string): Promise<DeploymentRecord> {
  ok(await runHardhat(["run", "scripts/deploy.ts"], { SHOAL_DEPLOYMENTS_DIR: dir }));
  return JSON.parse(await readFile(path.join(dir, "localhost.json"), "utf8")) as DeploymentRecord;
}

/** The token and the three registries of `record`, typed, connected to `runner`. */
export function registriesOf(record: DeploymentRecord, runner: ContractRunner) {
  const at = (name: string) => record.contracts[name].address;
  return {
    token: ShoalToken__factory.connect(at("ShoalToken"), runner),
    apps: AppRegistry__factory.connect(at("AppRegistry"), runner),
    devices: DeviceRegistry__factory.connect(at("DeviceRegistry"), runner),
    placements: PlacementRegistry__factory.connect(at("PlacementRegistry"), runner),
  };
}

export interface EnrollOptions {
  stake?: string;
  cpu?: string;
  memory?: string;
  /** `--labels`, left out when not given. */
  labels?: string;
  /** `--endpoint`; false leaves it out, and device:enroll then asks the device's Kubo node. */
  endpoint?: string | false;
  /** More arguments after these (`--operator`...). */
  extra?: string[];
}

/**
 * The `device:enroll` arguments of a test device owned and operated by Hardhat account `account`:
 * by default 200 SHOAL of stake, 1 CPU, 512 MiB, and a loopback endpoint.
 */
export function enrollArgs(account: number, o: EnrollOptions = {}): string[] {
  const endpoint = o.endpoint ?? "/ip4/127.0.0.1/tcp/4001";
  return [
    "device:enroll",
    "--account",
    String(account),
    "--stake",
    o.stake ?? "200",
    "--cpu",
    o.cpu ?? "1",
    "--memory",
    o.memory ?? "512Mi",
    ...(o.labels === undefined ? [] : ["--labels", o.labels]),
    ...(endpoint === false ? [] : ["--endpoint", endpoint]),
    ...(o.extra ?? []),
  ];
}

/** The id of the device `device:enroll` reports it enrolled. */
export function enrolledId(stdout: string): string {
  return /device (\d+) enrolled/.exec(stdout)![1];
}

/** The worker's name for its device in Docker labels and cgroups: chain, registry and id. */
export function deviceKeyOf(record: DeploymentRecord, deviceId: string | number): string {
  return `${record.chainId}-${record.contracts.DeviceRegistry.address.slice(2, 10).toLowerCase()}-${deviceId}`;
}
