/**
 * Seeded randomness. The generator is sfc32 (Chris Doty-Humphrey's "Small Fast Counting" generator,
 * 128-bit state, passes PractRand to 2^40+ bytes); a seed of any string or number is hashed into its
 * state with cyrb128. `fork(label)` derives a child stream from the parent's *seed* and the label, not
 * from its position, so adding a fork or drawing more numbers in one component never shifts another's.
 */

export type Seed = number | string;

function cyrb128(text: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

/** A reproducible stream of random numbers. */
export class Random {
  /** The seed path this stream was made from, e.g. `42/lab/scenario:retry`. */
  readonly seed: string;
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | undefined;

  constructor(seed: Seed) {
    if (typeof seed === 'number' && !Number.isFinite(seed)) {
      throw new TypeError(`Random: seed must be a finite number or a string, got ${seed}`);
    }
    this.seed = String(seed);
    [this.a, this.b, this.c, this.d] = cyrb128(this.seed);
    // Discard the first outputs: sfc32's state needs a few rounds to mix a weak seed.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** An independent, reproducible stream named `label` under this one. */
  fork(label: string): Random {
    return new Random(`${this.seed}/${label}`);
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A float uniformly distributed in [min, max). */
  uniform(min = 0, max = 1): number {
    return min + (max - min) * this.next();
  }

  /** An integer uniformly distributed in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) {
      throw new TypeError(`Random.int: need integers min <= max, got ${min}, ${max}`);
    }
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  bernoulli(p: number): boolean {
    if (!(p >= 0 && p <= 1)) throw new TypeError(`Random.bernoulli: p must be in [0, 1], got ${p}`);
    if (p === 0) return false;
    if (p === 1) return true;
    return this.next() < p;
  }

  /** A normally distributed number (Marsaglia's polar method). */
  normal(mean = 0, stddev = 1): number {
    if (this.spare !== undefined) {
      const z = this.spare;
      this.spare = undefined;
      return mean + stddev * z;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = this.next() * 2 - 1;
      v = this.next() * 2 - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const m = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = v * m;
    return mean + stddev * u * m;
  }

  /** A log-normally distributed number: `exp(normal(mu, sigma))`. */
  lognormal(mu: number, sigma: number): number {
    return Math.exp(this.normal(mu, sigma));
  }

  /** An exponentially distributed number with the given mean. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next());
  }

  /** One element of `items`, uniformly; throws on an empty list. */
  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new TypeError('Random.choice: items is empty');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** One element of `items`, chosen with probability proportional to its weight. */
  weighted<T>(items: readonly T[], weights: readonly number[]): T {
    if (items.length === 0 || items.length !== weights.length) {
      throw new TypeError('Random.weighted: need as many weights as items, and at least one item');
    }
    let total = 0;
    for (const w of weights) {
      if (!(w >= 0)) throw new TypeError(`Random.weighted: weights must be >= 0, got ${w}`);
      total += w;
    }
    let x = this.next() * total;
    for (let i = 0; i < items.length; i++) {
      x -= weights[i] as number;
      if (x < 0) return items[i] as T;
    }
    return items[items.length - 1] as T;
  }

  /** A new array with the elements of `items` in random order (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const t = out[i] as T;
      out[i] = out[j] as T;
      out[j] = t;
    }
    return out;
  }
}

/**
 * Parameters of a log-normal distribution with the given median and 99th percentile
 * (how latency is usually described).
 */
export function lognormalFromMedianP99(median: number, p99: number): { mu: number; sigma: number } {
  if (!(median > 0) || !(p99 >= median)) {
    throw new TypeError(`lognormal: need 0 < median <= p99, got median ${median}, p99 ${p99}`);
  }
  const Z99 = 2.3263478740408408;
  return { mu: Math.log(median), sigma: Math.log(p99 / median) / Z99 };
}
