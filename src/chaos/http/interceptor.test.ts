import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../core/runtime.js';
import { schedule } from '../schedule.js';
import { now } from '../tcp/testing.js';
import { httpFaultInterceptor, installHttpFaults } from './interceptor.js';
import { HttpFaultRules, httpFault } from './rules.js';

const BODY = 'x'.repeat(64 * 1024);
let server: Server;
let base: string;
let served = 0;

beforeAll(async () => {
  server = createServer((request, response) => {
    served++;
    if (request.url?.startsWith('/big')) {
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length });
      response.end(BODY);
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.end(`${request.method} ${request.url}`);
  });
  await new Promise<void>((done) => server.listen({ host: '127.0.0.1', port: 0 }, done));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => new Promise<void>((done) => server.close(() => done())));

const agents: Agent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
});

function client(rules: HttpFaultRules) {
  const agent = new Agent();
  agents.push(agent);
  const dispatcher = agent.compose(httpFaultInterceptor(rules));
  return (path: string, init: Parameters<typeof undiciFetch>[1] = {}) =>
    undiciFetch(`${base}${path}`, { ...init, dispatcher });
}

describe('httpFaultInterceptor', () => {
  it('answers 429 with Retry-After on a schedule, without reaching the server', async () => {
    const rules = new HttpFaultRules({
      rules: [
        {
          path: '/v1/*',
          fault: httpFault.tooManyRequests({ retryAfter: '1500ms' }),
          schedule: schedule.firstN(2),
        },
      ],
      runtime: createRuntime({ seed: 1 }),
    });
    const get = client(rules);
    const before = served;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await get('/v1/users');
      statuses.push(response.status);
      if (response.status === 429) {
        expect(response.headers.get('retry-after')).toBe('2');
        expect(await response.text()).toBe('Too Many Requests\n');
      } else {
        expect(await response.text()).toBe('GET /v1/users');
      }
    }
    expect(statuses).toEqual([429, 429, 200]);
    expect(served - before).toBe(1);
  });

  it('matches host, method and path', async () => {
    const rules = new HttpFaultRules({
      rules: [
        { host: '127.0.0.1', method: 'POST', path: '/orders', fault: httpFault.unavailable() },
        { host: 'elsewhere.example', fault: httpFault.status(418) },
        { path: /\?page=2$/, fault: httpFault.status(404, { body: 'gone', headers: { 'x-chaos': 'yes' } }) },
      ],
    });
    const get = client(rules);
    expect((await get('/orders', { method: 'POST', body: '{}' })).status).toBe(503);
    expect((await get('/orders')).status).toBe(200);
    expect((await get('/orders/1', { method: 'POST', body: '{}' })).status).toBe(200);
    const paged = await get('/list?page=2');
    expect([paged.status, paged.headers.get('x-chaos'), await paged.text()]).toEqual([404, 'yes', 'gone']);
  });

  it('reset fails the request with ECONNRESET', async () => {
    const get = client(new HttpFaultRules({ rules: [{ fault: httpFault.reset() }] }));
    const error = await get('/').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TypeError);
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('ECONNRESET');
  });

  it('truncate cuts the real body after the given bytes', async () => {
    const get = client(new HttpFaultRules({ rules: [{ path: '/big', fault: httpFault.truncate(1000) }] }));
    const response = await get('/big');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe(String(BODY.length));
    const error = await response.text().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('UND_ERR_SOCKET');
    // A body shorter than the limit passes whole.
    const small = client(new HttpFaultRules({ rules: [{ fault: httpFault.truncate(10_000) }] }));
    expect(await (await small('/short')).text()).toBe('GET /short');
  });

  it('latency delays the real request', async () => {
    const get = client(new HttpFaultRules({ rules: [{ fault: httpFault.latency(120) }] }));
    const start = now();
    expect((await get('/slow')).status).toBe(200);
    expect(now() - start).toBeGreaterThanOrEqual(119);
  });

  it('timeout hangs until the caller aborts, or fails after `after`', async () => {
    const get = client(new HttpFaultRules({ rules: [{ path: '/hang', fault: httpFault.timeout() }] }));
    await expect(get('/hang', { signal: AbortSignal.timeout(100) })).rejects.toMatchObject({
      name: 'TimeoutError',
    });
    const bounded = client(new HttpFaultRules({ rules: [{ fault: httpFault.timeout({ after: 50 }) }] }));
    const error = await bounded('/').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('UND_ERR_HEADERS_TIMEOUT');
  });

  it('a seed reproduces every decision; events report each fault', async () => {
    async function statuses(seed: number) {
      const runtime = createRuntime({ seed });
      const events: string[] = [];
      runtime.events.subscribe(
        (e) => events.push(`${e.type}:${'code' in e ? e.code : ''}`),
        ['fault.injected'],
      );
      const rules = new HttpFaultRules({
        rules: [{ fault: httpFault.unavailable(), schedule: schedule.rate(0.5) }],
        runtime,
      });
      const get = client(rules);
      const result: number[] = [];
      for (let i = 0; i < 24; i++) result.push((await get('/')).status);
      return { result, events };
    }
    const a = await statuses(5);
    const b = await statuses(5);
    expect(b.result).toEqual(a.result);
    const fired = a.result.filter((s) => s === 503).length;
    expect(fired).toBeGreaterThan(3);
    expect(fired).toBeLessThan(21);
    expect(a.events).toEqual(Array.from({ length: fired }, () => 'fault.injected:503'));
    expect((await statuses(6)).result).not.toEqual(a.result);
  });

  it('BULWARK_CHAOS=off disables every rule', async () => {
    const saved = process.env.BULWARK_CHAOS;
    process.env.BULWARK_CHAOS = 'off';
    try {
      const get = client(new HttpFaultRules({ rules: [{ fault: httpFault.reset() }] }));
      expect((await get('/')).status).toBe(200);
    } finally {
      if (saved === undefined) delete process.env.BULWARK_CHAOS;
      else process.env.BULWARK_CHAOS = saved;
    }
  });

  it('rejects bad rules at construction', () => {
    expect(() => new HttpFaultRules({ rules: [{ fault: httpFault.status(99) }] })).toThrow(
      'HttpFaultRules: rules[0]: option "fault.status" must be an HTTP status from 100 to 599, got 99',
    );
    expect(() => new HttpFaultRules({ rules: [{ path: 'v1', fault: httpFault.reset() }] })).toThrow(
      /option "path"/,
    );
    expect(() => new HttpFaultRules({ rules: [{ fault: httpFault.reset(), when: 1 } as never] })).toThrow(
      /unknown option "when"/,
    );
    expect(() => new HttpFaultRules({ rules: [{ fault: httpFault.latency(-1) }] })).toThrow(/fault.delay/);
  });
});

describe('installHttpFaults', () => {
  it("routes Node's global fetch through the rules until uninstalled", async () => {
    const chaos = await installHttpFaults([{ path: '/global', fault: httpFault.status(503) }]);
    try {
      expect((await fetch(`${base}/global`)).status).toBe(503);
      expect((await fetch(`${base}/other`)).status).toBe(200);
    } finally {
      await chaos.uninstall();
    }
    expect((await fetch(`${base}/global`)).status).toBe(200);
  });
});

describe('bulwark/chaos stays light', () => {
  it('no module reachable from src/chaos/index.ts imports undici at load time', () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const seen = new Set<string>();
    const undiciImporters: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+'([^']+)'/gm)) {
        const specifier = match[1] as string;
        if (specifier === 'undici') undiciImporters.push(file);
        if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
      }
    };
    visit(join(here, '..', 'index.ts'));
    expect(seen.size).toBeGreaterThan(5);
    expect(undiciImporters).toEqual([]);
  });
});
