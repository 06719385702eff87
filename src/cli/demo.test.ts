import { describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import { wilson } from '../lab/stats.js';
import { runDemo } from './demo.js';
import { main } from './main.js';

describe('bulwark demo', () => {
  it('is reproducible from its seed, and different seeds differ', async () => {
    const options = { seed: 'abc', calls: 400, errorRate: 0.3, hangRate: 0.2 };
    const a = await runDemo(options);
    const b = await runDemo(options);
    expect(b).toEqual(a);
    const c = await runDemo({ ...options, seed: 'xyz' });
    expect(c.map((r) => r.succeeded)).not.toEqual(a.map((r) => r.succeeded));
  });

  it('retries lift the success rate well above the unprotected baseline', async () => {
    const [baseline, retried, full] = await runDemo({
      seed: '1',
      calls: 2000,
      errorRate: 0.3,
      hangRate: 0.2,
    });
    // Half the calls fail without protection; each row's interval brackets its rate.
    expect(baseline?.rate).toBeGreaterThan(0.45);
    expect(baseline?.rate).toBeLessThan(0.55);
    expect(retried?.ci95[0]).toBeGreaterThan(baseline?.ci95[1] ?? 1);
    expect(full?.ci95[0]).toBeGreaterThan(baseline?.ci95[1] ?? 1);
    for (const row of [baseline, retried, full]) {
      expect(row?.ci95[0]).toBeLessThanOrEqual(row?.rate ?? -1);
      expect(row?.ci95[1]).toBeGreaterThanOrEqual(row?.rate ?? 2);
    }
  });

  it('with no faults every call succeeds', async () => {
    const rows = await runDemo({ seed: '1', calls: 200, errorRate: 0, hangRate: 0 });
    for (const row of rows) expect(row.succeeded).toBe(200);
  });

  it('its intervals are the lab Wilson intervals, which match known values', () => {
    const [lo, hi] = wilson(50, 100);
    expect(lo).toBeCloseTo(0.4038, 3);
    expect(hi).toBeCloseTo(0.5962, 3);
    expect(wilson(0, 0)).toEqual([0, 1]);
    expect(wilson(10, 10)[1]).toBeCloseTo(1, 12);
  });

  it('prints a table, or JSON with --json, and rejects bad flags with exit code 2', async () => {
    const table = capture();
    expect(await main(['demo', '--calls', '100', '--seed', '9'], table.io)).toBe(0);
    expect(table.out()).toMatch(/no protection.*\n.*retry/s);
    expect(table.out()).toMatch(/Reproduce: bulwark demo --seed 9 --calls 100/);
    const json = capture();
    expect(await main(['demo', '--calls', '100', '--json'], json.io)).toBe(0);
    expect(JSON.parse(json.out()).rows).toHaveLength(3);
    for (const argv of [
      ['demo', '--calls', '0'],
      ['demo', '--error-rate', '2'],
      ['demo', '--error-rate', '0.7', '--hang-rate', '0.7'],
      ['demo', '--bogus'],
    ]) {
      const c = capture();
      expect(await main(argv, c.io)).toBe(2);
      expect(c.err()).toMatch(/^bulwark: demo: /);
    }
  });
});
