import { describe, expect, it } from 'vitest';
import { runScenario } from '../runner.js';
import { engine, uiPlan } from './engine.js';

describe('engine scenario', () => {
  it('passes: identical dry runs, unknown targets reported, retries and clean rollbacks, success as predicted', async () => {
    const report = await runScenario(engine, { seed: 1, tasks: 300 });
    expect(report.checks.filter((c) => !c.passed)).toEqual([]);
    expect(report.passed).toBe(true);
    expect(report.values['dry.steps_accounted']).toBe(15);
    expect(report.values['dry.unknown_targets']).toBe(6);
    expect(report.values['dry.desktop_changes']).toBe(0);
    expect(report.values.retries).toBeGreaterThan(0);
    expect(report.metrics.rollback?.count).toBeGreaterThan(0);
    expect(report.metrics.rollback_clean).toMatchObject({ rate: 1 });
    // (1 − 0.3³)³ and (1 − 0.3)³: three faulted actions, three attempts each.
    expect(report.analytic?.success).toMatchObject({ expected: 0.921167317, consistent: true });
    expect(report.analytic?.first_attempt).toMatchObject({ expected: 0.343, consistent: true });
    expect(report.comparisons[0]).toMatchObject({ metric: 'success', significant: true });
  });

  it('is reproducible from its seed', async () => {
    const a = await runScenario(engine, { seed: 'x', tasks: 100, runs: 2 });
    const b = await runScenario(engine, { seed: 'x', tasks: 100, runs: 2 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });

  it('uses a plan with five actions, two of them aimed at targets that do not exist', () => {
    const plan = uiPlan(3, 100);
    expect(plan.steps.map((s) => `${s.tool} ${JSON.stringify(s.params)}`)).toEqual([
      'app.open {"app":"Calculator"}',
      'app.click {"app":"Calculator","button":"7"}',
      'app.open {"app":"Calculater"}',
      'app.click {"app":"Calculator","button":"Sqrt"}',
      'app.click {"app":"Calculator","button":"="}',
    ]);
  });
});
