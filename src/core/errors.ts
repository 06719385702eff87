/**
 * Every error Bulwark throws extends {@link BulwarkError} and carries a stable string `code`.
 * Use {@link isBulwarkError} rather than `instanceof`: it also recognises errors thrown by a
 * second copy of the package (two versions in one `node_modules` tree).
 */

const BRAND = Symbol.for('bulwark.error');
const NON_RETRYABLE = Symbol.for('bulwark.nonRetryable');

/** The stable codes of the errors Bulwark throws. */
export type BulwarkErrorCode =
  | 'CIRCUIT_OPEN'
  | 'CIRCUIT_ISOLATED'
  | 'TIMEOUT'
  | 'BULKHEAD_FULL'
  | 'RATE_LIMITED'
  | 'CANCELLED'
  | 'HEDGE_FAILED'
  | 'INVALID_STATE'
  | 'QUEUE_FULL'
  | 'NO_LIVE_WORKERS'
  | 'QUEUE_UNAVAILABLE'
  | 'QUEUE_PAYLOAD_INVALID'
  // engine (src/engine)
  | 'PLAN_INVALID'
  | 'UNKNOWN_TOOL'
  | 'UNKNOWN_TARGET'
  | 'INVALID_PARAMS'
  | 'UNRESOLVED_REFERENCE'
  | 'PATH_ESCAPE'
  | 'HTTP_STATUS'
  | 'RUN_NOT_FOUND'
  | 'RESUME_REFUSED'
  // Fault proxies (bulwark/chaos tcp): the Toxiproxy API's errors, and a bad proxy config file.
  | 'PROXY_BAD_REQUEST'
  | 'PROXY_NOT_FOUND'
  | 'PROXY_EXISTS'
  | 'PROXY_LISTEN'
  | 'TOXIC_NOT_FOUND'
  | 'TOXIC_EXISTS'
  | 'PROXY_CONFIG'
  | 'SERVICE_UNAVAILABLE'
  | 'HISTORY_UNAVAILABLE'
  | 'ALERT_DELIVERY_FAILED'
  | 'ALERT_CONFIG'
  | 'SUPERVISOR_ESCALATED'
  | 'EVENTS_FILE'
  // Later modules add their own codes; a string keeps the guard open to them.
  | (string & {});

/** Base class of every error Bulwark throws. */
export class BulwarkError extends Error {
  override readonly name: string = 'BulwarkError';
  readonly code: BulwarkErrorCode;
  /** `false` when retrying the failed operation cannot help. */
  readonly retryable: boolean;

  constructor(code: BulwarkErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options?.retryable ?? true;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/**
 * An input file — a scenario, plan, experiment or config — that cannot be read, parsed or validated.
 * The file loaders each throw their own subclass (`ScenarioFileError`, `PlanError`, …) with its code.
 */
export class FileProblemsError extends BulwarkError {
  override readonly name: string = 'FileProblemsError';
  /** One line per problem: `file:line:column: path: message` (or `cannot read FILE: reason`). */
  readonly problems: readonly string[];
  /** True when the file could not be read at all (missing, a directory, no permission). */
  readonly unreadable: boolean;
  constructor(code: BulwarkErrorCode, problems: readonly string[], unreadable = false) {
    super(code, problems.join('\n'), { retryable: false });
    this.problems = problems;
    this.unreadable = unreadable;
  }
}

/**
 * True when `e` is an error thrown by Bulwark (from any copy of the package), optionally with the given code.
 * @example
 * if (isBulwarkError(e, 'CIRCUIT_OPEN')) return cachedValue;
 */
export function isBulwarkError(e: unknown, code?: BulwarkErrorCode): e is BulwarkError {
  if (typeof e !== 'object' || e === null) return false;
  if ((e as Record<symbol, unknown>)[BRAND] !== true) return false;
  return code === undefined || (e as { code?: unknown }).code === code;
}

/** Thrown when a circuit breaker is open (or half-open with every trial slot taken). */
export class BrokenCircuitError extends BulwarkError {
  override readonly name = 'BrokenCircuitError';
  constructor(message = 'circuit is open', options?: { cause?: unknown }) {
    super('CIRCUIT_OPEN', message, { ...options, retryable: false });
  }
}

/** Thrown when a circuit breaker was isolated by hand with `isolate()`. */
export class IsolatedCircuitError extends BulwarkError {
  override readonly name = 'IsolatedCircuitError';
  constructor(message = 'circuit is isolated') {
    super('CIRCUIT_ISOLATED', message, { retryable: false });
  }
}

/** Thrown when a timeout policy's deadline passes. */
export class TimeoutError extends BulwarkError {
  override readonly name = 'TimeoutError';
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;
  constructor(timeoutMs: number, message = `operation timed out after ${timeoutMs}ms`) {
    super('TIMEOUT', message);
    this.timeoutMs = timeoutMs;
  }
}

/** Thrown when a bulkhead has no free slot and no room in its queue. */
export class BulkheadRejectedError extends BulwarkError {
  override readonly name = 'BulkheadRejectedError';
  constructor(
    readonly executionSlots: number,
    readonly queueSlots: number,
    message = `bulkhead is full (${executionSlots} executing, ${queueSlots} queued)`,
  ) {
    super('BULKHEAD_FULL', message, { retryable: false });
  }
}

/** Thrown when a rate limiter has no token; `retryAfter` says when one will be free (ms). */
export class RateLimitedError extends BulwarkError {
  override readonly name = 'RateLimitedError';
  constructor(
    readonly retryAfter: number,
    message = `rate limit exceeded; retry after ${Math.ceil(retryAfter)}ms`,
  ) {
    super('RATE_LIMITED', message);
  }
}

/** Thrown when an operation is cancelled through its `AbortSignal`; `cause` is the signal's reason. */
export class CancelledError extends BulwarkError {
  override readonly name = 'CancelledError';
  constructor(cause?: unknown, message = 'operation was cancelled') {
    super('CANCELLED', message, { cause, retryable: false });
  }
}

/** Thrown by `hedge` when every attempt failed; `errors` holds each attempt's error in start order. */
export class HedgeError extends BulwarkError {
  override readonly name = 'HedgeError';
  constructor(readonly errors: readonly unknown[]) {
    super('HEDGE_FAILED', `all ${errors.length} hedged attempts failed`, { cause: errors[0] });
  }
}

/**
 * Marks `error` so that retry policies do not retry it, and returns it.
 * @example
 * throw nonRetryable(new Error('invalid API key'));
 */
export function nonRetryable<E>(error: E): E {
  if (typeof error === 'object' && error !== null) {
    Object.defineProperty(error, NON_RETRYABLE, { value: true, configurable: true });
  }
  return error;
}

/** True when `e` was marked with {@link nonRetryable} or is a Bulwark error with `retryable: false`. */
export function isNonRetryable(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  if ((e as Record<symbol, unknown>)[NON_RETRYABLE] === true) return true;
  return isBulwarkError(e) && (e as BulwarkError).retryable === false;
}
