/**
 * A resource budget (memory, connections, disk: any quantity that tasks hold while they run) and
 * graceful degradation against it: a task that does not fit runs in chunks or at a reduced size instead
 * of failing.
 *
 * The budget is a weighted semaphore with a strict FIFO queue (a doubly linked list, so enqueueing,
 * admitting and removing an aborted waiter are O(1)). Its statistics are kept incrementally: the
 * time-weighted average is an integral updated on every change, and the timeline is a bounded series
 * whose neighbours are merged pairwise when it fills up. Nothing grows with the number of changes.
 */
import type { Clock } from '../core/clock.js';
import { BulwarkError, CancelledError, isBulwarkError } from '../core/errors.js';
import { CALL_OUTCOME_INDEX, type CallOutcome, type EventSink, type SourceEvents } from '../core/events.js';
import { type Runtime, systemRuntime } from '../core/runtime.js';
import type { PolicyContext } from '../policy/context.js';
import { functionOption, intOption, invalid, knownKeys, numberOption } from '../policy/options.js';
import type { Policy, PolicyOptions } from '../policy/policy.js';
import { isPolicy } from '../policy/runner.js';
import { WaitQueue } from '../policy/wait-queue.js';

/** How a task ran: whole, split into chunks run one after another, or once at a reduced size. */
export type DegradeMode = 'normal' | 'chunked' | 'reduced';

declare module '../core/events.js' {
  interface BulwarkEventMap {
    /** The units in use of a resource budget changed. */
    'resource.changed': { used: number; capacity: number };
    /** A task run by `degrade` completed; `units` is what each run of the work held, `chunks` how many runs. */
    'degrade.ran': { mode: DegradeMode; demand: number; units: number; chunks: number };
  }
}

/**
 * Sums of fractional units are compared with this relative slack, so that leases of 0.1 and 0.2 fit in a
 * budget of 0.3 despite binary floating point.
 */
const TOLERANCE = 1e-9;

/** `Math.ceil` that ignores the float noise of a quotient that should be an integer (`0.3 / 0.1`). */
function ceilQuotient(a: number, b: number): number {
  const q = a / b;
  return Math.ceil(q - q * TOLERANCE);
}

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * Thrown by `degrade` when a task cannot run: its demand does not fit, no degraded form of it fits, and it
 * may not wait (or could never fit, even in an empty budget). Retryable, unless no form of the task could
 * fit even in an empty budget.
 */
export class ResourceExhaustedError extends BulwarkError {
  override readonly name = 'ResourceExhaustedError';
  constructor(
    /** The units the task asked for. */
    readonly demand: number,
    /** The units free when it was refused. */
    readonly free: number,
    /** The budget's capacity. */
    readonly capacity: number,
    /** The budget's unit, for messages. */
    readonly unit: string,
    message = `resource exhausted: a task needs ${demand} ${unit} and ${free} ${unit} of ${capacity} ${unit} are free`,
    options?: { retryable?: boolean },
  ) {
    super('RESOURCE_EXHAUSTED', message, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Resource budget

/** Options of {@link ResourceBudget}. */
export interface ResourceBudgetOptions {
  /** Units available in total: a finite number > 0 (fractions are allowed). Required. */
  capacity: number;
  /** What a unit is, for messages and reports. @defaultValue 'MB' */
  unit?: string;
  /**
   * Points the timeline keeps (an integer >= 2). When it is full, neighbouring points are merged pairwise
   * and every later point covers twice as many changes, so memory stays bounded however long it runs.
   * @defaultValue 1024
   */
  timelinePoints?: number;
  /** Name in events. @defaultValue 'budget' */
  name?: string;
  /** Clock and event sink. @defaultValue `systemRuntime()` */
  runtime?: Runtime;
}

/** Units held from a {@link ResourceBudget}, until released. */
export interface Lease {
  /** The units held (0 once released). */
  readonly units: number;
  /** True once `release()` was called. */
  readonly released: boolean;
  /** Gives the units back and admits the waiters that now fit. Calling it again does nothing. */
  release(): void;
  /**
   * Changes the units held. Shrinking always succeeds (and admits waiters that now fit); growing succeeds
   * only when the extra units are free and nobody is waiting, like `tryAcquire`. Returns whether the lease
   * now holds `units`; `false` on a released lease.
   * @throws TypeError when `units` is not a finite number > 0 and <= capacity.
   */
  resize(units: number): boolean;
}

/** `used / capacity` statistics since the budget was created or `resetStats()` was called. */
export interface Utilisation {
  /** The highest `used / capacity` seen. */
  readonly peak: number;
  /** The time-weighted average of `used / capacity` up to now (the current ratio if no time has passed). */
  readonly average: number;
  /** How many times `used` changed. */
  readonly samples: number;
}

/** One point of a {@link ResourceBudget.timeline}: from `at` until the next point, `used` is the most held. */
export interface TimelinePoint {
  readonly at: number;
  readonly used: number;
}

const BUDGET = 'ResourceBudget';

function checkUnits(where: string, units: unknown, capacity: number): number {
  if (typeof units === 'number' && Number.isFinite(units) && units > 0 && units <= capacity) return units;
  throw new TypeError(
    `${where}: units must be a finite number > 0 and <= ${capacity} (the capacity), got ${String(units)}`,
  );
}

/** Like `knownKeys`, for options objects that take no `name` or `runtime`. */
function strictKeys(where: string, options: object | undefined, keys: readonly string[]): void {
  knownKeys(where, options, keys);
  for (const key of ['name', 'runtime']) {
    if (options !== undefined && Object.hasOwn(options, key)) {
      throw new TypeError(`${where}: unknown option "${key}"; known options are ${keys.join(', ')}`);
    }
  }
}

class Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  queued = true;
  signal: AbortSignal | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;

  constructor(
    readonly units: number,
    readonly resolve: (lease: Lease) => void,
    readonly reject: (reason: unknown) => void,
  ) {}
}

/**
 * A bounded step series of `used`. A state that lasted no time (replaced at the same instant) is skipped, so
 * a chart shows what was really held. Each point covers `stride` consecutive changes and keeps the largest
 * state among them; when `limit` points are stored, the closed ones are merged pairwise and the stride
 * doubles: O(1) amortised per change, at most `limit` points however long the budget lives.
 */
class Timeline {
  /** Closed points. */
  private readonly at: number[] = [];
  private readonly max: number[] = [];
  /** The open (last) point: its start, the largest state in it that has ended, and the current state. */
  private openAt = 0;
  private openMax = Number.NEGATIVE_INFINITY;
  private current = 0;
  private changedAt = 0;
  private filled = 1;
  private stride = 1;

  constructor(readonly limit: number) {}

  reset(now: number, used: number): void {
    this.at.length = 0;
    this.max.length = 0;
    this.openAt = now;
    this.openMax = Number.NEGATIVE_INFINITY;
    this.current = used;
    this.changedAt = now;
    this.filled = 1;
    this.stride = 1;
  }

  record(now: number, used: number): void {
    if (now !== this.changedAt) {
      // The state being replaced was held for a while: it counts.
      if (this.current > this.openMax) this.openMax = this.current;
      this.changedAt = now;
      if (this.filled >= this.stride) {
        if (this.at.length + 1 >= this.limit) this.compact();
        const last = this.at.length - 1;
        if (last + 2 >= this.limit) {
          // Only with limit 2: one closed point holds everything before the open one.
          this.max[last] = Math.max(this.max[last] as number, this.openMax);
        } else {
          this.at.push(this.openAt);
          this.max.push(this.openMax);
        }
        this.openAt = now;
        this.openMax = Number.NEGATIVE_INFINITY;
        this.filled = 0;
      }
      this.filled++;
    }
    this.current = used;
  }

  private compact(): void {
    const { at, max } = this;
    const n = at.length;
    let k = 0;
    for (let i = 0; i < n; i += 2, k++) {
      at[k] = at[i] as number;
      max[k] = i + 1 < n ? Math.max(max[i] as number, max[i + 1] as number) : (max[i] as number);
    }
    at.length = k;
    max.length = k;
    this.stride *= 2;
  }

  points(maxPoints: number): TimelinePoint[] {
    const at = [...this.at, this.openAt];
    const max = [...this.max, Math.max(this.openMax, this.current)];
    const n = at.length;
    const group = Math.ceil(n / maxPoints);
    const out: TimelinePoint[] = [];
    for (let i = 0; i < n; i += group) {
      let used = max[i] as number;
      for (let j = i + 1; j < i + group && j < n; j++) used = Math.max(used, max[j] as number);
      out.push({ at: at[i] as number, used });
    }
    return out;
  }
}

/** The state of a budget, shared with its leases. */
class Ledger {
  used = 0;
  peak = 0;
  leases = 0;
  private readonly waiters = new WaitQueue<Waiter>();

  get waiting(): number {
    return this.waiters.size;
  }

  /** The first waiter, if any (a request must not overtake it). */
  get head(): Waiter | undefined {
    return this.waiters.head;
  }
  /** Start of the statistics window, time of the last change, and the integral of `used` dt up to it. */
  since: number;
  changedAt: number;
  area = 0;
  samples = 0;
  readonly slack: number;
  readonly timeline: Timeline;

  constructor(
    readonly name: string,
    readonly capacity: number,
    readonly clock: Clock,
    readonly events: EventSink,
    timelinePoints: number,
  ) {
    this.slack = capacity * TOLERANCE;
    const now = clock.now();
    this.since = now;
    this.changedAt = now;
    this.timeline = new Timeline(timelinePoints);
    this.timeline.reset(now, 0);
  }

  fits(units: number): boolean {
    return this.used + units <= this.capacity + this.slack;
  }

  /** Units a new request could take now: none while someone is waiting (admission is FIFO). */
  available(): number {
    return this.waiters.head === undefined ? Math.max(0, this.capacity - this.used) : 0;
  }

  take(units: number): Lease {
    this.leases++;
    this.change(units);
    return new BudgetLease(this, units);
  }

  change(delta: number): void {
    const now = this.clock.now();
    this.area += this.used * (now - this.changedAt);
    this.changedAt = now;
    // With no lease left nothing is held: reset exactly, so float residue cannot accumulate.
    const used = this.leases === 0 ? 0 : Math.max(0, this.used + delta);
    this.used = used;
    if (used > this.peak) this.peak = used;
    this.samples++;
    this.timeline.record(now, used);
    const events = this.events;
    if (events.wants('resource.changed')) {
      events.emit({ type: 'resource.changed', source: this.name, at: now, used, capacity: this.capacity });
    }
  }

  enqueue(units: number, signal: AbortSignal | undefined): Promise<Lease> {
    let waiter!: Waiter;
    const promise = new Promise<Lease>((resolve, reject) => {
      waiter = new Waiter(units, resolve, reject);
    });
    this.waiters.push(waiter);
    if (signal !== undefined) {
      const onAbort = () => this.cancel(waiter, new CancelledError(signal.reason));
      waiter.signal = signal;
      waiter.onAbort = onAbort;
      signal.addEventListener('abort', onAbort, { once: true });
    }
    return promise;
  }

  /** Admits waiters from the head while they fit. */
  drain(): void {
    let waiter = this.waiters.head;
    while (waiter !== undefined && this.fits(waiter.units)) {
      this.unlink(waiter);
      waiter.resolve(this.take(waiter.units));
      waiter = this.waiters.head;
    }
  }

  private cancel(waiter: Waiter, reason: unknown): void {
    if (!waiter.queued) return;
    const wasHead = waiter === this.waiters.head;
    this.unlink(waiter);
    waiter.reject(reason);
    // The waiter at the head may have been holding back smaller ones behind it.
    if (wasHead) this.drain();
  }

  private unlink(waiter: Waiter): void {
    this.waiters.remove(waiter);
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
  }
}

class BudgetLease implements Lease {
  released = false;

  constructor(
    private readonly ledger: Ledger,
    private held: number,
  ) {}

  get units(): number {
    return this.held;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    const ledger = this.ledger;
    const units = this.held;
    this.held = 0;
    ledger.leases--;
    ledger.change(-units);
    if (ledger.head !== undefined) ledger.drain();
  }

  resize(units: number): boolean {
    const ledger = this.ledger;
    checkUnits('Lease.resize', units, ledger.capacity);
    if (this.released) return false;
    const delta = units - this.held;
    if (delta === 0) return true;
    if (delta > 0 && (ledger.head !== undefined || !ledger.fits(delta))) return false;
    this.held = units;
    ledger.change(delta);
    if (delta < 0 && ledger.head !== undefined) ledger.drain();
    return true;
  }
}

/**
 * A budget of `capacity` units (memory in MB, connections, …) that tasks hold while they run: a weighted
 * semaphore with a strict FIFO queue, peak and time-weighted utilisation, and a bounded timeline for charts.
 *
 * Admission is FIFO: while anyone waits, `tryAcquire` fails and `acquire` queues, even if enough units are
 * free for the newcomer alone, so a large request at the head cannot be starved by small ones.
 *
 * @example
 * const memory = new ResourceBudget({ capacity: 512, unit: 'MB' });
 * const lease = await memory.acquire(64, signal);
 * try {
 *   await resize(image);
 * } finally {
 *   lease.release();
 * }
 * memory.utilisation(); // { peak, average, samples }
 */
export class ResourceBudget {
  /** The budget's name in events. */
  readonly name: string;
  /** What a unit is (`'MB'` by default). */
  readonly unit: string;
  /** The runtime the budget reads time from and emits to. */
  readonly runtime: Runtime;
  private readonly ledger: Ledger;

  constructor(options: ResourceBudgetOptions) {
    knownKeys(BUDGET, options, ['capacity', 'unit', 'timelinePoints']);
    if (options === undefined) throw invalid(BUDGET, 'capacity', undefined, 'a finite number > 0');
    const capacity = options.capacity;
    if (typeof capacity !== 'number' || !Number.isFinite(capacity) || capacity <= 0) {
      throw invalid(BUDGET, 'capacity', capacity, 'a finite number > 0');
    }
    const unit = options.unit ?? 'MB';
    if (typeof unit !== 'string' || unit.length === 0)
      throw invalid(BUDGET, 'unit', unit, 'a non-empty string');
    const name = options.name ?? 'budget';
    if (typeof name !== 'string' || name.length === 0)
      throw invalid(BUDGET, 'name', name, 'a non-empty string');
    const points = intOption(
      BUDGET,
      'timelinePoints',
      options.timelinePoints,
      1024,
      2,
      Number.MAX_SAFE_INTEGER,
    );
    this.name = name;
    this.unit = unit;
    this.runtime = options.runtime ?? systemRuntime();
    this.ledger = new Ledger(name, capacity, this.runtime.clock, this.runtime.events, points);
  }

  /** Units in total. */
  get capacity(): number {
    return this.ledger.capacity;
  }

  /** Units held now. */
  get used(): number {
    return this.ledger.used;
  }

  /** Units not held now (`capacity - used`). */
  get free(): number {
    return Math.max(0, this.ledger.capacity - this.ledger.used);
  }

  /** Units a new request could take now: `free`, or 0 while anyone is waiting. */
  get available(): number {
    return this.ledger.available();
  }

  /** Requests waiting in the queue. */
  get waiting(): number {
    return this.ledger.waiting;
  }

  /** The most units held at once since creation or `resetStats()`. */
  get peak(): number {
    return this.ledger.peak;
  }

  /**
   * Takes `units` at once if they are free and nobody is waiting; `undefined` otherwise.
   * @throws TypeError when `units` is not a finite number > 0 and <= capacity.
   */
  tryAcquire(units: number): Lease | undefined {
    const ledger = this.ledger;
    checkUnits('ResourceBudget.tryAcquire', units, ledger.capacity);
    return ledger.head === undefined && ledger.fits(units) ? ledger.take(units) : undefined;
  }

  /**
   * Takes `units`, waiting in FIFO order until they are free. Rejects with a `CancelledError` (`cause` = the
   * signal's reason) when `signal` aborts first; the request leaves the queue at once.
   * @throws TypeError when `units` is not a finite number > 0 and <= capacity.
   * @example
   * const lease = await budget.acquire(30);
   * try { await work(); } finally { lease.release(); }
   */
  acquire(units: number, signal?: AbortSignal): Promise<Lease> {
    const ledger = this.ledger;
    checkUnits('ResourceBudget.acquire', units, ledger.capacity);
    if (signal?.aborted) return Promise.reject(new CancelledError(signal.reason));
    if (ledger.head === undefined && ledger.fits(units)) return Promise.resolve(ledger.take(units));
    return ledger.enqueue(units, signal);
  }

  /** Peak and time-weighted average of `used / capacity` since creation or `resetStats()`. */
  utilisation(): Utilisation {
    const ledger = this.ledger;
    const { capacity, used } = ledger;
    const now = this.runtime.clock.now();
    const elapsed = now - ledger.since;
    const average =
      elapsed > 0 ? (ledger.area + used * (now - ledger.changedAt)) / (elapsed * capacity) : used / capacity;
    return { peak: ledger.peak / capacity, average, samples: ledger.samples };
  }

  /**
   * The history of `used` as at most `maxPoints` points, oldest first. Each point holds the most units in
   * use from its `at` until the next point's `at` (the last one until now), so merging never smooths a peak
   * away; a state replaced at the same instant it began (held for no time) is left out. The budget stores
   * at most `timelinePoints` points; asked for fewer, it merges consecutive points in equal groups.
   * @throws TypeError when `maxPoints` is not an integer >= 1.
   */
  timeline(maxPoints?: number): TimelinePoint[] {
    const ledger = this.ledger;
    const limit = intOption(`${BUDGET}.timeline`, 'maxPoints', maxPoints, ledger.timeline.limit, 1);
    return ledger.timeline.points(limit);
  }

  /** Starts a new statistics window now: peak, average, samples and timeline begin from the current state. */
  resetStats(): void {
    const ledger = this.ledger;
    const now = this.runtime.clock.now();
    ledger.since = now;
    ledger.changedAt = now;
    ledger.area = 0;
    ledger.samples = 0;
    ledger.peak = ledger.used;
    ledger.timeline.reset(now, ledger.used);
  }
}

// ---------------------------------------------------------------------------------------------
// Degradation strategies

/** A degradation that splits a task into equal chunks run one after another. See {@link chunked}. */
export interface ChunkedStrategy {
  readonly kind: 'chunked';
  readonly maxChunk: number;
  readonly minChunk: number;
  readonly maxChunks: number;
}

/** A degradation that runs a task once at a fraction of its demand. See {@link reduced}. */
export interface ReducedStrategy {
  readonly kind: 'reduced';
  readonly fraction: number;
}

export type DegradeStrategy = ChunkedStrategy | ReducedStrategy;

/** Options of {@link chunked}. */
export interface ChunkedOptions {
  /** The largest chunk, in units. @defaultValue `Infinity` (only what is free limits it) */
  maxChunk?: number;
  /** The smallest chunk the work can handle, in units. @defaultValue 0 (no floor) */
  minChunk?: number;
  /** The most chunks a task may be split into (an integer >= 2). @defaultValue 100 */
  maxChunks?: number;
}

/**
 * Splits a task whose demand does not fit into equal chunks that do: `count` = the fewest chunks of at
 * most `min(maxChunk, available)` units each. The task holds one chunk's units while the chunks run one
 * after another, so it never holds more than it was given. Does not apply when that would need chunks
 * smaller than `minChunk` or more than `maxChunks` of them.
 * @example
 * degrade({ budget, demand: (file) => file.sizeMb, strategies: [chunked({ maxChunk: 64, minChunk: 4 })] });
 */
export function chunked(options: ChunkedOptions = {}): ChunkedStrategy {
  strictKeys('chunked', options, ['maxChunk', 'minChunk', 'maxChunks']);
  return chunkedFrom(options);
}

function chunkedFrom(options: ChunkedOptions): ChunkedStrategy {
  const where = 'chunked';
  const maxChunk = numberOption(
    where,
    'maxChunk',
    options.maxChunk,
    Number.POSITIVE_INFINITY,
    0,
    Number.POSITIVE_INFINITY,
    true,
  );
  const minChunk = numberOption(where, 'minChunk', options.minChunk, 0, 0);
  if (!Number.isFinite(minChunk)) throw invalid(where, 'minChunk', minChunk, 'a finite number >= 0');
  const maxChunks = intOption(where, 'maxChunks', options.maxChunks, 100, 2, Number.MAX_SAFE_INTEGER);
  if (minChunk > maxChunk) throw invalid(where, 'minChunk', minChunk, `a number <= maxChunk (${maxChunk})`);
  return Object.freeze({ kind: 'chunked', maxChunk, minChunk, maxChunks });
}

/** Options of {@link reduced}. */
export interface ReducedOptions {
  /** The share of the demand the task runs with: a number in (0, 1). Required. */
  fraction: number;
}

/**
 * Runs a task that does not fit once, at `fraction × demand` units (smaller batches, a lower resolution,
 * a smaller cache): the work sees `mode: 'reduced'` and the units it may use.
 * @example
 * degrade({ budget, demand: (job) => job.mb, strategies: [chunked(), reduced({ fraction: 0.5 })] });
 */
export function reduced(options: ReducedOptions): ReducedStrategy {
  strictKeys('reduced', options, ['fraction']);
  return reducedFrom(options);
}

function reducedFrom(options: ReducedOptions | undefined): ReducedStrategy {
  const fraction = options?.fraction;
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction < 1)) {
    throw invalid('reduced', 'fraction', fraction, 'a number in (0, 1)');
  }
  return Object.freeze({ kind: 'reduced', fraction });
}

/** Strategies are plain values; a hand-made one is validated like the factory's options. */
function checkStrategy(value: unknown, index: number): DegradeStrategy {
  const strategy = value as (ChunkedOptions & { kind?: unknown }) | null | undefined;
  if (strategy?.kind === 'chunked') {
    const { maxChunk, minChunk, maxChunks } = strategy;
    return chunkedFrom({
      ...(maxChunk === undefined ? {} : { maxChunk }),
      ...(minChunk === undefined ? {} : { minChunk }),
      ...(maxChunks === undefined ? {} : { maxChunks }),
    });
  }
  if (strategy?.kind === 'reduced') return reducedFrom(value as ReducedStrategy);
  throw invalid('degrade', `strategies[${index}]`, value, 'a strategy made by chunked() or reduced()');
}

// ---------------------------------------------------------------------------------------------
// degrade

/** What the work of one run (the whole task, one chunk, or the reduced task) is given. */
export interface DegradePiece {
  /** Units this run holds and may use. */
  readonly units: number;
  readonly mode: DegradeMode;
  /** In `chunked` mode: which chunk (`index` from 0) of how many. */
  readonly chunk?: { readonly index: number; readonly count: number };
  /** Aborted when the caller cancels (or a timeout of the `policy` fires). Built only when read. */
  readonly signal: AbortSignal;
  /** 1, or the attempt number the `policy` (a retry) gives this run. */
  readonly attempt: number;
}

/** The work of a task: called once, or once per chunk. */
export type DegradeWork<I, T> = (input: I, piece: DegradePiece) => PromiseLike<T> | T;

/** Options of {@link degrade}. */
export interface DegradeOptions<I> extends PolicyOptions {
  /** The budget tasks run against. Required. */
  budget: ResourceBudget;
  /** The units a task needs to run whole: a finite number > 0. Required. */
  demand: (input: I) => number;
  /** Degraded forms to try, in order, when the demand does not fit. `[]` for none. Required. */
  strategies: readonly DegradeStrategy[];
  /**
   * What a task that fits in no form does: `false` fails at once with `ResourceExhaustedError`; `true`
   * waits in the budget's FIFO queue for the smallest amount any form can use, then plans again with
   * everything then available to it.
   * @defaultValue false
   */
  wait?: boolean;
}

/** Options of one {@link Degrader.run}. */
export interface DegradeRunOptions {
  /** Cancels the task: while it waits, between chunks, and through `piece.signal`. */
  signal?: AbortSignal;
  /** A policy (or pipeline) each run of the work goes through, while its units are held. */
  policy?: Policy;
}

/** `run`'s options when chunk results are combined into one value. */
export interface DegradeCombineOptions<T, R> extends DegradeRunOptions {
  /** Turns the chunk results (in chunk order) into the task's result. */
  combine: (results: T[]) => R;
}

/** How many tasks ended in each way. Every task that started is counted exactly once. */
export interface DegradeStats {
  readonly normal: number;
  readonly degraded: { readonly chunked: number; readonly reduced: number };
  /** Tasks refused (`ResourceExhaustedError`), cancelled, or whose work failed. */
  readonly failed: number;
}

interface Plan {
  readonly mode: DegradeMode;
  readonly units: number;
  readonly count: number;
}

const WHERE = 'degrade';
let neverAborted: AbortSignal | undefined;

function piece(
  mode: DegradeMode,
  units: number,
  chunk: { index: number; count: number } | undefined,
  ctx: PolicyContext,
): DegradePiece {
  const attempt = ctx.attempt;
  return chunk === undefined
    ? {
        units,
        mode,
        attempt,
        get signal() {
          return ctx.signal;
        },
      }
    : {
        units,
        mode,
        chunk,
        attempt,
        get signal() {
          return ctx.signal;
        },
      };
}

/**
 * Runs tasks against a {@link ResourceBudget}, degrading the ones that do not fit instead of failing
 * them. Created by {@link degrade}.
 */
export class Degrader<I> {
  readonly kind = 'degrade';
  readonly name: string;
  readonly budget: ResourceBudget;
  readonly strategies: readonly DegradeStrategy[];
  readonly wait: boolean;
  private readonly demandOf: (input: I) => number;
  private readonly clock: Clock;
  private readonly events: EventSink;
  private readonly calls: SourceEvents;
  private normal = 0;
  private chunkedCount = 0;
  private reducedCount = 0;
  private failed = 0;

  constructor(options: DegradeOptions<I>) {
    knownKeys(WHERE, options, ['budget', 'demand', 'strategies', 'wait']);
    if (options === undefined) throw invalid(WHERE, 'budget', undefined, 'a ResourceBudget');
    if (!(options.budget instanceof ResourceBudget)) {
      throw invalid(WHERE, 'budget', options.budget, 'a ResourceBudget');
    }
    const demand = functionOption<(input: I) => number>(WHERE, 'demand', options.demand);
    if (demand === undefined) throw invalid(WHERE, 'demand', undefined, 'a function of the input');
    if (!Array.isArray(options.strategies)) {
      throw invalid(WHERE, 'strategies', options.strategies, 'an array of strategies (chunked(), reduced())');
    }
    if (options.wait !== undefined && typeof options.wait !== 'boolean') {
      throw invalid(WHERE, 'wait', options.wait, 'a boolean');
    }
    const name = options.name ?? WHERE;
    if (typeof name !== 'string' || name.length === 0)
      throw invalid(WHERE, 'name', name, 'a non-empty string');
    this.name = name;
    this.budget = options.budget;
    this.demandOf = demand;
    this.strategies = Object.freeze(options.strategies.map(checkStrategy));
    this.wait = options.wait ?? false;
    const runtime = options.runtime ?? options.budget.runtime;
    this.clock = runtime.clock;
    this.events = runtime.events;
    this.calls = runtime.events.source(name, this.kind);
    if (this.events.wants('policy.created')) {
      this.events.emit({ type: 'policy.created', source: name, at: this.clock.now(), kind: this.kind });
    }
  }

  /** Tasks completed normally, degraded (by mode) and failed so far. */
  stats(): DegradeStats {
    return {
      normal: this.normal,
      degraded: { chunked: this.chunkedCount, reduced: this.reducedCount },
      failed: this.failed,
    };
  }

  /**
   * Runs one task: whole if its demand fits what is available, else in the first degraded form that fits,
   * else waits (`wait: true`) or rejects with `ResourceExhaustedError`. Resolves to the work's result, or
   * in `chunked` mode to the chunk results in order (or `combine(results)`).
   * @throws TypeError (as a rejection, before the task counts) for bad options or a bad demand.
   * @example
   * const result = await degrader.run(batch, (batch, { units, chunk }) => process(batch, units, chunk));
   */
  run<T, R>(input: I, work: DegradeWork<I, T>, options: DegradeCombineOptions<T, R>): Promise<T | R>;
  run<T>(input: I, work: DegradeWork<I, T>, options?: DegradeRunOptions): Promise<T | T[]>;
  async run(
    input: I,
    work: DegradeWork<I, unknown>,
    options: DegradeRunOptions & { combine?: (results: unknown[]) => unknown } = {},
  ): Promise<unknown> {
    const where = `${this.name}.run`;
    strictKeys(where, options, ['signal', 'policy', 'combine']);
    if (typeof work !== 'function') throw invalid(where, 'work', work, 'a function');
    const { signal, policy } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw invalid(where, 'signal', signal, 'an AbortSignal');
    }
    if (policy !== undefined && !isPolicy(policy)) throw invalid(where, 'policy', policy, 'a Bulwark policy');
    const combine = functionOption<(results: unknown[]) => unknown>(where, 'combine', options.combine);
    const demand = this.demandOf(input);
    if (typeof demand !== 'number' || !Number.isFinite(demand) || demand <= 0) {
      throw new TypeError(`${where}: demand(input) must return a finite number > 0, got ${String(demand)}`);
    }

    const startedAt = this.clock.now();
    let plan: Plan;
    let result: unknown;
    try {
      if (signal?.aborted) throw new CancelledError(signal.reason);
      let lease: Lease;
      [plan, lease] = await this.admit(demand, signal);
      try {
        result = await this.perform(input, work, plan, signal, policy);
      } finally {
        lease.release();
      }
      if (plan.mode === 'chunked' && combine !== undefined) result = combine(result as unknown[]);
    } catch (error) {
      this.failed++;
      this.report(
        startedAt,
        isBulwarkError(error, 'RESOURCE_EXHAUSTED') ? 'rejected' : outcomeOf(error),
        error,
      );
      throw error;
    }
    if (plan.mode === 'normal') this.normal++;
    else if (plan.mode === 'chunked') this.chunkedCount++;
    else this.reducedCount++;
    const events = this.events;
    if (events.wants('degrade.ran')) {
      events.emit({
        type: 'degrade.ran',
        source: this.name,
        at: this.clock.now(),
        mode: plan.mode,
        demand,
        units: plan.units,
        chunks: plan.count,
      });
    }
    this.report(startedAt, 'success', undefined);
    return result;
  }

  /** Chooses how the task runs and takes its units, waiting if allowed. */
  private async admit(demand: number, signal: AbortSignal | undefined): Promise<[Plan, Lease]> {
    const budget = this.budget;
    const now = this.plan(demand, budget.available);
    if (now !== undefined) {
      const lease = budget.tryAcquire(Math.min(now.units, budget.capacity));
      if (lease !== undefined) return [now, lease];
    }
    const need = this.smallestNeed(demand);
    const never = need > budget.capacity * (1 + TOLERANCE);
    if (!this.wait || never) throw this.exhausted(demand, never);
    const lease = await budget.acquire(Math.min(need, budget.capacity), signal);
    // Our turn came: use everything available to us now, not just the smallest amount we waited for.
    const plan = this.plan(demand, lease.units + budget.available);
    if (plan === undefined || !lease.resize(Math.min(plan.units, budget.capacity))) {
      lease.release();
      throw this.exhausted(demand, false);
    }
    return [plan, lease];
  }

  /** The best way to run `demand` with `available` units: whole, else the first strategy that fits. */
  private plan(demand: number, available: number): Plan | undefined {
    const slack = available * TOLERANCE;
    if (demand <= available + slack) return { mode: 'normal', units: demand, count: 1 };
    for (const strategy of this.strategies) {
      if (strategy.kind === 'reduced') {
        const units = strategy.fraction * demand;
        if (units <= available + slack) return { mode: 'reduced', units, count: 1 };
        continue;
      }
      const size = Math.min(strategy.maxChunk, available);
      if (!(size > 0)) continue;
      const count = Math.max(2, ceilQuotient(demand, size));
      const units = demand / count;
      if (count > strategy.maxChunks || units < strategy.minChunk * (1 - TOLERANCE)) continue;
      return { mode: 'chunked', units, count };
    }
    return undefined;
  }

  /** The fewest units any form of the task can run with (at most `demand`). */
  private smallestNeed(demand: number): number {
    let need = demand;
    for (const strategy of this.strategies) {
      if (strategy.kind === 'reduced') {
        need = Math.min(need, strategy.fraction * demand);
        continue;
      }
      const byFloor =
        strategy.minChunk > 0
          ? Math.floor((demand / strategy.minChunk) * (1 + TOLERANCE))
          : strategy.maxChunks;
      const count = Math.min(strategy.maxChunks, byFloor);
      if (count < 2) continue;
      const units = demand / count;
      if (units > strategy.maxChunk * (1 + TOLERANCE)) continue;
      need = Math.min(need, units);
    }
    return need;
  }

  private exhausted(demand: number, never: boolean): ResourceExhaustedError {
    const { budget } = this;
    const waiting = budget.waiting;
    const message =
      `${this.name}: a task needs ${demand} ${budget.unit} and no form of it fits: ` +
      `${budget.free} ${budget.unit} of ${budget.capacity} ${budget.unit} are free` +
      (waiting > 0 ? ` and ${waiting} request(s) are waiting ahead of it` : '');
    return new ResourceExhaustedError(demand, budget.free, budget.capacity, budget.unit, message, {
      retryable: !never,
    });
  }

  private async perform(
    input: I,
    work: DegradeWork<I, unknown>,
    plan: Plan,
    signal: AbortSignal | undefined,
    policy: Policy | undefined,
  ): Promise<unknown> {
    if (plan.mode !== 'chunked')
      return this.once(input, work, plan.mode, plan.units, undefined, signal, policy);
    const results: unknown[] = [];
    for (let index = 0; index < plan.count; index++) {
      if (signal?.aborted) throw new CancelledError(signal.reason);
      const chunk = { index, count: plan.count };
      results.push(await this.once(input, work, 'chunked', plan.units, chunk, signal, policy));
    }
    return results;
  }

  private once(
    input: I,
    work: DegradeWork<I, unknown>,
    mode: DegradeMode,
    units: number,
    chunk: { index: number; count: number } | undefined,
    signal: AbortSignal | undefined,
    policy: Policy | undefined,
  ): Promise<unknown> {
    if (policy !== undefined)
      return policy.execute((ctx) => work(input, piece(mode, units, chunk, ctx)), signal);
    if (signal === undefined) neverAborted ??= new AbortController().signal;
    const ctx = { signal: signal ?? (neverAborted as AbortSignal), attempt: 1 };
    return Promise.resolve(work(input, piece(mode, units, chunk, ctx)));
  }

  private report(startedAt: number, outcome: CallOutcome, error: unknown): void {
    if (!this.events.wants('call')) return;
    const at = this.clock.now();
    this.calls.call(at, CALL_OUTCOME_INDEX[outcome], at - startedAt, error);
  }
}

function outcomeOf(error: unknown): CallOutcome {
  return isBulwarkError(error, 'CANCELLED') ? 'cancelled' : 'failure';
}

/**
 * Graceful degradation: runs tasks against a {@link ResourceBudget}. A task whose `demand` fits runs whole
 * (`mode: 'normal'`), holding its demand; one that does not is run in the first of `strategies` that fits
 * (`chunked`, `reduced`) instead of failing; one that fits in no form waits (`wait: true`) or rejects with
 * `ResourceExhaustedError`. Each run of the work may go through a `policy` (retry, timeout, …) while it
 * holds its units.
 * @example
 * const memory = new ResourceBudget({ capacity: 100, unit: 'MB' });
 * const imports = degrade({
 *   budget: memory,
 *   demand: (file: { mb: number }) => file.mb,
 *   strategies: [chunked({ minChunk: 5 }), reduced({ fraction: 0.5 })],
 * });
 * const rows = await imports.run(file, (file, { units, chunk }) => importRows(file, units, chunk));
 */
export function degrade<I>(options: DegradeOptions<I>): Degrader<I> {
  return new Degrader<I>(options);
}
