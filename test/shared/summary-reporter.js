// Mocha's spec reporter plus one closing line in the plain form CI reads from any runner:
// "tests: N passed, N failed, N skipped, N not run (a hook failed), N hooks failed".
//
// Two things mocha's own summary hides, and this one does not:
// - a failed `before`/`beforeEach` hook counts as one failure, and the tests it guarded are not
//   reported at all: they are counted here as "not run" (total minus what passed, failed or
//   was skipped), so 40 tests lost behind one hook do not read as 1 failure;
// - Hardhat's test task sets the exit status to the failure count, which the OS takes modulo
//   256: 256 failures would exit 0. Any failure makes the exit status 1 here, set in an `exit`
//   listener so it wins over whatever the task set before.
"use strict";
const Mocha = require("mocha");

const { EVENT_RUN_END, EVENT_TEST_FAIL } = Mocha.Runner.constants;

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    let testsFailed = 0;
    let hooksFailed = 0;
    runner.on(EVENT_TEST_FAIL, (test) => {
      if (test.type === "hook") hooksFailed++;
      else testsFailed++;
    });
    runner.once(EVENT_RUN_END, () => {
      const { passes, pending } = runner.stats;
      // runner.total is the number of tests selected (after --grep) when the run started.
      const notRun = Math.max(0, runner.total - passes - testsFailed - pending);
      process.stdout.write(
        `\ntests: ${passes} passed, ${testsFailed} failed, ${pending} skipped, ` +
          `${notRun} not run (a hook failed), ${hooksFailed} hooks failed\n`,
      );
      if (testsFailed + hooksFailed + notRun > 0) {
        process.once("exit", () => {
          process.exitCode = 1;
        });
      }
    });
  }
}

module.exports = SummaryReporter;
