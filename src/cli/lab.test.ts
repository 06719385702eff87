import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import type { LabReport, ScenarioReport } from '../lab/document.js';
import type { RunScenarioOptions } from '../lab/runner.js';
import { runScenario } from '../lab/runner.js';
import { defineScenario, type Scenario } from '../lab/scenario.js';
import { dbPool } from '../lab/scenarios/index.js';
import { rate } from '../lab/stats.js';
import { defaultLabDependencies, didYouMean, type LabDependencies, labCommand } from './lab.js';
import { main } from './main.js';

function stubScenario(name: string, tasks = 100): Scenario {
  return defineScenario({
    name,
    description: `the ${name} stub`,
    params: {},
    defaults: { tasks },
    run() {},
  }) as unknown as Scenario;
}

function stubReport(scenario: Scenario, options: RunScenarioOptions, passed: boolean): ScenarioReport {
  const tasks = options.tasks ?? scenario.defaults.tasks;
  return {
    name: scenario.name,
    description: scenario.description,
    tasks,
    runs: options.runs ?? 1,
    passed,
    params: {},
    metrics: { ok: rate(tasks, tasks) },
    values: {},
    latency: {},
    analytic: {},
    comparisons: [],
    checks: [{ description: 'ok at least 1', passed, message: passed ? 'fine' : 'too low' }],
    virtualMs: 0,
  };
}

/** Stub dependencies: `failing` names the scenarios whose checks fail; `calls` records each run. */
function stubs(failing: string[] = [], stderrIsTTY = false) {
  const calls: [string, RunScenarioOptions][] = [];
  let clock = 0;
  const deps: LabDependencies = {
    scenarios: () =>
      new Map([
        ['alpha', stubScenario('alpha')],
        ['beta', stubScenario('beta', 300_000)],
      ]),
    run: async (scenario, options) => {
      calls.push([scenario.name, options]);
      const total = (options.tasks ?? scenario.defaults.tasks) * (options.runs ?? 1);
      for (let done = 1024; done < total; done += 1024) options.onProgress?.(done, total);
      options.onProgress?.(total, total);
      return stubReport(scenario, options, !failing.includes(scenario.name));
    },
    now: () => (clock += 250),
    stderrIsTTY,
  };
  return { deps, calls };
}

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-lab-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

function withoutMeta(report: LabReport) {
  const { meta: _, ...rest } = report;
  return rest;
}

describe('bulwark lab: input', () => {
  it('--list prints one line per built-in scenario', async () => {
    const c = capture();
    expect(await main(['lab', '--list'], c.io)).toBe(0);
    const lines = c.out().trimEnd().split('\n');
    expect(lines.map((l) => l.split(/\s+/)[0])).toEqual([...defaultLabDependencies.scenarios().keys()]);
    expect(lines[0]).toMatch(/^network\s+\S.*\(10000 tasks by default\)$/);
  });

  it('--help prints usage and exits 0', async () => {
    const c = capture();
    expect(await main(['lab', '--help'], c.io)).toBe(0);
    expect(c.out()).toMatch(/^Usage: bulwark lab \[scenario…\]/);
  });

  it.each([
    [
      ['netwrok'],
      'bulwark: lab: unknown scenario "netwrok" (did you mean "network"?); known: network, resource, queue, engine, rate-limit, disk, race, db-pool',
    ],
    [
      ['zzz'],
      'bulwark: lab: unknown scenario "zzz"; known: network, resource, queue, engine, rate-limit, disk, race, db-pool',
    ],
    [['--tasks', '0'], 'bulwark: lab: --tasks must be an integer from 1 to 100000000, got "0"'],
    [['--tasks', '1.5'], 'bulwark: lab: --tasks must be an integer from 1 to 100000000, got "1.5"'],
    [['--tasks', '1e3'], 'bulwark: lab: --tasks must be an integer from 1 to 100000000, got "1e3"'],
    [['--runs', 'x'], 'bulwark: lab: --runs must be an integer from 1 to 100000, got "x"'],
    [['--seed', ''], 'bulwark: lab: --seed must not be empty'],
    [['--bogus'], "bulwark: lab: Unknown option '--bogus'"],
    [['--tasks'], "bulwark: lab: Option '--tasks <value>' argument missing"],
  ])('bad input %j exits 2 with one line and no stack trace', async (argv, message) => {
    const c = capture();
    expect(await main(['lab', ...argv], c.io)).toBe(2);
    expect(c.err()).toBe(`${message}\nRun "bulwark --help" for usage.\n`);
    expect(c.out()).toBe('');
  });

  it('suggests near names only', () => {
    expect(didYouMean('netwrk', ['network', 'resource'])).toBe('network');
    expect(didYouMean('res', ['network', 'resource'])).toBe('resource');
    expect(didYouMean('queue', ['network', 'resource'])).toBeUndefined();
  });
});

describe('bulwark lab: runs', () => {
  it('runs every scenario by default and exits 0 when all pass', async () => {
    const { deps, calls } = stubs();
    const c = capture();
    expect(await labCommand(['--seed', '7', '--runs', '2'], c.io, deps)).toBe(0);
    expect(calls).toEqual([
      ['alpha', { seed: 7, runs: 2 }],
      ['beta', { seed: 7, runs: 2 }],
    ]);
    expect(c.out()).toMatch(/^Bulwark lab · seed 7\n/);
    expect(c.out()).toContain('2/2 scenarios passed their checks.');
    expect(c.out().endsWith('Reproduce: bulwark lab --seed 7 --runs 2\n')).toBe(true);
    expect(c.err()).toBe('');
  });

  it('runs the named scenarios once each, in the order given, and exits 1 when one fails', async () => {
    const { deps, calls } = stubs(['alpha']);
    const c = capture();
    expect(await labCommand(['beta', 'alpha', 'beta', '--tasks', '10', '--seed', 'x y'], c.io, deps)).toBe(1);
    expect(calls.map(([name, o]) => [name, o.seed, o.tasks])).toEqual([
      ['beta', 'x y', 10],
      ['alpha', 'x y', 10],
    ]);
    expect(c.out()).toContain('alpha: FAILED ok at least 1: too low');
    expect(c.out()).toContain("Reproduce: bulwark lab beta alpha --seed 'x y' --tasks 10\n");
  });

  it('--json prints the report document, and nothing else, to stdout', async () => {
    const { deps } = stubs();
    const c = capture();
    expect(await labCommand(['alpha', '--json', '--seed', 'abc'], c.io, { ...deps, version: '9.9.9' })).toBe(
      0,
    );
    const report = JSON.parse(c.out()) as LabReport;
    expect(report.seed).toBe('abc');
    expect(report.scenarios.map((s) => s.name)).toEqual(['alpha']);
    expect(report.meta).toEqual({
      wallMs: 750,
      scenarioWallMs: { alpha: 250 },
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      version: '9.9.9',
    });
  });

  it('--out creates the directory and writes report.json, report.md and report.html, no temp files', async () => {
    const { deps } = stubs(['beta']);
    const dir = join(await tempDir(), 'nested', 'reports');
    const c = capture();
    expect(await labCommand(['--out', dir, '--json'], c.io, deps)).toBe(1);
    expect((await readdir(dir)).sort()).toEqual(['report.html', 'report.json', 'report.md']);
    const written = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')) as LabReport;
    expect(written).toEqual(JSON.parse(c.out()));
    expect(await readFile(join(dir, 'report.md'), 'utf8')).toMatch(/^# Bulwark lab report\n/);
    expect(await readFile(join(dir, 'report.html'), 'utf8')).toMatch(/^<!doctype html>/);
    // With --json the confirmation goes to stderr, so stdout stays one JSON document.
    expect(c.err()).toBe(`Wrote report.json, report.md, report.html to ${dir}\n`);
  });

  it('writes the reports to the default directory unless --no-out, or --json without --out', async () => {
    const { deps } = stubs();
    const dir = join(await tempDir(), 'lab-report');
    const withDefault = { ...deps, defaultOut: dir };
    const quiet = capture();
    expect(await labCommand(['--no-out'], quiet.io, withDefault)).toBe(0);
    expect(quiet.out()).not.toMatch(/Wrote/);
    const json = capture();
    expect(await labCommand(['--json'], json.io, withDefault)).toBe(0);
    await expect(readdir(dir)).rejects.toThrow(/ENOENT/);
    const plain = capture();
    expect(await labCommand([], plain.io, withDefault)).toBe(0);
    expect((await readdir(dir)).sort()).toEqual(['report.html', 'report.json', 'report.md']);
    expect(plain.out()).toContain(`Wrote report.json, report.md, report.html to ${dir}\n`);
    await expect(labCommand(['--out', dir, '--no-out'], capture().io, withDefault)).rejects.toThrow(
      /--out and --no-out contradict/,
    );
  });

  it('--out over an existing file exits 2 with one line', async () => {
    const file = join(await tempDir(), 'taken');
    await writeFile(file, 'x');
    const c = capture();
    expect(await main(['lab', 'resource', '--out', join(file, 'sub')], c.io)).toBe(2);
    expect(c.err()).toMatch(
      /^bulwark: lab: cannot write the reports to .*taken\/sub: [^\n]*\nRun "bulwark --help" for usage\.\n$/,
    );
  });

  it('draws a progress line on stderr only on a TTY and for long runs', async () => {
    const tty = stubs([], true);
    const long = capture();
    expect(await labCommand(['beta'], long.io, tty.deps)).toBe(0);
    expect(long.err()).toContain('\r\x1b[Kbeta: 100% (300000/300000 tasks)');
    expect(long.err().endsWith('\r\x1b[K')).toBe(true);
    expect(long.out()).not.toContain('\r');

    const short = capture();
    expect(await labCommand(['alpha'], short.io, tty.deps)).toBe(0);
    expect(short.err()).toBe('');

    const piped = capture();
    expect(await labCommand(['beta'], piped.io, stubs([], false).deps)).toBe(0);
    expect(piped.err()).toBe('');
  });
});

describe('bulwark lab: the real scenarios', () => {
  it('two runs with the same seed give identical reports outside meta', async () => {
    const run = async (seed: string) => {
      const c = capture();
      // The virtual-clock scenarios repeat byte for byte (rate-limit runs in real time, db-pool needs
      // PostgreSQL); 40 tasks: the race scenario explores 300 schedules per task.
      const code = await main(
        [
          'lab',
          'network',
          'resource',
          'queue',
          'engine',
          'disk',
          'race',
          '--json',
          '--tasks',
          '40',
          '--seed',
          seed,
        ],
        c.io,
      );
      return { code, report: JSON.parse(c.out()) as LabReport };
    };
    const a = await run('5');
    const b = await run('5');
    expect(a.code).toBe(b.code);
    expect(JSON.stringify(withoutMeta(b.report))).toBe(JSON.stringify(withoutMeta(a.report)));
    expect(a.report.scenarios.map((s) => [s.name, s.tasks])).toEqual([
      ['network', 40],
      ['resource', 40],
      ['queue', 40],
      ['engine', 40],
      ['disk', 40],
      ['race', 40],
    ]);
    const c = await run('6');
    expect(JSON.stringify(withoutMeta(c.report))).not.toBe(JSON.stringify(withoutMeta(a.report)));
  });

  it('prints the summary table for the network scenario at the original scale', async () => {
    const c = capture();
    const code = await main(['lab', 'network', '--tasks', '10', '--no-out'], c.io);
    expect([0, 1]).toContain(code);
    expect(c.out()).toMatch(/^scenario\s+setup\s+before\s+after\s+improvement\s+p\s+verdict$/m);
    expect(c.out()).toMatch(/^network\s+10 tasks\s+\d+\.\d% \[/m);
    expect(c.out()).toContain('network (success): warning: 10 tasks per arm');
  });
});

describe('bulwark lab --file', () => {
  const valid = 'test/fixtures/flaky-api.yaml';

  it('runs only the file scenario when no names are given, and exits 0 when its checks pass', async () => {
    const c = capture();
    expect(await main(['lab', '--file', valid, '--json'], c.io)).toBe(0);
    const report = JSON.parse(c.out()) as LabReport;
    expect(report.scenarios.map((s) => [s.name, s.tasks, s.passed])).toEqual([['flaky-api', 10_000, true]]);
    expect(report.scenarios[0]?.metrics.after).toMatchObject({ count: 9169, total: 10_000 });
    expect(c.err()).toBe('');
  });

  it('runs named built-ins, then the files; --list and the Reproduce line include them', async () => {
    const { deps, calls } = stubs();
    const c = capture();
    expect(await labCommand(['alpha', '--file', valid, '--tasks', '5'], c.io, deps)).toBe(0);
    expect(calls.map(([name]) => name)).toEqual(['alpha', 'flaky-api']);
    expect(c.out()).toContain(`Reproduce: bulwark lab alpha --seed 1 --tasks 5 --file ${valid}\n`);
    const l = capture();
    expect(await labCommand(['--list', '--file', valid], l.io, deps)).toBe(0);
    expect(
      l
        .out()
        .trimEnd()
        .split('\n')
        .map((line) => line.split(/\s+/)[0]),
    ).toEqual(['alpha', 'beta', 'flaky-api']);
  });

  it('a file scenario named like a built-in or another file exits 2 naming the clash, and nothing runs', async () => {
    const { deps, calls } = stubs();
    const loadFile = async (path: string) =>
      defineScenario({
        name: path === 'a.yaml' ? 'alpha' : 'mine',
        description: path,
        params: {},
        defaults: { tasks: 1 },
        run() {},
      });
    const c = capture();
    const argv = ['--file', 'a.yaml', '--file', 'b.yaml', '--file', 'c.yaml'];
    expect(await labCommand(argv, c.io, { ...deps, loadFile })).toBe(2);
    expect(c.err()).toBe(
      'a.yaml: name: "alpha" is already the name of a built-in scenario; give this scenario another name\n' +
        'c.yaml: name: "mine" is already the name of the scenario in b.yaml; give this scenario another name\n',
    );
    expect(calls).toEqual([]);
  });

  it('a bad file exits 2 with one message per problem on stderr, and nothing runs', async () => {
    const { deps, calls } = stubs();
    const c = capture();
    const code = await labCommand(
      ['--file', 'test/fixtures/bad-keys.yaml', '--file', 'test/fixtures/bad-semantics.yaml'],
      c.io,
      deps,
    );
    expect(code).toBe(2);
    expect(calls).toEqual([]);
    expect(c.out()).toBe('');
    const lines = c.err().trimEnd().split('\n');
    expect(lines).toHaveLength(6);
    expect(lines[0]).toBe(
      'test/fixtures/bad-keys.yaml:7:14: after[0].retry.maxAtempts: unknown key (did you mean "maxAttempts"?)',
    );
    expect(lines[5]).toMatch(/^test\/fixtures\/bad-semantics\.yaml:8:12: after\[1\]\.retry: /);
    expect(c.err()).not.toMatch(/\n\s+at /);
  });

  it('a missing file exits 2 with one line', async () => {
    const c = capture();
    expect(await main(['lab', '--file', 'my.yaml'], c.io)).toBe(2);
    expect(c.err().split('\n')[0]).toBe('bulwark: lab: cannot read my.yaml: no such file');
    expect(c.out()).toBe('');
  });
});

describe('bulwark lab --param', () => {
  it('sets a scenario parameter, typed like its default, and shows it in the reproduce line', async () => {
    const c = capture();
    const code = await main(
      ['lab', 'queue', '--tasks', '50', '--param', 'workMs=2', '--param', 'backend=memory'],
      c.io,
    );
    expect(code).toBe(0);
    expect(c.out()).toContain(
      'Reproduce: bulwark lab queue --seed 1 --tasks 50 --param workMs=2 --param backend=memory',
    );
    const j = capture();
    await main(['lab', 'queue', '--tasks', '50', '--param', 'workMs=2', '--json'], j.io);
    expect((JSON.parse(j.out()) as LabReport).scenarios[0]?.params).toMatchObject({
      workMs: 2,
      backend: 'memory',
    });
  });

  it.each([
    [['--param', 'workMs'], 'bulwark: lab: --param must be KEY=VALUE, got "workMs"'],
    [['--param', 'workMs=fast'], 'bulwark: lab: --param workMs must be a number, got "fast"'],
    [
      ['--param', 'backend=redis'],
      'bulwark: lab: scenario queue: parameter "backend" must be "memory" or "sqlite", got "redis"',
    ],
  ])('bad --param %j exits 2 with one line', async (flags, message) => {
    const c = capture();
    expect(await main(['lab', 'queue', ...flags], c.io)).toBe(2);
    expect(c.err().split('\n')[0]).toBe(message);
  });
});

describe('bulwark lab: scenarios that need a service', () => {
  const needsDb = defineScenario({
    ...stubScenario('needs-db'),
    services: ['postgres'],
  }) as unknown as Scenario;

  it('leaves them out when no scenario is named, runs them when named, and --list says so', async () => {
    const ran: string[] = [];
    const { defaultOut: _, ...noFiles } = defaultLabDependencies;
    const deps: LabDependencies = {
      ...noFiles,
      scenarios: () =>
        new Map([
          ['alpha', stubScenario('alpha')],
          ['needs-db', needsDb],
        ]),
      run: async (scenario, options) => {
        ran.push(scenario.name);
        return stubReport(scenario, options, true);
      },
    };
    expect(await labCommand([], capture().io, deps)).toBe(0);
    expect(ran).toEqual(['alpha']);
    expect(await labCommand(['needs-db'], capture().io, deps)).toBe(0);
    expect(ran).toEqual(['alpha', 'needs-db']);
    const c = capture();
    expect(await labCommand(['--list'], c.io, deps)).toBe(0);
    expect(c.out()).toContain(
      'needs-db  the needs-db stub (100 tasks by default; needs postgres, runs only when named)',
    );
  });

  it('bulwark lab db-pool with PostgreSQL unreachable exits 2 with one line, no stack trace, no files', async () => {
    const unreachable = defineScenario({
      ...dbPool,
      params: { ...dbPool.params, url: 'postgres://postgres@127.0.0.1:1/test' },
    }) as unknown as Scenario;
    const out = await mkdtemp(join(tmpdir(), 'bulwark-lab-'));
    try {
      const c = capture();
      const code = await labCommand(['db-pool', '--out', out], c.io, {
        ...defaultLabDependencies,
        scenarios: () => new Map([['db-pool', unreachable]]),
        run: runScenario,
      });
      expect(code).toBe(2);
      expect(c.err()).toBe(
        'bulwark: lab: db-pool needs PostgreSQL at 127.0.0.1:1/test: connect ECONNREFUSED 127.0.0.1:1\n',
      );
      expect(c.out()).toBe('');
      expect(await readdir(out)).toEqual([]);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});

describe('bulwark lab --patterns', () => {
  it('adds the first run’s failure patterns to the report, the same for the same seed', async () => {
    const run = async () => {
      const c = capture();
      expect(await main(['lab', 'network', '--tasks', '2000', '--patterns', '--json'], c.io)).toBe(0);
      return JSON.parse(c.out()) as LabReport;
    };
    const a = await run();
    const patterns = a.scenarios[0]?.patterns;
    expect(patterns?.failures).toBeGreaterThan(0);
    expect(patterns?.truncated).toBe(false);
    expect(patterns?.findings.map((f) => f.kind)).toContain('signature');
    expect(patterns?.findings.some((f) => f.title.includes('ECONNREFUSED'))).toBe(true);
    expect(JSON.stringify(withoutMeta(await run()))).toBe(JSON.stringify(withoutMeta(a)));
    const plain = capture();
    await main(['lab', 'network', '--tasks', '2000', '--json'], plain.io);
    expect((JSON.parse(plain.out()) as LabReport).scenarios[0]?.patterns).toBeUndefined();
  });
});
