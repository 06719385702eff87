/**
 * Compiles stages into executors. Consecutive interceptors (and at most one retry loop around them)
 * become one `Segment`: one async frame per call however many policies it holds.
 */
import { CancelledError } from '../core/errors.js';
import { Call } from './context.js';
import type { Interceptor, Policy, RetryLoop, Stage, Task } from './policy.js';

/** Runs `fn` through the compiled layers. */
export type Executor = <T>(fn: Task<T>, call: Call) => Promise<T>;

type Wrap = Extract<Stage, { kind: 'wrap' }>;

function invoke<T>(fn: Task<T>, call: Call): Promise<T> {
  try {
    const result = fn(call);
    return result instanceof Promise ? result : Promise.resolve(result);
  } catch (error) {
    return Promise.reject(error);
  }
}

const NO_TOKENS: unknown[] = [];

class Segment {
  private readonly count: number;
  private readonly raceWith: Interceptor | undefined;

  constructor(
    private readonly loop: RetryLoop | undefined,
    private readonly interceptors: readonly Interceptor[],
    private readonly next: Executor | undefined,
  ) {
    this.count = interceptors.length;
    const last = interceptors[interceptors.length - 1];
    this.raceWith = last?.race === undefined ? undefined : last;
  }

  readonly run = async <T>(fn: Task<T>, call: Call): Promise<T> => {
    const { loop, interceptors, count, next } = this;
    // A retry loop numbers its own attempts from 1; without one, the caller's numbering passes through.
    let attempt = loop === undefined ? call.attempt : 1;
    let state: unknown;
    let current = loop === undefined || call.attempt === 1 ? call : new Call(call.scope, 1);
    for (;;) {
      const tokens = count === 0 ? NO_TOKENS : new Array<unknown>(count);
      let entered = 0;
      let result: T;
      try {
        let inner = current;
        for (; entered < count; entered++) {
          const interceptor = interceptors[entered] as Interceptor;
          let token = interceptor.enter(inner);
          if (token instanceof Promise) token = await token;
          tokens[entered] = token;
          if (interceptor.inner !== undefined) inner = interceptor.inner(token, inner);
        }
        let pending: T | PromiseLike<T> = next === undefined ? fn(inner) : next(fn, inner);
        const raceWith = this.raceWith;
        if (raceWith !== undefined) {
          pending = raceWith.race!(
            tokens[count - 1],
            pending instanceof Promise ? pending : Promise.resolve(pending),
          );
        }
        result = await pending;
      } catch (thrown) {
        let error = thrown;
        for (let i = entered - 1; i >= 0; i--)
          error = (interceptors[i] as Interceptor).exit(tokens[i], false, error);
        if (loop === undefined) throw error;
        const step = loop.afterFailure(error, false, attempt, state, call.scope);
        if (step === undefined) throw error;
        state = step;
        await loop.wait(step.delay, call.scope);
        current = new Call(call.scope, ++attempt);
        continue;
      }
      for (let i = count - 1; i >= 0; i--) (interceptors[i] as Interceptor).exit(tokens[i], true, undefined);
      if (loop === undefined || loop.retryResult === undefined || !loop.retryResult(result)) return result;
      const step = loop.afterFailure(result, true, attempt, state, call.scope);
      if (step === undefined) return result;
      state = step;
      await loop.wait(step.delay, call.scope);
      current = new Call(call.scope, ++attempt);
    }
  };
}

function flatten(stage: Stage, out: Exclude<Stage, { kind: 'pipeline' }>[]): void {
  if (stage.kind === 'pipeline') for (const s of stage.stages) flatten(s, out);
  else out.push(stage);
}

type Part =
  | { kind: 'segment'; loop: RetryLoop | undefined; interceptors: Interceptor[] }
  | { kind: 'wrap'; stage: Wrap };

/** Compiles a stage (possibly a whole pipeline) into one executor. */
export function compile(stage: Stage): Executor {
  const stages: Exclude<Stage, { kind: 'pipeline' }>[] = [];
  flatten(stage, stages);
  const parts: Part[] = [];
  let open: Extract<Part, { kind: 'segment' }> | undefined;
  for (const s of stages) {
    if (s.kind === 'wrap') {
      open = undefined;
      parts.push({ kind: 'wrap', stage: s });
    } else if (s.kind === 'loop') {
      open = { kind: 'segment', loop: s.loop, interceptors: [] };
      parts.push(open);
    } else {
      if (open === undefined) {
        open = { kind: 'segment', loop: undefined, interceptors: [] };
        parts.push(open);
      }
      open.interceptors.push(s.interceptor);
      // Layers inside an aggressive interceptor must see the real settlement, not the race.
      if (s.interceptor.race !== undefined) open = undefined;
    }
  }
  let next: Executor | undefined;
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i] as Part;
    if (part.kind === 'segment') {
      next = new Segment(part.loop, part.interceptors, next).run;
    } else {
      const inner = next;
      const wrap = part.stage;
      next =
        inner === undefined
          ? <T>(fn: Task<T>, call: Call) => wrap.run<T>((c) => invoke(fn, c), call)
          : <T>(fn: Task<T>, call: Call) => wrap.run<T>((c) => inner(fn, c), call);
    }
  }
  return next ?? (<T>(fn: Task<T>, call: Call) => invoke(fn, call));
}

/** Runs a compiled executor as a policy's `execute`. */
export function executeWith<T>(executor: Executor, fn: Task<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return executor(fn, Call.root(undefined));
  if (signal.aborted) return Promise.reject(new CancelledError(signal.reason));
  const call = Call.root(signal);
  return executor(fn, call).finally(() => call.scope.dispose());
}

/**
 * Base of the built-in policies: `execute` compiles the policy's own stage once, on first use.
 */
export abstract class BasePolicy implements Policy {
  abstract readonly name: string;
  abstract readonly kind: string;
  abstract readonly stage: Stage;
  private executor: Executor | undefined;

  execute<T>(fn: Task<T>, signal?: AbortSignal): Promise<T> {
    if (this.executor === undefined) this.executor = compile(this.stage);
    return executeWith(this.executor, fn, signal);
  }
}

export function isPolicy(value: unknown): value is Policy {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Policy).execute === 'function' &&
    typeof (value as Policy).stage === 'object'
  );
}
