import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { queueSuite } from '../../test/queue-suite.js';
import { createRuntime } from '../core/runtime.js';
import { backoff } from '../policy/backoff.js';
import { SqliteQueue } from './sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
describe('SqliteQueue: the shared backend suite', () => {
  queueSuite({
    clock: 'system',
    leaseMs: 300,
    create: (options) => {
      n++;
      return new SqliteQueue({
        file: join(dir, `suite-${n}.db`),
        name: `sqlite-${n}`,
        pollInterval: 10,
        ...options,
      });
    },
  });
});

describe('SqliteQueue', () => {
  it('keeps jobs across a restart of the process (a new queue on the same file)', async () => {
    const file = join(dir, 'restart.db');
    const runtime = createRuntime({ seed: 1 });
    const first = new SqliteQueue({ file, name: 'restart', runtime });
    const added = await first.add({ keep: 'me' }, { priority: 3 });
    await first.close();
    const second = new SqliteQueue({ file, name: 'restart', runtime });
    try {
      expect((await second.stats()).counts.waiting).toBe(1);
      const seen: unknown[] = [];
      second.process((job) => {
        seen.push([job.id, job.payload, job.priority]);
      });
      const deadline = runtime.clock.now() + 5000;
      while (seen.length === 0 && runtime.clock.now() < deadline) await runtime.clock.sleep(5);
      expect(seen).toEqual([[added.id, { keep: 'me' }, 3]]);
    } finally {
      await second.close();
    }
  });

  it('keeps queues that share a file apart', async () => {
    const file = join(dir, 'shared.db');
    const runtime = createRuntime({ seed: 2 });
    const a = new SqliteQueue({ file, name: 'a', runtime, capacity: 1 });
    const b = new SqliteQueue({ file, name: 'b', runtime, capacity: 1 });
    try {
      await a.add('one');
      await b.add('one');
      expect((await a.stats()).counts.waiting).toBe(1);
      expect((await b.stats()).counts.waiting).toBe(1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('puts the file in WAL mode', async () => {
    const file = join(dir, 'pragmas.db');
    const queue = new SqliteQueue({ file, name: 'p', runtime: createRuntime({ seed: 3 }) });
    await queue.close();
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(file);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('rejects a missing or empty file option', () => {
    expect(() => new SqliteQueue({} as never)).toThrow(/option "file"/);
    expect(() => new SqliteQueue({ file: 'x.db', pollInterval: -1 })).toThrow(TypeError);
  });
});

describe('SqliteQueue close', () => {
  it('stores the adds of the current batch before closing', async () => {
    const file = join(dir, 'close-batch.db');
    const runtime = createRuntime({ seed: 4 });
    const queue = new SqliteQueue({ file, name: 'c', runtime });
    const adds = [queue.add(1), queue.add(2), queue.add(3)];
    await queue.close();
    expect((await Promise.allSettled(adds)).map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'fulfilled',
    ]);
    const reopened = new SqliteQueue({ file, name: 'c', runtime });
    expect((await reopened.stats()).counts.waiting).toBe(3);
    await reopened.close();
  });
});

describe('SqliteQueue depth bookkeeping', () => {
  it('keeps its counts equal to the rows through adds, retries, deaths, stalls and redrives', async () => {
    const file = join(dir, 'depth.db');
    const runtime = createRuntime({ seed: 'depth' });
    const queue = new SqliteQueue<{ i: number }>({
      file,
      name: 'd',
      runtime,
      lease: 200,
      pollInterval: 2,
      maxStalled: 0,
    });
    const random = runtime.random.fork('handler');
    const until = async (condition: () => Promise<boolean>) => {
      const deadline = runtime.clock.now() + 10_000;
      while (!(await condition()) && runtime.clock.now() < deadline) await runtime.clock.sleep(5);
    };
    try {
      const hang = queue.process(() => new Promise(() => undefined), { concurrency: 3 });
      await Promise.all(
        Array.from({ length: 60 }, (_, i) => queue.add({ i }, { attempts: 2, backoff: backoff.constant(5) })),
      );
      await until(async () => (await queue.stats()).counts.active === 3);
      await hang.close({ force: true });
      queue.process(
        () => {
          if (random.next() < 0.4) throw new Error('flaky');
        },
        { concurrency: 5 },
      );
      await until(async () => {
        const { counts } = await queue.stats();
        return counts.waiting + counts.delayed + counts.active === 0;
      });
      const check = async () => {
        const { counts } = await queue.stats();
        const Database = (await import('better-sqlite3')).default;
        const db = new Database(file, { readonly: true });
        const rows = db
          .prepare(`SELECT state, count(*) AS n FROM bulwark_jobs WHERE queue = 'd' GROUP BY state`)
          .all() as { state: string; n: number }[];
        db.close();
        const actual = Object.fromEntries(rows.map((r) => [r.state, r.n]));
        expect(counts.dead).toBe(actual.dead ?? 0);
        expect(counts.waiting + counts.delayed).toBe(actual.waiting ?? 0);
        expect(counts.active).toBe(actual.active ?? 0);
        expect(counts.completed + counts.dead).toBe(60);
        return counts;
      };
      expect((await check()).dead).toBeGreaterThanOrEqual(3); // the three stalled jobs at least
      await queue.redrive();
      await until(async () => {
        const { counts } = await queue.stats();
        return counts.waiting + counts.delayed + counts.active === 0;
      });
      await check();
    } finally {
      await queue.close();
    }
  });
});
