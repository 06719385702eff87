/**
 * Kill-then-resume: a child process runs a plan against a SQLite journal; when the journal shows a step
 * started, the test kills the child with SIGKILL and resumes the run in this process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SystemClock } from '../src/core/clock.js';
import { createRuntime } from '../src/core/runtime.js';
import { Engine, SqliteJournal } from '../src/engine/index.js';
import { killTestTools } from './fixtures/engine-tools.js';

const CHILD = new URL('./fixtures/engine-child.ts', import.meta.url).pathname;
const clock = new SystemClock();

let dir = '';
let child: ChildProcess | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-kill-'));
});
afterEach(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** Polls (10 ms, at most `limitMs`) until `condition` holds. */
async function until(
  what: string,
  condition: () => boolean | Promise<boolean>,
  limitMs = 15_000,
): Promise<void> {
  const deadline = clock.now() + limitMs;
  while (!(await condition())) {
    if (child?.exitCode !== null && child?.exitCode !== undefined)
      throw new Error(`child exited (${child.exitCode}) before ${what}`);
    if (clock.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await clock.sleep(10);
  }
}

async function killWhenStarted(mode: string, step: string, also: () => Promise<boolean> = async () => true) {
  const journalPath = join(dir, 'journal.db');
  const runId = `kill-${mode}`;
  let stderr = '';
  child = spawn(process.execPath, ['--import', 'tsx', CHILD, journalPath, dir, runId, mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<string | null>((resolve) =>
    child?.on('exit', (_code, signal) => resolve(signal)),
  );
  const watcher = new SqliteJournal(journalPath);
  try {
    await until(`step ${step} to start (${stderr})`, async () => {
      const events = watcher.events(runId) ?? [];
      return events.some((e) => e.kind === 'step.started' && e.step === step) && (await also());
    });
  } finally {
    watcher.close();
  }
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  return { journalPath, runId };
}

async function ledger(): Promise<string> {
  return readFile(join(dir, 'ledger.txt'), 'utf8');
}

describe('kill -9 mid-plan, then resume', () => {
  it('skips completed steps (reusing their outputs) and re-runs the interrupted idempotent step', async () => {
    const { journalPath, runId } = await killWhenStarted('plain', 'gate');
    const journal = new SqliteJournal(journalPath);
    try {
      const engine = new Engine({
        runtime: createRuntime({ seed: 2 }),
        journal,
        root: dir,
        tools: killTestTools(dir),
        log: () => {},
      });
      const before = engine.show(runId);
      expect(before.status).toBe('running');
      expect(before.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'running', 'pending']);
      await writeFile(join(dir, 'release'), '');
      const result = await engine.resume(runId);
      expect(result.status).toBe('succeeded');
      expect(result.record.resumed).toBe(1);
      expect(result.record.steps.map((s) => s.status)).toEqual([
        'succeeded',
        'succeeded',
        'succeeded',
        'succeeded',
      ]);
      // `count` is not idempotent and completed before the kill: it did not run again.
      expect(await ledger()).toBe('count\n');
      // `final` used the output `write` recorded in the killed process.
      expect(await readFile(join(dir, 'done.txt'), 'utf8')).toBe('a.txt');
    } finally {
      journal.close();
    }
  });

  it('compensates an interrupted non-idempotent step before running it again', async () => {
    const { journalPath, runId } = await killWhenStarted(
      'hold-count',
      'count',
      async () => (await ledger().catch(() => '')) === 'count\n',
    );
    const journal = new SqliteJournal(journalPath);
    try {
      const engine = new Engine({
        runtime: createRuntime({ seed: 2 }),
        journal,
        root: dir,
        tools: killTestTools(dir),
        log: () => {},
      });
      expect(engine.show(runId).steps.map((s) => s.status)).toEqual([
        'succeeded',
        'running',
        'pending',
        'pending',
      ]);
      await writeFile(join(dir, 'release'), '');
      const result = await engine.resume(runId);
      expect(result.status).toBe('succeeded');
      expect(result.record.steps[1]?.priorCompensation?.status).toBe('compensated');
      expect(result.record.steps[1]?.compensation).toBeUndefined();
      // Undone once, done once: one line, not two.
      expect(await ledger()).toBe('count\n');
    } finally {
      journal.close();
    }
  });
});
