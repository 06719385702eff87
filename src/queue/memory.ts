/**
 * The in-memory backend: for tests and the lab. Same behaviour as the durable backends (leases,
 * capacity, liveness, dead letters), nothing survives the process. Payloads are stored as JSON text, so
 * a handler never sees the caller's object and a payload that would not survive SQLite or Redis is
 * refused here too.
 */
import type { JobState } from './events.js';
import { Heap } from './heap.js';
import { type PreparedJob, type QueueOptions, resolveQueueOptions } from './job.js';
import { LocalQueue } from './local.js';
import type {
  DeadRecord,
  InsertLimits,
  InsertResult,
  JobStore,
  Outcome,
  Recovered,
  StoredJob,
} from './store.js';
import type { JsonValue, StoredError } from './types.js';

interface MemoryJob extends StoredJob {
  state: 'waiting' | 'active' | 'dead';
  runAt: number;
  seq: number;
  made: number;
  stalls: number;
  worker: string | undefined;
  leaseUntil: number;
  error: StoredError | undefined;
  reason: 'attempts' | 'stalled' | undefined;
  failedAt: number;
}

const byPriority = (a: MemoryJob, b: MemoryJob): boolean =>
  a.priority < b.priority ||
  (a.priority === b.priority && (a.runAt < b.runAt || (a.runAt === b.runAt && a.seq < b.seq)));
const byDue = (a: MemoryJob, b: MemoryJob): boolean =>
  a.runAt < b.runAt || (a.runAt === b.runAt && a.seq < b.seq);

const STALLED: StoredError = {
  name: 'StalledError',
  message: 'the lease expired more times than maxStalled allows',
};

/** @internal The memory store. */
export class MemoryStore implements JobStore {
  private readonly jobs = new Map<string, MemoryJob>();
  private readonly keys = new Map<string, string>();
  private readonly ready = new Heap<MemoryJob>(byPriority);
  private readonly delayed = new Heap<MemoryJob>(byDue);
  private readonly active = new Set<MemoryJob>();
  private readonly dead = new Map<string, MemoryJob>();
  private readonly workers = new Map<string, number>();
  private seq = 0;
  private completed = 0;
  private tokens = 0;

  insert(prepared: PreparedJob, now: number, limits: InsertLimits): InsertResult {
    if (prepared.idempotencyKey !== undefined) {
      const existing = this.keys.get(prepared.idempotencyKey);
      if (existing !== undefined) return { status: 'existing', job: this.jobs.get(existing) as MemoryJob };
    }
    if (this.ready.size + this.delayed.size + this.active.size >= limits.capacity) return { status: 'full' };
    if (limits.workersSince !== undefined && this.liveWorkers(limits.workersSince) === 0) {
      return { status: 'no-workers' };
    }
    const seq = ++this.seq;
    const job: MemoryJob = {
      id: String(seq),
      json: prepared.json,
      priority: prepared.priority,
      attempt: 0,
      attempts: prepared.attempts,
      delays: prepared.delays,
      addedAt: now,
      key: prepared.idempotencyKey,
      token: 0,
      state: 'waiting',
      runAt: now + prepared.delayMs,
      seq,
      made: 0,
      stalls: 0,
      worker: undefined,
      leaseUntil: 0,
      error: undefined,
      reason: undefined,
      failedAt: 0,
    };
    this.jobs.set(job.id, job);
    if (job.key !== undefined) this.keys.set(job.key, job.id);
    this.enqueue(job, now);
    return { status: 'created', job };
  }

  insertMany(batch: readonly { job: PreparedJob; limits: InsertLimits }[], now: number): InsertResult[] {
    return batch.map(({ job, limits }) => this.insert(job, now, limits));
  }

  private enqueue(job: MemoryJob, now: number): void {
    job.state = 'waiting';
    job.worker = undefined;
    if (job.runAt > now) this.delayed.push(job);
    else this.ready.push(job);
  }

  private promote(now: number): void {
    for (
      let next = this.delayed.peek();
      next !== undefined && next.runAt <= now;
      next = this.delayed.peek()
    ) {
      this.ready.push(this.delayed.pop() as MemoryJob);
    }
  }

  cycle(
    workerId: string,
    outcomes: readonly Outcome[],
    max: number,
    now: number,
    leaseUntil: number,
  ): { applied: boolean[]; claimed: StoredJob[] } {
    const applied = outcomes.map((outcome) => this.apply(outcome, now));
    const claimed: StoredJob[] = [];
    if (max > 0) {
      this.promote(now);
      while (claimed.length < max) {
        const job = this.ready.pop();
        if (job === undefined) break;
        job.state = 'active';
        job.worker = workerId;
        job.leaseUntil = leaseUntil;
        job.token = ++this.tokens;
        this.active.add(job);
        claimed.push({ ...job, attempt: job.made + 1 });
      }
    }
    return { applied, claimed };
  }

  private apply(outcome: Outcome, now: number): boolean {
    const job = this.jobs.get(outcome.id);
    if (job === undefined || job.state !== 'active' || job.token !== outcome.token) return false;
    this.active.delete(job);
    if (outcome.kind === 'completed') {
      this.jobs.delete(job.id);
      if (job.key !== undefined) this.keys.delete(job.key);
      this.completed++;
    } else if (outcome.kind === 'retry') {
      job.made++;
      job.error = outcome.error;
      job.runAt = outcome.runAt;
      this.enqueue(job, now);
    } else {
      job.made++;
      this.bury(job, 'attempts', outcome.error, now);
    }
    return true;
  }

  private bury(job: MemoryJob, reason: 'attempts' | 'stalled', error: StoredError, now: number): void {
    job.state = 'dead';
    job.worker = undefined;
    job.reason = reason;
    job.error = error;
    job.failedAt = now;
    this.dead.set(job.id, job);
  }

  recoverStalled(now: number, maxStalled: number): Recovered {
    const recovered: Recovered = { stalled: [], dead: [] };
    for (const job of this.active) {
      if (job.leaseUntil >= now) continue;
      this.active.delete(job);
      job.stalls++;
      const entry = { id: job.id, attempt: job.made + 1 };
      if (job.stalls > maxStalled) {
        this.bury(job, 'stalled', STALLED, now);
        recovered.dead.push(entry);
      } else {
        this.enqueue(job, now);
        recovered.stalled.push(entry);
      }
    }
    return recovered;
  }

  heartbeat(workerId: string, now: number, leaseUntil: number): void {
    this.workers.set(workerId, now);
    for (const job of this.active) if (job.worker === workerId) job.leaseUntil = leaseUntil;
  }

  removeWorker(workerId: string): void {
    this.workers.delete(workerId);
  }

  reapWorkers(since: number): string[] {
    const lost: string[] = [];
    for (const [id, at] of this.workers) {
      if (at < since) {
        this.workers.delete(id);
        lost.push(id);
      }
    }
    return lost;
  }

  liveWorkers(since: number): number {
    let live = 0;
    for (const at of this.workers.values()) if (at >= since) live++;
    return live;
  }

  counts(now: number): Record<JobState, number> {
    this.promote(now);
    return {
      waiting: this.ready.size,
      delayed: this.delayed.size,
      active: this.active.size,
      completed: this.completed,
      dead: this.dead.size,
    };
  }

  deadLetters(limit: number): DeadRecord[] {
    const records: DeadRecord[] = [];
    for (const job of this.dead.values()) {
      if (records.length >= limit) break;
      records.push({
        ...job,
        attempt: job.made,
        reason: job.reason ?? 'attempts',
        error: job.error ?? STALLED,
        failedAt: job.failedAt,
      });
    }
    return records;
  }

  redrive(ids: readonly string[] | undefined, now: number): string[] {
    const moved: string[] = [];
    for (const id of ids ?? [...this.dead.keys()]) {
      const job = this.dead.get(id);
      if (job === undefined) continue;
      this.dead.delete(id);
      job.made = 0;
      job.stalls = 0;
      job.error = undefined;
      job.reason = undefined;
      job.runAt = now;
      this.enqueue(job, now);
      moved.push(id);
    }
    return moved;
  }

  nextDueAt(): number | undefined {
    if (this.ready.size > 0) return this.ready.peek()?.runAt;
    return this.delayed.peek()?.runAt;
  }

  close(): void {}
}

/** Options of {@link MemoryQueue}: the common queue options. */
export type MemoryQueueOptions = QueueOptions;

/**
 * A queue held in memory: for tests and the lab (on a virtual clock, leases and delays take no real time).
 * @example
 * const queue = new MemoryQueue({ name: 'emails', capacity: 1000, runtime: virtualRuntime(1) });
 * queue.process(async (job) => send(job.payload), { concurrency: 10 });
 * await queue.add({ to: 'ada@example.com' }, { attempts: 3 });
 */
export class MemoryQueue<T = JsonValue> extends LocalQueue<T> {
  constructor(options?: MemoryQueueOptions) {
    super(resolveQueueOptions('MemoryQueue', options, []), new MemoryStore(), {
      backend: 'memory',
      pollMs: Number.POSITIVE_INFINITY,
      batch: 'microtask',
    });
  }
}
