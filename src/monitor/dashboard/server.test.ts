import { mkdtempSync, rmSync } from 'node:fs';
import { type IncomingMessage, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard } from '../../../scripts/build-dashboard.mjs';
import { firingAlerting } from '../../../test/monitor-servers.js';
import { createRuntime } from '../../core/runtime.js';
import { circuitBreaker } from '../../policy/circuit-breaker.js';
import type { LiveSnapshot } from '../live.js';
import { createMonitor, type Monitor, type MonitorOptions, type MonitorSnapshot } from '../monitor.js';
import type { DashboardServer } from './server.js';

let assetsDir: string;
beforeAll(async () => {
  assetsDir = mkdtempSync(join(tmpdir(), 'bulwark-dashboard-assets-'));
  await buildDashboard(assetsDir);
}, 60_000);
afterAll(() => rmSync(assetsDir, { recursive: true, force: true }));

const open: { monitor: Monitor }[] = [];
afterEach(async () => {
  for (const { monitor } of open.splice(0)) await monitor.close();
});

async function start(options: Parameters<Monitor['serve']>[0] = {}, monitorOptions: MonitorOptions = {}) {
  const monitor = createMonitor({ history: ':memory:', ...monitorOptions });
  open.push({ monitor });
  const server = await monitor.serve({ port: 0, assetsDir, intervalMs: 50, ...options });
  return { monitor, server };
}

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

function call(
  server: DashboardServer,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Reads an event stream until `until` holds for the text received, within `limitMs`. */
function readStream(
  server: DashboardServer,
  until: (text: string) => boolean,
  headers: Record<string, string> = {},
  limitMs = 5000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const req = request({ host: '127.0.0.1', port: server.port, path: '/events', headers }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`stream answered ${res.statusCode}`));
        return;
      }
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        text += chunk;
        if (until(text)) {
          clearTimeout(guard);
          req.destroy();
          resolve(text);
        }
      });
    });
    const guard = setTimeout(() => {
      req.destroy();
      reject(new Error(`stream condition not met within ${limitMs} ms; got ${text.slice(0, 300)}`));
    }, limitMs);
    req.on('error', () => undefined);
    req.end();
  });
}

function snapshots(text: string): LiveSnapshot[] {
  return [...text.matchAll(/event: snapshot\ndata: (.*)\n\n/g)].map(
    (m) => JSON.parse(m[1] as string) as LiveSnapshot,
  );
}

describe('dashboard server', () => {
  it('binds 127.0.0.1 by default and serves the page, its script and stylesheet', async () => {
    const { server } = await start();
    expect(server.host).toBe('127.0.0.1');
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
    const page = await call(server, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('<script type="module" src="/app.js">');
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    const script = await call(server, '/app.js');
    expect(script.status).toBe(200);
    expect(script.body.length).toBeGreaterThan(20_000); // uPlot is bundled in
    expect((await call(server, '/app.css')).body).toContain('.uplot');
    expect((await call(server, '/nope')).status).toBe(404);
  });

  it('streams an info event and coalesced snapshots that follow the events', async () => {
    const { monitor, server } = await start();
    const rt = createRuntime({ seed: 2 });
    monitor.attach(rt);
    const breaker = circuitBreaker({ name: 'payments', consecutiveFailures: 1, runtime: rt });
    let failed = false;
    const text = await readStream(server, (t) => {
      const last = snapshots(t).at(-1);
      if (last?.policies[0]?.state === 'closed' && !failed) {
        failed = true;
        void breaker.execute(() => Promise.reject(new Error('down'))).catch(() => undefined);
      }
      return last?.policies[0]?.state === 'open';
    });
    expect(text.startsWith('retry: 2000\nevent: info\ndata: {"title":"runtime","history":true')).toBe(true);
    const last = snapshots(text).at(-1);
    expect(last?.policies[0]).toMatchObject({ name: 'payments', state: 'open', opens: 1, total: 1 });
    // One snapshot per interval at most, however many events arrive.
    expect(snapshots(text).length).toBeLessThan(50);
  });

  it('sends heartbeats when nothing happens', async () => {
    const { server } = await start({ heartbeatMs: 100 });
    const text = await readStream(server, (t) => t.includes(': heartbeat'));
    expect(text).toMatch(/: heartbeat \d+\n\n/);
  });

  it('serves /metrics, the snapshot and the history API', async () => {
    const { monitor, server } = await start();
    monitor.ingest({ type: 'fault.injected', source: 'refused', at: 0, fault: 'error', call: 1 });
    const metrics = await call(server, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('bulwark_faults_injected_total{fault="refused"} 1');
    const snapshot = JSON.parse((await call(server, '/api/snapshot')).body) as LiveSnapshot;
    expect(snapshot.faults).toEqual([expect.objectContaining({ name: 'refused', count: 1 })]);
    monitor.live.flush();
    const history = JSON.parse((await call(server, '/api/history?scope=fault&name=refused')).body);
    expect(history.points).toHaveLength(1);
    expect(history.points[0].values).toEqual({ injected: 1 });
    expect((await call(server, '/api/history?scope=bogus&name=x')).status).toBe(400);
    expect(JSON.parse((await call(server, '/api/names')).body).names).toEqual([
      { scope: 'fault', name: 'refused' },
    ]);
  });

  it('refuses a non-loopback Host header on loopback (DNS rebinding)', async () => {
    const { server } = await start();
    const reply = await call(server, '/api/snapshot', { headers: { host: 'evil.example:7420' } });
    expect(reply.status).toBe(403);
  });

  it('requires a token to bind a non-loopback address, and then on every request', async () => {
    const monitor = createMonitor();
    open.push({ monitor });
    await expect(monitor.serve({ host: '0.0.0.0', port: 0, assetsDir })).rejects.toThrow(
      /option "token" must be set when binding 0\.0\.0\.0/,
    );
    await expect(monitor.serve({ port: 0, token: 'short', assetsDir })).rejects.toThrow(
      /at least 16 characters/,
    );
    const token = 'a-long-enough-secret-token';
    const server = await monitor.serve({ host: '0.0.0.0', port: 0, token, assetsDir, intervalMs: 50 });
    const headers = { host: `127.0.0.1:${server.port}` };
    expect((await call(server, '/', { headers })).status).toBe(401);
    expect((await call(server, '/metrics', { headers })).status).toBe(401);
    await expect(readStream(server, () => true, headers, 2000)).rejects.toThrow(/401/);
    expect(
      (await call(server, '/metrics', { headers: { ...headers, authorization: `Bearer ${token}` } })).status,
    ).toBe(200);
    expect((await call(server, '/?token=wrong-token-of-some-length', { headers })).status).toBe(401);
    const login = await call(server, `/?token=${token}`, { headers });
    expect(login.status).toBe(303);
    expect(login.headers.location).toBe('/');
    const setCookie = String(login.headers['set-cookie']);
    expect(setCookie).toContain('HttpOnly; SameSite=Strict');
    const cookie = setCookie.split(';')[0] as string;
    expect((await call(server, '/api/snapshot', { headers: { ...headers, cookie } })).status).toBe(200);
    const stream = await readStream(server, (t) => t.includes('event: snapshot'), { ...headers, cookie });
    expect(stream).toContain('event: info');
    // The token is never part of what the page receives.
    expect(stream).not.toContain(token);
  });

  it('control POSTs need the page cookie, JSON and the same origin', async () => {
    const { monitor, server } = await start();
    const rt = createRuntime({ seed: 3 });
    monitor.attach(rt);
    const breaker = circuitBreaker({ name: 'payments', runtime: rt });
    monitor.expose(breaker);
    const body = JSON.stringify({ name: 'payments', action: 'isolate' });
    const json = { 'content-type': 'application/json' };
    expect((await call(server, '/api/control', { method: 'POST', headers: json, body })).status).toBe(401);
    const page = await call(server, '/');
    const cookie = String(page.headers['set-cookie']).split(';')[0] as string;
    const origin = `http://127.0.0.1:${server.port}`;
    const cross = await call(server, '/api/control', {
      method: 'POST',
      headers: { ...json, cookie, origin: 'http://evil.example' },
      body,
    });
    expect(cross.status).toBe(403);
    const plain = await call(server, '/api/control', {
      method: 'POST',
      headers: { 'content-type': 'text/plain', cookie, origin },
      body,
    });
    expect(plain.status).toBe(415);
    const unknown = await call(server, '/api/control', {
      method: 'POST',
      headers: { ...json, cookie, origin },
      body: JSON.stringify({ name: 'payments', action: 'constructor' }),
    });
    expect(unknown.status).toBe(404);
    const ok = await call(server, '/api/control', {
      method: 'POST',
      headers: { ...json, cookie, origin },
      body,
    });
    expect(ok.status).toBe(200);
    expect(breaker.state).toBe('isolated');
    expect(monitor.snapshot().controls).toEqual({ payments: ['isolate', 'reset'] });
    expect((await call(server, '/api/snapshot', { method: 'DELETE' })).status).toBe(405);
  });

  it('says how to build the page when it is missing', async () => {
    const { server } = await start({ assetsDir: join(tmpdir(), 'bulwark-no-such-assets') });
    const reply = await call(server, '/');
    expect(reply.status).toBe(503);
    expect(reply.body).toContain('npm run build');
  });

  it('close() ends the streams and frees the port', async () => {
    const { server } = await start();
    const reading = readStream(server, () => false, {}, 3000).catch((e: unknown) => e);
    for (let i = 0; i < 100 && server.clients === 0; i++) await new Promise((r) => setImmediate(r));
    await server.close();
    await server.closed;
    await expect(call(server, '/')).rejects.toThrow(/ECONNREFUSED/);
    await reading;
  });
});

describe('dashboard server with alerts, health and failure patterns', () => {
  const alertings: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const a of alertings.splice(0)) await a.close();
  });

  it('shows firing alerts; silences are created and expired from the page as control requests', async () => {
    const alerting = await firingAlerting();
    alertings.push(alerting);
    const { monitor, server } = await start({}, { alerts: alerting });
    const alerts = JSON.parse((await call(server, '/api/alerts')).body);
    expect(alerts).toMatchObject([{ rule: 'CircuitOpen', state: 'firing', labels: { source: 'db' } }]);
    expect(monitor.snapshot().alerts).toEqual({
      alerts: [
        {
          rule: 'CircuitOpen',
          state: 'firing',
          labels: { alertname: 'CircuitOpen', source: 'db', state: 'open' },
          value: expect.any(Number),
          since: 15_000,
          silenced: false,
        },
      ],
      silences: [],
      outbox: { pending: 0, delivered: 0, rejected: 0 },
    });
    expect(JSON.parse((await call(server, '/api/info')).body).alerts).toBe(true);

    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({
      matchers: ['alertname="CircuitOpen"', 'source="db"'],
      duration: '1h',
      createdBy: 'ana',
      comment: 'db failover drill',
    });
    const post = (headers: Record<string, string>, text = body) =>
      call(server, '/api/silences', { method: 'POST', headers, body: text });
    expect((await post(json)).status).toBe(401);
    const page = await call(server, '/');
    const cookie = String(page.headers['set-cookie']).split(';')[0] as string;
    const origin = `http://127.0.0.1:${server.port}`;
    expect((await post({ ...json, cookie, origin: 'http://evil.example' })).status).toBe(403);
    expect((await post({ ...json, cookie, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await post({ 'content-type': 'text/plain', cookie, origin })).status).toBe(415);
    const bad = await post(
      { ...json, cookie, origin },
      JSON.stringify({ matchers: ['nope'], duration: '1h' }),
    );
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error).toMatch(/invalid matcher "nope"/);
    expect(alerting.notifier.listSilences()).toEqual([]);

    const created = await post({ ...json, cookie, origin });
    expect(created.status).toBe(201);
    expect(created.headers['x-content-type-options']).toBe('nosniff');
    const { id } = JSON.parse(created.body) as { id: string };
    const silenced = monitor.snapshot().alerts;
    expect(silenced?.alerts[0]?.silenced).toBe(true);
    expect(silenced?.silences).toEqual([
      {
        id,
        matchers: 'alertname="CircuitOpen",source="db"',
        state: 'active',
        startsAt: 15_000,
        endsAt: 15_000 + 3_600_000,
        createdBy: 'ana',
        comment: 'db failover drill',
      },
    ]);
    // The open page receives the change on its stream without any runtime event reaching the monitor.
    const streamed = await readStream(server, (t) =>
      snapshots(t).some((s) => (s as MonitorSnapshot).alerts?.silences[0]?.id === id),
    );
    expect(streamed).toContain('"silenced":true');

    const expire = (headers: Record<string, string>) =>
      call(server, `/api/silences/${id}`, { method: 'DELETE', headers });
    expect((await expire({})).status).toBe(401);
    expect((await expire({ cookie, origin: 'http://evil.example' })).status).toBe(403);
    expect((await expire({ cookie, origin })).status).toBe(200);
    expect((await expire({ cookie, origin })).status).toBe(404);
    const after = monitor.snapshot().alerts;
    expect(after?.silences.map((s) => [s.id, s.state])).toEqual([[id, 'expired']]);
    expect(after?.alerts[0]?.silenced).toBe(false);
    expect(JSON.parse((await call(server, '/api/silences')).body)).toMatchObject([{ id, state: 'expired' }]);
    expect(JSON.parse((await call(server, '/api/outbox')).body)).toEqual({
      pending: 0,
      delivered: 0,
      rejected: 0,
    });
    expect((await call(server, '/api/alerts', { method: 'PUT' })).status).toBe(405);
  });

  it('keeps serving without the panel when the alerting is closed first', async () => {
    const alerting = await firingAlerting();
    const { monitor, server } = await start({}, { alerts: alerting });
    expect(monitor.snapshot().alerts?.alerts).toHaveLength(1);
    await alerting.close();
    expect(monitor.snapshot().alerts).toBeNull();
    const text = await readStream(server, (t) => snapshots(t).length >= 2);
    expect((snapshots(text).at(-1) as MonitorSnapshot).alerts).toBeNull();
    expect((await call(server, '/api/silences')).status).toBe(500);
  });

  it('with a token, the alert API needs it too, and a bearer token may create silences', async () => {
    const alerting = await firingAlerting();
    alertings.push(alerting);
    const token = 'a-long-enough-secret-token';
    const { server } = await start({ token }, { alerts: alerting });
    expect((await call(server, '/api/alerts')).status).toBe(401);
    expect((await call(server, '/api/silences')).status).toBe(401);
    const auth = { authorization: `Bearer ${token}` };
    expect((await call(server, '/api/alerts', { headers: auth })).status).toBe(200);
    const created = await call(server, '/api/silences', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ matchers: ['alertname="CircuitOpen"'], duration: '10m' }),
    });
    expect(created.status).toBe(201);
    const wrong = await call(server, '/api/silences/x', {
      method: 'DELETE',
      headers: { authorization: 'Bearer not-the-right-token-at-all' },
    });
    expect(wrong.status).toBe(401);
  });

  it('without alerting there is no alert API and the panel is off', async () => {
    const { monitor, server } = await start();
    expect((await call(server, '/api/alerts')).status).toBe(404);
    const page = await call(server, '/');
    const cookie = String(page.headers['set-cookie']).split(';')[0] as string;
    const created = await call(server, '/api/silences', {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie },
      body: JSON.stringify({ matchers: ['a="b"'], duration: '1h' }),
    });
    expect(created.status).toBe(405);
    expect(monitor.snapshot().alerts).toBeNull();
  });

  it('streams the health panel: probes up and down, restarts and escalations, no error text', async () => {
    const { monitor, server } = await start();
    const rt = createRuntime({ seed: 5 });
    monitor.attach(rt);
    const check = (component: string, ok: boolean, healthy: boolean) =>
      rt.events.emit({
        type: 'health.check',
        source: component,
        at: rt.clock.now(),
        component,
        probe: 'readiness',
        ok,
        healthy,
        durationMs: 4,
        ...(ok ? {} : { error: 'connect ECONNREFUSED 10.1.2.3:5432' }),
      });
    check('api', true, true);
    check('db', false, true);
    check('db', false, false);
    for (const [state, restarts] of [
      ['crashed', 0],
      ['restarting', 1],
      ['started', 1],
      ['crashed', 1],
    ] as const) {
      rt.events.emit({
        type: 'supervisor.child',
        source: 'root',
        at: rt.clock.now(),
        child: 'worker',
        state,
        reason: state === 'started' ? 'restart' : 'crash',
        restarts,
      });
    }
    rt.events.emit({
      type: 'supervisor.escalated',
      source: 'root',
      at: rt.clock.now(),
      child: 'worker',
      restarts: 3,
      periodMs: 5000,
    });
    const text = await readStream(
      server,
      (t) => (snapshots(t).at(-1) as MonitorSnapshot | undefined)?.health?.escalations.length === 1,
    );
    const health = (snapshots(text).at(-1) as MonitorSnapshot).health;
    expect(health.probes).toEqual([
      expect.objectContaining({
        component: 'db',
        probe: 'readiness',
        ok: false,
        healthy: false,
        checks: 2,
        failures: 2,
        failingFor: 2,
      }),
      expect.objectContaining({
        component: 'api',
        probe: 'readiness',
        ok: true,
        healthy: true,
        failingFor: 0,
      }),
    ]);
    expect(health.children).toEqual([
      expect.objectContaining({
        supervisor: 'root',
        child: 'worker',
        state: 'crashed',
        restarts: 1,
        escalations: 1,
      }),
    ]);
    expect(health.escalations).toEqual([
      expect.objectContaining({ supervisor: 'root', child: 'worker', restarts: 3, periodMs: 5000 }),
    ]);
    expect(text).not.toContain('ECONNREFUSED');
    // They have a panel now: not listed again under "other events".
    expect(monitor.snapshot().others).toEqual([]);
  });

  it('shows failure patterns of the latest events only, without messages', async () => {
    const { monitor } = await start({}, { patterns: { limit: 50, refreshMs: 0 } });
    const fail = (source: string, i: number) =>
      monitor.ingest({
        type: 'call',
        source,
        at: i,
        kind: 'pipeline',
        outcome: 'failure',
        durationMs: 3,
        error: Object.assign(new Error(`connect to 10.9.9.${i % 250}:5432 refused`), {
          code: 'ECONNREFUSED',
        }),
      });
    for (let i = 0; i < 200; i++) fail(i < 150 ? 'old' : 'db', i);
    const patterns = monitor.snapshot().patterns;
    expect(patterns?.events).toBe(50);
    expect(patterns?.failures).toBe(50);
    expect(patterns?.signatures).toEqual([
      { code: 'ECONNREFUSED', target: 'db', count: 50, firstSeen: 150, lastSeen: 199 },
    ]);
    expect(JSON.stringify(patterns)).not.toContain('refused');
    expect(createMonitor({ patterns: false }).snapshot().patterns).toBeNull();
    expect(() => createMonitor({ patterns: 5 as never })).toThrow(/patterns/);
    expect(() => createMonitor({ patterns: { limit: 0 } })).toThrow(/limit/);
    expect(() => createMonitor({ alerts: {} as never })).toThrow(/alerts/);
  });
});
