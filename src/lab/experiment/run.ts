/**
 * Runs an experiment: load warm-up → steady state before → method (abort conditions checked throughout)
 * → steady state after → rollbacks (always: also after a failed hypothesis, an abort or an interruption)
 * → load cool-down; and returns the journal.
 */
import { formatMs, toMs } from '../../core/duration.js';
import { createRuntime, type Runtime } from '../../core/runtime.js';
import type { PatternSummary } from '../document.js';
import type { LogHistogramJSON } from '../histogram.js';
import { type RateEstimate, rate, twoProportionTest } from '../stats.js';
import { type LoadCounts, LoadGenerator, type LoadPhase } from './load.js';
import { runProvider } from './providers.js';
import { withinTolerance } from './tolerance.js';
import type { Action, Activity, Experiment, Probe } from './types.js';

declare module '../../core/events.js' {
  interface BulwarkEventMap {
    /** An experiment activity ended; `source` is the experiment's title. */
    'experiment.activity': { activity: string; stage: ActivityStage; ok: boolean; durationMs: number };
    /** An experiment ended. */
    'experiment.finished': { status: ExperimentStatus; deviated: boolean };
    /**
     * One load request ended; `source` is the load's URL. `kind` is empty on success, else the failure
     * (`status 503`, `timeout`, `ECONNREFUSED`, `overload`).
     */
    'experiment.request': { phase: LoadPhase; ok: boolean; kind: string; durationMs: number };
  }
}

/** Where in the lifecycle an activity ran. */
export type ActivityStage = 'steady-state-before' | 'method' | 'steady-state-after' | 'rollback' | 'abort';

/** `completed`: ran to the end (check `deviated`); `failed`: the hypothesis did not hold before the method or an action failed; `aborted`: an abort condition fired; `interrupted`: the caller's signal (Ctrl-C). */
export type ExperimentStatus = 'completed' | 'failed' | 'aborted' | 'interrupted';

export interface ActivityRun {
  name: string;
  type: Activity['type'];
  stage: ActivityStage;
  /** The provider's kind (`http`, `process`, …); absent for a wait. */
  provider?: string;
  status: 'succeeded' | 'failed' | 'interrupted';
  /** Milliseconds since the experiment started. */
  startMs: number;
  durationMs: number;
  output?: unknown;
  error?: string;
  /** For probes with a tolerance. */
  tolerance?: { holds: boolean; reason: string };
  background?: boolean;
}

export interface SteadyStateRun {
  met: boolean;
  probes: ActivityRun[];
}

export interface LoadPhaseReport extends RateEstimate {
  failures: Record<string, number>;
  latencyMs: Pick<LogHistogramJSON, 'p50' | 'p90' | 'p99' | 'max'>;
}

export interface LoadReport {
  url: string;
  rate: number;
  requests: number;
  phases: Record<LoadPhase, LoadPhaseReport>;
  /** Success during the method against before it, and after the rollbacks against before. */
  comparisons: { during: ComparisonSummary; after: ComparisonSummary };
}

export interface ComparisonSummary {
  diff: number;
  pValue: number;
  ci95: [number, number];
}

export interface ExperimentJournal {
  title: string;
  description?: string;
  status: ExperimentStatus;
  /** The steady-state hypothesis did not hold after the method. */
  deviated: boolean;
  /** Why the experiment failed, aborted or was interrupted. */
  reason?: string;
  steadyStates: { before?: SteadyStateRun; after?: SteadyStateRun };
  run: ActivityRun[];
  rollbacks: ActivityRun[];
  load?: LoadReport;
  /** Failure patterns of the load's requests (`bulwark run` adds them; see `bulwark analyze`). */
  patterns?: PatternSummary;
  durationMs: number;
}

export interface RunExperimentOptions {
  /** Time and events; a real-time runtime by default. */
  runtime?: Runtime;
  /** Aborting it interrupts the experiment: the method stops, the rollbacks run. */
  signal?: AbortSignal;
  /** Called after each activity (progress output). */
  onActivity?: (run: ActivityRun) => void;
}

class Interrupt extends Error {
  constructor(
    readonly status: 'aborted' | 'interrupted',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Runs `experiment` and returns its journal. Never throws for what happens to the target: failures are
 * in the journal. The exit code a CLI derives: 0 when `status === 'completed' && !deviated`, 1 otherwise.
 * @example
 * const journal = await runExperiment(experiment);
 * if (journal.deviated) console.log('the hypothesis did not hold under the fault');
 */
export async function runExperiment(
  experiment: Experiment,
  options: RunExperimentOptions = {},
): Promise<ExperimentJournal> {
  const runtime = options.runtime ?? createRuntime();
  const clock = runtime.clock;
  const started = clock.now();
  const baseDir = experiment.baseDir ?? process.cwd();
  const journal: ExperimentJournal = {
    title: experiment.title,
    ...(experiment.description === undefined ? {} : { description: experiment.description }),
    status: 'completed',
    deviated: false,
    steadyStates: {},
    run: [],
    rollbacks: [],
    durationMs: 0,
  };
  const events = runtime.events;

  /** Aborted by an abort condition or by the caller; the rollbacks do not listen to it. */
  const stop = new AbortController();
  const onCallerAbort = () =>
    stop.abort(new Interrupt('interrupted', describeReason(options.signal?.reason, 'interrupted')));
  if (options.signal?.aborted) onCallerAbort();
  else options.signal?.addEventListener('abort', onCallerAbort, { once: true });

  const execute = async (
    activity: Activity,
    stage: ActivityStage,
    signal: AbortSignal,
  ): Promise<ActivityRun> => {
    const at = clock.now();
    const entry: ActivityRun = {
      name:
        activity.type === 'wait'
          ? (activity.name ?? `wait ${formatMs(toMs(activity.duration, 'duration'))}`)
          : activity.name,
      type: activity.type,
      stage,
      status: 'succeeded',
      startMs: at - started,
      durationMs: 0,
    };
    try {
      if (activity.type === 'wait') {
        await clock.sleep(toMs(activity.duration, 'duration'), signal);
      } else {
        entry.provider = activity.provider.type;
        if (activity.background) entry.background = true;
        if (activity.pauses?.before !== undefined) await clock.sleep(toMs(activity.pauses.before), signal);
        const result = await runProvider(activity.provider, runtime, signal, baseDir);
        entry.output = result.output;
        if (activity.type === 'probe' && activity.tolerance !== undefined) {
          entry.tolerance = withinTolerance(activity.tolerance, result);
          if (!entry.tolerance.holds) entry.status = 'failed';
        }
        if (activity.pauses?.after !== undefined) await clock.sleep(toMs(activity.pauses.after), signal);
      }
    } catch (error) {
      entry.status = signal.aborted ? 'interrupted' : 'failed';
      entry.error = describeReason(error, 'failed');
      if (activity.type === 'probe' && activity.tolerance !== undefined) {
        entry.tolerance = { holds: false, reason: entry.error };
      }
    }
    entry.durationMs = clock.now() - at;
    if (events.wants('experiment.activity')) {
      events.emit({
        type: 'experiment.activity',
        source: experiment.title,
        at: clock.now(),
        activity: entry.name,
        stage,
        ok: entry.status === 'succeeded',
        durationMs: entry.durationMs,
      });
    }
    try {
      options.onActivity?.(entry);
    } catch {
      // The caller's progress callback must not stop the experiment, and above all not its rollbacks.
    }
    return entry;
  };

  const steadyState = async (stage: ActivityStage, signal: AbortSignal): Promise<SteadyStateRun> => {
    const probes: ActivityRun[] = [];
    for (const probe of experiment.steadyStateHypothesis?.probes ?? []) {
      probes.push(await execute(probe, stage, signal));
    }
    return { met: probes.every((p) => p.status === 'succeeded'), probes };
  };

  const load = experiment.load === undefined ? undefined : new LoadGenerator(experiment.load, runtime);
  const background: Promise<ActivityRun>[] = [];
  const abortWatch = watchAbortConditions(experiment, runtime, load, stop, execute);
  try {
    if (load !== undefined) {
      load.start();
      await clock.sleep(toMs(experiment.load?.warmup ?? '2s', 'load.warmup'), stop.signal);
    }
    journal.steadyStates.before = await steadyState('steady-state-before', stop.signal);
    throwIfStopped(stop.signal);
    if (!journal.steadyStates.before.met) {
      journal.status = 'failed';
      journal.reason = 'the steady-state hypothesis did not hold before the method';
    } else {
      if (load !== undefined) load.phase = 'during';
      abortWatch.start();
      let failedAction: string | undefined;
      try {
        for (const activity of experiment.method) {
          throwIfStopped(stop.signal);
          if (activity.type !== 'wait' && activity.background) {
            background.push(execute(activity, 'method', stop.signal));
            continue;
          }
          const entry = await execute(activity, 'method', stop.signal);
          journal.run.push(entry);
          if (entry.type === 'action' && entry.status === 'failed') failedAction ??= entry.name;
        }
      } finally {
        // Background activities are part of the journal even when the method was stopped (they see the
        // same signal, so they end too), and the rollbacks wait for them.
        journal.run.push(...(await Promise.all(background.splice(0))));
      }
      for (const entry of journal.run) {
        if (entry.type === 'action' && entry.status === 'failed') failedAction ??= entry.name;
      }
      throwIfStopped(stop.signal);
      journal.steadyStates.after = await steadyState('steady-state-after', stop.signal);
      throwIfStopped(stop.signal);
      journal.deviated = !journal.steadyStates.after.met;
      if (failedAction !== undefined) {
        journal.status = 'failed';
        journal.reason = `action "${failedAction}" failed`;
      }
    }
  } catch (error) {
    if (error instanceof Interrupt || stop.signal.reason instanceof Interrupt) {
      const interrupt = error instanceof Interrupt ? error : (stop.signal.reason as Interrupt);
      journal.status = interrupt.status;
      journal.reason = interrupt.message;
    } else {
      journal.status = 'failed';
      journal.reason = describeReason(error, 'failed');
    }
  } finally {
    await abortWatch.stop();
    options.signal?.removeEventListener('abort', onCallerAbort);
  }

  // Rollbacks always run, on a signal of their own: an interruption must not stop the clean-up.
  const rollbackSignal = new AbortController().signal;
  for (const action of experiment.rollbacks ?? []) {
    journal.rollbacks.push(await execute(action, 'rollback', rollbackSignal));
  }

  if (load !== undefined) {
    load.phase = 'after';
    if (journal.status !== 'interrupted') {
      await clock.sleep(toMs(experiment.load?.cooldown ?? '2s', 'load.cooldown'));
    } else load.abort();
    await load.stop();
    journal.load = loadReport(experiment, load);
  }
  journal.durationMs = clock.now() - started;
  if (events.wants('experiment.finished')) {
    events.emit({
      type: 'experiment.finished',
      source: experiment.title,
      at: clock.now(),
      status: journal.status,
      deviated: journal.deviated,
    });
  }
  return journal;
}

function throwIfStopped(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason;
}

function describeReason(reason: unknown, fallback: string): string {
  if (reason instanceof Error) return reason.message || fallback;
  if (typeof reason === 'string') return reason;
  return fallback;
}

function watchAbortConditions(
  experiment: Experiment,
  runtime: Runtime,
  load: LoadGenerator | undefined,
  stop: AbortController,
  execute: (activity: Probe, stage: ActivityStage, signal: AbortSignal) => Promise<ActivityRun>,
) {
  const conditions = experiment.abort ?? [];
  const every = toMs(experiment.abortInterval ?? '500ms', 'abortInterval');
  // Its own signal: a probe still in flight when the method ends is cancelled, not left running.
  const watching = new AbortController();
  let timer: { cancel(): void } | undefined;
  let inFlight: Promise<void> | undefined;
  const abort = (message: string) => stop.abort(new Interrupt('aborted', message));
  const check = async () => {
    for (const condition of conditions) {
      if (watching.signal.aborted || stop.signal.aborted) return;
      if ('errorRate' in condition) {
        if (load === undefined) continue;
        const { above, window, minRequests } = condition.errorRate;
        const recent = load.recent(toMs(window ?? '2s', 'abort.errorRate.window'));
        if (recent.total >= (minRequests ?? 10) && recent.failed / recent.total > above) {
          const ratio = ((recent.failed / recent.total) * 100).toFixed(1);
          abort(
            `abort condition: load error rate ${ratio}% (${recent.failed}/${recent.total}) over ${String(window ?? '2s')} is above ${Number((above * 100).toPrecision(12))}%`,
          );
          return;
        }
      } else {
        const entry = await execute(condition.probe, 'abort', watching.signal);
        if (entry.status === 'failed' && !watching.signal.aborted && !stop.signal.aborted) {
          abort(
            `abort condition: probe "${entry.name}" failed: ${entry.tolerance?.reason ?? entry.error ?? ''}`,
          );
          return;
        }
      }
    }
  };
  const tick = () => {
    inFlight = check().finally(() => {
      inFlight = undefined;
      if (!watching.signal.aborted && !stop.signal.aborted)
        timer = runtime.clock.setTimer(every, tick, undefined);
    });
  };
  return {
    start() {
      if (conditions.length === 0) return;
      timer = runtime.clock.setTimer(every, tick, undefined);
    },
    async stop() {
      watching.abort(new Error('the method ended'));
      timer?.cancel();
      await inFlight;
    },
  };
}

function phaseReport(counts: LoadCounts): LoadPhaseReport {
  const json = counts.latency.toJSON();
  return {
    ...rate(counts.ok, counts.total),
    failures: Object.fromEntries(Object.entries(counts.failures).sort(([a], [b]) => (a < b ? -1 : 1))),
    latencyMs: { p50: json.p50, p90: json.p90, p99: json.p99, max: json.max },
  };
}

function compare(before: LoadPhaseReport, other: LoadPhaseReport): ComparisonSummary {
  if (before.total === 0 || other.total === 0) return { diff: 0, pValue: 1, ci95: [-1, 1] };
  const test = twoProportionTest(before, other);
  return { diff: test.diff, pValue: test.pValue, ci95: test.ci95 };
}

function loadReport(experiment: Experiment, load: LoadGenerator): LoadReport {
  const spec = experiment.load as NonNullable<Experiment['load']>;
  const phases = {
    before: phaseReport(load.counts.before),
    during: phaseReport(load.counts.during),
    after: phaseReport(load.counts.after),
  };
  return {
    url: spec.url,
    rate: spec.rate,
    requests: load.requests,
    phases,
    comparisons: {
      during: compare(phases.before, phases.during),
      after: compare(phases.before, phases.after),
    },
  };
}

export type { Action, Probe };
