/**
 * Compiles stages into executors. Consecutive interceptors (and at most one retry loop around them)
 * become one `Segment`: one promise per call however many policies it holds.
 */
import { CancelledError } from '../core/errors.js';
import { Call } from './context.js';
import type { AbandonTarget, Interceptor, Policy, RetryLoop, Stage, Task } from './policy.js';

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

/**
 * One attempt of one call through a segment: the caller's promise, the retry loop, and the layers the
 * attempt entered. A segment costs the caller one promise whatever it holds; an aggressive timeout
 * settles that same promise early instead of racing a second one.
 *
 * Layers `[low, entered)` are waiting for the inner call to settle; layers below `low` have exited
 * already because an aggressive layer abandoned the attempt.
 */
class Attempt<T> implements AbandonTarget {
  readonly tokens: unknown[];
  entered = 0;
  low = 0;
  settled = false;
  inner: Call;

  constructor(
    readonly segment: Segment,
    readonly fn: Task<T>,
    /** The call the segment was given (its scope is the caller's). */
    readonly call: Call,
    readonly resolve: (value: T) => void,
    readonly reject: (error: unknown) => void,
    readonly attempt: number,
    readonly state: unknown,
    current: Call,
  ) {
    const count = segment.count;
    this.tokens = count === 0 ? NO_TOKENS : new Array<unknown>(count);
    this.inner = current;
  }

  enterFrom(first: number): void {
    const interceptors = this.segment.interceptors;
    const count = interceptors.length;
    for (let i = first; i < count; i++) {
      if (this.low > 0) {
        // Abandoned while an inner layer was waiting to enter: do not start the call.
        this.settle(false, this.abandonReason());
        return;
      }
      let token: unknown;
      try {
        token = (interceptors[i] as Interceptor).enter(this.inner);
      } catch (error) {
        this.settle(false, error);
        return;
      }
      if (token instanceof Promise) {
        token.then(
          (admitted: unknown) => {
            this.admit(i, admitted);
            this.enterFrom(i + 1);
          },
          (error: unknown) => this.settle(false, error),
        );
        return;
      }
      this.admit(i, token);
    }
    if (this.low > 0) {
      this.settle(false, this.abandonReason());
      return;
    }
    this.invoke();
  }

  private abandonReason(): unknown {
    const scope = this.inner.scope;
    return scope.isAborted() ? scope.reason : new CancelledError();
  }

  private admit(layer: number, token: unknown): void {
    const interceptor = this.segment.interceptors[layer] as Interceptor;
    this.tokens[layer] = token;
    this.entered = layer + 1;
    if (interceptor.inner !== undefined) this.inner = interceptor.inner(token, this.inner);
    if (interceptor.arm !== undefined) interceptor.arm(token, this, layer);
  }

  private invoke(): void {
    const { fn, segment } = this;
    let pending: T | PromiseLike<T>;
    try {
      pending = segment.next === undefined ? fn(this.inner) : segment.next(fn, this.inner);
    } catch (error) {
      this.settle(false, error);
      return;
    }
    if (pending instanceof Promise) {
      pending.then(
        (value: T) => this.settle(true, value),
        (error: unknown) => this.settle(false, error),
      );
    } else if (
      pending !== null &&
      typeof pending === 'object' &&
      typeof (pending as PromiseLike<T>).then === 'function'
    ) {
      Promise.resolve(pending).then(
        (value: T) => this.settle(true, value),
        (error: unknown) => this.settle(false, error),
      );
    } else {
      this.settle(true, pending);
    }
  }

  /** The inner call really settled (or an inner layer refused it): exit the layers still waiting. */
  settle(ok: boolean, outcome: unknown): void {
    if (this.settled) return;
    this.settled = true;
    const attached = this.low === 0;
    const error = this.exitLayers(this.entered - 1, this.low, ok, outcome);
    this.low = this.entered;
    if (!attached) return;
    if (error === OK) this.finish(true, outcome);
    else this.finish(false, error);
  }

  abandon(layer: number, error: unknown): void {
    if (this.settled || layer < this.low || layer >= this.entered) return;
    const attached = this.low === 0;
    const propagated = this.exitLayers(layer, this.low, false, error);
    this.low = layer + 1;
    if (attached) this.finish(false, propagated);
  }

  private exitLayers(from: number, to: number, ok: boolean, outcome: unknown): unknown {
    return exitLayers(this.segment.interceptors, this.tokens, from, to, ok, outcome);
  }

  /** The attempt ended for the caller: return, reject, or start the next attempt. */
  private finish(ok: boolean, outcome: unknown): void {
    const loop = this.segment.loop;
    if (loop === undefined) {
      if (ok) this.resolve(outcome as T);
      else this.reject(outcome);
      return;
    }
    let step: { readonly delay: number } | undefined;
    try {
      if (ok && (loop.retryResult === undefined || !loop.retryResult(outcome))) {
        this.resolve(outcome as T);
        return;
      }
      step = loop.afterFailure(outcome, ok, this.attempt, this.state, this.call.scope);
    } catch (error) {
      this.reject(error);
      return;
    }
    if (step === undefined) {
      if (ok) this.resolve(outcome as T);
      else this.reject(outcome);
      return;
    }
    const scope = this.call.scope;
    const attempt = this.attempt + 1;
    loop.wait(step.delay, scope).then(
      () =>
        new Attempt(
          this.segment,
          this.fn,
          this.call,
          this.resolve,
          this.reject,
          attempt,
          step,
          new Call(scope, attempt),
        ).enterFrom(0),
      (error: unknown) => this.reject(error),
    );
  }
}

/** Exits layers `from` down to `to` (inclusive); returns OK or the error to propagate. */
function exitLayers(
  interceptors: readonly Interceptor[],
  tokens: unknown[],
  from: number,
  to: number,
  ok: boolean,
  outcome: unknown,
): unknown {
  let error: unknown = ok ? OK : outcome;
  for (let i = from; i >= to; i--) {
    const interceptor = interceptors[i] as Interceptor;
    try {
      if (error === OK) interceptor.exit(tokens[i], true, undefined);
      else error = interceptor.exit(tokens[i], false, error);
    } catch (thrown) {
      // Interceptors must not throw from exit; if one does, its error replaces the outcome.
      error = thrown;
    }
  }
  return error;
}

/**
 * The attempt of a segment with no aggressive layer: nothing can settle the caller before the inner call
 * does, so the caller's promise is the inner promise's `then` — two promises per call instead of three.
 */
class DirectAttempt<T> {
  readonly tokens: unknown[];
  entered = 0;
  inner: Call;

  constructor(
    readonly segment: Segment,
    readonly fn: Task<T>,
    readonly call: Call,
    readonly attempt: number,
    readonly state: unknown,
    current: Call,
  ) {
    const count = segment.count;
    this.tokens = count === 0 ? NO_TOKENS : new Array<unknown>(count);
    this.inner = current;
  }

  enterFrom(first: number): Promise<T> {
    const interceptors = this.segment.interceptors;
    const count = interceptors.length;
    for (let i = first; i < count; i++) {
      const interceptor = interceptors[i] as Interceptor;
      let token: unknown;
      try {
        token = interceptor.enter(this.inner);
      } catch (error) {
        return this.failed(error);
      }
      if (token instanceof Promise) {
        return token.then(
          (admitted: unknown) => {
            this.admit(interceptor, i, admitted);
            return this.enterFrom(i + 1);
          },
          (error: unknown) => this.failed(error),
        );
      }
      this.admit(interceptor, i, token);
    }
    let pending: T | PromiseLike<T>;
    try {
      pending =
        this.segment.next === undefined ? this.fn(this.inner) : this.segment.next(this.fn, this.inner);
    } catch (error) {
      return this.failed(error);
    }
    if (pending instanceof Promise) {
      return pending.then(
        (value: T) => this.succeeded(value),
        (error: unknown) => this.failed(error),
      );
    }
    if (
      pending !== null &&
      typeof pending === 'object' &&
      typeof (pending as PromiseLike<T>).then === 'function'
    ) {
      return Promise.resolve(pending).then(
        (value: T) => this.succeeded(value),
        (error: unknown) => this.failed(error),
      );
    }
    try {
      return Promise.resolve(this.succeeded(pending as T));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private admit(interceptor: Interceptor, layer: number, token: unknown): void {
    this.tokens[layer] = token;
    this.entered = layer + 1;
    if (interceptor.inner !== undefined) this.inner = interceptor.inner(token, this.inner);
  }

  private succeeded(value: T): T | Promise<T> {
    const error = exitLayers(this.segment.interceptors, this.tokens, this.entered - 1, 0, true, value);
    if (error !== OK) throw error;
    const loop = this.segment.loop;
    if (loop === undefined || loop.retryResult === undefined || !loop.retryResult(value)) return value;
    const step = loop.afterFailure(value, true, this.attempt, this.state, this.call.scope);
    return step === undefined ? value : this.retry(step);
  }

  private failed(thrown: unknown): Promise<T> {
    const error = exitLayers(this.segment.interceptors, this.tokens, this.entered - 1, 0, false, thrown);
    const loop = this.segment.loop;
    if (loop === undefined) return Promise.reject(error);
    let step: { readonly delay: number } | undefined;
    try {
      step = loop.afterFailure(error, false, this.attempt, this.state, this.call.scope);
    } catch (decisionError) {
      return Promise.reject(decisionError);
    }
    return step === undefined ? Promise.reject(error) : this.retry(step);
  }

  private retry(step: { readonly delay: number }): Promise<T> {
    const scope = this.call.scope;
    const attempt = this.attempt + 1;
    return this.segment
      .loop!.wait(step.delay, scope)
      .then(() =>
        new DirectAttempt<T>(
          this.segment,
          this.fn,
          this.call,
          attempt,
          step,
          new Call(scope, attempt),
        ).enterFrom(0),
      );
  }
}

const OK: unique symbol = Symbol('ok');
const NO_TOKENS: unknown[] = [];

class Segment {
  readonly count: number;
  readonly run: Executor;

  constructor(
    readonly loop: RetryLoop | undefined,
    readonly interceptors: readonly Interceptor[],
    readonly next: Executor | undefined,
  ) {
    this.count = interceptors.length;
    this.run = interceptors.some((i) => i.arm !== undefined) ? this.runAbandonable : this.runDirect;
  }

  private readonly runDirect = <T>(fn: Task<T>, call: Call): Promise<T> => {
    // A retry loop numbers its own attempts from 1; without one, the caller's numbering passes through.
    const looped = this.loop !== undefined;
    const current = !looped || call.attempt === 1 ? call : new Call(call.scope, 1);
    return new DirectAttempt<T>(this, fn, call, looped ? 1 : call.attempt, undefined, current).enterFrom(0);
  };

  private readonly runAbandonable = <T>(fn: Task<T>, call: Call): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      // A retry loop numbers its own attempts from 1; without one, the caller's numbering passes through.
      const looped = this.loop !== undefined;
      const current = !looped || call.attempt === 1 ? call : new Call(call.scope, 1);
      new Attempt<T>(
        this,
        fn,
        call,
        resolve,
        reject,
        looped ? 1 : call.attempt,
        undefined,
        current,
      ).enterFrom(0);
    });
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
