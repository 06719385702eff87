/**
 * `bulwark analyze FILE`: failure-pattern analysis of a JSON-lines events file, printed as a terminal
 * report, Markdown or JSON. Exit code 0 (patterns found or not), 2 on bad input.
 */
import { EventsFileError, readEventsFile } from '../monitor/event-file.js';
import {
  analysePatterns,
  type PatternOptions,
  renderPatternsMarkdown,
  renderPatternsTerminal,
} from '../monitor/patterns.js';
import { type CommandIO, parseFlags, UsageError } from './io.js';

const HELP = `Usage: bulwark analyze FILE [--format terminal|markdown|json] [--bin DURATION] [--min-burst N]
                       [--retry-threshold R] [--top N]

Reads events (one JSON object per line, as Bulwark emits them: type, source, at, …) and reports failure
patterns: failure signatures (error code, target, normalised message), bursts against each target's
baseline, bursts of several targets at once (one dependency taking its callers down), targets that fail
periodically, and retry policies whose retries rarely help. Findings are ranked, with counts and
first/last seen.

Options:
  --format F           terminal (default), markdown or json
  --json, --markdown   Short for --format json / --format markdown
  --bin DURATION       Width of the time bins bursts are found in (default: the narrowest of
                       1s, 10s, 1m, 5m, 15m, 1h, 6h that gives at most 1,000 bins)
  --min-burst N        Failures a bin needs to be part of a burst (default 5)
  --retry-threshold R  Flag retry policies whose retried calls recover less than R (default 0.2)
  --top N              Signatures listed (default 20)
  -h, --help           Show this help

Exit code: 0 when the file was analysed, 2 on bad input (each bad line listed as FILE:LINE: problem).
`;

function positiveInt(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`analyze: --${flag} must be an integer >= 1, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** `bulwark analyze …`; returns the exit code. Throws {@link UsageError} on bad input. */
export async function analyzeCommand(argv: readonly string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseFlags('analyze', argv, {
    format: { type: 'string' },
    json: { type: 'boolean', default: false },
    markdown: { type: 'boolean', default: false },
    bin: { type: 'string' },
    'min-burst': { type: 'string' },
    'retry-threshold': { type: 'string' },
    top: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  if (positionals.length !== 1)
    throw new UsageError(`analyze: expected one events file, got ${positionals.length}`);
  const formats = [
    values.format as string | undefined,
    values.json ? 'json' : undefined,
    values.markdown ? 'markdown' : undefined,
  ].filter((f) => f !== undefined);
  if (new Set(formats).size > 1)
    throw new UsageError(`analyze: choose one output format, got ${formats.join(' and ')}`);
  const format = formats[0] ?? 'terminal';
  if (!['terminal', 'markdown', 'json'].includes(format)) {
    throw new UsageError(
      `analyze: --format must be terminal, markdown or json, got ${JSON.stringify(format)}`,
    );
  }
  const options: PatternOptions = {};
  if (values.bin !== undefined) options.bin = values.bin as string;
  const minBurst = positiveInt('min-burst', values['min-burst'] as string | undefined);
  if (minBurst !== undefined) options.minBurst = minBurst;
  const top = positiveInt('top', values.top as string | undefined);
  if (top !== undefined) options.topSignatures = top;
  const threshold = values['retry-threshold'] as string | undefined;
  if (threshold !== undefined) {
    const r = Number(threshold);
    if (threshold.trim() === '' || !(r >= 0 && r <= 1)) {
      throw new UsageError(
        `analyze: --retry-threshold must be a ratio in [0, 1], got ${JSON.stringify(threshold)}`,
      );
    }
    options.retrySuccessBelow = r;
  }
  let report: ReturnType<typeof analysePatterns>;
  try {
    // Options are checked before the file is read, so a bad flag never waits on a large file.
    analysePatterns([], options);
    report = analysePatterns(await readEventsFile(positionals[0] as string), options);
  } catch (error) {
    if (error instanceof EventsFileError) {
      io.err(`${error.problems.map((p) => `bulwark: ${p}`).join('\n')}\n`);
      return 2;
    }
    if (error instanceof TypeError)
      throw new UsageError(`analyze: ${error.message.replace(/^analysePatterns: /, '')}`);
    throw error;
  }
  if (format === 'json') io.out(`${JSON.stringify(report, null, 2)}\n`);
  else if (format === 'markdown') io.out(renderPatternsMarkdown(report));
  else io.out(renderPatternsTerminal(report));
  return 0;
}
