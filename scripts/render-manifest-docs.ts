/**
 * Renders docs/manifest.md from the manifest JSON Schemas, so the reference can never drift from
 * what the validator accepts.
 *
 *   npx ts-node scripts/render-manifest-docs.ts           write docs/manifest.md
 *   npx ts-node scripts/render-manifest-docs.ts --check   exit 1 if docs/manifest.md is stale
 */
import { readFileSync, writeFileSync } from "fs";
import { join } from "path";
import { format, resolveConfig } from "prettier";
import {
  MAX_MANIFEST_BYTES,
  MEMORY_MIB_MIN,
  ManifestError,
  canonicalManifest,
  manifestSchema,
  parseManifest,
  publishedManifestSchema,
} from "../workers/src";

export const DOCS_PATH = join(__dirname, "..", "docs", "manifest.md");

/** A manifest using every field; parsed by the unit tests, so it cannot go stale either. */
export const FULL_EXAMPLE_MANIFEST = `# shoal.yaml: every field, with values a small web app might use.
schemaVersion: 1
name: hello-edge
version: "2.1.0"
description: Greets visitors from the nearest edge device
images:
  linux/amd64:
    ref: hello-edge:2.1.0            # a local Docker image, exported by the publish task
  linux/arm64:
    tar: ./dist/hello-edge-arm64.tar # or a docker save tar, relative to this file
command: ["/app/hello"]
args: ["--listen", ":8080"]
env:
  LOG_LEVEL: info
  GREETING: "Hello from the edge"
  WORKERS: "4"                       # values are strings: quote numbers
ports:
  - containerPort: 8080
    protocol: tcp
    name: http
  - containerPort: 5353
    protocol: udp
resources:
  cpu: { min: 100m, max: "1.5" }     # 1.5 cores = 1500m
  memory: { min: 32Mi, max: 256Mi }
restartPolicy: always
replicas: 3
requiredLabels:
  - region=eu-west
  - tier=edge
writablePaths:
  - /tmp                             # 16Mi tmpfs
  - path: /var/cache/hello
    size: 64Mi
user: { uid: 10001, gid: 10001 }
healthCheck:
  httpGet: { port: 8080, path: /healthz }
  intervalSeconds: 10
  timeoutSeconds: 2
  retries: 3
  startPeriodSeconds: 5
`;

/** Example CIDs for the published example (CIDs of empty files, not real images). */
export const EXAMPLE_IMAGE_CIDS = {
  "linux/amd64": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
  "linux/arm64": "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
} as const;

/** A manifest with several mistakes, to show what the errors look like. */
export const BAD_EXAMPLE_MANIFEST = `name: Hello_Edge
version: 2.1
privileged: true
images:
  linux/amd64: { ref: hello-edge:2.1.0 }
resources:
  cpu: { min: 2, max: 500m }
  memory: { min: 64Mi, max: 512M }
replica: 3
volumes: ["/:/host"]
`;

type Schema = Record<string, unknown>;

interface Row {
  field: string;
  type: string;
  required: boolean;
  defaultValue: string;
  description: string;
  allowed: string;
}

function isSchema(value: unknown): value is Schema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Resolves `$ref`s (all point into manifest.schema.json) and keeps sibling keywords over the target. */
function resolve(node: unknown): Schema {
  if (!isSchema(node)) return {};
  if (typeof node.$ref !== "string") return node;
  let target: unknown = manifestSchema;
  for (const part of node.$ref
    .slice(node.$ref.indexOf("#") + 1)
    .split("/")
    .slice(1)) {
    target = isSchema(target) ? target[part] : undefined;
  }
  const { $ref: _ref, ...siblings } = node;
  return { ...resolve(target), ...siblings };
}

function typeOf(schema: Schema): string {
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => `\`${String(v)}\``).join(" \\| ");
  if (schema.const !== undefined) return `\`${JSON.stringify(schema.const)}\``;
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  return types
    .map((t) => {
      if (t === "array") {
        const items = resolve(schema.items);
        return items.properties ? "list of mappings" : `list of ${typeOf(items)}`;
      }
      if (t === "object") return "mapping";
      return String(t);
    })
    .join(" \\| ");
}

function rows(schema: Schema, prefix: string, out: Row[]): Row[] {
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  for (const [key, raw] of Object.entries(isSchema(schema.properties) ? schema.properties : {})) {
    const property = resolve(raw);
    if (property["x-refused"] !== undefined) continue;
    const field = prefix === "" ? key : `${prefix}.${key}`;
    addRow(field, property, required.has(key), out);
  }
  return out;
}

function addRow(field: string, property: Schema, required: boolean, out: Row[]): void {
  out.push({
    field,
    type: typeOf(property),
    required,
    defaultValue: property.default === undefined ? "" : `\`${JSON.stringify(property.default)}\``,
    description: String(property.description ?? ""),
    allowed: String(property["x-allowed"] ?? ""),
  });
  if (isSchema(property.properties)) rows(property, field, out);
  const items = resolve(property.items);
  if (isSchema(items.properties)) rows(items, `${field}[]`, out);
  if (isSchema(property.additionalProperties)) {
    const value = resolve(property.additionalProperties);
    const keyName =
      isSchema(property.propertyNames) && resolve(property.propertyNames).enum ? "<platform>" : "<NAME>";
    if (isSchema(value.properties)) rows(value, `${field}.${keyName}`, out);
  }
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function table(list: readonly Row[]): string {
  const lines = [
    "| Field | Type | Required | Default | Description | Allowed |",
    "|---|---|---|---|---|---|",
  ];
  for (const row of list) {
    lines.push(
      `| \`${row.field}\` | ${row.type} | ${row.required ? "yes" : ""} | ${row.defaultValue} | ${cell(row.description)} | ${cell(row.allowed)} |`,
    );
  }
  return lines.join("\n");
}

function refusedTable(): string {
  const lines = ["| Key | Why Shoal refuses it |", "|---|---|"];
  for (const [key, raw] of Object.entries(manifestSchema.properties as Record<string, Schema>)) {
    if (typeof raw["x-refused"] === "string") lines.push(`| \`${key}\` | ${cell(raw["x-refused"])} |`);
  }
  return lines.join("\n");
}

function badExampleOutput(): string {
  try {
    parseManifest(BAD_EXAMPLE_MANIFEST, { source: "shoal.yaml" });
  } catch (error) {
    if (error instanceof ManifestError) return error.message;
    throw error;
  }
  throw new Error("BAD_EXAMPLE_MANIFEST unexpectedly parsed");
}

/** The full text of docs/manifest.md, formatted by Prettier like every other file of the repository. */
export async function renderManifestDocs(): Promise<string> {
  const options = (await resolveConfig(DOCS_PATH)) ?? {};
  return format(renderMarkdown(), { ...options, filepath: DOCS_PATH });
}

function renderMarkdown(): string {
  const source = rows(manifestSchema as Schema, "", []);
  const published = canonicalManifest(parseManifest(FULL_EXAMPLE_MANIFEST), EXAMPLE_IMAGE_CIDS);
  return `# The app manifest: shoal.yaml

<!-- Generated by scripts/render-manifest-docs.ts from workers/src/domain/manifest/*.schema.json.
     Do not edit by hand: change the schema, then run npx ts-node scripts/render-manifest-docs.ts
     (--check exits non-zero when this file is stale). -->

${String(manifestSchema.description)}

- Source schema: [\`workers/src/domain/manifest/manifest.schema.json\`](../workers/src/domain/manifest/manifest.schema.json)
  (\`${manifestSchema.$id}\`, JSON Schema draft 2020-12)
- Published schema: [\`workers/src/domain/manifest/published-manifest.schema.json\`](../workers/src/domain/manifest/published-manifest.schema.json)
  (\`${publishedManifestSchema.$id}\`)
- Code: \`parseManifest(text)\`, \`canonicalManifest(manifest, imageCids)\`, \`validateCanonicalManifest(json)\`,
  \`resourceBand(manifest)\` from \`workers/src/domain/manifest\`.

## How every replica runs

Not configurable, so not in the manifest: the root filesystem is read-only, all Linux capabilities
are dropped, \`no-new-privileges\` is set, the container has its own network, PID and IPC
namespaces, CPU and memory are capped by the resource band, and the only writable places are the
size-limited tmpfs mounts listed in \`writablePaths\`. Keys that would weaken this are refused
(see [Refused keys](#refused-keys)); any other unknown key is an error too, so a typo never
silently drops a setting.

Each deployment's replicas on a device share a Docker bridge network of their own: replicas of
other deployments cannot reach them, and they reach each other (docs/worker.md, "Exposure, networks
and health checks").

### Why \`egress\` defaults to \`outbound\`

Docker publishes no ports on an \`internal\` network, the only way it has to cut a container off
from the outside, so \`egress: none\` also means that nothing outside the deployment reaches the
app. A default of \`none\` would therefore leave every app with \`ports\` unreachable and without
endpoints until its developer opted out, which is the opposite of what most apps with ports
are for. \`outbound\` keeps the other tenants out all the same (each deployment has its own
network); an app that needs neither give nor take (a batch job, a worker fed by its own replicas)
should say \`egress: none\`, and a device owner who wants no outbound traffic from any app sets
\`outboundAllowed: false\`, which wins over every manifest.

## Fields

${table(source)}

## Quantities

| Resource | Accepted | Refused | Bounds | On chain |
|---|---|---|---|---|
| CPU | \`"250m"\` (millicores), \`"0.5"\`, \`0.5\`, \`2\` (cores, at most 3 decimals) | \`"250M"\`, \`"0.0005"\`, \`"1.5m"\`, \`"abc"\` | 1m to 64 cores | integer millicores |
| Memory | \`"64Mi"\`, \`"1Gi"\`, \`"1.5Gi"\` (binary units, a whole number of MiB) | \`"512M"\`, \`"1G"\`, \`"64MiB"\`, \`67108864\`, \`"0.5Mi"\` | ${MEMORY_MIB_MIN}Mi (the smallest memory limit Docker accepts) to 64Gi (tmpfs sizes: 1Mi to 1Gi) | integer MiB |

Decimal memory units are refused rather than converted: "512M" is 488.3Mi, and a 5% surprise in a
memory limit shows up as an OOM kill. \`min\` must not exceed \`max\`. The published manifest writes
CPU as millicores (\`"1500m"\`) and memory as \`"<n>Gi"\` when exact, else \`"<n>Mi"\`.

## Refused keys

These keys exist in Docker Compose or Kubernetes, and each would weaken the isolation a device
owner relies on. Shoal refuses them with the reason below (whatever their value) instead of
ignoring them.

${refusedTable()}

## Manifests that could not run, or would not mean what they say

Beyond the fields above, a manifest is refused, with the field, the value and what is allowed, when:

- **It is too large.** Workers fetch at most ${MAX_MANIFEST_BYTES} bytes of published manifest. The
  file is counted in bytes, and the published form again after aliases are expanded and defaults
  written out, so a small file cannot grow past the limit.
- **Its text is not UTF-8.** UTF-16 and UTF-32 (with or without a byte order mark), a UTF-8 byte
  order mark and bytes that are not well-formed UTF-8 are refused with their line; the publish
  task reads the file as bytes, so nothing is silently replaced.
- **It holds control characters.** Raw C0 controls (other than tab and newline), DEL, C1 controls
  and the bidi embeddings, overrides and isolates (U+202A to U+202E, U+2066 to U+2069) are refused
  anywhere in the file, comments included, because they make a file display differently than it
  parses. The same characters written as escapes (\`"\\e[2J"\`, \`"\\u202E"\`) are refused in
  \`env\`, \`command\`, \`args\` and \`healthCheck.exec\`; tab and newline are allowed there.
  \`description\` is one line: no tab or newline either.
- **Its command is empty.** The first entry of \`command\` and \`healthCheck.exec\` is the program
  to run; it cannot be empty or blank.
- **A writable path covers a file Docker manages**: \`/etc/hosts\`, \`/etc/resolv.conf\`,
  \`/etc/hostname\` or anything below them.
- **An HTTP health check could leave its container.** \`healthCheck.httpGet.path\` is a path on the
  container: absolute URLs (\`http://169.254.169.254/...\`), network-path references
  (\`//169.254.169.254/...\`) and backslashes (which URL parsers read as \`/\`) are refused,
  and so are the keys \`host\`, \`scheme\` and \`httpHeaders\` (a Host header) that other
  orchestrators accept: the worker addresses the probe to the container itself, never to another
  host, the device, or a link-local or metadata address.
- **It uses YAML that changes or drops data.** Manifests are read as YAML 1.2. Refused: a
  \`%YAML 1.1\` directive (whose rules read \`yes\` as true, \`0777\` as octal, \`1:30\` as 90); tags
  other than the core ones (\`!!str\`, \`!!int\`, \`!!float\`, \`!!bool\`, \`!!null\`, \`!!map\`,
  \`!!seq\`), such as \`!!omap\` and \`!!set\` (read as empty mappings), \`!!binary\`,
  \`!!timestamp\` and unknown tags (read as plain strings); aliases, lists or mappings as keys; a key
  written twice, also when spelled differently (\`LEVEL\` and \`"LEVEL"\`, \`1\` and \`"1"\`); more
  than one document (\`---\`); nesting deeper than 32 levels, more than 64 flow levels (\`[\`, \`{\`) or
  more than 256 columns of indentation (the parser would run out of memory). Anchors, aliases and
  merge keys (\`<<: *anchor\`) are fine; an issue in a merged key is reported on the line where the
  key is written.

## Full example

\`\`\`yaml
${FULL_EXAMPLE_MANIFEST.trimEnd()}
\`\`\`

## Errors

Every issue is reported at once, one per line, with the YAML line, the field, the value and what is
allowed. For this file:

\`\`\`yaml
${BAD_EXAMPLE_MANIFEST.trimEnd()}
\`\`\`

the publish task prints:

\`\`\`text
${badExampleOutput()}
\`\`\`

## Published manifest (IPFS)

${String(publishedManifestSchema.description)}

Workers validate every manifest they fetch with \`validateCanonicalManifest(bytes)\` against the
published schema, which shares its field definitions with the source schema. The full example
above, with example image CIDs, publishes as this single line:

\`\`\`json
${published}
\`\`\`
`;
}

async function main(argv: readonly string[]): Promise<number> {
  const check = argv.includes("--check");
  const unknown = argv.filter((arg) => arg !== "--check");
  if (unknown.length > 0) {
    console.error(`render-manifest-docs: unknown argument "${unknown[0]}"; use --check or nothing`);
    return 2;
  }
  const expected = await renderManifestDocs();
  if (check) {
    let current = "";
    try {
      current = readFileSync(DOCS_PATH, "utf8");
    } catch {
      // A missing file is stale like any other.
    }
    if (current !== expected) {
      console.error("docs/manifest.md is stale; run: npx ts-node scripts/render-manifest-docs.ts");
      return 1;
    }
    console.log("docs/manifest.md is up to date");
    return 0;
  }
  writeFileSync(DOCS_PATH, expected);
  console.log(`wrote ${DOCS_PATH}`);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
