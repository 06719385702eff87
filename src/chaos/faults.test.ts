import { getEventListeners } from 'node:events';
import { getSystemErrorName } from 'node:util';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deferred, failure, record, settle } from '../../test/support.js';
import { CancelledError, TimeoutError } from '../core/errors.js';
import type { BulwarkEvent, EventOf } from '../core/events.js';
import { lognormalFromMedianP99 } from '../core/random.js';
import { type VirtualRuntime, virtualRuntime } from '../core/runtime.js';
import { backoff } from '../policy/backoff.js';
import { Call, type PolicyContext } from '../policy/context.js';
import { fallback } from '../policy/fallback.js';
import { pipeline } from '../policy/pipeline.js';
import type { Policy } from '../policy/policy.js';
import { retry } from '../policy/retry.js';
import { timeout } from '../policy/timeout.js';
import {
  chaosEnabled,
  type ErrorFaultOptions,
  type Fault,
  faults,
  inject,
  isFault,
  type LatencyFaultOptions,
  type OutcomeFaultOptions,
} from './faults.js';
import { type Schedule, schedule } from './schedule.js';

type Injected = EventOf<'fault.injected'>;

function injected(events: readonly BulwarkEvent[]): Injected[] {
  return events.filter((e): e is Injected => e.type === 'fault.injected');
}

/** A function that counts its calls and returns 'real'. */
function counted() {
  const fn = (_ctx: PolicyContext) => {
    fn.calls++;
    return Promise.resolve('real');
  };
  fn.calls = 0;
  return fn;
}

/** Runs `count` calls through `policy` one after another and returns how each ended. */
async function drive(rt: VirtualRuntime, policy: Policy, count: number): Promise<string[]> {
  return rt.clock.run(async () => {
    const outcomes: string[] = [];
    for (let i = 0; i < count; i++) {
      try {
        outcomes.push(await policy.execute(() => 'ok'));
      } catch (error) {
        outcomes.push((error as { code?: string }).code ?? 'error');
      }
    }
    return outcomes;
  });
}

// BULWARK_CHAOS is read when a fault is built; the tests that set it restore it here.
let savedChaos: string | undefined;
beforeEach(() => {
  savedChaos = process.env.BULWARK_CHAOS;
  delete process.env.BULWARK_CHAOS;
});
afterEach(() => {
  if (savedChaos === undefined) delete process.env.BULWARK_CHAOS;
  else process.env.BULWARK_CHAOS = savedChaos;
});

describe('faults: schedules and reproducibility', () => {
  function decisions(seed: number, name?: string): Injected[] {
    const rt = virtualRuntime(seed);
    const events = record(rt);
    const fault = faults.error({ schedule: schedule.rate(0.3), runtime: rt, ...(name ? { name } : {}) });
    for (let i = 0; i < 200; i++) fault.execute(() => 'ok').catch(() => {});
    return injected(events);
  }

  it('the same seed gives the identical sequence of decisions; another seed another one', () => {
    const a = decisions(42);
    expect(a.length).toBeGreaterThan(30);
    expect(decisions(42)).toEqual(a);
    expect(decisions(43).map((e) => e.call)).not.toEqual(a.map((e) => e.call));
    // Each fault draws from its own stream, forked by name from the runtime's.
    expect(decisions(42, 'db').map((e) => e.call)).not.toEqual(a.map((e) => e.call));
  });

  it('property: for any seed, replaying gives the same decisions', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        expect(decisions(seed)).toEqual(decisions(seed));
      }),
      { numRuns: 25 },
    );
  });

  it('rate(0.3) over 100,000 calls fires within the 99.9% binomial bound of 30,000', async () => {
    const rt = virtualRuntime(7);
    const fault = faults.error({ schedule: schedule.rate(0.3), runtime: rt });
    const n = 100_000;
    const p = 0.3;
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) pending.push(fault.execute(() => 'ok').catch(() => 'failed'));
    const outcomes = await Promise.all(pending);
    const failed = outcomes.filter((o) => o === 'failed').length;
    // Two-sided 99.9%: |X - np| <= z * sqrt(n p (1 - p)) with z = 3.2905, i.e. 476.8 calls.
    const bound = 3.2905 * Math.sqrt(n * p * (1 - p));
    expect(bound).toBeCloseTo(476.8, 1);
    expect(Math.abs(failed - n * p)).toBeLessThanOrEqual(bound);
    expect(fault.calls).toBe(n);
    expect(fault.injected).toBe(failed);
  });

  it('firstN, everyNth and sequence decide on the fault’s own call count', async () => {
    const rt = virtualRuntime(1);
    const first = faults.error({ schedule: schedule.firstN(2), runtime: rt });
    expect(await drive(rt, first, 4)).toEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ok', 'ok']);
    const nth = faults.error({ schedule: schedule.everyNth(3), runtime: rt });
    expect(await drive(rt, nth, 7)).toEqual(['ok', 'ok', 'ECONNREFUSED', 'ok', 'ok', 'ECONNREFUSED', 'ok']);
    const script = faults.error({
      kind: 'ECONNRESET',
      schedule: schedule.sequence(['fail', 'ok'], { repeat: true }),
      runtime: rt,
    });
    expect(await drive(rt, script, 5)).toEqual(['ECONNRESET', 'ok', 'ECONNRESET', 'ok', 'ECONNRESET']);
    expect([script.calls, script.injected]).toEqual([5, 3]);
  });

  it('window is measured from the fault’s construction on the runtime clock', async () => {
    const rt = virtualRuntime(1, { start: 1_000_000 });
    const fault = faults.error({ schedule: schedule.window('10s', '20s'), runtime: rt });
    const events = record(rt);
    const outcomes = await rt.clock.run(async () => {
      const out: string[] = [];
      for (const t of [0, 9_999, 10_000, 19_999, 20_000]) {
        await rt.clock.sleep(1_000_000 + t - rt.clock.now());
        out.push(await fault.execute(() => 'ok').catch((e: { code: string }) => e.code));
      }
      return out;
    });
    expect(outcomes).toEqual(['ok', 'ok', 'ECONNREFUSED', 'ECONNREFUSED', 'ok']);
    expect(injected(events).map((e) => [e.at, e.call])).toEqual([
      [1_010_000, 3],
      [1_019_999, 4],
    ]);
  });

  it('emits policy.created and fault.injected { fault, call, details } with source and virtual time', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt, true);
    const error = faults.error({
      name: 'db',
      target: 'db:5432',
      schedule: schedule.everyNth(2),
      runtime: rt,
    });
    const slow = faults.latency({ delay: '150ms', schedule: schedule.firstN(1), runtime: rt });
    const hang = faults.timeout({ schedule: schedule.never(), runtime: rt });
    const busy = faults.outcome({ value: 'busy', runtime: rt });
    expect([error.kind, slow.kind, hang.kind, busy.kind]).toEqual([
      'fault.error',
      'fault.latency',
      'fault.timeout',
      'fault.outcome',
    ]);
    expect([error.name, slow.name, hang.name, busy.name]).toEqual(['db', 'latency', 'timeout', 'outcome']);
    const p = pipeline(slow, error, hang);
    await drive(rt, p, 3);
    await drive(rt, busy, 1);
    expect(events).toEqual([
      { type: 'policy.created', source: 'db', at: 0, kind: 'fault.error' },
      { type: 'policy.created', source: 'latency', at: 0, kind: 'fault.latency' },
      { type: 'policy.created', source: 'timeout', at: 0, kind: 'fault.timeout' },
      { type: 'policy.created', source: 'outcome', at: 0, kind: 'fault.outcome' },
      { type: 'fault.injected', source: 'latency', at: 0, fault: 'latency', call: 1, delayMs: 150 },
      { type: 'fault.injected', source: 'db', at: 150, fault: 'error', call: 2, code: 'ECONNREFUSED' },
      { type: 'fault.injected', source: 'outcome', at: 150, fault: 'outcome', call: 1 },
    ]);
  });

  it('a fault that does not fire passes the call context straight through', async () => {
    const rt = virtualRuntime(1);
    const fault = faults.error({ schedule: schedule.never(), runtime: rt });
    const events = record(rt);
    const seen: PolicyContext[] = [];
    const controller = new AbortController();
    await fault.execute((ctx) => {
      seen.push(ctx);
      return 1;
    }, controller.signal);
    expect(seen[0]).toBeInstanceOf(Call);
    expect(seen[0]?.signal).toBe(controller.signal);
    expect(events).toEqual([]);
    expect([fault.calls, fault.injected]).toEqual([1, 0]);
  });

  it('a custom schedule that throws rejects the call with its error', async () => {
    const rt = virtualRuntime(1);
    const bug = new Error('schedule bug');
    const broken: Schedule = {
      fires: () => {
        throw bug;
      },
      and: () => broken,
      or: () => broken,
    };
    const fn = counted();
    await expect(faults.error({ schedule: broken, runtime: rt }).execute(fn)).rejects.toBe(bug);
    expect(fn.calls).toBe(0);
  });
});

describe('faults.error', () => {
  function thrown(options: ErrorFaultOptions): Promise<Record<string, unknown>> {
    const rt = virtualRuntime(1);
    const fn = counted();
    return faults
      .error({ ...options, runtime: rt } as ErrorFaultOptions)
      .execute(fn)
      .then(
        () => {
          throw new Error('expected a failure');
        },
        (error: Record<string, unknown>) => {
          expect(fn.calls).toBe(0);
          return error;
        },
      );
  }

  it('ECONNREFUSED by default, shaped like the error Node itself raises', async () => {
    const error = await thrown({});
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toBe('connect ECONNREFUSED 127.0.0.1:80');
    expect(Object.keys(error)).toEqual(['errno', 'code', 'syscall', 'address', 'port']);
    expect(error).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect', address: '127.0.0.1', port: 80 });
    expect(getSystemErrorName(error.errno as number)).toBe('ECONNREFUSED');
    if (process.platform === 'linux') expect(error.errno).toBe(-111);
  });

  it('every kind, with its syscall and peer fields', async () => {
    const target = 'db.internal:5432';
    const refused = await thrown({ kind: 'ECONNREFUSED', target: '10.0.0.7:5432' });
    expect([refused.message, refused.address, refused.port]).toEqual([
      'connect ECONNREFUSED 10.0.0.7:5432',
      '10.0.0.7',
      5432,
    ]);
    const timedOut = await thrown({ kind: 'ETIMEDOUT', target: '10.0.0.7:443' });
    expect(timedOut.message).toBe('connect ETIMEDOUT 10.0.0.7:443');
    expect(Object.keys(timedOut)).toEqual(['errno', 'code', 'syscall', 'address', 'port']);
    expect(getSystemErrorName(timedOut.errno as number)).toBe('ETIMEDOUT');
    const notFound = await thrown({ kind: 'ENOTFOUND', target });
    expect(notFound.message).toBe('getaddrinfo ENOTFOUND db.internal');
    expect(Object.keys(notFound)).toEqual(['errno', 'code', 'syscall', 'hostname']);
    expect(notFound).toMatchObject({ code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: 'db.internal' });
    expect(getSystemErrorName(notFound.errno as number)).toBe('EAI_NONAME');
    const reset = await thrown({ kind: 'ECONNRESET', target });
    expect(reset.message).toBe('read ECONNRESET');
    expect(Object.keys(reset)).toEqual(['errno', 'code', 'syscall']);
    expect(reset).toMatchObject({ code: 'ECONNRESET', syscall: 'read' });
    const pipe = await thrown({ kind: 'EPIPE' });
    expect(pipe.message).toBe('write EPIPE');
    expect(pipe).toMatchObject({ code: 'EPIPE', syscall: 'write' });
    expect(getSystemErrorName(pipe.errno as number)).toBe('EPIPE');
    if (process.platform === 'linux') {
      expect([timedOut.errno, notFound.errno, reset.errno, pipe.errno]).toEqual([-110, -3008, -104, -32]);
    }
    const v6 = await thrown({ target: '[::1]:6379' });
    expect([v6.message, v6.address, v6.port]).toEqual(['connect ECONNREFUSED ::1:6379', '::1', 6379]);
  });

  it('builds a fresh error for every call', async () => {
    const rt = virtualRuntime(1);
    const fault = faults.error({ runtime: rt });
    const a = await fault.execute(() => 1).catch((e: unknown) => e);
    const b = await fault.execute(() => 1).catch((e: unknown) => e);
    expect(a).not.toBe(b);
    expect(a).toEqual(b);
  });

  it('a user factory gets the call context; its error (or what it throws) rejects the call', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const contexts: PolicyContext[] = [];
    const custom = Object.assign(new Error('HTTP 503'), { code: 'E503' });
    const fault = faults.error({
      error: (ctx) => {
        contexts.push(ctx);
        return custom;
      },
      runtime: rt,
    });
    expect(fault.code).toBeUndefined();
    await expect(fault.execute(counted())).rejects.toBe(custom);
    expect(contexts[0]?.attempt).toBe(1);
    await expect(faults.error({ error: () => 'a string', runtime: rt }).execute(counted())).rejects.toBe(
      'a string',
    );
    const bug = new Error('factory bug');
    const throwing = faults.error({
      error: () => {
        throw bug;
      },
      runtime: rt,
    });
    await expect(throwing.execute(counted())).rejects.toBe(bug);
    expect(injected(events).map((e) => [e.fault, e.code])).toEqual([
      ['error', 'E503'],
      ['error', undefined],
      ['error', undefined],
    ]);
  });
});

describe('faults.timeout', () => {
  it('hangs until an outer timeout aborts it, exactly at the deadline, and leaves nothing behind', async () => {
    const rt = virtualRuntime(1);
    const fn = counted();
    const controller = new AbortController();
    const p = pipeline(timeout(250, { runtime: rt }), faults.timeout({ runtime: rt }));
    const result = failure(await settle(rt, () => p.execute(fn, controller.signal)));
    expect(result.error).toBeInstanceOf(TimeoutError);
    expect(result.at).toBe(250);
    expect(fn.calls).toBe(0);
    expect(rt.clock.pendingTimers).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('with an aggressive timeout too, and under retry: each attempt hangs to its own deadline', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const p = pipeline(
      retry({ maxAttempts: 3, backoff: backoff.constant(100), runtime: rt }),
      timeout(250, { runtime: rt, strategy: 'aggressive' }),
      faults.timeout({ schedule: schedule.firstN(2), runtime: rt }),
    );
    const result = await settle(rt, () => p.execute((ctx) => `attempt ${ctx.attempt}`));
    expect(result).toEqual({ ok: true, value: 'attempt 3', at: 250 + 100 + 250 + 100 });
    expect(events.filter((e) => e.type === 'timeout.fired').map((e) => e.at)).toEqual([250, 600]);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('rejects with the caller’s cancellation, and removes its listener from the caller’s signal', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    rt.clock.setTimer(40, () => controller.abort('user left'), undefined);
    const fault = faults.timeout({ runtime: rt });
    const result = failure(await settle(rt, () => fault.execute(counted(), controller.signal)));
    expect(result.error).toBeInstanceOf(CancelledError);
    expect((result.error as CancelledError).cause).toBe('user left');
    expect(result.at).toBe(40);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('a call cancelled before it reaches the fault rejects at once', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    controller.abort('gone');
    const hanging = inject(counted(), faults.timeout({ runtime: rt }));
    const error = await hanging(Call.root(controller.signal)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).cause).toBe('gone');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('with nothing to abort it, hangs for good without holding a timer', async () => {
    const rt = virtualRuntime(1);
    const fault = faults.timeout({ runtime: rt });
    let settled = false;
    fault.execute(counted()).then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await rt.clock.advance(3_600_000);
    await rt.clock.runUntilIdle();
    expect(settled).toBe(false);
    expect(rt.clock.pendingTimers).toBe(0);
  });
});

describe('faults.latency', () => {
  it('a fixed delay runs the function exactly that much later', async () => {
    const rt = virtualRuntime(1);
    const ran: number[] = [];
    const fault = faults.latency({ delay: '250ms', runtime: rt });
    const result = await settle(rt, () =>
      fault.execute((ctx) => {
        ran.push(rt.clock.now());
        return `attempt ${ctx.attempt}`;
      }),
    );
    expect(result).toEqual({ ok: true, value: 'attempt 1', at: 250 });
    expect(ran).toEqual([250]);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('a cancelled call stops waiting, never runs, and leaves no timer or listener', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    rt.clock.setTimer(100, () => controller.abort('stop'), undefined);
    const fn = counted();
    const fault = faults.latency({ delay: '10s', runtime: rt });
    const result = failure(await settle(rt, () => fault.execute(fn, controller.signal)));
    expect(result.error).toBeInstanceOf(CancelledError);
    expect(result.at).toBe(100);
    expect(fn.calls).toBe(0);
    expect(rt.clock.pendingTimers).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('under a timeout shorter than the delay, the call times out at the deadline', async () => {
    const rt = virtualRuntime(1);
    const fn = counted();
    const p = pipeline(timeout('1s', { runtime: rt }), faults.latency({ delay: '5s', runtime: rt }));
    const result = failure(await settle(rt, () => p.execute(fn)));
    expect(result.error).toBeInstanceOf(TimeoutError);
    expect(result.at).toBe(1000);
    expect(fn.calls).toBe(0);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  /** Starts `n` calls (never run to completion) and returns the delays the fault drew. */
  function delays(options: LatencyFaultOptions, n: number, seed = 3): number[] {
    const rt = virtualRuntime(seed);
    const events = record(rt);
    const fault = faults.latency({ ...options, runtime: rt } as LatencyFaultOptions);
    for (let i = 0; i < n; i++) void fault.execute(() => 1);
    return injected(events).map((e) => e.delayMs as number);
  }

  function quantile(sorted: readonly number[], q: number): number {
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
  }

  it('uniform draws stay within [min, max) and are reproducible', () => {
    const drawn = delays({ distribution: { kind: 'uniform', min: '100ms', max: '300ms' } }, 5000);
    expect(drawn).toHaveLength(5000);
    expect(Math.min(...drawn)).toBeGreaterThanOrEqual(100);
    expect(Math.max(...drawn)).toBeLessThan(300);
    const mean = drawn.reduce((a, b) => a + b, 0) / drawn.length;
    // sd of the mean = (200 / sqrt(12)) / sqrt(5000) = 0.82 ms; allow 4 sd.
    expect(Math.abs(mean - 200)).toBeLessThan(3.3);
    expect(delays({ distribution: { kind: 'uniform', min: 100, max: 300 } }, 5000)).toEqual(drawn);
  });

  it('normal draws are clamped at 0', () => {
    const drawn = delays({ distribution: { kind: 'normal', mean: '20ms', stddev: '20ms' } }, 5000);
    expect(Math.min(...drawn)).toBe(0);
    // P(X < 0) = Φ(-1) = 0.1587; sd of the share over 5000 draws = 0.0052.
    const zeros = drawn.filter((d) => d === 0).length / drawn.length;
    expect(Math.abs(zeros - 0.1587)).toBeLessThan(0.021);
    const fixed = delays({ distribution: { kind: 'normal', mean: 50, stddev: 0 } }, 10);
    expect(fixed).toEqual(Array(10).fill(50));
  });

  it('lognormal draws have the median and p99 asked for', () => {
    const drawn = delays({ distribution: { kind: 'lognormal', median: '50ms', p99: '800ms' } }, 40_000);
    const sorted = [...drawn].sort((a, b) => a - b);
    // The sample quantiles' standard errors are ~1.5% (median) and ~5% (p99) here; allow ~3.5 of them.
    expect(quantile(sorted, 0.5) / 50).toBeGreaterThan(0.95);
    expect(quantile(sorted, 0.5) / 50).toBeLessThan(1.05);
    expect(quantile(sorted, 0.99) / 800).toBeGreaterThan(0.82);
    expect(quantile(sorted, 0.99) / 800).toBeLessThan(1.18);
    expect(Math.min(...drawn)).toBeGreaterThan(0);
    const { sigma } = lognormalFromMedianP99(50, 800);
    expect(sigma).toBeCloseTo(Math.log(16) / 2.3263, 3);
  });

  it('the drawn delay is the delay waited', async () => {
    const rt = virtualRuntime(11);
    const events = record(rt);
    const fault = faults.latency({ distribution: { kind: 'uniform', min: 10, max: 1000 }, runtime: rt });
    const result = await settle(rt, () => fault.execute(() => 'done'));
    const [event] = injected(events);
    expect(result).toEqual({ ok: true, value: 'done', at: event?.delayMs });
  });
});

describe('faults.outcome', () => {
  it('returns the value without running the function', async () => {
    const rt = virtualRuntime(1);
    const fn = counted();
    const fault = faults.outcome({ value: 'cached', runtime: rt });
    expect(await fault.execute(fn)).toBe('cached');
    expect(fn.calls).toBe(0);
    expect(await faults.outcome({ value: undefined, runtime: rt }).execute(fn)).toBeUndefined();
  });

  it('a function builds a fresh value per call from the context, sync or async', async () => {
    const rt = virtualRuntime(1);
    const fn = counted();
    const fault = faults.outcome({ value: () => new Response('busy', { status: 503 }), runtime: rt });
    const a = await fault.execute<Response>(fn as unknown as () => Promise<Response>);
    const b = await fault.execute<Response>(fn as unknown as () => Promise<Response>);
    expect(a).not.toBe(b);
    expect([a.status, await a.text(), await b.text()]).toEqual([503, 'busy', 'busy']);
    const async = faults.outcome({
      value: async (ctx: PolicyContext) => {
        await rt.clock.sleep(20);
        return `late ${ctx.attempt}`;
      },
      runtime: rt,
    });
    expect(await settle(rt, () => async.execute(fn))).toEqual({ ok: true, value: 'late 1', at: 20 });
    const bug = new Error('factory bug');
    const throwing = faults.outcome({
      value: () => {
        throw bug;
      },
      runtime: rt,
    });
    await expect(throwing.execute(fn)).rejects.toBe(bug);
    expect(fn.calls).toBe(0);
  });
});

describe('faults in a pipeline', () => {
  it('sequence(fail, fail, ok) + retry(maxAttempts 3) succeeds on attempt 3 after the backoff', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const seen: [number, number][] = [];
    const p = pipeline(
      retry({ maxAttempts: 3, backoff: backoff.exponential({ initial: '100ms' }), runtime: rt }),
      faults.error({ name: 'db', schedule: schedule.sequence(['fail', 'fail', 'ok']), runtime: rt }),
    );
    const result = await settle(rt, () =>
      p.execute((ctx) => {
        seen.push([ctx.attempt, rt.clock.now()]);
        return 'rows';
      }),
    );
    // Exponential from 100 ms without jitter: waits of 100 and 200 ms.
    expect(result).toEqual({ ok: true, value: 'rows', at: 300 });
    expect(seen).toEqual([[3, 300]]);
    expect(
      events
        .filter((e) => e.type === 'retry' || e.type === 'fault.injected')
        .map((e) => [
          e.type,
          e.at,
          e.type === 'retry' ? e.delayMs : e.type === 'fault.injected' ? e.call : 0,
        ]),
    ).toEqual([
      ['fault.injected', 0, 1],
      ['retry', 0, 100],
      ['fault.injected', 100, 2],
      ['retry', 100, 200],
    ]);
  });

  it('retry exhausts against a fault that always fires and rejects with its error', async () => {
    const rt = virtualRuntime(1);
    const p = pipeline(
      retry({ maxAttempts: 3, backoff: backoff.constant('50ms'), runtime: rt }),
      faults.error({ kind: 'ECONNRESET', runtime: rt }),
    );
    const result = failure(await settle(rt, () => p.execute(counted())));
    expect((result.error as Error).message).toBe('read ECONNRESET');
    expect(result.at).toBe(100);
  });

  it('a fallback outside replaces the injected errors', async () => {
    const rt = virtualRuntime(1);
    const p = pipeline(
      fallback('stale', { runtime: rt }),
      faults.error({ schedule: schedule.everyNth(2), runtime: rt }),
    );
    expect(await drive(rt, p, 4)).toEqual(['ok', 'stale', 'ok', 'stale']);
  });
});

describe('inject', () => {
  it('applies faults to a bare function, outermost first', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const fn = counted();
    const flaky = inject(fn, [
      faults.latency({ delay: 40, runtime: rt }),
      faults.error({ schedule: schedule.everyNth(2), runtime: rt }),
    ]);
    expect(await settle(rt, () => flaky())).toEqual({ ok: true, value: 'real', at: 40 });
    const second = failure(await settle(rt, () => flaky()));
    expect((second.error as Error).message).toBe('connect ECONNREFUSED 127.0.0.1:80');
    expect(second.at).toBe(80);
    expect(fn.calls).toBe(1);
    expect(injected(events).map((e) => [e.fault, e.at])).toEqual([
      ['latency', 0],
      ['latency', 40],
      ['error', 80],
    ]);
  });

  it('takes one fault as well as a list, and runs the function when no fault fires', async () => {
    const rt = virtualRuntime(1);
    expect(await inject(() => 5, faults.error({ schedule: schedule.never(), runtime: rt }))()).toBe(5);
    expect(await inject(() => 5, [])()).toBe(5);
  });

  it('as the task of a policy, the faults see the policy’s context and cancellation', async () => {
    const rt = virtualRuntime(1);
    const contexts: PolicyContext[] = [];
    const hanging = inject(
      (ctx) => {
        contexts.push(ctx);
        return 'never';
      },
      faults.timeout({ schedule: schedule.firstN(1), runtime: rt }),
    );
    const p = pipeline(
      retry({ maxAttempts: 2, backoff: backoff.constant(10), runtime: rt }),
      timeout(100, { runtime: rt }),
    );
    expect(await settle(rt, () => p.execute(hanging))).toEqual({ ok: true, value: 'never', at: 110 });
    expect(contexts.map((c) => c.attempt)).toEqual([2]);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('a foreign context: its signal cancels, its attempt passes through', async () => {
    const rt = virtualRuntime(1);
    const controller = new AbortController();
    const seen: number[] = [];
    const delayed = inject(
      (ctx) => {
        seen.push(ctx.attempt);
        return 'ok';
      },
      faults.latency({ delay: 100, runtime: rt }),
    );
    expect(await settle(rt, () => delayed({ signal: controller.signal, attempt: 4 }))).toEqual({
      ok: true,
      value: 'ok',
      at: 100,
    });
    expect(seen).toEqual([4]);
    rt.clock.setTimer(30, () => controller.abort('bye'), undefined);
    const cancelled = failure(await settle(rt, () => delayed({ signal: controller.signal, attempt: 1 })));
    expect(cancelled.error).toBeInstanceOf(CancelledError);
    expect(cancelled.at).toBe(130);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    await expect(delayed({ signal: controller.signal, attempt: 1 })).rejects.toBeInstanceOf(CancelledError);
    expect(rt.clock.pendingTimers).toBe(0);
  });

  it('validates its arguments', () => {
    const rt = virtualRuntime(1);
    expect(() => inject('fn' as unknown as () => 1, [])).toThrow(
      'inject: option "fn" must be a function, got "fn"',
    );
    expect(() => inject(() => 1, [faults.error({ runtime: rt }), {} as Fault])).toThrow(
      'inject: option "faults[1]" must be a fault or another Bulwark policy, got an object',
    );
  });
});

describe('BULWARK_CHAOS=off', () => {
  it('chaosEnabled reads BULWARK_CHAOS', () => {
    expect(chaosEnabled({})).toBe(true);
    expect(chaosEnabled({ BULWARK_CHAOS: 'on' })).toBe(true);
    expect(chaosEnabled({ BULWARK_CHAOS: '' })).toBe(true);
    for (const off of ['off', 'OFF', ' off ', '0', 'false', 'no', 'disabled']) {
      expect(chaosEnabled({ BULWARK_CHAOS: off })).toBe(false);
    }
    expect(chaosEnabled()).toBe(true);
    process.env.BULWARK_CHAOS = 'off';
    expect(chaosEnabled()).toBe(false);
  });

  it('disables every fault built while it is set: calls pass through, nothing fires or is drawn', async () => {
    process.env.BULWARK_CHAOS = 'off';
    const rt = virtualRuntime(1);
    const events = record(rt);
    const fn = counted();
    const all = [
      faults.error({ schedule: schedule.rate(0.5), runtime: rt }),
      faults.timeout({ runtime: rt }),
      faults.latency({ delay: '1h', runtime: rt }),
      faults.outcome({ value: 'fake', runtime: rt }),
    ];
    delete process.env.BULWARK_CHAOS;
    expect(all.map((f) => f.enabled)).toEqual([false, false, false, false]);
    const p = pipeline(...all);
    for (let i = 0; i < 10; i++) expect(await p.execute(fn)).toBe('real');
    expect(fn.calls).toBe(10);
    expect(all.map((f) => [f.calls, f.injected])).toEqual(Array(4).fill([10, 0]));
    expect(events).toEqual([]);
    expect(rt.clock.now()).toBe(0);
    // Read at construction: a fault built now (the variable unset) is armed.
    const armed = faults.outcome({ value: 'fake', runtime: rt });
    expect(armed.enabled).toBe(true);
    expect(await armed.execute(fn)).toBe('fake');
  });
});

describe('fault options', () => {
  const rt = virtualRuntime(1);

  it('every fault validates name, schedule and unknown keys', () => {
    expect(isFault(faults.error({ runtime: rt }))).toBe(true);
    expect(isFault(retry({ runtime: rt }))).toBe(false);
    expect(isFault(null)).toBe(false);
    expect(() => faults.error({ name: '', runtime: rt })).toThrow(
      'faults.error: option "name" must be a non-empty string, got ""',
    );
    expect(() => faults.timeout({ name: 3 as unknown as string, runtime: rt })).toThrow(
      'faults.timeout: option "name" must be a non-empty string, got 3',
    );
    expect(() => faults.latency({ delay: 1, schedule: 0.3 as unknown as Schedule, runtime: rt })).toThrow(
      'faults.latency: option "schedule" must be a schedule (see `schedule`), got 0.3',
    );
    expect(() => faults.outcome({ value: 1, rate: 0.3 } as unknown as OutcomeFaultOptions<number>)).toThrow(
      'faults.outcome: unknown option "rate"; known options are schedule, value, name, runtime',
    );
    expect(() => faults.timeout({ delay: 1 } as unknown as { name: string })).toThrow(
      'faults.timeout: unknown option "delay"; known options are schedule, name, runtime',
    );
    expect(() => faults.error('ECONNRESET' as unknown as ErrorFaultOptions)).toThrow(
      'faults.error: options must be an object, got "ECONNRESET"',
    );
  });

  it('faults.error validates kind, target and error', () => {
    expect(() => faults.error({ kind: 'EHOSTDOWN' as 'EPIPE', runtime: rt })).toThrow(
      'faults.error: option "kind" must be one of "ECONNREFUSED", "ETIMEDOUT", "ENOTFOUND", "ECONNRESET", "EPIPE", got "EHOSTDOWN"',
    );
    for (const target of [
      'localhost',
      'host:',
      ':80',
      'host:99999',
      'host:8o',
      ' host:80',
      '[::1:80',
      5432,
    ]) {
      expect(() => faults.error({ target: target as string, runtime: rt })).toThrow(
        /^faults\.error: option "target" must be a 'host:port' string/,
      );
    }
    expect(() => faults.error({ error: new Error('x') as unknown as () => unknown, runtime: rt })).toThrow(
      'faults.error: option "error" must be a function, got an object',
    );
    expect(() => faults.error({ error: () => 1, kind: 'EPIPE' } as unknown as ErrorFaultOptions)).toThrow(
      'faults.error: options "error" and "kind" are exclusive',
    );
    expect(() => faults.error({ error: () => 1, target: 'h:1' } as unknown as ErrorFaultOptions)).toThrow(
      'faults.error: options "error" and "target" are exclusive',
    );
  });

  it('faults.latency validates delay and distribution', () => {
    const latency = (options: unknown) => () =>
      faults.latency({ ...(options as object), runtime: rt } as unknown as LatencyFaultOptions);
    expect(latency({})).toThrow('faults.latency: needs option "delay" or "distribution"');
    expect(latency({ delay: 1, distribution: { kind: 'uniform', min: 0, max: 1 } })).toThrow(
      'faults.latency: options "delay" and "distribution" are exclusive',
    );
    expect(latency({ delay: -5 })).toThrow(/faults.latency: option "delay" must be a duration >= 0ms/);
    expect(latency({ delay: 'soon' })).toThrow(/faults.latency: option "delay": invalid duration "soon"/);
    expect(latency({ distribution: 'uniform' })).toThrow(
      `faults.latency: option "distribution" must be an object such as { kind: 'uniform', min, max }, got "uniform"`,
    );
    expect(latency({ distribution: { min: 1, max: 2 } })).toThrow(
      'faults.latency: option "distribution.kind" must be one of "uniform", "normal", "lognormal", got undefined',
    );
    expect(latency({ distribution: { kind: 'pareto' } })).toThrow(
      'faults.latency: option "distribution.kind" must be one of "uniform", "normal", "lognormal", got "pareto"',
    );
    expect(latency({ distribution: { kind: 'uniform', min: 1, max: 2, mean: 3 } })).toThrow(
      'faults.latency: unknown option "distribution.mean"; a uniform distribution takes kind, min, max',
    );
    expect(latency({ distribution: { kind: 'uniform', min: 1 } })).toThrow(
      'faults.latency: option "distribution.max" must be a duration, got undefined',
    );
    expect(latency({ distribution: { kind: 'uniform', min: '2s', max: '1s' } })).toThrow(
      'faults.latency: option "distribution.max" must be a duration >= min (2000ms), got "1s"',
    );
    expect(latency({ distribution: { kind: 'normal', mean: 10 } })).toThrow(
      'faults.latency: option "distribution.stddev" must be a duration, got undefined',
    );
    expect(latency({ distribution: { kind: 'normal', mean: 10, stddev: -1 } })).toThrow(
      /option "distribution.stddev" must be a duration >= 0ms/,
    );
    expect(latency({ distribution: { kind: 'lognormal', median: 0, p99: 10 } })).toThrow(
      /option "distribution.median" must be a duration > 0ms/,
    );
    expect(latency({ distribution: { kind: 'lognormal', median: '50ms', p99: '10ms' } })).toThrow(
      'faults.latency: option "distribution.p99" must be a duration >= median (50ms), got "10ms"',
    );
  });

  it('faults without options: error and timeout take defaults, latency and outcome say what they need', async () => {
    expect(faults.error().name).toBe('error');
    expect(faults.timeout().schedule).toBe(schedule.always());
    expect(() => faults.latency(undefined as unknown as LatencyFaultOptions)).toThrow(
      'faults.latency: needs option "delay" or "distribution"',
    );
    expect(() => faults.outcome(undefined as unknown as OutcomeFaultOptions<number>)).toThrow(
      'faults.outcome: needs option "value"',
    );
    expect(() => faults.outcome(null as unknown as OutcomeFaultOptions<number>)).toThrow(
      'faults.outcome: options must be an object, got null',
    );
  });

  it('faults.outcome needs a value', () => {
    expect(() => faults.outcome({ runtime: rt } as unknown as OutcomeFaultOptions<number>)).toThrow(
      'faults.outcome: needs option "value" (a value, or a function of the call context)',
    );
  });

  it('a deferred result keeps the fault’s counters exact', async () => {
    const gate = deferred<string>();
    const fault = faults.latency({ delay: 0, schedule: schedule.everyNth(2), runtime: rt });
    const calls = [fault.execute(() => gate.promise), fault.execute(() => gate.promise)];
    expect([fault.calls, fault.injected]).toEqual([2, 1]);
    gate.resolve('done');
    await rt.clock.runUntilIdle();
    expect(await Promise.all(calls)).toEqual(['done', 'done']);
  });
});
