/**
 * What every backend shares before a job reaches its store: the queue options, the validation of a
 * payload (plain JSON only, checked before anything is written) and of `add`'s options, the backoff
 * delays drawn at `add`, and errors turned into data.
 */
import type { Duration } from '../core/duration.js';
import type { Random } from '../core/random.js';
import { type Runtime, systemRuntime } from '../core/runtime.js';
import { type Backoff, backoff as backoffs } from '../policy/backoff.js';
import { durationOption, intOption, invalid, knownKeys } from '../policy/options.js';
import { QueuePayloadError } from './errors.js';
import type { AddOptions, StoredError } from './types.js';

/** Options every backend takes. */
export interface QueueOptions {
  /** The queue's name: letters, digits, `.`, `_`, `-`, `:`; 1 to 100 characters. @defaultValue `'default'` */
  name?: string;
  /** Clock, random stream and event sink. @defaultValue the process-wide system runtime */
  runtime?: Runtime;
  /** The most unfinished jobs (waiting, delayed, active) the queue holds; `add` beyond it throws `QueueFullError`. @defaultValue Infinity */
  capacity?: number;
  /** How long a delivered job stays leased to its worker without a heartbeat before it is put back. @defaultValue `'30s'` */
  lease?: Duration;
  /** How many times a job's lease may expire before it is dead-lettered instead of put back. @defaultValue 1 */
  maxStalled?: number;
  /** A worker that has not heartbeated for this long is not alive (for `requireWorkers`). @defaultValue `'30s'` */
  workerTtl?: Duration;
  /** Refuse `add` with `NoLiveWorkersError` when no worker is alive (overridable per `add`). @defaultValue false */
  requireWorkers?: boolean;
}

export const QUEUE_OPTION_KEYS = ['capacity', 'lease', 'maxStalled', 'workerTtl', 'requireWorkers'] as const;

/** Validated common options. */
export interface ResolvedQueueOptions {
  name: string;
  runtime: Runtime;
  capacity: number;
  leaseMs: number;
  heartbeatMs: number;
  maxStalled: number;
  workerTtlMs: number;
  requireWorkers: boolean;
}

const NAME = /^[A-Za-z0-9._:-]{1,100}$/;
export const MAX_PRIORITY = 2_097_151;
const MAX_ATTEMPTS = 1000;

/** Validates the common options (`where` names the constructor in messages). */
export function resolveQueueOptions(
  where: string,
  options: QueueOptions | undefined,
  extraKeys: readonly string[],
): ResolvedQueueOptions {
  knownKeys(where, options, [...QUEUE_OPTION_KEYS, ...extraKeys]);
  const o = options ?? {};
  const name = o.name ?? 'default';
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw invalid(where, 'name', name, 'a name of 1 to 100 letters, digits, ".", "_", "-" or ":"');
  }
  const runtime = o.runtime ?? systemRuntime();
  if (typeof runtime !== 'object' || runtime === null || typeof runtime.clock?.now !== 'function') {
    throw invalid(where, 'runtime', runtime, 'a Runtime (createRuntime(), virtualRuntime())');
  }
  const capacity = intOption(where, 'capacity', o.capacity, Number.POSITIVE_INFINITY, 1);
  const leaseMs = durationOption(where, 'lease', o.lease, 30_000, 30);
  const maxStalled = intOption(where, 'maxStalled', o.maxStalled, 1, 0, 1000);
  const workerTtlMs = durationOption(where, 'workerTtl', o.workerTtl, 30_000, 30);
  const requireWorkers = o.requireWorkers ?? false;
  if (typeof requireWorkers !== 'boolean')
    throw invalid(where, 'requireWorkers', requireWorkers, 'a boolean');
  return {
    name,
    runtime,
    capacity,
    leaseMs,
    // Three heartbeats per lease: one lost or late heartbeat does not cost the lease.
    heartbeatMs: Math.max(10, Math.floor(leaseMs / 3)),
    maxStalled,
    workerTtlMs,
    requireWorkers,
  };
}

/** A validated `add`: the payload as JSON text and the options resolved. */
export interface PreparedJob {
  json: string;
  priority: number;
  delayMs: number;
  attempts: number;
  /** The wait before attempt `i + 2`, for each retry. */
  delays: number[];
  idempotencyKey: string | undefined;
  requireWorkers: boolean;
}

const ADD_KEYS = ['priority', 'delay', 'attempts', 'backoff', 'idempotencyKey', 'requireWorkers'];
const DEFAULT_BACKOFF = backoffs.exponential();

/**
 * Validates `payload` and `options` of an `add`. Throws `QueuePayloadError` for a payload that is not plain
 * JSON and `TypeError` for bad options, before anything is stored.
 */
export function prepareJob(
  queue: string,
  payload: unknown,
  options: AddOptions | undefined,
  defaults: { requireWorkers: boolean },
  random: Random,
): PreparedJob {
  const where = `queue ${queue}: add`;
  knownKeys(where, options, ADD_KEYS);
  const o = options ?? {};
  const priority = intOption(where, 'priority', o.priority, 0, 0, MAX_PRIORITY);
  const delayMs = durationOption(where, 'delay', o.delay, 0);
  const attempts = intOption(where, 'attempts', o.attempts, 1, 1, MAX_ATTEMPTS);
  const schedule = o.backoff ?? DEFAULT_BACKOFF;
  if (typeof schedule !== 'object' || schedule === null || typeof schedule.next !== 'function') {
    throw invalid(where, 'backoff', schedule, 'a backoff from bulwark/policy (backoff.exponential(), …)');
  }
  const key = o.idempotencyKey;
  if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > 200)) {
    throw invalid(where, 'idempotencyKey', key, 'a string of 1 to 200 characters');
  }
  const requireWorkers = o.requireWorkers ?? defaults.requireWorkers;
  if (typeof requireWorkers !== 'boolean')
    throw invalid(where, 'requireWorkers', requireWorkers, 'a boolean');
  const json = toJson(queue, payload);
  const delays: number[] = [];
  let step: Backoff = schedule;
  for (let i = 1; i < attempts; i++) {
    step = step.next(random);
    delays.push(Math.max(0, Math.round(step.delay)));
  }
  return { json, priority, delayMs, attempts, delays, idempotencyKey: key, requireWorkers };
}

/**
 * The payload as JSON text, or `QueuePayloadError` naming where it is not plain JSON. `JSON.stringify`
 * alone would store `undefined` fields as nothing, `NaN` as `null` and a `Date` as a string: a job would
 * come back different from what was added.
 */
export function toJson(queue: string, payload: unknown): string {
  checkJson(queue, payload, 'payload', new Set());
  return JSON.stringify(payload);
}

function checkJson(queue: string, value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new QueuePayloadError(queue, path, `is ${value}`);
      return;
    case 'object': {
      if (value === null) return;
      if (seen.has(value)) throw new QueuePayloadError(queue, path, 'is a cycle');
      const proto = Object.getPrototypeOf(value);
      if (Array.isArray(value)) {
        seen.add(value);
        for (let i = 0; i < value.length; i++) {
          if (!(i in value)) throw new QueuePayloadError(queue, `${path}[${i}]`, 'is a hole');
          checkJson(queue, value[i], `${path}[${i}]`, seen);
        }
        seen.delete(value);
        return;
      }
      if (proto !== Object.prototype && proto !== null) {
        const kind = (value as object).constructor?.name ?? 'object';
        throw new QueuePayloadError(queue, path, `is a ${kind}`);
      }
      if (Object.getOwnPropertySymbols(value).length > 0) {
        throw new QueuePayloadError(queue, path, 'has symbol keys');
      }
      seen.add(value);
      for (const key of Object.keys(value)) {
        const descriptor = Object.getOwnPropertyDescriptor(value, key);
        if (descriptor?.get !== undefined)
          throw new QueuePayloadError(queue, `${path}.${key}`, 'is a getter');
        checkJson(queue, (value as Record<string, unknown>)[key], `${path}.${key}`, seen);
      }
      seen.delete(value);
      return;
    }
    default:
      throw new QueuePayloadError(
        queue,
        path,
        `is ${value === undefined ? 'undefined' : `a ${typeof value}`}`,
      );
  }
}

/** An error as data: what crosses processes and survives restarts. */
export function storeError(error: unknown): StoredError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const stored: StoredError = { name: error.name, message: error.message };
    if (typeof code === 'string') stored.code = code;
    if (typeof error.stack === 'string') stored.stack = error.stack.slice(0, 4000);
    return stored;
  }
  let message: string;
  try {
    message = typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error));
  } catch {
    message = String(error);
  }
  return { name: 'NonError', message };
}

/** A Node error carrying a stored error's fields, for `queue.job` events of another process's failures. */
export function revive(stored: StoredError): Error {
  const error = new Error(stored.message);
  error.name = stored.name;
  if (stored.code !== undefined) (error as Error & { code?: string }).code = stored.code;
  return error;
}
