/**
 * An interleaving explorer, after Microsoft Coyote's systematic concurrency testing: the scenario marks
 * its `await` points, and each run (a schedule) lets the tasks through those points in a different
 * order, chosen by a seeded scheduler on a virtual clock. After each schedule a user invariant is
 * checked; the first violation is reported with its seed and interleaving, and `replay(seed)` runs that
 * exact schedule again — the bug found once is the bug you can debug.
 */
import type { Clock } from '../core/clock.js';
import type { Duration } from '../core/duration.js';
import { formatMs } from '../core/duration.js';
import type { EventSink } from '../core/events.js';
import type { Random, Seed } from '../core/random.js';
import { type Runtime, systemRuntime, type VirtualRuntime, virtualRuntime } from '../core/runtime.js';
import { durationOption, functionOption, intOption, invalid, knownKeys, oneOf } from '../policy/options.js';

declare module '../core/events.js' {
  interface BulwarkEventMap {
    /** A schedule of a race explorer broke its invariant (or threw, or deadlocked). */
    'race.violation': { seed: string; schedule: number; message: string; interleaving: readonly string[] };
    /** A race explorer finished: `schedules` run, `violations` found (0 or 1: it stops at the first). */
    'race.explored': { schedules: number; violations: number; interleavings: number };
  }
}

/**
 * How a schedule orders the tasks at their await points.
 * - `'delay'`: each point waits a random virtual delay from 0 to `maxDelay` (whole ms); tasks resume in
 *   the order their delays end. Cheap, and finds most races within a few dozen schedules.
 * - `'order'`: the scheduler waits until every task is parked at a point (or at another timer), then
 *   lets one of the parked tasks through, chosen at random — a random walk over the interleavings.
 */
export type RaceStrategy = 'delay' | 'order';

const STRATEGIES: readonly RaceStrategy[] = ['delay', 'order'];

/** What the scenario receives in each schedule. */
export interface RaceContext {
  /** The schedule's virtual runtime (its own clock, random stream and event sink). */
  readonly runtime: VirtualRuntime;
  /** The schedule's seed: `replay(seed)` runs this schedule again. */
  readonly seed: string;
  /**
   * An instrumented await point: resolves when the schedule lets this task continue. Put one before
   * every operation whose order matters (a read, a write, a lock, an I/O call). The label names the
   * point in the reported interleaving, e.g. `'A:read'`.
   */
  point(label: string): Promise<void>;
  /** `await point(label)`, then `fn()`: an instrumented operation. */
  step<T>(label: string, fn: () => T | PromiseLike<T>): Promise<T>;
}

/** Options of {@link raceExplorer}. */
export interface RaceExplorerOptions<T> {
  /** The concurrent scenario: starts its tasks, awaits them and returns the state to check. */
  scenario: (ctx: RaceContext) => Promise<T>;
  /**
   * Checked on the scenario's result after each schedule. A violation is `false`, a message string, or a
   * thrown error; `true` or `undefined` means it held.
   */
  invariant: (result: T) => boolean | string | undefined;
  /** Schedules to run (the budget). @defaultValue 100 */
  schedules?: number;
  /** How schedules order the tasks. @defaultValue 'delay' */
  strategy?: RaceStrategy;
  /** The longest random delay at a point with the `'delay'` strategy. @defaultValue '10ms' */
  maxDelay?: Duration;
  /**
   * The base seed; schedule `i` runs on seed `${seed}/schedule:${i}`.
   * @defaultValue a seed forked from the runtime's random stream (reproducible on a seeded runtime)
   */
  seed?: Seed;
  /** Timers one schedule may fire before it is reported as never finishing. @defaultValue 100000 */
  maxSteps?: number;
  /** Names the explorer in events. @defaultValue 'race' */
  name?: string;
  /** Where events go and the default seed comes from. @defaultValue the system runtime */
  runtime?: Runtime;
}

/** One schedule run. */
export interface ScheduleRun<T> {
  /** Its seed: `explorer.replay(seed)` reproduces it exactly. */
  readonly seed: string;
  /** Its index in the exploration (`-1` for a replay of a seed from elsewhere). */
  readonly index: number;
  /** The labels of the await points in the order the tasks passed them. */
  readonly interleaving: readonly string[];
  /** What broke, when something did: the invariant's message, the scenario's error or a deadlock. */
  readonly violation: string | undefined;
  /** For {@link RaceExplorer.runOrder}: why the chosen order could not be followed (`undefined` when it was). */
  readonly deviation: string | undefined;
  /** The scenario's result, when it returned. */
  readonly result: T | undefined;
  /** Virtual ms the schedule took. */
  readonly virtualMs: number;
}

/** The outcome of {@link RaceExplorer.explore}. */
export interface ExploreResult<T> {
  /** Schedules run (up to and including the first violation). */
  readonly schedules: number;
  /** Distinct interleavings among them. */
  readonly interleavings: number;
  /** The first schedule that broke the invariant, if any. */
  readonly violation: ScheduleRun<T> | undefined;
}

interface Parked {
  label: string;
  resolve: () => void;
}

/** Orders one schedule's tasks at their await points. */
class Scheduler {
  readonly trace: string[] = [];
  /** Why a chosen order could not be followed, when it could not. */
  deviation: string | undefined = undefined;
  private readonly parked: Parked[] = [];
  private deciding = false;
  private position = 0;

  constructor(
    private readonly runtime: VirtualRuntime,
    private readonly random: Random,
    private readonly strategy: RaceStrategy,
    private readonly maxDelayMs: number,
    /** A chosen order of labels (then the strategy is `order`, choosing by the script). */
    private readonly script?: readonly string[],
  ) {}

  /** Called when the run is over: a chosen order must have been followed to its end. */
  finish(): void {
    const script = this.script;
    if (script === undefined || this.deviation !== undefined || this.position === script.length) return;
    this.deviation = `the run ended after ${this.position} of the ${script.length} chosen steps (next: "${script[this.position]}")`;
  }

  point(label: string): Promise<void> {
    return new Promise<void>((resolve) => {
      const clock = this.runtime.clock;
      if (this.strategy === 'delay' && this.script === undefined) {
        const delay = this.random.int(0, this.maxDelayMs);
        clock.setTimer(
          delay,
          (passed) => {
            this.trace.push(passed);
            resolve();
          },
          label,
        );
        return;
      }
      this.parked.push({ label, resolve });
      this.armDecision();
    });
  }

  /**
   * A 0 ms timer fires only when the program is idle, i.e. when every runnable task has reached a point
   * (or another timer): then the scheduler lets exactly one parked task through.
   */
  private armDecision(): void {
    if (this.deciding) return;
    this.deciding = true;
    this.runtime.clock.setTimer(0, () => this.decide(), undefined);
  }

  private decide(): void {
    this.deciding = false;
    const parked = this.parked;
    if (parked.length === 0) return;
    const [chosen] = parked.splice(this.choose(parked), 1) as [Parked];
    this.trace.push(chosen.label);
    chosen.resolve();
    if (parked.length > 0) this.armDecision();
  }

  private choose(parked: readonly Parked[]): number {
    const script = this.script;
    if (script === undefined) return this.random.int(0, parked.length - 1);
    const wanted = script[this.position];
    const index = wanted === undefined ? -1 : parked.findIndex((p) => p.label === wanted);
    if (index >= 0) {
      this.position++;
      return index;
    }
    if (this.deviation === undefined) {
      const waiting = parked.map((p) => `"${p.label}"`).join(', ');
      this.deviation =
        wanted === undefined
          ? `the chosen order ended after ${script.length} steps with tasks still waiting at ${waiting}`
          : `the chosen order cannot be followed at step ${this.position + 1}: no task waits at "${wanted}" (waiting: ${waiting})`;
    }
    // Off the script: let the earliest parked task go, so that the run can still finish.
    return 0;
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** Explores the interleavings of a concurrent scenario. Build one with {@link raceExplorer}. */
export class RaceExplorer<T> {
  readonly name: string;
  /** The base seed of {@link explore}. */
  readonly seed: string;
  readonly schedules: number;
  readonly strategy: RaceStrategy;
  readonly maxDelayMs: number;
  private readonly scenario: (ctx: RaceContext) => Promise<T>;
  private readonly invariant: (result: T) => boolean | string | undefined;
  private readonly maxSteps: number;
  private readonly events: EventSink;
  private readonly clock: Clock;

  constructor(options: RaceExplorerOptions<T>) {
    const where = 'raceExplorer';
    if (typeof options !== 'object' || options === null) {
      throw invalid(where, 'options', options, 'an object { scenario, invariant, … }');
    }
    knownKeys(where, options, [
      'scenario',
      'invariant',
      'schedules',
      'strategy',
      'maxDelay',
      'seed',
      'maxSteps',
    ]);
    const scenario = functionOption<(ctx: RaceContext) => Promise<T>>(where, 'scenario', options.scenario);
    if (scenario === undefined) throw invalid(where, 'scenario', undefined, 'a function of the race context');
    const invariant = functionOption<(result: T) => boolean | string | undefined>(
      where,
      'invariant',
      options.invariant,
    );
    if (invariant === undefined) throw invalid(where, 'invariant', undefined, 'a function of the result');
    this.scenario = scenario;
    this.invariant = invariant;
    this.schedules = intOption(where, 'schedules', options.schedules, 100, 1, 10_000_000);
    this.strategy = oneOf(where, 'strategy', options.strategy, STRATEGIES, 'delay');
    const maxDelay = durationOption(where, 'maxDelay', options.maxDelay, 10, 1);
    if (!Number.isInteger(maxDelay)) {
      throw invalid(where, 'maxDelay', options.maxDelay, 'a whole number of ms >= 1');
    }
    this.maxDelayMs = maxDelay;
    this.maxSteps = intOption(where, 'maxSteps', options.maxSteps, 100_000, 1);
    const name = options.name ?? 'race';
    if (typeof name !== 'string' || name.length === 0)
      throw invalid(where, 'name', name, 'a non-empty string');
    this.name = name;
    const runtime = options.runtime ?? systemRuntime();
    this.events = runtime.events;
    this.clock = runtime.clock;
    const seed = options.seed ?? runtime.random.fork(`race:${name}`).seed;
    if (!(typeof seed === 'string' || (typeof seed === 'number' && Number.isFinite(seed)))) {
      throw invalid(where, 'seed', seed, 'a number or a string');
    }
    this.seed = String(seed);
  }

  /** The seed of schedule `index`. */
  scheduleSeed(index: number): string {
    return `${this.seed}/schedule:${index}`;
  }

  /**
   * Runs up to `schedules` schedules, checking the invariant after each, and stops at the first
   * violation.
   */
  async explore(): Promise<ExploreResult<T>> {
    const seen = new Set<string>();
    let violation: ScheduleRun<T> | undefined;
    let run = 0;
    while (run < this.schedules && violation === undefined) {
      const outcome = await this.runSchedule(this.scheduleSeed(run), run);
      run++;
      seen.add(outcome.interleaving.join('\u0000'));
      if (outcome.violation !== undefined) violation = outcome;
    }
    if (this.events.wants('race.explored')) {
      this.events.emit({
        type: 'race.explored',
        source: this.name,
        at: this.clock.now(),
        schedules: run,
        violations: violation === undefined ? 0 : 1,
        interleavings: seen.size,
      });
    }
    return { schedules: run, interleavings: seen.size, violation };
  }

  /** Runs the schedule with this seed again: the same interleaving, the same result, the same violation. */
  replay(seed: string): Promise<ScheduleRun<T>> {
    if (typeof seed !== 'string' || seed.length === 0) {
      throw invalid('replay', 'seed', seed, 'the seed of a schedule, e.g. "1/schedule:17"');
    }
    const match = /\/schedule:(\d+)$/.exec(seed);
    const index = match !== null && seed === this.scheduleSeed(Number(match[1])) ? Number(match[1]) : -1;
    return this.runSchedule(seed, index);
  }

  /**
   * Runs the scenario once with the tasks passing their points in exactly the order given (labels as
   * reported in an interleaving): a regression test for an interleaving found once. If no task waits
   * at the next label when the scheduler must choose, or the run ends early, `deviation` says where.
   * @example
   * const run = await explorer.runOrder(['A:read', 'B:read', 'A:write', 'B:write']);
   * run.violation; // 'balance 50, expected 20'
   */
  runOrder(order: readonly string[]): Promise<ScheduleRun<T>> {
    if (!Array.isArray(order) || order.length === 0 || order.some((l) => typeof l !== 'string')) {
      throw invalid('runOrder', 'order', order, 'a non-empty array of point labels');
    }
    return this.runSchedule(`${this.seed}/order`, -1, Object.freeze([...order]));
  }

  private async runSchedule(
    seed: string,
    index: number,
    script?: readonly string[],
  ): Promise<ScheduleRun<T>> {
    const runtime = virtualRuntime(seed);
    const scheduler = new Scheduler(
      runtime,
      runtime.random.fork('scheduler'),
      this.strategy,
      this.maxDelayMs,
      script,
    );
    const ctx: RaceContext = {
      runtime,
      seed,
      point: (label) => scheduler.point(label),
      step: async (label, fn) => {
        await scheduler.point(label);
        return fn();
      },
    };
    let settled: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
    let program: Promise<T>;
    try {
      program = this.scenario(ctx);
    } catch (error) {
      program = Promise.reject(error);
    }
    Promise.resolve(program).then(
      (value) => {
        settled = { ok: true, value };
      },
      (error: unknown) => {
        settled = { ok: false, error };
      },
    );
    let violation: string | undefined;
    try {
      await runtime.clock.runUntilIdle({ limit: this.maxSteps });
    } catch {
      violation = `the schedule did not finish within ${this.maxSteps} timers (livelock?)`;
    }
    let result: T | undefined;
    if (violation === undefined) {
      const outcome = settled as typeof settled;
      if (outcome === undefined) {
        violation = 'deadlock: every task is waiting and nothing can wake one';
      } else if (!outcome.ok) {
        violation = `the scenario threw ${describeError(outcome.error)}`;
      } else {
        result = outcome.value;
        violation = this.check(outcome.value);
      }
    }
    scheduler.finish();
    const run: ScheduleRun<T> = {
      seed,
      index,
      interleaving: Object.freeze([...scheduler.trace]),
      violation,
      deviation: scheduler.deviation,
      result,
      virtualMs: runtime.clock.now(),
    };
    if (violation !== undefined && this.events.wants('race.violation')) {
      this.events.emit({
        type: 'race.violation',
        source: this.name,
        at: this.clock.now(),
        seed,
        schedule: index,
        message: violation,
        interleaving: run.interleaving,
      });
    }
    return run;
  }

  private check(result: T): string | undefined {
    let verdict: boolean | string | undefined;
    try {
      verdict = this.invariant(result);
    } catch (error) {
      return `invariant failed: ${describeError(error)}`;
    }
    if (verdict === true || verdict === undefined) return undefined;
    return typeof verdict === 'string' ? verdict : 'invariant returned false';
  }

  /** The exploration's settings, e.g. `race(100 schedules, delay 0–10ms, seed 1)`. */
  toString(): string {
    const how = this.strategy === 'delay' ? `delay 0–${formatMs(this.maxDelayMs)}` : 'random order';
    return `${this.name}(${this.schedules} schedules, ${how}, seed ${this.seed})`;
  }
}

/**
 * An interleaving explorer: runs `scenario` under up to `schedules` seeded schedules, each letting the
 * tasks through their `ctx.point(label)`s in a different order on a virtual clock, and checks
 * `invariant` after each. On a violation it reports the schedule's seed and interleaving; `replay(seed)`
 * reproduces it exactly. The scenario must wait only on its points and its `ctx.runtime.clock`.
 *
 * @example
 * const explorer = raceExplorer({
 *   scenario: async ({ point }) => {
 *     const account = { balance: 100 };
 *     const withdraw = async (who: string, amount: number) => {
 *       await point(`${who}:read`);
 *       const seen = account.balance;
 *       await point(`${who}:write`);
 *       account.balance = seen - amount; // lost update: another withdrawal may have written since
 *     };
 *     await Promise.all([withdraw('A', 30), withdraw('B', 50)]);
 *     return account.balance;
 *   },
 *   invariant: (balance) => balance === 20 || `balance ${balance}, expected 20`,
 *   seed: 1,
 * });
 * const { violation } = await explorer.explore();
 * // violation.seed '1/schedule:2', violation.interleaving ['A:read', 'B:read', 'A:write', 'B:write']
 * const again = await explorer.replay(violation.seed); // the same interleaving and violation
 */
export function raceExplorer<T>(options: RaceExplorerOptions<T>): RaceExplorer<T> {
  return new RaceExplorer(options);
}
