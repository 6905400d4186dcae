/**
 * Hollow devices in a process of their own, for a bench or test that runs the rest of its fleet
 * in-process: bench/scale.ts runs the devices with the lowest ids (the ones the election makes
 * bridges) here to read their CPU from /proc; the hollow integration test kills one with SIGKILL
 * (its broker connection drops without a goodbye, as a crashed device's does).
 *
 *   node -r ts-node/register/transpile-only scripts/hollow-child.ts OPTIONS.json
 *
 * OPTIONS.json: { rpcUrl, deploymentsFile, mqttUrl, devices, dataDir, apps: [app names], config? }
 * (config: worker settings on top of the defaults, as runHollowDevices takes them). The hollow
 * apps' content goes into this process's own store (the same bytes give the same CIDs as the
 * publisher's publishHollowApp). Prints "started <id>" per device; SIGTERM stops the devices the
 * way it stops a worker, then exits.
 */
import { readFileSync } from "node:fs";
import {
  addHollowAppContent,
  createMemoryContentStore,
  runHollowDevices,
  type HollowDevice,
  type RunHollowOptions,
} from "../workers/src";

interface Options {
  rpcUrl: string;
  deploymentsFile: string;
  mqttUrl: string;
  devices: HollowDevice[];
  dataDir: string;
  apps: string[];
  config?: RunHollowOptions["config"];
}

async function main() {
  const options = JSON.parse(readFileSync(process.argv[2], "utf8")) as Options;
  const contentStore = createMemoryContentStore();
  for (const name of options.apps) await addHollowAppContent(contentStore, { name });
  const stop = new AbortController();
  process.on("SIGTERM", () => stop.abort());
  process.on("SIGINT", () => stop.abort());
  const fleet = runHollowDevices(
    {
      rpcUrl: options.rpcUrl,
      deploymentsFile: options.deploymentsFile,
      mqttUrl: options.mqttUrl,
      devices: options.devices,
      dataDir: options.dataDir,
      contentStore,
      config: options.config,
      logLevel: "error",
      onProgress: (event) => process.stdout.write(`${event.type} ${event.deviceId}\n`),
    },
    stop.signal,
  );
  await fleet.done;
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`hollow-child: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
