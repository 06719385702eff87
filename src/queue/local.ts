/**
 * A queue over a synchronous {@link JobStore} (memory, SQLite): the worker loop, leases and heartbeats,
 * stalled-job recovery, events. A worker settles finished jobs and claims new ones in one store step
 * (one transaction), batched: with 50 jobs finishing in the same tick, that is one transaction, not 100.
 */
import type { Timer } from '../core/clock.js';
import type { Random } from '../core/random.js';
import type { Runtime } from '../core/runtime.js';
import { intOption, invalid, knownKeys } from '../policy/options.js';
import { NoLiveWorkersError, QueueFullError, QueueUnavailableError } from './errors.js';
import { emitJobEvent, emitWorkerEvents, type JobOutcome } from './events.js';
import { type PreparedJob, prepareJob, type ResolvedQueueOptions, revive, storeError } from './job.js';
import type { DeadRecord, InsertLimits, InsertResult, JobStore, Outcome, StoredJob } from './store.js';
import type {
  AddOptions,
  DeadJob,
  Job,
  JobContext,
  JobHandler,
  JsonValue,
  ProcessOptions,
  Queue,
  QueueHealth,
  QueueStats,
  Worker,
} from './types.js';

/** How a local queue schedules its batched store step. */
export type BatchMode = 'microtask' | 'immediate';

export interface LocalQueueSettings {
  backend: string;
  /** How often an idle worker looks for jobs added by other processes (Infinity: only this process adds). */
  pollMs: number;
  batch: BatchMode;
}

let instanceCounter = 0;

/** The base of the memory and SQLite queues. */
export class LocalQueue<T = JsonValue> implements Queue<T> {
  readonly name: string;
  readonly backend: string;
  /** @internal */
  readonly options: ResolvedQueueOptions;
  /** @internal */
  readonly runtime: Runtime;
  private readonly random: Random;
  private readonly workers = new Set<LocalWorker<T>>();
  private closed = false;
  private started = 0;
  private pendingAdds: PendingAdd[] = [];
  private closing: Promise<void> | undefined;
  /** An id prefix unique to this process and queue object, so worker ids never collide across processes. */
  private readonly instance: string;

  protected constructor(
    options: ResolvedQueueOptions,
    /** @internal */ readonly store: JobStore,
    /** @internal */ readonly settings: LocalQueueSettings,
  ) {
    this.options = options;
    this.name = options.name;
    this.backend = settings.backend;
    this.runtime = options.runtime;
    this.random = options.runtime.random.fork(`queue:${options.name}`);
    this.instance = `${process.pid}.${(++instanceCounter).toString(36)}`;
  }

  async add(payload: T, options?: AddOptions): Promise<Job<T>> {
    const prepared = prepareJob(this.name, payload, options, this.options, this.random);
    if (this.closed) throw new QueueUnavailableError(this.name, 'the queue is closed');
    const now = this.runtime.clock.now();
    const limits = {
      capacity: this.options.capacity,
      workersSince: prepared.requireWorkers ? now - this.options.workerTtlMs : undefined,
    };
    let result: InsertResult;
    if (this.settings.batch === 'immediate') {
      result = await new Promise<InsertResult>((resolve, reject) => {
        this.pendingAdds.push({ job: prepared, limits, resolve, reject });
        if (this.pendingAdds.length === 1) setImmediate(this.flushAdds);
      });
    } else {
      try {
        result = this.store.insert(prepared, now, limits);
      } catch (error) {
        throw this.rejected(new QueueUnavailableError(this.name, describe(error), { cause: error }));
      }
    }
    if (result.status === 'full') throw this.rejected(new QueueFullError(this.name, this.options.capacity));
    if (result.status === 'no-workers') {
      throw this.rejected(new NoLiveWorkersError(this.name, this.options.workerTtlMs));
    }
    const job = this.toJob(result.job, result.job.attempt + 1);
    if (result.status === 'created') {
      this.jobEvent('added', job.id, 0);
      this.depthChanged();
      for (const worker of this.workers) worker.wake();
    }
    return job;
  }

  /**
   * Group commit: the adds made in one turn of the event loop are stored in one transaction (each still
   * checked against capacity in order), so 50 concurrent producers cost one fsync-free commit, not 50.
   */
  private readonly flushAdds = () => {
    const batch = this.pendingAdds;
    this.pendingAdds = [];
    if (batch.length === 0) return;
    let results: InsertResult[];
    try {
      results = this.store.insertMany(batch, this.runtime.clock.now());
    } catch (error) {
      for (const add of batch) {
        add.reject(this.rejected(new QueueUnavailableError(this.name, describe(error), { cause: error })));
      }
      return;
    }
    for (let i = 0; i < batch.length; i++) (batch[i] as PendingAdd).resolve(results[i] as InsertResult);
  };

  process(handler: JobHandler<T>, options?: ProcessOptions): Worker {
    const where = `queue ${this.name}: process`;
    if (typeof handler !== 'function') throw invalid(where, 'handler', handler, 'a function');
    knownKeys(where, options, ['concurrency']);
    const concurrency = intOption(where, 'concurrency', options?.concurrency, 1, 1, 10_000);
    if (this.closed) throw new QueueUnavailableError(this.name, 'the queue is closed');
    const worker = new LocalWorker<T>(this, `${this.instance}.${++this.started}`, handler, concurrency);
    this.workers.add(worker);
    worker.start();
    return worker;
  }

  async stats(): Promise<QueueStats> {
    if (this.closed) throw new QueueUnavailableError(this.name, 'the queue is closed');
    const now = this.runtime.clock.now();
    return {
      name: this.name,
      counts: this.store.counts(now),
      workers: this.store.liveWorkers(now - this.options.workerTtlMs),
      healthy: true,
    };
  }

  health(): QueueHealth {
    return this.closed ? { healthy: false, reason: 'closed' } : { healthy: true, reason: '' };
  }

  async deadLetters(options?: { limit?: number }): Promise<DeadJob<T>[]> {
    knownKeys(`queue ${this.name}: deadLetters`, options, ['limit']);
    const limit = intOption(`queue ${this.name}: deadLetters`, 'limit', options?.limit, 1000, 1);
    if (this.closed) throw new QueueUnavailableError(this.name, 'the queue is closed');
    return this.store.deadLetters(limit).map((record) => this.toDeadJob(record));
  }

  async redrive(ids?: readonly string[]): Promise<number> {
    if (ids !== undefined && (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string'))) {
      throw invalid(`queue ${this.name}: redrive`, 'ids', ids, 'an array of job ids');
    }
    if (this.closed) throw new QueueUnavailableError(this.name, 'the queue is closed');
    const moved = this.store.redrive(ids, this.runtime.clock.now());
    for (const id of moved) this.jobEvent('redriven', id, 0);
    if (moved.length > 0) {
      this.depthChanged();
      for (const worker of this.workers) worker.wake();
    }
    return moved.length;
  }

  close(): Promise<void> {
    if (this.closing === undefined) {
      this.closing = (async () => {
        await Promise.all([...this.workers].map((worker) => worker.close()));
        this.closed = true;
        // Adds already accepted into the current batch are stored before the store closes.
        this.flushAdds();
        this.store.close();
      })();
    }
    return this.closing;
  }

  /** @internal */
  forget(worker: LocalWorker<T>): void {
    this.workers.delete(worker);
  }

  /** @internal Puts back expired leases; wakes this process's workers when some came back. */
  recover(): void {
    const now = this.runtime.clock.now();
    const { stalled, dead } = this.store.recoverStalled(now, this.options.maxStalled);
    for (const job of stalled) this.jobEvent('stalled', job.id, job.attempt);
    for (const job of dead) {
      this.jobEvent('stalled', job.id, job.attempt);
      this.jobEvent('dead', job.id, job.attempt, undefined, STALLED_ERROR);
    }
    const lost = this.store.reapWorkers(now - this.options.workerTtlMs);
    emitWorkerEvents(this.runtime, this.name, 'lost', lost, now);
    if (stalled.length + dead.length > 0) {
      this.depthChanged();
      for (const worker of this.workers) worker.wake();
    }
  }

  /** @internal */
  toJob(stored: StoredJob, attempt: number): Job<T> {
    const job: {
      id: string;
      queue: string;
      payload: T;
      attempt: number;
      attempts: number;
      priority: number;
      addedAt: number;
      idempotencyKey?: string;
    } = {
      id: stored.id,
      queue: this.name,
      payload: JSON.parse(stored.json) as T,
      attempt,
      attempts: stored.attempts,
      priority: stored.priority,
      addedAt: stored.addedAt,
    };
    if (stored.key !== undefined) job.idempotencyKey = stored.key;
    return job;
  }

  private toDeadJob(record: DeadRecord): DeadJob<T> {
    return {
      ...this.toJob(record, record.attempt),
      reason: record.reason,
      error: record.error,
      failedAt: record.failedAt,
    };
  }

  /** @internal */
  jobEvent(
    outcome: JobOutcome,
    jobId: string,
    attempt: number,
    durationMs?: number,
    error?: { name: string; message: string; code?: string },
  ): void {
    emitJobEvent(
      this.runtime,
      this.name,
      outcome,
      jobId,
      attempt,
      durationMs,
      error === undefined ? undefined : revive(error),
    );
  }

  /** @internal */
  depthChanged(): void {
    const events = this.runtime.events;
    if (!events.wants('queue.depth') || this.closed) return;
    const now = this.runtime.clock.now();
    events.emit({ type: 'queue.depth', source: this.name, at: now, depth: this.store.counts(now) });
  }

  private rejected(error: QueueFullError | NoLiveWorkersError | QueueUnavailableError): Error {
    const events = this.runtime.events;
    if (events.wants('queue.rejected')) {
      events.emit({
        type: 'queue.rejected',
        source: this.name,
        at: this.runtime.clock.now(),
        reason: error.code,
      });
    }
    return error;
  }
}

interface PendingAdd {
  job: PreparedJob;
  limits: InsertLimits;
  resolve: (result: InsertResult) => void;
  reject: (error: unknown) => void;
}

/** How long a worker waits before trying a failed store step again. */
const STORE_RETRY_MS = 100;

const STALLED_ERROR = {
  name: 'StalledError',
  message: 'the lease expired more times than maxStalled allows',
};

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A job's context; its `AbortSignal` is created only when a handler reads it (it costs ~10–30 µs). */
class Context implements JobContext {
  private controller: AbortController | undefined;
  private aborted = false;
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(new Error('the worker was force-closed'));
    }
    return this.controller.signal;
  }
  abort(): void {
    this.aborted = true;
    this.controller?.abort(new Error('the worker was force-closed'));
  }
}

interface Running {
  job: StoredJob;
  context: Context;
}

class LocalWorker<T> implements Worker {
  private active = 0;
  private readonly inFlight = new Set<Running>();
  private pending: Outcome[] = [];
  private scheduled = false;
  private wakeTimer: Timer | undefined;
  private wakeAt = Number.POSITIVE_INFINITY;
  private heartbeatTimer: Timer | undefined;
  private state: 'running' | 'closing' | 'closed' = 'running';
  private drained: (() => void) | undefined;
  private closePromise: Promise<void> | undefined;
  private readonly runCycle = () => {
    this.scheduled = false;
    this.cycle();
  };
  private readonly beat = () => this.heartbeat();

  constructor(
    private readonly queue: LocalQueue<T>,
    readonly id: string,
    private readonly handler: JobHandler<T>,
    private readonly concurrency: number,
  ) {}

  get running(): number {
    return this.active;
  }

  start(): void {
    const { clock } = this.queue.runtime;
    const now = clock.now();
    this.queue.store.heartbeat(this.id, now, now + this.queue.options.leaseMs);
    emitWorkerEvents(this.queue.runtime, this.queue.name, 'started', [this.id], now);
    this.heartbeatTimer = clock.setTimer(this.queue.options.heartbeatMs, this.beat, undefined);
    this.wake();
  }

  /** Schedules a store step soon (coalesced). */
  wake(): void {
    if (this.scheduled || this.state === 'closed') return;
    this.scheduled = true;
    if (this.queue.settings.batch === 'microtask') queueMicrotask(this.runCycle);
    else setImmediate(this.runCycle);
  }

  private heartbeat(): void {
    if (this.state === 'closed') return;
    const { clock } = this.queue.runtime;
    const now = clock.now();
    try {
      this.queue.store.heartbeat(this.id, now, now + this.queue.options.leaseMs);
      this.queue.recover();
    } catch (error) {
      // The store is busy or gone for a moment: the next heartbeat tries again (leases are 3 beats long).
      reportLater(error);
    }
    this.heartbeatTimer = clock.setTimer(this.queue.options.heartbeatMs, this.beat, undefined);
  }

  private cycle(): void {
    if (this.state === 'closed') return;
    const outcomes = this.pending;
    this.pending = [];
    const free = this.state === 'running' ? this.concurrency - this.active : 0;
    if (outcomes.length === 0 && free === 0) {
      this.checkDrained();
      return;
    }
    const { clock } = this.queue.runtime;
    const now = clock.now();
    let result: { applied: boolean[]; claimed: StoredJob[] };
    try {
      result = this.queue.store.cycle(this.id, outcomes, free, now, now + this.queue.options.leaseMs);
    } catch (error) {
      // Keep the outcomes: they are written on the next step (a job may then run twice, never zero times).
      this.pending = outcomes.concat(this.pending);
      reportLater(error);
      this.armWake(now, STORE_RETRY_MS);
      return;
    }
    for (let i = 0; i < outcomes.length; i++) {
      if (result.applied[i] !== true) continue;
      const outcome = outcomes[i] as Outcome;
      if (outcome.kind === 'completed') {
        this.queue.jobEvent('completed', outcome.id, outcome.attempt, outcome.durationMs);
      } else if (outcome.kind === 'retry') {
        this.queue.jobEvent('failed', outcome.id, outcome.attempt, outcome.durationMs, outcome.error);
      } else {
        this.queue.jobEvent('failed', outcome.id, outcome.attempt, outcome.durationMs, outcome.error);
        this.queue.jobEvent('dead', outcome.id, outcome.attempt, undefined, outcome.error);
      }
    }
    for (const job of result.claimed) this.run(job, now);
    if (outcomes.length > 0 || result.claimed.length > 0) this.queue.depthChanged();
    if (result.claimed.length < free) {
      const due = this.queue.store.nextDueAt();
      const poll = this.queue.settings.pollMs;
      const wait = Math.min(due === undefined ? Number.POSITIVE_INFINITY : Math.max(0, due - now), poll);
      if (wait !== Number.POSITIVE_INFINITY) this.armWake(now, wait);
    }
    this.checkDrained();
  }

  private armWake(now: number, wait: number): void {
    const at = now + wait;
    if (this.wakeTimer !== undefined && this.wakeAt <= at) return;
    this.wakeTimer?.cancel();
    this.wakeAt = at;
    this.wakeTimer = this.queue.runtime.clock.setTimer(
      wait,
      () => {
        this.wakeTimer = undefined;
        this.wakeAt = Number.POSITIVE_INFINITY;
        this.wake();
      },
      undefined,
    );
  }

  private run(job: StoredJob, startedAt: number): void {
    this.active++;
    const context = new Context();
    const running: Running = { job, context };
    this.inFlight.add(running);
    let result: unknown;
    try {
      result = this.handler(this.queue.toJob(job, job.attempt), context);
    } catch (error) {
      this.settle(running, startedAt, false, error);
      return;
    }
    if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') {
      (result as PromiseLike<unknown>).then(
        () => this.settle(running, startedAt, true, undefined),
        (error: unknown) => this.settle(running, startedAt, false, error),
      );
    } else {
      this.settle(running, startedAt, true, undefined);
    }
  }

  private settle(running: Running, startedAt: number, ok: boolean, error: unknown): void {
    // A force-closed worker records nothing: the job's lease lapses and it runs again elsewhere.
    if (!this.inFlight.delete(running)) return;
    this.active--;
    const job = running.job;
    const now = this.queue.runtime.clock.now();
    const durationMs = now - startedAt;
    const base = { id: job.id, token: job.token, attempt: job.attempt, durationMs };
    if (ok) this.pending.push({ kind: 'completed', ...base });
    else if (job.attempt < job.attempts) {
      const delay = job.delays[job.attempt - 1] ?? 0;
      this.pending.push({ kind: 'retry', ...base, runAt: now + delay, error: storeError(error) });
    } else this.pending.push({ kind: 'dead', ...base, error: storeError(error) });
    this.wake();
  }

  private checkDrained(): void {
    if (this.state !== 'closing' || this.active > 0 || this.pending.length > 0) return;
    this.finish(true);
  }

  private finish(graceful: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.heartbeatTimer?.cancel();
    this.wakeTimer?.cancel();
    this.queue.forget(this);
    if (graceful) {
      try {
        this.queue.store.removeWorker(this.id);
      } catch (error) {
        reportLater(error);
      }
      emitWorkerEvents(this.queue.runtime, this.queue.name, 'stopped', [this.id]);
    }
    this.drained?.();
  }

  close(options?: { force?: boolean }): Promise<void> {
    knownKeys(`worker ${this.id}: close`, options, ['force']);
    if (options?.force === true && this.state !== 'closed') {
      for (const running of this.inFlight) running.context.abort();
      this.inFlight.clear();
      this.active = 0;
      this.pending = [];
      this.finish(false);
      return Promise.resolve();
    }
    if (this.closePromise === undefined) {
      this.closePromise = new Promise<void>((resolve) => {
        if (this.state === 'closed') return resolve();
        this.drained = resolve;
        this.state = 'closing';
        this.wake();
      });
    }
    return this.closePromise;
  }
}

function reportLater(error: unknown): void {
  process.emitWarning(`bulwark queue: ${describe(error)}`);
}
