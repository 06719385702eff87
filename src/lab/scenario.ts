/**
 * Scenarios: a named experiment that runs tasks on a virtual runtime and records outcomes through a
 * bounded recorder (counters, maxima and log histograms; nothing per task), plus the analytic predictions,
 * before/after comparisons and checks its report carries.
 */
import { BulwarkError } from '../core/errors.js';
import type { Runtime } from '../core/runtime.js';
import { invalid } from '../policy/options.js';
import { LogHistogram } from './histogram.js';

/**
 * Thrown by a scenario's `run` when a service it needs (see `services`) cannot be reached; the message
 * is one line that says what is missing and where.
 * @example
 * throw new ServiceUnavailableError('postgres', 'db-pool needs PostgreSQL at 127.0.0.1:5432: connect ECONNREFUSED');
 */
export class ServiceUnavailableError extends BulwarkError {
  override readonly name = 'ServiceUnavailableError';
  constructor(
    /** The service, e.g. `'postgres'`. */
    readonly service: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('SERVICE_UNAVAILABLE', message, { ...options, retryable: false });
  }
}

/**
 * True when the scenario needs an external service and so runs only when named.
 * @example
 * const everyDefault = [...builtinScenarios().values()].filter((s) => !isOptIn(s)); // what `bulwark lab` runs
 */
export function isOptIn(scenario: { services?: readonly string[] }): boolean {
  return (scenario.services?.length ?? 0) > 0;
}

/** A JSON-serialisable parameter value. */
export type ParamValue = number | string | boolean;

/** Records the outcomes of a scenario run. Memory is bounded by the number of distinct names. */
export interface Recorder {
  /** Counts one trial of the rate `metric`: `success` true adds to its successes. */
  count(metric: string, success: boolean): void;
  /** Adds `n` trials of which `successes` succeeded to the rate `metric`. */
  countMany(metric: string, successes: number, total: number): void;
  /** Records a duration or size (>= 0, e.g. virtual ms) in the log histogram `name`. */
  latency(name: string, value: number): void;
  /** Adds `n` (default 1) to the counter `name` (summed across runs). */
  add(name: string, n?: number): void;
  /** Keeps the largest `n` seen for the gauge `name` (maximum across runs). */
  max(name: string, n: number): void;
  /** Sets the chart series `name` (`[x, y]` points, at most 1024 kept); the report shows the first run's. */
  series(name: string, points: readonly (readonly [number, number])[]): void;
}

/** What a scenario's `run` receives. */
export interface ScenarioContext<P extends Record<string, ParamValue>> {
  /**
   * A runtime seeded from the run's seed. On the default virtual clock it is a `VirtualRuntime` and `run`
   * executes inside `runtime.clock.run`; with `clock: 'system'` its clock is real time.
   */
  readonly runtime: Runtime;
  /** Tasks to run. */
  readonly tasks: number;
  /** The parameters: the scenario's defaults with the run's overrides. */
  readonly params: Readonly<P>;
  readonly record: Recorder;
  /** Reports progress: `done` tasks of `tasks` finished (the runner forwards it to `onProgress`). */
  progress(done: number): void;
}

/** How a scenario's setup looks to its `analytic` and `expect` functions. */
export interface ScenarioSetup<P extends Record<string, ParamValue>> {
  readonly tasks: number;
  readonly runs: number;
  readonly params: Readonly<P>;
}

/** A before/after comparison of two rate metrics recorded on the same tasks. */
export interface ComparisonSpec {
  /** What the comparison is about, e.g. `'success'`. */
  metric: string;
  /** The rate metric without the mechanism, e.g. `'first_attempt'`. */
  before: string;
  /** The rate metric with the mechanism, e.g. `'final'`. */
  after: string;
}

/** A check on a rate metric, or on a counter/gauge value. */
export type Check =
  | { metric: string; consistentWith: number; description?: string }
  | { metric: string; atLeast?: number; atMost?: number; description?: string }
  | { value: string; equals?: number; atLeast?: number; atMost?: number; description?: string };

/** The definition given to {@link defineScenario}. */
export interface ScenarioDefinition<P extends Record<string, ParamValue>> {
  /** Short name: lowercase letters, digits, `-` and `_`. */
  name: string;
  /** One line for `bulwark lab --list` and the reports. */
  description: string;
  /** Parameters with their default values. */
  params: P;
  defaults: { tasks: number };
  /**
   * `'virtual'` (default): runs on a {@link VirtualClock}, and the report is identical for the same seed.
   * `'system'`: runs in real time (real I/O: a SQLite file, a loopback server); its random decisions are
   * still seeded, but timings — and so outcomes that depend on them — may differ from run to run.
   * A function of the parameters chooses per run (e.g. real time only for a real-I/O backend).
   * @defaultValue 'virtual'
   */
  clock?: 'virtual' | 'system' | ((params: Readonly<P>) => 'virtual' | 'system');
  /**
   * External services the scenario needs, e.g. `['postgres']`. A scenario that needs one is opt-in:
   * `bulwark lab` with no names leaves it out (so the lab runs on a machine with nothing installed), and
   * runs it only when named. When a service is unreachable, `run` throws a
   * {@link ServiceUnavailableError}, which the CLI reports as one line.
   * @defaultValue `[]`
   */
  services?: readonly string[];
  /** Runs `ctx.tasks` tasks on `ctx.runtime`, recording outcomes with `ctx.record`. */
  run(ctx: ScenarioContext<P>): Promise<void> | void;
  /** Closed-form predictions of rate metrics, by metric. */
  analytic?: (setup: ScenarioSetup<P>) => Record<string, number>;
  /** Before/after comparisons of rate metrics. */
  comparisons?: readonly ComparisonSpec[];
  /** Checks evaluated on the result; all must pass for the scenario to pass. */
  expect?: readonly Check[] | ((setup: ScenarioSetup<P>) => readonly Check[]);
}

/** A validated scenario. */
export interface Scenario<P extends Record<string, ParamValue> = Record<string, ParamValue>>
  extends Readonly<ScenarioDefinition<P>> {
  readonly kind: 'scenario';
}

const MAX_SERIES_POINTS = 1024;
const NAME = /^[a-z][a-z0-9_-]*$/;
const WHERE = 'defineScenario';
const DEFINITION_KEYS: readonly string[] = [
  'name',
  'description',
  'params',
  'defaults',
  'clock',
  'services',
  'run',
  'analytic',
  'comparisons',
  'expect',
];

/**
 * Defines a lab scenario.
 * @example
 * const coin = defineScenario({
 *   name: 'coin',
 *   description: 'a fair coin',
 *   params: { p: 0.5 },
 *   defaults: { tasks: 1000 },
 *   run({ runtime, tasks, params, record }) {
 *     for (let i = 0; i < tasks; i++) record.count('heads', runtime.random.next() < params.p);
 *   },
 *   analytic: ({ params }) => ({ heads: params.p }),
 *   expect: [{ metric: 'heads', consistentWith: 0.5 }],
 * });
 */
export function defineScenario<P extends Record<string, ParamValue>>(
  definition: ScenarioDefinition<P>,
): Scenario<P> {
  if (typeof definition !== 'object' || definition === null) {
    throw invalid(WHERE, 'definition', definition, 'an object');
  }
  for (const key of Object.keys(definition)) {
    // `kind` is what a defined scenario carries: `defineScenario({ ...scenario, expect })` is allowed.
    if (
      !DEFINITION_KEYS.includes(key) &&
      !(key === 'kind' && (definition as { kind?: unknown }).kind === 'scenario')
    ) {
      throw new TypeError(
        `${WHERE}: unknown option "${key}"; known options are ${DEFINITION_KEYS.join(', ')}`,
      );
    }
  }
  const { name, description, params, defaults, clock, run, analytic, comparisons, expect } = definition;
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw invalid(WHERE, 'name', name, 'a name of lowercase letters, digits, "-" and "_"');
  }
  if (typeof description !== 'string') throw invalid(WHERE, 'description', description, 'a string');
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw invalid(WHERE, 'params', params, 'an object of numbers, strings and booleans');
  }
  for (const [key, value] of Object.entries(params)) {
    if (!isParamValue(value)) throw invalid(WHERE, `params.${key}`, value, 'a number, string or boolean');
  }
  if (typeof defaults !== 'object' || defaults === null) {
    throw invalid(WHERE, 'defaults', defaults, 'an object { tasks }');
  }
  for (const key of Object.keys(defaults)) {
    if (key !== 'tasks')
      throw new TypeError(`${WHERE}: unknown option "defaults.${key}"; known options are tasks`);
  }
  checkTasks(WHERE, 'defaults.tasks', defaults.tasks);
  if (clock !== undefined && clock !== 'virtual' && clock !== 'system' && typeof clock !== 'function') {
    throw invalid(WHERE, 'clock', clock, '"virtual", "system" or a function of the parameters');
  }
  const { services } = definition;
  if (
    services !== undefined &&
    (!Array.isArray(services) || services.some((s) => typeof s !== 'string' || s.length === 0))
  ) {
    throw invalid(WHERE, 'services', services, 'an array of service names such as ["postgres"]');
  }
  if (typeof run !== 'function') throw invalid(WHERE, 'run', run, 'a function');
  if (analytic !== undefined && typeof analytic !== 'function') {
    throw invalid(WHERE, 'analytic', analytic, 'a function of the setup');
  }
  if (comparisons !== undefined && !Array.isArray(comparisons)) {
    throw invalid(WHERE, 'comparisons', comparisons, 'an array of { metric, before, after }');
  }
  if (expect !== undefined && typeof expect !== 'function' && !Array.isArray(expect)) {
    throw invalid(WHERE, 'expect', expect, 'an array of checks or a function returning one');
  }
  return Object.freeze({ ...definition, params: Object.freeze({ ...params }), kind: 'scenario' as const });
}

function isParamValue(value: unknown): value is ParamValue {
  return (
    (typeof value === 'number' && Number.isFinite(value)) ||
    typeof value === 'string' ||
    typeof value === 'boolean'
  );
}

/** @internal Validates a task count: an integer >= 1. */
export function checkTasks(where: string, option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw invalid(where, option, value, 'an integer >= 1');
  }
  return value;
}

/** @internal Merges parameter overrides into a scenario's defaults, rejecting unknown keys and wrong types. */
export function resolveParams<P extends Record<string, ParamValue>>(
  scenario: Scenario<P>,
  overrides: Readonly<Record<string, unknown>> | undefined,
): P {
  const where = `scenario ${scenario.name}`;
  const result: Record<string, ParamValue> = { ...scenario.params };
  for (const [key, value] of Object.entries(overrides ?? {})) {
    if (!Object.hasOwn(scenario.params, key)) {
      const known = Object.keys(scenario.params);
      throw new TypeError(
        `${where}: unknown parameter "${key}"; known parameters are ${known.length === 0 ? '(none)' : known.join(', ')}`,
      );
    }
    const expected = typeof scenario.params[key];
    if (typeof value !== expected || !isParamValue(value)) {
      throw invalid(where, `params.${key}`, value, `a ${expected}`);
    }
    result[key] = value;
  }
  return result as P;
}

/** Rate counts of one metric. */
export interface Counts {
  count: number;
  total: number;
}

/** @internal The recorder's state: what one run measured. */
export class Measurements implements Recorder {
  readonly rates = new Map<string, Counts>();
  readonly histograms = new Map<string, LogHistogram>();
  readonly sums = new Map<string, number>();
  readonly maxima = new Map<string, number>();
  readonly charts = new Map<string, [number, number][]>();

  count(metric: string, success: boolean): void {
    const counts = this.rates.get(metric);
    if (counts === undefined) this.rates.set(metric, { count: success ? 1 : 0, total: 1 });
    else {
      counts.total++;
      if (success) counts.count++;
    }
  }

  countMany(metric: string, successes: number, total: number): void {
    if (!Number.isSafeInteger(total) || total < 0) {
      throw invalid('record.countMany', 'total', total, 'an integer >= 0');
    }
    if (!Number.isSafeInteger(successes) || successes < 0 || successes > total) {
      throw invalid('record.countMany', 'successes', successes, `an integer in [0, ${total}]`);
    }
    const counts = this.rates.get(metric);
    if (counts === undefined) this.rates.set(metric, { count: successes, total });
    else {
      counts.total += total;
      counts.count += successes;
    }
  }

  latency(name: string, value: number): void {
    let histogram = this.histograms.get(name);
    if (histogram === undefined) {
      histogram = new LogHistogram();
      this.histograms.set(name, histogram);
    }
    histogram.record(value);
  }

  add(name: string, n = 1): void {
    if (typeof n !== 'number' || !Number.isFinite(n)) throw invalid('record.add', 'n', n, 'a finite number');
    if (this.maxima.has(name)) throw new TypeError(`record.add: "${name}" is already a gauge (record.max)`);
    this.sums.set(name, (this.sums.get(name) ?? 0) + n);
  }

  max(name: string, n: number): void {
    if (typeof n !== 'number' || !Number.isFinite(n)) throw invalid('record.max', 'n', n, 'a finite number');
    if (this.sums.has(name)) throw new TypeError(`record.max: "${name}" is already a counter (record.add)`);
    const current = this.maxima.get(name);
    if (current === undefined || n > current) this.maxima.set(name, n);
  }

  series(name: string, points: readonly (readonly [number, number])[]): void {
    if (!Array.isArray(points) || points.length > MAX_SERIES_POINTS) {
      throw invalid(
        'record.series',
        'points',
        points,
        `an array of at most ${MAX_SERIES_POINTS} [x, y] pairs`,
      );
    }
    this.charts.set(
      name,
      points.map(([x, y]) => [x, y]),
    );
  }
}
