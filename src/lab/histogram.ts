/**
 * A bounded log-linear histogram for latency percentiles (virtual milliseconds, or any non-negative
 * value), in the manner of Gil Tene's HdrHistogram: fixed relative precision, memory that depends on
 * the range of the values and never on how many were recorded.
 */

/** Sub-buckets per power of two: 2^7 = 128, HdrHistogram's layout for 2 significant decimal digits. */
const SUB_BUCKET_BITS = 7;
/** Bits of the mantissa below the sub-bucket in the high 32-bit word of a double (20 − 7). */
const SHIFT_FACTOR = 2 ** (20 - SUB_BUCKET_BITS);
/** The smallest normal double; smaller values (subnormals and 0) share the zero bucket. */
const MIN_NORMAL = 2 ** -1022;

const scratch = new DataView(new ArrayBuffer(8));
/** Buckets the dense range starts with: two powers of two. */
const INITIAL_SPAN = 256;
/** The most buckets the dense range spans: 16 powers of two (16 KiB of counts). */
const MAX_SPAN = 16 * 128;

/**
 * The bucket of a value: its IEEE-754 exponent and the top 7 bits of its mantissa, read straight from
 * the bits (no `Math.log`, so no rounding at bucket edges). Bucket `i ≥ 128` holds
 * `[2^e (1 + k/128), 2^e (1 + (k + 1)/128))` with `e` and `k` the exponent and sub-bucket of `i`;
 * bucket 0 holds 0 and the subnormals.
 */
function bucketOf(value: number): number {
  if (value < MIN_NORMAL) return 0;
  scratch.setFloat64(0, value);
  return Math.floor(scratch.getUint32(0) / SHIFT_FACTOR);
}

/** The smallest value of bucket `index` (the exclusive upper bound of bucket `index − 1`). */
function lowerBound(index: number): number {
  if (index === 0) return 0;
  scratch.setUint32(0, index * SHIFT_FACTOR);
  scratch.setUint32(4, 0);
  return scratch.getFloat64(0);
}

function upperBound(index: number): number {
  return index === 0 ? 0 : lowerBound(index + 1);
}

/** The bucket whose exclusive upper bound is `bound`, or -1 when `bound` is no bucket's upper bound. */
function bucketEndingAt(bound: number): number {
  if (bound === 0) return 0;
  if (!(bound > MIN_NORMAL)) return -1;
  scratch.setFloat64(0, bound);
  const high = scratch.getUint32(0);
  if (scratch.getUint32(4) !== 0 || high % SHIFT_FACTOR !== 0) return -1;
  const index = high / SHIFT_FACTOR - 1;
  return index >= 1 << SUB_BUCKET_BITS ? index : -1;
}

/** The next double towards +Infinity (`up`) or -Infinity, for positive finite `x`. */
function adjacent(x: number, up: boolean): number {
  scratch.setFloat64(0, x);
  const bits = scratch.getBigUint64(0);
  scratch.setBigUint64(0, up ? bits + 1n : bits - 1n);
  return scratch.getFloat64(0);
}

/**
 * Nearest-rank rank (1-based) of quantile `q` among `count` values: the smallest `r` with `r ≥ q·count`.
 * `q·count` is taken as an integer when within rounding of one (0.999 · 1000 is 999, not 999.0000000000001).
 */
function rankOf(q: number, count: number): number {
  const x = q * count;
  const nearest = Math.round(x);
  const r = Math.abs(x - nearest) <= x * 4 * Number.EPSILON ? nearest : Math.ceil(x);
  return Math.min(count, Math.max(1, r));
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}

/** The JSON form of a {@link LogHistogram}; the summary fields are `null` when it is empty. */
export interface LogHistogramJSON {
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  /** `[upperBound, count]` of every non-empty bucket, ascending; the zero bucket is listed as `[0, count]`. */
  buckets: [number, number][];
}

/**
 * A histogram of non-negative values in log-linear buckets (HdrHistogram-style, 2 significant digits):
 * each power of two is cut into 128 equal buckets, so a bucket is at most 1/128 of its lower bound wide.
 *
 * - **Accuracy**: {@link LogHistogram.quantile} returns the midpoint of the bucket holding the
 *   nearest-rank sample, clamped to [min, max]: within {@link LogHistogram.relativeError} (2⁻⁸ ≈ 0.39%)
 *   of that sample. Values below 2.2e-308 (the subnormals) are counted as 0. `count`, `min`, `max` are
 *   exact, `mean` is exact up to floating-point summation.
 * - **Memory**: a dense array of counts over the buckets recorded: 128 per power of two spanned, 1 KiB
 *   each, up to 16 powers of two (16 KiB; 1 µs to 65 ms, or 1 ms to 65 s); buckets beyond that span are
 *   kept one map entry each. Whatever the number of records.
 * - **Cost**: `record` is O(1) (an array increment); `quantile` lists the non-empty buckets once after a
 *   new one appears, then walks them.
 *
 * @example
 * const latency = new LogHistogram();
 * for (const ms of [12, 15, 15, 240]) latency.record(ms);
 * latency.quantile(0.5); // 15.03125 (bucket [15, 15.0625), midpoint)
 * latency.toJSON();      // { count: 4, min: 12, max: 240, mean: 70.5, p50: …, buckets: [[12.0625, 1], …] }
 */
export class LogHistogram {
  /** Bound on `|quantile(q) − exact| / exact`, where `exact` is the nearest-rank sample: 2⁻⁸. */
  static readonly relativeError = 2 ** -8;

  /** Counts of buckets `#base … #base + #counts.length - 1`; the zero bucket's apart (its index is far below). */
  #counts: Float64Array | undefined;
  #base = 0;
  #zero = 0;
  /** Buckets outside the dense range once it spans its maximum: outliers, one entry each. */
  #sparse: Map<number, number> | undefined;
  #nonEmpty = 0;
  #sortedKeys: number[] | undefined;
  #count = 0;
  #sum = 0;
  #min = Number.POSITIVE_INFINITY;
  #max = Number.NEGATIVE_INFINITY;

  /** Number of values recorded. */
  get count(): number {
    return this.#count;
  }

  /** Smallest value recorded (exact); `NaN` when empty. */
  get min(): number {
    return this.#count === 0 ? Number.NaN : this.#min;
  }

  /** Largest value recorded (exact); `NaN` when empty. */
  get max(): number {
    return this.#count === 0 ? Number.NaN : this.#max;
  }

  /** Arithmetic mean of the values recorded (kept within [min, max] despite rounding); `NaN` when empty. */
  get mean(): number {
    return this.#count === 0 ? Number.NaN : meanOf(this.#sum, this.#count, this.#min, this.#max);
  }

  /** Number of non-empty buckets: the histogram's memory, independent of `count`. */
  get bucketCount(): number {
    return this.#nonEmpty;
  }

  /**
   * Records `value`, `count` times.
   * @param value - a finite number >= 0 (e.g. virtual milliseconds)
   * @param count - an integer >= 0
   * @defaultValue count = 1
   * @throws TypeError when `value` or `count` is out of range.
   */
  record(value: number, count = 1): this {
    if (typeof value !== 'number' || !(value >= 0) || value === Number.POSITIVE_INFINITY) {
      throw new TypeError(`LogHistogram.record: value must be a finite number >= 0, got ${show(value)}`);
    }
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) {
      throw new TypeError(`LogHistogram.record: count must be an integer >= 0, got ${show(count)}`);
    }
    if (count === 0) return this;
    const v = value === 0 ? 0 : value; // -0 counts as 0
    this.#add(bucketOf(v), count);
    this.#count += count;
    this.#sum += v * count;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
    return this;
  }

  /**
   * The nearest-rank `q`-quantile: the smallest recorded value with at least `q · count` values at or
   * below it, to within {@link LogHistogram.relativeError}. `quantile(0)` is `min`, `quantile(1)` is
   * `max`; `NaN` when empty.
   * @throws TypeError when `q` is not in [0, 1].
   */
  quantile(q: number): number {
    if (typeof q !== 'number' || !(q >= 0 && q <= 1)) {
      throw new TypeError(`LogHistogram.quantile: q must be a number in [0, 1], got ${show(q)}`);
    }
    if (this.#count === 0) return Number.NaN;
    const rank = rankOf(q, this.#count);
    if (rank === 1) return this.#min;
    if (rank === this.#count) return this.#max;
    let seen = 0;
    for (const index of this.#keys()) {
      seen += this.#countAt(index);
      if (seen >= rank) {
        const mid = index === 0 ? 0 : (lowerBound(index) + lowerBound(index + 1)) / 2;
        return Math.min(this.#max, Math.max(this.#min, mid));
      }
    }
    return this.#max;
  }

  /** Adds every value recorded in `other` to this histogram, as if they had been recorded here. */
  merge(other: LogHistogram): this {
    if (!(other instanceof LogHistogram)) {
      throw new TypeError(`LogHistogram.merge: other must be a LogHistogram, got ${show(other)}`);
    }
    if (other.#count === 0) return this;
    for (const index of [...other.#keys()]) this.#add(index, other.#countAt(index));
    this.#count += other.#count;
    this.#sum += other.#sum;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
    return this;
  }

  /** A plain snapshot: the summary and every non-empty bucket. {@link LogHistogram.fromJSON} reads it back. */
  toJSON(): LogHistogramJSON {
    const empty = this.#count === 0;
    const at = (q: number) => (empty ? null : this.quantile(q));
    return {
      count: this.#count,
      min: empty ? null : this.#min,
      max: empty ? null : this.#max,
      mean: empty ? null : this.mean,
      p50: at(0.5),
      p90: at(0.9),
      p99: at(0.99),
      p999: at(0.999),
      buckets: this.#keys().map((index): [number, number] => [upperBound(index), this.#countAt(index)]),
    };
  }

  /**
   * Rebuilds a histogram from {@link LogHistogram.toJSON}'s output (e.g. parsed from a report), so that
   * `fromJSON(h.toJSON()).toJSON()` equals `h.toJSON()`. The percentile fields are recomputed, not read.
   * @throws TypeError naming the field when the snapshot is malformed or inconsistent.
   */
  static fromJSON(json: unknown): LogHistogram {
    const where = 'LogHistogram.fromJSON';
    const bad = (field: string, value: unknown, accepted: string) =>
      new TypeError(`${where}: ${field} must be ${accepted}, got ${show(value)}`);
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw bad('the snapshot', json, 'an object');
    }
    const { count, min, max, mean, buckets } = json as Record<string, unknown>;
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) {
      throw bad('count', count, 'an integer >= 0');
    }
    if (!Array.isArray(buckets)) throw bad('buckets', buckets, 'an array of [upperBound, count]');
    const histogram = new LogHistogram();
    let total = 0;
    let previous = -1;
    for (const [i, entry] of buckets.entries()) {
      const [bound, n] = Array.isArray(entry) && entry.length === 2 ? (entry as unknown[]) : [];
      const index = typeof bound === 'number' ? bucketEndingAt(bound) : -1;
      if (index < 0) throw bad(`buckets[${i}][0]`, bound, 'a bucket upper bound');
      if (index <= previous) throw bad(`buckets[${i}][0]`, bound, `greater than buckets[${i - 1}][0]`);
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
        throw bad(`buckets[${i}][1]`, n, 'an integer >= 1');
      }
      histogram.#add(index, n);
      total += n;
      previous = index;
    }
    if (total !== count) throw bad('count', count, `the sum of the bucket counts (${total})`);
    if (count === 0) {
      for (const [field, value] of [
        ['min', min],
        ['max', max],
        ['mean', mean],
      ] as const) {
        if (value !== null && value !== undefined) throw bad(field, value, 'null for an empty histogram');
      }
      return histogram;
    }
    const keys = histogram.#keys();
    const first = keys[0]!;
    const last = keys[keys.length - 1]!;
    if (typeof min !== 'number' || !(min >= 0) || bucketOf(min) !== first) {
      throw bad('min', min, 'a number in the first bucket');
    }
    if (typeof max !== 'number' || !Number.isFinite(max) || bucketOf(max) !== last || max < min) {
      throw bad('max', max, 'a finite number in the last bucket');
    }
    if (typeof mean !== 'number' || !(mean >= min && mean <= max)) {
      throw bad('mean', mean, `a number from min (${min}) to max (${max})`);
    }
    histogram.#count = count;
    histogram.#min = min;
    histogram.#max = max;
    histogram.#sum = sumFor(mean, count, min, max);
    return histogram;
  }

  #add(index: number, n: number): void {
    if (index === 0) {
      if (this.#zero === 0) this.#newBucket();
      this.#zero += n;
      return;
    }
    let counts = this.#counts;
    let i = index - this.#base;
    if (counts === undefined || i < 0 || i >= counts.length) {
      const grown = this.#cover(index);
      if (grown === undefined) {
        this.#sparse ??= new Map();
        const sparse = this.#sparse;
        const held = sparse.get(index) ?? 0;
        if (held === 0) this.#newBucket();
        sparse.set(index, held + n);
        return;
      }
      counts = grown;
      i = index - this.#base;
    }
    const current = counts[i] as number;
    if (current === 0) this.#newBucket();
    counts[i] = current + n;
  }

  #newBucket(): void {
    this.#nonEmpty++;
    this.#sortedKeys = undefined;
  }

  /**
   * Grows the dense range (at least doubling it, up to its maximum) so that it holds bucket `index`;
   * undefined when it would span more than the maximum.
   */
  #cover(index: number): Float64Array | undefined {
    const old = this.#counts;
    if (old === undefined) {
      this.#counts = new Float64Array(INITIAL_SPAN);
      this.#base = index - INITIAL_SPAN / 2;
      return this.#counts;
    }
    const low = Math.min(this.#base, index);
    const high = Math.max(this.#base + old.length, index + 1);
    if (high - low > MAX_SPAN) return undefined;
    const length = Math.min(MAX_SPAN, Math.max(2 * old.length, high - low));
    // Room on the side that grew: the next value is likelier to fall further that way.
    const base = index < this.#base ? high - length : low;
    const counts = new Float64Array(length);
    counts.set(old, this.#base - base);
    this.#counts = counts;
    this.#base = base;
    return counts;
  }

  #countAt(index: number): number {
    if (index === 0) return this.#zero;
    return (this.#counts?.[index - this.#base] as number | undefined) ?? this.#sparse?.get(index) ?? 0;
  }

  /** The non-empty buckets, ascending. */
  #keys(): number[] {
    if (this.#sortedKeys === undefined) {
      const keys: number[] = this.#zero > 0 ? [0] : [];
      const counts = this.#counts;
      if (counts !== undefined) {
        for (let i = 0; i < counts.length; i++) if ((counts[i] as number) > 0) keys.push(this.#base + i);
      }
      if (this.#sparse !== undefined) {
        keys.push(...this.#sparse.keys());
        keys.sort((a, b) => a - b);
      }
      this.#sortedKeys = keys;
    }
    return this.#sortedKeys;
  }
}

function meanOf(sum: number, count: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, sum / count));
}

/** A sum whose mean is `mean`, so that a histogram read back from JSON reports the same mean. */
function sumFor(mean: number, count: number, min: number, max: number): number {
  const guess = mean * count;
  if (guess === 0 || !Number.isFinite(guess) || meanOf(guess, count, min, max) === mean) return guess;
  let down = guess;
  let up = guess;
  for (let step = 0; step < 8; step++) {
    down = adjacent(down, false);
    up = adjacent(up, true);
    if (meanOf(up, count, min, max) === mean) return up;
    if (meanOf(down, count, min, max) === mean) return down;
  }
  return guess;
}
