import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import type { ScenarioReport } from '../lab/document.js';
import type { RunScenarioOptions } from '../lab/runner.js';
import { defineScenario, type Scenario, ServiceUnavailableError } from '../lab/scenario.js';
import { rate } from '../lab/stats.js';
import type { DashboardDependencies } from './dashboard.js';
import { UsageError } from './io.js';
import { type LabDependencies, labCommand } from './lab.js';

function stubScenario(name: string, services?: string[]): Scenario {
  return defineScenario({
    name,
    description: `the ${name} stub`,
    params: {},
    defaults: { tasks: 10 },
    ...(services === undefined ? {} : { services }),
    run() {},
  }) as unknown as Scenario;
}

function report(scenario: Scenario, options: RunScenarioOptions): ScenarioReport {
  const tasks = options.tasks ?? scenario.defaults.tasks;
  return {
    name: scenario.name,
    description: scenario.description,
    tasks,
    runs: options.runs ?? 1,
    passed: true,
    params: {},
    metrics: { ok: rate(tasks, tasks) },
    values: {},
    latency: {},
    analytic: {},
    comparisons: [],
    checks: [{ description: 'ok', passed: true, message: 'fine' }],
    virtualMs: 0,
  };
}

/** `db` needs a service that is not there; the others pass. */
/** Monitors the live dashboard started, closed after each test so a leaked server does not outlive it. */
const monitors: { close(): Promise<void> }[] = [];

function stubs(live?: { urls: string[] }) {
  const liveDashboard: DashboardDependencies = {
    waitForStop: () => Promise.resolve(),
    env: {},
    onListening: (url, monitor) => {
      live?.urls.push(url);
      monitors.push(monitor);
    },
  };
  const deps: LabDependencies = {
    scenarios: () =>
      new Map([
        ['alpha', stubScenario('alpha')],
        ['beta', stubScenario('beta')],
        ['db', stubScenario('db', ['postgres'])],
      ]),
    run: async (scenario, options) => {
      if (scenario.name === 'db') {
        // Like db-pool: the runtime is observed (events recorded), then the connection fails.
        const { createRuntime } = await import('../core/runtime.js');
        const runtime = createRuntime();
        const detach = options.observe?.(runtime, 0);
        runtime.events.emit({ type: 'policy.created', source: 'db', at: 0 } as never);
        detach?.();
        throw new ServiceUnavailableError('postgres', 'db needs PostgreSQL at 127.0.0.1:5432: ECONNREFUSED');
      }
      return report(scenario, options);
    },
    now: () => 0,
    stderrIsTTY: false,
    liveDashboard,
  };
  return deps;
}

const dirs: string[] = [];
async function tempDir() {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-lab-review-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const m of monitors.splice(0)) await m.close().catch(() => {});
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** Whether something still answers at `url` (the live dashboard left open). */
async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

describe('review: bulwark lab flag interplay', () => {
  it('--live with an --events mistake (two scenarios) is a usage error that leaves no dashboard listening', async () => {
    const dir = await tempDir();
    const live = { urls: [] as string[] };
    const c = capture();
    await expect(
      labCommand(
        ['alpha', 'beta', '--live', '--port', '0', '--events', join(dir, 'events.jsonl'), '--no-out'],
        c.io,
        stubs(live),
      ),
    ).rejects.toBeInstanceOf(UsageError);
    // The check should come before the server starts; if it started, it must have been closed.
    for (const url of live.urls) expect(await answers(url)).toBe(false);
  });

  it('--live with an unwritable --events file is a usage error that leaves no dashboard listening', async () => {
    const dir = await tempDir();
    const live = { urls: [] as string[] };
    const c = capture();
    await expect(
      labCommand(
        ['alpha', '--live', '--port', '0', '--events', join(dir, 'missing-dir', 'events.jsonl'), '--no-out'],
        c.io,
        stubs(live),
      ),
    ).rejects.toBeInstanceOf(UsageError);
    for (const url of live.urls) expect(await answers(url)).toBe(false);
  });

  it('--events with a scenario whose service is unreachable: exit 2, one line, and no events file left behind', async () => {
    const dir = await tempDir();
    const events = join(dir, 'events.jsonl');
    const c = capture();
    expect(await labCommand(['db', '--events', events, '--no-out'], c.io, stubs())).toBe(2);
    expect(c.err()).toBe('bulwark: lab: db needs PostgreSQL at 127.0.0.1:5432: ECONNREFUSED\n');
    // lab.ts: "A missing database is the environment, not a bug: one line, no stack trace, nothing written."
    expect(existsSync(events)).toBe(false);
  });

  it('--events with a scenario whose service is unreachable does not destroy an existing events file', async () => {
    const dir = await tempDir();
    const events = join(dir, 'events.jsonl');
    await writeFile(events, '{"type":"earlier"}\n');
    const c = capture();
    expect(await labCommand(['db', '--events', events, '--no-out'], c.io, stubs())).toBe(2);
    expect(await readFile(events, 'utf8')).toBe('{"type":"earlier"}\n');
  });

  it('a report that cannot be written leaves no half-updated report set (report.json new, the others old)', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    await mkdir(join(out, 'report.md'), { recursive: true }); // rename over a directory fails
    const c = capture();
    await expect(labCommand(['alpha', '--out', out], c.io, stubs())).rejects.toBeInstanceOf(UsageError);
    expect(existsSync(join(out, 'report.json'))).toBe(false);
  });

  it('passing, pins: opt-in scenarios run only when named; named with a missing service: exit 2, nothing written', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    const ran: string[] = [];
    const deps = stubs();
    const run = deps.run;
    deps.run = (s, o) => {
      ran.push(s.name);
      return run(s, o);
    };
    const c = capture();
    expect(await labCommand(['--out', out], c.io, deps)).toBe(0);
    expect(ran).toEqual(['alpha', 'beta']);
    await rm(out, { recursive: true, force: true });
    expect(await labCommand(['alpha', 'db', '--out', out], capture().io, deps)).toBe(2);
    expect(existsSync(out)).toBe(false);
  });

  it('the printed Reproduce line runs as printed (a negative --seed)', async () => {
    const c = capture();
    expect(await labCommand(['alpha', '--seed=-5', '--no-out'], c.io, stubs())).toBe(0);
    const line = /^Reproduce: bulwark lab (.*)$/m.exec(c.out())?.[1];
    expect(line).toBeDefined();
    const again = capture();
    // parseFlags rejects "--seed -5" (Node: "argument is ambiguous"), so the printed command fails with exit 2.
    await expect(labCommand((line as string).split(' '), again.io, stubs())).resolves.toBe(0);
  });

  it('passing, pins: --live with a scenario whose service is unreachable closes the dashboard, exit 2', async () => {
    const live = { urls: [] as string[] };
    const c = capture();
    expect(await labCommand(['db', '--live', '--port', '0', '--no-out'], c.io, stubs(live))).toBe(2);
    expect(live.urls).toHaveLength(1);
    for (const url of live.urls) expect(await answers(url)).toBe(false);
  });
});
