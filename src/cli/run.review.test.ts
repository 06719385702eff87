import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import { main } from './main.js';
import { type RunDependencies, runCommand } from './run.js';

const servers: Server[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function target() {
  const calls: string[] = [];
  const server = createServer((req, res) => {
    calls.push(`${req.method} ${req.url}`);
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

async function fileWith(text: string) {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-run-review-'));
  dirs.push(dir);
  const file = join(dir, 'experiment.yaml');
  await writeFile(file, text);
  return { dir, file };
}

const experiment = (url: string) => `
title: poke
steady-state-hypothesis:
  probes:
    - { type: probe, name: health, provider: { type: http, url: "${url}/health" }, tolerance: 200 }
method:
  - { type: action, name: poke, provider: { type: http, url: "${url}/poke", method: POST } }
rollbacks:
  - { type: action, name: unpoke, provider: { type: http, url: "${url}/unpoke", method: POST } }
`;

const noSignals: RunDependencies = { onSignal: () => () => {}, exit: () => {} };

describe('review: bulwark run', () => {
  it('--json still prints progress lines on stderr (README: "progress lines go to stderr either way")', async () => {
    const { url } = await target();
    const { file } = await fileWith(experiment(url));
    const c = capture();
    expect(await runCommand([file, '--json', '--no-out'], c.io, noSignals)).toBe(0);
    expect(JSON.parse(c.out()).status).toBe('completed');
    expect(c.err()).toContain('method · poke: succeeded');
  });

  it('an --out that cannot be a directory is bad input found before the experiment touches the target', async () => {
    const { url, calls } = await target();
    const { dir, file } = await fileWith(experiment(url));
    const notADir = join(dir, 'a-file');
    await writeFile(notADir, 'x');
    const c = capture();
    const code = await main(['run', file, '--out', join(notADir, 'report')], c.io);
    expect(code).toBe(2);
    expect(c.err()).toMatch(/bulwark: run: /);
    // README: exit 2 is "bad input (…, nothing run)"; yet the whole experiment ran against the target.
    expect(calls).toEqual([]);
  });

  it('passing, pins: a file error exits 2 with file:line:column lines and runs nothing', async () => {
    const { url, calls } = await target();
    const { file } = await fileWith(`${experiment(url)}\nbogus: 1\n`);
    const c = capture();
    expect(await main(['run', file, '--no-out'], c.io)).toBe(2);
    expect(c.err()).toMatch(/experiment\.yaml:\d+:\d+: bogus: /);
    expect(c.err()).not.toMatch(/\n\s+at /);
    expect(calls).toEqual([]);
  });

  it('a bad tolerance in an abort probe: exit 2 with a file:line:column line, not an empty message', async () => {
    const { file } = await fileWith(`title: t
method:
  - { type: wait, duration: 1ms }
abort:
  - probe: { type: probe, name: p, provider: { type: http, url: "http://127.0.0.1:1/" }, tolerance: { status: "200" } }
`);
    const c = capture();
    expect(await main(['run', file, '--validate'], c.io)).toBe(2);
    expect(c.err()).toMatch(/experiment\.yaml:5:\d+: abort\[0\]\.probe\.tolerance/);
  });
});
