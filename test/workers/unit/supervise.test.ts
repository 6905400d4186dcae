import { expect } from "chai";
import { getEventListeners } from "node:events";
import { ShoalError } from "../../../workers/src";
import { abortable, backoffDelay, loop, LoopError, onAbort, sleep, superviseAll } from "../../../workers/src";

const listeners = (signal: AbortSignal) => getEventListeners(signal, "abort").length;

describe("supervise: waits on one long-lived signal", () => {
  it("test_onAbort_addsOneListenerHoweverManyWait_andNoneAfter", () => {
    const controller = new AbortController();
    const offs = Array.from({ length: 50 }, () => onAbort(controller.signal, () => undefined));
    expect(listeners(controller.signal)).to.equal(1);
    for (const off of offs) off();
    expect(listeners(controller.signal)).to.equal(0);
  });

  it("test_onAbort_callsEveryWaiterOnce", () => {
    const controller = new AbortController();
    let calls = 0;
    for (let i = 0; i < 20; i++) onAbort(controller.signal, () => calls++);
    controller.abort();
    controller.abort();
    expect(calls).to.equal(20);
    let late = 0;
    onAbort(controller.signal, () => late++);
    expect(late).to.equal(1);
  });

  it("test_sleep_leavesNoListener_after1000Sleeps", async () => {
    const controller = new AbortController();
    await Promise.all(Array.from({ length: 1000 }, () => sleep(1, controller.signal)));
    for (let i = 0; i < 20; i++) await sleep(0, controller.signal);
    expect(listeners(controller.signal)).to.equal(0);
  });

  it("test_sleep_endsEarlyOnAbortAndOnWake", async () => {
    const controller = new AbortController();
    const started = Date.now();
    const slept = sleep(10_000, controller.signal);
    controller.abort();
    expect(await slept).to.equal(false);
    let wake: () => void = () => undefined;
    const woken = sleep(10_000, undefined, { onWake: (w) => (wake = w) });
    wake();
    expect(await woken).to.equal(false);
    expect(Date.now() - started).to.be.lessThan(1000);
  });

  it("test_abortable_rejectsOnAbort_andLeavesNoListener", async () => {
    const controller = new AbortController();
    await Promise.all(Array.from({ length: 30 }, (_, i) => abortable(Promise.resolve(i), controller.signal)));
    expect(listeners(controller.signal)).to.equal(0);
    const never = abortable(new Promise(() => undefined), controller.signal);
    controller.abort(new Error("stop"));
    const error = await never.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as Error).message).to.equal("stop");
  });
});

describe("supervise: backoff and loops", () => {
  it("test_backoffDelay_growsCapsAndJitters", () => {
    const cases: Array<[number, number, number]> = [
      // attempt, random, expected (initial 500, factor 2, max 30 s, jitter 0.2)
      [1, 0, 500],
      [2, 0, 1000],
      [3, 0.5, 1800],
      [10, 0, 30_000],
      [100, 1, 24_000],
    ];
    for (const [attempt, random, expected] of cases) {
      expect(
        backoffDelay(attempt, {}, () => random),
        `attempt ${attempt}`,
      ).to.equal(expected);
    }
  });

  it("test_loop_policyOnRetryable_retriesRetryableAndStopsOnFatal", async () => {
    const controller = new AbortController();
    let steps = 0;
    const errors: boolean[] = [];
    const l = loop(
      "test",
      async () => {
        steps++;
        if (steps < 3) throw new ShoalError("flaky", { retryable: true });
        throw new ShoalError("broken config");
      },
      {
        intervalMs: 1,
        signal: controller.signal,
        policy: "on-retryable",
        backoff: { initialMs: 1, maxMs: 2 },
        onError: ({ retryable }) => errors.push(retryable),
      },
    );
    const error = await l.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(LoopError);
    expect((error as LoopError).loop).to.equal("test");
    expect(((error as LoopError).cause as Error).message).to.equal("broken config");
    expect(errors).to.deep.equal([true, true]);
    expect(listeners(controller.signal)).to.equal(0);
  });

  it("test_superviseAll_firstFatalStopsTheOthers_andIsRethrown", async () => {
    const controller = new AbortController();
    const steady = loop("steady", async () => undefined, {
      intervalMs: 5,
      signal: controller.signal,
      policy: "always",
    });
    const failing = (async () => {
      await sleep(20);
      throw new ShoalError("no contract code at the address");
    })();
    const error = await superviseAll(
      [
        { name: "steady", done: steady.done },
        { name: "chain source", done: failing },
      ],
      (cause) => controller.abort(cause),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(controller.signal.aborted).to.equal(true);
    expect(error).to.be.instanceOf(LoopError);
    expect((error as LoopError).message)
      .to.contain("chain source")
      .and.contain("no contract code");
  });
});
