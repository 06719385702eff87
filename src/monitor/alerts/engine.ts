/**
 * The rule engine: subscribes to the runtime's events for the types its rules count, evaluates every rule
 * every `evaluationInterval` on the runtime's clock, and moves each series through
 * inactive → pending → firing → resolved, handing firing and resolved alerts to `onAlert` (the notifier).
 */
import type { Timer } from '../../core/clock.js';
import type { Duration } from '../../core/duration.js';
import type { BulwarkEventType } from '../../core/events.js';
import { type Runtime, systemRuntime } from '../../core/runtime.js';
import { durationOption, functionOption, invalid, knownKeys } from '../../policy/options.js';
import type { AlertState } from './events.js';
import type { Labels } from './labels.js';
import { type Alert, type AlertRule, type CompiledRule, compileRule } from './rules.js';

export interface AlertRuleEngineOptions {
  /** The rules; names must be unique. */
  rules: readonly AlertRule[];
  /** Where time and events come from. @defaultValue the system runtime */
  runtime?: Runtime;
  /** How often every rule is evaluated. @defaultValue `'15s'` */
  evaluationInterval?: Duration;
  /** Called when an alert fires and when it resolves (what the notifier's `receive` takes). */
  onAlert?: (alert: Alert) => void;
}

/** One series of a rule, as {@link AlertRuleEngine.alerts} reports it. */
export interface ActiveAlert {
  readonly rule: string;
  readonly state: Exclude<AlertState, 'inactive' | 'resolved'>;
  readonly labels: Labels;
  readonly annotations: Labels;
  readonly value: number;
  /** When its condition started to hold. */
  readonly activeAt: number;
}

interface SeriesState {
  state: 'pending' | 'firing';
  activeAt: number;
  labels: Labels;
  annotations: Labels;
  value: number;
}

function render(template: string, labels: Labels, value: number): string {
  return template.replace(
    /\{\{\s*(value|labels\.([a-zA-Z_][a-zA-Z0-9_]*))\s*\}\}/g,
    (_, _what: string, name?: string) =>
      name !== undefined
        ? (labels[name] ?? '')
        : Number.isInteger(value)
          ? String(value)
          : value.toPrecision(4),
  );
}

/**
 * Evaluates alert rules over the runtime's event stream.
 * @example
 * const engine = new AlertRuleEngine({
 *   runtime,
 *   rules: [{ kind: 'ratio', name: 'LowSuccessRate', match: { type: 'call', source: 'payments' },
 *             good: { outcome: 'success' }, below: 0.9, window: '5m', minVolume: 20, for: '1m' }],
 *   onAlert: (alert) => notifier.receive(alert),
 * });
 * // …
 * engine.close();
 */
export class AlertRuleEngine {
  private readonly runtime: Runtime;
  private readonly rules: readonly CompiledRule[];
  private readonly intervalMs: number;
  private readonly onAlert: ((alert: Alert) => void) | undefined;
  private readonly states = new Map<string, Map<string, SeriesState>>();
  private readonly unsubscribe: () => void;
  private timer: Timer | undefined;
  private closed = false;

  constructor(options: AlertRuleEngineOptions) {
    const where = 'AlertRuleEngine';
    knownKeys(where, options, ['rules', 'evaluationInterval', 'onAlert']);
    if (!Array.isArray(options.rules)) throw invalid(where, 'rules', options.rules, 'a list of rules');
    this.runtime = options.runtime ?? systemRuntime();
    this.intervalMs = durationOption(
      where,
      'evaluationInterval',
      options.evaluationInterval,
      15_000,
      0,
      true,
    );
    this.onAlert = functionOption(where, 'onAlert', options.onAlert);
    const names = new Set<string>();
    this.rules = options.rules.map((rule) => {
      const compiled = compileRule(rule);
      if (names.has(rule.name)) throw invalid(where, 'rules', rule.name, 'rules with unique names');
      names.add(rule.name);
      this.states.set(rule.name, new Map());
      return compiled;
    });
    const byType = new Map<BulwarkEventType, CompiledRule[]>();
    for (const rule of this.rules) {
      for (const type of rule.types) byType.set(type, [...(byType.get(type) ?? []), rule]);
    }
    const clock = this.runtime.clock;
    this.unsubscribe = this.runtime.events.subscribe(
      (event) => {
        const rules = byType.get(event.type);
        if (rules === undefined) return;
        const now = clock.now();
        for (const rule of rules) rule.observe(event, now);
      },
      [...byType.keys()],
    );
    this.schedule();
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = this.runtime.clock.setTimer(
      this.intervalMs,
      (engine) => {
        engine.evaluate();
        engine.schedule();
      },
      this,
    );
  }

  /** Evaluates every rule now (the timer does this every `evaluationInterval`). */
  evaluate(): void {
    if (this.closed) return;
    const now = this.runtime.clock.now();
    for (const rule of this.rules) {
      const states = this.states.get(rule.rule.name) as Map<string, SeriesState>;
      const seen = new Set<string>();
      for (const sample of rule.samples(now)) {
        seen.add(sample.key);
        const current = states.get(sample.key);
        if (sample.active) {
          const labels: Labels = { ...rule.rule.labels, ...sample.labels, alertname: rule.rule.name };
          const annotations: Record<string, string> = {};
          for (const [k, v] of Object.entries(rule.rule.annotations ?? {}))
            annotations[k] = render(v, labels, sample.value);
          if (current === undefined) {
            const state: SeriesState = {
              state: 'pending',
              activeAt: now,
              labels,
              annotations,
              value: sample.value,
            };
            states.set(sample.key, state);
            this.emit(rule.rule.name, 'pending', labels, sample.value);
            if (rule.forMs === 0) this.fire(rule.rule.name, state);
          } else {
            current.value = sample.value;
            current.annotations = annotations;
            if (current.state === 'pending' && now - current.activeAt >= rule.forMs)
              this.fire(rule.rule.name, current);
          }
        } else if (current !== undefined) {
          this.clear(rule.rule.name, states, sample.key, current, sample.value, now);
        }
      }
      for (const [key, current] of states) {
        if (!seen.has(key)) this.clear(rule.rule.name, states, key, current, Number.NaN, now);
      }
    }
  }

  private fire(rule: string, state: SeriesState): void {
    state.state = 'firing';
    this.emit(rule, 'firing', state.labels, state.value);
    this.onAlert?.({
      labels: state.labels,
      annotations: state.annotations,
      startsAt: state.activeAt,
      endsAt: undefined,
    });
  }

  private clear(
    rule: string,
    states: Map<string, SeriesState>,
    key: string,
    state: SeriesState,
    value: number,
    now: number,
  ): void {
    states.delete(key);
    if (state.state === 'firing') {
      this.emit(rule, 'resolved', state.labels, value);
      this.onAlert?.({
        labels: state.labels,
        annotations: state.annotations,
        startsAt: state.activeAt,
        endsAt: now,
      });
    } else {
      this.emit(rule, 'inactive', state.labels, value);
    }
  }

  private emit(rule: string, state: AlertState, labels: Labels, value: number): void {
    const events = this.runtime.events;
    if (events.wants('alert.state')) {
      events.emit({
        type: 'alert.state',
        source: rule,
        at: this.runtime.clock.now(),
        rule,
        state,
        labels,
        value,
      });
    }
  }

  /** The pending and firing series of every rule. */
  alerts(): ActiveAlert[] {
    const out: ActiveAlert[] = [];
    for (const [rule, states] of this.states) {
      for (const s of states.values()) {
        out.push({
          rule,
          state: s.state,
          labels: s.labels,
          annotations: s.annotations,
          value: s.value,
          activeAt: s.activeAt,
        });
      }
    }
    return out;
  }

  /** Stops evaluating and unsubscribes. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.unsubscribe();
  }
}
