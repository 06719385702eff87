import { describe, expect, it } from 'vitest';
import type { CallOutcome } from '../../core/events.js';
import { type VirtualRuntime, virtualRuntime } from '../../core/runtime.js';
import { AlertRuleEngine } from './engine.js';
import type { Alert, AlertRule } from './rules.js';
import { BucketedWindow } from './window.js';

function call(rt: VirtualRuntime, source: string, outcome: CallOutcome): void {
  rt.events.emit({ type: 'call', source, at: rt.clock.now(), kind: 'pipeline', outcome, durationMs: 1 });
}

/** Emits `perSecond` calls per second for `seconds`, `failEvery`-th of them failing. */
async function traffic(
  rt: VirtualRuntime,
  source: string,
  seconds: number,
  perSecond: number,
  failRatio: number,
) {
  let sent = 0;
  let failed = 0;
  for (let s = 0; s < seconds; s++) {
    for (let i = 0; i < perSecond; i++) {
      sent++;
      const fail = failed < Math.round(sent * failRatio);
      if (fail) failed++;
      call(rt, source, fail ? 'failure' : 'success');
    }
    await rt.clock.advance(1000);
  }
}

function engine(rt: VirtualRuntime, rules: AlertRule[], interval = '15s') {
  const alerts: Alert[] = [];
  const states: string[] = [];
  rt.events.subscribe(
    (e) => {
      if (e.type === 'alert.state')
        states.push(`${e.rule}:${e.state}:${e.labels.source ?? e.labels.component ?? ''}`);
    },
    ['alert.state'],
  );
  const e = new AlertRuleEngine({
    runtime: rt,
    rules,
    evaluationInterval: interval,
    onAlert: (a) => alerts.push(a),
  });
  return { engine: e, alerts, states };
}

describe('BucketedWindow', () => {
  it('sums the last window and forgets older buckets', () => {
    const w = new BucketedWindow(10_000, 10);
    w.add(0, 3);
    w.add(4_500, 2);
    expect(w.sum(9_999)).toBe(5);
    expect(w.sum(10_000)).toBe(2); // the bucket [0, 1000) left the window
    expect(w.sum(15_000)).toBe(0);
    w.add(100_000);
    expect(w.sum(100_000)).toBe(1);
  });
});

describe('ratio rule', () => {
  const rule: AlertRule = {
    kind: 'ratio',
    name: 'LowSuccessRate',
    match: { type: 'call' },
    good: { outcome: 'success' },
    below: 0.9,
    window: '5m',
    minVolume: 20,
    for: '1m',
    labels: { severity: 'page' },
    annotations: { summary: 'success rate of {{ labels.source }} is {{ value }}' },
  };

  it('goes pending, fires after `for`, and resolves when the rate recovers', async () => {
    const rt = virtualRuntime(1);
    const { engine: e, alerts, states } = engine(rt, [rule]);
    await traffic(rt, 'payments', 60, 2, 0.3);
    expect(states[0]).toBe('LowSuccessRate:pending:payments');
    expect(alerts).toHaveLength(0);
    await traffic(rt, 'payments', 30, 2, 0.3);
    expect(states).toContain('LowSuccessRate:firing:payments');
    expect(alerts).toHaveLength(1);
    const fired = alerts[0] as Alert;
    expect(fired.labels).toEqual({ alertname: 'LowSuccessRate', severity: 'page', source: 'payments' });
    expect(fired.annotations.summary).toMatch(/^success rate of payments is 0\.7/);
    expect(fired.endsAt).toBeUndefined();
    // Healthy traffic for a full window: the rate climbs back above 90%.
    await traffic(rt, 'payments', 330, 2, 0);
    expect(alerts).toHaveLength(2);
    expect(alerts[1]?.endsAt).toBeGreaterThan(alerts[1]?.startsAt as number);
    expect(states.at(-1)).toBe('LowSuccessRate:resolved:payments');
    e.close();
  });

  it('stays silent below the minimum volume, and per source', async () => {
    const rt = virtualRuntime(1);
    const { engine: e, alerts } = engine(rt, [rule]);
    // 10 calls in 5 minutes, all failing: below minVolume 20.
    for (let i = 0; i < 10; i++) {
      call(rt, 'rare', 'failure');
      await rt.clock.advance(30_000);
    }
    await traffic(rt, 'healthy', 120, 2, 0);
    expect(alerts).toHaveLength(0);
    e.close();
  });

  it('a pending series that recovers before `for` never notifies', async () => {
    const rt = virtualRuntime(1);
    const { engine: e, alerts, states } = engine(rt, [{ ...rule, window: '30s', for: '5m' }]);
    await traffic(rt, 'api', 40, 2, 0.5);
    await traffic(rt, 'api', 60, 2, 0);
    expect(states).toEqual(['LowSuccessRate:pending:api', 'LowSuccessRate:inactive:api']);
    expect(alerts).toHaveLength(0);
    e.close();
  });

  it('rejects bad options with the option named', () => {
    const rt = virtualRuntime(1);
    expect(() => new AlertRuleEngine({ runtime: rt, rules: [{ ...rule, below: 2 } as AlertRule] })).toThrow(
      /alert rule "LowSuccessRate": option "below" must be a ratio in \[0, 1\], got 2/,
    );
    expect(
      () => new AlertRuleEngine({ runtime: rt, rules: [{ ...rule, window: '5 min' } as AlertRule] }),
    ).toThrow(/window/);
    expect(() => new AlertRuleEngine({ runtime: rt, rules: [rule, rule] })).toThrow(/unique names/);
    expect(
      () => new AlertRuleEngine({ runtime: rt, rules: [{ ...rule, kind: 'nope' } as unknown as AlertRule] }),
    ).toThrow(/option "kind" must be one of/);
  });
});

describe('rate rule', () => {
  it('fires on events per second over the window', async () => {
    const rt = virtualRuntime(1);
    const { engine: e, alerts } = engine(rt, [
      { kind: 'rate', name: 'RetryStorm', match: { type: 'retry' }, above: 5, window: '1m', by: 'none' },
    ]);
    for (let s = 0; s < 90; s++) {
      for (let i = 0; i < 10; i++)
        rt.events.emit({
          type: 'retry',
          source: `svc${i % 3}`,
          at: rt.clock.now(),
          attempt: 1,
          delayMs: 1,
          error: null,
        });
      await rt.clock.advance(1000);
    }
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.labels).toEqual({ alertname: 'RetryStorm' });
    e.close();
  });
});

describe('burn-rate rule (SRE workbook table)', () => {
  const slo: AlertRule = {
    kind: 'burnRate',
    name: 'ErrorBudgetBurn',
    match: { type: 'call', source: 'api' },
    good: { outcome: 'success' },
    objective: 0.999,
  };

  it('pages at 2% errors (burn 20 > 14.4 on 1h and 5m) within minutes', async () => {
    const rt = virtualRuntime(1);
    const { engine: e, alerts } = engine(rt, [slo], '1m');
    await traffic(rt, 'api', 10 * 60, 5, 0.02);
    const severities = alerts.filter((a) => a.endsAt === undefined).map((a) => a.labels.severity);
    expect(severities).toContain('page');
    e.close();
  });

  it('at 0.5% errors (burn 5) opens a ticket but does not page', async () => {
    const rt = virtualRuntime(1);
    const { engine: e, alerts } = engine(rt, [slo], '1m');
    await traffic(rt, 'api', 3600, 1, 0);
    await traffic(rt, 'api', 3 * 3600, 1, 0.005);
    const severities = new Set(alerts.map((a) => a.labels.severity));
    expect(severities.has('ticket')).toBe(true);
    expect(severities.has('page')).toBe(false);
    e.close();
  });

  it('a short spike that the long window does not confirm does not page', async () => {
    const rt = virtualRuntime(1);
    const { engine: e, alerts } = engine(rt, [slo], '1m');
    await traffic(rt, 'api', 3600, 5, 0);
    // 2 minutes at 10% errors: the 5m window burns at ~40x; the 1h window at ~3.3x.
    await traffic(rt, 'api', 120, 5, 0.1);
    expect(alerts.filter((a) => a.labels.severity === 'page')).toHaveLength(0);
    e.close();
  });
});

describe('state rules', () => {
  it('circuitOpen fires while a breaker is open and resolves when it closes', async () => {
    const rt = virtualRuntime(1);
    const { engine: e, alerts } = engine(rt, [{ kind: 'circuitOpen', name: 'CircuitOpen', for: '30s' }]);
    const at = () => rt.clock.now();
    rt.events.emit({
      type: 'circuit.transition',
      source: 'db',
      at: at(),
      from: 'closed',
      to: 'open',
      reason: 'failures',
    });
    await rt.clock.advance(60_000);
    expect(alerts.map((a) => [a.labels.source, a.endsAt])).toEqual([['db', undefined]]);
    rt.events.emit({
      type: 'circuit.transition',
      source: 'db',
      at: at(),
      from: 'open',
      to: 'half-open',
      reason: 'timer',
    });
    await rt.clock.advance(15_000);
    expect(alerts).toHaveLength(1);
    rt.events.emit({
      type: 'circuit.transition',
      source: 'db',
      at: at(),
      from: 'half-open',
      to: 'closed',
      reason: 'trial',
    });
    await rt.clock.advance(15_000);
    expect(alerts).toHaveLength(2);
    expect(alerts[1]?.endsAt).toBeDefined();
    e.close();
  });

  it('queueDepth, deadLetters and healthFailing follow their events', async () => {
    const rt = virtualRuntime(1);
    const { engine: e, alerts } = engine(rt, [
      { kind: 'queueDepth', name: 'Backlog', above: 100 },
      { kind: 'deadLetters', name: 'DeadLetters', window: '10m' },
      { kind: 'healthFailing', name: 'Unhealthy', probe: 'readiness' },
    ]);
    const at = () => rt.clock.now();
    const depth = (waiting: number) =>
      rt.events.emit({
        type: 'queue.depth',
        source: 'mail',
        at: at(),
        depth: { waiting, delayed: 0, active: 0, completed: 0, dead: 0 },
      });
    depth(50);
    rt.events.emit({
      type: 'health.check',
      source: 'db',
      at: at(),
      component: 'db',
      probe: 'liveness',
      ok: false,
      healthy: false,
      durationMs: 1,
    });
    await rt.clock.advance(15_000);
    expect(alerts).toHaveLength(0);
    depth(150);
    rt.events.emit({ type: 'queue.job', source: 'mail', at: at(), outcome: 'dead', jobId: 'j1', attempt: 3 });
    rt.events.emit({
      type: 'health.check',
      source: 'db',
      at: at(),
      component: 'db',
      probe: 'readiness',
      ok: false,
      healthy: false,
      durationMs: 1,
    });
    await rt.clock.advance(15_000);
    expect(alerts.map((a) => a.labels.alertname).sort()).toEqual(['Backlog', 'DeadLetters', 'Unhealthy']);
    depth(10);
    await rt.clock.advance(11 * 60_000);
    expect(
      alerts
        .filter((a) => a.endsAt !== undefined)
        .map((a) => a.labels.alertname)
        .sort(),
    ).toEqual(['Backlog', 'DeadLetters']);
    e.close();
  });
});
