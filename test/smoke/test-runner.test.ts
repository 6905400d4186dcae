// The test runner itself, as `npm test` runs it (Hardhat's test task with the project's mocha
// settings and summary reporter), on small fixture files written to a temporary folder: a run
// with failures must exit 1, say how many tests a failed hook kept from running, and refuse a
// left-over `.only` (issue 13).
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

const ROOT = path.resolve(__dirname, "../..");

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function hardhatTest(file: string): Run {
  const run = spawnSync("npx", ["hardhat", "test", "--no-compile", file], {
    cwd: ROOT,
    encoding: "utf8",
    // Not CI: forbidPending stays off, so only what the fixture does decides the outcome.
    env: { ...process.env, CI: "" },
    timeout: 120_000,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe("test runner: exit status, hook failures and exclusive tests", function () {
  this.timeout(240_000);
  let dir: string;

  before(async function () {
    dir = await mkdtemp(path.join(tmpdir(), "shoal-runner-"));
  });

  after(async function () {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("exits 1 with 256 failures and counts the tests a failed before hook kept from running", async function () {
    // 255 failing tests + 1 failing hook = 256 failures: Hardhat's exit status is the failure
    // count, which the OS would take modulo 256, i.e. 0. Three tests sit behind the hook.
    const file = path.join(dir, "failures.fixture.js");
    await writeFile(
      file,
      [
        `const assert = require("node:assert");`,
        `describe("fixture: a passing test", function () { it("passes", function () {}); });`,
        `describe("fixture: a failing before hook", function () {`,
        `  before(function () { throw new Error("hook broke"); });`,
        `  for (let i = 0; i < 3; i++) it("guarded " + i, function () {});`,
        `});`,
        `describe("fixture: many failures", function () {`,
        `  for (let i = 0; i < 255; i++) it("fails " + i, function () { assert.fail("failure " + i); });`,
        `});`,
      ].join("\n"),
    );
    const run = hardhatTest(file);
    expect(run.stdout).to.include(
      "tests: 1 passed, 255 failed, 0 skipped, 3 not run (a hook failed), 1 hooks failed",
    );
    expect(run.status, run.stderr).to.equal(1);
  });

  it("refuses a left-over .only instead of running only it", async function () {
    const file = path.join(dir, "only.fixture.js");
    await writeFile(
      file,
      [
        `describe("fixture: exclusive", function () {`,
        `  it.only("the only one", function () {});`,
        `  it("another", function () {});`,
        `});`,
      ].join("\n"),
    );
    const run = hardhatTest(file);
    expect(`${run.stdout}\n${run.stderr}`).to.match(/`\.only` forbidden/);
    expect(run.status).to.equal(1);
  });
});
