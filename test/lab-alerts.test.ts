/**
 * Done-means: an alert from a seeded lab run reaches the local SMTP server and the local Slack stand-in
 * exactly once per group/repeat interval, and resolves. The lab run's rule engine works on the run's
 * virtual clock (through `runScenario`'s `observe` hook); the alerts it raises are then fed, at the same
 * virtual times, to a notifier delivering to real local servers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BulwarkEvent } from '../src/core/events.js';
import { virtualRuntime } from '../src/core/runtime.js';
import { runScenario } from '../src/lab/runner.js';
import { parseScenarioFile } from '../src/lab/yaml.js';
import { AlertRuleEngine } from '../src/monitor/alerts/engine.js';
import { Notifier } from '../src/monitor/alerts/notifier.js';
import { emailReceiver } from '../src/monitor/alerts/receivers/email.js';
import { slackReceiver } from '../src/monitor/alerts/receivers/slack.js';
import type { Alert, AlertRule } from '../src/monitor/alerts/rules.js';
import { startHttp, startSmtp, waitFor } from './monitor-servers.js';

// The dependency answers in 100 ms; its first 2000 calls on each side fail (an outage that ends).
const SCENARIO = `
name: outage-then-recovery
tasks: 6000
concurrency: 10
dependency:
  faults:
    - latency: { delay: 100ms }
    - error: { code: ECONNREFUSED, firstN: 2000 }
before:
  - timeout: { after: 1s }
after:
  - retry: { maxAttempts: 2, backoff: { constant: 10ms } }
  - timeout: { after: 1s }
`;

const RULE: AlertRule = {
  kind: 'ratio',
  name: 'LabSuccessRateLow',
  match: { type: 'call', source: 'before.timeout.0' },
  good: { outcome: 'success' },
  below: 0.5,
  window: '10s',
  minVolume: 10,
  for: '5s',
  labels: { severity: 'page' },
};

/** Runs the scenario on `seed` and returns the alerts its rule engine raised, with their virtual times. */
async function alertsFromLabRun(seed: number): Promise<{ at: number; alert: Alert }[]> {
  const raised: { at: number; alert: Alert }[] = [];
  const report = await runScenario(parseScenarioFile(SCENARIO, 'outage.yaml'), {
    seed,
    observe(runtime) {
      const engine = new AlertRuleEngine({
        runtime,
        rules: [RULE],
        evaluationInterval: '1s',
        onAlert: (alert) => raised.push({ at: runtime.clock.now(), alert }),
      });
      return () => engine.close();
    },
  });
  expect(report.tasks).toBe(6000);
  return raised;
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

describe('a seeded lab run raises an alert that reaches email and Slack', () => {
  it('fires during the outage, resolves after it, and is the same for the same seed', async () => {
    const raised = await alertsFromLabRun(7);
    expect(raised.map((r) => (r.alert.endsAt === undefined ? 'firing' : 'resolved'))).toEqual([
      'firing',
      'resolved',
    ]);
    expect(await alertsFromLabRun(7)).toEqual(raised);

    const smtp = await startSmtp();
    cleanup.push(() => smtp.close());
    const slack = await startHttp();
    cleanup.push(() => slack.close());
    slack.script.push({ status: 500 });
    const rt = virtualRuntime(1);
    const events: BulwarkEvent[] = [];
    rt.events.subscribe((e) => events.push(e), ['alert.notification']);
    const mail = emailReceiver({
      name: 'mail',
      host: '127.0.0.1',
      port: smtp.port,
      from: 'lab@example.test',
      to: 'team@example.test',
    });
    cleanup.push(() => mail.close());
    const notifier = new Notifier({
      runtime: rt,
      receivers: [
        slackReceiver({ name: 'slack', url: `http://127.0.0.1:${slack.port}/services/T/B/lab` }),
        mail,
      ],
      route: {
        receiver: 'slack',
        groupWait: '5s',
        groupInterval: '10s',
        repeatInterval: '30s',
        routes: [{ receiver: 'slack', continue: true }, { receiver: 'mail' }],
      },
    });
    const end = (raised.at(-1)?.at as number) + 60_000;
    let next = 0;
    while (rt.clock.now() < end) {
      while (next < raised.length && (raised[next]?.at as number) <= rt.clock.now())
        notifier.receive((raised[next++] as { alert: Alert }).alert);
      await rt.clock.advance(1000);
      if (!notifier.idle) await waitFor(() => notifier.idle);
    }
    const firedAt = raised[0]?.at as number;
    const resolvedAt = raised[1]?.at as number;
    for (const receiver of ['slack', 'mail']) {
      const mine = events.filter((e) => e.type === 'alert.notification' && e.receiver === receiver);
      const firing = mine
        .filter((e) => e.type === 'alert.notification' && e.status === 'firing')
        .map((e) => e.at);
      // One notification at group_wait, one per repeat_interval while firing, one resolution.
      expect(firing[0]).toBe(Math.ceil(firedAt / 1000) * 1000 + 5000);
      for (let i = 1; i < firing.length; i++)
        expect((firing[i] as number) - (firing[i - 1] as number)).toBe(30_000);
      const resolution = mine.at(-1);
      expect(resolution?.type === 'alert.notification' && resolution.status).toBe('resolved');
      expect(resolution?.at).toBeGreaterThanOrEqual(resolvedAt);
      expect(resolution?.at).toBeLessThan(resolvedAt + 11_000);
      expect(firing.length).toBe(Math.ceil(((resolution?.at as number) - (firing[0] as number)) / 30_000));
    }
    const notified = (receiver: string) =>
      events.filter((e) => e.type === 'alert.notification' && e.receiver === receiver).length;
    expect(slack.accepted()).toHaveLength(notified('slack'));
    expect(slack.requests[0]?.status).toBe(500);
    expect(smtp.messages.map((m) => m.subject)).toEqual([
      ...Array.from(
        { length: notified('mail') - 1 },
        () => '[FIRING:1] LabSuccessRateLow (page before.timeout.0)',
      ),
      '[RESOLVED] LabSuccessRateLow (page before.timeout.0)',
    ]);
    await notifier.close();
  });
});
