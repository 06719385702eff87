import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { record, settle } from '../../test/support.js';
import { CancelledError, isBulwarkError } from '../core/errors.js';
import type { BulwarkEvent } from '../core/events.js';
import { type VirtualRuntime, virtualRuntime } from '../core/runtime.js';
import { backoff } from '../policy/backoff.js';
import { pipeline } from '../policy/pipeline.js';
import { retry } from '../policy/retry.js';
import { timeout } from '../policy/timeout.js';
import {
  chunked,
  type DegradeMode,
  type DegradePiece,
  degrade,
  type Lease,
  type ReducedStrategy,
  ResourceBudget,
  ResourceExhaustedError,
  reduced,
} from './resources.js';

function budgetOn(
  rt: VirtualRuntime,
  capacity = 100,
  extra: { timelinePoints?: number } = {},
): ResourceBudget {
  return new ResourceBudget({ capacity, runtime: rt, name: 'memory', ...extra });
}

function changes(events: BulwarkEvent[]): [number, number][] {
  return events.flatMap((e) => (e.type === 'resource.changed' ? [[e.at, e.used] as [number, number]] : []));
}

/** Work that takes 10 ms of virtual time per unit it holds (100 ms per 10 MB). */
function tenMsPerUnit(rt: VirtualRuntime, log: string[] = []) {
  return async (task: { id: string }, piece: DegradePiece): Promise<string> => {
    const chunk = piece.chunk === undefined ? '' : ` ${piece.chunk.index + 1}/${piece.chunk.count}`;
    log.push(`${rt.clock.now()} ${task.id} ${piece.mode}${chunk} ${piece.units}`);
    await rt.clock.sleep(piece.units * 10);
    return `${task.id}${chunk}`;
  };
}

describe('ResourceBudget', () => {
  it('tryAcquire takes units while they fit; release gives them back once', () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    expect([budget.capacity, budget.used, budget.free, budget.available, budget.unit]).toEqual([
      100,
      0,
      100,
      100,
      'MB',
    ]);
    const a = budget.tryAcquire(60) as Lease;
    expect(a.units).toBe(60);
    expect([budget.used, budget.free, budget.available]).toEqual([60, 40, 40]);
    expect(budget.tryAcquire(50)).toBeUndefined();
    const b = budget.tryAcquire(40) as Lease;
    expect([budget.used, budget.free, budget.peak]).toEqual([100, 0, 100]);
    a.release();
    a.release();
    expect([a.units, a.released, budget.used]).toEqual([0, true, 40]);
    b.release();
    expect([budget.used, budget.peak]).toEqual([0, 100]);
  });

  it('emits resource.changed at every change of used, only when someone wants it', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    budget.tryAcquire(5)?.release(); // nobody listening: nothing built
    const events = record(rt);
    const lease = budget.tryAcquire(30) as Lease;
    await rt.clock.advance(25);
    lease.resize(10);
    await rt.clock.advance(5);
    lease.release();
    expect(events).toEqual([
      { type: 'resource.changed', source: 'memory', at: 0, used: 30, capacity: 100 },
      { type: 'resource.changed', source: 'memory', at: 25, used: 10, capacity: 100 },
      { type: 'resource.changed', source: 'memory', at: 30, used: 0, capacity: 100 },
    ]);
  });

  it('acquire waits in FIFO order: a large request at the head is not overtaken by small ones', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt, 10);
    const held = budget.tryAcquire(8) as Lease;
    const granted: string[] = [];
    const large = budget.acquire(5).then((l) => granted.push(`large ${l.units} at ${rt.clock.now()}`));
    // 2 units are free, but the large request waits ahead: nobody may overtake it.
    expect(budget.tryAcquire(1)).toBeUndefined();
    expect([budget.free, budget.available, budget.waiting]).toEqual([2, 0, 1]);
    const small = budget.acquire(1).then((l) => granted.push(`small ${l.units} at ${rt.clock.now()}`));
    expect(budget.waiting).toBe(2);
    await rt.clock.run(async () => {
      await rt.clock.sleep(50);
      held.release();
      await Promise.all([large, small]);
    });
    expect(granted).toEqual(['large 5 at 50', 'small 1 at 50']);
    expect([budget.used, budget.waiting]).toEqual([6, 0]);
  });

  it('a waiter that aborts leaves the queue at once and those behind it move up', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt, 10);
    budget.tryAcquire(8);
    const controller = new AbortController();
    const large = budget.acquire(5, controller.signal);
    let smallGranted = false;
    const small = budget.acquire(2).then((l) => {
      smallGranted = true;
      return l;
    });
    await Promise.resolve();
    expect([budget.waiting, smallGranted]).toEqual([2, false]);
    controller.abort('stop');
    const error = await large.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).cause).toBe('stop');
    expect((await small).units).toBe(2);
    expect([smallGranted, budget.waiting, budget.used]).toEqual([true, 0, 10]);
    // Aborting after the grant changes nothing.
    const late = new AbortController();
    const lease = await budgetOn(rt, 10).acquire(3, late.signal);
    late.abort();
    expect(lease.released).toBe(false);
  });

  it('an already aborted signal rejects at once without queueing', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt, 10);
    const controller = new AbortController();
    controller.abort('early');
    await expect(budget.acquire(1, controller.signal)).rejects.toMatchObject({
      code: 'CANCELLED',
      cause: 'early',
    });
    expect([budget.used, budget.waiting]).toEqual([0, 0]);
  });

  it('resize shrinks (admitting waiters) and grows only when the units are free and nobody waits', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt, 10);
    const lease = budget.tryAcquire(6) as Lease;
    expect(lease.resize(9)).toBe(true);
    expect(lease.resize(10)).toBe(true);
    expect([lease.units, budget.used]).toEqual([10, 10]);
    const waiter = budget.acquire(4);
    expect(lease.resize(10)).toBe(true); // no change
    expect(lease.resize(6)).toBe(true);
    const other = await waiter;
    expect([other.units, budget.used]).toEqual([4, 10]);
    expect(lease.resize(7)).toBe(false);
    other.release();
    void budget.acquire(5); // waits: 4 free
    expect(lease.resize(7)).toBe(false); // free, but someone waits
    lease.release();
    expect(lease.resize(1)).toBe(false);
    expect(() => lease.resize(0)).toThrow(TypeError);
  });

  it('fractional units add up despite binary floating point', () => {
    const rt = virtualRuntime(1);
    const budget = new ResourceBudget({ capacity: 0.3, unit: 'GB', runtime: rt });
    const a = budget.tryAcquire(0.1) as Lease;
    const b = budget.tryAcquire(0.2) as Lease;
    expect(b).toBeDefined();
    expect(budget.tryAcquire(0.01)).toBeUndefined();
    a.release();
    b.release();
    expect([budget.used, budget.free]).toEqual([0, 0.3]);
  });

  it('computes the time-weighted average utilisation exactly', async () => {
    const rt = virtualRuntime(1, { start: 1000 });
    const budget = budgetOn(rt);
    expect(budget.utilisation()).toEqual({ peak: 0, average: 0, samples: 0 });
    const a = budget.tryAcquire(50) as Lease;
    expect(budget.utilisation()).toEqual({ peak: 0.5, average: 0.5, samples: 1 });
    await rt.clock.advance(100);
    const b = budget.tryAcquire(30) as Lease; // 80 from 1100
    await rt.clock.advance(100);
    // (50·100 + 80·100) / (200·100)
    expect(budget.utilisation()).toEqual({ peak: 0.8, average: 0.65, samples: 2 });
    await rt.clock.advance(100);
    a.release(); // 30 from 1300
    await rt.clock.advance(100);
    b.release(); // 0 from 1400
    await rt.clock.advance(100);
    // (50·100 + 80·200 + 30·100 + 0·100) / (500·100)
    expect(budget.utilisation()).toEqual({ peak: 0.8, average: 0.48, samples: 4 });
    expect(budget.peak).toBe(80);

    const c = budget.tryAcquire(20) as Lease;
    budget.resetStats();
    expect(budget.utilisation()).toEqual({ peak: 0.2, average: 0.2, samples: 0 });
    await rt.clock.advance(50);
    c.resize(60);
    await rt.clock.advance(50);
    // (20·50 + 60·50) / (100·100)
    expect(budget.utilisation()).toEqual({ peak: 0.6, average: 0.4, samples: 1 });
    expect(budget.timeline()).toEqual([
      { at: 1500, used: 20 },
      { at: 1550, used: 60 },
    ]);
  });

  it('timeline is the step series of used; states replaced at the same instant are left out', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    expect(budget.timeline()).toEqual([{ at: 0, used: 0 }]);
    const a = budget.tryAcquire(40) as Lease;
    const b = budget.tryAcquire(40) as Lease;
    await rt.clock.advance(10);
    a.release();
    const spike = budget.tryAcquire(60) as Lease; // 40 → 100 → 40 at t=10: the 100 lasts no time
    spike.release();
    await rt.clock.advance(10);
    b.release();
    expect(budget.timeline()).toEqual([
      { at: 0, used: 80 },
      { at: 10, used: 40 },
      { at: 20, used: 0 },
    ]);
    expect(budget.peak).toBe(100); // peak counts every state
    expect(budget.timeline(2)).toEqual([
      { at: 0, used: 80 },
      { at: 20, used: 0 },
    ]);
    expect(budget.timeline(1)).toEqual([{ at: 0, used: 80 }]);
  });

  it('timeline stays within timelinePoints, merging neighbours and keeping their peaks', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt, 100, { timelinePoints: 4 });
    const lease = budget.tryAcquire(1) as Lease;
    // used = 1, 2, …, 10 at t = 0, 10, …, 90; then back to 1 at t = 100
    for (let i = 2; i <= 10; i++) {
      await rt.clock.advance(10);
      lease.resize(i);
    }
    await rt.clock.advance(10);
    lease.resize(1);
    // 11 states: [0,10)=1 … [90,100)=10, [100,…)=1. Three compactions (the odd closed point is carried
    // over alone each time): [0,40) holds 1…4, [40,60) 5…6, [60,100) 7…10, then the open point.
    expect(budget.timeline()).toEqual([
      { at: 0, used: 4 },
      { at: 40, used: 6 },
      { at: 60, used: 10 },
      { at: 100, used: 1 },
    ]);
    expect(budget.timeline(2)).toEqual([
      { at: 0, used: 6 },
      { at: 60, used: 10 },
    ]);
  });

  it('property: used never exceeds capacity; timeline and average agree with a reference model', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('acquire' as const), units: fc.integer({ min: 1, max: 12 }) }),
      fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
      fc.record({
        kind: fc.constant('resize' as const),
        pick: fc.nat(),
        units: fc.integer({ min: 1, max: 12 }),
      }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 30 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 8 }),
        fc.array(op, { maxLength: 80 }),
        fc.integer({ min: 1, max: 5 }),
        async (points, ops, maxPoints) => {
          const rt = virtualRuntime(1);
          const budget = new ResourceBudget({ capacity: 12, runtime: rt, timelinePoints: points });
          const seen: [number, number][] = [[0, 0]];
          rt.events.subscribe((e) => {
            if (e.type === 'resource.changed') seen.push([e.at, e.used]);
          });
          const leases: Lease[] = [];
          for (const o of ops) {
            if (o.kind === 'acquire') {
              void budget.acquire(o.units).then((l) => leases.push(l));
            } else if (o.kind === 'release' && leases.length > 0) {
              leases.splice(o.pick % leases.length, 1)[0]?.release();
            } else if (o.kind === 'resize' && leases.length > 0) {
              (leases[o.pick % leases.length] as Lease).resize(o.units);
            } else if (o.kind === 'advance') {
              await rt.clock.advance(o.ms);
            }
            await Promise.resolve();
            expect(budget.used).toBeLessThanOrEqual(budget.capacity);
          }
          const now = rt.clock.now();
          // Reference: the state at each instant is the last one set then.
          const states = new Map<number, number>();
          for (const [at, used] of seen) states.set(at, used);
          const steps = [...states];
          expect(Math.max(...seen.map(([, used]) => used))).toBe(budget.peak);
          let area = 0;
          steps.forEach(([at, used], i) => {
            area += used * ((steps[i + 1]?.[0] ?? now) - at);
          });
          const u = budget.utilisation();
          expect(u.samples).toBe(seen.length - 1);
          expect(u.average).toBeCloseTo(now === 0 ? budget.used / 12 : area / (now * 12), 12);
          for (const [stored, limit] of [
            [budget.timeline(), points],
            [budget.timeline(maxPoints), Math.min(points, maxPoints)],
          ] as const) {
            expect(stored.length).toBeLessThanOrEqual(limit);
            expect(stored[0]?.at).toBe(0);
            stored.forEach((p, i) => {
              const end = stored[i + 1]?.at ?? Number.POSITIVE_INFINITY;
              const inside = steps.filter(([at]) => at >= p.at && at < end).map(([, used]) => used);
              expect(states.has(p.at)).toBe(true);
              expect(p.used).toBe(Math.max(...inside));
            });
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('rejects bad options and arguments with a TypeError naming them', () => {
    const rt = virtualRuntime(1);
    for (const capacity of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '100', undefined]) {
      expect(() => new ResourceBudget({ capacity: capacity as number, runtime: rt })).toThrow(
        /ResourceBudget: option "capacity" must be a finite number > 0/,
      );
    }
    expect(() => new ResourceBudget(undefined as never)).toThrow(/capacity/);
    expect(() => new ResourceBudget({ capacity: 1, unit: '' })).toThrow(/option "unit"/);
    expect(() => new ResourceBudget({ capacity: 1, name: '' })).toThrow(/option "name"/);
    expect(() => new ResourceBudget({ capacity: 1, timelinePoints: 1 })).toThrow(/"timelinePoints"/);
    expect(() => new ResourceBudget({ capacity: 1, timelinePoints: 2.5 })).toThrow(/"timelinePoints"/);
    expect(() => new ResourceBudget({ capacity: 1, capacty: 2 } as never)).toThrow(
      /unknown option "capacty"/,
    );
    const budget = budgetOn(rt, 10);
    for (const units of [0, -1, 11, Number.NaN, Number.POSITIVE_INFINITY, '1']) {
      expect(() => budget.tryAcquire(units as number)).toThrow(
        /tryAcquire: units must be a finite number > 0 and <= 10/,
      );
      expect(() => budget.acquire(units as number)).toThrow(TypeError);
    }
    expect(() => budget.timeline(0)).toThrow(/"maxPoints" must be an integer >= 1, got 0/);
  });
});

describe('degrade', () => {
  it('the memory experiment: 8 × 10 MB and 2 × 30 MB in 100 MB all complete, the large ones in chunks', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    const events = record(rt);
    const runner = degrade({
      budget,
      demand: (task: { id: string; mb: number }) => task.mb,
      strategies: [chunked()],
    });
    const tasks = [
      ...Array.from({ length: 8 }, (_, i) => ({ id: `s${i + 1}`, mb: 10 })),
      { id: 'L1', mb: 30 },
      { id: 'L2', mb: 30 },
    ];
    const log: string[] = [];
    const work = tenMsPerUnit(rt, log);
    const done: string[] = [];
    await rt.clock.run(() =>
      Promise.all(
        tasks.map((task) =>
          runner
            .run(task, work)
            .then((result) => done.push(`${rt.clock.now()} ${task.id} ${String(result)}`)),
        ),
      ),
    );
    expect(runner.stats()).toEqual({ normal: 8, degraded: { chunked: 2, reduced: 0 }, failed: 0 });
    // 80 MB in use leaves 20: L1 runs as 2 chunks of 15 MB, then 5 are left: L2 runs as 6 chunks of 5 MB.
    expect(log.filter((l) => l.includes('L'))).toEqual([
      '0 L1 chunked 1/2 15',
      '0 L2 chunked 1/6 5',
      '50 L2 chunked 2/6 5',
      '100 L2 chunked 3/6 5',
      '150 L1 chunked 2/2 15',
      '150 L2 chunked 4/6 5',
      '200 L2 chunked 5/6 5',
      '250 L2 chunked 6/6 5',
    ]);
    expect(done).toEqual([
      ...tasks.slice(0, 8).map((t) => `100 ${t.id} ${t.id}`),
      '300 L1 L1 1/2,L1 2/2',
      '300 L2 L2 1/6,L2 2/6,L2 3/6,L2 4/6,L2 5/6,L2 6/6',
    ]);
    const u = budget.utilisation();
    expect(u.peak).toBe(1);
    expect(u.average).toBe((100 * 100 + 20 * 200) / (300 * 100));
    expect(budget.timeline()).toEqual([
      { at: 0, used: 100 },
      { at: 100, used: 20 },
      { at: 300, used: 0 },
    ]);
    expect(Math.max(...changes(events).map(([, used]) => used))).toBe(100);
    const ran = events.filter((e) => e.type === 'degrade.ran');
    expect(ran.slice(7)).toEqual([
      { type: 'degrade.ran', source: 'degrade', at: 100, mode: 'normal', demand: 10, units: 10, chunks: 1 },
      { type: 'degrade.ran', source: 'degrade', at: 300, mode: 'chunked', demand: 30, units: 15, chunks: 2 },
      { type: 'degrade.ran', source: 'degrade', at: 300, mode: 'chunked', demand: 30, units: 5, chunks: 6 },
    ]);
    const calls = events.filter((e) => e.type === 'call');
    expect(calls.map((e) => e.type === 'call' && [e.kind, e.outcome, e.durationMs])).toEqual([
      ...Array.from({ length: 8 }, () => ['degrade', 'success', 100]),
      ['degrade', 'success', 300],
      ['degrade', 'success', 300],
    ]);
  });

  it('reduced runs the task once at a fraction of its demand when that fits', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    budget.tryAcquire(60);
    const log: string[] = [];
    const runner = degrade({
      budget,
      demand: (t: { id: string; mb: number }) => t.mb,
      // Chunks of at most 40 would be 2 × 25, below minChunk: the next strategy is tried.
      strategies: [chunked({ minChunk: 30 }), reduced({ fraction: 0.5 })],
    });
    const result = await settle(rt, () => runner.run({ id: 'big', mb: 50 }, tenMsPerUnit(rt, log)));
    expect(result).toEqual({ ok: true, value: 'big', at: 250 });
    expect(log).toEqual(['0 big reduced 25']);
    expect(runner.stats()).toEqual({ normal: 0, degraded: { chunked: 0, reduced: 1 }, failed: 0 });
    expect(budget.used).toBe(60);
  });

  it('chunks respect maxChunk and maxChunks; strategies are tried in order', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    budget.tryAcquire(10);
    const log: string[] = [];
    const work = tenMsPerUnit(rt, log);
    const small = degrade({
      budget,
      demand: (_t: { id: string }) => 120,
      strategies: [chunked({ maxChunk: 25 })],
    });
    await settle(rt, () => small.run({ id: 'a' }, work));
    expect(log).toEqual([
      '0 a chunked 1/5 24',
      '240 a chunked 2/5 24',
      '480 a chunked 3/5 24',
      '720 a chunked 4/5 24',
      '960 a chunked 5/5 24',
    ]);
    log.length = 0;
    const few = degrade({
      budget,
      demand: (_t: { id: string }) => 95,
      strategies: [chunked({ maxChunks: 3, maxChunk: 30 }), reduced({ fraction: 0.8 }), chunked()],
    });
    await settle(rt, () => few.run({ id: 'b' }, work));
    expect(log).toEqual(['1200 b reduced 76']);
  });

  it('fails with ResourceExhaustedError when no form of the task fits and it may not wait', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    budget.tryAcquire(90);
    const events = record(rt);
    const runner = degrade({
      budget,
      demand: (mb: number) => mb,
      strategies: [chunked({ minChunk: 20 }), reduced({ fraction: 0.5 })],
      name: 'imports',
    });
    let called = 0;
    const result = await settle(rt, () => runner.run(40, () => called++));
    expect(result.ok).toBe(false);
    const error = (result as { error: unknown }).error as ResourceExhaustedError;
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    expect(isBulwarkError(error, 'RESOURCE_EXHAUSTED')).toBe(true);
    expect([error.name, error.demand, error.free, error.capacity, error.unit, error.retryable]).toEqual([
      'ResourceExhaustedError',
      40,
      10,
      100,
      'MB',
      true,
    ]);
    expect(error.message).toBe(
      'imports: a task needs 40 MB and no form of it fits: 10 MB of 100 MB are free',
    );
    expect(called).toBe(0);
    expect(runner.stats()).toEqual({ normal: 0, degraded: { chunked: 0, reduced: 0 }, failed: 1 });
    expect(events).toEqual([
      { type: 'call', source: 'imports', at: 0, kind: 'degrade', outcome: 'rejected', durationMs: 0, error },
    ]);
    expect(budget.used).toBe(90);
  });

  it('a task that could never fit fails at once, even with wait: true', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    const runner = degrade({ budget, demand: (mb: number) => mb, strategies: [], wait: true });
    const result = await settle(rt, () => runner.run(150, () => 'never'));
    expect(result.ok).toBe(false);
    expect((result as { error: unknown }).error).toMatchObject({
      code: 'RESOURCE_EXHAUSTED',
      demand: 150,
      free: 100,
      retryable: false,
    });
    expect(budget.waiting).toBe(0);
    // chunked can run it, though: 2 × 75 in an empty budget.
    const split = degrade({ budget, demand: (mb: number) => mb, strategies: [chunked()] });
    const log: string[] = [];
    expect(
      await settle(rt, () => split.run(150, (_mb, p) => log.push(`${p.mode} ${p.units}`))),
    ).toMatchObject({ ok: true });
    expect(log).toEqual(['chunked 75', 'chunked 75']);
  });

  it('a task does not overtake requests waiting ahead of it, even when free units would fit it', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    budget.tryAcquire(70);
    void budget.acquire(50); // waits
    const runner = degrade({ budget, demand: () => 20, strategies: [chunked()] });
    const result = await settle(rt, () => runner.run(undefined, () => 'ran'));
    expect((result as { error: ResourceExhaustedError }).error.message).toBe(
      'degrade: a task needs 20 MB and no form of it fits: 30 MB of 100 MB are free and 1 request(s) are waiting ahead of it',
    );
  });

  it('wait: true queues for the smallest usable amount, then runs with all that is available', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    const held = budget.tryAcquire(95) as Lease;
    const log: string[] = [];
    const runner = degrade({
      budget,
      demand: (t: { id: string; mb: number }) => t.mb,
      strategies: [chunked({ minChunk: 10 })],
      wait: true,
    });
    const outcome = settle(rt, async () => {
      const task = runner.run({ id: 't', mb: 50 }, tenMsPerUnit(rt, log));
      await Promise.resolve();
      // It waits for one chunk of 10 (5 chunks of 10 is the smallest form).
      expect([budget.waiting, budget.used]).toEqual([1, 95]);
      await rt.clock.sleep(100);
      held.resize(55); // 45 free: 2 chunks of 25
      return task;
    });
    expect(await outcome).toEqual({ ok: true, value: ['t 1/2', 't 2/2'], at: 600 });
    expect(log).toEqual(['100 t chunked 1/2 25', '350 t chunked 2/2 25']);
    expect(budget.used).toBe(55);

    // The whole demand runs normally when it is free by the time the task's turn comes.
    held.resize(95);
    log.length = 0;
    const whole = settle(rt, async () => {
      const task = runner.run({ id: 'w', mb: 50 }, tenMsPerUnit(rt, log));
      await rt.clock.sleep(200);
      held.release();
      return task;
    });
    expect(await whole).toEqual({ ok: true, value: 'w', at: 1300 });
    expect(log).toEqual(['800 w normal 50']);
    expect(runner.stats()).toEqual({ normal: 1, degraded: { chunked: 1, reduced: 0 }, failed: 0 });
  });

  it('aborting a waiting task rejects it at once with CancelledError and frees its place', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    budget.tryAcquire(100);
    const events = record(rt);
    const runner = degrade({ budget, demand: () => 30, strategies: [], wait: true });
    const controller = new AbortController();
    let called = false;
    const result = await settle(rt, async () => {
      const task = runner.run(
        undefined,
        () => {
          called = true;
        },
        { signal: controller.signal },
      );
      await rt.clock.sleep(40);
      expect(budget.waiting).toBe(1);
      controller.abort('user left');
      return task;
    });
    const error = (result as { error: CancelledError; at: number }).error;
    expect(error).toBeInstanceOf(CancelledError);
    expect([error.cause, result.at, called, budget.waiting]).toEqual(['user left', 40, false, 0]);
    expect(runner.stats().failed).toBe(1);
    expect(events.map((e) => e.type === 'call' && [e.outcome, e.durationMs])).toEqual([['cancelled', 40]]);
    // Already aborted: rejected before anything happens.
    await expect(runner.run(undefined, () => 1, { signal: controller.signal })).rejects.toBeInstanceOf(
      CancelledError,
    );
  });

  it('aborting a chunked task stops it before its next chunk and releases its units', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    budget.tryAcquire(80);
    const controller = new AbortController();
    const log: string[] = [];
    const runner = degrade({ budget, demand: (_t: { id: string }) => 40, strategies: [chunked()] });
    const result = await settle(rt, async () => {
      const task = runner.run({ id: 'c' }, tenMsPerUnit(rt, log), { signal: controller.signal });
      await rt.clock.sleep(50);
      controller.abort();
      return task;
    });
    expect(failureCode(result)).toBe('CANCELLED');
    expect(result.at).toBe(200); // the running chunk ignores the signal; no second chunk starts
    expect(log).toEqual(['0 c chunked 1/2 20']);
    expect(budget.used).toBe(80);
  });

  it('a failing work releases its units and counts as failed; the error passes through untouched', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    const events = record(rt);
    const runner = degrade({ budget, demand: () => 10, strategies: [] });
    const boom = new Error('boom');
    const result = await settle(rt, () =>
      runner.run(undefined, async () => {
        await rt.clock.sleep(5);
        throw boom;
      }),
    );
    expect(result).toEqual({ ok: false, error: boom, at: 5 });
    expect(budget.used).toBe(0);
    expect(runner.stats()).toEqual({ normal: 0, degraded: { chunked: 0, reduced: 0 }, failed: 1 });
    expect(events.filter((e) => e.type === 'call')).toEqual([
      {
        type: 'call',
        source: 'degrade',
        at: 5,
        kind: 'degrade',
        outcome: 'failure',
        durationMs: 5,
        error: boom,
      },
    ]);
    // A synchronous throw too.
    await expect(
      runner.run(undefined, () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(budget.used).toBe(0);
  });

  it('runs each piece through a policy while holding its units: a retry retries only the chunk', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    budget.tryAcquire(70);
    const policy = pipeline(
      retry({ maxAttempts: 3, backoff: backoff.constant(25), runtime: rt }),
      timeout({ after: 1000, runtime: rt }),
    );
    const seen: string[] = [];
    const signals = new Set<AbortSignal>();
    const runner = degrade({ budget, demand: () => 40, strategies: [chunked()] });
    const result = await settle(rt, () =>
      runner.run(
        'job',
        async (input, piece) => {
          seen.push(
            `${rt.clock.now()} ${input} ${piece.chunk?.index} attempt ${piece.attempt} used ${budget.used}`,
          );
          signals.add(piece.signal);
          await rt.clock.sleep(10);
          if (piece.chunk?.index === 1 && piece.attempt === 1) throw new Error('flaky');
          return piece.chunk?.index;
        },
        { policy, combine: (results) => results.join('+') },
      ),
    );
    expect(result).toEqual({ ok: true, value: '0+1', at: 55 });
    expect(seen).toEqual([
      '0 job 0 attempt 1 used 90',
      '10 job 1 attempt 1 used 90',
      '45 job 1 attempt 2 used 90',
    ]);
    expect(signals.size).toBe(3); // each attempt has the timeout's own signal
    expect(budget.used).toBe(70);
  });

  it('passes the caller signal to the work, and combine is not applied to a normal run', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    const runner = degrade({ budget, demand: () => 10, strategies: [chunked()] });
    const controller = new AbortController();
    const got = await runner.run('x', (_input, piece) => piece, {
      signal: controller.signal,
      combine: () => 'combined',
    });
    expect(typeof got === 'string' ? got : [got.mode, got.units, got.chunk, got.attempt, got.signal]).toEqual(
      ['normal', 10, undefined, 1, controller.signal],
    );
    expect('chunk' in (got as object)).toBe(false);
    const plain = (await runner.run('y', (_input, piece) => piece)) as DegradePiece;
    expect(plain.signal.aborted).toBe(false);
  });

  it('emits policy.created, degrade.ran and call events only when wanted', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    const all = record(rt, true);
    const runner = degrade({ budget, demand: () => 10, strategies: [], name: 'thumbnails' });
    await settle(rt, async () => {
      await rt.clock.sleep(3);
      return runner.run(undefined, () => rt.clock.sleep(7));
    });
    expect(all.filter((e) => e.type !== 'resource.changed')).toEqual([
      { type: 'policy.created', source: 'thumbnails', at: 0, kind: 'degrade' },
      { type: 'degrade.ran', source: 'thumbnails', at: 10, mode: 'normal', demand: 10, units: 10, chunks: 1 },
      { type: 'call', source: 'thumbnails', at: 10, kind: 'degrade', outcome: 'success', durationMs: 7 },
    ]);
    const quiet = virtualRuntime(2);
    const only: BulwarkEvent[] = [];
    quiet.events.subscribe((e) => only.push(e), ['degrade.ran']);
    const r = degrade({ budget: budgetOn(quiet), demand: () => 1, strategies: [] });
    await r.run(undefined, () => 1);
    expect(only.map((e) => e.type)).toEqual(['degrade.ran']);
  });

  it('property: in any task mix used never exceeds capacity and every task ends normal, degraded or failed', async () => {
    const task = fc.record({
      demand: fc.integer({ min: 1, max: 60 }),
      durationPerUnit: fc.integer({ min: 0, max: 5 }),
      arrival: fc.integer({ min: 0, max: 200 }),
      wait: fc.boolean(),
      abortAfter: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
      fails: fc.boolean(),
    });
    const strategy = fc.oneof(
      fc
        .record({ minChunk: fc.integer({ min: 0, max: 20 }), maxChunks: fc.integer({ min: 2, max: 8 }) })
        .map((o) => chunked(o)),
      fc.integer({ min: 1, max: 9 }).map((n) => reduced({ fraction: n / 10 })),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 50 }),
        fc.array(strategy, { maxLength: 3 }),
        fc.array(task, { minLength: 1, maxLength: 25 }),
        async (capacity, strategies, tasks) => {
          const rt = virtualRuntime(7);
          const budget = new ResourceBudget({ capacity, runtime: rt });
          let over = false;
          rt.events.subscribe(
            (e) => {
              if (e.type === 'resource.changed' && e.used > e.capacity * (1 + 1e-9)) over = true;
            },
            ['resource.changed'],
          );
          const modes: Record<DegradeMode, number> = { normal: 0, chunked: 0, reduced: 0 };
          rt.events.subscribe(
            (e) => {
              if (e.type === 'degrade.ran') modes[e.mode]++;
            },
            ['degrade.ran'],
          );
          const runners = [false, true].map((wait) =>
            degrade({ budget, demand: (t: (typeof tasks)[number]) => t.demand, strategies, wait }),
          );
          const outcomes = await rt.clock.run(() =>
            Promise.allSettled(
              tasks.map(async (t) => {
                await rt.clock.sleep(t.arrival);
                const controller = new AbortController();
                if (t.abortAfter !== undefined)
                  rt.clock.setTimer(t.abortAfter, () => controller.abort(), undefined);
                return (runners[t.wait ? 1 : 0] as (typeof runners)[number]).run(
                  t,
                  async (input, piece) => {
                    expect(piece.units).toBeLessThanOrEqual(capacity * (1 + 1e-9));
                    await rt.clock.sleep(input.durationPerUnit * piece.units);
                    if (input.fails && piece.chunk?.index !== 0) throw new Error('work failed');
                    return piece.mode;
                  },
                  { signal: controller.signal },
                );
              }),
            ),
          );
          expect(over).toBe(false);
          expect(budget.peak).toBeLessThanOrEqual(capacity * (1 + 1e-9));
          expect(budget.used).toBe(0);
          expect(budget.waiting).toBe(0);
          for (const o of outcomes) {
            if (o.status === 'rejected') {
              const ok =
                isBulwarkError(o.reason, 'RESOURCE_EXHAUSTED') ||
                isBulwarkError(o.reason, 'CANCELLED') ||
                (o.reason instanceof Error && o.reason.message === 'work failed');
              expect(ok).toBe(true);
            }
          }
          const total = runners.map((r) => r.stats());
          const sum = (f: (s: (typeof total)[number]) => number) => total.reduce((n, s) => n + f(s), 0);
          expect(sum((s) => s.normal)).toBe(modes.normal);
          expect(sum((s) => s.degraded.chunked)).toBe(modes.chunked);
          expect(sum((s) => s.degraded.reduced)).toBe(modes.reduced);
          expect(sum((s) => s.failed)).toBe(outcomes.filter((o) => o.status === 'rejected').length);
          expect(sum((s) => s.normal + s.degraded.chunked + s.degraded.reduced + s.failed)).toBe(
            tasks.length,
          );
        },
      ),
      { numRuns: 150 },
    );
  });

  it('rejects bad options with a TypeError naming them', async () => {
    const rt = virtualRuntime(1);
    const budget = budgetOn(rt);
    const ok = { budget, demand: () => 1, strategies: [] };
    expect(() => degrade({ ...ok, budget: {} as ResourceBudget })).toThrow(
      /option "budget" must be a ResourceBudget/,
    );
    expect(() => degrade({ ...ok, demand: 5 as never })).toThrow(/option "demand" must be a function/);
    expect(() => degrade({ budget, demand: () => 1 } as never)).toThrow(
      /option "strategies" must be an array/,
    );
    expect(() => degrade({ ...ok, wait: 'yes' as never })).toThrow(/option "wait" must be a boolean/);
    expect(() => degrade({ ...ok, strategies: [{ kind: 'shrink' } as never] })).toThrow(
      /option "strategies\[0\]" must be a strategy made by chunked\(\) or reduced\(\)/,
    );
    expect(() =>
      degrade({ ...ok, strategies: [{ kind: 'reduced', fraction: 2 } as ReducedStrategy] }),
    ).toThrow(/reduced: option "fraction" must be a number in \(0, 1\), got 2/);
    expect(() => degrade({ ...ok, retries: 1 } as never)).toThrow(/unknown option "retries"/);
    expect(() => chunked({ maxChunk: 0 })).toThrow(/chunked: option "maxChunk" must be a number > 0/);
    expect(() => chunked({ minChunk: -1 })).toThrow(/option "minChunk" must be a number >= 0/);
    expect(() => chunked({ minChunk: 10, maxChunk: 5 })).toThrow(
      /option "minChunk" must be a number <= maxChunk \(5\), got 10/,
    );
    expect(() => chunked({ maxChunks: 1 })).toThrow(/option "maxChunks" must be an integer from 2/);
    expect(() => chunked({ name: 'x' } as never)).toThrow(/chunked: unknown option "name"/);
    for (const fraction of [0, 1, -0.5, Number.NaN, undefined]) {
      expect(() => reduced({ fraction: fraction as number })).toThrow(/reduced: option "fraction"/);
    }
    expect(Object.isFrozen(chunked())).toBe(true);
    expect(chunked()).toEqual({
      kind: 'chunked',
      maxChunk: Number.POSITIVE_INFINITY,
      minChunk: 0,
      maxChunks: 100,
    });

    const runner = degrade({ budget, demand: (n: number) => n, strategies: [] });
    for (const demand of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(runner.run(demand, () => 1)).rejects.toThrow(
        new TypeError(`degrade.run: demand(input) must return a finite number > 0, got ${demand}`),
      );
    }
    await expect(runner.run(1, 'work' as never)).rejects.toThrow(/option "work" must be a function/);
    await expect(runner.run(1, () => 1, { policy: {} as never })).rejects.toThrow(
      /option "policy" must be a Bulwark policy/,
    );
    await expect(runner.run(1, () => 1, { signal: 'x' as never })).rejects.toThrow(
      /option "signal" must be an AbortSignal/,
    );
    await expect(runner.run(1, () => 1, { runtime: rt } as never)).rejects.toThrow(
      /unknown option "runtime"/,
    );
    // Validation errors are not task outcomes.
    expect(runner.stats()).toEqual({ normal: 0, degraded: { chunked: 0, reduced: 0 }, failed: 0 });
  });
});

function failureCode(result: { ok: boolean; error?: unknown }): string | undefined {
  return isBulwarkError(result.error) ? result.error.code : undefined;
}
