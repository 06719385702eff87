/**
 * `bulwark run FILE`: runs a chaos experiment against real targets and prints its journal; writes
 * `journal.json`, `journal.md` and `journal.html`. Ctrl-C (SIGINT) or SIGTERM stops the method and still
 * runs the rollbacks; a second one exits at once. Exit code 0 when the experiment completed and the
 * steady state held, 1 when it deviated, failed or was aborted/interrupted, 2 on bad input.
 */
import { mkdir } from 'node:fs/promises';
import type { EventOf } from '../core/events.js';
import { createRuntime } from '../core/runtime.js';
import {
  ExperimentFileError,
  type ExperimentJournal,
  loadExperimentFile,
  renderExperimentHtml,
  renderExperimentMarkdown,
  renderExperimentTerminal,
  runExperiment,
} from '../lab/experiment/index.js';
import type { AnalysedEvent } from '../monitor/patterns.js';
import { type CommandIO, parseFlags, UsageError, writeFilesAtomic } from './io.js';

const HELP = `Usage: bulwark run FILE [--out DIR | --no-out] [--json] [--validate]

Runs the chaos experiment in FILE (YAML or JSON, Chaos Toolkit's shape): checks the steady-state
hypothesis, runs the method while sending the load and watching the abort conditions, checks the
hypothesis again, then runs the rollbacks — always, also after an abort or Ctrl-C.

Options:
  --out DIR      Write journal.json, journal.md and journal.html to DIR (default ./experiment-report)
  --no-out       Do not write the journal files
  --json         Print the journal as JSON instead of the summary
  --validate     Only check the file (exit 0 when valid, 2 with one line per problem otherwise)
  -h, --help     Show this help

Exit code: 0 the hypothesis held, 1 it deviated or the experiment failed, aborted or was interrupted,
2 bad input. Ctrl-C stops the method and runs the rollbacks; a second Ctrl-C exits at once.
`;

const MAX_PATTERN_EVENTS = 100_000;

/** A load request as the pattern analysis reads outcomes: a `call` of the target `load <url>`. */
function asCallEvent(event: EventOf<'experiment.request'>): AnalysedEvent {
  const code = event.kind.startsWith('status ')
    ? `HTTP_${event.kind.slice(7)}`
    : event.kind.toUpperCase().replace(/\W+/g, '_');
  return {
    type: 'call',
    source: `load ${event.source}`,
    at: event.at,
    kind: 'load',
    outcome: event.ok ? 'success' : event.kind === 'timeout' ? 'timeout' : 'failure',
    durationMs: event.durationMs,
    ...(event.ok ? {} : { error: { code, message: event.kind } }),
  };
}

/** Where signals come from; tests replace it. */
export interface RunDependencies {
  onSignal: (signal: 'SIGINT' | 'SIGTERM', handler: () => void) => () => void;
  exit: (code: number) => void;
  defaultOut?: string;
}

export const defaultRunDependencies: RunDependencies = {
  onSignal(signal, handler) {
    process.on(signal, handler);
    return () => process.off(signal, handler);
  },
  exit: (code) => process.exit(code),
  defaultOut: 'experiment-report',
};

export function journalFiles(journal: ExperimentJournal): [string, string][] {
  return [
    ['journal.json', `${JSON.stringify(journal, null, 2)}\n`],
    ['journal.md', renderExperimentMarkdown(journal)],
    ['journal.html', renderExperimentHtml(journal)],
  ];
}

/** `bulwark run …`; returns the exit code. Throws {@link UsageError} on bad input. */
export async function runCommand(
  argv: readonly string[],
  io: CommandIO,
  deps: RunDependencies = defaultRunDependencies,
): Promise<number> {
  const { values, positionals } = parseFlags('run', argv, {
    out: { type: 'string' },
    'no-out': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    validate: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      `run: expected one experiment file, got ${positionals.length === 0 ? 'none' : positionals.length}`,
    );
  }
  if (values.out !== undefined && values['no-out'])
    throw new UsageError('run: --out and --no-out contradict');
  const file = positionals[0] as string;
  let experiment: Awaited<ReturnType<typeof loadExperimentFile>>;
  try {
    experiment = await loadExperimentFile(file);
  } catch (error) {
    if (!(error instanceof ExperimentFileError)) throw error;
    if (error.unreadable) throw new UsageError(`run: ${error.problems.join('; ')}`);
    io.err(`${error.problems.join('\n')}\n`);
    return 2;
  }
  if (values.validate) {
    io.out(`${file}: valid experiment "${experiment.title}"\n`);
    return 0;
  }
  const out = (values.out as string | undefined) ?? (values['no-out'] ? undefined : deps.defaultOut);
  if (out === '') throw new UsageError('run: --out must name a directory');
  if (out !== undefined) {
    // Before the experiment touches anything: a journal that cannot be written is bad input.
    try {
      await mkdir(out, { recursive: true });
    } catch (error) {
      throw new UsageError(`run: cannot write the journal to ${out}: ${(error as Error).message}`);
    }
  }

  const controller = new AbortController();
  let signals = 0;
  const stop = (name: string) => () => {
    signals++;
    if (signals === 1) {
      io.err(`\n${name}: stopping the method; running the rollbacks (again to exit at once)\n`);
      controller.abort(new Error(name));
    } else deps.exit(130);
  };
  const offInt = deps.onSignal('SIGINT', stop('SIGINT'));
  const offTerm = deps.onSignal('SIGTERM', stop('SIGTERM'));
  // The load's requests, kept (bounded by the load's maxRequests) for the failure-pattern analysis.
  const runtime = createRuntime();
  const requests: AnalysedEvent[] = [];
  const stopRecording = runtime.events.subscribe(
    (event) => {
      if (event.type !== 'experiment.request' || requests.length >= MAX_PATTERN_EVENTS) return;
      requests.push(asCallEvent(event));
    },
    ['experiment.request'],
  );
  let journal: ExperimentJournal;
  try {
    journal = await runExperiment(experiment, {
      runtime,
      signal: controller.signal,
      onActivity: (a) => io.err(`  ${a.stage} · ${a.name}: ${a.status}\n`),
    });
  } finally {
    offInt();
    offTerm();
    stopRecording();
  }
  if (experiment.load !== undefined) {
    const { patternSummary } = await import('../monitor/patterns.js');
    journal.patterns = patternSummary(requests, false);
  }
  io.out(values.json ? `${JSON.stringify(journal, null, 2)}\n` : renderExperimentTerminal(journal));
  if (out !== undefined) {
    const files = journalFiles(journal);
    try {
      await writeFilesAtomic(out, files);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new UsageError(`run: cannot write the journal to ${out}: ${reason}`);
    }
    (values.json ? io.err : io.out)(`Wrote ${files.map(([name]) => name).join(', ')} to ${out}\n`);
  }
  return journal.status === 'completed' && !journal.deviated ? 0 : 1;
}
