/**
 * The layers of a fused segment share one clock reading per boundary (entering, exiting): fewer clock
 * reads, the same event times and durations as when each layer read the clock itself.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../core/clock.js';
import type { BulwarkEvent, EventOf } from '../core/events.js';
import { createRuntime, type Runtime } from '../core/runtime.js';
import { backoff } from './backoff.js';
import { bulkhead } from './bulkhead.js';
import { CANCELLED } from './call-event.js';
import { circuitBreaker } from './circuit-breaker.js';
import { pipeline } from './pipeline.js';
import type { Interceptor, Stage } from './policy.js';
import { retry } from './retry.js';
import { BasePolicy } from './runner.js';
import { timeout } from './timeout.js';

/** A virtual clock that counts how often it is read. */
class CountingClock extends VirtualClock {
  reads = 0;
  override now(): number {
    this.reads++;
    return super.now();
  }
}

function setup(): { clock: CountingClock; runtime: Runtime; events: BulwarkEvent[] } {
  const clock = new CountingClock({ start: 1_000 });
  const runtime = createRuntime({ clock, seed: 'shared-time' });
  const events: BulwarkEvent[] = [];
  runtime.events.subscribe((event) => events.push(event));
  return { clock, runtime, events };
}

/** A policy of one custom interceptor. */
function custom(name: string, interceptor: Interceptor<string>): BasePolicy {
  class Custom extends BasePolicy {
    readonly kind = 'custom';
    readonly name = name;
    readonly stage: Stage = { kind: 'intercept', interceptor };
  }
  return new Custom();
}

const calls = (events: BulwarkEvent[]) => events.filter((e): e is EventOf<'call'> => e.type === 'call');

describe('shared time of a fused segment', () => {
  it('reads the clock once when the layers enter and once when they exit, however many layers listen', async () => {
    const { clock, runtime, events } = setup();
    const policy = pipeline(
      retry({ maxAttempts: 3, runtime }),
      circuitBreaker({ consecutiveFailures: 5, runtime }),
      timeout('1s', { runtime }),
      bulkhead({ limit: 10, runtime }),
    );
    events.length = 0;
    const before = clock.reads;
    const result = await clock.run(() =>
      policy.execute(async () => {
        await clock.sleep(40);
        return 'done';
      }),
    );
    expect(result).toBe('done');
    expect(clock.reads - before).toBe(2);
    // Every layer's `call` event still carries the exit time and the whole 40 ms.
    const ends = calls(events);
    expect(ends.map((e) => e.kind)).toEqual(['bulkhead', 'timeout', 'circuitBreaker', 'retry']);
    for (const e of ends) expect([e.at, e.durationMs, e.outcome]).toEqual([1_040, 40, 'success']);
    const changes = events.filter((e) => e.type === 'bulkhead.changed').map((e) => e.at);
    expect(changes).toEqual([1_000, 1_040]);
  });

  it('reads the clock again when a layer that waited (a queued bulkhead) lets the call through', async () => {
    const { clock, runtime, events } = setup();
    const policy = pipeline(bulkhead({ limit: 1, queue: 1, runtime }), timeout('1s', { runtime }));
    events.length = 0;
    await clock.run(async () => {
      const first = policy.execute(() => clock.sleep(100));
      const second = policy.execute(() => clock.sleep(30));
      await Promise.all([first, second]);
    });
    const timeouts = calls(events).filter((e) => e.kind === 'timeout');
    const bulkheads = calls(events).filter((e) => e.kind === 'bulkhead');
    // The second call waited 100 ms in the queue: its timeout started when it was let through.
    expect(timeouts.map((e) => [e.at, e.durationMs])).toEqual([
      [1_100, 100],
      [1_130, 30],
    ]);
    expect(bulkheads.map((e) => [e.at, e.durationMs])).toEqual([
      [1_100, 100],
      [1_130, 130],
    ]);
  });

  it('reads the clock again for each attempt after a retry waits, and for the end of the call', async () => {
    const { clock, runtime, events } = setup();
    const policy = pipeline(
      retry({ maxAttempts: 2, backoff: backoff.constant('50ms'), runtime }),
      timeout('1s', { runtime }),
    );
    events.length = 0;
    let attempts = 0;
    await clock.run(() =>
      policy.execute(async () => {
        attempts++;
        await clock.sleep(10);
        if (attempts === 1) throw new Error('first attempt fails');
        return 'ok';
      }),
    );
    const ends = calls(events).map((e) => [e.kind, e.at, e.durationMs, e.outcome]);
    expect(ends).toEqual([
      ['timeout', 1_010, 10, 'failure'],
      ['timeout', 1_070, 10, 'success'],
      ['retry', 1_070, 70, 'success'],
    ]);
  });

  it('a breaker still judges slow calls by the time between its layers entering and exiting', async () => {
    const { clock, runtime } = setup();
    const breaker = circuitBreaker({
      slowCallDuration: '50ms',
      slowCallRatio: 0.6,
      minimumThroughput: 2,
      window: '1m',
      runtime,
    });
    const policy = pipeline(breaker, timeout('1s', { runtime }), bulkhead({ limit: 5, runtime }));
    await clock.run(async () => {
      await policy.execute(() => clock.sleep(49));
      expect(breaker.state).toBe('closed');
      await policy.execute(() => clock.sleep(60));
      expect(breaker.state).toBe('closed'); // 1 slow call of 2
      await policy.execute(() => clock.sleep(60));
    });
    expect(breaker.state).toBe('open');
  });

  it('layers on different clocks each read their own', async () => {
    const a = setup();
    const b = setup();
    const policy = pipeline(
      timeout('1s', { runtime: a.runtime }),
      bulkhead({ limit: 5, runtime: b.runtime }),
    );
    await b.clock.advance(500);
    a.events.length = 0;
    b.events.length = 0;
    await a.clock.run(() => policy.execute(() => 'sync'));
    expect(calls(a.events).map((e) => e.at)).toEqual([1_000]);
    expect(calls(b.events).map((e) => e.at)).toEqual([1_500]);
  });

  it('a layer abandoned by an aggressive timeout and exiting after the next attempt began keeps its own entry time', async () => {
    const { clock, runtime, events } = setup();
    const policy = pipeline(
      retry({ maxAttempts: 2, backoff: backoff.constant('10ms'), runtime }),
      timeout({ after: '20ms', strategy: 'aggressive', runtime }),
      bulkhead({ limit: 5, runtime }),
    );
    events.length = 0;
    let attempts = 0;
    const result = await clock.run(() =>
      policy.execute(async () => {
        attempts++;
        if (attempts === 1) await clock.sleep(100);
        return attempts;
      }),
    );
    await clock.runUntilIdle();
    expect(result).toBe(2);
    const ends = calls(events).map((e) => [e.kind, e.at, e.durationMs, e.outcome]);
    expect(ends).toEqual([
      ['timeout', 1_020, 20, 'timeout'],
      ['bulkhead', 1_030, 0, 'success'],
      ['timeout', 1_030, 0, 'success'],
      ['retry', 1_030, 30, 'success'],
      // The first attempt's bulkhead, let go by the timeout, exits when its function returns.
      ['bulkhead', 1_100, 100, 'success'],
    ]);
  });

  it('durations stay right on each clock when the layers of a call read different clocks', async () => {
    const a = setup();
    const b = setup();
    const policy = pipeline(
      retry({ maxAttempts: 1, runtime: b.runtime }),
      circuitBreaker({ runtime: a.runtime }),
      timeout('1s', { runtime: b.runtime }),
      bulkhead({ limit: 5, runtime: a.runtime }),
    );
    await b.clock.advance(500);
    a.events.length = 0;
    b.events.length = 0;
    await a.clock.run(async () => {
      const done = policy.execute(() => a.clock.sleep(40));
      await b.clock.advance(7);
      await a.clock.advance(40);
      await done;
    });
    expect(calls(a.events).map((e) => [e.kind, e.at, e.durationMs])).toEqual([
      ['bulkhead', 1_040, 40],
      ['circuitBreaker', 1_040, 40],
    ]);
    expect(calls(b.events).map((e) => [e.kind, e.at, e.durationMs])).toEqual([
      ['timeout', 1_507, 7],
      ['retry', 1_507, 7],
    ]);
  });

  it('times every layer of a long segment, beyond the layers that share one entry reading', async () => {
    const { clock, runtime, events } = setup();
    const layers = Array.from({ length: 40 }, (_, i) => timeout('1s', { name: `t${i}`, runtime }));
    const policy = pipeline(...layers);
    events.length = 0;
    const before = clock.reads;
    await clock.run(() => policy.execute(() => clock.sleep(25)));
    expect(clock.reads - before).toBe(2);
    const ends = calls(events);
    expect(ends.map((e) => e.source)).toEqual(layers.map((_, i) => `t${39 - i}`));
    for (const e of ends) expect([e.at, e.durationMs, e.outcome]).toEqual([1_025, 25, 'success']);
  });

  it('a call that entered while nobody listened is not reported when someone listens by its end', async () => {
    const clock = new CountingClock({ start: 1_000 });
    const runtime = createRuntime({ clock, seed: 'late' });
    const policy = pipeline(
      circuitBreaker({ runtime }),
      timeout('1s', { runtime }),
      bulkhead({ limit: 2, runtime }),
    );
    const events: BulwarkEvent[] = [];
    await clock.run(async () => {
      const first = policy.execute(() => clock.sleep(10));
      const stop = runtime.events.subscribe((event) => events.push(event));
      await first;
      await policy.execute(() => clock.sleep(5));
      stop();
    });
    // Only the second call, which entered after the subscription, carries durations.
    expect(calls(events).map((e) => [e.kind, e.at, e.durationMs])).toEqual([
      ['bulkhead', 1_015, 5],
      ['timeout', 1_015, 5],
      ['circuitBreaker', 1_015, 5],
    ]);
  });

  it('bulkhead.acquire() times its own call, from asking (a wait included) to the release', async () => {
    const { clock, runtime, events } = setup();
    const pool = bulkhead({ name: 'pool', limit: 1, queue: 1, runtime });
    events.length = 0;
    await clock.run(async () => {
      const first = await pool.acquire();
      const waiting = pool.acquire();
      await clock.advance(30);
      first();
      const second = await waiting;
      await clock.advance(12);
      second();
    });
    expect(calls(events).map((e) => [e.at, e.durationMs, e.outcome])).toEqual([
      [1_030, 30, 'success'],
      [1_042, 42, 'success'],
    ]);
  });

  it('reports a custom interceptor through its CallReporting, with the outcome it gives and the error its exit returns', async () => {
    const { clock, runtime, events } = setup();
    const replaced = new Error('replaced by the layer');
    const reporting = custom('custom', {
      enter: () => 'token',
      exit: (_token, ok, error) => (ok ? error : replaced),
      reports: {
        calls: runtime.events.source('custom', 'custom'),
        clock,
        failedAs: (token, error) => {
          expect([token, error]).toEqual(['token', replaced]);
          return CANCELLED;
        },
      },
    });
    const policy = pipeline(reporting, timeout('1s', { runtime }));
    events.length = 0;
    await clock.run(async () => {
      await policy.execute(() => clock.sleep(3));
      await expect(
        policy.execute(async () => {
          await clock.sleep(4);
          throw new Error('inner');
        }),
      ).rejects.toBe(replaced);
    });
    expect(calls(events).map((e) => [e.source, e.at, e.durationMs, e.outcome, e.error])).toEqual([
      ['timeout', 1_003, 3, 'success', undefined],
      ['custom', 1_003, 3, 'success', undefined],
      ['timeout', 1_007, 4, 'failure', expect.objectContaining({ message: 'inner' })],
      ['custom', 1_007, 4, 'cancelled', replaced],
    ]);
  });

  it('after a success the layers all exit, then their calls are reported, innermost first', async () => {
    const { clock, runtime, events } = setup();
    const breaker = circuitBreaker({ name: 'breaker', consecutiveFailures: 1, halfOpenAfter: 10, runtime });
    const policy = pipeline(breaker, bulkhead({ name: 'pool', limit: 1, runtime }));
    await clock.run(async () => {
      await expect(policy.execute(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
      await clock.advance(10);
      events.length = 0;
      // The half-open trial succeeds: the breaker's exit closes the circuit before any call is reported.
      await policy.execute(() => clock.sleep(2));
    });
    const order = events
      .filter((e) => e.type !== 'bulkhead.changed')
      .map((e) => (e.type === 'call' ? `call ${e.source} ${e.outcome}` : e.type));
    expect(order).toEqual([
      'circuit.transition',
      'circuit.transition',
      'call pool success',
      'call breaker success',
    ]);
    expect(calls(events).map((e) => [e.at, e.durationMs])).toEqual([
      [1_012, 2],
      [1_012, 2],
    ]);
  });

  it('a layer whose exit throws after a success: the layers inside it succeeded, it and those outside failed with its error', async () => {
    const { clock, runtime, events } = setup();
    const broken = new Error('exit threw');
    const throwing = custom('throwing', {
      enter: () => 'token',
      exit: () => {
        throw broken;
      },
      reports: { calls: runtime.events.source('throwing', 'custom'), clock, failedAs: () => CANCELLED },
    });
    const policy = pipeline(
      timeout('1s', { name: 'outer', runtime }),
      throwing,
      timeout('1s', { name: 'inner', runtime }),
    );
    events.length = 0;
    await clock.run(async () => {
      await expect(policy.execute(() => clock.sleep(6))).rejects.toBe(broken);
    });
    expect(calls(events).map((e) => [e.source, e.at, e.durationMs, e.outcome, e.error])).toEqual([
      ['inner', 1_006, 6, 'success', undefined],
      ['throwing', 1_006, 6, 'cancelled', broken],
      ['outer', 1_006, 6, 'failure', broken],
    ]);
  });

  it('a retry loop’s call is reported with the layers’ when the first attempt succeeds, on its own otherwise', async () => {
    const { clock, runtime, events } = setup();
    const oops = new Error('predicate bug');
    const results = ['busy', 'done'];
    let n = 0;
    const again = pipeline(
      retry({
        name: 'again',
        maxAttempts: 2,
        backoff: backoff.constant('10ms'),
        retryOnResult: (r) => r === 'busy',
        runtime,
      }),
      timeout('1s', { name: 't1', runtime }),
    );
    const broken = pipeline(
      retry({
        name: 'broken',
        retryOnResult: () => {
          throw oops;
        },
        runtime,
      }),
      timeout('1s', { name: 't2', runtime }),
    );
    events.length = 0;
    await clock.run(async () => {
      await expect(
        again.execute(async () => {
          await clock.sleep(2);
          return results[n++];
        }),
      ).resolves.toBe('done');
      await expect(broken.execute(() => clock.sleep(3))).rejects.toBe(oops);
    });
    expect(calls(events).map((e) => [e.source, e.at, e.durationMs, e.outcome, e.error])).toEqual([
      ['t1', 1_002, 2, 'success', undefined],
      ['t1', 1_014, 2, 'success', undefined],
      ['again', 1_014, 14, 'success', undefined],
      ['t2', 1_017, 3, 'success', undefined],
      ['broken', 1_017, 3, 'failure', oops],
    ]);
  });

  it('a meter gets a whole segment’s success once, through its forGroup part, when all the layers report to one sink', async () => {
    const clock = new VirtualClock({ start: 0 });
    const one = createRuntime({ clock, seed: 'one' });
    const other = createRuntime({ clock, seed: 'other' });
    const seen: string[] = [];
    const meterOf = (runtime: Runtime, label: string) =>
      runtime.events.meter({
        call: () => undefined,
        bulkheadChanged: () => undefined,
        forSource: (source) => ({
          call: (at, _outcome, durationMs) => seen.push(`${label} part ${source} ${at} ${durationMs}`),
          bulkheadChanged: () => undefined,
        }),
        forGroup: (parts) => ({
          succeeded: (at, durationMs) => seen.push(`${label} group of ${parts.length} ${at} ${durationMs}`),
        }),
      });
    meterOf(one, 'one');
    meterOf(other, 'other');
    const together = pipeline(
      retry({ name: 'r', maxAttempts: 1, runtime: one }),
      timeout('1s', { name: 'a', runtime: one }),
      timeout('1s', { name: 'b', runtime: one }),
    );
    const apart = pipeline(
      timeout('1s', { name: 'c', runtime: one }),
      timeout('1s', { name: 'd', runtime: other }),
    );
    await clock.run(async () => {
      await together.execute(() => clock.sleep(5));
      await apart.execute(() => clock.sleep(2));
      await expect(together.execute(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
    });
    expect(seen).toEqual([
      'one group of 3 5 5',
      'other part d 7 2',
      'one part c 7 2',
      // A failure is reported layer by layer, after each exit.
      'one part b 7 0',
      'one part a 7 0',
      'one part r 7 0',
    ]);
  });
});
