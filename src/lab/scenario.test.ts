import { describe, expect, it } from 'vitest';
import { defineScenario, Measurements, resolveParams } from './scenario.js';

const base = {
  name: 'coin',
  description: 'a coin',
  params: { p: 0.5, label: 'x', on: true },
  defaults: { tasks: 10 },
  run() {},
};

describe('defineScenario', () => {
  it('returns a frozen scenario with its definition', () => {
    const s = defineScenario(base);
    expect(s.kind).toBe('scenario');
    expect(s.name).toBe('coin');
    expect(s.params).toEqual({ p: 0.5, label: 'x', on: true });
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.params)).toBe(true);
  });

  it('rejects bad definitions naming the field', () => {
    expect(() => defineScenario({ ...base, name: 'Bad Name' })).toThrow(/name/);
    expect(() => defineScenario({ ...base, description: 3 as unknown as string })).toThrow(/description/);
    expect(() => defineScenario({ ...base, defaults: { tasks: 0 } })).toThrow(
      /defaults\.tasks.*integer >= 1/,
    );
    expect(() => defineScenario({ ...base, defaults: { tasks: 1.5 } })).toThrow(/defaults\.tasks/);
    expect(() => defineScenario({ ...base, run: undefined as unknown as () => void })).toThrow(/run/);
    expect(() => defineScenario({ ...base, params: { p: [] as unknown as number } })).toThrow(/params\.p/);
    expect(() => defineScenario({ ...base, params: { p: Number.NaN } })).toThrow(/params\.p/);
    expect(() => defineScenario({ ...base, extra: 1 } as unknown as typeof base)).toThrow(
      /unknown option "extra"/,
    );
    expect(() => defineScenario({ ...base, expect: 'x' as unknown as [] })).toThrow(/expect/);
    expect(() => defineScenario({ ...base, runtime: 1 } as unknown as typeof base)).toThrow(
      /unknown option "runtime"/,
    );
    expect(() => defineScenario({ ...base, defaults: { tasks: 1, runs: 2 } as never })).toThrow(
      'defineScenario: unknown option "defaults.runs"; known options are tasks',
    );
  });
});

describe('resolveParams', () => {
  const s = defineScenario(base);
  it('merges overrides into the defaults', () => {
    expect(resolveParams(s, { p: 0.25 })).toEqual({ p: 0.25, label: 'x', on: true });
    expect(resolveParams(s, undefined)).toEqual({ p: 0.5, label: 'x', on: true });
  });
  it('rejects unknown keys and wrong types', () => {
    expect(() => resolveParams(s, { q: 1 })).toThrow(
      'unknown parameter "q"; known parameters are p, label, on',
    );
    expect(() => resolveParams(s, { p: '0.3' })).toThrow(
      'scenario coin: option "params.p" must be a number, got "0.3"',
    );
    expect(() => resolveParams(s, { on: 1 })).toThrow(/"params\.on" must be a boolean/);
  });
});

describe('Measurements', () => {
  it('counts rates, sums, maxima, histograms and series', () => {
    const m = new Measurements();
    m.count('ok', true);
    m.count('ok', false);
    m.count('ok', true);
    m.countMany('ok', 2, 5);
    m.add('calls');
    m.add('calls', 4);
    m.max('peak', 3);
    m.max('peak', 1);
    m.latency('t', 10);
    m.latency('t', 20);
    m.series('u', [
      [0, 0.5],
      [10, 1],
    ]);
    expect(m.rates.get('ok')).toEqual({ count: 4, total: 8 });
    expect(m.sums.get('calls')).toBe(5);
    expect(m.maxima.get('peak')).toBe(3);
    expect(m.histograms.get('t')?.count).toBe(2);
    expect(m.charts.get('u')).toEqual([
      [0, 0.5],
      [10, 1],
    ]);
  });

  it('rejects bad values and a name used as both counter and gauge', () => {
    const m = new Measurements();
    expect(() => m.countMany('x', 3, 2)).toThrow(/successes/);
    expect(() => m.countMany('x', 0, -1)).toThrow(/total/);
    expect(() => m.add('x', Number.NaN)).toThrow(/finite/);
    m.add('x');
    expect(() => m.max('x', 1)).toThrow('record.max: "x" is already a counter (record.add)');
    m.max('y', 1);
    expect(() => m.add('y')).toThrow('record.add: "y" is already a gauge (record.max)');
    expect(() => m.latency('t', -1)).toThrow(/LogHistogram/);
    expect(() => m.series('s', new Array(1025).fill([0, 0]))).toThrow(/at most 1024/);
  });
});
