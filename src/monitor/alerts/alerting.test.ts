import { afterEach, describe, expect, it } from 'vitest';
import { type HttpStandIn, startHttp, waitFor } from '../../../test/monitor-servers.js';
import { virtualRuntime } from '../../core/runtime.js';
import { startAlerting } from './alerting.js';
import { parseAlertConfig } from './config.js';

let hook: HttpStandIn | undefined;
afterEach(async () => {
  await hook?.close();
  hook = undefined;
});

describe('startAlerting', () => {
  it('runs a config file end to end: rule → route → webhook with a bearer token, truncated payload', async () => {
    hook = await startHttp();
    const config = parseAlertConfig(
      `
evaluationInterval: 10s
rules:
  - name: DeadLetters
    deadLetters: { window: 10m }
    labels: { team: mail }
receivers:
  - name: ops
    webhook: { urlEnv: OPS_HOOK, bearerTokenEnv: OPS_TOKEN, maxAlerts: 2 }
route:
  receiver: ops
  groupBy: [team]
  groupWait: 5s
`,
      'alerts.yaml',
      { OPS_HOOK: `http://127.0.0.1:${hook.port}/alerts`, OPS_TOKEN: 't0ken' },
    );
    const rt = virtualRuntime(1);
    const alerting = startAlerting(config, { runtime: rt });
    for (const queue of ['mail', 'sms', 'push']) {
      rt.events.emit({
        type: 'queue.job',
        source: queue,
        at: rt.clock.now(),
        outcome: 'dead',
        jobId: `${queue}-1`,
        attempt: 5,
      });
    }
    for (let s = 0; s < 30 && hook.accepted().length === 0; s++) {
      await rt.clock.advance(1000);
      await waitFor(() => alerting.notifier.idle);
    }
    expect(hook.accepted()).toHaveLength(1);
    const request = hook.accepted()[0];
    expect(request?.headers.authorization).toBe('Bearer t0ken');
    expect(request?.body).toMatchObject({
      version: '4',
      status: 'firing',
      groupLabels: { team: 'mail' },
      commonLabels: { alertname: 'DeadLetters', team: 'mail' },
      truncatedAlerts: 1,
    });
    expect((request?.body as { alerts: unknown[] } | undefined)?.alerts).toHaveLength(2);
    await alerting.close();
  });
});
