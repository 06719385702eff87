import { describe, expect, it } from 'vitest';
import { runScenario } from '../runner.js';
import { disk } from './disk.js';

describe('disk scenario', () => {
  it('loses and corrupts records with the plain writer, and nothing with the safe one', async () => {
    const report = await runScenario(disk, { seed: 1 });
    const { values, metrics } = report;
    // The faults fired on both disks: ENOSPC at about the configured rate, EACCES through its window.
    expect(values['faults.plain:full']).toBeGreaterThan(0);
    // One append per record, 2 s at 10 ms: 200, less those the ENOSPC rule (checked first) took.
    expect(values['faults.plain:denied']! + values['faults.plain:full']!).toBeGreaterThan(200);
    expect(values['faults.plain:denied']).toBeLessThanOrEqual(200);
    expect(values['faults.plain:denied']).toBeGreaterThan(150);
    expect(values['faults.safe:full']).toBeGreaterThan(0);
    expect(values['faults.safe:denied']).toBeGreaterThan(0);
    // Plain append: failed appends lose their record, torn ones also corrupt the record after them.
    expect(metrics['plain.acknowledged']?.rate).toBeLessThan(0.8);
    expect(values['plain.lost_records']).toBeGreaterThan(200);
    expect(values['plain.acknowledged_then_lost']).toBeGreaterThan(0);
    expect(values['plain.corrupted_files']).toBe(1);
    // Safe writer: every record acknowledged, read back whole, exactly once; the EACCES window went to
    // the fallback directory.
    expect(metrics['safe.acknowledged']).toMatchObject({ rate: 1, count: 1000, total: 1000 });
    expect(metrics['safe.intact']).toMatchObject({ rate: 1, count: 1000, total: 1000 });
    expect(values['safe.lost_records']).toBe(0);
    expect(values['safe.corrupted_files']).toBe(0);
    expect(values['safe.duplicate_records']).toBe(0);
    expect(values['safe.fallback_records']).toBeGreaterThanOrEqual(200);
    expect(report.comparisons[0]).toMatchObject({ metric: 'records intact', significant: true });
    expect(report.comparisons[0]?.diff).toBeGreaterThan(0.2);
    expect(report.checks.every((c) => c.passed)).toBe(true);
    expect(report.passed).toBe(true);
    expect(report.virtualMs).toBeGreaterThanOrEqual(9990);
  });

  it('is reproducible from the seed and keeps the safe writer whole under harsher faults', async () => {
    const options = { seed: 9, tasks: 300, runs: 2, params: { enospcRate: 0.3, tornBytes: 40 } };
    const a = await runScenario(disk, options);
    expect(await runScenario(disk, options)).toEqual(a);
    expect(a.values['safe.lost_records']).toBe(0);
    expect(a.values['safe.corrupted_files']).toBe(0);
    expect(a.metrics['plain.intact']?.rate).toBeLessThan(0.7);
    expect(a.passed).toBe(true);
  });
});
