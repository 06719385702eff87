import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../core/clock.js';
import { isBulwarkError } from '../core/errors.js';
import { HistoryStore } from './history.js';

const MINUTE = 60_000;
const DAY = 1440 * MINUTE;
const dirs: string[] = [];
function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-history-'));
  dirs.push(dir);
  return join(dir, 'nested', 'dashboard.db');
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('HistoryStore', () => {
  it('keeps per-minute rollups across a restart (the file is reopened)', () => {
    const path = tempFile();
    const clock = new VirtualClock({ start: 100 * DAY });
    const first = new HistoryStore({ path, clock });
    const minute = 100 * DAY - 5 * MINUTE;
    first.write([
      { minute, scope: 'policy', name: 'api', sums: { calls: 10, failure: 2 }, maxima: { p99: 120 } },
    ]);
    first.close();
    const second = new HistoryStore({ path, clock });
    expect(second.query({ scope: 'policy', name: 'api' })).toEqual([
      { minute, values: { calls: 10, failure: 2, p99: 120 } },
    ]);
    // The same minute written again after the restart: counts add up, gauges keep the larger value.
    second.write([{ minute, scope: 'policy', name: 'api', sums: { calls: 5 }, maxima: { p99: 80 } }]);
    expect(second.query({ scope: 'policy', name: 'api' })[0]?.values).toEqual({
      calls: 15,
      failure: 2,
      p99: 120,
    });
    expect(second.names()).toEqual([{ scope: 'policy', name: 'api' }]);
    second.close();
  });

  it('drops rollups older than the retention period (7 days by default)', async () => {
    const clock = new VirtualClock({ start: 100 * DAY });
    const store = new HistoryStore({ path: ':memory:', clock });
    const row = (minute: number) => ({
      minute,
      scope: 'queue' as const,
      name: 'q',
      sums: { completed: 1 },
      maxima: {},
    });
    store.write([row(100 * DAY - 8 * DAY), row(100 * DAY - 6 * DAY), row(100 * DAY - MINUTE)]);
    const all = store.query({ scope: 'queue', name: 'q', from: 0, to: 101 * DAY });
    expect(all.map((p) => p.minute)).toEqual([100 * DAY - 6 * DAY, 100 * DAY - MINUTE]);
    await clock.advance(6 * DAY);
    expect(store.prune()).toBe(1);
    expect(store.query({ scope: 'queue', name: 'q', from: 0, to: 200 * DAY })).toHaveLength(1);
    store.close();
  });

  it('queries a time range of one name, oldest first', () => {
    const clock = new VirtualClock({ start: 10 * DAY });
    const store = new HistoryStore({ path: ':memory:', clock, retentionDays: 30 });
    for (let i = 0; i < 5; i++) {
      store.write([
        { minute: 10 * DAY - (5 - i) * MINUTE, scope: 'policy', name: 'a', sums: { calls: i }, maxima: {} },
        { minute: 10 * DAY - (5 - i) * MINUTE, scope: 'policy', name: 'b', sums: { calls: 100 }, maxima: {} },
      ]);
    }
    const points = store.query({
      scope: 'policy',
      name: 'a',
      from: 10 * DAY - 3 * MINUTE,
      to: 10 * DAY - MINUTE,
    });
    expect(points).toEqual([
      { minute: 10 * DAY - 3 * MINUTE, values: { calls: 2 } },
      { minute: 10 * DAY - 2 * MINUTE, values: { calls: 3 } },
    ]);
    store.close();
  });

  it('validates options and reports an unusable file as HISTORY_UNAVAILABLE', () => {
    const clock = new VirtualClock();
    expect(() => new HistoryStore({ path: '', clock })).toThrow(/"path" must be a file path/);
    expect(() => new HistoryStore({ path: ':memory:', clock, retentionDays: 0 })).toThrow(/"retentionDays"/);
    let error: unknown;
    const notADirectory = tempFile();
    new HistoryStore({ path: notADirectory, clock }).close();
    try {
      new HistoryStore({ path: join(notADirectory, 'inside-a-file.db'), clock });
    } catch (e) {
      error = e;
    }
    expect(isBulwarkError(error, 'HISTORY_UNAVAILABLE')).toBe(true);
    const store = new HistoryStore({ path: ':memory:', clock });
    expect(() => store.query({ scope: 'nope' as 'policy', name: 'x' })).toThrow(/"scope" must be one of/);
    store.close();
  });
});
