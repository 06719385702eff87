import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../core/runtime.js';
import type { PreparedJob } from './job.js';
import { MemoryStore } from './memory.js';
import { SqliteQueue, SqliteStore } from './sqlite.js';
import type { InsertLimits, JobStore, Outcome } from './store.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-sqlite-review-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const fresh = () => join(dir, `r-${++files}.db`);
const open = (file: string, queue = 'q') => new SqliteStore(file, queue, { busyTimeoutMs: 5000 });

function job(payload: unknown, extra: Partial<PreparedJob> = {}): PreparedJob {
  return {
    json: JSON.stringify(payload),
    priority: 0,
    delayMs: 0,
    attempts: 1,
    delays: [],
    idempotencyKey: undefined,
    requireWorkers: false,
    ...extra,
  };
}
const NO_LIMITS: InsertLimits = { capacity: Number.POSITIVE_INFINITY, workersSince: undefined };

/** The rows of `file` as (id, queue, payload, state). */
function rows(file: string): { id: number; queue: string; payload: string; state: string }[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT id, queue, payload, state FROM bulwark_jobs ORDER BY id').all() as never;
  } finally {
    db.close();
  }
}

/** Each created job's id must name the row holding its payload (in its queue). */
function expectIdsMatchRows(file: string, queue: string, created: { id: string; json: string }[]): void {
  const byId = new Map(rows(file).map((r) => [String(r.id), r]));
  for (const j of created) {
    const row = byId.get(j.id);
    expect(row, `row ${j.id}`).toBeDefined();
    expect(row?.payload).toBe(j.json);
    expect(row?.queue).toBe(queue);
  }
}

function completeOf(id: string, token: number): Outcome {
  return { kind: 'completed', id, token, attempt: 1, durationMs: 0 };
}

describe('SqliteStore review: outcomes of one cycle', () => {
  // FAILS: the `CASE id WHEN ? THEN ? …` of the batched DELETE takes the first WHEN for an id, so a stale
  // completion listed before the current one of the same job hides it: the job stays active.
  it('applies the current completion of a job when a stale one of the same job is in the same cycle', () => {
    for (const store of [new MemoryStore(), open(fresh())] as JobStore[]) {
      const [added] = store.insertMany([{ job: job('x'), limits: NO_LIMITS }], 0);
      expect(added?.status).toBe('created');
      const first = store.cycle('w', [], 1, 0, 100).claimed[0];
      // The lease lapses, the job goes back and the same worker claims it again.
      store.recoverStalled(200, 5);
      const second = store.cycle('w', [], 1, 200, 300).claimed[0];
      expect(second?.id).toBe(first?.id);
      expect(second?.token).not.toBe(first?.token);
      const { applied } = store.cycle(
        'w',
        [
          completeOf(first?.id as string, first?.token as number),
          completeOf(second?.id as string, second?.token as number),
        ],
        0,
        210,
        300,
      );
      expect(applied).toEqual([false, true]);
      const counts = store.counts(210);
      expect(counts.active).toBe(0);
      expect(counts.completed).toBe(1);
      store.close();
    }
  });

  // FAILS: both copies of one completion report applied (the old per-row DELETE said [true, false], as the
  // memory store does), so the worker emits `completed` twice for one job.
  it('applies a completion listed twice in one cycle once', () => {
    for (const store of [new MemoryStore(), open(fresh())] as JobStore[]) {
      store.insertMany([{ job: job('x'), limits: NO_LIMITS }], 0);
      const claimed = store.cycle('w', [], 1, 0, 100).claimed[0];
      const done = completeOf(claimed?.id as string, claimed?.token as number);
      const { applied } = store.cycle('w', [done, done], 0, 10, 100);
      expect(applied).toEqual([true, false]);
      expect(store.counts(10).completed).toBe(1);
      store.close();
    }
  });

  it('applies only current tokens across chunk boundaries (129 completions, every third stale)', () => {
    const file = fresh();
    const store = open(file);
    store.insertMany(
      Array.from({ length: 129 }, (_, i) => ({ job: job(i), limits: NO_LIMITS })),
      0,
    );
    const claimed = store.cycle('w', [], 129, 0, 100).claimed;
    expect(claimed).toHaveLength(129);
    const outcomes = claimed.map((c, i) => completeOf(c.id, i % 3 === 0 ? c.token + 7 : c.token));
    const { applied } = store.cycle('w', outcomes, 0, 10, 100);
    expect(applied).toEqual(claimed.map((_, i) => i % 3 !== 0));
    const left = rows(file);
    expect(left).toHaveLength(43);
    const counts = store.counts(10);
    expect(counts.active).toBe(43);
    expect(counts.completed).toBe(86);
    store.close();
  });

  it('mixes completions, retries and deaths in one cycle and keeps the counts equal to the rows', () => {
    const file = fresh();
    const store = open(file);
    store.insertMany(
      Array.from({ length: 70 }, (_, i) => ({ job: job(i, { attempts: 2 }), limits: NO_LIMITS })),
      0,
    );
    const claimed = store.cycle('w', [], 70, 0, 100).claimed;
    const err = { name: 'E', message: 'e' };
    const outcomes: Outcome[] = claimed.map((c, i) =>
      i % 3 === 0
        ? completeOf(c.id, c.token)
        : i % 3 === 1
          ? { kind: 'retry', id: c.id, token: c.token, attempt: 1, durationMs: 0, runAt: 50, error: err }
          : { kind: 'dead', id: c.id, token: c.token, attempt: 1, durationMs: 0, error: err },
    );
    const { applied, claimed: again } = store.cycle('w', outcomes, 5, 10, 100);
    expect(applied.every(Boolean)).toBe(true);
    expect(again).toHaveLength(0); // the retries are delayed to 50
    const counts = store.counts(10);
    const real = rows(file);
    expect(counts.completed).toBe(24);
    expect(counts.dead).toBe(real.filter((r) => r.state === 'dead').length);
    expect(counts.waiting + counts.delayed).toBe(real.filter((r) => r.state === 'waiting').length);
    expect(counts.delayed).toBe(23);
    expect(counts.active).toBe(0);
    store.close();
  });
});

describe('SqliteStore review: batched inserts', () => {
  for (const size of [1, 63, 64, 65, 128, 129, 200]) {
    it(`gives each of ${size} jobs of one batch the id of its row`, () => {
      const file = fresh();
      const store = open(file);
      const results = store.insertMany(
        Array.from({ length: size }, (_, i) => ({ job: job({ i }), limits: NO_LIMITS })),
        0,
      );
      const created = results.map((r) => (r.status === 'created' ? r.job : undefined));
      expect(created.every((j) => j !== undefined)).toBe(true);
      expectIdsMatchRows(file, 'q', created as never);
      expect(new Set(created.map((j) => j?.id)).size).toBe(size);
      expect(store.counts(0).waiting).toBe(size);
      store.close();
    });
  }

  it('gives the right ids after the highest rowid was deleted, with two queues and two connections', () => {
    const file = fresh();
    const a = open(file, 'a');
    const b = open(file, 'b');
    const a2 = open(file, 'a'); // another connection, as another process would have
    const created: { queue: string; id: string; json: string }[] = [];
    const add = (store: SqliteStore, queue: string, n: number, tag: string) => {
      const results = store.insertMany(
        Array.from({ length: n }, (_, i) => ({ job: job(`${tag}-${i}`), limits: NO_LIMITS })),
        0,
      );
      for (const r of results) if (r.status === 'created') created.push({ queue, ...r.job });
    };
    add(a, 'a', 70, 'a1');
    add(b, 'b', 3, 'b1');
    // Complete everything in b (the highest rowids) and add again: ids are not reused.
    const claimed = b.cycle('w', [], 10, 0, 100).claimed;
    b.cycle(
      'w',
      claimed.map((c) => completeOf(c.id, c.token)),
      0,
      1,
      100,
    );
    add(a2, 'a', 65, 'a2');
    add(b, 'b', 2, 'b2');
    add(a, 'a', 1, 'a3');
    const byId = new Map(rows(file).map((r) => [String(r.id), r]));
    for (const j of created) {
      if (j.queue === 'b' && j.json.startsWith('"b1')) {
        expect(byId.has(j.id)).toBe(false);
        continue;
      }
      expect(byId.get(j.id)?.payload, j.json).toBe(j.json);
      expect(byId.get(j.id)?.queue).toBe(j.queue);
    }
    expect(new Set(created.map((j) => j.id)).size).toBe(created.length);
    expect(a.counts(0).waiting).toBe(136);
    expect(b.counts(0).waiting).toBe(2);
    for (const s of [a, b, a2]) s.close();
  });

  it('returns the first job of a key repeated inside one batch as existing, across chunks', () => {
    const file = fresh();
    const store = open(file);
    const batch = Array.from({ length: 130 }, (_, i) => ({
      job: job(i, { idempotencyKey: i % 2 === 0 ? `k${i % 10}` : undefined }),
      limits: NO_LIMITS,
    }));
    const results = store.insertMany(batch, 0);
    const firstOfKey = new Map<string, string>();
    results.forEach((r, i) => {
      const key = batch[i]?.job.idempotencyKey;
      if (r.status !== 'created' && r.status !== 'existing') throw new Error(r.status);
      if (key === undefined) {
        expect(r.status).toBe('created');
        return;
      }
      const first = firstOfKey.get(key);
      if (first === undefined) {
        expect(r.status).toBe('created');
        firstOfKey.set(key, r.job.id);
        expect(r.job.json).toBe(JSON.stringify(i));
      } else {
        expect(r.status).toBe('existing');
        expect(r.job.id).toBe(first);
      }
    });
    expect(rows(file)).toHaveLength(65 + 5);
    expect(store.counts(0).waiting).toBe(70);
    store.close();
  });

  it('does not remember the key of a job refused as full or for no workers in the same batch', () => {
    const file = fresh();
    const store = open(file);
    const cap1: InsertLimits = { capacity: 1, workersSince: undefined };
    const cap5: InsertLimits = { capacity: 5, workersSince: undefined };
    const needWorkers: InsertLimits = { capacity: 5, workersSince: 0 };
    const results = store.insertMany(
      [
        { job: job('a'), limits: cap1 }, // created
        { job: job('b', { idempotencyKey: 'k' }), limits: cap1 }, // full
        { job: job('c', { idempotencyKey: 'k' }), limits: needWorkers }, // no workers
        { job: job('d', { idempotencyKey: 'k' }), limits: cap5 }, // created
        { job: job('e', { idempotencyKey: 'k' }), limits: cap1 }, // existing (d), not full
      ],
      0,
    );
    expect(results.map((r) => r.status)).toEqual(['created', 'full', 'no-workers', 'created', 'existing']);
    const d = results[3] as { job: { id: string; json: string } };
    expect((results[4] as { job: { id: string } }).job.id).toBe(d.job.id);
    expect(d.job.json).toBe('"d"');
    expectIdsMatchRows(file, 'q', [d.job]);
    expect(store.counts(0).waiting).toBe(2);
    store.close();
  });

  it('checks capacity job by job with a batch larger than a chunk', () => {
    const file = fresh();
    const store = open(file);
    store.insertMany([{ job: job('pre'), limits: NO_LIMITS }], 0);
    const limits: InsertLimits = { capacity: 100, workersSince: undefined };
    const results = store.insertMany(
      Array.from({ length: 130 }, (_, i) => ({ job: job(i), limits })),
      0,
    );
    expect(results.filter((r) => r.status === 'created')).toHaveLength(99);
    expect(results.slice(99).every((r) => r.status === 'full')).toBe(true);
    expect(rows(file)).toHaveLength(100);
    expect(store.counts(0).waiting).toBe(100);
    store.close();
  });

  it('claims delayed and prioritised jobs of a batch in order with their own ids', () => {
    const file = fresh();
    const store = open(file);
    const results = store.insertMany(
      [
        { job: job('late', { delayMs: 50 }), limits: NO_LIMITS },
        { job: job('low', { priority: 5 }), limits: NO_LIMITS },
        { job: job('high', { priority: 1 }), limits: NO_LIMITS },
      ],
      0,
    );
    const ids = results.map((r) => (r.status === 'created' ? r.job.id : ''));
    expect(store.counts(0).delayed).toBe(1);
    const now = store.cycle('w', [], 5, 0, 100).claimed;
    expect(now.map((c) => [c.id, c.json])).toEqual([
      [ids[2], '"high"'],
      [ids[1], '"low"'],
    ]);
    const later = store.cycle('w', [], 5, 60, 100).claimed;
    expect(later.map((c) => [c.id, c.json])).toEqual([[ids[0], '"late"']]);
    store.close();
  });
});

describe('SqliteQueue review', () => {
  it('keeps stats() equal to the rows after a burst of concurrent adds with keys and capacity', async () => {
    const file = fresh();
    const runtime = createRuntime({ seed: 9 });
    const queue = new SqliteQueue({ file, name: 'burst', runtime, capacity: 100 });
    try {
      const settled = await Promise.allSettled(
        Array.from({ length: 150 }, (_, i) =>
          queue.add({ i }, i % 4 === 0 ? { idempotencyKey: `k${i % 12}` } : {}),
        ),
      );
      const ok = settled.filter((s) => s.status === 'fulfilled') as PromiseFulfilledResult<{
        id: string;
        payload: unknown;
      }>[];
      const byId = new Map(rows(file).map((r) => [String(r.id), r]));
      for (const s of ok) expect(JSON.parse(byId.get(s.value.id)?.payload ?? 'null')).toBeDefined();
      expect((await queue.stats()).counts.waiting).toBe(byId.size);
      expect(byId.size).toBe(100);
    } finally {
      await queue.close();
    }
  });
});

describe('SqliteQueue review: a lease lost and won back by the same worker', () => {
  // FAILS: the worker settles the stale run and the current run of one job in one cycle; the batched
  // DELETE's CASE checks the stale token only, so neither applies and the job stays active under a live
  // worker (its heartbeat keeps extending the lease): it never completes and never runs again.
  it('completes a job whose stale and current runs finish together', async () => {
    for (const backend of ['memory', 'sqlite'] as const) {
      const file = fresh();
      const runtime = createRuntime({ seed: 11 });
      const queue =
        backend === 'sqlite'
          ? new SqliteQueue({ file, name: 'lost', runtime, pollInterval: 5 })
          : new (await import('./memory.js')).MemoryQueue({ name: 'lost', runtime });
      const completed: string[] = [];
      runtime.events.subscribe((e) => {
        if (e.type === 'queue.job' && e.outcome === 'completed') completed.push(e.jobId);
      });
      let deliveries = 0;
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const worker = queue.process(
        async () => {
          deliveries++;
          await gate;
        },
        { concurrency: 2 },
      );
      const until = async (cond: () => boolean) => {
        const deadline = Date.now() + 3000;
        while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
      };
      try {
        const job = await queue.add('x');
        await until(() => deliveries === 1);
        // The lease lapses (a long pause) and a sweep puts the job back; the same worker, with a free slot,
        // claims it again while the first run is still going.
        if (backend === 'sqlite') {
          const db = new Database(file);
          db.prepare('UPDATE bulwark_jobs SET lease_until = 0').run();
          db.close();
          const sweeper = open(file, 'lost');
          expect(sweeper.recoverStalled(Date.now(), 5).stalled).toHaveLength(1);
          sweeper.close();
        } else {
          // The memory store has no other process: expire its lease through the store itself.
          const store = (queue as unknown as { store: MemoryStore }).store;
          const active = (store as unknown as { active: Set<{ leaseUntil: number }> }).active;
          for (const j of active) j.leaseUntil = 0;
          expect(store.recoverStalled(Date.now(), 5).stalled).toHaveLength(1);
          expect(worker.running).toBe(1); // the worker polls or is woken by the next add
          await queue.add('wake');
        }
        await until(() => deliveries >= 2);
        expect(deliveries).toBeGreaterThanOrEqual(2);
        release();
        await until(() => completed.includes(job.id));
        const left = backend === 'sqlite' ? JSON.stringify(rows(file)) : '';
        expect(completed, `${backend} ${left}`).toContain(job.id);
        const counts = (await queue.stats()).counts;
        expect(counts.active, backend).toBe(0);
      } finally {
        release();
        await queue.close();
      }
    }
  });
});

describe('SqliteStore review: depth counters through stalls and redrives', () => {
  it('keeps counts equal to the rows through stalls, burials, redrive of some and all', () => {
    const file = fresh();
    const store = open(file);
    store.insertMany(
      Array.from({ length: 70 }, (_, i) => ({ job: job(i, { priority: i % 3 }), limits: NO_LIMITS })),
      0,
    );
    const check = (now: number) => {
      const counts = store.counts(now);
      const real = rows(file);
      expect(counts.active).toBe(real.filter((r) => r.state === 'active').length);
      expect(counts.dead).toBe(real.filter((r) => r.state === 'dead').length);
      expect(counts.waiting + counts.delayed).toBe(real.filter((r) => r.state === 'waiting').length);
    };
    store.cycle('w', [], 70, 0, 10);
    check(0);
    store.recoverStalled(20, 1); // all stall once: back to waiting
    check(20);
    store.cycle('w', [], 70, 20, 30);
    const rec = store.recoverStalled(40, 1); // second stall: dead
    expect(rec.dead).toHaveLength(70);
    check(40);
    const some = store.redrive(['1', '2', 'x', '99999', '3'], 50);
    expect(some).toEqual(['1', '2', '3']);
    check(50);
    expect(store.redrive(undefined, 60)).toHaveLength(67);
    check(60);
    const claimed = store.cycle('w', [], 100, 60, 100).claimed;
    expect(claimed).toHaveLength(70);
    store.cycle(
      'w',
      claimed.map((c) => completeOf(c.id, c.token)),
      0,
      61,
      100,
    );
    check(61);
    expect(store.counts(61).completed).toBe(70);
    expect(rows(file)).toHaveLength(0);
    store.close();
  });
});
