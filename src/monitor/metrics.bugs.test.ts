/**
 * Failing tests (review2): bugs in the bulkhead gauge read from a lent `SourceState`. See each test.
 */
import { describe, expect, it } from 'vitest';
import { virtualRuntime } from '../core/runtime.js';
import { bulkhead } from '../policy/bulkhead.js';
import { retry } from '../policy/retry.js';
import { OVERFLOW_LABEL, PrometheusMetrics } from './metrics.js';

function sample(text: string, prefix: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${prefix} `));
  return line === undefined ? undefined : Number(line.slice(prefix.length + 1));
}

const gauge = async (metrics: PrometheusMetrics, policy: string) =>
  sample(await metrics.text(), `bulwark_bulkhead_active{policy="${policy}"}`);

describe('bulkhead gauge bugs (review2)', () => {
  // detached() (metrics.ts) freezes EVERY lent state and bumps the epoch, also those of sinks the metrics
  // stay attached to. Their PrometheusSource re-lends only in call() (renew), i.e. when a call ENDS; the
  // bulkhead emits no bulkhead.changed (readsState), so calls entering meanwhile are invisible.
  it('attached to two sinks, detaching one freezes the other sink’s bulkhead gauge until a call ends', async () => {
    const rt1 = virtualRuntime(1);
    const rt2 = virtualRuntime(2);
    const metrics = new PrometheusMetrics();
    const detach1 = metrics.attach(rt1.events);
    metrics.attach(rt2.events);
    const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt2 });
    await rt2.clock.run(() => pool.execute(() => 1));
    detach1();
    let during: number | undefined;
    await rt2.clock.run(async () => {
      const held = [0, 1, 2].map(() => pool.execute(() => rt2.clock.sleep(10)));
      during = await gauge(metrics, 'pool');
      await Promise.all(held);
    });
    expect(during).toBe(3); // actual: 0 (frozen)
  });

  // reset() (metrics.ts) clears `bulkheads` and bumps the epoch; the bulkhead's part re-registers its
  // gauge only in PrometheusSource.call (renew) — when a call ends. Before this change the first
  // bulkhead.changed (a call entering) recreated the series.
  it('after reset(), calls entering a bulkhead are not shown until one ends', async () => {
    const rt = virtualRuntime(3);
    const metrics = new PrometheusMetrics();
    metrics.attach(rt.events);
    const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt });
    await rt.clock.run(() => pool.execute(() => 1));
    metrics.reset();
    let during: number | undefined;
    await rt.clock.run(async () => {
      const held = [0, 1].map(() => pool.execute(() => rt.clock.sleep(10)));
      during = await gauge(metrics, 'pool');
      await Promise.all(held);
    });
    expect(during).toBe(2); // actual: undefined (no series)
  });

  // PrometheusSource.readsState is decided once, in its constructor (labelOf(source) === source). reset()
  // clears the bounded names but the SourceEvents keeps its parts (the sink's version did not move), so
  // after a reset where another name took the last slot, renew() calls bulkheadGauge(source) — which now
  // returns the shared OVERFLOW holder — and sets its `state`: the overflow gauge reads this one bulkhead
  // for ever and ignores the pushes of every other overflow bulkhead.
  it('after reset(), a bulkhead that fell beyond maxNames takes over the overflow gauge', async () => {
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
    let during: number | undefined;
    await rt.clock.run(async () => {
      const held = [0, 1, 2].map(() => other.execute(() => rt.clock.sleep(10)));
      during = await gauge(metrics, OVERFLOW_LABEL);
      await Promise.all(held);
    });
    expect(during).toBe(3); // actual: 0 (pool's permits, other's pushes are ignored)
  });

  // Two bulkheads of one name on one sink: each PrometheusSource's renew() sets the same holder's `state`;
  // the one resolved last owns the gauge, the other's activity is never shown (neither pushes).
  // Before the change each bulkhead.changed set the gauge (last change wins).
  it('two bulkheads of one name: the gauge ignores the one that resolved first', async () => {
    const rt = virtualRuntime(5);
    const metrics = new PrometheusMetrics();
    metrics.attach(rt.events);
    const b1 = bulkhead({ name: 'db', limit: 4, runtime: rt });
    const b2 = bulkhead({ name: 'db', limit: 4, runtime: rt });
    await rt.clock.run(() => b1.execute(() => 1));
    await rt.clock.run(() => b2.execute(() => 1));
    let during: number | undefined;
    await rt.clock.run(async () => {
      const held = [0, 1, 2].map(() => b1.execute(() => rt.clock.sleep(10)));
      during = await gauge(metrics, 'db');
      await Promise.all(held);
    });
    expect(during).toBe(3); // actual: 0 (b2's permits)
  });
});
