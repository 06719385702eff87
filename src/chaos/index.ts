/**
 * `bulwark/chaos`: fault injection. Faults are policies: they go in any pipeline, decide when to fire
 * from a schedule and the runtime's seeded random stream, and report every decision as an event.
 * Nothing here runs unless you build it, and `BULWARK_CHAOS=off` disables every fault at once.
 */
export {
  chaosEnabled,
  ErrorFault,
  type ErrorFaultOptions,
  Fault,
  type FaultKind,
  type FaultOptions,
  faults,
  inject,
  isFault,
  type LatencyDistribution,
  LatencyFault,
  type LatencyFaultOptions,
  type NetworkErrorCode,
  OutcomeFault,
  type OutcomeFaultOptions,
  TimeoutFault,
} from './faults.js';
export {
  type FaultyFs,
  type FaultyFsOptions,
  FS_OPERATIONS,
  type FsErrorCode,
  type FsFaultRule,
  type FsFunctionName,
  type FsOperation,
  type FsPromisesLike,
  faultyFs,
  fsError,
} from './fs.js';
// HTTP faults (the undici interceptor loads undici only in `installHttpFaults`); the TCP fault proxy is
// `bulwark/chaos/tcp`, kept out of here because it brings the config loader (yaml, zod) and servers.
export {
  type HttpFaultAction,
  type HttpFaultDecision,
  type HttpFaultRule,
  HttpFaultRules,
  type HttpFaultRulesOptions,
  type HttpFaultSpec,
  type HttpRequestInfo,
  httpFault,
  httpFaultInterceptor,
  type InstalledHttpFaults,
  installHttpFaults,
} from './http/index.js';
export {
  type MemoryFileHandle,
  MemoryFileSystem,
  type MemoryFsOptions,
  type MemoryStats,
  memoryFs,
} from './memory-fs.js';
export {
  type ExploreResult,
  type RaceContext,
  RaceExplorer,
  type RaceExplorerOptions,
  type RaceStrategy,
  raceExplorer,
  type ScheduleRun,
} from './race.js';
export * from './resources.js';
export {
  isSchedule,
  type Schedule,
  type ScheduleState,
  type SequenceOptions,
  type SequenceStep,
  schedule,
} from './schedule.js';
