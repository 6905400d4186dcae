/**
 * The worker's one supervision primitive: waiting on an AbortSignal, abortable sleeps, backoff with
 * jitter, and the loop that runs a step again and again under a restart policy. Services and
 * adapters use these instead of their own timers and try/catch loops.
 *
 * Why `onAbort` exists: every loop and request of the worker waits on the process's one long-lived
 * signal. `signal.addEventListener("abort", ...)` per wait puts one listener per concurrent wait on
 * that signal (the bridge publishes up to 1,000 events at once; each publish waited on the signal),
 * and Node warns at 11 ("MaxListenersExceededWarning: Possible EventTarget memory leak detected").
 * Here a signal carries at most one listener from this module, however many callers wait on it, and
 * none once the last of them is done.
 */
import { ShoalError, isRetryable } from "../errors";

interface Waiters {
  readonly callbacks: Set<() => void>;
  readonly listener: () => void;
}

const waiting = new WeakMap<AbortSignal, Waiters>();

/**
 * Calls `callback` once when `signal` aborts (at once when it already has); returns the function
 * that cancels the call. Cancel it when the wait ends: that is what keeps the signal clean.
 */
export function onAbort(signal: AbortSignal | undefined, callback: () => void): () => void {
  if (signal === undefined) return () => undefined;
  if (signal.aborted) {
    callback();
    return () => undefined;
  }
  let waiters = waiting.get(signal);
  if (waiters === undefined) {
    const callbacks = new Set<() => void>();
    const listener = () => {
      waiting.delete(signal);
      for (const call of [...callbacks]) call();
      callbacks.clear();
    };
    waiters = { callbacks, listener };
    waiting.set(signal, waiters);
    signal.addEventListener("abort", listener, { once: true });
  }
  // A wrapper of its own: the same callback registered twice is two waits, cancelled one by one.
  const entry = () => callback();
  const own = waiters;
  own.callbacks.add(entry);
  return () => {
    if (!own.callbacks.delete(entry) || own.callbacks.size > 0) return;
    if (waiting.get(signal) === own) waiting.delete(signal);
    signal.removeEventListener("abort", own.listener);
  };
}

/**
 * Waits `ms` milliseconds, or less when the signal aborts or `wake` (if given) is called. Resolves
 * true when the full time passed, false when cut short. Never rejects.
 */
export function sleep(
  ms: number,
  signal?: AbortSignal,
  options: { onWake?: (wake: () => void) => void } = {},
): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    let off = () => {};
    const timer = setTimeout(() => {
      off();
      resolve(true);
    }, ms);
    const cut = () => {
      clearTimeout(timer);
      off();
      resolve(false);
    };
    off = onAbort(signal, cut);
    options.onWake?.(cut);
  });
}

/** Like `sleep`, but rejects with the signal's reason when it aborts (for callers that unwind). */
export async function sleepOrThrow(ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  if (!(await sleep(ms, signal))) signal?.throwIfAborted();
}

/** Resolves or rejects with `promise`, or rejects with the signal's reason as soon as it aborts. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const off = onAbort(signal, () => reject(signal.reason));
    promise.then(resolve, reject).finally(off);
  });
}

export interface BackoffOptions {
  /** First delay (default 500 ms). */
  initialMs?: number;
  /** Ceiling of the delay (default 30 s). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Fraction of the delay drawn at random and taken off, so workers restarted together spread out (default 0.2). */
  jitter?: number;
}

/** The delay before retry `attempt` (1 = the first retry): exponential, capped, with jitter. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random = Math.random): number {
  const { initialMs = 500, maxMs = 30_000, factor = 2, jitter = 0.2 } = options;
  const base = Math.min(maxMs, initialMs * factor ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.round(base * (1 - jitter * random()));
}

/**
 * Retries `attempt` while it fails with a retryable error, with backoff; rethrows a fatal error at
 * once. Resolves undefined when the signal aborts first.
 */
export async function retry<T>(
  what: string,
  attempt: (n: number) => Promise<T>,
  options: {
    signal?: AbortSignal;
    backoff?: BackoffOptions;
    /** Which errors to retry (default: ShoalError marked retryable). */
    retryable?: (error: unknown) => boolean;
    onRetry?: (info: { what: string; attempt: number; delayMs: number; error: unknown }) => void;
  } = {},
): Promise<T | undefined> {
  const { signal, retryable = isRetryable } = options;
  for (let n = 1; !signal?.aborted; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (signal?.aborted) return undefined;
      if (!retryable(error)) throw error;
      const delayMs = backoffDelay(n, options.backoff);
      options.onRetry?.({ what, attempt: n, delayMs, error });
      await sleep(delayMs, signal);
    }
  }
  return undefined;
}

/** What a supervised loop does when a step throws. */
export type LoopPolicy =
  /** Log and run the next step after the interval; the loop never dies of a step. */
  | "always"
  /** Retry retryable errors with backoff; a fatal error ends the loop (and the worker). */
  | "on-retryable";

export interface LoopOptions {
  /** Time between two steps (ms). */
  intervalMs: number;
  signal: AbortSignal;
  policy: LoopPolicy;
  backoff?: BackoffOptions;
  /** Called for every failed step that the policy retries. */
  onError?: (info: {
    loop: string;
    error: unknown;
    retryable: boolean;
    attempt: number;
    delayMs: number;
  }) => void;
}

export interface Loop {
  /** Settles when the signal aborts (resolves) or a fatal error ends the loop (rejects with a LoopError). */
  readonly done: Promise<void>;
  /** Runs the next step now instead of after the interval (a step under way finishes first). */
  poke(): void;
}

/** A loop that stopped on a fatal error; `cause` is the error, `loop` the loop's name. */
export class LoopError extends ShoalError {
  override name = "LoopError";
  constructor(
    readonly loop: string,
    cause: unknown,
  ) {
    // The cause's whole message (a ShoalError's details would drop its short message).
    super(`the ${loop} loop stopped on a fatal error`, {
      cause,
      details: cause instanceof Error ? cause.message : String(cause),
    });
  }
}

/**
 * Runs `step` every `intervalMs` (sooner when poked) until the signal aborts. A failed step is
 * retried after a backoff delay; with policy "on-retryable" a fatal error ends the loop instead.
 */
export function loop(name: string, step: () => Promise<void>, options: LoopOptions): Loop {
  const { signal, intervalMs, policy } = options;
  let wake: (() => void) | undefined;
  let poked = false;
  let failures = 0;
  const done = (async () => {
    while (!signal.aborted) {
      poked = false;
      let delayMs = intervalMs;
      try {
        await step();
        failures = 0;
      } catch (error) {
        if (signal.aborted) break;
        const retryable = isRetryable(error);
        if (policy === "on-retryable" && !retryable) throw new LoopError(name, error);
        failures++;
        delayMs = Math.max(intervalMs, backoffDelay(failures, options.backoff));
        options.onError?.({ loop: name, error, retryable, attempt: failures, delayMs });
      }
      if (poked && failures === 0) continue;
      await sleep(delayMs, signal, { onWake: (w) => (wake = w) });
      wake = undefined;
    }
  })();
  return {
    done,
    poke() {
      poked = true;
      wake?.();
    },
  };
}

/**
 * Waits for every loop; the first one to fail aborts the others (through `stop`) and its error is
 * rethrown once all have settled, so a dead loop never leaves the process running without it.
 */
export async function superviseAll(
  loops: ReadonlyArray<{ name: string; done: Promise<unknown> }>,
  stop: (cause: unknown) => void,
): Promise<void> {
  let first: unknown;
  let failed = false;
  await Promise.all(
    loops.map(({ name, done }) =>
      done.catch((error: unknown) => {
        if (!failed) {
          failed = true;
          first = error instanceof LoopError ? error : new LoopError(name, error);
          stop(first);
        }
      }),
    ),
  );
  if (failed) throw first;
}
