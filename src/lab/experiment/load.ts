/**
 * A steady HTTP load for an experiment: requests at a fixed rate (scheduled on the runtime's clock from
 * absolute due times, so it does not drift), each counted in the phase it was sent in — `before` the
 * method, `during` it, `after` the rollbacks — and in a sliding window of 100 ms buckets for abort rules.
 */

import type { Timer } from '../../core/clock.js';
import { toMs } from '../../core/duration.js';
import type { Runtime } from '../../core/runtime.js';
import { LogHistogram } from '../histogram.js';
import type { LoadSpec } from './types.js';

export type LoadPhase = 'before' | 'during' | 'after';

/** Counts of one phase. */
export interface LoadCounts {
  total: number;
  ok: number;
  /** Failures by kind: `status 503`, `timeout`, `ECONNREFUSED`, `overload`… */
  failures: Record<string, number>;
  latency: LogHistogram;
}

const BUCKET_MS = 100;
const MAX_WINDOW_BUCKETS = 600;

export class LoadGenerator {
  phase: LoadPhase = 'before';
  readonly counts: Record<LoadPhase, LoadCounts> = {
    before: fresh(),
    during: fresh(),
    after: fresh(),
  };
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly maxRequests: number;
  private readonly accepts: (status: number) => boolean;
  private readonly controller = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly window = new Map<number, { ok: number; failed: number }>();
  private started = 0;
  private sent = 0;
  private timer: Timer | undefined;
  private running = false;

  constructor(
    private readonly spec: LoadSpec,
    private readonly runtime: Runtime,
  ) {
    this.intervalMs = 1000 / spec.rate;
    this.timeoutMs = toMs(spec.timeout ?? '2s', 'load.timeout');
    this.maxInFlight = spec.maxInFlight ?? 64;
    this.maxRequests = spec.maxRequests ?? 10_000;
    const expected = spec.expectStatus;
    this.accepts =
      expected === undefined
        ? (status) => status >= 200 && status < 300
        : (status) => expected.includes(status);
  }

  /** Requests sent so far. */
  get requests(): number {
    return this.sent;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.started = this.runtime.clock.now();
    this.tick();
  }

  /** Stops sending and waits for the requests in flight (each ends by its timeout at the latest). */
  async stop(): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
    await Promise.all([...this.inFlight]);
  }

  /** Aborts the requests in flight (an interrupted experiment). */
  abort(): void {
    this.controller.abort(new Error('load stopped'));
  }

  /** Failures and total among the requests that ended in the last `windowMs`. */
  recent(windowMs: number): { failed: number; total: number } {
    const now = Math.floor(this.runtime.clock.now() / BUCKET_MS);
    const from = now - Math.ceil(windowMs / BUCKET_MS) + 1;
    let failed = 0;
    let total = 0;
    for (const [bucket, counts] of this.window) {
      if (bucket >= from) {
        failed += counts.failed;
        total += counts.ok + counts.failed;
      }
    }
    return { failed, total };
  }

  private tick(): void {
    if (!this.running) return;
    const now = this.runtime.clock.now();
    // Every request whose due time has come (several per timer when the rate beats the timer's resolution).
    while (this.running && this.started + this.sent * this.intervalMs <= now) {
      if (this.sent >= this.maxRequests) {
        this.running = false;
        return;
      }
      this.sent++;
      this.send();
    }
    const due = this.started + this.sent * this.intervalMs;
    this.timer = this.runtime.clock.setTimer(Math.max(0, due - now), (self) => self.tick(), this);
  }

  private send(): void {
    const phase = this.phase;
    if (this.inFlight.size >= this.maxInFlight) {
      this.record(phase, false, 'overload', 0);
      return;
    }
    const promise = this.request(phase).finally(() => this.inFlight.delete(promise));
    this.inFlight.add(promise);
  }

  private async request(phase: LoadPhase): Promise<void> {
    const clock = this.runtime.clock;
    const controller = new AbortController();
    const stop = () => controller.abort(this.controller.signal.reason);
    this.controller.signal.addEventListener('abort', stop, { once: true });
    const timer = clock.setTimer(this.timeoutMs, (c) => c.abort(new Error('timeout')), controller);
    const started = clock.now();
    const init: RequestInit = { method: this.spec.method ?? 'GET', signal: controller.signal };
    if (this.spec.headers !== undefined) init.headers = this.spec.headers;
    if (this.spec.body !== undefined) {
      // As the http provider: a string as is, anything else as JSON.
      init.body = typeof this.spec.body === 'string' ? this.spec.body : JSON.stringify(this.spec.body);
      if (typeof this.spec.body !== 'string')
        init.headers = { 'content-type': 'application/json', ...this.spec.headers };
    }
    try {
      const response = await fetch(this.spec.url, init);
      await response.arrayBuffer();
      const ok = this.accepts(response.status);
      this.record(phase, ok, ok ? '' : `status ${response.status}`, clock.now() - started);
    } catch (error) {
      // A request the experiment cancelled itself (an interrupted run) says nothing about the target.
      if (this.controller.signal.aborted) return;
      const kind = controller.signal.aborted
        ? 'timeout'
        : ((error as { cause?: { code?: string } }).cause?.code ?? 'error');
      this.record(phase, false, kind, clock.now() - started);
    } finally {
      timer.cancel();
      this.controller.signal.removeEventListener('abort', stop);
    }
  }

  private record(phase: LoadPhase, ok: boolean, kind: string, latencyMs: number): void {
    const events = this.runtime.events;
    if (events.wants('experiment.request')) {
      events.emit({
        type: 'experiment.request',
        source: this.spec.url,
        at: this.runtime.clock.now(),
        phase,
        ok,
        kind,
        durationMs: latencyMs,
      });
    }
    const counts = this.counts[phase];
    counts.total++;
    if (ok) {
      counts.ok++;
      counts.latency.record(latencyMs);
    } else counts.failures[kind] = (counts.failures[kind] ?? 0) + 1;
    const bucket = Math.floor(this.runtime.clock.now() / BUCKET_MS);
    const slot = this.window.get(bucket) ?? { ok: 0, failed: 0 };
    if (ok) slot.ok++;
    else slot.failed++;
    this.window.set(bucket, slot);
    if (this.window.size > MAX_WINDOW_BUCKETS) {
      for (const key of this.window.keys()) {
        if (key > bucket - MAX_WINDOW_BUCKETS) break;
        this.window.delete(key);
      }
    }
  }
}

function fresh(): LoadCounts {
  return { total: 0, ok: 0, failures: {}, latency: new LogHistogram() };
}
