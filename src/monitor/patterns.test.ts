import { describe, expect, it } from 'vitest';
import type { BulwarkEvent, EventOf } from '../core/events.js';
import { Random } from '../core/random.js';
import { virtualRuntime } from '../core/runtime.js';
import {
  type AnalysedEvent,
  analysePatterns,
  normaliseMessage,
  PatternWatch,
  poissonTail,
  renderPatternsMarkdown,
  renderPatternsTerminal,
} from './patterns.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const TARGETS = ['api', 'web', 'mobile', 'auth', 'db', 'cron', 'search', 'payments'];

function failure(target: string, at: number, code: string, message: string): AnalysedEvent {
  return {
    type: 'call',
    source: target,
    at,
    kind: 'pipeline',
    outcome: 'failure',
    durationMs: 5,
    error: { name: 'Error', code, message },
  };
}

/** Background: every target succeeds ~2/min and fails ~1 per 10 min at random (Poisson), for 6 hours. */
function background(random: Random): AnalysedEvent[] {
  const events: AnalysedEvent[] = [];
  for (const target of TARGETS) {
    for (let t = random.exponential(30_000); t < 6 * HOUR; t += random.exponential(30_000)) {
      events.push({
        type: 'call',
        source: target,
        at: Math.floor(t),
        kind: 'pipeline',
        outcome: 'success',
        durationMs: 3,
      });
    }
    for (let t = random.exponential(10 * MIN); t < 6 * HOUR; t += random.exponential(10 * MIN)) {
      events.push(
        failure(
          target,
          Math.floor(t),
          'ETIMEDOUT',
          `request ${random.int(1000, 9999)} to 10.0.${random.int(0, 9)}.4:80 timed out after ${random.int(100, 900)}ms`,
        ),
      );
    }
  }
  return events;
}

/** `n` failures spread at random over [from, to). */
function spread(
  random: Random,
  n: number,
  from: number,
  to: number,
  make: (at: number) => AnalysedEvent,
): AnalysedEvent[] {
  return Array.from({ length: n }, () => make(Math.floor(random.uniform(from, to))));
}

function planted(seed: number): AnalysedEvent[] {
  const random = new Random(seed);
  const events = background(random);
  // 1. A burst: db refuses connections for 5 minutes at 2h.
  events.push(
    ...spread(random, 200, 2 * HOUR, 2 * HOUR + 5 * MIN, (at) =>
      failure('db', at, 'ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.5:5432'),
    ),
  );
  // 2. A dependency takes its callers down: auth fails from 4h, its three callers a minute later.
  events.push(
    ...spread(random, 300, 4 * HOUR, 4 * HOUR + 10 * MIN, (at) =>
      failure('auth', at, 'ECONNRESET', 'socket hang up'),
    ),
  );
  for (const caller of ['api', 'web', 'mobile']) {
    events.push(
      ...spread(random, 180, 4 * HOUR + MIN, 4 * HOUR + 10 * MIN, (at) =>
        failure(caller, at, 'UPSTREAM_AUTH', 'auth service unavailable'),
      ),
    );
  }
  // 3. A periodic job: cron fails 15 times within a minute every 30 minutes, from 0h17.
  for (let start = 17 * MIN; start < 6 * HOUR; start += 30 * MIN) {
    events.push(
      ...spread(random, 15, start, start + MIN, (at) =>
        failure('cron', at, 'LOCK_TIMEOUT', `lock "report-${at}" not acquired`),
      ),
    );
  }
  // 4. Retries: payments' retries almost never help (57 of 60 exhaust); search's usually do.
  for (const [target, retried, exhausted] of [
    ['payments', 60, 57],
    ['search', 60, 6],
  ] as const) {
    for (let i = 0; i < retried; i++) {
      const at = Math.floor(random.uniform(0, 6 * HOUR));
      events.push({ type: 'retry', source: target, at, attempt: 1, delayMs: 100, error: { code: 'E' } });
      if (i < exhausted)
        events.push(
          { type: 'retry', source: target, at: at + 100, attempt: 2, delayMs: 200, error: { code: 'E' } },
          { type: 'retry.exhausted', source: target, at: at + 300, attempts: 3, error: { code: 'E' } },
        );
    }
  }
  return random.shuffle(events);
}

describe('analysePatterns on seeded streams with planted patterns', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    it(`finds every planted pattern and invents none (seed ${seed})`, () => {
      const report = analysePatterns(planted(seed));
      // Bursts: db once, auth and its callers once each, cron every 30 minutes (12 times); nothing else.
      const burstTargets = report.bursts.map((b) => b.target);
      expect(new Set(burstTargets)).toEqual(new Set(['db', 'auth', 'api', 'web', 'mobile', 'cron']));
      expect(burstTargets.filter((t) => t === 'cron')).toHaveLength(12);
      for (const t of ['db', 'auth', 'api', 'web', 'mobile'])
        expect(burstTargets.filter((x) => x === t)).toHaveLength(1);
      const db = report.bursts.find((b) => b.target === 'db');
      expect(db?.start).toBeGreaterThanOrEqual(2 * HOUR - MIN);
      expect(db?.end).toBeLessThanOrEqual(2 * HOUR + 6 * MIN);
      // One correlation: auth and its callers, auth first.
      expect(report.correlations).toHaveLength(1);
      expect(report.correlations[0]?.leader).toBe('auth');
      expect([...(report.correlations[0]?.targets ?? [])].sort()).toEqual(['api', 'auth', 'mobile', 'web']);
      // One periodic target: cron, every 30 minutes.
      expect(report.periodic.map((p) => p.target)).toEqual(['cron']);
      expect(Math.abs((report.periodic[0]?.periodMs ?? 0) - 30 * MIN)).toBeLessThanOrEqual(MIN);
      // Futile retries: payments only.
      expect(report.retries.filter((r) => r.futile).map((r) => r.target)).toEqual(['payments']);
      expect(report.retries.find((r) => r.target === 'search')?.successRate).toBeCloseTo(0.9, 5);
      // Signatures: normalised, so the timed-out requests of one target group together.
      const top = report.signatures[0];
      expect(top?.target).toBe('auth');
      expect(
        report.signatures.some(
          (s) => s.code === 'ETIMEDOUT' && s.message === 'request <n> to <addr> timed out after <n>',
        ),
      ).toBe(true);
      expect(report.signatures.find((s) => s.target === 'cron')?.message).toBe('lock <str> not acquired');
      // The ranking leads with the correlation.
      expect(report.findings[0]?.kind).toBe('correlation');
      expect(report.findings.filter((f) => f.kind === 'periodic')).toHaveLength(1);
    });
  }

  it('finds nothing in background noise alone', () => {
    for (const seed of [11, 12, 13]) {
      const report = analysePatterns(background(new Random(seed)));
      expect(report.failures).toBeGreaterThan(200);
      expect(report.bursts).toEqual([]);
      expect(report.correlations).toEqual([]);
      expect(report.periodic).toEqual([]);
      expect(report.findings.every((f) => f.kind === 'signature')).toBe(true);
    }
  });

  it('renders terminal and Markdown reports', () => {
    const report = analysePatterns(planted(1));
    const text = renderPatternsTerminal(report);
    expect(text).toMatch(/\[correlation\] 4 targets failed together \(auth, .*\); auth first/);
    expect(text).toMatch(/\[periodic\] cron fails every 30/);
    expect(text).toMatch(/payments .* ← futile/);
    const md = renderPatternsMarkdown(report);
    expect(md).toMatch(/^# Failure patterns/);
    expect(md).toContain('| payments | 60 | 57 | 5% | yes |');
  });
});

describe('time of day', () => {
  it('finds a target that fails for half an hour at the same time every day, and nothing else', () => {
    const random = new Random(21);
    const events: AnalysedEvent[] = [];
    const start = Date.UTC(2026, 0, 5);
    for (const target of ['batch', 'api', 'web']) {
      for (let t = random.exponential(20 * MIN); t < 4 * 24 * HOUR; t += random.exponential(20 * MIN)) {
        events.push(failure(target, start + Math.floor(t), 'ETIMEDOUT', 'timed out'));
      }
    }
    for (let day = 0; day < 4; day++) {
      const from = start + day * 24 * HOUR + 2 * HOUR;
      events.push(
        ...spread(random, 150, from, from + 30 * MIN, (at) =>
          failure('batch', at, 'DEADLOCK', 'deadlock detected'),
        ),
      );
    }
    const report = analysePatterns(events);
    expect(report.binMs).toBe(15 * MIN); // four days in at most 1,000 bins
    expect(report.periodic.map((p) => p.target)).toEqual(['batch']);
    expect(report.correlations).toEqual([]);
    expect(new Set(report.bursts.map((b) => b.target))).toEqual(new Set(['batch']));
    expect(report.findings[0]?.title).toBe('batch fails daily at 02:00 UTC (4 bursts)');
  });
});

describe('PatternWatch (live)', () => {
  it('without a sink, keeps what it is given with record(), the latest `limit` only', () => {
    const watch = new PatternWatch(undefined, { limit: 3 });
    for (let at = 0; at < 5; at++) watch.record(failure('db', at, 'ECONNREFUSED', 'refused'));
    expect(watch.size).toBe(3);
    const report = watch.report();
    expect([report.events, report.from, report.to]).toEqual([3, 2, 4]);
    watch.close();
    expect(watch.size).toBe(0);
  });

  it('calls kept by their fields are analysed as the same events, mixed with objects, oldest first', () => {
    const events = [...planted1()].sort((a, b) => a.at - b.at).slice(-700);
    const byObject = new PatternWatch(undefined, { limit: 500 });
    const mixed = new PatternWatch(undefined, { limit: 500 });
    for (const event of events) {
      byObject.record(event);
      if (event.type === 'call') {
        const e = event as unknown as EventOf<'call'>;
        mixed.recordCall(e.source, e.at, e.kind, e.outcome, e.durationMs, e.error);
      } else {
        mixed.record(event);
      }
    }
    expect(mixed.size).toBe(500);
    expect(mixed.report()).toEqual(byObject.report());
    expect(mixed.report()).toEqual(analysePatterns(events.slice(-500)));
    mixed.close();
    expect(mixed.size).toBe(0);
    mixed.recordCall('db', 1, 'retry', 'success', 2, undefined);
    expect(mixed.report().events).toBe(1);
  });

  it('analyses the last events of a live sink, within its limit', () => {
    const rt = virtualRuntime(1);
    const watch = new PatternWatch(rt.events, { limit: 1000 });
    const planted = analysePatterns(planted1());
    for (const event of [...planted1()].sort((a, b) => a.at - b.at)) {
      rt.events.emit(event as unknown as BulwarkEvent);
    }
    expect(watch.size).toBe(1000);
    const live = watch.report();
    expect(live.events).toBe(1000);
    expect(live.to).toBe(planted.to);
    watch.close();
    expect(() => new PatternWatch(rt.events, { minBurst: 0 })).toThrow(/minBurst/);
  });
});

function planted1(): AnalysedEvent[] {
  return planted(1);
}

describe('helpers', () => {
  it('normalises the variable parts of messages', () => {
    expect(normaliseMessage('connect ECONNREFUSED 10.0.0.7:5432')).toBe('connect ECONNREFUSED <addr>');
    expect(normaliseMessage('job 3f2a9c1e-1b2c-4d5e-8f90-123456789abc failed after 3 attempts')).toBe(
      'job <uuid> failed after <n> attempts',
    );
    expect(normaliseMessage('key "user:42" missing')).toBe('key <str> missing');
  });

  it('computes Poisson tails', () => {
    expect(poissonTail(0, 2)).toBe(1);
    expect(poissonTail(1, 2)).toBeCloseTo(1 - Math.exp(-2), 12);
    expect(poissonTail(3, 1)).toBeCloseTo(1 - Math.exp(-1) * (1 + 1 + 0.5), 12);
    expect(poissonTail(50, 0.1)).toBeLessThan(1e-80);
  });
});
