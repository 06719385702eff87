import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import { faults, inject } from '../chaos/faults.js';
import { schedule } from '../chaos/schedule.js';
import type { BulwarkEvent } from '../core/events.js';
import { virtualRuntime } from '../core/runtime.js';
import { eventToJsonLine } from '../monitor/event-file.js';
import { backoff } from '../policy/backoff.js';
import { retry } from '../policy/retry.js';
import { main } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-analyze-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A seeded chaos run recorded as JSON lines: `orders` and `billing` both fail while `db` is down (10–15 min). */
async function recordRun(): Promise<string> {
  const rt = virtualRuntime(9);
  const lines: string[] = [];
  rt.events.subscribe((e: BulwarkEvent) => lines.push(eventToJsonLine(e)));
  const outage = schedule.window('10m', '15m');
  const db = inject(
    async () => 'row',
    [
      faults.error({
        name: 'db.fault',
        runtime: rt,
        kind: 'ECONNREFUSED',
        target: '10.0.0.5:5432',
        schedule: outage,
      }),
    ],
  );
  const callers = ['orders', 'billing'].map((name) =>
    retry({ name, runtime: rt, maxAttempts: 3, backoff: backoff.constant('50ms') }),
  );
  const noise = retry({ name: 'search', runtime: rt, maxAttempts: 2, backoff: backoff.constant('50ms') });
  const flaky = inject(
    async () => 'hit',
    [faults.error({ name: 'search.fault', runtime: rt, schedule: schedule.rate(0.01) })],
  );
  for (let second = 0; second < 30 * 60; second++) {
    for (const caller of callers) caller.execute(db).catch(() => undefined);
    noise.execute(flaky).catch(() => undefined);
    await rt.clock.advance(1000);
  }
  const file = join(dir, 'run.jsonl');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

describe('bulwark analyze', () => {
  it('finds the correlated outage and the futile retries in a recorded run', async () => {
    const file = await recordRun();
    const c = capture();
    expect(await main(['analyze', file], c.io)).toBe(0);
    expect(c.out()).toMatch(
      /\[correlation\] 2 targets failed together \((orders, billing|billing, orders)\)/,
    );
    expect(c.out()).toMatch(/orders\s+\d+ retried\s+0% recovered\s+← futile/);
    const json = capture();
    expect(await main(['analyze', file, '--json'], json.io)).toBe(0);
    const report = JSON.parse(json.out());
    expect(report.correlations).toHaveLength(1);
    expect(report.correlations[0].start).toBeGreaterThanOrEqual(9 * 60_000);
    expect(report.signatures[0].code).toBe('ECONNREFUSED');
    expect(report.signatures[0].message).toBe('connect ECONNREFUSED <addr>');
    expect(
      report.retries
        .filter((r: { futile: boolean }) => r.futile)
        .map((r: { target: string }) => r.target)
        .sort(),
    ).toEqual(['billing', 'orders']);
    const md = capture();
    expect(await main(['analyze', file, '--format', 'markdown'], md.io)).toBe(0);
    expect(md.out()).toMatch(/^# Failure patterns\n/);
  });

  it('analyses the events of a lab run (bulwark lab --events), inventing no pattern in uniform faults', async () => {
    const file = join(dir, 'lab.jsonl');
    const lab = capture();
    expect(await main(['lab', 'network', '--tasks', '2000', '--no-out', '--events', file], lab.io)).toBe(0);
    const c = capture();
    expect(await main(['analyze', file, '--json'], c.io)).toBe(0);
    const report = JSON.parse(c.out());
    expect(report.failures).toBeGreaterThan(500);
    // The network scenario's faults are independent draws at a constant rate: no burst, no correlation, no period.
    expect(report.bursts).toEqual([]);
    expect(report.correlations).toEqual([]);
    expect(report.periodic).toEqual([]);
    expect(report.signatures.map((s: { code: string }) => s.code)).toEqual(
      expect.arrayContaining(['ECONNREFUSED', 'TIMEOUT']),
    );
    // Its retries recover 1 - 0.44² ≈ 81% of retried calls: not futile.
    expect(report.retries).toHaveLength(1);
    expect(report.retries[0].successRate).toBeGreaterThan(0.75);
    expect(report.retries[0].futile).toBe(false);
    const bad = capture();
    expect(await main(['lab', '--events', file], bad.io)).toBe(2);
    expect(bad.err()).toMatch(/^bulwark: lab: --events records one run of one scenario/);
  });

  it('exits 2 listing each bad line, and on a missing file', async () => {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"type":"call","source":"a","at":1}\nnot json\n\n{"type":"call"}\n[1]\n');
    const c = capture();
    expect(await main(['analyze', bad], c.io)).toBe(2);
    expect(c.err()).toBe(
      [
        `bulwark: ${bad}:1: kind: expected a string in a "call" event`,
        `bulwark: ${bad}:2: not JSON (Unexpected token 'o', "not json" is not valid JSON)`,
        `bulwark: ${bad}:4: source: expected a non-empty string`,
        `bulwark: ${bad}:5: not a JSON object`,
        '',
      ].join('\n'),
    );
    const missing = capture();
    expect(await main(['analyze', join(dir, 'nope.jsonl')], missing.io)).toBe(2);
    expect(missing.err()).toMatch(/cannot read .*nope\.jsonl: no such file/);
  });

  it('rejects bad flags with one line and exit 2', async () => {
    for (const argv of [
      ['analyze'],
      ['analyze', 'x', '--format', 'html'],
      ['analyze', 'x', '--bin', 'soon'],
      ['analyze', 'x', '--min-burst', '0'],
      ['analyze', 'x', '--json', '--markdown'],
    ]) {
      const c = capture();
      expect(await main(argv, c.io)).toBe(2);
      expect(c.err().split('\n')[0]).toMatch(/^bulwark: analyze: /);
    }
    const help = capture();
    expect(await main(['analyze', '--help'], help.io)).toBe(0);
    expect(help.out()).toMatch(/^Usage: bulwark analyze FILE/);
  });
});
