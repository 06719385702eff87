import { describe, expect, it } from 'vitest';
import { virtualRuntime } from '../../core/runtime.js';
import { FailoverQueue } from '../../queue/failover.js';
import { MemoryQueue } from '../../queue/memory.js';
import { healing } from './healing.js';

describe('healing actions on a real failover queue and worker', () => {
  it('fails a queue over and back, and drains a worker, each reported as an event', async () => {
    const rt = virtualRuntime(11);
    const actions: string[] = [];
    rt.events.subscribe((e) => {
      if (e.type === 'healing.action') actions.push(`${e.action}:${e.target}:${e.ok}`);
    });
    const queue = new FailoverQueue(
      new MemoryQueue({ name: 'redis', runtime: rt }),
      new MemoryQueue({ name: 'sqlite', runtime: rt }),
      { name: 'jobs', runtime: rt },
    );
    const done: number[] = [];
    const heal = healing(rt);
    await rt.clock.run(async () => {
      const worker = queue.process(async (job) => {
        await rt.clock.sleep(100);
        done.push((job.payload as { n: number }).n);
      });
      await heal.failover(queue)();
      expect((await queue.add({ n: 1 })).queue).toBe('sqlite');
      await heal.failback(queue)();
      expect((await queue.add({ n: 2 })).queue).toBe('redis');
      await rt.clock.sleep(10);
      // Draining lets the running jobs finish and takes no more.
      await heal.drain(worker)();
      expect(done.sort()).toEqual([1, 2]);
      expect(worker.running).toBe(0);
      await queue.close();
    });
    expect(actions).toEqual([
      'failover:jobs:true',
      'failback:jobs:true',
      `drain:${actions[2]?.split(':')[1]}:true`,
    ]);
    expect(actions[2]).toMatch(/^drain:.+\+.+:true$/);
  });
});
