/**
 * `queue`: the original failover experiment, done properly. A primary queue refuses 30% of jobs as full
 * and 10% of the rest for want of a live worker; a `FailoverQueue` sends those to a fallback that refuses
 * 10% and 5%. Predictions: primary 0.7 × 0.9 = 0.63, fallback 0.9 × 0.95 = 0.855, final
 * 1 − 0.37 × 0.145 = 0.94635. Every accepted job is then run by real workers, and the scenario checks
 * that none was lost. Memory queues on a virtual clock by default; `backend: 'sqlite'` runs two SQLite
 * files in real time (the refusals are seeded, so the rates are the same for the same seed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runtime } from '../../core/runtime.js';
import { FailoverQueue } from '../../queue/failover.js';
import { queueFaults } from '../../queue/faults.js';
import { MemoryQueue } from '../../queue/memory.js';
import { SqliteQueue } from '../../queue/sqlite.js';
import type { Job, Queue } from '../../queue/types.js';
import { defineScenario } from '../scenario.js';

const BACKENDS = ['memory', 'sqlite'];

interface Rates {
  primaryOverflow: number;
  primaryWorkerDown: number;
  fallbackOverflow: number;
  fallbackWorkerDown: number;
}

/** Closed forms, rounded to 12 significant digits so that 0.7 × 0.9 reads 0.63. */
function predictions(p: Rates): Record<string, number> {
  const primary = (1 - p.primaryOverflow) * (1 - p.primaryWorkerDown);
  const fallback = (1 - p.fallbackOverflow) * (1 - p.fallbackWorkerDown);
  const round = (x: number) => Number(x.toPrecision(12));
  return {
    primary_success: round(primary),
    fallback_used: round(1 - primary),
    fallback_success: round(fallback),
    final: round(1 - (1 - primary) * (1 - fallback)),
  };
}

function checkBackend(backend: string): 'memory' | 'sqlite' {
  if (!BACKENDS.includes(backend)) {
    throw new TypeError(
      `scenario queue: parameter "backend" must be "memory" or "sqlite", got ${JSON.stringify(backend)}`,
    );
  }
  return backend as 'memory' | 'sqlite';
}

function build(
  backend: 'memory' | 'sqlite',
  runtime: Runtime,
  dir: string | undefined,
): { primary: Queue<number>; fallback: Queue<number> } {
  if (backend === 'sqlite' && dir !== undefined) {
    return {
      primary: new SqliteQueue<number>({
        name: 'primary',
        file: join(dir, 'primary.db'),
        runtime,
        pollInterval: 5,
      }),
      fallback: new SqliteQueue<number>({
        name: 'fallback',
        file: join(dir, 'fallback.db'),
        runtime,
        pollInterval: 5,
      }),
    };
  }
  return {
    primary: new MemoryQueue<number>({ name: 'primary', runtime }),
    fallback: new MemoryQueue<number>({ name: 'fallback', runtime }),
  };
}

/** The `queue` scenario. */
export const queue = defineScenario({
  name: 'queue',
  description:
    'primary queue refuses 30% (full) and 10% (no live worker); failover to a fallback refusing 10% and 5%; no job lost',
  params: {
    primaryOverflow: 0.3,
    primaryWorkerDown: 0.1,
    fallbackOverflow: 0.1,
    fallbackWorkerDown: 0.05,
    /** `memory` (virtual time) or `sqlite` (two database files, real time). */
    backend: 'memory',
    /** Jobs each queue's worker runs at once. */
    concurrency: 4,
    /** How long one job takes (ms). */
    workMs: 10,
  },
  defaults: { tasks: 20 },
  clock: (params) => (checkBackend(params.backend) === 'sqlite' ? 'system' : 'virtual'),
  async run({ runtime, tasks, params, record, progress }) {
    const backend = checkBackend(params.backend);
    const dir = backend === 'sqlite' ? mkdtempSync(join(tmpdir(), 'bulwark-lab-queue-')) : undefined;
    const { primary, fallback } = build(backend, runtime, dir);
    const faulty = (q: Queue<number>, overflow: number, workerDown: number) =>
      queueFaults.overflow(queueFaults.workerDown(q, { rate: workerDown, runtime }), {
        rate: overflow,
        runtime,
      });
    const failover = new FailoverQueue<number>(
      faulty(primary, params.primaryOverflow, params.primaryWorkerDown),
      faulty(fallback, params.fallbackOverflow, params.fallbackWorkerDown),
      { name: 'queue', runtime },
    );
    const clock = runtime.clock;
    const seen = new Set<string>();
    let completed = 0;
    let duplicates = 0;
    failover.process(
      async (job: Job<number>) => {
        await clock.sleep(params.workMs);
        const key = `${job.queue}:${job.id}`;
        if (seen.has(key)) duplicates++;
        else {
          seen.add(key);
          completed++;
        }
      },
      { concurrency: params.concurrency },
    );
    let primaryAccepted = 0;
    let fallbackUsed = 0;
    let fallbackAccepted = 0;
    try {
      for (let i = 0; i < tasks; i++) {
        try {
          const job = await failover.add(i);
          if (job.queue === primary.name) primaryAccepted++;
          else {
            fallbackUsed++;
            fallbackAccepted++;
          }
        } catch {
          // Both refused: the caller got the error, and the job was never stored.
          fallbackUsed++;
        }
        if ((i + 1) % 1000 === 0 || i + 1 === tasks) progress(i + 1);
      }
      const accepted = primaryAccepted + fallbackAccepted;
      // Every accepted job must complete; in real time allow a generous bound, then count what is missing.
      const deadline = clock.now() + Math.max(30_000, accepted * params.workMs * 4);
      while (completed < accepted && clock.now() < deadline) await clock.sleep(Math.max(1, params.workMs));
      record.countMany('primary_success', primaryAccepted, tasks);
      record.countMany('fallback_used', fallbackUsed, tasks);
      record.countMany('fallback_success', fallbackAccepted, fallbackUsed);
      record.countMany('final', accepted, tasks);
      record.add('jobs.accepted', accepted);
      record.add('jobs.completed', completed);
      record.add('jobs.lost', accepted - completed);
      record.add('jobs.duplicates', duplicates);
    } finally {
      await failover.close();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    }
  },
  analytic: ({ params }) => predictions(params),
  comparisons: [{ metric: 'success', before: 'primary_success', after: 'final' }],
  expect: ({ params }) => {
    const p = predictions(params);
    return [
      { metric: 'primary_success', consistentWith: p.primary_success as number },
      { metric: 'fallback_success', consistentWith: p.fallback_success as number },
      { metric: 'final', consistentWith: p.final as number },
      { value: 'jobs.lost', equals: 0, description: 'every accepted job completed' },
      { value: 'jobs.duplicates', equals: 0 },
    ];
  },
});
