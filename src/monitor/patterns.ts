/**
 * Failure-pattern analysis over an event stream (live, or read back from JSON lines): failures grouped
 * by signature (error code, target, normalised message); bursts, i.e. stretches where a target fails far
 * more often than its own baseline predicts for the traffic it had (a Poisson tail test per time bin,
 * Bonferroni-corrected over the bins);
 * bursts of several targets that overlap in time (one dependency taking several callers down); targets
 * whose bursts recur at a regular period; and retries that almost never help. Each finding comes with
 * counts, first/last seen and an example event, ranked by the failures it explains.
 */
import { formatMs } from '../core/duration.js';
import { type BulwarkEventType, type CallOutcome, callEvent, type EventSink } from '../core/events.js';
import type { PatternSummary } from '../lab/document.js';
import { durationOption, intOption, knownKeys, numberOption, ratioOption } from '../policy/options.js';

/** An event as analysed: the common fields, and whatever payload it had (errors as plain objects). */
export interface AnalysedEvent {
  readonly type: string;
  readonly source: string;
  readonly at: number;
  readonly [field: string]: unknown;
}

export interface PatternOptions {
  /** Width of the time bins bursts are found in. @defaultValue the narrowest of 1s, 10s, 1m, 5m, 15m, 1h, 6h giving at most 1,000 bins */
  bin?: number | string;
  /** A bin needs at least this many failures to be part of a burst. @defaultValue `5` */
  minBurst?: number;
  /** Family-wise false-alarm rate of the burst test over all bins of a target. @defaultValue `0.001` */
  alpha?: number;
  /** Retries are flagged as futile when fewer than this share of retried calls end well. @defaultValue `0.2` */
  retrySuccessBelow?: number;
  /** Retried calls a retry policy needs before it is judged. @defaultValue `10` */
  minRetried?: number;
  /** A target needs this many bursts at a regular interval to be called periodic. @defaultValue `3` */
  minCycles?: number;
  /** Signatures kept in the report. @defaultValue `20` */
  topSignatures?: number;
}

/** One failure signature. */
export interface Signature {
  readonly code: string;
  readonly target: string;
  /** The message with numbers, ids, addresses and quoted strings replaced by placeholders. */
  readonly message: string;
  readonly count: number;
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly example: AnalysedEvent;
}

export interface Burst {
  readonly target: string;
  readonly start: number;
  readonly end: number;
  readonly count: number;
  /** Failures the target's baseline predicts for that stretch. */
  readonly expected: number;
  readonly example: AnalysedEvent;
}

export interface Correlation {
  /** Targets whose bursts overlap, the one that started first first. */
  readonly targets: readonly string[];
  readonly start: number;
  readonly end: number;
  readonly count: number;
  /** The target whose burst started first (the likely common cause when it is a dependency). */
  readonly leader: string;
  /** The first failure of the leader's burst. */
  readonly example: AnalysedEvent;
}

export interface Periodicity {
  readonly target: string;
  /** Mean interval between the starts of its bursts, ms. */
  readonly periodMs: number;
  readonly cycles: number;
  readonly count: number;
  readonly firstSeen: number;
  readonly lastSeen: number;
  /** The first failure of the first burst. */
  readonly example: AnalysedEvent;
}

export interface RetryStats {
  /** The retry policy's name. */
  readonly target: string;
  /** Calls that retried at least once. */
  readonly retried: number;
  /** Of those, calls that ran out of attempts. */
  readonly exhausted: number;
  /** Share of retried calls that did not run out of attempts. */
  readonly successRate: number;
  readonly futile: boolean;
  readonly firstSeen: number;
  readonly lastSeen: number;
}

export type FindingKind = 'signature' | 'burst' | 'correlation' | 'periodic' | 'futileRetries';

/** One ranked finding: what the report leads with. */
export interface Finding {
  readonly kind: FindingKind;
  readonly title: string;
  readonly targets: readonly string[];
  readonly count: number;
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly example?: AnalysedEvent;
}

export interface PatternReport {
  readonly events: number;
  readonly failures: number;
  readonly from: number | null;
  readonly to: number | null;
  readonly binMs: number;
  readonly findings: readonly Finding[];
  readonly signatures: readonly Signature[];
  readonly bursts: readonly Burst[];
  readonly correlations: readonly Correlation[];
  readonly periodic: readonly Periodicity[];
  readonly retries: readonly RetryStats[];
}

// ---------------------------------------------------------------------------------------------
// failures

interface Failure {
  target: string;
  code: string;
  message: string;
  at: number;
  event: AnalysedEvent;
}

function errorParts(error: unknown, fallback: string): { code: string; message: string } {
  if (typeof error === 'string') return { code: fallback, message: error };
  if (typeof error !== 'object' || error === null) return { code: fallback, message: '' };
  const e = error as { code?: unknown; name?: unknown; message?: unknown };
  const code =
    typeof e.code === 'string' && e.code !== ''
      ? e.code
      : typeof e.name === 'string' && e.name !== 'Error'
        ? e.name
        : fallback;
  return { code, message: typeof e.message === 'string' ? e.message : '' };
}

/** The target an outcome event (success or failure) counts toward, if it is one. */
function volumeTarget(event: AnalysedEvent): string | undefined {
  switch (event.type) {
    case 'call':
      return event.outcome === 'cancelled' ? undefined : event.source;
    case 'step.succeeded':
    case 'step.failed':
      return `${event.source}/${String(event.step)}`;
    case 'queue.job':
      return event.outcome === 'completed' || event.outcome === 'failed' || event.outcome === 'dead'
        ? event.source
        : undefined;
    case 'health.check':
      return String(event.component ?? event.source);
    default:
      return undefined;
  }
}

/** The failure an event reports, if it reports one. */
function failureOf(event: AnalysedEvent): Failure | undefined {
  let target: string;
  let fallback: string;
  switch (event.type) {
    case 'call':
      if (event.outcome !== 'failure' && event.outcome !== 'timeout' && event.outcome !== 'rejected')
        return undefined;
      target = event.source;
      fallback = String(event.outcome).toUpperCase();
      break;
    case 'step.failed':
      target = `${event.source}/${String(event.step)}`;
      fallback = 'STEP_FAILED';
      break;
    case 'queue.job':
      if (event.outcome !== 'failed' && event.outcome !== 'dead') return undefined;
      target = event.source;
      fallback = event.outcome === 'dead' ? 'DEAD_LETTER' : 'JOB_FAILED';
      break;
    case 'health.check':
      if (event.ok !== false) return undefined;
      target = String(event.component ?? event.source);
      fallback = `${String(event.probe).toUpperCase()}_FAILED`;
      break;
    default:
      return undefined;
  }
  const { code, message } = errorParts(event.error, fallback);
  return { target, code, message: normaliseMessage(message), at: event.at, event };
}

/**
 * A message with its variable parts replaced, so that the same failure groups together:
 * `connect ECONNREFUSED 10.0.0.7:5432` → `connect ECONNREFUSED <addr>`.
 */
export function normaliseMessage(message: string): string {
  return message
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<uuid>')
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g, '<addr>')
    .replace(/\[[0-9a-f:]+\](?::\d+)?/gi, '<addr>')
    .replace(/(["'])(?:(?!\1).)*\1/g, '<str>')
    .replace(/\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b/gi, '<hex>')
    .replace(/\b\d+(?:\.\d+)?(?:ms|s|m|h)?\b/g, '<n>')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
}

// ---------------------------------------------------------------------------------------------
// statistics

/** ln Γ(x) by Lanczos (g = 7, n = 9): accurate to ~1e-15 for x > 0. */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const z = x - 1;
  let a = c[0] as number;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += (c[i] as number) / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** P(X >= k) for X ~ Poisson(lambda), summed from the upper tail (stable for small p-values). */
export function poissonTail(k: number, lambda: number): number {
  if (k <= 0) return 1;
  if (lambda <= 0) return 0;
  let sum = 0;
  for (let i = k; i < k + 1000; i++) {
    const term = Math.exp(-lambda + i * Math.log(lambda) - lnGamma(i + 1));
    sum += term;
    if (i > lambda && term < sum * 1e-12) break;
  }
  return Math.min(1, sum);
}

/**
 * The failures each bin of a target should have if nothing unusual happened. With traffic (successes
 * seen), the target's usual failure ratio times the bin's volume, so a busy minute is not mistaken for a
 * burst: the ratio is taken over the quietest bins holding 90% of the volume (smoothed by a half count).
 * Without traffic, a constant rate: the mean of the quietest 90% of bins.
 */
function expectedFailures(
  counts: readonly number[],
  times: readonly number[] | undefined,
  origin: number,
  binMs: number,
): number[] {
  const bins = counts.length;
  const failures = counts.reduce((a, b) => a + b, 0);
  if (times === undefined || times.length <= failures) {
    const rate = Math.max(trimmedMean(counts, 0.9), 1 / bins);
    return counts.map(() => rate);
  }
  const volumes = new Array<number>(bins).fill(0);
  for (const t of times) {
    const i = Math.min(bins - 1, Math.max(0, Math.floor((t - origin) / binMs)));
    volumes[i] = (volumes[i] as number) + 1;
  }
  const order = volumes
    .map((n, i) => ({ n, k: counts[i] as number }))
    .filter((b) => b.n > 0)
    .sort((a, b) => a.k / a.n - b.k / b.n);
  const total = times.length;
  let n = 0;
  let k = 0;
  for (const b of order) {
    if (n >= 0.9 * total) break;
    n += b.n;
    k += b.k;
  }
  const ratio = (k + 0.5) / (n + 1);
  // A bin with failures but no recorded outcome (events of another kind) is judged against one outcome.
  return volumes.map((v) => ratio * Math.max(v, 1));
}

/** Mean of the values below the `q` quantile (inclusive): a baseline that ignores the bursts themselves. */
function trimmedMean(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const keep = Math.max(1, Math.floor(sorted.length * q));
  let sum = 0;
  for (let i = 0; i < keep; i++) sum += sorted[i] as number;
  return sum / keep;
}

// ---------------------------------------------------------------------------------------------
// analysis

/** The narrowest of 1 s, 10 s, 1 m, 5 m, 15 m, 1 h, 6 h that cuts the span into at most 1,000 bins. */
function autoBin(span: number): number {
  for (const bin of [1000, 10_000, 60_000, 300_000, 900_000, 3_600_000]) if (span / bin <= 1000) return bin;
  return 21_600_000;
}

/**
 * Analyses `events` (in any order) and returns the ranked report.
 * @example
 * const report = analysePatterns(events, { bin: '1m' });
 * for (const finding of report.findings) console.log(finding.title);
 */
export function analysePatterns(
  events: Iterable<AnalysedEvent>,
  options: PatternOptions = {},
): PatternReport {
  const where = 'analysePatterns';
  knownKeys(where, options, [
    'bin',
    'minBurst',
    'alpha',
    'retrySuccessBelow',
    'minRetried',
    'minCycles',
    'topSignatures',
  ]);
  const minBurst = intOption(where, 'minBurst', options.minBurst, 5, 1);
  const alpha = numberOption(where, 'alpha', options.alpha, 0.001, 0, 1, true);
  const retryThreshold = ratioOption(where, 'retrySuccessBelow', options.retrySuccessBelow, 0.2);
  const minRetried = intOption(where, 'minRetried', options.minRetried, 10, 1);
  const minCycles = intOption(where, 'minCycles', options.minCycles, 3, 2);
  const topSignatures = intOption(where, 'topSignatures', options.topSignatures, 20, 1);

  let count = 0;
  let from = Number.POSITIVE_INFINITY;
  let to = Number.NEGATIVE_INFINITY;
  const failures: Failure[] = [];
  /** Per target, the times of every outcome (successes and failures): the traffic failures are judged against. */
  const volume = new Map<string, number[]>();
  const retries = new Map<string, { retried: number; exhausted: number; first: number; last: number }>();
  for (const event of events) {
    count++;
    if (event.at < from) from = event.at;
    if (event.at > to) to = event.at;
    const failure = failureOf(event);
    if (failure !== undefined) failures.push(failure);
    const target = volumeTarget(event);
    if (target !== undefined) {
      const times = volume.get(target);
      if (times === undefined) volume.set(target, [event.at]);
      else times.push(event.at);
    }
    if ((event.type === 'retry' && event.attempt === 1) || event.type === 'retry.exhausted') {
      let stats = retries.get(event.source);
      if (stats === undefined) {
        stats = { retried: 0, exhausted: 0, first: event.at, last: event.at };
        retries.set(event.source, stats);
      }
      if (event.type === 'retry') stats.retried++;
      else stats.exhausted++;
      stats.first = Math.min(stats.first, event.at);
      stats.last = Math.max(stats.last, event.at);
    }
  }
  failures.sort((a, b) => a.at - b.at);
  const span = count === 0 ? 0 : to - from;
  const binMs =
    options.bin === undefined ? autoBin(span) : durationOption(where, 'bin', options.bin, 60_000, 0, true);

  // Signatures.
  const bySignature = new Map<
    string,
    {
      code: string;
      target: string;
      message: string;
      count: number;
      first: number;
      last: number;
      example: AnalysedEvent;
    }
  >();
  for (const f of failures) {
    const key = `${f.code}\u0000${f.target}\u0000${f.message}`;
    const s = bySignature.get(key);
    if (s === undefined)
      bySignature.set(key, {
        code: f.code,
        target: f.target,
        message: f.message,
        count: 1,
        first: f.at,
        last: f.at,
        example: f.event,
      });
    else {
      s.count++;
      s.last = f.at;
    }
  }
  const signatures: Signature[] = [...bySignature.values()]
    .sort((a, b) => b.count - a.count || a.first - b.first)
    .slice(0, topSignatures)
    .map((s) => ({
      code: s.code,
      target: s.target,
      message: s.message,
      count: s.count,
      firstSeen: s.first,
      lastSeen: s.last,
      example: s.example,
    }));

  // Bursts, per target.
  // Bins are aligned to multiples of their width (whole minutes, hours) so that times read naturally.
  const origin = count === 0 ? 0 : Math.floor(from / binMs) * binMs;
  const bins = count === 0 ? 1 : Math.floor((to - origin) / binMs) + 1;
  const byTarget = new Map<string, Failure[]>();
  for (const f of failures) {
    const list = byTarget.get(f.target);
    if (list === undefined) byTarget.set(f.target, [f]);
    else list.push(f);
  }
  const bursts: Burst[] = [];
  const threshold = alpha / bins;
  for (const [target, list] of byTarget) {
    const counts = new Array<number>(bins).fill(0);
    for (const f of list) {
      const i = Math.min(bins - 1, Math.floor((f.at - origin) / binMs));
      counts[i] = (counts[i] as number) + 1;
    }
    const expected = expectedFailures(counts, volume.get(target), origin, binMs);
    const hot = counts.map((c, i) => c >= minBurst && poissonTail(c, expected[i] as number) < threshold);
    let i = 0;
    while (i < bins) {
      if (!hot[i]) {
        i++;
        continue;
      }
      let j = i;
      // A one-bin lull inside a burst does not split it.
      while (
        j + 1 < bins &&
        (hot[j + 1] ||
          (j + 2 < bins && hot[j + 2] && (counts[j + 1] as number) > (expected[j + 1] as number)))
      )
        j++;
      const start = origin + i * binMs;
      const end = origin + (j + 1) * binMs;
      const inside = list.filter((f) => f.at >= start && f.at < end);
      bursts.push({
        target,
        start,
        end,
        count: inside.length,
        expected: expected.slice(i, j + 1).reduce((a, b) => a + b, 0),
        example: (inside[0] as Failure).event,
      });
      i = j + 1;
    }
  }
  bursts.sort((a, b) => a.start - b.start || (a.target < b.target ? -1 : 1));

  // Correlated bursts: overlapping in time (within a bin), across different targets.
  const parent = bursts.map((_, i) => i);
  const root = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i] as number] as number;
    return i;
  };
  for (let a = 0; a < bursts.length; a++) {
    for (let b = a + 1; b < bursts.length; b++) {
      const x = bursts[a] as Burst;
      const y = bursts[b] as Burst;
      if (y.start > x.end) break;
      if (x.target !== y.target) parent[root(b)] = root(a);
    }
  }
  const groups = new Map<number, Burst[]>();
  bursts.forEach((burst, i) => {
    const r = root(i);
    groups.set(r, [...(groups.get(r) ?? []), burst]);
  });
  const correlations: Correlation[] = [];
  for (const members of groups.values()) {
    const targets = [...new Set(members.map((m) => m.target))];
    if (targets.length < 2) continue;
    const first = new Map<string, number>();
    for (const m of members)
      first.set(m.target, Math.min(first.get(m.target) ?? Number.POSITIVE_INFINITY, m.start));
    targets.sort((a, b) => (first.get(a) as number) - (first.get(b) as number) || (a < b ? -1 : 1));
    correlations.push({
      targets,
      start: Math.min(...members.map((m) => m.start)),
      end: Math.max(...members.map((m) => m.end)),
      count: members.reduce((n, m) => n + m.count, 0),
      leader: targets[0] as string,
      example: (members.find((m) => m.target === targets[0]) as Burst).example,
    });
  }

  // Periodicity: bursts of one target recurring at a steady interval.
  const periodic: Periodicity[] = [];
  const burstsByTarget = new Map<string, Burst[]>();
  for (const b of bursts) burstsByTarget.set(b.target, [...(burstsByTarget.get(b.target) ?? []), b]);
  for (const [target, list] of burstsByTarget) {
    if (list.length < minCycles) continue;
    const gaps = list.slice(1).map((b, i) => b.start - (list[i] as Burst).start);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / gaps.length);
    // Steady within a bin's jitter or 10% of the period, whichever is larger.
    if (mean > 0 && sd <= Math.max(binMs, 0.1 * mean)) {
      periodic.push({
        target,
        periodMs: mean,
        cycles: list.length,
        count: list.reduce((n, b) => n + b.count, 0),
        firstSeen: (list[0] as Burst).start,
        lastSeen: (list.at(-1) as Burst).end,
        example: (list[0] as Burst).example,
      });
    }
  }

  const retryStats: RetryStats[] = [...retries]
    .map(([target, s]) => {
      const successRate = s.retried === 0 ? 1 : Math.max(0, s.retried - s.exhausted) / s.retried;
      return {
        target,
        retried: s.retried,
        exhausted: s.exhausted,
        successRate,
        futile: s.retried >= minRetried && successRate < retryThreshold,
        firstSeen: s.first,
        lastSeen: s.last,
      };
    })
    .sort((a, b) => a.successRate - b.successRate || (a.target < b.target ? -1 : 1));

  const findings: Finding[] = [
    ...correlations.map((c) => ({
      kind: 'correlation' as const,
      title: `${c.targets.length} targets failed together (${c.targets.join(', ')}); ${c.leader} first`,
      targets: c.targets,
      count: c.count,
      firstSeen: c.start,
      lastSeen: c.end,
      example: c.example,
    })),
    ...periodic.map((p) => ({
      kind: 'periodic' as const,
      title: `${p.target} fails ${cadence(p)} (${p.cycles} bursts)`,
      targets: [p.target],
      count: p.count,
      firstSeen: p.firstSeen,
      lastSeen: p.lastSeen,
      example: p.example,
    })),
    ...bursts
      .filter((b) => !periodic.some((p) => p.target === b.target))
      .map((b) => ({
        kind: 'burst' as const,
        title: `burst of ${b.count} failures on ${b.target} in ${formatMs(b.end - b.start)} (baseline ${b.expected.toFixed(1)})`,
        targets: [b.target],
        count: b.count,
        firstSeen: b.start,
        lastSeen: b.end,
        example: b.example,
      })),
    ...retryStats
      .filter((r) => r.futile)
      .map((r) => ({
        kind: 'futileRetries' as const,
        title: `retries on ${r.target} rarely help: ${Math.round(r.successRate * 100)}% of ${r.retried} retried calls recovered`,
        targets: [r.target],
        count: r.retried,
        firstSeen: r.firstSeen,
        lastSeen: r.lastSeen,
      })),
    ...signatures.slice(0, 5).map((s) => ({
      kind: 'signature' as const,
      title: `${s.count}× ${s.code} on ${s.target}${s.message === '' ? '' : `: ${s.message}`}`,
      targets: [s.target],
      count: s.count,
      firstSeen: s.firstSeen,
      lastSeen: s.lastSeen,
      example: s.example,
    })),
  ];
  const order: Record<FindingKind, number> = {
    correlation: 0,
    periodic: 1,
    burst: 2,
    futileRetries: 3,
    signature: 4,
  };
  findings.sort((a, b) => order[a.kind] - order[b.kind] || b.count - a.count || a.firstSeen - b.firstSeen);

  return {
    events: count,
    failures: failures.length,
    from: count === 0 ? null : from,
    to: count === 0 ? null : to,
    binMs,
    findings,
    signatures,
    bursts,
    correlations,
    periodic,
    retries: retryStats,
  };
}

const DAY = 86_400_000;

/** `every 30m`, or `daily at 02:00 UTC` when the period is a day (times of real runs are epoch ms). */
function cadence(p: Periodicity): string {
  if (Math.abs(p.periodMs - DAY) <= 0.05 * DAY) {
    const minute = Math.floor((p.firstSeen % DAY) / 60_000);
    const hh = String(Math.floor(minute / 60)).padStart(2, '0');
    const mm = String(minute % 60).padStart(2, '0');
    return `daily at ${hh}:${mm} UTC`;
  }
  return `every ${formatMs(p.periodMs)}`;
}

/** The event types pattern analysis reads. */
export const PATTERN_EVENT_TYPES: readonly BulwarkEventType[] = [
  'call',
  'retry',
  'retry.exhausted',
  'step.succeeded',
  'step.failed',
  'queue.job',
  'health.check',
];

/**
 * Live analysis: keeps the last `limit` events pattern analysis reads from an event sink (a ring, so
 * memory stays bounded) and analyses them on demand. With `events` undefined it subscribes to nothing:
 * feed it with {@link PatternWatch.record} (the monitor does, from the events it already receives).
 * @example
 * const watch = new PatternWatch(runtime.events, { limit: 50_000 });
 * // … later, e.g. from a dashboard request …
 * const report = watch.report();
 * watch.close();
 */
export class PatternWatch {
  /**
   * The ring, one slot per event: an event object, or (undefined there) a `call` kept as its fields in
   * the columns below. Calls are most of the events and held by the thousand: as fields they cost no
   * object each, so they do not pile up in the old generation for the garbage collector to trace.
   */
  private readonly buffer: (AnalysedEvent | undefined)[] = [];
  private readonly callSources: string[] = [];
  private readonly callAts: number[] = [];
  private readonly callKinds: string[] = [];
  private readonly callOutcomes: CallOutcome[] = [];
  private readonly callDurations: number[] = [];
  private readonly callErrors: unknown[] = [];
  private next = 0;
  private readonly limit: number;
  private readonly options: PatternOptions;
  private readonly unsubscribe: () => void;

  constructor(events: EventSink | undefined, options: PatternOptions & { limit?: number } = {}) {
    const { limit, ...rest } = options;
    this.limit = intOption('PatternWatch', 'limit', limit, 100_000, 1);
    // Validated now rather than at the first report.
    analysePatterns([], rest);
    this.options = rest;
    this.unsubscribe =
      events === undefined
        ? () => undefined
        : events.subscribe((event) => this.record(event as unknown as AnalysedEvent), PATTERN_EVENT_TYPES);
  }

  /** Keeps one event (of {@link PATTERN_EVENT_TYPES}; others only take room), dropping the oldest when full. */
  record(event: AnalysedEvent): void {
    this.store(event, '', 0, '', 'success', 0, undefined);
  }

  /** Keeps one `call` event given by its fields (what `record` does with the event object). */
  recordCall(
    source: string,
    at: number,
    kind: string,
    outcome: CallOutcome,
    durationMs: number,
    error: unknown,
  ): void {
    this.store(undefined, source, at, kind, outcome, durationMs, error);
  }

  private store(
    event: AnalysedEvent | undefined,
    source: string,
    at: number,
    kind: string,
    outcome: CallOutcome,
    durationMs: number,
    error: unknown,
  ): void {
    // Until the ring is full `slot` is the columns' length: the assignments append.
    const slot = this.next;
    this.buffer[slot] = event;
    this.callSources[slot] = source;
    this.callAts[slot] = at;
    this.callKinds[slot] = kind;
    this.callOutcomes[slot] = outcome;
    this.callDurations[slot] = durationMs;
    this.callErrors[slot] = error;
    this.next = slot + 1 === this.limit ? 0 : slot + 1;
  }

  /** The events held now, oldest first. */
  private *held(): IterableIterator<AnalysedEvent> {
    const size = this.buffer.length;
    const start = size < this.limit ? 0 : this.next;
    for (let k = 0; k < size; k++) {
      const i = (start + k) % size;
      const event = this.buffer[i];
      yield event ??
        callEvent(
          this.callSources[i] as string,
          this.callAts[i] as number,
          this.callKinds[i] as string,
          this.callOutcomes[i] as CallOutcome,
          this.callDurations[i] as number,
          this.callErrors[i],
        );
    }
  }

  /** Events held now (at most `limit`). */
  get size(): number {
    return this.buffer.length;
  }

  /** Analyses the events held now. */
  report(): PatternReport {
    return analysePatterns(this.held(), this.options);
  }

  /** Stops listening (the events held are dropped). */
  close(): void {
    this.unsubscribe();
    for (const column of [
      this.buffer,
      this.callSources,
      this.callAts,
      this.callKinds,
      this.callOutcomes,
      this.callDurations,
      this.callErrors,
    ])
      column.length = 0;
    this.next = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// rendering

function time(ms: number | null, origin: number | null): string {
  if (ms === null) return '-';
  // Virtual-clock runs start at 0: show an offset; real runs: an ISO time.
  return origin !== null && origin < 86_400_000 * 365
    ? `+${formatMs(ms - origin)}`
    : new Date(ms).toISOString();
}

/** One line for an example event: when, what, where, and its error. */
function describeEvent(event: AnalysedEvent, origin: number | null): string {
  const { code, message } = errorParts(event.error, String(event.outcome ?? event.type));
  const text = message === '' ? code : `${code}: ${message}`;
  return `${time(event.at, origin)} ${event.type} ${event.source} ${text}`.slice(0, 160);
}

/** The report as a terminal table. */
export function renderPatternsTerminal(report: PatternReport): string {
  const lines = [
    `${report.events} events, ${report.failures} failures${report.from === null ? '' : ` from ${time(report.from, report.from)} to ${time(report.to, report.from)}`} (bins of ${formatMs(report.binMs)})`,
    '',
  ];
  if (report.findings.length === 0) lines.push('No failure patterns found.');
  report.findings.forEach((f, i) => {
    lines.push(`${String(i + 1).padStart(2)}. [${f.kind}] ${f.title}`);
    lines.push(`    ${f.count} events, ${time(f.firstSeen, report.from)} → ${time(f.lastSeen, report.from)}`);
    if (f.example !== undefined) lines.push(`    e.g. ${describeEvent(f.example, report.from)}`);
  });
  if (report.retries.length > 0) {
    lines.push('', 'Retries:');
    for (const r of report.retries) {
      lines.push(
        `  ${r.target.padEnd(24)} ${String(r.retried).padStart(6)} retried  ${(r.successRate * 100).toFixed(0).padStart(3)}% recovered${r.futile ? '  ← futile' : ''}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The report as Markdown. */
export function renderPatternsMarkdown(report: PatternReport): string {
  const esc = (text: string) => text.replace(/\|/g, '\\|');
  const out = [
    '# Failure patterns',
    '',
    `${report.events} events, ${report.failures} failures; bins of ${formatMs(report.binMs)}.`,
    '',
    '| # | Kind | Finding | Events | First seen | Last seen |',
    '|---|---|---|---|---|---|',
    ...report.findings.map(
      (f, i) =>
        `| ${i + 1} | ${f.kind} | ${esc(f.title)} | ${f.count} | ${time(f.firstSeen, report.from)} | ${time(f.lastSeen, report.from)} |`,
    ),
    '',
    '## Signatures',
    '',
    '| Count | Code | Target | Message |',
    '|---|---|---|---|',
    ...report.signatures.map((s) => `| ${s.count} | ${esc(s.code)} | ${esc(s.target)} | ${esc(s.message)} |`),
  ];
  if (report.retries.length > 0) {
    out.push(
      '',
      '## Retries',
      '',
      '| Policy | Retried | Exhausted | Recovered | Futile |',
      '|---|---|---|---|---|',
    );
    for (const r of report.retries)
      out.push(
        `| ${esc(r.target)} | ${r.retried} | ${r.exhausted} | ${(r.successRate * 100).toFixed(0)}% | ${r.futile ? 'yes' : 'no'} |`,
      );
  }
  return `${out.join('\n')}\n`;
}

/**
 * The top findings of `events` as the lab and experiment reports carry them (`bulwark lab --patterns`,
 * `bulwark run`): JSON values only, no example events (they may hold messages with addresses).
 */
export function patternSummary(
  events: readonly AnalysedEvent[],
  truncated: boolean,
  options: PatternOptions = {},
): PatternSummary {
  const report = analysePatterns(events, options);
  return {
    events: report.events,
    failures: report.failures,
    truncated,
    findings: report.findings.slice(0, 10).map((f) => ({
      kind: f.kind,
      title: f.title,
      targets: [...f.targets],
      count: f.count,
      firstSeen: f.firstSeen,
      lastSeen: f.lastSeen,
    })),
  };
}
