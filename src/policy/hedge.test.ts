import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { failure, record, settle } from '../../test/support.js';
import { CancelledError, HedgeError, isBulwarkError, TimeoutError } from '../core/errors.js';
import type { BulwarkEvent } from '../core/events.js';
import { type VirtualRuntime, virtualRuntime } from '../core/runtime.js';
import type { PolicyContext } from './context.js';
import { type HedgeOptions, HedgePolicy, hedge } from './hedge.js';
import { pipeline } from './pipeline.js';
import { timeout } from './timeout.js';

interface Attempt {
  attempt: number;
  startedAt: number;
  signal: AbortSignal;
}

/**
 * A task whose attempt `n` takes `plan[n - 1].ms` on the virtual clock (honouring its signal), then
 * resolves with `attempt n` or rejects with `plan[n - 1].error`.
 */
function scripted(rt: VirtualRuntime, plan: { ms: number; error?: unknown }[]) {
  const attempts: Attempt[] = [];
  const task = async (ctx: PolicyContext): Promise<string> => {
    attempts.push({ attempt: ctx.attempt, startedAt: rt.clock.now(), signal: ctx.signal });
    const step = plan[ctx.attempt - 1];
    if (step === undefined) throw new Error(`unexpected attempt ${ctx.attempt}`);
    await rt.clock.sleep(step.ms, ctx.signal);
    if (step.error !== undefined) throw step.error;
    return `attempt ${ctx.attempt}`;
  };
  return { attempts, task };
}

describe('hedge', () => {
  it('a fast first attempt never starts a second', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const policy = hedge({ delay: 100, runtime: rt });
    const { attempts, task } = scripted(rt, [{ ms: 30 }]);
    const result = await settle(rt, () => policy.execute(task));
    expect(result).toEqual({ ok: true, value: 'attempt 1', at: 30 });
    expect(attempts).toHaveLength(1);
    expect(attempts[0]?.signal.aborted).toBe(false);
    expect(rt.clock.pendingTimers).toBe(0);
    await rt.clock.runUntilIdle();
    expect(rt.clock.now()).toBe(30);
    expect(events).toEqual([
      { type: 'call', source: 'hedge', at: 30, kind: 'hedge', outcome: 'success', durationMs: 30 },
    ]);
  });

  it('a slow first attempt starts the second at exactly `delay`; the second wins and the first is aborted', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const policy = hedge({ delay: '100ms', runtime: rt });
    const { attempts, task } = scripted(rt, [{ ms: 500 }, { ms: 50 }]);
    const result = await settle(rt, () => policy.execute(task));
    expect(result).toEqual({ ok: true, value: 'attempt 2', at: 150 });
    expect(attempts.map((a) => [a.attempt, a.startedAt])).toEqual([
      [1, 0],
      [2, 100],
    ]);
    const first = attempts[0]?.signal;
    expect(first?.aborted).toBe(true);
    expect(first?.reason).toBeInstanceOf(CancelledError);
    expect(first?.reason).toMatchObject({ message: 'lost the hedge race', code: 'CANCELLED' });
    expect(attempts[1]?.signal.aborted).toBe(false);
    expect(rt.clock.pendingTimers).toBe(0);
    expect(events).toEqual([
      { type: 'hedge.started', source: 'hedge', at: 100, attempt: 2 },
      { type: 'call', source: 'hedge', at: 150, kind: 'hedge', outcome: 'success', durationMs: 150 },
    ]);
  });

  it('the first attempt can still win after the second started', async () => {
    const rt = virtualRuntime(1);
    const policy = hedge({ delay: 100, runtime: rt });
    const { attempts, task } = scripted(rt, [{ ms: 120 }, { ms: 500 }]);
    const result = await settle(rt, () => policy.execute(task));
    expect(result).toEqual({ ok: true, value: 'attempt 1', at: 120 });
    expect(attempts[1]?.signal.aborted).toBe(true);
    expect(attempts[1]?.signal.reason).toMatchObject({ message: 'lost the hedge race' });
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('maxAttempts 3 starts attempts at 0, delay and 2 x delay, and no more', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const policy = hedge({ delay: 100, maxAttempts: 3, runtime: rt });
    expect(policy.maxAttempts).toBe(3);
    const { attempts, task } = scripted(rt, [{ ms: 1000 }, { ms: 1000 }, { ms: 30 }]);
    const result = await settle(rt, () => policy.execute(task));
    expect(result).toEqual({ ok: true, value: 'attempt 3', at: 230 });
    expect(attempts.map((a) => [a.attempt, a.startedAt])).toEqual([
      [1, 0],
      [2, 100],
      [3, 200],
    ]);
    expect(attempts.map((a) => a.signal.aborted)).toEqual([true, true, false]);
    expect(events.filter((e) => e.type === 'hedge.started')).toEqual([
      { type: 'hedge.started', source: 'hedge', at: 100, attempt: 2 },
      { type: 'hedge.started', source: 'hedge', at: 200, attempt: 3 },
    ]);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('an attempt that fails before the delay starts the next at once', async () => {
    const rt = virtualRuntime(1);
    const policy = hedge({ delay: 100, maxAttempts: 3, runtime: rt });
    const { attempts, task } = scripted(rt, [{ ms: 20, error: new Error('e1') }, { ms: 500 }, { ms: 10 }]);
    const result = await settle(rt, () => policy.execute(task));
    // attempt 2 at 20 (replacing the failure), attempt 3 at 20 + delay
    expect(attempts.map((a) => [a.attempt, a.startedAt])).toEqual([
      [1, 0],
      [2, 20],
      [3, 120],
    ]);
    expect(result).toEqual({ ok: true, value: 'attempt 3', at: 130 });
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('a success after an early failure wins', async () => {
    const rt = virtualRuntime(1);
    const policy = hedge({ delay: 100, runtime: rt });
    const { task } = scripted(rt, [{ ms: 5, error: new Error('e1') }, { ms: 5 }]);
    expect(await settle(rt, () => policy.execute(task))).toEqual({ ok: true, value: 'attempt 2', at: 10 });
  });

  it('when every attempt fails, rejects with HedgeError holding the errors in start order', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const policy = hedge({ delay: 100, maxAttempts: 3, runtime: rt });
    const [e1, e2, e3] = [new Error('e1'), new Error('e2'), new Error('e3')];
    // attempt 1 fails last, at 250; 2 starts at 100 and fails at 120; 3 starts at once and fails at 130
    const { attempts, task } = scripted(rt, [
      { ms: 250, error: e1 },
      { ms: 20, error: e2 },
      { ms: 10, error: e3 },
    ]);
    const result = failure(await settle(rt, () => policy.execute(task)));
    expect(attempts.map((a) => a.startedAt)).toEqual([0, 100, 120]);
    expect(result.at).toBe(250);
    expect(result.error).toBeInstanceOf(HedgeError);
    expect(isBulwarkError(result.error, 'HEDGE_FAILED')).toBe(true);
    expect((result.error as HedgeError).errors).toEqual([e1, e2, e3]);
    expect((result.error as HedgeError).errors[0]).toBe(e1);
    expect(rt.clock.pendingTimers).toBe(0);
    expect(events.at(-1)).toEqual({
      type: 'call',
      source: 'hedge',
      at: 250,
      kind: 'hedge',
      outcome: 'failure',
      durationMs: 250,
      error: result.error,
    });
  });

  it('delay 0 starts every attempt at once', async () => {
    const rt = virtualRuntime(1);
    const policy = hedge({ delay: 0, maxAttempts: 4, runtime: rt });
    const { attempts, task } = scripted(rt, [{ ms: 40 }, { ms: 30 }, { ms: 10 }, { ms: 20 }]);
    const result = await settle(rt, () => policy.execute(task));
    expect(result).toEqual({ ok: true, value: 'attempt 3', at: 10 });
    expect(attempts.map((a) => [a.attempt, a.startedAt])).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 0],
    ]);
    expect(attempts.map((a) => a.signal.aborted)).toEqual([true, true, false, true]);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('the caller aborting cancels every attempt and rejects with CancelledError', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const controller = new AbortController();
    rt.clock.setTimer(150, () => controller.abort('user left'), undefined);
    const policy = hedge({ delay: 100, maxAttempts: 3, runtime: rt });
    const { attempts, task } = scripted(rt, [{ ms: 1000 }, { ms: 1000 }, { ms: 1000 }]);
    const result = failure(await settle(rt, () => policy.execute(task, controller.signal)));
    expect(result.at).toBe(150);
    expect(result.error).toBeInstanceOf(CancelledError);
    expect((result.error as CancelledError).cause).toBe('user left');
    expect(attempts).toHaveLength(2);
    expect(attempts.map((a) => a.signal.reason)).toEqual([result.error, result.error]);
    await rt.clock.runUntilIdle();
    expect(rt.clock.now()).toBe(150);
    expect(rt.clock.pendingTimers).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(events.map((e) => (e.type === 'call' ? `call:${e.outcome}@${e.at}` : e.type))).toEqual([
      'hedge.started',
      'call:cancelled@150',
    ]);
  });

  it('cancels attempts that never read their signal too, and leaves no listener on success', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    const policy = hedge({ delay: 10, runtime: rt });
    expect(await settle(rt, () => policy.execute(async () => 'ok', controller.signal))).toEqual({
      ok: true,
      value: 'ok',
      at: 0,
    });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    rt.clock.setTimer(5, () => controller.abort('stop'), undefined);
    const result = failure(
      await settle(rt, () => policy.execute(() => new Promise(() => {}), controller.signal)),
    );
    expect(result.at).toBe(5);
    expect(result.error).toBeInstanceOf(CancelledError);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it.each([0, 10])(
    'an attempt that cancels the caller synchronously stops the race at once (delay %s)',
    async (delay) => {
      const rt = virtualRuntime(1);
      const controller = new AbortController();
      let calls = 0;
      const result = failure(
        await settle(rt, () =>
          hedge({ delay, maxAttempts: 3, runtime: rt }).execute(() => {
            calls++;
            controller.abort('self');
            return new Promise(() => {});
          }, controller.signal),
        ),
      );
      expect(result.error).toBeInstanceOf(CancelledError);
      expect(calls).toBe(1);
      expect(rt.clock.pendingTimers).toBe(0);
    },
  );

  it('an outer timeout aborts every attempt with its TimeoutError', async () => {
    const rt = virtualRuntime(1);
    const p = pipeline(timeout(250, { runtime: rt }), hedge({ delay: 100, maxAttempts: 3, runtime: rt }));
    const { attempts, task } = scripted(rt, [{ ms: 1000 }, { ms: 1000 }, { ms: 1000 }]);
    const result = failure(await settle(rt, () => p.execute(task)));
    expect(result.at).toBe(250);
    expect(result.error).toBeInstanceOf(TimeoutError);
    expect(attempts.map((a) => a.signal.reason)).toEqual([result.error, result.error, result.error]);
    await rt.clock.runUntilIdle();
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('a non-hedgeable error from the only running attempt rejects with it at once', async () => {
    const rt = virtualRuntime(1);
    const fatal = new Error('400 bad request');
    const policy = hedge({ delay: 100, maxAttempts: 3, shouldHedge: (e) => e !== fatal, runtime: rt });
    const { attempts, task } = scripted(rt, [{ ms: 20, error: fatal }]);
    const result = failure(await settle(rt, () => policy.execute(task)));
    expect(result).toEqual({ ok: false, error: fatal, at: 20 });
    expect(attempts).toHaveLength(1);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('a non-hedgeable error stops new attempts and waits for the running ones', async () => {
    const rt = virtualRuntime(1);
    const fatal = new Error('fatal');
    const policy = hedge({ delay: 100, maxAttempts: 3, shouldHedge: (e) => e !== fatal, runtime: rt });
    // 1 is slow and fails; 2 starts at 100 and fails fatally at 110; no 3rd attempt; 1 fails at 300
    const failing = scripted(rt, [
      { ms: 300, error: new Error('slow') },
      { ms: 10, error: fatal },
    ]);
    const failed = failure(await settle(rt, () => policy.execute(failing.task)));
    expect(failed).toEqual({ error: fatal, at: 300, ok: false });
    expect(failing.attempts).toHaveLength(2);
    // ... or succeeds if a running attempt does
    const rt2 = virtualRuntime(1);
    const policy2 = hedge({ delay: 100, maxAttempts: 3, shouldHedge: (e) => e !== fatal, runtime: rt2 });
    const winning = scripted(rt2, [{ ms: 300 }, { ms: 10, error: fatal }]);
    expect(await settle(rt2, () => policy2.execute(winning.task))).toEqual({
      ok: true,
      value: 'attempt 1',
      at: 300,
    });
    expect(winning.attempts).toHaveLength(2);
    expect(rt2.clock.pendingTimers).toBe(0);
  });

  it('a non-hedgeable error cancels the pending hedge timer at once', async () => {
    const rt = virtualRuntime(1);
    const fatal = new Error('fatal');
    const policy = hedge({ delay: 100, maxAttempts: 3, shouldHedge: (e) => e !== fatal, runtime: rt });
    const { attempts, task } = scripted(rt, [{ ms: 300 }, { ms: 10, error: fatal }]);
    const running = policy.execute(task);
    await rt.clock.advance(150);
    expect(attempts).toHaveLength(2);
    expect(rt.clock.pendingTimers).toBe(1); // attempt 1's own work, no hedge timer
    await rt.clock.advance(150);
    expect(await running).toBe('attempt 1');
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('does not hedge a CancelledError by default', async () => {
    const rt = virtualRuntime(1);
    const cancelled = new CancelledError('inner');
    const policy = hedge({ delay: 100, runtime: rt });
    const { attempts, task } = scripted(rt, [{ ms: 10, error: cancelled }]);
    const result = failure(await settle(rt, () => policy.execute(task)));
    expect(result.error).toBe(cancelled);
    expect(attempts).toHaveLength(1);
  });

  it('a shouldHedge that throws rejects the call with its error and aborts the others', async () => {
    const rt = virtualRuntime(1);
    const bug = new Error('predicate bug');
    const policy = hedge({
      delay: 10,
      runtime: rt,
      shouldHedge: () => {
        throw bug;
      },
    });
    const { attempts, task } = scripted(rt, [{ ms: 100 }, { ms: 5, error: new Error('x') }]);
    const result = failure(await settle(rt, () => policy.execute(task)));
    expect(result).toEqual({ ok: false, error: bug, at: 15 });
    expect(attempts[0]?.signal.aborted).toBe(true);
  });

  it('a synchronous throw is an attempt failure like any other', async () => {
    const rt = virtualRuntime(1);
    let calls = 0;
    const policy = hedge({ delay: 100, runtime: rt });
    const result = await settle(rt, () =>
      policy.execute(({ attempt }) => {
        calls++;
        if (attempt === 1) throw new Error('sync');
        return 'second';
      }),
    );
    expect(result).toEqual({ ok: true, value: 'second', at: 0 });
    expect(calls).toBe(2);
  });

  it('rejects at once when the caller signal is already aborted', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    controller.abort();
    let ran = false;
    const error = await hedge({ delay: 1, runtime: rt })
      .execute(() => {
        ran = true;
      }, controller.signal)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect(ran).toBe(false);
  });

  it('uses the name option in events', async () => {
    const rt = virtualRuntime(1);
    const events: BulwarkEvent[] = [];
    rt.events.subscribe((e) => events.push(e));
    const policy = hedge({ delay: 1, name: 'replicas', runtime: rt });
    expect(policy.name).toBe('replicas');
    expect(policy.kind).toBe('hedge');
    expect(policy.delayMs).toBe(1);
    expect(events).toEqual([{ type: 'policy.created', source: 'replicas', at: 0, kind: 'hedge' }]);
  });

  describe('options', () => {
    const rt = virtualRuntime(1);
    const make = (options: Record<string, unknown>) => () =>
      hedge({ runtime: rt, ...options } as unknown as HedgeOptions);

    it('requires delay', () => {
      expect(make({})).toThrow(/hedge: option "delay" must be a duration >= 0ms .*got undefined/);
      expect(() => hedge(undefined as unknown as HedgeOptions)).toThrow(/option "delay"/);
    });

    it.each([
      [-1, /hedge: option "delay" must be a duration >= 0ms .*got -1/],
      [Number.NaN, /hedge: option "delay" must be a duration >= 0ms .*got NaN/],
      ['later', /hedge: option "delay": invalid duration "later"/],
      [{}, /hedge: option "delay" must be a number of milliseconds/],
    ])('rejects delay = %s', (delay, message) => {
      expect(make({ delay })).toThrow(TypeError);
      expect(make({ delay })).toThrow(message);
    });

    it('accepts delay as a duration string', () => {
      expect(new HedgePolicy({ delay: '1.5s', runtime: rt }).delayMs).toBe(1500);
      expect(hedge({ delay: 0, runtime: rt }).delayMs).toBe(0);
      expect(hedge({ delay: 0, runtime: rt }).maxAttempts).toBe(2);
    });

    it.each([
      [1, 'an integer >= 2, got 1'],
      [0, 'an integer >= 2, got 0'],
      [2.5, 'an integer >= 2, got 2.5'],
      ['3', 'an integer >= 2, got "3"'],
      [Number.POSITIVE_INFINITY, 'a finite integer >= 2, got Infinity'],
    ])('rejects maxAttempts = %s', (maxAttempts, message) => {
      expect(make({ delay: 10, maxAttempts })).toThrow(`hedge: option "maxAttempts" must be ${message}`);
    });

    it('rejects a shouldHedge that is not a function, and unknown options', () => {
      expect(make({ delay: 10, shouldHedge: 'yes' })).toThrow(
        'hedge: option "shouldHedge" must be a function, got "yes"',
      );
      expect(make({ delay: 10, attempts: 3 })).toThrow(
        /hedge: unknown option "attempts"; known options are delay, maxAttempts, shouldHedge, name, runtime/,
      );
      expect(make({ delay: 10, name: 42 })).toThrow(
        'hedge: option "name" must be a non-empty string, got 42',
      );
    });
  });
});
