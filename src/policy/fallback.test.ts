import { describe, expect, it } from 'vitest';
import { BrokenCircuitError, CancelledError, isBulwarkError, TimeoutError } from '../core/errors.js';
import type { BulwarkEvent } from '../core/events.js';
import { type VirtualRuntime, virtualRuntime } from '../core/runtime.js';
import { Call, type PolicyContext } from './context.js';
import { type FallbackOptions, FallbackPolicy, fallback } from './fallback.js';
import { pipeline } from './pipeline.js';
import { timeout } from './timeout.js';

function record(rt: VirtualRuntime): BulwarkEvent[] {
  const events: BulwarkEvent[] = [];
  rt.events.subscribe((e) => events.push(e));
  return events;
}

const fail = (error: unknown) => () => Promise.reject(error);

describe('fallback', () => {
  it('returns a fixed value when the call fails, and the result when it succeeds', async () => {
    const rt = virtualRuntime(1);
    const policy = fallback('default', { runtime: rt });
    expect(await policy.execute(fail(new Error('down')))).toBe('default');
    expect(
      await policy.execute(() => {
        throw new Error('sync');
      }),
    ).toBe('default');
    expect(await policy.execute(async () => 'real')).toBe('real');
    expect(await policy.execute(() => 'sync real')).toBe('sync real');
  });

  it('a value of undefined or null is a valid substitute', async () => {
    const rt = virtualRuntime(1);
    expect(await fallback(undefined, { runtime: rt }).execute(fail(new Error('x')))).toBeUndefined();
    expect(await fallback(null, { runtime: rt }).execute(fail(new Error('x')))).toBeNull();
  });

  it('calls a function of the error and the call context', async () => {
    const rt = virtualRuntime(1);
    const seen: [unknown, PolicyContext][] = [];
    const policy = fallback(
      (error: unknown, ctx: PolicyContext) => {
        seen.push([error, ctx]);
        return `recovered from ${String(error)}`;
      },
      { runtime: rt },
    );
    const boom = new Error('boom');
    expect(await policy.execute(fail(boom))).toBe('recovered from Error: boom');
    expect(seen).toHaveLength(1);
    expect(seen[0]?.[0]).toBe(boom);
    expect(seen[0]?.[1]).toBeInstanceOf(Call);
    expect(seen[0]?.[1].attempt).toBe(1);
  });

  it('the fallback function gets the caller signal through its context', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    const signal = await fallback((_e: unknown, ctx: PolicyContext) => ctx.signal, { runtime: rt }).execute(
      fail(new Error('x')),
      controller.signal,
    );
    expect(signal).toBe(controller.signal);
  });

  it('awaits an async fallback function, in virtual time', async () => {
    const rt = virtualRuntime(1);
    const policy = fallback(
      async () => {
        await rt.clock.sleep(25);
        return 'from cache';
      },
      { runtime: rt },
    );
    const value = await rt.clock.run(async () => {
      await rt.clock.sleep(10);
      return policy.execute(async () => {
        await rt.clock.sleep(5);
        throw new Error('down');
      });
    });
    expect(value).toBe('from cache');
    expect(rt.clock.now()).toBe(40);
  });

  it('a value that is itself a function is wrapped in a function', async () => {
    const rt = virtualRuntime(1);
    const handler = () => 'handler';
    const got = await fallback(() => handler, { runtime: rt }).execute<() => string>(fail(new Error('x')));
    expect(got).toBe(handler);
  });

  it('passes CancelledError through untouched by default', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const policy = fallback('default', { runtime: rt });
    const cancelled = new CancelledError('stop');
    await expect(policy.execute(fail(cancelled))).rejects.toBe(cancelled);
    expect(events.filter((e) => e.type === 'fallback.used')).toEqual([]);
    expect(events.filter((e) => e.type === 'call').map((e) => e.type === 'call' && e.outcome)).toEqual([
      'cancelled',
    ]);
  });

  it('handles TimeoutError and other Bulwark errors by default', async () => {
    const rt = virtualRuntime(1);
    const policy = fallback('default', { runtime: rt });
    expect(await policy.execute(fail(new TimeoutError(10)))).toBe('default');
    expect(await policy.execute(fail(new BrokenCircuitError()))).toBe('default');
    expect(await policy.execute(fail('a string'))).toBe('default');
  });

  it('rethrows errors `handles` rejects, untouched', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const seen: unknown[] = [];
    const policy = fallback('cached', {
      runtime: rt,
      handles: (e) => {
        seen.push(e);
        return isBulwarkError(e, 'CIRCUIT_OPEN');
      },
    });
    const open = new BrokenCircuitError();
    const other = new Error('validation failed');
    expect(await policy.execute(fail(open))).toBe('cached');
    await expect(policy.execute(fail(other))).rejects.toBe(other);
    expect(seen).toEqual([open, other]);
    expect(
      events.filter((e) => e.type === 'call').map((e) => (e.type === 'call' ? [e.outcome, e.error] : [])),
    ).toEqual([
      ['fallback', open],
      ['failure', other],
    ]);
  });

  it('a `handles` predicate that throws rejects the call with its error', async () => {
    const rt = virtualRuntime(1);
    const bug = new Error('predicate bug');
    const policy = fallback('x', {
      runtime: rt,
      handles: () => {
        throw bug;
      },
    });
    await expect(policy.execute(fail(new Error('original')))).rejects.toBe(bug);
  });

  it('an error thrown by the fallback function propagates', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const secondary = new Error('cache miss');
    const sync = fallback(
      () => {
        throw secondary;
      },
      { runtime: rt },
    );
    await expect(sync.execute(fail(new Error('primary')))).rejects.toBe(secondary);
    const async = fallback(() => Promise.reject(secondary), { runtime: rt });
    await expect(async.execute(fail(new Error('primary')))).rejects.toBe(secondary);
    expect(
      events.filter((e) => e.type === 'call').map((e) => (e.type === 'call' ? [e.outcome, e.error] : [])),
    ).toEqual([
      ['failure', secondary],
      ['failure', secondary],
    ]);
  });

  it('emits policy.created, fallback.used and call events with durations', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const policy = fallback(0, { name: 'price', runtime: rt });
    expect(policy.name).toBe('price');
    expect(policy.kind).toBe('fallback');
    const boom = new Error('boom');
    await rt.clock.run(() =>
      policy.execute(async () => {
        await rt.clock.sleep(30);
        throw boom;
      }),
    );
    await rt.clock.run(() => policy.execute(() => rt.clock.sleep(5).then(() => 1)));
    expect(events).toEqual([
      { type: 'policy.created', source: 'price', at: 0, kind: 'fallback' },
      { type: 'fallback.used', source: 'price', at: 30, error: boom },
      {
        type: 'call',
        source: 'price',
        at: 30,
        kind: 'fallback',
        outcome: 'fallback',
        durationMs: 30,
        error: boom,
      },
      { type: 'call', source: 'price', at: 35, kind: 'fallback', outcome: 'success', durationMs: 5 },
    ]);
  });

  it('outside a timeout, replaces the TimeoutError at the deadline', async () => {
    const rt = virtualRuntime(1);
    const p = pipeline(
      fallback('stale', { runtime: rt }),
      timeout(100, { runtime: rt, strategy: 'aggressive' }),
    );
    const value = await rt.clock.run(() => p.execute(() => new Promise<string>(() => {})));
    expect(value).toBe('stale');
    expect(rt.clock.now()).toBe(100);
  });

  it('caller cancellation inside a pipeline is not replaced', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    rt.clock.setTimer(10, () => controller.abort('bye'), undefined);
    const p = pipeline(
      fallback('stale', { runtime: rt }),
      timeout(100, { runtime: rt, strategy: 'aggressive' }),
    );
    const error = await rt.clock
      .run(() => p.execute(() => new Promise<string>(() => {}), controller.signal))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect(rt.clock.now()).toBe(10);
  });

  it('validates its options', () => {
    const rt = virtualRuntime(1);
    expect(() => fallback(1, { handles: true as unknown as () => boolean, runtime: rt })).toThrow(
      'fallback: option "handles" must be a function, got true',
    );
    expect(() => fallback(1, { handle: () => true } as unknown as FallbackOptions)).toThrow(
      /fallback: unknown option "handle"; known options are handles, name, runtime/,
    );
    expect(() => fallback(1, 'fast' as unknown as FallbackOptions)).toThrow(
      'fallback: options must be an object, got "fast"',
    );
    expect(() => fallback(1, { name: '' })).toThrow(
      'fallback: option "name" must be a non-empty string, got ""',
    );
    expect(new FallbackPolicy(1, { runtime: rt }).stage.kind).toBe('wrap');
  });
});
