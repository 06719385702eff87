import { describe, expect, it } from 'vitest';
import { runScenario } from '../runner.js';
import { queue } from './queue.js';

describe('queue scenario', () => {
  it('matches the analytic rates at scale and loses no job (memory, virtual time)', async () => {
    const report = await runScenario(queue, { seed: 42, tasks: 20_000 });
    expect(report.passed).toBe(true);
    expect(report.values['jobs.lost']).toBe(0);
    expect(report.values['jobs.duplicates']).toBe(0);
    expect(report.metrics.final?.rate).toBeCloseTo(0.94635, 1);
  });

  it('is reproducible: the same seed gives the same report', async () => {
    const a = await runScenario(queue, { seed: 'same', tasks: 500 });
    const b = await runScenario(queue, { seed: 'same', tasks: 500 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });

  it('runs on SQLite in real time with the same seeded refusals', async () => {
    const memory = await runScenario(queue, { seed: 5, tasks: 300 });
    const sqlite = await runScenario(queue, {
      seed: 5,
      tasks: 300,
      params: { backend: 'sqlite', workMs: 1 },
    });
    expect(sqlite.passed).toBe(true);
    expect(sqlite.values['jobs.lost']).toBe(0);
    expect(sqlite.metrics.final?.count).toBe(memory.metrics.final?.count);
    expect(sqlite.metrics.primary_success?.count).toBe(memory.metrics.primary_success?.count);
  });

  it('rejects an unknown backend before running', async () => {
    await expect(runScenario(queue, { seed: 1, params: { backend: 'redis' } })).rejects.toThrow(/backend/);
  });
});
