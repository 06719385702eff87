import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { queueSuite } from '../../test/queue-suite.js';
import { service } from '../../test/services.js';
import { isBulwarkError } from '../core/errors.js';
import { createRuntime } from '../core/runtime.js';
import { BullmqQueue } from './bullmq.js';

const redis = await service('redis');
const prefix = `bwtest-${process.pid}`;

afterAll(async () => {
  if (!redis.available) return;
  const client = new Redis(redis.url);
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.del(...keys);
  } while (cursor !== '0');
  client.disconnect();
});

let n = 0;
redis.describe('BullmqQueue: the shared backend suite', () => {
  queueSuite({
    clock: 'system',
    leaseMs: 500,
    create: (options) => {
      n++;
      return new BullmqQueue({
        connection: redis.url,
        prefix: `${prefix}-${n}`,
        name: `suite-${n}`,
        ...options,
      });
    },
  });
});

redis.describe('BullmqQueue', () => {
  it('reports an unreachable Redis as unhealthy and fails add fast instead of hanging', async () => {
    const runtime = createRuntime({ seed: 1 });
    const queue = new BullmqQueue({
      connection: 'redis://127.0.0.1:1',
      prefix,
      name: 'nowhere',
      runtime,
      addTimeout: 500,
    });
    try {
      const started = runtime.clock.now();
      await expect(queue.add({ x: 1 })).rejects.toSatisfy((e) => isBulwarkError(e, 'QUEUE_UNAVAILABLE'));
      expect(runtime.clock.now() - started).toBeLessThan(3000);
      expect(queue.health().healthy).toBe(false);
    } finally {
      await queue.close();
    }
  });

  it('rejects bad backend options at construction', () => {
    expect(() => new BullmqQueue({ connection: 'http://x' })).toThrow(/connection/);
    expect(() => new BullmqQueue({ prefix: 'a b' })).toThrow(/prefix/);
    expect(() => new BullmqQueue({ addTimeout: 0 })).toThrow(/addTimeout/);
  });
});

redis.describe('BullmqQueue events', () => {
  it('emits queue.depth from the watchdog when the counts change', async () => {
    const runtime = createRuntime({ seed: 'depth' });
    const depths: unknown[] = [];
    runtime.events.subscribe(
      (e) => depths.push(e.type === 'queue.depth' ? e.depth : undefined),
      ['queue.depth'],
    );
    const queue = new BullmqQueue({
      connection: redis.url,
      prefix,
      name: 'depth',
      runtime,
      watchdogInterval: 50,
    });
    try {
      await queue.add({ a: 1 });
      const deadline = runtime.clock.now() + 5000;
      while (
        !depths.some((d) => (d as { waiting: number }).waiting === 1) &&
        runtime.clock.now() < deadline
      ) {
        await runtime.clock.sleep(10);
      }
      expect(depths).toContainEqual({ waiting: 1, delayed: 0, active: 0, completed: 0, dead: 0 });
    } finally {
      await queue.close();
    }
  });
});
