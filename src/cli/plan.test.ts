import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import { SystemClock } from '../core/clock.js';
import { SqliteJournal } from '../engine/journal.js';
import type { RunRecord } from '../engine/record.js';
import { main } from './main.js';
import { type PlanDependencies, planCommand } from './plan.js';

const EXAMPLES = new URL('../../examples/plans/', import.meta.url).pathname;
let dir = '';
let journal = '';
let root = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-plan-cli-'));
  journal = join(dir, 'journal.db');
  root = join(dir, 'root');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const noInterrupt: PlanDependencies = { onInterrupt: () => () => {} };

async function plan(argv: string[], deps: PlanDependencies = noInterrupt) {
  const c = capture();
  const code = await planCommand(argv, c.io, deps);
  return { code, out: c.out(), err: c.err() };
}

describe('bulwark plan validate', () => {
  it('accepts the example plans', async () => {
    for (const file of ['hello.yaml', 'rollback.yaml']) {
      const r = await plan(['validate', join(EXAMPLES, file)]);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/: plan "[\w-]+" is valid: 3 steps\n$/);
      expect(r.err).toBe('');
    }
    const ui = await plan(['validate', join(EXAMPLES, 'calculator.yaml')]);
    expect(ui.err).toContain('warning: step "open": unknown tool "app.open" (it will fail when it runs)');
    expect((await plan(['validate', join(EXAMPLES, 'calculator.yaml'), '--sim-apps'])).err).toBe('');
  });

  it('--json prints the validated plan and the warnings; unknown compensation tools are warned about', async () => {
    const file = join(dir, 'warn.yaml');
    await writeFile(
      file,
      'name: warn\nsteps:\n  - { id: a, tool: log, params: { message: hi }, compensate: { tool: log.undo }, timeout: 2s }\n',
    );
    const r = await plan(['validate', file, '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out) as {
      valid: boolean;
      plan: { steps: { timeout: unknown }[] };
      warnings: string[];
    };
    expect(doc.valid).toBe(true);
    expect(doc.plan.steps[0]?.timeout).toEqual({ after: 2000 });
    expect(doc.warnings).toEqual([
      'warning: step "a": compensate: unknown tool "log.undo" (a rollback of it will fail)',
    ]);
  });

  it('lists every problem of a bad plan as file:line:col: path: message and exits 2', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      'name: bad\nsteps:\n  - id: a\n    tool: log\n    dependson: [b]\n  - id: a\n    tool: log\n',
    );
    const r = await plan(['validate', file]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `${file}:5:5: steps[0].dependson: unknown key (did you mean "dependsOn"?)\n${file}:6:9: steps[1].id: duplicate step id "a" (first at steps[0])\n`,
    );
    expect(r.out).toBe('');
  });
});

describe('bulwark plan run', () => {
  it('runs the hello example: prints the step table and the log line, exit 0', async () => {
    const r = await plan([
      'run',
      join(EXAMPLES, 'hello.yaml'),
      '--journal',
      journal,
      '--root',
      root,
      '--seed',
      '3',
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('[info] say: greeting.txt says: hello from bulwark\n');
    expect(r.out).toMatch(/^Run [0-9a-f]{16} · plan hello · succeeded in /m);
    expect(r.out).toMatch(/^step\s+tool\s+status\s+attempts\s+duration\s+compensation\s+error$/m);
    expect(r.out).toMatch(/^read\s+fs\.read\s+succeeded\s+1\s/m);
    expect(r.out).toContain('Seed: 3\n');
    expect(await readFile(join(root, 'greeting.txt'), 'utf8')).toBe('hello from bulwark');
  });

  it('--dry-run writes nothing but the journal and says what each step would do', async () => {
    const r = await plan([
      'run',
      join(EXAMPLES, 'hello.yaml'),
      '--journal',
      journal,
      '--root',
      root,
      '--dry-run',
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^write\s+fs\.write\s+simulated\s+—\s+~1ms\s+—\s+write 18 bytes to greeting\.txt$/m,
    );
    expect(r.out).toMatch(
      /^read\s+fs\.read\s+simulated\s+—\s+~1ms\s+—\s+read \$\{steps\.write\.output\.path\} \(after \$\{steps\.write\.output\.path\} resolve\)$/m,
    );
    expect(existsSync(join(root, 'greeting.txt'))).toBe(false);
  });

  it('--repeat 3 --dry-run compares the journals of the calculator example: identical, exit 0', async () => {
    const r = await plan([
      'run',
      join(EXAMPLES, 'calculator.yaml'),
      '--sim-apps',
      '--dry-run',
      '--repeat',
      '3',
      '--journal',
      journal,
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /Repeated 3× \([0-9a-f]{16}-1, [0-9a-f]{16}-2, [0-9a-f]{16}-3\): identical journals/,
    );
    expect(r.out).toContain('unknown app "Calculater" — did you mean "Calculator"?');
    const json = await plan([
      'run',
      join(EXAMPLES, 'calculator.yaml'),
      '--sim-apps',
      '--dry-run',
      '--repeat',
      '2',
      '--journal',
      journal,
      '--json',
    ]);
    const report = JSON.parse(json.out) as { identical: boolean; runs: RunRecord[] };
    expect(report.identical).toBe(true);
    expect(report.runs[0]?.steps.map((s) => s.status)).toEqual([
      'simulated',
      'simulated',
      'failed',
      'failed',
      'simulated',
    ]);
  });

  it('rolls back and exits 1 when a step fails; show and list read the journal', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const file = join(dir, 'fails.yaml');
    await writeFile(
      file,
      `name: fails
steps:
  - { id: draft, tool: fs.write, params: { path: out/draft.txt, content: x } }
  - id: call
    tool: http.request
    dependsOn: [draft]
    params: { url: "http://127.0.0.1:${port}/" }
    retry: { maxAttempts: 2, backoff: { constant: 10ms } }
`,
    );
    const r = await plan(['run', file, '--journal', journal, '--root', root, '--json']);
    expect(r.code).toBe(1);
    const record = JSON.parse(r.out) as RunRecord;
    expect(record.status).toBe('failed');
    expect(record.steps.map((s) => [s.id, s.status, s.attempts, s.compensation?.status])).toEqual([
      ['draft', 'succeeded', 1, 'compensated'],
      ['call', 'failed', 2, undefined],
    ]);
    expect(record.error?.code).toBe('ECONNREFUSED');
    expect(existsSync(join(root, 'out'))).toBe(false);
    const shown = await plan(['show', record.runId, '--journal', journal]);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain('Rolled back (step "call" failed): 1 compensated, 0 failed.');
    expect(shown.out).toMatch(/^draft\s+fs\.write\s+succeeded\s+1\s+\S+\s+compensated$/m);
    const listed = await plan(['list', '--journal', journal]);
    expect(listed.out).toMatch(new RegExp(`^${record.runId}\\s+fails\\s+run\\s+failed$`, 'm'));
  });

  it('Ctrl-C cancels the run: the completed step is rolled back, exit 1', async () => {
    const file = join(dir, 'slow.yaml');
    await writeFile(
      file,
      `name: slow
steps:
  - { id: mark, tool: fs.write, params: { path: mark.txt, content: x } }
  - { id: pause, tool: wait, params: { duration: 60s }, dependsOn: [mark] }
`,
    );
    const clock = new SystemClock();
    const deps: PlanDependencies = {
      onInterrupt(listener) {
        // Press Ctrl-C once the journal shows the second step started (polled, bounded).
        void (async () => {
          const reader = new SqliteJournal(journal);
          const deadline = clock.now() + 10_000;
          const started = () =>
            reader
              .runs(1)
              .some((run) =>
                reader.events(run.runId)?.some((e) => e.kind === 'step.started' && e.step === 'pause'),
              );
          while (!started() && clock.now() < deadline) await clock.sleep(5);
          reader.close();
          listener();
        })();
        return () => {};
      },
    };
    const r = await plan(['run', file, '--journal', journal, '--root', root], deps);
    expect(r.code).toBe(1);
    expect(r.err).toBe('bulwark: interrupted: cancelling the run and rolling back…\n');
    expect(r.out).toMatch(/· cancelled in /);
    expect(r.out).toMatch(/^pause\s+wait\s+cancelled\s/m);
    expect(existsSync(join(root, 'mark.txt'))).toBe(false);
  });
});

describe('bulwark plan: input', () => {
  it.each([
    [['plan', 'run'], 'bulwark: plan run: missing FILE'],
    [
      ['plan', 'frobnicate'],
      'bulwark: plan: unknown subcommand "frobnicate"; expected validate, run, resume, show or list',
    ],
    [
      ['plan', 'run', 'x.yaml', '--repeat', '1'],
      'bulwark: plan run: --repeat must be an integer from 2 to 1000, got "1"',
    ],
    [['plan', 'show', 'x', '--dry-run'], 'bulwark: plan show: --dry-run does not apply here'],
    [['plan', 'run', '--bogus'], "bulwark: plan: Unknown option '--bogus'"],
  ])('%j exits 2 with one line', async (argv, message) => {
    const c = capture();
    expect(await main(argv, c.io)).toBe(2);
    expect(c.err().split('\n')[0]).toBe(message);
    expect(c.out()).toBe('');
  });

  it('a missing file, an unknown run and a finished run are one-line errors, exit 2', async () => {
    expect(
      (await plan(['run', join(dir, 'nope.yaml'), '--journal', journal]).catch((e: unknown) => e)) as Error,
    ).toMatchObject({
      message: `plan run: cannot read ${join(dir, 'nope.yaml')}: no such file`,
    });
    const c = capture();
    expect(await main(['plan', 'resume', 'nope', '--journal', journal], c.io)).toBe(2);
    expect(c.err()).toBe(
      'bulwark: plan resume: no run "nope" in the journal\nRun "bulwark --help" for usage.\n',
    );
    const ok = await plan([
      'run',
      join(EXAMPLES, 'hello.yaml'),
      '--journal',
      journal,
      '--root',
      root,
      '--json',
    ]);
    const runId = (JSON.parse(ok.out) as RunRecord).runId;
    const again = capture();
    expect(await main(['plan', 'resume', runId, '--journal', journal, '--root', root], again.io)).toBe(2);
    expect(again.err()).toContain(`cannot resume run ${runId}: it already ended (succeeded)`);
  });

  it('--help prints usage and exits 0; no subcommand exits 2', async () => {
    expect((await plan(['--help'])).code).toBe(0);
    expect((await plan(['--help'])).out).toContain(
      'bulwark plan run FILE [--dry-run] [--repeat K] [--seed S]',
    );
    expect((await plan([])).code).toBe(2);
  });
});
