/**
 * Retry: runs the layers inside it again after a failure, waiting a backoff delay (or the server's
 * Retry-After hint) in between. The pipeline runner drives the loop; this file only decides whether
 * and when to try again.
 */
import type { Duration } from '../core/duration.js';
import { isBulwarkError, isNonRetryable } from '../core/errors.js';
import type { EventSink, SourceEvents } from '../core/events.js';
import type { Random } from '../core/random.js';
import type { Runtime } from '../core/runtime.js';
import { type Backoff, backoff as backoffs, isBackoff } from './backoff.js';
import { CANCELLED, FAILURE } from './call-event.js';
import { type Scope, waitInScope } from './context.js';
import { commonOptions, durationOption, functionOption, intOption, invalid, knownKeys } from './options.js';
import type { PolicyOptions, RetryLoop, Stage } from './policy.js';
import { BasePolicy } from './runner.js';

/** What `onRetry` is told before each wait. */
export interface RetryInfo {
  /** The attempt that just failed (1 for the first); the next one is `attempt + 1`. */
  readonly attempt: number;
  /** How long retry waits before the next attempt, in ms. */
  readonly delayMs: number;
  /** The error the attempt failed with, or the result `retryOnResult` rejected. */
  readonly error: unknown;
}

export interface RetryOptions extends PolicyOptions {
  /** Attempts in all, counting the first; `Infinity` retries until success or cancellation. @defaultValue `3` */
  maxAttempts?: number;
  /** The wait before each retry. @defaultValue `backoff.exponential({ initial: '100ms', max: '30s' }).withJitter('full')` */
  backoff?: Backoff;
  /** The longest single wait, Retry-After hints included. @defaultValue `'30s'` */
  maxDelay?: Duration;
  /**
   * Which errors to retry. Never asked about a `BrokenCircuitError`, `BulkheadRejectedError`,
   * `CancelledError` or an error marked with `nonRetryable()`: those are never retried (see `retryNonRetryable`).
   * @defaultValue every error
   */
  retryOn?: (error: unknown) => boolean;
  /** Results to retry like failures; when attempts run out the last result is returned. @defaultValue none */
  retryOnResult?: (result: unknown) => boolean;
  /** Also retry (and ask `retryOn` about) errors that say retrying cannot help. @defaultValue `false` */
  retryNonRetryable?: boolean;
  /** Called before each wait, after the `retry` event. If it throws, retrying stops and the call rejects with that error. */
  onRetry?: (info: RetryInfo) => void;
}

const OPTION_KEYS = [
  'maxAttempts',
  'backoff',
  'maxDelay',
  'retryOn',
  'retryOnResult',
  'retryNonRetryable',
  'onRetry',
] as const;

const DEFAULT_BACKOFF = backoffs.exponential({ initial: '100ms', max: '30s' }).withJitter('full');
const DEFAULT_MAX_DELAY_MS = 30_000;
const RESOLVED = Promise.resolve();

/** The loop's state between attempts: the backoff step reached and the wait before the next attempt. */
class RetryState {
  constructor(
    readonly delay: number,
    readonly backoff: Backoff,
  ) {}
}

interface ResponseLike {
  readonly headers: { get(name: string): string | null };
}

function isResponseLike(value: unknown): value is ResponseLike {
  if (typeof value !== 'object' || value === null) return false;
  const headers = (value as { headers?: unknown }).headers;
  return (
    typeof headers === 'object' &&
    headers !== null &&
    typeof (headers as { get?: unknown }).get === 'function'
  );
}

const DELTA_SECONDS = /^\d+$/;
// The three HTTP-date forms (RFC 9110 §5.6.7). Checked first because Date.parse also takes strings like '5'.
const IMF_FIXDATE = /^[a-z]{3}, \d{2} [a-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/i;
const RFC850_DATE = /^[a-z]{6,9}, \d{2}-[a-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/i;
const ASCTIME_DATE = /^[a-z]{3} [a-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/i;

/** The wait a `Retry-After` header asks for, in ms (delta-seconds or an HTTP-date), or undefined. */
function headerHint(response: ResponseLike, now: number): number | undefined {
  const header = response.headers.get('retry-after');
  if (header === null) return undefined;
  const text = header.trim();
  if (DELTA_SECONDS.test(text)) return Number(text) * 1000;
  let date: number;
  if (IMF_FIXDATE.test(text) || RFC850_DATE.test(text)) date = Date.parse(text);
  else if (ASCTIME_DATE.test(text)) date = Date.parse(`${text} GMT`);
  else return undefined;
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** A server's (or rate limiter's) say on when to try again: `retryAfter` ms, or a `Retry-After` header. */
function retryAfterHint(outcome: unknown, isResult: boolean, clock: { now(): number }): number | undefined {
  if (typeof outcome !== 'object' || outcome === null) return undefined;
  if (isResult) return isResponseLike(outcome) ? headerHint(outcome, clock.now()) : undefined;
  const retryAfter = (outcome as { retryAfter?: unknown }).retryAfter;
  if (typeof retryAfter === 'number' && retryAfter >= 0) return retryAfter;
  const response = (outcome as { response?: unknown }).response;
  return isResponseLike(response) ? headerHint(response, clock.now()) : undefined;
}

/** The outcome (its index in `CALL_OUTCOMES`) of a call that failed with `error`. */
function outcomeOf(error: unknown, scope: Scope): number {
  return scope.isAborted() || isBulwarkError(error, 'CANCELLED') ? CANCELLED : FAILURE;
}

/**
 * Retries a call that failed, waiting a backoff delay between attempts. Build it with {@link retry}.
 */
export class RetryPolicy extends BasePolicy {
  readonly kind = 'retry';
  readonly name: string;
  readonly stage: Stage;
  /** Attempts in all, counting the first. */
  readonly maxAttempts: number;
  /** The schedule of waits, from its initial step. */
  readonly backoff: Backoff;
  /** The longest single wait, in ms. */
  readonly maxDelay: number;

  private readonly events: EventSink;
  private readonly calls: SourceEvents;
  private readonly clock: Runtime['clock'];
  private readonly random: Random;
  private readonly retryOn: ((error: unknown) => boolean) | undefined;
  private readonly retryNonRetryable: boolean;
  private readonly onRetry: ((info: RetryInfo) => void) | undefined;
  private readonly loop: RetryLoop<RetryState, number | undefined>;

  constructor(options: RetryOptions = {}) {
    super();
    const where = 'retry';
    knownKeys(where, options, OPTION_KEYS);
    const { name, runtime } = commonOptions('retry', options);
    this.name = name;
    this.events = runtime.events;
    this.calls = runtime.events.source(name, 'retry');
    this.clock = runtime.clock;
    this.random = runtime.random.fork(`retry:${name}`);
    this.maxAttempts = intOption(where, 'maxAttempts', options.maxAttempts, 3, 1);
    if (options.backoff !== undefined && !isBackoff(options.backoff)) {
      throw invalid(
        where,
        'backoff',
        options.backoff,
        "a Backoff (e.g. backoff.exponential({ initial: '100ms' }))",
      );
    }
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.maxDelay = durationOption(where, 'maxDelay', options.maxDelay, DEFAULT_MAX_DELAY_MS);
    this.retryOn = functionOption(where, 'retryOn', options.retryOn);
    const retryOnResult = functionOption<(result: unknown) => boolean>(
      where,
      'retryOnResult',
      options.retryOnResult,
    );
    const retryNonRetryable = options.retryNonRetryable ?? false;
    if (typeof retryNonRetryable !== 'boolean') {
      throw invalid(where, 'retryNonRetryable', retryNonRetryable, 'a boolean');
    }
    this.retryNonRetryable = retryNonRetryable;
    this.onRetry = functionOption(where, 'onRetry', options.onRetry);

    this.loop = {
      afterFailure: (outcome, isResult, attempt, state, scope) =>
        this.afterFailure(outcome, isResult, attempt, state, scope),
      retryResult: retryOnResult,
      wait: (delay, scope) => this.wait(delay, scope),
      // The runner times the calls and reports them (a result retried until attempts ran out is a failure).
      reports: { calls: this.calls, clock: this.clock, failedAs: (scope, error) => outcomeOf(error, scope) },
    };
    this.stage = { kind: 'loop', loop: this.loop as RetryLoop };
    if (this.events.wants('policy.created')) {
      this.events.emit({ type: 'policy.created', source: name, at: this.clock.now(), kind: 'retry' });
    }
  }

  private afterFailure(
    outcome: unknown,
    isResult: boolean,
    attempt: number,
    state: RetryState | undefined,
    scope: Scope,
  ): RetryState | undefined {
    if (scope.isAborted()) return undefined;
    if (!isResult) {
      const retryOn = this.retryOn;
      if (
        (!this.retryNonRetryable && isNonRetryable(outcome)) ||
        (retryOn !== undefined && !retryOn(outcome))
      ) {
        return undefined;
      }
    }
    const events = this.events;
    if (attempt >= this.maxAttempts) {
      if (!isResult && events.wants('retry.exhausted')) {
        events.emit({
          type: 'retry.exhausted',
          source: this.name,
          at: this.clock.now(),
          attempts: attempt,
          error: outcome,
        });
      }
      return undefined;
    }
    const step = (state === undefined ? this.backoff : state.backoff).next(this.random);
    const hint = retryAfterHint(outcome, isResult, this.clock);
    const wanted = hint ?? step.delay;
    // A hand-written backoff may return anything; NaN or a negative delay means "no wait".
    const delay = wanted > 0 ? Math.min(wanted, this.maxDelay) : 0;
    if (events.wants('retry')) {
      events.emit({
        type: 'retry',
        source: this.name,
        at: this.clock.now(),
        attempt,
        delayMs: delay,
        error: outcome,
      });
    }
    this.onRetry?.({ attempt, delayMs: delay, error: outcome });
    return new RetryState(delay, step);
  }

  private wait(delay: number, scope: Scope): Promise<void> {
    if (delay > 0) return waitInScope(this.clock, delay, scope);
    return scope.isAborted() ? Promise.reject(scope.reason) : RESOLVED;
  }
}

/**
 * Retries a call that failed: up to `maxAttempts` attempts in all, waiting a backoff delay (or the
 * server's Retry-After hint, capped by `maxDelay`) between them. Cancelling the call's signal stops the wait.
 *
 * @example
 * const policy = retry({ maxAttempts: 5, backoff: backoff.exponential({ initial: '200ms', max: '10s' }) });
 * const body = await policy.execute(async ({ signal }) => (await fetch(url, { signal })).json());
 */
export function retry(options?: RetryOptions): RetryPolicy {
  return new RetryPolicy(options);
}
