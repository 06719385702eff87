import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Random } from '../core/random.js';
import { isSchedule, type Schedule, type ScheduleState, type SequenceStep, schedule } from './schedule.js';

/** A stand-in for a fault's state: calls counted from 1, a seeded stream, a settable elapsed time. */
class State implements ScheduleState {
  call = 0;
  time = 0;
  readonly random: Random;
  constructor(seed: number | string = 1) {
    this.random = new Random(seed);
  }
  elapsed(): number {
    return this.time;
  }
}

/** The decisions of `s` on calls 1..n (1-based call numbers of the calls it fired on). */
function firing(s: Schedule, n: number, state = new State()): number[] {
  const fired: number[] = [];
  for (let i = 0; i < n; i++) {
    state.call++;
    if (s.fires(state)) fired.push(state.call);
  }
  return fired;
}

describe('schedule', () => {
  it('firstN fires on the first n calls', () => {
    expect(firing(schedule.firstN(3), 10)).toEqual([1, 2, 3]);
    expect(firing(schedule.firstN(0), 10)).toEqual([]);
  });

  it('everyNth fires on calls n, 2n, 3n, …', () => {
    expect(firing(schedule.everyNth(3), 10)).toEqual([3, 6, 9]);
    expect(firing(schedule.everyNth(1), 4)).toEqual([1, 2, 3, 4]);
  });

  it('always and never', () => {
    expect(firing(schedule.always(), 3)).toEqual([1, 2, 3]);
    expect(firing(schedule.never(), 3)).toEqual([]);
  });

  it('sequence follows its script, then passes; with repeat it starts over', () => {
    expect(firing(schedule.sequence(['fail', 'fail', 'ok']), 7)).toEqual([1, 2]);
    expect(firing(schedule.sequence(['ok', 'fail']), 5)).toEqual([2]);
    expect(firing(schedule.sequence(['fail', 'fail', 'ok'], { repeat: true }), 7)).toEqual([1, 2, 4, 5, 7]);
    expect(firing(schedule.sequence(['ok', 'fail'], { repeat: false }), 5)).toEqual([2]);
  });

  it('sequence copies its script: changing the array later changes nothing', () => {
    const steps: SequenceStep[] = ['fail', 'ok'];
    const s = schedule.sequence(steps);
    steps[1] = 'fail';
    expect(firing(s, 3)).toEqual([1]);
  });

  it('window fires while from <= elapsed < to', () => {
    const s = schedule.window('10s', 20_000);
    const state = new State();
    const at = (t: number) => {
      state.time = t;
      return s.fires(state);
    };
    expect([0, 9_999, 10_000, 15_000, 19_999, 20_000, 60_000].map(at)).toEqual([
      false,
      false,
      true,
      true,
      true,
      false,
      false,
    ]);
    const open = schedule.window(5, Number.POSITIVE_INFINITY);
    state.time = 4;
    expect(open.fires(state)).toBe(false);
    state.time = 1e12;
    expect(open.fires(state)).toBe(true);
  });

  it('rate draws once per call from the given stream: the same seed, the same decisions', () => {
    const a = firing(schedule.rate(0.3), 1000, new State('seed-a'));
    const again = firing(schedule.rate(0.3), 1000, new State('seed-a'));
    const other = firing(schedule.rate(0.3), 1000, new State('seed-b'));
    expect(again).toEqual(a);
    expect(other).not.toEqual(a);
    // Exactly the calls whose draw fell below p.
    const r = new Random('seed-a');
    const expected: number[] = [];
    for (let call = 1; call <= 1000; call++) if (r.next() < 0.3) expected.push(call);
    expect(a).toEqual(expected);
  });

  it('rate(0) never fires and rate(1) always does, drawing all the same', () => {
    const state = new State(5);
    expect(firing(schedule.rate(0), 50, state)).toEqual([]);
    const reference = new Random(5);
    for (let i = 0; i < 50; i++) reference.next();
    expect(state.random.next()).toBe(reference.next());
    expect(firing(schedule.rate(1), 5)).toEqual([1, 2, 3, 4, 5]);
  });

  it('rate(0.3) fires within the 99.9% binomial bound over 100,000 calls', () => {
    const n = 100_000;
    const p = 0.3;
    // Two-sided 99.9%: z = 3.2905; sd = sqrt(n p (1 - p)) = 144.9; bound = 476.8.
    const bound = 3.2905 * Math.sqrt(n * p * (1 - p));
    const count = firing(schedule.rate(p), n, new State(2024)).length;
    expect(Math.abs(count - n * p)).toBeLessThanOrEqual(bound);
  });

  it('and fires when both fire, asking the second only when the first fires', () => {
    const state = new State(9);
    const both = schedule.firstN(4).and(schedule.everyNth(2));
    expect(firing(both, 10, state)).toEqual([2, 4]);
    // rate draws only on the 3 calls firstN lets through.
    const counted = new State(9);
    firing(schedule.firstN(3).and(schedule.rate(0.5)), 10, counted);
    const reference = new Random(9);
    for (let i = 0; i < 3; i++) reference.next();
    expect(counted.random.next()).toBe(reference.next());
  });

  it('or fires when either fires, asking the second only when the first does not', () => {
    expect(firing(schedule.firstN(2).or(schedule.everyNth(5)), 12)).toEqual([1, 2, 5, 10]);
    const counted = new State(3);
    firing(schedule.firstN(7).or(schedule.rate(0.5)), 10, counted);
    const reference = new Random(3);
    for (let i = 0; i < 3; i++) reference.next();
    expect(counted.random.next()).toBe(reference.next());
  });

  it('schedules are values that print as they were written', () => {
    expect(String(schedule.rate(0.3))).toBe('rate(0.3)');
    expect(String(schedule.firstN(10))).toBe('firstN(10)');
    expect(String(schedule.everyNth(5))).toBe('everyNth(5)');
    expect(String(schedule.window('10s', '1m'))).toBe('window(10s, 1m)');
    expect(String(schedule.window(0, Number.POSITIVE_INFINITY))).toBe('window(0ms, Infinity)');
    expect(String(schedule.window(250, 1500))).toBe('window(250ms, 1.5s)');
    expect(String(schedule.sequence(['fail', 'fail', 'ok']))).toBe('sequence(fail*2, ok)');
    expect(String(schedule.sequence(['ok', 'fail', 'ok'], { repeat: true }))).toBe(
      'sequence(ok, fail, ok; repeat)',
    );
    expect(String(schedule.always())).toBe('always()');
    expect(String(schedule.never())).toBe('never()');
    expect(String(schedule.firstN(100).and(schedule.rate(0.5)).or(schedule.everyNth(7)))).toBe(
      'firstN(100).and(rate(0.5)).or(everyNth(7))',
    );
    expect(isSchedule(schedule.always())).toBe(true);
    expect(isSchedule({ fires: () => true })).toBe(true);
    expect(isSchedule({})).toBe(false);
    expect(isSchedule(null)).toBe(false);
  });

  it('property: counting schedules agree with their definition on every call', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.constantFrom<SequenceStep>('fail', 'ok'), { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        (n, k, steps, repeat) => {
          const calls = 60;
          const all = Array.from({ length: calls }, (_, i) => i + 1);
          expect(firing(schedule.firstN(n), calls)).toEqual(all.filter((c) => c <= n));
          expect(firing(schedule.everyNth(k), calls)).toEqual(all.filter((c) => c % k === 0));
          const step = (c: number) =>
            c <= steps.length ? steps[c - 1] : repeat ? steps[(c - 1) % steps.length] : 'ok';
          expect(firing(schedule.sequence(steps, { repeat }), calls)).toEqual(
            all.filter((c) => step(c) === 'fail'),
          );
        },
      ),
    );
  });

  it('property: rate decisions are a function of the seed alone', () => {
    fc.assert(
      fc.property(fc.integer(), fc.double({ min: 0, max: 1, noNaN: true }), (seed, p) => {
        expect(firing(schedule.rate(p), 200, new State(seed))).toEqual(
          firing(schedule.rate(p), 200, new State(seed)),
        );
      }),
      { numRuns: 50 },
    );
  });

  it('validates its arguments', () => {
    const bad = (f: () => unknown) => () => f();
    expect(bad(() => schedule.rate(1.5))).toThrow(
      'schedule.rate: option "p" must be a probability in [0, 1], got 1.5',
    );
    expect(bad(() => schedule.rate(-0.1))).toThrow(/got -0.1$/);
    expect(bad(() => schedule.rate(Number.NaN))).toThrow(/got NaN$/);
    expect(bad(() => schedule.rate('0.3' as unknown as number))).toThrow(/got "0.3"$/);
    expect(bad(() => schedule.firstN(-1))).toThrow(
      'schedule.firstN: option "n" must be an integer >= 0, got -1',
    );
    expect(bad(() => schedule.firstN(1.5))).toThrow(/got 1.5$/);
    expect(bad(() => schedule.firstN(Number.POSITIVE_INFINITY))).toThrow(/got Infinity$/);
    expect(bad(() => schedule.everyNth(0))).toThrow(
      'schedule.everyNth: option "n" must be an integer >= 1, got 0',
    );
    expect(bad(() => schedule.everyNth(undefined as unknown as number))).toThrow(/got undefined$/);
    expect(bad(() => schedule.window('20s', '10s'))).toThrow(
      'schedule.window: option "to" must be a duration > from (20s), got "10s"',
    );
    expect(bad(() => schedule.window(5, 5))).toThrow(/option "to" must be a duration > from \(5ms\), got 5/);
    expect(bad(() => schedule.window(-1, 5))).toThrow(
      /schedule.window: option "from" must be a duration >= 0ms/,
    );
    expect(bad(() => schedule.window('soon', 5))).toThrow(
      /schedule.window: option "from": invalid duration "soon"/,
    );
    expect(bad(() => schedule.window(undefined as unknown as number, 5))).toThrow(
      'schedule.window: option "from" must be a duration, got undefined',
    );
    expect(bad(() => schedule.window(0, undefined as unknown as number))).toThrow(
      'schedule.window: option "to" must be a duration or Infinity, got undefined',
    );
    expect(bad(() => schedule.sequence([]))).toThrow(
      `schedule.sequence: option "steps" must be a non-empty array of 'fail' and 'ok', got an array`,
    );
    expect(bad(() => schedule.sequence('fail' as unknown as SequenceStep[]))).toThrow(/got "fail"$/);
    expect(bad(() => schedule.sequence(['fail', 'error' as SequenceStep]))).toThrow(
      `schedule.sequence: option "steps[1]" must be 'fail' or 'ok', got "error"`,
    );
    expect(bad(() => schedule.sequence(['fail'], { repeat: 'yes' as unknown as boolean }))).toThrow(
      'schedule.sequence: option "repeat" must be a boolean, got "yes"',
    );
    expect(bad(() => schedule.sequence(['fail'], { loop: true } as unknown as { repeat: boolean }))).toThrow(
      'schedule.sequence: unknown option "loop"; known options are repeat',
    );
    expect(bad(() => schedule.sequence(['fail'], null as unknown as { repeat: boolean }))).toThrow(
      'schedule.sequence: option "options" must be an object, got null',
    );
    expect(bad(() => schedule.always().and('x' as unknown as Schedule))).toThrow(
      'schedule.and: option "other" must be a schedule (see `schedule`), got "x"',
    );
    expect(bad(() => schedule.always().or(undefined as unknown as Schedule))).toThrow(
      'schedule.or: option "other" must be a schedule (see `schedule`), got undefined',
    );
  });
});
