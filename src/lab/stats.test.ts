import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  binomialConsistency,
  logGamma,
  normalCdf,
  normalQuantile,
  powerWarning,
  rate,
  sampleSizePerArm,
  twoProportionTest,
  wilson,
} from './stats.js';

/** |actual − expected| ≤ tolerance · |expected|. */
function expectRelative(actual: number, expected: number, tolerance: number): void {
  const error = Math.abs(actual - expected) / Math.abs(expected);
  if (!(error <= tolerance)) {
    throw new Error(`expected ${actual} to be within ${tolerance} (relative) of ${expected}: error ${error}`);
  }
}

const round4 = ([lo, hi]: [number, number]) => [Number(lo.toFixed(4)), Number(hi.toFixed(4))];

describe('normalCdf', () => {
  // Reference values: mpmath.ncdf at 50 significant digits.
  const reference: [number, number][] = [
    [-37.5, 4.605353009581955e-308],
    [-30, 4.906713927148187e-198],
    [-20, 2.7536241186062337e-89],
    [-10, 7.619853024160525e-24],
    [-8, 6.220960574271784e-16],
    [-5, 2.866515718791939e-7],
    [-3, 0.0013498980316300946],
    [-1, 0.15865525393145705],
    [0.5, 0.6914624612740131],
    [1.5, 0.9331927987311419],
  ];

  it('matches high-precision values to 1e-13 relative, deep into the lower tail', () => {
    for (const [z, p] of reference) expectRelative(normalCdf(z), p, 1e-13);
    expect(normalCdf(-5)).toBeCloseTo(2.866515718791939e-7, 20);
  });

  it('is 0.5 at 0, exactly 0 and 1 at the infinities, and underflows to 0 below the smallest double', () => {
    expect(normalCdf(0)).toBe(0.5);
    expect(normalCdf(Number.NEGATIVE_INFINITY)).toBe(0);
    expect(normalCdf(Number.POSITIVE_INFINITY)).toBe(1);
    expect(normalCdf(-40)).toBe(0);
    expect(normalCdf(40)).toBe(1);
  });

  it('is symmetric and increasing', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -9, max: 9, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (z, dz) => {
          expect(Math.abs(normalCdf(z) + normalCdf(-z) - 1)).toBeLessThan(2e-16);
          expect(normalCdf(z + dz)).toBeGreaterThanOrEqual(normalCdf(z));
        },
      ),
    );
  });

  it('rejects NaN', () => {
    expect(() => normalCdf(Number.NaN)).toThrow(/normalCdf: z must be a number, got NaN/);
  });
});

describe('normalQuantile', () => {
  it('matches high-precision values', () => {
    // Within 2 ulps of the true 1.95996398454005423552…; the brief's 1e-9 is met a million times over.
    expect(Math.abs(normalQuantile(0.975) - 1.959963984540054)).toBeLessThan(5e-16);
    // mpmath at 60 digits: sqrt(2)·erfinv(2p − 1), or the root of log(ncdf(x)) = log(p) in the far tail.
    expectRelative(normalQuantile(1e-300), -37.0470962993612, 1e-15);
    expectRelative(normalQuantile(1e-20), -9.262340089798407, 1e-15);
    expectRelative(normalQuantile(1e-10), -6.361340902404057, 1e-15);
    expectRelative(normalQuantile(0.001), -3.0902323061678136, 1e-15);
    expectRelative(normalQuantile(0.025), -1.9599639845400543, 1e-15);
    expectRelative(normalQuantile(0.3), -0.5244005127080408, 1e-15);
    expectRelative(normalQuantile(0.8), 0.8416212335729142, 1e-15);
    expectRelative(normalQuantile(0.999999), 4.753424308822899, 1e-9);
    expect(normalQuantile(0.5)).toBe(0);
  });

  it('gives ±Infinity at 0 and 1 and rejects anything outside [0, 1]', () => {
    expect(normalQuantile(0)).toBe(Number.NEGATIVE_INFINITY);
    expect(normalQuantile(1)).toBe(Number.POSITIVE_INFINITY);
    for (const p of [-0.1, 1.1, Number.NaN]) {
      expect(() => normalQuantile(p)).toThrow(/normalQuantile: p must be a probability in \[0, 1\]/);
    }
  });

  it('inverts normalCdf to 1e-13 relative over the whole lower half', () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-300, max: 0.5, noNaN: true }), (p) => {
        // An error e in z moves Φ by a relative z·e: allow 1e-15·(1 + z²).
        const z = normalQuantile(p);
        expectRelative(normalCdf(z), p, 1e-15 * (1 + z * z));
      }),
    );
    fc.assert(
      // Above 3, Φ(z) is too close to 1 for a double to pin z down; the lower tail has no such limit.
      fc.property(fc.double({ min: -37, max: 3, noNaN: true }), (z) => {
        expect(Math.abs(normalQuantile(normalCdf(z)) - z)).toBeLessThan(1e-13 * Math.max(1, Math.abs(z)));
      }),
    );
  });
});

describe('logGamma', () => {
  it('matches high-precision values (mpmath.loggamma)', () => {
    expect(logGamma(1)).toBe(0);
    expect(logGamma(2)).toBe(0);
    expect(logGamma(11)).toBe(Math.log(3_628_800));
    // Below 10 the recurrence costs a few ulps of ln Γ(x + k): absolute error ~1e-15, as documented.
    expect(Math.abs(logGamma(0.5) - 0.5723649429247001)).toBeLessThan(4e-15);
    expect(Math.abs(logGamma(3.7) - 1.4280723266653879)).toBeLessThan(4e-15);
    expectRelative(logGamma(10), 12.80182748008147, 1e-15);
    expectRelative(logGamma(100.25), 360.28455963776423, 1e-15);
    expectRelative(logGamma(10001), 82108.92783681436, 1e-15);
  });

  it('agrees with the log of the factorial', () => {
    let logFactorial = 0;
    for (let n = 1; n <= 170; n++) {
      logFactorial += Math.log(n);
      expect(Math.abs(logGamma(n + 1) - logFactorial)).toBeLessThan(1e-12 * Math.max(1, logFactorial));
    }
  });

  it('rejects x <= 0', () => {
    expect(() => logGamma(0)).toThrow(/logGamma: x must be a number > 0, got 0/);
  });
});

describe('wilson and rate', () => {
  it('matches known intervals', () => {
    expect(round4(wilson(50, 100))).toEqual([0.4038, 0.5962]);
    // Newcombe (1998), Table I: 81/263 → 0.2553 to 0.3662; 15/148 → 0.0624 to 0.1605.
    expect(round4(wilson(81, 263))).toEqual([0.2553, 0.3662]);
    expect(round4(wilson(15, 148))).toEqual([0.0624, 0.1605]);
    expect(round4(wilson(5, 10))).toEqual([0.2366, 0.7634]);
    expect(round4(wilson(9, 10))).toEqual([0.5958, 0.9821]);
  });

  it('is exactly [0, 1] with no trials and touches 0 and 1 exactly at the extremes', () => {
    expect(wilson(0, 0)).toEqual([0, 1]);
    expect(wilson(0, 10)[0]).toBe(0);
    expect(wilson(10, 10)[1]).toBe(1);
    expect(round4(wilson(0, 10))).toEqual([0, 0.2775]);
  });

  it('widens with the confidence level', () => {
    const [lo90, hi90] = wilson(30, 100, 0.9);
    const [lo99, hi99] = wilson(30, 100, 0.99);
    expect(lo99).toBeLessThan(lo90);
    expect(hi99).toBeGreaterThan(hi90);
    // z = 2.5758293035489 for 99% (scipy: norm.ppf(0.995) in the same formula).
    expect(round4([lo99, hi99])).toEqual([0.1975, 0.4274]);
  });

  it('always contains the rate and stays in [0, 1]', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 0, max: 1_000_000 }), (x, y) => {
        const n = Math.max(x, y);
        const s = Math.min(x, y);
        const r = rate(s, n);
        expect(r.ci95[0]).toBeGreaterThanOrEqual(0);
        expect(r.ci95[1]).toBeLessThanOrEqual(1);
        expect(r.ci95[0]).toBeLessThanOrEqual(r.rate);
        expect(r.ci95[1]).toBeGreaterThanOrEqual(r.rate);
      }),
    );
  });

  it('rate() has the report shape', () => {
    const r = rate(9, 10);
    expect(r).toEqual({ rate: 0.9, ci95: wilson(9, 10), count: 9, total: 10 });
    expect(JSON.parse(JSON.stringify(rate(0, 0)))).toEqual({ rate: 0, ci95: [0, 1], count: 0, total: 0 });
  });

  it('rejects counts out of range', () => {
    expect(() => wilson(11, 10)).toThrow(/wilson: successes must be an integer from 0 to n \(10\), got 11/);
    expect(() => wilson(1.5, 10)).toThrow(/successes/);
    expect(() => wilson(1, -1)).toThrow(/wilson: n must be an integer >= 0, got -1/);
    expect(() => wilson(1, 10, 1)).toThrow(/confidence must be a number strictly between 0 and 1, got 1/);
    expect(() => rate(1, Number.NaN)).toThrow(/rate: n must be an integer >= 0, got NaN/);
  });
});

describe('twoProportionTest', () => {
  it("reproduces Newcombe's (1998) method 10 intervals, Table II", () => {
    const cases: [number, number, number, number, [number, number]][] = [
      // [a count, a total, b count, b total, CI for b − a]
      [48, 80, 56, 70, [0.0524, 0.3339]],
      [3, 10, 9, 10, [0.1705, 0.809]],
      [2, 7, 6, 7, [0.0582, 0.8062]],
      [0, 29, 5, 56, [-0.0381, 0.1926]],
      [0, 20, 0, 10, [-0.1611, 0.2775]],
      [0, 10, 0, 10, [-0.2775, 0.2775]],
      [0, 20, 10, 10, [0.6791, 1]],
      [0, 10, 10, 10, [0.6075, 1]],
    ];
    for (const [ac, at, bc, bt, ci] of cases) {
      expect(round4(twoProportionTest({ count: ac, total: at }, { count: bc, total: bt }).ci95)).toEqual(ci);
    }
    const first = twoProportionTest({ count: 48, total: 80 }, { count: 56, total: 70 });
    expect(first.diff).toBeCloseTo(0.2, 15);
    expect(first.relative).toBeCloseTo(1 / 3, 15);
  });

  it('reproduces published z-tests', () => {
    // Fulton vs Gwinnett county poll (281/473 vs 214/443): z = 3.3683 as published, 3.369 unrounded
    // (R: prop.test(correct = FALSE) gives X-squared = 11.35 = z²).
    const poll = twoProportionTest({ count: 214, total: 443 }, { count: 281, total: 473 });
    expect(poll.z).toBeCloseTo(3.369, 3);
    expect(poll.z ** 2).toBeCloseTo(11.35, 2);
    expect(poll.pValue).toBeCloseTo(0.000754435, 8);
    expect(poll.significant).toBe(true);
    // New York (168/300) vs Washington (96/200): z = 1.755, two-sided p = 0.0792.
    const cities = twoProportionTest({ count: 96, total: 200 }, { count: 168, total: 300 });
    expect(cities.z).toBeCloseTo(1.7555, 4);
    expect(cities.pValue).toBeCloseTo(0.0792, 4);
    expect(cities.significant).toBe(false);
    expect(cities.diff).toBeCloseTo(0.08, 15);
  });

  it('handles rates of 0 and 1 without dividing by zero', () => {
    const zeros = twoProportionTest({ count: 0, total: 10 }, { count: 0, total: 10 });
    expect(zeros).toMatchObject({ diff: 0, relative: null, z: 0, pValue: 1, significant: false });
    const ones = twoProportionTest({ count: 10, total: 10 }, { count: 10, total: 10 });
    expect(ones).toMatchObject({ diff: 0, relative: 0, z: 0, pValue: 1, significant: false });
    const huge = twoProportionTest({ count: 0, total: 100_000 }, { count: 100_000, total: 100_000 });
    expect(huge.pValue).toBe(0); // z = 447: below the smallest double
    expect(huge.ci95[1]).toBe(1);
  });

  it('keeps tiny p-values accurate rather than rounding 1 − Φ(z) to 0', () => {
    const t = twoProportionTest({ count: 50_000, total: 100_000 }, { count: 52_200, total: 100_000 });
    expect(t.z).toBeCloseTo(9.841080930820631, 12);
    expect(1 - normalCdf(t.z)).toBe(0); // what the naive upper tail would give
    // mpmath, 50 digits: 2·ncdf(−9.841080930820631).
    expectRelative(t.pValue, 7.490170732552744e-23, 1e-13);
  });

  it('its interval contains the difference and is antisymmetric in a and b', () => {
    const arm = fc
      .integer({ min: 1, max: 500 })
      .chain((total) => fc.record({ count: fc.integer({ min: 0, max: total }), total: fc.constant(total) }));
    fc.assert(
      fc.property(arm, arm, (a, b) => {
        const ab = twoProportionTest(a, b);
        const ba = twoProportionTest(b, a);
        expect(ab.ci95[0]).toBeLessThanOrEqual(ab.diff + 1e-15);
        expect(ab.ci95[1]).toBeGreaterThanOrEqual(ab.diff - 1e-15);
        expect(ab.ci95[0]).toBeCloseTo(-ba.ci95[1], 12);
        expect(ab.pValue).toBeCloseTo(ba.pValue, 12);
      }),
    );
  });

  it('rejects empty arms and bad counts', () => {
    expect(() => twoProportionTest({ count: 0, total: 0 }, { count: 1, total: 2 })).toThrow(
      /twoProportionTest: a.total must be an integer >= 1, got 0/,
    );
    expect(() => twoProportionTest({ count: 1, total: 2 }, { count: 3, total: 2 })).toThrow(
      /b.count must be an integer from 0 to b.total \(2\), got 3/,
    );
    expect(() => twoProportionTest(null as never, { count: 1, total: 2 })).toThrow(/a must be an object/);
  });
});

describe('binomialConsistency', () => {
  it('computes the exact two-sided p-value of small cases by hand', () => {
    // n = 10, p = 1/2, x = 2: P(X ≤ 2) + P(X ≥ 8) = 2 · (1 + 10 + 45) / 1024.
    const coin = binomialConsistency({ count: 2, total: 10 }, 0.5);
    expect(coin.method).toBe('binomial-exact');
    expectRelative(coin.pValue, 112 / 1024, 1e-12);
    // n = 10, p = 0.3, x = 6: every k with P(k) ≤ P(6) is k = 0 and k = 6…10;
    // Σ C(10,k) 3^k 7^(10−k) / 10^10 over those k = 755965123 / 10^10.
    const skew = binomialConsistency({ count: 6, total: 10 }, 0.3);
    expectRelative(skew.pValue, 755_965_123 / 1e10, 1e-12);
    expect(skew).toMatchObject({ expected: 0.3, observed: 0.6, consistent: true });
    expect(skew.z).toBeCloseTo(3 / Math.sqrt(2.1), 14);
  });

  it('matches an exact test at the size limit (mpmath, 40 digits: 0.045332647524786295)', () => {
    const r = binomialConsistency({ count: 4_700, total: 10_000 }, 0.48);
    expect(r.method).toBe('binomial-exact');
    expectRelative(r.pValue, 0.045332647524786295, 1e-9);
    expect(r.consistent).toBe(true);
  });

  it('uses the normal approximation above 10,000 trials: a simulated 91,482/100,000 fits 0.914816', () => {
    const fits = binomialConsistency({ count: 91_482, total: 100_000 }, 0.914816);
    expect(fits).toMatchObject({
      expected: 0.914816,
      observed: 0.91482,
      z: 0, // |91,482 − 91,481.6| − 0.5 < 0
      pValue: 1,
      consistent: true,
      method: 'normal-continuity-corrected',
    });
    const off = binomialConsistency({ count: 90_000, total: 100_000 }, 0.914816);
    const sd = Math.sqrt(100_000 * 0.914816 * (1 - 0.914816));
    expect(off.z).toBeCloseTo(-(91_481.6 - 90_000 - 0.5) / sd, 10);
    expect(off.z).toBeCloseTo(-16.778, 3);
    expect(off.pValue).toBeGreaterThan(0);
    expect(off.pValue).toBeLessThan(1e-60);
    expect(off.consistent).toBe(false);
  });

  it('agrees across the switch from the exact test to the approximation', () => {
    const exact = binomialConsistency({ count: 4_900, total: 10_000 }, 0.5).pValue;
    const approx = binomialConsistency({ count: 4_900, total: 10_001 }, 0.5).pValue;
    expect(exact).toBeCloseTo(0.0468, 3);
    expect(Math.abs(exact - approx)).toBeLessThan(0.003);
  });

  it('gives p = 1 for the most likely count and handles rates of 0 and 1', () => {
    expect(binomialConsistency({ count: 5, total: 10 }, 0.5).pValue).toBe(1);
    expect(binomialConsistency({ count: 0, total: 10 }, 0)).toMatchObject({
      z: 0,
      pValue: 1,
      consistent: true,
    });
    expect(binomialConsistency({ count: 1, total: 10 }, 0)).toMatchObject({
      z: Number.POSITIVE_INFINITY,
      pValue: 0,
      consistent: false,
    });
    expect(binomialConsistency({ count: 20_000, total: 20_000 }, 1)).toMatchObject({ z: 0, pValue: 1 });
    expect(binomialConsistency({ count: 19_999, total: 20_000 }, 1)).toMatchObject({ pValue: 0 });
  });

  it('p-values are probabilities and the observed count is never less likely than itself', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 300 })
          .chain((total) =>
            fc.record({ count: fc.integer({ min: 0, max: total }), total: fc.constant(total) }),
          ),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (observed, p) => {
          const r = binomialConsistency(observed, p);
          expect(r.pValue).toBeLessThanOrEqual(1);
          // P(X = count), computed independently as a sum of logarithms.
          const { count, total } = observed;
          let log = 0;
          for (let i = 1; i <= count; i++) log += Math.log((total - count + i) / i);
          const pmf = Math.exp(
            log + (count && count * Math.log(p)) + (total - count && (total - count) * Math.log1p(-p)),
          );
          expect(r.pValue).toBeGreaterThanOrEqual(pmf * (1 - 1e-9));
        },
      ),
    );
  });

  it('rejects bad arguments', () => {
    expect(() => binomialConsistency({ count: 1, total: 0 }, 0.5)).toThrow(
      /binomialConsistency: observed.total must be an integer >= 1, got 0/,
    );
    expect(() => binomialConsistency({ count: 1, total: 2 }, 1.5)).toThrow(
      /binomialConsistency: expectedRate must be a rate in \[0, 1\], got 1.5/,
    );
  });
});

describe('sampleSizePerArm', () => {
  it('matches the standard two-proportion formula', () => {
    // R: power.prop.test(p1 = 0.5, p2 = 0.6, power = 0.8) gives n = 387.3385.
    expect(sampleSizePerArm(0.5, 0.6)).toBeCloseTo(387.3385, 4);
    expect(Math.ceil(sampleSizePerArm(0.5, 0.6))).toBe(388);
    // (1.959964·sqrt(2·0.7·0.3) + 0.841621·sqrt(0.25 + 0.09))² / 0.4² = 19.3808 (hand-computed).
    expect(sampleSizePerArm(0.5, 0.9)).toBeCloseTo(19.3808, 4);
    expect(sampleSizePerArm(0.9, 0.5)).toBe(sampleSizePerArm(0.5, 0.9));
    expect(sampleSizePerArm(0.5, 0.5)).toBe(Number.POSITIVE_INFINITY);
  });

  it('grows with power and shrinks with alpha', () => {
    expect(sampleSizePerArm(0.5, 0.6, { power: 0.9 })).toBeGreaterThan(sampleSizePerArm(0.5, 0.6));
    expect(sampleSizePerArm(0.5, 0.6, { alpha: 0.1 })).toBeLessThan(sampleSizePerArm(0.5, 0.6));
  });

  it('rejects bad arguments', () => {
    expect(() => sampleSizePerArm(-1, 0.5)).toThrow(
      /sampleSizePerArm: p1 must be a rate in \[0, 1\], got -1/,
    );
    expect(() => sampleSizePerArm(0.1, 0.5, { power: 1 })).toThrow(
      /option "power" must be a number strictly/,
    );
    expect(() => sampleSizePerArm(0.1, 0.5, { powr: 0.9 } as never)).toThrow(/unknown option "powr"/);
  });
});

describe('powerWarning', () => {
  it('warns about the original 10-task comparison (5/10 → 9/10)', () => {
    expect(powerWarning({ count: 5, total: 10 }, { count: 9, total: 10 })).toBe(
      '10 tasks per arm: the 95% intervals [24%, 76%] and [60%, 98%] overlap, the difference is not ' +
        'significant (p = 0.051) and an arm with fewer than 30 tasks is too small to judge; the improvement ' +
        'is not established at this scale (about 30 tasks per arm are needed to detect a difference of ' +
        '40 percentage points at 80% power)',
    );
  });

  it('is silent for 100,000-task runs with a real improvement', () => {
    expect(
      powerWarning({ count: 47_400, total: 100_000 }, { count: 90_000, total: 100_000 }),
    ).toBeUndefined();
    expect(
      powerWarning({ count: 91_000, total: 100_000 }, { count: 91_482, total: 100_000 }),
    ).toBeUndefined();
  });

  it('warns when large samples still cannot separate the rates', () => {
    expect(powerWarning({ count: 50_000, total: 100_000 }, { count: 50_200, total: 100_000 })).toBe(
      '100,000 tasks per arm: the 95% intervals [49.69%, 50.31%] and [49.89%, 50.51%] overlap and the ' +
        'difference is not significant (p = 0.37); the improvement is not established at this scale ' +
        `(about 981,105 tasks per arm are needed to detect a difference of ` +
        '0.20 percentage points at 80% power)',
    );
  });

  it('warns when the intervals overlap even though the test is significant', () => {
    const before = { count: 500, total: 1000 };
    const after = { count: 550, total: 1000 };
    expect(twoProportionTest(before, after).significant).toBe(true);
    expect(powerWarning(before, after)).toBe(
      '1,000 tasks per arm: the 95% intervals [46.9%, 53.1%] and [51.9%, 58.1%] overlap; the improvement ' +
        'is not established at this scale (about 1,565 tasks per arm are needed to detect a difference of ' +
        '5.0 percentage points at 80% power)',
    );
  });

  it('warns about small arms even when the effect is overwhelming, and about declines', () => {
    expect(powerWarning({ count: 0, total: 20 }, { count: 20, total: 25 })).toBe(
      '20 tasks before and 25 after: an arm with fewer than 30 tasks is too small to judge; the improvement ' +
        'is not established at this scale (about 30 tasks per arm are needed to detect a difference of ' +
        '80 percentage points at 80% power)',
    );
    expect(powerWarning({ count: 9, total: 10 }, { count: 9, total: 10 })).toMatch(
      /the difference is not established at this scale \(the observed rates are equal/,
    );
    expect(powerWarning({ count: 9, total: 10 }, { count: 5, total: 10 })).toMatch(
      /the decline is not established/,
    );
    expect(powerWarning({ count: 0, total: 0 }, { count: 5, total: 10 })).toBe(
      '0 tasks before and 10 after: an arm without tasks establishes nothing',
    );
  });

  it('never warns about a significant, separated comparison of 30 or more per arm', () => {
    const arm = fc
      .integer({ min: 30, max: 5000 })
      .chain((total) => fc.record({ count: fc.integer({ min: 0, max: total }), total: fc.constant(total) }));
    fc.assert(
      fc.property(arm, arm, (a, b) => {
        const t = twoProportionTest(a, b);
        const ra = rate(a.count, a.total).ci95;
        const rb = rate(b.count, b.total).ci95;
        const separated = ra[1] < rb[0] || rb[1] < ra[0];
        expect(powerWarning(a, b) === undefined).toBe(separated && t.significant);
      }),
    );
  });
});
