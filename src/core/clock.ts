/**
 * Time for everything in Bulwark comes from a {@link Clock}. `SystemClock` is real time;
 * `VirtualClock` is a discrete-event scheduler that jumps to the next timer when the program is idle,
 * so an hour of backoff runs in milliseconds and always in the same order.
 *
 * This file is the only place that touches `setTimeout`, `performance.now()` or `Date.now()`.
 */
import { performance } from 'node:perf_hooks';

/** A scheduled callback; cancelling is O(1) and idempotent. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch (virtual clocks start where they are told, 0 by default). */
  now(): number;
  /**
   * Calls `callback(arg)` once, `ms` milliseconds from now. Passing `arg` avoids allocating a closure per call.
   * Timers with equal deadlines fire in the order they were set.
   */
  setTimer<A>(ms: number, callback: (arg: A) => void, arg: A): Timer;
  /** Resolves after `ms`; rejects with `signal.reason` if the signal aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * A queue of timers that all wait `ms`: what a policy with a fixed deadline (a timeout) uses on its hot
   * path. On the system clock such timers share one Node timer and never read the clock when set; they
   * fire no earlier than asked and at most ~2% of `ms` (at least 2 ms) later.
   */
  timerQueue(ms: number): TimerQueue;
}

/** Timers of one fixed duration; see {@link Clock.timerQueue}. */
export interface TimerQueue {
  readonly ms: number;
  setTimer<A>(callback: (arg: A) => void, arg: A): Timer;
  /**
   * Hot-path form: `entry` is its own timer (no handle allocated). Add an entry once; `remove` cancels it
   * (a no-op once it fired). `entry.onTimer()` is called when its time comes.
   */
  add(entry: QueueEntry): void;
  remove(entry: QueueEntry): void;
}

/** An object that serves as its own timer in a {@link TimerQueue}. */
export interface QueueEntry {
  /** Owned by the queue: `undefined` when the entry is not pending. */
  timerSlot: unknown;
  onTimer(): void;
}

function sleepOn(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) {
    return new Promise((resolve) => {
      clock.setTimer(ms, resolve, undefined);
    });
  }
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      timer.cancel();
      reject(signal.reason);
    };
    const timer = clock.setTimer(
      ms,
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      undefined,
    );
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function reportCallbackError(error: unknown): void {
  // A timer callback that throws must not stop the other timers; surface it like Node would.
  queueMicrotask(() => {
    throw error;
  });
}

// ---------------------------------------------------------------------------------------------
// SystemClock

const MAX_NODE_DELAY = 2_147_483_647;

/** Negative and NaN delays mean "as soon as possible", as with `setTimeout`. */
function nonNegative(ms: number): number {
  return Number.isNaN(ms) ? 0 : Math.max(ms, 0);
}

/** A Node timer; delays beyond Node's limit (~24.8 days) are waited in legs, never fired early. */
class OneShot<A> implements Timer {
  private handle: ReturnType<typeof setTimeout>;
  private remaining: number;

  constructor(
    delay: number,
    private readonly callback: (arg: A) => void,
    private readonly arg: A,
  ) {
    this.remaining = delay;
    this.handle = this.leg();
  }

  private leg(): ReturnType<typeof setTimeout> {
    const wait = Math.min(this.remaining, MAX_NODE_DELAY);
    this.remaining -= wait;
    return this.remaining > 0
      ? setTimeout(() => {
          this.handle = this.leg();
        }, wait)
      : setTimeout(this.callback, wait, this.arg);
  }

  cancel(): void {
    clearTimeout(this.handle);
  }
}

/** The timers set between two ticks of a queue; `end` is the time of the tick that closed it. */
class Epoch {
  end = -1;
}

/** A `setTimer` timer of a queue: an entry holding a callback and its argument. */
class QueuedTimer implements Timer, QueueEntry {
  timerSlot: unknown = undefined;
  constructor(
    // Both cleared when the timer fires or is cancelled: a dead entry waiting to be pruned holds nothing.
    public callback: ((arg: never) => void) | undefined,
    public arg: unknown,
    readonly queue: SystemTimerQueue,
  ) {}
  onTimer(): void {
    const callback = this.callback as (arg: unknown) => void;
    const arg = this.arg;
    this.callback = undefined;
    this.arg = undefined;
    callback(arg);
  }
  cancel(): void {
    this.queue.remove(this);
    this.callback = undefined;
    this.arg = undefined;
  }
}

/**
 * Timers of one duration. A Node `setTimeout` + `clearTimeout` pair costs ~1 µs on a small VM and a clock
 * read ~55 ns, so setting a timer here does neither: it appends to a FIFO and notes the current *epoch*.
 * While timers are pending, one Node timer ticks every `resolution` ms; each tick reads the clock once and
 * closes the epoch, so every timer's start is known to lie before its epoch's end. A timer fires at the
 * first tick at least `ms` after that end: never early, at most two resolutions late.
 */
class SystemTimerQueue implements TimerQueue {
  private readonly queue: QueueEntry[] = [];
  private head = 0;
  private live = 0;
  private epoch = new Epoch();
  private node: ReturnType<typeof setTimeout> | undefined;
  private readonly resolution: number;
  private readonly tick = () => this.onTick();

  constructor(
    private readonly clock: SystemClock,
    readonly ms: number,
  ) {
    this.resolution = Math.min(250, Math.max(1, ms / 100));
  }

  setTimer<A>(callback: (arg: A) => void, arg: A): Timer {
    const timer = new QueuedTimer(callback as (arg: never) => void, arg, this);
    this.add(timer);
    return timer;
  }

  add(entry: QueueEntry): void {
    this.prune();
    entry.timerSlot = this.epoch;
    this.queue.push(entry);
    if (++this.live === 1 && this.node !== undefined) this.node.ref();
    if (this.node === undefined) this.arm();
  }

  remove(entry: QueueEntry): void {
    if (entry.timerSlot === undefined) return;
    entry.timerSlot = undefined;
    // Unref lazily, at the next tick (at most `resolution` ms away): toggling the Node timer's ref on every
    // cancel costs more than the rest of a set + cancel.
    this.live--;
  }

  /** Drops cancelled timers from the front; compacts rarely, so a steady stream costs no reallocation. */
  private prune(): void {
    const queue = this.queue;
    let head = this.head;
    while (head < queue.length && (queue[head] as QueueEntry).timerSlot === undefined) head++;
    if (head >= 1024 && head * 2 >= queue.length) {
      queue.splice(0, head);
      head = 0;
    }
    this.head = head;
  }

  private arm(): void {
    this.node = setTimeout(this.tick, this.resolution);
    if (this.live === 0) this.node.unref();
  }

  private onTick(): void {
    this.node = undefined;
    const now = this.clock.now();
    this.epoch.end = now;
    this.epoch = new Epoch();
    const queue = this.queue;
    const ms = this.ms;
    while (this.head < queue.length) {
      const entry = queue[this.head] as QueueEntry;
      const epoch = entry.timerSlot as Epoch | undefined;
      if (epoch !== undefined) {
        if (epoch.end < 0 || epoch.end + ms > now) break;
        entry.timerSlot = undefined;
        this.live--;
      }
      this.head++;
      if (epoch === undefined) continue;
      try {
        entry.onTimer();
      } catch (error) {
        reportCallbackError(error);
      }
    }
    this.prune();
    if (this.head === queue.length) {
      // Drained: start the array afresh (once per tick, not per timer).
      queue.length = 0;
      this.head = 0;
    }
    // A callback above may have set a timer of this queue, which armed the next tick already.
    if (this.head < queue.length && this.node === undefined) this.arm();
  }
}

/** Real time. Timers keep the process alive while they are pending, like Node's own. */
export class SystemClock implements Clock {
  private readonly queues = new Map<number, SystemTimerQueue>();
  private readonly origin = performance.timeOrigin;

  now(): number {
    return this.origin + performance.now();
  }

  setTimer<A>(ms: number, callback: (arg: A) => void, arg: A): Timer {
    return new OneShot(nonNegative(ms), callback, arg);
  }

  timerQueue(ms: number): TimerQueue {
    const delay = nonNegative(ms);
    let queue = this.queues.get(delay);
    if (queue === undefined) {
      queue = new SystemTimerQueue(this, delay);
      this.queues.set(delay, queue);
    }
    return queue;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
}

// ---------------------------------------------------------------------------------------------
// VirtualClock

class VirtualTimer implements Timer {
  callback: ((arg: never) => void) | undefined;
  constructor(
    readonly time: number,
    readonly seq: number,
    callback: (arg: never) => void,
    readonly arg: unknown,
    private readonly clock: VirtualClock,
  ) {
    this.callback = callback;
  }
  cancel(): void {
    if (this.callback === undefined) return;
    this.callback = undefined;
    this.clock.timerCancelled();
  }
}

function fireEntry(entry: QueueEntry): void {
  entry.timerSlot = undefined;
  entry.onTimer();
}

function before(a: VirtualTimer, b: VirtualTimer): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

const drainMicrotasks = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface VirtualClockOptions {
  /** The virtual time the clock starts at, in ms. @defaultValue 0 */
  start?: number;
}

/**
 * A discrete-event clock. Timers fire in (time, insertion) order; timers due at the same instant fire
 * together (simultaneous events), and before time moves on every pending
 * microtask and immediate runs, so async code that only waits on this clock runs to completion
 * with no real waiting, and identically every time.
 *
 * @example
 * const clock = new VirtualClock();
 * const done = policy.execute(work);   // waits on clock timers
 * await clock.runUntilIdle();          // an hour of backoff passes in milliseconds
 * await done;
 */
export class VirtualClock implements Clock {
  private time: number;
  private seq = 0;
  private live = 0;
  private readonly heap: VirtualTimer[] = [];
  /** Runs parked because their program was idle with no timer pending; a new timer wakes them all. */
  private readonly parked = new Set<() => void>();

  constructor(options: VirtualClockOptions = {}) {
    this.time = options.start ?? 0;
  }

  now(): number {
    return this.time;
  }

  /** Timers set and neither fired nor cancelled. */
  get pendingTimers(): number {
    return this.live;
  }

  setTimer<A>(ms: number, callback: (arg: A) => void, arg: A): Timer {
    const delay = nonNegative(ms);
    const timer = new VirtualTimer(
      this.time + delay,
      this.seq++,
      callback as (arg: never) => void,
      arg,
      this,
    );
    this.push(timer);
    this.live++;
    if (this.parked.size > 0) {
      const parked = [...this.parked];
      this.parked.clear();
      for (const wake of parked) wake();
    }
    return timer;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** On virtual time every timer is exact; a queue just fixes the duration. */
  timerQueue(ms: number): TimerQueue {
    const delay = nonNegative(ms);
    return {
      ms: delay,
      setTimer: (callback, arg) => this.setTimer(delay, callback, arg),
      add: (entry) => {
        entry.timerSlot = this.setTimer(delay, fireEntry, entry);
      },
      remove: (entry) => {
        const timer = entry.timerSlot as Timer | undefined;
        if (timer === undefined) return;
        entry.timerSlot = undefined;
        timer.cancel();
      },
    };
  }

  /** @internal */
  timerCancelled(): void {
    this.live--;
  }

  /** The time of the next pending timer, or `undefined` when none is pending. */
  nextTimerAt(): number | undefined {
    return this.peek()?.time;
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way in order, and lets the
   * program react to each before the next fires.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new TypeError(`advance: ms must be >= 0, got ${ms}`);
    const target = this.time + ms;
    await drainMicrotasks();
    for (;;) {
      const next = this.peek();
      if (next === undefined || next.time > target) break;
      this.fireInstant(next.time);
      await drainMicrotasks();
    }
    // Another driver (a concurrent run) may already have gone past the target; time never goes back.
    if (target > this.time) this.time = target;
  }

  /** Fires timers until none is pending. Throws after `limit` timers (a program that never goes idle). */
  async runUntilIdle(options: { limit?: number } = {}): Promise<void> {
    const limit = options.limit ?? 10_000_000;
    let fired = 0;
    await drainMicrotasks();
    while (this.peek() !== undefined) {
      if (++fired > limit) {
        throw new Error(
          `VirtualClock.runUntilIdle: more than ${limit} timers fired; the program never goes idle`,
        );
      }
      fired += this.fireInstant((this.peek() as VirtualTimer).time) - 1;
      await drainMicrotasks();
    }
  }

  /**
   * Runs `program` to completion on this clock: whenever it is idle, time jumps to the next timer.
   * "Idle" means no microtask or immediate is pending; real I/O in flight does not count, so a program
   * that mixes real I/O with virtual timers sees time jump while the I/O runs. With no timer pending,
   * `run` waits for the program (or a new timer) however long it takes.
   */
  async run<T>(program: () => Promise<T>): Promise<T> {
    let settled = false;
    let notify: (() => void) | undefined;
    const promise = program();
    promise.then(
      () => {
        settled = true;
        notify?.();
      },
      () => {
        settled = true;
        notify?.();
      },
    );
    while (!settled) {
      await drainMicrotasks();
      if (settled) break;
      const next = this.peek();
      if (next !== undefined) {
        this.fireInstant(next.time);
        continue;
      }
      await new Promise<void>((resolve) => {
        notify = resolve;
        this.parked.add(resolve);
      });
      if (notify !== undefined) this.parked.delete(notify);
      notify = undefined;
    }
    return promise;
  }

  /**
   * Fires every timer due at instant `at`, in insertion order, before the program reacts to any of them:
   * simultaneous events, as in any discrete-event simulator (and one microtask drain per instant instead
   * of per timer, which is what makes large simulations fast). Returns how many fired.
   */
  private fireInstant(at: number): number {
    // Only timers set before the batch began: a callback that sets a 0 ms timer gets it after a drain.
    const before = this.seq;
    let fired = 0;
    let next: VirtualTimer | undefined;
    do {
      this.fireNext();
      fired++;
      next = this.peek();
    } while (next !== undefined && next.time === at && next.seq < before);
    return fired;
  }

  private peek(): VirtualTimer | undefined {
    const heap = this.heap;
    while (heap.length > 0 && (heap[0] as VirtualTimer).callback === undefined) this.pop();
    return heap[0];
  }

  private fireNext(): void {
    const timer = this.pop();
    const callback = timer.callback;
    if (callback === undefined) return;
    timer.callback = undefined;
    this.live--;
    if (timer.time > this.time) this.time = timer.time;
    try {
      (callback as (arg: unknown) => void)(timer.arg);
    } catch (error) {
      reportCallbackError(error);
    }
  }

  private push(timer: VirtualTimer): void {
    const heap = this.heap;
    let i = heap.push(timer) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as VirtualTimer;
      if (!before(timer, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = timer;
  }

  private pop(): VirtualTimer {
    const heap = this.heap;
    const top = heap[0] as VirtualTimer;
    const last = heap.pop() as VirtualTimer;
    if (heap.length > 0) {
      let i = 0;
      const n = heap.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let c = l;
        if (r < n && before(heap[r] as VirtualTimer, heap[l] as VirtualTimer)) c = r;
        if (!before(heap[c] as VirtualTimer, last)) break;
        heap[i] = heap[c] as VirtualTimer;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  }
}
