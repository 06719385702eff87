import { describe, expect, it } from 'vitest';
import { runScenario } from '../runner.js';
import { race } from './race.js';

describe('race scenario', () => {
  it('finds the lost update in every exploration, replays it exactly, and never flags the fixes', async () => {
    const report = await runScenario(race, { seed: 1 });
    expect(report.tasks).toBe(30);
    expect(report.metrics['unsafe.found']).toMatchObject({ rate: 1, count: 30, total: 30 });
    expect(report.metrics['replay.exact']).toMatchObject({ rate: 1, count: 30, total: 30 });
    expect(report.metrics['lock.passes']).toMatchObject({ rate: 1, count: 30, total: 30 });
    expect(report.metrics['cas.passes']).toMatchObject({ rate: 1, count: 30, total: 30 });
    // The fixes were explored with their whole budget, over more than one interleaving.
    expect(report.values['lock.schedules']).toBe(3000);
    expect(report.values['cas.schedules']).toBe(3000);
    expect(report.values['lock.interleavings']).toBeGreaterThan(1);
    expect(report.latency['unsafe.schedules_to_find']?.max).toBeLessThanOrEqual(100);
    expect(report.comparisons[0]).toMatchObject({
      metric: 'invariant held (lock)',
      diff: 1,
      significant: true,
    });
    expect(report.passed).toBe(true);
  });

  it('is reproducible from the seed, with either strategy and more withdrawers', async () => {
    const a = await runScenario(race, { seed: 7, tasks: 5, params: { strategy: 'order', withdrawers: 4 } });
    const b = await runScenario(race, { seed: 7, tasks: 5, params: { strategy: 'order', withdrawers: 4 } });
    expect(b).toEqual(a);
    expect(a.passed).toBe(true);
    expect(a.values['unsafe.schedules']).toBeGreaterThanOrEqual(5);
  });

  it('rejects a bad number of withdrawers', async () => {
    await expect(runScenario(race, { seed: 1, params: { withdrawers: 1 } })).rejects.toThrow(
      'parameter "withdrawers" must be an integer from 2 to 10, got 1',
    );
  });
});
