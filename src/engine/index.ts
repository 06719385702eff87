/**
 * `bulwark/engine`: runs plans of tool calls with dry runs, per-step policies, rollback (compensation),
 * a checkpoint journal (SQLite) with resume after a crash, and a consistency check.
 */
import './events.js';

export { type BuiltinToolOptions, builtinTools, type QueueAddOptions, type QueueLike } from './builtins.js';
export {
  DEFAULT_APPS,
  type DesktopToolOptions,
  desktopTools,
  SimulatedDesktop,
} from './desktop.js';
export {
  type ConsistencyReport,
  DEFAULT_JOURNAL_PATH,
  Engine,
  type EngineOptions,
  type RepeatOptions,
  type ResumeOptions,
  type RollbackReport,
  type RunOptions,
  type RunResult,
  topologicalOrder,
} from './engine.js';
export * from './errors.js';
export type { RunStatus } from './events.js';
export {
  type ErrorInfo,
  type Journal,
  type JournalEvent,
  MemoryJournal,
  type RunSummary,
  SqliteJournal,
  type SqliteJournalOptions,
} from './journal.js';
export {
  buildPlan,
  type CircuitBreakerSpec,
  type CompensationDefinition,
  definePlan,
  isPlan,
  loadPlanFile,
  type Plan,
  PlanBuilder,
  type PlanDefinition,
  type PlanStep,
  parsePlanFile,
  type Reference,
  type RetrySpec,
  resolveReferences,
  type StepDefinition,
  type StepOptions,
  type TimeoutSpec,
} from './plan.js';
export {
  type CompensationRecord,
  compareRuns,
  type Divergence,
  hashValue,
  type RunRecord,
  type StepRecord,
  type StepStatus,
  stableJson,
} from './record.js';
export { type Tool, type ToolContext, type ToolDefinition, ToolRegistry } from './tools.js';
