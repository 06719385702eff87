/**
 * `resource`: a 100 MB budget; batches of 8 tasks of 10 MB and 2 of 30 MB arrive together. The small
 * ones fit and run whole; the large ones do not fit what is left and run chunked (`degrade` with
 * `chunked()`), so nothing fails and the budget is never exceeded.
 */
import { chunked, degrade, ResourceBudget } from '../../chaos/resources.js';
import { runTasks } from '../runner.js';
import { defineScenario } from '../scenario.js';

/** The demands of the tasks of one batch, in arrival order (small ones first). */
function batchDemand(index: number, small: number, smallMb: number, largeMb: number): number {
  return index < small ? smallMb : largeMb;
}

/** The `resource` scenario. `tasks` is split into batches of `batchSize` arriving together. */
export const resource = defineScenario({
  name: 'resource',
  description:
    'a 100 MB budget; 8 tasks of 10 MB and 2 of 30 MB arrive together; the large ones run degraded (chunked)',
  params: {
    capacityMb: 100,
    batchSize: 10,
    smallPerBatch: 8,
    smallMb: 10,
    largeMb: 30,
    /** Virtual ms one run of the work (the whole task or one chunk) takes. */
    workMs: 100,
    /** Virtual ms between batch arrivals. */
    batchIntervalMs: 1000,
  },
  defaults: { tasks: 10 },
  async run({ runtime, tasks, params, record, progress }) {
    const budget = new ResourceBudget({ capacity: params.capacityMb, unit: 'MB', runtime });
    const degrader = degrade<number>({
      budget,
      demand: (mb) => mb,
      strategies: [chunked()],
      runtime,
    });
    const clock = runtime.clock;
    const batches = Math.ceil(tasks / params.batchSize);
    let done = 0;
    const work = (): Promise<void> => clock.sleep(params.workMs);
    await runTasks(batches, 1, async (batch) => {
      const startedAt = batch * params.batchIntervalMs;
      if (clock.now() < startedAt) await clock.sleep(startedAt - clock.now());
      const size = Math.min(params.batchSize, tasks - batch * params.batchSize);
      const arrivals: Promise<void>[] = [];
      for (let i = 0; i < size; i++) {
        const mb = batchDemand(i, params.smallPerBatch, params.smallMb, params.largeMb);
        const start = clock.now();
        arrivals.push(
          degrader.run(mb, work).then(
            () => {
              record.latency('duration', clock.now() - start);
              record.count('completion', true);
            },
            () => record.count('completion', false),
          ),
        );
      }
      await Promise.all(arrivals);
      done += size;
      progress(done);
    });
    const stats = degrader.stats();
    const degraded = stats.degraded.chunked + stats.degraded.reduced;
    record.countMany('normal', stats.normal, tasks);
    record.countMany('degraded', degraded, tasks);
    record.countMany('failed', stats.failed, tasks);
    record.add('tasks.normal', stats.normal);
    record.add('tasks.degraded', degraded);
    record.add('tasks.failed', stats.failed);
    const utilisation = budget.utilisation();
    record.max('utilisation.peak', utilisation.peak);
    record.max('budget.peak_mb', budget.peak);
    const capacity = budget.capacity;
    record.series(
      'utilisation',
      budget.timeline(256).map((point): [number, number] => [point.at, point.used / capacity]),
    );
  },
  expect: ({ tasks, runs, params }) => {
    const full = Math.floor(tasks / params.batchSize);
    const rest = tasks - full * params.batchSize;
    const small = (full * params.smallPerBatch + Math.min(rest, params.smallPerBatch)) * runs;
    return [
      { metric: 'completion', atLeast: 1 },
      { value: 'tasks.normal', equals: small },
      { value: 'tasks.degraded', equals: tasks * runs - small },
      { value: 'tasks.failed', equals: 0 },
      { value: 'utilisation.peak', atMost: 1 },
    ];
  },
});
