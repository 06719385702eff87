/**
 * Cross-policy properties of a full pipeline: every call settles, and nothing it set up survives it —
 * no virtual timer, no abort listener on the caller's signal, no bulkhead permit — whatever mix of
 * successes, failures, hangs, sync throws and caller aborts it sees.
 */
import { getEventListeners } from 'node:events';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SystemClock } from '../src/core/clock.js';
import { isBulwarkError } from '../src/core/errors.js';
import { createRuntime, type VirtualRuntime, virtualRuntime } from '../src/core/runtime.js';
import {
  backoff,
  bulkhead,
  circuitBreaker,
  fallback,
  hedge,
  type PolicyContext,
  pipeline,
  retry,
  timeout,
} from '../src/policy/index.js';

type Kind = 'ok' | 'slow' | 'fail' | 'throw' | 'hang' | 'value';

interface Plan {
  kind: Kind;
  startAt: number;
  abortAfter: number | undefined;
}

function work(rt: VirtualRuntime, kind: Kind) {
  return (ctx: PolicyContext): Promise<string> | string => {
    switch (kind) {
      case 'ok':
        return rt.clock.sleep(5).then(() => 'ok');
      case 'slow':
        return rt.clock.sleep(300).then(() => 'slow');
      case 'fail':
        return rt.clock.sleep(3).then(() => {
          throw new Error('fail');
        });
      case 'throw':
        throw new Error('sync');
      case 'value':
        return 'value';
      case 'hang':
        return new Promise((_, reject) => {
          const signal = ctx.signal;
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        });
    }
  };
}

async function runMix(plans: readonly Plan[], strategy: 'aggressive' | 'cooperative', seed: number) {
  const rt = virtualRuntime(seed);
  const limiter = bulkhead({ limit: 4, queue: 16, runtime: rt });
  const policy = pipeline(
    fallback('fallback', { runtime: rt, handles: (e) => isBulwarkError(e, 'CIRCUIT_OPEN') }),
    retry({ maxAttempts: 3, backoff: backoff.constant(10), runtime: rt }),
    circuitBreaker({ consecutiveFailures: 8, halfOpenAfter: '200ms', runtime: rt }),
    timeout({ after: '100ms', strategy, runtime: rt }),
    hedge({ delay: '40ms', runtime: rt }),
    limiter,
  );
  const signals: AbortSignal[] = [];
  const outcomes: string[] = [];
  const calls: Promise<void>[] = [];
  for (const plan of plans) {
    const controller = plan.abortAfter === undefined ? undefined : new AbortController();
    if (controller) signals.push(controller.signal);
    const start = () => {
      if (controller && plan.abortAfter !== undefined) {
        rt.clock.setTimer(plan.abortAfter, () => controller.abort(new Error('caller gave up')), undefined);
      }
      calls.push(
        policy.execute(work(rt, plan.kind), controller?.signal).then(
          (v) => {
            outcomes.push(String(v));
          },
          (e: unknown) => {
            outcomes.push((e as { code?: string }).code ?? 'error');
          },
        ),
      );
    };
    rt.clock.setTimer(plan.startAt, start, undefined);
  }
  await rt.clock.runUntilIdle();
  await Promise.all(calls);
  return { rt, limiter, signals, outcomes };
}

const planArb = fc.record({
  kind: fc.constantFrom<Kind>('ok', 'slow', 'fail', 'throw', 'hang', 'value'),
  startAt: fc.integer({ min: 0, max: 2000 }),
  abortAfter: fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }),
});

describe('a full pipeline leaks nothing', () => {
  it('property: every call settles and leaves no timer, listener or permit behind', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(planArb, { minLength: 1, maxLength: 60 }),
        fc.constantFrom<'aggressive' | 'cooperative'>('aggressive', 'cooperative'),
        fc.integer(),
        async (plans, strategy, seed) => {
          const { rt, limiter, signals, outcomes } = await runMix(plans, strategy, seed);
          expect(outcomes).toHaveLength(plans.length);
          expect(rt.clock.pendingTimers).toBe(0);
          expect(limiter.active).toBe(0);
          expect(limiter.queued).toBe(0);
          for (const signal of signals) expect(getEventListeners(signal, 'abort')).toHaveLength(0);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('10,000 mixed calls: same invariants, and the same outcomes for the same seed', async () => {
    const random = virtualRuntime('plans').random;
    const kinds: Kind[] = ['ok', 'ok', 'ok', 'slow', 'fail', 'throw', 'hang', 'value'];
    const plans: Plan[] = Array.from({ length: 10_000 }, () => ({
      kind: random.choice(kinds),
      startAt: random.int(0, 60_000),
      abortAfter: random.bernoulli(0.2) ? random.int(0, 300) : undefined,
    }));
    const first = await runMix(plans, 'aggressive', 7);
    expect(first.outcomes).toHaveLength(10_000);
    expect(first.rt.clock.pendingTimers).toBe(0);
    expect(first.limiter.active).toBe(0);
    for (const signal of first.signals) expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    const tally = (o: string[]) => {
      const t: Record<string, number> = {};
      for (const k of o) t[k] = (t[k] ?? 0) + 1;
      return t;
    };
    const second = await runMix(plans, 'aggressive', 7);
    expect(tally(second.outcomes)).toEqual(tally(first.outcomes));
    // The mix really exercises every path.
    expect(Object.keys(tally(first.outcomes)).sort()).toEqual(
      expect.arrayContaining(['CANCELLED', 'HEDGE_FAILED', 'TIMEOUT', 'fallback', 'ok', 'value']),
    );
  });

  it('on real time, 10,000 calls leave no active handle behind (real timers)', async () => {
    const clock = new SystemClock();
    const rt = createRuntime({ clock, seed: 1 });
    const policy = pipeline(
      retry({ maxAttempts: 3, runtime: rt }),
      circuitBreaker({ runtime: rt }),
      timeout({ after: '500ms', runtime: rt }),
      bulkhead({ limit: 10, runtime: rt }),
    );
    const count = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = count();
    const controller = new AbortController();
    for (let i = 0; i < 10_000; i++) {
      await policy.execute(
        async ({ signal }) => (i % 100 === 0 ? signal.aborted : i),
        i % 2 ? controller.signal : undefined,
      );
    }
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    // Deadline timers share one Node timer per duration, which lets go within one tick (5 ms here).
    await clock.sleep(30);
    expect(count()).toBeLessThanOrEqual(before);
  });
});

describe('events from every layer', () => {
  it('a pipeline reports each policy under its own name', async () => {
    const rt = virtualRuntime(3);
    const seen: string[] = [];
    rt.events.subscribe((e) => seen.push(`${e.source}:${e.type}`));
    const policy = pipeline(
      retry({ name: 'r', maxAttempts: 2, backoff: backoff.constant(1), runtime: rt }),
      circuitBreaker({ name: 'cb', runtime: rt }),
      timeout({ name: 't', after: 50, runtime: rt }),
      bulkhead({ name: 'b', runtime: rt }),
    );
    let n = 0;
    await rt.clock.run(() =>
      policy.execute(() => {
        if (n++ === 0) throw new Error('first fails');
        return 'ok';
      }),
    );
    for (const expected of ['r:retry', 'cb:call', 't:call', 'b:call', 'r:call'])
      expect(seen).toContain(expected);
  });
});
