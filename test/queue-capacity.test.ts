/**
 * Capacity across processes: four processes add 40 jobs each, at the same moment, to one queue of
 * capacity 60. Exactly 60 are accepted — no check-then-add race lets a 61st in.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../src/core/runtime.js';
import { BullmqQueue } from '../src/queue/bullmq.js';
import { SqliteQueue } from '../src/queue/sqlite.js';
import { service } from './services.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./fixtures/queue-adder.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bulwark-capacity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const runtime = createRuntime({ seed: 'capacity' });

async function race(target: string): Promise<{ accepted: number; full: number; other: number }> {
  // Every process starts adding at the same clock time, well after they have all started.
  const start = Math.round(runtime.clock.now() + 6000);
  const outputs = await Promise.all(
    Array.from({ length: 4 }, () =>
      run(process.execPath, ['--import', 'tsx', SCRIPT, target, '40', String(start)], { timeout: 60_000 }),
    ),
  );
  const total = { accepted: 0, full: 0, other: 0 };
  for (const { stdout } of outputs) {
    const tally = JSON.parse(stdout.trim().split('\n').pop() as string) as typeof total;
    total.accepted += tally.accepted;
    total.full += tally.full;
    total.other += tally.other;
  }
  return total;
}

describe('capacity across processes', () => {
  it('SQLite: exactly `capacity` of 160 racing adds from 4 processes are accepted', async () => {
    const file = join(dir, 'race.db');
    await new SqliteQueue({ file, name: 'race', runtime }).close(); // the schema, before the race
    expect(await race(`sqlite:${file}`)).toEqual({ accepted: 60, full: 100, other: 0 });
    const queue = new SqliteQueue({ file, name: 'race', runtime });
    expect((await queue.stats()).counts.waiting).toBe(60);
    await queue.close();
  }, 90_000);
});

const redis = await service('redis');
redis.describe('capacity across processes (Redis)', () => {
  it('BullMQ: exactly `capacity` of 160 racing adds from 4 processes are accepted', async () => {
    const prefix = `bwrace-${process.pid}`;
    try {
      expect(await race(`bullmq:${redis.url}:${prefix}`)).toEqual({ accepted: 60, full: 100, other: 0 });
      const queue = new BullmqQueue({ connection: redis.url, prefix, name: 'race', runtime });
      expect((await queue.stats()).counts.waiting).toBe(60);
      await queue.close();
    } finally {
      const { Redis } = await import('ioredis');
      const client = new Redis(redis.url);
      const keys = await client.keys(`${prefix}:*`);
      if (keys.length > 0) await client.del(...keys);
      client.disconnect();
    }
  }, 90_000);
});
