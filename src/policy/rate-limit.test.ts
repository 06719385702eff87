import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CancelledError, isBulwarkError, RateLimitedError } from '../core/errors.js';
import type { BulwarkEvent } from '../core/events.js';
import { virtualRuntime } from '../core/runtime.js';
import { rateLimit } from './rate-limit.js';

type Rt = ReturnType<typeof virtualRuntime>;

function record(rt: Rt): BulwarkEvent[] {
  const events: BulwarkEvent[] = [];
  rt.events.subscribe((e) => events.push(e));
  return events;
}

/** Runs a call through `policy`; resolves to the virtual time the function ran at, or the error. */
function timed(rt: Rt, policy: { execute: ReturnType<typeof rateLimit>['execute'] }, signal?: AbortSignal) {
  return policy.execute(() => rt.clock.now(), signal).catch((e: unknown) => e);
}

async function retryAfterOf(promise: Promise<unknown>): Promise<number> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(RateLimitedError);
  return (error as RateLimitedError).retryAfter;
}

describe('rateLimit', () => {
  describe("mode 'reject'", () => {
    it('lets a full bucket of `burst` calls through, then refills one token per interval/rate', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 10, runtime: rt }); // 10 per second: one token per 100ms, burst 10
      expect([rl.kind, rl.name, rl.burst, rl.rate, rl.intervalMs, rl.mode]).toEqual([
        'rateLimit',
        'rateLimit',
        10,
        10,
        1000,
        'reject',
      ]);
      expect(rl.available).toBe(10);
      for (let i = 0; i < 10; i++) expect(await rl.execute(() => i)).toBe(i);
      expect(rl.available).toBe(0);
      expect(await retryAfterOf(rl.execute(() => 'x'))).toBe(100);

      await rt.clock.advance(50);
      expect(rl.available).toBe(0.5);
      expect(await retryAfterOf(rl.execute(() => 'x'))).toBe(50);
      await rt.clock.advance(49);
      expect(await retryAfterOf(rl.execute(() => 'x'))).toBe(1);
      await rt.clock.advance(1);
      expect(await rl.execute(() => 'ok')).toBe('ok'); // exactly at t = 100
      expect(await retryAfterOf(rl.execute(() => 'x'))).toBe(100);

      await rt.clock.advance(350);
      expect(rl.available).toBe(3.5);
      for (let i = 0; i < 3; i++) await rl.execute(() => i);
      expect(await retryAfterOf(rl.execute(() => 'x'))).toBe(50);
    });

    it('never holds more than `burst` tokens, however long it was idle', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 1, interval: '100ms', burst: 3, runtime: rt });
      await rt.clock.advance(60_000);
      expect(rl.available).toBe(3);
      for (let i = 0; i < 3; i++) await rl.execute(() => i);
      expect(await retryAfterOf(rl.execute(() => 'x'))).toBe(100);
    });

    it('throws RateLimitedError with the exact retryAfter, and does not consume a token', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 2, interval: '1m', runtime: rt }); // one token per 30 s, burst 2
      await rl.execute(() => 1);
      await rl.execute(() => 2);
      await rt.clock.advance(12_345);
      let ran = false;
      const error = await rl
        .execute(() => {
          ran = true;
        })
        .catch((e: unknown) => e);
      expect(ran).toBe(false);
      expect(error).toBeInstanceOf(RateLimitedError);
      expect(isBulwarkError(error, 'RATE_LIMITED')).toBe(true);
      expect((error as RateLimitedError).retryAfter).toBe(30_000 - 12_345);
      expect((error as RateLimitedError).message).toBe('rate limit exceeded; retry after 17655ms');
      // Rejected calls took nothing: the token is there after exactly retryAfter.
      await rt.clock.advance(17_655);
      expect(await rl.execute(() => 'ok')).toBe('ok');
    });

    it('supports fractional rates (burst defaults to at least 1)', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 0.5, runtime: rt }); // one token every 2 s
      expect(rl.burst).toBe(1);
      await rl.execute(() => 1);
      expect(await retryAfterOf(rl.execute(() => 2))).toBe(2000);
      expect(rateLimit({ rate: 2.5, runtime: rt }).burst).toBe(3);
    });

    it('sets no timer', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 1, runtime: rt });
      await rl.execute(() => 1);
      await rl.execute(() => 2).catch(() => undefined);
      expect(rt.clock.pendingTimers).toBe(0);
    });

    it('passes failures through; a failed call still used its token', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 1, runtime: rt });
      const boom = new Error('boom');
      await expect(
        rl.execute(() => {
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await retryAfterOf(rl.execute(() => 1))).toBe(1000);
    });
  });

  describe("mode 'wait'", () => {
    it('queues calls in FIFO order and runs each exactly when its token arrives', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 10, burst: 2, mode: 'wait', runtime: rt });
      const runs = [timed(rt, rl), timed(rt, rl), timed(rt, rl), timed(rt, rl), timed(rt, rl)];
      expect(rl.queued).toBe(3);
      await rt.clock.runUntilIdle();
      expect(await Promise.all(runs)).toEqual([0, 0, 100, 200, 300]);
      expect(rl.queued).toBe(0);
      expect(rt.clock.pendingTimers).toBe(0);
    });

    it('a newcomer queues behind waiters and gets the next free slot', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 1, interval: '100ms', burst: 1, mode: 'wait', runtime: rt });
      const a = timed(rt, rl);
      const b = timed(rt, rl);
      await rt.clock.advance(150);
      const c = timed(rt, rl); // b ran at 100, so c's token comes at 200
      const d = timed(rt, rl);
      await rt.clock.runUntilIdle();
      expect(await Promise.all([a, b, c, d])).toEqual([0, 100, 200, 300]);
    });

    it('rejects a call that would wait longer than maxWait, with retryAfter its wait', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 10, burst: 1, mode: 'wait', maxWait: 200, runtime: rt });
      const a = timed(rt, rl);
      const b = timed(rt, rl); // waits 100
      const c = timed(rt, rl); // waits 200: exactly maxWait is allowed
      const d = rl.execute(() => 'late');
      expect(await retryAfterOf(d)).toBe(300);
      expect(rl.queued).toBe(2);
      await rt.clock.runUntilIdle();
      expect(await Promise.all([a, b, c])).toEqual([0, 100, 200]);
    });

    it('accepts maxWait as a duration string and Infinity', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 1, burst: 1, mode: 'wait', maxWait: '1.5s', runtime: rt });
      await rl.execute(() => 1);
      const b = timed(rt, rl); // waits 1000
      expect(await retryAfterOf(rl.execute(() => 3))).toBe(2000);
      await rt.clock.runUntilIdle();
      expect(await b).toBe(1000);
      const unbounded = rateLimit({ rate: 1, mode: 'wait', maxWait: Number.POSITIVE_INFINITY, runtime: rt });
      const runs = Array.from({ length: 4 }, () => timed(rt, unbounded));
      await rt.clock.runUntilIdle();
      expect(await Promise.all(runs)).toEqual([1000, 2000, 3000, 4000]);
    });

    it('rejects a call when maxQueue calls are already waiting', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 10, burst: 1, mode: 'wait', maxQueue: 2, runtime: rt });
      const runs = [timed(rt, rl), timed(rt, rl), timed(rt, rl)];
      expect(rl.queued).toBe(2);
      expect(await retryAfterOf(rl.execute(() => 'x'))).toBe(300);
      await rt.clock.runUntilIdle();
      expect(await Promise.all(runs)).toEqual([0, 100, 200]);

      const none = rateLimit({ rate: 10, burst: 1, mode: 'wait', maxQueue: 0, runtime: rt });
      await none.execute(() => 1);
      expect(await retryAfterOf(none.execute(() => 2))).toBe(100);
    });

    it('an aborted waiter rejects with CancelledError, leaves the queue, and gives its token back', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 10, burst: 1, mode: 'wait', runtime: rt });
      const a = timed(rt, rl);
      const controller = new AbortController();
      const b = timed(rt, rl, controller.signal); // would run at 100
      const c = timed(rt, rl); // would run at 200
      await rt.clock.advance(10);
      controller.abort('changed my mind');
      expect(rl.queued).toBe(1);
      const error = await b;
      expect(error).toBeInstanceOf(CancelledError);
      expect((error as CancelledError).cause).toBe('changed my mind');
      const d = timed(rt, rl);
      await rt.clock.runUntilIdle();
      // c moved up into b's slot, and d got c's.
      expect(await Promise.all([a, c, d])).toEqual([0, 100, 200]);
    });

    it('aborting the only waiter cancels the timer and leaves its token in the bucket', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 10, burst: 1, mode: 'wait', runtime: rt });
      await rl.execute(() => 1);
      const controller = new AbortController();
      const b = timed(rt, rl, controller.signal);
      expect(rt.clock.pendingTimers).toBe(1);
      controller.abort();
      expect(await b).toBeInstanceOf(CancelledError);
      expect(rt.clock.pendingTimers).toBe(0);
      await rt.clock.advance(100);
      expect(rl.available).toBe(1);
      expect(await timed(rt, rl)).toBe(100);
    });

    it('admits calls that arrive while the head waits, in order, after a long gap', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 1, interval: 100, burst: 3, mode: 'wait', runtime: rt });
      const first = Array.from({ length: 5 }, () => timed(rt, rl));
      await rt.clock.runUntilIdle();
      expect(await Promise.all(first)).toEqual([0, 0, 0, 100, 200]);
      await rt.clock.advance(1000);
      const second = Array.from({ length: 4 }, () => timed(rt, rl));
      await rt.clock.runUntilIdle();
      expect(await Promise.all(second)).toEqual([1200, 1200, 1200, 1300]);
    });
  });

  describe('events', () => {
    it('emits policy.created, ratelimit.rejected, ratelimit.waited and call events', async () => {
      const rt = virtualRuntime(1);
      const events = record(rt);
      const rl = rateLimit({ name: 'api', rate: 10, burst: 1, mode: 'wait', maxQueue: 1, runtime: rt });
      const a = rl.execute(() => 'a');
      const b = rl.execute(() => 'b');
      await rl.execute(() => 'c').catch(() => undefined);
      await rt.clock.advance(100);
      await Promise.all([a, b]);
      await rt.clock.advance(100);
      await rl
        .execute(() => {
          throw new Error('bad');
        })
        .catch(() => undefined);
      const summary = events.map((e) => {
        const base = { type: e.type, source: e.source, at: e.at };
        if (e.type === 'call') return { ...base, kind: e.kind, outcome: e.outcome, durationMs: e.durationMs };
        if (e.type === 'ratelimit.rejected') return { ...base, retryAfterMs: e.retryAfterMs };
        if (e.type === 'ratelimit.waited') return { ...base, waitMs: e.waitMs };
        return { ...base, kind: (e as { kind?: string }).kind };
      });
      expect(summary).toEqual([
        { type: 'policy.created', source: 'api', at: 0, kind: 'rateLimit' },
        // a returns synchronously, so its call ends inside execute(), before c is rejected.
        { type: 'call', source: 'api', at: 0, kind: 'rateLimit', outcome: 'success', durationMs: 0 },
        { type: 'ratelimit.rejected', source: 'api', at: 0, retryAfterMs: 200 },
        { type: 'call', source: 'api', at: 0, kind: 'rateLimit', outcome: 'rejected', durationMs: 0 },
        { type: 'ratelimit.waited', source: 'api', at: 100, waitMs: 100 },
        { type: 'call', source: 'api', at: 100, kind: 'rateLimit', outcome: 'success', durationMs: 100 },
        { type: 'call', source: 'api', at: 200, kind: 'rateLimit', outcome: 'failure', durationMs: 0 },
      ]);
      expect(events[3]).toMatchObject({ error: expect.any(RateLimitedError) });
      expect(events[6]).toMatchObject({ error: new Error('bad') });
      expect(events[1]).not.toHaveProperty('error');
    });

    it('emits a cancelled call event when a waiter aborts', async () => {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 10, burst: 1, mode: 'wait', runtime: rt });
      await rl.execute(() => 1);
      const events = record(rt);
      const controller = new AbortController();
      const b = timed(rt, rl, controller.signal);
      await rt.clock.advance(30);
      controller.abort();
      await b;
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        type: 'call',
        outcome: 'cancelled',
        at: 30,
        durationMs: 30,
        error: expect.any(CancelledError),
      });
    });
  });

  describe('options', () => {
    it('accepts interval as a number of ms or a duration string', async () => {
      const rt = virtualRuntime(1);
      expect(rateLimit({ rate: 5, interval: 250, runtime: rt }).intervalMs).toBe(250);
      const rl = rateLimit({ rate: 6, interval: '1m', burst: 1, runtime: rt });
      expect(rl.intervalMs).toBe(60_000);
      await rl.execute(() => 1);
      expect(await retryAfterOf(rl.execute(() => 2))).toBe(10_000);
    });

    it.each([
      [
        {},
        'rateLimit: option "rate" must be a finite number > 0 (tokens per interval; required), got undefined',
      ],
      [
        { rate: 0 },
        'rateLimit: option "rate" must be a finite number > 0 (tokens per interval; required), got 0',
      ],
      [{ rate: -1 }, /option "rate" must be a finite number > 0 .*got -1/],
      [{ rate: Number.NaN }, /option "rate" .*got NaN/],
      [{ rate: Number.POSITIVE_INFINITY }, /option "rate" .*got Infinity/],
      [{ rate: '10' }, /option "rate" .*got "10"/],
      [{ rate: 1, interval: 0 }, 'rateLimit: option "interval" must be a duration > 0ms, got 0'],
      [{ rate: 1, interval: -5 }, /option "interval" must be a duration > 0ms/],
      [{ rate: 1, interval: 'soon' }, /rateLimit: option "interval": invalid duration "soon"/],
      [{ rate: 1, burst: 0 }, 'rateLimit: option "burst" must be an integer >= 1, got 0'],
      [{ rate: 1, burst: 1.5 }, 'rateLimit: option "burst" must be an integer >= 1, got 1.5'],
      [{ rate: 1, burst: Number.POSITIVE_INFINITY }, /option "burst" must be an integer >= 1, got Infinity/],
      [{ rate: 1, mode: 'drop' }, 'rateLimit: option "mode" must be one of "reject", "wait", got "drop"'],
      [{ rate: 1, mode: 'wait', maxWait: -1 }, /rateLimit: option "maxWait" must be a duration >= 0ms/],
      [{ rate: 1, mode: 'wait', maxWait: '1 sec' }, /rateLimit: option "maxWait": invalid duration/],
      [
        { rate: 1, mode: 'wait', maxQueue: -1 },
        'rateLimit: option "maxQueue" must be an integer >= 0, got -1',
      ],
      [{ rate: 1, mode: 'wait', maxQueue: 2.5 }, /option "maxQueue" must be an integer >= 0, got 2.5/],
      [
        { rate: 1, maxWait: '1s' },
        'rateLimit: option "maxWait" applies only to mode "wait", but mode is "reject"',
      ],
      [
        { rate: 1, maxQueue: 5 },
        'rateLimit: option "maxQueue" applies only to mode "wait", but mode is "reject"',
      ],
      [{ rate: 1, name: '' }, 'rateLimit: option "name" must be a non-empty string, got ""'],
      [
        { rate: 1, burts: 5 },
        'rateLimit: unknown option "burts"; known options are rate, interval, burst, mode, maxWait, maxQueue, name, runtime',
      ],
    ])('rejects %o', (options, message) => {
      const make = () => rateLimit({ runtime: virtualRuntime(1), ...(options as object) } as never);
      expect(make).toThrow(TypeError);
      expect(make).toThrow(message);
    });
  });

  it('property: admitted calls never exceed burst + elapsed / period, and wait mode admits everyone in order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom<'reject' | 'wait'>('reject', 'wait'),
        fc.array(fc.integer({ min: 0, max: 120 }), { minLength: 1, maxLength: 40 }),
        async (period, burst, mode, gaps) => {
          const rt = virtualRuntime(1);
          const rl = rateLimit({ rate: 1, interval: period, burst, mode, runtime: rt });
          const runs: Promise<unknown>[] = [];
          for (const gap of gaps) {
            await rt.clock.advance(gap);
            runs.push(timed(rt, rl));
          }
          await rt.clock.runUntilIdle();
          const outcomes = await Promise.all(runs);
          const times = outcomes.filter((o): o is number => typeof o === 'number');
          for (let i = 0; i < times.length; i++) {
            for (let j = i; j < times.length; j++) {
              const span = (times[j] as number) - (times[i] as number);
              expect(j - i + 1).toBeLessThanOrEqual(burst + Math.floor(span / period));
            }
          }
          if (mode === 'wait') {
            expect(times).toHaveLength(gaps.length);
            expect([...times].sort((x, y) => x - y)).toEqual(times);
          } else {
            for (const o of outcomes) if (typeof o !== 'number') expect(o).toBeInstanceOf(RateLimitedError);
          }
          expect(rt.clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});
