import { describe, expect, it } from 'vitest';
import { SystemClock, VirtualClock } from './clock.js';

describe('VirtualClock', () => {
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
    const errors: unknown[] = [];
    const onError = (e: unknown) => errors.push(e);
    process.on('uncaughtException', onError);
    try {
      clock.setTimer(
        1,
        () => {
          throw new Error('bad timer');
        },
        undefined,
      );
      clock.setTimer(2, () => fired.push(2), undefined);
      await clock.runUntilIdle();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(fired).toEqual([2]);
  });
});

describe('SystemClock', () => {
  it('reads real time in epoch milliseconds', () => {
    const clock = new SystemClock();
    // The only comparison with the platform clock: both are epoch milliseconds.
    const diff = Math.abs(clock.now() - new Date().getTime());
    expect(diff).toBeLessThan(1000);
  });

  it('fires coalesced timers of equal duration in order, and skips cancelled ones (real I/O)', async () => {
    const clock = new SystemClock();
    const fired: number[] = [];
    const timers = [0, 1, 2, 3].map((i) => clock.setTimer(5, (n) => fired.push(n), i));
    timers[1]?.cancel();
    await new Promise<void>((resolve) => clock.setTimer(20, resolve, undefined));
    expect(fired).toEqual([0, 2, 3]);
  });

  it('leaves no ref-ed handle once every timer is cancelled', () => {
    const clock = new SystemClock();
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    for (let i = 0; i < 10_000; i++) clock.setTimer(30_000, () => {}, undefined).cancel();
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    expect(after).toBe(before);
  });
});
