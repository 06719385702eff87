/**
 * The lab's report document: the one JSON value every report (terminal table, `report.json`,
 * `report.md`, `report.html`) is rendered from. Everything outside `meta` is a pure function of the
 * seed and the inputs, so two runs with the same seed serialise byte-identically outside `meta`.
 */
import { type Clock, SystemClock } from '../core/clock.js';
import type { Seed } from '../core/random.js';
import { invalid, knownKeys } from '../policy/options.js';
import type { LogHistogramJSON } from './histogram.js';
import { runScenario } from './runner.js';
import type { Scenario } from './scenario.js';

/** Spread of one rate across the K runs of a `--runs K` execution (present when `runs > 1`). */
export interface RateSpread {
  min: number;
  max: number;
  /** Sample standard deviation of the per-run rates (0 when every run agrees). */
  sd: number;
}

/** A success rate: `count` successes out of `total`, with its 95% Wilson interval. Pooled over runs. */
export interface MetricReport {
  rate: number;
  ci95: [number, number];
  count: number;
  total: number;
  /** Per-run spread of `rate`; only when the scenario ran more than once. */
  spread?: RateSpread;
}

/** The verdict of an observed rate against an analytic (closed-form) prediction. */
export interface AnalyticReport {
  /** The predicted rate. */
  expected: number;
  /** The observed (pooled) rate. */
  observed: number;
  /** `pValue >= 0.01`: the observation is consistent with the prediction. */
  consistent: boolean;
  /** Two-sided p-value of the binomial consistency test. */
  pValue: number;
}

/** A before/after comparison of one rate (e.g. first attempt vs. with retries). */
export interface ComparisonReport {
  /** The metric the comparison is about (e.g. `"success"`). */
  metric: string;
  /** The rate without the mechanism. */
  before: MetricReport;
  /** The rate with the mechanism. */
  after: MetricReport;
  /** `after.rate - before.rate`. */
  diff: number;
  /** `diff / before.rate`, or `null` when `before.rate` is 0. */
  relative: number | null;
  /** Two-sided p-value of the two-proportion z test. */
  pValue: number;
  /** 95% interval of `diff` (Newcombe). */
  ci95: [number, number];
  /** `pValue < 0.05`. */
  significant: boolean;
  /** Present when the sample is too small to support the improvement it shows. */
  warning?: string;
}

/** The outcome of one `expect` check of a scenario. */
export interface CheckReport {
  /** What was checked, e.g. `"final consistent with 0.914816"`. */
  description: string;
  passed: boolean;
  /** Why it passed or failed, with the numbers. */
  message: string;
}

/** Everything one scenario produced. */
export interface ScenarioReport {
  name: string;
  description: string;
  /** Tasks per run. */
  tasks: number;
  /** Number of runs (K seeds derived from the base seed). */
  runs: number;
  /** Every check passed. */
  passed: boolean;
  /** The scenario's parameters after defaults (JSON values only). */
  params: Record<string, unknown>;
  /** Success rates, pooled over runs. */
  metrics: Record<string, MetricReport>;
  /** Counters and gauges (e.g. `calls`, `failures.ECONNREFUSED`, `retries`, `peak_utilisation`). */
  values: Record<string, number>;
  /** Latency / duration distributions in virtual ms. */
  latency: Record<string, LogHistogramJSON>;
  /** Observed rates against closed-form predictions, keyed by metric. */
  analytic: Record<string, AnalyticReport>;
  comparisons: ComparisonReport[];
  checks: CheckReport[];
  /**
   * Time series for charts (e.g. `utilisation`: `[virtual ms, used / capacity]` points, bounded), from the
   * first run. Absent when the scenario records none.
   */
  series?: Record<string, [number, number][]>;
  /** Virtual time the scenario took, summed over runs (ms). */
  virtualMs: number;
  /** Failure patterns found in the first run's events (`bulwark lab --patterns`); absent otherwise. */
  patterns?: PatternSummary;
}

/** The failure-pattern analysis of a run's events, as the lab reports it (see `bulwark analyze`). */
export interface PatternSummary {
  /** Events analysed, and how many of them were failures. */
  events: number;
  failures: number;
  /** True when the run emitted more events than are kept for the analysis (the first ones are kept). */
  truncated: boolean;
  /** Ranked findings: failure signatures, bursts, correlated targets, periodic failures, futile retries. */
  findings: {
    kind: string;
    title: string;
    targets: string[];
    count: number;
    /** Virtual ms. */
    firstSeen: number;
    lastSeen: number;
  }[];
}

/** Machine- and wall-time-dependent facts: the only part of the document that differs between identical runs. */
export interface ReportMeta {
  /** Wall-clock duration of the whole lab run in ms. */
  wallMs: number;
  /** Wall-clock ms per scenario, keyed by name. */
  scenarioWallMs: Record<string, number>;
  /** `process.version`. */
  node: string;
  platform: string;
  arch: string;
  /** Bulwark's package version, when known. */
  version?: string;
  [key: string]: unknown;
}

/** The lab's report document. */
export interface LabReport {
  /** The base seed (as given; a number or a string). */
  seed: number | string;
  scenarios: ScenarioReport[];
  meta: ReportMeta;
}

/** Options of {@link runLab}. */
export interface RunLabOptions {
  /** The base seed of every scenario. */
  seed: Seed;
  /** The scenarios to run, in report order. */
  scenarios: readonly Scenario[];
  /** Tasks per run for every scenario. @defaultValue each scenario's `defaults.tasks` */
  tasks?: number;
  /** Runs per scenario. @defaultValue 1 */
  runs?: number;
  /** Parameter overrides by scenario name. */
  params?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Progress of the scenario being run: `done` of `total` tasks over its runs. */
  onProgress?: (scenario: string, done: number, total: number) => void;
  /** Extra `meta` fields (e.g. the package version). */
  meta?: Readonly<Record<string, unknown>>;
  /** The wall clock `meta` is measured with. @defaultValue a `SystemClock` */
  wallClock?: Clock;
}

/**
 * Runs scenarios (each on its own virtual runtimes) and assembles the report document.
 * @example
 * const report = await runLab({ seed: 42, scenarios: [...builtinScenarios().values()] });
 * process.stdout.write(serializeReport(report));
 */
export async function runLab(options: RunLabOptions): Promise<LabReport> {
  const where = 'runLab';
  if (typeof options !== 'object' || options === null) throw invalid(where, 'options', options, 'an object');
  knownKeys(where, options, [
    'seed',
    'scenarios',
    'tasks',
    'runs',
    'params',
    'onProgress',
    'meta',
    'wallClock',
  ]);
  if (!Array.isArray(options.scenarios)) {
    throw invalid(where, 'scenarios', options.scenarios, 'an array of scenarios');
  }
  const wall = options.wallClock ?? new SystemClock();
  const started = wall.now();
  const reports: ScenarioReport[] = [];
  const scenarioWallMs: Record<string, number> = {};
  for (const scenario of options.scenarios) {
    const begun = wall.now();
    const { onProgress } = options;
    const overrides = options.params?.[scenario.name];
    reports.push(
      await runScenario(scenario, {
        seed: options.seed,
        ...(options.tasks === undefined ? {} : { tasks: options.tasks }),
        ...(options.runs === undefined ? {} : { runs: options.runs }),
        ...(overrides === undefined ? {} : { params: overrides }),
        ...(onProgress === undefined
          ? {}
          : { onProgress: (done: number, total: number) => onProgress(scenario.name, done, total) }),
      }),
    );
    scenarioWallMs[scenario.name] = wall.now() - begun;
  }
  return labReport(options.seed, reports, {
    wallMs: wall.now() - started,
    scenarioWallMs,
    ...(options.meta ?? {}),
  });
}

/**
 * Assembles a report document from scenario reports; `meta` gets the Node version, platform and
 * architecture added.
 */
export function labReport(
  seed: Seed,
  scenarios: readonly ScenarioReport[],
  meta: { wallMs: number; scenarioWallMs: Record<string, number>; [key: string]: unknown },
): LabReport {
  return {
    seed,
    scenarios: [...scenarios],
    meta: { node: process.version, platform: process.platform, arch: process.arch, ...meta },
  };
}

/** The document as `report.json` holds it: two-space indented JSON with a final newline. */
export function serializeReport(report: LabReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** The part of the document that is identical for the same seed and inputs: everything but `meta`. */
export function withoutMeta(report: LabReport): Omit<LabReport, 'meta'> {
  const { meta: _meta, ...rest } = report;
  return rest;
}
