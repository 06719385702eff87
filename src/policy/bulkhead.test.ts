import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deferred } from '../../test/support.js';
import { BulkheadRejectedError, CancelledError, isBulwarkError } from '../core/errors.js';
import type { BulwarkEvent } from '../core/events.js';
import { virtualRuntime } from '../core/runtime.js';
import { type Bulkhead, bulkhead } from './bulkhead.js';
import { Call, Scope } from './context.js';
import { type Interceptor, READ_EACH_TIME } from './policy.js';

/** Starts a call that runs until `finish` is called, and records when it starts. */
function hold(bh: { execute: Bulkhead['execute'] }, started: string[], label: string, signal?: AbortSignal) {
  const gate = deferred<string>();
  const result = bh.execute(() => {
    started.push(label);
    return gate.promise;
  }, signal);
  result.catch(() => undefined);
  return { result, finish: () => gate.resolve(label), fail: (e: unknown) => gate.reject(e) };
}

function record(rt: ReturnType<typeof virtualRuntime>): BulwarkEvent[] {
  const events: BulwarkEvent[] = [];
  rt.events.subscribe((e) => events.push(e));
  return events;
}

describe('bulkhead', () => {
  it('has documented defaults: limit 10, no queue', async () => {
    const rt = virtualRuntime(1);
    const bh = bulkhead({ runtime: rt });
    expect(bh.kind).toBe('bulkhead');
    expect(bh.name).toBe('bulkhead');
    expect(bh.limit).toBe(10);
    const started: string[] = [];
    const calls = Array.from({ length: 10 }, (_, i) => hold(bh, started, `c${i}`));
    await expect(bh.execute(() => 'x')).rejects.toBeInstanceOf(BulkheadRejectedError);
    expect(bh.active).toBe(10);
    expect(bh.queued).toBe(0);
    for (const c of calls) c.finish();
    await rt.clock.advance(0);
    expect(bh.active).toBe(0);
  });

  it('never runs more than `limit` calls at once and admits queued calls in FIFO order', async () => {
    const rt = virtualRuntime(1);
    const bh = bulkhead({ limit: 2, queue: 5, runtime: rt });
    const started: string[] = [];
    const calls = ['a', 'b', 'c', 'd', 'e'].map((l) => hold(bh, started, l));
    await rt.clock.advance(0);
    expect(started).toEqual(['a', 'b']);
    expect([bh.active, bh.queued, bh.available]).toEqual([2, 3, 0]);

    calls[1]?.finish();
    await rt.clock.advance(0);
    expect(started).toEqual(['a', 'b', 'c']);
    expect([bh.active, bh.queued, bh.available]).toEqual([2, 2, 0]);

    calls[0]?.finish();
    calls[2]?.finish();
    await rt.clock.advance(0);
    expect(started).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect([bh.active, bh.queued]).toEqual([2, 0]);
    calls[3]?.finish();
    calls[4]?.finish();
    expect(await Promise.all(calls.map((c) => c.result))).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect([bh.active, bh.queued, bh.available]).toEqual([0, 0, 2]);
  });

  it('releases the permit when the function fails, and passes its error through', async () => {
    const rt = virtualRuntime(1);
    const bh = bulkhead({ limit: 1, queue: 1, runtime: rt });
    const started: string[] = [];
    const a = hold(bh, started, 'a');
    const b = hold(bh, started, 'b');
    const boom = new Error('boom');
    a.fail(boom);
    await expect(a.result).rejects.toBe(boom);
    await rt.clock.advance(0);
    expect(started).toEqual(['a', 'b']);
    b.finish();
    await b.result;
    expect(bh.active).toBe(0);
  });

  it('rejects with BulkheadRejectedError when the queue is full', async () => {
    const rt = virtualRuntime(1);
    const bh = bulkhead({ limit: 1, queue: 1, runtime: rt });
    const started: string[] = [];
    const a = hold(bh, started, 'a');
    const b = hold(bh, started, 'b');
    let ran = false;
    const error = await bh
      .execute(() => {
        ran = true;
      })
      .catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(error).toBeInstanceOf(BulkheadRejectedError);
    expect(isBulwarkError(error, 'BULKHEAD_FULL')).toBe(true);
    const rejected = error as BulkheadRejectedError;
    expect(rejected.executionSlots).toBe(1);
    expect(rejected.queueSlots).toBe(1);
    expect(rejected.retryable).toBe(false);
    expect(rejected.message).toBe('bulkhead is full (1 executing, 1 queued)');
    a.finish();
    b.finish();
    await Promise.all([a.result, b.result]);
  });

  it('an aborted queued call rejects with CancelledError and frees its queue slot at once', async () => {
    const rt = virtualRuntime(1);
    const bh = bulkhead({ limit: 1, queue: 1, runtime: rt });
    const started: string[] = [];
    const a = hold(bh, started, 'a');
    const controller = new AbortController();
    const b = hold(bh, started, 'b', controller.signal);
    expect(bh.queued).toBe(1);
    const reason = new Error('user left');
    controller.abort(reason);
    expect(bh.queued).toBe(0); // synchronously, before any promise settles
    const error = await b.result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).cause).toBe(reason);

    const c = hold(bh, started, 'c'); // the freed slot is usable
    expect(bh.queued).toBe(1);
    a.finish();
    await rt.clock.advance(0);
    expect(started).toEqual(['a', 'c']);
    c.finish();
    await c.result;
    expect([bh.active, bh.queued]).toEqual([0, 0]);
  });

  it('aborting a call after it was admitted leaves its permit taken until it ends', async () => {
    const rt = virtualRuntime(1);
    const bh = bulkhead({ limit: 1, queue: 2, runtime: rt });
    const started: string[] = [];
    const controller = new AbortController();
    const a = hold(bh, [], 'a');
    const b = hold(bh, started, 'b', controller.signal);
    const c = hold(bh, started, 'c');
    a.finish();
    await rt.clock.advance(0);
    expect(started).toEqual(['b']);
    controller.abort();
    expect([bh.active, bh.queued]).toEqual([1, 1]);
    b.finish();
    expect(await b.result).toBe('b');
    await rt.clock.advance(0);
    expect(started).toEqual(['b', 'c']);
    c.finish();
    await c.result;
    expect([bh.active, bh.queued]).toEqual([0, 0]);
  });

  it('a call whose scope is already aborted when it would queue is cancelled, not queued', async () => {
    const rt = virtualRuntime(1);
    const bh = bulkhead({ limit: 1, queue: 1, runtime: rt });
    const a = hold(bh, [], 'a');
    const scope = new Scope(undefined, undefined);
    const reason = new CancelledError('gone');
    scope.abort(reason);
    const interceptor = (bh.stage as { interceptor: Interceptor }).interceptor;
    expect(() => interceptor.enter(new Call(scope, 1), READ_EACH_TIME)).toThrow(reason);
    expect(bh.queued).toBe(0);
    a.finish();
    await a.result;
  });

  describe('weighted permits', () => {
    it('a weighted call takes `weight` permits of the shared pool', async () => {
      const rt = virtualRuntime(1);
      const bh = bulkhead({ limit: 4, queue: 4, runtime: rt });
      const heavy = bh.weighted(3);
      expect(heavy.kind).toBe('bulkhead');
      expect(heavy.name).toBe('bulkhead');
      const started: string[] = [];
      const h = hold(heavy, started, 'h');
      const a = hold(bh, started, 'a');
      const b = hold(bh, started, 'b');
      await rt.clock.advance(0);
      expect(started).toEqual(['h', 'a']);
      expect([bh.active, bh.queued, bh.available]).toEqual([4, 1, 0]);
      h.finish();
      await rt.clock.advance(0);
      expect(started).toEqual(['h', 'a', 'b']);
      expect(bh.active).toBe(2);
      a.finish();
      b.finish();
      await Promise.all([h.result, a.result, b.result]);
      expect(bh.active).toBe(0);
    });

    it('a heavy call at the head is not overtaken by lighter ones (no starvation)', async () => {
      const rt = virtualRuntime(1);
      const bh = bulkhead({ limit: 3, queue: 5, runtime: rt });
      const started: string[] = [];
      const a = hold(bh, started, 'a');
      const h = hold(bh.weighted(3), started, 'h');
      const b = hold(bh, started, 'b');
      await rt.clock.advance(0);
      // Two permits are free and b needs one, but h is ahead of it.
      expect(started).toEqual(['a']);
      expect([bh.active, bh.available, bh.queued]).toEqual([1, 2, 2]);
      a.finish();
      await rt.clock.advance(0);
      expect(started).toEqual(['a', 'h']);
      expect(bh.active).toBe(3);
      h.finish();
      await rt.clock.advance(0);
      expect(started).toEqual(['a', 'h', 'b']);
      b.finish();
      await Promise.all([a.result, h.result, b.result]);
    });

    it('aborting a heavy call at the head admits the lighter calls it was holding back', async () => {
      const rt = virtualRuntime(1);
      const bh = bulkhead({ limit: 3, queue: 5, runtime: rt });
      const started: string[] = [];
      const a = hold(bh, started, 'a');
      const controller = new AbortController();
      const h = hold(bh.weighted(3), started, 'h', controller.signal);
      const b = hold(bh, started, 'b');
      const c = hold(bh, started, 'c');
      controller.abort();
      expect([bh.active, bh.queued]).toEqual([3, 0]);
      await expect(h.result).rejects.toBeInstanceOf(CancelledError);
      await rt.clock.advance(0);
      expect(started).toEqual(['a', 'b', 'c']);
      for (const x of [a, b, c]) x.finish();
      await Promise.all([a.result, b.result, c.result]);
    });

    it('weighted(1) is the bulkhead itself and views are cached', () => {
      const bh = bulkhead({ limit: 4, runtime: virtualRuntime(1) });
      expect(bh.weighted(1)).toBe(bh);
      expect(bh.weighted(2)).toBe(bh.weighted(2));
      expect(bh.weighted(4)).not.toBe(bh.weighted(2));
    });

    it('rejects a weight that is not an integer from 1 to limit', () => {
      const bh = bulkhead({ limit: 3, runtime: virtualRuntime(1) });
      expect(() => bh.weighted(0)).toThrow(
        new TypeError(
          "bulkhead.weighted: weight must be an integer from 1 to 3 (the bulkhead's limit), got 0",
        ),
      );
      expect(() => bh.weighted(4)).toThrow(/weight must be an integer from 1 to 3 .*got 4/);
      expect(() => bh.weighted(1.5)).toThrow(/got 1.5/);
      expect(() => bh.weighted(Number.NaN)).toThrow(/got NaN/);
      expect(() => bh.weighted('2' as unknown as number)).toThrow(/got string/);
      const unlimited = bulkhead({ limit: Number.POSITIVE_INFINITY, runtime: virtualRuntime(1) });
      expect(() => unlimited.weighted(0)).toThrow(/weight must be an integer >= 1 /);
      expect(unlimited.weighted(1000).kind).toBe('bulkhead');
    });
  });

  describe('acquire', () => {
    it('returns an idempotent release function', async () => {
      const rt = virtualRuntime(1);
      const bh = bulkhead({ limit: 3, runtime: rt });
      const release2 = await bh.acquire(2);
      const release1 = await bh.acquire();
      expect(bh.active).toBe(3);
      release2();
      expect(bh.active).toBe(1);
      release2();
      release2();
      expect(bh.active).toBe(1);
      release1();
      release1();
      expect(bh.active).toBe(0);
    });

    it('waits in the same FIFO queue as execute', async () => {
      const rt = virtualRuntime(1);
      const bh = bulkhead({ limit: 2, queue: 2, runtime: rt });
      const order: string[] = [];
      const first = await bh.acquire(2);
      const a = hold(bh, order, 'a');
      const b = bh.acquire(2).then((release) => {
        order.push('b');
        return release;
      });
      expect(bh.queued).toBe(2);
      await expect(bh.acquire()).rejects.toBeInstanceOf(BulkheadRejectedError);
      first();
      await rt.clock.advance(0);
      expect(order).toEqual(['a']);
      a.finish();
      await a.result;
      await rt.clock.advance(0);
      expect(order).toEqual(['a', 'b']);
      expect(bh.active).toBe(2);
      (await b)();
      expect(bh.active).toBe(0);
    });

    it('rejects with CancelledError when its signal aborts while waiting, or was aborted already', async () => {
      const rt = virtualRuntime(1);
      const bh = bulkhead({ limit: 1, queue: 1, runtime: rt });
      const release = await bh.acquire();
      const controller = new AbortController();
      const waiting = bh.acquire(1, controller.signal);
      expect(bh.queued).toBe(1);
      controller.abort('stop');
      expect(bh.queued).toBe(0);
      const error = await waiting.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CancelledError);
      expect((error as CancelledError).cause).toBe('stop');
      release();
      const aborted = AbortSignal.abort('early');
      const early = await bh.acquire(1, aborted).catch((e: unknown) => e);
      expect(early).toBeInstanceOf(CancelledError);
      expect(bh.active).toBe(0);
    });

    it('throws a TypeError for a bad weight', () => {
      const bh = bulkhead({ limit: 2, runtime: virtualRuntime(1) });
      expect(() => bh.acquire(3)).toThrow(/bulkhead.acquire: weight must be an integer from 1 to 2/);
      expect(() => bh.acquire(0)).toThrow(TypeError);
    });
  });

  describe('events', () => {
    it('emits policy.created, bulkhead.changed, bulkhead.rejected and call events', async () => {
      const rt = virtualRuntime(1);
      const events = record(rt);
      const bh = bulkhead({ name: 'db', limit: 1, queue: 1, runtime: rt });
      const started: string[] = [];
      const a = hold(bh, started, 'a');
      const b = hold(bh, started, 'b');
      await expect(bh.execute(() => 1)).rejects.toBeInstanceOf(BulkheadRejectedError);
      await rt.clock.advance(50);
      a.finish();
      await rt.clock.advance(30);
      b.fail(new Error('bad'));
      await b.result.catch(() => undefined);
      const summary = events.map((e) => {
        const { type, source, at } = e;
        if (e.type === 'bulkhead.changed') return { type, source, at, active: e.active, queued: e.queued };
        if (e.type === 'bulkhead.rejected') return { type, at, active: e.active, queued: e.queued };
        if (e.type === 'call')
          return { type, at, outcome: e.outcome, durationMs: e.durationMs, kind: e.kind };
        return { type, source, at, kind: (e as { kind?: string }).kind };
      });
      expect(summary).toEqual([
        { type: 'policy.created', source: 'db', at: 0, kind: 'bulkhead' },
        { type: 'bulkhead.changed', source: 'db', at: 0, active: 1, queued: 0 },
        { type: 'bulkhead.changed', source: 'db', at: 0, active: 1, queued: 1 },
        { type: 'bulkhead.rejected', at: 0, active: 1, queued: 1 },
        { type: 'call', at: 0, outcome: 'rejected', durationMs: 0, kind: 'bulkhead' },
        { type: 'bulkhead.changed', source: 'db', at: 50, active: 1, queued: 0 },
        { type: 'call', at: 50, outcome: 'success', durationMs: 50, kind: 'bulkhead' },
        { type: 'bulkhead.changed', source: 'db', at: 80, active: 0, queued: 0 },
        { type: 'call', at: 80, outcome: 'failure', durationMs: 80, kind: 'bulkhead' },
      ]);
      const changed = events.find((e) => e.type === 'bulkhead.changed');
      expect(changed).toMatchObject({ capacity: 1 });
      const rejectedCall = events.find((e) => e.type === 'call' && e.outcome === 'rejected');
      expect(rejectedCall).toMatchObject({ error: expect.any(BulkheadRejectedError) });
      const failed = events.find((e) => e.type === 'call' && e.outcome === 'failure');
      expect(failed).toMatchObject({ error: new Error('bad') });
      const ok = events.find((e) => e.type === 'call' && e.outcome === 'success');
      expect(ok).not.toHaveProperty('error');
    });

    it('emits a cancelled call event when a queued call aborts', async () => {
      const rt = virtualRuntime(1);
      const bh = bulkhead({ limit: 1, queue: 1, runtime: rt });
      const a = hold(bh, [], 'a');
      const controller = new AbortController();
      const b = hold(bh, [], 'b', controller.signal);
      const events = record(rt);
      await rt.clock.advance(20);
      controller.abort();
      await b.result.catch(() => undefined);
      expect(events.map((e) => e.type)).toEqual(['bulkhead.changed', 'call']);
      expect(events[0]).toMatchObject({ active: 1, queued: 0, at: 20 });
      expect(events[1]).toMatchObject({
        outcome: 'cancelled',
        durationMs: 20,
        error: expect.any(CancelledError),
      });
      a.finish();
      await a.result;
    });

    it('only builds the events a listener asked for', async () => {
      const rt = virtualRuntime(1);
      const bh = bulkhead({ limit: 1, runtime: rt });
      const seen: string[] = [];
      rt.events.subscribe((e) => seen.push(e.type), ['bulkhead.rejected']);
      const a = hold(bh, [], 'a');
      await expect(bh.execute(() => 1)).rejects.toBeInstanceOf(BulkheadRejectedError);
      a.finish();
      await a.result;
      expect(seen).toEqual(['bulkhead.rejected']);
    });
  });

  describe('options', () => {
    it('accepts Infinity for limit and queue', async () => {
      const rt = virtualRuntime(1);
      const bh = bulkhead({ limit: Number.POSITIVE_INFINITY, runtime: rt });
      const calls = Array.from({ length: 100 }, (_, i) => hold(bh, [], `${i}`));
      expect(bh.active).toBe(100);
      for (const c of calls) c.finish();
      await Promise.all(calls.map((c) => c.result));
      const queued = bulkhead({ limit: 1, queue: Number.POSITIVE_INFINITY, runtime: rt });
      const many = Array.from({ length: 100 }, (_, i) => hold(queued, [], `${i}`));
      expect(queued.queued).toBe(99);
      for (const c of many) c.finish();
      await Promise.all(many.map((c) => c.result));
      expect(queued.queued).toBe(0);
    });

    it.each([
      [{ limit: 0 }, 'bulkhead: option "limit" must be an integer >= 1, got 0'],
      [{ limit: 2.5 }, 'bulkhead: option "limit" must be an integer >= 1, got 2.5'],
      [{ limit: '4' }, 'bulkhead: option "limit" must be an integer >= 1, got "4"'],
      [{ queue: -1 }, 'bulkhead: option "queue" must be an integer >= 0, got -1'],
      [{ queue: 0.5 }, 'bulkhead: option "queue" must be an integer >= 0, got 0.5'],
      [{ queue: Number.NaN }, 'bulkhead: option "queue" must be an integer >= 0, got NaN'],
      [{ name: '' }, 'bulkhead: option "name" must be a non-empty string, got ""'],
      [{ limt: 3 }, 'bulkhead: unknown option "limt"; known options are limit, queue, name, runtime'],
    ])('rejects %o', (options, message) => {
      expect(() => bulkhead(options as never)).toThrow(new TypeError(message));
    });
  });

  it('property: never exceeds the limit, admits in FIFO order, and every call ends', async () => {
    type State = 'pending' | 'running' | 'done' | 'rejected' | 'cancelled';
    interface Entry {
      id: number;
      weight: number;
      acquire: boolean;
      state: State;
      gate: ReturnType<typeof deferred<void>>;
      controller: AbortController;
    }
    const op = fc.oneof(
      {
        arbitrary: fc.record({
          kind: fc.constant('start' as const),
          weight: fc.integer({ min: 1, max: 5 }),
          acquire: fc.boolean(),
        }),
        weight: 3,
      },
      {
        arbitrary: fc.record({ kind: fc.constant('finish' as const), pick: fc.nat(), fail: fc.boolean() }),
        weight: 2,
      },
      { arbitrary: fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }), weight: 1 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(op, { maxLength: 60 }),
        async (limit, queue, ops) => {
          const rt = virtualRuntime(1);
          const bh = bulkhead({ limit, queue, runtime: rt });
          const entries: Entry[] = [];
          // Admission is FIFO; an acquire() call starts a few promise hops after its admission, an
          // execute() call fewer, so start order is compared within each kind.
          const startOrder = { acquire: [] as number[], execute: [] as number[] };
          let runningWeight = 0;
          let peak = 0;
          const run = (entry: Entry) => {
            entry.state = 'running';
            startOrder[entry.acquire ? 'acquire' : 'execute'].push(entry.id);
            runningWeight += entry.weight;
            peak = Math.max(peak, runningWeight);
            return entry.gate.promise.finally(() => {
              runningWeight -= entry.weight;
            });
          };
          const settleAs = (entry: Entry) => (error: unknown) => {
            if (error instanceof BulkheadRejectedError) entry.state = 'rejected';
            else if (error instanceof CancelledError) entry.state = 'cancelled';
            else if (error === 'failed') entry.state = 'done';
            else throw error;
          };
          const check = () => {
            expect(bh.active).toBeLessThanOrEqual(limit);
            expect(peak).toBeLessThanOrEqual(limit);
            expect(bh.active).toBe(runningWeight);
            expect(bh.queued).toBe(entries.filter((e) => e.state === 'pending').length);
            expect(bh.queued).toBeLessThanOrEqual(queue);
            for (const order of [startOrder.acquire, startOrder.execute]) {
              for (let i = 1; i < order.length; i++) expect(order[i]).toBeGreaterThan(order[i - 1] as number);
            }
          };
          const finish = (entry: Entry, fail: boolean) => {
            if (fail) entry.gate.reject('failed');
            else entry.gate.resolve();
          };

          for (const step of ops) {
            if (step.kind === 'start') {
              const entry: Entry = {
                id: entries.length,
                weight: Math.min(step.weight, limit),
                acquire: step.acquire,
                state: 'pending',
                gate: deferred<void>(),
                controller: new AbortController(),
              };
              entries.push(entry);
              const signal = entry.controller.signal;
              if (step.acquire) {
                bh.acquire(entry.weight, signal).then(
                  (release) => run(entry).then(release, release),
                  settleAs(entry),
                );
                // acquire's release runs after the gate settles; mark done when it has.
                entry.gate.promise.then(
                  () => {
                    entry.state = 'done';
                  },
                  () => {
                    entry.state = 'done';
                  },
                );
              } else {
                bh.weighted(entry.weight)
                  .execute(() => run(entry), signal)
                  .then(() => {
                    entry.state = 'done';
                  }, settleAs(entry));
              }
            } else {
              // Aborting a running call must change nothing: its permits stay taken until it ends.
              const candidates = entries.filter((e) =>
                step.kind === 'finish'
                  ? e.state === 'running'
                  : e.state === 'pending' || e.state === 'running',
              );
              const entry = candidates[step.pick % Math.max(1, candidates.length)];
              if (entry !== undefined) {
                if (step.kind === 'finish') finish(entry, step.fail);
                else entry.controller.abort();
              }
            }
            await rt.clock.advance(0);
            check();
          }
          // Drain: finishing every running call must eventually run or end every call.
          for (let round = 0; round <= entries.length; round++) {
            for (const entry of entries) if (entry.state === 'running') finish(entry, false);
            await rt.clock.advance(0);
            check();
          }
          for (const entry of entries) expect(['done', 'rejected', 'cancelled']).toContain(entry.state);
          expect([bh.active, bh.queued]).toEqual([0, 0]);
        },
      ),
      { numRuns: 300 },
    );
  });
});
