import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Random } from '../core/random.js';
import { LogHistogram } from './histogram.js';

/** The exact nearest-rank quantile of a sorted array: the smallest value with at least q·n values at or below. */
function exactQuantile(sorted: readonly number[], q: number): number {
  const rank = Math.max(1, Math.ceil(q * sorted.length - 1e-9));
  return sorted[rank - 1]!;
}

function within(actual: number, exact: number): boolean {
  // Values below the smallest normal double count as 0: an absolute error under 2.3e-308.
  return Math.abs(actual - exact) <= exact * LogHistogram.relativeError + 2.3e-308;
}

const quantiles = [0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1];

describe('LogHistogram', () => {
  it('summarises a small sample exactly where it can', () => {
    const h = new LogHistogram();
    for (const ms of [12, 15, 15, 240]) h.record(ms);
    expect(h.count).toBe(4);
    expect(h.min).toBe(12);
    expect(h.max).toBe(240);
    expect(h.mean).toBe(70.5);
    // 15 lies in [8, 16), cut into 128 buckets of 1/16: bucket [15, 15.0625), midpoint 15.03125.
    expect(h.quantile(0.5)).toBe(15.03125);
    expect(h.quantile(0)).toBe(12);
    expect(h.quantile(1)).toBe(240);
    expect(h.toJSON()).toEqual({
      count: 4,
      min: 12,
      max: 240,
      mean: 70.5,
      p50: 15.03125,
      p90: 240,
      p99: 240,
      p999: 240,
      buckets: [
        [12.0625, 1],
        [15.0625, 2],
        [241, 1], // [240, 241): 240 lies in [128, 256), buckets of 1
      ],
    });
  });

  it('returns the exact value when every record is the same', () => {
    const h = new LogHistogram().record(15, 1000);
    for (const q of quantiles) expect(h.quantile(q)).toBe(15);
  });

  it('counts 0 (and -0) in a zero bucket listed as [0, n]', () => {
    const h = new LogHistogram().record(0).record(-0).record(5);
    expect(h.min).toBe(0);
    expect(Object.is(h.min, -0)).toBe(false);
    expect(h.quantile(0.5)).toBe(0);
    expect(h.toJSON().buckets).toEqual([
      [0, 2],
      [5.03125, 1],
    ]);
  });

  it('is empty with NaN summaries in memory and nulls in JSON', () => {
    const h = new LogHistogram();
    expect([h.count, h.min, h.max, h.mean, h.quantile(0.5)]).toEqual([
      0,
      Number.NaN,
      Number.NaN,
      Number.NaN,
      Number.NaN,
    ]);
    expect(h.toJSON()).toEqual({
      count: 0,
      min: null,
      max: null,
      mean: null,
      p50: null,
      p90: null,
      p99: null,
      p999: null,
      buckets: [],
    });
    expect(LogHistogram.fromJSON(h.toJSON()).toJSON()).toEqual(h.toJSON());
  });

  it('treats q·count within rounding of an integer as that integer (nearest rank)', () => {
    const h = new LogHistogram();
    for (let i = 1; i <= 1000; i++) h.record(i);
    const hundred = new LogHistogram();
    for (let i = 1; i <= 100; i++) hundred.record(i);
    expect(0.07 * 100).toBe(7.000000000000001);
    expect(hundred.quantile(0.07)).toBe(7.015625); // the 7th value: 7 in [7, 7.03125) of [4, 8)
    expect(h.quantile(0.999)).toBe(998); // the 999th value: 999 in [996, 1000) of [512, 1024)
    expect(h.quantile(0.5)).toBe(501); // the 500th value: 500 in [500, 502) of [256, 512)
    expect(h.quantile(0.0005)).toBe(1); // rank 1 is the minimum, exactly
    expect(h.quantile(0.9995)).toBe(1000); // rank 1000 is the maximum, exactly
  });

  it('quantiles are within the documented relative error of the exact nearest-rank quantiles', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1e12, noNaN: true }), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 0, max: 1000 }),
        (values, permille) => {
          const h = new LogHistogram();
          for (const v of values) h.record(v);
          const sorted = [...values].sort((a, b) => a - b);
          for (const q of [...quantiles, permille / 1000]) {
            const exact = exactQuantile(sorted, q);
            const got = h.quantile(q);
            if (!within(got, exact)) throw new Error(`q=${q}: got ${got}, exact ${exact}`);
          }
          expect(h.min).toBe(sorted[0]);
          expect(h.max).toBe(sorted[sorted.length - 1]);
          expect(h.count).toBe(values.length);
        },
      ),
    );
  });

  it('holds the error bound on latency-like data from a seeded generator (100,000 records)', () => {
    const random = new Random(7);
    const values: number[] = [];
    const h = new LogHistogram();
    for (let i = 0; i < 100_000; i++) {
      const v = random.lognormal(Math.log(20), 1.5); // median 20 ms, p99 ≈ 650 ms
      values.push(v);
      h.record(v);
    }
    values.sort((a, b) => a - b);
    for (let permille = 0; permille <= 1000; permille++) {
      const q = permille / 1000;
      expect(within(h.quantile(q), exactQuantile(values, q))).toBe(true);
    }
    const mean = values.reduce((sum, v) => sum + v, 0) / values.length;
    expect(h.mean).toBeCloseTo(mean, 6);
  });

  it('merging equals recording both', () => {
    const sample = fc.array(fc.double({ min: 0, max: 1e9, noNaN: true }), { maxLength: 200 });
    fc.assert(
      fc.property(sample, sample, (xs, ys) => {
        const a = new LogHistogram();
        const b = new LogHistogram();
        const both = new LogHistogram();
        for (const x of xs) {
          a.record(x);
          both.record(x);
        }
        for (const y of ys) {
          b.record(y);
          both.record(y);
        }
        const merged = a.merge(b).toJSON();
        const direct = both.toJSON();
        // The sums differ only by floating-point association.
        expect({ ...merged, mean: null }).toEqual({ ...direct, mean: null });
        if (direct.mean === null) expect(merged.mean).toBeNull();
        else expect(Math.abs(merged.mean! - direct.mean)).toBeLessThanOrEqual(Math.abs(direct.mean) * 1e-12);
      }),
    );
    // Integer values sum exactly: the whole snapshot is equal.
    const a = new LogHistogram().record(3, 5).record(1_000);
    const b = new LogHistogram().record(0).record(70, 2);
    const both = new LogHistogram().record(3, 5).record(1_000).record(0).record(70, 2);
    expect(a.merge(b).toJSON()).toEqual(both.toJSON());
    expect(new LogHistogram().merge(new LogHistogram()).count).toBe(0);
    const self = new LogHistogram().record(1).record(2);
    expect(self.merge(self).toJSON()).toEqual(new LogHistogram().record(1, 2).record(2, 2).toJSON());
  });

  it('memory is bounded by the range of the values, not their number', () => {
    const random = new Random(11);
    const h = new LogHistogram();
    for (let i = 0; i < 1_000_000; i++) h.record(10 ** (random.next() * 9 - 3)); // 1 µs to 1e6 ms
    expect(h.count).toBe(1_000_000);
    // 9 decades = 29.9 powers of two, 128 buckets each: at most 31 · 128.
    expect(h.bucketCount).toBeLessThanOrEqual(31 * 128);
    const filled = h.bucketCount;
    for (let i = 0; i < 1_000_000; i++) h.record(10 ** (random.next() * 9 - 3));
    expect(h.bucketCount).toBe(filled);
    expect(h.toJSON().buckets.length).toBe(filled);
  });

  it('values far apart (beyond the dense range) count the same in any order of arrival', () => {
    const random = new Random(12);
    const values = [5e-324, 1e-300, 0, 2 ** -40, 1e300, 2 ** 40];
    for (let i = 0; i < 5000; i++) values.push(10 ** (random.next() * 24 - 12));
    const ascending = [...values].sort((a, b) => a - b);
    const orders = [values, ascending, [...ascending].reverse()];
    const jsons = orders.map((order) => {
      const h = new LogHistogram();
      for (const v of order) h.record(v);
      return h.toJSON();
    });
    expect(jsons[1]).toEqual(jsons[0]);
    expect(jsons[2]).toEqual(jsons[0]);
    const h = LogHistogram.fromJSON(jsons[0]);
    expect(h.toJSON()).toEqual(jsons[0]);
    for (const q of [0.001, 0.01, 0.25, 0.5, 0.9, 0.999]) {
      const exact = ascending[Math.ceil(q * ascending.length) - 1] as number;
      expect(Math.abs(h.quantile(q) - exact)).toBeLessThanOrEqual(exact * LogHistogram.relativeError);
    }
    const merged = new LogHistogram().record(1e-200).merge(h).record(1e200);
    expect(merged.count).toBe(values.length + 2);
    expect(merged.bucketCount).toBe(h.bucketCount + 2);
  });

  it('round-trips through JSON', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0, max: 1e15, noNaN: true }), fc.integer({ min: 1, max: 1000 })), {
          maxLength: 100,
        }),
        (records) => {
          const h = new LogHistogram();
          for (const [v, n] of records) h.record(v, n);
          const json = JSON.parse(JSON.stringify(h));
          const back = LogHistogram.fromJSON(json);
          expect(back.toJSON()).toEqual(h.toJSON());
          expect(back.count).toBe(h.count);
          expect(Number.isNaN(h.mean) || back.mean === h.mean).toBe(true);
        },
      ),
    );
  });

  it('fromJSON names what is wrong with a snapshot', () => {
    const good = new LogHistogram().record(12).record(15, 2).toJSON();
    const bad = (patch: object) => () => LogHistogram.fromJSON({ ...good, ...patch });
    expect(() => LogHistogram.fromJSON(null)).toThrow(/the snapshot must be an object, got null/);
    expect(bad({ count: 4 })).toThrow(/count must be the sum of the bucket counts \(3\), got 4/);
    expect(bad({ buckets: [[12.05, 1]] })).toThrow(
      /buckets\[0\]\[0\] must be a bucket upper bound, got 12.05/,
    );
    expect(
      bad({
        buckets: [
          [15.0625, 2],
          [12.0625, 1],
        ],
      }),
    ).toThrow(/buckets\[1\]\[0\] must be greater than buckets\[0\]\[0\], got 12.0625/);
    expect(
      bad({
        buckets: [
          [12.0625, 0],
          [15.0625, 3],
        ],
      }),
    ).toThrow(/buckets\[0\]\[1\] must be an integer >= 1, got 0/);
    expect(bad({ min: 13 })).toThrow(/min must be a number in the first bucket, got 13/);
    expect(bad({ max: 16 })).toThrow(/max must be a finite number in the last bucket, got 16/);
    expect(bad({ mean: 20 })).toThrow(/mean must be a number from min \(12\) to max \(15\), got 20/);
    expect(bad({ buckets: 'x' })).toThrow(/buckets must be an array/);
  });

  it('rejects bad values, counts and quantiles', () => {
    const h = new LogHistogram();
    expect(() => h.record(-1)).toThrow(/LogHistogram.record: value must be a finite number >= 0, got -1/);
    expect(() => h.record(Number.NaN)).toThrow(/got NaN/);
    expect(() => h.record(Number.POSITIVE_INFINITY)).toThrow(/got Infinity/);
    expect(() => h.record(1, 1.5)).toThrow(/count must be an integer >= 0, got 1.5/);
    expect(() => h.quantile(1.5)).toThrow(/LogHistogram.quantile: q must be a number in \[0, 1\], got 1.5/);
    expect(() => h.merge({} as LogHistogram)).toThrow(/other must be a LogHistogram/);
    h.record(5, 0);
    expect(h.count).toBe(0);
  });
});
