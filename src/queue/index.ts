/**
 * `bulwark/queue`: a durable task queue with primary/fallback failover. Backends: `MemoryQueue` (tests,
 * the lab), `SqliteQueue` (embedded, one file, several processes), `BullmqQueue` (Redis through BullMQ,
 * loaded only when used). `FailoverQueue` sends work to a fallback when the primary is full, has no live
 * worker or is unreachable, and comes back when it recovers.
 */
import './events.js';

export { BullmqQueue, type BullmqQueueOptions } from './bullmq.js';
export { NoLiveWorkersError, QueueFullError, QueuePayloadError, QueueUnavailableError } from './errors.js';
export type { JobOutcome, JobState } from './events.js';
export { FailoverQueue, type FailoverQueueOptions } from './failover.js';
export { FaultyQueue, type QueueFaultOptions, queueFaults } from './faults.js';
export type { QueueOptions } from './job.js';
export { MemoryQueue, type MemoryQueueOptions } from './memory.js';
export { SqliteQueue, type SqliteQueueOptions } from './sqlite.js';
export type {
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
