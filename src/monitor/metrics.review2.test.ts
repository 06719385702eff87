import { describe, expect, it } from 'vitest';
import { bulkheadGauge, bulkheadGaugeWhileHeld, poolMeteredThenReset, sample } from '../../test/support.js';
import { EventSink } from '../core/events.js';
import { virtualRuntime } from '../core/runtime.js';
import { bulkhead } from '../policy/bulkhead.js';
import { retry } from '../policy/retry.js';
import { OVERFLOW_LABEL, PrometheusMetrics } from './metrics.js';

const gauge = bulkheadGauge;

describe('PrometheusMetrics per-source parts (review2)', () => {
  it('two metrics on one sink: detaching one leaves the other reading the bulkhead live', async () => {
    const rt = virtualRuntime(1);
    const a = new PrometheusMetrics();
    const b = new PrometheusMetrics();
    const detachA = a.attach(rt.events);
    b.attach(rt.events);
    const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt });
    await rt.clock.run(() => pool.execute(() => 1));
    detachA();
    const seen: (number | undefined)[] = [];
    await rt.clock.run(async () => {
      const held = [0, 1, 2].map(() => pool.execute(() => rt.clock.sleep(10)));
      seen.push(await gauge(b, 'pool'), await gauge(a, 'pool'));
      await Promise.all(held);
      seen.push(await gauge(b, 'pool'), await gauge(a, 'pool'));
    });
    // a is frozen at its value when detached (0); b follows.
    expect(seen).toEqual([3, 0, 0, 0]);
  });

  it('counts calls once per sink when one metrics object is attached to two sinks', async () => {
    const rt1 = virtualRuntime(1);
    const rt2 = virtualRuntime(2);
    const metrics = new PrometheusMetrics();
    metrics.attach(rt1.events);
    metrics.attach(rt2.events);
    const r1 = retry({ name: 'r', runtime: rt1 });
    const r2 = retry({ name: 'r', runtime: rt2 });
    await rt1.clock.run(() => r1.execute(() => 1));
    await rt2.clock.run(() => r2.execute(() => 1));
    expect(sample(await metrics.text(), 'bulwark_calls_total{policy="r",outcome="success"}')).toBe(2);
  });

  it('reset() between calls: counts start again and the gauge still follows the bulkhead', async () => {
    const { rt, metrics, pool } = await poolMeteredThenReset(3);
    await rt.clock.run(() => pool.execute(() => 1));
    const seen = [await bulkheadGaugeWhileHeld(rt, metrics, 'pool', [pool, pool])];
    seen.push(await gauge(metrics, 'pool'));
    expect(seen).toEqual([2, 0]);
    expect(sample(await metrics.text(), 'bulwark_calls_total{policy="pool",outcome="success"}')).toBe(3);
  });

  it('beyond maxNames the bulkheads add up on the overflow gauge', async () => {
    const rt = virtualRuntime(4);
    const metrics = new PrometheusMetrics({ maxNames: 1 });
    metrics.attach(rt.events);
    const first = bulkhead({ name: 'first', limit: 4, runtime: rt });
    const x = bulkhead({ name: 'x', limit: 4, runtime: rt });
    const y = bulkhead({ name: 'y', limit: 4, runtime: rt });
    const seen: (number | undefined)[] = [];
    await rt.clock.run(async () => {
      await first.execute(() => 1);
      const hx = [0, 1].map(() => x.execute(() => rt.clock.sleep(10)));
      seen.push(await gauge(metrics, OVERFLOW_LABEL));
      const hy = [0, 1, 2].map(() => y.execute(() => rt.clock.sleep(20)));
      seen.push(await gauge(metrics, OVERFLOW_LABEL));
      await Promise.all(hx);
      seen.push(await gauge(metrics, OVERFLOW_LABEL));
      await Promise.all(hy);
      seen.push(await gauge(metrics, OVERFLOW_LABEL), await gauge(metrics, 'first'));
    });
    // The overflow gauge reads every bulkhead under it: 2, then 2 + 3, then 3 once x's calls ended.
    expect(seen).toEqual([2, 5, 3, 0, 0]);
  });

  it('a weighted view shares the permits the gauge reads', async () => {
    const rt = virtualRuntime(5);
    const metrics = new PrometheusMetrics();
    metrics.attach(rt.events);
    const pool = bulkhead({ name: 'pool', limit: 8, queue: 4, runtime: rt });
    const heavy = pool.weighted(4);
    const seen: (number | undefined)[] = [];
    await rt.clock.run(async () => {
      const a = heavy.execute(() => rt.clock.sleep(10));
      const b = pool.execute(() => rt.clock.sleep(5));
      seen.push(await gauge(metrics, 'pool'));
      const c = heavy.execute(() => rt.clock.sleep(10)); // queued: 5 + 4 > 8
      seen.push(await gauge(metrics, 'pool'));
      await Promise.all([a, b, c]);
      seen.push(await gauge(metrics, 'pool'));
    });
    expect(seen).toEqual([5, 5, 0]);
  });

  it('a bulkhead.changed listener subscribing mid-call leaves the gauge right', async () => {
    const rt = virtualRuntime(6);
    const metrics = new PrometheusMetrics();
    metrics.attach(rt.events);
    const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt });
    const actives: number[] = [];
    let off: () => void = () => undefined;
    await rt.clock.run(() =>
      pool.execute(async () => {
        off = rt.events.subscribe(
          (e) => {
            if (e.type === 'bulkhead.changed') actives.push(e.active);
          },
          ['bulkhead.changed'],
        );
        await rt.clock.sleep(1);
      }),
    );
    expect(actives).toEqual([0]);
    expect(await gauge(metrics, 'pool')).toBe(0);
    off();
    expect(await gauge(metrics, 'pool')).toBe(0);
  });

  it('a fresh EventSink meter added after a source resolved gets its calls', async () => {
    const sink = new EventSink();
    const rt = virtualRuntime(7, { events: sink });
    const a = new PrometheusMetrics();
    a.attach(sink);
    const r = retry({ name: 'r', runtime: rt });
    await rt.clock.run(() => r.execute(() => 1));
    const b = new PrometheusMetrics();
    b.attach(sink);
    await rt.clock.run(() => r.execute(() => 1));
    expect(sample(await a.text(), 'bulwark_calls_total{policy="r",outcome="success"}')).toBe(2);
    expect(sample(await b.text(), 'bulwark_calls_total{policy="r",outcome="success"}')).toBe(1);
  });
});
