import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Deferred, deferred } from '../../test/support.js';
import type { Clock } from '../core/clock.js';
import {
  BrokenCircuitError,
  CancelledError,
  IsolatedCircuitError,
  isBulwarkError,
  TimeoutError,
} from '../core/errors.js';
import type { BulwarkEvent, BulwarkEventType } from '../core/events.js';
import type { Runtime, VirtualRuntime } from '../core/runtime.js';
import { virtualRuntime } from '../core/runtime.js';
import { backoff } from './backoff.js';
import {
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitBreakerSnapshot,
  circuitBreaker,
} from './circuit-breaker.js';
import { pipeline } from './pipeline.js';

const boom = () => Promise.reject(new Error('boom'));
const ok = () => Promise.resolve('ok');

function make(options: Omit<CircuitBreakerOptions, 'runtime'> = {}, seed = 1) {
  const rt = virtualRuntime(seed);
  const breaker = circuitBreaker({ runtime: rt, ...options });
  return { rt, breaker };
}

async function failOnce(breaker: CircuitBreaker, error: unknown = new Error('boom')): Promise<void> {
  await expect(breaker.execute(() => Promise.reject(error))).rejects.toBe(error);
}

async function failTimes(breaker: CircuitBreaker, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await failOnce(breaker);
}

async function succeed(breaker: CircuitBreaker): Promise<void> {
  await expect(breaker.execute(ok)).resolves.toBe('ok');
}

/** A call that takes `ms` of virtual time, then succeeds (or fails). */
async function timed(rt: VirtualRuntime, breaker: CircuitBreaker, ms: number, fail = false): Promise<void> {
  const p = breaker.execute(async () => {
    await rt.clock.sleep(ms);
    if (fail) throw new Error('slow boom');
    return 'done';
  });
  p.catch(() => {});
  await rt.clock.advance(ms);
  if (fail) await expect(p).rejects.toThrow('slow boom');
  else await expect(p).resolves.toBe('done');
}

async function expectRejected(breaker: CircuitBreaker, code = 'CIRCUIT_OPEN'): Promise<unknown> {
  let called = false;
  const error = await breaker
    .execute(() => {
      called = true;
      return ok();
    })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(called).toBe(false);
  expect(isBulwarkError(error, code)).toBe(true);
  return error;
}

function record(rt: Runtime, types?: BulwarkEventType[]): BulwarkEvent[] {
  const events: BulwarkEvent[] = [];
  rt.events.subscribe((e) => events.push(e), types);
  return events;
}

function transitions(events: BulwarkEvent[]): string[] {
  return events.flatMap((e) =>
    e.type === 'circuit.transition' ? [`${e.at}:${e.from}->${e.to}:${e.reason}`] : [],
  );
}

/** A runtime whose clock counts `now()` reads. */
function countingRuntime(seed = 1): { rt: Runtime; virtual: VirtualRuntime; reads: () => number } {
  const virtual = virtualRuntime(seed);
  let reads = 0;
  const clock: Clock = {
    now: () => {
      reads++;
      return virtual.clock.now();
    },
    setTimer: (ms, cb, arg) => virtual.clock.setTimer(ms, cb, arg),
    sleep: (ms, signal) => virtual.clock.sleep(ms, signal),
    timerQueue: (ms) => virtual.clock.timerQueue(ms),
  };
  return { rt: { clock, random: virtual.random, events: virtual.events }, virtual, reads: () => reads };
}

describe('circuitBreaker: consecutive strategy', () => {
  it('opens after exactly 5 consecutive failures by default and then rejects without calling', async () => {
    const { breaker } = make();
    expect(breaker.kind).toBe('circuitBreaker');
    expect(breaker.name).toBe('circuitBreaker');
    await failTimes(breaker, 4);
    expect(breaker.state).toBe('closed');
    expect(breaker.stats().consecutiveFailures).toBe(4);
    await failOnce(breaker);
    expect(breaker.state).toBe('open');
    const error = await expectRejected(breaker);
    expect(error).toBeInstanceOf(BrokenCircuitError);
    expect((error as Error).message).toBe('circuit "circuitBreaker" is open');
  });

  it('opens after `consecutiveFailures` failures in a row', async () => {
    const { breaker } = make({ consecutiveFailures: 2 });
    await failOnce(breaker);
    expect(breaker.state).toBe('closed');
    await failOnce(breaker);
    expect(breaker.state).toBe('open');
  });

  it('a success resets the count', async () => {
    const { breaker } = make({ consecutiveFailures: 3 });
    await failTimes(breaker, 2);
    await succeed(breaker);
    expect(breaker.stats().consecutiveFailures).toBe(0);
    await failTimes(breaker, 2);
    expect(breaker.state).toBe('closed');
    await failOnce(breaker);
    expect(breaker.state).toBe('open');
  });

  it('counts a call that returns a plain value or throws synchronously', async () => {
    const { breaker } = make({ consecutiveFailures: 2 });
    await expect(
      breaker.execute(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    await expect(breaker.execute(() => 7)).resolves.toBe(7);
    expect(breaker.stats().consecutiveFailures).toBe(0);
  });

  it('rejections do not count as calls', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 1, halfOpenAfter: 100 });
    await failOnce(breaker);
    for (let i = 0; i < 5; i++) await expectRejected(breaker);
    expect(breaker.stats()).toMatchObject({ state: 'open', consecutiveFailures: 1, reopenCount: 0 });
    await rt.clock.advance(100);
    await succeed(breaker);
    expect(breaker.stats()).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
  });

  it('reads the clock on the success path only when a `call` listener or slow-call detection needs it', async () => {
    const plain = countingRuntime();
    const breaker = circuitBreaker({ runtime: plain.rt });
    for (let i = 0; i < 50; i++) await succeed(breaker);
    await failOnce(breaker);
    expect(plain.reads()).toBe(0);

    // A listener for other event types does not make calls read the clock.
    plain.rt.events.subscribe(() => {}, ['circuit.transition']);
    await succeed(breaker);
    expect(plain.reads()).toBe(0);

    plain.rt.events.subscribe(() => {}, ['call']);
    await succeed(breaker);
    expect(plain.reads()).toBe(2);

    const slow = countingRuntime();
    const slowBreaker = circuitBreaker({ runtime: slow.rt, slowCallDuration: 100, slowCallRatio: 0.5 });
    await succeed(slowBreaker);
    expect(slow.reads()).toBe(2);
  });
});

describe('circuitBreaker: failure ratio over a sliding window', () => {
  it('judges the ratio only once minimumThroughput calls are in the window', async () => {
    const { rt, breaker } = make({ failureRatio: 0.5, minimumThroughput: 4 });
    const events = record(rt, ['circuit.transition']);
    await failTimes(breaker, 3);
    expect(breaker.state).toBe('closed');
    await succeed(breaker); // 4 calls, 3 failures: judged at the next failure only
    expect(breaker.state).toBe('closed');
    expect(breaker.stats().window).toEqual({ calls: 4, failures: 3, slowCalls: 0 });
    expect(breaker.stats().consecutiveFailures).toBeUndefined();
    await failOnce(breaker);
    expect(breaker.state).toBe('open');
    expect(transitions(events)).toEqual(['0:closed->open:failure-ratio']);
  });

  it('stays closed while the ratio is below failureRatio', async () => {
    const { breaker } = make({ failureRatio: 0.5, minimumThroughput: 2 });
    await succeed(breaker);
    await succeed(breaker);
    await failOnce(breaker); // 1/3
    expect(breaker.state).toBe('closed');
    await succeed(breaker);
    await failOnce(breaker); // 2/5
    expect(breaker.state).toBe('closed');
    await failOnce(breaker); // 3/6
    expect(breaker.state).toBe('open');
  });

  it('uses the exact ratio (0.3 of 10 calls opens at 3 failures)', async () => {
    const { breaker } = make({ failureRatio: 0.3, minimumThroughput: 10 });
    for (let i = 0; i < 7; i++) await succeed(breaker);
    await failTimes(breaker, 2);
    expect(breaker.state).toBe('closed');
    await failOnce(breaker);
    expect(breaker.state).toBe('open');
  });

  it('expires buckets as the window slides', async () => {
    // 10 buckets of 1s: a call at t stays in the window until the bucket after t + 9s begins.
    const { rt, breaker } = make({ failureRatio: 0.5, window: '10s', buckets: 10, minimumThroughput: 4 });
    await failTimes(breaker, 2); // bucket 0
    await rt.clock.advance(5000);
    await failOnce(breaker); // bucket 5
    await rt.clock.advance(4999); // t = 9999: bucket 9, the window still holds buckets 0..9
    expect(breaker.stats().window).toEqual({ calls: 3, failures: 3, slowCalls: 0 });
    await rt.clock.advance(1); // t = 10000: bucket 0 left the window
    expect(breaker.stats().window).toEqual({ calls: 1, failures: 1, slowCalls: 0 });
    await failTimes(breaker, 2);
    expect(breaker.state).toBe('closed'); // 3 calls < minimumThroughput
    await failOnce(breaker);
    expect(breaker.state).toBe('open');
  });

  it('counts a window of 4 failures spread over 9.5s but not over 10s', async () => {
    const spread = async (gap: number) => {
      const { rt, breaker } = make({ failureRatio: 1, window: 10_000, buckets: 10, minimumThroughput: 4 });
      for (let i = 0; i < 4; i++) {
        if (i > 0) await rt.clock.advance(gap);
        await failOnce(breaker);
      }
      return breaker.state;
    };
    expect(await spread(3000)).toBe('open'); // t = 0, 3s, 6s, 9s
    expect(await spread(3400)).toBe('closed'); // t = 0, 3.4s, 6.8s, 10.2s: the first left
  });

  it('clears every bucket after an idle gap longer than the window', async () => {
    const { rt, breaker } = make({ failureRatio: 0.5, window: '1s', buckets: 4, minimumThroughput: 10 });
    await failTimes(breaker, 3);
    await succeed(breaker);
    await rt.clock.advance(3_600_000);
    expect(breaker.stats().window).toEqual({ calls: 0, failures: 0, slowCalls: 0 });
    await failOnce(breaker);
    expect(breaker.stats().window).toEqual({ calls: 1, failures: 1, slowCalls: 0 });
  });

  it('a single bucket holds the whole window', async () => {
    const { rt, breaker } = make({ failureRatio: 1, window: 1000, buckets: 1, minimumThroughput: 2 });
    await failOnce(breaker);
    await rt.clock.advance(999);
    await failOnce(breaker);
    expect(breaker.state).toBe('open');
    const again = make({ failureRatio: 1, window: 1000, buckets: 1, minimumThroughput: 2 });
    await failOnce(again.breaker);
    await again.rt.clock.advance(1000);
    await failOnce(again.breaker);
    expect(again.breaker.state).toBe('closed');
  });
});

describe('circuitBreaker: slow calls', () => {
  it('opens when slow calls / calls reaches slowCallRatio (consecutive strategy)', async () => {
    const { rt, breaker } = make({ slowCallDuration: 100, slowCallRatio: 0.5, minimumThroughput: 4 });
    const events = record(rt, ['circuit.transition']);
    await timed(rt, breaker, 100); // exactly the threshold: not slow
    await timed(rt, breaker, 50);
    await timed(rt, breaker, 101); // slow, 1/3
    expect(breaker.stats().window).toEqual({ calls: 3, failures: 0, slowCalls: 1 });
    await timed(rt, breaker, 150); // slow, 2/4
    expect(breaker.state).toBe('open');
    expect(transitions(events)).toEqual([`${rt.clock.now()}:closed->open:slow-call-ratio`]);
  });

  it('counts slow failures as slow, and failures still open by the consecutive count', async () => {
    const { rt, breaker } = make({
      consecutiveFailures: 2,
      slowCallDuration: '1s',
      slowCallRatio: 1,
      minimumThroughput: 3,
    });
    await timed(rt, breaker, 2000, true);
    await timed(rt, breaker, 2000);
    expect(breaker.stats()).toMatchObject({ consecutiveFailures: 0, window: { calls: 2, slowCalls: 2 } });
    await timed(rt, breaker, 10, true);
    await timed(rt, breaker, 10, true);
    expect(breaker.state).toBe('open');
  });

  it('works with the failure-ratio strategy', async () => {
    const { rt, breaker } = make({
      failureRatio: 0.9,
      slowCallDuration: 50,
      slowCallRatio: 0.5,
      minimumThroughput: 2,
    });
    const events = record(rt, ['circuit.transition']);
    await timed(rt, breaker, 60);
    expect(breaker.state).toBe('closed');
    await timed(rt, breaker, 70, true); // 1 failure of 2 (< 0.9), 2 slow of 2
    expect(transitions(events)).toEqual(['130:closed->open:slow-call-ratio']);
  });

  it('a slow trial re-opens the breaker', async () => {
    const { rt, breaker } = make({
      slowCallDuration: 100,
      slowCallRatio: 1,
      minimumThroughput: 1,
      halfOpenAfter: 1000,
    });
    const events = record(rt, ['circuit.transition']);
    await timed(rt, breaker, 200);
    expect(breaker.state).toBe('open');
    await rt.clock.advance(1000);
    await timed(rt, breaker, 200); // trial: slow
    expect(breaker.state).toBe('open');
    await rt.clock.advance(1000);
    await timed(rt, breaker, 20); // trial: fast
    expect(breaker.state).toBe('closed');
    expect(transitions(events)).toEqual([
      '200:closed->open:slow-call-ratio',
      '1200:open->half-open:half-open-after',
      '1400:half-open->open:trial-slow',
      '2400:open->half-open:half-open-after',
      '2420:half-open->closed:trial-succeeded',
    ]);
  });
});

describe('circuitBreaker: half-open', () => {
  it('reads half-open once halfOpenAfter has passed, with no call, and emits the transition then', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 1 });
    const events = record(rt, ['circuit.transition']);
    await failOnce(breaker);
    await rt.clock.advance(29_999);
    expect(breaker.state).toBe('open');
    await expectRejected(breaker);
    await rt.clock.advance(1);
    expect(transitions(events)).toEqual(['0:closed->open:failure-threshold']); // lazily
    await rt.clock.advance(500);
    expect(breaker.state).toBe('half-open');
    expect(transitions(events)).toEqual([
      '0:closed->open:failure-threshold',
      '30500:open->half-open:half-open-after',
    ]);
    expect(breaker.state).toBe('half-open'); // no second event
    expect(transitions(events)).toHaveLength(2);
  });

  it('a successful trial closes; a failed trial re-opens for another full period', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 1, halfOpenAfter: '1s' });
    const events = record(rt, ['circuit.transition']);
    await failOnce(breaker);
    await rt.clock.advance(1000);
    await failOnce(breaker); // the trial
    expect(breaker.state).toBe('open');
    expect(breaker.stats()).toMatchObject({ openedAt: 1000, halfOpenAt: 2000, reopenCount: 1 });
    await rt.clock.advance(999);
    await expectRejected(breaker);
    await rt.clock.advance(1);
    await succeed(breaker);
    expect(breaker.state).toBe('closed');
    expect(breaker.stats().reopenCount).toBe(0);
    expect(transitions(events)).toEqual([
      '0:closed->open:failure-threshold',
      '1000:open->half-open:half-open-after',
      '1000:half-open->open:trial-failed',
      '2000:open->half-open:half-open-after',
      '2000:half-open->closed:trial-succeeded',
    ]);
  });

  it('halfOpenSuccesses > 1 needs that many successful trials; any failure re-opens', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 1, halfOpenAfter: 100, halfOpenSuccesses: 3 });
    await failOnce(breaker);
    await rt.clock.advance(100);
    await succeed(breaker);
    await succeed(breaker);
    expect(breaker.stats()).toMatchObject({ state: 'half-open', trialSuccesses: 2 });
    await failOnce(breaker);
    expect(breaker.state).toBe('open');
    await rt.clock.advance(100);
    expect(breaker.stats().trialSuccesses).toBe(0);
    await succeed(breaker);
    await succeed(breaker);
    expect(breaker.state).toBe('half-open');
    await succeed(breaker);
    expect(breaker.state).toBe('closed');
  });

  it('admits at most halfOpenTrials trial calls at once and rejects the rest', async () => {
    const { rt, breaker } = make({
      name: 'api',
      consecutiveFailures: 1,
      halfOpenAfter: 100,
      halfOpenTrials: 2,
      halfOpenSuccesses: 2,
    });
    const rejected = record(rt, ['circuit.rejected']);
    await failOnce(breaker);
    await rt.clock.advance(100);
    const a = deferred<string>();
    const b = deferred<string>();
    const pa = breaker.execute(() => a.promise);
    const pb = breaker.execute(() => b.promise);
    const error = await expectRejected(breaker);
    expect((error as Error).message).toBe('circuit "api" is half-open and all 2 trial call slots are taken');
    expect(breaker.stats().trialsRunning).toBe(2);
    a.resolve('a');
    await pa;
    expect(breaker.state).toBe('half-open');
    const c = deferred<string>();
    const pc = breaker.execute(() => c.promise); // a's slot is free again
    await expectRejected(breaker);
    b.resolve('b');
    await pb;
    expect(breaker.state).toBe('closed'); // two successful trials
    c.resolve('c');
    await pc;
    expect(breaker.stats()).toMatchObject({ state: 'closed', trialsRunning: 0 });
    expect(rejected.map((e) => (e.type === 'circuit.rejected' ? e.state : ''))).toEqual([
      'half-open',
      'half-open',
    ]);
  });

  it('a call admitted while closed that ends while half-open is not a trial', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 1, halfOpenAfter: 100 });
    const slow = deferred<string>();
    const pending = breaker.execute(() => slow.promise);
    await failOnce(breaker);
    await rt.clock.advance(100);
    expect(breaker.state).toBe('half-open');
    slow.reject(new Error('late'));
    await expect(pending).rejects.toThrow('late');
    expect(breaker.stats()).toMatchObject({ state: 'half-open', trialsRunning: 0 });
    await succeed(breaker);
    expect(breaker.state).toBe('closed');
  });

  it('a trial still running from an earlier half-open period keeps its slot but is not counted', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 1, halfOpenAfter: 100, halfOpenTrials: 2 });
    await failOnce(breaker);
    await rt.clock.advance(100);
    const hung = deferred<string>();
    const first = breaker.execute(() => hung.promise);
    await failOnce(breaker); // second trial fails: re-open
    await rt.clock.advance(100);
    expect(breaker.stats()).toMatchObject({ state: 'half-open', trialsRunning: 1 });
    const other = deferred<string>();
    const second = breaker.execute(() => other.promise);
    await expectRejected(breaker); // 2 trials run: the old one and this one
    hung.reject(new Error('old trial'));
    await expect(first).rejects.toThrow('old trial');
    expect(breaker.stats()).toMatchObject({ state: 'half-open', trialsRunning: 1 }); // not a failed trial
    other.resolve('ok');
    await second;
    expect(breaker.state).toBe('closed');
  });

  it('with a Backoff, each consecutive re-open waits the next step; closing starts it over', async () => {
    const { rt, breaker } = make({
      consecutiveFailures: 1,
      halfOpenAfter: backoff.exponential({ initial: '1s', max: '3s' }),
    });
    const events = record(rt, ['circuit.transition']);
    await failOnce(breaker); // open at 0 for 1s
    await rt.clock.advance(999);
    expect(breaker.state).toBe('open');
    await rt.clock.advance(1);
    await failOnce(breaker); // t = 1000, re-open for 2s
    expect(breaker.toJSON().reopenCount).toBe(1);
    await rt.clock.advance(1999);
    expect(breaker.state).toBe('open');
    await rt.clock.advance(1);
    await failOnce(breaker); // t = 3000, re-open for min(4s, 3s)
    await rt.clock.advance(3000);
    await failOnce(breaker); // t = 6000, 3s again (max)
    expect(breaker.stats()).toMatchObject({ halfOpenAt: 9000, reopenCount: 3 });
    await rt.clock.advance(3000);
    await succeed(breaker); // t = 9000, closed
    expect(breaker.toJSON().reopenCount).toBe(0);
    await failOnce(breaker); // open again for 1s
    expect(breaker.stats().halfOpenAt).toBe(10_000);
    expect(transitions(events).filter((t) => t.includes('->open'))).toEqual([
      '0:closed->open:failure-threshold',
      '1000:half-open->open:trial-failed',
      '3000:half-open->open:trial-failed',
      '6000:half-open->open:trial-failed',
      '9000:closed->open:failure-threshold',
    ]);
  });

  it('draws a jittered backoff from the runtime random: same seed, same delays', async () => {
    const delays = async (seed: number) => {
      const rt = virtualRuntime(seed);
      const breaker = circuitBreaker({
        runtime: rt,
        consecutiveFailures: 1,
        halfOpenAfter: backoff.exponential({ initial: '1s' }).withJitter('full'),
      });
      const out: number[] = [];
      await failOnce(breaker);
      for (let i = 0; i < 4; i++) {
        const at = breaker.stats().halfOpenAt as number;
        out.push(at - rt.clock.now());
        await rt.clock.advance(at - rt.clock.now());
        await failOnce(breaker);
      }
      return out;
    };
    const a = await delays(7);
    expect(await delays(7)).toEqual(a);
    expect(await delays(8)).not.toEqual(a);
    a.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(1000 * 2 ** i);
    });
  });
});

describe('circuitBreaker: isolate and reset', () => {
  it('isolate() rejects every call with IsolatedCircuitError until reset()', async () => {
    const { rt, breaker } = make({ name: 'pay', halfOpenAfter: 100 });
    const events = record(rt, ['circuit.transition', 'circuit.rejected']);
    await failTimes(breaker, 3);
    breaker.isolate();
    breaker.isolate(); // idempotent
    expect(breaker.state).toBe('isolated');
    const error = await expectRejected(breaker, 'CIRCUIT_ISOLATED');
    expect(error).toBeInstanceOf(IsolatedCircuitError);
    expect((error as Error).message).toBe('circuit "pay" is isolated');
    await rt.clock.advance(3_600_000);
    expect(breaker.state).toBe('isolated');
    breaker.reset();
    expect(breaker.stats()).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
    await failTimes(breaker, 4);
    expect(breaker.state).toBe('closed');
    expect(events.map((e) => `${e.at}:${e.type}`)).toEqual([
      '0:circuit.transition',
      '0:circuit.rejected',
      '3600000:circuit.transition',
    ]);
    expect(transitions(events)).toEqual(['0:closed->isolated:isolate', '3600000:isolated->closed:reset']);
  });

  it('reset() closes an open breaker and clears its counters and backoff', async () => {
    const { rt, breaker } = make({
      failureRatio: 0.5,
      minimumThroughput: 2,
      halfOpenAfter: backoff.exponential({ initial: 100 }),
    });
    const events = record(rt, ['circuit.transition']);
    await failTimes(breaker, 2);
    await rt.clock.advance(100);
    await failOnce(breaker);
    expect(breaker.stats()).toMatchObject({ state: 'open', reopenCount: 1, window: { calls: 2 } });
    breaker.reset();
    expect(breaker.stats()).toEqual({
      state: 'closed',
      trialsRunning: 0,
      trialSuccesses: 0,
      reopenCount: 0,
      window: { calls: 0, failures: 0, slowCalls: 0 },
    });
    await failTimes(breaker, 2);
    expect(breaker.stats().halfOpenAt).toBe(200); // the backoff started over
    expect(transitions(events).at(-2)).toBe('100:open->closed:reset');
  });

  it('reset() while closed emits nothing and stops counting calls in flight', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 2 });
    const events = record(rt, ['circuit.transition']);
    const inFlight = deferred<string>();
    const p = breaker.execute(() => inFlight.promise);
    await failOnce(breaker);
    breaker.reset();
    inFlight.reject(new Error('late'));
    await expect(p).rejects.toThrow('late');
    expect(breaker.stats().consecutiveFailures).toBe(0);
    expect(events).toEqual([]);
  });

  it('isolate() releases trial slots; reset() then closes', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 1, halfOpenAfter: 10 });
    await failOnce(breaker);
    await rt.clock.advance(10);
    const trial = deferred<string>();
    const p = breaker.execute(() => trial.promise);
    breaker.isolate();
    expect(breaker.stats().trialsRunning).toBe(0);
    trial.resolve('late');
    await p;
    expect(breaker.stats()).toMatchObject({ state: 'isolated', trialsRunning: 0 });
    breaker.reset();
    expect(breaker.state).toBe('closed');
  });
});

describe('circuitBreaker: isFailure', () => {
  it('errors it returns false for count as neither failure nor success', async () => {
    class NotFound extends Error {}
    const { breaker } = make({ consecutiveFailures: 3, isFailure: (e) => !(e instanceof NotFound) });
    await failTimes(breaker, 2);
    await failOnce(breaker, new NotFound('404'));
    expect(breaker.stats().consecutiveFailures).toBe(2); // not reset either
    await failOnce(breaker);
    expect(breaker.state).toBe('open');
  });

  it('ignored errors leave the window alone', async () => {
    const { breaker } = make({ failureRatio: 0.5, minimumThroughput: 1, isFailure: (e) => e !== 'meh' });
    await failOnce(breaker, 'meh');
    expect(breaker.stats().window).toEqual({ calls: 0, failures: 0, slowCalls: 0 });
  });

  it('by default ignores CancelledError and counts every other error, Bulwark errors included', async () => {
    const { breaker } = make({ consecutiveFailures: 2 });
    await failOnce(breaker, new CancelledError('stop'));
    await failOnce(breaker, new CancelledError('stop'));
    expect(breaker.state).toBe('closed');
    await failOnce(breaker, new TimeoutError(10));
    await failOnce(breaker, 'a string');
    expect(breaker.state).toBe('open');
  });

  it('an ignored trial frees its slot and decides nothing', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 1, halfOpenAfter: 10 });
    await failOnce(breaker);
    await rt.clock.advance(10);
    await failOnce(breaker, new CancelledError());
    expect(breaker.stats()).toMatchObject({ state: 'half-open', trialsRunning: 0 });
  });

  it('a predicate that throws counts the error as a failure', async () => {
    const { breaker } = make({
      consecutiveFailures: 1,
      isFailure: () => {
        throw new Error('bad predicate');
      },
    });
    await failOnce(breaker);
    expect(breaker.state).toBe('open');
  });
});

describe('circuitBreaker: events', () => {
  it('emits an exact sequence: created, calls, transitions, rejections', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const breaker = circuitBreaker({ runtime: rt, name: 'db', consecutiveFailures: 2, halfOpenAfter: '1s' });
    await rt.clock.advance(10);
    await failOnce(breaker);
    await timed(rt, breaker, 4, true); // t = 14
    await expectRejected(breaker);
    await rt.clock.advance(1000); // t = 1014
    await timed(rt, breaker, 5); // trial, t = 1019
    const cancelled = new CancelledError('bye');
    await failOnce(breaker, cancelled);
    const error = expect.any(Error);
    expect(events).toEqual([
      { type: 'policy.created', source: 'db', at: 0, kind: 'circuitBreaker' },
      {
        type: 'call',
        source: 'db',
        at: 10,
        kind: 'circuitBreaker',
        outcome: 'failure',
        durationMs: 0,
        error,
      },
      // A call's event follows what its end did to the breaker (the runner reports it after the exit).
      {
        type: 'circuit.transition',
        source: 'db',
        at: 14,
        from: 'closed',
        to: 'open',
        reason: 'failure-threshold',
      },
      {
        type: 'call',
        source: 'db',
        at: 14,
        kind: 'circuitBreaker',
        outcome: 'failure',
        durationMs: 4,
        error,
      },
      { type: 'circuit.rejected', source: 'db', at: 14, state: 'open' },
      {
        type: 'call',
        source: 'db',
        at: 14,
        kind: 'circuitBreaker',
        outcome: 'rejected',
        durationMs: 0,
        error: expect.any(BrokenCircuitError),
      },
      {
        type: 'circuit.transition',
        source: 'db',
        at: 1014,
        from: 'open',
        to: 'half-open',
        reason: 'half-open-after',
      },
      {
        type: 'circuit.transition',
        source: 'db',
        at: 1019,
        from: 'half-open',
        to: 'closed',
        reason: 'trial-succeeded',
      },
      { type: 'call', source: 'db', at: 1019, kind: 'circuitBreaker', outcome: 'success', durationMs: 5 },
      {
        type: 'call',
        source: 'db',
        at: 1019,
        kind: 'circuitBreaker',
        outcome: 'cancelled',
        durationMs: 0,
        error: cancelled,
      },
    ]);
  });

  it('builds no event when nobody listens', async () => {
    const { breaker } = make({ consecutiveFailures: 1, halfOpenAfter: 0 });
    await failOnce(breaker);
    await succeed(breaker);
    expect(breaker.state).toBe('closed');
  });

  it('works inside a pipeline', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 2 });
    const events = record(rt, ['circuit.transition']);
    const p = pipeline(breaker);
    await expect(p.execute(boom)).rejects.toThrow('boom');
    await expect(p.execute(boom)).rejects.toThrow('boom');
    await expect(p.execute(ok)).rejects.toBeInstanceOf(BrokenCircuitError);
    expect(transitions(events)).toEqual(['0:closed->open:failure-threshold']);
  });
});

describe('circuitBreaker: toJSON and restore', () => {
  it('round-trips an open breaker: it stays open until openedAt + halfOpenAfter on the new clock', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 2, halfOpenAfter: '30s' });
    await rt.clock.advance(1000);
    await failTimes(breaker, 2);
    const snapshot = JSON.parse(JSON.stringify(breaker)) as CircuitBreakerSnapshot;
    expect(snapshot).toEqual({ state: 'open', openedAt: 1000, reopenCount: 0, consecutiveFailures: 2 });

    const rt2 = virtualRuntime(2, { start: 5000 });
    const events = record(rt2, ['circuit.transition']);
    const restored = circuitBreaker({
      runtime: rt2,
      consecutiveFailures: 2,
      halfOpenAfter: '30s',
      restore: snapshot,
    });
    expect(transitions(events)).toEqual(['5000:closed->open:restore']);
    await rt2.clock.advance(25_999); // t = 30999
    expect(restored.state).toBe('open');
    await expectRejected(restored);
    await rt2.clock.advance(1); // t = 31000
    expect(restored.state).toBe('half-open');
    await succeed(restored);
    expect(restored.toJSON()).toEqual({ state: 'closed', reopenCount: 0, consecutiveFailures: 0 });
  });

  it('round-trips the consecutive count and a closed state (no event)', async () => {
    const { breaker } = make({ consecutiveFailures: 3 });
    await failTimes(breaker, 2);
    const rt2 = virtualRuntime(2);
    const events = record(rt2, ['circuit.transition']);
    const restored = circuitBreaker({ runtime: rt2, consecutiveFailures: 3, restore: breaker.toJSON() });
    expect(events).toEqual([]);
    await failOnce(restored);
    expect(restored.state).toBe('open');
  });

  it('round-trips the window; buckets keep their age', async () => {
    const options = { failureRatio: 0.5, window: '10s', buckets: 10, minimumThroughput: 4 } as const;
    const { rt, breaker } = make(options);
    await failOnce(breaker); // bucket 0
    await rt.clock.advance(3000);
    await failOnce(breaker);
    await succeed(breaker); // bucket 3
    await rt.clock.advance(500);
    const snapshot = JSON.parse(JSON.stringify(breaker.toJSON())) as CircuitBreakerSnapshot;
    expect(snapshot.window).toEqual({
      windowMs: 10_000,
      at: 3500,
      buckets: [
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
        [1, 1, 0],
        [0, 0, 0],
        [0, 0, 0],
        [2, 1, 0],
      ],
    });
    const rt2 = virtualRuntime(2, { start: 3500 });
    const restored = circuitBreaker({ runtime: rt2, ...options, restore: snapshot });
    expect(restored.stats().window).toEqual({ calls: 3, failures: 2, slowCalls: 0 });
    expect(restored.toJSON()).toEqual(snapshot);
    await rt2.clock.advance(6500); // t = 10000: the bucket of t = 0 expires
    expect(restored.stats().window).toEqual({ calls: 2, failures: 1, slowCalls: 0 });
  });

  it('round-trips the backoff step of a re-opened breaker', async () => {
    const options = {
      consecutiveFailures: 1,
      halfOpenAfter: backoff.exponential({ initial: '1s', max: '1m' }),
    };
    const { rt, breaker } = make(options);
    await failOnce(breaker);
    await rt.clock.advance(1000);
    await failOnce(breaker);
    await rt.clock.advance(2000);
    await failOnce(breaker); // t = 3000, reopenCount 2, waits 4s
    const snapshot = breaker.toJSON();
    expect(snapshot).toMatchObject({ state: 'open', openedAt: 3000, reopenCount: 2 });
    const rt2 = virtualRuntime(2, { start: 3000 });
    const restored = circuitBreaker({ runtime: rt2, ...options, restore: snapshot });
    expect(restored.stats().halfOpenAt).toBe(7000);
    await rt2.clock.advance(4000);
    await failOnce(restored); // next step: 8s
    expect(restored.stats()).toMatchObject({ halfOpenAt: 15_000, reopenCount: 3 });
  });

  it('round-trips isolated and half-open', async () => {
    const { rt, breaker } = make({ consecutiveFailures: 1, halfOpenAfter: 100 });
    breaker.isolate();
    const isolated = circuitBreaker({ runtime: virtualRuntime(2), restore: breaker.toJSON() });
    expect(isolated.state).toBe('isolated');
    await expectRejected(isolated, 'CIRCUIT_ISOLATED');

    breaker.reset();
    await failOnce(breaker);
    await rt.clock.advance(100);
    const snapshot = breaker.toJSON();
    expect(snapshot).toEqual({ state: 'half-open', openedAt: 0, reopenCount: 0, consecutiveFailures: 1 });
    const halfOpen = circuitBreaker({ runtime: virtualRuntime(2), halfOpenAfter: 100, restore: snapshot });
    expect(halfOpen.state).toBe('half-open');
    await failOnce(halfOpen);
    expect(halfOpen.stats()).toMatchObject({ state: 'open', reopenCount: 1, halfOpenAt: 100 });
  });

  it('a snapshot from a clock ahead of this one opens for at most one period from now', async () => {
    const restored = circuitBreaker({
      runtime: virtualRuntime(1),
      halfOpenAfter: 100,
      restore: { state: 'open', openedAt: 1_700_000_000_000, reopenCount: 0 },
    });
    expect(restored.stats()).toMatchObject({ openedAt: 0, halfOpenAt: 100 });
  });

  it('rejects a bad snapshot with a TypeError naming the field', () => {
    const bad =
      (restore: unknown, extra: Omit<CircuitBreakerOptions, 'runtime' | 'restore'> = {}) =>
      () =>
        circuitBreaker({ runtime: virtualRuntime(1), ...extra, restore: restore as CircuitBreakerSnapshot });
    expect(bad('open')).toThrow(/option "restore" must be a snapshot from toJSON\(\), got "open"/);
    expect(bad(null)).toThrow(TypeError);
    expect(bad({ state: 'ajar', reopenCount: 0 })).toThrow(/option "restore.state" must be one of/);
    expect(bad({ state: 'toString', reopenCount: 0 })).toThrow(/"restore.state"/);
    expect(bad({ state: 'open', reopenCount: 0 })).toThrow(
      /option "restore.openedAt" must be a finite clock time \(required when open\), got undefined/,
    );
    expect(bad({ state: 'closed', openedAt: 'x', reopenCount: 0 })).toThrow(/"restore.openedAt"/);
    expect(bad({ state: 'closed', reopenCount: -1 })).toThrow(
      /option "restore.reopenCount" must be an integer >= 0, got -1/,
    );
    expect(bad({ state: 'closed' })).toThrow(/"restore.reopenCount"/);
    expect(bad({ state: 'closed', reopenCount: 0, consecutiveFailures: 1.5 })).toThrow(
      /"restore.consecutiveFailures" must be an integer >= 0, got 1.5/,
    );
    expect(bad({ state: 'closed', reopenCount: 0, consecutiveFailures: 1 }, { failureRatio: 0.5 })).toThrow(
      /"restore.consecutiveFailures" must be absent: this breaker uses the failure-ratio strategy/,
    );
    expect(bad({ state: 'closed', reopenCount: 0, extra: 1 })).toThrow(/unknown field "restore.extra"/);
    const window = { windowMs: 10_000, at: 0, buckets: Array.from({ length: 10 }, () => [0, 0, 0]) };
    expect(bad({ state: 'closed', reopenCount: 0, window })).toThrow(/"restore.window" must be absent/);
    const ratio = { failureRatio: 0.5 } as const;
    expect(bad({ state: 'closed', reopenCount: 0, window }, ratio)).not.toThrow();
    expect(bad({ state: 'closed', reopenCount: 0, window: [] }, ratio)).toThrow(
      /"restore.window" must be an object/,
    );
    expect(bad({ state: 'closed', reopenCount: 0, window: { ...window, windowMs: 5000 } }, ratio)).toThrow(
      /"restore.window.windowMs" must be 10000/,
    );
    expect(bad({ state: 'closed', reopenCount: 0, window: { ...window, at: Number.NaN } }, ratio)).toThrow(
      /"restore.window.at"/,
    );
    expect(
      bad({ state: 'closed', reopenCount: 0, window: { ...window, buckets: [[0, 0, 0]] } }, ratio),
    ).toThrow(/"restore.window.buckets" must be an array of 10 buckets/);
    const buckets = window.buckets.map((b, i) => (i === 3 ? [1, 2, 0] : b));
    expect(bad({ state: 'closed', reopenCount: 0, window: { ...window, buckets } }, ratio)).toThrow(
      /"restore.window.buckets\[3\]" must be \[calls, failures, slowCalls\]/,
    );
  });
});

describe('circuitBreaker: options', () => {
  const rt = virtualRuntime(1);
  const build = (options: Record<string, unknown>) => () =>
    circuitBreaker({ runtime: rt, ...(options as CircuitBreakerOptions) });
  const rejects = (options: Record<string, unknown>, message: RegExp) => {
    expect(build(options)).toThrow(TypeError);
    expect(build(options)).toThrow(message);
  };

  it('accepts every documented option', () => {
    expect(
      build({
        name: 'x',
        failureRatio: 0.5,
        window: '1m',
        buckets: 6,
        minimumThroughput: 20,
        slowCallDuration: '2s',
        slowCallRatio: 0.8,
        halfOpenAfter: '5s',
        halfOpenTrials: 3,
        halfOpenSuccesses: 2,
        isFailure: () => true,
      }),
    ).not.toThrow();
    expect(new CircuitBreaker().name).toBe('circuitBreaker');
  });

  it('emits policy.created when listening', () => {
    const rt2 = virtualRuntime(1, { start: 42 });
    const events = record(rt2);
    circuitBreaker({ runtime: rt2, name: 'svc' });
    expect(events).toEqual([{ type: 'policy.created', source: 'svc', at: 42, kind: 'circuitBreaker' }]);
  });

  it('validates each option, naming it, the value and the accepted range', () => {
    rejects(
      { consecutiveFailures: 0 },
      /circuitBreaker: option "consecutiveFailures" must be an integer >= 1, got 0/,
    );
    rejects({ consecutiveFailures: 1.5 }, /"consecutiveFailures" must be an integer >= 1, got 1.5/);
    rejects({ consecutiveFailures: '3' }, /"consecutiveFailures" must be an integer >= 1, got "3"/);
    rejects({ failureRatio: 0 }, /option "failureRatio" must be a ratio in \(0, 1\], got 0/);
    rejects({ failureRatio: 1.5 }, /"failureRatio" must be a ratio in \(0, 1\], got 1.5/);
    rejects(
      { failureRatio: 0.5, consecutiveFailures: 3 },
      /"consecutiveFailures" must be absent when "failureRatio" is set/,
    );
    rejects({ failureRatio: 0.5, window: 0 }, /option "window" must be a duration > 0ms/);
    rejects({ failureRatio: 0.5, window: 'soon' }, /option "window": invalid duration "soon"/);
    rejects({ failureRatio: 0.5, buckets: 0 }, /option "buckets" must be an integer from 1 to 100000, got 0/);
    rejects({ failureRatio: 0.5, buckets: 2.5 }, /"buckets" must be an integer from 1 to 100000, got 2.5/);
    rejects(
      { failureRatio: 0.5, minimumThroughput: 0 },
      /option "minimumThroughput" must be an integer >= 1, got 0/,
    );
    rejects({ window: '10s' }, /option "window" applies only to the sliding window/);
    rejects({ buckets: 10 }, /option "buckets" applies only to the sliding window/);
    rejects({ minimumThroughput: 10 }, /option "minimumThroughput" applies only to the sliding window/);
    rejects({ slowCallDuration: '1s' }, /option "slowCallDuration" requires "slowCallRatio"/);
    rejects({ slowCallRatio: 0.5 }, /option "slowCallRatio" requires "slowCallDuration"/);
    rejects(
      { slowCallDuration: 0, slowCallRatio: 0.5 },
      /option "slowCallDuration" must be a duration > 0ms/,
    );
    rejects({ slowCallDuration: -5, slowCallRatio: 0.5 }, /"slowCallDuration" must be a duration > 0ms/);
    rejects(
      { slowCallDuration: 10, slowCallRatio: 0 },
      /option "slowCallRatio" must be a ratio in \(0, 1\], got 0/,
    );
    rejects({ slowCallDuration: 10, slowCallRatio: 2 }, /"slowCallRatio" must be a ratio in \(0, 1\], got 2/);
    rejects({ halfOpenAfter: -1 }, /option "halfOpenAfter" must be a duration >= 0ms/);
    rejects({ halfOpenAfter: '3 days' }, /option "halfOpenAfter": invalid duration/);
    rejects({ halfOpenAfter: { delay: 'x' } }, /option "halfOpenAfter" must be a duration or a Backoff/);
    rejects({ halfOpenTrials: 0 }, /option "halfOpenTrials" must be an integer >= 1, got 0/);
    rejects({ halfOpenSuccesses: 0 }, /option "halfOpenSuccesses" must be an integer >= 1, got 0/);
    rejects({ isFailure: true }, /option "isFailure" must be a function, got true/);
    rejects({ name: '' }, /option "name" must be a non-empty string/);
    rejects({ consecutiveFaliures: 3 }, /circuitBreaker: unknown option "consecutiveFaliures"/);
  });
});

describe('circuitBreaker: property', () => {
  type Action = { t: 'start' } | { t: 'ok' | 'fail'; i: number } | { t: 'advance'; ms: number };
  // Weighted so that runs open the breaker, reach half-open and pile up concurrent trials.
  const action: fc.Arbitrary<Action> = fc.oneof(
    { arbitrary: fc.constant<Action>({ t: 'start' }), weight: 5 },
    { arbitrary: fc.record({ t: fc.constant<'fail'>('fail'), i: fc.nat() }), weight: 3 },
    { arbitrary: fc.record({ t: fc.constant<'ok'>('ok'), i: fc.nat() }), weight: 2 },
    {
      arbitrary: fc.record({ t: fc.constant<'advance'>('advance'), ms: fc.integer({ min: 0, max: 150 }) }),
      weight: 2,
    },
  );

  it('never runs more than halfOpenTrials trial calls at once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(action, { minLength: 10, maxLength: 150, size: 'max' }),
        async (halfOpenTrials, halfOpenSuccesses, consecutiveFailures, actions) => {
          const rt = virtualRuntime(1);
          const breaker = circuitBreaker({
            runtime: rt,
            consecutiveFailures,
            halfOpenAfter: 100,
            halfOpenTrials,
            halfOpenSuccesses,
          });
          const running: { d: Deferred<string>; p: Promise<unknown>; trial: boolean }[] = [];
          let trials = 0;
          for (const a of actions) {
            if (a.t === 'start') {
              const state = breaker.state;
              let admitted = false;
              const d = deferred<string>();
              const p = breaker
                .execute(() => {
                  admitted = true;
                  return d.promise;
                })
                .catch((e: unknown) => e);
              if (admitted) {
                expect(state === 'closed' || (state === 'half-open' && trials < halfOpenTrials)).toBe(true);
                const trial = state === 'half-open';
                if (trial) trials++;
                running.push({ d, p, trial });
              } else {
                expect(isBulwarkError(await p, 'CIRCUIT_OPEN')).toBe(true);
                expect(state === 'open' || (state === 'half-open' && trials === halfOpenTrials)).toBe(true);
              }
            } else if (a.t === 'advance') {
              await rt.clock.advance(a.ms);
            } else if (running.length > 0) {
              const [call] = running.splice(a.i % running.length, 1);
              if (call === undefined) continue;
              if (a.t === 'ok') call.d.resolve('ok');
              else call.d.reject(new Error('fail'));
              await call.p;
              if (call.trial) trials--;
            }
            expect(trials).toBeLessThanOrEqual(halfOpenTrials);
            expect(breaker.stats().trialsRunning).toBe(trials);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
