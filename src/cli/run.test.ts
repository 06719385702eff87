import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import { SystemClock } from '../core/clock.js';
import type { ExperimentJournal } from '../lab/experiment/index.js';
import { main } from './main.js';
import { type RunDependencies, runCommand } from './run.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A target on loopback: `/break` makes `/health` answer 503 until `/fix`. */
async function target() {
  const state = { broken: false, calls: [] as string[] };
  const server = createServer((req, res) => {
    state.calls.push(req.url ?? '');
    if (req.url === '/break') state.broken = true;
    if (req.url === '/fix') state.broken = false;
    res.statusCode = state.broken && req.url === '/health' ? 503 : 200;
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, state };
}

function experiment(url: string, wait = '300ms'): string {
  return `
title: break and fix
steady-state-hypothesis:
  probes:
    - { type: probe, name: health, provider: { type: http, url: "${url}/health" }, tolerance: 200 }
method:
  - { type: action, name: break, provider: { type: http, url: "${url}/break", method: POST } }
  - { type: wait, duration: ${wait} }
rollbacks:
  - { type: action, name: fix, provider: { type: http, url: "${url}/fix", method: POST } }
`;
}

async function fileWith(text: string): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-run-'));
  const file = join(dir, 'experiment.yaml');
  await writeFile(file, text);
  return { dir, file };
}

const noSignals: RunDependencies = { onSignal: () => () => {}, exit: () => {} };

describe('bulwark run', () => {
  it('runs the experiment, prints the summary, writes the journal files, exits 1 when it deviates', async () => {
    const { url, state } = await target();
    const { dir, file } = await fileWith(experiment(url));
    const out = join(dir, 'report');
    const c = capture();
    expect(await runCommand([file, '--out', out], c.io, noSignals)).toBe(1);
    expect(c.out()).toContain(
      'Experiment: break and fix\nDEVIATED — the steady-state hypothesis did not hold after the method\n',
    );
    expect(c.out()).toMatch(/steady-state-after\s+health\s+http\s+failed\s+\d+ ms\s+expected 200, got 503/);
    expect(c.out()).toMatch(/rollback\s+fix\s+http\s+succeeded/);
    expect(c.err()).toContain('  method · break: succeeded\n');
    expect((await readdir(out)).sort()).toEqual(['journal.html', 'journal.json', 'journal.md']);
    const journal = JSON.parse(await readFile(join(out, 'journal.json'), 'utf8')) as ExperimentJournal;
    expect([journal.status, journal.deviated]).toEqual(['completed', true]);
    expect(await readFile(join(out, 'journal.html'), 'utf8')).toMatch(/^<!doctype html>/);
    expect(state.broken).toBe(false);
  });

  it('exits 0 when the hypothesis holds; --json prints the journal', async () => {
    const { url } = await target();
    const { file } = await fileWith(experiment(url).replace(`${url}/break`, `${url}/noop`));
    const c = capture();
    expect(await runCommand([file, '--json', '--no-out'], c.io, noSignals)).toBe(0);
    expect((JSON.parse(c.out()) as ExperimentJournal).steadyStates.after?.met).toBe(true);
  });

  it('bad input exits 2 with one line per problem and runs nothing', async () => {
    const { url, state } = await target();
    const { file } = await fileWith(experiment(url).replace('type: wait', 'type: sleep'));
    const c = capture();
    expect(await main(['run', file], c.io)).toBe(2);
    expect(c.err()).toBe(`${file}:8:13: method[1].type: expected one of "probe", "action", "wait"\n`);
    expect(state.calls).toEqual([]);
    const missing = capture();
    expect(await main(['run', join(tmpdir(), 'no-such-experiment.yaml')], missing.io)).toBe(2);
    expect(missing.err()).toMatch(/^bulwark: run: cannot read .*no-such-experiment\.yaml: no such file\n/);
    const none = capture();
    expect(await main(['run'], none.io)).toBe(2);
    expect(none.err()).toMatch(/^bulwark: run: expected one experiment file, got none\n/);
    const valid = capture();
    expect(await main(['run', file.replace('experiment.yaml', 'x.yaml'), '--validate'], valid.io)).toBe(2);
  });

  it('--validate checks the file only', async () => {
    const { url, state } = await target();
    const { file } = await fileWith(experiment(url));
    const c = capture();
    expect(await runCommand([file, '--validate'], c.io, noSignals)).toBe(0);
    expect(c.out()).toBe(`${file}: valid experiment "break and fix"\n`);
    expect(state.calls).toEqual([]);
  });

  it('SIGINT to a real bulwark process stops the method, runs the rollbacks, exits 1', async () => {
    const { url, state } = await target();
    const { dir, file } = await fileWith(experiment(url, '60s'));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/fixtures/bulwark-cli.ts', 'run', file, '--out', join(dir, 'out')],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // Wait (bounded) until the method's action reached the target, then interrupt.
    const clock = new SystemClock();
    for (let i = 0; i < 300 && !state.calls.includes('/break'); i++) await clock.sleep(50);
    expect(state.calls).toContain('/break');
    child.kill('SIGINT');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(stderr).toContain('SIGINT: stopping the method; running the rollbacks');
    expect(state.calls.at(-1)).toBe('/fix');
    expect(state.broken).toBe(false);
    const journal = JSON.parse(await readFile(join(dir, 'out', 'journal.json'), 'utf8')) as ExperimentJournal;
    expect(journal.status).toBe('interrupted');
    expect(journal.run.map((a) => [a.name, a.status])).toEqual([
      ['break', 'succeeded'],
      ['wait 1m', 'interrupted'],
    ]);
    expect(journal.rollbacks.map((a) => [a.name, a.status])).toEqual([['fix', 'succeeded']]);
  });
});

describe('bulwark run: failure patterns of the load', () => {
  it('finds what the load ran into during the fault and puts it in the journal and the reports', async () => {
    const { url } = await target();
    const text = `${experiment(url, '600ms').replace(`${url}/break`, `${url}/break`)}load: { url: "${url}/health", rate: 50, warmup: 300ms, cooldown: 300ms }\n`;
    const { dir, file } = await fileWith(text);
    const out = join(dir, 'report');
    const c = capture();
    expect(await runCommand([file, '--out', out], c.io, noSignals)).toBe(1);
    const journal = JSON.parse(await readFile(join(out, 'journal.json'), 'utf8')) as ExperimentJournal;
    expect(journal.patterns?.failures).toBeGreaterThan(5);
    expect(journal.patterns?.findings.some((f) => f.title.includes('HTTP_503'))).toBe(true);
    expect(await readFile(join(out, 'journal.md'), 'utf8')).toContain('## Failure patterns');
    expect(c.out()).toContain('Failure patterns of the load:');
  });
});
