/**
 * `bulwark dashboard`: serves the live dashboard, fed by a JSON-lines event file that another process
 * writes (`--events FILE`, followed as it grows), with its per-minute history in SQLite. Also the live
 * dashboard of `bulwark lab --live` ({@link startLiveDashboard}). Runs until Ctrl-C.
 * Exit code 0 after a clean stop, 2 on bad input.
 */
import { access, constants } from 'node:fs/promises';
import { type Clock, SystemClock } from '../core/clock.js';
import { isBulwarkError } from '../core/errors.js';
import type { EventSink } from '../core/events.js';
import { createRuntime } from '../core/runtime.js';
import { type Alerting, startAlerting } from '../monitor/alerts/alerting.js';
import { AlertConfigError, loadAlertConfig } from '../monitor/alerts/config.js';
import { followEventFile } from '../monitor/event-file.js';
import { createMonitor, type Monitor } from '../monitor/monitor.js';
import { type CommandIO, parseFlags, UsageError } from './io.js';

/** What the command runs on; tests replace parts of it. */
export interface DashboardDependencies {
  /** Resolves when the dashboard should stop. @defaultValue on SIGINT or SIGTERM */
  waitForStop: () => Promise<void>;
  /** The environment (`BULWARK_DASHBOARD_TOKEN`, and the alert config's `…Env` secrets). */
  env: Readonly<Record<string, string | undefined>>;
  /** The monitor's clock. @defaultValue a `SystemClock` */
  clock?: Clock;
  /** The built page's directory. @defaultValue the package's */
  assetsDir?: string;
  /** Called once the server listens (tests read the URL from here). */
  onListening?: (url: string, monitor: Monitor) => void;
}

/** Resolves on the first SIGINT or SIGTERM. */
export function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

export const defaultDashboardDependencies: DashboardDependencies = {
  waitForStop: untilSignal,
  env: process.env,
};

const HELP = `Usage: bulwark dashboard [--events FILE] [--alerts FILE] [--host H] [--port N] [--token T] [--db FILE] [--retention DAYS]

Serves the live dashboard: per policy the call rate, success rate, errors by kind, retries, timeouts,
latency p50/p90/p99 and circuit state; queues, engine runs, faults and resources; a history of per-minute
rollups; health probes and supervised children; failure patterns; with --alerts, the firing alerts and
their silences (created and expired from the page); and Prometheus metrics at /metrics. Runs until Ctrl-C.

Options:
  --events FILE     Read events from FILE, one JSON object per line ({"type":"call","source":…,"at":…}),
                    from its start, then follow it as it grows. A line that is not an event is reported as
                    FILE:LINE:1: message and skipped
  --alerts FILE     Evaluate the alert rules of FILE (see bulwark alerts check) over the events, notify its
                    receivers, and show the alerts and silences on the page
  --host H          Address to bind (default 127.0.0.1). Any other address requires --token
  --port N          Port, 0 for any free one (default 7420)
  --token T         Secret every request must carry; open the page as /?token=T once (default:
                    $BULWARK_DASHBOARD_TOKEN). At least 16 characters
  --db FILE         SQLite file of the per-minute history, kept across restarts (default
                    .bulwark/dashboard.db); ":memory:" keeps it in memory only
  --retention DAYS  Days of history kept (default 7)
  --title T         What the page's header says is being watched (default: the event file's name)
  -h, --help        Show this help

Exit code: 0 after Ctrl-C, 2 on bad input.
`;

function port(text: string | undefined, flag = 'port'): number | undefined {
  if (text === undefined) return undefined;
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value > 65_535) {
    throw new UsageError(
      `dashboard: --${flag} must be an integer from 0 to 65535, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/** Turns the server's start-up failures into one-line usage errors. */
function startFailure(command: string, error: unknown, host: string, portNumber: number): never {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'EADDRINUSE') {
    throw new UsageError(`${command}: port ${portNumber} is in use on ${host}; choose another with --port`);
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EACCES') {
    throw new UsageError(`${command}: cannot listen on ${host}:${portNumber} (${String(code)})`);
  }
  if (error instanceof TypeError)
    throw new UsageError(`${command}: ${error.message.replace(/^serve: /, '')}`);
  if (isBulwarkError(error, 'HISTORY_UNAVAILABLE')) throw new UsageError(`${command}: ${error.message}`);
  throw error;
}

/** `bulwark dashboard …`; returns the exit code. Throws {@link UsageError} on bad input. */
export async function dashboardCommand(
  argv: readonly string[],
  io: CommandIO,
  deps: DashboardDependencies = defaultDashboardDependencies,
): Promise<number> {
  const { values } = parseFlags(
    'dashboard',
    argv,
    {
      events: { type: 'string' },
      alerts: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '7420' },
      token: { type: 'string' },
      db: { type: 'string', default: '.bulwark/dashboard.db' },
      retention: { type: 'string', default: '7' },
      title: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    false,
  );
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const host = String(values.host);
  if (host === '') throw new UsageError('dashboard: --host must not be empty');
  const portNumber = port(String(values.port)) as number;
  const retention = /^\d+$/.test(String(values.retention)) ? Number(values.retention) : Number.NaN;
  if (!Number.isInteger(retention) || retention < 1 || retention > 3650) {
    throw new UsageError(
      `dashboard: --retention must be a number of days from 1 to 3650, got ${JSON.stringify(values.retention)}`,
    );
  }
  const db = String(values.db);
  if (db === '') throw new UsageError('dashboard: --db must name a file (or ":memory:")');
  const token = (values.token as string | undefined) ?? (deps.env.BULWARK_DASHBOARD_TOKEN || undefined);
  const eventsFile = values.events as string | undefined;
  if (eventsFile !== undefined) {
    if (eventsFile === '') throw new UsageError('dashboard: --events must name a file');
    try {
      await access(eventsFile, constants.R_OK);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new UsageError(`dashboard: cannot read the event file ${eventsFile} (${String(code ?? error)})`);
    }
  }
  const title =
    (values.title as string | undefined) ?? (eventsFile === undefined ? 'history' : `events: ${eventsFile}`);

  const alertsFile = values.alerts as string | undefined;
  if (alertsFile === '') throw new UsageError('dashboard: --alerts must name a file');

  const clock = deps.clock ?? new SystemClock();
  // The rules watch a runtime of their own that the followed events are replayed on.
  const runtime = createRuntime({ clock });
  let alerting: Alerting | undefined;
  if (alertsFile !== undefined) {
    try {
      alerting = startAlerting(await loadAlertConfig(alertsFile, deps.env), { runtime });
    } catch (error) {
      if (error instanceof AlertConfigError) {
        io.err(`${error.problems.map((p) => `bulwark: ${p}`).join('\n')}\n`);
        return 2;
      }
      throw error;
    }
  }
  let monitor: Monitor;
  try {
    monitor = createMonitor({
      clock,
      history: db,
      retentionDays: retention,
      ...(alerting === undefined ? {} : { alerts: alerting }),
    });
  } catch (error) {
    await alerting?.close();
    return startFailure('dashboard', error, host, portNumber);
  }
  monitor.attach(runtime);
  try {
    let server: Awaited<ReturnType<Monitor['serve']>>;
    try {
      server = await monitor.serve({
        host,
        port: portNumber,
        title,
        ...(token === undefined ? {} : { token }),
        ...(deps.assetsDir === undefined ? {} : { assetsDir: deps.assetsDir }),
      });
    } catch (error) {
      return startFailure('dashboard', error, host, portNumber);
    }
    let problems = 0;
    const followed =
      eventsFile === undefined
        ? undefined
        : await followEventFile(eventsFile, {
            clock,
            onEvent: (event) => runtime.events.emit(event),
            onProblem: (problem) => {
              problems++;
              if (problems <= 20) io.err(`${problem.file}:${problem.line}:1: ${problem.message}\n`);
              else if (problems === 21)
                io.err(`${problem.file}: more bad lines; not reporting them one by one\n`);
            },
          });
    io.out(
      `Dashboard: ${server.url}${token === undefined ? '' : '?token=…'}\n` +
        `History: ${db === ':memory:' ? 'in memory' : db} (${retention} days)` +
        (eventsFile === undefined ? '' : `; following ${eventsFile}`) +
        (alertsFile === undefined ? '' : `; alert rules of ${alertsFile}`) +
        '\nPress Ctrl-C to stop.\n',
    );
    deps.onListening?.(server.url, monitor);
    await deps.waitForStop();
    await followed?.close();
    const events = followed?.events;
    io.out(`Stopped${events === undefined ? '' : ` after ${events} event${events === 1 ? '' : 's'}`}.\n`);
    return 0;
  } finally {
    await monitor.close();
    await alerting?.close();
  }
}

/** The dashboard of a lab run in progress, see {@link startLiveDashboard}. */
export interface LiveDashboard {
  /** Give this to the runs: their events go to the dashboard. */
  readonly events: EventSink;
  readonly url: string;
  /** Says the run is over, keeps serving until stopped, then closes. */
  finish(): Promise<void>;
  /** Closes at once (the run failed). */
  close(): Promise<void>;
}

/**
 * Starts a dashboard for `bulwark lab --live`: an in-memory history, the given port on 127.0.0.1.
 * @throws UsageError when the port cannot be used.
 */
export async function startLiveDashboard(
  io: CommandIO,
  options: { port: number; title: string },
  deps: DashboardDependencies = defaultDashboardDependencies,
): Promise<LiveDashboard> {
  const monitor = createMonitor({ clock: deps.clock ?? new SystemClock(), history: ':memory:' });
  const sink = createRuntime().events;
  monitor.attach(sink);
  let server: Awaited<ReturnType<Monitor['serve']>>;
  try {
    server = await monitor.serve({
      port: options.port,
      title: options.title,
      ...(deps.assetsDir === undefined ? {} : { assetsDir: deps.assetsDir }),
    });
  } catch (error) {
    await monitor.close();
    return startFailure('lab', error, '127.0.0.1', options.port);
  }
  io.err(`Live dashboard: ${server.url}\n`);
  deps.onListening?.(server.url, monitor);
  return {
    events: sink,
    url: server.url,
    async finish() {
      io.err(`The run is over; the dashboard stays up at ${server.url} until Ctrl-C.\n`);
      try {
        await deps.waitForStop();
      } finally {
        await monitor.close();
      }
    },
    close: () => monitor.close(),
  };
}
