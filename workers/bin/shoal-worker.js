#!/usr/bin/env node
// Entry point of `shoal-worker` (package.json "bin"): runs the TypeScript sources through ts-node in
// transpile-only mode (type checking is `npm run lint`'s job, not the device's).
"use strict";
const path = require("node:path");
require("ts-node").register({ transpileOnly: true, project: path.join(__dirname, "../../tsconfig.json") });
require("../src/main")
  .main(process.argv.slice(2))
  .then((code) => process.exit(code));
