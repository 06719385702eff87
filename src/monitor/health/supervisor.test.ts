import { describe, expect, it } from 'vitest';
import { faults, inject } from '../../chaos/faults.js';
import { schedule } from '../../chaos/schedule.js';
import type { Timer } from '../../core/clock.js';
import type { EventOf } from '../../core/events.js';
import { type VirtualRuntime, virtualRuntime } from '../../core/runtime.js';
import { backoff } from '../../policy/backoff.js';
import { AlertRuleEngine } from '../alerts/engine.js';
import type { Alert } from '../alerts/rules.js';
import {
  type ChildContext,
  type ChildSpec,
  Supervisor,
  type SupervisorEscalatedError,
} from './supervisor.js';

function childEvents(rt: VirtualRuntime): EventOf<'supervisor.child'>[] {
  const events: EventOf<'supervisor.child'>[] = [];
  rt.events.subscribe(
    (e) => {
      if (e.type === 'supervisor.child') events.push(e);
    },
    ['supervisor.child'],
  );
  return events;
}

/** A child whose instances are recorded; `crash(id)` makes the running instance die. */
function simpleChildren(ids: string[], restart?: 'permanent' | 'transient' | 'temporary') {
  const contexts = new Map<string, ChildContext>();
  const starts: string[] = [];
  const stops: string[] = [];
  const specs: ChildSpec[] = ids.map((id) => ({
    id,
    ...(restart === undefined ? {} : { restart }),
    start(ctx) {
      contexts.set(id, ctx);
      starts.push(id);
      return { id };
    },
    stop() {
      stops.push(id);
    },
  }));
  return {
    specs,
    starts,
    stops,
    crash: (id: string) => contexts.get(id)?.crash(new Error(`${id} died`)),
    exit: (id: string) => contexts.get(id)?.exit(),
  };
}

const quick = { backoff: backoff.constant('1s'), intensity: 10, period: '1m' };

describe('Supervisor strategies', () => {
  it('one_for_one restarts only the crashed child', async () => {
    const rt = virtualRuntime(1);
    const c = simpleChildren(['a', 'b', 'c']);
    const sup = new Supervisor({ runtime: rt, ...quick }, c.specs);
    await sup.start();
    c.crash('b');
    await rt.clock.advance(1000);
    expect(c.starts).toEqual(['a', 'b', 'c', 'b']);
    expect(c.stops).toEqual(['b']);
    await sup.close();
  });

  it('one_for_all stops the others in reverse order and restarts everyone in order', async () => {
    const rt = virtualRuntime(1);
    const c = simpleChildren(['a', 'b', 'c']);
    const sup = new Supervisor({ runtime: rt, strategy: 'one_for_all', ...quick }, c.specs);
    await sup.start();
    c.crash('b');
    await rt.clock.advance(1000);
    expect(c.stops).toEqual(['b', 'c', 'a']);
    expect(c.starts).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    await sup.close();
  });

  it('rest_for_one restarts the crashed child and those started after it', async () => {
    const rt = virtualRuntime(1);
    const c = simpleChildren(['a', 'b', 'c']);
    const sup = new Supervisor({ runtime: rt, strategy: 'rest_for_one', ...quick }, c.specs);
    await sup.start();
    c.crash('b');
    await rt.clock.advance(1000);
    expect(c.stops).toEqual(['b', 'c']);
    expect(c.starts).toEqual(['a', 'b', 'c', 'b', 'c']);
    await sup.close();
  });

  it('honours restart types: temporary never, transient only after a crash', async () => {
    const rt = virtualRuntime(1);
    const temporary = simpleChildren(['t'], 'temporary');
    const transient = simpleChildren(['x', 'y'], 'transient');
    const sup = new Supervisor({ runtime: rt, ...quick }, [...temporary.specs, ...transient.specs]);
    await sup.start();
    temporary.crash('t');
    transient.exit('x');
    transient.crash('y');
    await rt.clock.advance(5000);
    expect(temporary.starts).toEqual(['t']);
    expect(transient.starts).toEqual(['x', 'y', 'y']);
    expect(sup.which().map((s) => `${s.id}:${s.state}`)).toEqual(['t:stopped', 'x:stopped', 'y:running']);
    await sup.close();
  });

  it('escalates to a parent supervisor, which restarts the child supervisor', async () => {
    const rt = virtualRuntime(1);
    const c = simpleChildren(['worker']);
    const inner = new Supervisor(
      { name: 'inner', runtime: rt, backoff: backoff.constant('1s'), intensity: 1, period: '1m' },
      c.specs,
    );
    const outer = new Supervisor(
      { name: 'outer', runtime: rt, backoff: backoff.constant('5s'), intensity: 3, period: '1h' },
      [inner.asChild()],
    );
    const events = childEvents(rt);
    await outer.start();
    c.crash('worker');
    await rt.clock.advance(1000);
    c.crash('worker'); // second restart within the minute: inner gives up
    await rt.clock.advance(1000);
    expect(inner.failed).toBe(true);
    expect(events.filter((e) => e.source === 'outer').map((e) => e.state)).toEqual([
      'started',
      'crashed',
      'restarting',
    ]);
    await rt.clock.advance(5000);
    expect(inner.failed).toBe(false);
    expect(outer.instance('inner')).toBe(inner);
    expect(c.starts).toEqual(['worker', 'worker', 'worker']);
    await outer.close();
  });

  it('validates its options', () => {
    expect(() => new Supervisor({ strategy: 'one_for_some' as 'one_for_one' }, [])).toThrow(
      /option "strategy" must be one of/,
    );
    expect(() => new Supervisor({ intensity: -1 }, [])).toThrow(/intensity/);
    const spec = { id: 'a', start: () => 1 };
    expect(() => new Supervisor({}, [spec, spec])).toThrow(/children\[1\]\.id/);
  });
});

/**
 * A worker that does one unit of work per second through a fault from `bulwark/chaos`; when the fault
 * fires, the worker crashes. `up` accumulates the time some instance was running.
 */
function crashingWorker(rt: VirtualRuntime, crashSchedule: ReturnType<typeof schedule.everyNth>) {
  const work = inject(
    async () => 'done',
    [faults.error({ name: 'worker.crash', runtime: rt, kind: 'ECONNRESET', schedule: crashSchedule })],
  );
  const stats = { up: 0, since: undefined as number | undefined, done: 0 };
  const spec: ChildSpec<{ close(): void }> = {
    id: 'worker',
    start(ctx) {
      stats.since = rt.clock.now();
      let timer: Timer | undefined;
      const stop = () => {
        timer?.cancel();
        if (stats.since !== undefined) stats.up += rt.clock.now() - stats.since;
        stats.since = undefined;
      };
      const tick = () => {
        work().then(
          () => {
            stats.done++;
            timer = rt.clock.setTimer(1000, tick, undefined);
          },
          (error: unknown) => ctx.crash(error),
        );
      };
      timer = rt.clock.setTimer(1000, tick, undefined);
      return { close: stop };
    },
  };
  return { spec, stats };
}

describe('crash on a chaos schedule', () => {
  it('keeps the component available, backs restarts off, and a crash loop trips the intensity limit and the alert', async () => {
    const rt = virtualRuntime(5);
    const events = childEvents(rt);
    const escalated: SupervisorEscalatedError[] = [];
    // Crashes every 60th unit of work; from 30 minutes on, on every unit: a crash loop.
    const worker = crashingWorker(
      rt,
      schedule.everyNth(60).or(schedule.window('30m', Number.POSITIVE_INFINITY)),
    );
    const alerts: Alert[] = [];
    const engine = new AlertRuleEngine({
      runtime: rt,
      evaluationInterval: '10s',
      rules: [{ kind: 'componentFailed', name: 'ComponentFailed', labels: { severity: 'page' } }],
      onAlert: (a) => alerts.push(a),
    });
    const sup = new Supervisor(
      {
        name: 'app',
        runtime: rt,
        intensity: 5,
        period: '2m',
        backoff: backoff.exponential({ initial: '1s', max: '1m' }),
        resetAfter: '30s',
        onEscalate: (e) => escalated.push(e),
      },
      [worker.spec],
    );
    await sup.start();
    await rt.clock.advance(30 * 60_000);

    // Phase 1: a crash a minute, each restarted after the initial 1 s (the backoff resets after 30 s of health).
    const phase1 = events.filter((e) => e.at < 30 * 60_000);
    const crashes = phase1.filter((e) => e.state === 'crashed');
    expect(crashes.length).toBeGreaterThanOrEqual(28);
    expect(new Set(phase1.filter((e) => e.state === 'restarting').map((e) => e.delayMs))).toEqual(
      new Set([1000]),
    );
    expect(crashes[0]?.error).toMatch(/ECONNRESET/);
    const availability =
      (worker.stats.up + (worker.stats.since === undefined ? 0 : rt.clock.now() - worker.stats.since)) /
      rt.clock.now();
    expect(availability).toBeGreaterThan(0.95);
    expect(sup.failed).toBe(false);
    expect(alerts).toHaveLength(0);

    // Phase 2: the crash loop. Restarts back off exponentially until the intensity limit is exceeded.
    await rt.clock.advance(10 * 60_000);
    const loopDelays = events
      .filter((e) => e.at >= 30 * 60_000 && e.state === 'restarting')
      .map((e) => e.delayMs);
    expect(loopDelays.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < loopDelays.length; i++) expect(loopDelays[i]).toBe(2 * (loopDelays[i - 1] as number));
    expect(sup.failed).toBe(true);
    const failed = events.find((e) => e.state === 'failed');
    expect(failed).toMatchObject({ child: 'worker', reason: 'intensity', source: 'app' });
    expect((failed?.at as number) - 30 * 60_000).toBeLessThan(2 * 60_000);
    expect(escalated.map((e) => [e.code, e.child])).toEqual([['SUPERVISOR_ESCALATED', 'worker']]);
    expect(sup.which()[0]?.state).toBe('failed');
    // …and the alert fired for the failed component.
    expect(
      alerts.map((a) => [a.labels.alertname, a.labels.component, a.labels.supervisor, a.endsAt]),
    ).toEqual([['ComponentFailed', 'worker', 'app', undefined]]);
    const doneAtFailure = worker.stats.done;
    await rt.clock.advance(10 * 60_000);
    expect(worker.stats.done).toBe(doneAtFailure); // nothing restarts a failed supervisor's children
    engine.close();
    await sup.close();
  });
});
