/**
 * The `bulwark` command. Thin: it parses flags, calls the library and prints. Each command lives in
 * its own file; this one dispatches. Usage errors exit with code 2 and a one-line message, never a
 * stack trace.
 */
import { readFileSync } from 'node:fs';
import { alertsCommand } from './alerts.js';
import { analyzeCommand } from './analyze.js';
import { demoCommand } from './demo.js';
import { type CommandIO, UsageError } from './io.js';
import { defaultLabDependencies, labCommand } from './lab.js';
import { planCommand } from './plan.js';
import { proxyCommand } from './proxy.js';
import { queueCommand } from './queue.js';
import { runCommand } from './run.js';
import { silenceCommand } from './silence.js';

export { type CommandIO, UsageError } from './io.js';

const defaultIO: CommandIO = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

const HELP = `bulwark — make Node.js services survive failure, and prove that they do

Usage: bulwark <command> [options]

Commands:
  demo               Run a flaky dependency with and without resilience policies
                     (reproducible from --seed; see bulwark demo --help)
  lab [scenario…]    Run the chaos lab's failure scenarios and report success before and after
                     resilience, with 95% intervals (see bulwark lab --help)
  run FILE           Run a chaos experiment against real targets: steady state, method with load
                     and abort conditions, rollbacks (see bulwark run --help)
  queue <command>    Inspect a task queue (SQLite file or Redis): stats, dlq, redrive
                     (see bulwark queue --help)
  plan <sub> …       Run plans of tool calls with dry runs, per-step policies, rollback and
                     resume after a crash (validate, run, resume, show; see bulwark plan --help)
  proxy              Run a Toxiproxy-compatible TCP fault proxy (latency, timeouts, resets…)
                     driven by its HTTP API or a --config file (see bulwark proxy --help)
  dashboard          Serve the live dashboard and Prometheus metrics, fed by an event file
                     (see bulwark dashboard --help; bulwark lab --live watches a lab run)
  analyze FILE       Find failure patterns in a JSON-lines events file: signatures, bursts,
                     correlated failures, periodic ones, futile retries (see bulwark analyze --help)
  alerts check FILE  Validate an alert config file (rules, receivers, routes, secrets' variables)
  silence ACTION     Add, expire or list alert silences in an alert store
                     (see bulwark silence --help)
  help               Show this help
  version            Print the version

Options:
  -h, --help         Show this help
  -v, --version      Print the version

The library is documented in the README: https://www.npmjs.com/package/bulwark
`;

/** Runs the CLI with `argv` (without `node` and the script) and returns the exit code. */
export async function main(argv: readonly string[], io: CommandIO = defaultIO): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
      io.out(HELP);
      return first === undefined ? 2 : 0;
    }
    if (first === '-v' || first === '--version' || first === 'version') {
      io.out(`${version()}\n`);
      return 0;
    }
    if (first === 'demo') return await demoCommand(rest, io);
    // Loaded on demand: the dashboard brings in prom-client and SQLite, which other commands do not need.
    if (first === 'dashboard') return await (await import('./dashboard.js')).dashboardCommand(rest, io);
    if (first === 'analyze') return await analyzeCommand(rest, io);
    if (first === 'silence') return await silenceCommand(rest, io);
    if (first === 'alerts') return await alertsCommand(rest, io);
    if (first === 'lab') return await labCommand(rest, io, { ...defaultLabDependencies, version: version() });
    if (first === 'run') return await runCommand(rest, io);
    if (first === 'queue') return await queueCommand(rest, io);
    if (first === 'plan') return await planCommand(rest, io);
    if (first === 'proxy') return await proxyCommand(rest, io);
    if (first.startsWith('-')) throw new UsageError(`unknown option ${first}`);
    throw new UsageError(`unknown command "${first}"`);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`bulwark: ${error.message}\nRun "bulwark --help" for usage.\n`);
      return 2;
    }
    throw error;
  }
}
