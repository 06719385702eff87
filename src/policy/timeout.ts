/**
 * Timeout: one clock timer per call, no AbortController unless the function reads `ctx.signal`.
 *
 * The interceptor gives inner layers a child scope. The deadline aborts that scope with a
 * `TimeoutError`; an aggressive timeout also settles its race with it, so the caller is released
 * even when the function ignores its signal.
 */
import type { Clock, QueueEntry, TimerQueue } from '../core/clock.js';
import type { Duration } from '../core/duration.js';
import { isBulwarkError, TimeoutError } from '../core/errors.js';
import type { EventSink, SourceEvents } from '../core/events.js';
import { CANCELLED, FAILURE, TIMEOUT } from './call-event.js';
import { Call, type Scope } from './context.js';
import { commonOptions, durationOption, invalid, knownKeys, oneOf } from './options.js';
import type { AbandonTarget, ArmHook, CallReporting, Interceptor, PolicyOptions, Stage } from './policy.js';
import { BasePolicy } from './runner.js';

/** How a timeout treats a function that is still running at the deadline. */
export type TimeoutStrategy = 'aggressive' | 'cooperative';

export interface TimeoutOptions extends PolicyOptions {
  /** How long a call may run: milliseconds, or a string such as `'250ms'` or `'2s'`. Must be > 0. */
  after: Duration;
  /**
   * `'cooperative'`: the deadline aborts `ctx.signal` and the call waits for the function; if it then
   * rejects, the call rejects with the `TimeoutError` (the function's error as `cause`), and if it
   * resolves anyway its value is returned. Pass `ctx.signal` to your I/O (`fetch`, `pg`, `undici`, timers
   * all take one). `'aggressive'`: the call rejects with a `TimeoutError` at the deadline even if the
   * function ignores `ctx.signal` (which is aborted too); the work itself may go on in the background.
   * @defaultValue 'cooperative' (as in Polly v8: the work stops when the caller stops waiting, so bulkheads
   * and connection pools never count abandoned work as free)
   */
  strategy?: TimeoutStrategy;
}

const STRATEGIES: readonly TimeoutStrategy[] = ['aggressive', 'cooperative'];
const WHERE = 'timeout';

/**
 * One call through the timeout. It is both the interceptor's token and the context the inner layers
 * see (its scope is the child scope), which saves an allocation per call.
 */
class TimedCall extends Call implements QueueEntry {
  /** This call is its own deadline timer in the policy's queue. */
  timerSlot: unknown = undefined;
  /** The error the deadline aborted the scope with; set only when the deadline fired first. */
  timedOut: TimeoutError | undefined = undefined;
  /** Where an aggressive timeout releases the caller, and its layer there. */
  target: AbandonTarget | undefined = undefined;
  layer = 0;

  constructor(
    scope: Scope,
    attempt: number,
    readonly interceptor: TimeoutInterceptor,
  ) {
    super(scope, attempt);
  }
  onTimer(): void {
    onDeadline(this);
  }
}

function onDeadline(call: TimedCall): void {
  const scope = call.scope;
  // Cancelled before the deadline (caller or outer policy): cancellation wins.
  if (scope.isAborted()) return;
  const interceptor = call.interceptor;
  const error = new TimeoutError(interceptor.timeoutMs);
  call.timedOut = error;
  const events = interceptor.events;
  if (events.wants('timeout.fired')) {
    events.emit({
      type: 'timeout.fired',
      source: interceptor.name,
      at: interceptor.clock.now(),
      timeoutMs: interceptor.timeoutMs,
    });
  }
  scope.abort(error);
  call.target?.abandon(call.layer, error);
}

class TimeoutInterceptor implements Interceptor<TimedCall>, CallReporting<TimedCall> {
  private readonly deadlines: TimerQueue;
  readonly calls: SourceEvents;
  /** The runner times and reports the calls: `exit` only settles the deadline. */
  readonly reports: CallReporting<TimedCall> = this;

  /**
   * Set for an aggressive timeout only. Both strategies are one class (the hook a field, not a subclass's
   * method): the runner's call sites see one kind of object fewer, and past four kinds each call through
   * them is a megamorphic lookup.
   */
  readonly arm: ArmHook<TimedCall> | undefined;

  constructor(
    readonly name: string,
    readonly timeoutMs: number,
    readonly clock: Clock,
    readonly events: EventSink,
    aggressive: boolean,
  ) {
    this.arm = aggressive ? armAggressive : undefined;
    this.deadlines = clock.timerQueue(timeoutMs);
    this.calls = events.source(name, WHERE);
  }

  enter(call: Call): TimedCall {
    const scope = call.scope;
    if (scope.isAborted()) throw scope.reason;
    const timed = new TimedCall(scope.child(), call.attempt, this);
    this.deadlines.add(timed);
    return timed;
  }

  inner(timed: TimedCall): Call {
    return timed;
  }

  exit(timed: TimedCall, ok: boolean, error: unknown): unknown {
    this.deadlines.remove(timed);
    timed.scope.dispose();
    const timedOut = timed.timedOut;
    if (timedOut !== undefined && !ok) {
      if (error !== timedOut && timedOut.cause === undefined) timedOut.cause = error;
      error = timedOut;
    }
    return error;
  }

  failedAs(timed: TimedCall, error: unknown): number {
    if (timed.timedOut !== undefined) return TIMEOUT;
    return timed.scope.aborted || isBulwarkError(error, 'CANCELLED') ? CANCELLED : FAILURE;
  }
}

/**
 * An aggressive timeout's `arm`: releases the caller as soon as it (or an outer policy) cancels, even if
 * the function ignores the signal. A root scope without a caller signal can never abort, so it skips the
 * subscription.
 */
function armAggressive(timed: TimedCall, target: AbandonTarget, layer: number): void {
  timed.target = target;
  timed.layer = layer;
  const parent = timed.scope.parent;
  if (parent !== undefined && (parent.parent !== undefined || parent.external !== undefined)) {
    const scope = timed.scope;
    // The function may have cancelled the caller synchronously; a scope aborts only once.
    if (scope.isAborted()) target.abandon(layer, scope.reason);
    else scope.onAbort((reason) => target.abandon(layer, reason));
  }
}

export class TimeoutPolicy extends BasePolicy {
  readonly kind = 'timeout';
  readonly name: string;
  readonly stage: Stage;
  /** The deadline, in milliseconds. */
  readonly timeoutMs: number;
  readonly strategy: TimeoutStrategy;

  constructor(options: TimeoutOptions) {
    super();
    knownKeys(WHERE, options, ['after', 'strategy']);
    const { name, runtime } = commonOptions(WHERE, options);
    const after: unknown = options?.after;
    if (after === undefined) {
      throw invalid(WHERE, 'after', after, "a duration > 0ms (a number of ms or a string like '250ms')");
    }
    this.name = name;
    this.timeoutMs = durationOption(WHERE, 'after', after, 0, 0, true);
    this.strategy = oneOf(WHERE, 'strategy', options?.strategy, STRATEGIES, 'cooperative');
    const aggressive = this.strategy === 'aggressive';
    this.stage = {
      kind: 'intercept',
      interceptor: new TimeoutInterceptor(name, this.timeoutMs, runtime.clock, runtime.events, aggressive),
    };
    if (runtime.events.wants('policy.created')) {
      runtime.events.emit({ type: 'policy.created', source: name, at: runtime.clock.now(), kind: this.kind });
    }
  }
}

/**
 * Rejects a call with a `TimeoutError` when it runs longer than `after`, and aborts `ctx.signal` so the
 * work can stop. Pass the signal on (`fetch(url, { signal })`) to free resources at the deadline.
 *
 * @example
 * const guarded = timeout('2s');
 * await guarded.execute(({ signal }) => fetch(url, { signal }));
 *
 * // Let the function finish its cleanup; keep a late result if it still arrives:
 * timeout({ after: '2s', strategy: 'cooperative', runtime });
 */
export function timeout(after: Duration, options?: Omit<TimeoutOptions, 'after'>): TimeoutPolicy;
export function timeout(options: TimeoutOptions): TimeoutPolicy;
export function timeout(
  afterOrOptions: Duration | TimeoutOptions,
  options?: Omit<TimeoutOptions, 'after'>,
): TimeoutPolicy {
  if (typeof afterOrOptions === 'object' && afterOrOptions !== null) {
    if (options !== undefined) {
      throw new TypeError(`${WHERE}: pass either a duration and options, or one options object`);
    }
    return new TimeoutPolicy(afterOrOptions);
  }
  knownKeys(WHERE, options, ['strategy']);
  return new TimeoutPolicy({ ...options, after: afterOrOptions });
}
