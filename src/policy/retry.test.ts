import { describe, expect, it } from 'vitest';
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  CancelledError,
  isBulwarkError,
  nonRetryable,
  RateLimitedError,
  TimeoutError,
} from '../core/errors.js';
import type { BulwarkEvent } from '../core/events.js';
import { Random } from '../core/random.js';
import { type VirtualRuntime, virtualRuntime } from '../core/runtime.js';
import { backoff } from './backoff.js';
import type { Call, PolicyContext } from './context.js';
import { pipeline } from './pipeline.js';
import type { Interceptor, Stage } from './policy.js';
import { type RetryOptions, retry } from './retry.js';
import { BasePolicy } from './runner.js';

/** A function that fails `failures` times, then returns `value`; records when and as which attempt it ran. */
function flaky<T = string>(
  rt: VirtualRuntime,
  failures: number,
  error: (n: number) => unknown = (n) => new Error(`boom ${n}`),
  value: T = 'ok' as T,
) {
  const times: number[] = [];
  const attempts: number[] = [];
  const fn = (ctx: PolicyContext): Promise<T> => {
    times.push(rt.clock.now());
    attempts.push(ctx.attempt);
    const n = times.length;
    return n <= failures ? Promise.reject(error(n)) : Promise.resolve(value);
  };
  return { fn, times, attempts };
}

function record(rt: VirtualRuntime): BulwarkEvent[] {
  const events: BulwarkEvent[] = [];
  rt.events.subscribe((e) => events.push(e));
  return events;
}

/** Runs `promise` on the virtual clock and returns what it rejected with. */
async function rejection(rt: VirtualRuntime, run: () => Promise<unknown>): Promise<unknown> {
  try {
    await rt.clock.run(run);
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

const constant = (ms: number, extra: RetryOptions = {}): RetryOptions => ({
  backoff: backoff.constant(ms),
  ...extra,
});

describe('retry: attempts', () => {
  it('makes maxAttempts attempts in all (default 3), counting the first, and rethrows the last error', async () => {
    const rt = virtualRuntime(1);
    const { fn, attempts } = flaky(rt, 10);
    const error = await rejection(rt, () => retry({ runtime: rt }).execute(fn));
    expect(attempts).toEqual([1, 2, 3]);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('boom 3');
  });

  it('succeeds as soon as an attempt succeeds; ctx.attempt is 1, 2, 3', async () => {
    const rt = virtualRuntime(1);
    const { fn, attempts } = flaky(rt, 2);
    await expect(rt.clock.run(() => retry({ runtime: rt }).execute(fn))).resolves.toBe('ok');
    expect(attempts).toEqual([1, 2, 3]);
  });

  it('maxAttempts: 1 never retries; Infinity retries until success', async () => {
    const rt = virtualRuntime(1);
    const once = flaky(rt, 5);
    await rejection(rt, () => retry(constant(10, { maxAttempts: 1, runtime: rt })).execute(once.fn));
    expect(once.attempts).toEqual([1]);
    expect(rt.clock.now()).toBe(0);

    const many = flaky(rt, 40);
    const policy = retry(constant(10, { maxAttempts: Number.POSITIVE_INFINITY, runtime: rt }));
    await expect(rt.clock.run(() => policy.execute(many.fn))).resolves.toBe('ok');
    expect(many.attempts).toHaveLength(41);
    expect(rt.clock.now()).toBe(400);
  });

  it('retries a function that throws synchronously, and passes a plain value through', async () => {
    const rt = virtualRuntime(1);
    let calls = 0;
    const policy = retry(constant(5, { runtime: rt }));
    const result = await rt.clock.run(() =>
      policy.execute(() => {
        if (++calls < 3) throw new Error('sync');
        return 42;
      }),
    );
    expect(result).toBe(42);
    expect(calls).toBe(3);
    await expect(rt.clock.run(() => policy.execute(() => 'plain'))).resolves.toBe('plain');
  });

  it('keeps numbering its own attempts and re-enters the policies inside it on every attempt', async () => {
    const rt = virtualRuntime(1);
    const log: string[] = [];
    const inner = new Probe(log);
    const { fn, attempts } = flaky(rt, 2);
    const p = pipeline(retry(constant(10, { runtime: rt })), inner);
    await rt.clock.run(() => p.execute(fn));
    expect(attempts).toEqual([1, 2, 3]);
    expect(log).toEqual(['enter 1', 'exit false', 'enter 2', 'exit false', 'enter 3', 'exit true']);
  });

  it('sees the error an inner policy replaced the failure with', async () => {
    const rt = virtualRuntime(1);
    const seen: unknown[] = [];
    const p = pipeline(
      retry(
        constant(10, {
          runtime: rt,
          retryOn: (e) => {
            seen.push(e);
            return true;
          },
        }),
      ),
      new Probe([], () => new TimeoutError(5)),
    );
    const error = await rejection(rt, () => p.execute(() => Promise.reject(new Error('raw'))));
    expect(error).toBeInstanceOf(TimeoutError);
    expect(seen.every((e) => e instanceof TimeoutError)).toBe(true);
    expect(seen).toHaveLength(3);
  });

  it('nested retries multiply attempts', async () => {
    const rt = virtualRuntime(1);
    const { fn, attempts } = flaky(rt, 100);
    const p = pipeline(
      retry(constant(100, { name: 'outer', maxAttempts: 2, runtime: rt })),
      retry(constant(10, { name: 'inner', maxAttempts: 3, runtime: rt })),
    );
    await rejection(rt, () => p.execute(fn));
    expect(attempts).toEqual([1, 2, 3, 1, 2, 3]);
    expect(rt.clock.now()).toBe(10 + 10 + 100 + 10 + 10);
  });
});

describe('retry: delays', () => {
  it('waits a constant delay between attempts', async () => {
    const rt = virtualRuntime(1);
    const { fn, times } = flaky(rt, 2);
    await rt.clock.run(() => retry(constant(1000, { runtime: rt })).execute(fn));
    expect(times).toEqual([0, 1000, 2000]);
    expect(rt.clock.now()).toBe(2000);
  });

  it('waits a linear delay', async () => {
    const rt = virtualRuntime(1);
    const { fn, times } = flaky(rt, 4);
    const policy = retry({
      maxAttempts: 5,
      backoff: backoff.linear({ initial: 100, step: 50, max: 180 }),
      runtime: rt,
    });
    await rt.clock.run(() => policy.execute(fn));
    expect(times).toEqual([0, 100, 250, 430, 610]);
  });

  it('waits an exponential delay', async () => {
    const rt = virtualRuntime(1);
    const { fn, times } = flaky(rt, 4);
    const policy = retry({ maxAttempts: 5, backoff: backoff.exponential({ initial: '100ms' }), runtime: rt });
    await rt.clock.run(() => policy.execute(fn));
    expect(times).toEqual([0, 100, 300, 700, 1500]);
  });

  it('restarts the schedule for every call', async () => {
    const rt = virtualRuntime(1);
    const policy = retry({ backoff: backoff.exponential({ initial: 100 }), runtime: rt });
    await rejection(rt, () => policy.execute(flaky(rt, 9).fn));
    const second = flaky(rt, 9);
    await rejection(rt, () => policy.execute(second.fn));
    expect(second.times).toEqual([300, 400, 600]);
  });

  it('defaults to exponential backoff from 100ms with full jitter, reproducible for a seed', async () => {
    const times = async (seed: number) => {
      const rt = virtualRuntime(seed);
      const f = flaky(rt, 9);
      await rejection(rt, () => retry({ maxAttempts: 6, runtime: rt }).execute(f.fn));
      return f.times;
    };
    const a = await times(42);
    expect(await times(42)).toEqual(a);
    expect(await times(43)).not.toEqual(a);
    // The jitter is drawn from runtime.random.fork(`retry:${name}`).
    const random = new Random(42).fork('retry:retry');
    let step = backoff.exponential({ initial: '100ms', max: '30s' }).withJitter('full');
    const expected = [0];
    for (let i = 0; i < 5; i++) {
      step = step.next(random);
      expected.push((expected[i] as number) + step.delay);
    }
    expect(a).toEqual(expected);
    const gaps = a.slice(1).map((t, i) => t - (a[i] as number));
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual(0);
      expect(gap).toBeLessThanOrEqual(100 * 2 ** i);
    });
  });

  it('maxDelay caps every wait (default 30s)', async () => {
    const rt = virtualRuntime(1);
    const capped = flaky(rt, 2);
    await rt.clock.run(() => retry(constant(5000, { maxDelay: '1s', runtime: rt })).execute(capped.fn));
    expect(capped.times).toEqual([0, 1000, 2000]);

    const rt2 = virtualRuntime(1);
    const long = flaky(rt2, 1);
    await rt2.clock.run(() => retry(constant(60_000, { runtime: rt2 })).execute(long.fn));
    expect(long.times).toEqual([0, 30_000]);
  });

  it('treats a hand-written backoff delay that is negative or NaN as no wait', async () => {
    const rt = virtualRuntime(1);
    const odd = { delay: 0, attempt: 0, next: () => ({ ...odd, delay: Number.NaN }), withJitter: () => odd };
    const { fn, times } = flaky(rt, 2);
    await rt.clock.run(() => retry({ backoff: odd, runtime: rt }).execute(fn));
    expect(times).toEqual([0, 0, 0]);
    expect(rt.clock.pendingTimers).toBe(0);
  });
});

describe('retry: what is retried', () => {
  it('retryOn decides which errors are retried', async () => {
    const rt = virtualRuntime(1);
    const seen: unknown[] = [];
    const policy = retry(
      constant(10, {
        runtime: rt,
        retryOn: (e) => {
          seen.push(e);
          return (e as Error).message !== 'boom 2';
        },
      }),
    );
    const { fn, attempts } = flaky(rt, 5);
    const error = await rejection(rt, () => policy.execute(fn));
    expect((error as Error).message).toBe('boom 2');
    expect(attempts).toEqual([1, 2]);
    expect(seen.map((e) => (e as Error).message)).toEqual(['boom 1', 'boom 2']);
  });

  it('retryOn answers are read as booleans: a falsy answer means do not retry', async () => {
    const rt = virtualRuntime(1);
    const { fn, attempts } = flaky(rt, 5);
    const policy = retry(constant(10, { runtime: rt, retryOn: (() => undefined) as never }));
    await rejection(rt, () => policy.execute(fn));
    expect(attempts).toEqual([1]);
  });

  it.each([
    ['BrokenCircuitError', () => new BrokenCircuitError()],
    ['BulkheadRejectedError', () => new BulkheadRejectedError(10, 0)],
    ['CancelledError', () => new CancelledError()],
    ['nonRetryable(error)', () => nonRetryable(new Error('bad key'))],
  ])('never retries a %s, nor asks retryOn about it', async (_, make) => {
    const rt = virtualRuntime(1);
    let asked = 0;
    const policy = retry(constant(10, { runtime: rt, retryOn: () => ++asked > 0 }));
    const { fn, attempts } = flaky(rt, 5, make);
    const error = await rejection(rt, () => policy.execute(fn));
    expect(attempts).toEqual([1]);
    expect(asked).toBe(0);
    expect(isBulwarkError(error) || (error as Error).message === 'bad key').toBe(true);
  });

  it('retryNonRetryable: true retries them too, and asks retryOn', async () => {
    const rt = virtualRuntime(1);
    let asked = 0;
    const policy = retry(constant(10, { runtime: rt, retryNonRetryable: true, retryOn: () => ++asked > 0 }));
    const { fn, attempts } = flaky(rt, 2, (n) =>
      n === 1 ? new BrokenCircuitError() : nonRetryable(new Error()),
    );
    await expect(rt.clock.run(() => policy.execute(fn))).resolves.toBe('ok');
    expect(attempts).toEqual([1, 2, 3]);
    expect(asked).toBe(2);
  });

  it('retries non-Error values thrown', async () => {
    const rt = virtualRuntime(1);
    const { fn, attempts } = flaky(rt, 2, () => 'a string');
    await expect(rt.clock.run(() => retry(constant(1, { runtime: rt })).execute(fn))).resolves.toBe('ok');
    expect(attempts).toEqual([1, 2, 3]);
  });

  it('retryOnResult retries results like failures', async () => {
    const rt = virtualRuntime(1);
    const results = [503, 502, 200];
    let i = 0;
    const policy = retry(constant(100, { runtime: rt, retryOnResult: (r) => (r as number) >= 500 }));
    const result = await rt.clock.run(() => policy.execute(() => results[i++] as number));
    expect(result).toBe(200);
    expect(rt.clock.now()).toBe(200);
  });

  it('returns the last result, not an error, when attempts run out on results', async () => {
    const rt = virtualRuntime(1);
    let i = 0;
    const policy = retry(constant(100, { runtime: rt, retryOnResult: () => true }));
    await expect(rt.clock.run(() => policy.execute(() => ++i))).resolves.toBe(3);
    expect(rt.clock.now()).toBe(200);
  });

  it('a throwing predicate or onRetry stops retrying and rejects with its error', async () => {
    const rt = virtualRuntime(1);
    const oops = new Error('predicate bug');
    const byRetryOn = retry(
      constant(1, {
        runtime: rt,
        retryOn: () => {
          throw oops;
        },
      }),
    );
    expect(await rejection(rt, () => byRetryOn.execute(flaky(rt, 3).fn))).toBe(oops);
    const byResult = retry(
      constant(1, {
        runtime: rt,
        retryOnResult: () => {
          throw oops;
        },
      }),
    );
    expect(await rejection(rt, () => byResult.execute(() => 1))).toBe(oops);
    const stop = new Error('stop');
    const f = flaky(rt, 3);
    const byOnRetry = retry(
      constant(1, {
        runtime: rt,
        onRetry: () => {
          throw stop;
        },
      }),
    );
    expect(await rejection(rt, () => byOnRetry.execute(f.fn))).toBe(stop);
    expect(f.attempts).toEqual([1]);
  });
});

describe('retry: Retry-After hints', () => {
  const start = Date.UTC(2025, 0, 1, 12, 0, 0);

  it("waits an error's numeric retryAfter (ms) instead of the backoff, e.g. RateLimitedError", async () => {
    const rt = virtualRuntime(1);
    const { fn, times } = flaky(rt, 2, (n) => (n === 1 ? new RateLimitedError(250) : { retryAfter: '9' }));
    await rt.clock.run(() => retry(constant(1000, { runtime: rt })).execute(fn));
    expect(times).toEqual([0, 250, 1250]);
  });

  it("honours a Retry-After header in delta-seconds on the error's response", async () => {
    const rt = virtualRuntime(1);
    const error = () =>
      Object.assign(new Error('503'), {
        response: new Response(null, { status: 503, headers: { 'Retry-After': ' 2 ' } }),
      });
    const { fn, times } = flaky(rt, 1, error);
    await rt.clock.run(() => retry(constant(100, { runtime: rt })).execute(fn));
    expect(times).toEqual([0, 2000]);
  });

  it('honours a Retry-After HTTP-date, relative to the clock; a past date means no wait', async () => {
    const rt = virtualRuntime(1, { start });
    const dates = [
      'Wed, 01 Jan 2025 12:00:05 GMT', // IMF-fixdate
      'Wednesday, 01-Jan-25 12:00:07 GMT', // obsolete RFC 850
      'Wed Jan  1 12:00:10 2025', // obsolete asctime (always GMT)
      new Date(start - 60_000).toUTCString(),
    ];
    const error = (n: number) =>
      Object.assign(new Error('429'), {
        response: new Response(null, { status: 429, headers: { 'retry-after': dates[n - 1] as string } }),
      });
    const { fn, times } = flaky(rt, 4, error);
    await rt.clock.run(() => retry(constant(100, { runtime: rt, maxAttempts: 5 })).execute(fn));
    expect(times.map((t) => t - start)).toEqual([0, 5000, 7000, 10_000, 10_000]);
  });

  it('honours Retry-After on a retried Response result', async () => {
    const rt = virtualRuntime(1);
    const responses = [
      new Response('busy', { status: 503, headers: { 'Retry-After': '3' } }),
      new Response('fine', { status: 200 }),
    ];
    let i = 0;
    const policy = retry(
      constant(100, { runtime: rt, retryOnResult: (r) => (r as Response).status === 503 }),
    );
    const result = await rt.clock.run(() => policy.execute(() => responses[i++] as Response));
    expect(result.status).toBe(200);
    expect(rt.clock.now()).toBe(3000);
  });

  it('caps hints by maxDelay', async () => {
    const rt = virtualRuntime(1, { start });
    const headers = ['120', new Date(start + 3_600_000).toUTCString()];
    const error = (n: number) =>
      Object.assign(new Error('503'), {
        response: new Response(null, { headers: { 'Retry-After': headers[n - 1] as string } }),
      });
    const { fn, times } = flaky(rt, 2, error);
    await rt.clock.run(() => retry(constant(100, { runtime: rt, maxDelay: '10s' })).execute(fn));
    expect(times).toEqual([start, start + 10_000, start + 20_000]);
    const rt2 = virtualRuntime(1);
    const limited = flaky(rt2, 1, () => new RateLimitedError(3_600_000));
    await rt2.clock.run(() => retry(constant(100, { runtime: rt2 })).execute(limited.fn));
    expect(limited.times).toEqual([0, 30_000]);
  });

  it('falls back to the backoff when the header is missing or unreadable', async () => {
    const rt = virtualRuntime(1);
    const bad = ['soon', '-5', '2025-01-01', 'Wed, 01 Jan 2025 25:00:00 GMT', undefined];
    const error = (n: number) => {
      const value = bad[n - 1];
      return Object.assign(new Error('x'), {
        response: new Response(null, value === undefined ? {} : { headers: { 'Retry-After': value } }),
      });
    };
    const { fn, times } = flaky(rt, 5, error);
    await rt.clock.run(() => retry(constant(100, { runtime: rt, maxAttempts: 6 })).execute(fn));
    expect(times).toEqual([0, 100, 200, 300, 400, 500]);
  });
});

describe('retry: cancellation', () => {
  it('aborting the caller signal during a wait rejects promptly with a CancelledError and leaves no timers', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    const { fn, attempts } = flaky(rt, 10);
    const done = retry(constant(1000, { runtime: rt })).execute(fn, controller.signal);
    const outcome = done.then(
      () => 'resolved',
      (e: unknown) => e,
    );
    await rt.clock.advance(300);
    expect(rt.clock.pendingTimers).toBe(1);
    const reason = new Error('user left');
    controller.abort(reason);
    const error = await outcome;
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).cause).toBe(reason);
    expect(rt.clock.now()).toBe(300);
    expect(rt.clock.pendingTimers).toBe(0);
    expect(attempts).toEqual([1]);
  });

  it('does not start when the signal is already aborted', async () => {
    const rt = virtualRuntime(1);
    const { fn, attempts } = flaky(rt, 0);
    const error = await rejection(rt, () => retry({ runtime: rt }).execute(fn, AbortSignal.abort('gone')));
    expect(error).toBeInstanceOf(CancelledError);
    expect(attempts).toEqual([]);
  });

  it('does not retry an attempt that failed after the call was cancelled', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    let attempts = 0;
    const policy = retry(constant(10, { runtime: rt, retryNonRetryable: true }));
    const done = policy.execute(({ signal }) => {
      attempts++;
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    }, controller.signal);
    const outcome = done.catch((e: unknown) => e);
    await rt.clock.advance(5);
    controller.abort();
    // The attempt's own error (here the signal's reason) comes out unchanged.
    expect(await outcome).toMatchObject({ name: 'AbortError' });
    expect(attempts).toBe(1);
    expect(rt.clock.pendingTimers).toBe(0);
  });
});

describe('retry: events and onRetry', () => {
  it('emits policy.created, retry before each wait, and the call event', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const infos: unknown[] = [];
    const policy = retry(constant(100, { name: 'api', runtime: rt, onRetry: (i) => infos.push(i) }));
    const { fn } = flaky(rt, 2);
    await rt.clock.run(() => policy.execute(fn));
    expect(events.map((e) => ({ ...e, error: (e as { error?: Error }).error?.message }))).toEqual([
      { type: 'policy.created', source: 'api', at: 0, kind: 'retry', error: undefined },
      { type: 'retry', source: 'api', at: 0, attempt: 1, delayMs: 100, error: 'boom 1' },
      { type: 'retry', source: 'api', at: 100, attempt: 2, delayMs: 100, error: 'boom 2' },
      {
        type: 'call',
        source: 'api',
        at: 200,
        kind: 'retry',
        outcome: 'success',
        durationMs: 200,
        error: undefined,
      },
    ]);
    expect(infos).toEqual([
      { attempt: 1, delayMs: 100, error: expect.objectContaining({ message: 'boom 1' }) },
      { attempt: 2, delayMs: 100, error: expect.objectContaining({ message: 'boom 2' }) },
    ]);
  });

  it('emits retry.exhausted and a failed call when attempts run out on an error', async () => {
    const rt = virtualRuntime(1);
    const policy = retry(constant(100, { runtime: rt }));
    const events = record(rt);
    const { fn } = flaky(rt, 9);
    const error = await rejection(rt, () => policy.execute(fn));
    expect(events.map((e) => e.type)).toEqual(['retry', 'retry', 'retry.exhausted', 'call']);
    expect(events[2]).toEqual({ type: 'retry.exhausted', source: 'retry', at: 200, attempts: 3, error });
    expect(events[3]).toEqual({
      type: 'call',
      source: 'retry',
      at: 200,
      kind: 'retry',
      outcome: 'failure',
      durationMs: 200,
      error,
    });
  });

  it('a call that succeeds at once emits only its call event', async () => {
    const rt = virtualRuntime(1);
    const policy = retry({ runtime: rt });
    const events = record(rt);
    await rt.clock.run(() => policy.execute(() => 1));
    expect(events).toEqual([
      { type: 'call', source: 'retry', at: 0, kind: 'retry', outcome: 'success', durationMs: 0 },
    ]);
  });

  it('an error that is not retried ends the call without retry.exhausted', async () => {
    const rt = virtualRuntime(1);
    const policy = retry({ runtime: rt });
    const events = record(rt);
    const error = nonRetryable(new Error('no'));
    await rejection(rt, () => policy.execute(() => Promise.reject(error)));
    expect(events).toEqual([
      { type: 'call', source: 'retry', at: 0, kind: 'retry', outcome: 'failure', durationMs: 0, error },
    ]);
  });

  it('results: retry events carry the result; running out returns it and counts as a failed call', async () => {
    const rt = virtualRuntime(1);
    const policy = retry(constant(50, { runtime: rt, maxAttempts: 2, retryOnResult: (r) => r === 'busy' }));
    const events = record(rt);
    await expect(rt.clock.run(() => policy.execute(() => 'busy'))).resolves.toBe('busy');
    expect(events).toEqual([
      { type: 'retry', source: 'retry', at: 0, attempt: 1, delayMs: 50, error: 'busy' },
      {
        type: 'call',
        source: 'retry',
        at: 50,
        kind: 'retry',
        outcome: 'failure',
        durationMs: 50,
        error: 'busy',
      },
    ]);
    events.length = 0;
    let i = 0;
    await rt.clock.run(() => policy.execute(() => (i++ === 0 ? 'busy' : 'done')));
    expect(events.map((e) => [e.type, (e as { outcome?: string }).outcome])).toEqual([
      ['retry', undefined],
      ['call', 'success'],
    ]);
    expect(events[1]).toMatchObject({ durationMs: 50 });
  });

  it('a call cancelled during a wait is a cancelled call', async () => {
    const rt = virtualRuntime(1);
    const policy = retry(constant(1000, { runtime: rt }));
    const events = record(rt);
    const controller = new AbortController();
    const done = policy.execute(flaky(rt, 9).fn, controller.signal).catch((e: unknown) => e);
    await rt.clock.advance(250);
    controller.abort();
    const error = await done;
    expect(events.map((e) => e.type)).toEqual(['retry', 'call']);
    expect(events[1]).toEqual({
      type: 'call',
      source: 'retry',
      at: 250,
      kind: 'retry',
      outcome: 'cancelled',
      durationMs: 250,
      error,
    });
  });

  it('listening only for some types builds no other events', async () => {
    const rt = virtualRuntime(1);
    const policy = retry(constant(10, { runtime: rt }));
    const events: BulwarkEvent[] = [];
    rt.events.subscribe((e) => events.push(e), ['retry.exhausted']);
    await rejection(rt, () => policy.execute(flaky(rt, 9).fn));
    expect(events.map((e) => e.type)).toEqual(['retry.exhausted']);
  });

  it('concurrent calls report their own durations', async () => {
    const rt = virtualRuntime(1);
    const policy = retry(constant(100, { runtime: rt }));
    const events = record(rt);
    const a = flaky(rt, 2);
    const b = flaky(rt, 0);
    await rt.clock.run(() =>
      Promise.all([policy.execute(a.fn), rt.clock.sleep(50).then(() => policy.execute(b.fn))]),
    );
    const calls = events.filter((e) => e.type === 'call');
    expect(calls.map((e) => [e.at, (e as { durationMs: number }).durationMs])).toEqual([
      [50, 0],
      [200, 200],
    ]);
  });
});

describe('retry: options', () => {
  it('exposes its settings', () => {
    const b = backoff.constant(5);
    const policy = retry({ maxAttempts: 4, backoff: b, maxDelay: '2s', name: 'db' });
    expect([policy.kind, policy.name, policy.maxAttempts, policy.backoff, policy.maxDelay]).toEqual([
      'retry',
      'db',
      4,
      b,
      2000,
    ]);
    const defaults = retry();
    expect([defaults.name, defaults.maxAttempts, defaults.maxDelay]).toEqual(['retry', 3, 30_000]);
    expect(String(defaults.backoff)).toBe('exponential(100ms x2, max 30s, full jitter)');
  });

  it.each<[string, RetryOptions, string | RegExp]>([
    ['maxAttempts 0', { maxAttempts: 0 }, 'retry: option "maxAttempts" must be an integer >= 1, got 0'],
    ['maxAttempts 1.5', { maxAttempts: 1.5 }, 'retry: option "maxAttempts" must be an integer >= 1, got 1.5'],
    [
      'maxAttempts "3"',
      { maxAttempts: '3' as never },
      'option "maxAttempts" must be an integer >= 1, got "3"',
    ],
    [
      'backoff',
      { backoff: 'exponential' as never },
      /retry: option "backoff" must be a Backoff .*got "exponential"/,
    ],
    ['backoff {}', { backoff: {} as never }, /option "backoff" must be a Backoff .*got an object/],
    ['maxDelay -1', { maxDelay: -1 }, /retry: option "maxDelay" must be a duration >= 0ms .*got -1/],
    ['maxDelay "later"', { maxDelay: 'later' }, /retry: option "maxDelay": invalid duration "later"/],
    ['retryOn', { retryOn: true as never }, 'retry: option "retryOn" must be a function, got true'],
    [
      'retryOnResult',
      { retryOnResult: 1 as never },
      'retry: option "retryOnResult" must be a function, got 1',
    ],
    [
      'retryNonRetryable',
      { retryNonRetryable: 'yes' as never },
      'retry: option "retryNonRetryable" must be a boolean, got "yes"',
    ],
    ['onRetry', { onRetry: {} as never }, 'retry: option "onRetry" must be a function, got an object'],
    ['name', { name: '' }, 'retry: option "name" must be a non-empty string, got ""'],
    [
      'unknown key',
      { maxAtempts: 3 } as never,
      /retry: unknown option "maxAtempts"; known options are maxAttempts/,
    ],
  ])('rejects a bad %s at construction', (_, options, message) => {
    expect(() => retry(options)).toThrow(TypeError);
    expect(() => retry(options)).toThrow(message);
  });
});

/** A test interceptor policy: logs enter/exit, optionally replaces the error. */
class Probe extends BasePolicy {
  readonly kind = 'probe';
  readonly name = 'probe';
  readonly stage: Stage;
  constructor(log: string[], replace?: (error: unknown) => unknown) {
    super();
    const interceptor: Interceptor<number> = {
      enter: (call: Call) => {
        log.push(`enter ${call.attempt}`);
        return call.attempt;
      },
      exit: (_token, ok, error) => {
        log.push(`exit ${ok}`);
        return ok || replace === undefined ? error : replace(error);
      },
    };
    this.stage = { kind: 'intercept', interceptor: interceptor as Interceptor };
  }
}
