import { getEventListeners } from 'node:events';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { failure, record, settle } from '../../test/support.js';
import { CancelledError, isBulwarkError, TimeoutError } from '../core/errors.js';
import { type VirtualRuntime, virtualRuntime } from '../core/runtime.js';
import { backoff } from './backoff.js';
import type { PolicyContext } from './context.js';
import { pipeline } from './pipeline.js';
import type { Interceptor, Stage } from './policy.js';
import { retry } from './retry.js';
import { BasePolicy } from './runner.js';
import { type TimeoutOptions, TimeoutPolicy, timeout } from './timeout.js';

const never = () => new Promise<never>(() => {});

/** An interceptor that records when the runner exits it. */
class ExitProbe extends BasePolicy {
  readonly kind = 'probe';
  readonly name = 'probe';
  readonly stage: Stage;
  constructor(rt: VirtualRuntime, log: string[]) {
    super();
    const interceptor: Interceptor<null> = {
      enter: () => null,
      exit: (_token, ok, error) => {
        log.push(`exit@${rt.clock.now()}:${ok ? 'ok' : String(error)}`);
        return error;
      },
    };
    this.stage = { kind: 'intercept', interceptor };
  }
}

describe('timeout (aggressive)', () => {
  it('rejects with TimeoutError at exactly the deadline while the function hangs forever', async () => {
    const rt = virtualRuntime(1);
    const policy = timeout('100ms', { runtime: rt, strategy: 'aggressive' });
    let signal: AbortSignal | undefined;
    const result = failure(
      await settle(rt, () =>
        policy.execute((ctx) => {
          signal = ctx.signal;
          return never();
        }),
      ),
    );
    expect(result.at).toBe(100);
    expect(result.error).toBeInstanceOf(TimeoutError);
    expect(isBulwarkError(result.error, 'TIMEOUT')).toBe(true);
    expect((result.error as TimeoutError).timeoutMs).toBe(100);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(result.error);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('rejects at the deadline when the function never reads its signal', async () => {
    const rt = virtualRuntime(1);
    const policy = timeout(250, { runtime: rt, strategy: 'aggressive' });
    const result = failure(await settle(rt, () => policy.execute(() => rt.clock.sleep(10_000))));
    expect(result.at).toBe(250);
    expect(result.error).toBeInstanceOf(TimeoutError);
  });

  it('returns the value when the function finishes before the deadline, and cancels the timer', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const policy = timeout('1s', { runtime: rt, strategy: 'aggressive' });
    const result = await settle(rt, () => policy.execute(() => rt.clock.sleep(40).then(() => 'done')));
    expect(result).toEqual({ ok: true, value: 'done', at: 40 });
    expect(rt.clock.pendingTimers).toBe(0);
    await rt.clock.runUntilIdle();
    expect(rt.clock.now()).toBe(40);
    expect(events.map((e) => e.type)).toEqual(['call']);
    expect(events[0]).toEqual({
      type: 'call',
      source: 'timeout',
      at: 40,
      kind: 'timeout',
      outcome: 'success',
      durationMs: 40,
    });
  });

  it('leaves no timer behind after many successes and failures', async () => {
    const rt = virtualRuntime(1);
    const policy = timeout('1s', { runtime: rt, strategy: 'aggressive' });
    for (let i = 0; i < 50; i++) {
      expect(await policy.execute(() => i)).toBe(i);
      expect(await policy.execute(async () => i)).toBe(i);
      await expect(
        policy.execute(() => {
          throw new Error(`sync ${i}`);
        }),
      ).rejects.toThrow(`sync ${i}`);
      await expect(policy.execute(async () => Promise.reject(new Error('async')))).rejects.toThrow('async');
    }
    expect(rt.clock.pendingTimers).toBe(0);
    expect(rt.clock.now()).toBe(0);
  });

  it('passes the function error through untouched before the deadline', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const boom = new Error('boom');
    const result = failure(
      await settle(rt, () =>
        timeout(100, { runtime: rt, strategy: 'aggressive' }).execute(async () => {
          await rt.clock.sleep(10);
          throw boom;
        }),
      ),
    );
    expect(result.error).toBe(boom);
    expect(result.at).toBe(10);
    expect(events.filter((e) => e.type === 'call')).toEqual([
      {
        type: 'call',
        source: 'timeout',
        at: 10,
        kind: 'timeout',
        outcome: 'failure',
        durationMs: 10,
        error: boom,
      },
    ]);
  });

  it('emits policy.created, timeout.fired and a timeout call event, named by the name option', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt, true);
    const policy = timeout({ after: 100, name: 'db', runtime: rt, strategy: 'aggressive' });
    expect(policy.name).toBe('db');
    expect(policy.kind).toBe('timeout');
    const result = failure(await settle(rt, () => policy.execute(never)));
    expect(events).toEqual([
      { type: 'policy.created', source: 'db', at: 0, kind: 'timeout' },
      { type: 'timeout.fired', source: 'db', at: 100, timeoutMs: 100 },
      {
        type: 'call',
        source: 'db',
        at: 100,
        kind: 'timeout',
        outcome: 'timeout',
        durationMs: 100,
        error: result.error,
      },
    ]);
  });

  it('the caller aborting before the deadline rejects at once with CancelledError', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const controller = new AbortController();
    rt.clock.setTimer(30, () => controller.abort('stop'), undefined);
    const policy = timeout(100, { runtime: rt, strategy: 'aggressive' });
    const result = failure(await settle(rt, () => policy.execute(never, controller.signal)));
    expect(result.at).toBe(30);
    expect(result.error).toBeInstanceOf(CancelledError);
    expect((result.error as CancelledError).cause).toBe('stop');
    expect(rt.clock.pendingTimers).toBe(0);
    expect(events.map((e) => (e.type === 'call' ? e.outcome : e.type))).toEqual(['cancelled']);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('an already-aborted caller signal rejects with CancelledError without running the function', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    controller.abort('gone');
    let ran = false;
    const error = await timeout(100, { runtime: rt, strategy: 'aggressive' })
      .execute(() => {
        ran = true;
      }, controller.signal)
      .catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(error).toBeInstanceOf(CancelledError);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('a function that cancels its own caller synchronously is released at once', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    const result = failure(
      await settle(rt, () =>
        timeout(100, { runtime: rt, strategy: 'aggressive' }).execute((ctx) => {
          void ctx.signal; // links the scope to the caller
          controller.abort('self');
          return never();
        }, controller.signal),
      ),
    );
    expect(result.at).toBe(0);
    expect(result.error).toBeInstanceOf(CancelledError);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('leaves no abort listener on the caller signal when the function reads ctx.signal and completes', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    for (const strategy of ['aggressive', 'cooperative'] as const) {
      const policy = timeout(100, { strategy, runtime: rt });
      const seen = await rt.clock.run(() =>
        policy.execute(async ({ signal }) => {
          await rt.clock.sleep(5);
          expect(getEventListeners(controller.signal, 'abort').length).toBeGreaterThan(0);
          return signal;
        }, controller.signal),
      );
      expect(seen).not.toBe(controller.signal);
      expect(seen.aborted).toBe(false);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
      // and when it does not read the signal
      await policy.execute(() => 1, controller.signal);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    }
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('gives each execute (each attempt of an outer loop) a fresh signal', async () => {
    const rt = virtualRuntime(1);
    const policy = timeout(50, { runtime: rt, strategy: 'aggressive' });
    const signals: AbortSignal[] = [];
    const first = failure(
      await settle(rt, () =>
        policy.execute((ctx) => {
          signals.push(ctx.signal);
          return never();
        }),
      ),
    );
    expect(first.error).toBeInstanceOf(TimeoutError);
    const second = await settle(rt, () =>
      policy.execute(async (ctx) => {
        signals.push(ctx.signal);
        await rt.clock.sleep(20);
        return ctx.signal.aborted;
      }),
    );
    expect(second).toEqual({ ok: true, value: false, at: 70 });
    expect(signals).toHaveLength(2);
    expect(signals[0]).not.toBe(signals[1]);
    expect(signals[0]?.aborted).toBe(true);
    expect(signals[1]?.aborted).toBe(false);
  });

  it('inside retry, each attempt gets its own deadline and a fresh signal', async () => {
    const rt = virtualRuntime(1);
    const p = pipeline(
      retry({ maxAttempts: 3, backoff: backoff.constant(10), runtime: rt }),
      timeout(100, { runtime: rt, strategy: 'aggressive' }),
    );
    const seen: { attempt: number; at: number; signal: AbortSignal }[] = [];
    const result = await settle(rt, () =>
      p.execute((ctx) => {
        seen.push({ attempt: ctx.attempt, at: rt.clock.now(), signal: ctx.signal });
        return ctx.attempt < 3 ? never() : 'third time lucky';
      }),
    );
    // attempt 1 times out at 100, waits 10; attempt 2 at 110 times out at 210; attempt 3 at 220
    expect(result).toEqual({ ok: true, value: 'third time lucky', at: 220 });
    expect(seen.map((s) => [s.attempt, s.at])).toEqual([
      [1, 0],
      [2, 110],
      [3, 220],
    ]);
    expect(seen.map((s) => s.signal.aborted)).toEqual([true, true, false]);
    expect(new Set(seen.map((s) => s.signal)).size).toBe(3);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('passes the attempt number through', async () => {
    const rt = virtualRuntime(1);
    expect(
      await timeout(10, { runtime: rt, strategy: 'aggressive' }).execute((ctx: PolicyContext) => ctx.attempt),
    ).toBe(1);
  });

  it('releases the caller at the deadline while inner layers exit when the function really settles', async () => {
    const rt = virtualRuntime(1);
    const log: string[] = [];
    const p = pipeline(timeout(100, { runtime: rt, strategy: 'aggressive' }), new ExitProbe(rt, log));
    const result = failure(
      await settle(rt, () =>
        p.execute(async () => {
          await rt.clock.sleep(300);
          return 'late';
        }),
      ),
    );
    expect(result.at).toBe(100);
    expect(result.error).toBeInstanceOf(TimeoutError);
    expect(log).toEqual([]);
    await rt.clock.runUntilIdle();
    expect(log).toEqual(['exit@300:ok']);
  });

  it('an outer timeout aborts an inner one with its own TimeoutError', async () => {
    const rt = virtualRuntime(1);
    const outer = timeout({ after: 50, name: 'outer', runtime: rt, strategy: 'aggressive' });
    const inner = timeout({ after: 80, name: 'inner', runtime: rt, strategy: 'aggressive' });
    const events = record(rt);
    let signal: AbortSignal | undefined;
    const result = failure(
      await settle(rt, () =>
        pipeline(outer, inner).execute((ctx) => {
          signal = ctx.signal;
          return never();
        }),
      ),
    );
    expect(result.at).toBe(50);
    expect((result.error as TimeoutError).timeoutMs).toBe(50);
    expect(signal?.reason).toBe(result.error);
    await rt.clock.runUntilIdle();
    expect(rt.clock.pendingTimers).toBe(0);
    expect(events.filter((e) => e.type === 'timeout.fired').map((e) => e.source)).toEqual(['outer']);
    expect(events.filter((e) => e.type === 'call').map((e) => [e.source, e.outcome])).toEqual([
      ['inner', 'cancelled'],
      ['outer', 'timeout'],
    ]);
  });

  it('property: the call times out iff the function takes at least `after`', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 0, max: 2000 }),
        fc.constantFrom<'aggressive' | 'cooperative'>('aggressive', 'cooperative'),
        async (after, takes, strategy) => {
          const rt = virtualRuntime(1);
          const policy = timeout(after, { strategy, runtime: rt });
          const result = await settle(rt, () =>
            policy.execute(async ({ signal }) => {
              await rt.clock.sleep(takes, signal);
              return takes;
            }),
          );
          if (takes < after) {
            expect(result).toEqual({ ok: true, value: takes, at: takes });
          } else {
            expect(failure(result).error).toBeInstanceOf(TimeoutError);
            expect(result.at).toBe(after);
          }
          expect(rt.clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('timeout (cooperative)', () => {
  it('aborts the signal at the deadline and waits for the function; its rejection becomes the TimeoutError', async () => {
    const rt = virtualRuntime(1);
    const policy = timeout({ after: 100, strategy: 'cooperative', runtime: rt });
    expect(policy.strategy).toBe('cooperative');
    const cleanup = new Error('stopped after cleanup');
    let abortedAt = -1;
    const result = failure(
      await settle(rt, () =>
        policy.execute(({ signal }) => {
          return new Promise((_resolve, reject) => {
            signal.addEventListener('abort', () => {
              abortedAt = rt.clock.now();
              expect(signal.reason).toBeInstanceOf(TimeoutError);
              rt.clock.setTimer(50, reject, cleanup);
            });
          });
        }),
      ),
    );
    expect(abortedAt).toBe(100);
    expect(result.at).toBe(150);
    expect(result.error).toBeInstanceOf(TimeoutError);
    expect((result.error as TimeoutError).timeoutMs).toBe(100);
    expect((result.error as TimeoutError).cause).toBe(cleanup);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('a function that rejects with the signal reason rejects with that same TimeoutError', async () => {
    const rt = virtualRuntime(1);
    let signal: AbortSignal | undefined;
    const result = failure(
      await settle(rt, () =>
        timeout(100, { strategy: 'cooperative', runtime: rt }).execute((ctx) => {
          signal = ctx.signal;
          return rt.clock.sleep(1000, ctx.signal);
        }),
      ),
    );
    expect(result.at).toBe(100);
    expect(result.error).toBe(signal?.reason);
    expect((result.error as TimeoutError).cause).toBeUndefined();
  });

  it('returns the value when the function resolves after the deadline anyway', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    let signal: AbortSignal | undefined;
    const result = await settle(rt, () =>
      timeout(100, { strategy: 'cooperative', runtime: rt }).execute(async (ctx) => {
        signal = ctx.signal;
        await rt.clock.sleep(300);
        return 'late but fine';
      }),
    );
    expect(result).toEqual({ ok: true, value: 'late but fine', at: 300 });
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBeInstanceOf(TimeoutError);
    expect(events.map((e) => (e.type === 'call' ? `call:${e.outcome}` : e.type))).toEqual([
      'timeout.fired',
      'call:success',
    ]);
  });

  it('the caller aborting before the deadline cancels the function, and the deadline does not fire', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const controller = new AbortController();
    rt.clock.setTimer(30, () => controller.abort('stop'), undefined);
    const result = failure(
      await settle(rt, () =>
        timeout(100, { strategy: 'cooperative', runtime: rt }).execute(
          ({ signal }) => rt.clock.sleep(1000, signal),
          controller.signal,
        ),
      ),
    );
    expect(result.at).toBe(30);
    expect(result.error).toBeInstanceOf(CancelledError);
    await rt.clock.runUntilIdle();
    expect(rt.clock.pendingTimers).toBe(0);
    expect(events.map((e) => (e.type === 'call' ? `call:${e.outcome}` : e.type))).toEqual(['call:cancelled']);
  });

  it('does not release a function that ignores its signal before it settles', async () => {
    const rt = virtualRuntime(1);
    const result = failure(
      await settle(rt, () =>
        timeout(100, { strategy: 'cooperative', runtime: rt }).execute(async () => {
          await rt.clock.sleep(500);
          throw new Error('finally failed');
        }),
      ),
    );
    expect(result.at).toBe(500);
    expect(result.error).toBeInstanceOf(TimeoutError);
    expect(String((result.error as TimeoutError).cause)).toBe('Error: finally failed');
  });
});

describe('timeout options', () => {
  const rt = virtualRuntime(1);

  it('accepts a duration, a duration with options, or an options object', () => {
    expect(timeout(250, { runtime: rt }).timeoutMs).toBe(250);
    expect(timeout('1.5s', { runtime: rt }).timeoutMs).toBe(1500);
    expect(timeout({ after: '2m', runtime: rt }).timeoutMs).toBe(120_000);
    expect(timeout('1s', { runtime: rt }).strategy).toBe('cooperative');
    expect(new TimeoutPolicy({ after: 5, runtime: rt }).stage.kind).toBe('intercept');
  });

  it('requires `after`', () => {
    expect(() => timeout({ runtime: rt, strategy: 'aggressive' } as unknown as TimeoutOptions)).toThrow(
      /timeout: option "after" must be a duration > 0ms .*got undefined/,
    );
    expect(() => timeout(undefined as unknown as number)).toThrow(/option "after" .*got undefined/);
  });

  it.each([
    [0, /timeout: option "after" must be a duration > 0ms, got 0/],
    ['0ms', /timeout: option "after" must be a duration > 0ms, got "0ms"/],
    [-5, /timeout: option "after" must be a duration > 0ms .*got -5/],
    [Number.NaN, /timeout: option "after" must be a duration > 0ms .*got NaN/],
    [Number.POSITIVE_INFINITY, /timeout: option "after" must be a duration > 0ms .*got Infinity/],
    ['soon', /timeout: option "after": invalid duration "soon"/],
    [true, /timeout: option "after" must be a number of milliseconds/],
  ])('rejects after = %s', (after, message) => {
    expect(() => timeout(after as number, { runtime: rt, strategy: 'aggressive' })).toThrow(TypeError);
    expect(() => timeout(after as number, { runtime: rt, strategy: 'aggressive' })).toThrow(message);
    expect(() => timeout({ after: after as number, runtime: rt, strategy: 'aggressive' })).toThrow(message);
  });

  it('rejects a bad strategy', () => {
    expect(() => timeout(10, { strategy: 'eager' as 'aggressive', runtime: rt })).toThrow(
      'timeout: option "strategy" must be one of "aggressive", "cooperative", got "eager"',
    );
  });

  it('rejects unknown options, a bad name and mixed call forms', () => {
    expect(() => timeout({ after: 10, strategyy: 'cooperative' } as unknown as TimeoutOptions)).toThrow(
      /timeout: unknown option "strategyy"/,
    );
    expect(() => timeout(10, { after: 20 } as unknown as { strategy: 'aggressive' })).toThrow(
      /timeout: unknown option "after"/,
    );
    expect(() => timeout(10, { name: '' })).toThrow(/option "name" must be a non-empty string/);
    const untyped = timeout as (a: unknown, b?: unknown) => TimeoutPolicy;
    expect(() => untyped({ after: 10 }, {})).toThrow(/either a duration and options, or one options object/);
    expect(() => timeout(null as unknown as number)).toThrow(TypeError);
  });
});
