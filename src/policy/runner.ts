/**
 * Compiles stages into executors. Consecutive interceptors (and at most one retry loop around them)
 * become one `Segment`: one promise per call however many policies it holds.
 */
import type { Clock } from '../core/clock.js';
import { CancelledError } from '../core/errors.js';
import type { EventSink, SourceEvents, SourceGroup } from '../core/events.js';
import { FAILURE, SUCCESS } from './call-event.js';
import { Call } from './context.js';
import type {
  AbandonTarget,
  CallReporting,
  Interceptor,
  Policy,
  RetryLoop,
  SharedTime,
  Stage,
  Task,
} from './policy.js';

/** Runs `fn` through the compiled layers. */
export type Executor = <T>(fn: Task<T>, call: Call) => Promise<T>;

type Wrap = Extract<Stage, { kind: 'wrap' }>;

function invoke<T>(fn: Task<T>, call: Call): Promise<T> {
  try {
    const result = fn(Call.forFunction(call));
    return result instanceof Promise ? result : Promise.resolve(result);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * What every attempt of one call shares: the segment, the function, the caller's call, the loop's watch,
 * and the time of the current boundary (see {@link SharedTime}).
 *
 * In a segment with no aggressive layer it also runs the first attempt ({@link enterFrom}): nothing can
 * settle the caller before the inner call does, so the caller's promise is the inner promise's `then` —
 * two promises per call instead of three. A call that must retry switches to {@link Attempt}, which
 * settles one promise however many attempts follow. One object, of a class that extends none, per call:
 * a derived class's construction was the most expensive step of a call through a pipeline.
 */
class CallRun<T> implements SharedTime, EntryTimes {
  /** The loop's watch, set once `begin` returned. */
  watch: unknown = undefined;
  /** When the call began, for a loop whose calls the runner reports (undefined: not timed). */
  private began: number | undefined = undefined;
  /** The clock read at the current boundary (undefined: none yet) and what it read. */
  private readClock: Clock | undefined = undefined;
  private readTime = 0;
  /** Counts the boundaries: layers entering within one entered at the same time (per clock). */
  boundary = 0;

  // The first attempt, when it runs on this object: each layer's token, how many layers entered, the call
  // the next inner layer sees, and the layers' entry times (see EntryTimes).
  readonly tokens: unknown[];
  entered = 0;
  inner: Call;
  start: number | undefined = undefined;
  startClock: Clock | undefined = undefined;
  startBoundary = 0;
  shared = 0;
  own: number[] | undefined = undefined;

  constructor(
    readonly segment: Segment,
    readonly fn: Task<T>,
    /** The call the segment was given (its scope is the caller's). */
    readonly call: Call,
    /** The call of the first attempt, when it runs on this object ({@link enterFrom}); undefined otherwise. */
    current: Call | undefined,
  ) {
    const count = segment.count;
    this.tokens = current === undefined || count === 0 ? NO_TOKENS : new Array<unknown>(count);
    this.inner = current ?? call;
  }

  now(clock: Clock): number {
    if (clock !== this.readClock) {
      this.readTime = clock.now();
      this.readClock = clock;
    }
    return this.readTime;
  }

  /** Time may have passed (an await, the inner call): the next layer that asks reads the clock again. */
  newBoundary(): void {
    this.readClock = undefined;
    this.boundary++;
  }

  /** Calls the loop's `begin` for the first attempt, at the time the layers enter. */
  begin(current: Call): void {
    const reports = this.segment.loopReport;
    if (reports?.sink.wants('call')) this.began = this.now(reports.clock);
    const begin = this.segment.loop?.begin;
    if (begin !== undefined) this.watch = begin(current, this);
  }

  /** Tells the loop the call ended (once), then returns; `gaveUp`: see `RetryLoop.end`. */
  end(ok: boolean, outcome: unknown, gaveUp = false): void {
    const reports = this.segment.loopReport;
    const began = this.began;
    if (reports !== undefined && began !== undefined && reports.sink.wants('call')) {
      const at = this.now(reports.clock);
      if (ok && !gaveUp) reports.calls.call(at, SUCCESS, at - began, undefined);
      else if (ok) reports.calls.call(at, FAILURE, at - began, outcome);
      else report(reports, this.call.scope, outcome, at, began);
    }
    const loop = this.segment.loop;
    if (loop?.end === undefined) return;
    try {
      loop.end(this.watch, ok, outcome, this.call.scope, this, gaveUp);
    } catch (error) {
      reportAsync(error);
    }
  }

  /**
   * Asks the loop what follows a failed attempt (or a result it may retry): the next step, or undefined to
   * give up. A throwing decision gives up with its error.
   */
  decide(outcome: unknown, isResult: boolean, attempt: number, state: unknown): Decision {
    const loop = this.segment.loop;
    if (loop === undefined) return GIVE_UP;
    try {
      const step = loop.afterFailure(outcome, isResult, attempt, state, this.call.scope, this.watch);
      return step === undefined ? GIVE_UP : step;
    } catch (error) {
      return { error };
    }
  }

  enterFrom(first: number): Promise<T> {
    const interceptors = this.segment.interceptors;
    const count = interceptors.length;
    for (let i = first; i < count; i++) {
      const interceptor = interceptors[i] as Interceptor;
      let token: unknown;
      try {
        token = interceptor.enter(this.inner, this);
      } catch (error) {
        return this.failed(error);
      }
      const reports = this.segment.reports[i];
      if (reports !== undefined) timeEntry(this, this, i, reports);
      if (token instanceof Promise) {
        return token.then(
          (admitted: unknown) => {
            this.newBoundary();
            return this.admit(interceptor, i, admitted) ?? this.enterFrom(i + 1);
          },
          (error: unknown) => this.failed(error),
        );
      }
      const refused = this.admit(interceptor, i, token);
      if (refused !== undefined) return refused;
    }
    const { fn, segment } = this;
    let pending: T | PromiseLike<T>;
    try {
      pending = segment.next === undefined ? fn(Call.forFunction(this.inner)) : segment.next(fn, this.inner);
    } catch (error) {
      return this.failed(error);
    }
    if (pending instanceof Promise) {
      return pending.then(
        (value: T) => this.succeeded(value),
        (error: unknown) => this.failed(error),
      );
    }
    if ((typeof pending === 'object' && pending !== null) || typeof pending === 'function') {
      return Promise.resolve(pending).then(
        (value: T) => this.succeeded(value),
        (error: unknown) => this.failed(error),
      );
    }
    const result = this.succeeded(pending as T);
    return result instanceof Promise ? result : Promise.resolve(result);
  }

  /** Records an admitted layer; a rejected promise when its `inner` hook threw. */
  private admit(interceptor: Interceptor, layer: number, token: unknown): Promise<T> | undefined {
    this.tokens[layer] = token;
    this.entered = layer + 1;
    if (interceptor.inner === undefined) return undefined;
    try {
      this.inner = interceptor.inner(token, this.inner);
    } catch (error) {
      return this.failed(error);
    }
    return undefined;
  }

  private succeeded(value: T): T | Promise<T> {
    this.newBoundary();
    const segment = this.segment;
    const from = this.entered - 1;
    const error = exitLayers(segment, this.tokens, from, 0, true, value, this, this);
    if (error !== OK) return this.afterExit(false, error);
    const loop = segment.loop;
    const retryResult = loop?.retryResult;
    if (loop === undefined || retryResult === undefined) {
      // Nothing runs between the exits and the end of the call: the loop's call can be reported with the
      // layers'.
      if ((loop === undefined || !this.reportedWithLoop(from)) && isTimed(this)) {
        reportSucceeded(segment, from, 0, this, this);
      }
      if (loop !== undefined) this.end(true, value);
      return value;
    }
    // The layers' calls ended with their exits: report them before the loop's predicate runs (its time is
    // not theirs), as for an attempt after a retry.
    if (isTimed(this)) reportSucceeded(segment, from, 0, this, this);
    let again: boolean;
    try {
      again = retryResult(value) === true;
    } catch (decisionError) {
      this.end(false, decisionError);
      return Promise.reject(decisionError);
    }
    if (again) return this.afterExit(true, value);
    this.end(true, value);
    return value;
  }

  /**
   * The call succeeded at its first attempt and the loop has no result predicate: when every layer and the
   * loop were timed together (the loop's call began when the layers entered), reports all their calls at
   * once and leaves none for `end` to report. False when they were not.
   */
  private reportedWithLoop(from: number): boolean {
    const segment = this.segment;
    const group = segment.callGroup;
    const start = this.start;
    if (
      group === undefined ||
      start === undefined ||
      this.began !== start ||
      this.startClock !== segment.loopReport?.clock ||
      from !== segment.count - 1 ||
      (this.shared & segment.groupMask) !== segment.groupMask
    ) {
      return false;
    }
    this.began = undefined;
    if (group.sink.wants('call')) {
      const at = this.now(this.startClock as Clock);
      group.succeeded(at, at - start);
    }
    return true;
  }

  private failed(thrown: unknown): Promise<T> {
    this.newBoundary();
    const error = exitLayers(this.segment, this.tokens, this.entered - 1, 0, false, thrown, this, this);
    return this.afterExit(false, error);
  }

  /** After a failed attempt (or a result to retry): give up, or retry through {@link Attempt}. */
  private afterExit(ok: boolean, outcome: unknown): Promise<T> {
    if (this.segment.loop === undefined) return Promise.reject(outcome);
    const decision = this.decide(outcome, ok, 1, undefined);
    if (decision === GIVE_UP) {
      this.end(ok, outcome, ok);
      return ok ? Promise.resolve(outcome as T) : Promise.reject(outcome);
    }
    if ('error' in decision) {
      this.end(false, decision.error);
      return Promise.reject(decision.error);
    }
    return new Promise<T>((resolve, reject) => nextAttempt(this, decision, 2, resolve, reject));
  }
}

type Decision = { readonly delay: number } | typeof GIVE_UP | { readonly error: unknown };
const GIVE_UP: unique symbol = Symbol('give up');

function reportAsync(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/** Calls `onValue` / `onError` when `pending` settles; a plain value settles synchronously. */
function observe<T>(
  pending: T | PromiseLike<T>,
  onValue: (value: T) => void,
  onError: (error: unknown) => void,
): void {
  if (pending instanceof Promise) {
    pending.then(onValue, onError);
  } else if ((typeof pending === 'object' && pending !== null) || typeof pending === 'function') {
    // Any other object may be a thenable (even one whose `then` getter throws): let Promise.resolve judge.
    Promise.resolve(pending).then(onValue, onError);
  } else {
    onValue(pending as T);
  }
}

/**
 * The entry times of an attempt's layers that let the runner report their calls ({@link CallReporting}).
 * Layers entering at one boundary on one clock share one reading (the usual case: one number, no array).
 */
interface EntryTimes {
  /** When the first reported layer entered, on `startClock` (undefined: none yet), at boundary `startBoundary`. */
  start: number | undefined;
  startClock: Clock | undefined;
  startBoundary: number;
  /** Bit `i`: layer `i` (below {@link SHARED_BITS}) is reported and entered at `start`. */
  shared: number;
  /** The entry times of reported layers that entered at another time or on another clock, or from layer 31 on. */
  own: number[] | undefined;
}

const SHARED_BITS = 31;

/**
 * An interceptor's {@link CallReporting}, copied once when the segment is compiled into an object of one
 * shape: the layers' own objects have many, and the runner reads these fields twice per layer and call.
 */
class LayerReport {
  readonly calls: SourceEvents;
  readonly sink: EventSink;
  readonly clock: Clock;
  private readonly reporting: CallReporting;

  constructor(reporting: CallReporting) {
    this.reporting = reporting;
    this.calls = reporting.calls;
    this.sink = reporting.calls.sink;
    this.clock = reporting.clock;
  }

  failedAs(token: unknown, error: unknown): number {
    return this.reporting.failedAs(token, error);
  }
}

/** Layer `layer` was just entered (admitted, or waiting to be): keep its entry time if its calls are reported. */
function timeEntry(times: EntryTimes, run: CallRun<unknown>, layer: number, reports: LayerReport): void {
  if (!reports.sink.wants('call')) return;
  const clock = reports.clock;
  if (layer < SHARED_BITS) {
    if (times.startClock === undefined) {
      times.start = run.now(clock);
      times.startClock = clock;
      times.startBoundary = run.boundary;
      times.shared = 1 << layer;
      return;
    }
    if (clock === times.startClock && run.boundary === times.startBoundary) {
      times.shared |= 1 << layer;
      return;
    }
  }
  if (times.own === undefined) times.own = [];
  times.own[layer] = run.now(clock);
}

/**
 * Reports the failed call of a layer (or a loop) that entered at `start` and just exited with `error`
 * (what its exit returned), at `at` on its clock.
 */
function report(reports: LayerReport, token: unknown, error: unknown, at: number, start: number): void {
  let outcome: number;
  try {
    outcome = reports.failedAs(token, error);
  } catch (thrown) {
    reportAsync(thrown);
    return;
  }
  reports.calls.call(at, outcome, at - start, error);
}

/**
 * One attempt of one call through a segment that holds an aggressive layer, or of a call that retries: it
 * settles the caller's promise itself, so an aggressive timeout can release the caller before the inner
 * call settles, and a long retry loop holds one promise however many attempts it makes.
 *
 * Layers `[low, entered)` are waiting for the inner call to settle; layers below `low` have exited
 * already because an aggressive layer abandoned the attempt.
 */
class Attempt<T> implements AbandonTarget, EntryTimes {
  readonly tokens: unknown[];
  entered = 0;
  low = 0;
  settled = false;
  inner: Call;
  start: number | undefined = undefined;
  startClock: Clock | undefined = undefined;
  startBoundary = 0;
  shared = 0;
  own: number[] | undefined = undefined;

  constructor(
    readonly run: CallRun<T>,
    readonly resolve: (value: T) => void,
    readonly reject: (error: unknown) => void,
    readonly attempt: number,
    readonly state: unknown,
    current: Call,
  ) {
    const count = run.segment.count;
    this.tokens = count === 0 ? NO_TOKENS : new Array<unknown>(count);
    this.inner = current;
  }

  enterFrom(first: number): void {
    const interceptors = this.run.segment.interceptors;
    const count = interceptors.length;
    for (let i = first; i < count; i++) {
      if (this.low > 0) {
        // Abandoned while an inner layer was waiting to enter: do not start the call.
        this.settle(false, this.abandonReason());
        return;
      }
      const interceptor = interceptors[i] as Interceptor;
      let token: unknown;
      try {
        token = interceptor.enter(this.inner, this.run);
      } catch (error) {
        this.settle(false, error);
        return;
      }
      const reports = this.run.segment.reports[i];
      if (reports !== undefined) timeEntry(this, this.run, i, reports);
      if (token instanceof Promise) {
        token.then(
          (admitted: unknown) => {
            this.run.newBoundary();
            if (this.admit(i, admitted)) this.enterFrom(i + 1);
          },
          (error: unknown) => this.settle(false, error),
        );
        return;
      }
      if (!this.admit(i, token)) return;
    }
    if (this.low > 0) {
      this.settle(false, this.abandonReason());
      return;
    }
    const { fn, segment } = this.run;
    let pending: T | PromiseLike<T>;
    try {
      pending = segment.next === undefined ? fn(Call.forFunction(this.inner)) : segment.next(fn, this.inner);
    } catch (error) {
      this.settle(false, error);
      return;
    }
    observe(
      pending,
      (value: T) => this.settle(true, value),
      (error: unknown) => this.settle(false, error),
    );
  }

  private abandonReason(): unknown {
    const scope = this.inner.scope;
    return scope.isAborted() ? scope.reason : new CancelledError();
  }

  /** Records an admitted layer; false (and the attempt settled) when one of its hooks threw. */
  private admit(layer: number, token: unknown): boolean {
    const interceptor = this.run.segment.interceptors[layer] as Interceptor;
    this.tokens[layer] = token;
    this.entered = layer + 1;
    try {
      if (interceptor.inner !== undefined) this.inner = interceptor.inner(token, this.inner);
      if (interceptor.arm !== undefined) interceptor.arm(token, this, layer);
    } catch (error) {
      this.settle(false, error);
      return false;
    }
    return true;
  }

  /** The inner call really settled (or an inner layer refused it): exit the layers still waiting. */
  settle(ok: boolean, outcome: unknown): void {
    if (this.settled) return;
    this.settled = true;
    const attached = this.low === 0;
    this.run.newBoundary();
    const error = exitLayers(
      this.run.segment,
      this.tokens,
      this.entered - 1,
      this.low,
      ok,
      outcome,
      this.run,
      this,
    );
    if (error === OK && isTimed(this)) {
      reportSucceeded(this.run.segment, this.entered - 1, this.low, this.run, this);
    }
    this.low = this.entered;
    if (!attached) return;
    if (error === OK) this.finish(true, outcome);
    else this.finish(false, error);
  }

  abandon(layer: number, error: unknown): void {
    if (this.settled || layer < this.low || layer >= this.entered) return;
    const attached = this.low === 0;
    this.run.newBoundary();
    const propagated = exitLayers(
      this.run.segment,
      this.tokens,
      layer,
      this.low,
      false,
      error,
      this.run,
      this,
    );
    this.low = layer + 1;
    if (attached) this.finish(false, propagated);
  }

  /** The attempt ended for the caller: return, reject, or start the next attempt. */
  private finish(ok: boolean, outcome: unknown): void {
    const run = this.run;
    const loop = run.segment.loop;
    if (ok) {
      let again: boolean;
      try {
        again = loop?.retryResult?.(outcome) === true;
      } catch (error) {
        run.end(false, error);
        this.reject(error);
        return;
      }
      if (!again) {
        run.end(true, outcome);
        this.resolve(outcome as T);
        return;
      }
    }
    const decision = run.decide(outcome, ok, this.attempt, this.state);
    if (decision === GIVE_UP) {
      run.end(ok, outcome, ok);
      if (ok) this.resolve(outcome as T);
      else this.reject(outcome);
      return;
    }
    if ('error' in decision) {
      run.end(false, decision.error);
      this.reject(decision.error);
      return;
    }
    nextAttempt(run, decision, this.attempt + 1, this.resolve, this.reject);
  }
}

/** Waits the loop's delay, then starts attempt `attempt` settling the same caller promise. */
function nextAttempt<T>(
  run: CallRun<T>,
  step: { readonly delay: number },
  attempt: number,
  resolve: (value: T) => void,
  reject: (error: unknown) => void,
): void {
  const scope = run.call.scope;
  (run.segment.loop as RetryLoop).wait(step.delay, scope).then(
    () => {
      run.newBoundary();
      new Attempt<T>(run, resolve, reject, attempt, step, new Call(scope, attempt)).enterFrom(0);
    },
    (reason: unknown) => {
      run.newBoundary();
      run.end(false, reason);
      reject(reason);
    },
  );
}

/**
 * Exits layers `from` down to `to` (inclusive); returns OK or the error to propagate. After a failure each
 * layer's call is reported right after its exit (its outcome is what that exit returned). After a success
 * every exit returns OK whatever it does, so the layers all exit first and the caller reports their calls
 * after ({@link reportSucceeded}), together: that keeps the reporting out of the exit loop (small enough
 * for the layers' exits to be inlined into it), reads the exit time once, and lets a retry loop's call be
 * reported with them.
 */
function exitLayers(
  segment: Segment,
  tokens: unknown[],
  from: number,
  to: number,
  ok: boolean,
  outcome: unknown,
  time: SharedTime,
  times: EntryTimes,
): unknown {
  const interceptors = segment.interceptors;
  if (ok) {
    for (let i = from; i >= to; i--) {
      try {
        (interceptors[i] as Interceptor).exit(tokens[i], true, undefined, time);
      } catch (thrown) {
        return exitThrew(segment, tokens, from, i, to, thrown, time, times);
      }
    }
    return OK;
  }
  let error = outcome;
  for (let i = from; i >= to; i--) {
    try {
      error = (interceptors[i] as Interceptor).exit(tokens[i], false, error, time);
    } catch (thrown) {
      // Interceptors must not throw from exit; if one does, its error replaces the outcome.
      error = thrown;
    }
    if (isTimed(times)) reportFailed(segment, tokens, i, error, time, times);
  }
  return error;
}

/**
 * Layer `i`'s exit threw after a success (interceptors must not throw from exit; if one does, its error
 * replaces the outcome): reports the layers inside it as succeeded and layer `i` as failed with that error,
 * then exits the layers outside it as after a failure.
 */
function exitThrew(
  segment: Segment,
  tokens: unknown[],
  from: number,
  i: number,
  to: number,
  thrown: unknown,
  time: SharedTime,
  times: EntryTimes,
): unknown {
  if (isTimed(times)) {
    if (i < from) reportSucceeded(segment, from, i + 1, time, times);
    reportFailed(segment, tokens, i, thrown, time, times);
  }
  return i > to ? exitLayers(segment, tokens, i - 1, to, false, thrown, time, times) : thrown;
}

/**
 * Reports the call of layer `i`, which just exited with `error` (what its exit returned), if the runner
 * timed its entry. Layers that entered together share their exit time: `time` reads a clock once per
 * boundary.
 */
function reportFailed(
  segment: Segment,
  tokens: unknown[],
  i: number,
  error: unknown,
  time: SharedTime,
  times: EntryTimes,
): void {
  const reports = segment.reports[i];
  if (reports === undefined || !reports.sink.wants('call')) return;
  if (i < SHARED_BITS && (times.shared & (1 << i)) !== 0) {
    report(reports, tokens[i], error, time.now(times.startClock as Clock), times.start as number);
  } else {
    const start = times.own?.[i];
    if (start !== undefined) report(reports, tokens[i], error, time.now(reports.clock), start);
  }
}

/** Whether the runner kept an entry time for any layer of the attempt (someone wanted their calls). */
function isTimed(times: EntryTimes): boolean {
  return times.startClock !== undefined || times.own !== undefined;
}

/** Reports the successful calls of layers `from` down to `to`, which just exited, if their entries were timed. */
function reportSucceeded(
  segment: Segment,
  from: number,
  to: number,
  time: SharedTime,
  times: EntryTimes,
): void {
  const group = segment.group;
  if (
    group !== undefined &&
    from === segment.count - 1 &&
    to === 0 &&
    (times.shared & segment.groupMask) === segment.groupMask
  ) {
    // The whole segment, entered together: one report for all its layers.
    if (!group.sink.wants('call')) return;
    const at = time.now(times.startClock as Clock);
    group.succeeded(at, at - (times.start as number));
    return;
  }
  const layerReports = segment.reports;
  // Layers that entered together exit together: one exit time for all of them.
  let at = Number.NaN;
  for (let i = from; i >= to; i--) {
    const reports = layerReports[i];
    if (reports === undefined || !reports.sink.wants('call')) continue;
    if (i < SHARED_BITS && (times.shared & (1 << i)) !== 0) {
      if (Number.isNaN(at)) at = time.now(times.startClock as Clock);
      reports.calls.call(at, SUCCESS, at - (times.start as number), undefined);
    } else {
      const start = times.own?.[i];
      if (start === undefined) continue;
      const end = time.now(reports.clock);
      reports.calls.call(end, SUCCESS, end - start, undefined);
    }
  }
}

const OK: unique symbol = Symbol('ok');
const NO_TOKENS: unknown[] = [];

class Segment {
  readonly count: number;
  readonly run: Executor;
  /** Per layer, how the runner reports its calls (undefined: the layer reports them itself). */
  readonly reports: readonly (LayerReport | undefined)[];
  /** The same for the loop. */
  readonly loopReport: LayerReport | undefined;
  /**
   * The reported layers' call sources as one group, innermost first, when there are several, all on one
   * sink, and the segment has no more than {@link SHARED_BITS} layers: a call that entered all of them
   * together and succeeded is reported to all at once. `groupMask` has their bits.
   */
  readonly group: SourceGroup | undefined;
  readonly groupMask: number;
  /** The same with the loop's call source last, when the loop's calls are reported on that sink too. */
  readonly callGroup: SourceGroup | undefined;

  constructor(
    readonly loop: RetryLoop | undefined,
    readonly interceptors: readonly Interceptor[],
    readonly next: Executor | undefined,
  ) {
    this.count = interceptors.length;
    this.reports = interceptors.map((i) =>
      i.reports === undefined ? undefined : new LayerReport(i.reports),
    );
    this.loopReport = loop?.reports === undefined ? undefined : new LayerReport(loop.reports);
    const reported: SourceEvents[] = [];
    let mask = 0;
    for (let i = this.count - 1; i >= 0; i--) {
      const calls = this.reports[i]?.calls;
      if (calls === undefined) continue;
      reported.push(calls);
      if (i < SHARED_BITS) mask |= 1 << i;
    }
    const sink = reported[0]?.sink;
    const oneSink =
      reported.length > 0 && this.count <= SHARED_BITS && reported.every((calls) => calls.sink === sink);
    this.group = oneSink && reported.length > 1 ? sink?.group(reported) : undefined;
    this.groupMask = oneSink ? mask : 0;
    const loopCalls = this.loopReport?.calls;
    this.callGroup =
      oneSink && loopCalls !== undefined && loopCalls.sink === sink
        ? sink?.group([...reported, loopCalls])
        : undefined;
    this.run = interceptors.some((i) => i.arm !== undefined) ? this.runAbandonable : this.runDirect;
  }

  /** The call of the first attempt: a retry loop numbers its own attempts from 1. */
  private firstCall(call: Call): Call {
    return this.loop === undefined || call.attempt === 1 ? call : new Call(call.scope, 1);
  }

  private readonly runDirect = <T>(fn: Task<T>, call: Call): Promise<T> => {
    const current = this.firstCall(call);
    const attempt = new CallRun<T>(this, fn, call, current);
    attempt.begin(current);
    return attempt.enterFrom(0);
  };

  private readonly runAbandonable = <T>(fn: Task<T>, call: Call): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const current = this.firstCall(call);
      const run = new CallRun<T>(this, fn, call, undefined);
      run.begin(current);
      const attempt = this.loop === undefined ? call.attempt : 1;
      new Attempt<T>(run, resolve, reject, attempt, undefined, current).enterFrom(0);
    });
}

function flatten(stage: Stage, out: Exclude<Stage, { kind: 'pipeline' }>[]): void {
  if (stage.kind === 'pipeline') for (const s of stage.stages) flatten(s, out);
  else out.push(stage);
}

type Part =
  | { kind: 'segment'; loop: RetryLoop | undefined; interceptors: Interceptor[] }
  | { kind: 'wrap'; stage: Wrap };

/** Compiles a stage (possibly a whole pipeline) into one executor. */
export function compile(stage: Stage): Executor {
  const stages: Exclude<Stage, { kind: 'pipeline' }>[] = [];
  flatten(stage, stages);
  const parts: Part[] = [];
  let open: Extract<Part, { kind: 'segment' }> | undefined;
  for (const s of stages) {
    if (s.kind === 'wrap') {
      open = undefined;
      parts.push({ kind: 'wrap', stage: s });
    } else if (s.kind === 'loop') {
      open = { kind: 'segment', loop: s.loop, interceptors: [] };
      parts.push(open);
    } else {
      if (open === undefined) {
        open = { kind: 'segment', loop: undefined, interceptors: [] };
        parts.push(open);
      }
      open.interceptors.push(s.interceptor);
    }
  }
  let next: Executor | undefined;
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i] as Part;
    if (part.kind === 'segment') {
      next = new Segment(part.loop, part.interceptors, next).run;
    } else {
      const inner = next;
      const wrap = part.stage;
      next =
        inner === undefined
          ? <T>(fn: Task<T>, call: Call) => wrap.run<T>((c) => invoke(fn, c), call)
          : <T>(fn: Task<T>, call: Call) => wrap.run<T>((c) => inner(fn, c), call);
    }
  }
  return next ?? (<T>(fn: Task<T>, call: Call) => invoke(fn, call));
}

/** Runs a compiled executor as a policy's `execute`. */
export function executeWith<T>(executor: Executor, fn: Task<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return executor(fn, Call.root(undefined));
  if (signal.aborted) return Promise.reject(new CancelledError(signal.reason));
  const call = Call.root(signal);
  return executor(fn, call).finally(() => call.scope.dispose());
}

/**
 * Base of the built-in policies: `execute` compiles the policy's own stage once, on first use.
 */
export abstract class BasePolicy implements Policy {
  abstract readonly name: string;
  abstract readonly kind: string;
  abstract readonly stage: Stage;

  private executor: Executor | undefined;

  execute<T>(fn: Task<T>, signal?: AbortSignal): Promise<T> {
    // One read of the field: with many kinds of policy in a process, each read is a megamorphic load.
    let executor = this.executor;
    if (executor === undefined) {
      executor = compile(this.stage);
      this.executor = executor;
    }
    return executeWith(executor, fn, signal);
  }
}

export function isPolicy(value: unknown): value is Policy {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Policy).execute === 'function' &&
    typeof (value as Policy).stage === 'object'
  );
}
