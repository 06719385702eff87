/**
 * The Redis backend, through BullMQ (bullmq and ioredis are optional peer dependencies, imported the
 * first time a `BullmqQueue` connects). BullMQ does the leasing (locks renewed by the worker), stalled
 * recovery, retries and the failed set; this adapter adds what the contract needs on top:
 *
 * - capacity and `requireWorkers`, checked and reserved in one Lua script (Redis runs scripts
 *   atomically): concurrent `add`s from any number of processes never overshoot;
 * - a worker registry (a sorted set of heartbeat times, on Redis's clock);
 * - a watchdog: connection errors, a heartbeat round trip every `watchdogInterval`, and `add` timeouts
 *   mark the queue unhealthy, and `add` then fails fast with `QueueUnavailableError` instead of hanging.
 */
import type { Job as BullJob, Queue as BullQueue, Worker as BullWorker, JobsOptions } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';
import type { Timer } from '../core/clock.js';
import type { Duration } from '../core/duration.js';
import { durationOption, intOption, invalid, knownKeys } from '../policy/options.js';
import { NoLiveWorkersError, QueueFullError, QueueUnavailableError } from './errors.js';
import { emitJobEvent, emitWorkerEvents, type JobOutcome, type JobState } from './events.js';
import {
  prepareJob,
  type QueueOptions,
  type ResolvedQueueOptions,
  resolveQueueOptions,
  revive,
} from './job.js';
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
  StoredError,
  Worker,
} from './types.js';

/** Options of {@link BullmqQueue}. */
export interface BullmqQueueOptions extends QueueOptions {
  /** A `redis://` URL or ioredis options. @defaultValue `'redis://127.0.0.1:6379'` */
  connection?: string | RedisOptions;
  /** The prefix of every Redis key of the queue. @defaultValue `'bulwark'` */
  prefix?: string;
  /** An `add` that Redis has not acknowledged after this long fails with `QueueUnavailableError`. @defaultValue `'2s'` */
  addTimeout?: Duration;
  /** How often the watchdog round-trips to Redis (and how long it waits for the answer). @defaultValue `'1s'` */
  watchdogInterval?: Duration;
}

/** What is stored as a BullMQ job's data. */
interface Data {
  /** The payload. */
  p: JsonValue;
  /** Backoff delays per retry (absent for a single attempt). */
  d?: number[];
  /** Idempotency key. */
  k?: string;
}

type Modules = { bullmq: typeof import('bullmq'); Redis: typeof import('ioredis').Redis };

/** A connected queue: its Redis client, its BullMQ queue, and the loaded modules. */
interface Connected extends Modules {
  redis: Redis;
  queue: BullQueue;
}

let modules: Promise<Modules> | undefined;

function loadModules(): Promise<Modules> {
  if (modules === undefined) {
    modules = (async () => {
      const [bullmq, ioredis] = await Promise.all([import('bullmq'), import('ioredis')]);
      return { bullmq, Redis: ioredis.Redis };
    })();
    modules.catch(() => {
      modules = undefined;
    });
  }
  return modules;
}

/**
 * KEYS: wait active delayed prioritized paused waiting-children reservations workers id-counter.
 * ARGV: capacity (-1: none), worker TTL ms (-1: not required), job id ('' to allocate), job key prefix,
 * reservation lifetime ms. Returns {status, id}: 0 reserved, 1 exists, 2 full, 3 no live worker.
 * A reservation counts a job between this script and BullMQ's own add script; the adder drops it once
 * BullMQ has the job, the script drops it when it sees the job's hash (a job counted in its list), and
 * it expires after its lifetime (an adder that crashed in between).
 */
const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local id = ARGV[3]
local prefix = ARGV[4]
if id ~= '' and redis.call('EXISTS', prefix .. id) == 1 then return {1, id} end
if ttl >= 0 and redis.call('ZCOUNT', KEYS[8], now - ttl, '+inf') == 0 then return {3, ''} end
if cap >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - tonumber(ARGV[5]))
  local n = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
    + redis.call('ZCARD', KEYS[4]) + redis.call('LLEN', KEYS[5]) + redis.call('ZCARD', KEYS[6])
  for _, r in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
    if redis.call('EXISTS', prefix .. r) == 1 then redis.call('ZREM', KEYS[7], r) else n = n + 1 end
  end
  if n >= cap then return {2, ''} end
end
if id == '' then id = 'j' .. redis.call('INCR', KEYS[9]) end
if cap >= 0 then redis.call('ZADD', KEYS[7], now, id) end
return {0, id}
`;

/** KEYS: workers. ARGV: worker id ('' for none), TTL ms. Records a beat; returns the live count. */
const BEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], now, ARGV[1]) end
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[2]), '+inf')
`;

/** KEYS: workers. ARGV: TTL ms. Removes workers silent for 10 TTLs; returns their ids. */
const REAP = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lost = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
if #lost > 0 then redis.call('ZREM', KEYS[1], unpack(lost)) end
return lost
`;

const RESERVATION_LIFETIME_MS = 60_000;
/** How long a graceful worker close waits for Redis before dropping the connection. */
const CLOSE_BOUND_MS = 5000;
/** Reasons that only say the connection is not up, not why. */
const ECHOES = /^(connection (closed|reconnecting|connecting|close|end|wait)|Connection is closed\.?)$/;
const STALLED_REASON = 'job stalled more than allowable limit';
const BULL_NAME = 'job';

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function connectionOptions(where: string, connection: unknown): RedisOptions {
  if (connection === undefined) return { host: '127.0.0.1', port: 6379 };
  if (typeof connection === 'string') {
    let url: URL;
    try {
      url = new URL(connection);
    } catch {
      throw invalid(where, 'connection', connection, 'a redis:// URL or ioredis options');
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw invalid(where, 'connection', connection, 'a redis:// URL or ioredis options');
    }
    const options: RedisOptions = { host: url.hostname || '127.0.0.1', port: Number(url.port || 6379) };
    if (url.password !== '') options.password = decodeURIComponent(url.password);
    if (url.username !== '') options.username = decodeURIComponent(url.username);
    const db = url.pathname.replace(/^\//, '');
    if (db !== '') options.db = Number(db);
    if (url.protocol === 'rediss:') options.tls = {};
    return options;
  }
  if (typeof connection === 'object' && connection !== null) return { ...(connection as RedisOptions) };
  throw invalid(where, 'connection', connection, 'a redis:// URL or ioredis options');
}

/** A job's context; its `AbortSignal` is created only when a handler reads it (it costs ~10–30 µs). */
class Context implements JobContext {
  private controller: AbortController | undefined;
  private reason: unknown;
  private aborted = false;
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/**
 * A queue on Redis through BullMQ: for several machines sharing one queue.
 * @example
 * const queue = new BullmqQueue({ name: 'emails', connection: 'redis://127.0.0.1:6379', capacity: 100_000 });
 * queue.process(async (job) => send(job.payload), { concurrency: 50 });
 * await queue.add({ to: 'ada@example.com' }, { attempts: 3 });
 */
export class BullmqQueue<T = JsonValue> implements Queue<T> {
  readonly name: string;
  readonly backend = 'bullmq';
  /** The prefix of the queue's Redis keys. */
  readonly prefix: string;
  private readonly options: ResolvedQueueOptions;
  private readonly redisOptions: RedisOptions;
  private readonly addTimeoutMs: number;
  private readonly watchdogMs: number;
  private readonly random;
  private state: { healthy: boolean; reason: string } = { healthy: false, reason: 'connecting' };
  private readonly ready: Promise<Connected>;
  private redis: Redis | undefined;
  private bullQueue: BullQueue | undefined;
  private watchdogTimer: Timer | undefined;
  private readonly workers = new Set<BullmqWorker<T>>();
  private closing: Promise<void> | undefined;
  private closed = false;
  private lastDepth = '';
  private readonly keys: {
    reservations: string;
    workers: string;
    ids: string;
    completed: string;
    heartbeat: string;
  };

  constructor(options?: BullmqQueueOptions) {
    const where = 'BullmqQueue';
    this.options = resolveQueueOptions(where, options, [
      'connection',
      'prefix',
      'addTimeout',
      'watchdogInterval',
    ]);
    this.name = this.options.name;
    const prefix = options?.prefix ?? 'bulwark';
    if (typeof prefix !== 'string' || !/^[A-Za-z0-9._:-]{1,100}$/.test(prefix)) {
      throw invalid(
        where,
        'prefix',
        prefix,
        'a key prefix of 1 to 100 letters, digits, ".", "_", "-" or ":"',
      );
    }
    this.prefix = prefix;
    this.redisOptions = connectionOptions(where, options?.connection);
    this.addTimeoutMs = durationOption(where, 'addTimeout', options?.addTimeout, 2000, 1);
    this.watchdogMs = durationOption(where, 'watchdogInterval', options?.watchdogInterval, 1000, 10);
    this.random = this.options.runtime.random.fork(`queue:${this.name}`);
    const base = `${prefix}:${this.name}:bulwark`;
    this.keys = {
      reservations: `${base}:reservations`,
      workers: `${base}:workers`,
      ids: `${base}:ids`,
      completed: `${base}:completed`,
      heartbeat: `${base}:watchdog`,
    };
    this.ready = this.connect();
    // A failed first connection is reported through health() and each call; never an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  private async connect(): Promise<Connected> {
    let loaded: Modules;
    try {
      loaded = await loadModules();
    } catch (error) {
      this.setHealth(false, `bullmq/ioredis cannot be loaded: ${describe(error)}`);
      throw new QueueUnavailableError(this.name, 'bullmq and ioredis must be installed to use BullmqQueue', {
        cause: error,
      });
    }
    const redis = new loaded.Redis({
      ...(this.redisOptions as object),
      // Fail fast while disconnected: the watchdog and FailoverQueue handle the outage.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: Math.max(1000, this.addTimeoutMs),
      retryStrategy: (times: number) => Math.min(50 * times, 1000),
      lazyConnect: true,
    } as RedisOptions as never);
    redis.on('error', (error: unknown) => this.setHealth(false, describe(error)));
    redis.on('close', () => this.setHealth(false, 'connection closed'));
    redis.on('ready', () => void this.watch());
    redis.defineCommand('bulwarkReserve', { numberOfKeys: 9, lua: RESERVE });
    redis.defineCommand('bulwarkBeat', { numberOfKeys: 1, lua: BEAT });
    redis.defineCommand('bulwarkReap', { numberOfKeys: 1, lua: REAP });
    this.redis = redis;
    this.armWatchdog();
    try {
      await redis.connect();
    } catch (error) {
      // ioredis keeps reconnecting; the watchdog notices when Redis is back.
      this.setHealth(false, describe(error));
    }
    const queue = new loaded.bullmq.Queue(this.name, { connection: redis, prefix: this.prefix });
    queue.on('error', (error: unknown) => this.setHealth(false, describe(error)));
    this.bullQueue = queue;
    return { redis, queue, bullmq: loaded.bullmq, Redis: loaded.Redis };
  }

  private armWatchdog(): void {
    if (this.closed) return;
    this.watchdogTimer = this.options.runtime.clock.setTimer(
      this.watchdogMs,
      () => {
        void this.watch().finally(() => this.armWatchdog());
      },
      undefined,
    );
  }

  /**
   * One watchdog round trip: a heartbeat key written within the interval. When depth is monitored, the
   * counts are read too and a `queue.depth` event emitted when they changed (BullMQ's changes happen in
   * Redis, possibly in other processes: polling is the only way to see them).
   */
  private async watch(): Promise<void> {
    const redis = this.redis;
    if (redis === undefined || this.closed) return;
    if (redis.status !== 'ready') {
      this.setHealth(false, `connection ${redis.status}`);
      return;
    }
    try {
      await this.withTimeout(
        redis.set(this.keys.heartbeat, String(this.options.runtime.clock.now()), 'PX', this.watchdogMs * 10),
        this.watchdogMs,
        'watchdog heartbeat',
      );
      this.setHealth(true, '');
    } catch (error) {
      this.setHealth(false, describe(error));
      return;
    }
    const { events, clock } = this.options.runtime;
    if (!events.wants('queue.depth')) return;
    try {
      const { counts } = await this.stats();
      const key = JSON.stringify(counts);
      if (key === this.lastDepth) return;
      this.lastDepth = key;
      events.emit({ type: 'queue.depth', source: this.name, at: clock.now(), depth: counts });
    } catch {
      // The next round trip tells.
    }
  }

  private setHealth(healthy: boolean, reason: string): void {
    if (this.state.healthy === healthy && (healthy || this.state.reason === reason)) return;
    // While down, the first real cause (ECONNREFUSED…) says more than the echoes that follow it.
    if (!healthy && !this.state.healthy && this.state.reason !== 'connecting' && ECHOES.test(reason)) return;
    const changed = this.state.healthy !== healthy;
    this.state = { healthy, reason };
    const { events, clock } = this.options.runtime;
    if (changed && events.wants('queue.health')) {
      events.emit({ type: 'queue.health', source: this.name, at: clock.now(), healthy, reason });
    }
  }

  private withTimeout<R>(promise: Promise<R>, ms: number, what: string): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      // A timer queue: one Node timer for all in-flight calls, not one per call (this is every add's path).
      const timer = this.options.runtime.clock
        .timerQueue(ms)
        .setTimer(
          () => reject(new QueueUnavailableError(this.name, `${what} timed out after ${ms}ms`)),
          undefined,
        );
      promise.then(
        (value) => {
          timer.cancel();
          resolve(value);
        },
        (error: unknown) => {
          timer.cancel();
          reject(error);
        },
      );
    });
  }

  /** Runs `step` against Redis, turning an outage into `QueueUnavailableError` (and an unhealthy queue). */
  private async call<R>(
    what: string,
    step: (ready: Awaited<BullmqQueue['ready']>) => Promise<R>,
  ): Promise<R> {
    if (this.closed) throw new QueueUnavailableError(this.name, 'the queue is closed');
    let ready: Awaited<BullmqQueue['ready']>;
    try {
      ready = await this.ready;
    } catch (error) {
      throw isUnavailable(error)
        ? error
        : new QueueUnavailableError(this.name, describe(error), { cause: error });
    }
    if (ready.redis.status !== 'ready') {
      const reason =
        this.state.healthy || this.state.reason === ''
          ? `connection ${ready.redis.status}`
          : this.state.reason;
      this.setHealth(false, reason);
      throw new QueueUnavailableError(this.name, reason);
    }
    try {
      return await this.withTimeout(step(ready), this.addTimeoutMs, what);
    } catch (error) {
      if (isUnavailable(error)) {
        this.setHealth(false, describe(error));
        throw error;
      }
      if (isRedisError(error)) {
        this.setHealth(false, describe(error));
        throw new QueueUnavailableError(this.name, describe(error), { cause: error });
      }
      throw error;
    }
  }

  async add(payload: T, options?: AddOptions): Promise<Job<T>> {
    const prepared = prepareJob(this.name, payload, options, this.options, this.random);
    const capacity = this.options.capacity;
    const reserve = capacity !== Number.POSITIVE_INFINITY || prepared.requireWorkers;
    const keyId =
      prepared.idempotencyKey === undefined
        ? undefined
        : `k-${Buffer.from(prepared.idempotencyKey).toString('base64url')}`;
    let job: BullJob;
    try {
      job = await this.call('add', async ({ redis, queue }) => {
        let jobId = keyId;
        if (reserve) {
          const k = queue.keys;
          const [status, id] = (await (redis as unknown as Reservable).bulwarkReserve(
            k.wait as string,
            k.active as string,
            k.delayed as string,
            k.prioritized as string,
            k.paused as string,
            k['waiting-children'] as string,
            this.keys.reservations,
            this.keys.workers,
            this.keys.ids,
            capacity === Number.POSITIVE_INFINITY ? -1 : capacity,
            prepared.requireWorkers ? this.options.workerTtlMs : -1,
            keyId ?? '',
            queue.toKey(''),
            RESERVATION_LIFETIME_MS,
          )) as [number, string];
          if (status === 2) throw new QueueFullError(this.name, capacity);
          if (status === 3) throw new NoLiveWorkersError(this.name, this.options.workerTtlMs);
          jobId = id;
        }
        // Only what differs from BullMQ's defaults is stored: every byte is per job, in Redis.
        const opts: JobsOptions = { removeOnComplete: true };
        const data: Data = { p: JSON.parse(prepared.json) as JsonValue };
        if (prepared.attempts > 1) {
          opts.attempts = prepared.attempts;
          opts.backoff = { type: 'bulwark' };
          data.d = prepared.delays;
        }
        if (jobId !== undefined) opts.jobId = jobId;
        if (prepared.priority > 0) opts.priority = prepared.priority;
        if (prepared.delayMs > 0) opts.delay = prepared.delayMs;
        if (prepared.idempotencyKey !== undefined) data.k = prepared.idempotencyKey;
        const added = await queue.add(BULL_NAME, data, opts);
        // The job is in BullMQ's lists now, counted there: the reservation has done its work.
        if (reserve && capacity !== Number.POSITIVE_INFINITY)
          await redis.zrem(this.keys.reservations, String(added.id));
        return added;
      });
    } catch (error) {
      if (error instanceof QueueFullError || error instanceof NoLiveWorkersError || isUnavailable(error)) {
        throw this.rejected(error as Error & { code: string });
      }
      throw error;
    }
    const result = this.toJob(job);
    this.jobEvent('added', result.id, 0);
    return result;
  }

  private rejected<E extends Error & { code: string }>(error: E): E {
    const { events, clock } = this.options.runtime;
    if (events.wants('queue.rejected')) {
      events.emit({ type: 'queue.rejected', source: this.name, at: clock.now(), reason: error.code });
    }
    return error;
  }

  /** @internal */
  toJob(
    job: BullJob | { id?: string; data: unknown; attemptsMade: number; opts: JobsOptions; timestamp: number },
    attempt = job.attemptsMade + 1,
  ): Job<T> {
    const data = job.data as Data;
    const result: {
      id: string;
      queue: string;
      payload: T;
      attempt: number;
      attempts: number;
      priority: number;
      addedAt: number;
      idempotencyKey?: string;
    } = {
      id: String(job.id),
      queue: this.name,
      payload: data.p as T,
      attempt,
      attempts: job.opts.attempts ?? 1,
      priority: job.opts.priority ?? 0,
      addedAt: job.timestamp,
    };
    if (data.k !== undefined) result.idempotencyKey = data.k;
    return result;
  }

  /** @internal */
  jobEvent(outcome: JobOutcome, jobId: string, attempt: number, durationMs?: number, error?: unknown): void {
    emitJobEvent(this.options.runtime, this.name, outcome, jobId, attempt, durationMs, error);
  }

  process(handler: JobHandler<T>, options?: ProcessOptions): Worker {
    const where = `queue ${this.name}: process`;
    if (typeof handler !== 'function') throw invalid(where, 'handler', handler, 'a function');
    knownKeys(where, options, ['concurrency']);
    const concurrency = intOption(where, 'concurrency', options?.concurrency, 1, 1, 10_000);
    if (this.closed) throw new QueueUnavailableError(this.name, 'the queue is closed');
    const worker = new BullmqWorker<T>(this, handler, concurrency);
    this.workers.add(worker);
    void worker.start();
    return worker;
  }

  /** @internal What a worker needs from its queue. */
  get internals() {
    return {
      options: this.options,
      redisOptions: this.redisOptions,
      keys: this.keys,
      ready: this.ready,
      forget: (worker: BullmqWorker<T>) => this.workers.delete(worker),
    };
  }

  async stats(): Promise<QueueStats> {
    return this.call('stats', async ({ redis, queue }) => {
      const [counts, completed, workers] = await Promise.all([
        queue.getJobCounts('wait', 'prioritized', 'waiting-children', 'active', 'delayed', 'failed'),
        redis.get(this.keys.completed),
        (redis as unknown as Reservable).bulwarkBeat(this.keys.workers, '', this.options.workerTtlMs),
      ]);
      const n = (key: string) => counts[key] ?? 0;
      const depth: Record<JobState, number> = {
        waiting: n('wait') + n('prioritized') + n('waiting-children'),
        delayed: n('delayed'),
        active: n('active'),
        completed: Number(completed ?? 0) + this.unflushedCompletions(),
        dead: n('failed'),
      };
      return { name: this.name, counts: depth, workers: Number(workers), healthy: this.state.healthy };
    });
  }

  private unflushedCompletions(): number {
    let n = 0;
    for (const worker of this.workers) n += worker.unflushed;
    return n;
  }

  health(): QueueHealth {
    if (this.closed) return { healthy: false, reason: 'closed' };
    return { healthy: this.state.healthy, reason: this.state.reason };
  }

  async deadLetters(options?: { limit?: number }): Promise<DeadJob<T>[]> {
    knownKeys(`queue ${this.name}: deadLetters`, options, ['limit']);
    const limit = intOption(`queue ${this.name}: deadLetters`, 'limit', options?.limit, 1000, 1);
    const jobs = await this.call('deadLetters', ({ queue }) => queue.getJobs(['failed'], 0, limit - 1, true));
    return jobs.map((job) => {
      const stalled = job.failedReason === STALLED_REASON;
      const stack = job.stacktrace?.[job.stacktrace.length - 1];
      const error: StoredError = {
        name: stalled ? 'StalledError' : 'Error',
        message: job.failedReason ?? '',
      };
      if (typeof stack === 'string') error.stack = stack;
      return {
        ...this.toJob(job as unknown as BullJob, job.attemptsMade),
        reason: stalled ? 'stalled' : 'attempts',
        error,
        failedAt: job.finishedOn ?? 0,
      };
    });
  }

  async redrive(ids?: readonly string[]): Promise<number> {
    if (ids !== undefined && (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string'))) {
      throw invalid(`queue ${this.name}: redrive`, 'ids', ids, 'an array of job ids');
    }
    const moved = await this.call('redrive', async ({ queue }) => {
      const jobs =
        ids === undefined
          ? await queue.getJobs(['failed'], 0, -1, true)
          : (await Promise.all(ids.map((id) => queue.getJob(id)))).filter((j) => j !== undefined);
      const done: string[] = [];
      for (const job of jobs) {
        try {
          await (job as unknown as BullJob).retry('failed', {
            resetAttemptsMade: true,
            resetAttemptsStarted: true,
          });
          done.push(String(job.id));
        } catch {
          // Not in the failed set (any more): nothing to redrive.
        }
      }
      return done;
    });
    for (const id of moved) this.jobEvent('redriven', id, 0);
    return moved.length;
  }

  close(): Promise<void> {
    if (this.closing === undefined) {
      this.closing = (async () => {
        await Promise.all([...this.workers].map((worker) => worker.close()));
        this.closed = true;
        this.watchdogTimer?.cancel();
        const queue = this.bullQueue;
        const redis = this.redis;
        if (queue !== undefined) {
          await this.withTimeout(queue.close(), 2000, 'close').catch(() => undefined);
        }
        redis?.disconnect();
      })();
    }
    return this.closing;
  }
}

interface Reservable {
  bulwarkReserve(...args: (string | number)[]): Promise<unknown>;
  bulwarkBeat(key: string, workerId: string, ttlMs: number): Promise<number>;
  bulwarkReap(key: string, ttlMs: number): Promise<string[]>;
}

function isUnavailable(error: unknown): error is QueueUnavailableError {
  return error instanceof QueueUnavailableError;
}

/** Errors from the connection (not from our logic): ioredis's, and Node's network errors. */
function isRedisError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return (
    error.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT/.test(
      error.message,
    ) ||
    (typeof code === 'string' && code.startsWith('E'))
  );
}

let workerCounter = 0;

class BullmqWorker<T> implements Worker {
  readonly id: string;
  private bullWorker: BullWorker | undefined;
  private beatRedis: Redis | undefined;
  private beatTimer: Timer | undefined;
  private active = 0;
  /** Completions not yet added to the queue's completed counter (flushed with each heartbeat). */
  unflushed = 0;
  private stopped = false;
  private started: Promise<void> | undefined;
  private readonly contexts = new Set<Context>();
  /** The worker's connections (its own and the blocking one BullMQ duplicates from it), to drop at close. */
  private readonly connections: Redis[] = [];

  constructor(
    private readonly queue: BullmqQueue<T>,
    private readonly handler: JobHandler<T>,
    private readonly concurrency: number,
  ) {
    this.id = `${process.pid}.${(++workerCounter).toString(36)}`;
  }

  get running(): number {
    return this.active;
  }

  start(): Promise<void> {
    this.started = this.boot().catch((error: unknown) => {
      process.emitWarning(
        `bulwark queue ${this.queue.name}: worker ${this.id} failed to start: ${describe(error)}`,
      );
    });
    return this.started;
  }

  /**
   * A connection this worker owns, including the duplicates BullMQ makes from it: with Redis down,
   * BullMQ's own disconnect waits for a connection that never comes, while ioredis's is immediate.
   */
  private ownConnection(RedisClient: Modules['Redis'], options: RedisOptions): Redis {
    const track = (client: Redis): Redis => {
      client.on('error', () => undefined); // the queue's watchdog reports outages
      this.connections.push(client);
      const duplicate = client.duplicate.bind(client);
      client.duplicate = ((override?: Partial<RedisOptions>) =>
        track(duplicate(override))) as Redis['duplicate'];
      return client;
    };
    return track(
      new RedisClient({
        ...(options as object),
        maxRetriesPerRequest: null,
        retryStrategy: (times: number) => Math.min(50 * times, 1000),
      } as RedisOptions as never),
    );
  }

  private dropConnections(): void {
    for (const client of this.connections) client.disconnect();
  }

  private async boot(): Promise<void> {
    const { options, redisOptions, keys } = this.queue.internals;
    const { bullmq, redis, Redis: RedisClient } = await this.queue.internals.ready;
    if (this.stopped) return;
    this.beatRedis = redis;
    const delaysOf = (job: unknown): number[] =>
      ((job as { data?: Data } | undefined)?.data?.d ?? []) as number[];
    const worker = new bullmq.Worker(
      this.queue.name,
      async (job: BullJob) => {
        this.active++;
        const context = new Context();
        this.contexts.add(context);
        try {
          return await this.handler(this.queue.toJob(job), context);
        } finally {
          this.contexts.delete(context);
          this.active--;
        }
      },
      {
        connection: this.ownConnection(RedisClient, redisOptions) as never,
        prefix: this.queue.prefix,
        concurrency: this.concurrency,
        lockDuration: options.leaseMs,
        stalledInterval: options.leaseMs,
        maxStalledCount: options.maxStalled,
        removeOnComplete: { count: 0 },
        removeOnFail: { count: Number.MAX_SAFE_INTEGER },
        settings: {
          backoffStrategy: (attemptsMade: number, _type?: string, _err?: Error, job?: unknown) =>
            delaysOf(job)[attemptsMade - 1] ?? 0,
        },
      },
    );
    this.bullWorker = worker;
    worker.on('error', () => {
      // Connection trouble: BullMQ reconnects by itself; the queue's watchdog reports the outage.
    });
    worker.on('completed', (job: BullJob) => {
      this.unflushed++;
      this.queue.jobEvent('completed', String(job.id), job.attemptsMade + 1, durationOf(job));
    });
    worker.on('failed', (job: BullJob | undefined, error: Error) => {
      if (job === undefined) return;
      const attempts = job.opts.attempts ?? 1;
      const stalled = error.message === STALLED_REASON;
      if (!stalled) this.queue.jobEvent('failed', String(job.id), job.attemptsMade, durationOf(job), error);
      if (stalled || job.attemptsMade >= attempts) {
        this.queue.jobEvent(
          'dead',
          String(job.id),
          Math.max(1, job.attemptsMade),
          undefined,
          stalled ? revive({ name: 'StalledError', message: STALLED_REASON }) : error,
        );
      }
    });
    worker.on('stalled', (jobId: string) => this.queue.jobEvent('stalled', jobId, 0));
    emitWorkerEvents(options.runtime, this.queue.name, 'started', [this.id]);
    await this.beat(keys);
  }

  private async beat(keys: { workers: string; completed: string }): Promise<void> {
    if (this.stopped) return;
    const redis = this.beatRedis;
    const { options } = this.queue.internals;
    if (redis !== undefined && redis.status === 'ready') {
      try {
        await (redis as unknown as Reservable).bulwarkBeat(keys.workers, this.id, options.workerTtlMs);
        await this.flush(keys);
        const lost = await (redis as unknown as Reservable).bulwarkReap(
          keys.workers,
          options.workerTtlMs * 10,
        );
        emitWorkerEvents(options.runtime, this.queue.name, 'lost', lost);
      } catch {
        // Redis is down: the next beat tries again.
      }
    }
    if (this.stopped) return;
    this.beatTimer = options.runtime.clock.setTimer(
      options.heartbeatMs,
      () => void this.beat(keys),
      undefined,
    );
  }

  private async flush(keys: { completed: string }): Promise<void> {
    const n = this.unflushed;
    if (n === 0 || this.beatRedis === undefined) return;
    this.unflushed -= n;
    try {
      await this.beatRedis.incrby(keys.completed, n);
    } catch (error) {
      this.unflushed += n;
      throw error;
    }
  }

  async close(options?: { force?: boolean }): Promise<void> {
    knownKeys(`worker ${this.id}: close`, options, ['force']);
    if (this.stopped) return;
    this.stopped = true;
    this.beatTimer?.cancel();
    await this.started;
    const worker = this.bullWorker;
    const force = options?.force === true;
    const { keys, options: queueOptions } = this.queue.internals;
    if (force) for (const context of this.contexts) context.abort(new Error('the worker was force-closed'));
    if (worker !== undefined) {
      if (force) {
        // A crash, on purpose: drop the connections without releasing the jobs in hand; their locks lapse.
        void worker.close(true).catch(() => undefined);
        this.dropConnections();
      } else {
        // BullMQ's close waits for Redis to acknowledge the running jobs; with Redis down that is never.
        // Wait for the handlers to finish, give Redis a bounded while, then drop the connections.
        const clock = queueOptions.runtime.clock;
        const closed = await Promise.race([
          worker.close().then(
            () => true,
            () => false,
          ),
          clock.sleep(this.queue.health().healthy ? CLOSE_BOUND_MS : 0).then(() => false),
        ]);
        if (!closed) {
          while (this.active > 0) await clock.sleep(10);
          // Stops BullMQ's loops (which would otherwise keep retrying, and the process alive).
          void worker.close(true).catch(() => undefined);
        }
        this.dropConnections();
      }
    }
    if (!force) {
      try {
        await this.flush(keys);
        await this.beatRedis?.zrem(keys.workers, this.id);
      } catch {
        // Redis is down: the registry forgets this worker after its TTL.
      }
      emitWorkerEvents(queueOptions.runtime, this.queue.name, 'stopped', [this.id]);
    }
    this.queue.internals.forget(this);
  }
}

function durationOf(job: BullJob): number | undefined {
  return job.finishedOn !== undefined && job.processedOn !== undefined
    ? job.finishedOn - job.processedOn
    : undefined;
}
