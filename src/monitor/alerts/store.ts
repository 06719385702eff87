/**
 * The durable side of alerting, in one SQLite file (WAL): the outbox of notifications not yet delivered,
 * the notification log (what each group last sent to each receiver, for dedup and `repeat_interval`) and
 * the silences. A notification is written together with its log entry in one transaction, so after a crash
 * or a restart every queued notification is delivered once and nothing already sent is sent again.
 */
import Database from 'better-sqlite3';
import type { Matcher } from './labels.js';
import type { Notification } from './notification.js';

/** A notification waiting in (or delivered from) the outbox. */
export interface OutboxEntry {
  readonly id: number;
  readonly receiver: string;
  readonly notification: Notification;
  readonly attempts: number;
  /** When the next attempt is due (ms). */
  readonly nextAt: number;
  readonly createdAt: number;
}

/** What a group last sent to a receiver. */
export interface LogEntry {
  readonly firing: ReadonlySet<string>;
  readonly resolved: ReadonlySet<string>;
  readonly at: number;
}

/** A silence: alerts matching every matcher are not notified between `startsAt` and `endsAt`. */
export interface Silence {
  readonly id: string;
  readonly matchers: readonly Matcher[];
  readonly startsAt: number;
  readonly endsAt: number;
  readonly createdBy: string;
  readonly comment: string;
}

/** Counts of the outbox by state. */
export interface OutboxCounts {
  readonly pending: number;
  readonly delivered: number;
  readonly rejected: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  receiver TEXT NOT NULL,
  group_key TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at REAL NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  finished_at REAL,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (receiver, state, id);
CREATE TABLE IF NOT EXISTS nflog (
  group_key TEXT NOT NULL,
  receiver TEXT NOT NULL,
  firing TEXT NOT NULL,
  resolved TEXT NOT NULL,
  at REAL NOT NULL,
  PRIMARY KEY (group_key, receiver)
);
CREATE TABLE IF NOT EXISTS silences (
  id TEXT PRIMARY KEY,
  matchers TEXT NOT NULL,
  starts_at REAL NOT NULL,
  ends_at REAL NOT NULL,
  created_by TEXT NOT NULL,
  comment TEXT NOT NULL
);
`;

interface OutboxRow {
  id: number;
  receiver: string;
  payload: string;
  attempts: number;
  next_at: number;
  created_at: number;
}

interface SilenceRow {
  id: string;
  matchers: string;
  starts_at: number;
  ends_at: number;
  created_by: string;
  comment: string;
}

/**
 * The alerting store. `':memory:'` keeps it in memory (nothing survives a restart).
 * @example
 * const store = new AlertStore('alerts.db');
 */
export class AlertStore {
  private readonly db: Database.Database;
  private readonly statements;

  constructor(readonly path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.statements = {
      insert: this.db.prepare(
        'INSERT INTO outbox (receiver, group_key, payload, created_at, next_at) VALUES (?, ?, ?, ?, ?)',
      ),
      log: this.db.prepare(
        'INSERT INTO nflog (group_key, receiver, firing, resolved, at) VALUES (?, ?, ?, ?, ?) ' +
          'ON CONFLICT (group_key, receiver) DO UPDATE SET firing = excluded.firing, resolved = excluded.resolved, at = excluded.at',
      ),
      getLog: this.db.prepare('SELECT firing, resolved, at FROM nflog WHERE group_key = ? AND receiver = ?'),
      head: this.db.prepare(
        "SELECT id, receiver, payload, attempts, next_at, created_at FROM outbox WHERE receiver = ? AND state = 'pending' ORDER BY id LIMIT 1",
      ),
      receivers: this.db.prepare("SELECT DISTINCT receiver FROM outbox WHERE state = 'pending'"),
      delivered: this.db.prepare(
        "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, finished_at = ?, last_error = NULL WHERE id = ?",
      ),
      rejected: this.db.prepare(
        "UPDATE outbox SET state = 'rejected', attempts = attempts + 1, finished_at = ?, last_error = ? WHERE id = ?",
      ),
      retry: this.db.prepare(
        'UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?',
      ),
      pruneOutbox: this.db.prepare("DELETE FROM outbox WHERE state != 'pending' AND finished_at < ?"),
      pruneLog: this.db.prepare('DELETE FROM nflog WHERE at < ?'),
      counts: this.db.prepare('SELECT state, COUNT(*) AS n FROM outbox GROUP BY state'),
      putSilence: this.db.prepare(
        'INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment) VALUES (?, ?, ?, ?, ?, ?) ' +
          'ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, starts_at = excluded.starts_at, ends_at = excluded.ends_at, created_by = excluded.created_by, comment = excluded.comment',
      ),
      silences: this.db.prepare(
        'SELECT id, matchers, starts_at, ends_at, created_by, comment FROM silences ORDER BY starts_at, id',
      ),
    };
  }

  /** Queues `notification` for `receiver` and records it in the notification log, atomically. Returns its id. */
  enqueue(notification: Notification, log: LogEntry): number {
    const run = this.db.transaction(() => {
      const info = this.statements.insert.run(
        notification.receiver,
        notification.groupKey,
        JSON.stringify(notification),
        log.at,
        log.at,
      );
      this.statements.log.run(
        notification.groupKey,
        notification.receiver,
        JSON.stringify([...log.firing].sort()),
        JSON.stringify([...log.resolved].sort()),
        log.at,
      );
      return Number(info.lastInsertRowid);
    });
    return run();
  }

  /** Records a log entry without queuing anything (a group whose alerts were all muted). */
  record(groupKey: string, receiver: string, log: LogEntry): void {
    this.statements.log.run(
      groupKey,
      receiver,
      JSON.stringify([...log.firing].sort()),
      JSON.stringify([...log.resolved].sort()),
      log.at,
    );
  }

  lastNotified(groupKey: string, receiver: string): LogEntry | undefined {
    const row = this.statements.getLog.get(groupKey, receiver) as
      | { firing: string; resolved: string; at: number }
      | undefined;
    if (row === undefined) return undefined;
    return {
      firing: new Set(JSON.parse(row.firing) as string[]),
      resolved: new Set(JSON.parse(row.resolved) as string[]),
      at: row.at,
    };
  }

  /** The oldest pending notification of `receiver` (deliveries to one receiver keep their order). */
  head(receiver: string): OutboxEntry | undefined {
    const row = this.statements.head.get(receiver) as OutboxRow | undefined;
    if (row === undefined) return undefined;
    return {
      id: row.id,
      receiver: row.receiver,
      notification: JSON.parse(row.payload) as Notification,
      attempts: row.attempts,
      nextAt: row.next_at,
      createdAt: row.created_at,
    };
  }

  /** Receivers with pending notifications. */
  pendingReceivers(): string[] {
    return (this.statements.receivers.all() as { receiver: string }[]).map((r) => r.receiver);
  }

  markDelivered(id: number, at: number): void {
    this.statements.delivered.run(at, id);
  }

  markRejected(id: number, at: number, error: string): void {
    this.statements.rejected.run(at, error, id);
  }

  markRetry(id: number, nextAt: number, error: string): void {
    this.statements.retry.run(nextAt, error, id);
  }

  counts(): OutboxCounts {
    const counts = { pending: 0, delivered: 0, rejected: 0 };
    for (const row of this.statements.counts.all() as { state: keyof OutboxCounts; n: number }[])
      counts[row.state] = row.n;
    return counts;
  }

  putSilence(silence: Silence): void {
    this.statements.putSilence.run(
      silence.id,
      JSON.stringify(silence.matchers),
      silence.startsAt,
      silence.endsAt,
      silence.createdBy,
      silence.comment,
    );
  }

  silences(): Silence[] {
    return (this.statements.silences.all() as SilenceRow[]).map((row) => ({
      id: row.id,
      matchers: JSON.parse(row.matchers) as Matcher[],
      startsAt: row.starts_at,
      endsAt: row.ends_at,
      createdBy: row.created_by,
      comment: row.comment,
    }));
  }

  /** Deletes delivered and rejected notifications, and notification-log entries, older than `before` (ms). */
  prune(before: number): void {
    this.statements.pruneOutbox.run(before);
    this.statements.pruneLog.run(before);
  }

  isOpen(): boolean {
    return this.db.open;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
