/**
 * npm run bench:lab [-- --json] [-- --tasks N]
 *
 * Runs the `network` scenario (retry + timeout against injected connection errors and hangs, on the virtual
 * clock) with 1,000,000 tasks on the built package and reports simulated tasks per wall-clock second and
 * the heap before/after.
 * Target (issue 3): >= 200,000 tasks/s on the 2-core CI machine, memory flat. Wall time is read through
 * Bulwark's SystemClock.
 */
import os from 'node:os';
// The built package (what users run; `npm run bench:lab` builds it first), not the sources through tsx's
// loader, which runs this workload ~15% slower.
import { SystemClock } from '../dist/core/index.js';
import { network, runScenario } from '../dist/lab/index.js';

const json = process.argv.includes('--json');
const at = process.argv.indexOf('--tasks');
const tasks = at >= 0 ? Number(process.argv[at + 1]) : 1_000_000;
if (!Number.isInteger(tasks) || tasks < 1) {
  console.error(`bench:lab: --tasks must be a positive integer, got ${process.argv[at + 1]}`);
  process.exit(2);
}
const clock = new SystemClock();
const heapBefore = process.memoryUsage().heapUsed;
const start = clock.now();
const report = await runScenario(network, { seed: 'bench', tasks });
const wallMs = clock.now() - start;
const heapAfter = process.memoryUsage().heapUsed;
const result = {
  tasks,
  wall_ms: Math.round(wallMs),
  virtual_ms: Math.round(report.virtualMs),
  tasks_per_s: Math.round(tasks / (wallMs / 1000)),
  final: report.metrics.final?.rate,
  heap_before_mb: Math.round(heapBefore / 1e5) / 10,
  heap_after_mb: Math.round(heapAfter / 1e5) / 10,
  target_tasks_per_s: 200_000,
  meta: { node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length },
};
if (!json)
  console.log(`network: ${tasks} tasks in ${result.wall_ms} ms wall = ${result.tasks_per_s} tasks/s`);
console.log(JSON.stringify(result));
