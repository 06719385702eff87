/**
 * Policies as they are written in files (lab scenarios, engine plans): zod schemas of their options, and
 * the builders that turn a validated entry into the policy. Internal: `bulwark/policy` does not export it,
 * so the policies themselves never pull in zod. The constructors still validate what they are given, so a
 * file is checked by the same rules as code (see `policyProblem`).
 */
import { z } from 'zod';
import { type Duration, toMs } from '../core/duration.js';
import type { Runtime } from '../core/runtime.js';
import { type Backoff, backoff as backoffs } from './backoff.js';
import { bulkhead } from './bulkhead.js';
import { circuitBreaker } from './circuit-breaker.js';
import { fallback } from './fallback.js';
import type { Policy } from './policy.js';
import { type RetryOptions, retry } from './retry.js';
import { timeout } from './timeout.js';

export const KNOWN = 'known keys: ';

/** A strict object whose unknown-key issue carries its known keys (for the did-you-mean). */
export function strict<S extends z.ZodRawShape>(shape: S) {
  const known = Object.keys(shape);
  return z
    .object(shape, {
      errorMap: (issue, ctx) =>
        issue.code === 'unrecognized_keys'
          ? { message: KNOWN + known.join(',') }
          : { message: ctx.defaultError },
    })
    .strict();
}

/** A strict object of which exactly one of `keys` (or at most one, when `optional`) must be present. */
export function oneKey<T extends Record<string, unknown>>(keys: readonly string[], optional = false) {
  return (value: T, ctx: z.RefinementCtx): void => {
    const present = keys.filter((k) => value[k] !== undefined);
    if (present.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [present[1] as string],
        message: `only one of ${keys.join(', ')} may be given (also got ${present[0]})`,
      });
    } else if (present.length === 0 && !optional) {
      ctx.addIssue({ code: 'custom', message: `expected one of ${keys.join(', ')}` });
    }
  };
}

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

/** A duration (ms or `'250ms'`), converted to ms; `positive` rejects 0. */
export function duration(positive = false) {
  return z.unknown().transform((value, ctx): number => {
    const expected = `a duration such as 250ms, 5s or a number of ms${positive ? ' (> 0)' : ''}`;
    if (value === undefined) {
      ctx.addIssue({ code: 'custom', message: `required: ${expected}` });
      return z.NEVER;
    }
    let ms: number | undefined;
    if (typeof value === 'number' || typeof value === 'string') {
      try {
        ms = toMs(value as Duration);
      } catch {
        ms = undefined;
      }
    }
    if (ms === undefined || (positive && ms <= 0)) {
      ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${describeValue(value)}` });
      return z.NEVER;
    }
    return ms;
  });
}

export const int = (min: number) =>
  z.number().int(`must be an integer >= ${min}`).min(min, `must be an integer >= ${min}`);
export const probability = z
  .number()
  .min(0, 'must be a probability in [0, 1]')
  .max(1, 'must be a probability in [0, 1]');

export const factor = z.number().min(1, 'must be a number >= 1').finite('must be a finite number >= 1');
export const BACKOFF_KINDS = ['constant', 'linear', 'exponential'] as const;
export const backoffSpec = strict({
  constant: duration().optional(),
  linear: strict({
    initial: duration().optional(),
    step: duration().optional(),
    max: duration().optional(),
  }).optional(),
  exponential: strict({
    initial: duration().optional(),
    factor: factor.optional(),
    max: duration().optional(),
  })
    .superRefine((value, ctx) => {
      if (value.max !== undefined && value.max < (value.initial ?? 100)) {
        ctx.addIssue({ code: 'custom', path: ['max'], message: 'must be >= initial' });
      }
    })
    .optional(),
  jitter: z.enum(['none', 'full', 'equal', 'decorrelated']).optional(),
}).superRefine(oneKey(BACKOFF_KINDS));

/** `retry` options: `{ maxAttempts, backoff, maxDelay }`. */
export const retrySpec = strict({
  maxAttempts: int(1).optional(),
  backoff: backoffSpec.optional(),
  maxDelay: duration().optional(),
});

/** `timeout` options: `{ after, strategy }`. */
export const timeoutSpec = strict({
  after: duration(true),
  strategy: z.enum(['cooperative', 'aggressive']).optional(),
});

/** `circuitBreaker` options. */
export const circuitBreakerSpec = strict({
  consecutiveFailures: int(1).optional(),
  failureRatio: z.number().gt(0, 'must be a ratio in (0, 1]').max(1, 'must be a ratio in (0, 1]').optional(),
  window: duration(true).optional(),
  buckets: int(1).optional(),
  minimumThroughput: int(1).optional(),
  halfOpenAfter: duration(true).optional(),
}).superRefine((value, ctx) => {
  if (value.consecutiveFailures !== undefined && value.failureRatio !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['failureRatio'],
      message: 'give consecutiveFailures, or failureRatio (with window), not both',
    });
  }
});

export const POLICY_KINDS = ['retry', 'timeout', 'circuitBreaker', 'bulkhead', 'fallback'] as const;
/** One policy of a list: a map with exactly one of the {@link POLICY_KINDS} as its key. */
export const policyEntry = strict({
  retry: retrySpec.optional(),
  timeout: timeoutSpec.optional(),
  circuitBreaker: circuitBreakerSpec.optional(),
  bulkhead: strict({ limit: int(1).optional(), queue: int(0).optional() }).optional(),
  fallback: strict({ value: z.unknown() })
    .superRefine((value, ctx) => {
      if (!('value' in value)) ctx.addIssue({ code: 'custom', message: 'required: value' });
    })
    .optional(),
}).superRefine(oneKey(POLICY_KINDS));

/** A policy entry as written (after validation; durations in ms). */
export type PolicyEntry = z.infer<typeof policyEntry>;
export type BackoffSpec = z.infer<typeof backoffSpec>;

export function buildBackoff(spec: BackoffSpec): Backoff {
  let result: Backoff;
  if (spec.constant !== undefined) result = backoffs.constant(spec.constant);
  else if (spec.linear !== undefined) result = backoffs.linear(defined(spec.linear));
  else result = backoffs.exponential(defined(spec.exponential ?? {}));
  return spec.jitter === undefined ? result : result.withJitter(spec.jitter);
}

/** `value` without its undefined properties (for `exactOptionalPropertyTypes`). */
export function defined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as never;
}

/** The retry options a `retry` entry stands for (without name and runtime). */
export function retryOptions(spec: z.infer<typeof retrySpec>): RetryOptions {
  const { backoff, ...rest } = spec;
  return { ...defined(rest), ...(backoff === undefined ? {} : { backoff: buildBackoff(backoff) }) };
}

export function buildPolicy(entry: PolicyEntry, name: string, runtime: Runtime): Policy {
  if (entry.retry !== undefined) return retry({ ...retryOptions(entry.retry), name, runtime });
  if (entry.timeout !== undefined) return timeout({ ...defined(entry.timeout), name, runtime });
  if (entry.circuitBreaker !== undefined) {
    return circuitBreaker({ ...defined(entry.circuitBreaker), name, runtime });
  }
  if (entry.bulkhead !== undefined) return bulkhead({ ...defined(entry.bulkhead), name, runtime });
  const value = (entry.fallback as { value: unknown }).value;
  return fallback(() => value, { name, runtime });
}

export function policyKind(entry: object): string {
  return Object.keys(entry).find((k) => (entry as Record<string, unknown>)[k] !== undefined) ?? '?';
}
