import { describe, expect, it } from 'vitest';
import { runScenario } from '../runner.js';
import { builtinScenarios } from './index.js';
import { RATE_LIMIT_CLIENTS, rateLimitScenario } from './rate-limit.js';

describe('rate-limit scenario', () => {
  it('is registered, runs on the system clock, and shows what each policy does against a real 429 server', async () => {
    expect(builtinScenarios().get('rate-limit')).toBe(rateLimitScenario);
    expect(rateLimitScenario.clock).toBe('system');
    const progress: number[] = [];
    const report = await runScenario(rateLimitScenario, {
      seed: 1,
      tasks: 40,
      onProgress: (done) => progress.push(done),
    });
    for (const client of RATE_LIMIT_CLIENTS) {
      expect(report.metrics[`success.${client}`]?.total).toBe(40);
      expect(report.values[`calls.${client}`]).toBeGreaterThanOrEqual(40);
      expect(report.values).toHaveProperty(`http429.${client}`);
      expect(report.values[`total_ms.${client}`]).toBeGreaterThan(0);
    }
    const rate = (name: string) => report.metrics[name]?.rate ?? Number.NaN;
    // Timings are real, so these are the robust consequences, not exact numbers.
    expect(rate('success.none')).toBeLessThan(1);
    expect(rate('success.retry_after')).toBe(1);
    expect(rate('success.rate_limit')).toBe(1);
    expect(report.values['http429.rate_limit']).toBe(0);
    expect(rate('wasted.naive_retry')).toBeGreaterThan(rate('wasted.retry_after'));
    expect(report.values['calls.naive_retry']).toBeGreaterThan(report.values['calls.retry_after'] as number);
    expect(report.passed).toBe(true);
    expect(progress.at(-1)).toBe(40);
  }, 30_000);

  it('caps the requests per client, whatever the task count', async () => {
    const report = await runScenario(rateLimitScenario, {
      seed: 2,
      tasks: 1_000_000,
      params: { maxRequests: 5 },
    });
    expect(report.metrics['success.none']?.total).toBe(5);
  });
});
