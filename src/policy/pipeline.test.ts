import { describe, expect, it } from 'vitest';
import { CancelledError, isBulwarkError } from '../core/errors.js';
import { virtualRuntime } from '../core/runtime.js';
import { Call, waitInScope } from './context.js';
import { pipeline } from './pipeline.js';
import type { Interceptor, Next, Policy, RetryLoop, Stage } from './policy.js';
import { BasePolicy } from './runner.js';

/** Test policies built directly on the stage protocol, recording what the runner does. */
class Probe extends BasePolicy {
  readonly kind = 'probe';
  readonly stage: Stage;
  constructor(
    readonly name: string,
    log: string[],
    options: { reject?: boolean; wait?: boolean; mapError?: (e: unknown) => unknown } = {},
  ) {
    super();
    const interceptor: Interceptor<string> = {
      enter: (call) => {
        log.push(`${name}.enter#${call.attempt}`);
        if (options.reject) throw new Error(`${name} rejects`);
        if (options.wait) return Promise.resolve(`${name}-token`);
        return `${name}-token`;
      },
      exit: (token, ok, error) => {
        log.push(`${name}.exit(${token},${ok ? 'ok' : String(error)})`);
        return options.mapError && !ok ? options.mapError(error) : error;
      },
    };
    this.stage = { kind: 'intercept', interceptor };
  }
}

class Loop extends BasePolicy {
  readonly kind = 'loop';
  readonly name = 'loop';
  readonly stage: Stage;
  constructor(maxAttempts: number, log: string[], retryResult?: (r: unknown) => boolean) {
    super();
    const rt = virtualRuntime(1);
    const loop: RetryLoop<{ delay: number }> = {
      afterFailure: (outcome, isResult, attempt) => {
        log.push(`loop.after#${attempt}(${isResult ? 'result' : 'error'}:${String(outcome)})`);
        return attempt < maxAttempts ? { delay: 0 } : undefined;
      },
      retryResult,
      wait: (delay, scope) => waitInScope(rt.clock, delay, scope).then(() => undefined),
    };
    this.stage = { kind: 'loop', loop: loop as RetryLoop };
    // run the virtual clock's zero-delay timers as they come
    const pump = () => rt.clock.runUntilIdle();
    this.pump = pump;
  }
  pump: () => Promise<void>;
}

class Wrapper extends BasePolicy {
  readonly kind = 'wrap';
  readonly stage: Stage;
  constructor(
    readonly name: string,
    log: string[],
  ) {
    super();
    this.stage = {
      kind: 'wrap',
      run: async <T>(next: Next<T>, call: Call): Promise<T> => {
        log.push(`${name}.before#${call.attempt}`);
        try {
          return await next(call);
        } finally {
          log.push(`${name}.after`);
        }
      },
    };
  }
}

describe('pipeline', () => {
  it('runs interceptors outermost first and exits innermost first, as nesting would', async () => {
    const log: string[] = [];
    const p = pipeline(new Probe('a', log), new Probe('b', log, { wait: true }), new Probe('c', log));
    const result = await p.execute(() => {
      log.push('fn');
      return 42;
    });
    expect(result).toBe(42);
    expect(log).toEqual([
      'a.enter#1',
      'b.enter#1',
      'c.enter#1',
      'fn',
      'c.exit(c-token,ok)',
      'b.exit(b-token,ok)',
      'a.exit(a-token,ok)',
    ]);
  });

  it('a rejecting interceptor exits only the layers it entered', async () => {
    const log: string[] = [];
    const p = pipeline(new Probe('a', log), new Probe('b', log, { reject: true }), new Probe('c', log));
    await expect(p.execute(() => 'never')).rejects.toThrow('b rejects');
    expect(log).toEqual(['a.enter#1', 'b.enter#1', 'a.exit(a-token,Error: b rejects)']);
  });

  it('errors pass outward through each exit, which may replace them', async () => {
    const log: string[] = [];
    const p = pipeline(
      new Probe('outer', log),
      new Probe('inner', log, { mapError: () => new Error('mapped') }),
    );
    await expect(
      p.execute(() => {
        throw new Error('sync throw');
      }),
    ).rejects.toThrow('mapped');
    expect(log.at(-1)).toBe('outer.exit(outer-token,Error: mapped)');
  });

  it('a loop re-runs the interceptors inside it with increasing attempts', async () => {
    const log: string[] = [];
    const loop = new Loop(3, log);
    const p = pipeline(new Probe('out', log), loop, new Probe('in', log));
    let calls = 0;
    const running = p.execute(async ({ attempt }) => {
      calls++;
      if (attempt < 3) throw new Error(`fail${attempt}`);
      return attempt;
    });
    await loop.pump();
    expect(await running).toBe(3);
    expect(calls).toBe(3);
    expect(log).toEqual([
      'out.enter#1',
      'in.enter#1',
      'in.exit(in-token,Error: fail1)',
      'loop.after#1(error:Error: fail1)',
      'in.enter#2',
      'in.exit(in-token,Error: fail2)',
      'loop.after#2(error:Error: fail2)',
      'in.enter#3',
      'in.exit(in-token,ok)',
      'out.exit(out-token,ok)',
    ]);
  });

  it('a loop retries results its predicate rejects, and returns the last one when it gives up', async () => {
    const log: string[] = [];
    const loop = new Loop(2, log, (r) => r === 'bad');
    const running = loop.execute(() => 'bad');
    await loop.pump();
    expect(await running).toBe('bad');
    expect(log).toEqual(['loop.after#1(result:bad)', 'loop.after#2(result:bad)']);
  });

  it('wrap stages nest around the fused segments', async () => {
    const log: string[] = [];
    const p = pipeline(new Probe('a', log), new Wrapper('w', log), new Probe('b', log));
    await p.execute(() => {
      log.push('fn');
    });
    expect(log).toEqual([
      'a.enter#1',
      'w.before#1',
      'b.enter#1',
      'fn',
      'b.exit(b-token,ok)',
      'w.after',
      'a.exit(a-token,ok)',
    ]);
  });

  it('nested pipelines flatten, and a pipeline is itself a policy', async () => {
    const log: string[] = [];
    const inner: Policy = pipeline(new Probe('b', log), new Probe('c', log));
    const outer = pipeline(new Probe('a', log), inner);
    expect(outer.kind).toBe('pipeline');
    await outer.execute(() => 1);
    expect(log.filter((l) => l.includes('enter'))).toEqual(['a.enter#1', 'b.enter#1', 'c.enter#1']);
  });

  it('passes the caller signal through, lazily', async () => {
    const controller = new AbortController();
    const p = pipeline(new Probe('a', []));
    const seen = await p.execute(({ signal }) => signal, controller.signal);
    expect(seen).toBe(controller.signal);
    const own = await p.execute(({ signal }) => signal);
    expect(own).toBeInstanceOf(AbortSignal);
    expect(own.aborted).toBe(false);
  });

  it('rejects at once with CancelledError when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort('stop');
    let ran = false;
    const error = await pipeline(new Probe('a', []))
      .execute(() => {
        ran = true;
      }, controller.signal)
      .catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(error).toBeInstanceOf(CancelledError);
    expect(isBulwarkError(error, 'CANCELLED')).toBe(true);
    expect((error as CancelledError).cause).toBe('stop');
  });

  it('rejects arguments that are not policies', () => {
    expect(() => pipeline({} as unknown as Policy)).toThrow(/argument 0 is not a Bulwark policy/);
  });

  it('an empty pipeline just runs the function', async () => {
    expect(await pipeline().execute(async () => 'x')).toBe('x');
    await expect(
      pipeline().execute(() => {
        throw new Error('e');
      }),
    ).rejects.toThrow('e');
  });

  it('exposes Call as the context', async () => {
    const ctx = await pipeline(new Probe('a', [])).execute((c) => c);
    expect(ctx).toBeInstanceOf(Call);
    expect(ctx.attempt).toBe(1);
  });
});
