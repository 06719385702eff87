import { describe, expect, it } from 'vitest';
import { formatMs, toMs } from './duration.js';

describe('toMs', () => {
  it.each([
    [250, 250],
    ['250ms', 250],
    ['5s', 5000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1.5s', 1500],
    ['1m30s', 90_000],
    [' 10ms ', 10],
    ['500us', 0.5],
    [0, 0],
  ])('%j is %d ms', (input, expected) => {
    expect(toMs(input)).toBe(expected);
  });

  it.each(['', '5', 'ms', '5 s', '5sec', '-5s', 'abc', '1s2'])(
    'rejects %j with a TypeError naming the value',
    (input) => {
      expect(() => toMs(input, 'timeout')).toThrow(TypeError);
      expect(() => toMs(input, 'timeout')).toThrow(
        new RegExp(`timeout: invalid duration ${JSON.stringify(input)}`),
      );
    },
  );

  it('rejects negative and non-finite numbers', () => {
    expect(() => toMs(-1)).toThrow(/got -1/);
    expect(() => toMs(Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(() => toMs(Number.NaN)).toThrow(TypeError);
    expect(() => toMs({} as unknown as number)).toThrow(TypeError);
  });

  it('formats for people', () => {
    expect(formatMs(0.25)).toBe('250µs');
    expect(formatMs(250)).toBe('250ms');
    expect(formatMs(1500)).toBe('1.5s');
    expect(formatMs(90_000)).toBe('1.5m');
    expect(formatMs(5_400_000)).toBe('1.5h');
  });
});
