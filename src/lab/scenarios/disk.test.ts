import * as realFs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountedOrSkip, mountTmpfs, type Tmpfs } from '../../../test/tmpfs.js';
import { createRuntime } from '../../core/runtime.js';
import { runScenario } from '../runner.js';
import { disk, plainWriter, readBack, recordLine, safeWriter } from './disk.js';

describe('disk scenario', () => {
  it('loses and corrupts records with the plain writer, and nothing with the safe one', async () => {
    const report = await runScenario(disk, { seed: 1 });
    const { values, metrics } = report;
    // The faults fired on both disks: ENOSPC at about the configured rate, EACCES through its window.
    expect(values['faults.plain:full']).toBeGreaterThan(0);
    // One append per record, 2 s at 10 ms: 200, less those the ENOSPC rule (checked first) took.
    expect(values['faults.plain:denied']! + values['faults.plain:full']!).toBeGreaterThan(200);
    expect(values['faults.plain:denied']).toBeLessThanOrEqual(200);
    expect(values['faults.plain:denied']).toBeGreaterThan(150);
    expect(values['faults.safe:full']).toBeGreaterThan(0);
    expect(values['faults.safe:denied']).toBeGreaterThan(0);
    // Plain append: failed appends lose their record, torn ones also corrupt the record after them.
    expect(metrics['plain.acknowledged']?.rate).toBeLessThan(0.8);
    expect(values['plain.lost_records']).toBeGreaterThan(200);
    expect(values['plain.acknowledged_then_lost']).toBeGreaterThan(0);
    expect(values['plain.corrupted_files']).toBe(1);
    // Safe writer: every record acknowledged, read back whole, exactly once; the EACCES window went to
    // the fallback directory.
    expect(metrics['safe.acknowledged']).toMatchObject({ rate: 1, count: 1000, total: 1000 });
    expect(metrics['safe.intact']).toMatchObject({ rate: 1, count: 1000, total: 1000 });
    expect(values['safe.lost_records']).toBe(0);
    expect(values['safe.corrupted_files']).toBe(0);
    expect(values['safe.duplicate_records']).toBe(0);
    expect(values['safe.fallback_records']).toBeGreaterThanOrEqual(200);
    expect(report.comparisons[0]).toMatchObject({ metric: 'records intact', significant: true });
    expect(report.comparisons[0]?.diff).toBeGreaterThan(0.2);
    expect(report.checks.every((c) => c.passed)).toBe(true);
    expect(report.passed).toBe(true);
    expect(report.virtualMs).toBeGreaterThanOrEqual(9990);
  });

  it('is reproducible from the seed and keeps the safe writer whole under harsher faults', async () => {
    const options = { seed: 9, tasks: 300, runs: 2, params: { enospcRate: 0.3, tornBytes: 40 } };
    const a = await runScenario(disk, options);
    expect(await runScenario(disk, options)).toEqual(a);
    expect(a.values['safe.lost_records']).toBe(0);
    expect(a.values['safe.corrupted_files']).toBe(0);
    expect(a.metrics['plain.intact']?.rate).toBeLessThan(0.7);
    expect(a.passed).toBe(true);
  });
});

describe("the disk scenario's writers on a real full disk (a 1 MiB tmpfs)", () => {
  let tmpfs: Tmpfs;
  let fallbackDir: string;

  beforeAll(async () => {
    tmpfs = await mountTmpfs('1m', 'disk writers on a real full disk');
    fallbackDir = await realFs.mkdtemp(join(tmpdir(), 'bulwark-fallback-'));
  });

  afterAll(async () => {
    await tmpfs.unmount();
    await realFs.rm(fallbackDir, { recursive: true, force: true });
  });

  it('plain append tears its log when the disk fills; the safe writer keeps every record whole', async (ctx) => {
    const mounted = mountedOrSkip(tmpfs, ctx);
    const records = 300;
    const line = (seq: number) => recordLine(seq, 10_000); // 300 × ~10 KB (3 pages each): more than the disk holds
    const plainDir = join(mounted, 'plain');
    await realFs.mkdir(plainDir);
    const plain = plainWriter(realFs, join(plainDir, 'app.log'));
    let acknowledged = 0;
    for (let seq = 0; seq < records; seq++) {
      try {
        await plain(seq, line(seq));
        acknowledged++;
      } catch (error) {
        expect(error).toMatchObject({ code: 'ENOSPC', syscall: 'write' });
      }
    }
    const plainBack = await readBack(realFs, [plainDir]);
    expect(acknowledged).toBeGreaterThan(50);
    expect(acknowledged).toBeLessThan(records);
    expect(plainBack.intact.size).toBe(acknowledged);
    expect(plainBack.corruptedFiles).toBe(1); // the append that ran out of space left half a record
    await realFs.rm(plainDir, { recursive: true });

    const safeDir = join(mounted, 'safe');
    await realFs.mkdir(safeDir);
    const safe = safeWriter(realFs, safeDir, fallbackDir, createRuntime({ seed: 1 }), {
      maxAttempts: 2,
      backoffMs: 1,
      degradeAfterFailures: 2,
      probeAfterMs: 60_000,
    });
    // Records span several pages, so on the nearly full disk a single write() can store part of one and
    // report success (a short write): the writer must not take that for a stored record.
    for (let seq = 0; seq < records; seq++) await safe(seq, line(seq));
    const safeBack = await readBack(realFs, [safeDir, fallbackDir]);
    expect(safeBack.intact.size).toBe(records);
    expect(safeBack.corruptedFiles).toBe(0);
    expect(safeBack.duplicates).toBe(0);
    expect(safeBack.strayTempFiles).toBe(0);
    const inFallback = await readBack(realFs, [fallbackDir]);
    expect(inFallback.intact.size).toBeGreaterThan(0);
    expect(inFallback.intact.size).toBeLessThan(records);
  });
});
