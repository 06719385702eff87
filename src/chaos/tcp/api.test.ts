import { Toxiproxy, ToxiproxyError } from 'toxiproxy-node-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime } from '../../core/runtime.js';
import { ProxyServer, TOXIPROXY_API_VERSION } from './server.js';
import { client, type EchoServer, echoServer, now, until } from './testing.js';

let upstream: EchoServer;
let server: ProxyServer;
let url: string;

beforeEach(async () => {
  upstream = await echoServer();
  server = new ProxyServer({ runtime: createRuntime({ seed: 1 }), port: 0 });
  url = (await server.listen()).url;
});

afterEach(async () => {
  await server.close();
  await upstream.close();
});

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    text,
    type: response.headers.get('content-type'),
    json: () => JSON.parse(text),
  };
}

describe('Toxiproxy API with toxiproxy-node-client (unchanged)', () => {
  it('creates a proxy, adds, updates and removes toxics, and the proxy obeys', async () => {
    const toxiproxy = new Toxiproxy(url);
    expect(await toxiproxy.getVersion()).toBe(`{"version": "${TOXIPROXY_API_VERSION}"}\n`);
    const proxy = await toxiproxy.createProxy({
      name: 'echo',
      listen: 'localhost:0',
      upstream: upstream.address,
    });
    expect(proxy.name).toBe('echo');
    expect(proxy.enabled).toBe(true);
    expect(proxy.listen).toMatch(/^127\.0\.0\.1:\d+$/);

    const toxic = await proxy.addToxic({
      name: 'slow',
      type: 'latency',
      stream: 'downstream',
      toxicity: 1,
      attributes: { latency: 120, jitter: 0 },
    });
    expect(toxic.toJson()).toEqual({
      name: 'slow',
      type: 'latency',
      stream: 'downstream',
      toxicity: 1,
      attributes: { latency: 120, jitter: 0 },
    });
    const c = await client(proxy.listen);
    let start = now();
    c.socket.write('ping');
    await until(() => c.received().length === 4, 'the echo');
    expect(now() - start).toBeGreaterThanOrEqual(119);

    const updated = await toxic.update({ attributes: { latency: 0 }, toxicity: 1 } as never);
    expect(updated.attributes).toEqual({ latency: 0, jitter: 0 });
    expect((await proxy.getToxic('slow')).attributes).toEqual({ latency: 0, jitter: 0 });

    await updated.remove();
    start = now();
    c.socket.write('pong');
    await until(() => c.received().length === 8, 'the second echo');
    expect(now() - start).toBeLessThan(100);

    const all = await toxiproxy.getAll();
    expect(Object.keys(all)).toEqual(['echo']);
    const disabled = await proxy.update({ ...proxy.toJson(), enabled: false });
    expect(disabled.enabled).toBe(false);
    await toxiproxy.reset();
    expect((await toxiproxy.get('echo')).enabled).toBe(true);
    await proxy.remove();
    expect(await toxiproxy.getAll()).toEqual({});
  });

  it('populates, and reports errors as ToxiproxyError', async () => {
    const toxiproxy = new Toxiproxy(url);
    const proxies = await toxiproxy.populate([
      { name: 'a', listen: '127.0.0.1:0', upstream: upstream.address },
      { name: 'b', listen: '127.0.0.1:0', upstream: upstream.address, enabled: false },
    ]);
    expect(Object.keys(proxies)).toEqual(['a', 'b']);
    expect(proxies.b?.enabled).toBe(false);
    await expect(toxiproxy.get('missing')).rejects.toBeInstanceOf(ToxiproxyError);
    await expect(
      toxiproxy.createProxy({ name: 'a', listen: '127.0.0.1:0', upstream: upstream.address }),
    ).rejects.toThrow('Request failed with status code 409');
  });
});

describe('Toxiproxy API, raw', () => {
  it('serves the JSON shapes Toxiproxy serves', async () => {
    const created = await call('POST', '/proxies', {
      name: 'r',
      listen: '127.0.0.1:0',
      upstream: upstream.address,
    });
    expect(created.status).toBe(201);
    expect(created.type).toBe('application/json');
    const listen = created.json().listen;
    expect(created.text).toBe(
      `{"name":"r","listen":"${listen}","upstream":"${upstream.address}","enabled":true,"toxics":[]}`,
    );
    const toxic = await call('POST', '/proxies/r/toxics', { type: 'latency', attributes: { latency: 5 } });
    expect(toxic.status).toBe(200);
    expect(toxic.text).toBe(
      '{"attributes":{"latency":5,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}',
    );
    const list = await call('GET', '/proxies/r/toxics');
    expect(list.json()).toEqual([toxic.json()]);
    expect((await call('GET', '/proxies')).json()).toEqual({
      r: { ...created.json(), toxics: [toxic.json()] },
    });
    const patched = await call('PATCH', '/proxies/r/toxics/latency_downstream', { toxicity: 0.5 });
    expect(patched.json()).toMatchObject({ toxicity: 0.5, attributes: { latency: 5, jitter: 0 } });
    const mode = await call('POST', '/proxies/r/toxics', {
      type: 'timeout',
      stream: 'upstream',
      toxicity_mode: 'per_request',
    });
    expect(mode.json()).toMatchObject({ name: 'timeout_upstream', toxicity_mode: 'per_request' });
    expect((await call('DELETE', '/proxies/r/toxics/timeout_upstream')).status).toBe(204);
    expect((await call('POST', '/reset')).status).toBe(204);
    expect((await call('GET', '/proxies/r')).json().toxics).toEqual([]);
    expect((await call('DELETE', '/proxies/r')).status).toBe(204);
  });

  it('answers bad input with Toxiproxy statuses and bodies, and keeps serving', async () => {
    await call('POST', '/proxies', { name: 'r', listen: '127.0.0.1:0', upstream: upstream.address });
    const r = server.get('r');
    const c = await client(r.listen);
    const cases: [string, string, unknown, number, string][] = [
      ['GET', '/proxies/nope', undefined, 404, 'proxy not found'],
      ['POST', '/proxies', { name: 'r', upstream: upstream.address }, 409, 'proxy already exists'],
      ['POST', '/proxies', { upstream: upstream.address }, 400, 'missing required field: name'],
      ['POST', '/proxies', { name: 'x' }, 400, 'missing required field: upstream'],
      ['POST', '/proxies', '{not json', 400, 'bad request body: '],
      [
        'POST',
        '/proxies',
        { name: 'y', listen: r.listen, upstream: upstream.address },
        500,
        `listen tcp ${r.listen}: bind: address already in use`,
      ],
      ['POST', '/proxies/r/toxics', { type: 'nosuch' }, 400, 'invalid toxic type'],
      [
        'POST',
        '/proxies/r/toxics',
        { type: 'latency', stream: 'sideways' },
        400,
        'stream was invalid, can be either upstream or downstream',
      ],
      [
        'POST',
        '/proxies/r/toxics',
        { type: 'latency', attributes: { latency: -5 } },
        400,
        'bad request body: attributes.latency must be an integer >= 0, got -5',
      ],
      ['GET', '/proxies/r/toxics/nope', undefined, 404, 'toxic not found'],
      ['DELETE', '/proxies/r/toxics/nope', undefined, 404, 'toxic not found'],
      ['POST', '/proxies/nope/toxics', { type: 'latency' }, 404, 'proxy not found'],
    ];
    await call('POST', '/proxies/r/toxics', { type: 'latency', name: 'dup' });
    cases.push(['POST', '/proxies/r/toxics', { type: 'latency', name: 'dup' }, 409, 'toxic already exists']);
    for (const [method, path, body, status, message] of cases) {
      const res = await call(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(status);
      expect(res.type).toBe('text/plain; charset=utf-8');
      const payload = res.json();
      expect(payload.status).toBe(status);
      expect(payload.error.startsWith(message), `${payload.error} starts with ${message}`).toBe(true);
      expect(res.text.endsWith('}\n')).toBe(true);
    }
    expect((await call('PUT', '/proxies')).status).toBe(405);
    expect(await call('GET', '/nowhere')).toMatchObject({ status: 404, text: '404 page not found\n' });
    expect((await call('GET', '/version', undefined, { 'user-agent': 'Mozilla/5.0' })).status).toBe(403);
    // The proxy still serves its open connection and new ones.
    c.socket.write('still');
    await until(() => c.received().toString() === 'still', 'the echo');
    expect(Object.keys((await call('GET', '/proxies')).json())).toEqual(['r']);
  });

  it('populate reports the error beside the proxies, as Toxiproxy does', async () => {
    const bad = await call('POST', '/populate', [
      { name: 'ok', upstream: upstream.address },
      { name: 'no-upstream' },
    ]);
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual({
      error: 'missing required field: upstream at proxy 2',
      status: 400,
      proxies: null,
    });
    expect((await call('GET', '/proxies')).json()).toEqual({});
    const good = await call('POST', '/populate', [{ name: 'ok', upstream: upstream.address }]);
    expect(good.status).toBe(201);
    expect(good.json().proxies[0]).toMatchObject({ name: 'ok', enabled: true, toxics: [] });
  });

  it('requires a token off loopback, and checks it when set', async () => {
    expect(() => new ProxyServer({ host: '0.0.0.0' })).toThrow(/requires option "token"/);
    const guarded = new ProxyServer({ port: 0, token: 'secret-token' });
    const { url: guardedUrl } = await guarded.listen();
    try {
      expect((await fetch(`${guardedUrl}/proxies`)).status).toBe(401);
      const ok = await fetch(`${guardedUrl}/proxies`, { headers: { authorization: 'Bearer secret-token' } });
      expect(ok.status).toBe(200);
    } finally {
      await guarded.close();
    }
  });
});
