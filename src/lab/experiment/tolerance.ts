import { toMs } from '../../core/duration.js';
import type { ProviderResult } from './providers.js';
import type { Tolerance } from './types.js';

/** Whether a provider's result is within a tolerance, and why not. */
export interface ToleranceVerdict {
  holds: boolean;
  /** Empty when it holds; otherwise what was expected and what came. */
  reason: string;
}

const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));

/**
 * Checks `result` against `tolerance`: a scalar equals the main value (HTTP status, exit code, metric
 * value, return value), `[min, max]` bounds it, an object checks each field it sets.
 */
export function withinTolerance(tolerance: Tolerance, result: ProviderResult): ToleranceVerdict {
  const { value } = result;
  const fail = (reason: string): ToleranceVerdict => ({ holds: false, reason });
  if (typeof tolerance !== 'object') {
    return value === tolerance
      ? { holds: true, reason: '' }
      : fail(`expected ${show(tolerance)}, got ${show(value)}`);
  }
  if (Array.isArray(tolerance)) {
    const [min, max] = tolerance as readonly [number, number];
    return typeof value === 'number' && value >= min && value <= max
      ? { holds: true, reason: '' }
      : fail(`expected a value in [${min}, ${max}], got ${show(value)}`);
  }
  const t = tolerance as Exclude<Tolerance, number | string | boolean | readonly [number, number]>;
  const output = result.output as { status?: unknown; exitCode?: unknown } | null;
  if (t.status !== undefined) {
    const accepted = typeof t.status === 'number' ? [t.status] : t.status;
    const status = result.status ?? output?.status;
    if (!accepted.includes(status as number)) {
      return fail(`expected status ${accepted.join(' or ')}, got ${show(status)}`);
    }
  }
  if (t.exitCode !== undefined && output?.exitCode !== t.exitCode) {
    return fail(`expected exit code ${t.exitCode}, got ${show(output?.exitCode)}`);
  }
  if (t.maxLatency !== undefined) {
    const limit = toMs(t.maxLatency, 'maxLatency');
    if (result.latencyMs > limit)
      return fail(`took ${Math.round(result.latencyMs)} ms, more than ${limit} ms`);
  }
  if (t.min !== undefined || t.max !== undefined) {
    const n = typeof value === 'number' ? value : Number.NaN;
    if (!(n >= (t.min ?? Number.NEGATIVE_INFINITY) && n <= (t.max ?? Number.POSITIVE_INFINITY))) {
      return fail(`expected a value in [${t.min ?? '-∞'}, ${t.max ?? '∞'}], got ${show(value)}`);
    }
  }
  if (t.contains !== undefined && !result.text.includes(t.contains)) {
    return fail(`expected the output to contain ${show(t.contains)}`);
  }
  if (t.matches !== undefined && !new RegExp(t.matches).test(result.text)) {
    return fail(`expected the output to match /${t.matches}/`);
  }
  return { holds: true, reason: '' };
}
