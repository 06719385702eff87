/**
 * Backoffs are immutable values: each one is a step of a schedule (its `delay` and `attempt`), and
 * `next()` returns the following step. Nothing is mutated, so a schedule can be shared, printed,
 * replayed and tested like any other value.
 */
import { type Duration, formatMs } from '../core/duration.js';
import { Random } from '../core/random.js';
import { durationOption, invalid, numberOption, oneOf } from './options.js';

/**
 * How a delay is randomised (AWS, "Exponential Backoff and Jitter"):
 * - `none`: the schedule's delay `d`;
 * - `full`: uniform in `[0, d]`;
 * - `equal`: `d / 2` plus uniform in `[0, d / 2]`;
 * - `decorrelated`: `min(max, uniform(initial, previous * 3))`, ignoring the schedule's own growth.
 */
export type JitterKind = 'none' | 'full' | 'equal' | 'decorrelated';

/** One step of a backoff schedule. Immutable: `next` and `withJitter` return new values. */
export interface Backoff {
  /** The wait before the retry this step stands for, in ms; 0 for the initial value. */
  readonly delay: number;
  /** 0 for the initial value, 1 for the step before the first retry, … */
  readonly attempt: number;
  /** The next step. Randomness comes from `random` only (a fixed module-level stream by default). */
  next(random?: Random): Backoff;
  /** The same step, randomising the delays of the steps that follow it. */
  withJitter(kind: JitterKind): Backoff;
  /** The schedule, e.g. `exponential(100ms x2, max 30s, full jitter)`. */
  toString(): string;
}

export interface LinearBackoffOptions {
  /** The first delay. @defaultValue `'100ms'` */
  initial?: Duration;
  /** Added to the delay at every step. @defaultValue `initial` */
  step?: Duration;
  /** The largest delay. @defaultValue `'30s'` */
  max?: Duration;
}

export interface ExponentialBackoffOptions {
  /** The first delay. @defaultValue `'100ms'` */
  initial?: Duration;
  /** What the delay is multiplied by at every step (>= 1). @defaultValue `2` */
  factor?: number;
  /** The largest delay. @defaultValue `'30s'` */
  max?: Duration;
}

type Shape = 'constant' | 'linear' | 'exponential';

/** The parameters a schedule was built with; shared by all its steps. */
interface Schedule {
  readonly shape: Shape;
  readonly initial: number;
  /** linear: added per step; exponential: multiplied per step; constant: unused. */
  readonly growth: number;
  readonly max: number;
}

const JITTER_KINDS: readonly JitterKind[] = ['none', 'full', 'equal', 'decorrelated'];
const DEFAULT_INITIAL_MS = 100;
const DEFAULT_MAX_MS = 30_000;

let defaultRandom: Random | undefined;

/** A fixed stream, so that `next()` without a `Random` is still reproducible from process start. */
function moduleRandom(): Random {
  if (defaultRandom === undefined) defaultRandom = new Random('bulwark/backoff');
  return defaultRandom;
}

class BackoffStep implements Backoff {
  constructor(
    private readonly schedule: Schedule,
    private readonly jitter: JitterKind,
    readonly attempt: number,
    /** The schedule's delay at this step, before jitter. */
    private readonly base: number,
    readonly delay: number,
  ) {}

  next(random?: Random): Backoff {
    const { shape, initial, growth, max } = this.schedule;
    const attempt = this.attempt + 1;
    let base: number;
    if (this.attempt === 0 || shape === 'constant') base = initial;
    else if (shape === 'linear') base = Math.min(max, this.base + growth);
    else base = Math.min(max, this.base * growth);
    let delay = base;
    const jitter = this.jitter;
    if (jitter !== 'none') {
      const r = random ?? moduleRandom();
      if (jitter === 'full') delay = r.uniform(0, base);
      // The min guards against rounding with subnormal delays (found by the property tests).
      else if (jitter === 'equal') delay = Math.min(base, base / 2 + r.uniform(0, base / 2));
      else delay = Math.min(max, r.uniform(initial, 3 * (this.attempt === 0 ? initial : this.delay)));
    }
    return new BackoffStep(this.schedule, jitter, attempt, base, delay);
  }

  withJitter(kind: JitterKind): Backoff {
    if (kind === undefined) throw invalid('backoff.withJitter', 'kind', kind, oneOfText());
    const jitter = oneOf('backoff.withJitter', 'kind', kind, JITTER_KINDS, 'none');
    return new BackoffStep(this.schedule, jitter, this.attempt, this.base, this.delay);
  }

  toString(): string {
    const { shape, initial, growth, max } = this.schedule;
    const jitter = this.jitter === 'none' ? '' : `, ${this.jitter} jitter`;
    if (shape === 'constant') return `constant(${formatMs(initial)}${jitter})`;
    const step = shape === 'linear' ? `+${formatMs(growth)}` : `x${growth}`;
    return `${shape}(${formatMs(initial)} ${step}, max ${formatMs(max)}${jitter})`;
  }
}

function oneOfText(): string {
  return `one of ${JITTER_KINDS.map((k) => JSON.stringify(k)).join(', ')}`;
}

/** Rejects unknown keys (`knownKeys` from options.ts also admits `name` and `runtime`, which a backoff has not). */
function checkKeys(where: string, options: unknown, keys: readonly string[]): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw invalid(where, 'options', options, 'an object');
  }
  for (const key of Object.keys(options)) {
    if (!keys.includes(key)) {
      throw new TypeError(`${where}: unknown option "${key}"; known options are ${keys.join(', ')}`);
    }
  }
}

function checkMax(where: string, max: number, initial: number, value: unknown): void {
  if (max < initial) throw invalid(where, 'max', value, `a duration >= initial (${formatMs(initial)})`);
}

function start(schedule: Schedule): Backoff {
  return new BackoffStep(schedule, 'none', 0, 0, 0);
}

/**
 * Backoff schedules: immutable values whose `next()` gives the wait before each retry.
 *
 * @example
 * const b = backoff.exponential({ initial: '100ms', max: '5s' }).withJitter('full');
 * const first = b.next();        // first.delay: uniform in [0, 100]
 * const second = first.next();   // second.delay: uniform in [0, 200]
 * String(b);                     // 'exponential(100ms x2, max 5s, full jitter)'
 */
export const backoff = {
  /**
   * The same delay before every retry.
   * @example backoff.constant('1s')
   */
  constant(delay: Duration): Backoff {
    if (delay === undefined) throw invalid('backoff.constant', 'delay', delay, 'a duration');
    const ms = durationOption('backoff.constant', 'delay', delay, 0);
    return start({ shape: 'constant', initial: ms, growth: 0, max: ms });
  },

  /**
   * A delay that grows by `step` before every retry, up to `max`.
   * @example backoff.linear({ initial: '1s', step: '500ms', max: '5s' }) // 1s, 1.5s, 2s, …, 5s
   */
  linear(options: LinearBackoffOptions = {}): Backoff {
    const where = 'backoff.linear';
    checkKeys(where, options, ['initial', 'step', 'max']);
    const initial = durationOption(where, 'initial', options.initial, DEFAULT_INITIAL_MS);
    const step = durationOption(where, 'step', options.step, initial);
    const max = durationOption(where, 'max', options.max, DEFAULT_MAX_MS);
    checkMax(where, max, initial, options.max ?? max);
    return start({ shape: 'linear', initial, growth: step, max });
  },

  /**
   * A delay multiplied by `factor` before every retry, up to `max`.
   * @example backoff.exponential({ initial: '100ms', max: '30s' }) // 100ms, 200ms, 400ms, …, 30s
   */
  exponential(options: ExponentialBackoffOptions = {}): Backoff {
    const where = 'backoff.exponential';
    checkKeys(where, options, ['initial', 'factor', 'max']);
    const initial = durationOption(where, 'initial', options.initial, DEFAULT_INITIAL_MS);
    const factor = numberOption(where, 'factor', options.factor, 2, 1);
    if (factor === Number.POSITIVE_INFINITY) throw invalid(where, 'factor', factor, 'a finite number >= 1');
    const max = durationOption(where, 'max', options.max, DEFAULT_MAX_MS);
    checkMax(where, max, initial, options.max ?? max);
    return start({ shape: 'exponential', initial, growth: factor, max });
  },
} as const;

/** True for values that can serve as a backoff (the built-in ones, or any object with `delay` and `next`). */
export function isBackoff(value: unknown): value is Backoff {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Backoff).next === 'function' &&
    typeof (value as Backoff).delay === 'number'
  );
}
