import { expect } from "chai";
import { readFileSync } from "fs";
import { join } from "path";
import {
  MAX_MANIFEST_BYTES,
  ManifestError,
  canonicalManifest,
  canonicalManifestBytes,
  formatCpuMillicores,
  formatMemoryMiB,
  manifestSchema,
  parseCpuMillicores,
  parseManifest,
  parseMemoryMiB,
  publishedManifestSchema,
  labelsProblem,
  resourceBand,
  splitLabels,
  stableStringify,
  toPublishedManifest,
  validateCanonicalManifest,
} from "../../../workers/src";
import type { Manifest, ResourceBand } from "../../../workers/src";
import { ShoalError } from "../../../workers/src";
import {
  DOCS_PATH,
  EXAMPLE_IMAGE_CIDS,
  FULL_EXAMPLE_MANIFEST,
  renderManifestDocs,
} from "../../../scripts/render-manifest-docs";

const ROOT = join(__dirname, "..", "..", "..");
const CID_A = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
const CID_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH";

/** A minimal valid manifest; the bad cases below replace or append lines, so line numbers are known. */
const BASE = [
  "name: demo-web", // 1
  'version: "1.0.0"', // 2
  "images:", // 3
  "  linux/amd64:", // 4
  "    ref: shoal/demo-web:1.0.0", // 5
  "resources:", // 6
  "  cpu:", // 7
  "    min: 50m", // 8
  "    max: 500m", // 9
  "  memory:", // 10
  "    min: 16Mi", // 11
  "    max: 64Mi", // 12
];

/** BASE with some lines replaced (1-based; undefined deletes) and lines appended from line 13 on. */
function yaml(replace: Record<number, string | undefined> = {}, ...append: string[]): string {
  const lines: string[] = [];
  BASE.forEach((line, index) => {
    const n = index + 1;
    if (!(n in replace)) lines.push(line);
    else if (replace[n] !== undefined) lines.push(replace[n] as string);
  });
  return [...lines, ...append].join("\n") + "\n";
}

function issuesOf(text: string | Uint8Array, source = "shoal.yaml"): ManifestError {
  try {
    parseManifest(text, { source });
  } catch (error) {
    expect(error).to.be.instanceOf(ManifestError);
    return error as ManifestError;
  }
  throw new Error("expected the manifest to be refused");
}

/** The issue lines of a ManifestError's message (everything after the summary line). */
function messageLines(error: ManifestError): string[] {
  return error.message.split("\n").slice(1);
}

describe("manifest", () => {
  describe("parseManifest: good manifests", () => {
    const cases: { name: string; text: string; check: (m: Manifest) => void }[] = [
      {
        name: "the minimal manifest gets every default",
        text: yaml(),
        check: (m) => {
          expect(m).to.deep.equal({
            schemaVersion: 1,
            name: "demo-web",
            version: "1.0.0",
            images: { "linux/amd64": { ref: "shoal/demo-web:1.0.0" } },
            env: {},
            ports: [],
            resources: { cpu: { min: "50m", max: "500m" }, memory: { min: "16Mi", max: "64Mi" } },
            restartPolicy: "on-failure",
            replicas: 1,
            requiredLabels: [],
            writablePaths: [],
          });
        },
      },
      {
        name: "apps/demo-web/shoal.yaml",
        text: readFileSync(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8"),
        check: (m) => {
          expect(m.name).to.equal("demo-web");
          expect(m.images).to.deep.equal({ "linux/amd64": { ref: "shoal/demo-web:1.0.0" } });
          expect(resourceBand(m)).to.deep.equal({
            cpuMillicoresMin: 50,
            cpuMillicoresMax: 500,
            memoryMiBMin: 16,
            memoryMiBMax: 64,
          });
          expect(m.writablePaths).to.deep.equal([{ path: "/tmp", size: "8Mi" }]);
        },
      },
      {
        name: "apps/demo-loadgen/shoal.yaml",
        text: readFileSync(join(ROOT, "apps/demo-loadgen/shoal.yaml"), "utf8"),
        check: (m) => {
          expect(m.images).to.deep.equal({ "linux/amd64": { ref: "shoal/demo-loadgen:1.0.0" } });
          expect(resourceBand(m)).to.deep.equal({
            cpuMillicoresMin: 100,
            cpuMillicoresMax: 1000,
            memoryMiBMin: 16,
            memoryMiBMax: 256,
          });
          expect(m.env.PROFILE).to.equal("steps");
        },
      },
      {
        name: "the full example of docs/manifest.md",
        text: FULL_EXAMPLE_MANIFEST,
        check: (m) => {
          expect(m.images["linux/arm64"]).to.deep.equal({ tar: "./dist/hello-edge-arm64.tar" });
          expect(m.resources.cpu).to.deep.equal({ min: "100m", max: "1500m" });
          expect(m.writablePaths).to.deep.equal([
            { path: "/tmp", size: "16Mi" },
            { path: "/var/cache/hello", size: "64Mi" },
          ]);
          expect(m.user).to.deep.equal({ uid: 10001, gid: 10001 });
          expect(m.healthCheck).to.deep.equal({
            httpGet: { port: 8080, path: "/healthz" },
            intervalSeconds: 10,
            timeoutSeconds: 2,
            retries: 3,
            startPeriodSeconds: 5,
          });
        },
      },
      {
        name: "CPU as a YAML number of cores and memory as fractional Gi",
        text: yaml({ 8: "    min: 0.25", 9: "    max: 2", 12: "    max: 1.5Gi" }),
        check: (m) =>
          expect(resourceBand(m)).to.deep.equal({
            cpuMillicoresMin: 250,
            cpuMillicoresMax: 2000,
            memoryMiBMin: 16,
            memoryMiBMax: 1536,
          }),
      },
      {
        name: "CPU as quoted cores, min equal to max",
        text: yaml({ 8: '    min: "1"', 9: "    max: 1000m" }),
        check: (m) => expect(m.resources.cpu).to.deep.equal({ min: "1000m", max: "1000m" }),
      },
      {
        name: "the bounds themselves: 1m..64 cores, 6Mi (Docker's smallest memory limit)..64Gi",
        text: yaml({ 8: "    min: 1m", 9: '    max: "64"', 11: "    min: 6Mi", 12: "    max: 64Gi" }),
        check: (m) =>
          expect(resourceBand(m)).to.deep.equal({
            cpuMillicoresMin: 1,
            cpuMillicoresMax: 64000,
            memoryMiBMin: 6,
            memoryMiBMax: 65536,
          }),
      },
      {
        name: "a tar image, the arm platforms and a prerelease version",
        text: yaml({
          2: "version: 2.1.0-rc.1+build.5",
          5: [
            "    tar: ./dist/web-amd64.tar",
            "  linux/arm/v7: { tar: web-armv7.tar.gz }",
            "  linux/arm64: { ref: localhost:5000/shoal/web@sha256:" + "a".repeat(64) + " }",
          ].join("\n"),
        }),
        check: (m) => {
          expect(m.version).to.equal("2.1.0-rc.1+build.5");
          expect(Object.keys(m.images)).to.have.members(["linux/amd64", "linux/arm/v7", "linux/arm64"]);
        },
      },
      {
        name: "eight labels, writable paths normalized, exec health check",
        text: yaml(
          {},
          "requiredLabels: [a=1, b=2, c=3, d=4, e=5, f=6, g=7, region=eu-west]",
          "writablePaths: [/tmp/, { path: /var//cache, size: 1Gi }]",
          'healthCheck: { exec: ["test", "-f", "/tmp/ready"] }',
          "user: { uid: 65534 }",
        ),
        check: (m) => {
          expect(m.requiredLabels).to.have.length(8);
          expect(m.writablePaths).to.deep.equal([
            { path: "/tmp", size: "16Mi" },
            { path: "/var/cache", size: "1Gi" },
          ]);
          expect(m.healthCheck).to.deep.equal({
            exec: ["test", "-f", "/tmp/ready"],
            intervalSeconds: 10,
            timeoutSeconds: 3,
            retries: 3,
            startPeriodSeconds: 0,
          });
        },
      },
      {
        name: "JSON is YAML too",
        text: JSON.stringify({
          name: "json-app",
          version: "0.0.1",
          images: { "linux/arm64": { ref: "json-app:0.0.1" } },
          resources: { cpu: { min: "10m", max: 0.1 }, memory: { min: "8Mi", max: "8Mi" } },
          env: { A: "1", _B: "" },
        }),
        check: (m) => {
          expect(m.env).to.deep.equal({ A: "1", _B: "" });
          expect(m.resources.cpu.max).to.equal("100m");
        },
      },
    ];
    for (const c of cases) {
      it(`accepts ${c.name}`, () => c.check(parseManifest(c.text)));
    }
  });

  describe("egress (issue 15)", () => {
    it("is absent unless given (outbound), and kept through the published form when given", () => {
      expect(parseManifest(yaml()).egress).to.equal(undefined);
      for (const value of ["none", "outbound"] as const) {
        const manifest = parseManifest(yaml({}, `egress: ${value}`));
        expect(manifest.egress).to.equal(value);
        const published = validateCanonicalManifest(
          canonicalManifestBytes(manifest, {
            "linux/amd64": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
          }),
        );
        expect(published.egress).to.equal(value);
      }
    });

    it("refuses any other value with one message", () => {
      expect(messageLines(issuesOf(yaml({}, "egress: host")))).to.deep.equal([
        'shoal.yaml:13: egress: "host" is not an egress setting; use one of none, outbound',
      ]);
    });
  });

  describe("parseManifest: bad manifests, one specific message each", () => {
    const cases: { name: string; text: string; message: string }[] = [
      {
        name: "a CPU quantity that is not one",
        text: yaml({ 9: "    max: abc" }),
        message:
          'shoal.yaml:9: resources.cpu.max: "abc" is not a CPU quantity; use millicores like "250m" or cores like "0.5"',
      },
      {
        name: "CPU min above max",
        text: yaml({ 8: "    min: 600m" }),
        message:
          'shoal.yaml:8: resources.cpu.min: "600m" is more than resources.cpu.max ("500m"); min must be at most max',
      },
      {
        name: "2 cores as min against 500m as max",
        text: yaml({ 8: "    min: 2" }),
        message:
          'shoal.yaml:8: resources.cpu.min: 2 is more than resources.cpu.max ("500m"); min must be at most max',
      },
      {
        name: "memory min above max",
        text: yaml({ 11: "    min: 128Mi" }),
        message:
          'shoal.yaml:11: resources.memory.min: "128Mi" is more than resources.memory.max ("64Mi"); min must be at most max',
      },
      {
        name: "CPU above 64 cores",
        text: yaml({ 9: "    max: 65" }),
        message:
          "shoal.yaml:9: resources.cpu.max: 65 is above the maximum; use a CPU quantity from 1m to 64 cores",
      },
      {
        name: "zero CPU",
        text: yaml({ 8: "    min: 0m" }),
        message:
          'shoal.yaml:8: resources.cpu.min: "0m" is below the minimum; use a CPU quantity from 1m to 64 cores',
      },
      {
        name: "CPU finer than a millicore",
        text: yaml({ 8: '    min: "0.0005"' }),
        message:
          'shoal.yaml:8: resources.cpu.min: "0.0005" has more than 3 decimals; the smallest CPU step is 1m (0.001 cores)',
      },
      {
        name: "megabytes instead of mebibytes",
        text: yaml({ 12: "    max: 512M" }),
        message:
          'shoal.yaml:12: resources.memory.max: "512M" uses a decimal unit; Shoal takes binary units only; write "512Mi" if that is what you mean (1Mi = 1024 x 1024 bytes)',
      },
      {
        name: "memory as a bare number",
        text: yaml({ 12: "    max: 64" }),
        message:
          'shoal.yaml:12: resources.memory.max: 64 is a bare number; add a binary unit, like "64Mi" or "1Gi" (a bare number would mean bytes to Docker)',
      },
      {
        name: "memory below the 6Mi Docker accepts as a limit",
        text: yaml({ 11: "    min: 5Mi" }),
        message:
          'shoal.yaml:11: resources.memory.min: "5Mi" is below 6Mi, the smallest memory limit Docker accepts; use a memory quantity from 6Mi to 64Gi',
      },
      {
        name: "a missing CPU max",
        text: yaml({ 9: undefined }),
        message:
          'shoal.yaml:7: resources.cpu.max is missing; it is required: millicores like "250m" or cores like "0.5"',
      },
      {
        name: "a missing name",
        text: yaml({ 1: undefined }),
        message:
          "shoal.yaml:1: name is missing; it is required: 1 to 63 lowercase letters, digits and '-', starting with a letter and not ending with '-' (like \"demo-web\")",
      },
      {
        name: "a name that is not a slug",
        text: yaml({ 1: "name: Demo_Web" }),
        message:
          "shoal.yaml:1: name: \"Demo_Web\" is not a valid app name; use 1 to 63 lowercase letters, digits and '-', starting with a letter and not ending with '-' (like \"demo-web\")",
      },
      {
        name: "a version that is not semver",
        text: yaml({ 2: 'version: "1.0"' }),
        message:
          'shoal.yaml:2: version: "1.0" is not a semantic version; use a semantic version like "1.0.0" or "2.1.0-rc.1" (quote it in YAML), at most 64 characters',
      },
      {
        name: "a version YAML reads as a number",
        text: yaml({ 2: "version: 1.5" }),
        message:
          'shoal.yaml:2: version: 1.5 is a number, not a string; use a semantic version like "1.0.0" or "2.1.0-rc.1" (quote it in YAML), at most 64 characters',
      },
      {
        name: "an unknown platform",
        text: yaml({ 4: "  linux/amd65:" }),
        message:
          'shoal.yaml:4: images["linux/amd65"]: "linux/amd65" is not a supported platform; use one of linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6, linux/386, linux/ppc64le, linux/s390x, linux/riscv64',
      },
      {
        name: "an image with both ref and tar",
        text: yaml({ 5: "    ref: shoal/demo-web:1.0.0\n  linux/arm64: { ref: web:1, tar: web.tar }" }),
        message:
          'shoal.yaml:6: images["linux/arm64"]: {"ref":"web:1","tar":"web.tar"} is not an image source; use exactly one of { ref: "shoal/demo-web:1.0.0" } or { tar: "./dist/image.tar" }',
      },
      {
        name: "a tar path that is not a tar",
        text: yaml({ 5: "    tar: ./image.zip" }),
        message:
          'shoal.yaml:5: images["linux/amd64"].tar: "./image.zip" is not a path to a tar file; use a path ending in .tar or .tar.gz, like "./dist/demo-web-amd64.tar"',
      },
      {
        name: "a port out of range",
        text: yaml({}, "ports:", "  - containerPort: 70000"),
        message:
          "shoal.yaml:14: ports[0].containerPort: 70000 is not a port number; use an integer from 1 to 65535",
      },
      {
        name: "port zero",
        text: yaml({}, "ports: [{ containerPort: 0 }]"),
        message:
          "shoal.yaml:13: ports[0].containerPort: 0 is not a port number; use an integer from 1 to 65535",
      },
      {
        name: "a port listed twice",
        text: yaml({}, "ports: [{ containerPort: 80 }, { containerPort: 80, protocol: tcp }]"),
        message:
          "shoal.yaml:13: ports[1].containerPort: 80 is listed twice for tcp (also ports[0]); each containerPort and protocol at most once",
      },
      {
        name: "an env key that is not an identifier",
        text: yaml({}, "env:", "  1BAD: x"),
        message:
          'shoal.yaml:14: env["1BAD"]: "1BAD" is not a valid environment variable name; use letters, digits and \'_\', not starting with a digit, at most 128 characters (like "LOG_LEVEL")',
      },
      {
        name: "an unquoted number as env value",
        text: yaml({}, "env:", "  PORT: 8080"),
        message:
          'shoal.yaml:14: env.PORT: 8080 is an integer, not a string; use a string of at most 4096 characters; quote numbers and booleans in YAML, like "8080" or "true"',
      },
      {
        name: "nine required labels",
        text: yaml({}, "requiredLabels: [a=1, b=2, c=3, d=4, e=5, f=6, g=7, h=8, i=9]"),
        message:
          'shoal.yaml:13: requiredLabels: ["a=1","b=2","c=3","d=4","e=5","f=6","g=7","h=8","i=9"] has 9 entries, more than 8; use a list of at most 8 distinct key=value labels',
      },
      {
        name: "a label without a value",
        text: yaml({}, "requiredLabels:", "  - gpu"),
        message:
          "shoal.yaml:14: requiredLabels[0]: \"gpu\" is not a label; use key=value where the key is 1 to 31 lowercase letters, digits, '_', '.', '-' starting with a letter and the value is 1 to 32 letters, digits, '_', '.', '-' (like \"region=eu-west\")",
      },
      {
        name: "a label key required twice",
        text: yaml({}, "requiredLabels:", "  - region=eu", "  - region=us"),
        message:
          'shoal.yaml:15: requiredLabels[1]: "region=us" repeats the key "region" (also requiredLabels[0]); each label key at most once: a device has one value per key',
      },
      {
        name: "a writable path under /proc",
        text: yaml({}, "writablePaths: [/proc/sys]"),
        message:
          'shoal.yaml:13: writablePaths[0]: "/proc/sys" is under /proc, which the runtime provides; use an application directory like "/tmp" or "/var/cache/app"',
      },
      {
        name: "the root as a writable path",
        text: yaml({}, "writablePaths:", "  - path: /", "    size: 8Mi"),
        message:
          'shoal.yaml:14: writablePaths[0].path: "/" is the root filesystem; the root filesystem is always read-only; list the directories the app writes to, like "/tmp"',
      },
      {
        name: "a relative writable path",
        text: yaml({}, "writablePaths: [tmp]"),
        message:
          'shoal.yaml:13: writablePaths[0]: "tmp" is not a writable path; use an absolute path like "/tmp" or { path: /tmp, size: 16Mi }',
      },
      {
        name: "a writable path escaping with ..",
        text: yaml({}, "writablePaths: [/tmp/../etc]"),
        message:
          "shoal.yaml:13: writablePaths[0]: \"/tmp/../etc\" contains a '.' or '..' segment; write the plain absolute path, like \"/tmp\"",
      },
      {
        name: "a tmpfs larger than 1Gi",
        text: yaml({}, "writablePaths:", "  - { path: /tmp, size: 2Gi }"),
        message:
          'shoal.yaml:14: writablePaths[0].size: "2Gi" is out of range; use a tmpfs size from 1Mi to 1Gi',
      },
      {
        name: "a health check with neither exec nor httpGet",
        text: yaml({}, "healthCheck:", "  retries: 2"),
        message:
          'shoal.yaml:13: healthCheck: {"retries":2} has neither exec nor httpGet; give exactly one of exec: [...] or httpGet: { port, path }',
      },
      {
        name: "a health check timeout longer than its interval",
        text: yaml({}, "healthCheck:", "  exec: [echo]", "  intervalSeconds: 2", "  timeoutSeconds: 5"),
        message:
          "shoal.yaml:16: healthCheck.timeoutSeconds: 5 is longer than intervalSeconds (2); a timeout of at most the interval, so checks never overlap",
      },
      {
        name: "an HTTP health check on an undeclared port",
        text: yaml({}, "healthCheck:", "  httpGet: { port: 9090 }"),
        message:
          "shoal.yaml:14: healthCheck.httpGet.port: 9090 is not a tcp port listed in ports; probe one of the app's declared tcp ports",
      },
      {
        name: "running as root",
        text: yaml({}, "user: { uid: 0 }"),
        message:
          "shoal.yaml:13: user.uid: 0 is not a non-root uid; use an integer from 1 to 2147483647; Shoal never runs apps as root (uid 0)",
      },
      {
        name: "zero replicas",
        text: yaml({}, "replicas: 0"),
        message: "shoal.yaml:13: replicas: 0 is not a replica count; use an integer from 1 to 1000",
      },
      {
        name: "an unknown restart policy",
        text: yaml({}, "restartPolicy: sometimes"),
        message:
          'shoal.yaml:13: restartPolicy: "sometimes" is not a restart policy; use one of always, on-failure, never',
      },
      {
        name: "a misspelt key",
        text: yaml({}, "replica: 3"),
        message:
          'shoal.yaml:13: replica is not a known key (did you mean "replicas"?); allowed keys here: schemaVersion, name, version, description, images, command, args, env, ports, resources, restartPolicy, egress, replicas, requiredLabels, writablePaths, user, healthCheck',
      },
      {
        name: "an unknown key inside resources",
        text: yaml({}, "  gpu: 1"),
        message: "shoal.yaml:13: resources.gpu is not a known key; allowed keys here: cpu, memory",
      },
      {
        name: "a YAML syntax error",
        text: yaml({ 8: "    min: [50m" }),
        message:
          "shoal.yaml:9: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]; fix the YAML syntax",
      },
      {
        name: "a duplicate key, named with the line of its first spelling",
        text: yaml({}, "name: other"),
        message: "shoal.yaml:13: name is written twice (also on line 1); write each key once",
      },
      {
        name: "an empty file",
        text: "# nothing here\n",
        message:
          "shoal.yaml: (manifest) is empty; use a YAML mapping with at least name, version, images and resources",
      },
      {
        name: "a list instead of a mapping",
        text: "- name: demo\n",
        message:
          'shoal.yaml:1: (manifest): [{"name":"demo"}] is a list, not a mapping; use a YAML mapping with at least name, version, images and resources',
      },
    ];
    for (const c of cases) {
      it(`refuses ${c.name}`, () => {
        const error = issuesOf(c.text);
        expect(messageLines(error)).to.deep.equal([c.message]);
        expect(error.issues).to.have.length(1);
      });
    }

    const refused: { key: string; line: string; reason: string }[] = [
      { key: "privileged", line: "privileged: true", reason: "privileged container can reach every device" },
      { key: "privileged", line: "privileged: false", reason: "Shoal never runs privileged containers" },
      { key: "hostNetwork", line: "hostNetwork: true", reason: "host's network namespace" },
      { key: "network_mode", line: "network_mode: host", reason: "host's network namespace" },
      { key: "networkMode", line: "networkMode: host", reason: "host's network namespace" },
      { key: "pid", line: "pid: host", reason: "host's PID namespace" },
      { key: "hostPID", line: "hostPID: true", reason: "host's PID namespace" },
      { key: "ipc", line: "ipc: host", reason: "host's IPC namespace" },
      { key: "hostIPC", line: "hostIPC: true", reason: "host's IPC namespace" },
      { key: "volumes", line: 'volumes: ["/:/host"]', reason: "use `writablePaths` (size-limited tmpfs)" },
      {
        key: "mounts",
        line: "mounts: [{ type: bind, source: /etc, target: /etc }]",
        reason: "mounting host paths",
      },
      { key: "cap_add", line: "cap_add: [NET_ADMIN]", reason: "drops every Linux capability" },
      { key: "capAdd", line: "capAdd: [SYS_ADMIN]", reason: "drops every Linux capability" },
      { key: "devices", line: 'devices: ["/dev/mem"]', reason: "direct access to the device's hardware" },
      { key: "security_opt", line: "security_opt: [seccomp=unconfined]", reason: "seccomp" },
    ];
    for (const r of refused) {
      it(`refuses ${r.line} with its reason`, () => {
        const error = issuesOf(yaml({}, r.line));
        expect(error.issues).to.have.length(1);
        const [issue] = error.issues;
        expect(issue).to.include({ kind: "refused", path: r.key, line: 13 });
        const [line] = messageLines(error);
        expect(line).to.match(new RegExp(`^shoal\\.yaml:13: ${r.key}: .+ is refused; `));
        expect(line).to.include(r.reason);
      });
    }

    it("reports every issue at once, in file order, with field, value, allowed and line", () => {
      const error = issuesOf(
        yaml(
          { 1: "name: Bad_Name", 9: "    max: abc", 12: "    max: 512M" },
          "privileged: true",
          "ports: [{ containerPort: 0 }]",
          "replica: 2",
        ),
        "apps/bad/shoal.yaml",
      );
      expect(error.issues.map((i) => [i.line, i.path])).to.deep.equal([
        [1, "name"],
        [9, "resources.cpu.max"],
        [12, "resources.memory.max"],
        [13, "privileged"],
        [14, "ports[0].containerPort"],
        [15, "replica"],
      ]);
      const cpu = error.issues[1]!;
      expect(cpu).to.deep.include({ kind: "invalid", path: "resources.cpu.max", value: "abc", line: 9 });
      expect(cpu.allowed).to.equal('use millicores like "250m" or cores like "0.5"');
      expect(error.message.split("\n")[0]).to.equal(
        "apps/bad/shoal.yaml is not a valid Shoal manifest (6 issues):",
      );
      expect(messageLines(error).every((line) => line.startsWith("apps/bad/shoal.yaml:"))).to.equal(true);
    });

    it("throws a non-retryable ShoalError with a short message", () => {
      const error = issuesOf(yaml({ 9: "    max: abc" }));
      expect(error).to.be.instanceOf(ShoalError);
      expect(error.name).to.equal("ManifestError");
      expect(error.retryable).to.equal(false);
      expect(error.shortMessage).to.equal("shoal.yaml is not a valid Shoal manifest (1 issue):");
      expect(error.source).to.equal("shoal.yaml");
    });

    it("refuses YAML alias bombs instead of expanding them", () => {
      const bomb = [
        "a: &a [x, x, x, x, x, x, x, x, x, x]",
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]",
      ].join("\n");
      const error = issuesOf(bomb);
      expect(messageLines(error)).to.deep.equal([
        "shoal.yaml: (manifest) expands its aliases into too much data (more than 50 nodes); write the values out, or use fewer aliases",
      ]);
    });
  });

  describe("parseManifest: manifests that cannot run or would lose data (issue 11)", () => {
    const PROBE_PORT = "ports: [{ containerPort: 8080 }]";
    const probe = (path: string) => [PROBE_PORT, `healthCheck: { httpGet: { port: 8080, path: ${path} } }`];
    const ALLOWED_TEXT =
      "use printable text: tab and newline are the only control characters allowed, and bidi overrides are refused";
    const ALLOWED_LINE =
      "use printable text on one line: control characters, tabs, newlines and bidi overrides are refused";
    const PROBE_ALLOWED = 'a probe only targets its own container: give the path alone, like "/healthz"';
    const PROBE_HOST_REFUSED =
      "a probe only targets its own container, which the worker addresses itself (never another host, the device, or a link-local or metadata address); give only port and path";
    const UTF8 = "save the file as UTF-8 without a byte order mark";
    const TAG_ALLOWED =
      "remove the tag: a manifest holds plain mappings, lists, strings, numbers and booleans";
    const lit = (value: string) => JSON.stringify(value);

    const classes: Record<string, { name: string; input: string | Uint8Array; message: string }[]> = {
      "control characters in free text": [
        {
          name: "an escape sequence in an env value",
          input: yaml({}, `env: { GREETING: ${lit("hi\u001b[2J")} }`),
          message: `shoal.yaml:13: env.GREETING: "hi\\u001b[2J" contains the control character U+001B (ESC) at index 2; ${ALLOWED_TEXT}`,
        },
        {
          name: "NUL in an argument",
          input: yaml({}, 'args: ["--name", "a\\0b"]'),
          message: `shoal.yaml:13: args[1]: "a\\u0000b" contains the control character U+0000 (NUL) at index 1; ${ALLOWED_TEXT}`,
        },
        {
          name: "a carriage return in the command",
          input: yaml({}, 'command: ["/bin/app\\rrm -rf"]'),
          message: `shoal.yaml:13: command[0]: "/bin/app\\rrm -rf" contains the control character U+000D (CR) at index 8; ${ALLOWED_TEXT}`,
        },
        {
          name: "a one-byte CSI (C1 control) in a health check command",
          input: yaml({}, "healthCheck:", '  exec: ["check", "\\x9b31m"]'),
          message: `shoal.yaml:14: healthCheck.exec[1]: "\\u009b31m" contains the control character U+009B (CSI) at index 0; ${ALLOWED_TEXT}`,
        },
        {
          name: "a right-to-left override in an env value, escaped in the message",
          input: yaml({}, 'env: { FILE: "invoice\\u202Efdp.exe" }'),
          message: `shoal.yaml:13: env.FILE: "invoice\\u202efdp.exe" contains the control character U+202E (RIGHT-TO-LEFT OVERRIDE) at index 7; ${ALLOWED_TEXT}`,
        },
        {
          name: "a bidi isolate in the description",
          input: yaml({}, 'description: "ok\\u2066 hidden\\u2069"'),
          message: `shoal.yaml:13: description: "ok\\u2066 hidden\\u2069" contains the control character U+2066 (LEFT-TO-RIGHT ISOLATE) at index 2; ${ALLOWED_LINE}`,
        },
        {
          name: "a newline in the one-line description",
          input: yaml({}, "description: |", "  two", "  lines"),
          message: `shoal.yaml:13: description: "two\\nlines\\n" contains the control character U+000A (LF) at index 3; ${ALLOWED_LINE}`,
        },
        {
          name: "a raw escape character anywhere in the file, even a comment",
          input: yaml({}, "# \u001b[8m hidden"),
          message:
            "shoal.yaml:13: has the control character U+001B (ESC) at column 3; remove it: a manifest is printable text (tabs and newlines aside), and control characters can make a file display differently than it reads",
        },
        {
          name: "a raw bidi override in a comment (Trojan Source)",
          input: yaml({}, "replicas: 1 # \u202e } ⁦if admin⁩ ⁦ begin admins only"),
          message:
            "shoal.yaml:13: has the control character U+202E (RIGHT-TO-LEFT OVERRIDE) at column 15; remove it: a manifest is printable text (tabs and newlines aside), and control characters can make a file display differently than it reads",
        },
      ],
      "commands that cannot start": [
        {
          name: "an empty command",
          input: yaml({}, 'command: [""]'),
          message:
            'shoal.yaml:13: command[0]: "" is empty; the first entry is the program to run, like "/bin/httpd"',
        },
        {
          name: "a blank command",
          input: yaml({}, 'command: ["   ", "-f"]'),
          message:
            'shoal.yaml:13: command[0]: "   " is blank; the first entry is the program to run, like "/bin/httpd"',
        },
        {
          name: "an empty health check command",
          input: yaml({}, "healthCheck:", '  exec: [""]'),
          message:
            'shoal.yaml:14: healthCheck.exec[0]: "" is empty; the first entry is the program to run, like "/bin/httpd"',
        },
        {
          name: "no command at all",
          input: yaml({}, "command: []"),
          message:
            'shoal.yaml:13: command: [] has 0 entries, fewer than 1; use a list of 1 to 64 strings, like ["/bin/httpd", "-f"]',
        },
      ],
      "writable paths over files Docker manages": [
        ...["/etc/hosts", "/etc/resolv.conf", "/etc/hostname/"].map((path) => ({
          name: path,
          input: yaml({}, `writablePaths: [${path}]`),
          message: `shoal.yaml:13: writablePaths[0]: ${lit(path)} is a file Docker manages: it writes /etc/hosts, /etc/resolv.conf and /etc/hostname into every container; use a directory the app owns, like "/tmp" or "/var/cache/app"`,
        })),
        {
          name: "a path below one of them",
          input: yaml({}, "writablePaths:", "  - { path: //etc/resolv.conf/x, size: 1Mi }"),
          message:
            'shoal.yaml:14: writablePaths[0].path: "//etc/resolv.conf/x" is a file Docker manages: it writes /etc/hosts, /etc/resolv.conf and /etc/hostname into every container; use a directory the app owns, like "/tmp" or "/var/cache/app"',
        },
      ],
      "YAML that changes or drops data": [
        {
          name: "!!omap (read as an empty mapping)",
          input: yaml({}, "env: !!omap [A: x]"),
          message: `shoal.yaml:13: env has the YAML tag !!omap, which would change or drop its data; ${TAG_ALLOWED}`,
        },
        {
          name: "!!set",
          input: yaml({}, "requiredLabels: !!set { region=eu }"),
          message: `shoal.yaml:13: requiredLabels has the YAML tag !!set, which would change or drop its data; ${TAG_ALLOWED}`,
        },
        {
          name: "!!binary",
          input: yaml({}, "description: !!binary aGVsbG8="),
          message: `shoal.yaml:13: description has the YAML tag !!binary, which would change or drop its data; ${TAG_ALLOWED}`,
        },
        {
          name: "!!timestamp",
          input: yaml({}, "env:", "  RELEASED: !!timestamp 2001-12-14"),
          message: `shoal.yaml:14: env.RELEASED has the YAML tag !!timestamp, which would change or drop its data; ${TAG_ALLOWED}`,
        },
        {
          name: "an unknown tag (read as a string without a word)",
          input: yaml({}, "args: [!secret db-password]"),
          message: `shoal.yaml:13: args[0] has the YAML tag !secret, which would change or drop its data; ${TAG_ALLOWED}`,
        },
        {
          name: "a %YAML 1.1 directive",
          input: `%YAML 1.1\n---\n${yaml()}`,
          message:
            "shoal.yaml:1: (manifest) declares %YAML 1.1, whose rules read yes/no as booleans, 0777 as octal and 1:30 as 90; remove the directive: manifests are read as YAML 1.2",
        },
        {
          name: "an alias as a key",
          input: yaml({}, "description: &k LOG_LEVEL", "env:", "  *k : debug"),
          message: "shoal.yaml:15: env has an alias (*k) as a key; write the key out: keys are plain names",
        },
        {
          name: "a list as a key",
          input: yaml({}, "env:", "  ? [A, B]", "  : x"),
          message: "shoal.yaml:14: env has a list as a key; keys are plain names",
        },
        {
          name: "a key written twice, spelled differently",
          input: yaml({}, "env:", "  LEVEL: a", '  "LEVEL": b'),
          message:
            'shoal.yaml:15: env.LEVEL is written twice: "LEVEL" here and LEVEL on line 14 both read as the key "LEVEL"; write each key once',
        },
        {
          name: "a number and a string that are one key in JSON",
          input: yaml({}, "ports:", "  - containerPort: 80", '    "containerPort": 81'),
          message:
            'shoal.yaml:15: ports[0].containerPort is written twice: "containerPort" here and containerPort on line 14 both read as the key "containerPort"; write each key once',
        },
        {
          name: "a second document",
          input: `${yaml()}---\nreplicas: 3\n`,
          message:
            "shoal.yaml:13: holds more than one YAML document (another one starts on line 13); a manifest is one document: remove the '---' line and what follows it, or split the file",
        },
      ],
      "nesting deeper than a manifest needs": [
        {
          name: "40 levels of lists",
          input: yaml({}, `args: ${"[".repeat(40)}${"]".repeat(40)}`),
          message: `shoal.yaml:13: args${"[0]".repeat(31)} nests more than 32 levels deep; a manifest needs 4 levels of nesting`,
        },
        {
          name: "20,000 flow levels (a crash of the parser, not a stack overflow message)",
          input: yaml({}, `args: ${"[".repeat(20_000)}${"]".repeat(20_000)}`),
          message:
            'shoal.yaml:13: (manifest) nests more than 64 flow collections ("[" or "{"); a manifest needs 4 levels of nesting; at most 64 flow levels and 256 columns of indentation are read',
        },
        {
          name: "300 levels of indentation",
          input: yaml({}, "env:", ...Array.from({ length: 300 }, (_, i) => `${" ".repeat(i + 2)}a:`)),
          message:
            "shoal.yaml:269: (manifest) is indented by more than 256 columns; a manifest needs 4 levels of nesting; at most 64 flow levels and 256 columns of indentation are read",
        },
      ],
      "encodings other than UTF-8": [
        {
          name: "UTF-16 with a byte order mark",
          input: Buffer.from(`\ufeff${yaml()}`, "utf16le"),
          message: `shoal.yaml:1: is UTF-16 (little-endian) text; ${UTF8}`,
        },
        {
          name: "UTF-16 without a byte order mark",
          input: Buffer.from(yaml(), "utf16le").swap16(),
          message: `shoal.yaml:1: is UTF-16 (big-endian) text; ${UTF8}`,
        },
        {
          name: "a UTF-8 byte order mark",
          input: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(yaml())]),
          message: `shoal.yaml:1: starts with a UTF-8 byte order mark; ${UTF8}`,
        },
        {
          name: "Latin-1 bytes (invalid UTF-8), with their line",
          input: Buffer.concat([
            Buffer.from(yaml()),
            Buffer.from("description: caf"),
            Buffer.from([0xe9, 0x0a]),
          ]),
          message: `shoal.yaml:13: has a byte that is not UTF-8 (0xe9 at byte 184); ${UTF8}`,
        },
        {
          name: "an overlong encoding of '/'",
          input: Buffer.concat([
            Buffer.from(yaml()),
            Buffer.from("description: a"),
            Buffer.from([0xc0, 0xaf, 0x0a]),
          ]),
          message: `shoal.yaml:13: has a byte that is not UTF-8 (0xc0 at byte 182); ${UTF8}`,
        },
        {
          name: "a byte order mark in text already decoded",
          input: `\ufeff${yaml()}`,
          message: `shoal.yaml:1: starts with a byte order mark; ${UTF8}`,
        },
      ],
      "health checks that would leave the container (issue 15)": [
        {
          name: "a network-path reference to the metadata service",
          input: yaml({}, ...probe("//169.254.169.254/latest/meta-data/")),
          message: `shoal.yaml:14: healthCheck.httpGet.path: "//169.254.169.254/latest/meta-data/" is a network-path reference (//host/...) to 169.254.169.254, a link-local address where cloud metadata services answer; ${PROBE_ALLOWED}`,
        },
        {
          name: "an absolute URL to the metadata service",
          input: yaml({}, ...probe('"http://169.254.169.254/latest/meta-data/"')),
          message: `shoal.yaml:14: healthCheck.httpGet.path: "http://169.254.169.254/latest/meta-data/" is an absolute http URL to 169.254.169.254, a link-local address where cloud metadata services answer; ${PROBE_ALLOWED}`,
        },
        {
          name: "an absolute URL to another host",
          input: yaml({}, ...probe('"https://example.com/healthz"')),
          message: `shoal.yaml:14: healthCheck.httpGet.path: "https://example.com/healthz" is an absolute https URL to another host (example.com); ${PROBE_ALLOWED}`,
        },
        {
          name: "an absolute URL to the device itself",
          input: yaml({}, ...probe('"http://127.0.0.1:5001/api/v0/shutdown"')),
          message: `shoal.yaml:14: healthCheck.httpGet.path: "http://127.0.0.1:5001/api/v0/shutdown" is an absolute http URL to 127.0.0.1, the device itself; ${PROBE_ALLOWED}`,
        },
        {
          name: "a network-path reference to an IPv6 link-local address",
          input: yaml({}, ...probe('"//[fe80::1]:8080/"')),
          message: `shoal.yaml:14: healthCheck.httpGet.path: "//[fe80::1]:8080/" is a network-path reference (//host/...) to [fe80::1], a link-local address; ${PROBE_ALLOWED}`,
        },
        {
          name: "a backslash that URL parsers read as a second slash",
          input: yaml({}, ...probe("'/\\evil.example/'")),
          message: `shoal.yaml:14: healthCheck.httpGet.path: "/\\\\evil.example/" is a network-path reference (//host/...) to another host (evil.example); ${PROBE_ALLOWED}`,
        },
        {
          name: "a host next to the path",
          input: yaml(
            {},
            PROBE_PORT,
            "healthCheck: { httpGet: { port: 8080, path: /, host: 169.254.169.254 } }",
          ),
          message: `shoal.yaml:14: healthCheck.httpGet.host: "169.254.169.254" is refused; ${PROBE_HOST_REFUSED}`,
        },
        {
          name: "a scheme next to the path",
          input: yaml({}, PROBE_PORT, "healthCheck: { httpGet: { port: 8080, scheme: HTTPS } }"),
          message: `shoal.yaml:14: healthCheck.httpGet.scheme: "HTTPS" is refused; a probe is plain HTTP to its container's own port; ${PROBE_HOST_REFUSED}`,
        },
        {
          name: "a Host header",
          input: yaml(
            {},
            PROBE_PORT,
            "healthCheck: { httpGet: { port: 8080, httpHeaders: [{ name: Host, value: metadata }] } }",
          ),
          message: `shoal.yaml:14: healthCheck.httpGet.httpHeaders: [{"name":"Host","value":"metadata"}] is refused; a Host header would name another host; ${PROBE_HOST_REFUSED}`,
        },
        {
          name: "a backslash later in the path",
          input: yaml({}, ...probe("'/health\\check'")),
          message: `shoal.yaml:14: healthCheck.httpGet.path: "/health\\\\check" contains a backslash, which URL parsers read as '/', so the path could name another host; ${PROBE_ALLOWED}, using '/' only`,
        },
      ],
    };
    for (const [kind, cases] of Object.entries(classes)) {
      describe(kind, () => {
        for (const c of cases) {
          it(`refuses ${c.name}`, () => {
            const error = issuesOf(c.input);
            expect(messageLines(error)).to.deep.equal([c.message]);
          });
        }
      });
    }

    it("accepts the allowed forms next to each refused one", () => {
      const manifest = parseManifest(
        yaml(
          {},
          'description: "Grüße, 東京 and emoji 🚀 are fine"',
          'command: ["/bin/sh", "-c"]',
          'args: ["echo one\\n\\techo two"]',
          'env: { PEM: "-----BEGIN-----\\nAAAA\\n-----END-----\\n", VERSION: !!str 1.0 }',
          "writablePaths: [/etc/app, /var/run]",
          PROBE_PORT,
          "healthCheck: { httpGet: { port: 8080, path: /a//b?c=%2F%2Fhost } }",
        ),
      );
      expect(manifest.env.VERSION).to.equal("1.0");
      expect(manifest.healthCheck?.httpGet?.path).to.equal("/a//b?c=%2F%2Fhost");
      expect(parseManifest(`%YAML 1.2\n---\n${yaml()}`).name).to.equal("demo-web");
    });

    it("reads UTF-8 bytes like the same text", () => {
      const text = yaml({}, 'description: "café"');
      expect(parseManifest(Buffer.from(text))).to.deep.equal(parseManifest(text));
    });

    it("reports a key brought in by a merge on the line where it is written", () => {
      const text = [
        "env: &extra", // 1
        "  SWAP: 1Gi", // 2: merged into resources.cpu below, where it is not a known key
        ...BASE.slice(0, 6), // 3..8
        "  cpu:", // 9
        "    <<: *extra", // 10
        "    min: 50m", // 11
        "    max: 500m", // 12
        ...BASE.slice(9), // 13..15
      ].join("\n");
      expect(messageLines(issuesOf(text))).to.deep.equal([
        "shoal.yaml:2: resources.cpu.SWAP is not a known key; allowed keys here: min, max",
      ]);
    });

    it("reports a bad value brought in by a merge where it is written", () => {
      const error = issuesOf(
        yaml(
          { 7: "  cpu: &cpu", 8: "    min: 50m", 9: "    max: abc", 10: "  memory:", 11: "    <<: *cpu" },
          "    min: 16Mi",
          "    max: 64Mi",
        ).replace("    max: 64Mi\n    min: 16Mi\n", ""),
      );
      expect(messageLines(error)).to.include(
        'shoal.yaml:9: resources.cpu.max: "abc" is not a CPU quantity; use millicores like "250m" or cores like "0.5"',
      );
    });

    it("refuses a file larger than workers accept, counting bytes, not characters", () => {
      // 90,000 three-byte characters: 270,000 bytes but 90,000 UTF-16 code units.
      const text = yaml({}, `description: "${"東".repeat(90_000)}"`);
      expect(messageLines(issuesOf(text))).to.deep.equal([
        `shoal.yaml: (manifest) is ${Buffer.byteLength(text)} bytes; a manifest has at most 262144 bytes, the most a worker fetches`,
      ]);
    });

    it("refuses a manifest that only grows past the limit once its aliases are expanded", () => {
      const values = Array.from(
        { length: 40 },
        (_, i) => `  V${i}: ${i === 0 ? "&v " : ""}"${"x".repeat(4000)}"`,
      );
      const text = yaml({}, "env:", ...values, `args: [${Array(30).fill("*v").join(", ")}]`);
      expect(Buffer.byteLength(text)).to.be.below(MAX_MANIFEST_BYTES);
      const [line] = messageLines(issuesOf(text));
      expect(line).to.match(
        /^shoal\.yaml: \(manifest\) would publish as about 28\d{4} bytes of canonical JSON \(aliases expanded, defaults written out\); workers accept at most 262144 bytes: shorten env, command, args or the description$/,
      );
    });

    it("refuses to canonicalize a manifest whose published bytes exceed what workers accept", () => {
      // Just under the parse-time estimate with short CIDs, over it with the longest CID allowed.
      const manifest = parseManifest(yaml());
      const huge = {
        ...manifest,
        env: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`V${i}`, "x".repeat(4096)])),
      };
      expect(() => canonicalManifest(huge, { "linux/amd64": CID_A })).to.throw(
        ManifestError,
        /canonical manifest: \(manifest\) is 26\d{4} bytes as canonical JSON \(aliases expanded, defaults written out\); workers accept at most 262144 bytes/,
      );
    });
  });

  describe("labelsProblem (device:enroll and app:deploy --labels)", () => {
    const cases: [string, string | undefined][] = [
      ["region=eu-west,tier=edge", undefined],
      ["", undefined],
      [
        "region",
        "\"region\" is not a label; use key=value where the key is 1 to 31 lowercase letters, digits, '_', '.', '-' starting with a letter and the value is 1 to 32 letters, digits, '_', '.', '-' (like \"region=eu-west\")",
      ],
      [
        "region=eu, region=us",
        '"region=us" repeats the key "region" (also "region=eu"); give each key at most once',
      ],
      ["a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9", "9 labels are too many; give at most 8"],
      [
        "zone=a\u001b[2J",
        "\"zone=a\\u001b[2J\" is not a label; use key=value where the key is 1 to 31 lowercase letters, digits, '_', '.', '-' starting with a letter and the value is 1 to 32 letters, digits, '_', '.', '-' (like \"region=eu-west\")",
      ],
    ];
    for (const [input, problem] of cases) {
      it(`${JSON.stringify(input)}: ${problem ?? "valid"}`, () =>
        expect(labelsProblem(splitLabels(input))).to.equal(problem));
    }
  });

  describe("quantities", () => {
    const cpu: [string | number, number][] = [
      ["250m", 250],
      ["0.5", 500],
      [0.5, 500],
      [1, 1000],
      ["2", 2000],
      ["1.5", 1500],
      ["0.001", 1],
      [0.1, 100],
      [0.3, 300],
      ["64", 64000],
      ["1000m", 1000],
    ];
    for (const [input, millicores] of cpu) {
      it(`parseCpuMillicores(${JSON.stringify(input)}) = ${millicores}`, () =>
        expect(parseCpuMillicores(input)).to.equal(millicores));
    }
    const badCpu: [string | number, string][] = [
      ["abc", 'cpu: "abc" is not a CPU quantity; use millicores like "250m" or cores like "0.5"'],
      ["250M", 'cpu: "250M" is not a CPU quantity; millicores take a lowercase "m", like "250m"'],
      ["1.5m", 'cpu: "1.5m" is not a whole number of millicores; the smallest CPU step is 1m'],
      ["0.0005", 'cpu: "0.0005" has more than 3 decimals; the smallest CPU step is 1m (0.001 cores)'],
      [0.0005, "cpu: 0.0005 has more than 3 decimals; the smallest CPU step is 1m (0.001 cores)"],
      [-1, 'cpu: -1 is not a CPU quantity; use millicores like "250m" or cores like "0.5"'],
      ["", 'cpu: "" is not a CPU quantity; use millicores like "250m" or cores like "0.5"'],
      ["1e3", 'cpu: "1e3" is not a CPU quantity; use millicores like "250m" or cores like "0.5"'],
      [" 250m", 'cpu: " 250m" is not a CPU quantity; use millicores like "250m" or cores like "0.5"'],
    ];
    for (const [input, message] of badCpu) {
      it(`parseCpuMillicores(${JSON.stringify(input)}) throws`, () => {
        expect(() => parseCpuMillicores(input))
          .to.throw(ManifestError)
          .with.property("metaMessages")
          .that.deep.equals([message]);
      });
    }

    const memory: [string, number][] = [
      ["64Mi", 64],
      ["4Mi", 4],
      ["1Gi", 1024],
      ["1.5Gi", 1536],
      ["0.5Gi", 512],
      ["0.25Gi", 256],
      ["64Gi", 65536],
    ];
    for (const [input, mib] of memory) {
      it(`parseMemoryMiB(${JSON.stringify(input)}) = ${mib}`, () =>
        expect(parseMemoryMiB(input)).to.equal(mib));
    }
    const badMemory: [string | number, string][] = [
      [
        "512M",
        'memory: "512M" uses a decimal unit; Shoal takes binary units only; write "512Mi" if that is what you mean (1Mi = 1024 x 1024 bytes)',
      ],
      [
        "1G",
        'memory: "1G" uses a decimal unit; Shoal takes binary units only; write "1Gi" if that is what you mean (1Mi = 1024 x 1024 bytes)',
      ],
      ["64MiB", 'memory: "64MiB" writes the unit as "MiB"; write "64Mi"'],
      [
        67108864,
        'memory: 67108864 is a bare number; add a binary unit, like "64Mi" or "1Gi" (a bare number would mean bytes to Docker)',
      ],
      ["67108864", 'memory: "67108864" has no unit; add a binary unit, like "64Mi" or "1Gi"'],
      [
        "0.5Mi",
        'memory: "0.5Mi" is not a whole number of MiB; the chain stores whole MiB; use a value like "1536Mi"',
      ],
      [
        "1.0001Gi",
        'memory: "1.0001Gi" is not a whole number of MiB; the chain stores whole MiB; use a value like "1536Mi"',
      ],
      [
        "64Ki",
        'memory: "64Ki" has the unit "Ki", which Shoal does not take; use binary units like "64Mi" or "1Gi"',
      ],
      ["abc", 'memory: "abc" is not a memory quantity; use binary units like "64Mi" or "1Gi"'],
    ];
    for (const [input, message] of badMemory) {
      it(`parseMemoryMiB(${JSON.stringify(input)}) throws`, () => {
        expect(() => parseMemoryMiB(input as string))
          .to.throw(ManifestError)
          .with.property("metaMessages")
          .that.deep.equals([message]);
      });
    }

    const formats: [number, string, number, string][] = [
      [250, "250m", 64, "64Mi"],
      [1000, "1000m", 1024, "1Gi"],
      [1500, "1500m", 1536, "1536Mi"],
      [1, "1m", 65536, "64Gi"],
    ];
    for (const [millicores, cpuText, mib, memoryText] of formats) {
      it(`formats ${millicores} millicores as ${cpuText} and ${mib} MiB as ${memoryText}, and parses them back`, () => {
        expect(formatCpuMillicores(millicores)).to.equal(cpuText);
        expect(formatMemoryMiB(mib)).to.equal(memoryText);
        expect(parseCpuMillicores(cpuText)).to.equal(millicores);
        expect(parseMemoryMiB(memoryText)).to.equal(mib);
      });
    }
    it("refuses to format a fractional quantity", () => {
      expect(() => formatCpuMillicores(0.5)).to.throw(
        ManifestError,
        "millicores: 0.5 is not a non-negative integer",
      );
    });
  });

  describe("resourceBand", () => {
    const cases: [string, ResourceBand][] = [
      [yaml(), { cpuMillicoresMin: 50, cpuMillicoresMax: 500, memoryMiBMin: 16, memoryMiBMax: 64 }],
      [
        yaml({ 8: "    min: 0.1", 9: '    max: "1.25"', 11: "    min: 1Gi", 12: "    max: 2.5Gi" }),
        { cpuMillicoresMin: 100, cpuMillicoresMax: 1250, memoryMiBMin: 1024, memoryMiBMax: 2560 },
      ],
    ];
    cases.forEach(([text, band], index) => {
      it(`gives integer millicores and MiB (case ${index + 1})`, () => {
        const manifest = parseManifest(text);
        expect(resourceBand(manifest)).to.deep.equal(band);
        expect(resourceBand(toPublishedManifest(manifest, { "linux/amd64": CID_A }))).to.deep.equal(band);
      });
    });
  });

  describe("canonical manifest", () => {
    const orderA = [
      "name: app",
      'version: "1.2.3"',
      "images: { linux/arm64: { ref: app:1 }, linux/amd64: { tar: ./app.tar } }",
      "resources: { cpu: { min: 0.25, max: 1 }, memory: { min: 32Mi, max: 1Gi } }",
      "env: { B: b, A: a }",
      "ports: [{ containerPort: 9000, protocol: udp }, { containerPort: 80 }]",
      "requiredLabels: [zone=z1, region=eu]",
      "writablePaths: [/var/tmp, { path: /tmp, size: 8Mi }]",
    ].join("\n");
    const orderB = [
      "writablePaths:",
      "  - path: /tmp/",
      "    size: 8Mi",
      "  - { path: /var/tmp, size: 16Mi }",
      "requiredLabels: [region=eu, zone=z1]",
      "ports:",
      "  - { protocol: tcp, containerPort: 80 }",
      "  - { containerPort: 9000, protocol: udp }",
      "env:",
      "  A: a",
      "  B: b",
      "resources:",
      "  memory: { max: 1024Mi, min: 32Mi }",
      '  cpu: { max: "1000m", min: "250m" }',
      "images:",
      "  linux/amd64: { ref: other:2 }",
      "  linux/arm64: { tar: ./arm.tar }",
      "restartPolicy: on-failure",
      "replicas: 1",
      'version: "1.2.3"',
      "schemaVersion: 1",
      "name: app",
    ].join("\n");
    const cids = { "linux/amd64": CID_A, "linux/arm64": CID_V0 };

    it("gives the same bytes for the same manifest written in another order and style", () => {
      const a = canonicalManifestBytes(parseManifest(orderA), cids);
      const b = canonicalManifestBytes(parseManifest(orderB), {
        "linux/arm64": CID_V0,
        "linux/amd64": CID_A,
      });
      expect(Buffer.from(a).toString("hex")).to.equal(Buffer.from(b).toString("hex"));
      expect(new TextDecoder().decode(a)).to.equal(canonicalManifest(parseManifest(orderA), cids));
    });

    it("is sorted, whitespace-free JSON without local-only fields", () => {
      const json = canonicalManifest(parseManifest(orderA), cids);
      expect(json).to.equal(stableStringify(JSON.parse(json)));
      expect(json).not.to.match(/\s/);
      expect(json).not.to.include("app.tar");
      expect(json).not.to.include('"ref"');
      expect(json).not.to.include('"tar"');
      const published = JSON.parse(json);
      expect(published.schemaVersion).to.equal(1);
      expect(published.images).to.deep.equal({
        "linux/amd64": { cid: CID_A },
        "linux/arm64": { cid: CID_V0 },
      });
      expect(published.resources).to.deep.equal({
        cpu: { min: "250m", max: "1000m" },
        memory: { min: "32Mi", max: "1Gi" },
      });
      expect(published.ports).to.deep.equal([
        { containerPort: 80, protocol: "tcp" },
        { containerPort: 9000, protocol: "udp" },
      ]);
      expect(published.requiredLabels).to.deep.equal(["region=eu", "zone=z1"]);
      expect(published.writablePaths).to.deep.equal([
        { path: "/tmp", size: "8Mi" },
        { path: "/var/tmp", size: "16Mi" },
      ]);
    });

    it("changes when the content changes", () => {
      const a = canonicalManifest(parseManifest(yaml()), { "linux/amd64": CID_A });
      const b = canonicalManifest(parseManifest(yaml({ 9: "    max: 501m" })), { "linux/amd64": CID_A });
      const c = canonicalManifest(parseManifest(yaml()), { "linux/amd64": CID_V0 });
      expect(new Set([a, b, c]).size).to.equal(3);
    });

    it("round-trips: canonical bytes validate and re-canonicalize to the same bytes", () => {
      for (const text of [
        yaml(),
        orderA,
        FULL_EXAMPLE_MANIFEST,
        readFileSync(join(ROOT, "apps/demo-web/shoal.yaml"), "utf8"),
      ]) {
        const manifest = parseManifest(text);
        const imageCids = Object.fromEntries(Object.keys(manifest.images).map((p) => [p, CID_A]));
        const bytes = canonicalManifestBytes(manifest, imageCids);
        const validated = validateCanonicalManifest(bytes, { requireCanonicalBytes: true });
        expect(validated).to.deep.equal(toPublishedManifest(manifest, imageCids));
        expect(stableStringify(validated)).to.equal(new TextDecoder().decode(bytes));
        expect(validateCanonicalManifest(JSON.parse(new TextDecoder().decode(bytes)))).to.deep.equal(
          validated,
        );
      }
    });

    it("renders the documented example with the documented CIDs", () => {
      expect(() =>
        canonicalManifest(parseManifest(FULL_EXAMPLE_MANIFEST), EXAMPLE_IMAGE_CIDS),
      ).not.to.throw();
    });

    const badCids: { name: string; cids: Record<string, string>; message: string }[] = [
      {
        name: "a platform without a CID",
        cids: {},
        message:
          'image CIDs: images["linux/amd64"] has no image CID; pass a CID for every platform of the manifest',
      },
      {
        name: "a CID for a platform the manifest lacks",
        cids: { "linux/amd64": CID_A, "linux/arm64": CID_A },
        message: `image CIDs: images["linux/arm64"]: "${CID_A}" is a CID for a platform the manifest does not list; platforms of this manifest: linux/amd64`,
      },
      {
        name: "a string that is not a CID",
        cids: { "linux/amd64": "not-a-cid" },
        message:
          'canonical manifest: images["linux/amd64"].cid: "not-a-cid" is not an IPFS CID; use a CIDv0 ("Qm...", 46 characters) or a base32 CIDv1 ("bafy...")',
      },
    ];
    for (const c of badCids) {
      it(`refuses ${c.name}`, () => {
        const manifest = parseManifest(yaml());
        expect(() => canonicalManifest(manifest, c.cids))
          .to.throw(ManifestError)
          .with.property("metaMessages")
          .that.deep.equals([c.message]);
      });
    }
  });

  describe("validateCanonicalManifest: bad published manifests", () => {
    const good = () =>
      JSON.parse(canonicalManifest(parseManifest(yaml()), { "linux/amd64": CID_A })) as Record<
        string,
        unknown
      >;
    const cases: { name: string; input: () => unknown; message: string; count?: number }[] = [
      {
        name: "bytes that are not JSON",
        input: () => new TextEncoder().encode("{not json"),
        message: "published manifest: ",
      },
      {
        name: "a newer schema version",
        input: () => ({ ...good(), schemaVersion: 2 }),
        message: "published manifest: schemaVersion: 2 is not allowed; use 1",
      },
      {
        name: "a local image ref instead of a CID",
        input: () => ({ ...good(), images: { "linux/amd64": { ref: "shoal/demo-web:1.0.0" } } }),
        message:
          'published manifest: images["linux/amd64"].cid is missing; it is required: a CIDv0 ("Qm...", 46 characters) or a base32 CIDv1 ("bafy...")',
        count: 2, // and: images["linux/amd64"].ref is not a known key
      },
      {
        name: "a missing default field",
        input: () => {
          const m = good();
          delete m.replicas;
          return m;
        },
        message: "published manifest: replicas is missing; it is required: an integer from 1 to 1000",
      },
      {
        name: "a refused key smuggled in",
        input: () => ({ ...good(), privileged: true }),
        message: "published manifest: privileged is not a known key; allowed keys here: ",
      },
      {
        name: "min above max",
        input: () => ({
          ...good(),
          resources: { cpu: { min: "900m", max: "500m" }, memory: { min: "16Mi", max: "64Mi" } },
        }),
        message:
          'published manifest: resources.cpu.min: "900m" is more than resources.cpu.max ("500m"); min must be at most max',
      },
      {
        name: "an escape sequence in an env value (a worker logs what it refuses)",
        input: () => ({ ...good(), env: { A: "\u001b]0;pwned\u0007" } }),
        message:
          'published manifest: env.A: "\\u001b]0;pwned\\u0007" contains the control character U+001B (ESC) at index 0',
      },
      {
        name: "a probe aimed at the metadata service",
        input: () => ({
          ...good(),
          ports: [{ containerPort: 80, protocol: "tcp" }],
          healthCheck: {
            httpGet: { port: 80, path: "//169.254.169.254/" },
            intervalSeconds: 10,
            timeoutSeconds: 3,
            retries: 3,
            startPeriodSeconds: 0,
          },
        }),
        message:
          'published manifest: healthCheck.httpGet.path: "//169.254.169.254/" is a network-path reference (//host/...) to 169.254.169.254',
      },
      {
        name: "more bytes than workers fetch",
        input: () => new Uint8Array(MAX_MANIFEST_BYTES + 1),
        message: "published manifest: (manifest) is 262145 bytes; workers accept at most 262144 bytes",
      },
      {
        name: "nesting that would overflow the validator's stack",
        input: () => `${"[".repeat(100_000)}${"]".repeat(100_000)}`,
        message: "published manifest: (manifest) nests more than 32 levels deep",
      },
    ];
    for (const c of cases) {
      it(`refuses ${c.name}`, () => {
        let error: unknown;
        try {
          validateCanonicalManifest(c.input());
        } catch (e) {
          error = e;
        }
        expect(error).to.be.instanceOf(ManifestError);
        const lines = messageLines(error as ManifestError);
        expect(lines).to.have.length(c.count ?? 1);
        expect(
          lines.some((line) => line.startsWith(c.message)),
          lines.join("\n"),
        ).to.equal(true);
      });
    }

    it("refuses valid but non-canonical bytes when asked to", () => {
      const pretty = JSON.stringify(good(), null, 2);
      expect(() => validateCanonicalManifest(pretty)).not.to.throw();
      expect(() => validateCanonicalManifest(pretty, { requireCanonicalBytes: true })).to.throw(
        ManifestError,
        "is valid but not in canonical form",
      );
    });
  });

  describe("schemas and docs", () => {
    function propertiesWithoutDescription(node: unknown, path: string, out: string[]): string[] {
      if (Array.isArray(node))
        node.forEach((item, i) => propertiesWithoutDescription(item, `${path}[${i}]`, out));
      else if (typeof node === "object" && node !== null) {
        const record = node as Record<string, unknown>;
        if (typeof record.properties === "object" && record.properties !== null) {
          for (const [key, value] of Object.entries(
            record.properties as Record<string, Record<string, unknown>>,
          )) {
            const described =
              typeof value.description === "string" ||
              (typeof value.$ref === "string" && resolves(value.$ref));
            if (!described) out.push(`${path}.properties.${key}`);
          }
        }
        for (const [key, value] of Object.entries(record))
          propertiesWithoutDescription(value, `${path}.${key}`, out);
      }
      return out;
    }
    function resolves(ref: string): boolean {
      let target: unknown = manifestSchema;
      for (const part of ref
        .slice(ref.indexOf("#") + 1)
        .split("/")
        .slice(1))
        target = (target as Record<string, unknown> | undefined)?.[part];
      return typeof (target as Record<string, unknown> | undefined)?.description === "string";
    }

    it("describes every property of both schemas", () => {
      expect(propertiesWithoutDescription(manifestSchema, "manifest", [])).to.deep.equal([]);
      expect(propertiesWithoutDescription(publishedManifestSchema, "published", [])).to.deep.equal([]);
    });

    it("keeps docs/manifest.md up to date (npx ts-node scripts/render-manifest-docs.ts)", async () => {
      expect(
        readFileSync(DOCS_PATH, "utf8") === (await renderManifestDocs()),
        "docs/manifest.md is stale; run npx ts-node scripts/render-manifest-docs.ts",
      ).to.equal(true);
    });
  });
});
