/**
 * The journal: every run's step events, one row each, written before the engine goes on. `resume` reads
 * it after a crash; `show` and the consistency check fold it into a {@link RunRecord}. Two stores: SQLite
 * (the durable default: WAL, `synchronous=NORMAL`, which survives a killed process) and memory (the lab).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { RunStatus } from './events.js';
import type { PlanDefinition } from './plan.js';

/** An error as the journal keeps it. */
export interface ErrorInfo {
  name: string;
  message: string;
  code?: string;
}

/** What one journal row says happened. `at` is the runtime clock's time (ms). */
export type JournalEvent =
  | { kind: 'run.started'; at: number; plan: PlanDefinition; dryRun: boolean }
  | { kind: 'run.resumed'; at: number }
  | { kind: 'run.finished'; at: number; status: RunStatus; error?: ErrorInfo }
  | { kind: 'rollback.started'; at: number; reason: string }
  | {
      kind: 'step.started';
      at: number;
      step: string;
      tool: string;
      attempt: number;
      params: unknown;
      paramsHash: string;
    }
  | {
      kind: 'step.succeeded';
      at: number;
      step: string;
      attempts: number;
      durationMs: number;
      output: unknown;
      outputHash: string;
      undo?: unknown;
    }
  | { kind: 'step.undo'; at: number; step: string; attempt: number; undo: unknown }
  | { kind: 'step.failed'; at: number; step: string; attempt: number; final: boolean; error: ErrorInfo }
  | { kind: 'step.cancelled'; at: number; step: string; reason: string }
  | {
      kind: 'step.simulated';
      at: number;
      step: string;
      tool: string;
      params: unknown;
      paramsHash: string;
      description: string;
      estimatedMs: number;
      unresolved: string[];
      error?: ErrorInfo;
    }
  | { kind: 'step.compensating'; at: number; step: string; tool: string }
  | { kind: 'step.compensated'; at: number; step: string; ok: boolean; attempts: number; error?: ErrorInfo };

/** A run as listed by {@link Journal.runs}. */
export interface RunSummary {
  runId: string;
  plan: string;
  dryRun: boolean;
  /** `running` until the run finishes (also a run whose process died: `resume` it). */
  status: RunStatus | 'running';
  startedAt: number;
  finishedAt: number | undefined;
}

/** Where the engine records runs. Appends are synchronous: once `append` returns, the row is stored. */
export interface Journal {
  /** Appends one event of run `runId`; a `run.started` creates the run (its id must be new). */
  append(runId: string, event: JournalEvent): void;
  /** The run's events in order, or undefined when there is no such run. */
  events(runId: string): JournalEvent[] | undefined;
  /** Runs, most recent first. */
  runs(limit?: number): RunSummary[];
  close(): void;
}

function summaryOf(runId: string, started: Extract<JournalEvent, { kind: 'run.started' }>): RunSummary {
  return {
    runId,
    plan: started.plan.name,
    dryRun: started.dryRun,
    status: 'running',
    startedAt: started.at,
    finishedAt: undefined,
  };
}

/**
 * A journal in memory: what the lab and tests use. Nothing survives the process.
 * @example
 * const engine = new Engine({ journal: new MemoryJournal() });
 */
export class MemoryJournal implements Journal {
  private readonly store = new Map<string, { summary: RunSummary; events: JournalEvent[]; seq: number }>();
  private order = 0;

  append(runId: string, event: JournalEvent): void {
    if (event.kind === 'run.started') {
      if (this.store.has(runId)) throw new Error(`journal: run ${runId} already exists`);
      this.store.set(runId, { summary: summaryOf(runId, event), events: [], seq: this.order++ });
    }
    const entry = this.store.get(runId);
    if (entry === undefined) throw new Error(`journal: no run ${runId}`);
    // Stored as JSON text would be: the same values a SQLite journal gives back.
    entry.events.push(JSON.parse(JSON.stringify(event)) as JournalEvent);
    if (event.kind === 'run.finished') {
      entry.summary.status = event.status;
      entry.summary.finishedAt = event.at;
    }
  }

  events(runId: string): JournalEvent[] | undefined {
    return this.store.get(runId)?.events.slice();
  }

  runs(limit = 100): RunSummary[] {
    return [...this.store.values()]
      .sort((a, b) => b.seq - a.seq)
      .slice(0, limit)
      .map((e) => ({ ...e.summary }));
  }

  close(): void {}
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bulwark_runs (
  run_id      TEXT PRIMARY KEY,
  plan        TEXT NOT NULL,
  dry_run     INTEGER NOT NULL,
  status      TEXT NOT NULL,
  started_at  REAL NOT NULL,
  finished_at REAL
);
CREATE TABLE IF NOT EXISTS bulwark_step_events (
  run_id TEXT NOT NULL REFERENCES bulwark_runs(run_id),
  seq    INTEGER NOT NULL,
  kind   TEXT NOT NULL,
  step   TEXT,
  at     REAL NOT NULL,
  data   TEXT NOT NULL,
  PRIMARY KEY (run_id, seq)
);
`;

/** Options of {@link SqliteJournal}. */
export interface SqliteJournalOptions {
  /** Wait this long (ms) for another process's write lock before failing. @defaultValue `5000` */
  busyTimeoutMs?: number;
}

/**
 * A journal in a SQLite file (created with its directory if missing): WAL mode, `synchronous=NORMAL`, one
 * row per event, each append its own transaction, so a process killed at any point loses nothing it
 * appended. Several processes may share the file.
 * @example
 * const journal = new SqliteJournal('.bulwark/journal.db');
 */
export class SqliteJournal implements Journal {
  private readonly db: Database.Database;
  private readonly insertRun: Database.Statement;
  private readonly insertEvent: Database.Statement;
  private readonly finishRun: Database.Statement;
  private readonly nextSeq: Database.Statement;
  private readonly selectEvents: Database.Statement;
  private readonly selectRun: Database.Statement;
  private readonly selectRuns: Database.Statement;
  private readonly appendTx: Database.Transaction<(runId: string, event: JournalEvent) => void>;

  constructor(
    readonly path: string,
    options: SqliteJournalOptions = {},
  ) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path, { timeout: options.busyTimeoutMs ?? 5000 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
    this.insertRun = this.db.prepare(
      'INSERT INTO bulwark_runs (run_id, plan, dry_run, status, started_at) VALUES (?, ?, ?, ?, ?)',
    );
    this.insertEvent = this.db.prepare(
      'INSERT INTO bulwark_step_events (run_id, seq, kind, step, at, data) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.finishRun = this.db.prepare('UPDATE bulwark_runs SET status = ?, finished_at = ? WHERE run_id = ?');
    this.nextSeq = this.db.prepare(
      'SELECT COALESCE(MAX(seq), -1) + 1 AS seq FROM bulwark_step_events WHERE run_id = ?',
    );
    this.selectEvents = this.db.prepare('SELECT data FROM bulwark_step_events WHERE run_id = ? ORDER BY seq');
    this.selectRun = this.db.prepare('SELECT 1 FROM bulwark_runs WHERE run_id = ?');
    this.selectRuns = this.db.prepare(
      'SELECT run_id, plan, dry_run, status, started_at, finished_at FROM bulwark_runs ORDER BY started_at DESC, rowid DESC LIMIT ?',
    );
    this.appendTx = this.db.transaction((runId: string, event: JournalEvent) => {
      if (event.kind === 'run.started') {
        if (this.selectRun.get(runId) !== undefined) throw new Error(`journal: run ${runId} already exists`);
        this.insertRun.run(runId, event.plan.name, event.dryRun ? 1 : 0, 'running', event.at);
      } else if (this.selectRun.get(runId) === undefined) {
        throw new Error(`journal: no run ${runId}`);
      }
      const { seq } = this.nextSeq.get(runId) as { seq: number };
      const step = 'step' in event ? event.step : null;
      this.insertEvent.run(runId, seq, event.kind, step, event.at, JSON.stringify(event));
      if (event.kind === 'run.finished') this.finishRun.run(event.status, event.at, runId);
    });
  }

  append(runId: string, event: JournalEvent): void {
    // IMMEDIATE: take the write lock before reading the next sequence number, so that two processes
    // appending at once wait for each other instead of failing on a stale snapshot.
    this.appendTx.immediate(runId, event);
  }

  events(runId: string): JournalEvent[] | undefined {
    if (this.selectRun.get(runId) === undefined) return undefined;
    return (this.selectEvents.all(runId) as { data: string }[]).map(
      (row) => JSON.parse(row.data) as JournalEvent,
    );
  }

  runs(limit = 100): RunSummary[] {
    return (
      this.selectRuns.all(limit) as {
        run_id: string;
        plan: string;
        dry_run: number;
        status: RunStatus | 'running';
        started_at: number;
        finished_at: number | null;
      }[]
    ).map((row) => ({
      runId: row.run_id,
      plan: row.plan,
      dryRun: row.dry_run === 1,
      status: row.status,
      startedAt: row.started_at,
      finishedAt: row.finished_at ?? undefined,
    }));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
