/**
 * What the dashboard's alert, health and failure-pattern panels show, built from the monitor's events and
 * the alerting it was given. Like the rest of the snapshot they carry names, states, counts and times:
 * never an error message, an annotation or a receiver's configuration.
 */
import type { BulwarkEvent } from '../../core/events.js';
import type { AlertRuleEngine } from '../alerts/engine.js';
import { type Labels, Matchers } from '../alerts/labels.js';
import type { Notifier } from '../alerts/notifier.js';
import type { OutboxCounts } from '../alerts/store.js';
import type { ChildState, ProbeKind } from '../health/events.js';
import type { PatternReport } from '../patterns.js';

/** Alerting the monitor shows and lets the page silence; an `Alerting` from `startAlerting` fits. */
export interface MonitorAlerts {
  /** Holds the silences and the outbox; silences created on the page go to its store. */
  readonly notifier: Notifier;
  /** Its pending and firing alerts are listed; without it the panel shows silences only. */
  readonly engine?: AlertRuleEngine;
}

/** One pending or firing alert series. */
export interface AlertView {
  rule: string;
  state: 'pending' | 'firing';
  labels: Labels;
  value: number;
  /** When its condition started to hold (the engine's clock). */
  since: number;
  /** True when an active silence matches its labels. */
  silenced: boolean;
}

/** One silence (matchers in Alertmanager's syntax). */
export interface SilenceView {
  id: string;
  matchers: string;
  state: 'pending' | 'active' | 'expired';
  startsAt: number;
  endsAt: number;
  createdBy: string;
  comment: string;
}

export interface AlertsSnapshot {
  alerts: AlertView[];
  /** Pending and active silences, then the most recently ended few. */
  silences: SilenceView[];
  outbox: OutboxCounts;
}

/** Expired silences still listed, newest first. */
const RECENT_EXPIRED = 10;
/** Escalations kept for the health panel, newest first. */
const RECENT_ESCALATIONS = 20;
/** Rows kept per pattern list. */
const PATTERN_ROWS = 10;

/** The alerts panel's data now. */
export function alertsSnapshot(alerting: MonitorAlerts): AlertsSnapshot {
  const silences = alerting.notifier.listSilences();
  const active = silences.filter((s) => s.state === 'active').map((s) => new Matchers(s.matchers));
  const alerts = (alerting.engine?.alerts() ?? [])
    .map((a) => ({
      rule: a.rule,
      state: a.state,
      labels: a.labels,
      value: a.value,
      since: a.activeAt,
      silenced: active.some((m) => m.matches(a.labels)),
    }))
    .sort((a, b) => (a.state === b.state ? a.since - b.since : a.state === 'firing' ? -1 : 1));
  const view = (s: (typeof silences)[number]): SilenceView => ({
    id: s.id,
    matchers: new Matchers(s.matchers).toString(),
    state: s.state,
    startsAt: s.startsAt,
    endsAt: s.endsAt,
    createdBy: s.createdBy,
    comment: s.comment,
  });
  const live = silences.filter((s) => s.state !== 'expired').sort((a, b) => a.endsAt - b.endsAt);
  const ended = silences
    .filter((s) => s.state === 'expired')
    .sort((a, b) => b.endsAt - a.endsAt)
    .slice(0, RECENT_EXPIRED);
  return { alerts, silences: [...live, ...ended].map(view), outbox: alerting.notifier.outbox() };
}

export interface ProbeView {
  component: string;
  probe: ProbeKind;
  /** The last result. */
  ok: boolean;
  /** The probe's state after its thresholds (what `/healthz` and `/readyz` report). */
  healthy: boolean;
  durationMs: number;
  /** When the last result arrived (monitor clock). */
  at: number;
  checks: number;
  failures: number;
  /** Failed results in a row, up to the last one. */
  failingFor: number;
}

export interface ChildView {
  supervisor: string;
  child: string;
  state: ChildState;
  reason: string;
  restarts: number;
  at: number;
  escalations: number;
}

export interface EscalationView {
  supervisor: string;
  child: string;
  restarts: number;
  periodMs: number;
  at: number;
}

export interface HealingView {
  action: string;
  target: string;
  runs: number;
  failures: number;
  lastOk: boolean;
  at: number;
}

export interface HealthSnapshot {
  probes: ProbeView[];
  children: ChildView[];
  /** The latest escalations, newest first. */
  escalations: EscalationView[];
  healing: HealingView[];
}

/**
 * Aggregates health-check, supervisor and healing events for the health panel. Memory is bounded:
 * at most `maxNames` probes, children and healing targets each, and the last 20 escalations.
 */
export class HealthView {
  private readonly probes = new Map<string, ProbeView>();
  private readonly children = new Map<string, ChildView>();
  private readonly healing = new Map<string, HealingView>();
  private readonly escalations: EscalationView[] = [];

  constructor(private readonly maxNames: number) {}

  /** Takes one event at `now` (monitor clock); other types are ignored. */
  observe(event: BulwarkEvent, now: number): void {
    switch (event.type) {
      case 'health.check': {
        const key = `${event.component}\u0000${event.probe}`;
        let probe = this.probes.get(key);
        if (probe === undefined) {
          if (this.probes.size >= this.maxNames) return;
          probe = {
            component: event.component,
            probe: event.probe,
            ok: event.ok,
            healthy: event.healthy,
            durationMs: 0,
            at: now,
            checks: 0,
            failures: 0,
            failingFor: 0,
          };
          this.probes.set(key, probe);
        }
        probe.ok = event.ok;
        probe.healthy = event.healthy;
        probe.durationMs = event.durationMs;
        probe.at = now;
        probe.checks++;
        if (!event.ok) probe.failures++;
        probe.failingFor = event.ok ? 0 : probe.failingFor + 1;
        return;
      }
      case 'supervisor.child': {
        const child = this.child(event.source, event.child, now);
        if (child === undefined) return;
        child.state = event.state;
        child.reason = event.reason;
        child.restarts = event.restarts;
        child.at = now;
        return;
      }
      case 'supervisor.escalated': {
        const child = this.child(event.source, event.child, now);
        if (child !== undefined) {
          child.escalations++;
          child.at = now;
        }
        this.escalations.unshift({
          supervisor: event.source,
          child: event.child,
          restarts: event.restarts,
          periodMs: event.periodMs,
          at: now,
        });
        if (this.escalations.length > RECENT_ESCALATIONS) this.escalations.length = RECENT_ESCALATIONS;
        return;
      }
      case 'healing.action': {
        const key = `${event.action}\u0000${event.target}`;
        let healing = this.healing.get(key);
        if (healing === undefined) {
          if (this.healing.size >= this.maxNames) return;
          healing = {
            action: event.action,
            target: event.target,
            runs: 0,
            failures: 0,
            lastOk: true,
            at: now,
          };
          this.healing.set(key, healing);
        }
        healing.runs++;
        if (!event.ok) healing.failures++;
        healing.lastOk = event.ok;
        healing.at = now;
        return;
      }
      default:
        return;
    }
  }

  private child(supervisor: string, name: string, now: number): ChildView | undefined {
    const key = `${supervisor}\u0000${name}`;
    let child = this.children.get(key);
    if (child === undefined) {
      if (this.children.size >= this.maxNames) return undefined;
      child = { supervisor, child: name, state: 'started', reason: '', restarts: 0, at: now, escalations: 0 };
      this.children.set(key, child);
    }
    return child;
  }

  /** Copies of the panel's rows: unhealthy probes and troubled children first. */
  snapshot(): HealthSnapshot {
    const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    const childRank = (c: ChildView) => (c.state === 'failed' ? 0 : c.state === 'started' ? 2 : 1);
    return {
      probes: [...this.probes.values()]
        .map((p) => ({ ...p }))
        .sort(
          (a, b) =>
            Number(a.healthy) - Number(b.healthy) ||
            byName(a.component, b.component) ||
            byName(a.probe, b.probe),
        ),
      children: [...this.children.values()]
        .map((c) => ({ ...c }))
        .sort(
          (a, b) =>
            childRank(a) - childRank(b) || byName(a.supervisor, b.supervisor) || byName(a.child, b.child),
        ),
      escalations: this.escalations.map((e) => ({ ...e })),
      healing: [...this.healing.values()].map((h) => ({ ...h })),
    };
  }
}

/** The failure-patterns panel: the strongest findings of each kind, without messages or examples. */
export interface PatternsSnapshot {
  /** Events analysed (at most the watch's `limit`, the latest ones). */
  events: number;
  failures: number;
  from: number | null;
  to: number | null;
  signatures: { code: string; target: string; count: number; firstSeen: number; lastSeen: number }[];
  bursts: { target: string; start: number; end: number; count: number; expected: number }[];
  correlations: { targets: string[]; leader: string; start: number; end: number; count: number }[];
  futileRetries: { target: string; retried: number; exhausted: number; successRate: number }[];
}

/** Cuts a pattern report down to the panel's rows. */
export function patternsSnapshot(report: PatternReport): PatternsSnapshot {
  return {
    events: report.events,
    failures: report.failures,
    from: report.from,
    to: report.to,
    signatures: report.signatures.slice(0, PATTERN_ROWS).map((s) => ({
      code: s.code,
      target: s.target,
      count: s.count,
      firstSeen: s.firstSeen,
      lastSeen: s.lastSeen,
    })),
    bursts: [...report.bursts]
      .sort((a, b) => b.start - a.start)
      .slice(0, PATTERN_ROWS)
      .map((b) => ({ target: b.target, start: b.start, end: b.end, count: b.count, expected: b.expected })),
    correlations: report.correlations.slice(0, PATTERN_ROWS).map((c) => ({
      targets: [...c.targets],
      leader: c.leader,
      start: c.start,
      end: c.end,
      count: c.count,
    })),
    futileRetries: report.retries
      .filter((r) => r.futile)
      .slice(0, PATTERN_ROWS)
      .map((r) => ({
        target: r.target,
        retried: r.retried,
        exhausted: r.exhausted,
        successRate: r.successRate,
      })),
  };
}
