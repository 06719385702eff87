import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { register as globalRegistry, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { service } from '../../test/services.js';
import { bulkheadGauge, sample, samples } from '../../test/support.js';
import type { BulwarkEvent, EventOf } from '../core/events.js';
import { virtualRuntime } from '../core/runtime.js';
import { bulkhead } from '../policy/bulkhead.js';
import { circuitBreaker } from '../policy/circuit-breaker.js';
import { pipeline } from '../policy/pipeline.js';
import { retry } from '../policy/retry.js';
import { timeout } from '../policy/timeout.js';
import { METRIC_NAMES, OVERFLOW_LABEL, PrometheusMetrics } from './metrics.js';

/**
 * The naming rules `promtool check metrics` applies, checked on an exposition text: every family has
 * HELP then TYPE, valid metric and label names, counters end in `_total` and nothing else does,
 * durations in base units (`_seconds`), histograms expose `_bucket` (with `le="+Inf"`), `_sum`, `_count`.
 */
function lint(text: string): string[] {
  const problems: string[] = [];
  const lines = text.split('\n');
  const types = new Map<string, string>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const help = /^# HELP (\S+) (.+)$/.exec(line);
    if (help !== null) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(lines[i + 1] ?? '');
      if (type === null || type[1] !== help[1]) problems.push(`${help[1]}: HELP not followed by its TYPE`);
      else types.set(type[1] as string, type[2] as string);
    }
  }
  for (const [name, type] of types) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) problems.push(`${name}: invalid metric name`);
    if (!name.startsWith('bulwark_')) problems.push(`${name}: not in the bulwark_ namespace`);
    if (type === 'counter' && !name.endsWith('_total')) problems.push(`${name}: counter without _total`);
    if (type !== 'counter' && name.endsWith('_total')) problems.push(`${name}: non-counter ending in _total`);
    if (/_(milli|micro|nano)?seconds?_|_ms$|_milliseconds|_minutes|_hours/.test(name)) {
      problems.push(`${name}: not in base units`);
    }
    if (/duration|latency/.test(name) && !name.endsWith('_seconds'))
      problems.push(`${name}: duration not in _seconds`);
  }
  for (const line of samples(text)) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (match === null) {
      problems.push(`unparseable sample: ${line}`);
      continue;
    }
    const name = match[1] as string;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    if (!types.has(family)) problems.push(`${name}: sample without TYPE`);
    for (const pair of (match[3] ?? '').split(/,(?=[a-zA-Z_])/).filter((p) => p !== '')) {
      const label = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$/.exec(pair);
      if (label === null) problems.push(`${name}: bad label ${pair}`);
      else if ((label[1] as string).startsWith('__')) problems.push(`${name}: reserved label ${label[1]}`);
    }
  }
  for (const [name, type] of types) {
    if (type !== 'histogram') continue;
    const lines = samples(text);
    if (lines.some((l) => l.startsWith(`${name}_bucket`)) && !lines.some((l) => l.includes('le="+Inf"'))) {
      problems.push(`${name}: histogram without le="+Inf"`);
    }
  }
  return problems;
}

/** The real `promtool` (PATH or BULWARK_PROMTOOL); the lint above also runs everywhere. */
const promtool = await service('promtool');

async function withBreakerRun() {
  const rt = virtualRuntime(1);
  const metrics = new PrometheusMetrics();
  metrics.attach(rt.events);
  const breaker = circuitBreaker({
    name: 'payments',
    consecutiveFailures: 2,
    halfOpenAfter: '10s',
    runtime: rt,
  });
  const before = await metrics.text();
  const fail = () => breaker.execute(() => Promise.reject(new Error('down'))).catch(() => undefined);
  await rt.clock.run(async () => {
    await breaker.execute(async () => {
      await rt.clock.sleep(250);
      return 1;
    });
    await fail();
    await fail(); // opens
    await fail(); // rejected
  });
  return { rt, metrics, breaker, before, after: await metrics.text() };
}

describe('PrometheusMetrics', () => {
  it('emits the one-hot circuit state from construction, closed=1', async () => {
    const { before } = await withBreakerRun();
    expect(sample(before, 'bulwark_circuit_state{policy="payments",state="closed"}')).toBe(1);
    expect(sample(before, 'bulwark_circuit_state{policy="payments",state="open"}')).toBe(0);
    expect(sample(before, 'bulwark_circuit_state{policy="payments",state="half-open"}')).toBe(0);
    expect(sample(before, 'bulwark_circuit_state{policy="payments",state="isolated"}')).toBe(0);
  });

  it('counts calls by outcome, durations in seconds, transitions and the new state', async () => {
    const { after } = await withBreakerRun();
    expect(sample(after, 'bulwark_calls_total{policy="payments",outcome="success"}')).toBe(1);
    expect(sample(after, 'bulwark_calls_total{policy="payments",outcome="failure"}')).toBe(2);
    expect(sample(after, 'bulwark_calls_total{policy="payments",outcome="rejected"}')).toBe(1);
    expect(sample(after, 'bulwark_call_duration_seconds_sum{policy="payments",outcome="success"}')).toBe(
      0.25,
    );
    expect(sample(after, 'bulwark_call_duration_seconds_count{policy="payments",outcome="success"}')).toBe(1);
    expect(
      sample(after, 'bulwark_call_duration_seconds_bucket{le="0.1",policy="payments",outcome="success"}'),
    ).toBe(0);
    expect(
      sample(after, 'bulwark_call_duration_seconds_bucket{le="0.25",policy="payments",outcome="success"}'),
    ).toBe(1);
    expect(
      sample(after, 'bulwark_circuit_transitions_total{policy="payments",from="closed",to="open"}'),
    ).toBe(1);
    expect(sample(after, 'bulwark_circuit_state{policy="payments",state="open"}')).toBe(1);
    expect(sample(after, 'bulwark_circuit_state{policy="payments",state="closed"}')).toBe(0);
  });

  it('a short open is still visible in the transition counters after the circuit closed again', async () => {
    const { rt, metrics, breaker } = await withBreakerRun();
    await rt.clock.run(async () => {
      await rt.clock.sleep(10_000);
      await breaker.execute(async () => 1); // half-open trial succeeds → closed
    });
    const text = await metrics.text();
    expect(sample(text, 'bulwark_circuit_state{policy="payments",state="closed"}')).toBe(1);
    expect(sample(text, 'bulwark_circuit_transitions_total{policy="payments",from="closed",to="open"}')).toBe(
      1,
    );
    expect(
      sample(text, 'bulwark_circuit_transitions_total{policy="payments",from="open",to="half-open"}'),
    ).toBe(1);
    expect(
      sample(text, 'bulwark_circuit_transitions_total{policy="payments",from="half-open",to="closed"}'),
    ).toBe(1);
  });

  it('counts retries per policy', async () => {
    const rt = virtualRuntime(2);
    const metrics = new PrometheusMetrics();
    metrics.attach(rt.events);
    const policy = retry({ name: 'fetch', maxAttempts: 3, runtime: rt });
    let n = 0;
    await rt.clock.run(() =>
      policy.execute(async () => {
        if (++n < 3) throw new Error('flaky');
        return n;
      }),
    );
    const text = await metrics.text();
    expect(sample(text, 'bulwark_retry_attempts_total{policy="fetch"}')).toBe(2);
    expect(sample(text, 'bulwark_calls_total{policy="fetch",outcome="success"}')).toBe(1);
  });

  it('maps bulkhead, queue and fault events to their metrics', async () => {
    const metrics = new PrometheusMetrics();
    const events: BulwarkEvent[] = [
      { type: 'bulkhead.changed', source: 'db', at: 1, active: 7, queued: 2, capacity: 10 },
      { type: 'bulkhead.changed', source: 'db', at: 2, active: 4, queued: 0, capacity: 10 },
      { type: 'bulkhead.rejected', source: 'db', at: 3, active: 10, queued: 10 },
      {
        type: 'queue.depth',
        source: 'emails',
        at: 4,
        depth: { waiting: 5, delayed: 1, active: 2, completed: 40, dead: 3 },
      },
      { type: 'queue.job', source: 'emails', at: 5, outcome: 'added', jobId: 'j-1', attempt: 0 },
      { type: 'queue.job', source: 'emails', at: 6, outcome: 'added', jobId: 'j-2', attempt: 0 },
      { type: 'queue.job', source: 'emails', at: 7, outcome: 'dead', jobId: 'j-1', attempt: 3, error: 'x' },
      {
        type: 'queue.failover',
        source: 'emails',
        at: 8,
        from: 'redis',
        to: 'sqlite',
        reason: 'QUEUE_UNAVAILABLE',
      },
      { type: 'fault.injected', source: 'refused', at: 9, fault: 'error', call: 1, code: 'ECONNREFUSED' },
      { type: 'fault.injected', source: 'refused', at: 10, fault: 'error', call: 4, code: 'ECONNREFUSED' },
    ];
    for (const event of events) metrics.observe(event);
    const text = await metrics.text();
    expect(sample(text, 'bulwark_bulkhead_active{policy="db"}')).toBe(4);
    expect(sample(text, 'bulwark_bulkhead_rejected_total{policy="db"}')).toBe(1);
    expect(sample(text, 'bulwark_queue_depth{queue="emails",state="waiting"}')).toBe(5);
    expect(sample(text, 'bulwark_queue_depth{queue="emails",state="dead"}')).toBe(3);
    expect(sample(text, 'bulwark_queue_jobs_total{queue="emails",outcome="added"}')).toBe(2);
    expect(sample(text, 'bulwark_queue_jobs_total{queue="emails",outcome="dead"}')).toBe(1);
    expect(
      sample(text, 'bulwark_queue_failover_total{from="redis",to="sqlite",reason="QUEUE_UNAVAILABLE"}'),
    ).toBe(1);
    expect(sample(text, 'bulwark_faults_injected_total{fault="refused"}')).toBe(2);
    // A job id never becomes a label.
    expect(text).not.toContain('j-1');
  });

  it('maps health checks, supervisor restarts and alert states to their metrics', async () => {
    const metrics = new PrometheusMetrics();
    const events: BulwarkEvent[] = [
      {
        type: 'health.check',
        source: 'api',
        at: 1,
        component: 'api',
        probe: 'readiness',
        ok: true,
        healthy: true,
        durationMs: 2,
      },
      {
        type: 'health.check',
        source: 'api',
        at: 2,
        component: 'api',
        probe: 'liveness',
        ok: false,
        healthy: false,
        durationMs: 9,
      },
      {
        type: 'supervisor.child',
        source: 'root',
        at: 3,
        child: 'worker',
        state: 'crashed',
        reason: 'crash',
        restarts: 0,
      },
      {
        type: 'supervisor.child',
        source: 'root',
        at: 4,
        child: 'worker',
        state: 'restarting',
        reason: 'crash',
        restarts: 1,
        delayMs: 1000,
      },
      {
        type: 'supervisor.child',
        source: 'root',
        at: 5,
        child: 'worker',
        state: 'restarting',
        reason: 'crash',
        restarts: 2,
        delayMs: 2000,
      },
      {
        type: 'supervisor.child',
        source: 'root',
        at: 6,
        child: 'worker',
        state: 'started',
        reason: 'restart',
        restarts: 2,
      },
      {
        type: 'alert.state',
        source: 'errors',
        at: 7,
        rule: 'errors',
        state: 'pending',
        labels: { policy: 'a' },
        value: 0.2,
      },
      {
        type: 'alert.state',
        source: 'errors',
        at: 8,
        rule: 'errors',
        state: 'firing',
        labels: { policy: 'a' },
        value: 0.3,
      },
      {
        type: 'alert.state',
        source: 'errors',
        at: 9,
        rule: 'errors',
        state: 'firing',
        labels: { policy: 'b' },
        value: 0.4,
      },
      {
        type: 'alert.state',
        source: 'errors',
        at: 10,
        rule: 'errors',
        state: 'firing',
        labels: { policy: 'b' },
        value: 0.5,
      },
    ];
    for (const event of events) metrics.observe(event);
    let text = await metrics.text();
    expect(sample(text, 'bulwark_health_up{component="api",probe="readiness"}')).toBe(1);
    expect(sample(text, 'bulwark_health_up{component="api",probe="liveness"}')).toBe(0);
    expect(sample(text, 'bulwark_restarts_total{component="worker",reason="crash"}')).toBe(2);
    expect(sample(text, 'bulwark_alerts_firing{rule="errors"}')).toBe(2);
    metrics.observe({
      type: 'alert.state',
      source: 'errors',
      at: 11,
      rule: 'errors',
      state: 'resolved',
      labels: { policy: 'a' },
      value: 0,
    });
    text = await metrics.text();
    expect(sample(text, 'bulwark_alerts_firing{rule="errors"}')).toBe(1);
    expect(lint(text)).toEqual([]);
  });

  it('passes promtool-style naming checks and uses exactly the documented names', async () => {
    const { after } = await withBreakerRun();
    expect(lint(after)).toEqual([]);
    const families = [...after.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
    expect(families.sort()).toEqual(
      [
        `${METRIC_NAMES.calls} counter`,
        `${METRIC_NAMES.callDuration} histogram`,
        `${METRIC_NAMES.retryAttempts} counter`,
        `${METRIC_NAMES.circuitState} gauge`,
        `${METRIC_NAMES.circuitTransitions} counter`,
        `${METRIC_NAMES.bulkheadActive} gauge`,
        `${METRIC_NAMES.bulkheadRejected} counter`,
        `${METRIC_NAMES.queueDepth} gauge`,
        `${METRIC_NAMES.queueJobs} counter`,
        `${METRIC_NAMES.queueFailover} counter`,
        `${METRIC_NAMES.faultsInjected} counter`,
        `${METRIC_NAMES.healthUp} gauge`,
        `${METRIC_NAMES.restarts} counter`,
        `${METRIC_NAMES.alertsFiring} gauge`,
      ].sort(),
    );
  });

  promtool.describe('the real promtool', () => {
    it('passes promtool check metrics', async () => {
      const { after } = await withBreakerRun();
      const check = spawnSync(promtool.url, ['check', 'metrics'], { input: after, encoding: 'utf8' });
      expect(`${check.stdout}${check.stderr}`).toBe('');
      expect(check.status).toBe(0);
    });
  });

  it('the lint catches what promtool would reject', () => {
    const bad = [
      '# HELP bulwark_calls counter without total',
      '# TYPE bulwark_calls counter',
      'bulwark_calls 1',
      '# HELP bulwark_latency_ms a duration in ms',
      '# TYPE bulwark_latency_ms gauge',
      'bulwark_latency_ms 3',
    ].join('\n');
    expect(lint(bad)).toEqual([
      'bulwark_calls: counter without _total',
      'bulwark_latency_ms: not in base units',
      'bulwark_latency_ms: duration not in _seconds',
    ]);
  });

  it('bounds the label values: names beyond maxNames share the _overflow series', async () => {
    const metrics = new PrometheusMetrics({ maxNames: 2 });
    for (let i = 0; i < 50; i++) {
      metrics.observe({
        type: 'call',
        source: `p${i}`,
        at: i,
        kind: 'retry',
        outcome: 'success',
        durationMs: 1,
      });
    }
    const text = await metrics.text();
    expect(sample(text, 'bulwark_calls_total{policy="p0",outcome="success"}')).toBe(1);
    expect(sample(text, 'bulwark_calls_total{policy="p1",outcome="success"}')).toBe(1);
    expect(sample(text, `bulwark_calls_total{policy="${OVERFLOW_LABEL}",outcome="success"}`)).toBe(48);
    expect(samples(text).filter((l) => l.startsWith('bulwark_calls_total')).length).toBe(3);
  });

  it('counts the policies of an attached runtime per source, also after reset() and beyond maxNames', async () => {
    const rt = virtualRuntime(3);
    const metrics = new PrometheusMetrics({ maxNames: 1 });
    metrics.attach(rt.events);
    const pool = bulkhead({ name: 'pool', limit: 2, runtime: rt });
    const other = retry({ name: 'other', runtime: rt });
    const run = () =>
      rt.clock.run(async () => {
        await pool.execute(() => rt.clock.sleep(20));
        await other.execute(() => 1);
      });
    await run();
    let text = await metrics.text();
    expect(sample(text, 'bulwark_calls_total{policy="pool",outcome="success"}')).toBe(1);
    expect(sample(text, 'bulwark_call_duration_seconds_sum{policy="pool",outcome="success"}')).toBe(0.02);
    expect(sample(text, `bulwark_calls_total{policy="${OVERFLOW_LABEL}",outcome="success"}`)).toBe(1);
    expect(sample(text, 'bulwark_bulkhead_active{policy="pool"}')).toBe(0);
    metrics.reset();
    expect(samples(await metrics.text()).filter((l) => l.startsWith('bulwark_calls_total'))).toEqual([]);
    await run();
    await run();
    text = await metrics.text();
    expect(sample(text, 'bulwark_calls_total{policy="pool",outcome="success"}')).toBe(2);
    expect(sample(text, `bulwark_calls_total{policy="${OVERFLOW_LABEL}",outcome="success"}`)).toBe(2);
    expect(sample(text, 'bulwark_bulkhead_active{policy="pool"}')).toBe(0);
  });

  it('counts a pipeline’s successes in every layer at once, as each layer’s own call would, also after reset() and for two metrics on one runtime', async () => {
    const rt = virtualRuntime(5);
    const metrics = new PrometheusMetrics();
    const second = new PrometheusMetrics();
    metrics.attach(rt.events);
    second.attach(rt.events);
    const guarded = pipeline(
      retry({ name: 'r', maxAttempts: 1, runtime: rt }),
      timeout('1s', { name: 't', runtime: rt }),
      bulkhead({ name: 'b', limit: 2, runtime: rt }),
    );
    const run = () =>
      rt.clock.run(async () => {
        await guarded.execute(() => rt.clock.sleep(20));
        await guarded.execute(() => rt.clock.sleep(3));
        await guarded.execute(() => Promise.reject(new Error('down'))).catch(() => undefined);
      });
    await run();
    for (const text of [await metrics.text(), await second.text()]) {
      for (const policy of ['r', 't', 'b']) {
        const labels = `policy="${policy}",outcome="success"`;
        expect(sample(text, `bulwark_calls_total{${labels}}`)).toBe(2);
        expect(sample(text, `bulwark_call_duration_seconds_sum{${labels}}`)).toBeCloseTo(0.023, 9);
        expect(sample(text, `bulwark_call_duration_seconds_bucket{le="0.005",${labels}}`)).toBe(1);
        expect(sample(text, `bulwark_call_duration_seconds_bucket{le="0.025",${labels}}`)).toBe(2);
        expect(sample(text, `bulwark_calls_total{policy="${policy}",outcome="failure"}`)).toBe(1);
      }
    }
    metrics.reset();
    await run();
    const text = await metrics.text();
    expect(sample(text, 'bulwark_calls_total{policy="t",outcome="success"}')).toBe(2);
    expect(sample(await second.text(), 'bulwark_calls_total{policy="t",outcome="success"}')).toBe(4);
  });

  it('reads an attached bulkhead at collection instead of being told of each change', async () => {
    const rt = virtualRuntime(4);
    const metrics = new PrometheusMetrics({ maxNames: 2 });
    const detach = metrics.attach(rt.events);
    const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt });
    const spill = [bulkhead({ name: 'a', runtime: rt }), bulkhead({ name: 'b', runtime: rt })];
    const changes: BulwarkEvent[] = [];
    const gauge = (policy: string) => bulkheadGauge(metrics, policy);
    const seen: (number | undefined)[] = [];
    await rt.clock.run(async () => {
      const held = [0, 1].map(() => pool.execute(() => rt.clock.sleep(10)));
      seen.push(await gauge('pool'));
      await Promise.all(held);
      seen.push(await gauge('pool'));
      // Names beyond maxNames share the overflow gauge, which is told of each change.
      await Promise.all(spill.map((b) => b.execute(() => rt.clock.sleep(5))));
    });
    expect(seen).toEqual([2, 0]);
    expect(await gauge(OVERFLOW_LABEL)).toBe(0);
    // A listener of bulkhead.changed gets the events again.
    const off = rt.events.subscribe((e) => changes.push(e), ['bulkhead.changed']);
    await rt.clock.run(() => pool.execute(() => 1));
    expect(changes.map((e) => (e as EventOf<'bulkhead.changed'>).active)).toEqual([1, 0]);
    off();
    // Detached, the gauge keeps its last value and reads the bulkhead no more.
    let inside: number | undefined;
    await rt.clock.run(() =>
      pool.execute(async () => {
        detach();
        inside = await gauge('pool');
        await rt.clock.sleep(1);
      }),
    );
    expect(inside).toBe(1);
    expect(await gauge('pool')).toBe(1);
  });

  it('uses a private registry, never the global one', async () => {
    const a = new PrometheusMetrics();
    const b = new PrometheusMetrics();
    a.observe({ type: 'fault.injected', source: 'f', at: 0, fault: 'error', call: 1 });
    expect(sample(await a.text(), 'bulwark_faults_injected_total{fault="f"}')).toBe(1);
    expect(sample(await b.text(), 'bulwark_faults_injected_total{fault="f"}')).toBe(undefined);
    expect(globalRegistry.getSingleMetric(METRIC_NAMES.calls)).toBe(undefined);
    const registry = new Registry();
    const c = new PrometheusMetrics({ registry });
    expect(c.registry).toBe(registry);
  });

  it('rejects bad options naming the option and the accepted range', () => {
    expect(() => new PrometheusMetrics({ maxNames: 0 })).toThrow(/"maxNames" must be an integer from 1/);
    expect(() => new PrometheusMetrics({ buckets: [1, 0.5] })).toThrow(
      /"buckets" must be a non-empty ascending/,
    );
    expect(() => new PrometheusMetrics({ registry: {} as Registry })).toThrow(
      /"registry" must be a prom-client/,
    );
    expect(() => new PrometheusMetrics({ bucket: [] } as never)).toThrow(/unknown option "bucket"/);
  });

  it('serves the exposition text from handler() on any Node HTTP server', async () => {
    const metrics = new PrometheusMetrics();
    metrics.observe({ type: 'fault.injected', source: 'hang', at: 0, fault: 'timeout', call: 1 });
    const server = createServer(metrics.handler());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(sample(await response.text(), 'bulwark_faults_injected_total{fault="hang"}')).toBe(1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
