/**
 * The embedded backend: one SQLite file (better-sqlite3, WAL, `synchronous=NORMAL`), safe with several
 * worker processes on one machine. Every step that reads and then writes — an `add` checking capacity,
 * a worker settling jobs and claiming more, the stalled-job sweep — is one `BEGIN IMMEDIATE`
 * transaction, so two processes never both see room for the last slot or claim the same job. Several
 * queues may share one file (rows carry the queue's name).
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { durationOption, invalid } from '../policy/options.js';
import type { JobState } from './events.js';
import { type PreparedJob, type QueueOptions, resolveQueueOptions } from './job.js';
import { LocalQueue } from './local.js';
import type {
  DeadRecord,
  InsertLimits,
  InsertResult,
  JobStore,
  Outcome,
  Recovered,
  StoredJob,
} from './store.js';
import type { JsonValue, StoredError } from './types.js';

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bulwark_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  state TEXT NOT NULL,
  payload TEXT NOT NULL,
  priority INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  made INTEGER NOT NULL DEFAULT 0,
  stalls INTEGER NOT NULL DEFAULT 0,
  delays TEXT NOT NULL,
  added_at INTEGER NOT NULL,
  idem_key TEXT,
  worker TEXT,
  lease_until INTEGER NOT NULL DEFAULT 0,
  token INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  reason TEXT,
  failed_at INTEGER
);
CREATE INDEX IF NOT EXISTS bulwark_jobs_ready ON bulwark_jobs(queue, state, priority, run_at, id);
CREATE INDEX IF NOT EXISTS bulwark_jobs_due ON bulwark_jobs(queue, state, run_at);
CREATE UNIQUE INDEX IF NOT EXISTS bulwark_jobs_key ON bulwark_jobs(queue, idem_key) WHERE idem_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS bulwark_depth (
  queue TEXT NOT NULL,
  state TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (queue, state)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bulwark_workers (
  queue TEXT NOT NULL,
  id TEXT NOT NULL,
  beat_at INTEGER NOT NULL,
  PRIMARY KEY (queue, id)
) WITHOUT ROWID;
-- Depth is kept by the transactions themselves, one statement per batch (per-row triggers cost ~30%).
DROP TRIGGER IF EXISTS bulwark_jobs_inserted;
DROP TRIGGER IF EXISTS bulwark_jobs_deleted;
DROP TRIGGER IF EXISTS bulwark_jobs_moved;
`;

/** The columns a claim returns: what a worker needs, not the bookkeeping. */
const CLAIMED = 'id, payload, priority, run_at, attempts, made, delays, added_at, idem_key, token';

/** Rows per multi-row INSERT / DELETE statement (8 and 2 parameters per row, far below SQLite's limit). */
const CHUNK = 64;

interface JobRow {
  id: number;
  payload: string;
  priority: number;
  run_at: number;
  attempts: number;
  made: number;
  stalls: number;
  delays: string;
  added_at: number;
  idem_key: string | null;
  token: number;
  error: string | null;
  reason: string | null;
  failed_at: number | null;
}

const STALLED: StoredError = {
  name: 'StalledError',
  message: 'the lease expired more times than maxStalled allows',
};

function toStored(row: JobRow, attempt: number): StoredJob {
  return {
    id: String(row.id),
    json: row.payload,
    priority: row.priority,
    attempt,
    attempts: row.attempts,
    delays: JSON.parse(row.delays) as number[],
    addedAt: row.added_at,
    key: row.idem_key ?? undefined,
    token: row.token,
  };
}

let loadDatabase: ((file: string, options: BetterSqlite3.Options) => Database) | undefined;

function openDatabase(file: string, options: BetterSqlite3.Options): Database {
  if (loadDatabase === undefined) {
    // better-sqlite3 is CommonJS; a require keeps `bulwark/queue` importable where it is not installed
    // until a SqliteQueue is built.
    const Sqlite = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
    loadDatabase = (f, o) => new Sqlite(f, o);
  }
  return loadDatabase(file, options);
}

/** @internal The SQLite store of one queue in one database file. */
export class SqliteStore implements JobStore {
  private readonly db: Database;
  private readonly s: Record<string, Statement>;
  private readonly insertTx: (job: PreparedJob, now: number, limits: InsertLimits) => InsertResult;
  private readonly insertManyTx: (
    batch: readonly { job: PreparedJob; limits: InsertLimits }[],
    now: number,
  ) => InsertResult[];
  private readonly cycleTx: (
    workerId: string,
    outcomes: readonly Outcome[],
    max: number,
    now: number,
    leaseUntil: number,
  ) => { applied: boolean[]; claimed: StoredJob[] };
  private readonly recoverTx: (now: number, maxStalled: number) => Recovered;
  private readonly redriveTx: (ids: readonly string[] | undefined, now: number) => string[];
  private readonly heartbeatTx: (workerId: string, now: number, leaseUntil: number) => void;

  constructor(
    readonly file: string,
    private readonly queue: string,
    options: { busyTimeoutMs: number; readonly?: boolean; fileMustExist?: boolean },
  ) {
    this.db = openDatabase(file, {
      readonly: options.readonly ?? false,
      fileMustExist: options.fileMustExist ?? false,
      timeout: options.busyTimeoutMs,
    });
    const db = this.db;
    if (options.readonly !== true) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.transaction(() => db.exec(SCHEMA)).immediate();
    }
    const q = this.queue;
    const prepare = (sql: string) => db.prepare(sql);
    this.s = {
      byKey: prepare('SELECT * FROM bulwark_jobs WHERE queue = ? AND idem_key = ?'),
      depth: prepare('SELECT state, n FROM bulwark_depth WHERE queue = ?'),
      live: prepare('SELECT count(*) AS n FROM bulwark_workers WHERE queue = ? AND beat_at >= ?'),
      claim: prepare(
        `UPDATE bulwark_jobs SET state = 'active', worker = ?, lease_until = ?, token = token + 1
         WHERE id IN (SELECT id FROM bulwark_jobs WHERE queue = ? AND state = 'waiting' AND run_at <= ?
                      ORDER BY priority, run_at, id LIMIT ?)
         RETURNING ${CLAIMED}`,
      ),
      retry: prepare(
        `UPDATE bulwark_jobs SET state = 'waiting', made = made + 1, run_at = ?, error = ?, worker = NULL
         WHERE id = ? AND state = 'active' AND token = ?`,
      ),
      bury: prepare(
        `UPDATE bulwark_jobs SET state = 'dead', made = made + 1, error = ?, reason = 'attempts', failed_at = ?,
           worker = NULL
         WHERE id = ? AND state = 'active' AND token = ?`,
      ),
      expired: prepare(
        `SELECT id, made, stalls FROM bulwark_jobs WHERE queue = ? AND state = 'active' AND lease_until < ?`,
      ),
      putBack: prepare(
        `UPDATE bulwark_jobs SET state = 'waiting', stalls = stalls + 1, worker = NULL, run_at = min(run_at, ?)
         WHERE id = ?`,
      ),
      buryStalled: prepare(
        `UPDATE bulwark_jobs SET state = 'dead', stalls = stalls + 1, worker = NULL, reason = 'stalled',
           error = ?, failed_at = ? WHERE id = ?`,
      ),
      beat: prepare(
        `INSERT INTO bulwark_workers(queue, id, beat_at) VALUES (?, ?, ?)
         ON CONFLICT(queue, id) DO UPDATE SET beat_at = excluded.beat_at`,
      ),
      extend: prepare(
        `UPDATE bulwark_jobs SET lease_until = ? WHERE queue = ? AND state = 'active' AND worker = ?`,
      ),
      removeWorker: prepare('DELETE FROM bulwark_workers WHERE queue = ? AND id = ?'),
      reap: prepare('DELETE FROM bulwark_workers WHERE queue = ? AND beat_at < ? RETURNING id'),
      delayed: prepare(
        `SELECT count(*) AS n FROM bulwark_jobs WHERE queue = ? AND state = 'waiting' AND run_at > ?`,
      ),
      dead: prepare(
        `SELECT * FROM bulwark_jobs WHERE queue = ? AND state = 'dead' ORDER BY failed_at, id LIMIT ?`,
      ),
      deadIds: prepare(
        `SELECT id FROM bulwark_jobs WHERE queue = ? AND state = 'dead' ORDER BY failed_at, id`,
      ),
      redrive: prepare(
        `UPDATE bulwark_jobs SET state = 'waiting', made = 0, stalls = 0, error = NULL, reason = NULL,
           failed_at = NULL, run_at = ? WHERE id = ? AND queue = ? AND state = 'dead'`,
      ),
      anyDue: prepare(
        `SELECT 1 FROM bulwark_jobs WHERE queue = ? AND state = 'waiting' AND run_at <= ? LIMIT 1`,
      ),
      nextDue: prepare(`SELECT min(run_at) AS at FROM bulwark_jobs WHERE queue = ? AND state = 'waiting'`),
    };
    const s = this.s as Record<string, Statement>;
    const get = (name: string) => s[name] as Statement;

    /** Multi-row statements by row count, prepared when first needed (at most CHUNK of each kind). */
    const inserts: Statement[] = [];
    const deletes: Statement[] = [];
    const bumps: Statement[] = [];
    /**
     * Adds each delta to the count of its state, in one statement (every state change goes through here,
     * in its transaction).
     */
    const bump = (deltas: Partial<Record<JobState, number>>) => {
      const params: unknown[] = [];
      for (const [state, delta] of Object.entries(deltas)) if (delta !== 0) params.push(q, state, delta);
      if (params.length === 0) return;
      let statement = bumps[params.length / 3];
      if (statement === undefined) {
        const rows = Array.from({ length: params.length / 3 }, () => '(?, ?, ?)').join(', ');
        statement = prepare(
          `INSERT INTO bulwark_depth(queue, state, n) VALUES ${rows}
           ON CONFLICT(queue, state) DO UPDATE SET n = n + excluded.n`,
        );
        bumps[params.length / 3] = statement;
      }
      statement.run(params);
    };
    const insertOf = (rows: number): Statement => {
      let statement = inserts[rows];
      if (statement === undefined) {
        const values = Array.from({ length: rows }, () => "(?, 'waiting', ?, ?, ?, ?, ?, ?, ?)").join(', ');
        statement = prepare(
          `INSERT INTO bulwark_jobs (queue, state, payload, priority, run_at, attempts, delays, added_at, idem_key)
           VALUES ${values}`,
        );
        inserts[rows] = statement;
      }
      return statement;
    };
    const deleteOf = (rows: number): Statement => {
      let statement = deletes[rows];
      if (statement === undefined) {
        const ids = Array.from({ length: rows }, () => '?').join(', ');
        const tokens = Array.from({ length: rows }, () => 'WHEN ? THEN ?').join(' ');
        // `id IN (…)` finds the rows by rowid; the CASE checks each one's lease token.
        statement = prepare(
          `DELETE FROM bulwark_jobs WHERE id IN (${ids}) AND state = 'active' AND token = CASE id ${tokens} END
           RETURNING id`,
        );
        deletes[rows] = statement;
      }
      return statement;
    };
    /**
     * Inserts `jobs` with one statement per CHUNK rows and returns them as stored. Rowids of one INSERT are
     * consecutive (AUTOINCREMENT takes the next after the largest ever used, one row at a time, in the
     * order of the VALUES list), so each job's id follows from the statement's last rowid.
     */
    const insertRows = (jobs: readonly PreparedJob[], now: number): StoredJob[] => {
      const stored: StoredJob[] = [];
      for (let from = 0; from < jobs.length; from += CHUNK) {
        const chunk = jobs.slice(from, from + CHUNK);
        const params: unknown[] = [];
        for (const job of chunk) {
          params.push(
            q,
            job.json,
            job.priority,
            now + job.delayMs,
            job.attempts,
            JSON.stringify(job.delays),
            now,
            job.idempotencyKey ?? null,
          );
        }
        const last = Number(insertOf(chunk.length).run(params).lastInsertRowid);
        chunk.forEach((job, i) => {
          stored.push({
            id: String(last - chunk.length + 1 + i),
            json: job.json,
            priority: job.priority,
            attempt: 0,
            attempts: job.attempts,
            delays: [...job.delays],
            addedAt: now,
            key: job.idempotencyKey,
            token: 0,
          });
        });
      }
      return stored;
    };
    /**
     * Inserts in order, each checked against capacity with the ones before it counted. Accepted jobs are
     * written together at the end; a key seen earlier in the same batch finds that job.
     */
    const insertBatch = (batch: readonly { job: PreparedJob; limits: InsertLimits }[], now: number) => {
      let unfinished = -1;
      const accepted: PreparedJob[] = [];
      /** Per job of the batch: its result, or the index in `accepted` of the job it adds or repeats. */
      const outcome: (InsertResult | number)[] = [];
      const keys = new Map<string, number>();
      for (const { job, limits } of batch) {
        const key = job.idempotencyKey;
        if (key !== undefined) {
          const earlier = keys.get(key);
          if (earlier !== undefined) {
            outcome.push(earlier);
            continue;
          }
          const existing = get('byKey').get(q, key) as JobRow | undefined;
          if (existing !== undefined) {
            outcome.push({ status: 'existing', job: toStored(existing, existing.made) });
            continue;
          }
        }
        if (limits.capacity !== Number.POSITIVE_INFINITY) {
          if (unfinished < 0) {
            const depth = this.depth();
            unfinished = (depth.waiting ?? 0) + (depth.active ?? 0);
          }
          if (unfinished + accepted.length >= limits.capacity) {
            outcome.push({ status: 'full' });
            continue;
          }
        }
        if (limits.workersSince !== undefined) {
          const live = (get('live').get(q, limits.workersSince) as { n: number }).n;
          if (live === 0) {
            outcome.push({ status: 'no-workers' });
            continue;
          }
        }
        if (key !== undefined) keys.set(key, accepted.length);
        outcome.push(accepted.length);
        accepted.push(job);
      }
      const stored = insertRows(accepted, now);
      const created = new Set<number>();
      const results = outcome.map((o): InsertResult => {
        if (typeof o !== 'number') return o;
        // The first job with an index is the one added; a later one with its key repeats it.
        const status = created.has(o) ? 'existing' : 'created';
        created.add(o);
        return { status, job: stored[o] as StoredJob };
      });
      bump({ waiting: accepted.length });
      return results;
    };
    this.insertTx = db.transaction(
      (job: PreparedJob, now: number, limits: InsertLimits) => insertBatch([{ job, limits }], now)[0],
    ).immediate as never;
    this.insertManyTx = db.transaction(insertBatch).immediate as never;

    this.cycleTx = db.transaction(
      (workerId: string, outcomes: readonly Outcome[], max: number, now: number, leaseUntil: number) => {
        const applied: boolean[] = [];
        let completed = 0;
        let retried = 0;
        let buried = 0;
        // Completions are deleted CHUNK at a time. A statement holds each job id once (its CASE has one
        // token per id): a second completion of the same job (a stale lease's run finishing beside the
        // current one, or the same outcome twice) goes to a later statement.
        const done: boolean[] = [];
        let rest = outcomes.flatMap((outcome, i) => (outcome.kind === 'completed' ? [i] : []));
        while (rest.length > 0) {
          const chunk: number[] = [];
          const later: number[] = [];
          const inChunk = new Set<number>();
          for (const i of rest) {
            const id = Number((outcomes[i] as Outcome).id);
            if (chunk.length < CHUNK && !inChunk.has(id)) {
              inChunk.add(id);
              chunk.push(i);
            } else later.push(i);
          }
          const ids = chunk.map((i) => Number((outcomes[i] as Outcome).id));
          const params: number[] = [...ids];
          chunk.forEach((i, k) => {
            params.push(ids[k] as number, (outcomes[i] as Outcome).token);
          });
          const deleted = new Set((deleteOf(chunk.length).all(params) as { id: number }[]).map((r) => r.id));
          chunk.forEach((i, k) => {
            done[i] = deleted.has(ids[k] as number);
          });
          completed += deleted.size;
          rest = later;
        }
        for (const [i, outcome] of outcomes.entries()) {
          const id = Number(outcome.id);
          let changes: number;
          if (outcome.kind === 'completed') {
            changes = done[i] === true ? 1 : 0;
          } else if (outcome.kind === 'retry') {
            changes = get('retry').run(
              outcome.runAt,
              JSON.stringify(outcome.error),
              id,
              outcome.token,
            ).changes;
            retried += changes;
          } else {
            changes = get('bury').run(JSON.stringify(outcome.error), now, id, outcome.token).changes;
            buried += changes;
          }
          applied.push(changes === 1);
        }
        const claimed: StoredJob[] = [];
        if (max > 0) {
          const rows = get('claim').all(workerId, leaseUntil, q, now, max) as JobRow[];
          rows.sort((a, b) => a.priority - b.priority || a.run_at - b.run_at || a.id - b.id);
          for (const row of rows) claimed.push(toStored(row, row.made + 1));
        }
        bump({
          completed,
          dead: buried,
          waiting: retried - claimed.length,
          active: claimed.length - completed - retried - buried,
        });
        return { applied, claimed };
      },
    ).immediate as never;

    this.recoverTx = db.transaction((now: number, maxStalled: number): Recovered => {
      const recovered: Recovered = { stalled: [], dead: [] };
      const rows = get('expired').all(q, now) as { id: number; made: number; stalls: number }[];
      for (const row of rows) {
        const entry = { id: String(row.id), attempt: row.made + 1 };
        if (row.stalls + 1 > maxStalled) {
          get('buryStalled').run(JSON.stringify(STALLED), now, row.id);
          recovered.dead.push(entry);
        } else {
          get('putBack').run(now, row.id);
          recovered.stalled.push(entry);
        }
      }
      bump({ waiting: recovered.stalled.length, dead: recovered.dead.length, active: -rows.length });
      return recovered;
    }).immediate as never;

    this.redriveTx = db.transaction((ids: readonly string[] | undefined, now: number): string[] => {
      const candidates =
        ids === undefined ? (get('deadIds').all(q) as { id: number }[]).map((r) => String(r.id)) : ids;
      const moved: string[] = [];
      for (const id of candidates) {
        const n = Number(id);
        if (!Number.isSafeInteger(n)) continue;
        if (get('redrive').run(now, n, q).changes === 1) moved.push(id);
      }
      bump({ dead: -moved.length, waiting: moved.length });
      return moved;
    }).immediate as never;

    this.heartbeatTx = db.transaction((workerId: string, now: number, leaseUntil: number) => {
      get('beat').run(q, workerId, now);
      get('extend').run(leaseUntil, q, workerId);
    }).immediate as never;
  }

  private depth(): Partial<Record<string, number>> {
    const depth: Partial<Record<string, number>> = {};
    for (const row of (this.s.depth as Statement).all(this.queue) as { state: string; n: number }[]) {
      depth[row.state] = row.n;
    }
    return depth;
  }

  insert(job: PreparedJob, now: number, limits: InsertLimits): InsertResult {
    return this.insertTx(job, now, limits);
  }

  insertMany(batch: readonly { job: PreparedJob; limits: InsertLimits }[], now: number): InsertResult[] {
    return this.insertManyTx(batch, now);
  }

  cycle(
    workerId: string,
    outcomes: readonly Outcome[],
    max: number,
    now: number,
    leaseUntil: number,
  ): { applied: boolean[]; claimed: StoredJob[] } {
    // An idle poll that would find nothing takes no write lock: a read first (WAL readers never block).
    if (outcomes.length === 0 && (this.s.anyDue as Statement).get(this.queue, now) === undefined) {
      return { applied: [], claimed: [] };
    }
    return this.cycleTx(workerId, outcomes, max, now, leaseUntil);
  }

  recoverStalled(now: number, maxStalled: number): Recovered {
    return this.recoverTx(now, maxStalled);
  }

  heartbeat(workerId: string, now: number, leaseUntil: number): void {
    this.heartbeatTx(workerId, now, leaseUntil);
  }

  removeWorker(workerId: string): void {
    (this.s.removeWorker as Statement).run(this.queue, workerId);
  }

  reapWorkers(since: number): string[] {
    return ((this.s.reap as Statement).all(this.queue, since) as { id: string }[]).map((r) => r.id);
  }

  liveWorkers(since: number): number {
    return ((this.s.live as Statement).get(this.queue, since) as { n: number }).n;
  }

  counts(now: number): Record<JobState, number> {
    const depth = this.depth();
    const delayed = ((this.s.delayed as Statement).get(this.queue, now) as { n: number }).n;
    return {
      waiting: (depth.waiting ?? 0) - delayed,
      delayed,
      active: depth.active ?? 0,
      completed: depth.completed ?? 0,
      dead: depth.dead ?? 0,
    };
  }

  deadLetters(limit: number): DeadRecord[] {
    return ((this.s.dead as Statement).all(this.queue, limit) as JobRow[]).map((row) => ({
      ...toStored(row, row.made),
      reason: row.reason === 'stalled' ? 'stalled' : 'attempts',
      error: row.error === null ? STALLED : (JSON.parse(row.error) as StoredError),
      failedAt: row.failed_at ?? 0,
    }));
  }

  redrive(ids: readonly string[] | undefined, now: number): string[] {
    return this.redriveTx(ids, now);
  }

  nextDueAt(): number | undefined {
    return ((this.s.nextDue as Statement).get(this.queue) as { at: number | null }).at ?? undefined;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** Options of {@link SqliteQueue}. */
export interface SqliteQueueOptions extends QueueOptions {
  /** The database file (created with its tables if missing). `':memory:'` for a private in-memory database. */
  file: string;
  /** How often an idle worker looks for jobs added by other processes. @defaultValue `'50ms'` */
  pollInterval?: number | string;
  /** How long a step waits for another process's transaction before failing. @defaultValue `'5s'` */
  busyTimeout?: number | string;
}

/**
 * A durable queue in one SQLite file: the embedded default. Any number of processes on the machine may
 * add and work on the same file.
 * @example
 * const queue = new SqliteQueue({ file: 'jobs.db', name: 'emails', capacity: 10_000 });
 * queue.process(async (job) => send(job.payload), { concurrency: 20 });
 * await queue.add({ to: 'ada@example.com' }, { attempts: 5, backoff: backoff.exponential({ initial: '1s' }) });
 */
export class SqliteQueue<T = JsonValue> extends LocalQueue<T> {
  /** The database file. */
  readonly file: string;

  constructor(options: SqliteQueueOptions) {
    const where = 'SqliteQueue';
    const resolved = resolveQueueOptions(where, options, ['file', 'pollInterval', 'busyTimeout']);
    const file = options.file;
    if (typeof file !== 'string' || file.length === 0) throw invalid(where, 'file', file, 'a file path');
    const pollMs = durationOption(where, 'pollInterval', options.pollInterval, 50, 1);
    const busyTimeoutMs = durationOption(where, 'busyTimeout', options.busyTimeout, 5000, 0);
    super(resolved, new SqliteStore(file, resolved.name, { busyTimeoutMs }), {
      backend: 'sqlite',
      pollMs,
      batch: 'immediate',
    });
    this.file = file;
  }
}
