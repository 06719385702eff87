import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evaluate, runScenario, runSeed, runTasks } from './runner.js';
import { defineScenario } from './scenario.js';

const coin = defineScenario({
  name: 'coin',
  description: 'a biased coin, flipped once per task, each flip 10 ms apart',
  params: { p: 0.5 },
  defaults: { tasks: 1000 },
  async run({ runtime, tasks, params, record, progress }) {
    const random = runtime.random.fork('coin');
    for (let i = 0; i < tasks; i++) {
      await runtime.clock.sleep(10);
      const heads = random.next() < params.p;
      record.count('heads', heads);
      record.count('always', true);
      record.add('flips');
      record.max('largest', i);
      record.latency('gap', 10);
      progress(i + 1);
    }
  },
  analytic: ({ params }) => ({ heads: params.p, missing: 0.5 }),
  comparisons: [
    { metric: 'coin', before: 'heads', after: 'always' },
    { metric: 'absent', before: 'heads', after: 'nothing' },
  ],
  expect: ({ params }) => [
    { metric: 'heads', consistentWith: params.p },
    { metric: 'always', atLeast: 1 },
    { value: 'flips', atLeast: 1 },
  ],
});

describe('runSeed', () => {
  it('derives run seeds from the base seed', () => {
    expect(runSeed(42, 0)).toBe('42/run:0');
    expect(runSeed('abc', 3)).toBe('abc/run:3');
  });
});

describe('runScenario', () => {
  it('reports rates, values, histograms, analytic verdicts, comparisons and checks', async () => {
    const report = await runScenario(coin, { seed: 7 });
    expect(report.name).toBe('coin');
    expect(report.tasks).toBe(1000);
    expect(report.runs).toBe(1);
    expect(report.params).toEqual({ p: 0.5 });
    expect(Object.keys(report.metrics)).toEqual(['always', 'heads']);
    expect(report.metrics.always).toEqual({
      rate: 1,
      ci95: report.metrics.always?.ci95,
      count: 1000,
      total: 1000,
    });
    expect(report.metrics.heads?.total).toBe(1000);
    expect(report.metrics.heads?.spread).toBeUndefined();
    expect(report.values).toEqual({ flips: 1000, largest: 999 });
    expect(report.latency.gap?.count).toBe(1000);
    expect(report.virtualMs).toBe(10_000);
    expect(Object.keys(report.analytic)).toEqual(['heads']);
    expect(report.analytic.heads?.expected).toBe(0.5);
    expect(report.analytic.heads?.consistent).toBe(true);
    expect(report.comparisons).toHaveLength(1);
    expect(report.comparisons[0]?.metric).toBe('coin');
    expect(report.comparisons[0]?.significant).toBe(true);
    expect(report.comparisons[0]?.warning).toBeUndefined();
    expect(report.checks.map((c) => c.passed)).toEqual([true, true, true]);
    expect(report.passed).toBe(true);
  });

  it('gives identical reports for the same seed and different counts for another', async () => {
    const a = await runScenario(coin, { seed: 1, tasks: 500 });
    const b = await runScenario(coin, { seed: 1, tasks: 500 });
    const c = await runScenario(coin, { seed: 2, tasks: 500 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(c.metrics.heads?.count).not.toBe(a.metrics.heads?.count);
  });

  it('pools K runs on derived seeds and reports the per-run spread', async () => {
    const pooled = await runScenario(coin, { seed: 3, tasks: 200, runs: 4 });
    const singles = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        // A run of the pooled execution is a single run whose base seed is such that `${seed}/run:0` matches:
        // reproduce it directly from the derived seed's stream.
        const one = await runScenario(defineScenario({ ...coin, name: 'coin' }), {
          seed: 3,
          tasks: 200,
          runs: i + 1,
        });
        return one.metrics.heads?.count ?? 0;
      }),
    );
    // Pooling is cumulative: K runs contain the first K - 1 runs.
    expect(pooled.runs).toBe(4);
    expect(pooled.metrics.heads?.total).toBe(800);
    expect(pooled.metrics.heads?.count).toBe(singles[3]);
    expect(singles[0]! < singles[1]! && singles[1]! < singles[2]!).toBe(true);
    const rates = [
      singles[0]!,
      singles[1]! - singles[0]!,
      singles[2]! - singles[1]!,
      singles[3]! - singles[2]!,
    ].map((n) => n / 200);
    const mean = rates.reduce((s, r) => s + r, 0) / 4;
    const sd = Math.sqrt(rates.reduce((s, r) => s + (r - mean) ** 2, 0) / 3);
    expect(pooled.metrics.heads?.spread).toEqual({ min: Math.min(...rates), max: Math.max(...rates), sd });
    expect(pooled.metrics.always?.spread).toEqual({ min: 1, max: 1, sd: 0 });
    expect(pooled.values.flips).toBe(800);
    expect(pooled.values.largest).toBe(199);
    expect(pooled.latency.gap?.count).toBe(800);
    expect(pooled.virtualMs).toBe(8000);
    expect(pooled.checks[0]?.message).toMatch(/^heads = \d+\/800 = /);
  });

  it('reports progress over all runs', async () => {
    const seen: [number, number][] = [];
    await runScenario(coin, { seed: 1, tasks: 3, runs: 2, onProgress: (d, t) => seen.push([d, t]) });
    expect(seen).toEqual([
      [1, 6],
      [2, 6],
      [3, 6],
      [4, 6],
      [5, 6],
      [6, 6],
    ]);
  });

  it('fails a scenario whose checks fail, with the reason', async () => {
    const report = await runScenario(coin, { seed: 1, tasks: 2000, params: { p: 0.9 } });
    // The expectation follows the parameter, so it still passes…
    expect(report.passed).toBe(true);
    const strict = defineScenario({ ...coin, expect: [{ metric: 'heads', consistentWith: 0.5 }] });
    const failed = await runScenario(strict, { seed: 1, tasks: 2000, params: { p: 0.9 } });
    expect(failed.passed).toBe(false);
    expect(failed.checks[0]?.message).toMatch(/inconsistent with 0\.5 \(p < 0\.001\)/);
  });

  it('validates its options', async () => {
    await expect(runScenario(coin, { seed: 1, tasks: 0 })).rejects.toThrow(/tasks/);
    await expect(runScenario(coin, { seed: 1, runs: 0 })).rejects.toThrow(/runs/);
    await expect(runScenario(coin, { seed: Number.NaN })).rejects.toThrow(/seed/);
    await expect(runScenario(coin, { seed: 1, params: { q: 1 } })).rejects.toThrow(/unknown parameter "q"/);
    await expect(runScenario(coin, { seed: 1, extra: 1 } as never)).rejects.toThrow(/unknown option "extra"/);
  });
});

describe('runScenario properties', () => {
  it('pools tasks × runs trials, keeps the pooled rate within the per-run spread, and is reproducible', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 8 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 4 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (seed, tasks, runs, p) => {
          const a = await runScenario(coin, { seed, tasks, runs, params: { p } });
          const b = await runScenario(coin, { seed, tasks, runs, params: { p } });
          expect(JSON.stringify(a)).toBe(JSON.stringify(b));
          const heads = a.metrics.heads!;
          expect(heads.total).toBe(tasks * runs);
          expect(a.values.flips).toBe(tasks * runs);
          if (runs > 1) {
            expect(heads.spread!.min).toBeLessThanOrEqual(heads.rate + 1e-12);
            expect(heads.spread!.max).toBeGreaterThanOrEqual(heads.rate - 1e-12);
          } else expect(heads.spread).toBeUndefined();
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('evaluate', () => {
  const pooled = new Map([['ok', { count: 9, total: 10 }]]);
  it('checks bounds on rates and values', () => {
    expect(evaluate({ metric: 'ok', atLeast: 0.9 }, pooled, {})).toEqual({
      description: 'ok >= 0.9',
      passed: true,
      message: 'ok = 9/10 = 0.9',
    });
    expect(evaluate({ metric: 'ok', atLeast: 0.5, atMost: 0.8 }, pooled, {}).passed).toBe(false);
    expect(evaluate({ value: 'n', equals: 3 }, pooled, { n: 3 })).toEqual({
      description: 'n = 3',
      passed: true,
      message: 'n = 3',
    });
    expect(evaluate({ value: 'n', atMost: 2, description: 'few' }, pooled, { n: 3 })).toEqual({
      description: 'few',
      passed: false,
      message: 'n = 3',
    });
    expect(evaluate({ value: 'm', equals: 0 }, pooled, {})).toEqual({
      description: 'm = 0',
      passed: false,
      message: 'm was not recorded',
    });
    expect(evaluate({ metric: 'nope', consistentWith: 0.5 }, pooled, {}).passed).toBe(false);
  });
});

describe('runTasks', () => {
  it('runs every index once with bounded concurrency', async () => {
    let inFlight = 0;
    let most = 0;
    const seen: number[] = [];
    await runTasks(25, 4, async (i) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await Promise.resolve();
      seen.push(i);
      inFlight--;
    });
    expect(most).toBe(4);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i));
  });

  it('rejects with the first error', async () => {
    await expect(
      runTasks(10, 2, async (i) => {
        if (i === 3) throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
  });
});

describe('runScenario on the system clock', () => {
  it('runs in real time with the seeded random stream of each run', async () => {
    const seen: number[] = [];
    const realtime = defineScenario({
      name: 'realtime',
      description: 'real I/O, seeded decisions',
      params: {},
      defaults: { tasks: 3 },
      clock: 'system',
      async run({ runtime, tasks, record }) {
        const random = runtime.random.fork('draws');
        for (let i = 0; i < tasks; i++) {
          // Real I/O: a loopback-free stand-in that still leaves the event loop.
          await new Promise<void>((resolve) => setImmediate(resolve));
          const draw = random.next();
          seen.push(draw);
          record.count('low', draw < 0.5);
        }
        record.add('elapsed_nonnegative', runtime.clock.now() >= 0 ? 1 : 0);
      },
    });
    const first = await runScenario(realtime, { seed: 7, runs: 2 });
    const again = await runScenario(realtime, { seed: 7, runs: 2 });
    expect(first.virtualMs).toBe(0);
    expect(first.metrics.low?.total).toBe(6);
    expect(again.metrics).toEqual(first.metrics);
    expect(seen.slice(0, 6)).toEqual(seen.slice(6));
  });

  it('rejects an unknown clock', () => {
    expect(() =>
      defineScenario({
        name: 'x',
        description: '',
        params: {},
        defaults: { tasks: 1 },
        clock: 'wall' as 'system',
        run() {},
      }),
    ).toThrow(/clock.*"virtual", "system" or a function/);
  });
});
