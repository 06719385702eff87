/**
 * Runtime events → OpenTelemetry metrics, for services that export through an OTel SDK. The names are the
 * dotted form of DESIGN.md's Prometheus names, with the unit in `unit` instead of a suffix and no `_total`
 * (OTel's Prometheus exporter adds both back, so `bulwark.calls` is scraped as `bulwark_calls_total` and
 * `bulwark.call.duration` with unit `s` as `bulwark_call_duration_seconds`). The attributes are the
 * Prometheus labels.
 *
 * Only the types of `@opentelemetry/api` are imported: the caller passes its `Meter`, so the package is
 * needed only by those who use it (it is an optional peer dependency).
 */
import type {
  Attributes,
  Counter,
  Histogram,
  Meter,
  ObservableGauge,
  ObservableResult,
} from '@opentelemetry/api';
import type { BulwarkEvent, CallOutcome, CircuitStateName, EventSink } from '../core/events.js';
import { intOption, invalid, knownKeys } from '../policy/options.js';
import { JOB_STATES, type JobState } from '../queue/events.js';
import {
  attachCounter,
  BoundedNames,
  CIRCUIT_STATES,
  DEFAULT_BUCKETS,
  FiringAlerts,
  METRIC_HELP,
} from './metrics.js';

/** Bulwark's OpenTelemetry instrument names. */
export const OTEL_METRIC_NAMES = {
  calls: 'bulwark.calls',
  callDuration: 'bulwark.call.duration',
  retryAttempts: 'bulwark.retry.attempts',
  circuitState: 'bulwark.circuit.state',
  circuitTransitions: 'bulwark.circuit.transitions',
  bulkheadActive: 'bulwark.bulkhead.active',
  bulkheadRejected: 'bulwark.bulkhead.rejected',
  queueDepth: 'bulwark.queue.depth',
  queueJobs: 'bulwark.queue.jobs',
  queueFailover: 'bulwark.queue.failover',
  faultsInjected: 'bulwark.faults.injected',
  healthUp: 'bulwark.health.up',
  restarts: 'bulwark.restarts',
  alertsFiring: 'bulwark.alerts.firing',
} as const;

export interface OpenTelemetryMetricsOptions {
  /** The meter the instruments are created on, e.g. `metrics.getMeter('bulwark')` from `@opentelemetry/api`. */
  meter: Meter;
  /** Explicit bucket boundaries advised for `bulwark.call.duration`, in seconds. @defaultValue 1 ms … 30 s */
  buckets?: readonly number[];
  /** Distinct names (policies, queues, faults) with their own attributes; later ones share `_overflow`. @defaultValue 1000 */
  maxNames?: number;
}

/**
 * OpenTelemetry instruments fed by runtime events.
 * @example
 * import { metrics } from '@opentelemetry/api';
 * const otel = new OpenTelemetryMetrics({ meter: metrics.getMeter('bulwark') });
 * otel.attach(runtime.events);
 */
export class OpenTelemetryMetrics {
  private readonly names: BoundedNames;
  private readonly calls: Counter;
  private readonly callDuration: Histogram;
  private readonly retryAttempts: Counter;
  private readonly circuitTransitions: Counter;
  private readonly bulkheadRejected: Counter;
  private readonly queueJobs: Counter;
  private readonly queueFailover: Counter;
  private readonly faultsInjected: Counter;
  private readonly restarts: Counter;
  private readonly health = new Map<string, { component: string; probe: string; up: number }>();
  private readonly firing = new FiringAlerts();
  private readonly gauges: ObservableGauge[] = [];
  private readonly callbacks: [ObservableGauge, (result: ObservableResult) => void][] = [];
  /** Attribute objects are built once per name and outcome, not per event. */
  private readonly callAttributes = new Map<string, Record<CallOutcome, Attributes>>();
  private readonly circuitStates = new Map<string, CircuitStateName>();
  private readonly bulkheads = new Map<string, number>();
  private readonly depths = new Map<string, Readonly<Record<JobState, number>>>();

  constructor(options: OpenTelemetryMetricsOptions) {
    const where = 'OpenTelemetryMetrics';
    if (typeof options !== 'object' || options === null)
      throw invalid(where, 'options', options, 'an object');
    knownKeys(where, options, ['meter', 'buckets', 'maxNames']);
    const meter = options.meter;
    if (typeof meter !== 'object' || meter === null || typeof meter.createCounter !== 'function') {
      throw invalid(where, 'meter', meter, 'an OpenTelemetry Meter');
    }
    const buckets = options.buckets ?? DEFAULT_BUCKETS;
    if (!Array.isArray(buckets) || buckets.some((b, i) => !(b > 0) || (i > 0 && b <= buckets[i - 1]))) {
      throw invalid(where, 'buckets', buckets, 'an ascending array of numbers > 0 (seconds)');
    }
    this.names = new BoundedNames(intOption(where, 'maxNames', options.maxNames, 1000, 1, 1_000_000));
    const n = OTEL_METRIC_NAMES;
    this.calls = meter.createCounter(n.calls, {
      description: METRIC_HELP.calls,
      unit: '{call}',
    });
    this.callDuration = meter.createHistogram(n.callDuration, {
      description: METRIC_HELP.callDuration,
      unit: 's',
      advice: { explicitBucketBoundaries: [...buckets] },
    });
    this.retryAttempts = meter.createCounter(n.retryAttempts, {
      description: METRIC_HELP.retryAttempts,
      unit: '{attempt}',
    });
    this.circuitTransitions = meter.createCounter(n.circuitTransitions, {
      description: METRIC_HELP.circuitTransitions,
      unit: '{transition}',
    });
    this.bulkheadRejected = meter.createCounter(n.bulkheadRejected, {
      description: METRIC_HELP.bulkheadRejected,
      unit: '{call}',
    });
    this.queueJobs = meter.createCounter(n.queueJobs, {
      description: METRIC_HELP.queueJobs,
      unit: '{job}',
    });
    this.queueFailover = meter.createCounter(n.queueFailover, {
      description: METRIC_HELP.queueFailover,
      unit: '{failover}',
    });
    this.faultsInjected = meter.createCounter(n.faultsInjected, {
      description: METRIC_HELP.faultsInjected,
      unit: '{fault}',
    });
    this.restarts = meter.createCounter(n.restarts, {
      description: METRIC_HELP.restarts,
      unit: '{restart}',
    });
    // Gauges are observed at collection time from the last state seen (works with every API 1.x).
    this.gauge(meter, n.healthUp, METRIC_HELP.healthUp, (result) => {
      for (const { component, probe, up } of this.health.values()) result.observe(up, { component, probe });
    });
    this.gauge(meter, n.alertsFiring, METRIC_HELP.alertsFiring, (result) => {
      for (const [rule, count] of this.firing.counts()) result.observe(count, { rule });
    });
    this.gauge(meter, n.circuitState, METRIC_HELP.circuitState, (result) => {
      for (const [policy, current] of this.circuitStates) {
        for (const state of CIRCUIT_STATES) result.observe(state === current ? 1 : 0, { policy, state });
      }
    });
    this.gauge(meter, n.bulkheadActive, METRIC_HELP.bulkheadActive, (result) => {
      for (const [policy, active] of this.bulkheads) result.observe(active, { policy });
    });
    this.gauge(meter, n.queueDepth, METRIC_HELP.queueDepth, (result) => {
      for (const [queue, depth] of this.depths) {
        for (const state of JOB_STATES) result.observe(depth[state] ?? 0, { queue, state });
      }
    });
  }

  /**
   * Subscribes to the event types the instruments read; returns the function that unsubscribes (`call`
   * and `bulkhead.changed` through the sink's meter channel, as {@link PrometheusMetrics.attach} does).
   */
  attach(events: EventSink): () => void {
    return attachCounter(events, this);
  }

  /** Records one event (events of other types are ignored). */
  observe(event: BulwarkEvent): void {
    switch (event.type) {
      case 'call':
        this.countCall(event.source, event.outcome, event.durationMs);
        return;
      case 'retry':
        this.retryAttempts.add(1, { policy: this.bounded(event.source) });
        return;
      case 'policy.created':
        if (event.kind === 'circuitBreaker') this.circuitStates.set(this.bounded(event.source), 'closed');
        return;
      case 'circuit.transition': {
        const policy = this.bounded(event.source);
        this.circuitStates.set(policy, event.to);
        this.circuitTransitions.add(1, { policy, from: event.from, to: event.to });
        return;
      }
      case 'bulkhead.changed':
        this.setBulkhead(event.source, event.active);
        return;
      case 'bulkhead.rejected':
        this.bulkheadRejected.add(1, { policy: this.bounded(event.source) });
        return;
      case 'queue.depth':
        this.depths.set(this.bounded(event.source), event.depth);
        return;
      case 'queue.job':
        this.queueJobs.add(1, { queue: this.bounded(event.source), outcome: event.outcome });
        return;
      case 'queue.failover':
        this.queueFailover.add(1, {
          from: this.bounded(event.from),
          to: this.bounded(event.to),
          reason: event.reason,
        });
        return;
      case 'health.check': {
        const component = this.bounded(event.component);
        this.health.set(`${component}\u0000${event.probe}`, {
          component,
          probe: event.probe,
          up: event.healthy ? 1 : 0,
        });
        return;
      }
      case 'supervisor.child':
        if (event.state === 'restarting') {
          this.restarts.add(1, { component: this.bounded(event.child), reason: event.reason });
        }
        return;
      case 'alert.state':
        this.firing.observe(this.bounded(event.rule), event.state, event.labels);
        return;
      case 'fault.injected':
        this.faultsInjected.add(1, { fault: this.bounded(event.source) });
        return;
      default:
        return;
    }
  }

  /** @internal A `call` event's fields (what {@link OpenTelemetryMetrics.observe} does with one). */
  countCall(source: string, outcome: CallOutcome, durationMs: number): void {
    const attributes = this.callAttributesOf(source)[outcome];
    this.calls.add(1, attributes);
    this.callDuration.record(durationMs / 1000, attributes);
  }

  /** @internal A `bulkhead.changed` event's fields. */
  setBulkhead(source: string, active: number): void {
    this.bulkheads.set(this.bounded(source), active);
  }

  /** Removes the gauge callbacks from the meter. */
  close(): void {
    for (const [gauge, callback] of this.callbacks.splice(0)) gauge.removeCallback(callback);
  }

  private gauge(
    meter: Meter,
    name: string,
    description: string,
    callback: (result: ObservableResult) => void,
  ) {
    const gauge = meter.createObservableGauge(name, { description });
    gauge.addCallback(callback);
    this.gauges.push(gauge);
    this.callbacks.push([gauge, callback]);
  }

  private bounded(name: string): string {
    return this.names.label(name);
  }

  private callAttributesOf(source: string): Record<CallOutcome, Attributes> {
    const policy = this.bounded(source);
    let attributes = this.callAttributes.get(policy);
    if (attributes === undefined) {
      attributes = {
        success: { policy, outcome: 'success' },
        failure: { policy, outcome: 'failure' },
        rejected: { policy, outcome: 'rejected' },
        timeout: { policy, outcome: 'timeout' },
        cancelled: { policy, outcome: 'cancelled' },
        fallback: { policy, outcome: 'fallback' },
      };
      this.callAttributes.set(policy, attributes);
    }
    return attributes;
  }
}
