/**
 * Health checks with Kubernetes probe semantics, an OTP-style supervisor with restart backoff and
 * escalation, and healing actions.
 */
export { checks, type QueueCheck } from './checks.js';
export type { ChildState, ProbeKind } from './events.js';
export {
  type DrainTarget,
  type FailoverTarget,
  type HealingAction,
  healing,
  type RestartTarget,
} from './healing.js';
export {
  type Check,
  type ComponentHealthOptions,
  type ComponentStatus,
  HealthMonitor,
  type ProbeOptions,
  type ProbeStatus,
} from './probes.js';
export {
  type ChildContext,
  type ChildSpec,
  type ChildStatus,
  child,
  type RestartStrategy,
  type RestartType,
  Supervisor,
  SupervisorEscalatedError,
  type SupervisorOptions,
} from './supervisor.js';
