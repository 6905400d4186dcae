import { expect } from "chai";
import { readFileSync } from "fs";
import { join } from "path";
import {
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
  resourceBand,
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

function issuesOf(text: string, source = "shoal.yaml"): ManifestError {
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
        name: "the bounds themselves: 1m..64 cores, 4Mi..64Gi",
        text: yaml({ 8: "    min: 1m", 9: '    max: "64"', 11: "    min: 4Mi", 12: "    max: 64Gi" }),
        check: (m) =>
          expect(resourceBand(m)).to.deep.equal({
            cpuMillicoresMin: 1,
            cpuMillicoresMax: 64000,
            memoryMiBMin: 4,
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
        name: "memory below 4Mi",
        text: yaml({ 11: "    min: 2Mi" }),
        message:
          'shoal.yaml:11: resources.memory.min: "2Mi" is below the minimum; use a memory quantity from 4Mi to 64Gi',
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
          'shoal.yaml:13: replica is not a known key (did you mean "replicas"?); allowed keys here: schemaVersion, name, version, description, images, command, args, env, ports, resources, restartPolicy, replicas, requiredLabels, writablePaths, user, healthCheck',
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
        name: "a duplicate key",
        text: yaml({}, "name: other"),
        message: "shoal.yaml:13: YAML syntax error: Map keys must be unique; fix the YAML syntax",
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
      expect(error.issues[0]!.kind).to.equal("syntax");
    });
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
