import { expect } from "chai";
import { execFile } from "child_process";
import Docker from "dockerode";
import { join } from "path";
import { eventually } from "../../shared/runtime-conformance";
import { promisify } from "util";

/**
 * The demo images against the real local Docker Engine (no registry, no mocks): demo-web serves its
 * page under the hardening every Shoal replica gets, and demo-loadgen does countable work under a
 * CPU quota and holds the memory it is asked to. Builds the images with scripts/images/build.sh,
 * which skips images whose inputs have not changed.
 */

const ROOT = join(__dirname, "..", "..", "..");
const WEB_IMAGE = "shoal/demo-web:1.0.0";
const LOADGEN_IMAGE = "shoal/demo-loadgen:1.0.0";
const TEST_LABEL = "dev.shoal.test";
// One label value per run: after() removes exactly the containers this run created.
const RUN_ID = `demo-images-${process.pid}-${Date.now()}`;
const MiB = 1024 * 1024;

interface StatsLine {
  event: "start" | "stats" | "stop";
  t: number;
  iterations: number;
  iterationsPerS: number;
  rssMiB: number;
  heldMiB: number;
  cpuS: number;
}

/** The hardening every Shoal replica gets (what the worker's runtime adapter will set). */
function hardened(extra: Docker.HostConfig = {}): Docker.HostConfig {
  return {
    ReadonlyRootfs: true,
    CapDrop: ["ALL"],
    SecurityOpt: ["no-new-privileges"],
    Tmpfs: { "/tmp": "rw,noexec,nosuid,size=8m,mode=1777" },
    PidsLimit: 64,
    ...extra,
  };
}

/** Splits Docker's multiplexed log/exec stream (8-byte frame headers) into stdout and stderr. */
function demux(buffer: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const type = buffer[offset];
    const size = buffer.readUInt32BE(offset + 4);
    const frame = buffer.subarray(offset + 8, offset + 8 + size);
    (type === 2 ? err : out).push(frame);
    offset += 8 + size;
  }
  return { stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}

async function logsOf(container: Docker.Container): Promise<{ stdout: string; stderr: string }> {
  const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
  return demux(raw);
}

async function execIn(
  container: Docker.Container,
  cmd: string[],
): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", resolve);
    stream.on("error", reject);
  });
  const info = await exec.inspect();
  return { exitCode: info.ExitCode, ...demux(Buffer.concat(chunks)) };
}

function parseLines(stdout: string): StatsLine[] {
  return stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as StatsLine);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("demo images (local Docker Engine)", function () {
  this.timeout(180_000);
  const docker = new Docker();

  async function run(name: string, options: Docker.ContainerCreateOptions): Promise<Docker.Container> {
    const container = await docker.createContainer({
      ...options,
      name: `${RUN_ID}-${name}`,
      Labels: { [TEST_LABEL]: RUN_ID, ...(options.Labels ?? {}) },
    });
    await container.start();
    return container;
  }

  before(async () => {
    try {
      await docker.ping();
    } catch (error) {
      throw new Error(
        `the Docker Engine is not reachable (${process.env.DOCKER_HOST ?? "/var/run/docker.sock"}): start dockerd first (${String(error)})`,
      );
    }
    // Idempotent: images whose inputs hash matches are skipped.
    await promisify(execFile)("bash", [join(ROOT, "scripts/images/build.sh"), "--quiet"], {
      cwd: ROOT,
      timeout: 170_000,
    });
  });

  after(async () => {
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${TEST_LABEL}=${RUN_ID}`] },
    });
    await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  });

  it("builds the three images with fixed tags, an inputs hash label and a non-root user", async () => {
    for (const ref of ["shoal/base:1", WEB_IMAGE, LOADGEN_IMAGE]) {
      const image = await docker.getImage(ref).inspect();
      expect(image.Config.Labels?.["dev.shoal.inputs-sha256"], ref).to.match(/^[0-9a-f]{64}$/);
      expect(image.Config.User, ref).to.equal("10001:10001");
      expect(image.Size, ref).to.be.below(8 * MiB);
    }
  });

  it("serves the demo-web page hardened: read-only rootfs, no capabilities, tmpfs /tmp, 127.0.0.1 only", async () => {
    const container = await run("web", {
      Image: WEB_IMAGE,
      ExposedPorts: { "8080/tcp": {} },
      HostConfig: hardened({
        PortBindings: { "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] },
        Memory: 64 * MiB,
        NanoCpus: 500_000_000,
      }),
    });
    const info = await container.inspect();
    const binding = info.NetworkSettings.Ports["8080/tcp"]?.[0];
    expect(binding?.HostIp).to.equal("127.0.0.1");
    const base = `http://127.0.0.1:${binding?.HostPort}`;

    const page = await eventually(
      async () => {
        const response = await fetch(`${base}/`);
        return response.status === 200 ? response.text() : undefined;
      },
      10_000,
      "the demo-web page",
    );
    expect(page).to.include("<h1>demo-web</h1>");
    expect(page).to.include('<strong id="version">1.0.0</strong>');
    expect(page).to.include(`<strong id="hostname">${info.Config.Hostname}</strong>`);

    const about = (await (await fetch(`${base}/info.json`)).json()) as Record<string, string>;
    expect(about).to.deep.equal({ name: "demo-web", version: "1.0.0", hostname: info.Config.Hostname });
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);

    // The hardening is real, not just requested.
    const id = await execIn(container, ["id", "-u"]);
    expect(id.stdout.trim()).to.equal("10001");
    const write = await execIn(container, ["touch", "/etc/shoal-was-here"]);
    expect(write.exitCode, "the root filesystem must be read-only").to.not.equal(0);
    const caps = await execIn(container, ["grep", "CapEff", "/proc/1/status"]);
    expect(caps.stdout).to.match(/CapEff:\s+0000000000000000/);

    // SIGTERM reaches httpd through the shell's trap: a prompt, clean exit rather than a 10 s kill.
    const started = Date.now();
    await container.stop({ t: 10 });
    expect(Date.now() - started).to.be.below(3_000);
    expect((await container.inspect()).State.ExitCode).to.equal(0);
  });

  it("counts loadgen work under a CPU quota, as JSON lines and in /tmp/stats.json, and stops on SIGTERM", async () => {
    const container = await run("loadgen-steady", {
      Image: LOADGEN_IMAGE,
      Env: ["PROFILE=steady", "CPU_MILLICORES=1000", "MEMORY_MIB=0"],
      HostConfig: hardened({ NanoCpus: 250_000_000, Memory: 64 * MiB }),
    });
    await sleep(3_300);

    const lines = parseLines((await logsOf(container)).stdout);
    expect(lines[0]!.event).to.equal("start");
    const stats = lines.filter((line) => line.event === "stats");
    expect(stats.length).to.be.within(2, 4);
    for (let i = 1; i < stats.length; i++) expect(stats[i]!.iterations).to.be.above(stats[i - 1]!.iterations);
    const last = stats[stats.length - 1]!;
    expect(last.iterations).to.be.above(0);
    // The quota holds the process to about a quarter of a core although it tries to use a full one.
    expect(last.cpuS / last.t).to.be.below(0.4);

    const file = await execIn(container, ["cat", "/tmp/stats.json"]);
    const fromFile = JSON.parse(file.stdout) as StatsLine;
    expect(fromFile.event).to.equal("stats");
    expect(fromFile.iterations).to.be.at.least(last.iterations);

    const started = Date.now();
    await container.stop({ t: 10 });
    expect(Date.now() - started).to.be.below(2_000);
    expect((await container.inspect()).State.ExitCode).to.equal(0);
    const final = parseLines((await logsOf(container)).stdout).pop()!;
    expect(final.event).to.equal("stop");
    expect(final.iterations).to.be.at.least(fromFile.iterations);
  });

  it("holds about MEMORY_MIB of resident memory under a higher memory limit", async () => {
    const target = 48;
    const container = await run("loadgen-memory", {
      Image: LOADGEN_IMAGE,
      Env: [
        "PROFILE=steady",
        "CPU_MILLICORES=50",
        `MEMORY_MIB=${target}`,
        "MEMORY_STEP_MIB=32",
        "STATS_INTERVAL_MS=500",
      ],
      HostConfig: hardened({ NanoCpus: 500_000_000, Memory: 128 * MiB }),
    });
    const reached = await eventually(
      async () => {
        const { stdout } = await execIn(container, ["cat", "/tmp/stats.json"]);
        const stats = JSON.parse(stdout) as StatsLine;
        return stats.heldMiB === target ? stats : undefined;
      },
      10_000,
      `heldMiB to reach ${target}`,
    );
    expect(reached.rssMiB).to.be.within(target * 0.95, target + 16);

    const usage = (await container.stats({ stream: false })) as unknown as {
      memory_stats: { usage: number };
    };
    expect(usage.memory_stats.usage / MiB).to.be.within(target * 0.9, 128);
    expect((await container.inspect()).State.OOMKilled).to.equal(false);
  });
});
