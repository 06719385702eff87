import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../core/clock.js';
import { BrokenCircuitError } from '../core/errors.js';
import type { BulwarkEvent } from '../core/events.js';
import { errorKind, LIVE_SECONDS, LiveAggregator, type RollupRow } from './live.js';

function setup(start = 1_000_000_000_000) {
  const clock = new VirtualClock({ start });
  const minutes: RollupRow[][] = [];
  const live = new LiveAggregator({ clock, maxNames: 50, onMinute: (rows) => minutes.push(rows) });
  return { clock, live, minutes };
}

const call = (
  source: string,
  outcome: 'success' | 'failure' | 'rejected' | 'timeout',
  durationMs: number,
  error?: unknown,
): BulwarkEvent =>
  outcome === 'success'
    ? { type: 'call', source, at: 0, kind: 'circuitBreaker', outcome, durationMs }
    : { type: 'call', source, at: 0, kind: 'circuitBreaker', outcome, durationMs, error };

describe('LiveAggregator', () => {
  it('aggregates a policy: totals, rate, success rate, errors by kind, percentiles, retries, timeouts', async () => {
    const { clock, live } = setup();
    live.ingest({ type: 'policy.created', source: 'api', at: 0, kind: 'circuitBreaker' });
    for (let i = 0; i < 90; i++) live.ingest(call('api', 'success', i < 80 ? 10 : 200));
    const refused = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    for (let i = 0; i < 6; i++) live.ingest(call('api', 'failure', 5, refused));
    for (let i = 0; i < 4; i++) live.ingest(call('api', 'rejected', 0, new BrokenCircuitError()));
    live.ingest({ type: 'retry', source: 'api', at: 0, attempt: 1, delayMs: 100, error: refused });
    live.ingest({ type: 'timeout.fired', source: 'api', at: 0, timeoutMs: 1000 });
    await clock.advance(1000);
    const p = live.snapshot().policies[0];
    expect(p).toMatchObject({
      name: 'api',
      kind: 'circuitBreaker',
      total: 100,
      rate: 10,
      successRate: 0.9,
      errorRate: 0.1,
      errors: { ECONNREFUSED: 6, REJECTED: 4 },
      retries: 1,
      timeouts: 1,
      state: 'closed',
    });
    expect(p?.latency.p50).toBeCloseTo(10, 0);
    expect(p?.latency.p99).toBeCloseTo(200, 0);
    expect(p?.spark.calls).toHaveLength(LIVE_SECONDS);
    expect(p?.spark.calls.at(-2)).toBe(100);
    expect(p?.spark.failures.at(-2)).toBe(10);
  });

  it('a one-second open between closed seconds still shows in the state sparkline', async () => {
    const { clock, live } = setup();
    live.ingest({ type: 'policy.created', source: 'b', at: 0, kind: 'circuitBreaker' });
    await clock.advance(5000);
    live.ingest({ type: 'circuit.transition', source: 'b', at: 0, from: 'closed', to: 'open', reason: 'x' });
    live.ingest({
      type: 'circuit.transition',
      source: 'b',
      at: 0,
      from: 'open',
      to: 'half-open',
      reason: 'x',
    });
    live.ingest({
      type: 'circuit.transition',
      source: 'b',
      at: 0,
      from: 'half-open',
      to: 'closed',
      reason: 'x',
    });
    await clock.advance(3000);
    const p = live.snapshot().policies[0];
    expect(p?.state).toBe('closed');
    expect(p?.opens).toBe(1);
    expect(p?.spark.state.slice(-5)).toEqual([0, 2, 0, 0, 0]);
    // An open that holds stays 2 until it ends.
    live.ingest({ type: 'circuit.transition', source: 'b', at: 0, from: 'closed', to: 'open', reason: 'x' });
    await clock.advance(2000);
    expect(live.snapshot().policies[0]?.spark.state.slice(-3)).toEqual([2, 2, 2]);
    // Beyond the window, the state held before it is remembered.
    await clock.advance((LIVE_SECONDS + 5) * 1000);
    expect(live.snapshot().policies[0]?.spark.state.every((s) => s === 2)).toBe(true);
  });

  it('aggregates queues, plans, faults, bulkheads and resources from synthetic events', () => {
    const { live } = setup();
    const events: BulwarkEvent[] = [
      {
        type: 'queue.depth',
        source: 'emails',
        at: 0,
        depth: { waiting: 4, delayed: 1, active: 2, completed: 10, dead: 1 },
      },
      {
        type: 'queue.job',
        source: 'emails',
        at: 0,
        outcome: 'completed',
        jobId: 'a',
        attempt: 1,
        durationMs: 5,
      },
      { type: 'queue.job', source: 'emails', at: 0, outcome: 'dead', jobId: 'b', attempt: 3, error: 'x' },
      { type: 'queue.failover', source: 'emails', at: 0, from: 'redis', to: 'sqlite', reason: 'unhealthy' },
      { type: 'queue.health', source: 'emails', at: 0, healthy: false, reason: 'ECONNREFUSED' },
      { type: 'queue.worker', source: 'emails', at: 0, workerId: 'w1', state: 'started' },
      { type: 'run.started', source: 'deploy', at: 0, runId: 'r1', steps: 3, dryRun: false },
      {
        type: 'step.succeeded',
        source: 'deploy',
        at: 0,
        runId: 'r1',
        step: 's1',
        tool: 't',
        durationMs: 4,
        simulated: false,
      },
      {
        type: 'step.failed',
        source: 'deploy',
        at: 0,
        runId: 'r1',
        step: 's2',
        tool: 't',
        error: 'x',
        final: true,
      },
      { type: 'step.compensated', source: 'deploy', at: 0, runId: 'r1', step: 's1', tool: 't', ok: true },
      {
        type: 'run.finished',
        source: 'deploy',
        at: 0,
        runId: 'r1',
        status: 'failed',
        durationMs: 30,
        rolledBack: 1,
        compensationFailures: 0,
      },
      { type: 'fault.injected', source: 'refused', at: 0, fault: 'error', call: 1, code: 'ECONNREFUSED' },
      { type: 'bulkhead.changed', source: 'db', at: 0, active: 3, queued: 1, capacity: 8 },
      { type: 'bulkhead.rejected', source: 'db', at: 0, active: 8, queued: 8 },
      { type: 'resource.changed', source: 'memory', at: 0, used: 60, capacity: 100 },
    ];
    for (const e of events) live.ingest(e);
    const s = live.snapshot();
    expect(s.queues).toEqual([
      expect.objectContaining({
        name: 'emails',
        depth: { waiting: 4, delayed: 1, active: 2, completed: 10, dead: 1 },
        jobs: { completed: 1, dead: 1 },
        failovers: 1,
        healthy: false,
        workers: 1,
      }),
    ]);
    expect(s.plans[0]).toMatchObject({
      name: 'deploy',
      runs: { started: 1, failed: 1 },
      stepsSucceeded: 1,
      stepsFailed: 1,
      compensations: 1,
      recent: [{ runId: 'r1', status: 'failed', steps: 3, stepsDone: 1, rolledBack: 1, durationMs: 30 }],
    });
    expect(s.faults).toEqual([expect.objectContaining({ name: 'refused', kind: 'error', count: 1 })]);
    expect(s.policies[0]?.bulkhead).toEqual({ active: 3, queued: 1, capacity: 8, rejected: 1 });
    expect(s.resources).toEqual([{ name: 'memory', used: 60, capacity: 100 }]);
    expect(s.events).toBe(events.length);
  });

  it('counts event types it has no panel for under others, and ignores those shown elsewhere', () => {
    const { live } = setup();
    live.ingest({ type: 'retry.exhausted', source: 'r', at: 0, attempts: 3, error: 'x' });
    const alert = { type: 'alert.fired', source: 'error-rate', at: 0 } as unknown as BulwarkEvent;
    live.ingest(alert);
    live.ingest(alert);
    expect(live.snapshot().others).toEqual([
      expect.objectContaining({ type: 'alert.fired', count: 2, sources: { 'error-rate': 2 } }),
    ]);
  });

  it('hands over per-minute rollups when the minute is over', async () => {
    const { clock, live, minutes } = setup(60_000 * 1000);
    for (let i = 0; i < 3; i++) live.ingest(call('api', 'success', 20));
    live.ingest(call('api', 'failure', 5, new Error('x')));
    live.ingest({
      type: 'circuit.transition',
      source: 'api',
      at: 0,
      from: 'closed',
      to: 'open',
      reason: 'x',
    });
    live.ingest({ type: 'fault.injected', source: 'hang', at: 0, fault: 'timeout', call: 1 });
    expect(minutes).toEqual([]);
    await clock.advance(60_000);
    live.tick();
    expect(minutes).toHaveLength(1);
    const rows = minutes[0] ?? [];
    expect(rows.find((r) => r.scope === 'policy')).toMatchObject({
      minute: 60_000 * 1000,
      name: 'api',
      sums: { calls: 4, success: 3, failure: 1, opens: 1 },
      maxima: { state: 2 },
    });
    expect(rows.find((r) => r.scope === 'policy')?.maxima.p99).toBeCloseTo(20, 0);
    expect(rows.find((r) => r.scope === 'fault')).toMatchObject({ name: 'hang', sums: { injected: 1 } });
    live.tick();
    expect(minutes).toHaveLength(1);
  });

  it('stops tracking new names beyond maxNames and bounds error kinds', () => {
    const clock = new VirtualClock();
    const live = new LiveAggregator({ clock, maxNames: 3 });
    for (let i = 0; i < 10; i++) live.ingest(call(`p${i}`, 'success', 1));
    for (let i = 0; i < 40; i++) live.ingest(call('p0', 'failure', 1, { code: `E${i}` }));
    const s = live.snapshot();
    expect(s.policies.map((p) => p.name)).toEqual(['p0', 'p1', 'p2']);
    expect(live.dropped).toBe(7);
    expect(Object.keys(s.policies[0]?.errors ?? {})).toHaveLength(17);
    expect(s.policies[0]?.errors.other).toBe(24);
  });

  it('errorKind: Bulwark code, Node code, name', () => {
    expect(errorKind(new BrokenCircuitError())).toBe('CIRCUIT_OPEN');
    expect(errorKind(Object.assign(new Error(), { code: 'ECONNRESET' }))).toBe('ECONNRESET');
    expect(errorKind(new TypeError('x'))).toBe('TypeError');
    expect(errorKind('oops')).toBe('string');
    expect(errorKind(undefined)).toBe('unknown');
  });
});
