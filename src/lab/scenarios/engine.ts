/**
 * `engine`: the original ExecutionEngine test, kept honest. A 5-action UI plan (open Calculator, press
 * 7, open "Calculater", press "Sqrt", press "=") names an app and a button that do not exist. Dry-run
 * three times: all five actions are accounted for, the two unknown targets are reported as failures
 * without stopping the engine, and the three journals are identical. Then the same plan for real, many
 * seeded times, with injected tool faults (`bulwark/chaos`): steps retry, and a step that exhausts its
 * retries rolls back the completed ones, which must leave the simulated desktop as it was.
 */
import { faults } from '../../chaos/faults.js';
import { schedule } from '../../chaos/schedule.js';
import type { Runtime } from '../../core/runtime.js';
import { desktopTools, SimulatedDesktop } from '../../engine/desktop.js';
import { Engine } from '../../engine/engine.js';
import { MemoryJournal } from '../../engine/journal.js';
import { definePlan, type Plan } from '../../engine/plan.js';
import { defineScenario } from '../scenario.js';

/** The plan: three real actions under retry, two (continueOnError) aimed at targets that do not exist. */
export function uiPlan(maxAttempts: number, backoffMs: number): Plan {
  const retry = { maxAttempts, backoff: { constant: backoffMs } };
  return definePlan({
    name: 'calculator',
    description: 'open Calculator, press 7, open a misspelt app, press a missing button, press =',
    concurrency: 1,
    steps: [
      { id: 'open', tool: 'app.open', params: { app: 'Calculator' }, retry },
      {
        id: 'press7',
        tool: 'app.click',
        params: { app: 'Calculator', button: '7' },
        dependsOn: ['open'],
        retry,
      },
      { id: 'openTypo', tool: 'app.open', params: { app: 'Calculater' }, continueOnError: true },
      {
        id: 'pressMissing',
        tool: 'app.click',
        params: { app: 'Calculator', button: 'Sqrt' },
        dependsOn: ['open'],
        continueOnError: true,
      },
      {
        id: 'equals',
        tool: 'app.click',
        params: { app: 'Calculator', button: '=' },
        dependsOn: ['press7'],
        retry,
      },
    ],
  });
}

/** Steps of the plan that reach a real app (and so meet the injected faults). */
const FAULTED_STEPS = 3;
const UNKNOWN_TARGETS = 2;
const DRY_RUNS = 3;

function faultsFor(runtime: Runtime, rate: number) {
  return {
    'app.open': faults.error({
      name: 'fault.app.open',
      kind: 'ECONNRESET',
      schedule: schedule.rate(rate),
      runtime,
    }),
    'app.click': faults.error({
      name: 'fault.app.click',
      kind: 'ECONNRESET',
      schedule: schedule.rate(rate),
      runtime,
    }),
  };
}

/** The `engine` scenario. `tasks` is the number of real runs of the plan. */
export const engine = defineScenario({
  name: 'engine',
  description:
    'a 5-action UI plan with an unknown app and button: 3 identical dry runs, then real runs with app faults (p 0.3), retry ×3 and rollback',
  params: {
    /** Probability that one app action fails (ECONNRESET), per attempt. */
    faultRate: 0.3,
    maxAttempts: 3,
    backoffMs: 100,
  },
  defaults: { tasks: 500 },
  async run({ runtime, tasks, params, record, progress }) {
    const plan = uiPlan(params.maxAttempts, params.backoffMs);

    // Dry runs: nothing may touch the desktop, all five actions are accounted for, journals identical.
    const dryDesktop = new SimulatedDesktop();
    const dryEngine = new Engine({
      runtime,
      journal: new MemoryJournal(),
      tools: desktopTools(dryDesktop),
      builtins: false,
    });
    const consistency = await dryEngine.repeat(plan, { times: DRY_RUNS, dryRun: true });
    record.count('dry.identical', consistency.identical);
    for (const run of consistency.runs) {
      const steps = run.record.steps;
      record.add(
        'dry.steps_accounted',
        steps.filter((s) => s.status === 'simulated' || s.status === 'failed').length,
      );
      record.add('dry.unknown_targets', steps.filter((s) => s.error?.code === 'INVALID_PARAMS').length);
      record.add(
        'dry.other_failures',
        steps.filter((s) => s.status === 'failed' && s.error?.code !== 'INVALID_PARAMS').length,
      );
    }
    record.add('dry.desktop_changes', Object.keys(dryDesktop.state()).length);

    // Real runs with injected faults.
    const desktop = new SimulatedDesktop();
    const journal = new MemoryJournal();
    const realEngine = new Engine({
      runtime,
      journal,
      tools: desktopTools(desktop, { faults: faultsFor(runtime, params.faultRate) }),
      builtins: false,
    });
    for (let i = 0; i < tasks; i++) {
      const start = runtime.clock.now();
      const result = await realEngine.run(plan);
      const steps = result.record.steps;
      const byId = new Map(steps.map((s) => [s.id, s]));
      const firstTry = ['open', 'press7', 'equals'].every(
        (id) => byId.get(id)?.status === 'succeeded' && byId.get(id)?.attempts === 1,
      );
      record.count('first_attempt', firstTry);
      record.count('success', result.status === 'succeeded');
      record.count('rollback', result.rollback !== undefined);
      record.add(
        'retries',
        steps.reduce((sum, s) => sum + Math.max(0, s.attempts - 1), 0),
      );
      // Each unknown target is reported as a failure, unless a real fault stopped the run before it ran.
      const unknown = ['openTypo', 'pressMissing'].map((id) => byId.get(id));
      record.count(
        'unknown_reported',
        unknown.every(
          (s) =>
            (s?.status === 'failed' && s.error?.code === 'INVALID_PARAMS') ||
            (s?.status === 'skipped' && result.status === 'failed'),
        ),
      );
      record.add('unknown_targets', unknown.filter((s) => s?.status === 'failed').length);
      record.add(
        'runs_stopped_by_unknown_targets',
        (result.error as { code?: unknown } | undefined)?.code === 'INVALID_PARAMS' ? 1 : 0,
      );
      record.add(
        'steps_unaccounted',
        steps.filter((s) => s.status === 'pending' || s.status === 'running').length,
      );
      if (result.rollback !== undefined) {
        record.add('rollback.compensations', result.rollback.compensated.length);
        record.add('rollback.compensation_failures', result.rollback.failed.length);
        record.count('rollback_clean', desktop.clean && result.rollback.failed.length === 0);
      }
      record.latency('run_ms', runtime.clock.now() - start);
      // A succeeded run leaves Calculator open with its clicks; the next run starts from a fresh desktop.
      if (result.status === 'succeeded') desktop.closeApp('Calculator');
      record.add('desktop_leaks', desktop.clean ? 0 : 1);
      if (!desktop.clean) for (const app of Object.keys(desktop.state())) desktop.closeApp(app);
      if ((i + 1) % 50 === 0 || i + 1 === tasks) progress(i + 1);
    }
    journal.close();
  },
  analytic: ({ params }) => {
    const step = 1 - params.faultRate ** params.maxAttempts;
    return {
      first_attempt: Number(((1 - params.faultRate) ** FAULTED_STEPS).toPrecision(12)),
      success: Number((step ** FAULTED_STEPS).toPrecision(12)),
      // Every run that fails rolls back (whatever had completed by then).
      rollback: Number((1 - step ** FAULTED_STEPS).toPrecision(12)),
    };
  },
  comparisons: [{ metric: 'success', before: 'first_attempt', after: 'success' }],
  expect: ({ runs, params }) => [
    { metric: 'dry.identical', atLeast: 1, description: 'the three dry-run journals are identical' },
    {
      value: 'dry.steps_accounted',
      equals: 5 * DRY_RUNS * runs,
      description: 'every dry run accounts for all 5 actions',
    },
    {
      value: 'dry.unknown_targets',
      equals: UNKNOWN_TARGETS * DRY_RUNS * runs,
      description: 'the unknown app and button fail each dry run',
    },
    { value: 'dry.other_failures', equals: 0 },
    { value: 'dry.desktop_changes', equals: 0, description: 'dry runs touch nothing' },
    { metric: 'unknown_reported', atLeast: 1, description: 'unknown targets are reported as step failures' },
    {
      value: 'runs_stopped_by_unknown_targets',
      equals: 0,
      description: 'unknown targets never stop the engine',
    },
    { value: 'steps_unaccounted', equals: 0 },
    { metric: 'success', consistentWith: (1 - params.faultRate ** params.maxAttempts) ** FAULTED_STEPS },
    { metric: 'first_attempt', consistentWith: (1 - params.faultRate) ** FAULTED_STEPS },
    { metric: 'rollback_clean', atLeast: 1, description: 'every rollback leaves the desktop as it found it' },
    { value: 'rollback.compensation_failures', equals: 0 },
    { value: 'desktop_leaks', equals: 0 },
  ],
});
