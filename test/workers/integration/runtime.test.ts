import { expect } from "chai";
import Docker from "dockerode";
import { mkdtemp, rm, stat } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createDockerRuntime, RuntimeError } from "../../../workers/src";
import { containerSpec, specHash } from "../../../workers/src";
import type { Runtime } from "../../../workers/src";
import { demoWebManifest, pageOf, runtimeConformance } from "../../shared/runtime-conformance";
import { requireDocker, serviceUrls } from "../../shared/services";

/**
 * The Runtime port against the real local Docker Engine: the conformance suite, then what only
 * `docker inspect` and the kernel can prove (every hardening flag and limit as Docker applied it).
 * Every container carries the run's label and is removed in after().
 */

const WEB_IMAGE = "shoal/demo-web:1.0.0";
const TEST_LABEL = "dev.shoal.test";
const RUN_ID = `runtime-${process.pid}-${Date.now()}`;
const MiB = 1024 * 1024;

function dockerClient(): Docker {
  return new Docker({ socketPath: serviceUrls().dockerSocket });
}

async function removeRunContainers(docker: Docker): Promise<void> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`${TEST_LABEL}=${RUN_ID}`] },
  });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
}

/** Splits Docker's multiplexed exec stream (8-byte frame headers) into stdout. */
function stdoutOf(buffer: Buffer): string {
  const out: Buffer[] = [];
  for (let offset = 0; offset + 8 <= buffer.length;) {
    const size = buffer.readUInt32BE(offset + 4);
    if (buffer[offset] === 1) out.push(buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(out).toString("utf8");
}

async function execIn(
  container: Docker.Container,
  cmd: string[],
): Promise<{ exitCode: number | null; stdout: string }> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", resolve);
    stream.on("error", reject);
  });
  return { exitCode: (await exec.inspect()).ExitCode, stdout: stdoutOf(Buffer.concat(chunks)) };
}

runtimeConformance("Docker", async () => {
  await requireDocker();
  const docker = dockerClient();
  const runtime = createDockerRuntime({ docker });
  expect(await runtime.imageExists(WEB_IMAGE), `${WEB_IMAGE}: run scripts/images/build.sh`).to.equal(true);
  return {
    runtime,
    webImage: WEB_IMAGE,
    deviceId: `conf-${process.pid}`,
    extraLabels: { [TEST_LABEL]: RUN_ID },
    teardown: () => removeRunContainers(docker),
  };
});

describe("Docker runtime: hardening and limits as docker inspect shows them", function () {
  this.timeout(120_000);
  const docker = dockerClient();
  let runtime: Runtime;
  const deviceId = `hard-${process.pid}`;
  const identity = { deviceId, placementId: "1", deploymentId: "2", appId: "3", version: "4" };

  before(async () => {
    await requireDocker();
    runtime = createDockerRuntime({ docker });
  });

  after(async () => {
    await removeRunContainers(docker);
    await docker
      .getImage(`shoal-test-root:${RUN_ID}`)
      .remove({ force: true })
      .catch(() => undefined);
  });

  it("creates the container hardened, with the band's initial limits, published on 127.0.0.1 only", async () => {
    const spec = containerSpec(identity, demoWebManifest(), WEB_IMAGE, {
      extraLabels: { [TEST_LABEL]: RUN_ID },
    });
    const { container } = await runtime.ensureRunning(spec);
    const info = await docker.getContainer(container.id).inspect();
    const host = info.HostConfig;

    expect(host.Privileged).to.equal(false);
    expect(host.CapDrop).to.deep.equal(["ALL"]);
    expect(host.CapAdd ?? []).to.deep.equal([]);
    expect(host.SecurityOpt).to.deep.equal(["no-new-privileges"]);
    expect(host.ReadonlyRootfs).to.equal(true);
    expect(host.Tmpfs).to.deep.equal({ "/tmp": "rw,noexec,nosuid,nodev,size=8m,mode=1777" });
    expect(host.Binds ?? []).to.deep.equal([]);
    expect(info.Mounts).to.deep.equal([]);
    expect(host.Devices ?? []).to.deep.equal([]);
    // The deployment's own bridge network (issue 15), made by the runtime and labelled as Shoal's.
    expect(host.NetworkMode).to.equal(spec.network).and.not.equal("bridge");
    const network = await docker.getNetwork(spec.network).inspect();
    expect(network.Driver).to.equal("bridge");
    expect(network.Internal).to.equal(false);
    expect(network.Labels).to.include({
      "io.shoal.managed": "true",
      "io.shoal.deployment": spec.identity.deploymentId,
    });
    expect(host.PidMode).to.equal("");
    expect(host.IpcMode).to.equal("none");
    expect(host.UsernsMode).to.equal("");
    expect(host.UTSMode).to.equal("");
    expect((host as { CgroupnsMode?: string }).CgroupnsMode).to.equal("private");
    expect(host.RestartPolicy?.Name).to.equal("no");
    expect(info.Config.User).to.equal("10001:10001");

    expect(host.CpuPeriod).to.equal(100_000);
    expect(host.CpuQuota).to.equal(5_000); // 50m = the band's min
    expect(host.NanoCpus ?? 0).to.equal(0);
    expect(host.Memory).to.equal(64 * MiB); // the band's max
    expect(host.MemorySwap).to.equal(64 * MiB); // no swap
    expect(host.MemoryReservation).to.equal(16 * MiB); // the band's min
    expect(host.PidsLimit).to.equal(128);

    expect(host.PortBindings).to.deep.equal({ "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] });
    const bound = info.NetworkSettings.Ports["8080/tcp"] ?? [];
    expect(bound.map((b) => b.HostIp)).to.deep.equal(["127.0.0.1"]);
    expect(info.Config.Labels).to.include({
      "io.shoal.managed": "true",
      "io.shoal.device": deviceId,
      "io.shoal.placement": "1",
      "io.shoal.deployment": "2",
      "io.shoal.app": "3",
      "io.shoal.version": "4",
      "io.shoal.spec-hash": specHash(spec),
    });
    expect(info.Name).to.equal(`/shoal-${deviceId}-1`);

    // The hardening is real inside the container, not only requested.
    await pageOf(container);
    const handle = docker.getContainer(container.id);
    expect((await execIn(handle, ["id", "-u"])).stdout.trim()).to.equal("10001");
    expect((await execIn(handle, ["touch", "/etc/shoal-was-here"])).exitCode).to.not.equal(0);
    expect((await execIn(handle, ["grep", "CapEff", "/proc/1/status"])).stdout).to.match(
      /CapEff:\s+0000000000000000/,
    );
    expect((await execIn(handle, ["grep", "NoNewPrivs", "/proc/1/status"])).stdout).to.match(
      /NoNewPrivs:\s+1/,
    );
    expect(
      (await execIn(handle, ["test", "-e", "/dev/shm"])).exitCode,
      "no /dev/shm (IpcMode none)",
    ).to.not.equal(0);
  });

  it("applies updateResources to the container's cgroup limits, as docker inspect shows them", async () => {
    const [c] = await runtime.list({ deviceId });
    const before = await docker.getContainer(c.id).inspect();
    await runtime.updateResources(c.id, { cpuMillicores: 300, memoryMiB: 96, memoryReservationMiB: 32 });
    const after = await docker.getContainer(c.id).inspect();
    expect(after.HostConfig.CpuQuota).to.equal(30_000);
    expect(after.HostConfig.Memory).to.equal(96 * MiB);
    expect(after.HostConfig.MemorySwap).to.equal(96 * MiB);
    expect(after.HostConfig.MemoryReservation).to.equal(32 * MiB);
    expect(after.State.StartedAt).to.equal(before.State.StartedAt);
    expect(after.State.Running).to.equal(true);
    expect(after.RestartCount).to.equal(before.RestartCount);
  });

  it("puts the container under the cgroup parent of the spec", async () => {
    const parent = `shoal-test-${process.pid}`;
    const spec = containerSpec({ ...identity, placementId: "2" }, demoWebManifest(), WEB_IMAGE, {
      extraLabels: { [TEST_LABEL]: RUN_ID },
      cgroupParent: parent,
    });
    const { container } = await runtime.ensureRunning(spec);
    const info = await docker.getContainer(container.id).inspect();
    expect(info.HostConfig.CgroupParent).to.equal(parent);
    await runtime.remove(container.id);
  });

  it("refuses an image whose user is root when the manifest sets none", async () => {
    // An image like demo-web but with USER 0, made locally (never pulled).
    const base = await docker.createContainer({ Image: WEB_IMAGE, Labels: { [TEST_LABEL]: RUN_ID } });
    await base.commit({ repo: "shoal-test-root", tag: RUN_ID, changes: ["USER 0"] });
    await base.remove({ force: true });
    const spec = containerSpec(
      { ...identity, placementId: "3" },
      demoWebManifest(),
      `shoal-test-root:${RUN_ID}`,
      {
        extraLabels: { [TEST_LABEL]: RUN_ID },
      },
    );
    const error = await runtime.ensureRunning(spec).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(RuntimeError);
    expect((error as RuntimeError).reason).to.equal("unsafe-user");
    expect((error as RuntimeError).retryable).to.equal(false);
    expect(await runtime.inspect(spec.name)).to.equal(undefined);
  });

  it("takes the engine's start time from its socket, and refuses to guess once the socket is gone", async () => {
    // A stand-in for a device engine's socket: dockerd creates its socket when it starts and
    // unlinks it when it begins to stop, while it still answers on the connections already open.
    const dir = await mkdtemp(path.join(tmpdir(), "shoal-engine-socket-"));
    const socketPath = path.join(dir, "docker.sock");
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const engine = createDockerRuntime({ docker: dockerClient(), socketPath });
    try {
      expect(await engine.engineStartedAt!()).to.equal((await stat(socketPath)).ctime.toISOString());
      await new Promise((resolve) => server.close(resolve)); // unlinks the socket
      // The engine still lists containers (over the open connection), but no exit it shows may be
      // judged now: the reconcile pass must abort, not read the exits as the apps' own.
      await engine.list({ deviceId });
      const error = await engine.engineStartedAt!().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(RuntimeError);
      expect((error as RuntimeError).reason).to.equal("unavailable");
      expect((error as RuntimeError).retryable).to.equal(true);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("translates an unreachable engine into a retryable RuntimeError", async () => {
    const offline = createDockerRuntime({ docker: new Docker({ socketPath: "/nonexistent/docker.sock" }) });
    const error = await offline.list({ deviceId }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(RuntimeError);
    expect((error as RuntimeError).reason).to.equal("unavailable");
    expect((error as RuntimeError).retryable).to.equal(true);
  });
});
