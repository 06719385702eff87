/**
 * `bulwark lab`: runs the lab's scenarios on a virtual clock from a seed and prints the summary table,
 * or the report document as JSON, and writes `report.json`, `report.md` and `report.html` (to `--out DIR`,
 * `./lab-report` by default).
 * Exit code 0 when every scenario passes its checks, 1 when one does not, 2 on bad input.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SystemClock } from '../core/clock.js';
import { isBulwarkError } from '../core/errors.js';
import type { Seed } from '../core/random.js';
import type { Runtime } from '../core/runtime.js';
import type { LabReport, PatternSummary, ScenarioReport } from '../lab/document.js';
import { renderHtml, renderMarkdown, renderTerminal } from '../lab/report/index.js';
import { type RunScenarioOptions, runScenario } from '../lab/runner.js';
import { isOptIn, type ParamValue, resolveParams, type Scenario } from '../lab/scenario.js';
import { builtinScenarios } from '../lab/scenarios/index.js';
import { loadScenarioFile, ScenarioFileError } from '../lab/yaml.js';
import { eventToJsonLine } from '../monitor/event-file.js';
import type { AnalysedEvent } from '../monitor/patterns.js';
import type { DashboardDependencies } from './dashboard.js';
import { type CommandIO, parseFlags, UsageError, writeFilesAtomic } from './io.js';

/** What the command runs on; tests replace parts of it. */
export interface LabDependencies {
  /** The scenarios by name, in listing order. */
  scenarios: () => ReadonlyMap<string, Scenario>;
  run: (scenario: Scenario, options: RunScenarioOptions) => Promise<ScenarioReport>;
  /** Wall-clock milliseconds, for `meta` and the progress line only. */
  now: () => number;
  /** Whether stderr is a terminal: the progress line is drawn only then. */
  stderrIsTTY: boolean;
  /** Bulwark's version, recorded in `meta`. */
  version?: string;
  /**
   * Where the reports go when neither `--out` nor `--no-out` is given (and `--json` is not); none: not written.
   * @defaultValue `'lab-report'` for the CLI
   */
  defaultOut?: string;
  /** Loads a scenario file (`--file`). @defaultValue `loadScenarioFile` */
  loadFile?: (path: string) => Promise<Scenario>;
  /** What `--live` serves the dashboard with. @defaultValue stop on Ctrl-C */
  liveDashboard?: DashboardDependencies;
}

const systemClock = new SystemClock();

export const defaultLabDependencies: LabDependencies = {
  scenarios: builtinScenarios,
  run: runScenario,
  now: () => systemClock.now(),
  stderrIsTTY: process.stderr.isTTY === true,
  defaultOut: 'lab-report',
};

const HELP = `Usage: bulwark lab [scenario…] [--seed S] [--tasks N] [--runs K] [--file F]… [--out DIR | --no-out] [--json] [--patterns] [--events FILE] [--list]

Runs the chaos lab's scenarios (all of them when none is named, except those that need an external
service such as PostgreSQL, which run only when named) on a virtual clock and prints, for each, the
success rate before and after its resilience mechanism with 95% intervals, the improvement, its
p-value and a verdict. The same seed gives the same numbers (real-time scenarios such as db-pool vary).

Options:
  --seed S       Base seed, a number or a string (default 1)
  --tasks N      Tasks per run, overriding each scenario's default (e.g. --tasks 10 for the original scale)
  --runs K       Runs on K seeds derived from the base seed; counts are pooled, the spread reported (default 1)
  --file F       Also run the scenario in the YAML/JSON file F (repeatable); with --file and no
                 scenario names, only the files' scenarios run. A bad file exits 2, listing each
                 problem as file:line:column: field: message
  --param K=V    Set the selected scenarios' parameter K (repeatable), typed like its default,
                 e.g. bulwark lab queue --param backend=sqlite
  --out DIR      Write report.json, report.md and report.html to DIR (created if missing;
                 default ./lab-report)
  --no-out       Do not write the report files
  --json         Print the report document as JSON instead of the table (then the files are
                 written only with an explicit --out)
  --live         Watch the run on the live dashboard (http://127.0.0.1:7420/), which stays up after
                 the run until Ctrl-C
  --port N       The live dashboard's port (default 7420; 0 for any free one)
  --patterns     Analyse each scenario's first run for failure patterns (signatures, bursts,
                 correlated targets, periodic failures, futile retries) and add them to the reports
  --events FILE  Also write every event of the run to FILE as JSON lines, for bulwark analyze
                 (one scenario, one run)
  --list         List the scenarios, one line each
  -h, --help     Show this help

Exit code: 0 when every scenario passes its checks, 1 when one does not, 2 on bad input or when a
service a named scenario needs is unreachable.
`;

/** Work (tasks × runs over the selected scenarios) from which a progress line is worth drawing. */
const LONG_RUN = 200_000;
const PROGRESS_EVERY_MS = 100;

function integer(flag: string, text: string | undefined, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new UsageError(`lab: --${flag} must be an integer from 1 to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function parseSeed(text: string): Seed {
  if (text === '') throw new UsageError('lab: --seed must not be empty');
  const n = Number(text);
  return /^-?\d+$/.test(text) && Number.isSafeInteger(n) ? n : text;
}

function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The known name closest to `name`, when it is close enough to be a typo. */
export function didYouMean(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = candidate.startsWith(name) || name.startsWith(candidate) ? 1 : distance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function shellWord(text: string): string {
  return /^[\w.,:/@%+=-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * A JSON-lines file every event of the observed run goes to: written to a temporary file beside it and
 * renamed over `path` only when the run finished, so a failed run neither leaves a partial file nor
 * destroys an earlier one.
 */
async function openEventsFile(path: string) {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const out = createWriteStream(temporary);
  await new Promise<void>((resolve, reject) => {
    out.once('open', () => resolve());
    out.once('error', (error) => reject(new UsageError(`lab: cannot write ${path}: ${error.message}`)));
  });
  let failure: Error | undefined;
  out.on('error', (error) => {
    failure = error;
  });
  const end = () => new Promise<void>((resolve) => out.end(() => resolve()));
  return {
    observe: (runtime: Runtime) =>
      runtime.events.subscribe((event) => {
        out.write(`${eventToJsonLine(event)}\n`);
      }),
    async close() {
      await end();
      if (failure !== undefined) {
        await rm(temporary, { force: true });
        throw new UsageError(`lab: cannot write ${path}: ${failure.message}`);
      }
      await rename(temporary, path);
    },
    async discard() {
      await end();
      await rm(temporary, { force: true });
    },
  };
}

/** Events kept for `--patterns`: enough for a default-size run of every built-in scenario. */
const PATTERN_EVENTS = 200_000;

/** Collects the first run's events (the first {@link PATTERN_EVENTS}) and analyses them for patterns. */
function collectEvents() {
  const events: AnalysedEvent[] = [];
  let truncated = false;
  return {
    observe: (runtime: Runtime, run: number) =>
      run !== 0
        ? undefined
        : runtime.events.subscribe((event) => {
            if (events.length < PATTERN_EVENTS) events.push(event as unknown as AnalysedEvent);
            else truncated = true;
          }),
    async analyse(): Promise<PatternSummary> {
      // Loaded only when asked for: the lab itself does not depend on monitoring.
      const { patternSummary } = await import('../monitor/patterns.js');
      return patternSummary(events, truncated);
    },
  };
}

/** The files `--out` writes, by name. */
export function reportFiles(report: LabReport): [string, string][] {
  return [
    ['report.json', `${JSON.stringify(report, null, 2)}\n`],
    ['report.md', renderMarkdown(report)],
    ['report.html', renderHtml(report)],
  ];
}

function progressLine(io: CommandIO, deps: LabDependencies, work: number) {
  if (!deps.stderrIsTTY || work < LONG_RUN) return undefined;
  let last = Number.NEGATIVE_INFINITY;
  let drawn = false;
  return {
    update(name: string, done: number, total: number) {
      if (done % 1024 !== 0 && done !== total) return;
      const now = deps.now();
      if (now - last < PROGRESS_EVERY_MS && done !== total) return;
      last = now;
      drawn = true;
      const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
      io.err(`\r\x1b[K${name}: ${pct}% (${done}/${total} tasks)`);
    },
    clear() {
      if (drawn) io.err('\r\x1b[K');
    },
  };
}

/**
 * Parses `--param K=V` flags for each selected scenario: each value takes the type of the parameter's
 * default, and the result is checked the way the runner will check it (so a bad value is a usage error
 * before anything runs, never a stack trace halfway through).
 */
function parseParams(
  flags: readonly string[],
  scenarios: readonly Scenario[],
): Map<Scenario, Record<string, ParamValue>> {
  const pairs = flags.map((flag) => {
    const eq = flag.indexOf('=');
    if (eq <= 0) throw new UsageError(`lab: --param must be KEY=VALUE, got ${JSON.stringify(flag)}`);
    return [flag.slice(0, eq), flag.slice(eq + 1)] as const;
  });
  const result = new Map<Scenario, Record<string, ParamValue>>();
  for (const scenario of scenarios) {
    const overrides: Record<string, ParamValue> = {};
    for (const [key, text] of pairs) {
      if (!Object.hasOwn(scenario.params, key)) {
        const known = Object.keys(scenario.params);
        throw new UsageError(
          `lab: scenario ${scenario.name} has no parameter "${key}"; known: ${known.length === 0 ? '(none)' : known.join(', ')}`,
        );
      }
      const fallback = scenario.params[key];
      if (typeof fallback === 'number') {
        const value = text.trim() === '' ? Number.NaN : Number(text);
        if (!Number.isFinite(value)) {
          throw new UsageError(`lab: --param ${key} must be a number, got ${JSON.stringify(text)}`);
        }
        overrides[key] = value;
      } else if (typeof fallback === 'boolean') {
        if (text !== 'true' && text !== 'false') {
          throw new UsageError(`lab: --param ${key} must be true or false, got ${JSON.stringify(text)}`);
        }
        overrides[key] = text === 'true';
      } else overrides[key] = text;
    }
    try {
      const params = resolveParams(scenario, overrides);
      if (typeof scenario.clock === 'function') scenario.clock(params);
    } catch (error) {
      if (error instanceof TypeError) throw new UsageError(`lab: ${error.message}`);
      throw error;
    }
    result.set(scenario, overrides);
  }
  return result;
}

/** `bulwark lab …`; returns the exit code. Throws {@link UsageError} on bad input. */
export async function labCommand(
  argv: readonly string[],
  io: CommandIO,
  deps: LabDependencies = defaultLabDependencies,
): Promise<number> {
  const { values, positionals } = parseFlags('lab', argv, {
    seed: { type: 'string', default: '1' },
    tasks: { type: 'string' },
    runs: { type: 'string' },
    out: { type: 'string' },
    'no-out': { type: 'boolean', default: false },
    file: { type: 'string', multiple: true },
    param: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
    live: { type: 'boolean', default: false },
    port: { type: 'string' },
    events: { type: 'string' },
    patterns: { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const known = deps.scenarios();
  const files = (values.file as string[] | undefined) ?? [];
  const fromFiles: Scenario[] = [];
  const problems: string[] = [];
  const origin = new Map<string, string>();
  for (const file of files) {
    try {
      const scenario = await (deps.loadFile ?? loadScenarioFile)(file);
      // Reports and `meta` are keyed by name: two scenarios with one name would be indistinguishable.
      const taken = known.has(scenario.name) ? 'a built-in scenario' : origin.get(scenario.name);
      if (taken !== undefined) {
        problems.push(
          `${file}: name: "${scenario.name}" is already the name of ${taken}; give this scenario another name`,
        );
        continue;
      }
      origin.set(scenario.name, `the scenario in ${file}`);
      fromFiles.push(scenario);
    } catch (error) {
      if (!(error instanceof ScenarioFileError)) throw error;
      if (error.unreadable) throw new UsageError(`lab: ${error.problems.join('; ')}`);
      problems.push(...error.problems);
    }
  }
  if (problems.length > 0) {
    io.err(`${problems.join('\n')}\n`);
    return 2;
  }
  if (values.list) {
    const width = Math.max(
      0,
      ...[...known.keys(), ...fromFiles.map((s) => s.name)].map((name) => name.length),
    );
    for (const scenario of [...known.values(), ...fromFiles]) {
      const optIn = isOptIn(scenario) ? `; needs ${scenario.services?.join(', ')}, runs only when named` : '';
      io.out(
        `${scenario.name.padEnd(width)}  ${scenario.description} (${scenario.defaults.tasks} tasks by default${optIn})\n`,
      );
    }
    return 0;
  }
  const seed = parseSeed(String(values.seed));
  const tasks = integer('tasks', values.tasks as string | undefined, 100_000_000);
  const runs = integer('runs', values.runs as string | undefined, 100_000);
  if (values.out !== undefined && values['no-out'])
    throw new UsageError('lab: --out and --no-out contradict');
  const out =
    (values.out as string | undefined) ?? (values['no-out'] || values.json ? undefined : deps.defaultOut);
  if (out === '') throw new UsageError('lab: --out must name a directory');

  const selected: Scenario[] = [];
  const everyDefault = [...known.values()].filter((s) => !isOptIn(s)).map((s) => s.name);
  for (const name of positionals.length === 0 && files.length === 0 ? everyDefault : positionals) {
    const scenario = known.get(name);
    if (scenario === undefined) {
      const guess = didYouMean(name, known.keys());
      throw new UsageError(
        `lab: unknown scenario "${name}"` +
          (guess === undefined ? '' : ` (did you mean "${guess}"?)`) +
          `; known: ${[...known.keys()].join(', ')}`,
      );
    }
    if (!selected.includes(scenario)) selected.push(scenario);
  }
  selected.push(...fromFiles);
  const paramFlags = (values.param as string[] | undefined) ?? [];
  const params = paramFlags.length === 0 ? undefined : parseParams(paramFlags, selected);
  if (values.port !== undefined && !values.live) throw new UsageError('lab: --port is for --live');
  const livePort = values.port === undefined ? 7420 : Number(values.port);
  if (!/^\d+$/.test(String(values.port ?? '7420')) || livePort > 65_535) {
    throw new UsageError(
      `lab: --port must be an integer from 0 to 65535, got ${JSON.stringify(values.port)}`,
    );
  }
  const eventsFile = values.events as string | undefined;
  if (eventsFile !== undefined && (selected.length !== 1 || (runs ?? 1) !== 1)) {
    throw new UsageError('lab: --events records one run of one scenario; name one scenario and no --runs');
  }
  // Checked (and opened, as a temporary file) before the dashboard starts: a mistake leaves nothing running.
  const recording = eventsFile === undefined ? undefined : await openEventsFile(eventsFile);
  const live = values.live
    ? await (await import('./dashboard.js')).startLiveDashboard(
        io,
        { port: livePort, title: `lab: ${selected.map((s) => s.name).join(', ')} (seed ${String(seed)})` },
        deps.liveDashboard,
      )
    : undefined;

  const work = selected.reduce((sum, s) => sum + (tasks ?? s.defaults.tasks) * (runs ?? 1), 0);
  const progress = progressLine(io, deps, work);
  const started = deps.now();
  const scenarios: ScenarioReport[] = [];
  const scenarioWallMs: Record<string, number> = {};
  try {
    for (const scenario of selected) {
      const t0 = deps.now();
      const options: RunScenarioOptions = { seed };
      if (tasks !== undefined) options.tasks = tasks;
      if (runs !== undefined) options.runs = runs;
      const overrides = params?.get(scenario);
      if (overrides !== undefined) options.params = overrides;
      if (progress !== undefined) {
        options.onProgress = (done, total) => progress.update(scenario.name, done, total);
      }
      if (live !== undefined) options.events = live.events;
      const collected = values.patterns ? collectEvents() : undefined;
      const observers = [recording?.observe, collected?.observe].filter((o) => o !== undefined);
      if (observers.length > 0) {
        options.observe = (runtime, run) => {
          const detach = observers.map((observe) => observe(runtime, run));
          return () => {
            for (const d of detach) d?.();
          };
        };
      }
      try {
        const report = await deps.run(scenario, options);
        if (collected !== undefined) report.patterns = await collected.analyse();
        scenarios.push(report);
      } catch (error) {
        // A missing database is the environment, not a bug: one line, no stack trace, nothing written.
        if (!isBulwarkError(error, 'SERVICE_UNAVAILABLE')) throw error;
        progress?.clear();
        await live?.close();
        await recording?.discard();
        io.err(`bulwark: lab: ${error.message}\n`);
        return 2;
      }
      scenarioWallMs[scenario.name] = deps.now() - t0;
    }
  } catch (error) {
    await live?.close();
    await recording?.discard();
    throw error;
  } finally {
    progress?.clear();
  }
  await recording?.close();
  const report: LabReport = {
    seed,
    scenarios,
    meta: {
      wallMs: deps.now() - started,
      scenarioWallMs,
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      ...(deps.version === undefined ? {} : { version: deps.version }),
    },
  };

  if (values.json) io.out(`${JSON.stringify(report, null, 2)}\n`);
  else io.out(renderTerminal(report));
  if (out !== undefined) {
    const files = reportFiles(report);
    try {
      await mkdir(out, { recursive: true });
      await writeFilesAtomic(out, files);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      await live?.close();
      throw new UsageError(`lab: cannot write the reports to ${out}: ${reason}`);
    }
    const say = values.json ? io.err : io.out;
    say(`Wrote ${files.map(([name]) => name).join(', ')} to ${out}\n`);
  }
  if (!values.json) {
    const flags = [
      String(seed).startsWith('-')
        ? `--seed=${shellWord(String(seed))}`
        : `--seed ${shellWord(String(seed))}`,
      ...(tasks === undefined ? [] : [`--tasks ${tasks}`]),
      ...(runs === undefined ? [] : [`--runs ${runs}`]),
      ...paramFlags.map((param) => `--param ${shellWord(param)}`),
      ...(values.patterns ? ['--patterns'] : []),
      ...files.map((file) => `--file ${shellWord(file)}`),
    ];
    io.out(
      `Reproduce: bulwark lab ${[...(positionals.length > 0 ? selected.filter((s) => !fromFiles.includes(s)).map((s) => s.name) : []), ...flags].join(' ')}\n`,
    );
  }
  await live?.finish();
  return scenarios.every((s) => s.passed) ? 0 : 1;
}
