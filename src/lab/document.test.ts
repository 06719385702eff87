import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../core/clock.js';
import { labReport, runLab, serializeReport, withoutMeta } from './document.js';
import { builtinScenarios } from './scenarios/index.js';

// The cheap per-task scenarios: these tests are about the document, run at thousands of tasks.
const scenarios = [...builtinScenarios().values()].filter((s) =>
  ['network', 'resource', 'queue'].includes(s.name),
);

describe('runLab', () => {
  it('serialises identically outside meta for the same seed', async () => {
    const a = await runLab({ seed: 42, scenarios, tasks: 2000 });
    const b = await runLab({ seed: 42, scenarios, tasks: 2000 });
    expect(serializeReport({ ...a, meta: b.meta })).toBe(serializeReport(b));
    expect(JSON.stringify(withoutMeta(a))).toBe(JSON.stringify(withoutMeta(b)));
    expect(Object.keys(a)).toEqual(['seed', 'scenarios', 'meta']);
    expect(a.seed).toBe(42);
    expect(a.scenarios.map((s) => s.name)).toEqual(['network', 'resource', 'queue']);
    expect(Object.keys(a.scenarios[0]!)).toEqual([
      'name',
      'description',
      'tasks',
      'runs',
      'passed',
      'params',
      'metrics',
      'values',
      'latency',
      'analytic',
      'comparisons',
      'checks',
      'virtualMs',
    ]);
    expect(a.meta.node).toBe(process.version);
    expect(a.meta.wallMs).toBeGreaterThanOrEqual(0);
    expect(Object.keys(a.meta.scenarioWallMs)).toEqual(['network', 'resource', 'queue']);
  });

  it('differs for another seed', async () => {
    const a = await runLab({ seed: 1, scenarios, tasks: 2000 });
    const b = await runLab({ seed: 2, scenarios, tasks: 2000 });
    expect(a.scenarios[0]?.metrics.final?.count).not.toBe(b.scenarios[0]?.metrics.final?.count);
  });

  it('passes runs, params, progress and meta through, timing with the given clock', async () => {
    const clock = new VirtualClock();
    const progress: string[] = [];
    const report = await runLab({
      seed: 's',
      scenarios: scenarios.slice(1, 2),
      tasks: 20,
      runs: 3,
      params: { resource: { workMs: 50 } },
      onProgress: (name, done, total) => progress.push(`${name} ${done}/${total}`),
      meta: { version: '0.1.0' },
      wallClock: clock,
    });
    expect(report.scenarios[0]).toMatchObject({ runs: 3, tasks: 20, params: { workMs: 50 } });
    expect(progress).toEqual([10, 20, 30, 40, 50, 60].map((n) => `resource ${n}/60`));
    expect(report.meta).toMatchObject({ wallMs: 0, scenarioWallMs: { resource: 0 }, version: '0.1.0' });
  });

  it('validates its options', async () => {
    await expect(runLab({ seed: 1, scenarios: 'x' as never })).rejects.toThrow(/scenarios/);
    await expect(runLab({ seed: 1, scenarios, other: 1 } as never)).rejects.toThrow(/unknown option "other"/);
  });
});

describe('labReport / serializeReport', () => {
  it('assembles the document with machine facts under meta', () => {
    const doc = labReport('seed', [], { wallMs: 5, scenarioWallMs: {} });
    expect(doc).toEqual({
      seed: 'seed',
      scenarios: [],
      meta: {
        node: process.version,
        platform: process.platform,
        arch: process.arch,
        wallMs: 5,
        scenarioWallMs: {},
      },
    });
    expect(serializeReport(doc).endsWith('}\n')).toBe(true);
    expect(JSON.parse(serializeReport(doc))).toEqual(doc);
  });
});
