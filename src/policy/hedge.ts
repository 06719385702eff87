/**
 * Hedging: when an attempt is slow, start another one alongside it and take whichever succeeds first.
 */
import type { Clock, Timer, TimerQueue } from '../core/clock.js';
import type { Duration } from '../core/duration.js';
import { CancelledError, HedgeError, isBulwarkError } from '../core/errors.js';
import { CALL_OUTCOME_INDEX, type CallOutcome, type EventSink, type SourceEvents } from '../core/events.js';
import { Call, type Scope } from './context.js';
import { commonOptions, durationOption, functionOption, intOption, invalid, knownKeys } from './options.js';
import type { Next, PolicyOptions, Stage } from './policy.js';
import { BasePolicy } from './runner.js';

export interface HedgeOptions extends PolicyOptions {
  /**
   * How long to wait for an attempt before starting the next one alongside it: milliseconds or a string
   * such as `'50ms'`. `0` starts every attempt at once. Required.
   */
  delay: Duration;
  /** Attempts that may run, the first included (an integer >= 2). @defaultValue 2 */
  maxAttempts?: number;
  /**
   * Whether a failed attempt should be replaced at once by the next one. An error it rejects stops new
   * attempts; the call then rejects with it once no other attempt is running (unless one succeeds).
   * @defaultValue every error except a `CancelledError`
   */
  shouldHedge?: (error: unknown) => boolean;
}

const WHERE = 'hedge';
const NONE: unique symbol = Symbol('none');

function notCancelled(error: unknown): boolean {
  return !isBulwarkError(error, 'CANCELLED');
}

function onDelay<T>(race: HedgeRace<T>): void {
  race.timer = undefined;
  race.launch();
}

/** One call through the hedge: the attempts running for it and how they ended. */
class HedgeRace<T> {
  timer: Timer | undefined = undefined;
  settled = false;
  /** No attempt may start any more: a non-hedgeable error was seen. */
  stopped = false;
  running = 0;
  /** The scope of each attempt by index, `undefined` once the attempt has settled. */
  readonly scopes: (Scope | undefined)[] = [];
  readonly errors: unknown[] = [];
  /** The first error `shouldHedge` rejected. */
  fatal: unknown = NONE;
  unsubscribe: (() => void) | undefined = undefined;

  constructor(
    readonly hedge: HedgeStage,
    readonly next: Next<T>,
    readonly call: Call,
    readonly resolve: (value: T) => void,
    readonly reject: (reason: unknown) => void,
    readonly startedAt: number,
  ) {}

  /** Starts the next attempt (every remaining one when the delay is 0) and arms the delay timer. */
  launch(): void {
    const { maxAttempts, delayMs } = this.hedge;
    // An attempt may cancel the caller synchronously, which settles the race.
    while (!this.settled && !this.stopped) {
      this.start();
      if (this.settled || this.scopes.length >= maxAttempts) return;
      if (delayMs > 0) {
        this.timer = this.hedge.delays.setTimer<HedgeRace<T>>(onDelay, this);
        return;
      }
    }
  }

  private start(): void {
    const index = this.scopes.length;
    const attempt = index + 1;
    const scope = this.call.scope.child();
    this.scopes.push(scope);
    this.running++;
    const hedge = this.hedge;
    if (attempt > 1 && hedge.events.wants('hedge.started')) {
      hedge.events.emit({ type: 'hedge.started', source: hedge.name, at: hedge.clock.now(), attempt });
    }
    let pending: Promise<T>;
    try {
      pending = this.next(new Call(scope, attempt));
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (value) => this.succeeded(index, value),
      (error: unknown) => this.failed(index, error),
    );
  }

  private succeeded(index: number, value: T): void {
    if (this.settled) return;
    this.settle(index);
    this.resolve(value);
    this.report('success', undefined);
  }

  private failed(index: number, error: unknown): void {
    if (this.settled) return;
    this.running--;
    this.errors[index] = error;
    (this.scopes[index] as Scope).dispose();
    this.scopes[index] = undefined;
    let hedgeable: boolean;
    try {
      hedgeable = this.hedge.shouldHedge(error);
    } catch (predicateError) {
      this.fail(predicateError);
      return;
    }
    if (!hedgeable && this.fatal === NONE) {
      this.fatal = error;
      this.stopped = true;
      this.timer?.cancel();
      this.timer = undefined;
    }
    if (!this.stopped && this.scopes.length < this.hedge.maxAttempts) {
      // Replace the failed attempt now rather than at the delay.
      this.timer?.cancel();
      this.timer = undefined;
      this.launch();
      return;
    }
    if (this.running > 0) return;
    this.fail(this.fatal !== NONE ? this.fatal : new HedgeError(this.errors));
  }

  /** Ends the race: stops the timer and the caller subscription, aborts and disposes every other attempt. */
  private settle(winner: number): void {
    this.settled = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.unsubscribe?.();
    const scopes = this.scopes;
    let lost: CancelledError | undefined;
    for (let i = 0; i < scopes.length; i++) {
      const scope = scopes[i];
      if (scope === undefined) continue;
      if (i !== winner) {
        lost ??= new CancelledError(undefined, 'lost the hedge race');
        scope.abort(lost);
      }
      scope.dispose();
      scopes[i] = undefined;
    }
  }

  private fail(error: unknown): void {
    this.settle(-1);
    this.reject(error);
    this.report(isBulwarkError(error, 'CANCELLED') ? 'cancelled' : 'failure', error);
  }

  /** The caller (or an outer policy) cancelled: every attempt is aborted with the same reason. */
  cancel(reason: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.timer?.cancel();
    this.timer = undefined;
    const scopes = this.scopes;
    for (let i = 0; i < scopes.length; i++) {
      const scope = scopes[i];
      if (scope === undefined) continue;
      scope.abort(reason);
      scope.dispose();
      scopes[i] = undefined;
    }
    this.reject(reason);
    this.report('cancelled', reason);
  }

  private report(outcome: CallOutcome, error: unknown): void {
    const { events, clock, calls } = this.hedge;
    if (this.startedAt < 0 || !events.wants('call')) return;
    const at = clock.now();
    calls.call(at, CALL_OUTCOME_INDEX[outcome], at - this.startedAt, error);
  }
}

class HedgeStage {
  readonly kind = 'wrap';

  constructor(
    readonly name: string,
    readonly delayMs: number,
    readonly maxAttempts: number,
    readonly shouldHedge: (error: unknown) => boolean,
    readonly clock: Clock,
    readonly events: EventSink,
  ) {
    this.delays = clock.timerQueue(delayMs);
    this.calls = events.source(name, 'hedge');
  }

  /** The `call` events of the hedge's races. */
  readonly calls: SourceEvents;

  /** Every race waits the same delay, so the timers share one queue (cheap to set and cancel). */
  readonly delays: TimerQueue;

  run<T>(next: Next<T>, call: Call): Promise<T> {
    const scope = call.scope;
    if (scope.isAborted()) return Promise.reject(scope.reason);
    return new Promise<T>((resolve, reject) => {
      const race = new HedgeRace<T>(
        this,
        next,
        call,
        resolve,
        reject,
        this.events.wants('call') ? this.clock.now() : -1,
      );
      // A root scope without a caller signal can never abort: no subscription needed.
      if (scope.parent !== undefined || scope.external !== undefined) {
        race.unsubscribe = scope.onAbort((reason) => race.cancel(reason));
      }
      race.launch();
    });
  }
}

/**
 * Runs concurrent attempts of one call to cut tail latency. See {@link hedge}.
 */
export class HedgePolicy extends BasePolicy {
  readonly kind = 'hedge';
  readonly name: string;
  readonly stage: Stage;
  /** The wait before the next attempt starts, in milliseconds. */
  readonly delayMs: number;
  readonly maxAttempts: number;

  constructor(options: HedgeOptions) {
    super();
    knownKeys(WHERE, options, ['delay', 'maxAttempts', 'shouldHedge']);
    const { name, runtime } = commonOptions(WHERE, options);
    const delay: unknown = options?.delay;
    if (delay === undefined) {
      throw invalid(WHERE, 'delay', delay, "a duration >= 0ms (a number of ms or a string like '50ms')");
    }
    this.name = name;
    this.delayMs = durationOption(WHERE, 'delay', delay, 0, 0);
    const maxAttempts = intOption(WHERE, 'maxAttempts', options.maxAttempts, 2, 2);
    if (!Number.isFinite(maxAttempts))
      throw invalid(WHERE, 'maxAttempts', maxAttempts, 'a finite integer >= 2');
    this.maxAttempts = maxAttempts;
    const shouldHedge =
      functionOption<(error: unknown) => boolean>(WHERE, 'shouldHedge', options.shouldHedge) ?? notCancelled;
    this.stage = new HedgeStage(name, this.delayMs, maxAttempts, shouldHedge, runtime.clock, runtime.events);
    if (runtime.events.wants('policy.created')) {
      runtime.events.emit({ type: 'policy.created', source: name, at: runtime.clock.now(), kind: this.kind });
    }
  }
}

/**
 * Hedged requests: starts the call, and if it has not succeeded after `delay`, starts another attempt
 * alongside it, up to `maxAttempts` in all. The first success wins; the others' `ctx.signal` is aborted
 * with a `CancelledError('lost the hedge race')`. An attempt that fails early is replaced at once.
 * When every attempt fails the call rejects with a `HedgeError` holding each error in start order.
 *
 * Only hedge idempotent work: several attempts may run to completion.
 *
 * @example
 * const fast = hedge({ delay: '50ms', maxAttempts: 3 });
 * const user = await fast.execute(({ signal }) => fetch(`${replica()}/users/1`, { signal }));
 */
export function hedge(options: HedgeOptions): HedgePolicy {
  return new HedgePolicy(options);
}
