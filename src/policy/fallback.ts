/**
 * Fallback: when the call fails with an error it handles, return a substitute value instead.
 */
import type { Clock } from '../core/clock.js';
import { isBulwarkError } from '../core/errors.js';
import { CALL_OUTCOME_INDEX, type CallOutcome, type EventSink, type SourceEvents } from '../core/events.js';
import type { Call, PolicyContext } from './context.js';
import { commonOptions, functionOption, knownKeys } from './options.js';
import type { Next, PolicyOptions, Stage } from './policy.js';
import { BasePolicy } from './runner.js';

/** Computes the substitute from the error and the call's context. */
export type FallbackFunction<F> = (error: unknown, ctx: PolicyContext) => F | PromiseLike<F>;

export interface FallbackOptions extends PolicyOptions {
  /**
   * Which errors the fallback replaces. Errors it does not handle are rethrown untouched.
   * @defaultValue every error except a `CancelledError` (a cancelled call is not given a substitute)
   */
  handles?: (error: unknown) => boolean;
}

const WHERE = 'fallback';

function notCancelled(error: unknown): boolean {
  return !isBulwarkError(error, 'CANCELLED');
}

/**
 * Replaces the failure of a call with a value. See {@link fallback}.
 */
export class FallbackPolicy<F = unknown> extends BasePolicy {
  readonly kind = 'fallback';
  readonly name: string;
  readonly stage: Stage;
  private readonly handles: (error: unknown) => boolean;
  private readonly produce: FallbackFunction<F> | undefined;
  private readonly value: F | undefined;
  private readonly clock: Clock;
  private readonly events: EventSink;
  private readonly calls: SourceEvents;

  constructor(valueOrFn: F | FallbackFunction<F>, options: FallbackOptions = {}) {
    super();
    knownKeys(WHERE, options, ['handles']);
    const { name, runtime } = commonOptions(WHERE, options);
    this.name = name;
    this.handles =
      functionOption<(error: unknown) => boolean>(WHERE, 'handles', options.handles) ?? notCancelled;
    if (typeof valueOrFn === 'function') {
      this.produce = valueOrFn as FallbackFunction<F>;
      this.value = undefined;
    } else {
      this.produce = undefined;
      this.value = valueOrFn;
    }
    this.clock = runtime.clock;
    this.events = runtime.events;
    this.calls = runtime.events.source(name, this.kind);
    this.stage = { kind: 'wrap', run: (next, call) => this.guard(next, call) };
    if (this.events.wants('policy.created')) {
      this.events.emit({ type: 'policy.created', source: name, at: this.clock.now(), kind: this.kind });
    }
  }

  private async guard<T>(next: Next<T>, call: Call): Promise<T> {
    const startedAt = this.events.wants('call') ? this.clock.now() : -1;
    let result: T;
    try {
      result = await next(call);
    } catch (error) {
      return this.recover<T>(error, call, startedAt);
    }
    if (startedAt >= 0) this.report(startedAt, 'success', undefined);
    return result;
  }

  private async recover<T>(error: unknown, call: Call, startedAt: number): Promise<T> {
    let handled: boolean;
    try {
      handled = this.handles(error);
    } catch (predicateError) {
      if (startedAt >= 0) this.report(startedAt, 'failure', predicateError);
      throw predicateError;
    }
    if (!handled) {
      if (startedAt >= 0) {
        this.report(startedAt, isBulwarkError(error, 'CANCELLED') ? 'cancelled' : 'failure', error);
      }
      throw error;
    }
    const events = this.events;
    if (events.wants('fallback.used')) {
      events.emit({ type: 'fallback.used', source: this.name, at: this.clock.now(), error });
    }
    let substitute: F;
    try {
      substitute = this.produce === undefined ? (this.value as F) : await this.produce(error, call);
    } catch (fallbackError) {
      if (startedAt >= 0) this.report(startedAt, 'failure', fallbackError);
      throw fallbackError;
    }
    if (startedAt >= 0) this.report(startedAt, 'fallback', error);
    // The substitute stands in for the call's result; its type is the caller's promise (see `fallback`).
    return substitute as unknown as T;
  }

  private report(startedAt: number, outcome: CallOutcome, error: unknown): void {
    if (!this.events.wants('call')) return;
    const at = this.clock.now();
    this.calls.call(at, CALL_OUTCOME_INDEX[outcome], at - startedAt, error);
  }
}

/**
 * Returns `valueOrFn` instead of failing: a fixed value, or a function of the error and the call
 * context (sync or async). Errors that `handles` rejects (by default only `CancelledError`) pass
 * through untouched; an error thrown by the fallback function propagates.
 *
 * A fallback value that is itself a function must be wrapped: `fallback(() => myFunction)`.
 * The substitute should have the type the protected function returns: `execute` is typed by the function.
 *
 * @example
 * const cached = fallback((error) => cache.get(key) ?? Promise.reject(error));
 * const price = await pipeline(cached, retry(), timeout('1s')).execute(() => fetchPrice(key));
 *
 * fallback([], { handles: (e) => isBulwarkError(e, 'CIRCUIT_OPEN') });
 */
export function fallback<F>(
  valueOrFn: F | FallbackFunction<F>,
  options?: FallbackOptions,
): FallbackPolicy<F> {
  return new FallbackPolicy<F>(valueOrFn, options);
}
