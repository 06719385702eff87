/**
 * npm run bench:chaos [-- --json] [-- --quick]
 *
 * What the file-system and race tools cost: a call through `faultyFs` whose rules do not fire, against
 * the same call on the file system underneath (in memory, and the real one), and schedules per second
 * of the race explorer on the lab's lost-update scenario. Wall-clock time is read through Bulwark's
 * SystemClock. Each row is the median of several rounds; compare ratios, not absolute numbers, on
 * shared machines. The last line printed is one JSON object.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { faultyFs, memoryFs, raceExplorer, schedule } from '../src/chaos/index.js';
import { SystemClock } from '../src/core/clock.js';
import { virtualRuntime } from '../src/core/runtime.js';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const clock = new SystemClock();
const ROUNDS = quick ? 3 : 7;
const CALLS = quick ? 10_000 : 50_000;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** µs per call of one round of `calls` calls. */
async function round(run: () => Promise<unknown>, calls: number): Promise<number> {
  const start = clock.now();
  for (let i = 0; i < calls; i++) await run();
  return ((clock.now() - start) * 1000) / calls;
}

/**
 * Median µs per call of each of `runs`, rounds interleaved (raw, faulty, raw, faulty, …) so that a
 * slow phase of a shared machine hits both alike.
 */
async function perCall(runs: readonly (() => Promise<unknown>)[], calls = CALLS): Promise<number[]> {
  for (const run of runs) await round(run, Math.min(calls, 5000));
  const rounds: number[][] = runs.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < runs.length; i++)
      rounds[i]?.push(await round(runs[i] as () => Promise<unknown>, calls));
  }
  return rounds.map(median);
}

const runtime = virtualRuntime(1);
const rules = [
  // Rules on other paths, and one on this path that never fires: the pass-through cost of matching.
  { path: '/var/lib/**', error: 'ENOSPC' as const },
  { path: '**/*.tmp', operations: ['rename' as const], error: 'EACCES' as const },
  { path: '/data/**', operations: ['stat' as const], error: 'EIO' as const, schedule: schedule.never() },
];

const memory = memoryFs();
await memory.mkdir('/data', { recursive: true });
await memory.writeFile('/data/f', 'x');
const faultyMemory = faultyFs({ fs: memory, rules, runtime });

const dir = await mkdtemp(join(os.tmpdir(), 'bulwark-bench-'));
const file = join(dir, 'f');
await writeFile(file, 'x');
const faultyReal = faultyFs({
  rules: [...rules, { path: `${dir}/**`, error: 'EIO', schedule: schedule.never() }],
  runtime,
});

const results: Record<string, number> = {};
const pair = async (
  keys: [string, string],
  labels: [string, string],
  runs: [() => Promise<unknown>, () => Promise<unknown>],
) => {
  const [raw, faulty] = await perCall(runs);
  results[keys[0]] = raw as number;
  results[keys[1]] = faulty as number;
  if (!json) {
    console.log(`${labels[0].padEnd(48)} ${raw?.toFixed(3).padStart(9)} µs/call`);
    console.log(`${labels[1].padEnd(48)} ${faulty?.toFixed(3).padStart(9)} µs/call`);
  }
};

try {
  await pair(
    ['memory_stat_us', 'faulty_memory_stat_us'],
    ['memoryFs.stat', 'faultyFs(memoryFs).stat, 3 rules, none fires'],
    [() => memory.stat('/data/f'), () => faultyMemory.stat('/data/f')],
  );
  await pair(
    ['real_stat_us', 'faulty_real_stat_us'],
    ['fs/promises.stat', 'faultyFs(fs/promises).stat, 4 rules, none fires'],
    [() => stat(file), () => faultyReal.stat(file)],
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}

// The race explorer: schedules per second on the lost update (stopping at the first violation would
// measure luck; the invariant holds here so every schedule runs).
const schedules = quick ? 500 : 2000;
const explorer = raceExplorer({
  scenario: async ({ point }) => {
    const account = { balance: 100 };
    const withdraw = async (who: string) => {
      await point(`${who}:read`);
      const seen = account.balance;
      await point(`${who}:write`);
      account.balance = seen - 10;
    };
    await Promise.all([withdraw('A'), withdraw('B')]);
    return account.balance;
  },
  invariant: () => true,
  schedules,
  seed: 1,
  runtime,
});
const explored: number[] = [];
for (let r = 0; r < Math.max(3, ROUNDS - 2); r++) {
  const start = clock.now();
  await explorer.explore();
  explored.push((schedules * 1000) / (clock.now() - start));
}
results.race_schedules_per_s = Math.round(median(explored));
if (!json)
  console.log(`${'raceExplorer, 2 tasks × 2 points'.padEnd(48)} ${results.race_schedules_per_s} schedules/s`);

const summary = {
  bench: 'chaos',
  node: process.version,
  cpus: os.cpus().length,
  faulty_memory_overhead_ratio: Number(
    ((results.faulty_memory_stat_us ?? 0) / (results.memory_stat_us ?? 1)).toFixed(2),
  ),
  faulty_real_overhead_ratio: Number(
    ((results.faulty_real_stat_us ?? 0) / (results.real_stat_us ?? 1)).toFixed(2),
  ),
  ...results,
};
console.log(JSON.stringify(summary));
