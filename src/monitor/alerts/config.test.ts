import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AlertConfigError, parseAlertConfig } from './config.js';

const GOOD = `
evaluationInterval: 15s
store: alerts.db
rules:
  - name: LowSuccessRate
    for: 1m
    labels: { severity: page }
    annotations: { summary: "{{ labels.source }} succeeds {{ value }}" }
    ratio:
      match: { type: call, source: payments }
      good: { outcome: success }
      below: 0.9
      window: 5m
      minVolume: 20
  - name: ErrorBudget
    burnRate:
      match: { type: call, source: "/api|web/" }
      good: { outcome: success }
      objective: 0.999
  - name: CircuitOpen
    circuitOpen: {}
receivers:
  - name: team-slack
    slack: { urlEnv: SLACK_WEBHOOK_URL, channel: "#alerts" }
  - name: oncall
    email:
      host: smtp.example.com
      from: bulwark@example.com
      to: [oncall@example.com]
      auth: { user: bulwark, passwordEnv: SMTP_PASSWORD }
route:
  receiver: team-slack
  groupBy: [alertname]
  groupWait: 30s
  routes:
    - matchers: ['severity="page"']
      receiver: oncall
inhibitRules:
  - sourceMatchers: ['severity="page"']
    targetMatchers: ['severity="ticket"']
    equal: [source]
`;

const ENV = {
  SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/T/B/SECRETTOKEN',
  SMTP_PASSWORD: 'pa55word',
};

describe('alert config files', () => {
  it('builds rules, receivers and routes, with secrets from the environment', () => {
    const config = parseAlertConfig(GOOD, 'alerts.yaml', ENV);
    expect(config.rules.map((r) => `${r.name}:${r.kind}`)).toEqual([
      'LowSuccessRate:ratio',
      'ErrorBudget:burnRate',
      'CircuitOpen:circuitOpen',
    ]);
    expect(config.rules[0]).toMatchObject({ window: 300_000, for: 60_000, minVolume: 20 });
    expect(config.receivers.map((r) => r.name)).toEqual(['team-slack', 'oncall']);
    expect(config.route.routes?.[0]?.receiver).toBe('oncall');
    expect(config.evaluationInterval).toBe(15_000);
    expect(inspect(config, { depth: 20 }) + JSON.stringify(config)).not.toMatch(/SECRETTOKEN|pa55word/);
    for (const r of config.receivers) (r as { close?: () => void }).close?.();
  });

  it('reports every problem as file:line:column: path: message', () => {
    const bad = `rules:
  - name: A
    ratio: { match: { type: call }, good: { outcome: success }, below: 1.5, window: 5 min }
  - name: B
    treshold: {}
receivers:
  - name: slack
    slack: { urlEnv: MISSING_URL }
route:
  receiver: pager
  routes:
    - matchers: ['severity~"x"']
`;
    let error: unknown;
    try {
      parseAlertConfig(bad, 'bad.yaml', {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AlertConfigError);
    expect((error as AlertConfigError).problems).toEqual([
      'bad.yaml:3:72: rules[0].ratio.below: must be a ratio in [0, 1]',
      'bad.yaml:3:85: rules[0].ratio.window: expected a duration such as 250ms, 5s or a number of ms (> 0), got the string "5 min"',
      'bad.yaml:5:5: rules[1].treshold: unknown key; known keys: name, for, labels, annotations, ratio, rate, burnRate, circuitOpen, queueDepth, deadLetters, healthFailing, componentFailed',
    ]);
    let second: unknown;
    try {
      parseAlertConfig(
        bad
          .replace('below: 1.5, window: 5 min', 'below: 0.5, window: 5m')
          .replace('    treshold: {}\n', '    circuitOpen: {}\n'),
        'bad.yaml',
        {},
      );
    } catch (e) {
      second = e;
    }
    expect((second as AlertConfigError).problems).toEqual([
      'bad.yaml:8:22: receivers[0].slack.urlEnv: environment variable MISSING_URL is not set',
      'bad.yaml:10:13: route.receiver: no receiver named "pager" (receivers: slack)',
      `bad.yaml:12:18: route.routes[0].matchers[0]: invalid matcher "severity~\\"x\\""; expected name="value", name!="value", name=~"regex" or name!~"regex"`,
    ]);
  });

  it('reports YAML syntax errors with their position', () => {
    expect(() => parseAlertConfig('route: [unclosed', 'x.yaml', {})).toThrow(/^x\.yaml:1:\d+: /);
  });
});
