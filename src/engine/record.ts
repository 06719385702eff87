/**
 * A run's journal events folded into one record: each step's status, attempts, parameters, output,
 * timing and compensation. What `show` prints, `resume` continues from, and the consistency check compares.
 */
import { createHash } from 'node:crypto';
import type { RunStatus } from './events.js';
import type { ErrorInfo, JournalEvent } from './journal.js';
import type { PlanDefinition } from './plan.js';

/**
 * Where a step is. `simulated`: a dry run found nothing wrong with it. `skipped`: it never ran because the
 * run stopped first. `running` in a finished run cannot happen; in an unfinished one it marks the step a
 * crash interrupted.
 */
export type StepStatus =
  | 'pending'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'cancelled'
  | 'skipped'
  | 'simulated';

/** What a rollback did to one step. */
export interface CompensationRecord {
  status: 'running' | 'compensated' | 'failed';
  tool: string;
  attempts: number;
  error?: ErrorInfo;
}

/** One step of a run, from the journal. */
export interface StepRecord {
  id: string;
  tool: string;
  status: StepStatus;
  /** True in dry runs. */
  simulated: boolean;
  /** Attempts made (in the latest execution, when a resume re-ran it). */
  attempts: number;
  /** The parameters after references were resolved. */
  params?: unknown;
  paramsHash?: string;
  output?: unknown;
  outputHash?: string;
  /** What the tool recorded to undo the step (see `ToolContext.setUndo`). */
  undo?: unknown;
  startedAt?: number;
  finishedAt?: number;
  durationMs?: number;
  error?: ErrorInfo;
  /** Dry runs: what the step would do. */
  description?: string;
  /** Dry runs: the tool's estimate of one attempt, ms. */
  estimatedMs?: number;
  /** Dry runs: references that could not be resolved without running earlier steps. */
  unresolved?: string[];
  compensation?: CompensationRecord;
  /** The compensation `resume` ran on an interrupted execution of this step before running it again. */
  priorCompensation?: CompensationRecord;
}

/** A run, from the journal. */
export interface RunRecord {
  runId: string;
  plan: PlanDefinition;
  dryRun: boolean;
  /** `running` until it finishes; a run whose process died stays `running` until resumed. */
  status: RunStatus | 'running';
  startedAt: number;
  finishedAt?: number;
  durationMs?: number;
  error?: ErrorInfo;
  /** Steps in plan order. */
  steps: StepRecord[];
  /** Ids of the steps that succeeded, in the order they did (a rollback undoes them in reverse). */
  completionOrder: string[];
  /** Set once a rollback started: why, how many compensations ran and how many failed. */
  rollback?: { reason: string; compensated: number; failed: number };
  /** Times the run was resumed. */
  resumed: number;
  /** Dry runs: the longest chain of estimates through the DAG, ms. */
  estimatedMs?: number;
}

/** JSON with object keys sorted: equal values give equal text. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value === undefined ? null : value, (_key, v: unknown) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
  });
}

/** A short hash (16 hex digits of SHA-256) of a value's stable JSON. */
export function hashValue(value: unknown): string {
  return createHash('sha256').update(stableJson(value)).digest('hex').slice(0, 16);
}

/** Folds a run's events into its record. */
export function foldRun(runId: string, events: readonly JournalEvent[]): RunRecord {
  const first = events[0];
  if (first === undefined || first.kind !== 'run.started')
    throw new Error(`journal: run ${runId} has no run.started event`);
  const steps = new Map<string, StepRecord>();
  for (const step of first.plan.steps) {
    steps.set(step.id, { id: step.id, tool: step.tool, status: 'pending', simulated: false, attempts: 0 });
  }
  const record: RunRecord = {
    runId,
    plan: first.plan,
    dryRun: first.dryRun,
    status: 'running',
    startedAt: first.at,
    steps: [...steps.values()],
    completionOrder: [],
    resumed: 0,
  };
  const at = (id: string): StepRecord => {
    const step = steps.get(id);
    if (step === undefined) throw new Error(`journal: run ${runId} names unknown step ${id}`);
    return step;
  };
  for (const event of events) {
    switch (event.kind) {
      case 'run.started':
        break;
      case 'run.resumed':
        record.resumed++;
        break;
      case 'run.finished':
        record.status = event.status;
        record.finishedAt = event.at;
        record.durationMs = event.at - record.startedAt;
        if (event.error !== undefined) record.error = event.error;
        break;
      case 'rollback.started':
        record.rollback = { reason: event.reason, compensated: 0, failed: 0 };
        break;
      case 'step.started': {
        const step = at(event.step);
        // Started again after a compensation (resume undid an interrupted execution): that compensation
        // belongs to the earlier execution; a later rollback must undo this one.
        if (step.compensation !== undefined) {
          step.priorCompensation = step.compensation;
          delete step.compensation;
        }
        if (event.attempt === 1 || step.status !== 'running') {
          step.startedAt = event.at;
          delete step.error;
        }
        step.status = 'running';
        step.attempts = event.attempt;
        step.params = event.params;
        step.paramsHash = event.paramsHash;
        break;
      }
      case 'step.succeeded': {
        const step = at(event.step);
        step.status = 'succeeded';
        step.attempts = event.attempts;
        step.output = event.output;
        step.outputHash = event.outputHash;
        if (event.undo !== undefined) step.undo = event.undo;
        step.finishedAt = event.at;
        step.durationMs = event.durationMs;
        record.completionOrder.push(step.id);
        break;
      }
      case 'step.undo':
        at(event.step).undo = event.undo;
        break;
      case 'step.failed': {
        const step = at(event.step);
        step.error = event.error;
        step.attempts = event.attempt;
        if (event.final) {
          step.status = 'failed';
          step.finishedAt = event.at;
          if (step.startedAt !== undefined) step.durationMs = event.at - step.startedAt;
        }
        break;
      }
      case 'step.cancelled': {
        const step = at(event.step);
        step.status = 'cancelled';
        step.finishedAt = event.at;
        if (step.startedAt !== undefined) step.durationMs = event.at - step.startedAt;
        break;
      }
      case 'step.simulated': {
        const step = at(event.step);
        step.simulated = true;
        step.status = event.error === undefined ? 'simulated' : 'failed';
        step.attempts = 0;
        step.params = event.params;
        step.paramsHash = event.paramsHash;
        step.description = event.description;
        step.estimatedMs = event.estimatedMs;
        step.unresolved = event.unresolved;
        if (event.error !== undefined) step.error = event.error;
        break;
      }
      case 'step.compensating':
        at(event.step).compensation = { status: 'running', tool: event.tool, attempts: 0 };
        break;
      case 'step.compensated': {
        const step = at(event.step);
        const compensation = step.compensation ?? { status: 'running', tool: step.tool, attempts: 0 };
        compensation.status = event.ok ? 'compensated' : 'failed';
        compensation.attempts = event.attempts;
        if (event.error !== undefined) compensation.error = event.error;
        step.compensation = compensation;
        if (record.rollback !== undefined) {
          if (event.ok) record.rollback.compensated++;
          else record.rollback.failed++;
        }
        break;
      }
    }
  }
  if (record.status !== 'running') {
    for (const step of record.steps) if (step.status === 'pending') step.status = 'skipped';
  }
  if (record.dryRun) record.estimatedMs = criticalPath(record);
  return record;
}

/** The longest chain of estimates through the dependency graph (dependsOn and references). */
function criticalPath(record: RunRecord): number {
  const byId = new Map(record.plan.steps.map((s) => [s.id, s]));
  const estimates = new Map(record.steps.map((s) => [s.id, s.estimatedMs ?? 0]));
  const memo = new Map<string, number>();
  const needsOf = (id: string): string[] => {
    const step = byId.get(id);
    if (step === undefined) return [];
    const refs = [
      ...JSON.stringify(step.params ?? {}).matchAll(/\$\{\s*steps\.([A-Za-z_][A-Za-z0-9_-]*)\.output/g),
    ].map((m) => m[1] as string);
    return [...new Set([...(step.dependsOn ?? []), ...refs])].filter((d) => d !== id && byId.has(d));
  };
  const finish = (id: string, depth = 0): number => {
    const known = memo.get(id);
    if (known !== undefined) return known;
    if (depth > byId.size) return 0; // a validated plan has no cycle; never loop on a hand-edited journal
    const value = (estimates.get(id) ?? 0) + Math.max(0, ...needsOf(id).map((d) => finish(d, depth + 1)));
    memo.set(id, value);
    return value;
  };
  return Math.max(0, ...record.plan.steps.map((s) => finish(s.id)));
}

/** Where two runs of the same plan first differ. */
export interface Divergence {
  step: string;
  field: 'tool' | 'paramsHash' | 'status' | 'outputHash' | 'compensation';
  expected: string | undefined;
  actual: string | undefined;
}

/**
 * Compares two runs' records step by step (tool, resolved-params hash, status, output hash, compensation
 * outcome), in plan order. Returns the first difference, or undefined when they are identical.
 */
export function compareRuns(expected: RunRecord, actual: RunRecord): Divergence | undefined {
  const length = Math.max(expected.steps.length, actual.steps.length);
  for (let i = 0; i < length; i++) {
    const a = expected.steps[i];
    const b = actual.steps[i];
    const step = a?.id ?? b?.id ?? `#${i}`;
    const fields: [Divergence['field'], string | undefined, string | undefined][] = [
      ['tool', a?.tool, b?.tool],
      ['paramsHash', a?.paramsHash, b?.paramsHash],
      ['status', a?.status, b?.status],
      ['outputHash', a?.outputHash, b?.outputHash],
      ['compensation', a?.compensation?.status, b?.compensation?.status],
    ];
    for (const [field, x, y] of fields) if (x !== y) return { step, field, expected: x, actual: y };
  }
  return undefined;
}

/** An error as the journal keeps it. */
export function errorInfo(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    let code = (error as { code?: unknown }).code;
    let message = error.message;
    // `fetch failed` says little; its cause (ECONNREFUSED …) says what happened.
    const cause = error.cause;
    if (cause instanceof Error && !message.includes(cause.message)) {
      message = `${message}: ${cause.message}`;
      code ??= (cause as { code?: unknown }).code;
    }
    return { name: error.name, message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(error) };
}
