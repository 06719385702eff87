import { createNoopMeter } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { SystemClock, VirtualClock } from '../core/clock.js';
import { createRuntime, virtualRuntime } from '../core/runtime.js';
import { backoff } from '../policy/backoff.js';
import { bulkhead } from '../policy/bulkhead.js';
import { circuitBreaker } from '../policy/circuit-breaker.js';
import { pipeline } from '../policy/pipeline.js';
import { retry } from '../policy/retry.js';
import { timeout } from '../policy/timeout.js';
import { createMonitor } from './monitor.js';

describe('Monitor', () => {
  it('attach() feeds metrics and the live view from a runtime; detach stops it', async () => {
    const rt = virtualRuntime(1);
    const monitor = createMonitor({ clock: new VirtualClock({ start: 1e12 }) });
    const detach = monitor.attach(rt);
    const policy = retry({ name: 'fetch', maxAttempts: 2, runtime: rt });
    let n = 0;
    await rt.clock.run(() =>
      policy.execute(async () => {
        if (++n === 1) throw new Error('flaky');
        return n;
      }),
    );
    expect(monitor.snapshot().policies[0]).toMatchObject({ name: 'fetch', total: 1, retries: 1 });
    expect(await monitor.metrics.text()).toContain('bulwark_retry_attempts_total{policy="fetch"} 1');
    detach();
    await rt.clock.run(() => policy.execute(async () => 1));
    expect(monitor.snapshot().policies[0]?.total).toBe(1);
    await monitor.close();
  });

  it('counts a pipeline’s calls reported at once (forGroup) as it counts the same calls as events', async () => {
    const rt = virtualRuntime(7);
    const clock = new VirtualClock({ start: 1e12 });
    const attached = createMonitor({ clock, history: false });
    const ingested = createMonitor({ clock, history: false });
    attached.attach(rt);
    rt.events.subscribe((event) => ingested.ingest(event));
    const guarded = pipeline(
      retry({ name: 'fetch', maxAttempts: 2, backoff: backoff.constant('5ms'), runtime: rt }),
      circuitBreaker({ name: 'breaker', consecutiveFailures: 5, runtime: rt }),
      timeout('1s', { name: 'deadline', runtime: rt }),
      bulkhead({ name: 'pool', limit: 4, runtime: rt }),
    );
    let n = 0;
    await rt.clock.run(async () => {
      for (let i = 0; i < 12; i++) {
        await guarded
          .execute(async () => {
            await rt.clock.sleep(i * 3);
            if (++n % 5 === 0) throw new Error('flaky');
            return n;
          })
          .catch(() => undefined);
      }
    });
    expect(await attached.metrics.text()).toBe(await ingested.metrics.text());
    expect(attached.snapshot().policies).toEqual(ingested.snapshot().policies);
    expect(attached.patternsSnapshot()).toEqual(ingested.patternsSnapshot());
    expect(attached.snapshot().policies.map((p) => [p.name, p.total])).toEqual([
      ['fetch', 12],
      ['breaker', 14],
      ['deadline', 14],
      ['pool', 14],
    ]);
    await attached.close();
    await ingested.close();
  });

  it('places events of a system-clock runtime at their own `at`, and reads its clock for implausible ones', async () => {
    class CountingClock extends SystemClock {
      reads = 0;
      override now(): number {
        this.reads++;
        return super.now();
      }
    }
    const clock = new CountingClock();
    const monitor = createMonitor({ clock });
    const rt = createRuntime();
    monitor.attach(rt);
    const before = clock.reads;
    for (let i = 0; i < 1000; i++) {
      rt.events.emit({
        type: 'call',
        source: 'db',
        at: rt.clock.now(),
        kind: 'timeout',
        outcome: 'success',
        durationMs: 1,
      });
    }
    // The monitor read its clock only if a minute ended during the loop.
    expect(clock.reads - before).toBeLessThanOrEqual(2);
    // Times from elsewhere (a virtual clock's 0, a time minutes ahead) are not trusted: placed at arrival.
    const error = new Error('down');
    rt.events.emit({
      type: 'call',
      source: 'db',
      at: 0,
      kind: 'timeout',
      outcome: 'failure',
      durationMs: 1,
      error,
    });
    const ahead = rt.clock.now() + 600_000;
    rt.events.emit({
      type: 'call',
      source: 'db',
      at: ahead,
      kind: 'timeout',
      outcome: 'failure',
      durationMs: 1,
      error,
    });
    expect(clock.reads - before).toBeGreaterThanOrEqual(2);
    const db = monitor.snapshot().policies.find((p) => p.name === 'db');
    const sum = (xs: number[] | undefined) => (xs ?? []).reduce((a, b) => a + b, 0);
    expect(db?.total).toBe(1002);
    expect(sum(db?.spark.calls)).toBe(1002);
    expect(sum(db?.spark.failures)).toBe(2);
    await monitor.close();
  });

  it('one monitor watches several runtimes; ingest() takes events from anywhere', () => {
    const monitor = createMonitor();
    monitor.attach(virtualRuntime(1).events);
    const a = virtualRuntime(2);
    monitor.attach(a);
    a.events.emit({ type: 'fault.injected', source: 'f', at: 0, fault: 'error', call: 1 });
    monitor.ingest({ type: 'fault.injected', source: 'f', at: 0, fault: 'error', call: 2 });
    expect(monitor.snapshot().faults[0]?.count).toBe(2);
    return monitor.close();
  });

  it('expose() gives breakers isolate/reset; control() runs them', async () => {
    const rt = virtualRuntime(1);
    const monitor = createMonitor();
    monitor.attach(rt);
    const breaker = circuitBreaker({ name: 'payments', runtime: rt });
    const remove = monitor.expose(breaker);
    expect(await monitor.control('payments', 'isolate')).toBe(true);
    expect(breaker.state).toBe('isolated');
    expect(monitor.snapshot().policies[0]?.state).toBe('isolated');
    expect(await monitor.control('payments', 'reset')).toBe(true);
    expect(breaker.state).toBe('closed');
    expect(await monitor.control('payments', 'toString')).toBe(false);
    expect(await monitor.control('nobody', 'reset')).toBe(false);
    remove();
    expect(await monitor.control('payments', 'reset')).toBe(false);
    let paused = false;
    monitor.expose(
      { name: 'emails' },
      {
        pause: () => {
          paused = true;
        },
      },
    );
    expect(await monitor.control('emails', 'pause')).toBe(true);
    expect(paused).toBe(true);
    expect(() => monitor.expose({ name: 'plain' })).toThrow(/"actions" must be given/);
    await monitor.close();
  });

  it('close() writes the unfinished minute to the history, detaches, and is idempotent', async () => {
    const clock = new VirtualClock({ start: 1e12 });
    const rt = virtualRuntime(1);
    const monitor = createMonitor({ clock, history: ':memory:' });
    monitor.attach(rt);
    rt.events.emit({ type: 'call', source: 'p', at: 0, kind: 'retry', outcome: 'success', durationMs: 5 });
    const history = monitor.history;
    expect(history).toBeDefined();
    // The minute in progress is part of the answer, before it is stored…
    expect(monitor.query({ scope: 'policy', name: 'p', from: 0, to: 2e12 })[0]?.values).toMatchObject({
      calls: 1,
    });
    expect(history?.query({ scope: 'policy', name: 'p', from: 0, to: 2e12 })).toEqual([]);
    // …and counted once after.
    monitor.live.flush();
    expect(history?.query({ scope: 'policy', name: 'p', from: 0, to: 2e12 })).toHaveLength(1);
    expect(monitor.query({ scope: 'policy', name: 'p', from: 0, to: 2e12 })[0]?.values).toMatchObject({
      calls: 1,
      success: 1,
    });
    await monitor.close();
    await monitor.close();
    expect(() => monitor.attach(rt)).toThrow(/closed/);
    await expect(monitor.serve({ port: 0 })).rejects.toThrow(/closed/);
  });

  it('records OpenTelemetry instruments too when given a meter', () => {
    const monitor = createMonitor({ openTelemetry: { meter: createNoopMeter() } });
    expect(monitor.openTelemetry).toBeDefined();
    monitor.ingest({ type: 'call', source: 'p', at: 0, kind: 'retry', outcome: 'success', durationMs: 1 });
    return monitor.close();
  });

  it('validates its options', () => {
    expect(() => createMonitor({ history: '' })).toThrow(/"history" must be a file path/);
    expect(() => createMonitor({ maxNames: 0 })).toThrow(/"maxNames"/);
    expect(() => createMonitor({ clock: {} as VirtualClock })).toThrow(/"clock" must be a Clock/);
    expect(() => createMonitor({ runtime: virtualRuntime(1) } as never)).toThrow(
      /monitor\.attach\(runtime\)/,
    );
    expect(() => createMonitor({ histroy: 'x' } as never)).toThrow(/unknown option "histroy"/);
  });
});
