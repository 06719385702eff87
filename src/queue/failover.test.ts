import { describe, expect, it } from 'vitest';
import { record } from '../../test/support.js';
import { isBulwarkError } from '../core/errors.js';
import { virtualRuntime } from '../core/runtime.js';
import { QueueUnavailableError } from './errors.js';
import { FailoverQueue } from './failover.js';
import { queueFaults } from './faults.js';
import { MemoryQueue } from './memory.js';
import type { AddOptions, Job, JsonValue, QueueHealth, QueueStats } from './types.js';

/** A memory queue that can be made unreachable, as Redis going down would make a BullMQ queue. */
class Unreachable extends MemoryQueue {
  down = false;
  /** Down without knowing it: `health()` still says healthy (what a hung connection looks like). */
  silent = false;
  override health(): QueueHealth {
    return this.down && !this.silent ? { healthy: false, reason: 'connection refused' } : super.health();
  }
  override add(payload: JsonValue, options?: AddOptions): Promise<Job> {
    if (this.down) return Promise.reject(new QueueUnavailableError(this.name, 'connection refused'));
    return super.add(payload, options);
  }
  override stats(): Promise<QueueStats> {
    if (this.down) return Promise.reject(new QueueUnavailableError(this.name, 'connection refused'));
    return super.stats();
  }
}

describe('FailoverQueue', () => {
  it('sends a job the primary refuses as full to the fallback, and says why', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const primary = new MemoryQueue({ name: 'p', capacity: 1, runtime: rt });
    const fallback = new MemoryQueue({ name: 'f', runtime: rt });
    const queue = new FailoverQueue(primary, fallback, { runtime: rt });
    await rt.clock.run(async () => {
      expect((await queue.add('one')).queue).toBe('p');
      expect((await queue.add('two')).queue).toBe('f');
      expect(queue.usingPrimary).toBe(true);
      const failovers = events.filter((e) => e.type === 'queue.failover');
      expect(failovers).toMatchObject([{ from: 'p', to: 'f', reason: 'QUEUE_FULL', source: 'p|f' }]);
      expect((await queue.stats()).counts.waiting).toBe(2);
      await queue.close();
    });
  });

  it('gives the caller the error when both refuse, and stores nothing', async () => {
    const rt = virtualRuntime(2);
    const primary = new MemoryQueue({ name: 'p', requireWorkers: true, runtime: rt });
    const fallback = new MemoryQueue({ name: 'f', capacity: 1, runtime: rt });
    const queue = new FailoverQueue(primary, fallback, { runtime: rt });
    await rt.clock.run(async () => {
      await queue.add('fills the fallback');
      await expect(queue.add('nowhere')).rejects.toSatisfy((e) => isBulwarkError(e, 'QUEUE_FULL'));
      expect((await queue.stats()).counts.waiting).toBe(1);
      await queue.close();
    });
  });

  it('does not fail over a bad payload: that is the caller’s error', async () => {
    const rt = virtualRuntime(3);
    const queue = new FailoverQueue(
      new MemoryQueue({ runtime: rt, name: 'p' }),
      new MemoryQueue({ runtime: rt, name: 'f' }),
      {
        runtime: rt,
      },
    );
    await rt.clock.run(async () => {
      await expect(queue.add((() => 1) as never)).rejects.toSatisfy((e) =>
        isBulwarkError(e, 'QUEUE_PAYLOAD_INVALID'),
      );
      await queue.close();
    });
  });

  it('marks an unreachable primary down, probes it, and fails back when it answers', async () => {
    const rt = virtualRuntime(4);
    const events = record(rt);
    const primary = new Unreachable({ name: 'redis', runtime: rt });
    const fallback = new MemoryQueue({ name: 'sqlite', runtime: rt });
    const queue = new FailoverQueue(primary, fallback, { runtime: rt, probeInterval: 1000 });
    const ran: string[] = [];
    await rt.clock.run(async () => {
      queue.process((job) => {
        ran.push(`${job.queue}:${String(job.payload)}`);
      });
      await queue.add('a');
      primary.down = true;
      primary.silent = true;
      expect((await queue.add('b')).queue).toBe('sqlite');
      expect(queue.usingPrimary).toBe(false);
      expect((await queue.add('c')).queue).toBe('sqlite');
      primary.silent = false;
      await rt.clock.sleep(3000);
      expect(queue.usingPrimary).toBe(false);
      primary.down = false;
      await rt.clock.sleep(1000);
      expect(queue.usingPrimary).toBe(true);
      expect((await queue.add('d')).queue).toBe('redis');
      await rt.clock.sleep(100);
      await queue.close();
    });
    expect(ran.sort()).toEqual(['redis:a', 'redis:d', 'sqlite:b', 'sqlite:c']);
    const reasons = events
      .filter((e) => e.type === 'queue.failover')
      .map((e) => (e as { reason: string }).reason);
    expect(reasons).toEqual(['QUEUE_UNAVAILABLE', 'unhealthy']);
    expect(events.filter((e) => e.type === 'queue.failback')).toMatchObject([
      { from: 'sqlite', to: 'redis' },
    ]);
  });

  it('rejects bad arguments at construction', () => {
    const q = new MemoryQueue();
    expect(() => new FailoverQueue(q, q)).toThrow(TypeError);
    expect(() => new FailoverQueue(q, {} as never)).toThrow(/fallback/);
    expect(() => new FailoverQueue(q, new MemoryQueue(), { probeInterval: 0 })).toThrow(/probeInterval/);
    expect(() => new FailoverQueue(q, new MemoryQueue(), { probe: 1 } as never)).toThrow(
      /unknown option "probe"/,
    );
  });
});

describe('queueFaults', () => {
  it('refuse add at the seeded rate, reproducibly, and report each refusal', async () => {
    const refusals = async (seed: number) => {
      const rt = virtualRuntime(seed);
      const events = record(rt);
      const queue = queueFaults.overflow(new MemoryQueue({ runtime: rt }), { rate: 0.3, runtime: rt });
      const pattern: string[] = [];
      await rt.clock.run(async () => {
        for (let i = 0; i < 2000; i++) {
          pattern.push(
            await queue.add(i).then(
              () => '.',
              (e) => (isBulwarkError(e, 'QUEUE_FULL') ? 'F' : '?'),
            ),
          );
        }
        await queue.close();
      });
      const injected = events.filter((e) => e.type === 'fault.injected');
      return { pattern: pattern.join(''), injected: injected.length };
    };
    const a = await refusals(7);
    const b = await refusals(7);
    expect(a.pattern).toBe(b.pattern);
    const refused = [...a.pattern].filter((c) => c === 'F').length;
    expect(refused / 2000).toBeGreaterThan(0.27);
    expect(refused / 2000).toBeLessThan(0.33);
    expect(a.injected).toBe(refused);
    expect(a.pattern).not.toContain('?');
  });

  it('workerDown refuses with NO_LIVE_WORKERS; bad options are TypeErrors', async () => {
    const rt = virtualRuntime(8);
    const queue = queueFaults.workerDown(new MemoryQueue({ runtime: rt }), { rate: 1, runtime: rt });
    await expect(queue.add(1)).rejects.toSatisfy((e) => isBulwarkError(e, 'NO_LIVE_WORKERS'));
    expect(() => queueFaults.overflow(new MemoryQueue(), { rate: 2 })).toThrow(/rate/);
    expect(() => queueFaults.overflow({} as never)).toThrow(TypeError);
    await queue.close();
  });
});

describe('FailoverQueue failover() and failback() by hand (healing actions)', () => {
  it('holds new jobs on the fallback until failback, which checks the primary first', async () => {
    const rt = virtualRuntime(3);
    const primary = new Unreachable({ name: 'p', runtime: rt });
    const fallback = new MemoryQueue({ name: 'f', runtime: rt });
    const queue = new FailoverQueue(primary, fallback, { runtime: rt, probeInterval: '1s' });
    const events = record(rt, true);
    await rt.clock.run(async () => {
      await queue.failover('maintenance');
      expect(queue.usingPrimary).toBe(false);
      expect((await queue.add({ n: 1 })).queue).toBe('f');
      // The primary is healthy, yet the probe does not fail back while the failover is held.
      await rt.clock.sleep(5000);
      expect((await queue.add({ n: 2 })).queue).toBe('f');
      primary.down = true;
      await expect(queue.failback()).rejects.toThrow(/the primary is not back yet/);
      expect(queue.usingPrimary).toBe(false);
      primary.down = false;
      await queue.failback();
      expect(queue.usingPrimary).toBe(true);
      expect((await queue.add({ n: 3 })).queue).toBe('p');
      await queue.close();
    });
    expect(
      events.filter((e) => e.type === 'queue.failover').map((e) => (e as { reason: string }).reason),
    ).toContain('maintenance');
    expect(events.some((e) => e.type === 'queue.failback')).toBe(true);
  });
});
