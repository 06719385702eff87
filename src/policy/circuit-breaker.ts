/**
 * Circuit breaker: stops calling a dependency that keeps failing, then lets a few trial calls through to
 * find out whether it has recovered.
 *
 * Bookkeeping is O(1) per call on success and failure alike. Each admitted call carries a token: the
 * breaker's `epoch` (bumped at every transition), so an outcome is counted only by the state that admitted
 * the call — a call admitted while closed that ends after the breaker opened is never mistaken for a trial.
 * The token is a plain number unless the call needs timing (slow-call detection, a `call` listener) or is a
 * half-open trial; only then is a small object allocated.
 */
import type { Clock } from '../core/clock.js';
import type { Duration } from '../core/duration.js';
import { BrokenCircuitError, IsolatedCircuitError, isBulwarkError } from '../core/errors.js';
import type { CircuitStateName, EventSink, SourceEvents } from '../core/events.js';
import type { Random } from '../core/random.js';
import { type Backoff, isBackoff } from './backoff.js';
import { CANCELLED, FAILURE, REJECTED } from './call-event.js';
import {
  commonOptions,
  durationOption,
  functionOption,
  intOption,
  invalid,
  knownKeys,
  ratioOption,
} from './options.js';
import type { Interceptor, PolicyOptions, SharedTime, Stage } from './policy.js';
import { BasePolicy } from './runner.js';

export interface CircuitBreakerOptions extends PolicyOptions {
  /**
   * Consecutive strategy (the default): opens after this many failures in a row. A success resets the
   * count. Cannot be combined with `failureRatio`.
   * @defaultValue 5
   */
  consecutiveFailures?: number;
  /**
   * Sliding-window strategy, chosen when set: opens when failures / calls in the window reach this ratio,
   * once the window holds `minimumThroughput` calls. Judged whenever a failure is recorded. In (0, 1].
   */
  failureRatio?: number;
  /**
   * Length of the sliding window (used by `failureRatio` and `slowCallRatio`). The window is a ring of
   * `buckets` counters; it covers the current, partly filled bucket and the `buckets - 1` before it.
   * @defaultValue '10s'
   */
  window?: Duration;
  /** How many counters the window is divided into (1 to 100000). @defaultValue 10 */
  buckets?: number;
  /** Calls the window must hold before a ratio is judged. @defaultValue 10 */
  minimumThroughput?: number;
  /**
   * A call that runs longer than this counts as slow (whether it succeeded or failed). Requires
   * `slowCallRatio`. Must be > 0.
   */
  slowCallDuration?: Duration;
  /**
   * Opens when slow calls / calls in the window reach this ratio (with `minimumThroughput`), whichever
   * strategy judges failures. Requires `slowCallDuration`. In (0, 1].
   */
  slowCallRatio?: number;
  /**
   * How long the breaker stays open before it lets trial calls through (half-open): a duration, or a
   * `Backoff` whose successive steps give the wait after each consecutive re-open (a failed trial). The
   * backoff starts over when the breaker closes.
   * @defaultValue '30s'
   */
  halfOpenAfter?: Duration | Backoff;
  /** Trial calls allowed to run at once while half-open; more are rejected. @defaultValue 1 */
  halfOpenTrials?: number;
  /** Successful trials needed to close; any failed trial re-opens. @defaultValue 1 */
  halfOpenSuccesses?: number;
  /**
   * Which errors count as failures. An error it returns `false` for counts as neither a failure nor a
   * success: it is ignored (it does not reset the consecutive count either). If it throws, the error
   * counts as a failure.
   * @defaultValue every error except a `CancelledError`
   */
  isFailure?: (error: unknown) => boolean;
  /** A snapshot from {@link CircuitBreaker.toJSON} to start from (validated; a bad one throws `TypeError`). */
  restore?: CircuitBreakerSnapshot;
}

/** The window's counters in a snapshot. */
export interface CircuitWindowSnapshot {
  /** The window length it was taken with, in ms (must match the breaker it is restored into). */
  windowMs: number;
  /** Clock time of the snapshot, in ms: the newest bucket is the one that holds this time. */
  at: number;
  /** `[calls, failures, slowCalls]` per bucket, oldest first (as many as the breaker's `buckets`). */
  buckets: [number, number, number][];
}

/** A plain, JSON-serialisable picture of a breaker, to persist and pass back as the `restore` option. */
export interface CircuitBreakerSnapshot {
  state: CircuitStateName;
  /** Clock time the breaker last opened (present when open or half-open). */
  openedAt?: number;
  /** Consecutive re-opens (failed trials) since the breaker last closed; picks the `halfOpenAfter` backoff step. */
  reopenCount: number;
  /** Failures in a row (consecutive strategy only). */
  consecutiveFailures?: number;
  /** The window's counters (when a ratio is configured). */
  window?: CircuitWindowSnapshot;
}

/** Counters for dashboards. */
export interface CircuitBreakerStats {
  state: CircuitStateName;
  /** Failures in a row (consecutive strategy only). */
  consecutiveFailures?: number;
  /** Counts in the current window (when a ratio is configured). */
  window?: { calls: number; failures: number; slowCalls: number };
  /** Trial calls running now. */
  trialsRunning: number;
  /** Successful trials so far in the current half-open period. */
  trialSuccesses: number;
  /** Consecutive re-opens since the breaker last closed. */
  reopenCount: number;
  /** Clock time the breaker last opened (when open or half-open). */
  openedAt?: number;
  /** Clock time an open breaker lets trial calls through. */
  halfOpenAt?: number;
}

const WHERE = 'circuitBreaker';
const KEYS = [
  'consecutiveFailures',
  'failureRatio',
  'window',
  'buckets',
  'minimumThroughput',
  'slowCallDuration',
  'slowCallRatio',
  'halfOpenAfter',
  'halfOpenTrials',
  'halfOpenSuccesses',
  'isFailure',
  'restore',
] as const;

const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
const ISOLATED = 3;
type State = typeof CLOSED | typeof OPEN | typeof HALF_OPEN | typeof ISOLATED;
const NAMES: readonly CircuitStateName[] = ['closed', 'open', 'half-open', 'isolated'];
const STATES: Record<string, State> = {
  closed: CLOSED,
  open: OPEN,
  'half-open': HALF_OPEN,
  isolated: ISOLATED,
};

const notCancelled = (error: unknown): boolean => !isBulwarkError(error, 'CANCELLED');

/** The token of a call that needs timing or holds a trial slot. */
class Admission {
  constructor(
    readonly epoch: number,
    /** Clock time at entry, or NaN when not measured. */
    readonly start: number,
    /** The trial-slot generation the call holds a slot of, or -1 when it is not a trial. */
    readonly slots: number,
  ) {}
}

/** A ring of `size` bucketed counters; bucket `i` holds the calls whose time falls in `[i, i + 1) * width`. */
class SlidingWindow {
  readonly calls: Float64Array;
  readonly failureCounts: Float64Array;
  readonly slowCounts: Float64Array;
  totalCalls = 0;
  totalFailures = 0;
  totalSlow = 0;
  /** Absolute index of the newest bucket. */
  head = Number.NEGATIVE_INFINITY;
  readonly width: number;

  constructor(
    readonly windowMs: number,
    readonly size: number,
  ) {
    this.calls = new Float64Array(size);
    this.failureCounts = new Float64Array(size);
    this.slowCounts = new Float64Array(size);
    this.width = windowMs / size;
  }

  private slot(index: number): number {
    const size = this.size;
    return ((index % size) + size) % size;
  }

  /** Expires the buckets that fell out of the window by `now`. At most `size` buckets, usually none. */
  roll(now: number): void {
    const index = Math.floor(now / this.width);
    const head = this.head;
    if (index <= head) return;
    if (index - head >= this.size) this.clear();
    else {
      for (let i = head + 1; i <= index; i++) {
        const b = this.slot(i);
        this.totalCalls -= this.calls[b] as number;
        this.totalFailures -= this.failureCounts[b] as number;
        this.totalSlow -= this.slowCounts[b] as number;
        this.calls[b] = 0;
        this.failureCounts[b] = 0;
        this.slowCounts[b] = 0;
      }
    }
    this.head = index;
  }

  add(now: number, failed: boolean, slow: boolean): void {
    this.roll(now);
    const b = this.slot(this.head);
    this.calls[b] = (this.calls[b] as number) + 1;
    this.totalCalls++;
    if (failed) {
      this.failureCounts[b] = (this.failureCounts[b] as number) + 1;
      this.totalFailures++;
    }
    if (slow) {
      this.slowCounts[b] = (this.slowCounts[b] as number) + 1;
      this.totalSlow++;
    }
  }

  clear(): void {
    this.calls.fill(0);
    this.failureCounts.fill(0);
    this.slowCounts.fill(0);
    this.totalCalls = 0;
    this.totalFailures = 0;
    this.totalSlow = 0;
  }

  snapshot(now: number): CircuitWindowSnapshot {
    this.roll(now);
    const buckets: [number, number, number][] = [];
    for (let k = this.size - 1; k >= 0; k--) {
      const b = this.slot(this.head - k);
      buckets.push([this.calls[b] as number, this.failureCounts[b] as number, this.slowCounts[b] as number]);
    }
    return { windowMs: this.windowMs, at: now, buckets };
  }

  load(snapshot: CircuitWindowSnapshot, now: number): void {
    this.clear();
    // A snapshot from a clock ahead of this one (another time base) is taken as current.
    this.head = Math.floor(Math.min(snapshot.at, now) / this.width);
    const size = this.size;
    for (let k = 0; k < size; k++) {
      const [calls, failures, slow] = snapshot.buckets[k] as [number, number, number];
      const b = this.slot(this.head - (size - 1 - k));
      this.calls[b] = calls;
      this.failureCounts[b] = failures;
      this.slowCounts[b] = slow;
      this.totalCalls += calls;
      this.totalFailures += failures;
      this.totalSlow += slow;
    }
  }
}

/** A backoff step's delay; a negative or NaN delay (from a hand-made Backoff) waits 0. */
function waitOf(step: Backoff): number {
  const delay = step.delay;
  return Number.isNaN(delay) ? 0 : Math.max(delay, 0);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function parseSnapshot(
  value: unknown,
  windowMs: number | undefined,
  buckets: number,
): CircuitBreakerSnapshot {
  const fail = (field: string, got: unknown, accepted: string) =>
    invalid(WHERE, field === '' ? 'restore' : `restore.${field}`, got, accepted);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fail('', value, 'a snapshot from toJSON()');
  }
  const snap = value as Record<string, unknown>;
  for (const key of Object.keys(snap)) {
    if (!['state', 'openedAt', 'reopenCount', 'consecutiveFailures', 'window'].includes(key)) {
      throw new TypeError(
        `${WHERE}: unknown field "restore.${key}"; a snapshot has state, openedAt, reopenCount, consecutiveFailures, window`,
      );
    }
  }
  const state = snap.state;
  if (typeof state !== 'string' || !Object.hasOwn(STATES, state)) {
    throw fail('state', state, 'one of "closed", "open", "half-open", "isolated"');
  }
  const out: CircuitBreakerSnapshot = { state: state as CircuitStateName, reopenCount: 0 };
  const openedAt = snap.openedAt;
  if (openedAt !== undefined || state === 'open') {
    if (typeof openedAt !== 'number' || !Number.isFinite(openedAt)) {
      throw fail(
        'openedAt',
        openedAt,
        state === 'open' ? 'a finite clock time (required when open)' : 'a finite clock time',
      );
    }
    out.openedAt = openedAt;
  }
  if (!isCount(snap.reopenCount)) throw fail('reopenCount', snap.reopenCount, 'an integer >= 0');
  out.reopenCount = snap.reopenCount;
  if (snap.consecutiveFailures !== undefined) {
    if (!isCount(snap.consecutiveFailures)) {
      throw fail('consecutiveFailures', snap.consecutiveFailures, 'an integer >= 0');
    }
    out.consecutiveFailures = snap.consecutiveFailures;
  }
  const win = snap.window;
  if (win !== undefined) {
    if (windowMs === undefined) {
      throw fail(
        'window',
        win,
        'absent: this breaker has no sliding window (set failureRatio or slowCallRatio)',
      );
    }
    if (typeof win !== 'object' || win === null || Array.isArray(win)) {
      throw fail('window', win, 'an object { windowMs, at, buckets }');
    }
    const w = win as Record<string, unknown>;
    if (w.windowMs !== windowMs) {
      throw fail('window.windowMs', w.windowMs, `${windowMs} (this breaker's window, in ms)`);
    }
    if (typeof w.at !== 'number' || !Number.isFinite(w.at))
      throw fail('window.at', w.at, 'a finite clock time');
    const list = w.buckets;
    if (!Array.isArray(list) || list.length !== buckets) {
      throw fail('window.buckets', list, `an array of ${buckets} buckets (this breaker's "buckets")`);
    }
    const parsed: [number, number, number][] = [];
    list.forEach((bucket: unknown, i) => {
      const ok =
        Array.isArray(bucket) &&
        bucket.length === 3 &&
        isCount(bucket[0]) &&
        isCount(bucket[1]) &&
        isCount(bucket[2]) &&
        bucket[1] <= bucket[0] &&
        bucket[2] <= bucket[0];
      if (!ok) {
        throw fail(
          `window.buckets[${i}]`,
          bucket,
          '[calls, failures, slowCalls]: integers >= 0, none above calls',
        );
      }
      parsed.push([bucket[0], bucket[1], bucket[2]]);
    });
    out.window = { windowMs, at: w.at, buckets: parsed };
  }
  return out;
}

/**
 * A circuit breaker. Closed, it counts outcomes; when failures cross the threshold it opens and rejects
 * every call with a `BrokenCircuitError` for `halfOpenAfter`; then, half-open, it lets `halfOpenTrials`
 * trial calls through at a time: `halfOpenSuccesses` successful trials close it, a failed trial re-opens it.
 * `isolate()` holds it open by hand until `reset()`.
 */
export class CircuitBreaker extends BasePolicy {
  readonly kind = 'circuitBreaker';
  readonly name: string;
  readonly stage: Stage;

  private readonly clock: Clock;
  private readonly events: EventSink;
  private readonly calls: SourceEvents;
  private readonly random: Random | undefined;
  /** Consecutive strategy threshold, or 0 with the sliding-window failure ratio. */
  private readonly threshold: number;
  private readonly failureRatio: number;
  private readonly slowRatio: number;
  /** Slow-call threshold in ms, or -1 when slow calls are not detected. */
  private readonly slowMs: number;
  private readonly minimumThroughput: number;
  private readonly window: SlidingWindow | undefined;
  private readonly halfOpenMs: number;
  private readonly backoff: Backoff | undefined;
  private readonly halfOpenTrials: number;
  private readonly halfOpenSuccesses: number;
  private readonly isFailure: (error: unknown) => boolean;

  private s: State = CLOSED;
  /** Bumped at every transition: a token from an older epoch is not counted. */
  private epoch = 0;
  /** Bumped by `reset()` and `isolate()`, which release every trial slot. */
  private slotGeneration = 0;
  private consecutive = 0;
  private trialsRunning = 0;
  private trialSuccesses = 0;
  private reopenCount = 0;
  private openedAt = Number.NaN;
  private openUntil = Number.NaN;
  /** The backoff step the current open period waited. */
  private step: Backoff | undefined;

  constructor(options: CircuitBreakerOptions = {}) {
    super();
    knownKeys(WHERE, options, KEYS);
    const { name, runtime } = commonOptions(WHERE, options);
    this.name = name;
    this.clock = runtime.clock;
    this.events = runtime.events;
    this.calls = runtime.events.source(name, WHERE);

    const o = options;
    const ratioMode = o.failureRatio !== undefined;
    if (ratioMode && o.consecutiveFailures !== undefined) {
      throw invalid(
        WHERE,
        'consecutiveFailures',
        o.consecutiveFailures,
        'absent when "failureRatio" is set (choose one strategy)',
      );
    }
    this.threshold = ratioMode ? 0 : intOption(WHERE, 'consecutiveFailures', o.consecutiveFailures, 5, 1);
    this.failureRatio = ratioMode ? ratioOption(WHERE, 'failureRatio', o.failureRatio, 1, true) : 0;

    if ((o.slowCallDuration === undefined) !== (o.slowCallRatio === undefined)) {
      const [set, missing] =
        o.slowCallDuration === undefined
          ? ['slowCallRatio', 'slowCallDuration']
          : ['slowCallDuration', 'slowCallRatio'];
      throw new TypeError(`${WHERE}: option "${set}" requires "${missing}" (slow-call detection needs both)`);
    }
    const slowMode = o.slowCallRatio !== undefined;
    this.slowMs = slowMode ? durationOption(WHERE, 'slowCallDuration', o.slowCallDuration, 0, 0, true) : -1;
    this.slowRatio = slowMode ? ratioOption(WHERE, 'slowCallRatio', o.slowCallRatio, 1, true) : 0;

    if (ratioMode || slowMode) {
      const windowMs = durationOption(WHERE, 'window', o.window, 10_000, 0, true);
      const buckets = intOption(WHERE, 'buckets', o.buckets, 10, 1, 100_000);
      this.window = new SlidingWindow(windowMs, buckets);
      this.minimumThroughput = intOption(WHERE, 'minimumThroughput', o.minimumThroughput, 10, 1);
    } else {
      for (const key of ['window', 'buckets', 'minimumThroughput'] as const) {
        if (o[key] !== undefined) {
          throw new TypeError(
            `${WHERE}: option "${key}" applies only to the sliding window; set "failureRatio" or "slowCallRatio" too`,
          );
        }
      }
      this.window = undefined;
      this.minimumThroughput = 0;
    }

    const halfOpenAfter = o.halfOpenAfter;
    if (typeof halfOpenAfter === 'object' && halfOpenAfter !== null) {
      if (!isBackoff(halfOpenAfter)) {
        throw invalid(
          WHERE,
          'halfOpenAfter',
          halfOpenAfter,
          'a duration or a Backoff (e.g. backoff.exponential())',
        );
      }
      this.backoff = halfOpenAfter;
      this.halfOpenMs = 0;
      this.random = runtime.random.fork(`${WHERE}:${name}`);
    } else {
      this.backoff = undefined;
      this.halfOpenMs = durationOption(WHERE, 'halfOpenAfter', halfOpenAfter, 30_000);
      this.random = undefined;
    }
    this.halfOpenTrials = intOption(WHERE, 'halfOpenTrials', o.halfOpenTrials, 1, 1);
    this.halfOpenSuccesses = intOption(WHERE, 'halfOpenSuccesses', o.halfOpenSuccesses, 1, 1);
    this.isFailure =
      functionOption<(error: unknown) => boolean>(WHERE, 'isFailure', o.isFailure) ?? notCancelled;

    const snapshot =
      o.restore === undefined
        ? undefined
        : parseSnapshot(o.restore, this.window?.windowMs, this.window?.size ?? 0);
    if (snapshot?.consecutiveFailures !== undefined && this.threshold === 0) {
      throw invalid(
        WHERE,
        'restore.consecutiveFailures',
        snapshot.consecutiveFailures,
        'absent: this breaker uses the failure-ratio strategy',
      );
    }

    const interceptor: Interceptor<unknown> = {
      enter: (_call, time) => this.admit(time),
      exit: (token, ok, error, time) => this.settle(token, ok, error, time),
      // The runner times and reports the admitted calls; the breaker reports the ones it rejects.
      reports: {
        calls: this.calls,
        clock: this.clock,
        failedAs: (_token, error) => (isBulwarkError(error, 'CANCELLED') ? CANCELLED : FAILURE),
      },
    };
    this.stage = { kind: 'intercept', interceptor };

    const events = this.events;
    if (events.listening) {
      events.emit({ type: 'policy.created', source: name, at: this.clock.now(), kind: WHERE });
    }
    if (snapshot !== undefined) this.load(snapshot);
  }

  /**
   * The state now. An open breaker whose `halfOpenAfter` has passed reads `'half-open'` (and makes that
   * transition, emitting its event, if no call has done so yet).
   */
  get state(): CircuitStateName {
    if (this.s === OPEN) this.refresh(this.clock.now());
    return NAMES[this.s] as CircuitStateName;
  }

  /** Holds the breaker open: every call is rejected with an `IsolatedCircuitError` until `reset()`. */
  isolate(): void {
    if (this.s === ISOLATED) return;
    this.slotGeneration++;
    this.trialsRunning = 0;
    this.transition(ISOLATED, 'isolate', Number.NaN);
  }

  /** Closes the breaker and clears every counter (calls in flight are no longer counted). */
  reset(): void {
    this.clearCounters();
    this.slotGeneration++;
    this.trialsRunning = 0;
    if (this.s === CLOSED) this.epoch++;
    else this.transition(CLOSED, 'reset', Number.NaN);
  }

  /** Counters for dashboards: the consecutive failure count or the window's counts, trials, re-opens. */
  stats(): CircuitBreakerStats {
    const state = this.state;
    const out: CircuitBreakerStats = {
      state,
      trialsRunning: this.trialsRunning,
      trialSuccesses: this.s === HALF_OPEN ? this.trialSuccesses : 0,
      reopenCount: this.reopenCount,
    };
    if (this.threshold > 0) out.consecutiveFailures = this.consecutive;
    const w = this.window;
    if (w !== undefined) {
      w.roll(this.clock.now());
      out.window = { calls: w.totalCalls, failures: w.totalFailures, slowCalls: w.totalSlow };
    }
    if (this.s === OPEN || this.s === HALF_OPEN) out.openedAt = this.openedAt;
    if (this.s === OPEN) out.halfOpenAt = this.openUntil;
    return out;
  }

  /**
   * A plain snapshot of the breaker, to persist and pass back as the `restore` option.
   * @example
   * const saved = JSON.stringify(breaker);
   * const again = circuitBreaker({ ...options, restore: JSON.parse(saved) });
   */
  toJSON(): CircuitBreakerSnapshot {
    const state = this.state;
    const out: CircuitBreakerSnapshot = { state, reopenCount: this.reopenCount };
    if (this.s === OPEN || this.s === HALF_OPEN) out.openedAt = this.openedAt;
    if (this.threshold > 0) out.consecutiveFailures = this.consecutive;
    if (this.window !== undefined) out.window = this.window.snapshot(this.clock.now());
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // The interceptor

  private admit(time: SharedTime): unknown {
    if (this.s === CLOSED) {
      // Only the slow-call rule needs the call's start.
      if (this.slowMs < 0) return this.epoch;
      return new Admission(this.epoch, time.now(this.clock), -1);
    }
    return this.admitOther(time);
  }

  private admitOther(time: SharedTime): Admission {
    const now = time.now(this.clock);
    if (this.s === OPEN) this.refresh(now);
    if (this.s === HALF_OPEN && this.trialsRunning < this.halfOpenTrials) {
      this.trialsRunning++;
      return new Admission(this.epoch, now, this.slotGeneration);
    }
    const state = this.s;
    const error =
      state === ISOLATED
        ? new IsolatedCircuitError(`circuit "${this.name}" is isolated`)
        : new BrokenCircuitError(
            state === OPEN
              ? `circuit "${this.name}" is open`
              : `circuit "${this.name}" is half-open and all ${this.halfOpenTrials} trial call slots are taken`,
          );
    const events = this.events;
    if (events.listening) {
      events.emit({
        type: 'circuit.rejected',
        source: this.name,
        at: now,
        state: NAMES[state] as CircuitStateName,
      });
      if (events.wants('call')) this.calls.call(now, REJECTED, 0, error);
    }
    throw error;
  }

  private settle(token: unknown, ok: boolean, error: unknown, time: SharedTime): unknown {
    let epoch: number;
    let start = Number.NaN;
    if (typeof token === 'number') epoch = token;
    else {
      const admission = token as Admission;
      epoch = admission.epoch;
      start = admission.start;
      if (admission.slots >= 0 && admission.slots === this.slotGeneration) this.trialsRunning--;
    }
    let failed = false;
    if (!ok) {
      try {
        failed = !!this.isFailure(error);
      } catch {
        failed = true;
      }
    }
    // Ignored errors, and calls admitted before the last transition, leave the counters alone.
    if (epoch !== this.epoch || (!ok && !failed)) return error;
    if (this.s === CLOSED) this.recordClosed(failed, start, time);
    else this.recordTrial(failed, start, time.now(this.clock));
    return error;
  }

  private recordClosed(failed: boolean, start: number, time: SharedTime): void {
    const threshold = this.threshold;
    if (threshold > 0) {
      if (!failed) this.consecutive = 0;
      else if (++this.consecutive >= threshold) {
        this.open('failure-threshold', time.now(this.clock));
        return;
      }
    }
    const w = this.window;
    if (w === undefined) return;
    const now = time.now(this.clock);
    const slow = this.slowMs >= 0 && now - start > this.slowMs;
    w.add(now, failed, slow);
    const calls = w.totalCalls;
    if (calls < this.minimumThroughput) return;
    if (failed && threshold === 0 && w.totalFailures / calls >= this.failureRatio)
      this.open('failure-ratio', now);
    else if (slow && w.totalSlow / calls >= this.slowRatio) this.open('slow-call-ratio', now);
  }

  private recordTrial(failed: boolean, start: number, now: number): void {
    if (failed) {
      this.open('trial-failed', now);
      return;
    }
    // A slow trial says the dependency has not recovered: treat it like a failed one.
    if (this.slowMs >= 0 && now - start > this.slowMs) {
      this.open('trial-slow', now);
      return;
    }
    if (++this.trialSuccesses >= this.halfOpenSuccesses) {
      this.clearCounters();
      this.transition(CLOSED, 'trial-succeeded', now);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Transitions

  private refresh(now: number): void {
    if (this.s === OPEN && now >= this.openUntil) this.transition(HALF_OPEN, 'half-open-after', now);
  }

  private open(reason: string, now: number): void {
    if (Number.isNaN(now)) now = this.clock.now();
    const reopen = this.s === HALF_OPEN;
    this.reopenCount = reopen ? this.reopenCount + 1 : 0;
    this.openedAt = now;
    this.openUntil = now + this.nextDelay(reopen);
    this.transition(OPEN, reason, now);
  }

  /** The wait of the open period starting now; advances the backoff on a re-open. */
  private nextDelay(reopen: boolean): number {
    const initial = this.backoff;
    if (initial === undefined) return this.halfOpenMs;
    const step = reopen && this.step !== undefined ? this.step.next(this.random) : initial.next(this.random);
    this.step = step;
    return waitOf(step);
  }

  private clearCounters(): void {
    this.consecutive = 0;
    this.window?.clear();
    this.reopenCount = 0;
    this.step = undefined;
    this.openedAt = Number.NaN;
    this.openUntil = Number.NaN;
  }

  private transition(to: State, reason: string, now: number): void {
    const from = this.s;
    this.s = to;
    this.epoch++;
    if (to === HALF_OPEN) this.trialSuccesses = 0;
    const events = this.events;
    if (events.listening) {
      events.emit({
        type: 'circuit.transition',
        source: this.name,
        at: Number.isNaN(now) ? this.clock.now() : now,
        from: NAMES[from] as CircuitStateName,
        to: NAMES[to] as CircuitStateName,
        reason,
      });
    }
  }

  private load(snapshot: CircuitBreakerSnapshot): void {
    const now = this.clock.now();
    this.consecutive = snapshot.consecutiveFailures ?? 0;
    if (snapshot.window !== undefined) this.window?.load(snapshot.window, now);
    const state = STATES[snapshot.state] as State;
    if (state === CLOSED) return;
    this.reopenCount = snapshot.reopenCount;
    if (state === OPEN || state === HALF_OPEN) {
      // A snapshot from a clock ahead of this one (another time base) cannot hold the breaker open longer
      // than one full period from now.
      this.openedAt = Math.min(snapshot.openedAt ?? now, now);
      let delay = this.halfOpenMs;
      const initial = this.backoff;
      if (initial !== undefined) {
        let step = initial.next(this.random);
        for (let i = 0; i < snapshot.reopenCount; i++) step = step.next(this.random);
        this.step = step;
        delay = waitOf(step);
      }
      this.openUntil = this.openedAt + delay;
    }
    this.transition(state, 'restore', now);
  }
}

/**
 * A circuit breaker policy. By default it opens after 5 consecutive failures, rejects calls with a
 * `BrokenCircuitError` for 30 s, then lets one trial call through: its success closes the breaker, its
 * failure re-opens it.
 *
 * @example
 * const breaker = circuitBreaker({ failureRatio: 0.5, window: '30s', minimumThroughput: 20, halfOpenAfter: '10s' });
 * const user = await breaker.execute(({ signal }) => fetchUser(id, { signal }));
 * breaker.state; // 'closed' | 'open' | 'half-open' | 'isolated'
 */
export function circuitBreaker(options?: CircuitBreakerOptions): CircuitBreaker {
  return new CircuitBreaker(options);
}
