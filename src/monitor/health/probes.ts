/**
 * Health checks with Kubernetes probe semantics, in-process. Each component may have a `startup`, a
 * `liveness` and a `readiness` probe; each runs every `period` (after `initialDelay`), fails when its
 * check throws, returns `false` or outlasts `timeout`, and flips its state only after `failureThreshold`
 * failures (or `successThreshold` successes) in a row. While a startup probe has not succeeded, the other
 * two do not run. A liveness (or startup) probe that fails calls the component's `onUnhealthy` (restart it,
 * reset a breaker, …). Every result is a `health.check` event. `/healthz` and `/readyz` answer from the
 * probes' states.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Timer } from '../../core/clock.js';
import type { Duration } from '../../core/duration.js';
import { EventSink } from '../../core/events.js';
import { type Runtime, systemRuntime } from '../../core/runtime.js';
import { durationOption, functionOption, intOption, invalid, knownKeys } from '../../policy/options.js';
import { timeout } from '../../policy/timeout.js';
import type { ProbeKind } from './events.js';

/** A check: resolves (or returns) `true`/nothing when healthy; `false` or a throw means unhealthy. */
export type Check = (signal: AbortSignal) => boolean | undefined | Promise<boolean | undefined>;

export interface ProbeOptions {
  check: Check;
  /** Time between runs. @defaultValue `'10s'` */
  period?: Duration;
  /** A run that takes longer fails. @defaultValue `'1s'` */
  timeout?: Duration;
  /** Failures in a row that make the probe fail. @defaultValue `3` */
  failureThreshold?: number;
  /** Successes in a row that make a failed probe pass again (1 for liveness and startup, as in Kubernetes). @defaultValue `1` */
  successThreshold?: number;
  /** Wait before the first run. @defaultValue `0` */
  initialDelay?: Duration;
}

export interface ComponentHealthOptions {
  /** The component's name (`component` in events, metrics and alerts). */
  name: string;
  liveness?: ProbeOptions;
  readiness?: ProbeOptions;
  startup?: ProbeOptions;
  /** Called when the liveness (or startup) probe fails: the healing action (restart, reset, …). */
  onUnhealthy?: (probe: ProbeKind) => void | Promise<void>;
}

/** A probe's state, as the handlers report it. */
export interface ProbeStatus {
  readonly probe: ProbeKind;
  readonly healthy: boolean;
  readonly consecutiveFailures: number;
  readonly lastError: string | undefined;
  readonly lastRunAt: number | undefined;
}

export interface ComponentStatus {
  readonly name: string;
  readonly started: boolean;
  readonly live: boolean;
  readonly ready: boolean;
  readonly probes: readonly ProbeStatus[];
}

function message(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

class Probe {
  healthy: boolean;
  consecutiveFailures = 0;
  consecutiveSuccesses = 0;
  lastError: string | undefined;
  lastRunAt: number | undefined;
  timer: Timer | undefined;
  readonly periodMs: number;
  readonly initialDelayMs: number;
  readonly failureThreshold: number;
  readonly successThreshold: number;
  readonly deadline;

  constructor(
    readonly component: Component,
    readonly kind: ProbeKind,
    readonly options: ProbeOptions,
    runtime: Runtime,
  ) {
    const where = `health probe ${component.name}.${kind}`;
    knownKeys(where, options, [
      'check',
      'period',
      'timeout',
      'failureThreshold',
      'successThreshold',
      'initialDelay',
    ]);
    if (typeof options.check !== 'function') throw invalid(where, 'check', options.check, 'a function');
    this.periodMs = durationOption(where, 'period', options.period, 10_000, 0, true);
    const timeoutMs = durationOption(where, 'timeout', options.timeout, 1000, 0, true);
    this.initialDelayMs = durationOption(where, 'initialDelay', options.initialDelay, 0);
    this.failureThreshold = intOption(where, 'failureThreshold', options.failureThreshold, 3, 1);
    this.successThreshold = intOption(where, 'successThreshold', options.successThreshold, 1, 1);
    if (kind !== 'readiness' && this.successThreshold !== 1) {
      throw invalid(
        where,
        'successThreshold',
        options.successThreshold,
        '1 for liveness and startup probes (as in Kubernetes)',
      );
    }
    // A silent sink: the probe reports itself as `health.check`; its deadline's `call` events would count
    // as the component's own calls in rules and pattern analysis.
    this.deadline = timeout(timeoutMs, {
      runtime: { clock: runtime.clock, random: runtime.random, events: new EventSink() },
      name: `${component.name}.${kind}`,
    });
    // Kubernetes: a container is live until its liveness probe fails, and not ready until readiness passes.
    this.healthy = kind === 'liveness';
  }
}

class Component {
  readonly probes: Probe[] = [];
  started: boolean;
  constructor(
    readonly name: string,
    readonly onUnhealthy: ((probe: ProbeKind) => void | Promise<void>) | undefined,
    hasStartup: boolean,
  ) {
    this.started = !hasStartup;
  }
  probe(kind: ProbeKind): Probe | undefined {
    return this.probes.find((p) => p.kind === kind);
  }
  get live(): boolean {
    return this.probe('liveness')?.healthy ?? true;
  }
  get ready(): boolean {
    if (!this.started) return false;
    const readiness = this.probe('readiness');
    return readiness === undefined ? this.live : readiness.healthy && this.live;
  }
}

/**
 * Runs the probes of registered components and answers `/healthz` and `/readyz`.
 * @example
 * const health = new HealthMonitor({ runtime });
 * health.register({
 *   name: 'payments-db',
 *   readiness: { check: checks.breaker(dbBreaker), period: '5s' },
 *   liveness: { check: checks.http('http://127.0.0.1:8080/ping'), failureThreshold: 3 },
 *   onUnhealthy: () => supervisor.restart('payments-db'),
 * });
 * http.createServer((req, res) => health.handle(req, res) || app(req, res));
 */
export class HealthMonitor {
  private readonly runtime: Runtime;
  private readonly components = new Map<string, Component>();
  private closed = false;

  constructor(options: { runtime?: Runtime } = {}) {
    knownKeys('HealthMonitor', options, []);
    this.runtime = options.runtime ?? systemRuntime();
  }

  /** Adds a component and starts its probes. Returns the function that removes it. */
  register(options: ComponentHealthOptions): () => void {
    const where = 'HealthMonitor.register';
    knownKeys(where, options, ['liveness', 'readiness', 'startup', 'onUnhealthy']);
    if (typeof options.name !== 'string' || options.name === '')
      throw invalid(where, 'name', options.name, 'a non-empty string');
    if (this.components.has(options.name))
      throw invalid(where, 'name', options.name, 'a name not registered yet');
    const onUnhealthy = functionOption<(probe: ProbeKind) => void | Promise<void>>(
      where,
      'onUnhealthy',
      options.onUnhealthy,
    );
    const component = new Component(options.name, onUnhealthy, options.startup !== undefined);
    for (const kind of ['startup', 'liveness', 'readiness'] as const) {
      const probeOptions = options[kind];
      if (probeOptions !== undefined)
        component.probes.push(new Probe(component, kind, probeOptions, this.runtime));
    }
    if (component.probes.length === 0)
      throw invalid(where, 'liveness', undefined, 'at least one probe (startup, liveness or readiness)');
    this.components.set(component.name, component);
    for (const probe of component.probes) {
      if (probe.kind === 'startup' || component.started) this.schedule(probe, probe.initialDelayMs);
    }
    return () => this.remove(component);
  }

  private remove(component: Component): void {
    for (const probe of component.probes) probe.timer?.cancel();
    this.components.delete(component.name);
  }

  private schedule(probe: Probe, delay: number): void {
    if (this.closed) return;
    probe.timer = this.runtime.clock.setTimer(delay, (p) => void this.run(p), probe);
  }

  private async run(probe: Probe): Promise<void> {
    if (this.closed || this.components.get(probe.component.name) !== probe.component) return;
    const clock = this.runtime.clock;
    const started = clock.now();
    let ok: boolean;
    let error: string | undefined;
    try {
      const result = await probe.deadline.execute(({ signal }) =>
        Promise.resolve(probe.options.check(signal)),
      );
      ok = result !== false;
      if (!ok) error = 'check returned false';
    } catch (e) {
      ok = false;
      error = message(e);
    }
    if (this.closed || this.components.get(probe.component.name) !== probe.component) return;
    this.record(probe, ok, error, clock.now() - started);
  }

  private record(probe: Probe, ok: boolean, error: string | undefined, durationMs: number): void {
    const component = probe.component;
    const now = this.runtime.clock.now();
    probe.lastRunAt = now;
    const was = probe.healthy;
    if (ok) {
      probe.consecutiveFailures = 0;
      probe.consecutiveSuccesses++;
      probe.lastError = undefined;
      if (probe.consecutiveSuccesses >= probe.successThreshold) probe.healthy = true;
    } else {
      probe.consecutiveSuccesses = 0;
      probe.consecutiveFailures++;
      probe.lastError = error;
      if (probe.consecutiveFailures >= probe.failureThreshold) probe.healthy = false;
    }
    const events = this.runtime.events;
    if (events.wants('health.check')) {
      events.emit({
        type: 'health.check',
        source: component.name,
        at: now,
        component: component.name,
        probe: probe.kind,
        ok,
        healthy: probe.healthy,
        durationMs,
        ...(error === undefined ? {} : { error }),
      });
    }
    if (probe.kind === 'startup') {
      if (ok) {
        // Started: the startup probe stops; liveness and readiness begin.
        component.started = true;
        for (const other of component.probes)
          if (other.kind !== 'startup') this.schedule(other, other.initialDelayMs);
        return;
      }
      if (!probe.healthy && probe.consecutiveFailures >= probe.failureThreshold) {
        this.unhealthy(component, 'startup');
        probe.consecutiveFailures = 0;
      }
      this.schedule(probe, probe.periodMs);
      return;
    }
    if (probe.kind === 'liveness' && was && !probe.healthy) {
      this.unhealthy(component, 'liveness');
      // Kubernetes restarts the container and starts counting afresh.
      probe.consecutiveFailures = 0;
      probe.healthy = true;
    }
    this.schedule(probe, probe.periodMs);
  }

  private unhealthy(component: Component, probe: ProbeKind): void {
    if (component.onUnhealthy === undefined) return;
    try {
      const result = component.onUnhealthy(probe);
      if (result instanceof Promise) result.catch(() => undefined);
    } catch {
      // The healing action reports its own failure (a healing.action event); probing goes on.
    }
  }

  /** Every component's state. */
  status(): ComponentStatus[] {
    return [...this.components.values()].map((c) => ({
      name: c.name,
      started: c.started,
      live: c.live,
      ready: c.ready,
      probes: c.probes.map((p) => ({
        probe: p.kind,
        healthy: p.kind === 'startup' ? c.started : p.healthy,
        consecutiveFailures: p.consecutiveFailures,
        lastError: p.lastError,
        lastRunAt: p.lastRunAt,
      })),
    }));
  }

  /** True when every component is live (what `/healthz` answers). */
  get live(): boolean {
    for (const c of this.components.values()) if (!c.live) return false;
    return true;
  }

  /** True when every component is started, live and ready (what `/readyz` answers). */
  get ready(): boolean {
    for (const c of this.components.values()) if (!c.ready) return false;
    return true;
  }

  /**
   * Answers `GET /healthz` (liveness) and `GET /readyz` (readiness): 200 or 503 with a JSON body listing
   * each component. Returns false (and writes nothing) for any other path, so it can sit in front of an app.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/healthz' && path !== '/readyz') return false;
    const readiness = path === '/readyz';
    const ok = readiness ? this.ready : this.live;
    const body = {
      status: ok ? 'ok' : 'fail',
      components: this.status().map((c) => ({
        name: c.name,
        status: (readiness ? c.ready : c.live) ? 'ok' : 'fail',
        probes: c.probes.map((p) => ({
          probe: p.probe,
          healthy: p.healthy,
          ...(p.lastError === undefined ? {} : { error: p.lastError }),
        })),
      })),
    };
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(`${JSON.stringify(body)}\n`);
    return true;
  }

  /** Stops every probe. Idempotent. */
  close(): void {
    this.closed = true;
    for (const c of this.components.values()) for (const p of c.probes) p.timer?.cancel();
  }
}
