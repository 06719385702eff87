/**
 * Review of the grouped success reporting of a fused segment (SourceGroup / forGroup) and of the merged
 * CallRun: behaviour compared with the code before the change (5d1e1e5). Public API only, so each test
 * also runs on the old code.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../core/clock.js';
import type { BulwarkEvent, EventMeter, SourceMeter } from '../core/events.js';
import { createRuntime } from '../core/runtime.js';
import { pipeline } from './pipeline.js';
import type { Task } from './policy.js';
import { retry } from './retry.js';
import { TimeoutPolicy, timeout } from './timeout.js';

/** A virtual clock whose readings can be pushed ahead synchronously (a slow synchronous callback). */
class SkewClock extends VirtualClock {
  skew = 0;
  override now(): number {
    return super.now() + this.skew;
  }
}

const describeCall = (e: BulwarkEvent) =>
  e.type === 'call' ? `call ${e.source} ${e.outcome} @${e.at} ${e.durationMs}ms` : e.type;

describe('retryOnResult and the report of the layers’ successful calls', () => {
  it('the layers’ calls are reported before retryOnResult runs (as before the change, and as with an aggressive layer)', async () => {
    const clock = new VirtualClock({ start: 1_000 });
    const runtime = createRuntime({ clock, seed: 'order' });
    const log: string[] = [];
    runtime.events.subscribe((e) => log.push(describeCall(e)), ['call']);
    const decide = (v: unknown) => {
      log.push(`retryOnResult(${String(v)})`);
      return false;
    };
    const cooperative = pipeline(
      retry({ name: 'r', retryOnResult: decide, runtime }),
      timeout('1s', { name: 't', runtime }),
    );
    const aggressive = pipeline(
      retry({ name: 'ra', retryOnResult: decide, runtime }),
      timeout('1s', { name: 'ta', strategy: 'aggressive', runtime }),
    );
    await clock.run(async () => {
      await aggressive.execute(async () => {
        await clock.sleep(4);
        return 'a';
      });
      await cooperative.execute(async () => {
        await clock.sleep(4);
        return 'c';
      });
    });
    expect(log).toEqual([
      'call ta success @1004 4ms',
      'retryOnResult(a)',
      'call ra success @1004 4ms',
      // The same pipeline with a cooperative timeout must report in the same order: the timeout exited
      // (and its call ended) before the retry predicate ran.
      'call t success @1008 4ms',
      'retryOnResult(c)',
      'call r success @1008 4ms',
    ]);
  });

  it('the time a synchronous retryOnResult takes is not added to the layers’ (nor the retry’s) call durations', async () => {
    const clock = new SkewClock({ start: 1_000 });
    const runtime = createRuntime({ clock, seed: 'skew' });
    const seen: [string, number, number][] = [];
    runtime.events.subscribe((e) => {
      if (e.type === 'call') seen.push([e.source, e.at, e.durationMs]);
    });
    const policy = pipeline(
      retry({
        name: 'r',
        // A slow predicate: 50 ms pass while it runs (e.g. it parses a large result).
        retryOnResult: () => {
          clock.skew += 50;
          return false;
        },
        runtime,
      }),
      timeout('1s', { name: 't1', runtime }),
      timeout('1s', { name: 't2', runtime }),
    );
    await clock.run(() => policy.execute(() => clock.sleep(5)));
    // Before the change: the layers exited at 1005 and their calls (and the retry's, read at the same
    // boundary) were reported with that time. After it, the exit time is read after the predicate ran.
    expect(seen).toEqual([
      ['t2', 1_005, 5],
      ['t1', 1_005, 5],
      ['r', 1_005, 5],
    ]);
  });
});

describe('meters and listeners of a grouped success', () => {
  it('each layer’s call goes to the meters and then to the listeners before the next layer’s (one event at a time)', async () => {
    const clock = new VirtualClock({ start: 0 });
    const runtime = createRuntime({ clock, seed: 'interleave' });
    const log: string[] = [];
    runtime.events.meter({
      call: () => undefined,
      bulkheadChanged: () => undefined,
      forSource: (source) => ({
        call: () => log.push(`meter ${source}`),
        bulkheadChanged: () => undefined,
      }),
    });
    runtime.events.subscribe((e) => log.push(`listener ${e.source}`), ['call']);
    const policy = pipeline(timeout('1s', { name: 'a', runtime }), timeout('1s', { name: 'b', runtime }));
    await clock.run(() => policy.execute(() => clock.sleep(1)));
    expect(log).toEqual(['meter b', 'listener b', 'meter a', 'listener a']);
  });

  it('a listener that detaches a meter on the first call event: the meter gets no later event', async () => {
    const clock = new VirtualClock({ start: 0 });
    const runtime = createRuntime({ clock, seed: 'detach' });
    const metered: string[] = [];
    const detach = runtime.events.meter({
      call: () => undefined,
      bulkheadChanged: () => undefined,
      forSource: (source) => ({
        call: () => metered.push(source),
        bulkheadChanged: () => undefined,
      }),
    });
    runtime.events.subscribe(() => detach(), ['call']);
    const policy = pipeline(
      timeout('1s', { name: 'a', runtime }),
      timeout('1s', { name: 'b', runtime }),
      timeout('1s', { name: 'c', runtime }),
    );
    await clock.run(() => policy.execute(() => clock.sleep(1)));
    expect(metered).toEqual(['c']);
  });

  it('one meter object subscribed twice: each of its parts gets each layer’s call once', async () => {
    const clock = new VirtualClock({ start: 0 });
    const runtime = createRuntime({ clock, seed: 'twice' });
    let made = 0;
    const got: string[] = [];
    const meter: EventMeter = {
      call: () => undefined,
      bulkheadChanged: () => undefined,
      forSource: (source): SourceMeter => {
        const id = ++made;
        return { call: () => got.push(`${source}#${id}`), bulkheadChanged: () => undefined };
      },
    };
    runtime.events.meter(meter);
    runtime.events.meter(meter);
    const a = timeout('1s', { name: 'a', runtime });
    const b = timeout('1s', { name: 'b', runtime });
    await clock.run(async () => {
      // One policy alone (no group): each part once.
      await a.execute(() => clock.sleep(1));
      await pipeline(a, b).execute(() => clock.sleep(1));
    });
    const alone = got.slice(0, 2);
    expect(alone.sort()).toEqual(['a#1', 'a#2']);
    // In the pipeline, a's two parts again get one call each (b's parts were made when b first reported).
    const inPipeline = got.slice(2);
    expect(inPipeline.filter((g) => g.startsWith('a')).sort()).toEqual(['a#1', 'a#2']);
    expect(new Set(inPipeline.filter((g) => g.startsWith('b'))).size).toBe(2);
  });
});

describe('BasePolicy.execute', () => {
  it('a subclass of an exported policy class that overrides execute still has its override called', async () => {
    const clock = new VirtualClock({ start: 0 });
    const runtime = createRuntime({ clock, seed: 'subclass' });
    // What `class Logged extends TimeoutPolicy { execute(fn, signal) { ... } }` compiles to (written through
    // the prototype so that this file typechecks against both versions).
    class Logged extends TimeoutPolicy {}
    const seen: string[] = [];
    Object.defineProperty(Logged.prototype, 'execute', {
      configurable: true,
      writable: true,
      value: <T>(fn: Task<T>): Promise<T> => {
        seen.push('override');
        return Promise.resolve(fn as unknown as T);
      },
    });
    const logged = new Logged({ after: '1s', runtime });
    await logged.execute(() => 'x');
    expect(seen).toEqual(['override']);
  });
});
