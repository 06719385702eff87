import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Random } from '../core/random.js';
import { type Backoff, backoff, isBackoff, type JitterKind } from './backoff.js';

/** The delays of the first `n` steps after `b`. */
function delays(b: Backoff, n: number, random?: Random): number[] {
  const out: number[] = [];
  let step = b;
  for (let i = 0; i < n; i++) {
    step = step.next(random);
    out.push(step.delay);
  }
  return out;
}

describe('backoff schedules', () => {
  it('starts at attempt 0 with no delay; next() gives the wait before each retry', () => {
    const b = backoff.constant('1s');
    expect([b.attempt, b.delay]).toEqual([0, 0]);
    const first = b.next();
    expect([first.attempt, first.delay]).toEqual([1, 1000]);
    expect(first.next().attempt).toBe(2);
  });

  it('constant repeats its delay; accepts milliseconds', () => {
    expect(delays(backoff.constant(250), 4)).toEqual([250, 250, 250, 250]);
    expect(delays(backoff.constant('1m30s'), 2)).toEqual([90_000, 90_000]);
  });

  it('linear grows by step up to max; step defaults to initial, initial to 100ms, max to 30s', () => {
    expect(delays(backoff.linear({ initial: 100, step: '50ms', max: 300 }), 6)).toEqual([
      100, 150, 200, 250, 300, 300,
    ]);
    expect(delays(backoff.linear({ initial: '1s' }), 3)).toEqual([1000, 2000, 3000]);
    expect(delays(backoff.linear(), 3)).toEqual([100, 200, 300]);
    expect(delays(backoff.linear({ initial: '10s' }), 4)).toEqual([10_000, 20_000, 30_000, 30_000]);
  });

  it('exponential multiplies by factor up to max; defaults 100ms, x2, 30s', () => {
    expect(delays(backoff.exponential(), 4)).toEqual([100, 200, 400, 800]);
    const capped = delays(backoff.exponential(), 12);
    expect(capped.slice(8)).toEqual([25_600, 30_000, 30_000, 30_000]);
    expect(delays(backoff.exponential({ initial: '1s', factor: 3, max: '10s' }), 4)).toEqual([
      1000, 3000, 9000, 10_000,
    ]);
    expect(delays(backoff.exponential({ factor: 1 }), 3)).toEqual([100, 100, 100]);
  });

  it('is immutable: next() and withJitter() return new values and never change the old one', () => {
    const b = backoff.exponential();
    const first = b.next();
    const again = b.next();
    expect(again).not.toBe(first);
    expect(again.delay).toBe(first.delay);
    expect([b.attempt, b.delay]).toEqual([0, 0]);
    const jittered = first.withJitter('full');
    expect(jittered).not.toBe(first);
    expect([jittered.attempt, jittered.delay]).toEqual([1, 100]);
    expect(String(first)).toBe('exponential(100ms x2, max 30s)');
  });

  it('next() on the same value with equal random streams gives equal steps', () => {
    const b = backoff.exponential({ initial: '1s' }).withJitter('full').next(new Random(3));
    const a1 = b.next(new Random('s'));
    const a2 = b.next(new Random('s'));
    expect(a1.delay).toBe(a2.delay);
    expect(delays(a1, 5, new Random(9))).toEqual(delays(a2, 5, new Random(9)));
  });

  it('without a Random, draws from a fixed module-level stream', () => {
    const d = delays(backoff.constant(1000).withJitter('full'), 20);
    for (const x of d) expect(x).toBeGreaterThanOrEqual(0);
    for (const x of d) expect(x).toBeLessThanOrEqual(1000);
    expect(new Set(d).size).toBeGreaterThan(1);
  });

  it('prints its schedule', () => {
    expect(String(backoff.exponential().withJitter('full'))).toBe(
      'exponential(100ms x2, max 30s, full jitter)',
    );
    expect(backoff.exponential({ initial: '1.5s', factor: 1.5, max: '2m' }).toString()).toBe(
      'exponential(1.5s x1.5, max 2m)',
    );
    expect(String(backoff.linear({ initial: '1s', step: '500ms', max: '5s' }))).toBe(
      'linear(1s +500ms, max 5s)',
    );
    expect(String(backoff.constant('2s').withJitter('equal'))).toBe('constant(2s, equal jitter)');
    expect(String(backoff.constant('2s').withJitter('full').withJitter('none'))).toBe('constant(2s)');
  });

  it('isBackoff recognises backoff values and look-alikes', () => {
    expect(isBackoff(backoff.constant(1))).toBe(true);
    expect(isBackoff({ delay: 0, attempt: 0, next: () => undefined })).toBe(true);
    expect(isBackoff({ delay: 0 })).toBe(false);
    expect(isBackoff(null)).toBe(false);
    expect(isBackoff('exponential')).toBe(false);
  });
});

describe('jitter', () => {
  it('full: uniform in [0, d], drawn from the given random', () => {
    const expected = new Random(7);
    const got = delays(backoff.exponential({ initial: 100 }).withJitter('full'), 4, new Random(7));
    expect(got).toEqual([100, 200, 400, 800].map((d) => expected.uniform(0, d)));
  });

  it('equal: d/2 plus uniform in [0, d/2]', () => {
    const expected = new Random(7);
    const got = delays(backoff.linear({ initial: 100 }).withJitter('equal'), 3, new Random(7));
    expect(got).toEqual([100, 200, 300].map((d) => d / 2 + expected.uniform(0, d / 2)));
  });

  it('decorrelated: min(max, uniform(initial, previous * 3)), starting from initial', () => {
    const expected = new Random(11);
    const got = delays(
      backoff.exponential({ initial: 100, max: 1000 }).withJitter('decorrelated'),
      30,
      new Random(11),
    );
    let previous = 100;
    const want = got.map(() => {
      previous = Math.min(1000, expected.uniform(100, previous * 3));
      return previous;
    });
    expect(got).toEqual(want);
    expect(got.some((d) => d === 1000)).toBe(true);
  });

  it('none: the schedule as is; withJitter keeps the position in the schedule', () => {
    const b = backoff.exponential().next().next();
    const withFull = b.withJitter('full');
    expect([withFull.attempt, withFull.delay]).toEqual([2, 200]);
    const base = withFull.next(new Random(1));
    expect(base.attempt).toBe(3);
    expect(base.delay).toBeLessThanOrEqual(400);
    expect(withFull.withJitter('none').next().delay).toBe(400);
  });

  it('rejects an unknown jitter kind', () => {
    expect(() => backoff.constant(1).withJitter('fulll' as JitterKind)).toThrow(
      'backoff.withJitter: option "kind" must be one of "none", "full", "equal", "decorrelated", got "fulll"',
    );
    expect(() => backoff.constant(1).withJitter(undefined as unknown as JitterKind)).toThrow(TypeError);
  });
});

describe('validation', () => {
  it('constant: delay is a required duration >= 0', () => {
    expect(() => backoff.constant(-1)).toThrow(
      /backoff\.constant: option "delay" must be a duration >= 0ms .*got -1/,
    );
    expect(() => backoff.constant('soon')).toThrow(
      /backoff\.constant: option "delay": invalid duration "soon"/,
    );
    expect(() => backoff.constant(undefined as unknown as number)).toThrow(
      'backoff.constant: option "delay" must be a duration, got undefined',
    );
    expect(() => backoff.constant(Number.NaN)).toThrow(TypeError);
  });

  it('linear: initial, step, max are durations; max >= initial; no unknown keys', () => {
    expect(() => backoff.linear({ initial: -5 })).toThrow(/backoff\.linear: option "initial" .*got -5/);
    expect(() => backoff.linear({ step: 'x' })).toThrow(/backoff\.linear: option "step": invalid duration/);
    expect(() => backoff.linear({ max: Number.POSITIVE_INFINITY })).toThrow(
      /backoff\.linear: option "max" .*got Infinity/,
    );
    expect(() => backoff.linear({ initial: '2s', max: '1s' })).toThrow(
      'backoff.linear: option "max" must be a duration >= initial (2s), got "1s"',
    );
    expect(() => backoff.linear({ intial: 5 } as never)).toThrow(
      'backoff.linear: unknown option "intial"; known options are initial, step, max',
    );
    expect(() => backoff.linear(5 as never)).toThrow(
      'backoff.linear: option "options" must be an object, got 5',
    );
  });

  it('exponential: initial, max are durations; factor a finite number >= 1; max >= initial', () => {
    expect(() => backoff.exponential({ initial: 'fast' })).toThrow(/backoff\.exponential: option "initial"/);
    expect(() => backoff.exponential({ factor: 0.5 })).toThrow(
      'backoff.exponential: option "factor" must be a number >= 1, got 0.5',
    );
    expect(() => backoff.exponential({ factor: Number.NaN })).toThrow(/option "factor" .*got NaN/);
    expect(() => backoff.exponential({ factor: '2' as never })).toThrow(/option "factor" .*got "2"/);
    expect(() => backoff.exponential({ factor: Number.POSITIVE_INFINITY })).toThrow(
      'backoff.exponential: option "factor" must be a finite number >= 1, got Infinity',
    );
    expect(() => backoff.exponential({ max: -1 })).toThrow(/backoff\.exponential: option "max" .*got -1/);
    expect(() => backoff.exponential({ initial: '1s', max: 10 })).toThrow(
      'backoff.exponential: option "max" must be a duration >= initial (1s), got 10',
    );
    expect(() => backoff.exponential({ jitter: 'full' } as never)).toThrow(
      /unknown option "jitter"; known options are initial, factor, max/,
    );
  });
});

describe('properties', () => {
  const kinds: JitterKind[] = ['none', 'full', 'equal', 'decorrelated'];
  const shape = fc.oneof(
    fc.record({
      shape: fc.constant('constant' as const),
      initial: fc.double({ min: 0, max: 1e5, noNaN: true }),
    }),
    fc
      .record({
        shape: fc.constant('linear' as const),
        initial: fc.double({ min: 0, max: 1e5, noNaN: true }),
        step: fc.double({ min: 0, max: 1e5, noNaN: true }),
        extra: fc.double({ min: 0, max: 1e6, noNaN: true }),
      })
      .map((o) => ({ ...o, max: o.initial + o.extra })),
    fc
      .record({
        shape: fc.constant('exponential' as const),
        initial: fc.double({ min: 0, max: 1e5, noNaN: true }),
        factor: fc.double({ min: 1, max: 10, noNaN: true }),
        extra: fc.double({ min: 0, max: 1e6, noNaN: true }),
      })
      .map((o) => ({ ...o, max: o.initial + o.extra })),
  );
  type Shape = typeof shape extends fc.Arbitrary<infer S> ? S : never;

  function build(s: Shape): { b: Backoff; initial: number; max: number } {
    if (s.shape === 'constant') return { b: backoff.constant(s.initial), initial: s.initial, max: s.initial };
    if (s.shape === 'linear') {
      return {
        b: backoff.linear({ initial: s.initial, step: s.step, max: s.max }),
        initial: s.initial,
        max: s.max,
      };
    }
    return {
      b: backoff.exponential({ initial: s.initial, factor: s.factor, max: s.max }),
      initial: s.initial,
      max: s.max,
    };
  }

  it('every delay of every kind is in [0, max]; full in [0, base], equal in [base/2, base], decorrelated in [initial, max]', () => {
    fc.assert(
      fc.property(shape, fc.constantFrom(...kinds), fc.integer(), (s, kind, seed) => {
        const { b, initial, max } = build(s);
        const random = new Random(seed);
        let plain = b;
        let jittered = b.withJitter(kind);
        for (let i = 0; i < 40; i++) {
          plain = plain.next();
          jittered = jittered.next(random);
          const base = plain.delay;
          const d = jittered.delay;
          expect(jittered.attempt).toBe(i + 1);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThanOrEqual(max);
          if (kind === 'none') expect(d).toBe(base);
          if (kind === 'full') expect(d).toBeLessThanOrEqual(base);
          if (kind === 'equal') {
            expect(d).toBeGreaterThanOrEqual(base / 2);
            expect(d).toBeLessThanOrEqual(base);
          }
          if (kind === 'decorrelated') expect(d).toBeGreaterThanOrEqual(initial);
        }
      }),
    );
  });

  it('exponential without jitter is non-decreasing, starts at initial and is capped at max', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e5, noNaN: true }),
        fc.double({ min: 1, max: 10, noNaN: true }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        (initial, factor, extra) => {
          const max = initial + extra;
          const d = delays(backoff.exponential({ initial, factor, max }), 60);
          expect(d[0]).toBe(initial);
          for (let i = 1; i < d.length; i++) {
            expect(d[i]).toBeGreaterThanOrEqual(d[i - 1] as number);
            expect(d[i]).toBeLessThanOrEqual(max);
          }
          if (factor >= 1.5 && initial >= 1) expect(d[d.length - 1]).toBe(max);
        },
      ),
    );
  });

  it('next() is a pure function of the value and the random stream', () => {
    fc.assert(
      fc.property(shape, fc.constantFrom(...kinds), fc.string(), (s, kind, seed) => {
        const b = build(s).b.withJitter(kind);
        expect(delays(b, 10, new Random(seed))).toEqual(delays(b, 10, new Random(seed)));
      }),
    );
  });
});
