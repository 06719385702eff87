import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard } from '../../scripts/build-dashboard.mjs';
import { capture, deferred } from '../../test/support.js';
import { createRuntime } from '../core/runtime.js';
import type { RunScenarioOptions } from '../lab/runner.js';
import { runScenario } from '../lab/runner.js';
import type { Scenario } from '../lab/scenario.js';
import { network } from '../lab/scenarios/index.js';
import { HistoryStore } from '../monitor/history.js';
import type { LiveSnapshot } from '../monitor/live.js';
import type { Monitor } from '../monitor/monitor.js';
import { type DashboardDependencies, dashboardCommand } from './dashboard.js';
import { defaultLabDependencies, labCommand } from './lab.js';
import { main } from './main.js';

let dir: string;
let assetsDir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-dashboard-cli-'));
  assetsDir = join(dir, 'assets');
  await buildDashboard(assetsDir);
}, 60_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

/** Dependencies whose stop is in the test's hands, and the URL and monitor once listening. */
function controlled(env: Record<string, string> = {}) {
  const stop = deferred();
  stops.push(() => stop.resolve());
  const listening = deferred<{ url: string; monitor: Monitor }>();
  const deps: DashboardDependencies = {
    waitForStop: () => stop.promise,
    env,

    assetsDir,
    onListening: (url, monitor) => listening.resolve({ url, monitor }),
  };
  return { deps, stop: () => stop.resolve(), listening: listening.promise };
}

/** Polls `read` until `done` holds (a real server: bounded, never a fixed sleep). */
async function until<T>(read: () => Promise<T> | T, done: (value: T) => boolean, limitMs = 5000): Promise<T> {
  const clock = createRuntime().clock;
  const start = clock.now();
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (clock.now() - start > limitMs) throw new Error(`condition not met within ${limitMs} ms`);
    await clock.sleep(20);
  }
}

const snapshot = async (url: string) => (await (await fetch(`${url}api/snapshot`)).json()) as LiveSnapshot;

const lines = (...events: object[]) => events.map((e) => `${JSON.stringify(e)}\n`).join('');

describe('bulwark dashboard', () => {
  it('prints its help', async () => {
    const c = capture();
    expect(await main(['dashboard', '--help'], c.io)).toBe(0);
    expect(c.out()).toContain('Usage: bulwark dashboard [--events FILE]');
  });

  it('exits 2 with one line on bad input', async () => {
    const cases: [string[], RegExp][] = [
      [['--port', 'abc'], /--port must be an integer from 0 to 65535, got "abc"/],
      [['--port', '70000'], /--port must be an integer/],
      [['--host', '0.0.0.0', '--port', '0'], /option "token" must be set when binding 0\.0\.0\.0/],
      [
        ['--events', join(tmpdir(), 'bulwark-no-such-file.jsonl')],
        /cannot read the event file .* \(ENOENT\)/,
      ],
      [['--retention', '0'], /--retention must be a number of days from 1 to 3650/],
      [['--nope'], /Unknown option '--nope'/],
      [['--token', 'short', '--port', '0', '--db', ':memory:'], /token.*at least 16 characters/],
    ];
    for (const [argv, message] of cases) {
      const c = capture();
      expect(await main(['dashboard', ...argv, '--db', ':memory:'], c.io)).toBe(2);
      expect(c.err()).toMatch(message);
      expect(c.err().trim().split('\n')).toHaveLength(2); // the message and "Run bulwark --help"
    }
  });

  it('a port in use is a usage error, not a stack trace', async () => {
    const first = controlled();
    const running = dashboardCommand(['--port', '0', '--db', ':memory:'], capture().io, first.deps);
    const { url } = await first.listening;
    const port = new URL(url).port;
    await expect(
      dashboardCommand(['--port', port, '--db', ':memory:'], capture().io, controlled().deps),
    ).rejects.toThrow(new RegExp(`port ${port} is in use on 127\\.0\\.0\\.1; choose another with --port`));
    first.stop();
    expect(await running).toBe(0);
  });

  it('follows an event file as it grows, reports bad lines, and keeps the history across a restart', async () => {
    const file = join(dir, 'events.jsonl');
    const db = join(dir, 'history', 'dashboard.db');
    await writeFile(
      file,
      lines(
        { type: 'policy.created', source: 'payments', at: 1, kind: 'circuitBreaker' },
        {
          type: 'call',
          source: 'payments',
          at: 2,
          kind: 'circuitBreaker',
          outcome: 'success',
          durationMs: 12,
        },
      ) +
        '{"type":"call","source":"payments","at":3,"kind":"x","outcome":"maybe","durationMs":1}\nnot json\n',
    );
    const c = capture();
    const run = controlled();
    const exit = dashboardCommand(['--events', file, '--port', '0', '--db', db], c.io, run.deps);
    const { url } = await run.listening;
    expect(c.out()).toMatch(
      /^Dashboard: http:\/\/127\.0\.0\.1:\d+\/\nHistory: .*dashboard\.db \(7 days\); following /,
    );
    await until(
      () => snapshot(url),
      (s) => s.policies[0]?.total === 1,
    );
    await appendFile(
      file,
      lines(
        {
          type: 'call',
          source: 'payments',
          at: 4,
          kind: 'circuitBreaker',
          outcome: 'failure',
          durationMs: 3,
          error: { code: 'ECONNRESET' },
        },
        {
          type: 'circuit.transition',
          source: 'payments',
          at: 5,
          from: 'closed',
          to: 'open',
          reason: 'failures',
        },
      ),
    );
    const s = await until(
      () => snapshot(url),
      (x) => x.policies[0]?.state === 'open',
    );
    expect(s.policies[0]).toMatchObject({ total: 2, errors: { ECONNRESET: 1 }, opens: 1 });
    expect(c.err()).toContain(`${file}:3:1: outcome: expected one of success, failure`);
    expect(c.err()).toContain(`${file}:4:1: not JSON`);
    const metrics = await (await fetch(`${url}metrics`)).text();
    expect(metrics).toContain('bulwark_circuit_state{policy="payments",state="open"} 1');
    run.stop();
    expect(await exit).toBe(0);
    expect(c.out()).toContain('Stopped after 4 events.');

    // Restart: the minute written on close is still there.
    const history = new HistoryStore({ path: db, clock: createRuntime().clock });
    const points = history.query({ scope: 'policy', name: 'payments' });
    history.close();
    expect(points).toHaveLength(1);
    expect(points[0]?.values).toMatchObject({ calls: 2, success: 1, failure: 1, opens: 1, state: 2 });
    const again = controlled();
    const second = dashboardCommand(['--port', '0', '--db', db], capture().io, again.deps);
    const { url: url2 } = await again.listening;
    const reply = (await (await fetch(`${url2}api/history?scope=policy&name=payments`)).json()) as {
      points: { values: Record<string, number> }[];
    };
    expect(reply.points[0]?.values).toMatchObject({ calls: 2, failure: 1 });
    again.stop();
    expect(await second).toBe(0);
  });

  it('--alerts evaluates the rules over the followed events; the page lists the alert and can silence it', async () => {
    const file = join(dir, 'alert-events.jsonl');
    const config = join(dir, 'alerts.yaml');
    await writeFile(
      config,
      `evaluationInterval: 100ms
rules:
  - name: CircuitOpen
    labels: { severity: ticket }
    circuitOpen: {}
receivers:
  - name: ops
    webhook: { urlEnv: OPS_HOOK }
route:
  receiver: ops
  groupWait: 1h
`,
    );
    await writeFile(
      file,
      lines({
        type: 'circuit.transition',
        source: 'db',
        at: 1,
        from: 'closed',
        to: 'open',
        reason: 'failures',
      }),
    );
    const c = capture();
    const run = controlled({ OPS_HOOK: 'http://127.0.0.1:9/hook' });
    const exit = dashboardCommand(
      ['--events', file, '--alerts', config, '--port', '0', '--db', ':memory:'],
      c.io,
      run.deps,
    );
    const { url } = await run.listening;
    expect(c.out()).toContain(`; alert rules of ${config}`);
    const alerts = await until(
      async () => (await (await fetch(`${url}api/alerts`)).json()) as { rule: string; state: string }[],
      (list) => list.some((a) => a.state === 'firing'),
    );
    expect(alerts).toMatchObject([{ rule: 'CircuitOpen', state: 'firing', labels: { source: 'db' } }]);
    const page = await fetch(url);
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] as string;
    const created = await fetch(`${url}api/silences`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie, origin: url.slice(0, -1) },
      body: JSON.stringify({ matchers: ['alertname="CircuitOpen"'], duration: '2h' }),
    });
    expect(created.status).toBe(201);
    const shown = (await snapshot(url)) as LiveSnapshot & {
      alerts: { alerts: { silenced: boolean }[]; silences: { state: string }[] };
    };
    expect(shown.alerts.alerts[0]?.silenced).toBe(true);
    expect(shown.alerts.silences.map((x) => x.state)).toEqual(['active']);
    run.stop();
    expect(await exit).toBe(0);
  });

  it('--alerts with a bad config exits 2 with one line per problem', async () => {
    const config = join(dir, 'bad-alerts.yaml');
    await writeFile(config, 'rules:\n  - name: X\n    circuitOpen: {}\n    fro: 1m\nreceivers: []\n');
    const c = capture();
    expect(await main(['dashboard', '--alerts', config, '--port', '0', '--db', ':memory:'], c.io)).toBe(2);
    expect(c.err().trim().split('\n')).toEqual([
      expect.stringMatching(/^bulwark: .*bad-alerts\.yaml:1:1: route: required/),
      expect.stringMatching(
        /^bulwark: .*bad-alerts\.yaml:4:5: rules\[0\]\.fro: unknown key \(did you mean "for"\?\)$/,
      ),
      expect.stringMatching(/^bulwark: .*bad-alerts\.yaml:5:12: receivers: must list at least one receiver$/),
    ]);
    expect(c.out()).toBe('');
  });

  it('takes the token from BULWARK_DASHBOARD_TOKEN', async () => {
    const token = 'token-from-the-environment';
    const run = controlled({ BULWARK_DASHBOARD_TOKEN: token });
    const exit = dashboardCommand(['--port', '0', '--db', ':memory:'], capture().io, run.deps);
    const { url } = await run.listening;
    expect((await fetch(`${url}api/snapshot`)).status).toBe(401);
    expect(
      (await fetch(`${url}api/snapshot`, { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(200);
    run.stop();
    expect(await exit).toBe(0);
  });
});

describe('bulwark lab --live', () => {
  it('streams the run to the dashboard, which stays up until stopped; the report is unchanged', async () => {
    const c = capture();
    const live = controlled();
    let seenDuringRun = 0;
    const deps = {
      ...defaultLabDependencies,
      liveDashboard: live.deps,
      run: async (scenario: Scenario, options: RunScenarioOptions) => {
        const { url } = await live.listening;
        const report = await runScenario(scenario, options);
        seenDuringRun = (await snapshot(url)).events;
        return report;
      },
    };
    const exit = labCommand(['network', '--tasks', '300', '--json', '--live', '--port', '0'], c.io, deps);
    const { url } = await live.listening;
    const s = await until(
      () => snapshot(url),
      (x) => x.policies.some((p) => p.name === 'retry' && p.total === 300),
    );
    expect(s.policies.map((p) => p.name).sort()).toEqual(['retry', 'timeout']);
    expect(s.faults.map((f) => f.name).sort()).toEqual(['hang', 'refused']);
    expect(seenDuringRun).toBeGreaterThan(0);
    expect(c.err()).toMatch(/Live dashboard: http:\/\/127\.0\.0\.1:\d+\//);
    await until(
      () => c.err(),
      (text) => text.includes('the dashboard stays up'),
    );
    live.stop();
    expect(await exit).toBe(0);
    const withLive = JSON.parse(c.out()) as { scenarios: unknown };
    const plain = await runScenario(network as unknown as Scenario, { seed: 1, tasks: 300 });
    expect(withLive.scenarios).toEqual([plain]);
  });

  it('--port without --live is a usage error', async () => {
    const c = capture();
    expect(await main(['lab', 'network', '--port', '7000'], c.io)).toBe(2);
    expect(c.err()).toContain('lab: --port is for --live');
  });
});
