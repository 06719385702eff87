/**
 * npm run bench:engine [-- --json] [-- --steps N]
 *
 * The engine's own cost per step: plans of N independent no-op steps (concurrency 16) run with a memory
 * journal and with the SQLite journal (WAL, synchronous=NORMAL, one row per event: a step writes 2 rows),
 * plus a dry run. Reports steps per wall-clock second for each and the SQLite/memory ratio. Wall time is
 * read through Bulwark's SystemClock; numbers from a shared VM vary ~2x between runs, ratios less.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { SystemClock } from '../src/core/clock.js';
import { virtualRuntime } from '../src/core/runtime.js';
import { definePlan, Engine, type Journal, MemoryJournal, SqliteJournal } from '../src/engine/index.js';

const json = process.argv.includes('--json');
const at = process.argv.indexOf('--steps');
const steps = at >= 0 ? Number(process.argv[at + 1]) : 5_000;
if (!Number.isInteger(steps) || steps < 1) {
  console.error(`bench:engine: --steps must be a positive integer, got ${process.argv[at + 1]}`);
  process.exit(2);
}

const plan = definePlan({
  name: 'bench',
  concurrency: 16,
  steps: Array.from({ length: steps }, (_, i) => ({ id: `s${i}`, tool: 'noop', params: { i } })),
});
const clock = new SystemClock();

async function measure(journal: Journal, dryRun: boolean): Promise<number> {
  const runtime = virtualRuntime('bench');
  const engine = new Engine({
    runtime,
    journal,
    builtins: false,
    tools: [
      {
        name: 'noop',
        params: z.object({ i: z.number() }),
        run: (p: { i: number }) => p.i,
        idempotent: true,
      } as never,
    ],
  });
  const start = clock.now();
  const result = await runtime.clock.run(() => engine.run(plan, { dryRun }));
  const wallMs = clock.now() - start;
  if (result.status !== 'succeeded') throw new Error(`bench run ${result.status}`);
  journal.close();
  return Math.round(steps / (wallMs / 1000));
}

const dir = mkdtempSync(join(os.tmpdir(), 'bulwark-bench-engine-'));
try {
  await measure(new MemoryJournal(), false); // warm-up
  const memory = await measure(new MemoryJournal(), false);
  const sqlite = await measure(new SqliteJournal(join(dir, 'journal.db')), false);
  const dry = await measure(new MemoryJournal(), true);
  const result = {
    steps,
    memory_steps_per_s: memory,
    sqlite_steps_per_s: sqlite,
    dry_run_steps_per_s: dry,
    sqlite_over_memory: Number((sqlite / memory).toFixed(3)),
    meta: { node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length },
  };
  if (!json) {
    console.log(
      `engine: ${steps} no-op steps — memory journal ${memory}/s, SQLite journal ${sqlite}/s, dry run ${dry}/s`,
    );
  }
  console.log(JSON.stringify(result));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
