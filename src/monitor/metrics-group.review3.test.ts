/**
 * Review: a pipeline's grouped successes (PrometheusMetrics.forGroup) count exactly what the same
 * policies nested by hand count (each reporting its own calls), in every scenario of one run.
 */
import { createNoopMeter, type Meter } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { samples } from '../../test/support.js';
import { EventSink } from '../core/events.js';
import { type VirtualRuntime, virtualRuntime } from '../core/runtime.js';
import { backoff } from '../policy/backoff.js';
import { bulkhead } from '../policy/bulkhead.js';
import { pipeline } from '../policy/pipeline.js';
import type { Policy } from '../policy/policy.js';
import { retry } from '../policy/retry.js';
import { timeout } from '../policy/timeout.js';
import { PrometheusMetrics } from './metrics.js';
import { createMonitor } from './monitor.js';
import { OpenTelemetryMetrics } from './otel.js';

type Build = (rt: VirtualRuntime) => Policy[];

/** The policies as one pipeline, or nested by hand (separate segments: each reports its own calls). */
function composed(policies: Policy[], fused: boolean): Policy['execute'] {
  if (fused) {
    const fusedPolicy = pipeline(...policies);
    return (fn, signal) => fusedPolicy.execute(fn, signal);
  }
  return <T>(fn: Parameters<Policy['execute']>[0]) => {
    let run = fn as (ctx: never) => unknown;
    for (let i = policies.length - 1; i >= 0; i--) {
      const inner = run;
      const policy = policies[i] as Policy;
      run = () => policy.execute(inner as never);
    }
    return run(undefined as never) as Promise<T>;
  };
}

async function scenario(build: Build, fused: boolean, maxNames: number): Promise<string[]> {
  const rt = virtualRuntime(3, { events: new EventSink() });
  const metrics = new PrometheusMetrics({ maxNames });
  const second = new PrometheusMetrics();
  metrics.attach(rt.events);
  second.attach(rt.events);
  const monitor = createMonitor({ clock: rt.clock, patterns: false, metrics: { maxNames } });
  monitor.attach(rt);
  const points: string[] = [];
  const record = (name: string) => ({
    add: (v: number, a?: object) => void points.push(`${name} ${v} ${JSON.stringify(a)}`),
    record: (v: number, a?: object) => void points.push(`${name} ${v} ${JSON.stringify(a)}`),
  });
  const meter = Object.assign(Object.create(createNoopMeter()) as Meter, {
    createCounter: record,
    createHistogram: record,
  });
  new OpenTelemetryMetrics({ meter, maxNames }).attach(rt.events);
  const execute = composed(build(rt), fused);
  let n = 0;
  await rt.clock.run(async () => {
    await execute(() => rt.clock.sleep(3));
    await execute(async () => {
      await rt.clock.sleep(2);
      if (n++ % 2 === 0) throw new Error('odd');
      return 'ok';
    }).catch(() => undefined);
    metrics.reset();
    await Promise.allSettled([execute(() => rt.clock.sleep(30)), execute(() => rt.clock.sleep(4))]);
    await execute(() => Promise.reject(new Error('down'))).catch(() => undefined);
    await execute(() => rt.clock.sleep(0.5));
  });
  const pick = (text: string) => samples(text).filter((l) => l.startsWith('bulwark_call'));
  const out = [
    ...pick(await metrics.text()),
    '--',
    ...pick(await second.text()),
    '--',
    ...pick(await monitor.metrics.text()),
    '--',
    ...points.sort(),
  ];
  await monitor.close();
  return out;
}

const builds: Record<string, Build> = {
  'retry, timeouts and a bulkhead': (rt) => [
    retry({ name: 'r', maxAttempts: 3, backoff: backoff.constant('5ms'), runtime: rt }),
    timeout('1s', { name: 't1', runtime: rt }),
    bulkhead({ name: 'b', limit: 1, queue: 5, runtime: rt }),
    timeout('1s', { name: 't2', runtime: rt }),
  ],
  'retry on result': (rt) => [
    retry({
      name: 'rr',
      maxAttempts: 2,
      backoff: backoff.constant('5ms'),
      retryOnResult: (v) => v === undefined,
      runtime: rt,
    }),
    timeout('1s', { name: 'u1', runtime: rt }),
    timeout('1s', { name: 'u2', runtime: rt }),
  ],
  'an aggressive timeout': (rt) => [
    timeout('1s', { name: 'a1', runtime: rt }),
    timeout('20ms', { name: 'agg', strategy: 'aggressive', runtime: rt }),
    timeout('1s', { name: 'a2', runtime: rt }),
  ],
};

describe('grouped successes in Prometheus text', () => {
  for (const [label, build] of Object.entries(builds)) {
    for (const maxNames of [1, 2, 1000]) {
      it(`${label}, maxNames ${maxNames}: a pipeline counts what the same policies nested by hand count`, async () => {
        const fused = await scenario(build, true, maxNames);
        const nested = await scenario(build, false, maxNames);
        expect(fused.length).toBeGreaterThan(10);
        expect(fused.filter((l) => l.startsWith('bulwark.calls ')).length).toBeGreaterThan(5);
        expect(fused).toEqual(nested);
      });
    }
  }
});
