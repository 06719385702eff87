import { describe, expect, it } from 'vitest';
import { POSTGRES_URL, service } from '../../../test/services.js';
import { isBulwarkError } from '../../core/errors.js';
import type { ScenarioReport } from '../document.js';
import { runScenario } from '../runner.js';
import { isOptIn } from '../scenario.js';
import { dbPool } from './db-pool.js';

const postgres = await service('postgres');

const KINDS = ['acquire_timeout', 'timeout', 'bulkhead_full', 'circuit_open', 'connection', 'query', 'other'];

function errors(report: ScenarioReport, arm: string): number {
  return KINDS.reduce((sum, kind) => sum + (report.metrics[`${arm}.error.${kind}`]?.count ?? 0), 0);
}

describe('db-pool scenario', () => {
  it('is opt-in: it needs PostgreSQL and runs in real time', () => {
    expect(isOptIn(dbPool)).toBe(true);
    expect(dbPool.services).toEqual(['postgres']);
    expect(dbPool.clock).toBe('system');
  });

  it('fails with one clear line when PostgreSQL is unreachable, before any load', async () => {
    const error = await runScenario(dbPool, {
      seed: 1,
      tasks: 10,
      params: { url: 'postgres://postgres@127.0.0.1:1/test' },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBulwarkError(error, 'SERVICE_UNAVAILABLE')).toBe(true);
    expect((error as Error).message).toBe(
      'db-pool needs PostgreSQL at 127.0.0.1:1/test: connect ECONNREFUSED 127.0.0.1:1',
    );
  });
});

postgres.describe('db-pool scenario against PostgreSQL', () => {
  it('shows pool waits and cascading latency unprotected, and bounded latency with every request answered protected', async () => {
    const tasks = 150;
    const report = await runScenario(dbPool, { seed: 1, tasks, params: { url: POSTGRES_URL } });
    const { metrics, latency, values } = report;
    expect(values['requests.slow']).toBeGreaterThan(5);
    // Every request is either answered or counted under exactly one error kind.
    expect((metrics['unprotected.answered']?.count ?? 0) + errors(report, 'unprotected')).toBe(tasks);
    expect(metrics['unprotected.success']?.count).toBe(metrics['unprotected.answered']?.count);
    expect((metrics['protected.success']?.count ?? 0) + errors(report, 'protected')).toBe(tasks);
    expect(metrics['protected.answered']).toMatchObject({ rate: 1, count: tasks, total: tasks });
    // No protection: no policy errors exist, and queries wait behind the slow ones.
    for (const kind of ['timeout', 'bulkhead_full', 'circuit_open']) {
      expect(metrics[`unprotected.error.${kind}`]?.count).toBe(0);
    }
    const unprotected = latency['unprotected.latency_ms'];
    const guarded = latency['protected.latency_ms'];
    expect(unprotected?.count).toBe(tasks);
    expect(guarded?.count).toBe(tasks);
    // A slow query alone takes 500 ms; waiting behind others makes the unprotected p99 longer still.
    expect(unprotected?.p99).toBeGreaterThan(500);
    // The 200 ms timeout bounds the protected arm (with slack for a loaded machine).
    expect(guarded?.p99).toBeLessThan(500);
    expect(guarded?.p99).toBeLessThan(unprotected?.p99 ?? 0);
    expect(metrics['protected.error.timeout']?.count).toBeGreaterThan(0);
    expect(report.passed).toBe(true);
  }, 60_000);

  it('runs through the TCP fault proxy: its latency shows in every answer, and the protection still holds', async () => {
    const tasks = 60;
    const report = await runScenario(dbPool, {
      seed: 2,
      tasks,
      params: { url: POSTGRES_URL, proxyLatencyMs: 40, slowRate: 0, leakRate: 0 },
    });
    // Each query is one round trip at least (the pool's connect adds more): 40 ms of proxy latency.
    expect(report.latency['unprotected.latency_ms']?.p50).toBeGreaterThanOrEqual(40);
    expect(report.latency['protected.latency_ms']?.p50).toBeGreaterThanOrEqual(40);
    expect(report.metrics['protected.answered']).toMatchObject({ count: tasks, total: tasks });
    expect(report.params).toMatchObject({ proxyLatencyMs: 40 });
  }, 60_000);
});
