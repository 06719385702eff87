import { describe, expect, it } from 'vitest';
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  BulwarkError,
  CancelledError,
  HedgeError,
  IsolatedCircuitError,
  isBulwarkError,
  isNonRetryable,
  nonRetryable,
  RateLimitedError,
  TimeoutError,
} from './errors.js';

describe('errors', () => {
  it('each class has a literal name and a stable code', () => {
    const cases: [BulwarkError, string, string][] = [
      [new BrokenCircuitError(), 'BrokenCircuitError', 'CIRCUIT_OPEN'],
      [new IsolatedCircuitError(), 'IsolatedCircuitError', 'CIRCUIT_ISOLATED'],
      [new TimeoutError(50), 'TimeoutError', 'TIMEOUT'],
      [new BulkheadRejectedError(2, 0), 'BulkheadRejectedError', 'BULKHEAD_FULL'],
      [new RateLimitedError(120), 'RateLimitedError', 'RATE_LIMITED'],
      [new CancelledError('why'), 'CancelledError', 'CANCELLED'],
      [new HedgeError([new Error('a')]), 'HedgeError', 'HEDGE_FAILED'],
    ];
    for (const [error, name, code] of cases) {
      expect(error).toBeInstanceOf(BulwarkError);
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe(name);
      expect(error.code).toBe(code);
      expect(isBulwarkError(error)).toBe(true);
      expect(isBulwarkError(error, code)).toBe(true);
      expect(isBulwarkError(error, 'NOPE')).toBe(false);
    }
    expect(new TimeoutError(50).message).toBe('operation timed out after 50ms');
    expect(new RateLimitedError(120).retryAfter).toBe(120);
    expect(new CancelledError('why').cause).toBe('why');
  });

  it('the guard works across package copies (brand, not instanceof)', () => {
    const foreign = new Error('from another copy');
    Object.defineProperty(foreign, Symbol.for('bulwark.error'), { value: true });
    Object.assign(foreign, { code: 'CIRCUIT_OPEN' });
    expect(isBulwarkError(foreign, 'CIRCUIT_OPEN')).toBe(true);
    expect(isBulwarkError(new Error('plain'))).toBe(false);
    expect(isBulwarkError('CIRCUIT_OPEN')).toBe(false);
    expect(isBulwarkError(null)).toBe(false);
  });

  it('non-retryable marking', () => {
    const e = nonRetryable(new Error('bad key'));
    expect(isNonRetryable(e)).toBe(true);
    expect(isNonRetryable(new Error('x'))).toBe(false);
    expect(isNonRetryable(new BrokenCircuitError())).toBe(true);
    expect(isNonRetryable(new TimeoutError(1))).toBe(false);
    expect(nonRetryable('a string')).toBe('a string');
    expect(isNonRetryable('a string')).toBe(false);
  });
});
