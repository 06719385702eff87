/**
 * Alert rules over the event stream (Prometheus alerting rules, in-process). Each rule counts the events
 * it selects in bucketed windows (O(1) per event) or tracks the latest state (a breaker, a queue's depth,
 * a probe), and is evaluated every `evaluationInterval` on the runtime's clock. Each series of a rule
 * moves inactive → pending → firing (once its condition held for `for`) → resolved.
 */

import type { Duration } from '../../core/duration.js';
import { formatMs } from '../../core/duration.js';
import type { BulwarkEvent, BulwarkEventType } from '../../core/events.js';
import { durationOption, intOption, invalid, numberOption } from '../../policy/options.js';
import '../../queue/events.js';
import '../health/events.js';
import type { Labels } from './labels.js';
import { BucketedWindow } from './window.js';

/** A field value an event must have (one of several, when a list). */
type FieldValue = string | number | boolean;

/**
 * Which events a rule counts: their type(s), optionally their `source` (exact, or a RegExp), and payload
 * fields that must be equal.
 * @example
 * { type: 'call', source: 'payments', where: { kind: 'retry' } }
 */
export interface EventSelector {
  type: BulwarkEventType | readonly BulwarkEventType[];
  source?: string | RegExp;
  where?: Readonly<Record<string, FieldValue | readonly FieldValue[]>>;
}

interface RuleCommon {
  /** The rule's name: the alert's `alertname` label. */
  name: string;
  /** How long the condition must hold before the alert fires. @defaultValue `0` (fires at the first evaluation) */
  for?: Duration;
  /** Labels added to the alert (e.g. `severity`). */
  labels?: Readonly<Record<string, string>>;
  /** Annotations (`summary`, `description`); `{{ value }}` and `{{ labels.NAME }}` are replaced. */
  annotations?: Readonly<Record<string, string>>;
}

/** Alert when the share of `good` events among those selected by `match` is below (or above) a threshold. */
export interface RatioRule extends RuleCommon {
  kind: 'ratio';
  match: EventSelector;
  /** Fields that make a selected event count as good, e.g. `{ outcome: 'success' }`. */
  good: Readonly<Record<string, FieldValue | readonly FieldValue[]>>;
  /** Fires when the ratio is below this. */
  below?: number;
  /** Fires when the ratio is above this. */
  above?: number;
  window: Duration;
  /** Fewer selected events than this in the window: no verdict, the series is inactive. @defaultValue `1` */
  minVolume?: number;
  /** One series per event `source`, or one for all. @defaultValue `'source'` */
  by?: 'source' | 'none';
  /** Buckets in the window. @defaultValue `60` */
  buckets?: number;
}

/** Alert when selected events per second over the window are above (or below) a threshold. */
export interface RateRule extends RuleCommon {
  kind: 'rate';
  match: EventSelector;
  above?: number;
  below?: number;
  window: Duration;
  /** @defaultValue `0` */
  minVolume?: number;
  /** @defaultValue `'source'` */
  by?: 'source' | 'none';
  /** @defaultValue `60` */
  buckets?: number;
}

/** One row of a multi-window burn-rate table: fires when both windows burn faster than `factor`. */
export interface BurnWindow {
  long: Duration;
  short: Duration;
  factor: number;
  /** The `severity` label of the alert this row raises. */
  severity: string;
}

/**
 * The SRE workbook's table for a 30-day SLO (chapter 5, "Alerting on SLOs"): 2% of the budget in 1 h or
 * 5% in 6 h pages; 10% in 3 d … tickets.
 */
export const SRE_BURN_WINDOWS: readonly BurnWindow[] = [
  { long: '1h', short: '5m', factor: 14.4, severity: 'page' },
  { long: '6h', short: '30m', factor: 6, severity: 'page' },
  { long: '1d', short: '2h', factor: 3, severity: 'ticket' },
  { long: '3d', short: '6h', factor: 1, severity: 'ticket' },
];

/** Multi-window, multi-burn-rate SLO alert: one series per `severity` of its windows table. */
export interface BurnRateRule extends RuleCommon {
  kind: 'burnRate';
  match: EventSelector;
  good: Readonly<Record<string, FieldValue | readonly FieldValue[]>>;
  /** The SLO, e.g. `0.999`. */
  objective: number;
  /** @defaultValue {@link SRE_BURN_WINDOWS} */
  windows?: readonly BurnWindow[];
  /** Fewer events than this in a short window: that row does not fire. @defaultValue `1` */
  minVolume?: number;
  /** @defaultValue `'none'` */
  by?: 'source' | 'none';
  /** Buckets per window. @defaultValue `60` */
  buckets?: number;
}

/** Alert while a circuit breaker (selected by name, all when omitted) is not closed. */
export interface CircuitOpenRule extends RuleCommon {
  kind: 'circuitOpen';
  source?: string | RegExp;
}

/** Alert while a queue holds more than `above` jobs in `state`. */
export interface QueueDepthRule extends RuleCommon {
  kind: 'queueDepth';
  source?: string | RegExp;
  /** @defaultValue `'waiting'` */
  state?: 'waiting' | 'delayed' | 'active' | 'completed' | 'dead';
  above: number;
}

/** Alert when more than `above` jobs went to the dead-letter set within the window. */
export interface DeadLetterRule extends RuleCommon {
  kind: 'deadLetters';
  source?: string | RegExp;
  window: Duration;
  /** @defaultValue `0` */
  above?: number;
}

/** Alert while a health probe is failing (after its thresholds). */
export interface HealthFailingRule extends RuleCommon {
  kind: 'healthFailing';
  /** Component name (exact or RegExp); all when omitted. */
  component?: string | RegExp;
  /** @defaultValue every probe */
  probe?: 'liveness' | 'readiness' | 'startup';
}

/** Alert while a supervised component is marked failed (its restart intensity was exceeded). */
export interface ComponentFailedRule extends RuleCommon {
  kind: 'componentFailed';
  component?: string | RegExp;
}

export type AlertRule =
  | RatioRule
  | RateRule
  | BurnRateRule
  | CircuitOpenRule
  | QueueDepthRule
  | DeadLetterRule
  | HealthFailingRule
  | ComponentFailedRule;

/** An alert as the rule engine hands it to the notifier. */
export interface Alert {
  readonly labels: Labels;
  readonly annotations: Labels;
  /** When its condition started to hold (ms, clock time). */
  readonly startsAt: number;
  /** When it resolved; `undefined` while firing. */
  readonly endsAt: number | undefined;
}

// ---------------------------------------------------------------------------------------------
// evaluation of one rule

/** A series' condition at one evaluation. */
/** @internal */
export interface Sample {
  key: string;
  labels: Record<string, string>;
  active: boolean;
  value: number;
}

/** @internal */
export interface CompiledRule {
  readonly rule: AlertRule;
  readonly forMs: number;
  readonly types: readonly BulwarkEventType[];
  observe(event: BulwarkEvent, now: number): void;
  samples(now: number): Iterable<Sample>;
}

function field(event: BulwarkEvent, name: string): unknown {
  return (event as unknown as Record<string, unknown>)[name];
}

function fieldsMatch(
  event: BulwarkEvent,
  where: Readonly<Record<string, FieldValue | readonly FieldValue[]>> | undefined,
): boolean {
  if (where === undefined) return true;
  for (const name in where) {
    const want = where[name];
    const have = field(event, name);
    if (Array.isArray(want) ? !want.includes(have as FieldValue) : have !== want) return false;
  }
  return true;
}

function nameMatches(pattern: string | RegExp | undefined, name: string): boolean {
  if (pattern === undefined) return true;
  return typeof pattern === 'string' ? pattern === name : pattern.test(name);
}

function typesOf(selector: EventSelector): readonly BulwarkEventType[] {
  return typeof selector.type === 'string' ? [selector.type] : selector.type;
}

function selects(selector: EventSelector, event: BulwarkEvent): boolean {
  return nameMatches(selector.source, event.source) && fieldsMatch(event, selector.where);
}

class WindowPair {
  constructor(
    readonly total: BucketedWindow,
    readonly hits: BucketedWindow,
  ) {}
}

function threshold(value: number, below: number | undefined, above: number | undefined): boolean {
  return (below !== undefined && value < below) || (above !== undefined && value > above);
}

function compileRatio(rule: RatioRule | RateRule, where: string, forMs: number): CompiledRule {
  const windowMs = durationOption(where, 'window', rule.window, 0, 0, true);
  const buckets = intOption(where, 'buckets', rule.buckets, 60, 1, 10_000);
  const ratio = rule.kind === 'ratio';
  if (rule.below === undefined && rule.above === undefined) {
    throw invalid(where, 'below', undefined, 'a number (or give "above")');
  }
  const below = rule.below === undefined ? undefined : numberOption(where, 'below', rule.below, 0, 0);
  const above = rule.above === undefined ? undefined : numberOption(where, 'above', rule.above, 0, 0);
  if (ratio) {
    for (const [k, v] of [
      ['below', below],
      ['above', above],
    ] as const) {
      if (v !== undefined && v > 1) throw invalid(where, k, v, 'a ratio in [0, 1]');
    }
  }
  const minVolume = numberOption(where, 'minVolume', rule.minVolume, ratio ? 1 : 0, 0);
  const perSource = (rule.by ?? 'source') === 'source';
  const series = new Map<string, WindowPair>();
  const good = rule.kind === 'ratio' ? rule.good : undefined;
  return {
    rule,
    forMs,
    types: typesOf(rule.match),
    observe(event, now) {
      if (!selects(rule.match, event)) return;
      const key = perSource ? event.source : '';
      let pair = series.get(key);
      if (pair === undefined) {
        pair = new WindowPair(new BucketedWindow(windowMs, buckets), new BucketedWindow(windowMs, buckets));
        series.set(key, pair);
      }
      pair.total.add(now);
      if (good !== undefined && fieldsMatch(event, good)) pair.hits.add(now);
    },
    *samples(now) {
      for (const [key, pair] of series) {
        const total = pair.total.sum(now);
        const value = ratio
          ? total === 0
            ? Number.NaN
            : pair.hits.sum(now) / total
          : total / (windowMs / 1000);
        const enough = total >= minVolume && (!ratio || total > 0);
        yield {
          key,
          labels: perSource ? { source: key } : {},
          active: enough && threshold(value, below, above),
          value,
        };
      }
    },
  };
}

function compileBurnRate(rule: BurnRateRule, where: string, forMs: number): CompiledRule {
  const objective = numberOption(where, 'objective', rule.objective, Number.NaN, 0, 1, true);
  if (!(objective < 1)) throw invalid(where, 'objective', rule.objective, 'a ratio in (0, 1)');
  const budget = 1 - objective;
  const table = (rule.windows ?? SRE_BURN_WINDOWS).map((row, i) => {
    const long = durationOption(where, `windows[${i}].long`, row.long, 0, 0, true);
    const short = durationOption(where, `windows[${i}].short`, row.short, 0, 0, true);
    if (short > long)
      throw invalid(where, `windows[${i}].short`, row.short, `a duration <= long (${formatMs(long)})`);
    const factor = numberOption(
      where,
      `windows[${i}].factor`,
      row.factor,
      Number.NaN,
      0,
      Number.POSITIVE_INFINITY,
      true,
    );
    if (typeof row.severity !== 'string' || row.severity === '') {
      throw invalid(where, `windows[${i}].severity`, row.severity, 'a non-empty string');
    }
    return { long, short, factor, severity: row.severity };
  });
  if (table.length === 0) throw invalid(where, 'windows', rule.windows, 'a non-empty list');
  const buckets = intOption(where, 'buckets', rule.buckets, 60, 1, 10_000);
  const minVolume = numberOption(where, 'minVolume', rule.minVolume, 1, 0);
  const durations = [...new Set(table.flatMap((row) => [row.long, row.short]))];
  const severities = [...new Set(table.map((row) => row.severity))];
  const perSource = (rule.by ?? 'none') === 'source';
  const series = new Map<string, Map<number, WindowPair>>();
  return {
    rule,
    forMs,
    types: typesOf(rule.match),
    observe(event, now) {
      if (!selects(rule.match, event)) return;
      const key = perSource ? event.source : '';
      let windows = series.get(key);
      if (windows === undefined) {
        windows = new Map(
          durations.map((ms) => [
            ms,
            new WindowPair(new BucketedWindow(ms, buckets), new BucketedWindow(ms, buckets)),
          ]),
        );
        series.set(key, windows);
      }
      const bad = !fieldsMatch(event, rule.good);
      for (const pair of windows.values()) {
        pair.total.add(now);
        if (bad) pair.hits.add(now);
      }
    },
    *samples(now) {
      for (const [key, windows] of series) {
        const burn = (ms: number): { rate: number; total: number } => {
          const pair = windows.get(ms) as WindowPair;
          const total = pair.total.sum(now);
          return { rate: total === 0 ? 0 : pair.hits.sum(now) / total / budget, total };
        };
        for (const severity of severities) {
          let active = false;
          let value = 0;
          for (const row of table) {
            if (row.severity !== severity) continue;
            const long = burn(row.long);
            const short = burn(row.short);
            value = Math.max(value, Math.min(long.rate, short.rate));
            if (short.total >= minVolume && long.rate > row.factor && short.rate > row.factor) active = true;
          }
          yield {
            key: `${key}\u0000${severity}`,
            labels: perSource ? { source: key, severity } : { severity },
            active,
            value,
          };
        }
      }
    },
  };
}

function compileDeadLetters(rule: DeadLetterRule, where: string, forMs: number): CompiledRule {
  const windowMs = durationOption(where, 'window', rule.window, 0, 0, true);
  const above = numberOption(where, 'above', rule.above, 0, 0);
  const series = new Map<string, BucketedWindow>();
  return {
    rule,
    forMs,
    types: ['queue.job'],
    observe(event, now) {
      if (event.type !== 'queue.job' || event.outcome !== 'dead' || !nameMatches(rule.source, event.source))
        return;
      let window = series.get(event.source);
      if (window === undefined) {
        window = new BucketedWindow(windowMs, 60);
        series.set(event.source, window);
      }
      window.add(now);
    },
    *samples(now) {
      for (const [source, window] of series) {
        const count = window.sum(now);
        yield { key: source, labels: { source }, active: count > above, value: count };
      }
    },
  };
}

/** A rule whose series hold the latest state reported by events. */
function compileState(
  rule: AlertRule,
  forMs: number,
  types: readonly BulwarkEventType[],
  read: (
    event: BulwarkEvent,
  ) => { key: string; labels: Record<string, string>; active: boolean; value: number } | undefined,
): CompiledRule {
  const series = new Map<string, Sample>();
  return {
    rule,
    forMs,
    types,
    observe(event) {
      const sample = read(event);
      if (sample !== undefined) series.set(sample.key, sample);
    },
    samples() {
      return series.values();
    },
  };
}

/** @internal Validates a rule and builds its counters. */
export function compileRule(rule: AlertRule): CompiledRule {
  if (typeof rule !== 'object' || rule === null) throw invalid('alert rule', 'rule', rule, 'an object');
  const name: unknown = rule.name;
  if (typeof name !== 'string' || !/^[a-zA-Z_][a-zA-Z0-9_:-]*$/.test(name)) {
    throw invalid('alert rule', 'name', name, 'a name of letters, digits, "_", ":" and "-"');
  }
  const where = `alert rule "${name}"`;
  const forMs = durationOption(where, 'for', rule.for, 0);
  switch (rule.kind) {
    case 'ratio':
    case 'rate':
      return compileRatio(rule, where, forMs);
    case 'burnRate':
      return compileBurnRate(rule, where, forMs);
    case 'circuitOpen':
      return compileState(rule, forMs, ['circuit.transition'], (event) => {
        if (event.type !== 'circuit.transition' || !nameMatches(rule.source, event.source)) return undefined;
        return {
          key: event.source,
          labels: { source: event.source, state: event.to },
          active: event.to !== 'closed',
          value: event.to === 'closed' ? 0 : 1,
        };
      });
    case 'queueDepth': {
      const state = rule.state ?? 'waiting';
      const above = numberOption(where, 'above', rule.above, Number.NaN, 0);
      return compileState(rule, forMs, ['queue.depth'], (event) => {
        if (event.type !== 'queue.depth' || !nameMatches(rule.source, event.source)) return undefined;
        const depth = event.depth[state];
        return {
          key: event.source,
          labels: { source: event.source, state },
          active: depth > above,
          value: depth,
        };
      });
    }
    case 'deadLetters':
      return compileDeadLetters(rule, where, forMs);
    case 'healthFailing':
      return compileState(rule, forMs, ['health.check'], (event) => {
        if (event.type !== 'health.check' || !nameMatches(rule.component, event.component)) return undefined;
        if (rule.probe !== undefined && event.probe !== rule.probe) return undefined;
        return {
          key: `${event.component}\u0000${event.probe}`,
          labels: { component: event.component, probe: event.probe },
          active: !event.healthy,
          value: event.healthy ? 1 : 0,
        };
      });
    case 'componentFailed':
      return compileState(rule, forMs, ['supervisor.child'], (event) => {
        if (event.type !== 'supervisor.child' || !nameMatches(rule.component, event.child)) return undefined;
        if (event.state !== 'failed' && event.state !== 'started') return undefined;
        const failed = event.state === 'failed';
        return {
          key: event.child,
          labels: { component: event.child, supervisor: event.source },
          active: failed,
          value: failed ? 1 : 0,
        };
      });
    default:
      throw invalid(
        where,
        'kind',
        (rule as { kind?: unknown }).kind,
        'one of "ratio", "rate", "burnRate", "circuitOpen", "queueDepth", "deadLetters", "healthFailing", "componentFailed"',
      );
  }
}
