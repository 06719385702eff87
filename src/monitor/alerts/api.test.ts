import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { firingAlerting } from '../../../test/monitor-servers.js';
import { alertsApi } from './api.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

describe('alertsApi', () => {
  it('lists alerts and silences, creates and expires silences over HTTP', async () => {
    const { notifier, engine } = await firingAlerting(1);
    const api = alertsApi({ notifier, engine });
    server = createServer((req, res) => {
      if (!api(req, res)) {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;

    const alerts = await (await fetch(`${base}/alerts`)).json();
    expect(alerts).toMatchObject([
      {
        rule: 'CircuitOpen',
        state: 'firing',
        labels: { alertname: 'CircuitOpen', source: 'db', state: 'open' },
      },
    ]);
    const created = await fetch(`${base}/silences`, {
      method: 'POST',
      body: JSON.stringify({
        matchers: ['alertname="CircuitOpen"'],
        duration: '1h',
        createdBy: 'ana',
        comment: 'db migration',
      }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect(await (await fetch(`${base}/silences`)).json()).toMatchObject([
      { id, state: 'active', matchers: 'alertname="CircuitOpen"', createdBy: 'ana' },
    ]);
    const bad = await fetch(`${base}/silences`, {
      method: 'POST',
      body: JSON.stringify({ matchers: ['nope'], duration: '1h' }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/invalid matcher "nope"/);
    expect((await fetch(`${base}/silences`, { method: 'POST', body: '{' })).status).toBe(400);
    expect((await fetch(`${base}/silences/${id}`, { method: 'DELETE' })).status).toBe(200);
    expect((await fetch(`${base}/silences/${id}`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${base}/alerts`, { method: 'PUT' })).status).toBe(405);
    expect(await (await fetch(`${base}/outbox`)).json()).toEqual({ pending: 0, delivered: 0, rejected: 0 });
    expect((await fetch(`${base}/other`)).status).toBe(404);
    engine.close();
    await notifier.close();
  });
});
