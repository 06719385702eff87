import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../core/clock.js';
import type { BulwarkEvent } from '../core/events.js';
import { virtualRuntime } from '../core/runtime.js';
import { bulkhead } from '../policy/bulkhead.js';
import { circuitBreaker } from '../policy/circuit-breaker.js';
import { fallback } from '../policy/fallback.js';
import { pipeline } from '../policy/pipeline.js';
import { retry } from '../policy/retry.js';
import { timeout } from '../policy/timeout.js';
import { PrometheusMetrics } from './metrics.js';
import { createMonitor } from './monitor.js';

/** Real policies on a virtual runtime: rejections, queueing, weighted views, retries, timeouts, fallback. */
async function workload(
  seed: number,
  maxNames: number,
  midRun?: (rt: ReturnType<typeof virtualRuntime>) => void,
) {
  const rt = virtualRuntime(seed);
  const clock = new VirtualClock({ start: 1e12 });
  const attached = createMonitor({ clock, history: false, maxNames });
  const ingested = createMonitor({ clock, history: false, maxNames });
  const recorded: BulwarkEvent[] = [];
  attached.attach(rt);
  const stop = rt.events.subscribe((e) => recorded.push(e));
  const pool = bulkhead({ name: 'pool', limit: 3, queue: 2, runtime: rt });
  const heavy = pool.weighted(2);
  const again = retry({ name: 'again', maxAttempts: 3, runtime: rt });
  const slow = timeout({ name: 'slow', after: 15, runtime: rt });
  const breaker = circuitBreaker({ name: 'breaker', runtime: rt });
  const safe = fallback(-1, { name: 'safe', runtime: rt });
  const p = pipeline(safe, again, breaker, slow, pool);
  const q = pipeline(heavy);
  await rt.clock.run(async () => {
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 24; i++) {
      if (i === 12) midRun?.(rt);
      calls.push(
        p
          .execute(async () => {
            await rt.clock.sleep(i % 5 === 0 ? 30 : 3 + (i % 4));
            if (i % 3 === 0) throw new TypeError('boom');
            return i;
          })
          .catch(() => undefined),
      );
      if (i % 4 === 0) calls.push(q.execute(() => rt.clock.sleep(7)).catch(() => undefined));
      if (i % 6 === 5) await rt.clock.sleep(4);
    }
    await Promise.all(calls);
  });
  stop();
  for (const e of recorded) ingested.ingest(e);
  return { attached, ingested, recorded };
}

describe('Monitor review2: attach(runtime) and ingest agree on real policies', () => {
  for (const maxNames of [1000, 2]) {
    it(`same metrics text and policies (maxNames ${maxNames})`, async () => {
      const { attached, ingested, recorded } = await workload(11, maxNames);
      expect(recorded.some((e) => e.type === 'bulkhead.rejected')).toBe(true);
      expect(await attached.metrics.text()).toBe(await ingested.metrics.text());
      expect(attached.snapshot().policies).toEqual(ingested.snapshot().policies);
      expect(attached.patternsSnapshot()).toEqual(ingested.patternsSnapshot());
      await attached.close();
      await ingested.close();
    });
  }

  it('agree when a Prometheus bridge attaches to the same sink mid-run', async () => {
    let extra: PrometheusMetrics | undefined;
    const { attached, ingested } = await workload(12, 1000, (rt) => {
      extra = new PrometheusMetrics();
      extra.attach(rt.events);
    });
    expect(extra).toBeDefined();
    expect(await attached.metrics.text()).toBe(await ingested.metrics.text());
    expect(attached.snapshot().policies).toEqual(ingested.snapshot().policies);
    await attached.close();
    await ingested.close();
  });
});
