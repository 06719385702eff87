/**
 * `bulwark queue stats|dlq|redrive`: looks at a queue in a SQLite file (`--db`) or on Redis (`--redis`):
 * counts by state, the dead-letter set, and moving dead jobs back to waiting. Readable tables, or JSON.
 * A missing file or an unreachable Redis is one line and exit code 2.
 */
import { existsSync, statSync } from 'node:fs';
import { isBulwarkError } from '../core/errors.js';
import { BullmqQueue } from '../queue/bullmq.js';
import { SqliteQueue } from '../queue/sqlite.js';
import type { DeadJob, Queue } from '../queue/types.js';
import { type CommandIO, parseFlags, UsageError } from './io.js';

const HELP = `Usage: bulwark queue <stats|dlq|redrive> (--db FILE | --redis URL) [--queue NAME] [options]

Looks at a Bulwark queue in a SQLite file or on Redis.

Commands:
  stats          Jobs by state (waiting, delayed, active, completed, dead) and live workers
  dlq            The dead-letter set: jobs whose attempts ran out or that stalled too often
  redrive        Move dead jobs back to waiting with fresh attempts (all, or those named with --id)

Options:
  --db FILE      The SQLite database file of a SqliteQueue (must exist)
  --redis URL    The Redis of a BullmqQueue, e.g. redis://127.0.0.1:6379
  --prefix P     The BullmqQueue's key prefix (default bulwark)
  --queue NAME   The queue's name (default default)
  --limit N      dlq: at most N jobs (default 100)
  --id ID        redrive: only this job (repeatable)
  --json         Print JSON instead of a table
  -h, --help     Show this help

Exit code: 0 on success, 2 on bad input, a missing file or an unreachable store.
`;

const SUBCOMMANDS = ['stats', 'dlq', 'redrive'];

function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (let i = 0; i < row.length; i++) widths[i] = Math.max(widths[i] ?? 0, (row[i] as string).length);
  }
  const line = (row: readonly string[]) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const [head, ...body] = rows;
  if (head === undefined) return '';
  const rule = head.map((_, i) => '─'.repeat(widths[i] ?? 0)).join('  ');
  return `${[line(head), rule, ...body.map(line)].join('\n')}\n`;
}

function oneLine(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Opens the queue the flags name; a missing file or bad URL is a UsageError. */
async function open(values: Record<string, unknown>): Promise<Queue> {
  const db = values.db as string | undefined;
  const redis = values.redis as string | undefined;
  const name = (values.queue as string | undefined) ?? 'default';
  if ((db === undefined) === (redis === undefined)) {
    throw new UsageError('queue: give exactly one of --db FILE or --redis URL');
  }
  try {
    if (db !== undefined) {
      if (!existsSync(db) || !statSync(db).isFile())
        throw new UsageError(`queue: no such database file ${db}`);
      return new SqliteQueue({ file: db, name });
    }
    const prefix = values.prefix as string | undefined;
    return new BullmqQueue({
      connection: redis as string,
      name,
      addTimeout: 2000,
      ...(prefix === undefined ? {} : { prefix }),
    });
  } catch (error) {
    if (error instanceof UsageError) throw error;
    if (error instanceof TypeError) throw new UsageError(`queue: ${error.message}`);
    throw new UsageError(`queue: cannot open ${db ?? redis}: ${describe(error)}`);
  }
}

function unreachable(values: Record<string, unknown>, error: unknown): UsageError {
  const where =
    values.db !== undefined ? `the database ${String(values.db)}` : `Redis at ${String(values.redis)}`;
  const reason = isBulwarkError(error, 'QUEUE_UNAVAILABLE')
    ? describe(error).replace(/^queue "[^"]*" is unavailable: /, '')
    : describe(error);
  return new UsageError(`queue: cannot read ${where}: ${reason}`);
}

function deadRows(jobs: readonly DeadJob[]): string[][] {
  return [
    ['id', 'attempts', 'reason', 'failed at', 'error'],
    ...jobs.map((job) => [
      job.id,
      String(job.attempt),
      job.reason,
      job.failedAt > 0 ? new Date(job.failedAt).toISOString() : '-',
      oneLine(`${job.error.name}: ${job.error.message}`),
    ]),
  ];
}

/** `bulwark queue …`; returns the exit code. Throws {@link UsageError} on bad input. */
export async function queueCommand(argv: readonly string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseFlags('queue', argv, {
    db: { type: 'string' },
    redis: { type: 'string' },
    prefix: { type: 'string' },
    queue: { type: 'string' },
    limit: { type: 'string' },
    id: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help === true) {
    io.out(HELP);
    return 0;
  }
  const [sub, ...extra] = positionals;
  if (sub === undefined || !SUBCOMMANDS.includes(sub)) {
    throw new UsageError(
      sub === undefined
        ? 'queue: name a command: stats, dlq or redrive'
        : `queue: unknown command "${sub}"; known: stats, dlq, redrive`,
    );
  }
  if (extra.length > 0) throw new UsageError(`queue: unexpected argument "${extra[0]}"`);
  const limitText = values.limit as string | undefined;
  const limit = limitText === undefined ? 100 : /^\d+$/.test(limitText) ? Number(limitText) : Number.NaN;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new UsageError(`queue: --limit must be an integer >= 1, got ${JSON.stringify(limitText)}`);
  }
  const ids = values.id as string[] | undefined;
  if (ids !== undefined && sub !== 'redrive') throw new UsageError('queue: --id applies to redrive only');
  const json = values.json === true;

  const queue = await open(values);
  try {
    if (sub === 'stats') {
      const stats = await queue.stats().catch((error: unknown) => Promise.reject(unreachable(values, error)));
      if (json) io.out(`${JSON.stringify({ backend: queue.backend, ...stats }, null, 2)}\n`);
      else {
        io.out(`queue ${stats.name} (${queue.backend})\n\n`);
        io.out(
          table([['state', 'jobs'], ...Object.entries(stats.counts).map(([state, n]) => [state, String(n)])]),
        );
        io.out(`\nlive workers: ${stats.workers}\n`);
      }
    } else if (sub === 'dlq') {
      const dead = await queue
        .deadLetters({ limit })
        .catch((error: unknown) => Promise.reject(unreachable(values, error)));
      if (json) io.out(`${JSON.stringify(dead, null, 2)}\n`);
      else if (dead.length === 0) io.out(`queue ${queue.name}: the dead-letter set is empty\n`);
      else io.out(table(deadRows(dead)));
    } else {
      const moved = await queue
        .redrive(ids)
        .catch((error: unknown) => Promise.reject(unreachable(values, error)));
      if (json) io.out(`${JSON.stringify({ redriven: moved })}\n`);
      else io.out(`queue ${queue.name}: moved ${moved} dead job${moved === 1 ? '' : 's'} back to waiting\n`);
    }
    return 0;
  } finally {
    await queue.close();
  }
}
