/**
 * shoal-hollow: many hollow devices in one process (workers/src/hollow.ts), against a running chain
 * and broker, next to real workers or instead of them.
 *
 *   npx ts-node --transpile-only scripts/hollow.ts --count 100 --cpu 400m --memory 256Mi --labels zone=a
 *
 * Enrolls the devices (batched: hundreds of transactions a block), gives each its own broker user
 * when the broker has users, starts their workers and prints progress; SIGINT/SIGTERM stops them
 * (each publishes offline) and exits 0. The devices' images and manifests come from an in-memory
 * content store that a bench or test in the same process publishes into (publishHollowApp), or,
 * with --kubo, from a Kubo node: then hollow and real workers run the same apps on one chain.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  createKuboContentStore,
  enrollHollowDevices,
  parseDeploymentRecord,
  runHollowDevices,
  tryParseCpuMillicores,
  tryParseMemoryMiB,
  type DeploymentRecord,
  type HollowDevice,
} from "../workers/src";
import { readFileSync } from "node:fs";
import { devWallet } from "./lib/local-chain";
import { provisionDevice, withoutCredentials } from "./fleet/credentials";

/**
 * Gives every device its own broker user (nothing for an anonymous broker), `concurrency` at a
 * time. Default 1: every admin session reads every answer on the dynamic-security response topic,
 * and the answers carry no correlation, so parallel sessions can take each other's answers (seen:
 * "Role already exists" answering a password reset).
 */
export async function provisionHollowDevices(
  adminUrl: string,
  record: DeploymentRecord,
  devices: HollowDevice[],
  concurrency = 1,
  onProgress: (done: number) => void = () => undefined,
): Promise<HollowDevice[]> {
  const out: HollowDevice[] = new Array(devices.length);
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < devices.length) {
        const i = next++;
        const credentials = await provisionDevice(
          adminUrl,
          record.contracts.DeviceRegistry.address,
          devices[i].deviceId,
        );
        out[i] = { ...devices[i], mqtt: credentials };
        if (++done % 50 === 0 || done === devices.length) onProgress(done);
      }
    }),
  );
  return out;
}

const HELP = `Usage: shoal-hollow [options]

Runs N hollow devices in this process: the real worker of each (chain source, bridge, claimer,
keeper, reconciler) over an in-memory container runtime and content store, each with its own key,
enrollment and broker user. No Docker, no Kubo.

Options:
  --count N          devices to enroll and run (1..5000)                     [10]
  --cpu CPU          capacity of each device, cores or millicores            [400m]
  --memory MEM       memory of each device                                   [256Mi]
  --labels K=V,...   labels of each device                                   [none]
  --platform P       platform of each device                                 [linux/amd64]
  --deployments F    deployment record                     [deployments/localhost.json]
  --data-dir DIR     checkpoints of the devices                              [.shoal/hollow]
  --kubo URL         fetch manifests and images from this Kubo RPC API instead of the in-memory
                     store (to run the apps real workers run)                [none]
  --help             this text

Environment: SHOAL_RPC_URL (chain), SHOAL_MQTT_URL (broker, with the admin's user:password when
the broker has users), SHOAL_OWNER_ACCOUNT (local account that stakes and pays, default 0).
`;

interface Args {
  count: number;
  cpuMillicores: number;
  memoryMiB: number;
  labels: string[];
  platform: string;
  deployments: string;
  dataDir: string;
  kubo?: string;
}

function fail(message: string): never {
  process.stderr.write(`shoal-hollow: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args | "help" {
  const args: Args = {
    count: 10,
    cpuMillicores: 400,
    memoryMiB: 256,
    labels: [],
    platform: "linux/amd64",
    deployments: "deployments/localhost.json",
    dataDir: ".shoal/hollow",
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    if (flag === "--help" || flag === "-h") return "help";
    const value = inline ?? argv[++i];
    if (value === undefined) fail(`${flag} needs a value; see --help`);
    switch (flag) {
      case "--count": {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1 || n > 5000)
          fail(`--count "${value}" is not allowed; give a whole number from 1 to 5000`);
        args.count = n;
        break;
      }
      case "--cpu": {
        const cpu = tryParseCpuMillicores(value);
        if (!cpu.ok) fail(`--cpu "${value}" ${cpu.problem}; ${cpu.allowed}`);
        args.cpuMillicores = cpu.value;
        break;
      }
      case "--memory": {
        const memory = tryParseMemoryMiB(value);
        if (!memory.ok) fail(`--memory "${value}" ${memory.problem}; ${memory.allowed}`);
        args.memoryMiB = memory.value;
        break;
      }
      case "--labels":
        args.labels = value.split(",").filter(Boolean);
        for (const label of args.labels)
          if (!/^[^=\s]+=[^=\s]*$/.test(label))
            fail(`--labels "${label}" is not a label; give key=value pairs separated by commas`);
        break;
      case "--platform":
        args.platform = value;
        break;
      case "--deployments":
        args.deployments = value;
        break;
      case "--kubo":
        if (!/^https?:\/\/\S+$/.test(value)) fail(`--kubo "${value}" is not an http URL of a Kubo RPC API`);
        args.kubo = value;
        break;
      case "--data-dir":
        args.dataDir = value;
        break;
      default:
        fail(`${flag}: unknown option; see --help`);
    }
  }
  return args;
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  const rpcUrl = process.env.SHOAL_RPC_URL ?? "http://127.0.0.1:8545";
  const adminUrl = process.env.SHOAL_MQTT_URL ?? "mqtt://127.0.0.1:1883";
  let raw: string;
  try {
    raw = readFileSync(args.deployments, "utf8");
  } catch {
    fail(`--deployments ${args.deployments}: no such file; deploy the contracts first`);
  }
  const record = parseDeploymentRecord(raw, args.deployments);
  const say = (line: string) => process.stdout.write(`[hollow] ${line}\n`);
  const started = Date.now();
  const enrolled = await enrollHollowDevices({
    rpcUrl,
    record,
    ownerKey: devWallet(Number(process.env.SHOAL_OWNER_ACCOUNT ?? 0)).privateKey,
    count: args.count,
    spec: {
      cpuMillicores: args.cpuMillicores,
      memoryMiB: args.memoryMiB,
      platform: args.platform,
      labels: args.labels,
    },
    onProgress: (done, total) =>
      say(`enrolled ${done}/${total} (${((Date.now() - started) / 1000).toFixed(1)} s)`),
  });
  const devices = await provisionHollowDevices(adminUrl, record, enrolled, 1, (done) =>
    say(`broker users ${done}/${enrolled.length}`),
  );
  await mkdir(args.dataDir, { recursive: true });
  await writeFile(path.join(args.dataDir, "devices.json"), JSON.stringify(devices.map((d) => d.deviceId)));

  const stop = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      say(`${signal}: stopping ${devices.length} device(s)`);
      stop.abort();
    });
  let running = 0;
  let failed = 0;
  const fleet = runHollowDevices(
    {
      rpcUrl,
      deploymentsFile: args.deployments,
      mqttUrl: withoutCredentials(adminUrl),
      devices,
      dataDir: args.dataDir,
      contentStore: args.kubo ? createKuboContentStore({ url: args.kubo }) : undefined,
      onProgress: (event) => {
        if (event.type === "started" && ++running % 50 === 0) say(`started ${running}/${devices.length}`);
        if (event.type === "failed") {
          failed++;
          say(
            `device ${event.deviceId} failed: ${event.error instanceof Error ? event.error.message : String(event.error)}`,
          );
        }
      },
    },
    stop.signal,
  );
  const status = setInterval(() => {
    let containers = 0;
    for (const runtime of fleet.runtimes.values())
      containers += runtime.all().filter((c) => c.state === "running").length;
    say(
      `${running} device(s) started, ${failed} failed, ${containers} replica(s) running, ` +
        `rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
    );
  }, 10_000);
  status.unref();
  const result = await fleet.done;
  clearInterval(status);
  say(`stopped (${result.failed} failed)`);
  return result.failed > 0 && !stop.signal.aborted ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`shoal-hollow: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
