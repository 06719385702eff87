/**
 * `FailoverQueue(primary, fallback)`: jobs go to the primary; when it refuses (full, no live worker) or
 * is unreachable/unhealthy, to the fallback. An unreachable primary is marked down and probed until it
 * answers again, then used again (failback). `add` resolves only once one of the two stored the job, so
 * an accepted job is never dropped; when both refuse, the caller gets the fallback's error.
 */
import type { Timer } from '../core/clock.js';
import type { Duration } from '../core/duration.js';
import { isBulwarkError } from '../core/errors.js';
import { type Runtime, systemRuntime } from '../core/runtime.js';
import { durationOption, invalid, knownKeys } from '../policy/options.js';
import { QueueUnavailableError } from './errors.js';
import type { JobState } from './events.js';
import type {
  AddOptions,
  DeadJob,
  Job,
  JobHandler,
  JsonValue,
  ProcessOptions,
  Queue,
  QueueHealth,
  QueueStats,
  Worker,
} from './types.js';

/** The codes that send a job to the fallback. Any other error (a bad payload, a TypeError) is the caller's. */
const FAILOVER_CODES = ['QUEUE_FULL', 'NO_LIVE_WORKERS', 'QUEUE_UNAVAILABLE'];

export interface FailoverQueueOptions {
  /** The name of the pair, the `source` of its events. @defaultValue `'<primary>|<fallback>'` */
  name?: string;
  /** The runtime its probe timer and events use. @defaultValue the process-wide system runtime */
  runtime?: Runtime;
  /** How often a primary marked down is probed. @defaultValue `'1s'` */
  probeInterval?: Duration;
}

function isQueue(value: unknown): value is Queue<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Queue).add === 'function' &&
    typeof (value as Queue).process === 'function' &&
    typeof (value as Queue).health === 'function'
  );
}

/**
 * A primary queue with a fallback.
 * @example
 * const queue = new FailoverQueue(
 *   new BullmqQueue({ name: 'jobs', connection: 'redis://127.0.0.1:6379' }),
 *   new SqliteQueue({ name: 'jobs', file: 'jobs-fallback.db' }),
 * );
 * queue.process(handle, { concurrency: 20 });   // works both queues
 * await queue.add(payload);                      // Redis, or SQLite while Redis is down
 */
export class FailoverQueue<T = JsonValue> implements Queue<T> {
  readonly name: string;
  readonly backend = 'failover';
  private readonly runtime: Runtime;
  private readonly probeMs: number;
  /** Why the primary is marked down, or undefined while it is used. */
  private down: string | undefined;
  private probeTimer: Timer | undefined;
  private probing = false;
  private closed = false;
  /** Failed over by hand: the automatic probe does not fail back. */
  private held = false;

  constructor(
    readonly primary: Queue<T>,
    readonly fallback: Queue<T>,
    options?: FailoverQueueOptions,
  ) {
    const where = 'FailoverQueue';
    if (!isQueue(primary)) throw invalid(where, 'primary', primary, 'a Queue');
    if (!isQueue(fallback)) throw invalid(where, 'fallback', fallback, 'a Queue');
    if (primary === fallback)
      throw invalid(where, 'fallback', 'the primary', 'a different queue from the primary');
    knownKeys(where, options, ['probeInterval']);
    const name = options?.name ?? `${primary.name}|${fallback.name}`;
    if (typeof name !== 'string' || name.length === 0)
      throw invalid(where, 'name', name, 'a non-empty string');
    this.name = name;
    this.runtime = options?.runtime ?? systemRuntime();
    this.probeMs = durationOption(where, 'probeInterval', options?.probeInterval, 1000, 1);
  }

  /** True while jobs go to the primary. */
  get usingPrimary(): boolean {
    return this.down === undefined;
  }

  async add(payload: T, options?: AddOptions): Promise<Job<T>> {
    if (this.down === undefined) {
      const health = this.primary.health();
      if (!health.healthy) this.markDown(health.reason || 'unhealthy');
    }
    if (this.down !== undefined) {
      this.emitFailover('unhealthy');
      return this.fallback.add(payload, options);
    }
    try {
      return await this.primary.add(payload, options);
    } catch (error) {
      if (!isBulwarkError(error) || !FAILOVER_CODES.includes(error.code)) throw error;
      if (error.code === 'QUEUE_UNAVAILABLE') this.markDown(error.message);
      this.emitFailover(error.code);
      return this.fallback.add(payload, options);
    }
  }

  /**
   * Sends new jobs to the fallback until {@link FailoverQueue.failback} — by hand or as a healing action
   * (maintenance of the primary, a primary that is up but misbehaving). Automatic failback waits too.
   */
  async failover(reason = 'manual'): Promise<void> {
    if (this.closed) return;
    this.held = true;
    if (this.down === undefined) {
      this.markDown(reason);
      this.emitFailover(reason);
    }
  }

  /**
   * Sends new jobs to the primary again, now: checks it (health and a stats round trip) and throws when it
   * is not back yet (the automatic probe then keeps trying).
   */
  async failback(): Promise<void> {
    this.held = false;
    if (this.down === undefined || this.closed) return;
    this.probeTimer?.cancel();
    await this.probe();
    if (this.down !== undefined) {
      throw new QueueUnavailableError(this.primary.name, `the primary is not back yet (${this.down})`);
    }
  }

  private emitFailover(reason: string): void {
    const events = this.runtime.events;
    if (events.wants('queue.failover')) {
      events.emit({
        type: 'queue.failover',
        source: this.name,
        at: this.runtime.clock.now(),
        from: this.primary.name,
        to: this.fallback.name,
        reason,
      });
    }
  }

  private markDown(reason: string): void {
    if (this.down !== undefined || this.closed) return;
    this.down = reason;
    const events = this.runtime.events;
    if (events.wants('queue.health')) {
      events.emit({
        type: 'queue.health',
        source: this.name,
        at: this.runtime.clock.now(),
        healthy: false,
        reason,
      });
    }
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    this.probeTimer = this.runtime.clock.setTimer(this.probeMs, () => void this.probe(), undefined);
  }

  /** Fails back when the primary reports healthy and answers a stats round trip. */
  private async probe(): Promise<void> {
    if (this.closed || this.probing || this.down === undefined || this.held) return;
    this.probing = true;
    let recovered = false;
    try {
      if (this.primary.health().healthy) {
        await this.primary.stats();
        recovered = true;
      }
    } catch {
      recovered = false;
    } finally {
      this.probing = false;
    }
    if (this.closed) return;
    if (!recovered) {
      this.scheduleProbe();
      return;
    }
    this.down = undefined;
    const events = this.runtime.events;
    const at = this.runtime.clock.now();
    if (events.wants('queue.health')) {
      events.emit({ type: 'queue.health', source: this.name, at, healthy: true, reason: '' });
    }
    if (events.wants('queue.failback')) {
      events.emit({
        type: 'queue.failback',
        source: this.name,
        at,
        from: this.fallback.name,
        to: this.primary.name,
      });
    }
  }

  /** Works both queues: jobs that went to the fallback are run too. */
  process(handler: JobHandler<T>, options?: ProcessOptions): Worker {
    const primary = this.primary.process(handler, options);
    let fallback: Worker;
    try {
      fallback = this.fallback.process(handler, options);
    } catch (error) {
      void primary.close();
      throw error;
    }
    return {
      id: `${primary.id}+${fallback.id}`,
      get running() {
        return primary.running + fallback.running;
      },
      async close(closeOptions) {
        await Promise.all([primary.close(closeOptions), fallback.close(closeOptions)]);
      },
    };
  }

  /** The two queues' counts summed; a queue that cannot answer counts as empty and makes the pair unhealthy. */
  async stats(): Promise<QueueStats> {
    const [primary, fallback] = await Promise.allSettled([this.primary.stats(), this.fallback.stats()]);
    if (primary.status === 'rejected' && fallback.status === 'rejected') throw fallback.reason;
    const parts = [primary, fallback].flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const counts: Record<JobState, number> = { waiting: 0, delayed: 0, active: 0, completed: 0, dead: 0 };
    let workers = 0;
    for (const part of parts) {
      for (const state of Object.keys(counts) as JobState[]) counts[state] += part.counts[state];
      workers += part.workers;
    }
    return { name: this.name, counts, workers, healthy: parts.length === 2 && parts.every((p) => p.healthy) };
  }

  health(): QueueHealth {
    const primary = this.primary.health();
    const fallback = this.fallback.health();
    if (primary.healthy || fallback.healthy) {
      return { healthy: true, reason: primary.healthy ? '' : `primary: ${primary.reason}` };
    }
    return { healthy: false, reason: `primary: ${primary.reason}; fallback: ${fallback.reason}` };
  }

  /** Both queues' dead letters (a job's `queue` says which one holds it). */
  async deadLetters(options?: { limit?: number }): Promise<DeadJob<T>[]> {
    const results = await Promise.allSettled([
      this.primary.deadLetters(options),
      this.fallback.deadLetters(options),
    ]);
    return results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  }

  /** Redrives in both queues (ids are per queue: pass ids to `primary.redrive` or `fallback.redrive` to aim). */
  async redrive(ids?: readonly string[]): Promise<number> {
    const results = await Promise.allSettled([this.primary.redrive(ids), this.fallback.redrive(ids)]);
    return results.reduce((sum, r) => sum + (r.status === 'fulfilled' ? r.value : 0), 0);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.probeTimer?.cancel();
    await Promise.all([this.primary.close(), this.fallback.close()]);
  }
}
