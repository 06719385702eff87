/**
 * The engine's events: the contract between `src/engine` (which emits them through `runtime.events`) and
 * `src/monitor` (the dashboard's engine panel, alerts, pattern analysis). `source` is the plan's name.
 * Add fields freely; renaming or removing one breaks monitoring.
 */

/** How a run ended. */
export type RunStatus = 'succeeded' | 'failed' | 'cancelled';

declare module '../core/events.js' {
  interface BulwarkEventMap {
    /** `resumed` is set when `resume` continues a run whose process died (the same `runId` started before). */
    'run.started': { runId: string; steps: number; dryRun: boolean; resumed?: boolean };
    /** `rolledBack` counts the compensations that ran; `compensationFailures` those that failed. */
    'run.finished': {
      runId: string;
      status: RunStatus;
      durationMs: number;
      rolledBack: number;
      compensationFailures: number;
    };
    'step.started': { runId: string; step: string; tool: string; attempt: number };
    'step.succeeded': { runId: string; step: string; tool: string; durationMs: number; simulated: boolean };
    /** `final` is true when the step will not be retried (its policies gave up, or the tool is unknown). */
    'step.failed': { runId: string; step: string; tool: string; error: unknown; final: boolean };
    'step.compensated': { runId: string; step: string; tool: string; ok: boolean; error?: unknown };
  }
}
