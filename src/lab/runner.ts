/**
 * Runs a scenario on virtual runtimes: once per derived seed, then pools the counts, merges the
 * histograms, and evaluates predictions, comparisons and checks into a {@link ScenarioReport}.
 */

import { SystemClock } from '../core/clock.js';
import type { EventSink } from '../core/events.js';
import type { Seed } from '../core/random.js';
import { createRuntime, type Runtime, virtualRuntime } from '../core/runtime.js';
import { functionOption, intOption, invalid, knownKeys } from '../policy/options.js';
import type {
  AnalyticReport,
  CheckReport,
  ComparisonReport,
  MetricReport,
  RateSpread,
  ScenarioReport,
} from './document.js';
import { LogHistogram } from './histogram.js';
import {
  type Check,
  type Counts,
  checkTasks,
  Measurements,
  type ParamValue,
  resolveParams,
  type Scenario,
  type ScenarioSetup,
} from './scenario.js';
import { binomialConsistency, powerWarning, rate, twoProportionTest } from './stats.js';

/** Options of {@link runScenario}. */
export interface RunScenarioOptions {
  /** The base seed; run `i` uses the seed `${seed}/run:${i}`. */
  seed: Seed;
  /** Tasks per run. @defaultValue the scenario's `defaults.tasks` */
  tasks?: number;
  /** Runs, each on its own derived seed; counts are pooled and the per-run spread reported. @defaultValue 1 */
  runs?: number;
  /** Parameter overrides (known keys, same types as the defaults). */
  params?: Readonly<Record<string, unknown>>;
  /** Called as tasks finish: `done` of `total` over all runs. */
  onProgress?: (done: number, total: number) => void;
  /** The event sink of every run's runtime, to watch a run as it executes (`bulwark lab --live`). */
  events?: EventSink;
  /**
   * Called with each run's runtime before the run starts, so monitoring (alert rules, pattern analysis,
   * an events recording) can subscribe to its events and use its clock; the function it returns is
   * called when the run ends.
   */
  observe?: (runtime: Runtime, run: number) => (() => void) | undefined;
}

/** The seed of run `index` of a run with base seed `seed`. */
export function runSeed(seed: Seed, index: number): string {
  return `${seed}/run:${index}`;
}

/**
 * Runs `task(i)` for `i` in `0 … count - 1` with at most `concurrency` in flight, in order of `i`.
 * Resolves when all are done; rejects with the first error (the tasks then in flight still finish).
 * @example
 * await runTasks(10_000, 1000, async (i) => { record.count('ok', await attempt(i)); });
 */
export async function runTasks(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
  onDone?: (done: number) => void,
): Promise<void> {
  intOption('runTasks', 'concurrency', concurrency, 1, 1, Number.MAX_SAFE_INTEGER);
  let next = 0;
  let done = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (next < count && !failed) {
      const index = next++;
      try {
        await task(index);
      } catch (error) {
        if (!failed) {
          failed = true;
          firstError = error;
        }
        return;
      }
      done++;
      onDone?.(done);
    }
  };
  const workers: Promise<void>[] = [];
  for (let i = 0; i < Math.min(concurrency, count); i++) workers.push(worker());
  await Promise.all(workers);
  if (failed) throw firstError;
}

/**
 * Runs a scenario `runs` times on virtual runtimes seeded from `seed` and reports the pooled result.
 * The report is a pure function of the scenario, the seed and the options.
 * @example
 * const report = await runScenario(network, { seed: 42, tasks: 100_000 });
 * report.metrics.final.rate; // ≈ 0.9148
 */
export async function runScenario<P extends Record<string, ParamValue>>(
  scenario: Scenario<P>,
  options: RunScenarioOptions,
): Promise<ScenarioReport> {
  const where = 'runScenario';
  if (typeof options !== 'object' || options === null) throw invalid(where, 'options', options, 'an object');
  knownKeys(where, options, ['seed', 'tasks', 'runs', 'params', 'onProgress', 'events', 'observe']);
  const { seed } = options;
  if (!(typeof seed === 'string' || (typeof seed === 'number' && Number.isFinite(seed)))) {
    throw invalid(where, 'seed', seed, 'a number or a string');
  }
  const tasks =
    options.tasks === undefined ? scenario.defaults.tasks : checkTasks(where, 'tasks', options.tasks);
  const runs = intOption(where, 'runs', options.runs, 1, 1, 100_000);
  const params = resolveParams(scenario, options.params);
  const onProgress = options.onProgress;
  const observe = functionOption<(runtime: Runtime, run: number) => (() => void) | undefined>(
    where,
    'observe',
    options.observe,
  );
  const setup: ScenarioSetup<P> = { tasks, runs, params };

  const clock = typeof scenario.clock === 'function' ? scenario.clock(params) : scenario.clock;
  const perRun: Measurements[] = [];
  let virtualMs = 0;
  for (let i = 0; i < runs; i++) {
    const record = new Measurements();
    const before = i * tasks;
    const progress =
      onProgress === undefined ? () => {} : (done: number) => onProgress(before + done, runs * tasks);
    if (clock === 'system') {
      // Real time: seeded decisions, real I/O; elapsed time is wall time and belongs in `meta`.
      const runtime = createRuntime({
        seed: runSeed(seed, i),
        clock: new SystemClock(),
        ...(options.events === undefined ? {} : { events: options.events }),
      });
      const detach = observe?.(runtime, i);
      try {
        await scenario.run({ runtime, tasks, params, record, progress });
      } finally {
        detach?.();
      }
    } else {
      const runtime = virtualRuntime(
        runSeed(seed, i),
        options.events === undefined ? {} : { events: options.events },
      );
      const detach = observe?.(runtime, i);
      try {
        await runtime.clock.run(async () => {
          await scenario.run({ runtime, tasks, params, record, progress });
        });
      } finally {
        detach?.();
      }
      virtualMs += runtime.clock.now();
    }
    perRun.push(record);
  }
  return summarise(scenario, setup, perRun, virtualMs);
}

function sorted<T>(map: Map<string, T>): [string, T][] {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function spreadOf(rates: number[]): RateSpread {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let sum = 0;
  for (const r of rates) {
    if (r < min) min = r;
    if (r > max) max = r;
    sum += r;
  }
  const mean = sum / rates.length;
  let squares = 0;
  for (const r of rates) squares += (r - mean) ** 2;
  return { min, max, sd: rates.length > 1 ? Math.sqrt(squares / (rates.length - 1)) : 0 };
}

function summarise<P extends Record<string, ParamValue>>(
  scenario: Scenario<P>,
  setup: ScenarioSetup<P>,
  perRun: Measurements[],
  virtualMs: number,
): ScenarioReport {
  const pooled = new Map<string, Counts>();
  const runRates = new Map<string, number[]>();
  const histograms = new Map<string, LogHistogram>();
  const sums = new Map<string, number>();
  const maxima = new Map<string, number>();
  for (const run of perRun) {
    for (const [name, counts] of run.rates) {
      const total = pooled.get(name);
      if (total === undefined) pooled.set(name, { ...counts });
      else {
        total.count += counts.count;
        total.total += counts.total;
      }
    }
    for (const [name, histogram] of run.histograms) {
      let merged = histograms.get(name);
      if (merged === undefined) {
        merged = new LogHistogram();
        histograms.set(name, merged);
      }
      merged.merge(histogram);
    }
    for (const [name, n] of run.sums) sums.set(name, (sums.get(name) ?? 0) + n);
    for (const [name, n] of run.maxima) maxima.set(name, Math.max(maxima.get(name) ?? n, n));
  }
  for (const name of pooled.keys()) {
    runRates.set(
      name,
      perRun.map((run) => {
        const counts = run.rates.get(name);
        return counts === undefined || counts.total === 0 ? 0 : counts.count / counts.total;
      }),
    );
  }

  const metrics: Record<string, MetricReport> = {};
  for (const [name, counts] of sorted(pooled)) {
    const estimate: MetricReport = rate(counts.count, counts.total);
    if (setup.runs > 1) estimate.spread = spreadOf(runRates.get(name) ?? []);
    metrics[name] = estimate;
  }
  const values: Record<string, number> = {};
  for (const [name, n] of sorted(new Map([...sums, ...maxima]))) values[name] = n;
  const latency: Record<string, ReturnType<LogHistogram['toJSON']>> = {};
  for (const [name, histogram] of sorted(histograms)) latency[name] = histogram.toJSON();

  const analytic: Record<string, AnalyticReport> = {};
  const predictions = scenario.analytic?.(setup) ?? {};
  for (const name of Object.keys(predictions).sort()) {
    const expected = predictions[name] as number;
    const counts = pooled.get(name);
    if (counts === undefined || counts.total === 0) continue;
    const verdict = binomialConsistency(counts, expected);
    analytic[name] = {
      expected,
      observed: verdict.observed,
      consistent: verdict.consistent,
      pValue: verdict.pValue,
    };
  }

  const comparisons: ComparisonReport[] = [];
  for (const spec of scenario.comparisons ?? []) {
    const before = pooled.get(spec.before);
    const after = pooled.get(spec.after);
    const beforeMetric = metrics[spec.before];
    const afterMetric = metrics[spec.after];
    if (
      before === undefined ||
      after === undefined ||
      beforeMetric === undefined ||
      afterMetric === undefined
    )
      continue;
    if (before.total === 0 || after.total === 0) continue;
    const test = twoProportionTest(before, after);
    const comparison: ComparisonReport = {
      metric: spec.metric,
      before: beforeMetric,
      after: afterMetric,
      diff: test.diff,
      relative: test.relative,
      pValue: test.pValue,
      ci95: test.ci95,
      significant: test.significant,
    };
    const warning = powerWarning(before, after);
    if (warning !== undefined) comparison.warning = warning;
    comparisons.push(comparison);
  }

  const expect = typeof scenario.expect === 'function' ? scenario.expect(setup) : (scenario.expect ?? []);
  const checks = expect.map((check) => evaluate(check, pooled, values));
  const first = perRun[0];
  const series: Record<string, [number, number][]> = {};
  if (first !== undefined) for (const [name, points] of sorted(first.charts)) series[name] = points;
  const report: ScenarioReport = {
    name: scenario.name,
    description: scenario.description,
    tasks: setup.tasks,
    runs: setup.runs,
    passed: checks.every((c) => c.passed),
    params: { ...setup.params },
    metrics,
    values,
    latency,
    analytic,
    comparisons,
    checks,
    virtualMs,
  };
  if (Object.keys(series).length > 0) report.series = series;
  return report;
}

function show(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(6)));
}

function bounds(atLeast: number | undefined, atMost: number | undefined, equals?: number): string {
  if (equals !== undefined) return `= ${show(equals)}`;
  if (atLeast !== undefined && atMost !== undefined) return `in [${show(atLeast)}, ${show(atMost)}]`;
  if (atLeast !== undefined) return `>= ${show(atLeast)}`;
  if (atMost !== undefined) return `<= ${show(atMost)}`;
  return 'recorded';
}

/** Evaluates one check on pooled counts and values. */
export function evaluate(
  check: Check,
  pooled: ReadonlyMap<string, Counts>,
  values: Readonly<Record<string, number>>,
): CheckReport {
  if ('value' in check) {
    const { value: name, equals, atLeast, atMost } = check;
    const description = check.description ?? `${name} ${bounds(atLeast, atMost, equals)}`;
    const actual = values[name];
    if (actual === undefined) return { description, passed: false, message: `${name} was not recorded` };
    const passed =
      (equals === undefined || actual === equals) &&
      (atLeast === undefined || actual >= atLeast) &&
      (atMost === undefined || actual <= atMost);
    return { description, passed, message: `${name} = ${show(actual)}` };
  }
  const counts = pooled.get(check.metric);
  if ('consistentWith' in check) {
    const description = check.description ?? `${check.metric} consistent with ${show(check.consistentWith)}`;
    if (counts === undefined || counts.total === 0) {
      return { description, passed: false, message: `${check.metric} was not recorded` };
    }
    const verdict = binomialConsistency(counts, check.consistentWith);
    const p = verdict.pValue < 0.001 ? 'p < 0.001' : `p = ${verdict.pValue.toPrecision(3)}`;
    return {
      description,
      passed: verdict.consistent,
      message:
        `${check.metric} = ${counts.count}/${counts.total} = ${show(verdict.observed)}; ` +
        `${verdict.consistent ? 'consistent' : 'inconsistent'} with ${show(check.consistentWith)} (${p})`,
    };
  }
  const { atLeast, atMost } = check;
  const description = check.description ?? `${check.metric} ${bounds(atLeast, atMost)}`;
  if (counts === undefined || counts.total === 0) {
    return { description, passed: false, message: `${check.metric} was not recorded` };
  }
  const observed = counts.count / counts.total;
  const passed =
    (atLeast === undefined || observed >= atLeast) && (atMost === undefined || observed <= atMost);
  return {
    description,
    passed,
    message: `${check.metric} = ${counts.count}/${counts.total} = ${show(observed)}`,
  };
}
