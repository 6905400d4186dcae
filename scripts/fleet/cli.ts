/**
 * fleet: the local edge fleet's command line (npm start runs `fleet up` once the stack is up).
 *
 *   npx ts-node --transpile-only scripts/fleet/cli.ts --help
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { connectContracts, livePlacements, readDeploymentRecord, ROOT } from "./chain";
import {
  deployDemo,
  deviceLabels,
  fleetDocker,
  labelMatcher,
  MAX_DEVICES,
  openFleet,
  readFleetState,
  startFleet,
  type Fleet,
} from "./fleet";
import { createObserver } from "./observe";
import { FleetError, livePid, sleep, waitFor } from "./processes";
import {
  SCENARIOS,
  ScenarioError,
  scenarioKill,
  scenarioRoll,
  scenarioScale,
  scenarioSpike,
  type ScenarioContext,
} from "./scenarios";
import { render, statusLine } from "./view";
import { ensureNetwork, isolationUnavailable, readHosts, teardownHosts } from "./hosts";

const HELP = `Usage: fleet <command> [options]      (npm run fleet -- <command>, or npx ts-node scripts/fleet/cli.ts)

A local edge fleet: N device workers of different sizes on this machine, against the local chain,
Kubo and Mosquitto (npm start brings those up and then runs \`fleet up\`).

Commands:
  up          enroll the devices (device:enroll), start their workers, publish and deploy the demo
              apps (app:publish, app:deploy), then show the live view. On a terminal it stays in
              the view and Ctrl-C stops the fleet's workers and containers; otherwise (or with
              --detach) it prints the status and leaves the fleet running in the background.
  view        the live view of the running fleet (Ctrl-C leaves the view, not the fleet)
  status      the view once, as plain text
  scenario S  run a scenario against the running fleet: ${SCENARIOS.join(", ")}, or all
                scale  scale demo-web up and down; claims move between devices
                kill   kill -9 a device's worker; after the TTL the other workers expire it (it is
                       slashed), finalize and reclaim its replicas (then the worker is started again)
                spike  CPU bursts; the resource manager raises the limit, then lowers it
                roll   publish demo-web 1.<n>.0 and roll the deployment to it
  down        stop the fleet's workers (recorded PIDs only) and remove the containers of every device
              of the deployment (the fleet's and any hand-started worker's; stop that worker first);
              on isolated devices the device hosts go too (namespaces, engines, Kubo nodes)
  net-up      make the device network (a bridge in the project's subnet) and print its address
              (npm start does it; the services then listen there too: SHOAL_BIND_ADDRESS)
  hosts-down  remove every recorded device host and the device network (npm run down does it)

Options:
  --devices N        devices for \`up\`, 1..${MAX_DEVICES} (default 3: small, medium, large, repeating)
  --shared           \`up\`: all devices share this machine's engine and Kubo node (the default
                     when isolated devices cannot be made: not root, or no ip/nsenter/dockerd)
  --no-demo          \`up\` without publishing and deploying the demo apps
  --apps a,b         demo apps for \`up\` (default demo-web,demo-loadgen; from apps/<name>/shoal.yaml)
  --keep             leave the fleet running when the view ends (Ctrl-C)
  --detach           \`up\`: do not stay in the view even on a terminal
  --device ID        \`scenario kill\`: the device to kill (default: the one with most placements)
  --deployment ID    \`scenario scale|roll\`: the deployment (default: the demo-web deployment)
  --no-restart       \`scenario kill\`: leave the killed worker down
  --keep-containers  \`down\`: stop the workers only
  --json             \`scenario\`: print the result as JSON
  --check            only check the options and exit (npm start does it before its setup)
  -h, --help         this text

Environment: SHOAL_RPC_URL, SHOAL_KUBO_URL, SHOAL_MQTT_URL (default the local services on 8545,
5401, 1883), SHOAL_DEPLOYMENTS_FILE (deployments/localhost.json), SHOAL_HOME (.shoal: the fleet
lives in <SHOAL_HOME>/fleet, its PIDs in <SHOAL_HOME>/run, its device hosts in <SHOAL_HOME>/hosts.json),
SHOAL_DEVICE_SUBNET (the device network's /24; default the first free one of 10.213.0.0/16).
Exit status: 0 done, 1 failed, 2 bad usage, 3 a scenario needs the resource manager.
`;

interface Args {
  command?: string;
  scenario?: string;
  devices: number;
  demo: boolean;
  apps: string[];
  keep: boolean;
  detach: boolean;
  device?: number;
  deployment?: number;
  restart: boolean;
  keepContainers: boolean;
  json: boolean;
  check: boolean;
  help: boolean;
  shared: boolean;
}

class UsageError extends FleetError {
  override name = "UsageError";
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    devices: 3,
    demo: true,
    apps: ["demo-web", "demo-loadgen"],
    keep: false,
    detach: false,
    restart: true,
    keepContainers: false,
    json: false,
    check: false,
    help: false,
    shared: false,
  };
  const positional: string[] = [];
  const value = (i: number, name: string) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("--"))
      throw new UsageError(`${name} needs a value; see fleet --help`);
    return v;
  };
  const int = (v: string, name: string, min: number, max: number) => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
      throw new UsageError(`${name} "${v}" is not allowed; give a whole number from ${min} to ${max}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") args.help = true;
    else if (a === "--devices") args.devices = int(value(i++, a), a, 1, MAX_DEVICES);
    else if (a === "--no-demo") args.demo = false;
    else if (a === "--apps") args.apps = value(i++, a).split(",").filter(Boolean);
    else if (a === "--keep") args.keep = true;
    else if (a === "--detach") args.detach = true;
    else if (a === "--device") args.device = int(value(i++, a), a, 1, 2 ** 32 - 1);
    else if (a === "--deployment") args.deployment = int(value(i++, a), a, 1, 2 ** 32 - 1);
    else if (a === "--no-restart") args.restart = false;
    else if (a === "--keep-containers") args.keepContainers = true;
    else if (a === "--json") args.json = true;
    else if (a === "--check") args.check = true;
    else if (a === "--shared") args.shared = true;
    else if (a.startsWith("-")) throw new UsageError(`${a}: unknown option; see fleet --help`);
    else positional.push(a);
  }
  [args.command, args.scenario] = positional;
  const commands = ["up", "view", "status", "scenario", "down", "net-up", "hosts-down"];
  if (!args.help && args.command === undefined) args.help = true;
  if (args.command !== undefined && !commands.includes(args.command))
    throw new UsageError(
      `"${args.command}" is not a command; use one of ${commands.join(", ")} (fleet --help)`,
    );
  if (args.command === "scenario" && !args.help) {
    const names = [...SCENARIOS, "all"];
    if (args.scenario === undefined || !names.includes(args.scenario))
      throw new UsageError(`scenario: give one of ${names.join(", ")} (got ${args.scenario ?? "nothing"})`);
  }
  for (const app of args.apps)
    if (!existsSync(path.join(ROOT, "apps", app, "shoal.yaml")))
      throw new UsageError(`--apps: "${app}" has no apps/${app}/shoal.yaml`);
  return args;
}

const home = process.env.SHOAL_HOME ?? path.join(ROOT, ".shoal");
const fleetDir = path.join(home, "fleet");
const stateFile = path.join(fleetDir, "fleet.json");
const say = (line: string) => process.stderr.write(`[fleet] ${line}\n`);

function recordedFleet(): Fleet | undefined {
  return existsSync(stateFile) ? openFleet(stateFile) : undefined;
}

async function down(keepContainers: boolean): Promise<void> {
  const fleet = recordedFleet();
  if (fleet === undefined) {
    say("no fleet recorded; nothing to stop");
    return;
  }
  const running = fleet.state.devices.filter((d) => livePid(d.pidFile) !== undefined).length;
  say(
    `stopping ${running} worker(s)${keepContainers ? "" : " and removing the containers"} of devices ${fleet.state.devices.map((d) => d.deviceId).join(", ")}`,
  );
  await fleet.stop({ keepContainers });
}

/** An observer of this fleet's devices: MQTT, chain and Docker. */
function observe(fleet: Fleet) {
  return createObserver({
    // Read-only is all the view needs: the viewer user when services.sh made one.
    mqttUrl: process.env.SHOAL_MQTT_VIEW_URL || fleet.state.mqttUrl,
    chainId: fleet.state.chainId,
    deviceRegistry: fleet.state.deviceRegistry,
    deviceIds: fleet.state.devices.map((d) => d.deviceId),
    deviceOfLabel: labelMatcher(fleet.state),
    cgroupNames: (id) => deviceLabels(fleet.state, id),
    sinceTimestamp: fleet.state.sinceTimestamp,
    dockerSocket: fleet.state.dockerSocket,
    docker: fleetDocker(fleet.state),
    rpcUrl: fleet.state.rpcUrl,
  });
}

/** The live view until the signal aborts: redrawn in place on a TTY, a status line otherwise. */
async function view(fleet: Fleet, signal: AbortSignal, hint: string): Promise<void> {
  const observer = await observe(fleet);
  const tty = process.stdout.isTTY === true;
  try {
    if (tty) process.stdout.write("\x1b[?25l\x1b[2J");
    while (!signal.aborted) {
      const snap = observer.snapshot();
      if (tty)
        process.stdout.write(
          `\x1b[H${render(fleet.state, snap, { tty, hint }).replace(/\n/g, "\x1b[K\n")}\x1b[K\x1b[J`,
        );
      else process.stdout.write(`${statusLine(fleet.state, snap)}\n`);
      await sleepUnless(tty ? 1000 : 5000, signal);
    }
  } finally {
    if (tty) process.stdout.write("\x1b[?25h\n");
    await observer.close();
  }
}

function sleepUnless(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

async function printStatus(fleet: Fleet): Promise<void> {
  const observer = await observe(fleet);
  try {
    await sleep(2500); // retained state arrives, and a second Docker sample gives CPU usage
    await observer.sampleDocker();
    process.stdout.write(`${render(fleet.state, observer.snapshot(), { tty: false })}\n`);
  } finally {
    await observer.close();
  }
}

function interrupted(): AbortSignal {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return controller.signal;
}

async function up(args: Args): Promise<void> {
  const previous = recordedFleet();
  if (previous !== undefined) {
    say("stopping the previously recorded fleet first");
    await previous.stop();
  }
  const deploymentsFile = path.resolve(
    process.env.SHOAL_DEPLOYMENTS_FILE ?? path.join(ROOT, "deployments/localhost.json"),
  );
  // Isolated devices when the device network exists (npm start makes it when it can); --shared, or
  // no network, runs every device on this machine's engine and Kubo node.
  const isolated = !args.shared && readHosts(home).network !== undefined;
  if (!args.shared && !isolated) {
    const why = isolationUnavailable() ?? "no device network was made (fleet net-up)";
    say(`running the devices in shared mode (one engine and Kubo node for all): ${why}`);
  }
  const fleet = await startFleet({
    devices: args.devices,
    ...(isolated ? { isolated: { home } } : {}),
    rpcUrl: process.env.SHOAL_RPC_URL ?? "http://127.0.0.1:8545",
    kuboUrl: process.env.SHOAL_KUBO_URL ?? "http://127.0.0.1:5401",
    mqttUrl: process.env.SHOAL_MQTT_URL ?? "mqtt://127.0.0.1:1883",
    dockerSocket: (process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock").replace(/^unix:\/\//, ""),
    deploymentsFile,
    dataDir: fleetDir,
    runDir: path.join(home, "run"),
    onProgress: say,
  });
  const stayInView = process.stdout.isTTY === true && !args.detach;
  // npm start serves the console before the fleet starts; the view keeps its URL in sight.
  const consoleHint = process.env.SHOAL_CONSOLE_URL ? `. Console: ${process.env.SHOAL_CONSOLE_URL}` : "";
  const signal = interrupted();
  try {
    if (args.demo) await deployDemo(fleet, args.apps, say);
    if (stayInView) {
      await view(
        fleet,
        signal,
        (args.keep
          ? "Ctrl-C leaves the view; the fleet keeps running (npm run down stops it)"
          : "Ctrl-C stops the fleet (its workers and containers); the services keep running (npm run down)") +
          consoleHint,
      );
      if (args.keep) say("leaving the fleet running: `npm run fleet -- down` or `npm run down` stops it");
      else await down(false);
      return;
    }
    if (args.demo) await waitForDemo(fleet);
    await printStatus(fleet);
    say(
      "the fleet runs in the background. Watch it: npm run fleet -- view; scenarios: npm run fleet -- scenario <name>; " +
        "stop it: npm run fleet -- down (npm run down stops the services too)" +
        consoleHint,
    );
  } catch (error) {
    if (!args.keep) {
      say("stopping the fleet after the failure (--keep leaves it)");
      await fleet.stop();
    }
    throw error;
  }
}

async function waitForDemo(fleet: Fleet): Promise<void> {
  const c = connectContracts(fleet.state.rpcUrl, readDeploymentRecord(fleet.state.deploymentsFile));
  try {
    for (const [app, deploymentId] of Object.entries(fleet.state.demo)) {
      const replicas = Number((await c.apps.deploymentSummary(deploymentId)).replicas);
      say(`waiting for ${app} to run ${replicas} replica(s)`);
      await waitFor(
        `${app} (deployment ${deploymentId}) to run ${replicas} replica(s)`,
        async () => {
          const live = await livePlacements(c, deploymentId);
          return live.length === replicas && live.every((p) => p.state === "Running");
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      );
    }
  } finally {
    c.close();
  }
}

async function scenario(args: Args): Promise<void> {
  const fleet = recordedFleet();
  if (fleet === undefined)
    throw new FleetError("no fleet is running; start one with `npm start` or `fleet up`");
  const stopped = fleet.state.devices.filter((d) => livePid(d.pidFile) === undefined).map((d) => d.deviceId);
  if (stopped.length > 0)
    throw new FleetError(
      `the workers of devices ${stopped.join(", ")} are not running; restart the fleet with \`fleet up\``,
    );
  const ctx: ScenarioContext = { fleet, say };
  const names = args.scenario === "all" ? [...SCENARIOS] : [args.scenario!];
  for (const name of names) {
    say(`scenario ${name}`);
    const result =
      name === "scale"
        ? await scenarioScale(ctx, { deploymentId: args.deployment })
        : name === "kill"
          ? await scenarioKill(ctx, { deviceId: args.device, restart: args.restart })
          : name === "spike"
            ? await scenarioSpike(ctx)
            : await scenarioRoll(ctx, { deploymentId: args.deployment });
    if (args.json) process.stdout.write(`${JSON.stringify({ scenario: name, result }, null, 2)}\n`);
    say(`scenario ${name}: done`);
  }
}

export async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (error) {
    process.stderr.write(`fleet: ${(error as Error).message}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (args.check) return 0;
  try {
    switch (args.command) {
      case "up":
        await up(args);
        break;
      case "down":
        await down(args.keepContainers);
        break;
      case "net-up": {
        const why = isolationUnavailable();
        if (why !== undefined) throw new FleetError(why);
        const network = await ensureNetwork(home);
        process.stdout.write(`${network.gateway}\n`);
        break;
      }
      case "hosts-down": {
        const hosts = readHosts(home);
        if (hosts.network !== undefined || hosts.devices.length > 0)
          say(
            `removing ${hosts.devices.length} device host(s) and the device network ${hosts.network?.bridge ?? ""}`,
          );
        await teardownHosts(home);
        break;
      }
      case "view": {
        const fleet = openFleet(stateFile);
        readFleetState(stateFile);
        await view(fleet, interrupted(), "Ctrl-C leaves the view; the fleet keeps running");
        break;
      }
      case "status": {
        const fleet = openFleet(stateFile);
        await printStatus(fleet);
        break;
      }
      case "scenario":
        await scenario(args);
        break;
    }
    return 0;
  } catch (error) {
    if (error instanceof ScenarioError && error.code === "needs-resource-manager") {
      process.stderr.write(`fleet: ${error.message}\n`);
      return 3;
    }
    if (error instanceof FleetError) {
      process.stderr.write(`fleet: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(
      `fleet: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
