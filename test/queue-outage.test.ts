/**
 * A Redis outage under a FailoverQueue: a real redis-server (our own, on a free port) is killed while
 * jobs are being added; they go to the SQLite fallback; Redis is restarted; the failover queue fails back
 * to it; and every accepted job runs — none lost.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { BulwarkEvent } from '../src/core/events.js';
import { createRuntime, type Runtime } from '../src/core/runtime.js';
import { BullmqQueue } from '../src/queue/bullmq.js';
import { FailoverQueue } from '../src/queue/failover.js';
import { SqliteQueue } from '../src/queue/sqlite.js';
import { service } from './services.js';

const redis = await service('redis');
const dir = mkdtempSync(join(tmpdir(), 'bulwark-outage-'));
let server: ChildProcess | undefined;
afterAll(() => {
  server?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function redisServerPath(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => done(chunk.toString('latin1').startsWith('+PONG')));
  });
}

async function until(
  runtime: Runtime,
  what: string,
  condition: () => boolean | Promise<boolean>,
  withinMs = 20_000,
) {
  const deadline = runtime.clock.now() + withinMs;
  while (!(await condition())) {
    if (runtime.clock.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await runtime.clock.sleep(20);
  }
}

async function startRedis(runtime: Runtime, port: number): Promise<ChildProcess> {
  const child = spawn(
    redisServerPath() ?? 'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  await until(runtime, `redis-server on port ${port}`, () => ping(port), 10_000);
  return child;
}

redis.describe('FailoverQueue across a Redis outage (real redis-server, SQLite fallback)', () => {
  it('sends jobs to SQLite while Redis is down, fails back when it returns, loses none', async () => {
    if (redisServerPath() === undefined)
      throw new Error('redis-server is not on the PATH (Debian package "redis-server")');
    const runtime = createRuntime({ seed: 'outage' });
    const events: BulwarkEvent[] = [];
    runtime.events.subscribe((e) => events.push(e), ['queue.failover', 'queue.failback', 'queue.health']);
    const port = await freePort();
    server = await startRedis(runtime, port);

    const primary = new BullmqQueue<{ i: number }>({
      name: 'jobs',
      connection: `redis://127.0.0.1:${port}`,
      runtime,
      // Generous against a loaded CI machine: a slow answer must not count as an outage here.
      watchdogInterval: 500,
      addTimeout: 2000,
      lease: 2000,
    });
    const fallback = new SqliteQueue<{ i: number }>({
      name: 'jobs-fallback',
      file: join(dir, 'fallback.db'),
      runtime,
      pollInterval: 10,
    });
    const queue = new FailoverQueue(primary, fallback, { runtime, probeInterval: 200 });
    const ran = new Map<number, string[]>();
    queue.process(
      (job) => {
        ran.set(job.payload.i, [...(ran.get(job.payload.i) ?? []), job.queue]);
      },
      { concurrency: 5 },
    );
    const where = new Map<number, string>();
    const add = async (i: number) => {
      const job = await queue.add({ i });
      where.set(i, job.queue);
    };
    try {
      await until(runtime, 'the primary to be healthy', () => primary.health().healthy);
      for (let i = 0; i < 50; i++) await add(i);
      await until(runtime, 'the first 50 jobs to run', () => ran.size === 50);

      server.kill('SIGKILL');
      await new Promise((resolve) => server?.once('exit', resolve));
      for (let i = 50; i < 100; i++) await add(i);
      expect(queue.usingPrimary).toBe(false);
      await until(runtime, 'the fallback to run the outage jobs', () => ran.size === 100);

      server = await startRedis(runtime, port);
      await until(runtime, 'failback to Redis', () => queue.usingPrimary);
      for (let i = 100; i < 150; i++) await add(i);
      await until(runtime, 'all 150 jobs to run', () => ran.size === 150);

      const lost = Array.from({ length: 150 }, (_, i) => i).filter((i) => !ran.has(i));
      expect(lost).toEqual([]);
      const misplaced = [...where].filter(([i, q]) => q !== (i >= 50 && i < 100 ? 'jobs-fallback' : 'jobs'));
      expect(misplaced).toEqual([]);
      // Each job ran on the queue that accepted it, once.
      expect([...ran].filter(([i, on]) => on.length !== 1 || on[0] !== where.get(i))).toEqual([]);
      const fallbackStats = await fallback.stats();
      expect(fallbackStats.counts.completed).toBe(50);
      expect(events.some((e) => e.type === 'queue.failover' && e.reason !== 'QUEUE_FULL')).toBe(true);
      expect(events.filter((e) => e.type === 'queue.failback')).toHaveLength(1);
      expect(events.some((e) => e.type === 'queue.health' && e.source === 'jobs' && !e.healthy)).toBe(true);
    } finally {
      await queue.close();
    }
  }, 90_000);

  it('close() returns promptly while Redis is down (running jobs still finish)', async () => {
    const runtime = createRuntime({ seed: 'outage-close' });
    const port = await freePort();
    const own = await startRedis(runtime, port);
    const queue = new BullmqQueue<{ i: number }>({
      name: 'closing',
      connection: `redis://127.0.0.1:${port}`,
      runtime,
      watchdogInterval: 100,
    });
    let finished = 0;
    let started = 0;
    queue.process(
      async () => {
        started++;
        await runtime.clock.sleep(300);
        finished++;
      },
      { concurrency: 2 },
    );
    try {
      await queue.add({ i: 1 });
      await until(runtime, 'the job to start', () => started === 1);
      own.kill('SIGKILL');
      await until(runtime, 'the outage to be noticed', () => !queue.health().healthy, 5000);
      const t0 = runtime.clock.now();
      await queue.close();
      expect(finished).toBe(1);
      expect(runtime.clock.now() - t0).toBeLessThan(3000);
    } finally {
      own.kill('SIGKILL');
    }
  }, 30_000);
});
