/**
 * The one base error of Shoal's TypeScript code (workers, tasks, scripts).
 *
 * Modelled on viem's `BaseError`: a one-sentence `shortMessage` for users, optional `details` for
 * the curious, and the original error as `cause`. `retryable` encodes the retry policy in the error
 * itself (as Ponder does), so the one place that retries (the reconciler) never has to guess from
 * message text: bad input is fatal, a flaky network call is retryable.
 */

export interface ShoalErrorOptions {
  /** The error that caused this one, kept for `walk()` and for debuggers. */
  cause?: unknown;
  /** Extra detail shown after the short message; defaults to the cause's message. */
  details?: string;
  /** Lines shown between the short message and the details (one issue per line, for instance). */
  metaMessages?: readonly string[];
  /** True when trying the same thing again later may succeed. Defaults to false. */
  retryable?: boolean;
}

export class ShoalError extends Error {
  override name = "ShoalError";
  readonly shortMessage: string;
  readonly details: string | undefined;
  readonly metaMessages: readonly string[];
  readonly retryable: boolean;

  constructor(shortMessage: string, options: ShoalErrorOptions = {}) {
    const details =
      options.details ??
      (options.cause instanceof Error
        ? options.cause instanceof ShoalError
          ? options.cause.details
          : options.cause.message
        : undefined);
    const metaMessages = options.metaMessages ?? [];
    const message = [
      shortMessage,
      ...(metaMessages.length > 0 ? [metaMessages.join("\n")] : []),
      ...(details !== undefined && details !== "" ? [`Details: ${details}`] : []),
    ].join("\n");
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.shortMessage = shortMessage;
    this.details = details;
    this.metaMessages = metaMessages;
    this.retryable = options.retryable ?? false;
  }

  /**
   * Follows the `cause` chain and returns the first error for which `predicate` holds, or the
   * deepest error when no predicate is given.
   */
  walk(predicate?: (error: unknown) => boolean): unknown {
    return walkCauses(this, predicate);
  }
}

// Bounded: a cause chain is short, and a cycle (a.cause = b, b.cause = a) must not hang the caller.
const MAX_CAUSE_DEPTH = 32;

function walkCauses(start: unknown, predicate?: (error: unknown) => boolean): unknown {
  let current = start;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH; depth++) {
    if (predicate?.(current)) return current;
    const next = current instanceof Error ? current.cause : undefined;
    if (next === undefined) return predicate ? undefined : current;
    current = next;
  }
  return predicate ? undefined : current;
}

/** True when `error` is a Shoal error marked retryable anywhere in its cause chain. */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof ShoalError)) return false;
  return error.walk((e) => e instanceof ShoalError && e.retryable) !== undefined;
}
