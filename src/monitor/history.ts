/**
 * The dashboard's history: per-minute rollups in SQLite (WAL), kept for a retention period (7 days by
 * default). One row per minute, name and metric; writing a minute twice (a restart within the same
 * minute) adds the counts and keeps the larger gauge or percentile.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Clock } from '../core/clock.js';
import { BulwarkError } from '../core/errors.js';
import { intOption, invalid, knownKeys } from '../policy/options.js';
import type { RollupRow, Scope } from './live.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** Thrown when the history database cannot be opened or written (`HISTORY_UNAVAILABLE`). */
export class HistoryUnavailableError extends BulwarkError {
  override readonly name = 'HistoryUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('HISTORY_UNAVAILABLE', message, options);
  }
}

export interface HistoryStoreOptions {
  /** The SQLite file (created with its directory when missing), or `':memory:'`. */
  path: string;
  /** Where "now" comes from, for retention. */
  clock: Clock;
  /** Days of rollups kept. @defaultValue 7 */
  retentionDays?: number;
}

/** One minute of one name: metric → value. */
export interface HistoryPoint {
  /** Start of the minute, epoch ms. */
  minute: number;
  values: Record<string, number>;
}

export interface HistoryQuery {
  scope: Scope;
  name: string;
  /** Epoch ms, inclusive. @defaultValue `to` minus one hour */
  from?: number;
  /** Epoch ms, exclusive. @defaultValue now */
  to?: number;
}

const SCOPES: readonly Scope[] = ['policy', 'queue', 'plan', 'fault'];

/**
 * Per-minute rollups in SQLite.
 * @example
 * const history = new HistoryStore({ path: '.bulwark/dashboard.db', clock: runtime.clock });
 * history.query({ scope: 'policy', name: 'payments', from: now - 86_400_000 });
 */
export class HistoryStore {
  readonly path: string;
  readonly retentionMs: number;
  private readonly clock: Clock;
  private readonly db: Database.Database;
  private readonly addSum: Database.Statement;
  private readonly addMax: Database.Statement;
  private readonly select: Database.Statement;
  private readonly selectNames: Database.Statement;
  private readonly deleteOld: Database.Statement;
  private readonly writeRows: (rows: readonly RollupRow[]) => void;
  private closed = false;

  constructor(options: HistoryStoreOptions) {
    const where = 'HistoryStore';
    if (typeof options !== 'object' || options === null)
      throw invalid(where, 'options', options, 'an object');
    knownKeys(where, options, ['path', 'clock', 'retentionDays']);
    if (typeof options.path !== 'string' || options.path === '') {
      throw invalid(where, 'path', options.path, 'a file path or ":memory:"');
    }
    const days = intOption(where, 'retentionDays', options.retentionDays, 7, 1, 3650);
    this.path = options.path;
    this.clock = options.clock;
    this.retentionMs = days * DAY;
    try {
      if (this.path !== ':memory:') mkdirSync(dirname(this.path), { recursive: true });
      this.db = new Database(this.path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.exec(`CREATE TABLE IF NOT EXISTS rollups (
        minute INTEGER NOT NULL,
        scope TEXT NOT NULL,
        name TEXT NOT NULL,
        metric TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (scope, name, minute, metric)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS rollups_by_minute ON rollups (minute);`);
    } catch (error) {
      throw new HistoryUnavailableError(
        `cannot open the history database ${this.path}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    const upsert = (merge: string) =>
      this.db.prepare(
        `INSERT INTO rollups (minute, scope, name, metric, value) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (scope, name, minute, metric) DO UPDATE SET value = ${merge}`,
      );
    this.addSum = upsert('value + excluded.value');
    this.addMax = upsert('max(value, excluded.value)');
    this.select = this.db.prepare(
      'SELECT minute, metric, value FROM rollups WHERE scope = ? AND name = ? AND minute >= ? AND minute < ? ORDER BY minute',
    );
    this.selectNames = this.db.prepare(
      'SELECT DISTINCT scope, name FROM rollups WHERE minute >= ? ORDER BY scope, name',
    );
    this.deleteOld = this.db.prepare('DELETE FROM rollups WHERE minute < ?');
    this.writeRows = this.db.transaction((rows: readonly RollupRow[]) => {
      for (const row of rows) {
        for (const [metric, value] of Object.entries(row.sums)) {
          this.addSum.run(row.minute, row.scope, row.name, metric, value);
        }
        for (const [metric, value] of Object.entries(row.maxima)) {
          if (Number.isFinite(value)) this.addMax.run(row.minute, row.scope, row.name, metric, value);
        }
      }
    });
  }

  /** Adds rollups (one transaction) and drops those older than the retention period. */
  write(rows: readonly RollupRow[]): void {
    if (this.closed) return;
    this.writeRows(rows);
    this.prune();
  }

  /** Deletes the rollups older than the retention period; returns how many rows went. */
  prune(): number {
    if (this.closed) return 0;
    return this.deleteOld.run(this.clock.now() - this.retentionMs).changes;
  }

  /** The minutes of one name between `from` and `to`, oldest first. */
  query(query: HistoryQuery): HistoryPoint[] {
    const where = 'HistoryStore.query';
    if (!SCOPES.includes(query.scope))
      throw invalid(where, 'scope', query.scope, `one of ${SCOPES.join(', ')}`);
    if (typeof query.name !== 'string') throw invalid(where, 'name', query.name, 'a string');
    const to = query.to ?? this.clock.now();
    const from = query.from ?? to - 60 * MINUTE;
    const points: HistoryPoint[] = [];
    let last: HistoryPoint | undefined;
    for (const row of this.select.iterate(query.scope, query.name, from, to) as Iterable<{
      minute: number;
      metric: string;
      value: number;
    }>) {
      if (last === undefined || last.minute !== row.minute) {
        last = { minute: row.minute, values: {} };
        points.push(last);
      }
      last.values[row.metric] = row.value;
    }
    return points;
  }

  /** The names with rollups inside the retention period. */
  names(): { scope: Scope; name: string }[] {
    return this.selectNames.all(this.clock.now() - this.retentionMs) as { scope: Scope; name: string }[];
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
