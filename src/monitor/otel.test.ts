import {
  type Attributes,
  createNoopMeter,
  type Meter,
  type MetricOptions,
  type ObservableCallback,
  type ObservableResult,
} from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { virtualRuntime } from '../core/runtime.js';
import { circuitBreaker } from '../policy/circuit-breaker.js';
import { OpenTelemetryMetrics } from './otel.js';

interface Recorded {
  instruments: Map<string, { kind: string; options: MetricOptions | undefined }>;
  points: { name: string; value: number; attributes: Attributes | undefined }[];
  callbacks: Map<string, ObservableCallback[]>;
  collect(name: string): { value: number; attributes: Attributes | undefined }[];
}

/** A Meter that records what is created and added (on top of the API's no-op meter). */
function recordingMeter(): Meter & Recorded {
  const noop = createNoopMeter();
  const instruments: Recorded['instruments'] = new Map();
  const points: Recorded['points'] = [];
  const callbacks: Recorded['callbacks'] = new Map();
  const sync = (kind: string, name: string, options: MetricOptions | undefined) => {
    instruments.set(name, { kind, options });
    const push = (value: number, attributes?: Attributes) => {
      points.push({ name, value, attributes });
    };
    return { add: push, record: push };
  };
  return Object.assign(Object.create(noop) as Meter, {
    instruments,
    points,
    callbacks,
    createCounter: (name: string, options?: MetricOptions) => sync('counter', name, options),
    createHistogram: (name: string, options?: MetricOptions) => sync('histogram', name, options),
    createObservableGauge: (name: string, options?: MetricOptions) => {
      instruments.set(name, { kind: 'observableGauge', options });
      callbacks.set(name, []);
      return {
        addCallback: (cb: ObservableCallback) => callbacks.get(name)?.push(cb),
        removeCallback: (cb: ObservableCallback) => {
          const list = callbacks.get(name) ?? [];
          list.splice(list.indexOf(cb), 1);
        },
      };
    },
    collect(name: string) {
      const out: { value: number; attributes: Attributes | undefined }[] = [];
      const result: ObservableResult = {
        observe: (value: number, attributes?: Attributes) => {
          out.push({ value, attributes });
        },
      };
      for (const cb of callbacks.get(name) ?? []) void cb(result);
      return out;
    },
  });
}

describe('OpenTelemetryMetrics', () => {
  it('creates the dotted instruments with base units', () => {
    const meter = recordingMeter();
    new OpenTelemetryMetrics({ meter });
    expect(Object.fromEntries([...meter.instruments].map(([name, i]) => [name, i.kind]))).toEqual({
      'bulwark.calls': 'counter',
      'bulwark.call.duration': 'histogram',
      'bulwark.retry.attempts': 'counter',
      'bulwark.circuit.transitions': 'counter',
      'bulwark.bulkhead.rejected': 'counter',
      'bulwark.queue.jobs': 'counter',
      'bulwark.queue.failover': 'counter',
      'bulwark.faults.injected': 'counter',
      'bulwark.circuit.state': 'observableGauge',
      'bulwark.bulkhead.active': 'observableGauge',
      'bulwark.queue.depth': 'observableGauge',
      'bulwark.restarts': 'counter',
      'bulwark.health.up': 'observableGauge',
      'bulwark.alerts.firing': 'observableGauge',
    });
    expect(meter.instruments.get('bulwark.call.duration')?.options?.unit).toBe('s');
  });

  it('records health, restarts and firing alerts', () => {
    const meter = recordingMeter();
    const otel = new OpenTelemetryMetrics({ meter });
    otel.observe({
      type: 'health.check',
      source: 'api',
      at: 1,
      component: 'api',
      probe: 'liveness',
      ok: false,
      healthy: false,
      durationMs: 3,
    });
    otel.observe({
      type: 'supervisor.child',
      source: 'root',
      at: 2,
      child: 'worker',
      state: 'restarting',
      reason: 'crash',
      restarts: 1,
    });
    otel.observe({
      type: 'alert.state',
      source: 'slo',
      at: 3,
      rule: 'slo',
      state: 'firing',
      labels: {},
      value: 20,
    });
    expect(meter.collect('bulwark.health.up')).toEqual([
      { value: 0, attributes: { component: 'api', probe: 'liveness' } },
    ]);
    expect(meter.points).toContainEqual({
      name: 'bulwark.restarts',
      value: 1,
      attributes: { component: 'worker', reason: 'crash' },
    });
    expect(meter.collect('bulwark.alerts.firing')).toEqual([{ value: 1, attributes: { rule: 'slo' } }]);
  });

  it('records calls in seconds with policy/outcome attributes, and the one-hot circuit state', async () => {
    const rt = virtualRuntime(1);
    const meter = recordingMeter();
    const otel = new OpenTelemetryMetrics({ meter });
    otel.attach(rt.events);
    const breaker = circuitBreaker({ name: 'payments', consecutiveFailures: 1, runtime: rt });
    expect(meter.collect('bulwark.circuit.state')).toEqual([
      { value: 1, attributes: { policy: 'payments', state: 'closed' } },
      { value: 0, attributes: { policy: 'payments', state: 'open' } },
      { value: 0, attributes: { policy: 'payments', state: 'half-open' } },
      { value: 0, attributes: { policy: 'payments', state: 'isolated' } },
    ]);
    await rt.clock.run(async () => {
      await breaker.execute(async () => {
        await rt.clock.sleep(500);
      });
      await breaker.execute(() => Promise.reject(new Error('x'))).catch(() => undefined);
    });
    expect(meter.points).toEqual([
      { name: 'bulwark.calls', value: 1, attributes: { policy: 'payments', outcome: 'success' } },
      { name: 'bulwark.call.duration', value: 0.5, attributes: { policy: 'payments', outcome: 'success' } },
      // The failing call opened the circuit; its call event follows the transition.
      {
        name: 'bulwark.circuit.transitions',
        value: 1,
        attributes: { policy: 'payments', from: 'closed', to: 'open' },
      },
      { name: 'bulwark.calls', value: 1, attributes: { policy: 'payments', outcome: 'failure' } },
      { name: 'bulwark.call.duration', value: 0, attributes: { policy: 'payments', outcome: 'failure' } },
    ]);
    expect(meter.collect('bulwark.circuit.state').filter((p) => p.value === 1)).toEqual([
      { value: 1, attributes: { policy: 'payments', state: 'open' } },
    ]);
  });

  it('maps queue, bulkhead and fault events; close() removes the gauge callbacks', () => {
    const meter = recordingMeter();
    const otel = new OpenTelemetryMetrics({ meter });
    otel.observe({
      type: 'queue.depth',
      source: 'q',
      at: 0,
      depth: { waiting: 3, delayed: 0, active: 1, completed: 9, dead: 2 },
    });
    otel.observe({ type: 'queue.job', source: 'q', at: 1, outcome: 'completed', jobId: '42', attempt: 1 });
    otel.observe({
      type: 'queue.failover',
      source: 'q',
      at: 2,
      from: 'redis',
      to: 'sqlite',
      reason: 'unhealthy',
    });
    otel.observe({ type: 'bulkhead.changed', source: 'db', at: 3, active: 5, queued: 0, capacity: 8 });
    otel.observe({ type: 'bulkhead.rejected', source: 'db', at: 4, active: 8, queued: 8 });
    otel.observe({ type: 'fault.injected', source: 'hang', at: 5, fault: 'timeout', call: 3 });
    otel.observe({ type: 'retry', source: 'r', at: 6, attempt: 1, delayMs: 100, error: new Error('x') });
    expect(meter.points).toEqual([
      { name: 'bulwark.queue.jobs', value: 1, attributes: { queue: 'q', outcome: 'completed' } },
      {
        name: 'bulwark.queue.failover',
        value: 1,
        attributes: { from: 'redis', to: 'sqlite', reason: 'unhealthy' },
      },
      { name: 'bulwark.bulkhead.rejected', value: 1, attributes: { policy: 'db' } },
      { name: 'bulwark.faults.injected', value: 1, attributes: { fault: 'hang' } },
      { name: 'bulwark.retry.attempts', value: 1, attributes: { policy: 'r' } },
    ]);
    expect(meter.collect('bulwark.queue.depth')).toContainEqual({
      value: 2,
      attributes: { queue: 'q', state: 'dead' },
    });
    expect(meter.collect('bulwark.bulkhead.active')).toEqual([{ value: 5, attributes: { policy: 'db' } }]);
    otel.close();
    expect(meter.collect('bulwark.queue.depth')).toEqual([]);
  });

  it('works on the API no-op meter and rejects bad options', () => {
    const otel = new OpenTelemetryMetrics({ meter: createNoopMeter() });
    otel.observe({ type: 'call', source: 'p', at: 0, kind: 'retry', outcome: 'success', durationMs: 3 });
    expect(() => new OpenTelemetryMetrics({ meter: {} as Meter })).toThrow(
      /"meter" must be an OpenTelemetry Meter/,
    );
    expect(() => new OpenTelemetryMetrics({ meter: createNoopMeter(), maxNames: -1 })).toThrow(/"maxNames"/);
    expect(() => new OpenTelemetryMetrics(undefined as never)).toThrow(/"options" must be an object/);
  });
});
