import { describe, expect, it } from 'vitest';
import { uncaught } from '../../test/support.js';
import { SystemClock, VirtualClock } from './clock.js';

describe('VirtualClock', () => {
  it('timer queues are exact on virtual time', async () => {
    const clock = new VirtualClock();
    const queue = clock.timerQueue(25);
    const fired: number[] = [];
    queue.setTimer(() => fired.push(clock.now()), undefined);
    await clock.advance(10);
    queue.setTimer(() => fired.push(clock.now()), undefined).cancel();
    queue.setTimer(() => fired.push(clock.now()), undefined);
    await clock.runUntilIdle();
    expect(fired).toEqual([25, 35]);
  });

  it('fires timers in (time, insertion) order', async () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    clock.setTimer(20, (s) => fired.push(s), 'b@20');
    clock.setTimer(10, (s) => fired.push(s), 'a@10');
    clock.setTimer(20, (s) => fired.push(s), 'c@20');
    clock.setTimer(0, (s) => fired.push(s), 'z@0');
    await clock.runUntilIdle();
    expect(fired).toEqual(['z@0', 'a@10', 'b@20', 'c@20']);
    expect(clock.now()).toBe(20);
  });

  it('simultaneous timers fire together, then the program reacts; a 0 ms timer set meanwhile comes after', async () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    clock.setTimer(
      10,
      () => {
        log.push('a');
        Promise.resolve().then(() => log.push('a reacts'));
        clock.setTimer(0, () => log.push('a+0'), undefined);
      },
      undefined,
    );
    clock.setTimer(10, () => log.push('b'), undefined);
    await clock.runUntilIdle();
    expect(log).toEqual(['a', 'b', 'a reacts', 'a+0']);
    const spin = () => {
      clock.setTimer(0, spin, undefined);
    };
    spin();
    await expect(clock.runUntilIdle({ limit: 50 })).rejects.toThrow(/never goes idle/);
  });

  it('advance fires only what is due and lands exactly on the target', async () => {
    const clock = new VirtualClock({ start: 1000 });
    const fired: number[] = [];
    for (const at of [5, 10, 15]) clock.setTimer(at, () => fired.push(clock.now()), undefined);
    await clock.advance(10);
    expect(fired).toEqual([1005, 1010]);
    expect(clock.now()).toBe(1010);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(3);
    expect(clock.now()).toBe(1013);
    expect(fired).toHaveLength(2);
  });

  it('cancelled timers never fire and do not move time', async () => {
    const clock = new VirtualClock();
    let fired = false;
    const t = clock.setTimer(
      50,
      () => {
        fired = true;
      },
      undefined,
    );
    t.cancel();
    t.cancel();
    expect(clock.pendingTimers).toBe(0);
    await clock.runUntilIdle();
    expect(fired).toBe(false);
    expect(clock.now()).toBe(0);
  });

  it('runs an async program that waits an hour in virtual time', async () => {
    const clock = new VirtualClock();
    const steps: number[] = [];
    const result = await clock.run(async () => {
      for (let i = 0; i < 60; i++) {
        await clock.sleep(60_000);
        steps.push(clock.now());
      }
      return 'done';
    });
    expect(result).toBe('done');
    expect(steps[59]).toBe(3_600_000);
    expect(steps[0]).toBe(60_000);
  });

  it('run propagates the program rejection', async () => {
    const clock = new VirtualClock();
    await expect(
      clock.run(async () => {
        await clock.sleep(5);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(clock.now()).toBe(5);
  });

  it('run waits for work that is not on the clock, then continues', async () => {
    const clock = new VirtualClock();
    const result = await clock.run(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      await clock.sleep(10);
      return clock.now();
    });
    expect(result).toBe(10);
  });

  it('sleep rejects with the signal reason when aborted, and cancels its timer', async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    const sleeping = clock.sleep(1000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(sleeping).rejects.toThrow('stop');
    expect(clock.pendingTimers).toBe(0);
    await expect(clock.sleep(1, controller.signal)).rejects.toThrow('stop');
  });

  it('runUntilIdle stops a program that never goes idle', async () => {
    const clock = new VirtualClock();
    const tick = () => {
      clock.setTimer(1, tick, undefined);
    };
    tick();
    await expect(clock.runUntilIdle({ limit: 100 })).rejects.toThrow(/never goes idle/);
  });

  it('a throwing timer callback does not stop the others', async () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    const errors = await uncaught(async () => {
      clock.setTimer(
        1,
        () => {
          throw new Error('bad timer');
        },
        undefined,
      );
      clock.setTimer(2, () => fired.push(2), undefined);
      await clock.runUntilIdle();
    });
    expect(errors).toEqual([new Error('bad timer')]);
    expect(fired).toEqual([2]);
  });
});

describe('SystemClock', () => {
  it('reads real time in epoch milliseconds', () => {
    const clock = new SystemClock();
    // The only comparison with the platform clock: both are epoch milliseconds.
    const diff = Math.abs(clock.now() - Date.now());
    expect(diff).toBeLessThan(1000);
  });

  it('one-shot timers fire once and can be cancelled (real I/O)', async () => {
    const clock = new SystemClock();
    const fired: number[] = [];
    clock.setTimer(2, (n) => fired.push(n), 1);
    clock.setTimer(3, (n) => fired.push(n), 2).cancel();
    await clock.sleep(15);
    expect(fired).toEqual([1]);
  });

  it('a timer queue fires in order, never early, and skips cancelled timers (real I/O)', async () => {
    const clock = new SystemClock();
    const queue = clock.timerQueue(20);
    expect(queue.ms).toBe(20);
    expect(clock.timerQueue(20)).toBe(queue);
    const fired: { n: number; late: number }[] = [];
    const started: number[] = [];
    const timers = [0, 1, 2, 3].map((n) => {
      started[n] = clock.now();
      return queue.setTimer(
        (i: number) => fired.push({ n: i, late: clock.now() - (started[i] as number) - 20 }),
        n,
      );
    });
    timers[1]?.cancel();
    await clock.sleep(5);
    const later = clock.now();
    queue.setTimer(() => fired.push({ n: 4, late: clock.now() - later - 20 }), undefined);
    await clock.sleep(60);
    expect(fired.map((f) => f.n)).toEqual([0, 2, 3, 4]);
    for (const f of fired) expect(f.late).toBeGreaterThanOrEqual(0);
  });

  it('leaves no ref-ed handle once every queued timer is cancelled, within one tick (real I/O)', async () => {
    const clock = new SystemClock();
    const queue = clock.timerQueue(1000);
    const count = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = count();
    for (let i = 0; i < 10_000; i++) queue.setTimer(() => {}, undefined).cancel();
    // The queue's Node timer lets go at its next tick (resolution: 1% of the duration, here 10 ms).
    await clock.sleep(40);
    expect(count()).toBeLessThanOrEqual(before);
  });
});
