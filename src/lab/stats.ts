/**
 * Statistics for the lab's reports: success rates with honest error bars, the comparison of a rate
 * before and after a resilience mechanism, and a check that an observed rate matches a computed one.
 * Pure functions of counts; no runtime, no randomness.
 */

/** A count of successes out of a total, as the lab's JSON reports carry it. */
export interface Proportion {
  /** Successes: an integer from 0 to `total`. */
  readonly count: number;
  /** Trials: an integer >= 0. */
  readonly total: number;
}

/** A success rate with its 95% Wilson score interval: the shape of every rate in the lab's reports. */
export interface RateEstimate {
  /** `count / total`; 0 when `total` is 0 (the interval `[0, 1]` then says that nothing is known). */
  rate: number;
  /** The 95% Wilson score interval. */
  ci95: [number, number];
  count: number;
  total: number;
}

/** The result of {@link twoProportionTest}. */
export interface TwoProportionTest {
  /** `rate(b) - rate(a)`. */
  diff: number;
  /** `diff / rate(a)`, or `null` when `rate(a)` is 0. */
  relative: number | null;
  /** The pooled two-proportion z statistic (positive when `b` is higher); 0 when both rates are 0 or 1. */
  z: number;
  /** Two-sided p-value of `z` under the standard normal distribution. */
  pValue: number;
  /** 95% interval for `diff`: Newcombe's hybrid score interval (method 10). */
  ci95: [number, number];
  /** `pValue < 0.05`. */
  significant: boolean;
}

/** How {@link binomialConsistency} computed its p-value. */
export type ConsistencyMethod = 'binomial-exact' | 'normal-continuity-corrected';

/** The result of {@link binomialConsistency}. */
export interface BinomialConsistency {
  /** The expected rate that was tested. */
  expected: number;
  /** The observed rate, `count / total`. */
  observed: number;
  /**
   * Standard score of the observed count: `(count - total·expected) / sqrt(total·expected·(1 - expected))`,
   * with the continuity correction (|difference| reduced by 0.5, not below 0) on the normal path.
   * ±Infinity when `expected` is 0 or 1 and the count differs from it.
   */
  z: number;
  /** Two-sided p-value. */
  pValue: number;
  /** `pValue >= 0.01`. */
  consistent: boolean;
  method: ConsistencyMethod;
}

/** Options of {@link sampleSizePerArm}. */
export interface SampleSizeOptions {
  /**
   * Probability of detecting the difference.
   * @defaultValue 0.8
   */
  power?: number;
  /**
   * Two-sided significance level.
   * @defaultValue 0.05
   */
  alpha?: number;
}

/** Trials below which an arm is too small for the normal approximations used here. */
const MIN_ARM = 30;
/** Totals up to this size get the exact binomial test in {@link binomialConsistency}. */
const EXACT_LIMIT = 10_000;
const Z95 = 1.959963984540054;
const INV_SQRT_2PI = 0.3989422804014327;
const HALF_LOG_2PI = 0.9189385332046728;

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}

function invalid(where: string, argument: string, value: unknown, accepted: string): TypeError {
  return new TypeError(`${where}: ${argument} must be ${accepted}, got ${show(value)}`);
}

function checkCounts(where: string, count: unknown, total: unknown, names: [string, string], minTotal = 0) {
  if (typeof total !== 'number' || !Number.isSafeInteger(total) || total < minTotal) {
    throw invalid(where, names[1], total, `an integer >= ${minTotal}`);
  }
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0 || count > total) {
    throw invalid(where, names[0], count, `an integer from 0 to ${names[1]} (${total})`);
  }
}

function checkProportion(where: string, name: string, value: unknown, minTotal = 0): Proportion {
  if (typeof value !== 'object' || value === null) {
    throw invalid(where, name, value, 'an object { count, total }');
  }
  const { count, total } = value as Record<string, unknown>;
  checkCounts(where, count, total, [`${name}.count`, `${name}.total`], minTotal);
  return value as Proportion;
}

function checkOpenUnit(where: string, name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value > 0 && value < 1)) {
    throw invalid(where, name, value, 'a number strictly between 0 and 1');
  }
  return value;
}

// --- the normal distribution -------------------------------------------------------------------

// W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969)
// 631–637, as arranged for the normal distribution in Cody's SPECFUN ANORM (ACM TOMS Algorithm 715,
// 1993): three rational approximations with near-minimax relative error below 1e-18 in exact
// arithmetic, so double precision limits the result (relative error ~1e-15, in the tails too).
const CODY_A = [2.2352520354606837, 161.02823106855587, 1067.6894854603709, 18154.98125334356];
const CODY_A4 = 0.06568233791820745;
const CODY_B = [47.202581904688245, 976.0985517377767, 10260.932208618979, 45507.78933502673];
const CODY_C = [
  0.39894151208813466, 8.883149794388377, 93.50665613217785, 597.2702763948002, 2494.5375852903726,
  6848.190450536283, 11602.65143764735, 9842.714838383978,
];
const CODY_C8 = 1.0765576773720192e-8;
const CODY_D = [
  22.266688044328117, 235.387901782625, 1519.3775994075547, 6485.558298266761, 18615.571640885097,
  34900.95272114598, 38912.00328609327, 19685.429676859992,
];
const CODY_P = [
  0.215898534057957, 0.12740116116024736, 0.022235277870649807, 0.0014216191932278934,
  0.000029112874951168793,
];
const CODY_P5 = 0.023073441764940174;
const CODY_Q = [
  1.284260096144911, 0.4682382124808651, 0.06598813786892856, 0.0037823963320275824, 0.00007297515550839662,
];
const CODY_SPLIT1 = 0.66291;
const CODY_SPLIT2 = Math.sqrt(32);

/** `exp(-y²/2) · r`, with y² split so that the exponent loses no accuracy for large y (Cody). */
function gaussianTail(y: number, r: number): number {
  const ySixteenths = Math.trunc(y * 16) / 16;
  const rest = (y - ySixteenths) * (y + ySixteenths);
  return Math.exp(-ySixteenths * ySixteenths * 0.5) * Math.exp(-rest * 0.5) * r;
}

/** P(Z > y) for y > CODY_SPLIT1. */
function upperTail(y: number): number {
  if (y === Number.POSITIVE_INFINITY) return 0;
  if (y <= CODY_SPLIT2) {
    let num = CODY_C8 * y;
    let den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + CODY_C[i]!) * y;
      den = (den + CODY_D[i]!) * y;
    }
    return gaussianTail(y, (num + CODY_C[7]!) / (den + CODY_D[7]!));
  }
  const inv2 = 1 / (y * y);
  let num = CODY_P5 * inv2;
  let den = inv2;
  for (let i = 0; i < 4; i++) {
    num = (num + CODY_P[i]!) * inv2;
    den = (den + CODY_Q[i]!) * inv2;
  }
  const r = (INV_SQRT_2PI - (inv2 * (num + CODY_P[4]!)) / (den + CODY_Q[4]!)) / y;
  return gaussianTail(y, r);
}

/**
 * The standard normal distribution function Φ(z) = P(Z ≤ z).
 *
 * Method: W. J. Cody's rational Chebyshev approximations (Math. Comp. 1969; SPECFUN ANORM, ACM TOMS
 * Algorithm 715), the algorithm behind R's `pnorm`. The lower tail is accurate to about 1e-15 relative
 * down to the smallest doubles (Φ(-37.5) ≈ 4.6e-308); use `normalCdf(-z)` rather than `1 - normalCdf(z)`
 * for an upper tail, which is what the p-values here do.
 *
 * @example
 * normalCdf(-5); // 2.866515718791939e-7
 */
export function normalCdf(z: number): number {
  if (typeof z !== 'number' || Number.isNaN(z)) throw invalid('normalCdf', 'z', z, 'a number');
  const y = Math.abs(z);
  if (y <= CODY_SPLIT1) {
    const z2 = z * z;
    let num = CODY_A4 * z2;
    let den = z2;
    for (let i = 0; i < 3; i++) {
      num = (num + CODY_A[i]!) * z2;
      den = (den + CODY_B[i]!) * z2;
    }
    return 0.5 + (z * (num + CODY_A[3]!)) / (den + CODY_B[3]!);
  }
  const upper = upperTail(y);
  return z > 0 ? 1 - upper : upper;
}

// M. J. Wichura, "Algorithm AS 241: The percentage points of the normal distribution",
// Applied Statistics 37 (1988) 477–484: PPND16, accurate to about 1 part in 1e16.
const AS241_A = [
  3.3871328727963665, 133.14166789178438, 1971.5909503065513, 13731.69376550946, 45921.95393154987,
  67265.7709270087, 33430.57558358813, 2509.0809287301227,
];
const AS241_B = [
  1, 42.31333070160091, 687.1870074920579, 5394.196021424751, 21213.794301586597, 39307.89580009271,
  28729.085735721943, 5226.495278852854,
];
const AS241_C = [
  1.4234371107496835, 4.630337846156546, 5.769497221460691, 3.6478483247632045, 1.2704582524523684,
  0.2417807251774506, 0.022723844989269184, 0.0007745450142783414,
];
const AS241_D = [
  1, 2.053191626637759, 1.6763848301838038, 0.6897673349851, 0.14810397642748008, 0.015198666563616457,
  0.0005475938084995345, 1.0507500716444169e-9,
];
const AS241_E = [
  6.657904643501103, 5.463784911164114, 1.7848265399172913, 0.29656057182850487, 0.026532189526576124,
  0.0012426609473880784, 0.000027115555687434876, 2.0103343992922881e-7,
];
const AS241_F = [
  1, 0.599832206555888, 0.1369298809227358, 0.014875361290850615, 0.0007868691311456133,
  0.000018463183175100548, 1.421511758316446e-7, 2.0442631033899397e-15,
];

function ratio(num: readonly number[], den: readonly number[], x: number): number {
  let n = 0;
  let d = 0;
  for (let i = num.length - 1; i >= 0; i--) {
    n = n * x + num[i]!;
    d = d * x + den[i]!;
  }
  return n / d;
}

/**
 * The standard normal quantile Φ⁻¹(p): the z with P(Z ≤ z) = p.
 *
 * Method: Wichura's algorithm AS 241 (PPND16, Applied Statistics 1988), relative error about 1e-16;
 * R's `qnorm` uses the same. `p = 0` gives `-Infinity` and `p = 1` gives `Infinity`.
 *
 * @throws TypeError when `p` is not a number in [0, 1].
 * @example
 * normalQuantile(0.975); // 1.959963984540054
 */
export function normalQuantile(p: number): number {
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
    throw invalid('normalQuantile', 'p', p, 'a probability in [0, 1]');
  }
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) return q * ratio(AS241_A, AS241_B, 0.180625 - q * q);
  const tail = q < 0 ? p : 1 - p;
  if (tail === 0) return q < 0 ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  const r = Math.sqrt(-Math.log(tail));
  const z = r <= 5 ? ratio(AS241_C, AS241_D, r - 1.6) : ratio(AS241_E, AS241_F, r - 5);
  return q < 0 ? -z : z;
}

/** Two-sided p-value of a standard normal statistic, accurate in the far tails. */
function twoSided(z: number): number {
  return Math.min(1, 2 * normalCdf(-Math.abs(z)));
}

// --- the gamma function -------------------------------------------------------------------------

/**
 * ln Γ(x) for x > 0.
 *
 * Method: the Stirling series with seven terms for x ≥ 10 (truncation error below 3e-17 there), and
 * the recurrence Γ(x) = Γ(x + k) / (x (x + 1) … (x + k − 1)) below, and the logarithm of the exact
 * factorial for integers up to 23: absolute error about 1e-15 for moderate x, relative error about 1e-16
 * for large x (ln Γ(10001) = 82108.92783681436), and exactly 0 at 1 and 2.
 *
 * @throws TypeError when `x` is not a positive number.
 * @example
 * logGamma(11); // ln(10!) = 15.104412573075516
 */
export function logGamma(x: number): number {
  if (typeof x !== 'number' || !(x > 0)) throw invalid('logGamma', 'x', x, 'a number > 0');
  if (x === Number.POSITIVE_INFINITY) return x;
  if (x <= 23 && Number.isInteger(x)) {
    // (x − 1)! is exact in a double up to 22!, so its logarithm is correctly rounded (ln Γ(1) = ln Γ(2) = 0).
    let factorial = 1;
    for (let k = 2; k < x; k++) factorial *= k;
    return Math.log(factorial);
  }
  let shift = 0;
  if (x < 10) {
    let product = 1;
    while (x < 10) {
      product *= x;
      x += 1;
    }
    shift = Math.log(product);
  }
  const inv = 1 / x;
  const inv2 = inv * inv;
  // Coefficients B_2k / (2k (2k − 1)) of the Stirling series.
  const series =
    inv *
    (1 / 12 +
      inv2 *
        (-1 / 360 +
          inv2 * (1 / 1260 + inv2 * (-1 / 1680 + inv2 * (1 / 1188 + inv2 * (-691 / 360360 + inv2 / 156))))));
  return (x - 0.5) * Math.log(x) - x + HALF_LOG_2PI + series - shift;
}

// --- rates --------------------------------------------------------------------------------------

function wilsonZ(successes: number, n: number, z: number): [number, number] {
  if (n === 0) return [0, 1];
  const p = successes / n;
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denominator;
  const half = (z / denominator) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  const lo = successes === 0 ? 0 : Math.max(0, center - half);
  const hi = successes === n ? 1 : Math.min(1, center + half);
  return [lo, hi];
}

/**
 * The Wilson score interval for a binomial proportion (E. B. Wilson, "Probable inference, the law of
 * succession, and statistical inference", JASA 22 (1927) 209–212), without continuity correction.
 * Unlike the textbook `p ± z·sqrt(p(1−p)/n)` it never leaves [0, 1] and keeps close to its nominal
 * coverage for small `n` and rates near 0 or 1 (Newcombe 1998, Brown, Cai & DasGupta 2001).
 * `n = 0` gives `[0, 1]`; 0 successes give a lower bound of exactly 0 and `n` successes an upper bound
 * of exactly 1.
 *
 * @param successes - an integer from 0 to `n`
 * @param n - the number of trials, an integer >= 0
 * @param confidence - the coverage, strictly between 0 and 1 (default 0.95, z = 1.959963984540054)
 * @throws TypeError when an argument is out of range.
 * @example
 * wilson(50, 100); // [0.4038, 0.5962] (rounded)
 */
export function wilson(successes: number, n: number, confidence = 0.95): [number, number] {
  checkCounts('wilson', successes, n, ['successes', 'n']);
  checkOpenUnit('wilson', 'confidence', confidence);
  return wilsonZ(successes, n, confidence === 0.95 ? Z95 : normalQuantile(0.5 + confidence / 2));
}

/**
 * A success rate with its 95% Wilson interval, in the shape the lab's JSON reports use.
 *
 * @throws TypeError when `successes` is not an integer from 0 to `n`, or `n` not an integer >= 0.
 * @example
 * rate(9, 10); // { rate: 0.9, ci95: [0.5958…, 0.9821…], count: 9, total: 10 }
 */
export function rate(successes: number, n: number): RateEstimate {
  checkCounts('rate', successes, n, ['successes', 'n']);
  return { rate: n === 0 ? 0 : successes / n, ci95: wilsonZ(successes, n, Z95), count: successes, total: n };
}

/**
 * Compares two success rates: `a` (before) against `b` (after).
 *
 * - `z` and `pValue`: the pooled two-proportion z-test (the score test; equal to the χ² test of the
 *   2×2 table without Yates' correction, `z² = χ²`), two-sided.
 * - `ci95`: Newcombe's hybrid score interval for `b − a`, method 10 of R. G. Newcombe, "Interval
 *   estimation for the difference between independent proportions: comparison of eleven methods",
 *   Statistics in Medicine 17 (1998) 873–890: built from each rate's Wilson interval, so it stays in
 *   [−1, 1] and behaves at rates of 0 and 1.
 *
 * @throws TypeError when a count is out of range or a total is 0.
 * @example
 * twoProportionTest({ count: 48, total: 80 }, { count: 56, total: 70 });
 * // { diff: 0.2, relative: 0.333…, z: 2.650…, pValue: 0.00805…, ci95: [0.0524…, 0.3339…], significant: true }
 */
export function twoProportionTest(a: Proportion, b: Proportion): TwoProportionTest {
  checkProportion('twoProportionTest', 'a', a, 1);
  checkProportion('twoProportionTest', 'b', b, 1);
  const pa = a.count / a.total;
  const pb = b.count / b.total;
  const diff = pb - pa;
  const pooled = (a.count + b.count) / (a.total + b.total);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / a.total + 1 / b.total));
  const z = se === 0 ? 0 : diff / se;
  const pValue = se === 0 ? 1 : twoSided(z);
  const [la, ua] = wilsonZ(a.count, a.total, Z95);
  const [lb, ub] = wilsonZ(b.count, b.total, Z95);
  const lo = diff - Math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2);
  const hi = diff + Math.sqrt((ub - pb) ** 2 + (pa - la) ** 2);
  return {
    diff,
    relative: a.count === 0 ? null : diff / pa,
    z,
    pValue,
    ci95: [Math.max(-1, lo), Math.min(1, hi)],
    significant: pValue < 0.05,
  };
}

/** `k · ln(p)`, with 0 · ln(0) = 0. */
function xLogP(k: number, logP: number): number {
  return k === 0 ? 0 : k * logP;
}

/**
 * Tests whether an observed count is consistent with an expected rate, e.g. a simulated success rate
 * against the rate computed from the scenario's fault probabilities.
 *
 * - `total` ≤ 10,000: the exact two-sided binomial test: the p-value is the total probability of every
 *   count no more likely than the observed one (the definition of R's `binom.test` and SciPy's
 *   `binomtest`, with the same relative tolerance of 1e-7 for ties), each probability computed in log
 *   space with {@link logGamma}.
 * - above: the normal approximation with continuity correction,
 *   `z = (|count − total·p| − 0.5) / sqrt(total·p·(1 − p))`, two-sided.
 *
 * `consistent` is `pValue >= 0.01`: a stricter level than 0.05 because reports check many rates.
 *
 * @param expectedRate - the rate the count should follow, in [0, 1]
 * @throws TypeError when the count is out of range, the total is 0 or the rate is outside [0, 1].
 * @example
 * binomialConsistency({ count: 91_482, total: 100_000 }, 0.914816).consistent; // true
 * binomialConsistency({ count: 90_000, total: 100_000 }, 0.914816).consistent; // false
 */
export function binomialConsistency(observed: Proportion, expectedRate: number): BinomialConsistency {
  checkProportion('binomialConsistency', 'observed', observed, 1);
  if (typeof expectedRate !== 'number' || !(expectedRate >= 0 && expectedRate <= 1)) {
    throw invalid('binomialConsistency', 'expectedRate', expectedRate, 'a rate in [0, 1]');
  }
  const { count, total } = observed;
  const mean = total * expectedRate;
  const sd = Math.sqrt(mean * (1 - expectedRate));
  const deviation = count - mean;
  const base = { expected: expectedRate, observed: count / total };
  if (total <= EXACT_LIMIT) {
    const z =
      sd === 0 ? (deviation === 0 ? 0 : Math.sign(deviation) * Number.POSITIVE_INFINITY) : deviation / sd;
    const pValue = exactBinomialPValue(count, total, expectedRate);
    return { ...base, z, pValue, consistent: pValue >= 0.01, method: 'binomial-exact' };
  }
  const corrected = Math.max(0, Math.abs(deviation) - 0.5);
  let z: number;
  let pValue: number;
  if (sd === 0) {
    z = corrected === 0 ? 0 : Math.sign(deviation) * Number.POSITIVE_INFINITY;
    pValue = corrected === 0 ? 1 : 0;
  } else {
    z = (Math.sign(deviation) * corrected) / sd;
    pValue = twoSided(z);
  }
  return { ...base, z, pValue, consistent: pValue >= 0.01, method: 'normal-continuity-corrected' };
}

function exactBinomialPValue(count: number, total: number, p: number): number {
  const logP = Math.log(p);
  const log1mP = Math.log1p(-p);
  const logNFactorial = logGamma(total + 1);
  const logPmf = (k: number) =>
    logNFactorial - logGamma(k + 1) - logGamma(total - k + 1) + xLogP(k, logP) + xLogP(total - k, log1mP);
  // R's binom.test counts a probability as equal to the observed one within a relative 1e-7.
  const threshold = logPmf(count) + 1e-7;
  let sum = 0;
  for (let k = 0; k <= total; k++) {
    const l = logPmf(k);
    if (l <= threshold) sum += Math.exp(l);
  }
  return Math.min(1, sum);
}

/**
 * Trials per arm a two-sided two-proportion z-test needs to detect the difference between rates `p1`
 * and `p2` with the given power: the standard formula (Fleiss, Levin & Paik, "Statistical Methods for
 * Rates and Proportions", 3rd ed., 2003, eq. 4.14, without continuity correction; R's
 * `power.prop.test`):
 *
 * `n = (z₁₋α/₂ · sqrt(2·p̄·(1 − p̄)) + z_power · sqrt(p1(1 − p1) + p2(1 − p2)))² / (p1 − p2)²`, p̄ = (p1 + p2) / 2.
 *
 * Returns the unrounded value (round it up); `Infinity` when `p1 === p2`.
 *
 * @throws TypeError when a rate is outside [0, 1] or an option is out of range.
 * @example
 * Math.ceil(sampleSizePerArm(0.5, 0.6)); // 388
 */
export function sampleSizePerArm(p1: number, p2: number, options: SampleSizeOptions = {}): number {
  for (const [name, value] of [
    ['p1', p1],
    ['p2', p2],
  ] as const) {
    if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
      throw invalid('sampleSizePerArm', name, value, 'a rate in [0, 1]');
    }
  }
  if (typeof options !== 'object' || options === null) {
    throw invalid('sampleSizePerArm', 'options', options, 'an object');
  }
  for (const key of Object.keys(options)) {
    if (key !== 'power' && key !== 'alpha') {
      throw new TypeError(`sampleSizePerArm: unknown option "${key}"; known options are power, alpha`);
    }
  }
  const power =
    options.power === undefined ? 0.8 : checkOpenUnit('sampleSizePerArm', 'option "power"', options.power);
  const alpha =
    options.alpha === undefined ? 0.05 : checkOpenUnit('sampleSizePerArm', 'option "alpha"', options.alpha);
  if (p1 === p2) return Number.POSITIVE_INFINITY;
  const zAlpha = alpha === 0.05 ? Z95 : normalQuantile(1 - alpha / 2);
  const zPower = normalQuantile(power);
  const mean = (p1 + p2) / 2;
  const root = zAlpha * Math.sqrt(2 * mean * (1 - mean)) + zPower * Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2));
  return (root * root) / ((p1 - p2) * (p1 - p2));
}

function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function percent(x: number, total: number): string {
  const decimals = total < 100 ? 0 : total < 10_000 ? 1 : 2;
  return `${(x * 100).toFixed(decimals)}%`;
}

function points(diff: number): string {
  const p = Math.abs(diff) * 100;
  return `${p >= 10 ? p.toFixed(0) : p.toPrecision(2)} percentage points`;
}

function listing(clauses: readonly string[]): string {
  if (clauses.length <= 1) return clauses.join('');
  return `${clauses.slice(0, -1).join(', ')} and ${clauses[clauses.length - 1]}`;
}

/**
 * Says when a before/after comparison is too small to support the difference it shows, or returns
 * `undefined` when it is not. It warns when any of these holds:
 *
 * - the 95% Wilson intervals of the two rates overlap;
 * - the two-proportion z-test ({@link twoProportionTest}) gives p ≥ 0.05;
 * - an arm has fewer than 30 trials (too few for the normal approximation behind the test).
 *
 * The message names the sample sizes, what failed, and about how many trials per arm would detect the
 * observed difference with 80% power at the 0.05 level ({@link sampleSizePerArm}, at least 30).
 *
 * @throws TypeError when a count is out of range.
 * @example
 * powerWarning({ count: 5, total: 10 }, { count: 9, total: 10 });
 * // '10 tasks per arm: the 95% intervals [24%, 76%] and [60%, 98%] overlap, the difference is not
 * //  significant (p = 0.051) and an arm with fewer than 30 tasks is too small to judge; the improvement
 * //  is not established at this scale (about 30 tasks per arm are needed to detect a difference of
 * //  40 percentage points at 80% power)'
 * powerWarning({ count: 47_400, total: 100_000 }, { count: 90_000, total: 100_000 }); // undefined
 */
export function powerWarning(before: Proportion, after: Proportion): string | undefined {
  checkProportion('powerWarning', 'before', before);
  checkProportion('powerWarning', 'after', after);
  const sizes =
    before.total === after.total
      ? `${thousands(before.total)} tasks per arm`
      : `${thousands(before.total)} tasks before and ${thousands(after.total)} after`;
  if (before.total === 0 || after.total === 0) {
    return `${sizes}: an arm without tasks establishes nothing`;
  }
  const a = rate(before.count, before.total);
  const b = rate(after.count, after.total);
  const test = twoProportionTest(before, after);
  const overlap = a.ci95[1] >= b.ci95[0] && b.ci95[1] >= a.ci95[0];
  const small = Math.min(before.total, after.total) < MIN_ARM;
  if (!overlap && test.significant && !small) return undefined;
  const clauses: string[] = [];
  if (overlap) {
    clauses.push(
      `the 95% intervals [${percent(a.ci95[0], a.total)}, ${percent(a.ci95[1], a.total)}] and ` +
        `[${percent(b.ci95[0], b.total)}, ${percent(b.ci95[1], b.total)}] overlap`,
    );
  }
  if (!test.significant) {
    const p = test.pValue < 0.001 ? 'p < 0.001' : `p = ${test.pValue.toPrecision(2)}`;
    clauses.push(`the difference is not significant (${p})`);
  }
  if (small) clauses.push(`an arm with fewer than ${MIN_ARM} tasks is too small to judge`);
  const what = test.diff > 0 ? 'improvement' : test.diff < 0 ? 'decline' : 'difference';
  const needed =
    test.diff === 0
      ? 'the observed rates are equal: there is no difference to detect'
      : `about ${thousands(Math.max(MIN_ARM, Math.ceil(sampleSizePerArm(a.rate, b.rate))))} tasks per arm are ` +
        `needed to detect a difference of ${points(test.diff)} at 80% power`;
  return `${sizes}: ${listing(clauses)}; the ${what} is not established at this scale (${needed})`;
}
