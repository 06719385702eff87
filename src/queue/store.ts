/**
 * The synchronous store under a local queue (memory or SQLite). Each method is one atomic step — one
 * transaction on SQLite — so the invariants hold across processes: a job is leased to one worker at a
 * time, capacity is checked and the job inserted in the same step, a settled outcome applies only if the
 * worker still holds the lease it was given.
 */
import type { JobState } from './events.js';
import type { PreparedJob } from './job.js';
import type { StoredError } from './types.js';

/** A job as a store returns it. */
export interface StoredJob {
  id: string;
  json: string;
  priority: number;
  /** On a claim: the attempt this delivery is (1 for the first). Otherwise attempts made so far. */
  attempt: number;
  attempts: number;
  delays: number[];
  addedAt: number;
  key: string | undefined;
  /** The lease token of a claim: a settle applies only with the token of the current lease. */
  token: number;
}

export interface DeadRecord extends StoredJob {
  reason: 'attempts' | 'stalled';
  error: StoredError;
  failedAt: number;
}

/** What a worker reports for a job it ran. */
export type Outcome =
  | { kind: 'completed'; id: string; token: number; attempt: number; durationMs: number }
  | {
      kind: 'retry';
      id: string;
      token: number;
      attempt: number;
      durationMs: number;
      runAt: number;
      error: StoredError;
    }
  | { kind: 'dead'; id: string; token: number; attempt: number; durationMs: number; error: StoredError };

/** The limits `insert` checks atomically with the insertion. */
export interface InsertLimits {
  capacity: number;
  /** When set, at least one worker must have heartbeated at or after this time. */
  workersSince: number | undefined;
}

export type InsertResult =
  | { status: 'created' | 'existing'; job: StoredJob }
  | { status: 'full' }
  | { status: 'no-workers' };

/** Jobs whose lease expired: put back (`stalled`) or dead-lettered (`dead`). */
export interface Recovered {
  stalled: { id: string; attempt: number }[];
  dead: { id: string; attempt: number }[];
}

export interface JobStore {
  insert(job: PreparedJob, now: number, limits: InsertLimits): InsertResult;
  /** Several inserts in one atomic step, checked in order (what a burst of concurrent adds becomes). */
  insertMany(batch: readonly { job: PreparedJob; limits: InsertLimits }[], now: number): InsertResult[];
  /**
   * Applies `outcomes` (those whose lease is still current; `applied[i]` says which), then leases up to
   * `max` due jobs to `workerId` until `leaseUntil`, highest priority (lowest number) first, then oldest.
   */
  cycle(
    workerId: string,
    outcomes: readonly Outcome[],
    max: number,
    now: number,
    leaseUntil: number,
  ): { applied: boolean[]; claimed: StoredJob[] };
  /** Puts back (or dead-letters, after `maxStalled` stalls) the jobs whose lease ended before `now`. */
  recoverStalled(now: number, maxStalled: number): Recovered;
  /** Records that `workerId` is alive and extends the leases it holds to `leaseUntil`. */
  heartbeat(workerId: string, now: number, leaseUntil: number): void;
  removeWorker(workerId: string): void;
  /** Forgets workers silent since before `since`; returns their ids. */
  reapWorkers(since: number): string[];
  liveWorkers(since: number): number;
  counts(now: number): Record<JobState, number>;
  deadLetters(limit: number): DeadRecord[];
  /** Moves dead jobs back to waiting with fresh attempts; returns the ids moved. */
  redrive(ids: readonly string[] | undefined, now: number): string[];
  /** The earliest time a waiting job becomes due, if any is waiting. */
  nextDueAt(): number | undefined;
  close(): void;
}
