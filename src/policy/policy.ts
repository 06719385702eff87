/**
 * The policy contract, and the internal protocol that lets a pipeline run several policies in one
 * async frame.
 *
 * Each policy describes itself as one *stage*:
 * - `intercept`: bookkeeping around the inner call (circuit breaker, bulkhead, timeout, rate limiter).
 *   `enter` runs before the inner call (it may throw to reject, or return a promise to wait), `exit`
 *   after it. Consecutive interceptors are fused: four nested policies cost one promise, not four.
 * - `loop`: retry. It runs the interceptors inside it again after a failure.
 * - `wrap`: anything else (fallback, hedge, user policies): a function of the next layer.
 *
 * Running a pipeline is equivalent to nesting the same policies; only the number of promises differs.
 */
import type { Clock } from '../core/clock.js';
import type { SourceEvents } from '../core/events.js';
import type { Runtime } from '../core/runtime.js';
import type { Call, PolicyContext, Scope } from './context.js';

/** The function a policy protects. It may return a value or a promise, and may throw. */
export type Task<T> = (ctx: PolicyContext) => PromiseLike<T> | T;

/** Runs the next layer with the given call context. Always returns a promise. */
export type Next<T> = (call: Call) => Promise<T>;

/**
 * The time of one boundary of a fused segment (its layers entering, or exiting), read once per clock and
 * shared by every layer that asks. The layers of a segment run synchronously one after another, so their
 * own readings would differ by nanoseconds, while a clock read is a good part of what a layer costs once
 * someone listens to its events. The runner starts a new reading wherever time may pass: before the
 * layers enter, when a layer that waited resumes, before they exit.
 */
export interface SharedTime {
  /** `clock.now()` as read at this boundary (read now if no layer asked for this clock yet). */
  now(clock: Clock): number;
}

/** A {@link SharedTime} that reads the clock whenever asked: for callers that run one layer on its own. */
export const READ_EACH_TIME: SharedTime = { now: (clock) => clock.now() };

/**
 * {@link Interceptor.arm}'s type. Declared as a method (whose parameters TypeScript checks bivariantly,
 * as for any method) so that a class may hold it in a field, set or undefined per instance.
 */
export type ArmHook<Token> = {
  arm(token: Token, target: AbandonTarget, layer: number): void;
}['arm'];

export interface Interceptor<Token = unknown> {
  /**
   * Admits a call. Throws to reject it; returns a promise when the call must wait (it rejects on abort).
   * `time` gives the time of entry, shared with the other layers entering at the same moment.
   */
  enter(call: Call, time: SharedTime): Token | Promise<Token>;
  /** The call context inner layers see, when the interceptor gives them their own (a timeout's child scope). */
  inner?(token: Token, call: Call): Call;
  /**
   * Aggressive interceptors (a timeout that rejects at its deadline): called once the call is admitted.
   * To release the caller early, call `target.abandon(layer, error)`: this layer and the ones outside it
   * exit with `error` at once; the layers inside it exit later, when the inner call really settles.
   */
  arm?: ArmHook<Token> | undefined;
  /**
   * Ends a call that was admitted: `ok` with `error` undefined, or a failure. Returns the error to propagate
   * (the same one, or a replacement such as a `TimeoutError`). Never throws. `time` gives the time of exit,
   * shared with the other layers exiting at the same moment.
   */
  exit(token: Token, ok: boolean, error: unknown, time: SharedTime): unknown;
  /**
   * Set when the layer lets the runner report the `call` events of the calls it admits (see
   * {@link CallReporting}); without it the layer reports them itself.
   */
  readonly reports?: CallReporting<Token>;
}

/**
 * How the runner reports an interceptor's admitted calls for it. The runner reads the entry time once for
 * every such layer entering at the same moment, keeps it per attempt, and reports each call right after
 * the layer's `exit`, with the exit time shared the same way: the layers keep no start time and read no
 * clock for their call events, so listening costs a pipeline two clock reads and one report per layer.
 * A layer still reports the calls it refuses in `enter` itself. A call counts from the moment `enter` was
 * called, so a call that waited (a queue) includes its wait.
 */
export interface CallReporting<Token = unknown> {
  /** Where the layer's `call` events go (its source). */
  readonly calls: SourceEvents;
  /** The clock its calls are timed on. */
  readonly clock: Clock;
  /**
   * The outcome of an admitted call that failed here, as an index in `CALL_OUTCOMES`; `error` is what
   * `exit` returned (and what the event carries).
   */
  failedAs(token: Token, error: unknown): number;
}

/** What an aggressive interceptor calls to release the caller before the inner call settles. */
export interface AbandonTarget {
  abandon(layer: number, error: unknown): void;
}

/** A retry loop, driven by the pipeline runner. */
export interface RetryLoop<State = unknown, Watch = unknown> {
  /**
   * Called once per call, before its first attempt (at the time its layers enter, `time`); what it
   * returns is handed to `afterFailure` and `end`.
   */
  begin?(call: Call, time: SharedTime): Watch;
  /**
   * Called once per call when it ends for the caller: `ok` with the value returned, or the error it
   * rejects with (including a wait cancelled by the caller). `gaveUp` is true when the value returned is
   * a result the loop wanted to retry but ran out of attempts for. `time` is the time the last attempt's
   * layers exited (or the wait ended).
   */
  end?(watch: Watch, ok: boolean, outcome: unknown, scope: Scope, time: SharedTime, gaveUp: boolean): void;
  /**
   * Called after attempt `attempt` failed (`isResult` false: `outcome` is the error) or returned a result
   * that should be retried (`isResult` true). Returns the state for the next attempt, whose `delay` is the
   * wait before it, or `undefined` to give up.
   */
  afterFailure(
    outcome: unknown,
    isResult: boolean,
    attempt: number,
    state: State | undefined,
    scope: Scope,
    watch: Watch,
  ): (State & { readonly delay: number }) | undefined;
  /** Whether a successful result must be retried; `undefined` when no result predicate is set. */
  readonly retryResult: ((result: unknown) => boolean) | undefined;
  /** Waits before the next attempt; rejects when the scope aborts. */
  wait(delay: number, scope: Scope): Promise<void>;
  /**
   * Set when the loop lets the runner report its calls (see {@link CallReporting}; the token is the
   * caller's scope): a call counts from its first attempt's entry to its end, and a result retried until
   * the attempts ran out is a failure carrying that result.
   */
  readonly reports?: CallReporting<Scope>;
}

export type Stage =
  | { readonly kind: 'intercept'; readonly interceptor: Interceptor }
  | { readonly kind: 'loop'; readonly loop: RetryLoop }
  | { readonly kind: 'wrap'; run<T>(next: Next<T>, call: Call): Promise<T> }
  | { readonly kind: 'pipeline'; readonly stages: readonly Stage[] };

/** A resilience policy: something that runs a function on your behalf and protects the caller from it. */
export interface Policy {
  /** The name used in events and metrics labels. */
  readonly name: string;
  /** What sort of policy this is: `retry`, `circuitBreaker`, `pipeline`, … */
  readonly kind: string;
  /**
   * Runs `fn` under this policy. `signal` cancels the call: a waiting policy stops waiting and the
   * promise rejects with a `CancelledError` whose `cause` is the signal's reason.
   */
  execute<T>(fn: Task<T>, signal?: AbortSignal): Promise<T>;
  /** @internal How the pipeline runner drives this policy. */
  readonly stage: Stage;
}

/** Options every policy takes. */
export interface PolicyOptions {
  /** Name in events and metrics (bounded: never a per-request value). @defaultValue the policy kind */
  name?: string;
  /** Clock, randomness and event sink. @defaultValue `systemRuntime()` */
  runtime?: Runtime;
}
