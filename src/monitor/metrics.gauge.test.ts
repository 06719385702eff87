/**
 * The bulkhead gauge read from lent states (`SourceState`) across detach, reset(), maxNames and names used
 * twice: four bugs a review found in its first version, each fixed and kept here.
 */
import { describe, expect, it } from 'vitest';
import {
  bulkheadGauge,
  bulkheadGaugeWhileHeld as gaugeWhileHeld,
  poolMeteredThenReset,
} from '../../test/support.js';
import { virtualRuntime } from '../core/runtime.js';
import { bulkhead } from '../policy/bulkhead.js';
import { retry } from '../policy/retry.js';
import { OVERFLOW_LABEL, PrometheusMetrics } from './metrics.js';

const gauge = bulkheadGauge;

describe('bulkhead gauge read from lent states', () => {
  // Detaching gives back only the states lent through that attachment (was: every lent state froze).
  it('attached to two sinks, detaching one leaves the other sink’s bulkhead gauge live', async () => {
    const rt1 = virtualRuntime(1);
    const rt2 = virtualRuntime(2);
    const metrics = new PrometheusMetrics();
    const detach1 = metrics.attach(rt1.events);
    metrics.attach(rt2.events);
    const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt2 });
    await rt2.clock.run(() => pool.execute(() => 1));
    detach1();
    const during = await gaugeWhileHeld(rt2, metrics, 'pool', Array(3).fill(pool));
    expect(during).toBe(3); // the first version showed 0 (frozen)
  });

  // reset() reads the lent states again at once (was: only once a call ended).
  it('after reset(), calls entering a bulkhead show at once', async () => {
    const { rt, metrics, pool } = await poolMeteredThenReset(3);
    const during = await gaugeWhileHeld(rt, metrics, 'pool', Array(2).fill(pool));
    expect(during).toBe(2); // the first version showed no series
  });

  // Bulkheads under the overflow label add up (was: one of them took the gauge over after a reset).
  it('after reset(), a bulkhead that fell beyond maxNames adds to the overflow gauge, taking nothing over', async () => {
    const rt = virtualRuntime(4);
    const metrics = new PrometheusMetrics({ maxNames: 1 });
    metrics.attach(rt.events);
    const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt });
    const other = bulkhead({ name: 'other', limit: 4, runtime: rt });
    const r = retry({ name: 'r', runtime: rt });
    await rt.clock.run(() => pool.execute(() => 1)); // pool takes the only name
    metrics.reset();
    await rt.clock.run(() => r.execute(() => 1)); // r takes it now
    await rt.clock.run(() => pool.execute(() => 1)); // pool lends its permits to the overflow holder
    const during = await gaugeWhileHeld(rt, metrics, OVERFLOW_LABEL, Array(3).fill(other));
    expect(during).toBe(3); // the first version showed 0 (it read pool alone)
  });

  // Two bulkheads of one name add up (was: the one resolved last owned the gauge).
  it('two bulkheads of one name add up on their gauge', async () => {
    const rt = virtualRuntime(5);
    const metrics = new PrometheusMetrics();
    metrics.attach(rt.events);
    const b1 = bulkhead({ name: 'db', limit: 4, runtime: rt });
    const b2 = bulkhead({ name: 'db', limit: 4, runtime: rt });
    await rt.clock.run(() => b1.execute(() => 1));
    await rt.clock.run(() => b2.execute(() => 1));
    const during = await gaugeWhileHeld(rt, metrics, 'db', Array(3).fill(b1));
    expect(during).toBe(3); // the first version showed 0 (it read b2 alone)
  });

  it('one gauge reads at most 64 states; bulkheads of one name beyond that are told instead, and all add up', async () => {
    const rt = virtualRuntime(7);
    const metrics = new PrometheusMetrics();
    metrics.attach(rt.events);
    const many = Array.from({ length: 70 }, () => bulkhead({ name: 'per-request', limit: 2, runtime: rt }));
    await rt.clock.run(async () => {
      for (const b of many) await b.execute(() => 1);
    });
    const inside = await gaugeWhileHeld(rt, metrics, 'per-request', many.slice(60));
    // 4 of the 10 held calls are on bulkheads read (60–63), 6 on bulkheads told: their last change wins.
    expect(inside).toBe(4 + 1);
    expect(await gauge(metrics, 'per-request')).toBe(0);
  });

  it('attached twice to one sink, detaching once keeps reading the lent state', async () => {
    const rt = virtualRuntime(8);
    const metrics = new PrometheusMetrics();
    const first = metrics.attach(rt.events);
    metrics.attach(rt.events);
    const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt });
    await rt.clock.run(() => pool.execute(() => 1));
    first();
    let inside: number | undefined;
    await rt.clock.run(() =>
      pool.execute(async () => {
        inside = await gauge(metrics, 'pool');
      }),
    );
    expect(inside).toBe(1);
  });

  it('detaching the sink of one of two bulkheads under one label keeps the other read, counted once', async () => {
    const rt1 = virtualRuntime(9);
    const rt2 = virtualRuntime(10);
    const metrics = new PrometheusMetrics();
    const detach1 = metrics.attach(rt1.events);
    metrics.attach(rt2.events);
    const one = bulkhead({ name: 'db', limit: 4, runtime: rt1 });
    const two = bulkhead({ name: 'db', limit: 4, runtime: rt2 });
    await rt1.clock.run(() => one.execute(() => 1));
    const seen: (number | undefined)[] = [];
    await rt2.clock.run(async () => {
      const held = [0, 1].map(() => two.execute(() => rt2.clock.sleep(10)));
      seen.push(await gauge(metrics, 'db'));
      detach1();
      seen.push(await gauge(metrics, 'db'));
      await Promise.all(held);
      seen.push(await gauge(metrics, 'db'));
    });
    expect(seen).toEqual([2, 2, 0]);
  });
});
