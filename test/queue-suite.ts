/**
 * The queue contract as tests: one suite, run against every backend (memory on a virtual clock, SQLite
 * and BullMQ in real time). A backend's test file calls {@link queueSuite} with a factory that builds a
 * fresh queue (a unique name, file or key prefix per call) on the runtime the suite passes.
 */
import { expect, it } from 'vitest';
import { isBulwarkError } from '../src/core/errors.js';
import type { BulwarkEvent } from '../src/core/events.js';
import { createRuntime, type Runtime, virtualRuntime } from '../src/core/runtime.js';
import { backoff } from '../src/policy/backoff.js';
import type { Job, Queue, QueueOptions } from '../src/queue/index.js';

export interface SuiteBackend {
  /** Builds a queue; the suite closes it. */
  create(options: QueueOptions & { runtime: Runtime }): Queue | Promise<Queue>;
  /** `virtual`: run every test on a virtual clock (memory); `system`: real time. */
  clock: 'virtual' | 'system';
  /** A lease short enough for the stall tests (ms). */
  leaseMs: number;
}

interface Harness {
  runtime: Runtime;
  events: BulwarkEvent[];
  /** Polls `condition` on the runtime's clock until it holds or `withinMs` passes (then throws). */
  until(condition: () => boolean | Promise<boolean>, withinMs?: number, what?: string): Promise<void>;
  sleep(ms: number): Promise<void>;
}

/** Runs the contract tests against one backend. */
export function queueSuite(backend: SuiteBackend): void {
  const test = (title: string, body: (h: Harness) => Promise<void>, timeout = 20_000) =>
    it(
      title,
      async () => {
        const runtime =
          backend.clock === 'virtual' ? virtualRuntime(`suite:${title}`) : createRuntime({ seed: title });
        const events: BulwarkEvent[] = [];
        runtime.events.subscribe((e) => events.push(e));
        const h: Harness = {
          runtime,
          events,
          sleep: (ms) => runtime.clock.sleep(ms),
          async until(condition, withinMs = 5000, what = 'condition') {
            const deadline = runtime.clock.now() + withinMs;
            while (!(await condition())) {
              if (runtime.clock.now() > deadline)
                throw new Error(`timed out after ${withinMs}ms waiting for ${what}`);
              await runtime.clock.sleep(5);
            }
          },
        };
        if (backend.clock === 'virtual') {
          await (runtime as ReturnType<typeof virtualRuntime>).clock.run(() => body(h));
        } else await body(h);
      },
      timeout,
    );

  const outcomes = (h: Harness, outcome: string) =>
    h.events.filter((e) => e.type === 'queue.job' && e.outcome === outcome);

  test('delivers a job once, with its payload, and counts it completed', async (h) => {
    const queue = await backend.create({ runtime: h.runtime });
    try {
      const seen: Job[] = [];
      queue.process(async (job) => {
        seen.push(job);
      });
      const added = await queue.add({ to: 'ada', n: [1, 2.5, null], nested: { ok: true } });
      expect(typeof added.id).toBe('string');
      expect(added.attempt).toBe(1);
      await h.until(async () => (await queue.stats()).counts.completed === 1, 5000, 'completion');
      expect(seen).toHaveLength(1);
      expect(seen[0]?.id).toBe(added.id);
      expect(seen[0]?.payload).toEqual({ to: 'ada', n: [1, 2.5, null], nested: { ok: true } });
      const stats = await queue.stats();
      expect(stats.counts).toMatchObject({ waiting: 0, delayed: 0, active: 0, dead: 0, completed: 1 });
      expect(outcomes(h, 'added').map((e) => (e as { jobId: string }).jobId)).toEqual([added.id]);
      expect(outcomes(h, 'completed')).toHaveLength(1);
    } finally {
      await queue.close();
    }
  });

  test('runs lower priority numbers first, and equal priorities in order', async (h) => {
    const queue = await backend.create({ runtime: h.runtime });
    try {
      await queue.add('c', { priority: 5 });
      await queue.add('a', { priority: 1 });
      await queue.add('b', { priority: 1 });
      await queue.add('d', { priority: 9 });
      await queue.add('first'); // priority 0, the default: before every other
      const order: unknown[] = [];
      queue.process((job) => {
        order.push(job.payload);
      });
      await h.until(() => order.length === 5, 5000, 'five jobs');
      expect(order).toEqual(['first', 'a', 'b', 'c', 'd']);
    } finally {
      await queue.close();
    }
  });

  test('holds a delayed job until its delay has passed', async (h) => {
    const queue = await backend.create({ runtime: h.runtime });
    try {
      let ranAt = -1;
      const addedAt = h.runtime.clock.now();
      queue.process(() => {
        ranAt = h.runtime.clock.now();
      });
      await queue.add('later', { delay: 300 });
      expect((await queue.stats()).counts.delayed).toBe(1);
      await h.until(() => ranAt >= 0, 5000, 'the delayed job');
      expect(ranAt - addedAt).toBeGreaterThanOrEqual(295);
    } finally {
      await queue.close();
    }
  });

  test('retries a failed attempt after its backoff and reports each failure', async (h) => {
    const queue = await backend.create({ runtime: h.runtime });
    try {
      const attempts: { attempt: number; at: number }[] = [];
      queue.process((job) => {
        attempts.push({ attempt: job.attempt, at: h.runtime.clock.now() });
        if (job.attempt < 3) throw new Error(`boom ${job.attempt}`);
      });
      await queue.add('flaky', { attempts: 3, backoff: backoff.constant(100) });
      await h.until(async () => (await queue.stats()).counts.completed === 1, 5000, 'completion');
      expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
      expect((attempts[1]?.at ?? 0) - (attempts[0]?.at ?? 0)).toBeGreaterThanOrEqual(95);
      const failed = outcomes(h, 'failed');
      expect(failed).toHaveLength(2);
      expect(((failed[0] as { error?: unknown }).error as Error).message).toBe('boom 1');
      expect((await queue.stats()).counts.dead).toBe(0);
    } finally {
      await queue.close();
    }
  });

  test('dead-letters a job that exhausts its attempts, with its last error, and redrives it', async (h) => {
    const queue = await backend.create({ runtime: h.runtime });
    try {
      let healed = false;
      let completed = 0;
      queue.process((job) => {
        if (!healed) throw new Error(`still broken (attempt ${job.attempt})`);
        completed++;
      });
      const job = await queue.add({ id: 7 }, { attempts: 2, backoff: backoff.constant(10) });
      await h.until(async () => (await queue.stats()).counts.dead === 1, 5000, 'the dead letter');
      const dead = await queue.deadLetters();
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ id: job.id, payload: { id: 7 }, reason: 'attempts', attempts: 2 });
      expect(dead[0]?.error.message).toBe('still broken (attempt 2)');
      expect(outcomes(h, 'dead')).toHaveLength(1);
      healed = true;
      expect(await queue.redrive()).toBe(1);
      await h.until(() => completed === 1, 5000, 'the redriven job');
      await h.until(async () => (await queue.stats()).counts.dead === 0, 5000, 'an empty dead-letter set');
      expect(outcomes(h, 'redriven')).toHaveLength(1);
      expect(await queue.redrive()).toBe(0);
    } finally {
      await queue.close();
    }
  });

  test('refuses add beyond capacity atomically, even when adds race', async (h) => {
    const queue = await backend.create({ runtime: h.runtime, capacity: 5 });
    try {
      const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => queue.add({ i })));
      const accepted = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r) => r.status === 'rejected');
      expect(accepted).toHaveLength(5);
      for (const r of refused)
        expect(isBulwarkError((r as PromiseRejectedResult).reason, 'QUEUE_FULL')).toBe(true);
      expect((await queue.stats()).counts.waiting).toBe(5);
      expect(h.events.filter((e) => e.type === 'queue.rejected' && e.reason === 'QUEUE_FULL')).toHaveLength(
        7,
      );
      // Finishing work frees room.
      const worker = queue.process(() => undefined, { concurrency: 5 });
      await h.until(async () => (await queue.stats()).counts.completed === 5, 5000, 'the five jobs');
      await queue.add({ i: 'after' });
      await worker.close();
    } finally {
      await queue.close();
    }
  });

  test('with requireWorkers, refuses add while no worker is alive', async (h) => {
    const queue = await backend.create({ runtime: h.runtime, requireWorkers: true, workerTtl: 400 });
    try {
      await expect(queue.add('x')).rejects.toSatisfy((e) => isBulwarkError(e, 'NO_LIVE_WORKERS'));
      // Per-add override.
      await queue.add('queued anyway', { requireWorkers: false });
      const worker = queue.process(() => undefined);
      await h.until(async () => (await queue.stats()).workers === 1, 5000, 'the worker to register');
      await queue.add('y');
      await worker.close();
      await expect(queue.add('z')).rejects.toSatisfy((e) => isBulwarkError(e, 'NO_LIVE_WORKERS'));
      // A crashed worker stays "alive" until its heartbeat is older than the TTL.
      const crashed = queue.process(() => undefined);
      await h.until(async () => (await queue.stats()).workers === 1, 5000, 'the second worker');
      await crashed.close({ force: true });
      await h.until(
        async () => {
          try {
            await queue.add('probe');
            return false;
          } catch (e) {
            return isBulwarkError(e, 'NO_LIVE_WORKERS');
          }
        },
        5000,
        'the crashed worker to expire',
      );
      expect(h.events.some((e) => e.type === 'queue.worker' && e.state === 'started')).toBe(true);
    } finally {
      await queue.close();
    }
  });

  test('an idempotency key returns the job already in the queue', async (h) => {
    const queue = await backend.create({ runtime: h.runtime });
    try {
      const first = await queue.add({ order: 1 }, { idempotencyKey: 'order-1' });
      const second = await queue.add({ order: 1 }, { idempotencyKey: 'order-1' });
      expect(second.id).toBe(first.id);
      expect(second.idempotencyKey).toBe('order-1');
      expect((await queue.stats()).counts.waiting).toBe(1);
      let runs = 0;
      queue.process(() => {
        runs++;
      });
      await h.until(async () => (await queue.stats()).counts.completed === 1, 5000, 'completion');
      expect(runs).toBe(1);
    } finally {
      await queue.close();
    }
  });

  test('adds made at once (one batch) keep their order, ids and keys', async (h) => {
    const queue = await backend.create({ runtime: h.runtime });
    try {
      // 150 adds in one tick: more than one multi-row statement, with repeated keys among them.
      const adds = Array.from({ length: 150 }, (_, i) =>
        queue.add({ i }, i % 50 === 7 ? { idempotencyKey: 'same' } : { idempotencyKey: `k${i}` }),
      );
      const jobs = await Promise.all(adds);
      const firstSame = jobs[7];
      for (const [i, job] of jobs.entries()) {
        if (i % 50 === 7) expect(job.id).toBe(firstSame?.id);
        else expect(job.payload).toEqual({ i });
      }
      expect(new Set(jobs.map((j) => j.id)).size).toBe(148);
      expect((await queue.stats()).counts.waiting).toBe(148);
      const seen: number[] = [];
      queue.process((job) => {
        seen.push((job.payload as { i: number }).i);
      });
      await h.until(async () => (await queue.stats()).counts.completed === 148, 10_000, 'every job');
      expect(seen.length).toBe(148);
      expect(seen.filter((i) => i % 50 === 7)).toEqual([7]);
      // Same priority and time: first in, first out.
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
    } finally {
      await queue.close();
    }
  });

  test('a lease that lapses (crashed worker) puts the job back for another worker', async (h) => {
    const queue = await backend.create({ runtime: h.runtime, lease: backend.leaseMs, maxStalled: 1 });
    try {
      let started = 0;
      const crashed = queue.process(() => {
        started++;
        return new Promise(() => undefined); // hangs: the worker will "crash" with it in hand
      });
      const job = await queue.add('survive');
      await h.until(() => started === 1, 5000, 'the first delivery');
      await crashed.close({ force: true });
      const finishers: Job[] = [];
      queue.process((j) => {
        finishers.push(j);
      });
      await h.until(() => finishers.length === 1, 10 * backend.leaseMs + 5000, 'redelivery');
      expect(finishers[0]?.id).toBe(job.id);
      expect(outcomes(h, 'stalled').length).toBeGreaterThanOrEqual(1);
      await h.until(async () => (await queue.stats()).counts.completed === 1, 5000, 'completion');
    } finally {
      await queue.close();
    }
  });

  test('a job that stalls more than maxStalled times is dead-lettered', async (h) => {
    const queue = await backend.create({ runtime: h.runtime, lease: backend.leaseMs, maxStalled: 0 });
    try {
      let started = 0;
      const crashed = queue.process(() => {
        started++;
        return new Promise(() => undefined);
      });
      const job = await queue.add('doomed');
      await h.until(() => started === 1, 5000, 'the delivery');
      await crashed.close({ force: true });
      const watcher = queue.process(() => undefined);
      await h.until(async () => (await queue.stats()).counts.dead === 1, 10 * backend.leaseMs + 5000, 'dead');
      const [dead] = await queue.deadLetters();
      expect(dead?.id).toBe(job.id);
      expect(dead?.reason).toBe('stalled');
      await watcher.close();
    } finally {
      await queue.close();
    }
  });

  test('close() lets running jobs finish and records them', async (h) => {
    const queue = await backend.create({ runtime: h.runtime });
    let finished = 0;
    let started = 0;
    queue.process(
      async () => {
        started++;
        await h.sleep(150);
        finished++;
      },
      { concurrency: 3 },
    );
    for (let i = 0; i < 3; i++) await queue.add({ i });
    await h.until(() => started === 3, 5000, 'three running jobs');
    await queue.close();
    expect(finished).toBe(3);
    expect(outcomes(h, 'completed')).toHaveLength(3);
    await expect(queue.add({ late: true })).rejects.toSatisfy((e) => isBulwarkError(e, 'QUEUE_UNAVAILABLE'));
  });

  test('runs at most `concurrency` jobs at once, and uses them all', async (h) => {
    const queue = await backend.create({ runtime: h.runtime });
    try {
      let running = 0;
      let peak = 0;
      let done = 0;
      queue.process(
        async () => {
          running++;
          peak = Math.max(peak, running);
          await h.sleep(50);
          running--;
          done++;
        },
        { concurrency: 4 },
      );
      for (let i = 0; i < 12; i++) await queue.add({ i });
      await h.until(() => done === 12, 10_000, 'twelve jobs');
      expect(peak).toBe(4);
    } finally {
      await queue.close();
    }
  });

  test('refuses a payload that is not plain JSON, storing nothing', async (h) => {
    const queue = await backend.create({ runtime: h.runtime });
    try {
      const bad: unknown[] = [() => 1, undefined, { a: Number.NaN }, { at: new Date(0) }, { n: 1n }];
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      bad.push(cyclic);
      for (const payload of bad) {
        await expect(queue.add(payload as never)).rejects.toSatisfy((e) =>
          isBulwarkError(e, 'QUEUE_PAYLOAD_INVALID'),
        );
      }
      await expect(queue.add('ok', { attempts: 0 })).rejects.toBeInstanceOf(TypeError);
      await expect(queue.add('ok', { priority: -1 })).rejects.toBeInstanceOf(TypeError);
      const stats = await queue.stats();
      expect(stats.counts.waiting + stats.counts.delayed).toBe(0);
    } finally {
      await queue.close();
    }
  });

  it('rejects bad options at construction with a TypeError naming the option', async () => {
    const runtime = backend.clock === 'virtual' ? virtualRuntime(1) : createRuntime({ seed: 1 });
    for (const bad of [{ capacity: 0 }, { lease: -5 }, { maxStalled: 1.5 }, { name: 'has space' }]) {
      let error: unknown;
      try {
        const queue = await backend.create({ runtime, ...(bad as QueueOptions) });
        await queue.close();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TypeError);
      expect(String(error)).toContain(Object.keys(bad)[0]);
    }
  });
}
