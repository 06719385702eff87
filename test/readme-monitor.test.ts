/** The README's monitoring examples work as written (the YAML verbatim; the code with stand-ins for the app's parts). */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { virtualRuntime } from '../src/core/runtime.js';
import { checks, child, HealthMonitor, healing, parseAlertConfig, Supervisor } from '../src/monitor/index.js';
import { backoff, circuitBreaker } from '../src/policy/index.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function block(section: string, lang: string): string {
  const start = readme.indexOf(section);
  expect(start).toBeGreaterThan(0);
  const open = readme.indexOf(`\`\`\`${lang}\n`, start);
  return readme.slice(open + lang.length + 4, readme.indexOf('```', open + 3));
}

describe('README: monitoring', () => {
  it('the alerts.yaml example is a valid config', () => {
    const config = parseAlertConfig(block('## Alerts (`bulwark/monitor`)', 'yaml'), 'alerts.yaml', {
      SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/T/B/x',
      SMTP_PASSWORD: 'p',
    });
    expect(config.rules.map((r) => r.kind)).toEqual(['ratio', 'burnRate', 'circuitOpen']);
    expect(config.receivers.map((r) => r.name)).toEqual(['team-slack', 'oncall']);
    expect(config.store).toBe('alerts.db');
    for (const r of config.receivers) (r as { close?: () => void }).close?.();
  });

  it('the health example: a liveness failure restarts the supervised mailer', async () => {
    const runtime = virtualRuntime(1);
    let alive = 0;
    const startMailer = ({ onFatal }: { onFatal: (e: unknown) => void }) => {
      alive++;
      return { close: () => void alive--, die: () => onFatal(new Error('smtp pool exhausted')) };
    };
    const dbBreaker = circuitBreaker({ name: 'db', runtime });
    const supervisor = new Supervisor(
      {
        name: 'app',
        runtime,
        strategy: 'one_for_one',
        intensity: 5,
        period: '1m',
        backoff: backoff.exponential({ initial: '1s', max: '1m' }),
      },
      [
        child({
          id: 'mailer',
          start: (ctx) => startMailer({ onFatal: (error) => ctx.crash(error) }),
          stop: (mailer) => mailer.close(),
        }),
      ],
    );
    await supervisor.start();
    const health = new HealthMonitor({ runtime });
    const heal = healing(runtime);
    health.register({
      name: 'db',
      readiness: { check: checks.breaker(dbBreaker), period: '5s', failureThreshold: 1 },
    });
    const restarts: string[] = [];
    runtime.events.subscribe(
      (e) => {
        if (e.type === 'healing.action') restarts.push(`${e.action}:${e.target}:${e.ok}`);
      },
      ['healing.action'],
    );
    let wedged = false;
    health.register({
      name: 'mailer',
      liveness: {
        check: () => !wedged && supervisor.instance('mailer') !== undefined,
        period: '10s',
        failureThreshold: 3,
      },
      onUnhealthy: heal.restart(supervisor, 'mailer'),
    });
    await runtime.clock.advance(10_000);
    expect(health.live && health.ready).toBe(true);
    wedged = true; // the mailer hangs without crashing: only the liveness probe notices
    await runtime.clock.advance(30_000);
    wedged = false;
    expect(restarts).toEqual(['restart:mailer:true']);
    expect(alive).toBe(1);
    supervisor.instance<{ die(): void }>('mailer')?.die(); // a crash: the supervisor restarts it after 1 s
    await runtime.clock.advance(1000);
    expect(alive).toBe(1);
    expect(supervisor.which()[0]).toMatchObject({ state: 'running', restarts: 1 });
    health.close();
    await supervisor.close();
    expect(alive).toBe(0);
  });
});
