import { describe, expect, it } from 'vitest';
import { runScenario } from '../runner.js';
import { resource } from './resource.js';

describe('resource scenario', () => {
  it('runs 8 small tasks normally and 2 large ones chunked, failing none', async () => {
    const report = await runScenario(resource, { seed: 1 });
    expect(report.tasks).toBe(10);
    expect(report.values).toEqual({
      'budget.peak_mb': 100,
      'tasks.degraded': 2,
      'tasks.failed': 0,
      'tasks.normal': 8,
      'utilisation.peak': 1,
    });
    expect(report.metrics.completion).toMatchObject({ rate: 1, count: 10, total: 10 });
    expect(report.metrics.normal).toMatchObject({ rate: 0.8, count: 8, total: 10 });
    expect(report.metrics.degraded).toMatchObject({ rate: 0.2, count: 2, total: 10 });
    expect(report.metrics.failed).toMatchObject({ rate: 0, count: 0, total: 10 });
    // Small: one 100 ms run. First large: 2 chunks of 15 MB. Second: 6 chunks of 5 MB.
    expect(report.latency.duration).toMatchObject({ count: 10, min: 100, max: 600 });
    expect(report.virtualMs).toBe(600);
    expect(report.series?.utilisation?.[0]).toEqual([0, 1]);
    expect(report.checks.every((c) => c.passed)).toBe(true);
    expect(report.passed).toBe(true);
  });

  it('scales by batches of 10 arriving together', async () => {
    const report = await runScenario(resource, { seed: 1, tasks: 1005, runs: 2 });
    expect(report.values['tasks.normal']).toBe(2 * (100 * 8 + 5));
    expect(report.values['tasks.degraded']).toBe(2 * 200);
    expect(report.values['tasks.failed']).toBe(0);
    expect(report.values['utilisation.peak']).toBe(1);
    expect(report.metrics.completion).toMatchObject({ rate: 1, count: 2010, total: 2010 });
    expect(report.metrics.completion?.spread).toEqual({ min: 1, max: 1, sd: 0 });
    expect(report.passed).toBe(true);
  });
});
