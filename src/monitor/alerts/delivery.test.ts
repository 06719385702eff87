/**
 * End to end against real local servers: a seeded chaos run raises an alert that reaches a real SMTP
 * server and a Slack stand-in exactly once per group/repeat interval and resolves; a webhook receiver
 * that is down gets everything when it comes back, across a process restart, exactly once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  freePort,
  type HttpStandIn,
  type SmtpStandIn,
  startHttp,
  startSmtp,
  waitFor,
} from '../../../test/monitor-servers.js';
import { faults, inject } from '../../chaos/faults.js';
import { schedule } from '../../chaos/schedule.js';
import type { BulwarkEvent } from '../../core/events.js';
import { virtualRuntime } from '../../core/runtime.js';
import { backoff } from '../../policy/backoff.js';
import { retry } from '../../policy/retry.js';
import { AlertRuleEngine } from './engine.js';
import { Notifier } from './notifier.js';
import { emailReceiver } from './receivers/email.js';
import { slackReceiver } from './receivers/slack.js';
import { webhookReceiver } from './receivers/webhook.js';

const SLACK_PATH = '/services/T0001/B0001/s3cr3tW3bh00kT0k3n';
const SMTP_PASSWORD = 'hunter2-smtp-password';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

describe('alerts to a real SMTP server and a Slack stand-in', () => {
  it('a seeded chaos run notifies once per group/repeat interval, survives 429 and 500, and resolves', async () => {
    const smtp: SmtpStandIn = await startSmtp();
    cleanup.push(() => smtp.close());
    const slack: HttpStandIn = await startHttp();
    cleanup.push(() => slack.close());
    // Slack rate-limits the first post and fails the second: both are retried, nothing is sent twice.
    slack.script.push({ status: 429, headers: { 'retry-after': '3' } }, { status: 500 });

    const rt = virtualRuntime(42);
    const events: BulwarkEvent[] = [];
    rt.events.subscribe((e) => events.push(e), ['alert.state', 'alert.notification', 'alert.delivery']);
    const mail = emailReceiver({
      name: 'oncall-mail',
      host: '127.0.0.1',
      port: smtp.port,
      from: 'bulwark@example.test',
      to: 'oncall@example.test',
      auth: { user: 'bulwark', pass: SMTP_PASSWORD },
    });
    const notifier = new Notifier({
      runtime: rt,
      receivers: [
        slackReceiver({
          name: 'team-slack',
          url: `http://127.0.0.1:${slack.port}${SLACK_PATH}`,
          now: () => rt.clock.now(),
        }),
        mail,
      ],
      route: {
        receiver: 'team-slack',
        groupBy: ['alertname'],
        groupWait: '30s',
        groupInterval: '1m',
        repeatInterval: '5m',
        routes: [{ receiver: 'team-slack', continue: true }, { receiver: 'oncall-mail' }],
      },
      retryBackoff: backoff.exponential({ initial: '1s', max: '30s' }),
    });
    cleanup.push(() => mail.close());
    const engine = new AlertRuleEngine({
      runtime: rt,
      evaluationInterval: '15s',
      rules: [
        {
          kind: 'ratio',
          name: 'LowSuccessRate',
          match: { type: 'call', source: 'payments' },
          good: { outcome: 'success' },
          below: 0.9,
          window: '1m',
          minVolume: 20,
          for: '1m',
          labels: { severity: 'page' },
          annotations: { summary: 'payments succeed {{ value }} of the time' },
        },
      ],
      onAlert: (alert) => notifier.receive(alert),
    });

    // The seeded chaos run: payments behind a retry; its dependency fails 60% of calls from 2 to 12 minutes.
    const payments = retry({
      name: 'payments',
      runtime: rt,
      maxAttempts: 2,
      backoff: backoff.constant('100ms'),
    });
    const dependency = inject(
      async () => 'ok',
      [
        faults.error({
          name: 'dependency',
          runtime: rt,
          schedule: schedule.window('2m', '12m').and(schedule.rate(0.6)),
        }),
      ],
    );
    for (let second = 0; second < 20 * 60; second++) {
      for (let i = 0; i < 5; i++) payments.execute(dependency).catch(() => undefined);
      await rt.clock.advance(1000);
      if (!notifier.idle) await waitFor(() => notifier.idle, 10_000, 'deliveries in flight');
    }
    engine.close();
    await waitFor(() => notifier.idle);

    const states = events.filter((e) => e.type === 'alert.state').map((e) => e.state);
    expect(states).toEqual(['pending', 'firing', 'resolved']);
    const firedAt = events.find((e) => e.type === 'alert.state' && e.state === 'firing')?.at as number;
    const resolvedAt = events.find((e) => e.type === 'alert.state' && e.state === 'resolved')?.at as number;
    expect(firedAt).toBeGreaterThan(2 * 60_000);
    expect(resolvedAt).toBeGreaterThan(12 * 60_000);

    const notified = events.filter((e) => e.type === 'alert.notification');
    for (const receiver of ['team-slack', 'oncall-mail']) {
      const mine = notified.filter((e) => e.receiver === receiver);
      const statuses = mine.map((e) => e.status);
      // First notification one group_wait after firing; then one per repeat_interval; then the resolution.
      expect(mine[0]?.at).toBe(firedAt + 30_000);
      const firingAts = mine.filter((e) => e.status === 'firing').map((e) => e.at);
      for (let i = 1; i < firingAts.length; i++) {
        const gap = (firingAts[i] as number) - (firingAts[i - 1] as number);
        expect(gap).toBeGreaterThanOrEqual(5 * 60_000);
        expect(gap).toBeLessThan(6 * 60_000);
      }
      // Group ticks every group_interval from the first flush; the resolution goes out at the first tick after it.
      const first = firingAts[0] as number;
      const resolvedFlush = first + Math.ceil((resolvedAt - first) / 60_000) * 60_000;
      expect(mine.at(-1)?.at).toBe(resolvedFlush);
      expect(firingAts).toEqual(
        Array.from({ length: Math.ceil((resolvedFlush - first) / 300_000) }, (_, k) => first + k * 300_000),
      );
      expect(statuses.at(-1)).toBe('resolved');
      expect(statuses.filter((s) => s === 'resolved')).toHaveLength(1);
    }
    const slackNotified = notified.filter((e) => e.receiver === 'team-slack').length;
    const mailNotified = notified.filter((e) => e.receiver === 'oncall-mail').length;

    // Slack: exactly one accepted post per notification, after a 429 (waited 3 s) and a 500.
    expect(slack.requests.map((r) => r.status).slice(0, 3)).toEqual([429, 500, 200]);
    expect(slack.accepted()).toHaveLength(slackNotified);
    const deliveries = events.filter((e) => e.type === 'alert.delivery' && e.receiver === 'team-slack');
    const retryAfter429 = deliveries[0];
    expect(retryAfter429?.type === 'alert.delivery' && retryAfter429.outcome).toBe('retrying');
    expect(
      retryAfter429?.type === 'alert.delivery' && (retryAfter429.retryAt as number) - retryAfter429.at,
    ).toBe(3000);
    const bodies = slack
      .accepted()
      .map((r) => r.body as { text: string; attachments: { color: string; blocks: unknown[] }[] });
    expect(bodies[0]?.text).toBe('[FIRING:1] LowSuccessRate (page payments)');
    expect(bodies[0]?.attachments[0]?.color).toBe('#E01E5A');
    expect(bodies[0]?.attachments[0]?.blocks.length).toBeGreaterThan(0);
    expect(bodies.at(-1)?.text).toBe('[RESOLVED] LowSuccessRate (page payments)');
    expect(bodies.at(-1)?.attachments[0]?.color).toBe('#2EB67D');

    // Email: one message per notification, subject [FIRING:n] …, through an authenticated session.
    expect(smtp.messages).toHaveLength(mailNotified);
    expect(smtp.messages.map((m) => m.subject)).toEqual([
      ...Array.from({ length: mailNotified - 1 }, () => '[FIRING:1] LowSuccessRate (page payments)'),
      '[RESOLVED] LowSuccessRate (page payments)',
    ]);
    expect(smtp.messages[0]?.text).toContain('payments succeed 0.');
    expect(smtp.messages[0]?.to && 'text' in smtp.messages[0].to ? smtp.messages[0].to.text : '').toBe(
      'oncall@example.test',
    );
    expect(smtp.logins[0]).toBe(`bulwark:${SMTP_PASSWORD}`);

    // Secrets appear in no event.
    const everything = JSON.stringify(events) + inspect(events, { depth: 10 });
    expect(everything).not.toContain('s3cr3tW3bh00kT0k3n');
    expect(everything).not.toContain(SMTP_PASSWORD);
    await notifier.close();
  });
});

describe('a webhook receiver that is down, across a process restart', () => {
  it('queues in SQLite and delivers everything exactly once when it returns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-alerts-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'alerts.db');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/hooks/alertmanager?token=s3cr3t`;
    const route = {
      receiver: 'ops',
      groupBy: ['alertname'],
      groupWait: '10s',
      groupInterval: '1m',
      repeatInterval: '1h',
    };

    // Process 1: two groups fire; the receiver is down, every attempt fails and is queued for later.
    const rt1 = virtualRuntime(1);
    const events: BulwarkEvent[] = [];
    rt1.events.subscribe((e) => events.push(e), ['alert.delivery', 'alert.notification']);
    const first = new Notifier({
      runtime: rt1,
      store: file,
      receivers: [webhookReceiver({ name: 'ops', url })],
      route,
      retryBackoff: backoff.exponential({ initial: '1s', max: '20s' }),
    });
    const alert = (name: string, instance: string) => ({
      labels: { alertname: name, instance },
      annotations: { summary: `${name} on ${instance}` },
      startsAt: rt1.clock.now(),
      endsAt: undefined,
    });
    first.receive(alert('DiskFull', 'db-1'));
    first.receive(alert('DiskFull', 'db-2'));
    first.receive(alert('HighLatency', 'api-1'));
    for (let s = 0; s < 120; s++) {
      await rt1.clock.advance(1000);
      if (!first.idle) await waitFor(() => first.idle);
    }
    const failedAttempts = events.filter((e) => e.type === 'alert.delivery' && e.outcome === 'retrying');
    expect(failedAttempts.length).toBeGreaterThan(3);
    expect(
      failedAttempts.every(
        (e) => e.type === 'alert.delivery' && e.error === 'receiver "ops": request failed (ECONNREFUSED)',
      ),
    ).toBe(true);
    expect(first.outbox()).toEqual({ pending: 2, delivered: 0, rejected: 0 });
    const stoppedAt = rt1.clock.now();
    await first.close();

    // The receiver comes back; process 2 opens the same file and delivers the queue, once.
    const hook = await startHttp(port);
    cleanup.push(() => hook.close());
    const rt2 = virtualRuntime(2, { start: stoppedAt });
    rt2.events.subscribe((e) => events.push(e), ['alert.delivery', 'alert.notification']);
    const second = new Notifier({
      runtime: rt2,
      store: file,
      receivers: [webhookReceiver({ name: 'ops', url })],
      route,
    });
    for (let s = 0; s < 60 && hook.accepted().length < 2; s++) {
      await rt2.clock.advance(1000);
      await waitFor(() => second.idle);
    }
    expect(second.outbox()).toEqual({ pending: 0, delivered: 2, rejected: 0 });
    const payloads = hook.accepted().map((r) => r.body as Record<string, unknown>);
    expect(payloads.map((p) => (p.groupLabels as Record<string, string>).alertname).sort()).toEqual([
      'DiskFull',
      'HighLatency',
    ]);
    const disk = payloads.find(
      (p) => (p.groupLabels as Record<string, string>).alertname === 'DiskFull',
    ) as Record<string, unknown>;
    expect(disk).toMatchObject({
      version: '4',
      status: 'firing',
      receiver: 'ops',
      truncatedAlerts: 0,
      commonLabels: { alertname: 'DiskFull' },
    });
    expect(
      (disk.alerts as { labels: { instance: string }; endsAt: string }[]).map((a) => [
        a.labels.instance,
        a.endsAt,
      ]),
    ).toEqual([
      ['db-1', '0001-01-01T00:00:00Z'],
      ['db-2', '0001-01-01T00:00:00Z'],
    ]);

    // The rule engine of process 2 re-sends the same firing alerts: the notification log (persisted)
    // knows they were notified, so nothing is sent again before the repeat interval.
    second.receive({ ...alert('DiskFull', 'db-1'), startsAt: stoppedAt });
    second.receive({ ...alert('DiskFull', 'db-2'), startsAt: stoppedAt });
    for (let s = 0; s < 30; s++) {
      await rt2.clock.advance(10_000);
      if (!second.idle) await waitFor(() => second.idle);
    }
    expect(hook.accepted()).toHaveLength(2);
    expect(JSON.stringify(events)).not.toContain('s3cr3t');
    await second.close();
  });
});

describe('Slack and SMTP down while an alert fires and resolves, across a process restart', () => {
  it('delivers the firing and the resolved notification to each, in order, exactly once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-alerts-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'alerts.db');
    const slackPort = await freePort();
    const smtpPort = await freePort();
    const receivers = () => {
      const mail = emailReceiver({
        name: 'mail',
        host: '127.0.0.1',
        port: smtpPort,
        from: 'a@example.test',
        to: 'b@example.test',
      });
      cleanup.push(() => mail.close());
      return [slackReceiver({ name: 'slack', url: `http://127.0.0.1:${slackPort}${SLACK_PATH}` }), mail];
    };
    const route = {
      receiver: 'slack',
      groupWait: '5s',
      groupInterval: '30s',
      repeatInterval: '1h',
      routes: [{ receiver: 'slack', continue: true }, { receiver: 'mail' }],
    };
    const events: BulwarkEvent[] = [];
    const rt1 = virtualRuntime(1);
    rt1.events.subscribe((e) => events.push(e), ['alert.delivery']);
    const first = new Notifier({
      runtime: rt1,
      store: file,
      receivers: receivers(),
      route,
      retryBackoff: backoff.constant('10s'),
    });
    const alert = {
      labels: { alertname: 'QueueBacklog', queue: 'mail' },
      annotations: { summary: 'backlog' },
      startsAt: 0,
      endsAt: undefined,
    };
    first.receive(alert);
    const drive = async (rt: typeof rt1, notifier: Notifier, seconds: number, until?: () => boolean) => {
      for (let s = 0; s < seconds && !(until?.() ?? false); s++) {
        await rt.clock.advance(1000);
        if (!notifier.idle) await waitFor(() => notifier.idle);
      }
    };
    await drive(rt1, first, 60);
    first.receive({ ...alert, endsAt: rt1.clock.now() });
    await drive(rt1, first, 60);
    expect(first.outbox()).toEqual({ pending: 4, delivered: 0, rejected: 0 });
    const refused = events
      .filter((e) => e.type === 'alert.delivery' && e.outcome === 'retrying')
      .map((e) => e.type === 'alert.delivery' && e.error);
    expect(new Set(refused)).toEqual(
      new Set([
        'receiver "slack": request failed (ECONNREFUSED)',
        'receiver "mail": SMTP ESOCKET (ECONNREFUSED)',
      ]),
    );
    const stoppedAt = rt1.clock.now();
    await first.close();

    const smtp = await startSmtp(smtpPort);
    cleanup.push(() => smtp.close());
    const slack = await startHttp(slackPort);
    cleanup.push(() => slack.close());
    const rt2 = virtualRuntime(2, { start: stoppedAt });
    const second = new Notifier({ runtime: rt2, store: file, receivers: receivers(), route });
    await drive(rt2, second, 120, () => slack.accepted().length === 2 && smtp.messages.length === 2);
    await waitFor(() => second.idle);
    expect(second.outbox()).toEqual({ pending: 0, delivered: 4, rejected: 0 });
    expect(slack.accepted().map((r) => (r.body as { text: string }).text)).toEqual([
      '[FIRING:1] QueueBacklog (mail)',
      '[RESOLVED] QueueBacklog (mail)',
    ]);
    expect(smtp.messages.map((m) => m.subject)).toEqual([
      '[FIRING:1] QueueBacklog (mail)',
      '[RESOLVED] QueueBacklog (mail)',
    ]);
    await drive(rt2, second, 300);
    expect(slack.accepted()).toHaveLength(2);
    expect(smtp.messages).toHaveLength(2);
    expect(JSON.stringify(events)).not.toContain('s3cr3tW3bh00kT0k3n');
    await second.close();
  });
});

describe('a receiver that hangs', () => {
  it('is abandoned at the delivery deadline and tried again', async () => {
    const hook = await startHttp();
    cleanup.push(() => hook.close());
    hook.script.push({ status: 0 });
    const rt = virtualRuntime(3);
    const outcomes: string[] = [];
    rt.events.subscribe(
      (e) => {
        if (e.type === 'alert.delivery')
          outcomes.push(`${e.outcome}@${e.at / 1000}s${e.error === undefined ? '' : ` ${e.error}`}`);
      },
      ['alert.delivery'],
    );
    const notifier = new Notifier({
      runtime: rt,
      receivers: [webhookReceiver({ name: 'ops', url: `http://127.0.0.1:${hook.port}/` })],
      route: { receiver: 'ops', groupWait: 0 },
      deliveryTimeout: '10s',
      retryBackoff: backoff.constant('5s'),
    });
    notifier.receive({ labels: { alertname: 'Stuck' }, annotations: {}, startsAt: 0, endsAt: undefined });
    await rt.clock.advance(0);
    await waitFor(() => hook.requests.length === 1);
    // The request hangs: virtual time runs on to the deadline without waiting for it.
    for (let s = 0; s < 10; s++) await rt.clock.advance(1000);
    await waitFor(() => notifier.idle);
    expect(outcomes).toEqual(['retrying@10s timed out']);
    await rt.clock.advance(5000);
    await waitFor(() => hook.accepted().length === 1 && notifier.idle);
    expect(outcomes).toEqual(['retrying@10s timed out', 'delivered@15s']);
    await notifier.close();
  });
});
