import { describe, expect, it } from 'vitest';
import type { BulwarkEvent } from '../../core/events.js';
import { virtualRuntime } from '../../core/runtime.js';
import { backoff } from '../../policy/backoff.js';
import { HealthMonitor } from '../health/probes.js';
import { type ChildContext, Supervisor } from '../health/supervisor.js';
import { createMonitor } from '../monitor.js';
import { HealthView } from './panels.js';

const check = (component: string, ok: boolean): BulwarkEvent => ({
  type: 'health.check',
  source: component,
  at: 0,
  component,
  probe: 'liveness',
  ok,
  healthy: ok,
  durationMs: 1,
});

describe('HealthView', () => {
  it('keeps at most maxNames probes, children and healing targets, and the last 20 escalations', () => {
    const view = new HealthView(3);
    for (let i = 0; i < 10; i++) {
      view.observe(check(`c${i}`, i % 2 === 0), i);
      view.observe(
        {
          type: 'supervisor.child',
          source: 'root',
          at: i,
          child: `w${i}`,
          state: 'crashed',
          reason: 'crash',
          restarts: i,
        },
        i,
      );
      view.observe(
        { type: 'healing.action', source: 'healer', at: i, action: 'restart', target: `t${i}`, ok: false },
        i,
      );
    }
    for (let i = 0; i < 30; i++) {
      view.observe(
        { type: 'supervisor.escalated', source: 'root', at: i, child: 'w0', restarts: i, periodMs: 1000 },
        i,
      );
    }
    const s = view.snapshot();
    expect(s.probes.map((p) => p.component)).toEqual(['c1', 'c0', 'c2']); // down first, then by name
    expect(s.children).toHaveLength(3);
    expect(s.children[0]).toMatchObject({ child: 'w0', escalations: 30 });
    expect(s.healing).toHaveLength(3);
    expect(s.escalations).toHaveLength(20);
    expect(s.escalations[0]?.restarts).toBe(29);
  });

  it('counts failures in a row and resets them on success', () => {
    const view = new HealthView(10);
    for (const ok of [true, false, false, false, true, false]) view.observe(check('db', ok), 0);
    expect(view.snapshot().probes).toEqual([
      {
        component: 'db',
        probe: 'liveness',
        ok: false,
        healthy: false,
        durationMs: 1,
        at: 0,
        checks: 6,
        failures: 4,
        failingFor: 1,
      },
    ]);
  });
});

describe('the health panel from a real HealthMonitor and Supervisor', () => {
  it('shows a failing probe, restarts and the escalation of a crash loop', async () => {
    const rt = virtualRuntime(3);
    const monitor = createMonitor({ clock: rt.clock });
    monitor.attach(rt);
    let dbUp = true;
    const health = new HealthMonitor({ runtime: rt });
    health.register({
      name: 'db',
      readiness: { check: () => dbUp, period: '5s', failureThreshold: 2 },
      liveness: { check: () => true, period: '10s' },
    });
    let context: ChildContext | undefined;
    const supervisor = new Supervisor(
      { name: 'app', runtime: rt, backoff: backoff.constant('1s'), intensity: 2, period: '1m' },
      [
        {
          id: 'worker',
          start: (ctx) => {
            context = ctx;
            return {};
          },
        },
      ],
    );
    await supervisor.start();
    await rt.clock.advance(5000);
    dbUp = false;
    for (let crash = 0; crash < 3; crash++) {
      context?.crash(new Error('worker died'));
      await rt.clock.advance(5000);
    }
    const panel = monitor.snapshot().health;
    expect(panel.probes).toEqual([
      expect.objectContaining({ component: 'db', probe: 'readiness', ok: false, healthy: false }),
      expect.objectContaining({ component: 'db', probe: 'liveness', ok: true, healthy: true }),
    ]);
    expect(panel.probes[0]?.failingFor).toBeGreaterThanOrEqual(2);
    expect(panel.children).toEqual([
      expect.objectContaining({
        supervisor: 'app',
        child: 'worker',
        state: 'failed',
        restarts: 2,
        escalations: 1,
      }),
    ]);
    expect(panel.escalations).toEqual([expect.objectContaining({ supervisor: 'app', child: 'worker' })]);
    health.close();
    await supervisor.close();
    await monitor.close();
  });
});
