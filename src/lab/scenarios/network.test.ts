import { describe, expect, it } from 'vitest';
import { runScenario } from '../runner.js';
import { network } from './network.js';

describe('network scenario', () => {
  it('matches the closed forms at 100,000 tasks', async () => {
    const report = await runScenario(network, { seed: 42, tasks: 100_000 });
    expect(report.analytic.first_attempt).toMatchObject({ expected: 0.56, consistent: true });
    expect(report.analytic.final).toMatchObject({ expected: 0.914816, consistent: true });
    expect(report.checks.map((c) => c.description)).toEqual([
      'first_attempt consistent with 0.56',
      'final consistent with 0.914816',
    ]);
    expect(report.passed).toBe(true);
    const { calls, retries } = report.values;
    const refused = report.values['failures.ECONNREFUSED'] ?? 0;
    const timedOut = report.values['failures.TIMEOUT'] ?? 0;
    const final = report.metrics.final!;
    // Every call either succeeded (one per successful task) or failed with one of the two kinds.
    expect(calls).toBe(100_000 + (retries ?? 0));
    expect(refused + timedOut).toBe((calls ?? 0) - final.count);
    // Of the failures, 0.3 / 0.44 are refusals.
    expect(refused / (refused + timedOut)).toBeCloseTo(0.3 / 0.44, 2);
    expect(Object.keys(report.values)).toEqual([
      'calls',
      'failures.ECONNREFUSED',
      'failures.TIMEOUT',
      'retries',
    ]);
    // Recovery runs from the end of the first failed attempt: backoffs (100 ms, 200 ms) and a 5 s hang between.
    const recovery = report.latency.recovery!;
    expect(recovery.count).toBe(final.count - report.metrics.first_attempt!.count);
    expect(recovery.min).toBe(100);
    expect(recovery.max).toBe(100 + 5000 + 200);
    const comparison = report.comparisons[0]!;
    expect(comparison.metric).toBe('success');
    expect(comparison.before.count).toBe(report.metrics.first_attempt!.count);
    expect(comparison.after.count).toBe(final.count);
    expect(comparison.significant).toBe(true);
    expect(comparison.warning).toBeUndefined();
  }, 60_000);

  it('warns that 10 tasks cannot establish the improvement', async () => {
    const report = await runScenario(network, { seed: 42, tasks: 10 });
    expect(report.metrics.final?.total).toBe(10);
    expect(report.comparisons[0]?.warning).toMatch(/^10 tasks per arm: .*not established at this scale/);
  });

  it('is reproducible from its seed', async () => {
    const a = await runScenario(network, { seed: 'x', tasks: 2000 });
    const b = await runScenario(network, { seed: 'x', tasks: 2000 });
    const c = await runScenario(network, { seed: 'y', tasks: 2000 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(c.values.calls).not.toBe(a.values.calls);
  });

  it('takes its rates from the parameters', async () => {
    const never = await runScenario(network, { seed: 1, tasks: 500, params: { errorRate: 0, hangRate: 0 } });
    expect(never.metrics.first_attempt?.count).toBe(500);
    expect(never.values.calls).toBe(500);
    expect(never.virtualMs).toBe(0);
    const always = await runScenario(network, { seed: 1, tasks: 10, params: { errorRate: 1 } });
    expect(always.metrics.final?.count).toBe(0);
    expect(always.values.calls).toBe(30);
    expect(always.values['failures.ECONNREFUSED']).toBe(30);
    // All 10 run concurrently: 100 ms + 200 ms of backoff.
    expect(always.virtualMs).toBe(300);
    expect(always.analytic.final).toMatchObject({ expected: 0, consistent: true });
    const hang = await runScenario(network, { seed: 1, tasks: 10, params: { errorRate: 0, hangRate: 1 } });
    expect(hang.values['failures.TIMEOUT']).toBe(30);
    expect(hang.virtualMs).toBe(3 * 5000 + 300);
  });
});

describe('network scenario error stacks', () => {
  it('turns stack capture off for the run only, unless asked', async () => {
    const before = Error.stackTraceLimit;
    await runScenario(network, { seed: 1, tasks: 10 });
    expect(Error.stackTraceLimit).toBe(before);
    const a = await runScenario(network, { seed: 1, tasks: 200, params: { errorStacks: true } });
    const b = await runScenario(network, { seed: 1, tasks: 200 });
    expect(JSON.stringify({ ...a, params: {} })).toBe(JSON.stringify({ ...b, params: {} }));
  });
});
