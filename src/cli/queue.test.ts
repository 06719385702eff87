import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { service } from '../../test/services.js';
import { capture } from '../../test/support.js';
import { createRuntime } from '../core/runtime.js';
import { BullmqQueue } from '../queue/bullmq.js';
import { SqliteQueue } from '../queue/sqlite.js';
import { main } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-queue-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const c = capture();
  const code = await main(argv, c.io);
  return { code, out: c.out(), err: c.err() };
}

/** A database with 2 waiting jobs and 2 dead ones. */
async function fixture(): Promise<string> {
  const file = join(dir, 'jobs.db');
  const runtime = createRuntime({ seed: 'cli' });
  const queue = new SqliteQueue({ file, name: 'mail', runtime, pollInterval: 5 });
  for (let i = 0; i < 2; i++) await queue.add({ bad: i });
  const worker = queue.process(() => {
    throw new Error('SMTP said no');
  });
  const deadline = runtime.clock.now() + 5000;
  while ((await queue.stats()).counts.dead < 2 && runtime.clock.now() < deadline)
    await runtime.clock.sleep(5);
  await worker.close();
  for (let i = 0; i < 2; i++) await queue.add({ good: i });
  await queue.close();
  return file;
}

describe('bulwark queue (SQLite)', () => {
  it('stats, dlq and redrive, as tables and as JSON', async () => {
    const file = await fixture();
    const stats = await run('queue', 'stats', '--db', file, '--queue', 'mail');
    expect(stats.code).toBe(0);
    expect(stats.out).toMatch(/queue mail \(sqlite\)/);
    expect(stats.out).toMatch(/waiting\s+2/);
    expect(stats.out).toMatch(/dead\s+2/);
    const statsJson = JSON.parse(
      (await run('queue', 'stats', '--db', file, '--queue', 'mail', '--json')).out,
    );
    expect(statsJson).toMatchObject({ name: 'mail', backend: 'sqlite', counts: { waiting: 2, dead: 2 } });

    const dlq = await run('queue', 'dlq', '--db', file, '--queue', 'mail');
    expect(dlq.code).toBe(0);
    expect(dlq.out).toMatch(/id\s+attempts\s+reason\s+failed at\s+error/);
    expect(dlq.out).toContain('Error: SMTP said no');
    const dead = JSON.parse(
      (await run('queue', 'dlq', '--db', file, '--queue', 'mail', '--json', '--limit', '1')).out,
    );
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({
      payload: { bad: 0 },
      reason: 'attempts',
      error: { message: 'SMTP said no' },
    });

    const one = await run('queue', 'redrive', '--db', file, '--queue', 'mail', '--id', dead[0].id);
    expect(one.out).toBe('queue mail: moved 1 dead job back to waiting\n');
    const rest = JSON.parse((await run('queue', 'redrive', '--db', file, '--queue', 'mail', '--json')).out);
    expect(rest).toEqual({ redriven: 1 });
    expect((await run('queue', 'dlq', '--db', file, '--queue', 'mail')).out).toContain('empty');
  });

  it.each([
    [
      ['queue', 'stats', '--db', join(dir, 'missing.db')],
      `bulwark: queue: no such database file ${join(dir, 'missing.db')}`,
    ],
    [['queue', 'stats'], 'bulwark: queue: give exactly one of --db FILE or --redis URL'],
    [['queue', 'peek', '--db', 'x'], 'bulwark: queue: unknown command "peek"; known: stats, dlq, redrive'],
    [['queue'], 'bulwark: queue: name a command: stats, dlq or redrive'],
    [
      ['queue', 'dlq', '--db', 'x', '--limit', '0'],
      'bulwark: queue: --limit must be an integer >= 1, got "0"',
    ],
    [['queue', 'stats', '--db', 'x', '--nope'], "bulwark: queue: Unknown option '--nope'"],
    [
      ['queue', 'stats', '--redis', 'http://x'],
      'bulwark: queue: BullmqQueue: option "connection" must be a redis:// URL or ioredis options, got "http://x"',
    ],
  ])('%j exits 2 with one line', async (argv, message) => {
    const result = await run(...argv);
    expect(result.code).toBe(2);
    expect(result.err.split('\n')[0]).toBe(message);
    expect(result.err).not.toMatch(/\n\s+at /);
  });

  it('a file that is not a database is one line, exit 2', async () => {
    const file = join(dir, 'not-a-db.txt');
    writeFileSync(file, 'hello, this is not SQLite\n'.repeat(100));
    const result = await run('queue', 'stats', '--db', file);
    expect(result.code).toBe(2);
    expect(result.err.split('\n')[0]).toMatch(/^bulwark: queue: cannot (open|read) /);
  });

  it('an unreachable Redis is one line, exit 2', async () => {
    const result = await run('queue', 'stats', '--redis', 'redis://127.0.0.1:1');
    expect(result.code).toBe(2);
    expect(result.err.split('\n')[0]).toMatch(
      /^bulwark: queue: cannot read Redis at redis:\/\/127\.0\.0\.1:1: /,
    );
    expect(result.err.split('\n')).toHaveLength(3);
  });

  it('prints its help', async () => {
    const result = await run('queue', '--help');
    expect(result.code).toBe(0);
    expect(result.out).toContain('Usage: bulwark queue <stats|dlq|redrive>');
  });
});

const redis = await service('redis');
redis.describe('bulwark queue (Redis)', () => {
  it('reads a BullmqQueue', async () => {
    const prefix = `bwcli-${process.pid}`;
    const queue = new BullmqQueue({ connection: redis.url, prefix, name: 'cli' });
    try {
      await queue.add({ hello: 'redis' });
      const result = await run(
        'queue',
        'stats',
        '--redis',
        redis.url,
        '--prefix',
        prefix,
        '--queue',
        'cli',
        '--json',
      );
      expect(result.code).toBe(0);
      expect(JSON.parse(result.out)).toMatchObject({ backend: 'bullmq', counts: { waiting: 1 } });
    } finally {
      const { Redis } = await import('ioredis');
      const client = new Redis(redis.url);
      const keys = await client.keys(`${prefix}:*`);
      if (keys.length > 0) await client.del(...keys);
      client.disconnect();
      await queue.close();
    }
  });
});
