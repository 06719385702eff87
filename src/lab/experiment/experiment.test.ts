import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { metricValue, type ProviderResult } from './providers.js';
import { runExperiment } from './run.js';
import { withinTolerance } from './tolerance.js';
import type { Experiment } from './types.js';

/** A small HTTP service on loopback whose health and answers can be broken and fixed over HTTP. */
async function service(): Promise<{
  url: string;
  server: Server;
  state: { broken: boolean; calls: string[] };
}> {
  const state = { broken: false, calls: [] as string[] };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    state.calls.push(`${req.method} ${req.url}`);
    if (req.url === '/break') state.broken = true;
    if (req.url === '/fix') state.broken = false;
    if (req.url === '/metrics') {
      res.end(`# TYPE up gauge\nup{component="api"} ${state.broken ? 0 : 1}\nup{component="db"} 1\n`);
      return;
    }
    res.statusCode = state.broken && (req.url === '/health' || req.url === '/work') ? 503 : 200;
    res.end(req.url === '/health' ? 'healthy' : 'ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server, state };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function target() {
  const s = await service();
  servers.push(s.server);
  return s;
}

const result = (
  value: unknown,
  output: unknown = value,
  text = String(value),
  latencyMs = 5,
): ProviderResult => ({
  value,
  output,
  text,
  latencyMs,
});

describe('withinTolerance', () => {
  it('compares scalars, ranges and fields', () => {
    expect(withinTolerance(200, result(200)).holds).toBe(true);
    expect(withinTolerance(200, result(503))).toEqual({ holds: false, reason: 'expected 200, got 503' });
    expect(withinTolerance([0, 1], result(0.5)).holds).toBe(true);
    expect(withinTolerance([0, 1], result(2)).reason).toBe('expected a value in [0, 1], got 2');
    const http = result(200, { status: 200, body: 'healthy' }, 'healthy', 900);
    expect(withinTolerance({ status: [200, 204], contains: 'heal' }, http).holds).toBe(true);
    expect(withinTolerance({ maxLatency: '500ms' }, http).reason).toBe('took 900 ms, more than 500 ms');
    expect(withinTolerance({ matches: '^sick' }, http).reason).toBe('expected the output to match /^sick/');
    expect(withinTolerance({ exitCode: 0 }, result(1, { exitCode: 1 })).reason).toBe(
      'expected exit code 0, got 1',
    );
    expect(withinTolerance({ max: 0 }, result(1)).reason).toBe('expected a value in [-∞, 0], got 1');
  });
});

describe('metricValue', () => {
  const text = [
    '# HELP bulwark_circuit_state Circuit state',
    '# TYPE bulwark_circuit_state gauge',
    'bulwark_circuit_state{policy="redis",state="open"} 1',
    'bulwark_circuit_state{policy="redis",state="closed"} 0',
    'bulwark_circuit_state{policy="pg",state="open"} 1',
    'bulwark_calls_total{policy="a\\"b",outcome="success"} 12',
    'plain 3.5',
  ].join('\n');
  it('sums the series whose labels match, and is undefined when none does', () => {
    expect(metricValue(text, 'bulwark_circuit_state', { state: 'open' })).toBe(2);
    expect(metricValue(text, 'bulwark_circuit_state', { policy: 'redis', state: 'closed' })).toBe(0);
    expect(metricValue(text, 'bulwark_calls_total', { policy: 'a"b' })).toBe(12);
    expect(metricValue(text, 'plain', {})).toBe(3.5);
    expect(metricValue(text, 'bulwark_circuit_state', { policy: 'mysql' })).toBeUndefined();
    expect(metricValue(text, 'missing', {})).toBeUndefined();
  });
});

describe('runExperiment against a real HTTP service', () => {
  const hypothesis = (url: string): NonNullable<Experiment['steadyStateHypothesis']> => ({
    title: 'the service is healthy',
    probes: [
      {
        type: 'probe',
        name: 'health',
        provider: { type: 'http', url: `${url}/health`, timeout: '1s' },
        tolerance: { status: 200, contains: 'healthy' },
      },
      {
        type: 'probe',
        name: 'api up',
        provider: { type: 'metric', url: `${url}/metrics`, metric: 'up', labels: { component: 'api' } },
        tolerance: 1,
      },
    ],
  });

  it('deviates when the fault breaks the hypothesis; rollbacks run; load is reported per phase', async () => {
    const { url, state } = await target();
    const journal = await runExperiment({
      title: 'break the api',
      steadyStateHypothesis: hypothesis(url),
      method: [
        { type: 'action', name: 'break', provider: { type: 'http', url: `${url}/break`, method: 'POST' } },
        { type: 'wait', duration: '400ms' },
      ],
      rollbacks: [
        { type: 'action', name: 'fix', provider: { type: 'http', url: `${url}/fix`, method: 'POST' } },
      ],
      load: { url: `${url}/work`, rate: 50, warmup: '400ms', cooldown: '400ms', timeout: '1s' },
    });
    expect(journal.status).toBe('completed');
    expect(journal.deviated).toBe(true);
    expect(journal.steadyStates.before?.met).toBe(true);
    expect(journal.steadyStates.after?.probes.map((p) => p.tolerance?.holds)).toEqual([false, false]);
    expect(journal.steadyStates.after?.probes[0]?.tolerance?.reason).toBe('expected status 200, got 503');
    expect(journal.rollbacks.map((r) => [r.name, r.status])).toEqual([['fix', 'succeeded']]);
    expect(state.broken).toBe(false);
    const phases = journal.load?.phases;
    expect(phases?.before.rate).toBe(1);
    expect(phases?.during.total).toBeGreaterThan(5);
    expect(phases?.during.rate).toBeLessThan(0.5);
    expect(phases?.during.failures['status 503']).toBeGreaterThan(0);
    expect(phases?.after.rate).toBe(1);
    expect(journal.load?.comparisons.during.diff).toBeLessThan(0);
    expect(journal.load?.comparisons.during.pValue).toBeLessThan(0.05);
  });

  it('holds when the fault does not touch the hypothesis', async () => {
    const { url } = await target();
    const seen: string[] = [];
    const journal = await runExperiment(
      {
        title: 'harmless',
        steadyStateHypothesis: hypothesis(url),
        method: [
          { type: 'action', name: 'noop', provider: { type: 'function', run: () => 'done' } },
          {
            type: 'probe',
            name: 'exit 0',
            provider: { type: 'process', command: [process.execPath, '-e', 'console.log("fine")'] },
            tolerance: { exitCode: 0, contains: 'fine' },
          },
        ],
      },
      { onActivity: (a) => seen.push(`${a.stage}:${a.name}:${a.status}`) },
    );
    expect(journal.status).toBe('completed');
    expect(journal.deviated).toBe(false);
    expect(seen).toEqual([
      'steady-state-before:health:succeeded',
      'steady-state-before:api up:succeeded',
      'method:noop:succeeded',
      'method:exit 0:succeeded',
      'steady-state-after:health:succeeded',
      'steady-state-after:api up:succeeded',
    ]);
    expect(journal.run[1]?.output).toMatchObject({ exitCode: 0, stdout: 'fine\n' });
  });

  it('fails without running the method when the hypothesis does not hold before; rollbacks still run', async () => {
    const { url, state } = await target();
    state.broken = true;
    const journal = await runExperiment({
      title: 'already broken',
      steadyStateHypothesis: hypothesis(url),
      method: [{ type: 'action', name: 'never', provider: { type: 'http', url: `${url}/never` } }],
      rollbacks: [
        { type: 'action', name: 'fix', provider: { type: 'http', url: `${url}/fix`, method: 'POST' } },
      ],
    });
    expect(journal.status).toBe('failed');
    expect(journal.reason).toBe('the steady-state hypothesis did not hold before the method');
    expect(journal.run).toEqual([]);
    expect(state.calls).not.toContain('GET /never');
    expect(journal.rollbacks[0]?.status).toBe('succeeded');
  });

  it('aborts the method when the load error rate crosses the abort condition, and still rolls back', async () => {
    const { url, state } = await target();
    const journal = await runExperiment({
      title: 'abort on errors',
      method: [
        { type: 'action', name: 'break', provider: { type: 'http', url: `${url}/break`, method: 'POST' } },
        { type: 'wait', duration: '20s' },
        { type: 'action', name: 'never', provider: { type: 'http', url: `${url}/never` } },
      ],
      rollbacks: [
        { type: 'action', name: 'fix', provider: { type: 'http', url: `${url}/fix`, method: 'POST' } },
      ],
      load: { url: `${url}/work`, rate: 100, warmup: '200ms', cooldown: '200ms' },
      abort: [{ errorRate: { above: 0.5, window: '300ms', minRequests: 5 } }],
      abortInterval: '50ms',
    });
    expect(journal.status).toBe('aborted');
    expect(journal.reason).toMatch(
      /^abort condition: load error rate \d+\.\d% \(\d+\/\d+\) over 300ms is above 50%$/,
    );
    expect(journal.run.map((a) => [a.name, a.status])).toEqual([
      ['break', 'succeeded'],
      ['wait 20s', 'interrupted'],
    ]);
    expect(journal.durationMs).toBeLessThan(10_000);
    expect(state.calls).not.toContain('GET /never');
    expect(journal.rollbacks[0]?.status).toBe('succeeded');
    expect(state.broken).toBe(false);
  });

  it('is interrupted by the caller signal (Ctrl-C) and still rolls back', async () => {
    const { url, state } = await target();
    const controller = new AbortController();
    const journal = await runExperiment(
      {
        title: 'interrupted',
        method: [
          { type: 'action', name: 'break', provider: { type: 'http', url: `${url}/break`, method: 'POST' } },
          { type: 'wait', duration: '20s' },
        ],
        rollbacks: [
          { type: 'action', name: 'fix', provider: { type: 'http', url: `${url}/fix`, method: 'POST' } },
        ],
      },
      {
        signal: controller.signal,
        onActivity: (a) => {
          if (a.name === 'break') controller.abort(new Error('SIGINT'));
        },
      },
    );
    expect(journal.status).toBe('interrupted');
    expect(journal.reason).toBe('SIGINT');
    expect(journal.rollbacks.map((r) => r.status)).toEqual(['succeeded']);
    expect(state.broken).toBe(false);
  });

  it('calls the Toxiproxy API with its own request shapes, and reports its errors', async () => {
    const requests: string[] = [];
    const api = createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      requests.push(`${req.method} ${req.url} ${body}`);
      if (req.url?.startsWith('/proxies/missing')) {
        res.statusCode = 404;
        res.end(JSON.stringify({ error: 'proxy not found', status: 404 }));
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(body === '' ? '' : body);
    });
    api.listen(0, '127.0.0.1');
    await once(api, 'listening');
    servers.push(api);
    const base = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
    const toxic = {
      name: 'slow',
      type: 'latency',
      stream: 'downstream' as const,
      toxicity: 1,
      attributes: { latency: 500 },
    };
    const journal = await runExperiment({
      title: 'toxics',
      method: [
        {
          type: 'action',
          name: 'add',
          provider: { type: 'toxiproxy', api: base, action: 'addToxic', proxy: 'redis', toxic },
        },
        {
          type: 'action',
          name: 'disable',
          provider: { type: 'toxiproxy', api: base, action: 'disableProxy', proxy: 'redis' },
        },
        {
          type: 'action',
          name: 'missing',
          provider: {
            type: 'toxiproxy',
            api: base,
            action: 'removeToxic',
            proxy: 'missing',
            toxic: { name: 'x' },
          },
        },
      ],
      rollbacks: [
        {
          type: 'action',
          name: 'remove',
          provider: {
            type: 'toxiproxy',
            api: base,
            action: 'removeToxic',
            proxy: 'redis',
            toxic: { name: 'slow' },
          },
        },
        { type: 'action', name: 'reset', provider: { type: 'toxiproxy', api: base, action: 'reset' } },
      ],
    });
    expect(requests).toEqual([
      `POST /proxies/redis/toxics ${JSON.stringify(toxic)}`,
      'POST /proxies/redis {"enabled":false}',
      'DELETE /proxies/missing/toxics/x ',
      'DELETE /proxies/redis/toxics/slow ',
      'POST /reset ',
    ]);
    expect(journal.run[0]?.output).toEqual(toxic);
    expect(journal.run[2]?.error).toBe(
      'toxiproxy removeToxic (DELETE /proxies/missing/toxics/x) answered 404: proxy not found',
    );
    expect(journal.status).toBe('failed');
    expect(journal.reason).toBe('action "missing" failed');
  });

  it('reports an unreachable target and a provider timeout as failed activities', async () => {
    const { url, server } = await target();
    server.close();
    server.closeAllConnections();
    const journal = await runExperiment({
      title: 'unreachable',
      method: [
        { type: 'probe', name: 'gone', provider: { type: 'http', url: `${url}/health` }, tolerance: 200 },
        {
          type: 'probe',
          name: 'slow',
          provider: {
            type: 'process',
            command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'],
            timeout: '300ms',
          },
        },
        {
          type: 'action',
          name: 'no such program',
          provider: { type: 'process', command: ['/nonexistent/program'] },
        },
      ],
    });
    expect(journal.run.map((a) => [a.name, a.status, a.error])).toEqual([
      ['gone', 'failed', `GET ${url}/health failed: ECONNREFUSED`],
      ['slow', 'failed', 'timed out after 300 ms'],
      ['no such program', 'failed', 'cannot run /nonexistent/program: ENOENT'],
    ]);
    expect(journal.status).toBe('failed');
  });
});
