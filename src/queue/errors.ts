/**
 * The errors a queue throws. Each extends `BulwarkError` with a stable code, so
 * `isBulwarkError(e, 'QUEUE_FULL')` works across package copies and a `FailoverQueue` can decide from the
 * code alone.
 */
import { BulwarkError } from '../core/errors.js';

/** `add` was refused because the queue holds `capacity` unfinished jobs. */
export class QueueFullError extends BulwarkError {
  override readonly name = 'QueueFullError';
  constructor(
    readonly queue: string,
    readonly capacity: number,
  ) {
    super(
      'QUEUE_FULL',
      `queue "${queue}" is full${Number.isFinite(capacity) ? ` (capacity ${capacity})` : ''}`,
    );
  }
}

/** `add` with `requireWorkers` was refused: no worker heartbeated within the worker TTL. */
export class NoLiveWorkersError extends BulwarkError {
  override readonly name = 'NoLiveWorkersError';
  constructor(
    readonly queue: string,
    readonly ttlMs: number,
  ) {
    super(
      'NO_LIVE_WORKERS',
      `queue "${queue}" has no live worker${Number.isFinite(ttlMs) ? ` (none heartbeated in the last ${ttlMs}ms)` : ''}`,
    );
  }
}

/** The queue's store cannot be reached (Redis down, database closed) or did not answer in time. */
export class QueueUnavailableError extends BulwarkError {
  override readonly name = 'QueueUnavailableError';
  constructor(
    readonly queue: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super('QUEUE_UNAVAILABLE', `queue "${queue}" is unavailable: ${reason}`, options);
  }
}

/** A payload that cannot be stored as JSON exactly (a function, `undefined`, a cycle, `NaN`, a class instance…). */
export class QueuePayloadError extends BulwarkError {
  override readonly name = 'QueuePayloadError';
  constructor(
    readonly queue: string,
    /** Where in the payload the problem is, e.g. `payload.items[2].at`. */
    readonly path: string,
    problem: string,
  ) {
    super('QUEUE_PAYLOAD_INVALID', `queue "${queue}": ${path} ${problem}; payloads must be plain JSON`, {
      retryable: false,
    });
  }
}
