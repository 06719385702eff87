/**
 * Validation of policy options. Bad options throw a `TypeError` at construction naming the option,
 * the value and the accepted range.
 */
import { type Duration, toMs } from '../core/duration.js';
import { type Runtime, systemRuntime } from '../core/runtime.js';
import type { PolicyOptions } from './policy.js';

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}

export function invalid(where: string, option: string, value: unknown, accepted: string): TypeError {
  return new TypeError(`${where}: option "${option}" must be ${accepted}, got ${show(value)}`);
}

/** An integer in [min, max] (max may be Infinity), or the default when undefined. */
export function intOption(
  where: string,
  option: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
): number {
  if (value === undefined) return fallback;
  const ok =
    typeof value === 'number' &&
    (Number.isInteger(value) || value === Number.POSITIVE_INFINITY) &&
    value >= min &&
    value <= max;
  if (!ok) {
    throw invalid(
      where,
      option,
      value,
      max === Number.POSITIVE_INFINITY ? `an integer >= ${min}` : `an integer from ${min} to ${max}`,
    );
  }
  return value;
}

/** A finite number in [min, max], or the default when undefined. */
export function numberOption(
  where: string,
  option: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
  exclusiveMin = false,
): number {
  if (value === undefined) return fallback;
  const ok =
    typeof value === 'number' &&
    !Number.isNaN(value) &&
    (exclusiveMin ? value > min : value >= min) &&
    value <= max;
  if (!ok) {
    const low = exclusiveMin ? `> ${min}` : `>= ${min}`;
    throw invalid(
      where,
      option,
      value,
      max === Number.POSITIVE_INFINITY ? `a number ${low}` : `a number ${low} and <= ${max}`,
    );
  }
  return value;
}

/** A ratio in [0, 1] (or (0, 1] with `exclusiveZero`), or the default when undefined. */
export function ratioOption(
  where: string,
  option: string,
  value: unknown,
  fallback: number,
  exclusiveZero = false,
): number {
  if (value === undefined) return fallback;
  const ok = typeof value === 'number' && (exclusiveZero ? value > 0 : value >= 0) && value <= 1;
  if (!ok) throw invalid(where, option, value, exclusiveZero ? 'a ratio in (0, 1]' : 'a ratio in [0, 1]');
  return value;
}

/** A duration (ms number or string like '5s') >= min, in ms, or the default when undefined. */
export function durationOption(
  where: string,
  option: string,
  value: unknown,
  fallback: number,
  min = 0,
  exclusiveMin = false,
): number {
  if (value === undefined) return fallback;
  let ms: number;
  try {
    ms = toMs(value as Duration, `${where}: option "${option}"`);
  } catch (error) {
    if (typeof value === 'number') {
      throw invalid(
        where,
        option,
        value,
        `a duration ${exclusiveMin ? '>' : '>='} ${min}ms (a number of ms or a string like '250ms')`,
      );
    }
    throw error;
  }
  if (exclusiveMin ? ms <= min : ms < min) {
    throw invalid(where, option, value, `a duration ${exclusiveMin ? '>' : '>='} ${min}ms`);
  }
  return ms;
}

export function functionOption<F>(where: string, option: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw invalid(where, option, value, 'a function');
  return value as F;
}

export function oneOf<T extends string>(
  where: string,
  option: string,
  value: unknown,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw invalid(where, option, value, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
  }
  return value as T;
}

/** Rejects keys the options object does not know (a typo such as `maxAtempts` must not pass silently). */
export function knownKeys(where: string, options: object | undefined, keys: readonly string[]): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${where}: options must be an object, got ${show(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!keys.includes(key) && key !== 'name' && key !== 'runtime') {
      throw new TypeError(
        `${where}: unknown option "${key}"; known options are ${[...keys, 'name', 'runtime'].join(', ')}`,
      );
    }
  }
}

/** The name and runtime every policy takes. */
export function commonOptions(
  kind: string,
  options: PolicyOptions | undefined,
): { name: string; runtime: Runtime } {
  const name = options?.name ?? kind;
  if (typeof name !== 'string' || name.length === 0) throw invalid(kind, 'name', name, 'a non-empty string');
  return { name, runtime: options?.runtime ?? systemRuntime() };
}
