import { createServer, type Server } from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime } from '../../core/runtime.js';
import { ProxyServer } from './server.js';
import { now } from './testing.js';

const BODY = 'y'.repeat(32 * 1024);
let upstream: Server;
let upstreamAddress: string;
let served = 0;
let server: ProxyServer;
let base: string;

beforeAll(async () => {
  upstream = createServer((request, response) => {
    served++;
    if (request.url === '/big') {
      response.writeHead(200, { 'content-length': BODY.length });
      response.end(BODY);
      return;
    }
    let body = '';
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
      response.end(`${request.method} ${request.url} host=${request.headers.host} body=${body}`);
    });
  });
  await new Promise<void>((done) => upstream.listen({ host: '127.0.0.1', port: 0 }, done));
  upstreamAddress = `127.0.0.1:${(upstream.address() as { port: number }).port}`;
});

afterAll(() => new Promise<void>((done) => upstream.close(() => done())));

beforeEach(async () => {
  server = new ProxyServer({ runtime: createRuntime({ seed: 3 }), port: 0 });
  const proxy = await server.createProxy({ name: 'api', upstream: upstreamAddress, mode: 'http' });
  base = `http://${proxy.listen}`;
});

afterEach(() => server.close());

async function failure(promise: Promise<unknown>): Promise<{ code?: string; message?: string } | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return ((error as { cause?: unknown }).cause ?? error) as { code?: string };
  }
}

describe('HTTP-mode proxy', () => {
  it('forwards requests unchanged (method, path, Host, body) and shows mode in its JSON', async () => {
    const response = await fetch(`${base}/echo?x=1`, { method: 'POST', body: 'hi' });
    expect(response.headers.get('x-upstream')).toBe('yes');
    expect(await response.text()).toBe(`POST /echo?x=1 host=${base.slice(7)} body=hi`);
    expect(server.get('api').json()).toMatchObject({ name: 'api', mode: 'http', toxics: [] });
  });

  it('http_status answers 429 with Retry-After for matching requests, without reaching the upstream', async () => {
    server.addToxic('api', {
      name: 'quota',
      type: 'http_status',
      attributes: { status: 429, retry_after: 2 },
      match: { method: 'GET', path: '/limited/*' },
    });
    const before = served;
    const limited = await fetch(`${base}/limited/a`);
    expect([limited.status, limited.headers.get('retry-after'), await limited.text()]).toEqual([
      429,
      '2',
      'Too Many Requests\n',
    ]);
    expect(served).toBe(before);
    expect((await fetch(`${base}/limited/a`, { method: 'POST', body: '' })).status).toBe(200);
    expect((await fetch(`${base}/open`)).status).toBe(200);
    expect(server.get('api').json().toxics[0]).toMatchObject({
      match: { method: 'GET', path: '/limited/*' },
    });
  });

  it('latency delays each request', async () => {
    server.addToxic('api', { type: 'latency', attributes: { latency: 120 } });
    const start = now();
    expect((await fetch(`${base}/slow`)).status).toBe(200);
    expect(now() - start).toBeGreaterThanOrEqual(119);
  });

  it('reset_peer resets the connection; limit_data cuts the body; timeout closes without answering', async () => {
    server.addToxic('api', { type: 'reset_peer', match: { path: '/reset' } });
    server.addToxic('api', { type: 'limit_data', attributes: { bytes: 100 }, match: { path: '/big' } });
    server.addToxic('api', { type: 'timeout', attributes: { timeout: 100 }, match: { path: '/hang' } });
    expect((await failure(fetch(`${base}/reset`)))?.code).toBe('ECONNRESET');
    const big = await fetch(`${base}/big`);
    expect(big.headers.get('content-length')).toBe(String(BODY.length));
    expect((await failure(big.text()))?.code).toBe('UND_ERR_SOCKET');
    const start = now();
    expect((await failure(fetch(`${base}/hang`)))?.code).toBe('UND_ERR_SOCKET');
    expect(now() - start).toBeGreaterThanOrEqual(95);
    expect((await fetch(`${base}/fine`)).status).toBe(200);
  });

  it('toxicity is drawn per request from the seed', async () => {
    async function statuses(seed: number) {
      const local = new ProxyServer({ runtime: createRuntime({ seed }), port: 0 });
      try {
        const proxy = await local.createProxy({ name: 'api', upstream: upstreamAddress, mode: 'http' });
        local.addToxic('api', { type: 'http_status', toxicity: 0.5, attributes: { status: 503 } });
        const out: number[] = [];
        for (let i = 0; i < 20; i++) out.push((await fetch(`http://${proxy.listen}/`)).status);
        return out;
      } finally {
        await local.close();
      }
    }
    const a = await statuses(11);
    expect(await statuses(11)).toEqual(a);
    expect(a).toContain(503);
    expect(a).toContain(200);
  });

  it('rejects toxics of the other mode as Toxiproxy rejects unknown types', async () => {
    expect(() => server.addToxic('api', { type: 'bandwidth' })).toThrow('invalid toxic type');
    await server.createProxy({ name: 'raw', upstream: upstreamAddress });
    expect(() => server.addToxic('raw', { type: 'http_status' })).toThrow('invalid toxic type');
    expect(() => server.addToxic('raw', { type: 'latency', match: { path: '/x' } })).toThrow(
      'bad request body: match applies to HTTP-mode proxies only',
    );
    expect(() => server.addToxic('api', { type: 'http_status', attributes: { status: 42 } })).toThrow(
      'attributes.status must be an HTTP status from 100 to 599, got 42',
    );
  });
});
