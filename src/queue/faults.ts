/**
 * Queue faults for the lab: wrappers around a real queue whose `add` is refused on a schedule, as a
 * full queue (`overflow`) or one whose workers are all down (`workerDown`) would refuse it. Decisions
 * come from the runtime's seeded stream (forked per fault), so a seed reproduces every one; everything
 * else — workers, stats, dead letters — is the real queue's.
 */
import { chaosEnabled } from '../chaos/faults.js';
import { isSchedule, type Schedule, type ScheduleState, schedule as schedules } from '../chaos/schedule.js';
import type { Random } from '../core/random.js';
import { type Runtime, systemRuntime } from '../core/runtime.js';
import { invalid, knownKeys, ratioOption } from '../policy/options.js';
import { NoLiveWorkersError, QueueFullError } from './errors.js';
import type { AddOptions, Job, JobHandler, ProcessOptions, Queue, QueueStats, Worker } from './types.js';

export interface QueueFaultOptions {
  /** The probability an `add` is refused (a shorthand for `schedule: schedule.rate(rate)`). */
  rate?: number;
  /** When an `add` is refused (exclusive with `rate`). */
  schedule?: Schedule;
  /** The runtime whose seeded stream decides. @defaultValue the process-wide system runtime */
  runtime?: Runtime;
  /** The fault's name, for its `fault.injected` events and its random stream. @defaultValue the kind */
  name?: string;
}

type QueueFaultKind = 'overflow' | 'workerDown';

class State implements ScheduleState {
  call = 0;
  constructor(
    readonly random: Random,
    private readonly runtime: Runtime,
    private readonly origin: number,
  ) {}
  elapsed(): number {
    return this.runtime.clock.now() - this.origin;
  }
}

/** A queue whose `add` a fault may refuse. Build one with {@link queueFaults}. */
export class FaultyQueue<T> implements Queue<T> {
  readonly name: string;
  readonly backend: string;
  readonly schedule: Schedule;
  readonly enabled: boolean;
  private readonly runtime: Runtime;
  private readonly state: State;
  private readonly faultName: string;

  constructor(
    readonly inner: Queue<T>,
    readonly fault: QueueFaultKind,
    options: QueueFaultOptions | undefined,
  ) {
    const where = `queueFaults.${fault}`;
    if (typeof inner !== 'object' || inner === null || typeof inner.add !== 'function') {
      throw invalid(where, 'queue', inner, 'a Queue');
    }
    knownKeys(where, options, ['rate', 'schedule']);
    const o = options ?? {};
    if (o.rate !== undefined && o.schedule !== undefined) {
      throw new TypeError(`${where}: give "rate" or "schedule", not both`);
    }
    if (o.schedule !== undefined && !isSchedule(o.schedule)) {
      throw invalid(where, 'schedule', o.schedule, 'a schedule (see `schedule`)');
    }
    this.schedule = o.schedule ?? schedules.rate(ratioOption(where, 'rate', o.rate, 1));
    this.faultName = o.name ?? fault;
    if (typeof this.faultName !== 'string' || this.faultName.length === 0) {
      throw invalid(where, 'name', this.faultName, 'a non-empty string');
    }
    this.runtime = o.runtime ?? systemRuntime();
    this.state = new State(
      this.runtime.random.fork(`fault:${this.faultName}:${inner.name}`),
      this.runtime,
      this.runtime.clock.now(),
    );
    this.enabled = chaosEnabled();
    this.name = inner.name;
    this.backend = inner.backend;
  }

  async add(payload: T, options?: AddOptions): Promise<Job<T>> {
    if (this.enabled) {
      this.state.call++;
      if (this.schedule.fires(this.state)) {
        const error =
          this.fault === 'overflow'
            ? new QueueFullError(this.inner.name, Number.NaN)
            : new NoLiveWorkersError(this.inner.name, Number.NaN);
        const events = this.runtime.events;
        const at = this.runtime.clock.now();
        if (events.wants('fault.injected')) {
          events.emit({
            type: 'fault.injected',
            source: this.faultName,
            at,
            fault: `queue.${this.fault}`,
            call: this.state.call,
            code: error.code,
          });
        }
        if (events.wants('queue.rejected')) {
          events.emit({ type: 'queue.rejected', source: this.inner.name, at, reason: error.code });
        }
        throw error;
      }
    }
    return this.inner.add(payload, options);
  }

  process(handler: JobHandler<T>, options?: ProcessOptions): Worker {
    return this.inner.process(handler, options);
  }
  stats(): Promise<QueueStats> {
    return this.inner.stats();
  }
  health() {
    return this.inner.health();
  }
  deadLetters(options?: { limit?: number }) {
    return this.inner.deadLetters(options);
  }
  redrive(ids?: readonly string[]) {
    return this.inner.redrive(ids);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Faults that refuse a queue's `add`, for the lab and chaos tests. Wrap a real queue; nest to combine.
 * Like every fault, off when `BULWARK_CHAOS=off`.
 * @example
 * const primary = queueFaults.overflow(queueFaults.workerDown(new MemoryQueue({ runtime }), { rate: 0.1, runtime }),
 *   { rate: 0.3, runtime });
 */
export const queueFaults = {
  /** Refuses `add` with `QueueFullError` (as a queue at capacity would). */
  overflow<T>(queue: Queue<T>, options?: QueueFaultOptions): FaultyQueue<T> {
    return new FaultyQueue(queue, 'overflow', options);
  },
  /** Refuses `add` with `NoLiveWorkersError` (as a queue whose workers all died would, with `requireWorkers`). */
  workerDown<T>(queue: Queue<T>, options?: QueueFaultOptions): FaultyQueue<T> {
    return new FaultyQueue(queue, 'workerDown', options);
  },
};
