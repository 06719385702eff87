/**
 * Rate limiter: a token bucket of `burst` tokens, refilled with `rate` tokens per `interval`.
 *
 * The bucket is kept as one number, the time at which it will be full again (`fullAt`), so refill is
 * computed from `clock.now()` when a call arrives and no timer runs while nobody waits. Each token is
 * worth `interval / rate` ms of that time: with whole-millisecond token periods (10/s, 50/s, …) every
 * figure is exact.
 *
 * In `wait` mode the waiting calls form a FIFO queue. A waiter takes its token only when its turn
 * comes, so its place in the queue is its reservation: one clock timer (for the head) serves the whole
 * queue, and a waiter that aborts leaves in O(1) and everyone behind it moves up a token.
 */
import type { Clock, Timer } from '../core/clock.js';
import type { Duration } from '../core/duration.js';
import { RateLimitedError } from '../core/errors.js';
import type { EventSink, SourceEvents } from '../core/events.js';
import { CANCELLED, FAILURE, REJECTED } from './call-event.js';
import type { Call, Scope } from './context.js';
import { commonOptions, durationOption, intOption, invalid, knownKeys, oneOf } from './options.js';
import type { CallReporting, Interceptor, PolicyOptions, SharedTime, Stage } from './policy.js';
import { BasePolicy } from './runner.js';
import { WaitQueue } from './wait-queue.js';

/** What a rate limiter does with a call that finds no token: reject it at once, or queue it. */
export type RateLimitMode = 'reject' | 'wait';

/** Options of {@link rateLimit}. */
export interface RateLimitOptions extends PolicyOptions {
  /** Tokens added to the bucket per `interval` (a finite number > 0; may be fractional). */
  rate: number;
  /**
   * The period `rate` refers to.
   * @defaultValue '1s'
   */
  interval?: Duration;
  /**
   * The bucket's size: how many calls may pass at once after a quiet period. The bucket starts full.
   * @defaultValue `Math.max(1, Math.ceil(rate))`
   */
  burst?: number;
  /**
   * `'reject'` throws a `RateLimitedError` when no token is available; `'wait'` queues the call (FIFO)
   * until its token arrives.
   * @defaultValue 'reject'
   */
  mode?: RateLimitMode;
  /**
   * `'wait'` mode only: a call that would wait longer than this is rejected at once instead.
   * @defaultValue Infinity
   */
  maxWait?: Duration;
  /**
   * `'wait'` mode only: how many calls may wait at once; further calls are rejected.
   * @defaultValue Infinity
   */
  maxQueue?: number;
}

/** What `enter` hands to `exit`: nothing (the runner times the call, see `CallReporting`). */
type Token = undefined;

class Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  queued = true;
  unsubscribe: (() => void) | undefined = undefined;

  constructor(
    readonly enqueuedAt: number,
    readonly resolve: (token: Token) => void,
    readonly reject: (reason: unknown) => void,
  ) {}
}

const KEYS = ['rate', 'interval', 'burst', 'mode', 'maxWait', 'maxQueue'] as const;
const WHERE = 'rateLimit';

function onTimer(bucket: Bucket): void {
  bucket.onTimer();
}

/** The bucket and its queue. */
class Bucket implements Interceptor<Token>, CallReporting<Token> {
  /** When the bucket is full again; at or before `now` means full. */
  private fullAt = Number.NEGATIVE_INFINITY;
  /** A call may take a token while `fullAt - now` is at most this: `(burst - 1)` token periods. */
  private readonly slack: number;
  /** Float rounding headroom: a billionth of a token. */
  private readonly tolerance: number;
  private readonly waiters = new WaitQueue<Waiter>();

  get queued(): number {
    return this.waiters.size;
  }
  private timer: Timer | undefined = undefined;
  private timerAt = 0;
  readonly clock: Clock;
  private readonly events: EventSink;
  readonly calls: SourceEvents;
  /** The runner times and reports the admitted calls (from the moment they asked, so a wait counts). */
  readonly reports: CallReporting<Token> = this;

  constructor(
    readonly name: string,
    /** Milliseconds per token. */
    readonly period: number,
    readonly burst: number,
    readonly mode: RateLimitMode,
    readonly maxWait: number,
    readonly maxQueue: number,
    runtime: { clock: Clock; events: EventSink },
  ) {
    this.slack = (burst - 1) * period;
    this.tolerance = period * 1e-9;
    this.clock = runtime.clock;
    this.events = runtime.events;
    this.calls = runtime.events.source(name, 'rateLimit');
  }

  tokensAt(now: number): number {
    const full = Math.max(this.fullAt, now);
    const tokens = this.burst - (full - now) / this.period;
    return Math.max(tokens, 0);
  }

  enter(call: Call, time: SharedTime): Token | Promise<Token> {
    const now = time.now(this.clock);
    const full = Math.max(this.fullAt, now);
    if (this.waiters.head === undefined && full - now <= this.slack + this.tolerance) {
      this.fullAt = full + this.period;
      return undefined;
    }
    return this.refuseOrQueue(call.scope, now, full);
  }

  exit(_token: Token, _ok: boolean, error: unknown): unknown {
    return error;
  }

  failedAs(): number {
    return FAILURE;
  }

  private refuseOrQueue(scope: Scope, now: number, full: number): Promise<Token> {
    // The head of the queue gets the next token, at `full - slack`; each waiter behind it one period later.
    const wait = full - this.slack - now + this.queued * this.period;
    if (this.mode === 'reject') this.reject(now, wait);
    if (scope.isAborted()) {
      const reason = scope.reason;
      if (this.events.listening) this.emitCall(now, CANCELLED, 0, reason);
      throw reason;
    }
    if (this.queued >= this.maxQueue || wait > this.maxWait) this.reject(now, wait);
    let waiter!: Waiter;
    const promise = new Promise<Token>((resolve, reject) => {
      waiter = new Waiter(now, resolve, reject);
    });
    if (this.waiters.head === undefined) {
      this.timerAt = now + wait;
      this.timer = this.clock.setTimer(wait, onTimer, this);
    }
    this.waiters.push(waiter);
    waiter.unsubscribe = scope.onAbort((reason) => this.cancel(waiter, reason));
    return promise;
  }

  private reject(now: number, retryAfter: number): never {
    const error = new RateLimitedError(retryAfter);
    const events = this.events;
    if (events.listening) {
      if (events.wants('ratelimit.rejected')) {
        events.emit({ type: 'ratelimit.rejected', source: this.name, at: now, retryAfterMs: retryAfter });
      }
      this.emitCall(now, REJECTED, 0, error);
    }
    throw error;
  }

  /** The head's token is due: admit every waiter whose token has arrived, then wait for the next. */
  onTimer(): void {
    this.timer = undefined;
    // The timer fired for `timerAt`; a clock reading a rounding error earlier must not delay the head.
    const clockNow = this.clock.now();
    const now = Math.max(clockNow, this.timerAt);
    const limit = this.slack + this.tolerance;
    let waiter = this.waiters.head;
    while (waiter !== undefined) {
      const full = Math.max(this.fullAt, now);
      if (full - now > limit) break;
      this.fullAt = full + this.period;
      this.unlink(waiter);
      waiter.unsubscribe?.();
      const events = this.events;
      if (events.wants('ratelimit.waited')) {
        events.emit({
          type: 'ratelimit.waited',
          source: this.name,
          at: now,
          waitMs: now - waiter.enqueuedAt,
        });
      }
      waiter.resolve(undefined);
      waiter = this.waiters.head;
    }
    if (waiter !== undefined) {
      this.timerAt = this.fullAt - this.slack;
      this.timer = this.clock.setTimer(this.timerAt - now, onTimer, this);
    }
  }

  private cancel(waiter: Waiter, reason: unknown): void {
    if (!waiter.queued) return;
    this.unlink(waiter);
    waiter.reject(reason);
    // The head's token comes at the same time whoever the head is; only an empty queue stops the timer.
    if (this.waiters.head === undefined && this.timer !== undefined) {
      this.timer.cancel();
      this.timer = undefined;
    }
    if (this.events.listening) {
      const now = this.clock.now();
      this.emitCall(now, CANCELLED, now - waiter.enqueuedAt, reason);
    }
  }

  private unlink(waiter: Waiter): void {
    this.waiters.remove(waiter);
  }

  /** `outcome`: its index in `CALL_OUTCOMES`. */
  private emitCall(at: number, outcome: number, durationMs: number, error: unknown): void {
    if (this.events.wants('call')) this.calls.call(at, outcome, durationMs, error);
  }
}

function maxWaitOption(value: unknown): number {
  if (value === Number.POSITIVE_INFINITY) return value;
  return durationOption(WHERE, 'maxWait', value, Number.POSITIVE_INFINITY);
}

/**
 * A token-bucket rate limiter. Created by {@link rateLimit}.
 */
export class RateLimiter extends BasePolicy {
  readonly kind = 'rateLimit';
  readonly name: string;
  readonly stage: Stage;
  /** Tokens added per `intervalMs`. */
  readonly rate: number;
  /** The refill period `rate` refers to, in ms. */
  readonly intervalMs: number;
  /** The bucket's size. */
  readonly burst: number;
  readonly mode: RateLimitMode;
  private readonly bucket: Bucket;
  private readonly clock: Clock;

  constructor(options: RateLimitOptions) {
    super();
    knownKeys(WHERE, options, KEYS);
    const { name, runtime } = commonOptions('rateLimit', options);
    const rate: unknown = options?.rate;
    if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0) {
      throw invalid(WHERE, 'rate', rate, 'a finite number > 0 (tokens per interval; required)');
    }
    const interval = durationOption(WHERE, 'interval', options.interval, 1000, 0, true);
    const burstValue: unknown = options.burst;
    let burst = Math.max(1, Math.ceil(rate));
    if (burstValue !== undefined) {
      if (typeof burstValue !== 'number' || !Number.isSafeInteger(burstValue) || burstValue < 1) {
        throw invalid(WHERE, 'burst', burstValue, 'an integer >= 1');
      }
      burst = burstValue;
    }
    const mode = oneOf<RateLimitMode>(WHERE, 'mode', options.mode, ['reject', 'wait'], 'reject');
    if (mode === 'reject') {
      for (const key of ['maxWait', 'maxQueue'] as const) {
        if (options[key] !== undefined) {
          throw new TypeError(`${WHERE}: option "${key}" applies only to mode "wait", but mode is "reject"`);
        }
      }
    }
    const maxWait = maxWaitOption(options.maxWait);
    const maxQueue = intOption(WHERE, 'maxQueue', options.maxQueue, Number.POSITIVE_INFINITY, 0);
    this.name = name;
    this.rate = rate;
    this.intervalMs = interval;
    this.burst = burst;
    this.mode = mode;
    this.clock = runtime.clock;
    this.bucket = new Bucket(name, interval / rate, burst, mode, maxWait, maxQueue, runtime);
    this.stage = { kind: 'intercept', interceptor: this.bucket };
    const events = runtime.events;
    if (events.listening) {
      events.emit({ type: 'policy.created', source: name, at: runtime.clock.now(), kind: 'rateLimit' });
    }
  }

  /** Tokens in the bucket now, from 0 to `burst`; fractional while a token is refilling. */
  get available(): number {
    return this.bucket.tokensAt(this.clock.now());
  }

  /** Calls waiting for a token now (`'wait'` mode). */
  get queued(): number {
    return this.bucket.queued;
  }
}

/**
 * Limits the rate of calls with a token bucket: `burst` calls may pass at once, then `rate` per
 * `interval`. Without a token a call is rejected with a `RateLimitedError` (whose `retryAfter` is the
 * exact wait for the next token), or in `mode: 'wait'` queued in FIFO order until its token arrives.
 * @example
 * const api = rateLimit({ rate: 100, interval: '1m', mode: 'wait', maxWait: '5s' });
 * await api.execute(() => callPartnerApi());
 */
export function rateLimit(options: RateLimitOptions): RateLimiter {
  return new RateLimiter(options);
}
