export { type Clock, SystemClock, type Timer, VirtualClock, type VirtualClockOptions } from './clock.js';
export { type Duration, formatMs, toMs } from './duration.js';
export {
  BrokenCircuitError,
  BulkheadRejectedError,
  BulwarkError,
  type BulwarkErrorCode,
  CancelledError,
  FileProblemsError,
  HedgeError,
  IsolatedCircuitError,
  isBulwarkError,
  isNonRetryable,
  nonRetryable,
  RateLimitedError,
  TimeoutError,
} from './errors.js';
export {
  type BulwarkEvent,
  type BulwarkEventMap,
  type BulwarkEventType,
  type CallOutcome,
  type CircuitStateName,
  callEvent,
  type EventListener,
  type EventMeter,
  type EventOf,
  EventSink,
  type SourceEvents,
  type SourceMeter,
  type SourceState,
} from './events.js';
export { lognormalFromMedianP99, Random, type Seed } from './random.js';
export {
  createRuntime,
  freshSeed,
  type Runtime,
  type RuntimeOptions,
  systemRuntime,
  type VirtualRuntime,
  virtualRuntime,
} from './runtime.js';
