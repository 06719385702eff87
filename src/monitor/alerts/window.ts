/**
 * A sliding window of counts made of fixed buckets (a ring): adding is O(1), and so is reading the sum,
 * which is kept as the ring rotates. Old buckets are cleared as time passes, lazily, at most once each.
 */
export class BucketedWindow {
  private readonly counts: Float64Array;
  private readonly bucketMs: number;
  /** The absolute index (time / bucketMs) of the newest bucket. */
  private head = Number.NEGATIVE_INFINITY;
  private total = 0;

  constructor(
    readonly windowMs: number,
    buckets: number,
  ) {
    if (!(windowMs > 0)) throw new TypeError(`BucketedWindow: windowMs must be > 0, got ${windowMs}`);
    if (!Number.isInteger(buckets) || buckets < 1) {
      throw new TypeError(`BucketedWindow: buckets must be an integer >= 1, got ${buckets}`);
    }
    this.counts = new Float64Array(buckets);
    this.bucketMs = windowMs / buckets;
  }

  add(now: number, n = 1): void {
    this.rotate(now);
    this.counts[this.head % this.counts.length] = (this.counts[this.head % this.counts.length] as number) + n;
    this.total += n;
  }

  /** The sum over the window ending at `now`. */
  sum(now: number): number {
    this.rotate(now);
    // Float drift from many += and -= is rounded away; counts are integers.
    return Math.round(this.total * 1e6) / 1e6;
  }

  private rotate(now: number): void {
    const index = Math.floor(now / this.bucketMs);
    if (index <= this.head) return;
    const size = this.counts.length;
    if (index - this.head >= size) {
      this.counts.fill(0);
      this.total = 0;
    } else {
      for (let i = this.head + 1; i <= index; i++) {
        const slot = i % size;
        this.total -= this.counts[slot] as number;
        this.counts[slot] = 0;
      }
    }
    this.head = index;
  }
}
