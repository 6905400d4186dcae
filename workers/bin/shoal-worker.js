#!/usr/bin/env -S node --max-semi-space-size=2 --max-old-space-size=512
// Entry point of `shoal-worker` (package.json "bin"). Runs the compiled worker (dist/worker, made by
// `npm run build:worker`; `npm start` and `npm test` build it) under plain node: ts-node alone costs
// ~100 MiB of memory a device should not pay. When that build is missing or older than a source file
// (a developer's edit), or when SHOAL_WORKER_FROM_SOURCES=1, it runs the sources through ts-node,
// transpile-only, and says so. SHOAL_WORKER_FROM_SOURCES=0 runs the build whatever its age.
//
// The V8 flags on the first line keep the heap near what the worker really holds (about 35 MiB with 10
// placements): the young generation at 2 x 2 MiB (Node grows it to 2 x 16 MiB), about 35 MiB less
// resident memory at no measurable CPU cost; and an old-generation ceiling of 512 MiB, with which V8
// sizes the heap as on a small machine and lets it grow less between collections (peaks of 150-195
// MiB without it, 124 with it). See bench/results/worker.md. They apply when the file is executed
// (`shoal-worker`, `workers/bin/shoal-worker.js`), not through `node workers/bin/shoal-worker.js`.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "../..");
const compiled = path.join(root, "dist/worker/workers/src/main.js");
// Touched by `npm run build:worker` after every successful tsc run (incremental builds leave unchanged files alone).
const stamp = path.join(root, "dist/worker/.built");

function newestSource(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(file));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, fs.statSync(file).mtimeMs);
  }
  return newest;
}

function entry() {
  let builtAt = 0;
  try {
    builtAt = fs.existsSync(compiled) ? fs.statSync(stamp).mtimeMs : 0;
  } catch {
    // not built
  }
  const sources = ["workers/src", "typechain-types"].map((dir) => path.join(root, dir)).filter(fs.existsSync);
  const asked = process.env.SHOAL_WORKER_FROM_SOURCES === "1";
  if (process.env.SHOAL_WORKER_FROM_SOURCES === "0" && builtAt > 0) return compiled;
  if (!asked && builtAt > 0 && sources.every((dir) => newestSource(dir) <= builtAt)) return compiled;
  const why = asked
    ? "SHOAL_WORKER_FROM_SOURCES=1"
    : builtAt > 0
      ? "dist/worker is older than the sources"
      : "no compiled worker in dist/worker";
  process.stderr.write(
    `shoal-worker: ${why}; running the sources through ts-node (more memory). ` +
      "`npm run build:worker` compiles them.\n",
  );
  require("ts-node").register({ transpileOnly: true, project: path.join(root, "tsconfig.json") });
  return path.join(root, "workers/src/main");
}

const flag = "--max-semi-space-size";
if (
  ![...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)].some((a) => a.startsWith(flag))
) {
  process.stderr.write(
    `shoal-worker: started without ${flag}=2 (run the file itself, not \`node <file>\`): more memory.\n`,
  );
}

require(entry())
  .main(process.argv.slice(2))
  .then((code) => process.exit(code));
