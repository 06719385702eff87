/**
 * Fault schedules are immutable values that decide, call by call, whether a fault fires. A schedule
 * holds no state: the fault that uses it keeps the call counter and the seeded random stream and hands
 * them to `fires`, so one schedule can be shared by many faults, printed in a report and tested alone.
 */
import { type Duration, formatMs } from '../core/duration.js';
import type { Random } from '../core/random.js';
import { durationOption, invalid } from '../policy/options.js';

/** What a schedule decides from: the fault's own per-call state. */
export interface ScheduleState {
  /** The number of the call being decided, 1 for the fault's first call. */
  readonly call: number;
  /** The fault's random stream (forked from the runtime's, so a seed reproduces every decision). */
  readonly random: Random;
  /** Milliseconds of clock time since the fault was constructed. */
  elapsed(): number;
}

/** Decides, per call, whether a fault fires. Immutable: `and` and `or` return new schedules. */
export interface Schedule {
  /** True when the fault fires on the call `state` describes. Allocates nothing. */
  fires(state: ScheduleState): boolean;
  /** Fires when both fire. `other` is only asked when this schedule fires. */
  and(other: Schedule): Schedule;
  /** Fires when either fires. `other` is only asked when this schedule does not fire. */
  or(other: Schedule): Schedule;
  /** The schedule as written, e.g. `firstN(10).and(rate(0.3))`. */
  toString(): string;
}

/** An entry of {@link schedule.sequence}: `'fail'` makes the fault fire on that call, `'ok'` lets it pass. */
export type SequenceStep = 'fail' | 'ok';

export interface SequenceOptions {
  /** Start the script again after its last entry (otherwise every later call is `'ok'`). @defaultValue `false` */
  repeat?: boolean;
}

const SCHEDULE = Symbol.for('bulwark.schedule');

abstract class BaseSchedule implements Schedule {
  abstract fires(state: ScheduleState): boolean;
  abstract toString(): string;

  and(other: Schedule): Schedule {
    return new And(this, checkSchedule('schedule.and', other));
  }

  or(other: Schedule): Schedule {
    return new Or(this, checkSchedule('schedule.or', other));
  }
}
Object.defineProperty(BaseSchedule.prototype, SCHEDULE, { value: true });

/** True for the schedules made by {@link schedule} (from any copy of the package) and for any object with `fires`. */
export function isSchedule(value: unknown): value is Schedule {
  if (typeof value !== 'object' || value === null) return false;
  if ((value as Record<symbol, unknown>)[SCHEDULE] === true) return true;
  return typeof (value as Schedule).fires === 'function';
}

function checkSchedule(where: string, value: unknown): Schedule {
  if (!isSchedule(value)) throw invalid(where, 'other', value, 'a schedule (see `schedule`)');
  return value;
}

class Rate extends BaseSchedule {
  constructor(readonly p: number) {
    super();
  }
  fires(state: ScheduleState): boolean {
    // A draw on every call, even for p = 0 or 1: the stream's position then depends only on the call count.
    return state.random.next() < this.p;
  }
  toString(): string {
    return `rate(${this.p})`;
  }
}

class FirstN extends BaseSchedule {
  constructor(readonly n: number) {
    super();
  }
  fires(state: ScheduleState): boolean {
    return state.call <= this.n;
  }
  toString(): string {
    return `firstN(${this.n})`;
  }
}

class EveryNth extends BaseSchedule {
  constructor(readonly n: number) {
    super();
  }
  fires(state: ScheduleState): boolean {
    return state.call % this.n === 0;
  }
  toString(): string {
    return `everyNth(${this.n})`;
  }
}

class Window extends BaseSchedule {
  constructor(
    readonly from: number,
    readonly to: number,
  ) {
    super();
  }
  fires(state: ScheduleState): boolean {
    const t = state.elapsed();
    return t >= this.from && t < this.to;
  }
  toString(): string {
    return `window(${show(this.from)}, ${show(this.to)})`;
  }
}

class Sequence extends BaseSchedule {
  constructor(
    readonly steps: readonly boolean[],
    readonly repeat: boolean,
  ) {
    super();
  }
  fires(state: ScheduleState): boolean {
    const steps = this.steps;
    const i = state.call - 1;
    if (i < steps.length) return steps[i] === true;
    return this.repeat && steps[i % steps.length] === true;
  }
  toString(): string {
    // Run-length encoded, so a long script stays readable in a report: sequence(fail*2, ok).
    const parts: string[] = [];
    const steps = this.steps;
    for (let i = 0; i < steps.length; ) {
      let j = i;
      while (j < steps.length && steps[j] === steps[i]) j++;
      const word = steps[i] ? 'fail' : 'ok';
      parts.push(j - i === 1 ? word : `${word}*${j - i}`);
      i = j;
    }
    return `sequence(${parts.join(', ')}${this.repeat ? '; repeat' : ''})`;
  }
}

class Constant extends BaseSchedule {
  constructor(readonly value: boolean) {
    super();
  }
  fires(): boolean {
    return this.value;
  }
  toString(): string {
    return this.value ? 'always()' : 'never()';
  }
}

class And extends BaseSchedule {
  constructor(
    readonly left: Schedule,
    readonly right: Schedule,
  ) {
    super();
  }
  fires(state: ScheduleState): boolean {
    return this.left.fires(state) && this.right.fires(state);
  }
  toString(): string {
    return `${String(this.left)}.and(${String(this.right)})`;
  }
}

class Or extends BaseSchedule {
  constructor(
    readonly left: Schedule,
    readonly right: Schedule,
  ) {
    super();
  }
  fires(state: ScheduleState): boolean {
    return this.left.fires(state) || this.right.fires(state);
  }
  toString(): string {
    return `${String(this.left)}.or(${String(this.right)})`;
  }
}

function show(ms: number): string {
  return ms === 0 ? '0ms' : ms === Number.POSITIVE_INFINITY ? 'Infinity' : formatMs(ms);
}

const ALWAYS = new Constant(true);
const NEVER = new Constant(false);

function integer(where: string, option: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw invalid(where, option, value, `an integer >= ${min}`);
  }
  return value;
}

/**
 * Fault schedules: immutable values that decide per call whether a fault fires. Counting schedules
 * (`firstN`, `everyNth`, `sequence`) count the calls of the fault that uses them; `rate` draws from
 * that fault's seeded random stream; `window` reads the clock.
 *
 * @example
 * faults.error({ schedule: schedule.rate(0.3) });                       // 30% of calls, reproducible from the seed
 * faults.latency({ delay: '2s', schedule: schedule.window('10s', '40s') }); // slow for 30 s
 * faults.error({ schedule: schedule.sequence(['fail', 'fail', 'ok'], { repeat: true }) });
 * String(schedule.firstN(100).and(schedule.rate(0.5)));                // 'firstN(100).and(rate(0.5))'
 */
export const schedule = {
  /**
   * Fires on each call with probability `p`, drawn from the fault's random stream.
   * @example schedule.rate(0.3)
   */
  rate(p: number): Schedule {
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
      throw invalid('schedule.rate', 'p', p, 'a probability in [0, 1]');
    }
    return new Rate(p);
  },

  /**
   * Fires on the first `n` calls, then never.
   * @example schedule.firstN(3) // calls 1, 2, 3
   */
  firstN(n: number): Schedule {
    return new FirstN(integer('schedule.firstN', 'n', n, 0));
  },

  /**
   * Fires on calls `n`, `2n`, `3n`, …
   * @example schedule.everyNth(10) // calls 10, 20, 30, …
   */
  everyNth(n: number): Schedule {
    return new EveryNth(integer('schedule.everyNth', 'n', n, 1));
  },

  /**
   * Fires while `from <= t < to`, where `t` is the clock time elapsed since the fault was constructed
   * (on a virtual runtime that starts at 0 and builds its faults first, `t` is `clock.now()`). `to` may
   * be `Infinity`.
   * @example schedule.window('10s', '20s')
   */
  window(from: Duration, to: Duration): Schedule {
    const where = 'schedule.window';
    if (from === undefined) throw invalid(where, 'from', from, 'a duration');
    if (to === undefined) throw invalid(where, 'to', to, 'a duration or Infinity');
    const fromMs = durationOption(where, 'from', from, 0);
    const toMs = to === Number.POSITIVE_INFINITY ? to : durationOption(where, 'to', to, 0);
    if (toMs <= fromMs) throw invalid(where, 'to', to, `a duration > from (${show(fromMs)})`);
    return new Window(fromMs, toMs);
  },

  /**
   * A script: entry `i` decides call `i + 1` (`'fail'` fires, `'ok'` passes). After the last entry every
   * call passes, or the script starts again with `repeat: true`.
   * @example schedule.sequence(['fail', 'fail', 'ok']) // fails twice, then succeeds for good
   */
  sequence(steps: readonly SequenceStep[], options: SequenceOptions = {}): Schedule {
    const where = 'schedule.sequence';
    if (!Array.isArray(steps) || steps.length === 0) {
      throw invalid(where, 'steps', steps, "a non-empty array of 'fail' and 'ok'");
    }
    const fired = steps.map((step, i) => {
      if (step !== 'fail' && step !== 'ok') throw invalid(where, `steps[${i}]`, step, "'fail' or 'ok'");
      return step === 'fail';
    });
    if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      throw invalid(where, 'options', options, 'an object');
    }
    for (const key of Object.keys(options)) {
      if (key !== 'repeat')
        throw new TypeError(`${where}: unknown option "${key}"; known options are repeat`);
    }
    const repeat = options.repeat ?? false;
    if (typeof repeat !== 'boolean') throw invalid(where, 'repeat', repeat, 'a boolean');
    return new Sequence(Object.freeze(fired), repeat);
  },

  /** Fires on every call (the default schedule of every fault). */
  always(): Schedule {
    return ALWAYS;
  },

  /** Never fires. */
  never(): Schedule {
    return NEVER;
  },
} as const;
