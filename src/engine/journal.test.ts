import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { virtualRuntime } from '../core/runtime.js';
import { DEFAULT_JOURNAL_PATH, Engine } from './engine.js';
import { type Journal, type JournalEvent, MemoryJournal, SqliteJournal } from './journal.js';
import { definePlan } from './plan.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-journal-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const started: JournalEvent = {
  kind: 'run.started',
  at: 5,
  dryRun: false,
  plan: { name: 'p', steps: [{ id: 'a', tool: 'log', params: { message: 'x' } }] },
};

const stores: [string, () => Journal][] = [
  ['MemoryJournal', () => new MemoryJournal()],
  ['SqliteJournal', () => new SqliteJournal(join(dir, 'nested', 'journal.db'))],
];

describe.each(stores)('%s', (_name, make) => {
  it('stores events in order, lists runs most recent first, and refuses a duplicate or unknown run', () => {
    const journal = make();
    try {
      journal.append('r1', started);
      journal.append('r1', {
        kind: 'step.started',
        at: 6,
        step: 'a',
        tool: 'log',
        attempt: 1,
        params: { message: 'x' },
        paramsHash: 'h',
      });
      journal.append('r2', { ...started, at: 7 });
      journal.append('r1', { kind: 'run.finished', at: 9, status: 'succeeded' });
      expect(journal.events('r1')?.map((e) => e.kind)).toEqual([
        'run.started',
        'step.started',
        'run.finished',
      ]);
      expect(journal.events('nope')).toBeUndefined();
      expect(journal.runs()).toEqual([
        { runId: 'r2', plan: 'p', dryRun: false, status: 'running', startedAt: 7, finishedAt: undefined },
        { runId: 'r1', plan: 'p', dryRun: false, status: 'succeeded', startedAt: 5, finishedAt: 9 },
      ]);
      expect(() => journal.append('r1', started)).toThrow('journal: run r1 already exists');
      expect(() => journal.append('r9', { kind: 'run.resumed', at: 1 })).toThrow('journal: no run r9');
    } finally {
      journal.close();
    }
  });
});

describe('SqliteJournal', () => {
  it('uses WAL with synchronous=NORMAL, one row per step event, readable by another connection', async () => {
    const path = join(dir, 'j.db');
    const journal = new SqliteJournal(path);
    const rt = virtualRuntime(1);
    const engine = new Engine({ runtime: rt, journal, root: dir, log: () => {} });
    const result = await rt.clock.run(() =>
      engine.run(
        definePlan({
          name: 'two',
          steps: [
            { id: 'a', tool: 'log', params: { message: 'x' } },
            { id: 'b', tool: 'wait', params: { duration: 5 } },
          ],
        }),
      ),
    );
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const rows = db
        .prepare('SELECT kind, step FROM bulwark_step_events WHERE run_id = ? ORDER BY seq')
        .all(result.runId);
      expect(rows).toEqual([
        { kind: 'run.started', step: null },
        { kind: 'step.started', step: 'a' },
        { kind: 'step.started', step: 'b' },
        { kind: 'step.succeeded', step: 'a' },
        { kind: 'step.succeeded', step: 'b' },
        { kind: 'run.finished', step: null },
      ]);
    } finally {
      db.close();
    }
    // The synchronous level is per connection: check the journal's own.
    expect((journal as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true })).toBe(
      1,
    );
    journal.close();
    // A second process (here: a second journal on the file) sees the whole run.
    const again = new SqliteJournal(path);
    expect(new Engine({ journal: again, root: dir }).show(result.runId).status).toBe('succeeded');
    again.close();
  });
});

describe('the default journal', () => {
  it('is a SqliteJournal at .bulwark/journal.db in the working directory, opened on first use', async () => {
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const rt = virtualRuntime(1);
      const engine = new Engine({ runtime: rt, root: dir, log: () => {} });
      expect(existsSync(join(dir, '.bulwark'))).toBe(false);
      const result = await rt.clock.run(() =>
        engine.run(definePlan({ name: 'd', steps: [{ id: 'a', tool: 'log', params: { message: 'x' } }] })),
      );
      expect(engine.journal).toBeInstanceOf(SqliteJournal);
      engine.close();
      const again = new SqliteJournal(join(dir, DEFAULT_JOURNAL_PATH));
      expect(again.runs().map((r) => r.runId)).toEqual([result.runId]);
      again.close();
    } finally {
      process.chdir(cwd);
    }
  });
});
