/**
 * Runtime events → Prometheus metrics (prom-client), with the names and labels of DESIGN.md. Each
 * instance owns a private registry, so two monitors in one process never share series, and the
 * process-global `prom-client` registry is left to the application.
 *
 * Per-event cost is kept small. `call` events (one per policy per call, the hot path) are counted in
 * plain typed arrays — through a per-policy {@link SourceMeter} that holds its policy's arrays, three
 * increments and a bucket search — and handed to prom-client
 * only when the registry is collected (a scrape). prom-client's own `inc`/`observe` hash their labels on
 * every call, which costs about a microsecond each. The other events are rare and go to prom-client
 * directly.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, type Histogram, Registry } from 'prom-client';
import {
  type BulwarkEvent,
  type BulwarkEventType,
  CALL_OUTCOME_INDEX,
  CALL_OUTCOMES,
  type CallOutcome,
  type CircuitStateName,
  type EventSink,
  type GroupMeter,
  type SourceMeter,
  type SourceState,
} from '../core/events.js';
import { intOption, invalid, knownKeys } from '../policy/options.js';
import { JOB_STATES, type JobOutcome } from '../queue/events.js';
import type { AlertState } from './alerts/events.js';
import type {} from './health/events.js';

/** Bulwark's Prometheus metric names, as documented in DESIGN.md. */
export const METRIC_NAMES = {
  calls: 'bulwark_calls_total',
  callDuration: 'bulwark_call_duration_seconds',
  retryAttempts: 'bulwark_retry_attempts_total',
  circuitState: 'bulwark_circuit_state',
  circuitTransitions: 'bulwark_circuit_transitions_total',
  bulkheadActive: 'bulwark_bulkhead_active',
  bulkheadRejected: 'bulwark_bulkhead_rejected_total',
  queueDepth: 'bulwark_queue_depth',
  queueJobs: 'bulwark_queue_jobs_total',
  queueFailover: 'bulwark_queue_failover_total',
  faultsInjected: 'bulwark_faults_injected_total',
  healthUp: 'bulwark_health_up',
  restarts: 'bulwark_restarts_total',
  alertsFiring: 'bulwark_alerts_firing',
} as const;

/** What each metric counts: Prometheus's HELP and OpenTelemetry's description. */
export const METRIC_HELP: Readonly<Record<keyof typeof METRIC_NAMES, string>> = {
  calls: 'Calls through a policy, by outcome.',
  callDuration: 'Duration of calls through a policy, by outcome.',
  retryAttempts: 'Retries made by a retry policy (attempts after the first).',
  circuitState: 'Circuit breaker state, one-hot: 1 for the current state, 0 for the others.',
  circuitTransitions: 'Circuit breaker state transitions (counts opens shorter than a scrape interval).',
  bulkheadActive: 'Calls running inside a bulkhead.',
  bulkheadRejected: 'Calls a full bulkhead rejected.',
  queueDepth: 'Jobs in a queue, by state.',
  queueJobs: 'Job lifecycle events of a queue, by outcome.',
  queueFailover: 'Work a failover queue sent to its fallback, by reason.',
  faultsInjected: 'Faults injected, by fault name.',
  healthUp: "A component's probe after its thresholds: 1 healthy, 0 not.",
  restarts: 'Restarts of a supervised component, by reason.',
  alertsFiring: 'Alerts firing, by rule (one per firing series of labels).',
};

/** The event types a sink's meter channel carries (see {@link EventMeter}). */
export const METERED_EVENT_TYPES: readonly BulwarkEventType[] = ['call', 'bulkhead.changed'];
const METERED: ReadonlySet<BulwarkEventType> = new Set(METERED_EVENT_TYPES);

/** @internal What the metric bridges (Prometheus, OpenTelemetry) count. */
export interface EventCounter {
  observe(event: BulwarkEvent): void;
  countCall(source: string, outcome: CallOutcome, durationMs: number): void;
  setBulkhead(source: string, active: number): void;
  /**
   * The same counting for one source, with that source's series resolved once; `readsState` when the
   * source's state was lent (`lend`), so its bulkhead changes need not be told.
   */
  forSource?(source: string, readsState: boolean): SourceMeter;
  /** Its parts (from `forSource`) for sources whose calls succeed together, counted at once. */
  forGroup?(parts: readonly SourceMeter[]): GroupMeter | undefined;
  /** Reads `state` for the gauge of `source` from now on; false when it will not (it is told instead). */
  lend?(source: string, state: SourceState): boolean;
  /** Stops reading `state` (once for each `lend` that returned true). */
  unlend?(state: SourceState): void;
}

/**
 * @internal Subscribes a metric bridge to `events`: the per-call types through the meter channel (their
 * fields, no event object), the other types it reads as events. Returns the function that unsubscribes.
 */
export function attachCounter(events: EventSink, counter: EventCounter): () => void {
  const unsubscribe = events.subscribe(
    (event) => counter.observe(event),
    METRIC_EVENT_TYPES.filter((type) => !METERED.has(type)),
  );
  // The states this attachment lent to the counter, given back when it detaches.
  const lent = new Set<SourceState>();
  /** Whether the counter reads `state` (lent now or before), so its changes need not be told. */
  const reads = (source: string, state: SourceState | undefined): boolean => {
    if (state === undefined) return false;
    if (!lent.has(state)) {
      if (counter.lend?.(source, state) !== true) return false;
      lent.add(state);
    }
    return true;
  };
  const forSource = counter.forSource?.bind(counter);
  const forGroup = counter.forGroup?.bind(counter);
  const unmeter = events.meter({
    call: (source, _at, _kind, outcome, durationMs) => counter.countCall(source, outcome, durationMs),
    bulkheadChanged: (source, _at, active) => counter.setBulkhead(source, active),
    ...(forSource === undefined
      ? {}
      : {
          forSource: (source: string, _kind: string, state?: SourceState) =>
            forSource(source, reads(source, state)),
        }),
    ...(forGroup === undefined ? {} : { forGroup }),
  });
  return () => {
    unsubscribe();
    unmeter();
    for (const state of lent) counter.unlend?.(state);
    lent.clear();
  };
}

/** The event types the metrics read. */
export const METRIC_EVENT_TYPES: readonly BulwarkEventType[] = [
  'policy.created',
  'call',
  'retry',
  'circuit.transition',
  'bulkhead.changed',
  'bulkhead.rejected',
  'queue.depth',
  'queue.job',
  'queue.failover',
  'fault.injected',
  'health.check',
  'supervisor.child',
  'alert.state',
];

export const CIRCUIT_STATES: readonly CircuitStateName[] = ['closed', 'open', 'half-open', 'isolated'];

/** The label value that replaces names beyond {@link PrometheusMetricsOptions.maxNames}. */
export const OVERFLOW_LABEL = '_overflow';

/**
 * @internal The names (policies, queues, faults) a metric bridge gives series of their own: the first
 * `max` seen; later ones are all {@link OVERFLOW_LABEL}, so a bug that names policies after request ids
 * cannot grow the series forever.
 */
export class BoundedNames {
  private readonly names = new Set<string>();
  constructor(private readonly max: number) {}

  /** `name`, or the overflow label once `max` other names are taken. */
  label(name: string): string {
    if (this.names.has(name)) return name;
    if (this.names.size >= this.max) return OVERFLOW_LABEL;
    this.names.add(name);
    return name;
  }

  clear(): void {
    this.names.clear();
  }
}

/** Default latency buckets, in seconds: 1 ms to 30 s. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

export interface PrometheusMetricsOptions {
  /**
   * The registry the metrics are registered in.
   * @defaultValue a new private `Registry` (never prom-client's global one)
   */
  registry?: Registry;
  /** Upper bounds of `bulwark_call_duration_seconds`, in seconds, ascending. @defaultValue 1 ms … 30 s */
  buckets?: readonly number[];
  /**
   * How many distinct names (policies, queues, faults) get their own series; later names are counted
   * under `_overflow`, so a bug that names policies after request ids cannot grow the registry forever.
   * @defaultValue 1000
   */
  maxNames?: number;
}

/** Calls of one policy: per outcome a count, a sum of seconds and (non-cumulative) bucket counts. */
class CallSeries {
  readonly counts = new Float64Array(CALL_OUTCOMES.length);
  readonly sums = new Float64Array(CALL_OUTCOMES.length);
  readonly buckets: Float64Array;
  constructor(
    readonly policy: string,
    readonly width: number,
  ) {
    this.buckets = new Float64Array(CALL_OUTCOMES.length * width);
  }
}

/** Counts one call of outcome `o` (its index in CALL_OUTCOMES) that took `durationMs`. */
function countInto(series: CallSeries, bounds: Float64Array, o: number, durationMs: number): void {
  const seconds = durationMs / 1000;
  countIn(series, o, seconds, bucketOf(bounds, seconds));
}

/** The bucket of a duration in seconds: the first bound it does not exceed (`bounds.length`: +Inf). */
function bucketOf(bounds: Float64Array, seconds: number): number {
  let b = 0;
  while (b < bounds.length && seconds > (bounds[b] as number)) b++;
  return b;
}

/** Counts one call of outcome `o` that took `seconds`, in bucket `b`. */
function countIn(series: CallSeries, o: number, seconds: number, b: number): void {
  const counts = series.counts;
  const sums = series.sums;
  counts[o] = (counts[o] as number) + 1;
  sums[o] = (sums[o] as number) + seconds;
  const i = o * series.width + b;
  series.buckets[i] = (series.buckets[i] as number) + 1;
}

/**
 * The `bulwark_bulkhead_active` value of one label: the last `bulkhead.changed` told, plus the states
 * lent by the bulkheads of attached sinks under that label, read at collection (a gauge needs no more).
 * Several bulkheads under one label (one name twice, or names beyond `maxNames` sharing `_overflow`)
 * add up.
 */
class BulkheadGauge {
  active = 0;
  readonly lent = new Set<SourceState>();
  get value(): number {
    let value = this.active;
    for (const state of this.lent) value += state.active;
    return value;
  }
}

/** The most states one gauge reads; bulkheads beyond (one name used over and over) are told instead. */
const MAX_LENT_PER_GAUGE = 64;

/**
 * One policy's part of a {@link PrometheusMetrics}: its call series and bulkhead gauge, looked up on first
 * use and again after `reset()`. A bulkhead that lent its state (`readsState`) is read at collection
 * instead of being told of each change.
 */
class PrometheusSource implements SourceMeter {
  private epoch = -1;
  private series: CallSeries | undefined;
  private gauge: BulkheadGauge | undefined;

  constructor(
    private readonly metrics: PrometheusMetrics,
    private readonly source: string,
    readonly readsState: boolean,
  ) {}

  call(_at: number, outcome: number, durationMs: number): void {
    const metrics = this.metrics;
    if (this.epoch !== metrics.epoch) this.renew();
    this.series ??= metrics.callSeriesOf(this.source);
    countInto(this.series, metrics.bounds, outcome, durationMs);
  }

  /** A group of this metrics' parts (see `EventMeter.forGroup`); undefined if a part is another meter's. */
  static group(metrics: PrometheusMetrics, parts: readonly SourceMeter[]): GroupMeter | undefined {
    const sources: string[] = [];
    for (const part of parts) {
      if (!(part instanceof PrometheusSource) || part.metrics !== metrics) return undefined;
      sources.push(part.source);
    }
    return new PrometheusGroup(metrics, sources);
  }

  bulkheadChanged(_at: number, active: number): void {
    const metrics = this.metrics;
    if (this.epoch !== metrics.epoch) this.renew();
    this.gauge ??= metrics.bulkheadGauge(this.source);
    this.gauge.active = active;
  }

  private renew(): void {
    this.epoch = this.metrics.epoch;
    this.series = undefined;
    this.gauge = undefined;
  }
}

/**
 * Successes counted in several policies' series at once: the series looked up together (on first use and
 * again after `reset()`), the bucket searched once.
 */
class PrometheusGroup implements GroupMeter {
  private epoch = -1;
  private series: readonly CallSeries[] = [];

  constructor(
    private readonly metrics: PrometheusMetrics,
    private readonly sources: readonly string[],
  ) {}

  succeeded(_at: number, durationMs: number): void {
    const metrics = this.metrics;
    if (this.epoch !== metrics.epoch) {
      this.epoch = metrics.epoch;
      this.series = this.sources.map((source) => metrics.callSeriesOf(source));
    }
    const seconds = durationMs / 1000;
    const b = bucketOf(metrics.bounds, seconds);
    const series = this.series;
    for (let i = 0; i < series.length; i++) {
      countIn(series[i] as CallSeries, CALL_OUTCOME_INDEX.success, seconds, b);
    }
  }
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/**
 * Prometheus metrics fed by runtime events.
 * @example
 * const metrics = new PrometheusMetrics();
 * metrics.attach(runtime.events);
 * http.createServer(metrics.handler()).listen(9464); // GET /metrics
 */
export class PrometheusMetrics {
  readonly registry: Registry;
  private readonly names: BoundedNames;
  private readonly calls: Counter<string>;
  /** @internal Upper bounds of the duration buckets, in seconds. */
  readonly bounds: Float64Array;
  /** @internal Moves on every `reset()`: the per-source parts look their series up again. */
  epoch = 0;
  private readonly retryAttempts: Counter<string>;
  private readonly circuitState: Gauge<string>;
  private readonly circuitTransitions: Counter<string>;
  private readonly bulkheadActive: Gauge<string>;
  private readonly bulkheadRejected: Counter<string>;
  private readonly queueDepth: Gauge<string>;
  private readonly queueJobs: Counter<string>;
  private readonly queueFailover: Counter<string>;
  private readonly faultsInjected: Counter<string>;
  private readonly healthUp: Gauge<string>;
  private readonly restarts: Counter<string>;
  private readonly firing = new FiringAlerts();
  private readonly callSeries = new Map<string, CallSeries>();
  /** Active calls per bulkhead label, and the same holders by source name (sources within maxNames). */
  private readonly bulkheads = new Map<string, BulkheadGauge>();
  private readonly bulkheadsBySource = new Map<string, BulkheadGauge>();
  /** The states lent by bulkheads of attached sinks, by state: where they are read, and how often lent. */
  private readonly lenders = new Map<SourceState, { source: string; gauge: BulkheadGauge; count: number }>();

  constructor(options: PrometheusMetricsOptions = {}) {
    const where = 'PrometheusMetrics';
    knownKeys(where, options, ['registry', 'buckets', 'maxNames']);
    if (options.registry !== undefined && !(options.registry instanceof Registry)) {
      throw invalid(where, 'registry', options.registry, 'a prom-client Registry');
    }
    const buckets = options.buckets ?? DEFAULT_BUCKETS;
    if (
      !Array.isArray(buckets) ||
      buckets.length === 0 ||
      buckets.some(
        (b, i) => typeof b !== 'number' || !(b > 0) || !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]),
      )
    ) {
      throw invalid(where, 'buckets', buckets, 'a non-empty ascending array of finite numbers > 0 (seconds)');
    }
    this.names = new BoundedNames(intOption(where, 'maxNames', options.maxNames, 1000, 1, 1_000_000));
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    const registers = [registry];
    this.bounds = Float64Array.from(buckets);
    const callSeries = this.callSeries;
    this.calls = new Counter({
      name: METRIC_NAMES.calls,
      help: METRIC_HELP.calls,
      labelNames: ['policy', 'outcome'],
      registers,
      collect() {
        this.reset();
        for (const series of callSeries.values()) {
          for (let o = 0; o < CALL_OUTCOMES.length; o++) {
            const count = series.counts[o] as number;
            if (count > 0) this.inc({ policy: series.policy, outcome: CALL_OUTCOMES[o] as string }, count);
          }
        }
      },
    });
    registry.registerMetric(this.durationMetric() as unknown as Histogram);
    this.retryAttempts = new Counter({
      name: METRIC_NAMES.retryAttempts,
      help: METRIC_HELP.retryAttempts,
      labelNames: ['policy'],
      registers,
    });
    this.circuitState = new Gauge({
      name: METRIC_NAMES.circuitState,
      help: METRIC_HELP.circuitState,
      labelNames: ['policy', 'state'],
      registers,
    });
    this.circuitTransitions = new Counter({
      name: METRIC_NAMES.circuitTransitions,
      help: METRIC_HELP.circuitTransitions,
      labelNames: ['policy', 'from', 'to'],
      registers,
    });
    const bulkheads = this.bulkheads;
    // `bulkhead.changed` comes twice per call (enter, leave): kept in a map (or the bulkhead's state read
    // then), set on collection.
    this.bulkheadActive = new Gauge({
      name: METRIC_NAMES.bulkheadActive,
      help: METRIC_HELP.bulkheadActive,
      labelNames: ['policy'],
      registers,
      collect() {
        for (const [policy, held] of bulkheads) this.set({ policy }, held.value);
      },
    });
    this.bulkheadRejected = new Counter({
      name: METRIC_NAMES.bulkheadRejected,
      help: METRIC_HELP.bulkheadRejected,
      labelNames: ['policy'],
      registers,
    });
    this.queueDepth = new Gauge({
      name: METRIC_NAMES.queueDepth,
      help: METRIC_HELP.queueDepth,
      labelNames: ['queue', 'state'],
      registers,
    });
    this.queueJobs = new Counter({
      name: METRIC_NAMES.queueJobs,
      help: METRIC_HELP.queueJobs,
      labelNames: ['queue', 'outcome'],
      registers,
    });
    this.queueFailover = new Counter({
      name: METRIC_NAMES.queueFailover,
      help: METRIC_HELP.queueFailover,
      labelNames: ['from', 'to', 'reason'],
      registers,
    });
    this.faultsInjected = new Counter({
      name: METRIC_NAMES.faultsInjected,
      help: METRIC_HELP.faultsInjected,
      labelNames: ['fault'],
      registers,
    });
    this.healthUp = new Gauge({
      name: METRIC_NAMES.healthUp,
      help: METRIC_HELP.healthUp,
      labelNames: ['component', 'probe'],
      registers,
    });
    this.restarts = new Counter({
      name: METRIC_NAMES.restarts,
      help: METRIC_HELP.restarts,
      labelNames: ['component', 'reason'],
      registers,
    });
    const firing = this.firing;
    new Gauge({
      name: METRIC_NAMES.alertsFiring,
      help: METRIC_HELP.alertsFiring,
      labelNames: ['rule'],
      registers,
      collect() {
        this.reset();
        for (const [rule, count] of firing.counts()) this.set({ rule }, count);
      },
    });
  }

  /** The content type of {@link PrometheusMetrics.text}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Subscribes to the event types the metrics read; returns the function that unsubscribes. `call` and
   * `bulkhead.changed`, several per call, come through the sink's meter channel (their fields, no
   * event object); the rest as events.
   */
  attach(events: EventSink): () => void {
    return attachCounter(events, this);
  }

  /**
   * A request handler for any Node HTTP server: answers every request with the exposition text
   * (mount it on `/metrics`).
   */
  handler(): (request: IncomingMessage, response: ServerResponse) => void {
    return (_request, response) => {
      this.text().then(
        (text) => {
          response.writeHead(200, { 'content-type': this.contentType, 'cache-control': 'no-store' });
          response.end(text);
        },
        (error: unknown) => {
          response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          response.end(`cannot collect metrics: ${error instanceof Error ? error.message : String(error)}\n`);
        },
      );
    };
  }

  /** Records one event (events of other types are ignored). */
  observe(event: BulwarkEvent): void {
    switch (event.type) {
      case 'call':
        this.countCall(event.source, event.outcome, event.durationMs);
        return;
      case 'retry':
        this.retryAttempts.labels(this.bounded(event.source)).inc();
        return;
      case 'policy.created':
        if (event.kind === 'circuitBreaker') this.setCircuitState(event.source, 'closed');
        return;
      case 'circuit.transition': {
        const policy = this.bounded(event.source);
        this.setCircuitState(policy, event.to);
        this.circuitTransitions.labels(policy, event.from, event.to).inc();
        return;
      }
      case 'bulkhead.changed':
        this.setBulkhead(event.source, event.active);
        return;
      case 'bulkhead.rejected':
        this.bulkheadRejected.labels(this.bounded(event.source)).inc();
        return;
      case 'queue.depth': {
        const queue = this.bounded(event.source);
        for (const state of JOB_STATES) this.queueDepth.labels(queue, state).set(event.depth[state] ?? 0);
        return;
      }
      case 'queue.job':
        this.queueJobs.labels(this.bounded(event.source), event.outcome satisfies JobOutcome).inc();
        return;
      case 'queue.failover':
        this.queueFailover.labels(this.bounded(event.from), this.bounded(event.to), event.reason).inc();
        return;
      case 'fault.injected':
        this.faultsInjected.labels(this.bounded(event.source)).inc();
        return;
      case 'health.check':
        this.healthUp.labels(this.bounded(event.component), event.probe).set(event.healthy ? 1 : 0);
        return;
      case 'supervisor.child':
        if (event.state === 'restarting') this.restarts.labels(this.bounded(event.child), event.reason).inc();
        return;
      case 'alert.state':
        this.firing.observe(this.bounded(event.rule), event.state, event.labels);
        return;
      default:
        return;
    }
  }

  /** @internal A `call` event's fields (what {@link PrometheusMetrics.observe} does with one). */
  countCall(source: string, outcome: CallOutcome, durationMs: number): void {
    countInto(this.callSeriesOf(source), this.bounds, CALL_OUTCOME_INDEX[outcome], durationMs);
  }

  /** @internal A `bulkhead.changed` event's fields. */
  setBulkhead(source: string, active: number): void {
    this.bulkheadGauge(source).active = active;
  }

  /**
   * @internal The counting of one source's `call` and `bulkhead.changed` events with its series looked
   * up once (see `EventMeter.forSource`): what the policies of an attached sink call.
   */
  forSource(source: string, readsState = false): SourceMeter {
    return new PrometheusSource(this, source, readsState);
  }

  /** @internal Its parts for several sources, counting a success in all at once (see `EventMeter.forGroup`). */
  forGroup(parts: readonly SourceMeter[]): GroupMeter | undefined {
    return PrometheusSource.group(this, parts);
  }

  /**
   * @internal Reads `state` (a bulkhead's) for the gauge of `source` from now on, also after `reset()`;
   * false when that gauge reads enough states already. Counted: as many `unlend` as `lend` that said true.
   */
  lend(source: string, state: SourceState): boolean {
    const held = this.lenders.get(state);
    if (held !== undefined) {
      held.count++;
      return true;
    }
    const gauge = this.bulkheadGauge(source);
    if (gauge.lent.size >= MAX_LENT_PER_GAUGE) return false;
    gauge.lent.add(state);
    this.lenders.set(state, { source, gauge, count: 1 });
    return true;
  }

  /** @internal Stops reading `state`; what it added to its gauge stays there, as the value it had. */
  unlend(state: SourceState): void {
    const held = this.lenders.get(state);
    if (held === undefined || --held.count > 0) return;
    this.lenders.delete(state);
    const gauge = held.gauge;
    gauge.active += state.active;
    gauge.lent.delete(state);
  }

  /** @internal Where the bulkhead gauge of `source` is held. */
  bulkheadGauge(source: string): BulkheadGauge {
    const held = this.bulkheadsBySource.get(source);
    if (held !== undefined) return held;
    const label = this.bounded(source);
    let holder = this.bulkheads.get(label);
    if (holder === undefined) {
      holder = new BulkheadGauge();
      this.bulkheads.set(label, holder);
    }
    // Names beyond maxNames share the overflow holder and are not remembered one by one.
    if (label === source) this.bulkheadsBySource.set(source, holder);
    return holder;
  }

  /** Clears every series (the registry keeps the metric definitions). */
  reset(): void {
    this.registry.resetMetrics();
    this.callSeries.clear();
    this.bulkheads.clear();
    this.bulkheadsBySource.clear();
    this.firing.clear();
    this.names.clear();
    this.epoch++;
    // Lent states are read again at once, under the labels their names get now.
    for (const [state, held] of this.lenders) {
      held.gauge = this.bulkheadGauge(held.source);
      held.gauge.lent.add(state);
    }
  }

  private bounded(name: string): string {
    return this.names.label(name);
  }

  private setCircuitState(policy: string, current: CircuitStateName): void {
    const bounded = this.bounded(policy);
    for (const state of CIRCUIT_STATES)
      this.circuitState.labels(bounded, state).set(state === current ? 1 : 0);
  }

  /** @internal The call series of `source` (the overflow series beyond `maxNames`). */
  callSeriesOf(source: string): CallSeries {
    let series = this.callSeries.get(source);
    if (series === undefined) {
      const policy = this.bounded(source);
      series = this.callSeries.get(policy) ?? new CallSeries(policy, this.bounds.length + 1);
      // Names beyond maxNames share the overflow series: the map holds at most maxNames + 1 keys.
      this.callSeries.set(policy, series);
    }
    return series;
  }

  /**
   * `bulwark_call_duration_seconds` as a metric object prom-client's registry formats like its own
   * histograms (cumulative `_bucket` with `le` first, then `_sum` and `_count`).
   */
  private durationMetric() {
    const name = METRIC_NAMES.callDuration;
    const help = METRIC_HELP.callDuration;
    const get = () => {
      const values: MetricValue[] = [];
      const bounds = this.bounds;
      for (const series of this.callSeries.values()) {
        for (let o = 0; o < CALL_OUTCOMES.length; o++) {
          const count = series.counts[o] as number;
          if (count === 0) continue;
          const labels = { policy: series.policy, outcome: CALL_OUTCOMES[o] as string };
          let cumulative = 0;
          for (let b = 0; b <= bounds.length; b++) {
            cumulative += series.buckets[o * series.width + b] as number;
            values.push({
              labels: { le: b < bounds.length ? (bounds[b] as number) : '+Inf', ...labels },
              value: cumulative,
              metricName: `${name}_bucket`,
            });
          }
          values.push({ labels, value: series.sums[o] as number, metricName: `${name}_sum` });
          values.push({ labels, value: count, metricName: `${name}_count` });
        }
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    };
    return { name, help, type: 'histogram', aggregator: 'sum', get: async () => get(), reset: () => {} };
  }
}

/**
 * Which alert series are firing, per rule, from `alert.state` events: a series (a rule and its labels)
 * counts from `firing` until `resolved` or `inactive`. Memory is bounded by the series the rules have.
 */
export class FiringAlerts {
  private readonly byRule = new Map<string, Set<string>>();

  observe(rule: string, state: AlertState, labels: Readonly<Record<string, string>>): void {
    const key = Object.keys(labels)
      .sort()
      .map((name) => `${name}=${labels[name]}`)
      .join(',');
    const series = this.byRule.get(rule);
    if (state === 'firing') {
      if (series === undefined) this.byRule.set(rule, new Set([key]));
      else series.add(key);
    } else if (state === 'resolved' || state === 'inactive') {
      series?.delete(key);
    }
  }

  /** Firing series per rule; a rule seen once stays listed (at 0) so the gauge does not vanish. */
  counts(): IterableIterator<[string, number]> {
    return [...this.byRule].map(([rule, series]): [string, number] => [rule, series.size]).values();
  }

  clear(): void {
    this.byRule.clear();
  }
}
