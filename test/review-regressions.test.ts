/**
 * Regression tests from a review of the foundation: each `describe` pins a bug that was found and fixed
 * (retry `call` events under concurrency, timer-queue tick chains and retained arguments, VirtualClock
 * with concurrent runs, throwing exits and thenables, shared root signals, late signal reads, long timers).
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { SystemClock, VirtualClock } from '../src/core/clock.js';
import type { BulwarkEvent } from '../src/core/events.js';
import { createRuntime, virtualRuntime } from '../src/core/runtime.js';
import {
  backoff,
  bulkhead,
  circuitBreaker,
  fallback,
  hedge,
  pipeline,
  rateLimit,
  retry,
  timeout,
} from '../src/policy/index.js';
import type { Interceptor, Stage } from '../src/policy/policy.js';
import { BasePolicy } from '../src/policy/runner.js';
import { deferred, type Settled, settle } from './support.js';

describe('A. retry `call` events, concurrent calls without a signal', () => {
  it('two concurrent signal-less calls that each retry once emit two retry `call` events with their own durations', async () => {
    const rt = virtualRuntime(1);
    const calls: BulwarkEvent[] = [];
    rt.events.subscribe((e) => {
      if (e.type === 'call' && e.source === 'r') calls.push(e);
    });
    const r = retry({ name: 'r', maxAttempts: 2, backoff: backoff.constant(10), runtime: rt });
    const flaky = (failFor: number) => {
      let n = 0;
      return async () => {
        if (n++ === 0) {
          await rt.clock.sleep(failFor);
          throw new Error('first attempt fails');
        }
        return 'ok';
      };
    };
    await rt.clock.run(async () => {
      // A fails at t=5 and succeeds at t=15; B starts at t=0, fails at t=7, succeeds at t=17.
      await Promise.all([r.execute(flaky(5)), r.execute(flaky(7))]);
    });
    expect(calls.map((e) => (e.type === 'call' ? [e.outcome, e.durationMs] : null))).toEqual([
      ['success', 15],
      ['success', 17],
    ]);
  });
});

describe('B. SystemTimerQueue: a timer set from a callback of the same queue', () => {
  const nodeTimeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

  it('keeps one Node tick timer per queue (a callback that re-arms must not fork a second tick chain)', async () => {
    const clock = new SystemClock();
    const queue = clock.timerQueue(20);
    const before = nodeTimeouts();
    const samples: number[] = [];
    const done = deferred();
    let fired = 0;
    const callback = () => {
      fired++;
      if (fired <= 5) {
        queue.setTimer(callback, undefined); // e.g. hedge starting attempt n and arming the delay for n+1
        setImmediate(() => samples.push(nodeTimeouts() - before));
      } else done.resolve();
    };
    queue.setTimer(callback, undefined);
    await done.promise;
    // One pending queued timer at each sample: one Node timer serves it, never a second chain. (A timer
    // left by an earlier test may end meanwhile, so the count relative to `before` can read 0.)
    expect(Math.max(...samples)).toBe(1);
  });

  it('hedge on the system clock (maxAttempts 4): tick chains multiply', async () => {
    const rt = createRuntime({ clock: new SystemClock(), seed: 1 });
    const h = hedge({ delay: 15, maxAttempts: 4, runtime: rt });
    await new Promise((r) => setTimeout(r, 60)); // let other tests' tick chains die out
    const before = nodeTimeouts();
    const samples: number[] = [];
    const sampled = deferred();
    await h.execute(({ attempt }) => {
      setImmediate(() => {
        samples.push(nodeTimeouts() - before);
        if (attempt === 3) sampled.resolve();
      });
      // Attempts 1-3 hang; the 3rd arms the delay of the 4th from inside a tick of the delay queue.
      return attempt === 4 ? Promise.resolve('ok') : new Promise<string>(() => {});
    });
    await sampled.promise;
    // Attempts 2 and 3 start from a tick of the delay queue and arm the next delay from inside it.
    // One Node timer should serve the queue (the sample at attempt 4 may still see it before it lets go).
    expect(Math.max(...samples)).toBeLessThanOrEqual(1);
  });
});

describe('C. VirtualClock.run: two runs at once on one clock', () => {
  it('a run parked while idle is woken when its program sets a timer, even after another run ended', async () => {
    const clock = new VirtualClock();
    const gateA = deferred();
    const gateB = deferred();
    const a = clock.run(async () => {
      await gateA.promise; // waits on something other than the clock
      await clock.sleep(10);
      return 'a';
    });
    const b = clock.run(async () => {
      await gateB.promise;
      return 'b';
    });
    const tick = () => new Promise<void>((r) => setImmediate(r));
    await tick();
    await tick(); // both runs are parked: no timer pending, programs unsettled
    gateB.resolve();
    expect(await b).toBe('b'); // run B ends, leaving `wake` pointing at its own resolver
    gateA.resolve(); // A's program now sets a 10 ms virtual timer: run A must wake and fire it
    const watchdog = new Promise((r) => setTimeout(() => r('deadlock'), 300));
    expect(await Promise.race([a, watchdog])).toBe('a');
  });

  it('advance() never moves time backwards when another driver already went past its target', async () => {
    const clock = new VirtualClock();
    clock.setTimer(50, () => {}, undefined);
    const idle = clock.runUntilIdle(); // fires the timer at 50
    const adv = clock.advance(10); // target 10, computed at t=0
    await Promise.all([idle, adv]);
    expect(clock.now()).toBeGreaterThanOrEqual(50);
  });
});

/** A policy on the stage protocol whose `exit` throws on the first success (a defective interceptor). */
class ThrowingExit extends BasePolicy {
  readonly kind = 'probe';
  readonly name = 'probe';
  readonly stage: Stage;
  exits = 0;
  constructor() {
    super();
    const interceptor: Interceptor = {
      enter: () => undefined,
      exit: (_token, _ok, error) => {
        if (++this.exits === 1) throw new Error('exit blew up');
        return error;
      },
    };
    this.stage = { kind: 'intercept', interceptor };
  }
}

describe('D. an exit that throws on the success path, under retry', () => {
  const run = async (shape: 'nested' | 'fused' | 'fused+aggressive') => {
    const rt = virtualRuntime(1);
    const r = retry({ maxAttempts: 2, backoff: backoff.constant(0), runtime: rt });
    const probe = new ThrowingExit();
    const fn = () => Promise.resolve('ok');
    const program =
      shape === 'nested'
        ? () => r.execute(() => probe.execute(fn))
        : shape === 'fused'
          ? () => pipeline(r, probe).execute(fn)
          : () =>
              pipeline(r, probe, timeout({ after: 1000, strategy: 'aggressive', runtime: rt })).execute(fn);
    return rt.clock.run(() =>
      program().then(
        (v) => `resolved ${v}`,
        (e: Error) => `rejected ${e.message}`,
      ),
    );
  };

  it('nesting: retry sees the exit error as a failure and retries (reference behaviour)', async () => {
    expect(await run('nested')).toBe('resolved ok');
  });
  it('fused with an aggressive layer (Attempt): also retries', async () => {
    expect(await run('fused+aggressive')).toBe('resolved ok');
  });
  it('fused without an aggressive layer (DirectAttempt): must retry too', async () => {
    expect(await run('fused')).toBe('resolved ok');
  });
});

describe('E. a function returning an object whose `then` getter throws', () => {
  it('execute returns a rejected promise and gives the bulkhead permit back', async () => {
    const rt = virtualRuntime(1);
    const b = bulkhead({ limit: 1, runtime: rt });
    const hostile = {
      // biome-ignore lint/suspicious/noThenProperty: the point of the test is a hostile thenable
      get then(): never {
        throw new Error('then getter throws');
      },
    };
    let outcome: unknown;
    try {
      outcome = await b
        .execute(() => hostile as unknown as Promise<string>)
        .catch((e: Error) => `rejected ${e.message}`);
    } catch (e) {
      outcome = `threw synchronously: ${(e as Error).message}`;
    }
    expect({ outcome, active: b.active }).toEqual({ outcome: 'rejected then getter throws', active: 0 });
  });
});

describe('F. the shared uncancellable root signal', () => {
  it('abort listeners a library attaches to ctx.signal in one signal-less call do not pile up on later calls', async () => {
    const rt = virtualRuntime(1);
    const r = retry({ maxAttempts: 1, runtime: rt });
    const seen = new Set<AbortSignal>();
    for (let i = 0; i < 50; i++) {
      // Like undici's fetch on Node 20: a listener removed only when the request is garbage-collected.
      await r.execute(({ signal }) => {
        seen.add(signal);
        signal.addEventListener('abort', () => {});
        return 'ok';
      });
    }
    const [signal] = [...seen];
    // With a signal per call each call's listeners die with its signal; here all 50 calls share one signal.
    expect({
      signals: seen.size,
      listeners: getEventListeners(signal as AbortSignal, 'abort').length,
    }).toEqual({
      signals: 50,
      listeners: 1,
    });
  });
});

describe('G. ctx.signal first read after the call ended (timeout scope)', () => {
  it('does not leave a listener on the caller\u2019s long-lived signal', async () => {
    const rt = virtualRuntime(1);
    const t = timeout({ after: 1000, runtime: rt });
    const shutdown = new AbortController(); // one process-wide signal passed to every call
    for (let i = 0; i < 20; i++) {
      let ctx: { signal: AbortSignal } | undefined;
      await rt.clock.run(() =>
        t.execute((c) => {
          ctx = c;
          return Promise.resolve('ok');
        }, shutdown.signal),
      );
      void ctx?.signal.aborted; // e.g. a lazily consumed stream reads the signal after the value was returned
    }
    expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(0);
  });
});

describe('H. SystemTimerQueue keeps cancelled and fired timers\u2019 args alive', () => {
  it('a cancelled deadline does not keep its call (TimedCall -> Attempt -> fn closure) reachable', async () => {
    const v8 = await import('node:v8');
    const vm = await import('node:vm');
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const clock = new SystemClock();
    const queue = clock.timerQueue(20);
    const refs: WeakRef<object>[] = [];
    const control = new WeakRef({ payload: new Array(1000).fill(0) }); // never given to the queue
    // In a plain function, so that no suspended async frame holds the last `arg`.
    const fill = () => {
      for (let i = 0; i < 100; i++) {
        const arg = { payload: new Array(1000).fill(i) }; // stands for a TimedCall and everything it reaches
        refs.push(new WeakRef(arg));
        queue.setTimer(() => {}, arg).cancel();
      }
    };
    fill();
    await new Promise((r) => setTimeout(r, 60)); // several ticks: the queue is idle again
    gc();
    await new Promise((r) => setImmediate(r));
    gc();
    expect(control.deref()).toBeUndefined(); // gc really ran
    expect(refs.filter((r) => r.deref() !== undefined).length).toBe(0);
  });
});

describe('I. retry in a DirectAttempt segment: memory per attempt', () => {
  it('a long retry loop (maxAttempts large / Infinity) does not grow the heap with every attempt', async () => {
    const v8 = await import('node:v8');
    const vm = await import('node:vm');
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const rt = virtualRuntime(1);
    const N = 50_000;
    const r = retry({ maxAttempts: Number.POSITIVE_INFINITY, backoff: backoff.constant(0), runtime: rt });
    const heap = new Map<number, number>();
    await r.execute(({ attempt }) => {
      if (attempt === 1_000 || attempt === N) {
        gc();
        heap.set(attempt, process.memoryUsage().heapUsed);
      }
      return attempt < N ? Promise.reject(new Error('not yet')) : 'ok';
    });
    const grownMb = ((heap.get(N) as number) - (heap.get(1_000) as number)) / 1e6;
    // Each retry returns `wait.then(() => next.enterFrom(0))`, so attempt k's promise is resolved with
    // attempt k+1's: a chain of N pending promises (~190 B each) until the call ends.
    expect(grownMb).toBeLessThan(2);
  }, 60_000);
});

describe('J. SystemClock.setTimer beyond 2^31-1 ms', () => {
  it('does not fire early (a 30-day wait, e.g. rateLimit({ rate: 1, interval: "30d", mode: "wait" }))', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const clock = new SystemClock();
      let fired = false;
      clock.setTimer(
        30 * 86_400_000,
        () => {
          fired = true;
        },
        undefined,
      );
      vi.advanceTimersByTime(25 * 86_400_000);
      expect(fired).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Checked and found correct (these pass): kept as a record of what the review exercised.

const code = (r: Settled<unknown>) =>
  r.ok
    ? `ok:${String(r.value)}@${r.at}`
    : `${(r.error as { code?: string; message?: string }).code ?? (r.error as Error).message}@${r.at}`;

describe('checked, no bug found (passing)', () => {
  it('aggressive timeout abandons while inner bulkhead waiting', async () => {
    const rt = virtualRuntime(1);
    const b = bulkhead({ limit: 1, queue: 1, runtime: rt });
    const t = timeout({ after: 50, strategy: 'aggressive', runtime: rt });
    const hog = deferred<string>();
    const p = pipeline(t, b);
    const r = await settle(rt, async () => {
      const first = b.execute(() => hog.promise);
      const second = p.execute(() => 'x');
      rt.clock.setTimer(100, () => hog.resolve('h'), undefined);
      const res = await second.then(
        (v) => v,
        (e) => e.code,
      );
      await first;
      return `${res}|active=${b.active}|queued=${b.queued}`;
    });
    expect(code(r)).toBe('ok:TIMEOUT|active=0|queued=0@100');
  });

  it('retry + aggressive timeout + bulkhead: caller abort while queued', async () => {
    const rt = virtualRuntime(1);
    const b = bulkhead({ limit: 1, queue: 1, runtime: rt });
    const p = pipeline(
      retry({ maxAttempts: 3, backoff: backoff.constant(5), runtime: rt }),
      timeout({ after: 50, strategy: 'aggressive', runtime: rt }),
      b,
    );
    const hog = deferred<string>();
    const ac = new AbortController();
    const r = await settle(rt, async () => {
      const first = b.execute(() => hog.promise);
      rt.clock.setTimer(20, () => ac.abort('bye'), undefined);
      rt.clock.setTimer(200, () => hog.resolve('h'), undefined);
      const res = await p
        .execute(() => 'x', ac.signal)
        .then(
          (v) => v,
          (e) => `${e.code}@${rt.clock.now()}`,
        );
      await first;
      return `${res}|active=${b.active}|queued=${b.queued}`;
    });
    expect(code(r)).toBe('ok:CANCELLED@20|active=0|queued=0@200');
  });

  it('retry around rate limiter reject (enter throws, retryAfter honoured), fused vs nested', async () => {
    for (const shape of ['fused', 'nested']) {
      const rt = virtualRuntime(1);
      const rl = rateLimit({ rate: 1, interval: 100, runtime: rt });
      const rr = retry({ maxAttempts: 3, backoff: backoff.constant(1), runtime: rt });
      const fn = () => 'v';
      const r = await settle(rt, async () => {
        await rl.execute(fn);
        return shape === 'fused' ? pipeline(rr, rl).execute(fn) : rr.execute(() => rl.execute(fn));
      });
      expect(code(r)).toBe('ok:v@100');
    }
  });

  it('retryOnResult fused vs nested, with sync fn and thenable', async () => {
    for (const shape of ['fused', 'nested', 'fused-aggr']) {
      const rt = virtualRuntime(1);
      const rr = retry({
        maxAttempts: 3,
        backoff: backoff.constant(10),
        retryOnResult: (v) => v !== 3,
        runtime: rt,
      });
      const cb = circuitBreaker({ runtime: rt });
      const t = timeout({ after: 1000, strategy: 'aggressive', runtime: rt });
      let n = 0;
      const fn = () => {
        n++;
        // biome-ignore lint/suspicious/noThenProperty: a thenable that is not a Promise
        const thenable = { then: (res: (v: number) => void) => res(n) };
        return n === 2 ? (thenable as unknown as number) : n;
      };
      const r = await settle(rt, async () =>
        shape === 'fused'
          ? pipeline(rr, cb).execute(fn)
          : shape === 'nested'
            ? rr.execute(() => cb.execute(fn))
            : pipeline(rr, cb, t).execute(fn),
      );
      expect(code(r)).toBe('ok:3@20');
    }
  });

  it('nested pipelines', async () => {
    const rt = virtualRuntime(1);
    const inner = pipeline(
      retry({ maxAttempts: 2, backoff: backoff.constant(5), runtime: rt }),
      timeout({ after: 10, strategy: 'aggressive', runtime: rt }),
    );
    const outer = pipeline(
      fallback('fb', { runtime: rt }),
      retry({ maxAttempts: 2, backoff: backoff.constant(7), runtime: rt }),
      inner,
    );
    const r = await settle(rt, () => outer.execute(() => new Promise<string>(() => {})));
    // each inner: 10 + 5 + 10 = 25; outer: 25 + 7 + 25 = 57
    expect(code(r)).toBe('ok:fb@57');
  });

  it('hedge inside cooperative timeout rejects at deadline', async () => {
    const rt = virtualRuntime(1);
    const p = pipeline(
      timeout({ after: 100, runtime: rt }),
      hedge({ delay: 40, maxAttempts: 3, runtime: rt }),
    );
    const r = await settle(rt, () => p.execute(() => new Promise<string>(() => {})));
    expect(code(r)).toBe('TIMEOUT@100');
  });
});
