/** A duration: a number of milliseconds, or a string such as `'250ms'`, `'5s'`, `'2m'`, `'1h30m'`. */
export type Duration = number | string;

const UNIT_MS: Record<string, number> = {
  us: 0.001,
  µs: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const PART = /(\d+(?:\.\d+)?|\.\d+)(us|µs|ms|s|m|h|d)/y;

/**
 * Converts a {@link Duration} to milliseconds.
 * @throws TypeError naming the value when it is not a finite, non-negative duration.
 * @example
 * toMs('1m30s') // 90000
 */
export function toMs(value: Duration, name = 'duration'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      throw new TypeError(`${name} must be a finite number of milliseconds >= 0, got ${String(value)}`);
    }
    return value;
  }
  if (typeof value !== 'string') {
    throw new TypeError(
      `${name} must be a number of milliseconds or a string like '250ms', got ${typeof value}`,
    );
  }
  const text = value.trim();
  let total = 0;
  let index = 0;
  if (text.length > 0) {
    PART.lastIndex = 0;
    while (index < text.length) {
      PART.lastIndex = index;
      const match = PART.exec(text);
      if (match === null) break;
      total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
      index = PART.lastIndex;
    }
  }
  if (text.length === 0 || index !== text.length) {
    throw new TypeError(
      `${name}: invalid duration ${JSON.stringify(value)}; use milliseconds or a string like '250ms', '5s', '2m', '1h30m'`,
    );
  }
  return total;
}

/** Formats milliseconds for people: `1500` → `'1.5s'`. */
export function formatMs(ms: number): string {
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 1000) return `${Number(ms.toFixed(1))}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(2))}s`;
  if (ms < 3_600_000) return `${Number((ms / 60_000).toFixed(2))}m`;
  return `${Number((ms / 3_600_000).toFixed(2))}h`;
}
