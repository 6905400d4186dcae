import { expect } from "chai";
import { createHash } from "node:crypto";
import { readFileSync } from "fs";
import { join } from "path";
import {
  ContainerSpecError,
  HARDENING,
  containerLabels,
  containerSpec,
  cpuQuotaUs,
  effectiveUser,
  imageRefForCid,
  specHash,
} from "../../../workers/src";
import type { ContainerSpec, PlacementIdentity } from "../../../workers/src";
import { canonicalManifestBytes, parseManifest, validateCanonicalManifest } from "../../../workers/src";
import type { PublishedManifest } from "../../../workers/src";
import {
  ENGINE_RESTORE_GRACE_MS,
  ENGINE_SHUTDOWN_SETTLE_MS,
  HEALTH_RESTARTS_BEFORE_FAILED,
  plan,
  stoppedByEngine,
} from "../../../workers/src";
import type { ActualContainer, DesiredPlacement, PlanAction } from "../../../workers/src";

const ROOT = join(__dirname, "..", "..", "..");
const CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

function published(yaml: string): PublishedManifest {
  return validateCanonicalManifest(canonicalManifestBytes(parseManifest(yaml), { "linux/amd64": CID }));
}

const DEMO_WEB = published(readFileSync(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8"));

const FULL = published(`
name: full
version: "2.1.0"
images: { linux/amd64: { ref: example/full:2.1.0 } }
command: ["/bin/server"]
args: ["--port", "8080"]
env: { B: "2", A: "1" }
ports:
  - { containerPort: 9090, protocol: udp }
  - { containerPort: 8080 }
resources:
  cpu: { min: 250m, max: 2 }
  memory: { min: 64Mi, max: 1Gi }
restartPolicy: never
writablePaths:
  - /var/cache/full
  - { path: /tmp, size: 8Mi }
user: { uid: 10001 }
healthCheck: { exec: ["test", "-f", "/tmp/ok"], intervalSeconds: 5 }
`);

const ID: PlacementIdentity = {
  deviceId: "7",
  placementId: "4294967297",
  deploymentId: "1",
  appId: "3",
  version: "1",
};

function specFor(
  placementId: string,
  manifest: PublishedManifest = DEMO_WEB,
  image = imageRefForCid(CID),
): ContainerSpec {
  return containerSpec({ ...ID, placementId }, manifest, image);
}

function desired(placementId: string, manifest: PublishedManifest = DEMO_WEB): DesiredPlacement {
  const spec = specFor(placementId, manifest);
  return { placementId, container: { spec, specHash: specHash(spec) } };
}

function actual(placementId: string, fields: Partial<ActualContainer> = {}): ActualContainer {
  const spec = specFor(placementId === "" ? "0" : placementId);
  return {
    id: `c-${placementId}`,
    name: spec.name,
    deviceId: ID.deviceId,
    placementId,
    deploymentId: ID.deploymentId,
    appId: ID.appId,
    version: ID.version,
    specHash: specHash(spec),
    state: "running",
    exitCode: undefined,
    oomKilled: false,
    createdAt: "2026-11-26T09:00:00.000000000Z",
    startedAt: "2026-11-26T09:00:01.000000000Z",
    finishedAt: undefined,
    limits: { cpuMillicores: 50, memoryMiB: 64, memoryReservationMiB: 16, pidsLimit: 128 },
    ports: [],
    ...fields,
  };
}

/** Actions reduced to what a test compares: type, placement, container, code. */
function summary(actions: PlanAction[]): string[] {
  return actions.map((a) =>
    [
      a.type,
      a.placementId,
      "containerId" in a ? a.containerId : "-",
      a.type === "report-failure" ? a.code : a.type === "stop" ? a.reason : "",
    ]
      .join(" ")
      .trim(),
  );
}

describe("plan()", () => {
  const OTHER = published(
    readFileSync(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8").replace('PORT: "8080"', 'PORT: "8081"'),
  );
  const alwaysExited = (exitCode: number, more: Partial<ActualContainer> = {}) =>
    actual("1", { state: "exited", exitCode, finishedAt: "2026-11-26T09:01:00Z", ...more });
  const onFailure = published(
    readFileSync(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8").replace(
      "restartPolicy: always",
      "restartPolicy: on-failure",
    ),
  );
  const never = published(
    readFileSync(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8").replace(
      "restartPolicy: always",
      "restartPolicy: never",
    ),
  );
  const withPolicy = (manifest: PublishedManifest, container: ActualContainer) => {
    const spec = specFor("1", manifest);
    return { ...container, specHash: specHash(spec) };
  };

  const cases: {
    name: string;
    desired: DesiredPlacement[];
    actual: ActualContainer[];
    expected: string[];
  }[] = [
    { name: "nothing desired, nothing running", desired: [], actual: [], expected: [] },
    {
      name: "desired without a container: start",
      desired: [desired("1")],
      actual: [],
      expected: ["start 1 -"],
    },
    {
      name: "running with the same spec hash: keep",
      desired: [desired("1")],
      actual: [actual("1")],
      expected: ["keep 1 c-1"],
    },
    {
      name: "running with another spec hash: recreate",
      desired: [desired("1", OTHER)],
      actual: [actual("1")],
      expected: ["recreate 1 c-1"],
    },
    {
      name: "exited with another spec hash: recreate, whatever the policy",
      desired: [desired("1", OTHER)],
      actual: [alwaysExited(0)],
      expected: ["recreate 1 c-1"],
    },
    {
      name: "container without a desired placement: stop",
      desired: [],
      actual: [actual("9")],
      expected: ["stop 9 c-9 not-desired"],
    },
    {
      name: "container without a placement label: stop",
      desired: [desired("1")],
      actual: [actual("1"), actual("", { id: "c-unlabelled" })],
      expected: ["stop  c-unlabelled not-desired", "keep 1 c-1"],
    },
    {
      name: "created but never started: restart (start it)",
      desired: [desired("1")],
      actual: [actual("1", { state: "created", startedAt: undefined })],
      expected: ["restart 1 c-1"],
    },
    ...(["unknown", "dead", "restarting", "paused"] as const).map((state) => ({
      name: `state ${state}: recreate (stop before starting again)`,
      desired: [desired("1")],
      actual: [actual("1", { state })],
      expected: ["recreate 1 c-1"],
    })),
    {
      name: "restartPolicy always, exited 0: restart",
      desired: [desired("1")],
      actual: [alwaysExited(0)],
      expected: ["restart 1 c-1"],
    },
    {
      name: "restartPolicy always, exited 1: restart",
      desired: [desired("1")],
      actual: [alwaysExited(1)],
      expected: ["restart 1 c-1"],
    },
    {
      name: "restartPolicy on-failure, exited 2: restart",
      desired: [desired("1", onFailure)],
      actual: [withPolicy(onFailure, alwaysExited(2))],
      expected: ["restart 1 c-1"],
    },
    {
      name: "restartPolicy on-failure, exited 0: complete",
      desired: [desired("1", onFailure)],
      actual: [withPolicy(onFailure, alwaysExited(0))],
      expected: ["complete 1 c-1"],
    },
    {
      name: "restartPolicy never, exited 1: report StartFailed",
      desired: [desired("1", never)],
      actual: [withPolicy(never, alwaysExited(1))],
      expected: ["report-failure 1 c-1 StartFailed"],
    },
    {
      name: "restartPolicy never, exited 0: complete",
      desired: [desired("1", never)],
      actual: [withPolicy(never, alwaysExited(0))],
      expected: ["complete 1 c-1"],
    },
    {
      name: "OOM killed at the band's max memory: report OOMKilled even under always",
      desired: [desired("1")],
      actual: [alwaysExited(137, { oomKilled: true })],
      expected: ["report-failure 1 c-1 OOMKilled"],
    },
    {
      name: "OOM killed below the band's max (limit shrunk by the resource manager): restart under always",
      desired: [desired("1")],
      actual: [
        alwaysExited(137, {
          oomKilled: true,
          limits: { cpuMillicores: 50, memoryMiB: 32, memoryReservationMiB: 16, pidsLimit: 128 },
        }),
      ],
      expected: ["restart 1 c-1"],
    },
    {
      name: "OOM killed under never: report OOMKilled",
      desired: [desired("1", never)],
      actual: [
        withPolicy(
          never,
          alwaysExited(137, {
            oomKilled: true,
            limits: { cpuMillicores: 50, memoryMiB: 32, memoryReservationMiB: 16, pidsLimit: 128 },
          }),
        ),
      ],
      expected: ["report-failure 1 c-1 OOMKilled"],
    },
    {
      name: "duplicates: the running one with the desired hash is kept, the others stopped first",
      desired: [desired("1")],
      actual: [
        actual("1", { id: "c-old", state: "exited", exitCode: 0, createdAt: "2026-11-26T08:00:00Z" }),
        actual("1", { id: "c-good" }),
        actual("1", { id: "c-other", specHash: "sha256:other", createdAt: "2026-11-26T10:00:00Z" }),
      ],
      expected: ["stop 1 c-old duplicate", "stop 1 c-other duplicate", "keep 1 c-good"],
    },
    {
      name: "duplicates, none running: the newest with the desired hash is kept and handled",
      desired: [desired("1")],
      actual: [
        actual("1", { id: "c-a", state: "exited", exitCode: 1, createdAt: "2026-11-26T08:00:00Z" }),
        actual("1", { id: "c-b", state: "exited", exitCode: 1, createdAt: "2026-11-26T09:30:00Z" }),
      ],
      expected: ["stop 1 c-a duplicate", "restart 1 c-b"],
    },
    {
      name: "spec unknown (manifest unavailable), container running: wait, do not stop it",
      desired: [{ placementId: "1" }],
      actual: [actual("1")],
      expected: ["wait 1 c-1"],
    },
    {
      name: "spec unknown, no container: wait",
      desired: [{ placementId: "1" }],
      actual: [],
      expected: ["wait 1"],
    },
    {
      name: "several placements: stops first, then placements in numeric order",
      desired: [desired("10"), desired("9"), desired("2")],
      actual: [actual("9"), actual("3")],
      expected: ["stop 3 c-3 not-desired", "start 2 -", "keep 9 c-9", "start 10 -"],
    },
    {
      name: "a placement listed twice in desired is planned once",
      desired: [desired("1"), desired("1")],
      actual: [],
      expected: ["start 1 -"],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      expect(summary(plan({ desired: c.desired, actual: c.actual }))).to.deep.equal(c.expected);
    });
  }

  describe("an unhealthy replica (issue 15)", () => {
    const sick = (more: Partial<ActualContainer> = {}) => actual("1", { health: "unhealthy", ...more });
    const health: { name: string; want: DesiredPlacement; container: ActualContainer; expected: string[] }[] =
      [
        {
          name: "healthy or still starting: keep",
          want: desired("1"),
          container: actual("1", { health: "healthy" }),
          expected: ["keep 1 c-1"],
        },
        {
          name: "starting: keep",
          want: desired("1"),
          container: actual("1", { health: "starting" }),
          expected: ["keep 1 c-1"],
        },
        {
          name: "unhealthy, never restarted for it: recreate",
          want: desired("1"),
          container: sick(),
          expected: ["recreate 1 c-1"],
        },
        {
          name: `unhealthy after ${HEALTH_RESTARTS_BEFORE_FAILED - 1} restart(s): recreate once more`,
          want: { ...desired("1"), unhealthyRestarts: HEALTH_RESTARTS_BEFORE_FAILED - 1 },
          container: sick(),
          expected: ["recreate 1 c-1"],
        },
        {
          name: `unhealthy after ${HEALTH_RESTARTS_BEFORE_FAILED} restarts: HealthCheckFailed`,
          want: { ...desired("1"), unhealthyRestarts: HEALTH_RESTARTS_BEFORE_FAILED },
          container: sick(),
          expected: ["report-failure 1 c-1 HealthCheckFailed"],
        },
        {
          name: "unhealthy under restartPolicy never: HealthCheckFailed at once",
          want: desired("1", never),
          container: withPolicy(never, sick()),
          expected: ["report-failure 1 c-1 HealthCheckFailed"],
        },
      ];
    for (const c of health) {
      it(c.name, () => {
        expect(summary(plan({ desired: [c.want], actual: [c.container] }))).to.deep.equal(c.expected);
      });
    }

    it("marks the recreate as one for health, so the reconciler counts it", () => {
      const [action] = plan({ desired: [desired("1")], actual: [sick()] });
      expect(action).to.include({ type: "recreate", unhealthy: true });
    });
  });

  it("start and recreate carry the spec and hash to apply", () => {
    const want = desired("1", OTHER);
    const [action] = plan({ desired: [want], actual: [actual("1")] });
    expect(action.type).to.equal("recreate");
    if (action.type !== "recreate") return;
    expect(action.spec).to.equal(want.container?.spec);
    expect(action.specHash).to.equal(want.container?.specHash);
  });

  it("is pure: same input, same output, inputs untouched", () => {
    const input = { desired: [desired("2"), desired("1")], actual: [actual("3"), actual("1")] };
    const frozen = JSON.stringify(input);
    expect(plan(input)).to.deep.equal(plan(input));
    expect(JSON.stringify(input)).to.equal(frozen);
  });
});

describe("containerSpec()", () => {
  it("hardens every container: not privileged, all capabilities dropped, no-new-privileges, read-only root", () => {
    for (const manifest of [DEMO_WEB, FULL]) {
      const spec = specFor("1", manifest);
      expect(spec.hardening).to.deep.equal({
        privileged: false,
        readonlyRootfs: true,
        capDrop: ["ALL"],
        securityOpt: ["no-new-privileges"],
        ipcMode: "none",
        pidMode: "",
        usernsMode: "",
        utsMode: "",
        cgroupnsMode: "private",
        hostMounts: [],
      });
      expect(spec.hardening).to.equal(HARDENING);
      expect(Object.isFrozen(HARDENING)).to.equal(true);
      // The deployment's own network, never Docker's shared default bridge (issue 15).
      expect(spec.network).to.equal("shoal-7-d1");
      expect(spec.deploymentNetwork).to.deep.equal({ internal: false });
    }
  });

  it("mounts a noexec, nosuid tmpfs of the declared size for each writable path, nothing else", () => {
    expect(specFor("1", FULL).tmpfs).to.deep.equal([
      { path: "/tmp", sizeMiB: 8, options: "rw,noexec,nosuid,nodev,size=8m,mode=1777" },
      { path: "/var/cache/full", sizeMiB: 16, options: "rw,noexec,nosuid,nodev,size=16m,mode=1777" },
    ]);
    expect(specFor("1").tmpfs).to.deep.equal([
      { path: "/tmp", sizeMiB: 8, options: "rw,noexec,nosuid,nodev,size=8m,mode=1777" },
    ]);
  });

  it("gives an httpGet check to the worker's prober and an exec check to Docker (issue 15)", () => {
    const spec = specFor("1", DEMO_WEB);
    expect(spec.healthCheck).to.equal(undefined);
    expect(spec.httpProbe).to.deep.equal({
      port: 8080,
      path: "/healthz",
      intervalS: 10,
      timeoutS: 2,
      retries: 3,
      startPeriodS: 0,
    });
    expect(specFor("1", FULL).httpProbe).to.equal(undefined);
    expect(specFor("1", FULL).healthCheck?.test).to.deep.equal(["CMD", "test", "-f", "/tmp/ok"]);
  });

  it("publishes declared ports on 127.0.0.1 only by default", () => {
    expect(specFor("1", FULL).ports).to.deep.equal([
      { containerPort: 8080, protocol: "tcp", hostIp: "127.0.0.1", hostPorts: "" },
      { containerPort: 9090, protocol: "udp", hostIp: "127.0.0.1", hostPorts: "" },
    ]);
  });

  it("publishes ports on the owner's exposure address and host-port range (issue 15)", () => {
    const spec = containerSpec(ID, FULL, "img", {
      exposure: { address: "10.213.0.10", hostPortRange: { min: 30000, max: 30099 } },
    });
    expect(spec.ports).to.deep.equal([
      { containerPort: 8080, protocol: "tcp", hostIp: "10.213.0.10", hostPorts: "30000-30099" },
      { containerPort: 9090, protocol: "udp", hostIp: "10.213.0.10", hostPorts: "30000-30099" },
    ]);
  });

  describe("egress and the deployment network (issue 15)", () => {
    const egress = (value: string) =>
      published(readFileSync(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8") + `egress: ${value}\n`);
    const cases: {
      name: string;
      manifest: PublishedManifest;
      outboundAllowed?: boolean;
      network: string;
      internal: boolean;
      ports: number;
    }[] = [
      {
        name: "no egress given: outbound",
        manifest: DEMO_WEB,
        network: "shoal-7-d1",
        internal: false,
        ports: 1,
      },
      {
        name: "egress outbound",
        manifest: egress("outbound"),
        network: "shoal-7-d1",
        internal: false,
        ports: 1,
      },
      {
        name: "egress none: an internal network, no published ports",
        manifest: egress("none"),
        network: "shoal-7-d1-internal",
        internal: true,
        ports: 0,
      },
      {
        name: "outbound forbidden by the device owner: internal whatever the app asks",
        manifest: egress("outbound"),
        outboundAllowed: false,
        network: "shoal-7-d1-internal",
        internal: true,
        ports: 0,
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const spec = containerSpec(ID, c.manifest, "img", { outboundAllowed: c.outboundAllowed });
        expect(spec.network).to.equal(c.network);
        expect(spec.deploymentNetwork).to.deep.equal({ internal: c.internal });
        expect(spec.ports).to.have.length(c.ports);
      });
    }

    it("replicas of one deployment share its network; another deployment gets its own", () => {
      const a = containerSpec({ ...ID, placementId: "1" }, DEMO_WEB, "img");
      const b = containerSpec({ ...ID, placementId: "2" }, DEMO_WEB, "img");
      const other = containerSpec({ ...ID, placementId: "3", deploymentId: "2" }, DEMO_WEB, "img");
      expect(a.network).to.equal(b.network);
      expect(other.network).to.not.equal(a.network);
    });
  });

  it("starts at the band: CPU quota at min, memory limit at max, reservation at min, a PIDs limit", () => {
    const spec = specFor("1", FULL);
    expect(spec.limits).to.deep.equal({ cpuMillicores: 250, memoryMiB: 1024, memoryReservationMiB: 64 });
    expect(spec.band).to.deep.equal({
      cpuMillicoresMin: 250,
      cpuMillicoresMax: 2000,
      memoryMiBMin: 64,
      memoryMiBMax: 1024,
    });
    expect(spec.pidsLimit).to.equal(128);
    expect(spec.cpuShares).to.equal(256);
    expect(specFor("1").limits).to.deep.equal({ cpuMillicores: 50, memoryMiB: 64, memoryReservationMiB: 16 });
  });

  it("clamps an initial CPU value into the band", () => {
    const over = containerSpec(ID, FULL, "img", { initialCpuMillicores: 5000 });
    const under = containerSpec(ID, FULL, "img", { initialCpuMillicores: 1 });
    const inside = containerSpec(ID, FULL, "img", { initialCpuMillicores: 500 });
    expect([over, under, inside].map((s) => s.limits.cpuMillicores)).to.deep.equal([2000, 250, 500]);
  });

  it("CPU quota is millicores x 100 us per 100 ms period, never under the 1 ms CFS minimum", () => {
    expect([cpuQuotaUs(1), cpuQuotaUs(10), cpuQuotaUs(50), cpuQuotaUs(1500)]).to.deep.equal([
      1000, 1000, 5000, 150000,
    ]);
  });

  it("takes command, args, sorted env, user (gid defaults to uid) and exec health check from the manifest", () => {
    const spec = specFor("1", FULL);
    expect(spec.entrypoint).to.deep.equal(["/bin/server"]);
    expect(spec.cmd).to.deep.equal(["--port", "8080"]);
    expect(Object.keys(spec.env)).to.deep.equal(["A", "B"]);
    expect(spec.user).to.deep.equal({ uid: 10001, gid: 10001 });
    expect(spec.restartPolicy).to.equal("never");
    expect(spec.healthCheck).to.deep.equal({
      test: ["CMD", "test", "-f", "/tmp/ok"],
      intervalS: 5,
      timeoutS: 3,
      retries: 3,
      startPeriodS: 0,
    });
    // demo-web's check is httpGet: made by the worker, not inside the container.
    expect(specFor("1").healthCheck).to.equal(undefined);
    expect(specFor("1").user).to.equal(undefined);
  });

  it("names the container after device and placement and labels it with identity and spec hash", () => {
    const spec = containerSpec(ID, DEMO_WEB, "img", { extraLabels: { "dev.shoal.test": "run-1" } });
    expect(spec.name).to.equal("shoal-7-4294967297");
    expect(containerLabels(spec)).to.deep.equal({
      "dev.shoal.test": "run-1",
      "io.shoal.managed": "true",
      "io.shoal.device": "7",
      "io.shoal.placement": "4294967297",
      "io.shoal.deployment": "1",
      "io.shoal.app": "3",
      "io.shoal.version": "1",
      "io.shoal.spec-hash": specHash(spec),
    });
  });

  it("refuses a host network, reserved labels and ids that are not ids", () => {
    expect(() => containerSpec(ID, DEMO_WEB, "img", { network: "host" })).to.throw(
      ContainerSpecError,
      /host/,
    );
    expect(() => containerSpec(ID, DEMO_WEB, "img", { extraLabels: { "io.shoal.device": "8" } })).to.throw(
      ContainerSpecError,
      /reserved/,
    );
    expect(() => containerSpec({ ...ID, deviceId: "7 --privileged" }, DEMO_WEB, "img")).to.throw(
      ContainerSpecError,
      /deviceId/,
    );
  });
});

describe("specHash()", () => {
  it("is a sha256 that does not depend on key order or object identity", () => {
    const a = specFor("1", FULL);
    const b = JSON.parse(JSON.stringify(a)) as ContainerSpec;
    const reordered = Object.fromEntries(Object.entries(b).reverse()) as unknown as ContainerSpec;
    // Recomputed here from its definition: sha256 of the spec as JSON with keys sorted at every
    // level (undefined members left out), in hex after "sha256:".
    const sortedJson = JSON.stringify(a, (_key, value: unknown) =>
      value !== null && typeof value === "object" && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
        : value,
    );
    expect(specHash(a)).to.equal(`sha256:${createHash("sha256").update(sortedJson).digest("hex")}`);
    expect(specHash(b)).to.equal(specHash(a));
    expect(specHash(reordered)).to.equal(specHash(a));
  });

  it("changes with the image, env, limits, ports, cgroup parent and placement", () => {
    const base = specHash(specFor("1"));
    const variants = [
      specFor("1", DEMO_WEB, imageRefForCid("bafkreiother")),
      { ...specFor("1"), env: { ...specFor("1").env, EXTRA: "1" } },
      { ...specFor("1"), limits: { ...specFor("1").limits, memoryMiB: 32 } },
      { ...specFor("1"), ports: [] },
      containerSpec({ ...ID, placementId: "1" }, DEMO_WEB, imageRefForCid(CID), { cgroupParent: "shoal-7" }),
      specFor("2"),
    ];
    const hashes = new Set([base, ...variants.map((v) => specHash(v))]);
    expect(hashes.size).to.equal(variants.length + 1);
  });
});

describe("effectiveUser()", () => {
  const cases: {
    name: string;
    spec: Pick<ContainerSpec, "user">;
    image: string | undefined;
    expected: string | RegExp;
  }[] = [
    {
      name: "manifest user wins",
      spec: { user: { uid: 10001, gid: 10002 } },
      image: "0",
      expected: "10001:10002",
    },
    { name: "numeric image user", spec: {}, image: "10001:10001", expected: "10001:10001" },
    { name: "numeric image uid only: gid = uid", spec: {}, image: "1000", expected: "1000:1000" },
    { name: "no USER means root: refused", spec: {}, image: "", expected: /no USER/ },
    { name: "uid 0 refused", spec: {}, image: "0:1000", expected: /root/ },
    { name: "gid 0 refused", spec: {}, image: "1000:0", expected: /root/ },
    { name: "root by name refused", spec: {}, image: "root", expected: /not numeric/ },
    { name: "other names refused", spec: {}, image: "nobody", expected: /not numeric/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const result = effectiveUser(c.spec, c.image);
      if (typeof c.expected === "string") expect(result).to.deep.equal({ ok: true, user: c.expected });
      else {
        expect(result.ok).to.equal(false);
        if (!result.ok) expect(result.problem).to.match(c.expected);
      }
    });
  }
});

describe("stoppedByEngine(): an exit that was the engine's doing, not the app's", () => {
  const ENGINE = "2026-11-26T10:00:00.000000000Z";
  const at = (offsetMs: number) => new Date(Date.parse(ENGINE) + offsetMs).toISOString();
  const exited = (startedAt: string, finishedAt: string, more: Partial<ActualContainer> = {}) =>
    actual("1", { state: "exited", exitCode: 0, startedAt, finishedAt, ...more });
  const cases: { name: string; container: ActualContainer; engine: string | undefined; expected: boolean }[] =
    [
      {
        name: "stopped at the engine's shutdown (started by the engine before): yes",
        container: exited(at(-600_000), at(-2_000)),
        engine: ENGINE,
        expected: true,
      },
      {
        name: "stopped while the new engine restored it without live-restore: yes",
        container: exited(at(-600_000), at(3_000), { exitCode: 143 }),
        engine: ENGINE,
        expected: true,
      },
      {
        name: "exited after the restore grace under a live-restored engine: the app's own",
        container: exited(at(-600_000), at(ENGINE_RESTORE_GRACE_MS + 1_000)),
        engine: ENGINE,
        expected: false,
      },
      {
        name: "started by the engine now running: the app's own",
        container: exited(at(1_000), at(2_000)),
        engine: ENGINE,
        expected: false,
      },
      {
        name: "OOM killed: the kernel's verdict on the app, never the engine's",
        container: exited(at(-600_000), at(-2_000), { oomKilled: true, exitCode: 137 }),
        engine: ENGINE,
        expected: false,
      },
      {
        name: "engine start unknown (a remote engine): the app's own",
        container: exited(at(-600_000), at(-2_000)),
        engine: undefined,
        expected: false,
      },
      {
        name: "running: no exit to judge",
        container: actual("1", { startedAt: at(-600_000) }),
        engine: ENGINE,
        expected: false,
      },
      {
        name: "created, never started: no",
        container: actual("1", { state: "created", startedAt: undefined, finishedAt: undefined }),
        engine: ENGINE,
        expected: false,
      },
    ];
  for (const c of cases)
    it(c.name, () => expect(stoppedByEngine(c.container, c.engine)).to.equal(c.expected));

  const onFailure = published(
    readFileSync(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8").replace(
      "restartPolicy: always",
      "restartPolicy: on-failure",
    ),
  );
  const never = published(
    readFileSync(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8").replace(
      "restartPolicy: always",
      "restartPolicy: never",
    ),
  );
  const withSpec = (manifest: PublishedManifest, container: ActualContainer) => ({
    ...container,
    specHash: specHash(specFor("1", manifest)),
  });
  const planCases: {
    name: string;
    manifest: PublishedManifest;
    container: ActualContainer;
    now?: string;
    expected: string[];
  }[] = [
    {
      // The bug of issue 14: demo-loadgen exited 0 on dockerd's SIGTERM and its placement was released.
      name: "on-failure, exit 0 at the engine's shutdown: restart in place, not complete",
      manifest: onFailure,
      container: exited(at(-600_000), at(-2_000)),
      expected: ["restart 1 c-1"],
    },
    {
      name: "never, exit 143 at the engine's shutdown: restart in place, not a failure",
      manifest: never,
      container: exited(at(-600_000), at(-2_000), { exitCode: 143 }),
      expected: ["restart 1 c-1"],
    },
    {
      name: "on-failure, exit 0 on its own under the engine now running, settled: complete",
      manifest: onFailure,
      container: exited(at(1_000), at(5_000)),
      now: at(5_000 + ENGINE_SHUTDOWN_SETTLE_MS),
      expected: ["complete 1 c-1"],
    },
    {
      // The engine may be stopping: it answers while it stops its containers.
      name: "on-failure, exit 0 a moment ago under the engine now running: wait, not complete yet",
      manifest: onFailure,
      container: exited(at(1_000), at(5_000)),
      now: at(6_000),
      expected: ["wait 1 c-1"],
    },
    {
      name: "never, exit 1 a moment ago: wait before reporting the failure",
      manifest: never,
      container: exited(at(1_000), at(5_000), { exitCode: 1 }),
      now: at(6_000),
      expected: ["wait 1 c-1"],
    },
    {
      name: "never, OOM killed a moment ago: reported at once (the kernel's verdict)",
      manifest: never,
      container: exited(at(1_000), at(5_000), { exitCode: 137, oomKilled: true }),
      now: at(6_000),
      expected: ["report-failure 1 c-1 OOMKilled"],
    },
  ];
  for (const c of planCases)
    it(`plan(): ${c.name}`, () => {
      const actions = plan({
        desired: [desired("1", c.manifest)],
        actual: [withSpec(c.manifest, c.container)],
        engineStartedAt: ENGINE,
        now: c.now ?? at(600_000),
      });
      expect(summary(actions)).to.deep.equal(c.expected);
      if (actions[0].type === "restart") expect(actions[0].reason).to.match(/stopped by its engine/);
    });
});
