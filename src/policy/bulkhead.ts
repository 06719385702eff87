/**
 * Bulkhead: at most `limit` permits in use at once, at most `queue` calls waiting for theirs.
 *
 * Admission is strictly FIFO, also with weighted permits: a call waits while anyone is queued ahead
 * of it, even if enough permits for it alone are free. Letting light calls overtake a heavy one at
 * the head would starve the heavy one for as long as light calls keep arriving.
 *
 * The waiting queue is a doubly linked list of waiters, so enqueueing, admitting and removing an
 * aborted waiter are all O(1).
 */
import type { Clock } from '../core/clock.js';
import { BulkheadRejectedError, CancelledError } from '../core/errors.js';
import type { EventSink, SourceEvents, SourceState } from '../core/events.js';
import { CANCELLED, FAILURE, REJECTED, SUCCESS } from './call-event.js';
import { type Call, Scope } from './context.js';
import { commonOptions, intOption, knownKeys } from './options.js';
import {
  type CallReporting,
  type Interceptor,
  type Policy,
  type PolicyOptions,
  READ_EACH_TIME,
  type SharedTime,
  type Stage,
} from './policy.js';
import { BasePolicy } from './runner.js';
import { WaitQueue } from './wait-queue.js';

/** Options of {@link bulkhead}. */
export interface BulkheadOptions extends PolicyOptions {
  /**
   * Permits that may be in use at once: with unweighted calls, how many execute concurrently.
   * `Infinity` disables the limit.
   * @defaultValue 10
   */
  limit?: number;
  /**
   * Calls that may wait for permits when none are free; further calls are rejected with a
   * `BulkheadRejectedError`. `Infinity` for an unbounded queue.
   * @defaultValue 0
   */
  queue?: number;
}

class Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  queued = true;
  unsubscribe: (() => void) | undefined = undefined;

  constructor(
    readonly weight: number,
    readonly enqueuedAt: number,
    readonly resolve: (value: undefined) => void,
    readonly reject: (reason: unknown) => void,
  ) {}
}

const KEYS = ['limit', 'queue'] as const;

/**
 * The state shared by a bulkhead and its weighted views; also what meters read of it (`SourceState`:
 * `capacity` is the limit, as in `bulkhead.changed`).
 */
class Permits implements SourceState {
  active = 0;
  private readonly waiters = new WaitQueue<Waiter>();

  get queued(): number {
    return this.waiters.size;
  }

  get capacity(): number {
    return this.limit;
  }
  readonly clock: Clock;
  private readonly events: EventSink;
  readonly calls: SourceEvents;

  constructor(
    readonly name: string,
    readonly limit: number,
    /** Calls that may wait. */
    readonly queueCapacity: number,
    runtime: { clock: Clock; events: EventSink },
  ) {
    this.clock = runtime.clock;
    this.events = runtime.events;
    // Meters that read the permits when they need them (a gauge at scrape time) are not told of each change.
    this.calls = runtime.events.source(name, 'bulkhead', this);
  }

  /**
   * Takes `weight` permits: synchronously when free, else a promise of its turn. Throws to reject. The
   * caller reports the call once admitted (the pipeline runner does, for the interceptor).
   */
  admit(weight: number, scope: Scope, time: SharedTime): undefined | Promise<undefined> {
    if (this.waiters.head === undefined && this.active + weight <= this.limit) {
      this.active += weight;
      if (this.events.listening && this.calls.wantsBulkheadChanged()) this.emitChanged(time.now(this.clock));
      return undefined;
    }
    return this.enqueue(weight, scope, time);
  }

  private enqueue(weight: number, scope: Scope, time: SharedTime): Promise<undefined> {
    const now = time.now(this.clock);
    if (scope.isAborted()) {
      const reason = scope.reason;
      if (this.events.listening) this.emitCall(now, CANCELLED, 0, reason);
      throw reason;
    }
    if (this.queued >= this.queueCapacity) {
      const error = new BulkheadRejectedError(this.active, this.queued);
      const events = this.events;
      if (events.listening) {
        if (events.wants('bulkhead.rejected')) {
          events.emit({
            type: 'bulkhead.rejected',
            source: this.name,
            at: now,
            active: this.active,
            queued: this.queued,
          });
        }
        this.emitCall(now, REJECTED, 0, error);
      }
      throw error;
    }
    let waiter!: Waiter;
    const promise = new Promise<undefined>((resolve, reject) => {
      waiter = new Waiter(weight, now, resolve, reject);
    });
    this.waiters.push(waiter);
    waiter.unsubscribe = scope.onAbort((reason) => this.cancel(waiter, reason));
    if (this.calls.wantsBulkheadChanged()) this.emitChanged(now);
    return promise;
  }

  /** Gives back `weight` permits and admits the waiters that now fit, in order. */
  release(weight: number, time: SharedTime): void {
    this.active -= weight;
    if (this.waiters.head !== undefined) this.drain();
    if (this.events.listening && this.calls.wantsBulkheadChanged()) this.emitChanged(time.now(this.clock));
  }

  /** The start of a call timed by the bulkhead itself (`acquire`), when someone listens for `call` events. */
  callStart(): number | undefined {
    return this.events.wants('call') ? this.clock.now() : undefined;
  }

  /** Reports a call timed by the bulkhead itself (`acquire` to release), started at `start`. */
  reportCall(start: number | undefined): void {
    if (start === undefined) return;
    const now = this.clock.now();
    this.emitCall(now, SUCCESS, now - start, undefined);
  }

  private drain(): void {
    let waiter = this.waiters.head;
    while (waiter !== undefined && this.active + waiter.weight <= this.limit) {
      this.active += waiter.weight;
      this.unlink(waiter);
      waiter.unsubscribe?.();
      waiter.resolve(undefined);
      waiter = this.waiters.head;
    }
  }

  private cancel(waiter: Waiter, reason: unknown): void {
    if (!waiter.queued) return;
    const wasHead = waiter === this.waiters.head;
    this.unlink(waiter);
    waiter.reject(reason);
    // The waiter at the head may have been holding back lighter ones behind it.
    if (wasHead) this.drain();
    const events = this.events;
    if (!events.listening) return;
    const now = this.clock.now();
    if (this.calls.wantsBulkheadChanged()) this.emitChanged(now);
    this.emitCall(now, CANCELLED, now - waiter.enqueuedAt, reason);
  }

  private unlink(waiter: Waiter): void {
    this.waiters.remove(waiter);
  }

  private emitChanged(at: number): void {
    this.calls.bulkheadChanged(at, this.active, this.queued, this.limit);
  }

  /** `outcome`: its index in `CALL_OUTCOMES`. */
  private emitCall(at: number, outcome: number, durationMs: number, error: unknown): void {
    if (this.events.wants('call')) this.calls.call(at, outcome, durationMs, error);
  }
}

class BulkheadInterceptor implements Interceptor<undefined>, CallReporting<undefined> {
  readonly calls: SourceEvents;
  readonly clock: Clock;
  /** The runner times and reports the admitted calls (from the moment they asked, so a wait counts). */
  readonly reports: CallReporting<undefined> = this;

  constructor(
    private readonly permits: Permits,
    private readonly weight: number,
  ) {
    this.calls = permits.calls;
    this.clock = permits.clock;
  }

  enter(call: Call, time: SharedTime): undefined | Promise<undefined> {
    return this.permits.admit(this.weight, call.scope, time);
  }

  exit(_token: undefined, _ok: boolean, error: unknown, time: SharedTime): unknown {
    this.permits.release(this.weight, time);
    return error;
  }

  failedAs(): number {
    return FAILURE;
  }
}

/** A policy whose calls take `weight` permits of a bulkhead. */
class WeightedBulkhead extends BasePolicy {
  readonly kind = 'bulkhead';
  readonly name: string;
  readonly stage: Stage;

  constructor(
    permits: Permits,
    readonly weight: number,
  ) {
    super();
    this.name = permits.name;
    this.stage = { kind: 'intercept', interceptor: new BulkheadInterceptor(permits, weight) };
  }
}

function checkWeight(where: string, weight: unknown, limit: number): number {
  if (typeof weight === 'number' && Number.isInteger(weight) && weight >= 1 && weight <= limit) return weight;
  const range = limit === Number.POSITIVE_INFINITY ? 'an integer >= 1' : `an integer from 1 to ${limit}`;
  throw new TypeError(
    `${where}: weight must be ${range} (the bulkhead's limit), got ${typeof weight === 'number' ? weight : typeof weight}`,
  );
}

/**
 * Limits how many calls run at once, with an optional FIFO waiting queue. Created by {@link bulkhead}.
 */
export class Bulkhead extends BasePolicy {
  readonly kind = 'bulkhead';
  readonly name: string;
  readonly stage: Stage;
  private readonly permits: Permits;
  private views: Map<number, Policy> | undefined;

  constructor(options: BulkheadOptions = {}) {
    super();
    knownKeys('bulkhead', options, KEYS);
    const { name, runtime } = commonOptions('bulkhead', options);
    const limit = intOption('bulkhead', 'limit', options.limit, 10, 1);
    const queue = intOption('bulkhead', 'queue', options.queue, 0, 0);
    this.name = name;
    this.permits = new Permits(name, limit, queue, runtime);
    this.stage = { kind: 'intercept', interceptor: new BulkheadInterceptor(this.permits, 1) };
    const events = runtime.events;
    if (events.listening) {
      events.emit({ type: 'policy.created', source: name, at: runtime.clock.now(), kind: 'bulkhead' });
    }
  }

  /** Permits that may be in use at once. */
  get limit(): number {
    return this.permits.limit;
  }

  /** Permits in use now. */
  get active(): number {
    return this.permits.active;
  }

  /** Calls waiting for permits now. */
  get queued(): number {
    return this.permits.queued;
  }

  /** Permits free now (`limit - active`). A queued call may still be waiting for more than this. */
  get available(): number {
    return this.permits.limit - this.permits.active;
  }

  /**
   * A policy that shares this bulkhead's permits and queue, and whose calls each take `weight` permits.
   * Admission stays FIFO across all views: a heavy call at the head of the queue is not overtaken by
   * lighter ones, so it cannot starve.
   * @throws TypeError when `weight` is not an integer from 1 to `limit`.
   * @example
   * const db = bulkhead({ limit: 8, queue: 100 });
   * const report = db.weighted(4);  // a heavy query takes half the pool
   * await report.execute(() => runReport());
   */
  weighted(weight: number): Policy {
    const n = checkWeight('bulkhead.weighted', weight, this.permits.limit);
    if (n === 1) return this;
    if (this.views === undefined) this.views = new Map();
    let view = this.views.get(n);
    if (view === undefined) {
      view = new WeightedBulkhead(this.permits, n);
      this.views.set(n, view);
    }
    return view;
  }

  /**
   * Takes `weight` permits for code that cannot be wrapped in `execute`, waiting in the queue if needed.
   * Resolves to the function that gives them back (calling it again does nothing). Rejects with a
   * `BulkheadRejectedError` when the queue is full, or a `CancelledError` when `signal` aborts first.
   * The acquire/release pair counts as one call in the `call` events.
   * @throws TypeError when `weight` is not an integer from 1 to `limit`.
   * @example
   * const release = await pool.acquire();
   * try { stream.pipe(socket); await finished(stream); } finally { release(); }
   */
  acquire(weight = 1, signal?: AbortSignal): Promise<() => void> {
    const n = checkWeight('bulkhead.acquire', weight, this.permits.limit);
    if (signal?.aborted) return Promise.reject(new CancelledError(signal.reason));
    const permits = this.permits;
    // The call counts from the moment it asked (a wait in the queue included) to its release.
    const start = permits.callStart();
    const release = () => {
      let released = false;
      return () => {
        if (released) return;
        released = true;
        permits.release(n, READ_EACH_TIME);
        permits.reportCall(start);
      };
    };
    const scope = new Scope(undefined, signal);
    let admitted: undefined | Promise<undefined>;
    try {
      admitted = permits.admit(n, scope, READ_EACH_TIME);
    } catch (error) {
      return Promise.reject(error);
    }
    if (admitted === undefined) return Promise.resolve(release());
    return admitted.then(
      () => {
        scope.dispose();
        return release();
      },
      (error: unknown) => {
        scope.dispose();
        throw error;
      },
    );
  }
}

/**
 * Limits concurrency: at most `limit` permits in use at once (one per call unless weighted), with up to
 * `queue` calls waiting their turn in FIFO order. A call that finds the queue full is rejected with a
 * `BulkheadRejectedError`; a queued call whose signal aborts leaves the queue at once with a `CancelledError`.
 * @example
 * const pool = bulkhead({ limit: 4, queue: 20 });
 * const user = await pool.execute(({ signal }) => fetch(`/users/${id}`, { signal }));
 */
export function bulkhead(options?: BulkheadOptions): Bulkhead {
  return new Bulkhead(options);
}
