/**
 * The queue's events: the contract between `src/queue` (which emits them through `runtime.events`) and
 * `src/monitor` (metrics `bulwark_queue_depth{queue,state}`, `bulwark_queue_jobs_total{queue,outcome}`,
 * `bulwark_queue_failover_total{from,to,reason}`, the dashboard's queue panel). `source` is the queue's name.
 * Add fields freely; renaming or removing one breaks monitoring.
 */

import type { Clock } from '../core/clock.js';
import type { EventSink } from '../core/events.js';

/** Where a job is. `dead` is the dead-letter set. */
export type JobState = 'waiting' | 'delayed' | 'active' | 'completed' | 'dead';

/** Every {@link JobState}, in a fixed order. */
export const JOB_STATES: readonly JobState[] = ['waiting', 'delayed', 'active', 'completed', 'dead'];

/** What happened to a job, as counted by `bulwark_queue_jobs_total{outcome}`. */
export type JobOutcome =
  | 'added'
  | 'completed'
  | 'failed' // an attempt failed and the job will be retried
  | 'dead' // attempts exhausted or too many stalls: moved to the dead-letter set
  | 'stalled' // its lease expired (worker crashed or hung) and it was put back
  | 'redriven'; // moved from the dead-letter set back to waiting

declare module '../core/events.js' {
  interface BulwarkEventMap {
    /** A job changed state. `durationMs` is set on `completed`/`failed`, `error` on `failed`/`dead`. */
    'queue.job': {
      outcome: JobOutcome;
      jobId: string;
      attempt: number;
      durationMs?: number;
      error?: unknown;
    };
    /** The queue's counts by state after a change (emitted at most once per change batch). */
    'queue.depth': { depth: Readonly<Record<JobState, number>> };
    /** `add` was refused: `reason` is the error code (`QUEUE_FULL`, `NO_LIVE_WORKERS`, `QUEUE_UNAVAILABLE`…). */
    'queue.rejected': { reason: string };
    /** A backend's health changed (e.g. Redis unreachable). */
    'queue.health': { healthy: boolean; reason: string };
    /** A failover queue sent work to `to` instead of `from`; `reason` is the error code or `unhealthy`. */
    'queue.failover': { from: string; to: string; reason: string };
    /** A failover queue went back to its primary `to` after it recovered. */
    'queue.failback': { from: string; to: string };
    /** A worker registered, heartbeated for the last time, or was found dead. */
    'queue.worker': { workerId: string; state: 'started' | 'stopped' | 'lost' };
  }
}

/** What the queue event helpers need of a runtime. */
interface Emitter {
  readonly events: EventSink;
  readonly clock: Clock;
}

/** Emits a `queue.job` event of `queue`, when someone wants it. */
export function emitJobEvent(
  runtime: Emitter,
  queue: string,
  outcome: JobOutcome,
  jobId: string,
  attempt: number,
  durationMs?: number,
  error?: unknown,
): void {
  const events = runtime.events;
  if (!events.wants('queue.job')) return;
  const event: {
    type: 'queue.job';
    source: string;
    at: number;
    outcome: JobOutcome;
    jobId: string;
    attempt: number;
    durationMs?: number;
    error?: unknown;
  } = { type: 'queue.job', source: queue, at: runtime.clock.now(), outcome, jobId, attempt };
  if (durationMs !== undefined) event.durationMs = durationMs;
  if (error !== undefined) event.error = error;
  events.emit(event);
}

/** Emits a `queue.worker` event of `queue` for each worker, when someone wants it. */
export function emitWorkerEvents(
  runtime: Emitter,
  queue: string,
  state: 'started' | 'stopped' | 'lost',
  workerIds: readonly string[],
  at?: number,
): void {
  const events = runtime.events;
  if (workerIds.length === 0 || !events.wants('queue.worker')) return;
  const when = at ?? runtime.clock.now();
  for (const workerId of workerIds) {
    events.emit({ type: 'queue.worker', source: queue, at: when, workerId, state });
  }
}
