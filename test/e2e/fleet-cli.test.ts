// The fleet command line (scripts/fleet/cli.ts) as a user types it (issue 13 item 3): every command's
// --help, the documented usage errors with their exit status, and the non-destructive commands
// (status, view, a scenario given a device the fleet does not have) against a real two-device fleet
// on the test run's chain, Kubo, Mosquitto and Docker, which `down` then stops.
import { expect } from "chai";
import Docker from "dockerode";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { livePid } from "../../scripts/fleet/processes";
import { runHardhat } from "../../scripts/lib/local-chain";
import { waitFor } from "../shared/processes";
import { requireChain, requireDocker, requireKubo, requireMqtt, serviceUrls } from "../shared/services";

const urls = serviceUrls();
const ROOT = path.resolve(__dirname, "../..");
const TS_NODE = path.join(ROOT, "node_modules/.bin/ts-node");
const COMMANDS = ["up", "view", "status", "scenario", "down"];

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

describe("fleet CLI: help, usage errors and the read-only commands on a real two-device fleet", function () {
  this.timeout(300_000);

  let home: string;
  const env = () => ({
    SHOAL_HOME: home,
    SHOAL_RPC_URL: urls.rpcUrl,
    SHOAL_KUBO_URL: urls.kuboUrl,
    SHOAL_MQTT_URL: urls.mqttUrl,
    SHOAL_DEPLOYMENTS_FILE: path.join(home, "localhost.json"),
  });

  /** `npx ts-node --transpile-only scripts/fleet/cli.ts ARGS`, as the file's header says. */
  function fleet(args: string[], options: { until?: (out: string) => boolean } = {}): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(TS_NODE, ["--transpile-only", "scripts/fleet/cli.ts", ...args], {
        cwd: ROOT,
        env: { ...process.env, ...env(), NO_COLOR: "1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let [stdout, stderr] = ["", ""];
      child.stdout.on("data", (chunk) => {
        stdout += chunk;
        // Ctrl-C, once the view has shown what the test waits for.
        if (options.until?.(stdout)) child.kill("SIGINT");
      });
      child.stderr.on("data", (chunk) => (stderr += chunk));
      child.once("error", reject);
      child.once("close", (status) => resolve({ status, stdout, stderr }));
    });
  }

  before(async function () {
    home = await mkdtemp(path.join(tmpdir(), "shoal-fleet-cli-"));
  });

  after(async function () {
    // The fleet is stopped by the last test; if that failed, stop it here by its recorded PIDs.
    if (home && existsSync(path.join(home, "fleet/fleet.json"))) await fleet(["down"]);
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("prints the usage for --help of every command, and for no command, exit 0", async function () {
    const runs = await Promise.all(
      [[], ["--help"], ["-h"], ...COMMANDS.map((c) => [c, "--help"])].map((a) => fleet(a)),
    );
    for (const run of runs) {
      expect(run.status, run.stderr).to.equal(0);
      expect(run.stdout).to.match(/^Usage: fleet <command> \[options\]/);
      for (const command of COMMANDS) expect(run.stdout).to.match(new RegExp(`^  ${command}\\b`, "m"));
      expect(run.stdout).to.include("Exit status: 0 done, 1 failed, 2 bad usage");
    }
  });

  it("names the bad command, option or value in one line, exit 2", async function () {
    const cases: Array<[string[], string]> = [
      [
        ["frobnicate"],
        'fleet: "frobnicate" is not a command; use one of up, view, status, scenario, down (fleet --help)',
      ],
      [["status", "--verbose"], "fleet: --verbose: unknown option; see fleet --help"],
      [["scenario", "explode"], "fleet: scenario: give one of scale, kill, spike, roll, all (got explode)"],
      [["scenario"], "fleet: scenario: give one of scale, kill, spike, roll, all (got nothing)"],
      [
        ["scenario", "kill", "--device", "abc"],
        'fleet: --device "abc" is not allowed; give a whole number from 1 to 4294967295',
      ],
      [["scenario", "kill", "--device"], "fleet: --device needs a value; see fleet --help"],
      [["up", "--devices", "0"], 'fleet: --devices "0" is not allowed; give a whole number from 1 to'],
      [["up", "--apps", "nope"], 'fleet: --apps: "nope" has no apps/nope/shoal.yaml'],
    ];
    const runs = await Promise.all(cases.map(([args]) => fleet(args)));
    runs.forEach((run, i) => {
      const [args, says] = cases[i];
      expect(run.status, `fleet ${args.join(" ")}: ${run.stderr}`).to.equal(2);
      expect(run.stderr.trim().split("\n"), `fleet ${args.join(" ")}`).to.have.length(1);
      expect(run.stderr.trim()).to.satisfy(
        (s: string) => s.startsWith(says),
        `${run.stderr} starts with ${says}`,
      );
      expect(run.stdout).to.equal("");
    });
  });

  it("without a fleet: status and scenario say so (exit 1), down has nothing to stop (exit 0)", async function () {
    const [status, scenario, down] = await Promise.all([
      fleet(["status"]),
      fleet(["scenario", "scale"]),
      fleet(["down"]),
    ]);
    expect(status.status).to.equal(1);
    expect(status.stderr.trim()).to.match(
      /^fleet: no fleet is recorded in .*fleet\.json; start one with `fleet up`$/,
    );
    expect(scenario.status).to.equal(1);
    expect(scenario.stderr.trim()).to.equal(
      "fleet: no fleet is running; start one with `npm start` or `fleet up`",
    );
    expect(down.status).to.equal(0);
    expect(down.stderr.trim()).to.equal("[fleet] no fleet recorded; nothing to stop");
  });

  describe("a real two-device fleet", function () {
    const docker = new Docker({ socketPath: urls.dockerSocket });
    let devices: number[] = [];
    let pidFiles: string[] = [];
    /** Both workers still run: the PID and start time their files record are a live process. */
    const alive = () => pidFiles.every((file) => livePid(file) !== undefined);

    before(async function () {
      await Promise.all([requireChain(urls), requireKubo(urls), requireMqtt(urls), requireDocker(urls)]);
      const deployed = await runHardhat(["run", "scripts/deploy.ts"], { SHOAL_DEPLOYMENTS_DIR: home });
      expect(deployed.status, deployed.stderr).to.equal(0);
    });

    it("up --devices 2 --no-demo --detach starts two workers and returns", async function () {
      const up = await fleet(["up", "--devices", "2", "--no-demo", "--detach"]);
      expect(up.status, up.stderr).to.equal(0);
      const state = JSON.parse(readFileSync(path.join(home, "fleet/fleet.json"), "utf8")) as {
        devices: Array<{ deviceId: number; pidFile: string }>;
      };
      devices = state.devices.map((d) => d.deviceId);
      expect(devices).to.have.length(2);
      pidFiles = state.devices.map((d) => d.pidFile);
      expect(alive(), "both workers run").to.equal(true);
    });

    it("status prints each device once, exit 0", async function () {
      const status = await fleet(["status"]);
      expect(status.status, status.stderr).to.equal(0);
      for (const id of devices) expect(status.stdout).to.match(new RegExp(`\\b${id}\\b`));
      expect(alive(), "status leaves the workers running").to.equal(true);
    });

    it("view (no terminal) prints status lines until Ctrl-C, and leaves the fleet running", async function () {
      const view = await fleet(["view"], { until: (out) => out.includes("\n") });
      expect(view.status, view.stderr).to.equal(0);
      expect(view.stdout.trim().split("\n")[0]).to.not.equal("");
      expect(alive(), "the view leaves the workers running").to.equal(true);
    });

    it("scenario kill --device with an id the fleet lacks names the fleet's devices, exit 1, kills nothing", async function () {
      const run = await fleet(["scenario", "kill", "--device", "99"]);
      expect(run.status).to.equal(1);
      expect(run.stderr.trim().split("\n").at(-1)).to.equal(
        `fleet: device 99 is not in this fleet; its devices are ${devices.join(", ")}`,
      );
      expect(alive(), "no worker was killed").to.equal(true);
    });

    it("down stops the workers (recorded PIDs) and removes the fleet's containers", async function () {
      const down = await fleet(["down"]);
      expect(down.status, down.stderr).to.equal(0);
      await waitFor(
        "the workers to exit",
        async () => pidFiles.every((file) => livePid(file) === undefined),
        30_000,
      );
      const record = JSON.parse(readFileSync(path.join(home, "localhost.json"), "utf8"));
      const key = `${record.chainId}-${record.contracts.DeviceRegistry.address.slice(2, 10).toLowerCase()}-`;
      const left = await docker.listContainers({ all: true, filters: { label: ["io.shoal.managed=true"] } });
      expect(
        left.filter((c) => devices.some((id) => c.Labels["io.shoal.device"] === `${key}${id}`)),
      ).to.deep.equal([]);
    });
  });
});
