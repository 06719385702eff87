import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Toxiproxy } from 'toxiproxy-node-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { capture, deferred } from '../../test/support.js';
import type { ProxyServer } from '../chaos/tcp/server.js';
import { client, type EchoServer, echoServer, until } from '../chaos/tcp/testing.js';
import { main } from './main.js';
import { type ProxyDependencies, proxyCommand } from './proxy.js';

let dir: string;
let upstream: EchoServer;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-proxy-'));
  upstream = await echoServer();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
  await upstream.close();
});

/** Starts the command; resolves once it is ready with its server, a stop function and its exit code. */
async function start(argv: string[]) {
  const io = capture();
  const stop = deferred<string>();
  const ready = deferred<ProxyServer>();
  const deps: ProxyDependencies = { stopSignal: () => stop.promise, env: {}, onReady: ready.resolve };
  const exit = proxyCommand(argv, io.io, deps);
  exit.catch(ready.reject);
  const server = await ready.promise;
  return { server, io, stop: (signal = 'SIGTERM') => stop.resolve(signal), exit };
}

describe('bulwark proxy', () => {
  it('starts the proxies of a YAML config, serves the Toxiproxy API, and stops cleanly on a signal', async () => {
    const file = join(dir, 'proxies.yaml');
    await writeFile(
      file,
      `seed: 42
proxies:
  - name: echo
    listen: 127.0.0.1:0
    upstream: ${upstream.address}
    toxics:
      - type: limit_data
        attributes: { bytes: 3 }
`,
    );
    const run = await start(['--config', file, '--port', '0', '--events']);
    const toxiproxy = new Toxiproxy(run.server.url as string);
    const echo = await toxiproxy.get('echo');
    expect(echo.enabled).toBe(true);
    const c = await client(echo.listen);
    c.socket.write('abcdef');
    await until(() => c.ended, 'limit_data to close the connection');
    expect(c.received().toString()).toBe('abc');
    run.stop('SIGINT');
    expect(await run.exit).toBe(0);
    expect(run.io.err()).toContain('(seed "42")');
    expect(run.io.err()).toContain(`echo: ${echo.listen} → ${upstream.address}`);
    expect(run.io.err()).toContain('stopped (SIGINT)');
    const events = run.io
      .out()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(events.map((e) => e.type)).toContain('proxy.toxic');
    await expect(client(echo.listen)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it("reads Toxiproxy's own JSON config format", async () => {
    const file = join(dir, 'toxiproxy.json');
    await writeFile(file, JSON.stringify([{ name: 'a', listen: '127.0.0.1:0', upstream: upstream.address }]));
    const run = await start(['--config', file, '--port', '0', '--seed', '7']);
    expect(run.server.list().map((p) => p.name)).toEqual(['a']);
    run.stop();
    expect(await run.exit).toBe(0);
  });

  it('exits 2 with file:line:col problems for a bad config, and starts nothing', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      `proxies:
  - name: a
    upstream: nowhere
    toxics:
      - type: latency
        attributes:
          latency: -3
      - type: teleport
  - name: a
    upstream: 127.0.0.1:1
`,
    );
    const io = capture();
    expect(await main(['proxy', '--config', file, '--port', '0'], io.io)).toBe(2);
    const err = io.err();
    expect(err).toContain(`${file}:3:15: proxies[0].upstream: expected host:port`);
    expect(err).toContain(`${file}:8:15: proxies[0].toxics[1].type: expected one of`);
    expect(err).toContain(`${file}:9:11: proxies[1].name: duplicate proxy name "a"`);
    expect(err).toContain(
      `${file}:7:20: proxies[0].toxics[0].attributes.latency: attributes.latency must be an integer >= 0, got -3`,
    );
    expect(err).toMatch(/bulwark: proxy: 4 problems in .*bad\.yaml\n/);
    expect(err).not.toMatch(/\n\s+at /);
  });

  it('reports attribute problems at their line', async () => {
    const file = join(dir, 'attr.yaml');
    await writeFile(
      file,
      `- name: a\n  upstream: 127.0.0.1:1\n  toxics:\n    - type: latency\n      attributes: { latency: -3 }\n`,
    );
    const io = capture();
    expect(await main(['proxy', '--config', file], io.io)).toBe(2);
    expect(io.err()).toContain(
      `${file}:5:30: [0].toxics[0].attributes.latency: attributes.latency must be an integer >= 0, got -3`,
    );
  });

  it('exits 2 on bad flags, a missing file, a port in use, and a public host without a token', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const port = (busy.address() as { port: number }).port;
    try {
      const cases: [string[], RegExp][] = [
        [['proxy', '--port', 'x'], /--port must be an integer from 0 to 65535/],
        [['proxy', '--bogus'], /proxy: Unknown option '--bogus'/],
        [['proxy', '--config', join(dir, 'missing.yaml')], /cannot read .*missing\.yaml: no such file/],
        [
          ['proxy', '--port', String(port)],
          new RegExp(`cannot listen on 127.0.0.1:${port} for the API: EADDRINUSE`),
        ],
        [
          ['proxy', '--host', '0.0.0.0', '--port', '0'],
          /not a loopback address; binding elsewhere requires option "token"/,
        ],
      ];
      for (const [argv, message] of cases) {
        const io = capture();
        expect(await main(argv, io.io), argv.join(' ')).toBe(2);
        expect(io.err()).toMatch(message);
        expect(io.err().split('\n').filter(Boolean).length).toBe(2);
      }
      const file = join(dir, 'busy.yaml');
      await writeFile(file, `- { name: a, listen: "127.0.0.1:${port}", upstream: "127.0.0.1:1" }\n`);
      const io = capture();
      expect(await main(['proxy', '--config', file, '--port', '0'], io.io)).toBe(2);
      expect(io.err()).toContain(`listen tcp 127.0.0.1:${port}: bind: address already in use`);
    } finally {
      busy.close();
    }
  });

  it('prints help', async () => {
    const io = capture();
    expect(await main(['proxy', '--help'], io.io)).toBe(0);
    expect(io.out()).toContain('Usage: bulwark proxy');
    const top = capture();
    await main(['--help'], top.io);
    expect(top.out()).toContain('proxy ');
  });
});
