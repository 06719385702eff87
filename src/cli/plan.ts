/**
 * `bulwark plan`: validates, runs (for real, dry, or K times compared), resumes and shows plans of tool
 * calls, with a SQLite journal. Exit code 0 when the run succeeded (or the repeated runs were identical),
 * 1 when it failed or was cancelled (or the runs diverged), 2 on bad input.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { formatMs } from '../core/duration.js';
import { isBulwarkError } from '../core/errors.js';
import type { Seed } from '../core/random.js';
import { createRuntime } from '../core/runtime.js';
import { desktopTools, SimulatedDesktop } from '../engine/desktop.js';
import { type ConsistencyReport, DEFAULT_JOURNAL_PATH, Engine, type RunResult } from '../engine/engine.js';
import { PlanError } from '../engine/errors.js';
import { MemoryJournal, SqliteJournal } from '../engine/journal.js';
import { loadPlanFile, type Plan } from '../engine/plan.js';
import type { RunRecord, StepRecord } from '../engine/record.js';
import { type CommandIO, type Flags, parseFlags, UsageError } from './io.js';

/** What the command runs on; tests replace parts of it. */
export interface PlanDependencies {
  /** Subscribes to Ctrl-C (SIGINT) for the length of a run; returns the unsubscribe. */
  onInterrupt: (listener: () => void) => () => void;
}

export const defaultPlanDependencies: PlanDependencies = {
  onInterrupt(listener) {
    process.once('SIGINT', listener);
    return () => process.removeListener('SIGINT', listener);
  },
};

export const DEFAULT_JOURNAL = DEFAULT_JOURNAL_PATH;

const HELP = `Usage: bulwark plan <validate|run|resume|show|list> …

  bulwark plan validate FILE            Check a plan file (YAML or JSON) without running it
  bulwark plan run FILE [--dry-run] [--repeat K] [--seed S]
                                        Run a plan: each step under its policies, rolled back on failure
  bulwark plan resume RUN_ID [--force]  Continue a run whose process died, from the journal
  bulwark plan show RUN_ID              Print a run's steps from the journal
  bulwark plan list                     List the journal's runs, most recent first

Options:
  --journal DB   The SQLite journal (default ${DEFAULT_JOURNAL}, created if missing)
  --root DIR     The directory fs.write, fs.read and fs.remove are confined to (default: the current one)
  --dry-run      Validate every step and say what it would do; run nothing (the journal records the
                 simulated steps)
  --repeat K     Run K times (seeded alike) and compare the journals step by step: tool, params hash,
                 status, output hash; exit 1 at the first divergence
  --seed S       Seed of the run's randomness (default: a fresh one, printed)
  --sim-apps     Also register the simulated UI tools app.open, app.click and app.close
  --force        resume: re-run an interrupted step that is neither idempotent nor compensable
  --json         Print the run record (or the consistency report) as JSON
  -h, --help     Show this help

Ctrl-C cancels a run: running steps abort and completed ones are rolled back.
Exit code: 0 succeeded (or identical repeats), 1 failed, cancelled or diverged, 2 bad input.
`;

function parse(argv: readonly string[]) {
  return parseFlags('plan', argv, {
    journal: { type: 'string' },
    root: { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    repeat: { type: 'string' },
    seed: { type: 'string' },
    'sim-apps': { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
}

function parseSeed(text: string): Seed {
  if (text === '') throw new UsageError('plan: --seed must not be empty');
  const n = Number(text);
  return /^-?\d+$/.test(text) && Number.isSafeInteger(n) ? n : text;
}

function one(positionals: string[], what: string, sub: string): string {
  if (positionals.length === 0) throw new UsageError(`plan ${sub}: missing ${what}`);
  if (positionals.length > 1) throw new UsageError(`plan ${sub}: unexpected argument "${positionals[1]}"`);
  return positionals[0] as string;
}

function onlyFor(values: Flags, sub: string, allowed: readonly string[]): void {
  for (const flag of ['journal', 'root', 'dry-run', 'repeat', 'seed', 'sim-apps', 'force']) {
    const value = values[flag];
    if (value !== undefined && value !== false && !allowed.includes(flag)) {
      throw new UsageError(`plan ${sub}: --${flag} does not apply here`);
    }
  }
}

async function load(file: string, sub: string): Promise<Plan> {
  try {
    return await loadPlanFile(file);
  } catch (error) {
    if (error instanceof PlanError && error.unreadable)
      throw new UsageError(`plan ${sub}: ${error.problems.join('; ')}`);
    throw error;
  }
}

function openJournal(values: Flags): SqliteJournal {
  const path = (values.journal as string | undefined) ?? DEFAULT_JOURNAL;
  if (path === '') throw new UsageError('plan: --journal must name a file');
  try {
    return new SqliteJournal(path);
  } catch (error) {
    throw new UsageError(
      `plan: cannot open the journal ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

function makeEngine(values: Flags, journal: SqliteJournal, io: CommandIO, seed: Seed | undefined): Engine {
  const root = resolve((values.root as string | undefined) ?? '.');
  try {
    mkdirSync(root, { recursive: true });
  } catch (error) {
    throw new UsageError(
      `plan: cannot use --root ${root}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return new Engine({
    runtime: createRuntime(seed === undefined ? {} : { seed }),
    journal,
    root,
    // With --json, stdout carries only the JSON document.
    log: (line) => (values.json === true ? io.err : io.out)(`${line}\n`),
    tools: values['sim-apps'] === true ? desktopTools(new SimulatedDesktop()) : [],
  });
}

// ---------------------------------------------------------------------------------------------
// rendering

function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const [head, ...body] = rows;
  return [line(head ?? []), line(widths.map((w) => '─'.repeat(w))), ...body.map(line)].join('\n');
}

function compensation(step: StepRecord): string {
  const c = step.compensation;
  if (c === undefined) {
    const prior = step.priorCompensation;
    return prior === undefined ? '—' : `${prior.status === 'failed' ? 'FAILED' : prior.status} before re-run`;
  }
  const attempts = c.attempts > 1 ? ` (${c.attempts} attempts)` : '';
  return c.status === 'failed' ? `FAILED${attempts}` : `${c.status}${attempts}`;
}

function detail(step: StepRecord, dryRun: boolean): string {
  const error = step.error === undefined ? '' : errorText(step.error);
  if (dryRun) {
    const unresolved =
      step.unresolved !== undefined && step.unresolved.length > 0
        ? ` (after ${step.unresolved.map((r) => `\${${r}}`).join(', ')} resolve)`
        : '';
    return error !== '' ? error : `${step.description ?? ''}${unresolved}`;
  }
  return error;
}

function errorText(error: { code?: string; message: string }): string {
  return error.code === undefined || error.message.startsWith(error.code)
    ? error.message
    : `${error.code}: ${error.message}`;
}

/** The run as a readable block: a header line, the step table, the rollback. */
export function renderRun(record: RunRecord): string {
  const dry = record.dryRun;
  const status = record.status === 'running' ? 'running (interrupted? resume it)' : record.status;
  const took = record.durationMs === undefined ? '' : ` in ${formatMs(record.durationMs)}`;
  const estimate =
    dry && record.estimatedMs !== undefined ? `, estimated ${formatMs(record.estimatedMs)}` : '';
  const resumed = record.resumed > 0 ? `, resumed ${record.resumed}×` : '';
  const lines = [
    `Run ${record.runId} · plan ${record.plan.name}${dry ? ' · dry run' : ''} · ${status}${took}${estimate}${resumed}`,
    '',
  ];
  const rows = [
    [
      'step',
      'tool',
      'status',
      'attempts',
      dry ? 'estimate' : 'duration',
      'compensation',
      dry ? 'would do' : 'error',
    ],
  ];
  for (const step of record.steps) {
    rows.push([
      step.id,
      step.tool,
      step.status,
      dry ? '—' : String(step.attempts),
      dry
        ? step.estimatedMs === undefined
          ? '—'
          : `~${formatMs(step.estimatedMs)}`
        : step.durationMs === undefined
          ? '—'
          : formatMs(step.durationMs),
      compensation(step),
      detail(step, dry),
    ]);
  }
  lines.push(table(rows));
  if (record.rollback !== undefined) {
    lines.push(
      '',
      `Rolled back (${record.rollback.reason}): ${record.rollback.compensated} compensated, ${record.rollback.failed} failed.`,
    );
  }
  if (record.error !== undefined && !dry) {
    lines.push(`Error: ${errorText(record.error)}`);
  }
  return `${lines.join('\n')}\n`;
}

function consistencyJson(report: ConsistencyReport): unknown {
  return {
    identical: report.identical,
    divergence: report.divergence ?? null,
    runs: report.runs.map((r) => r.record),
  };
}

// ---------------------------------------------------------------------------------------------
// subcommands

async function validate(positionals: string[], values: Flags, io: CommandIO): Promise<number> {
  onlyFor(values, 'validate', ['sim-apps']);
  const file = one(positionals, 'FILE', 'validate');
  let plan: Plan;
  try {
    plan = await load(file, 'validate');
  } catch (error) {
    if (!(error instanceof PlanError)) throw error;
    io.err(`${error.problems.join('\n')}\n`);
    return 2;
  }
  const engine = new Engine({
    journal: new MemoryJournal(), // only its tool registry is used
    tools: values['sim-apps'] === true ? desktopTools(new SimulatedDesktop()) : [],
    log: () => {},
  });
  const warnings: string[] = [];
  for (const step of plan.steps) {
    const tool = engine.tools.resolve(step.tool);
    if (tool instanceof Error)
      warnings.push(`warning: step "${step.id}": ${tool.message} (it will fail when it runs)`);
    const undo = step.compensate === undefined ? undefined : engine.tools.resolve(step.compensate.tool);
    if (undo instanceof Error) {
      warnings.push(`warning: step "${step.id}": compensate: ${undo.message} (a rollback of it will fail)`);
    }
  }
  if (values.json === true) {
    io.out(`${JSON.stringify({ valid: true, plan: plan.definition, warnings }, null, 2)}\n`);
  } else {
    io.out(
      `${file}: plan "${plan.name}" is valid: ${plan.steps.length} step${plan.steps.length === 1 ? '' : 's'}\n`,
    );
    for (const warning of warnings) io.err(`${warning}\n`);
  }
  return 0;
}

async function withInterrupt<T>(
  deps: PlanDependencies,
  io: CommandIO,
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const unsubscribe = deps.onInterrupt(() => {
    io.err('bulwark: interrupted: cancelling the run and rolling back…\n');
    controller.abort(new Error('interrupted (SIGINT)'));
  });
  try {
    return await run(controller.signal);
  } finally {
    unsubscribe();
  }
}

function report(result: RunResult, values: Flags, io: CommandIO, seed: Seed | undefined): number {
  if (values.json === true) io.out(`${JSON.stringify(result.record, null, 2)}\n`);
  else {
    io.out(renderRun(result.record));
    if (seed !== undefined) io.out(`Seed: ${seed}\n`);
  }
  return result.status === 'succeeded' ? 0 : 1;
}

async function run(
  positionals: string[],
  values: Flags,
  io: CommandIO,
  deps: PlanDependencies,
): Promise<number> {
  onlyFor(values, 'run', ['journal', 'root', 'dry-run', 'repeat', 'seed', 'sim-apps']);
  const file = one(positionals, 'FILE', 'run');
  const repeatText = values.repeat as string | undefined;
  let repeat: number | undefined;
  if (repeatText !== undefined) {
    repeat = /^\d+$/.test(repeatText) ? Number(repeatText) : Number.NaN;
    if (!Number.isSafeInteger(repeat) || repeat < 2 || repeat > 1000) {
      throw new UsageError(
        `plan run: --repeat must be an integer from 2 to 1000, got ${JSON.stringify(repeatText)}`,
      );
    }
  }
  let plan: Plan;
  try {
    plan = await load(file, 'run');
  } catch (error) {
    if (!(error instanceof PlanError)) throw error;
    io.err(`${error.problems.join('\n')}\n`);
    return 2;
  }
  const seed = values.seed === undefined ? undefined : parseSeed(values.seed as string);
  const journal = openJournal(values);
  try {
    const engine = makeEngine(values, journal, io, seed);
    const dryRun = values['dry-run'] === true;
    if (repeat !== undefined) {
      const consistency = await withInterrupt(deps, io, (signal) =>
        engine.repeat(plan, { times: repeat, dryRun, signal, ...(seed === undefined ? {} : { seed }) }),
      );
      if (values.json === true) io.out(`${JSON.stringify(consistencyJson(consistency), null, 2)}\n`);
      else {
        const first = consistency.runs[0];
        if (first !== undefined) io.out(renderRun(first.record));
        io.out(`\nRepeated ${repeat}× (${consistency.runs.map((r) => r.runId).join(', ')}): `);
        const d = consistency.divergence;
        io.out(
          d === undefined
            ? 'identical journals (tool, params hash, status, output hash, compensation of every step).\n'
            : `run ${d.run} diverged at step "${d.step}": ${d.field} ${d.expected ?? '—'} in run 1, ${d.actual ?? '—'} in run ${d.run}.\n`,
        );
        io.out(`Seed: ${seed ?? engine.runtime.random.seed}\n`);
      }
      // Interrupted repeats compared fewer runs than asked: not a pass.
      const complete =
        consistency.runs.length === repeat && consistency.runs.every((r) => r.status !== 'cancelled');
      return consistency.identical && complete ? 0 : 1;
    }
    const result = await withInterrupt(deps, io, (signal) => engine.run(plan, { dryRun, signal }));
    return report(result, values, io, seed ?? engine.runtime.random.seed);
  } finally {
    journal.close();
  }
}

async function resume(
  positionals: string[],
  values: Flags,
  io: CommandIO,
  deps: PlanDependencies,
): Promise<number> {
  onlyFor(values, 'resume', ['journal', 'root', 'sim-apps', 'force', 'seed']);
  const runId = one(positionals, 'RUN_ID', 'resume');
  const journal = openJournal(values);
  try {
    const seed = values.seed === undefined ? undefined : parseSeed(values.seed as string);
    const engine = makeEngine(values, journal, io, seed);
    let result: RunResult;
    try {
      result = await withInterrupt(deps, io, (signal) =>
        engine.resume(runId, { signal, force: values.force === true }),
      );
    } catch (error) {
      if (isBulwarkError(error, 'RUN_NOT_FOUND') || isBulwarkError(error, 'RESUME_REFUSED')) {
        throw new UsageError(`plan resume: ${(error as Error).message}`);
      }
      throw error;
    }
    return report(result, values, io, undefined);
  } finally {
    journal.close();
  }
}

function show(positionals: string[], values: Flags, io: CommandIO): number {
  onlyFor(values, 'show', ['journal']);
  const runId = one(positionals, 'RUN_ID', 'show');
  const journal = openJournal(values);
  try {
    const events = journal.events(runId);
    if (events === undefined) {
      const recent = journal.runs(5).map((r) => r.runId);
      throw new UsageError(
        `plan show: no run "${runId}" in the journal${recent.length === 0 ? '' : `; recent: ${recent.join(', ')}`}`,
      );
    }
    const record = new Engine({ journal, log: () => {} }).show(runId);
    if (values.json === true) io.out(`${JSON.stringify(record, null, 2)}\n`);
    else io.out(renderRun(record));
    return 0;
  } finally {
    journal.close();
  }
}

function list(positionals: string[], values: Flags, io: CommandIO): number {
  onlyFor(values, 'list', ['journal']);
  if (positionals.length > 0) throw new UsageError(`plan list: unexpected argument "${positionals[0]}"`);
  const journal = openJournal(values);
  try {
    const runs = journal.runs(50);
    if (values.json === true) {
      io.out(`${JSON.stringify(runs, null, 2)}\n`);
      return 0;
    }
    if (runs.length === 0) {
      io.out('No runs in the journal.\n');
      return 0;
    }
    const rows = [['run', 'plan', 'kind', 'status']];
    for (const r of runs) rows.push([r.runId, r.plan, r.dryRun ? 'dry run' : 'run', r.status]);
    io.out(`${table(rows)}\n`);
    return 0;
  } finally {
    journal.close();
  }
}

/** `bulwark plan …`; returns the exit code. Throws {@link UsageError} on bad input. */
export async function planCommand(
  argv: readonly string[],
  io: CommandIO,
  deps: PlanDependencies = defaultPlanDependencies,
): Promise<number> {
  const { values, positionals } = parse(argv);
  const [sub, ...rest] = positionals;
  if (values.help === true || sub === undefined || sub === 'help') {
    io.out(HELP);
    return sub === undefined && values.help !== true ? 2 : 0;
  }
  if (sub === 'validate') return validate(rest, values, io);
  if (sub === 'run') return run(rest, values, io, deps);
  if (sub === 'resume') return resume(rest, values, io, deps);
  if (sub === 'show') return show(rest, values, io);
  if (sub === 'list') return list(rest, values, io);
  throw new UsageError(`plan: unknown subcommand "${sub}"; expected validate, run, resume, show or list`);
}
