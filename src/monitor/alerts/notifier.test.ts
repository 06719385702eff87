import { describe, expect, it } from 'vitest';
import { type VirtualRuntime, virtualRuntime } from '../../core/runtime.js';
import { backoff } from '../../policy/backoff.js';
import { DeliveryError, type Notification, type Receiver } from './notification.js';
import { Notifier, type NotifierOptions } from './notifier.js';
import type { Alert } from './rules.js';

class FakeReceiver implements Receiver {
  readonly sent: { at: number; notification: Notification }[] = [];
  /** Errors thrown by the next attempts, in order. */
  failures: unknown[] = [];
  attempts: number[] = [];
  constructor(
    readonly name: string,
    private readonly rt: VirtualRuntime,
    readonly sendResolved = true,
  ) {}
  async send(notification: Notification): Promise<void> {
    this.attempts.push(this.rt.clock.now());
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
    this.sent.push({ at: this.rt.clock.now(), notification });
  }
  summary(): string[] {
    return this.sent.map(
      ({ at, notification: n }) =>
        `${at / 1000}s ${n.status} ${n.alerts.map((a) => `${a.labels.alertname}/${a.labels.instance ?? ''}:${a.status}`).join(',')}`,
    );
  }
}

function firing(name: string, labels: Record<string, string> = {}, at = 0): Alert {
  return {
    labels: { alertname: name, ...labels },
    annotations: { summary: `${name} fires` },
    startsAt: at,
    endsAt: undefined,
  };
}
function resolved(alert: Alert, at: number): Alert {
  return { ...alert, endsAt: at };
}

function setup(options: Partial<NotifierOptions> = {}, names = ['team']) {
  const rt = virtualRuntime(7);
  const receivers = names.map((n) => new FakeReceiver(n, rt));
  const notifier = new Notifier({
    runtime: rt,
    receivers,
    route: {
      receiver: names[0] as string,
      groupBy: ['alertname'],
      groupWait: '30s',
      groupInterval: '5m',
      repeatInterval: '4h',
    },
    retryBackoff: backoff.exponential({ initial: '1s', max: '1m' }),
    ...options,
  });
  return { rt, receivers, notifier, team: receivers[0] as FakeReceiver };
}

describe('Notifier: grouping, dedup and repeat', () => {
  it('waits group_wait, batches a group, notifies changes at group_interval and repeats after repeat_interval', async () => {
    const { rt, notifier, team } = setup();
    const a = firing('HighLatency', { instance: 'a' });
    const b = firing('HighLatency', { instance: 'b' });
    notifier.receive(a);
    await rt.clock.advance(10_000);
    notifier.receive(b);
    await rt.clock.advance(20_000);
    expect(team.summary()).toEqual(['30s firing HighLatency/a:firing,HighLatency/b:firing']);
    // The same alerts again (a rule re-sending them): nothing new until the repeat interval.
    notifier.receive(a);
    await rt.clock.advance(3 * 3600_000);
    expect(team.sent).toHaveLength(1);
    await rt.clock.advance(3600_000);
    expect(team.sent).toHaveLength(2);
    expect(team.sent[1]?.at).toBe(30_000 + 4 * 3600_000 + 300_000 * 0); // a group_interval tick at exactly 4h after
    // One resolves: notified at the next group_interval tick, once.
    notifier.receive(resolved(a, rt.clock.now()));
    await rt.clock.advance(600_000);
    expect(team.summary().slice(2)).toEqual([
      `${(30_000 + 4 * 3600_000 + 300_000) / 1000}s firing HighLatency/b:firing,HighLatency/a:resolved`,
    ]);
    notifier.receive(resolved(b, rt.clock.now()));
    await rt.clock.advance(600_000);
    expect(team.sent.at(-1)?.notification.status).toBe('resolved');
    expect(team.sent).toHaveLength(4);
    // The group ended: no more timers, no more notifications.
    await rt.clock.advance(24 * 3600_000);
    expect(team.sent).toHaveLength(4);
    await notifier.close();
  });

  it('routes by matchers, with continue', async () => {
    const { rt, notifier, receivers } = setup(
      {
        route: {
          receiver: 'team',
          groupWait: '0s',
          routes: [
            { matchers: ['severity="page"'], receiver: 'pager', continue: true },
            { matchers: ['severity=~"page|ticket"'], receiver: 'tickets' },
          ],
        },
      },
      ['team', 'pager', 'tickets'],
    );
    notifier.receive(firing('A', { severity: 'page' }));
    notifier.receive(firing('B', { severity: 'ticket' }));
    notifier.receive(firing('C', { severity: 'info' }));
    await rt.clock.advance(1000);
    const got = receivers.map((r) => r.sent.map((s) => s.notification.alerts[0]?.labels.alertname).sort());
    expect(got).toEqual([['C'], ['A'], ['A', 'B']]);
    await notifier.close();
  });

  it('inhibits a ticket while a page with the same service fires', async () => {
    const { rt, notifier, team } = setup({
      route: { receiver: 'team', groupBy: ['...'], groupWait: '0s', groupInterval: '1m' },
      inhibitRules: [
        { sourceMatchers: ['severity="page"'], targetMatchers: ['severity="ticket"'], equal: ['service'] },
      ],
    });
    const page = firing('Down', { severity: 'page', service: 'api' });
    notifier.receive(page);
    notifier.receive(firing('Slow', { severity: 'ticket', service: 'api' }));
    notifier.receive(firing('Slow', { severity: 'ticket', service: 'web' }));
    await rt.clock.advance(1000);
    expect(
      team.sent
        .map(
          (s) => `${s.notification.alerts[0]?.labels.alertname}/${s.notification.alerts[0]?.labels.service}`,
        )
        .sort(),
    ).toEqual(['Down/api', 'Slow/web']);
    notifier.receive(resolved(page, rt.clock.now()));
    await rt.clock.advance(60_000);
    expect(
      team.sent.map(
        (s) =>
          `${s.notification.status}:${s.notification.alerts[0]?.labels.alertname}/${s.notification.alerts[0]?.labels.service}`,
      ),
    ).toContain('firing:Slow/api');
    await notifier.close();
  });

  it('silencing an alert that was notified sends no empty notification', async () => {
    const { rt, notifier, team } = setup({
      route: { receiver: 'team', groupWait: '0s', groupInterval: '1m' },
    });
    notifier.receive(firing('Loud'));
    await rt.clock.advance(1000);
    notifier.createSilence({ matchers: ['alertname="Loud"'], duration: '1h' });
    await rt.clock.advance(30 * 60_000);
    expect(team.sent.map((s) => s.notification.alerts.length)).toEqual([1]);
    await notifier.close();
  });

  it('silences mute matching alerts until they expire', async () => {
    const { rt, notifier, team } = setup({
      route: { receiver: 'team', groupWait: '0s', groupInterval: '1m' },
    });
    const events: string[] = [];
    rt.events.subscribe(
      (e) => {
        if (e.type === 'alert.silence') events.push(`${e.action} ${e.matchers}`);
      },
      ['alert.silence'],
    );
    const id = notifier.createSilence({
      matchers: ['alertname="Noisy"'],
      duration: '2h',
      createdBy: 'ana',
      comment: 'deploy',
    });
    notifier.receive(firing('Noisy'));
    notifier.receive(firing('Real'));
    await rt.clock.advance(30 * 60_000);
    expect(team.sent.map((s) => s.notification.alerts[0]?.labels.alertname)).toEqual(['Real']);
    expect(notifier.listSilences().map((s) => [s.id, s.state])).toEqual([[id, 'active']]);
    expect(notifier.expireSilence(id)).toBe(true);
    expect(notifier.expireSilence(id)).toBe(false);
    await rt.clock.advance(60_000);
    expect(team.sent.map((s) => s.notification.alerts[0]?.labels.alertname)).toEqual(['Real', 'Noisy']);
    expect(notifier.listSilences()[0]?.state).toBe('expired');
    expect(events).toEqual(['created alertname="Noisy"', 'expired alertname="Noisy"']);
    expect(() => notifier.createSilence({ matchers: ['alertname~"x"'], duration: '1h' })).toThrow(
      /invalid matcher/,
    );
    expect(() => notifier.createSilence({ matchers: ['a="b"'] })).toThrow(/duration/);
    await notifier.close();
  });
});

describe('Notifier: delivery', () => {
  it('retries failures with backoff, honours Retry-After, and rejects what cannot succeed', async () => {
    const { rt, notifier, team } = setup({
      route: { receiver: 'team', groupWait: '0s', groupInterval: '1m', groupBy: ['...'] },
    });
    const outcomes: string[] = [];
    rt.events.subscribe(
      (e) => {
        if (e.type === 'alert.delivery') outcomes.push(`${e.outcome}@${e.at / 1000}`);
      },
      ['alert.delivery'],
    );
    team.failures = [
      new DeliveryError('receiver "team": HTTP 500', { retryable: true }),
      new DeliveryError('receiver "team": HTTP 429 (rate limited)', {
        retryable: true,
        retryAfterMs: 30_000,
      }),
    ];
    notifier.receive(firing('A'));
    await rt.clock.advance(60_000);
    // 1s backoff after the 500, then 30s (Retry-After beats the 2s backoff) after the 429.
    expect(team.attempts).toEqual([0, 1000, 31_000]);
    expect(outcomes).toEqual(['retrying@0', 'retrying@1', 'delivered@31']);
    team.failures = [new DeliveryError('receiver "team": HTTP 400', { retryable: false })];
    notifier.receive(firing('B'));
    await rt.clock.advance(60_000);
    expect(outcomes.at(-1)).toBe('rejected@60');
    expect(notifier.outbox()).toEqual({ pending: 0, delivered: 1, rejected: 1 });
    await notifier.close();
  });

  it('prunes delivered notifications older than the retention', async () => {
    const { rt, notifier, team } = setup({ retention: '1d' });
    notifier.receive(firing('Long'));
    await rt.clock.advance(3 * 86_400_000);
    // Repeated every 4 h for three days; only about a day of them is kept.
    expect(team.sent.length).toBeGreaterThanOrEqual(18);
    const kept = notifier.outbox().delivered;
    expect(kept).toBeGreaterThanOrEqual(6);
    expect(kept).toBeLessThanOrEqual(8);
    await notifier.close();
  });

  it('validates its options', () => {
    const rt = virtualRuntime(1);
    const r = new FakeReceiver('team', rt);
    expect(() => new Notifier({ runtime: rt, receivers: [r], route: { receiver: 'nobody' } })).toThrow(
      /route root: option "receiver" must be one of the receivers \(team\), got "nobody"/,
    );
    expect(() => new Notifier({ runtime: rt, receivers: [], route: { receiver: 'team' } })).toThrow(
      /receivers/,
    );
    expect(
      () => new Notifier({ runtime: rt, receivers: [r], route: { receiver: 'team', groupInterval: 0 } }),
    ).toThrow(/groupInterval/);
  });
});
