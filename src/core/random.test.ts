import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lognormalFromMedianP99, Random } from './random.js';

describe('Random', () => {
  it('is reproducible from a seed, and differs between seeds', () => {
    const a = new Random(42);
    const b = new Random(42);
    const c = new Random(43);
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(xs);
    expect(new Random('42').next()).toBe(new Random(42).next());
  });

  it('fork depends on the seed and label only, not on how much the parent drew', () => {
    const a = new Random(7);
    const b = new Random(7);
    b.next();
    b.next();
    expect(a.fork('x').next()).toBe(b.fork('x').next());
    expect(a.fork('x').next()).not.toBe(a.fork('y').next());
    expect(a.fork('x').seed).toBe('7/x');
  });

  it('next is uniform in [0, 1)', () => {
    const r = new Random('uniform');
    const bins = new Array(10).fill(0);
    const n = 100_000;
    let outside = 0;
    for (let i = 0; i < n; i++) {
      const x = r.next();
      if (!(x >= 0 && x < 1)) outside++;
      else bins[Math.floor(x * 10)]++;
    }
    expect(outside).toBe(0);
    // Chi-square with 9 degrees of freedom: 27.9 is the 0.999 quantile.
    const expected = n / 10;
    const chi2 = bins.reduce((s, o) => s + (o - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(27.9);
  });

  it('bernoulli, normal and lognormal have the right moments', () => {
    const r = new Random('moments');
    const n = 50_000;
    let hits = 0;
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      if (r.bernoulli(0.3)) hits++;
      const x = r.normal(10, 2);
      sum += x;
      sq += x * x;
    }
    expect(Math.abs(hits / n - 0.3)).toBeLessThan(0.01);
    const mean = sum / n;
    expect(Math.abs(mean - 10)).toBeLessThan(0.05);
    expect(Math.abs(Math.sqrt(sq / n - mean * mean) - 2)).toBeLessThan(0.05);
    const { mu, sigma } = lognormalFromMedianP99(100, 1000);
    const samples = Array.from({ length: n }, () => r.lognormal(mu, sigma)).sort((x, y) => x - y);
    expect(Math.abs((samples[n / 2] as number) / 100 - 1)).toBeLessThan(0.05);
    expect(Math.abs((samples[Math.floor(n * 0.99)] as number) / 1000 - 1)).toBeLessThan(0.1);
  });

  it('int, choice, weighted and shuffle stay in range', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: -50, max: 50 }), fc.nat(100), (seed, min, span) => {
        const r = new Random(seed);
        const x = r.int(min, min + span);
        expect(Number.isInteger(x) && x >= min && x <= min + span).toBe(true);
        const items = ['a', 'b', 'c'];
        expect(items).toContain(r.choice(items));
        expect(r.weighted(items, [0, 1, 0])).toBe('b');
        expect(r.shuffle(items).sort()).toEqual(items);
      }),
    );
  });

  it('rejects bad arguments with a TypeError naming them', () => {
    const r = new Random(1);
    expect(() => r.bernoulli(1.5)).toThrow(/p must be in \[0, 1\], got 1.5/);
    expect(() => r.choice([])).toThrow(TypeError);
    expect(() => r.int(3, 1)).toThrow(TypeError);
    expect(() => new Random(Number.NaN)).toThrow(TypeError);
    expect(() => lognormalFromMedianP99(10, 5)).toThrow(TypeError);
  });
});
