/**
 * The queue contract every backend (memory, SQLite, BullMQ) and the `FailoverQueue` implement, with the
 * same behaviour: at-least-once delivery under leases, bounded capacity, worker liveness, a dead-letter
 * set. `test/queue-suite.ts` is the executable form of this contract; it runs against every backend.
 */
import type { Duration } from '../core/duration.js';
import type { Backoff } from '../policy/backoff.js';
import type { JobState } from './events.js';

/** JSON: what a payload may be (plain objects and arrays of JSON values, finite numbers, strings, booleans, null). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Options of one `add`. */
export interface AddOptions {
  /** Lower runs first: an integer from 0 to 2,097,151. @defaultValue 0 */
  priority?: number;
  /** Wait this long before the job may run. @defaultValue 0 */
  delay?: Duration;
  /** Attempts in all, including the first (a failed attempt is retried until they are spent). @defaultValue 1 */
  attempts?: number;
  /**
   * The waits between attempts, from `bulwark/policy` (e.g. `backoff.exponential({ initial: '1s' })`).
   * Drawn when the job is added (jitter from the queue's seeded stream) and stored with the job.
   * @defaultValue `backoff.exponential()` (100 ms × 2, at most 30 s)
   */
  backoff?: Backoff;
  /**
   * While a job added with this key is still in the queue (waiting, delayed, active or dead), `add` with
   * the same key returns that job instead of adding another. 1 to 200 characters.
   */
  idempotencyKey?: string;
  /**
   * Refuse the job with `NoLiveWorkersError` when no worker heartbeated within the queue's `workerTtl`.
   * @defaultValue the queue's `requireWorkers` option
   */
  requireWorkers?: boolean;
}

/** A job as a handler and `add` see it. */
export interface Job<T = JsonValue> {
  readonly id: string;
  readonly queue: string;
  readonly payload: T;
  /** The attempt this delivery is: 1 for the first. */
  readonly attempt: number;
  readonly attempts: number;
  readonly priority: number;
  /** Clock time the job was added (ms since the epoch). */
  readonly addedAt: number;
  /** The idempotency key it was added with, if any. */
  readonly idempotencyKey?: string;
}

/** A job in the dead-letter set. */
export interface DeadJob<T = JsonValue> extends Job<T> {
  /** `'attempts'` when its attempts ran out, `'stalled'` when its lease expired more than `maxStalled` times. */
  readonly reason: 'attempts' | 'stalled';
  /** The last error, as stored: name, message, and code when the error had one. */
  readonly error: StoredError;
  /** Clock time it was dead-lettered. */
  readonly failedAt: number;
}

/** An error as a queue stores it (errors cross processes as data). */
export interface StoredError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

/** What a handler receives besides the job. */
export interface JobContext {
  /** Aborted when the worker is force-closed: the job will be delivered again elsewhere. */
  readonly signal: AbortSignal;
}

/** Runs one job; a rejection fails the attempt. */
export type JobHandler<T = JsonValue> = (job: Job<T>, ctx: JobContext) => Promise<unknown> | unknown;

export interface ProcessOptions {
  /** Jobs this worker runs at once: an integer from 1 to 10,000. @defaultValue 1 */
  concurrency?: number;
}

/** A worker started by `process`. */
export interface Worker {
  readonly id: string;
  /** Jobs running now. */
  readonly running: number;
  /**
   * Stops taking jobs and waits for the running ones to finish (their outcome is recorded).
   * With `force`, returns at once without recording anything: the running jobs' leases lapse and they are
   * delivered again (what a crash looks like, on purpose).
   */
  close(options?: { force?: boolean }): Promise<void>;
}

/** Counts by state, plus the workers alive (heartbeated within the TTL). `completed` counts since creation. */
export interface QueueStats {
  readonly name: string;
  readonly counts: Readonly<Record<JobState, number>>;
  readonly workers: number;
  readonly healthy: boolean;
}

/** The health a queue reports; `reason` says why it is unhealthy (empty when healthy). */
export interface QueueHealth {
  readonly healthy: boolean;
  readonly reason: string;
}

/** A durable task queue. Every backend and the `FailoverQueue` implement it. */
export interface Queue<T = JsonValue> {
  /** The queue's name: the `source` of its events and the `queue` label of its metrics. */
  readonly name: string;
  /** The backend: `memory`, `sqlite`, `bullmq` or `failover`. */
  readonly backend: string;
  /**
   * Stores a job and resolves with it once it is stored (durably, for durable backends).
   * Rejects with `QueueFullError`, `NoLiveWorkersError`, `QueueUnavailableError` or `QueuePayloadError`,
   * and then nothing was stored.
   */
  add(payload: T, options?: AddOptions): Promise<Job<T>>;
  /** Starts a worker that runs `handler` for each job, up to `concurrency` at once. */
  process(handler: JobHandler<T>, options?: ProcessOptions): Worker;
  stats(): Promise<QueueStats>;
  /** The current health (a cheap check; backends with a watchdog report its last verdict). */
  health(): QueueHealth;
  /** Dead-lettered jobs, oldest first. */
  deadLetters(options?: { limit?: number }): Promise<DeadJob<T>[]>;
  /** Moves dead-lettered jobs (all, or the given ids) back to waiting with fresh attempts; resolves with how many. */
  redrive(ids?: readonly string[]): Promise<number>;
  /** Closes the workers (letting running jobs finish), then the store. Idempotent. */
  close(): Promise<void>;
}
