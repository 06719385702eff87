/**
 * A monitor: one subscriber that feeds the Prometheus metrics, the optional OpenTelemetry bridge, the
 * dashboard's live view and its SQLite history from runtime events. Attach it to any number of runtimes
 * (or event sinks), feed it events from elsewhere with `ingest`, and serve the dashboard with `serve`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Clock, SystemClock } from '../core/clock.js';
import {
  type BulwarkEvent,
  CALL_OUTCOME_INDEX,
  CALL_OUTCOMES,
  type CallOutcome,
  callEvent,
  type EventSink,
  type SourceMeter,
} from '../core/events.js';
import type { Runtime } from '../core/runtime.js';
import { intOption, invalid, knownKeys } from '../policy/options.js';
import {
  type AlertsSnapshot,
  alertsSnapshot,
  type HealthSnapshot,
  HealthView,
  type MonitorAlerts,
  type PatternsSnapshot,
  patternsSnapshot,
} from './dashboard/panels.js';
import type { DashboardServer, DashboardServerOptions } from './dashboard/server.js';
import { type HistoryPoint, type HistoryQuery, HistoryStore } from './history.js';
import { LiveAggregator, type LivePolicy, type LiveSnapshot } from './live.js';
import { METERED_EVENT_TYPES, PrometheusMetrics, type PrometheusMetricsOptions } from './metrics.js';
import { OpenTelemetryMetrics, type OpenTelemetryMetricsOptions } from './otel.js';
import { type AnalysedEvent, PATTERN_EVENT_TYPES, type PatternOptions, PatternWatch } from './patterns.js';

export interface MonitorOptions {
  /**
   * The monitor's own time: its live windows and the minutes of its history. Events are placed by when
   * they arrive, not by their `at`, so runtimes on virtual clocks (the lab) are watched in real time
   * (when both this clock and an attached runtime's are `SystemClock`s, an event's `at` is its arrival
   * time, and is used as such when plausible: it saves a clock read per event).
   * This does not attach anything: use {@link Monitor.attach}.
   * @defaultValue a `SystemClock`
   */
  clock?: Clock;
  /**
   * The SQLite file of the per-minute history, `':memory:'`, or `false` for none.
   * @defaultValue false
   */
  history?: string | false;
  /** Days of history kept. @defaultValue 7 */
  retentionDays?: number;
  /** Options of the Prometheus metrics (registry, buckets, maxNames). */
  metrics?: PrometheusMetricsOptions;
  /** Also record OpenTelemetry instruments on this meter. */
  openTelemetry?: OpenTelemetryMetricsOptions;
  /** Distinct names per dashboard section (policies, queues, plans, faults). @defaultValue 1000 */
  maxNames?: number;
  /**
   * Alerting to show on the dashboard: its pending and firing alerts, its silences (created and expired
   * from the page, with the same token and same-origin rules as every control) and its outbox counts.
   * Pass what `startAlerting` returns, or `{ notifier, engine }`. The monitor does not close it.
   * @example
   * const alerting = startAlerting(await loadAlertConfig('alerts.yaml'), { runtime });
   * const monitor = createMonitor({ alerts: alerting });
   */
  alerts?: MonitorAlerts;
  /**
   * The failure-patterns panel: pattern analysis over the latest `limit` events of the types it reads
   * (calls, retries, steps, jobs, health checks), refreshed at most every `refreshMs`; `false` for none.
   * @defaultValue `{ limit: 10_000, refreshMs: 5000 }`
   */
  patterns?: (PatternOptions & { limit?: number; refreshMs?: number }) | false;
}

/** What the dashboard's stream sends: the live view, the health panel, and alerts and patterns when on. */
export interface MonitorSnapshot extends LiveSnapshot {
  health: HealthSnapshot;
  /** `null` when the monitor was given no alerting. */
  alerts: AlertsSnapshot | null;
  /** `null` when pattern analysis is off. */
  patterns: PatternsSnapshot | null;
}

const PATTERN_TYPES: ReadonlySet<string> = new Set(PATTERN_EVENT_TYPES);
const HEALTH_TYPES: ReadonlySet<string> = new Set([
  'health.check',
  'supervisor.child',
  'supervisor.escalated',
  'healing.action',
]);

/** Something the dashboard can act on, e.g. a circuit breaker (`isolate`, `reset`). */
export interface Controllable {
  readonly name: string;
}

type Actions = Record<string, () => void | Promise<void>>;

/** What a monitor attachment keeps of a policy's part (see `EventMeter.forGroup`). */
interface PolicyPart {
  readonly source: string;
  readonly kind: string;
  readonly prometheus: SourceMeter;
  readonly live: LivePolicy;
}

const SUCCESS = CALL_OUTCOME_INDEX.success;

/**
 * Metrics and the live dashboard for everything that emits through a runtime's events.
 * @example
 * const monitor = createMonitor({ history: '.bulwark/dashboard.db' });
 * monitor.attach(runtime);
 * const dashboard = await monitor.serve();   // http://127.0.0.1:7420
 * app.get('/metrics', monitor.metricsHandler());
 */
export class Monitor {
  readonly clock: Clock;
  readonly metrics: PrometheusMetrics;
  readonly openTelemetry: OpenTelemetryMetrics | undefined;
  readonly history: HistoryStore | undefined;
  readonly live: LiveAggregator;
  /** The alerting shown on the dashboard, when given. */
  readonly alerts: MonitorAlerts | undefined;
  private readonly health: HealthView;
  private readonly patternWatch: PatternWatch | undefined;
  private readonly patternsRefreshMs: number;
  private patternsSeen = 0;
  private patternsCache: { at: number; seen: number; view: PatternsSnapshot } | undefined;
  private readonly detachers = new Set<() => void>();
  private readonly controls = new Map<string, Actions>();
  private readonly servers = new Set<DashboardServer>();
  private closed = false;

  constructor(options: MonitorOptions = {}) {
    const where = 'createMonitor';
    knownKeys(where, options, [
      'clock',
      'history',
      'retentionDays',
      'metrics',
      'openTelemetry',
      'maxNames',
      'alerts',
      'patterns',
    ]);
    if ('runtime' in options) {
      throw invalid(
        where,
        'runtime',
        'given',
        'left out: pass `clock`, and attach runtimes with monitor.attach(runtime)',
      );
    }
    const history = options.history ?? false;
    if (history !== false && (typeof history !== 'string' || history === '')) {
      throw invalid(where, 'history', history, 'a file path, ":memory:" or false');
    }
    const maxNames = intOption(where, 'maxNames', options.maxNames, 1000, 1, 1_000_000);
    const clock = options.clock ?? new SystemClock();
    if (typeof clock?.now !== 'function' || typeof clock.setTimer !== 'function') {
      throw invalid(where, 'clock', clock, 'a Clock');
    }
    this.clock = clock;
    const alerts = options.alerts;
    if (
      alerts !== undefined &&
      (typeof alerts?.notifier?.listSilences !== 'function' ||
        (alerts.engine !== undefined && typeof alerts.engine?.alerts !== 'function'))
    ) {
      throw invalid(where, 'alerts', alerts, '{ notifier, engine? } (what startAlerting returns)');
    }
    this.alerts = alerts;
    const patterns = options.patterns ?? {};
    if (patterns !== false && (typeof patterns !== 'object' || patterns === null)) {
      throw invalid(where, 'patterns', patterns, 'pattern options or false');
    }
    if (patterns === false) {
      this.patternWatch = undefined;
      this.patternsRefreshMs = 0;
    } else {
      const { refreshMs, ...watchOptions } = patterns;
      this.patternsRefreshMs = intOption(where, 'patterns.refreshMs', refreshMs, 5000, 0, 3_600_000);
      this.patternWatch = new PatternWatch(undefined, { limit: 10_000, ...watchOptions });
    }
    this.health = new HealthView(maxNames);
    this.metrics = new PrometheusMetrics(options.metrics);
    this.openTelemetry =
      options.openTelemetry === undefined ? undefined : new OpenTelemetryMetrics(options.openTelemetry);
    this.history =
      history === false
        ? undefined
        : new HistoryStore({
            path: history,
            clock: this.clock,
            ...(options.retentionDays === undefined ? {} : { retentionDays: options.retentionDays }),
          });
    const store = this.history;
    this.live = new LiveAggregator({
      clock: this.clock,
      maxNames,
      ...(store === undefined ? {} : { onMinute: (rows) => store.write(rows) }),
    });
  }

  /**
   * Subscribes to a runtime's (or an event sink's) events; returns the function that detaches.
   * @example
   * const detach = monitor.attach(runtime);
   */
  attach(source: Runtime | EventSink): () => void {
    if (this.closed) throw invalid('Monitor.attach', 'monitor', 'closed', 'open (not closed)');
    const events = 'events' in source ? source.events : source;
    if (typeof events?.subscribe !== 'function' || typeof events.meter !== 'function') {
      throw invalid('Monitor.attach', 'source', source, 'a Runtime or an EventSink');
    }
    // An event of a runtime on the system clock is stamped with the time it is emitted, which is when it
    // arrives here (listeners run synchronously): the monitor, on the system clock too, need not read it.
    const sameTime =
      'events' in source && source.clock instanceof SystemClock && this.clock instanceof SystemClock;
    // `call` and `bulkhead.changed`, several per call, come through the meter channel: no event object
    // is built for them unless something here keeps one (pattern analysis, OpenTelemetry).
    const unsubscribe = events.subscribe(
      sameTime ? (event) => this.record(event, event.at) : (event) => this.record(event, undefined),
      { except: METERED_EVENT_TYPES },
    );
    // The parts made for this attachment's sources, for `forGroup` to find their series and stats.
    const parts = new WeakMap<SourceMeter, PolicyPart>();
    const unmeter = events.meter({
      call: (source, at, kind, outcome, durationMs, error) => {
        if (this.closed) return;
        this.metrics.countCall(source, outcome, durationMs);
        this.live.call(source, kind, outcome, durationMs, error, sameTime ? at : undefined);
        this.keepCall(source, at, kind, outcome, durationMs, error);
      },
      bulkheadChanged: (source, at, active, queued, capacity) => {
        if (this.closed) return;
        this.metrics.setBulkhead(source, active);
        this.live.bulkheadChanged(source, active, queued, capacity, sameTime ? at : undefined);
        this.openTelemetry?.observe({ type: 'bulkhead.changed', source, at, active, queued, capacity });
      },
      // A policy's events, with its Prometheus series and live stats resolved once.
      forSource: (source, kind) => {
        const prometheus = this.metrics.forSource(source);
        const live = this.live.source(source, kind);
        const part: SourceMeter = {
          call: (at, outcome, durationMs, error) => {
            if (this.closed) return;
            prometheus.call(at, outcome, durationMs, error);
            live.call(outcome, durationMs, error, sameTime ? at : undefined);
            this.keepCall(source, at, kind, CALL_OUTCOMES[outcome] as CallOutcome, durationMs, error);
          },
          bulkheadChanged: (at, active, queued, capacity) => {
            if (this.closed) return;
            prometheus.bulkheadChanged(at, active, queued, capacity);
            live.bulkheadChanged(active, queued, capacity, sameTime ? at : undefined);
            this.openTelemetry?.observe({ type: 'bulkhead.changed', source, at, active, queued, capacity });
          },
        };
        parts.set(part, { source, kind, prometheus, live });
        return part;
      },
      // The policies of a pipeline segment whose call succeeded through all of them: their Prometheus
      // series counted at once, then each one's live stats and pattern record as for its own call.
      forGroup: (members) => {
        const policies: PolicyPart[] = [];
        for (const member of members) {
          const policy = parts.get(member);
          if (policy === undefined) return undefined;
          policies.push(policy);
        }
        const prometheus = this.metrics.forGroup(policies.map((policy) => policy.prometheus));
        if (prometheus === undefined) return undefined;
        return {
          succeeded: (at, durationMs) => {
            if (this.closed) return;
            prometheus.succeeded(at, durationMs);
            const arrivedAt = sameTime ? at : undefined;
            for (let i = 0; i < policies.length; i++) {
              const policy = policies[i] as PolicyPart;
              policy.live.call(SUCCESS, durationMs, undefined, arrivedAt);
              this.keepCall(policy.source, at, policy.kind, 'success', durationMs, undefined);
            }
          },
        };
      },
    });
    const detach = () => {
      unsubscribe();
      unmeter();
      this.detachers.delete(detach);
    };
    this.detachers.add(detach);
    return detach;
  }

  /** Records one event, from any source (an attached runtime, a file, another process). */
  ingest(event: BulwarkEvent): void {
    this.record(event, undefined);
  }

  private record(event: BulwarkEvent, arrivedAt: number | undefined): void {
    if (this.closed) return;
    this.metrics.observe(event);
    this.openTelemetry?.observe(event);
    this.live.ingest(event, arrivedAt);
    // Only health events need a time here; the rest would pay a clock read per event for nothing.
    if (HEALTH_TYPES.has(event.type)) this.health.observe(event, arrivedAt ?? this.clock.now());
    const watch = this.patternWatch;
    if (watch !== undefined && PATTERN_TYPES.has(event.type)) {
      this.patternsSeen++;
      watch.record(event as unknown as AnalysedEvent);
    }
  }

  /**
   * A `call` from the meter channel, counted in the metrics and the live view already: what else
   * {@link Monitor.record} does with the event (OpenTelemetry, pattern analysis), building no object
   * unless OpenTelemetry needs one.
   */
  private keepCall(
    source: string,
    at: number,
    kind: string,
    outcome: CallOutcome,
    durationMs: number,
    error: unknown,
  ): void {
    const openTelemetry = this.openTelemetry;
    if (openTelemetry !== undefined)
      openTelemetry.observe(callEvent(source, at, kind, outcome, durationMs, error));
    const watch = this.patternWatch;
    if (watch !== undefined) {
      this.patternsSeen++;
      watch.recordCall(source, at, kind, outcome, durationMs, error);
    }
  }

  /**
   * Lets the dashboard act on `target` (by its name): a circuit breaker gets "isolate" and "reset"
   * buttons. Other objects can pass their own actions. Returns the function that removes them.
   * @example
   * monitor.expose(breaker);                                  // isolate / reset
   * monitor.expose({ name: 'emails' }, { pause: () => queue.pause() });
   */
  expose(target: Controllable, actions?: Actions): () => void {
    const name = target?.name;
    if (typeof name !== 'string' || name === '')
      throw invalid('Monitor.expose', 'target.name', name, 'a non-empty string');
    let resolved = actions;
    if (resolved === undefined) {
      const t = target as Controllable & { isolate?: unknown; reset?: unknown };
      if (typeof t.isolate !== 'function' || typeof t.reset !== 'function') {
        throw invalid('Monitor.expose', 'actions', actions, 'given (target has no isolate() and reset())');
      }
      resolved = {
        isolate: () => (t.isolate as () => void).call(t),
        reset: () => (t.reset as () => void).call(t),
      };
    }
    this.controls.set(name, resolved);
    return () => {
      if (this.controls.get(name) === resolved) this.controls.delete(name);
    };
  }

  /** Runs a control action exposed with {@link Monitor.expose}; false when there is no such action. */
  async control(name: string, action: string): Promise<boolean> {
    const run = this.controls.get(name)?.[action];
    if (run === undefined || !Object.hasOwn(this.controls.get(name) as Actions, action)) return false;
    await run();
    return true;
  }

  /** The live view now (what the dashboard's stream sends). */
  snapshot(): MonitorSnapshot {
    const controls: Record<string, string[]> = {};
    for (const [name, actions] of this.controls) controls[name] = Object.keys(actions);
    return {
      ...this.live.snapshot(controls),
      health: this.health.snapshot(),
      alerts: this.alertsSnapshot(),
      patterns: this.patternsSnapshot(),
    };
  }

  /**
   * The alerts panel now: alerts, silences and outbox counts; `null` without alerting, or once its store
   * is closed (alerting may be closed before the monitor: the dashboard keeps serving without the panel).
   */
  alertsSnapshot(): AlertsSnapshot | null {
    if (this.alerts === undefined) return null;
    try {
      return alertsSnapshot(this.alerts);
    } catch {
      return null;
    }
  }

  /**
   * The failure-patterns panel: re-analysed when events arrived and `refreshMs` has passed since the last
   * analysis (it reads up to `limit` events, too much to redo every second); `null` when off.
   */
  patternsSnapshot(): PatternsSnapshot | null {
    if (this.patternWatch === undefined) return null;
    const now = this.clock.now();
    const cached = this.patternsCache;
    if (
      cached !== undefined &&
      (cached.seen === this.patternsSeen || now - cached.at < this.patternsRefreshMs)
    ) {
      return cached.view;
    }
    const view = patternsSnapshot(this.patternWatch.report());
    this.patternsCache = { at: now, seen: this.patternsSeen, view };
    return view;
  }

  /**
   * Per-minute history of one name, oldest first, including the minute in progress (so far). Without a
   * history store, only the minute in progress.
   */
  query(query: HistoryQuery): HistoryPoint[] {
    const points = this.history?.query(query) ?? [];
    this.live.tick();
    const current = this.live.currentRow(query.scope, query.name);
    const to = query.to ?? this.clock.now();
    const from = query.from ?? to - 3_600_000;
    if (current === undefined || current.minute < from || current.minute >= to) return points;
    const last = points.at(-1);
    // Written before a restart within this same minute: merge as the store would.
    const point =
      last !== undefined && last.minute === current.minute ? last : { minute: current.minute, values: {} };
    if (point !== last) points.push(point);
    for (const [metric, value] of Object.entries(current.sums))
      point.values[metric] = (point.values[metric] ?? 0) + value;
    for (const [metric, value] of Object.entries(current.maxima)) {
      point.values[metric] = Math.max(point.values[metric] ?? Number.NEGATIVE_INFINITY, value);
    }
    return points;
  }

  /** A handler serving the Prometheus exposition text, for any Node HTTP server. */
  metricsHandler(): (request: IncomingMessage, response: ServerResponse) => void {
    return this.metrics.handler();
  }

  /**
   * Starts the dashboard server (127.0.0.1:7420 unless told otherwise).
   * @example
   * const dashboard = await monitor.serve({ port: 0 });
   * console.log(dashboard.url);
   */
  async serve(options: DashboardServerOptions = {}): Promise<DashboardServer> {
    if (this.closed) throw invalid('Monitor.serve', 'monitor', 'closed', 'open (not closed)');
    const { startDashboard } = await import('./dashboard/server.js');
    const server = await startDashboard(this, options);
    this.servers.add(server);
    server.closed.then(() => this.servers.delete(server));
    return server;
  }

  /** Detaches from every source, stops the servers, writes the unfinished minute and closes the history. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const detach of [...this.detachers]) detach();
    await Promise.all([...this.servers].map((s) => s.close()));
    this.closed = true;
    this.patternWatch?.close();
    this.live.flush();
    this.openTelemetry?.close();
    this.history?.close();
  }
}

/** Creates a {@link Monitor}. */
export function createMonitor(options?: MonitorOptions): Monitor {
  return new Monitor(options);
}
