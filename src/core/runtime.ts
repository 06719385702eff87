import { randomBytes } from 'node:crypto';
import { type Clock, SystemClock, VirtualClock } from './clock.js';
import { EventSink } from './events.js';
import { Random, type Seed } from './random.js';

/** What every Bulwark component takes time, randomness and its event sink from. */
export interface Runtime {
  readonly clock: Clock;
  readonly random: Random;
  readonly events: EventSink;
}

export interface RuntimeOptions {
  clock?: Clock;
  /** Seed of the runtime's `random`; a fresh random seed when omitted (see `random.seed` to reproduce). */
  seed?: Seed;
  events?: EventSink;
}

/** A fresh, non-reproducible seed (the only place Bulwark reads entropy). */
export function freshSeed(): string {
  return randomBytes(8).toString('hex');
}

/** Builds a runtime; by default real time, a fresh seed and a new event sink. */
export function createRuntime(options: RuntimeOptions = {}): Runtime {
  return {
    clock: options.clock ?? new SystemClock(),
    random: new Random(options.seed ?? freshSeed()),
    events: options.events ?? new EventSink(),
  };
}

/** A runtime on a {@link VirtualClock}: what tests and the lab use. */
export interface VirtualRuntime extends Runtime {
  readonly clock: VirtualClock;
}

/**
 * A reproducible runtime: virtual time and a seeded random stream.
 * @example
 * const rt = virtualRuntime(42);
 * const result = await rt.clock.run(() => pipeline(retry({ runtime: rt }), ...).execute(work));
 */
export function virtualRuntime(
  seed: Seed = 0,
  options: { start?: number; events?: EventSink } = {},
): VirtualRuntime {
  return {
    clock: new VirtualClock(options.start === undefined ? {} : { start: options.start }),
    random: new Random(seed),
    events: options.events ?? new EventSink(),
  };
}

let defaultRuntime: Runtime | undefined;

/** The process-wide runtime used when a component is given none: real time, seeded from `BULWARK_SEED` if set. */
export function systemRuntime(): Runtime {
  if (defaultRuntime === undefined) {
    const seed = process.env.BULWARK_SEED;
    defaultRuntime = createRuntime(seed === undefined || seed === '' ? {} : { seed });
  }
  return defaultRuntime;
}
