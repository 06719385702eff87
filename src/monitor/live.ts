/**
 * What the dashboard shows, aggregated from runtime events as they arrive: per policy, queue, plan and
 * fault, running totals, per-second series for the last two minutes, latency percentiles over the last
 * minute, and the per-minute rollups that go to the history store.
 *
 * Time here is the monitor's own clock at arrival, not the event's `at`: a lab run on a virtual clock
 * stamps its events with virtual time, yet it is watched live, in real time.
 * (An event of a runtime on the same real-time clock arrives when it is stamped: its `at` is the arrival
 * time, and the monitor passes it in to save a clock read — see {@link LiveAggregator.ingest}.)
 *
 * Memory is bounded: rings of fixed length, histograms with bounded buckets, at most `maxNames` tracked
 * names per section and `MAX_ERROR_KINDS` error kinds per policy.
 */
import type { Clock } from '../core/clock.js';
import { isBulwarkError } from '../core/errors.js';
import {
  type BulwarkEvent,
  CALL_OUTCOME_INDEX,
  CALL_OUTCOMES,
  type CallOutcome,
  type CircuitStateName,
} from '../core/events.js';
import type { RunStatus } from '../engine/events.js';
import { LogHistogram } from '../lab/histogram.js';
import { FAILURE, SUCCESS } from '../policy/call-event.js';
import type { JobOutcome, JobState } from '../queue/events.js';

/** Seconds of per-second history kept for sparklines. */
export const LIVE_SECONDS = 120;
const LATENCY_SLOT_SECONDS = 10;
const LATENCY_SLOTS = 6;
const MAX_ERROR_KINDS = 16;
const MAX_RECENT_RUNS = 20;
const OTHER = 'other';
const MAX_TRANSITIONS = 512;

/** One policy's events, as {@link LiveAggregator.source} takes them (`outcome`: its index in `CALL_OUTCOMES`). */
export interface LivePolicy {
  call(outcome: number, durationMs: number, error: unknown, arrivedAt: number | undefined): void;
  bulkheadChanged(active: number, queued: number, capacity: number, arrivedAt: number | undefined): void;
}

/** Counts by outcome index as a record by outcome name. */
function outcomesRecord(counts: Float64Array): Record<CallOutcome, number> {
  const out = {} as Record<CallOutcome, number>;
  CALL_OUTCOMES.forEach((outcome, o) => {
    out[outcome] = counts[o] as number;
  });
  return out;
}

/** Severity of a circuit state: what a sparkline shows when several states happened in one second. */
const SEVERITY: Record<CircuitStateName, number> = { closed: 0, 'half-open': 1, open: 2, isolated: 3 };

/** Per-second counts for the last {@link LIVE_SECONDS} seconds, keyed by absolute second. */
class SecondRing {
  readonly values = new Float64Array(LIVE_SECONDS);
  private readonly stamps = new Float64Array(LIVE_SECONDS).fill(-1);

  add(second: number, n: number): void {
    const i = second % LIVE_SECONDS;
    if (this.stamps[i] !== second) {
      this.stamps[i] = second;
      this.values[i] = 0;
    }
    this.values[i] = (this.values[i] as number) + n;
  }

  /** The value of `second` (0 when nothing was recorded then). */
  at(second: number): number {
    const i = second % LIVE_SECONDS;
    return this.stamps[i] === second ? (this.values[i] as number) : 0;
  }

  /** The last `n` seconds up to and including `second`, oldest first. */
  series(second: number, n = LIVE_SECONDS, fill?: (s: number) => number): number[] {
    const out: number[] = [];
    for (let s = second - n + 1; s <= second; s++) {
      const i = ((s % LIVE_SECONDS) + LIVE_SECONDS) % LIVE_SECONDS;
      out.push(this.stamps[i] === s ? (this.values[i] as number) : fill === undefined ? 0 : fill(s));
    }
    return out;
  }

  sum(second: number, n: number): number {
    let total = 0;
    for (let s = second - n + 1; s <= second; s++) total += this.at(s);
    return total;
  }
}

/** Latency over the last minute: six 10-second histograms, merged when read. */
class MinuteLatency {
  private readonly slots: (LogHistogram | undefined)[] = new Array(LATENCY_SLOTS).fill(undefined);
  private readonly stamps: number[] = new Array(LATENCY_SLOTS).fill(-1);

  record(second: number, ms: number): void {
    const slot = Math.floor(second / LATENCY_SLOT_SECONDS);
    const i = slot % LATENCY_SLOTS;
    let h = this.slots[i];
    if (h === undefined || this.stamps[i] !== slot) {
      h = new LogHistogram();
      this.slots[i] = h;
      this.stamps[i] = slot;
    }
    h.record(ms >= 0 && Number.isFinite(ms) ? ms : 0);
  }

  /** The histogram of one whole minute (`minute` = epoch ms / 60 000), when its slots are still held. */
  ofMinute(minute: number): LogHistogram {
    const first = (minute * 60) / LATENCY_SLOT_SECONDS;
    const out = new LogHistogram();
    for (let i = 0; i < LATENCY_SLOTS; i++) {
      const h = this.slots[i];
      const stamp = this.stamps[i] as number;
      if (h !== undefined && stamp >= first && stamp < first + LATENCY_SLOTS) out.merge(h);
    }
    return out;
  }

  merged(second: number): LogHistogram {
    const current = Math.floor(second / LATENCY_SLOT_SECONDS);
    const out = new LogHistogram();
    for (let i = 0; i < LATENCY_SLOTS; i++) {
      const h = this.slots[i];
      const stamp = this.stamps[i] as number;
      if (h !== undefined && stamp > current - LATENCY_SLOTS && stamp <= current) out.merge(h);
    }
    return out;
  }
}

/** The error kind shown on the dashboard: a Bulwark code, a Node error code, or the error's name. */
export function errorKind(error: unknown): string {
  if (isBulwarkError(error)) return error.code;
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code.slice(0, 40);
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && name !== '') return name.slice(0, 40);
  }
  return typeof error === 'string' ? 'string' : 'unknown';
}

function bump(map: Map<string, number>, key: string, n = 1, cap = Number.POSITIVE_INFINITY): void {
  const k = map.has(key) || map.size < cap ? key : OTHER;
  map.set(k, (map.get(k) ?? 0) + n);
}

/** One per-minute rollup of one name: sums (counts) and maxima (gauges, percentiles). */
export interface RollupRow {
  /** Start of the minute, epoch ms. */
  minute: number;
  scope: Scope;
  name: string;
  sums: Record<string, number>;
  maxima: Record<string, number>;
}

export type Scope = 'policy' | 'queue' | 'plan' | 'fault';

class MinuteRollup {
  readonly sums = new Map<string, number>();
  readonly maxima = new Map<string, number>();
  /** Calls by outcome index: the hot path, kept out of the maps. */
  readonly outcomes = new Float64Array(CALL_OUTCOMES.length);
  bulkheadPeak = -1;
  add(metric: string, n = 1): void {
    this.sums.set(metric, (this.sums.get(metric) ?? 0) + n);
  }
  max(metric: string, n: number): void {
    if (n > (this.maxima.get(metric) ?? Number.NEGATIVE_INFINITY)) this.maxima.set(metric, n);
  }
}

class PolicyStats {
  kind = '';
  /** Calls by outcome index (see `CALL_OUTCOMES`). */
  readonly outcomes = new Float64Array(CALL_OUTCOMES.length);
  readonly errors = new Map<string, number>();
  retries = 0;
  timeouts = 0;
  faults = 0;
  state: CircuitStateName | undefined;
  opens = 0;
  bulkhead: { active: number; queued: number; capacity: number } | undefined;
  bulkheadRejected = 0;
  readonly calls = new SecondRing();
  readonly failures = new SecondRing();
  /** Transitions within the live window, oldest first, and the severity held before the first of them. */
  readonly transitions: { second: number; severity: number }[] = [];
  severityBefore = 0;
  readonly latency = new MinuteLatency();
  /** This minute's rollup, cached so that a call does not look it up by key. */
  rollup: MinuteRollup | undefined;
  rollupEpoch = -1;
  constructor(readonly name: string) {}
}

class QueueStats {
  depth: Record<JobState, number> = { waiting: 0, delayed: 0, active: 0, completed: 0, dead: 0 };
  readonly jobs = new Map<string, number>();
  readonly completed = new SecondRing();
  readonly failed = new SecondRing();
  failovers = 0;
  rejected = 0;
  healthy = true;
  workers = 0;
  constructor(readonly name: string) {}
}

interface RunSummary {
  runId: string;
  status: RunStatus | 'running';
  steps: number;
  stepsDone: number;
  rolledBack: number;
  durationMs: number | null;
}

class PlanStats {
  readonly runs = new Map<string, number>();
  stepsSucceeded = 0;
  stepsFailed = 0;
  compensations = 0;
  compensationFailures = 0;
  readonly finished = new SecondRing();
  readonly recent: RunSummary[] = [];
  constructor(readonly name: string) {}
}

class OtherStats {
  count = 0;
  readonly sources = new Map<string, number>();
  readonly series = new SecondRing();
  constructor(readonly type: string) {}
}

class FaultStats {
  kind = '';
  count = 0;
  readonly series = new SecondRing();
  constructor(readonly name: string) {}
}

/** A policy as the dashboard shows it. */
export interface PolicySnapshot {
  name: string;
  kind: string;
  total: number;
  outcomes: Record<CallOutcome, number>;
  /** Calls per second over the last 10 s. */
  rate: number;
  /** Successful share of the calls of the last minute (of all calls when none was in the last minute). */
  successRate: number | null;
  /** Failed (non-success) share of the calls of the last minute. */
  errorRate: number;
  errors: Record<string, number>;
  retries: number;
  timeouts: number;
  latency: { p50: number | null; p90: number | null; p99: number | null; count: number };
  state: CircuitStateName | null;
  opens: number;
  bulkhead: { active: number; queued: number; capacity: number; rejected: number } | null;
  /** Last 120 s, oldest first: calls, failures, and circuit severity (0 closed, 1 half-open, 2 open, 3 isolated). */
  spark: { calls: number[]; failures: number[]; state: number[] };
}

export interface QueueSnapshot {
  name: string;
  depth: Record<JobState, number>;
  jobs: Record<string, number>;
  /** Completed jobs per second over the last 10 s. */
  throughput: number;
  failovers: number;
  rejected: number;
  healthy: boolean;
  workers: number;
  spark: { completed: number[]; failed: number[] };
}

export interface PlanSnapshot {
  name: string;
  runs: Record<string, number>;
  stepsSucceeded: number;
  stepsFailed: number;
  compensations: number;
  compensationFailures: number;
  recent: RunSummary[];
  spark: { finished: number[] };
}

export interface FaultSnapshot {
  name: string;
  kind: string;
  count: number;
  spark: number[];
}

export interface ResourceSnapshot {
  name: string;
  used: number;
  capacity: number;
}

/** Everything the dashboard page draws, as sent on the event stream. */
export interface LiveSnapshot {
  /** Monitor clock, epoch ms. */
  now: number;
  startedAt: number;
  events: number;
  policies: PolicySnapshot[];
  queues: QueueSnapshot[];
  plans: PlanSnapshot[];
  faults: FaultSnapshot[];
  resources: ResourceSnapshot[];
  /** Events of types without a panel of their own, by type. */
  others: { type: string; count: number; sources: Record<string, number>; spark: number[] }[];
  /** Names with control actions (e.g. a breaker's isolate/reset), by name. */
  controls: Record<string, string[]>;
}

export interface LiveAggregatorOptions {
  clock: Clock;
  /** Distinct names tracked per section; events of later names are counted but not shown. */
  maxNames: number;
  /** Receives each minute's rollups once the minute is over. */
  onMinute?: (rows: RollupRow[]) => void;
}

/** Aggregates events for the live view and the per-minute history. */
export class LiveAggregator {
  readonly startedAt: number;
  events = 0;
  /** Events of names beyond `maxNames`, not shown. */
  dropped = 0;
  private readonly clock: Clock;
  private readonly maxNames: number;
  private readonly onMinute: ((rows: RollupRow[]) => void) | undefined;
  private readonly policies = new Map<string, PolicyStats>();
  private readonly queues = new Map<string, QueueStats>();
  private readonly plans = new Map<string, PlanStats>();
  private readonly faults = new Map<string, FaultStats>();
  private readonly resources = new Map<string, ResourceSnapshot>();
  private readonly others = new Map<string, OtherStats>();
  private rollups = new Map<string, MinuteRollup>();
  /** Bumped whenever the rollups are handed over, which invalidates the rollups cached on policies. */
  private epoch = 0;
  private minute: number;
  /** The latest time an event was placed at (or the clock read): event times before it are not trusted. */
  private latest: number;

  constructor(options: LiveAggregatorOptions) {
    this.clock = options.clock;
    this.maxNames = options.maxNames;
    this.onMinute = options.onMinute;
    this.startedAt = this.clock.now();
    this.minute = Math.floor(this.startedAt / 60_000);
    this.latest = this.startedAt;
  }

  /** Records a `call` event given by its fields (see {@link LiveAggregator.ingest} for `arrivedAt`). */
  call(
    source: string,
    kind: string,
    outcome: CallOutcome,
    durationMs: number,
    error: unknown,
    arrivedAt?: number,
  ): void {
    const second = this.arrive(arrivedAt);
    const p = this.policy(source);
    if (p !== undefined) this.countCall(second, p, kind, CALL_OUTCOME_INDEX[outcome], durationMs, error);
  }

  /**
   * The `call` and `bulkhead.changed` events of one policy, its stats looked up once (a policy shown
   * stays shown): what the monitor's per-source meter calls. `outcome` is an index in `CALL_OUTCOMES`.
   */
  source(name: string, kind: string): LivePolicy {
    let stats: PolicyStats | undefined;
    /** The policy's stats; looked up again while it is beyond `maxNames` (each event counted as dropped). */
    const resolve = (): PolicyStats | undefined => {
      if (stats === undefined) stats = this.policy(name);
      return stats;
    };
    return {
      call: (outcome, durationMs, error, arrivedAt) => {
        const second = this.arrive(arrivedAt);
        const p = resolve();
        if (p !== undefined) this.countCall(second, p, kind, outcome, durationMs, error);
      },
      bulkheadChanged: (active, queued, capacity, arrivedAt) => {
        this.arrive(arrivedAt);
        const p = resolve();
        if (p !== undefined) this.setBulkheadOf(p, active, queued, capacity);
      },
    };
  }

  /** Records a `bulkhead.changed` event given by its fields. */
  bulkheadChanged(
    source: string,
    active: number,
    queued: number,
    capacity: number,
    arrivedAt?: number,
  ): void {
    this.arrive(arrivedAt);
    this.setBulkhead(source, active, queued, capacity);
  }

  /** Moves the aggregator to the time an event arrived; returns that time's second. */
  private arrive(arrivedAt: number | undefined): number {
    let now: number;
    if (
      arrivedAt !== undefined &&
      arrivedAt >= this.latest &&
      Math.floor(arrivedAt / 60_000) === this.minute
    ) {
      now = arrivedAt;
    } else {
      now = this.clock.now();
    }
    if (now > this.latest) this.latest = now;
    if (Math.floor(now / 60_000) !== this.minute) this.rollOver(now);
    this.events++;
    return Math.floor(now / 1000);
  }

  /** Counts a call of outcome `o` (its index in `CALL_OUTCOMES`). */
  private countCall(
    second: number,
    p: PolicyStats,
    kind: string,
    o: number,
    durationMs: number,
    error: unknown,
  ): void {
    if (p.kind === '') p.kind = kind;
    p.outcomes[o] = (p.outcomes[o] as number) + 1;
    p.calls.add(second, 1);
    p.latency.record(second, durationMs);
    const outcomes = this.policyRollup(p).outcomes;
    outcomes[o] = (outcomes[o] as number) + 1;
    if (o !== SUCCESS) {
      p.failures.add(second, 1);
      const errorKindName = o === FAILURE ? errorKind(error) : (CALL_OUTCOMES[o] as string).toUpperCase();
      bump(p.errors, errorKindName, 1, MAX_ERROR_KINDS);
    }
  }

  private setBulkhead(source: string, active: number, queued: number, capacity: number): void {
    const p = this.policy(source);
    if (p !== undefined) this.setBulkheadOf(p, active, queued, capacity);
  }

  private setBulkheadOf(p: PolicyStats, active: number, queued: number, capacity: number): void {
    const b = p.bulkhead;
    if (b === undefined) p.bulkhead = { active, queued, capacity };
    else {
      b.active = active;
      b.queued = queued;
      b.capacity = capacity;
    }
    const r = this.policyRollup(p);
    if (active > r.bulkheadPeak) r.bulkheadPeak = active;
  }

  /**
   * Records one event at the monitor clock's current time. A caller that knows that time already (an
   * event just emitted on the same real-time clock carries it in its `at`) passes it as `arrivedAt`,
   * which saves a clock read per event; it is used only when it is plausible — in the current minute and
   * not before the latest time seen — and the clock is read otherwise.
   */
  ingest(event: BulwarkEvent, arrivedAt?: number): void {
    const second = this.arrive(arrivedAt);
    switch (event.type) {
      case 'policy.created': {
        // Faults are policies too, but what they do is shown under faults (from `fault.injected`).
        if (event.kind.startsWith('fault.')) return;
        const p = this.policy(event.source);
        if (p === undefined) return;
        p.kind = event.kind;
        if (event.kind === 'circuitBreaker' && p.state === undefined) p.state = 'closed';
        return;
      }
      case 'call': {
        const p = this.policy(event.source);
        if (p === undefined) return;
        const o = CALL_OUTCOME_INDEX[event.outcome];
        this.countCall(second, p, event.kind, o, event.durationMs, event.error);
        return;
      }
      case 'retry': {
        const p = this.policy(event.source);
        if (p === undefined) return;
        p.retries++;
        this.rollup('policy', event.source).add('retries');
        return;
      }
      case 'timeout.fired': {
        const p = this.policy(event.source);
        if (p === undefined) return;
        p.timeouts++;
        this.rollup('policy', event.source).add('timeouts');
        return;
      }
      case 'circuit.transition': {
        const p = this.policy(event.source);
        if (p === undefined) return;
        if (p.kind === '') p.kind = 'circuitBreaker';
        p.state = event.to;
        p.transitions.push({ second, severity: SEVERITY[event.to] });
        if (p.transitions.length > MAX_TRANSITIONS) p.severityBefore = p.transitions.shift()?.severity ?? 0;
        const r = this.rollup('policy', event.source);
        r.max('state', SEVERITY[event.to]);
        if (event.to === 'open') {
          p.opens++;
          r.add('opens');
        }
        return;
      }
      case 'bulkhead.changed':
        this.setBulkhead(event.source, event.active, event.queued, event.capacity);
        return;
      case 'bulkhead.rejected': {
        const p = this.policy(event.source);
        if (p === undefined) return;
        p.bulkheadRejected++;
        return;
      }
      case 'fault.injected': {
        const f = this.tracked(this.faults, event.source, FaultStats);
        if (f === undefined) return;
        f.kind = event.fault;
        f.count++;
        f.series.add(second, 1);
        this.rollup('fault', event.source).add('injected');
        return;
      }
      case 'resource.changed': {
        if (!this.resources.has(event.source) && this.resources.size >= this.maxNames) {
          this.dropped++;
          return;
        }
        this.resources.set(event.source, { name: event.source, used: event.used, capacity: event.capacity });
        return;
      }
      case 'queue.job': {
        const q = this.tracked(this.queues, event.source, QueueStats);
        if (q === undefined) return;
        bump(q.jobs, event.outcome satisfies JobOutcome);
        if (event.outcome === 'completed') q.completed.add(second, 1);
        else if (event.outcome === 'failed' || event.outcome === 'dead') q.failed.add(second, 1);
        this.rollup('queue', event.source).add(event.outcome);
        return;
      }
      case 'queue.depth': {
        const q = this.tracked(this.queues, event.source, QueueStats);
        if (q === undefined) return;
        q.depth = { ...q.depth, ...event.depth };
        const r = this.rollup('queue', event.source);
        r.max('waiting', event.depth.waiting ?? 0);
        r.max('dead_letters', event.depth.dead ?? 0);
        return;
      }
      case 'queue.rejected': {
        const q = this.tracked(this.queues, event.source, QueueStats);
        if (q !== undefined) q.rejected++;
        return;
      }
      case 'queue.health': {
        const q = this.tracked(this.queues, event.source, QueueStats);
        if (q !== undefined) q.healthy = event.healthy;
        return;
      }
      case 'queue.failover': {
        const q = this.tracked(this.queues, event.source, QueueStats);
        if (q === undefined) return;
        q.failovers++;
        this.rollup('queue', event.source).add('failovers');
        return;
      }
      case 'queue.worker': {
        const q = this.tracked(this.queues, event.source, QueueStats);
        if (q === undefined) return;
        q.workers = Math.max(0, q.workers + (event.state === 'started' ? 1 : -1));
        return;
      }
      case 'run.started': {
        const p = this.tracked(this.plans, event.source, PlanStats);
        if (p === undefined) return;
        bump(p.runs, 'started');
        p.recent.unshift({
          runId: event.runId,
          status: 'running',
          steps: event.steps,
          stepsDone: 0,
          rolledBack: 0,
          durationMs: null,
        });
        if (p.recent.length > MAX_RECENT_RUNS) p.recent.pop();
        this.rollup('plan', event.source).add('started');
        return;
      }
      case 'run.finished': {
        const p = this.tracked(this.plans, event.source, PlanStats);
        if (p === undefined) return;
        bump(p.runs, event.status);
        p.finished.add(second, 1);
        const run = p.recent.find((r) => r.runId === event.runId);
        if (run !== undefined) {
          run.status = event.status;
          run.durationMs = event.durationMs;
          run.rolledBack = event.rolledBack;
        }
        const r = this.rollup('plan', event.source);
        r.add(event.status);
        r.add('rolled_back', event.rolledBack);
        return;
      }
      case 'step.succeeded': {
        const p = this.tracked(this.plans, event.source, PlanStats);
        if (p === undefined) return;
        p.stepsSucceeded++;
        const run = p.recent.find((r) => r.runId === event.runId);
        if (run !== undefined) run.stepsDone++;
        this.rollup('plan', event.source).add('steps_succeeded');
        return;
      }
      case 'step.failed': {
        const p = this.tracked(this.plans, event.source, PlanStats);
        if (p === undefined) return;
        p.stepsFailed++;
        this.rollup('plan', event.source).add('steps_failed');
        return;
      }
      case 'step.compensated': {
        const p = this.tracked(this.plans, event.source, PlanStats);
        if (p === undefined) return;
        p.compensations++;
        if (!event.ok) p.compensationFailures++;
        return;
      }
      case 'retry.exhausted':
      case 'circuit.rejected':
      case 'ratelimit.rejected':
      case 'ratelimit.waited':
      case 'fallback.used':
      case 'hedge.started':
      case 'degrade.ran':
      case 'queue.failback':
      case 'step.started':
        // Already visible through the calls' outcomes, the runs and the failovers.
        return;
      case 'health.check':
      case 'supervisor.child':
      case 'supervisor.escalated':
      case 'healing.action':
        // The monitor's health panel shows these.
        return;
      default: {
        // Types this dashboard has no panel for (alerts, health checks… as their modules add them).
        const { type, source } = event as { type: string; source: string };
        const other = this.tracked(this.others, type, OtherStats);
        if (other === undefined) return;
        other.count++;
        other.series.add(second, 1);
        bump(other.sources, source, 1, MAX_ERROR_KINDS);
        return;
      }
    }
  }

  /** Closes the minute if the clock moved past it (the server calls this every second). */
  tick(): void {
    const now = this.clock.now();
    if (now > this.latest) this.latest = now;
    if (Math.floor(now / 60_000) !== this.minute) this.rollOver(now);
  }

  /** Hands over the current, unfinished minute's rollups (on close); it is started afresh. */
  flush(): void {
    this.emitRollups();
  }

  /** The live view at the clock's current time. */
  snapshot(controls: Record<string, string[]> = {}): LiveSnapshot {
    const now = this.clock.now();
    const second = Math.floor(now / 1000);
    const policies: PolicySnapshot[] = [];
    for (const p of this.policies.values()) {
      const outcomes = outcomesRecord(p.outcomes);
      const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
      const lastMinute = p.calls.sum(second, 60);
      const failedLastMinute = p.failures.sum(second, 60);
      const successRate =
        lastMinute > 0
          ? (lastMinute - failedLastMinute) / lastMinute
          : total > 0
            ? outcomes.success / total
            : null;
      const latency = p.latency.merged(second);
      const empty = latency.count === 0;
      const state = p.state;
      policies.push({
        name: p.name,
        kind: p.kind,
        total,
        outcomes,
        rate: p.calls.sum(second, 10) / 10,
        successRate,
        errorRate:
          lastMinute > 0 ? failedLastMinute / lastMinute : total > 0 ? 1 - outcomes.success / total : 0,
        errors: Object.fromEntries(p.errors),
        retries: p.retries,
        timeouts: p.timeouts,
        latency: {
          p50: empty ? null : latency.quantile(0.5),
          p90: empty ? null : latency.quantile(0.9),
          p99: empty ? null : latency.quantile(0.99),
          count: latency.count,
        },
        state: state ?? null,
        opens: p.opens,
        bulkhead: p.bulkhead === undefined ? null : { ...p.bulkhead, rejected: p.bulkheadRejected },
        spark: {
          calls: p.calls.series(second),
          failures: p.failures.series(second),
          state: stateSeries(p, second),
        },
      });
    }
    return {
      now,
      startedAt: this.startedAt,
      events: this.events,
      policies,
      queues: [...this.queues.values()].map((q) => ({
        name: q.name,
        depth: { ...q.depth },
        jobs: Object.fromEntries(q.jobs),
        throughput: q.completed.sum(second, 10) / 10,
        failovers: q.failovers,
        rejected: q.rejected,
        healthy: q.healthy,
        workers: q.workers,
        spark: { completed: q.completed.series(second), failed: q.failed.series(second) },
      })),
      plans: [...this.plans.values()].map((p) => ({
        name: p.name,
        runs: Object.fromEntries(p.runs),
        stepsSucceeded: p.stepsSucceeded,
        stepsFailed: p.stepsFailed,
        compensations: p.compensations,
        compensationFailures: p.compensationFailures,
        recent: p.recent.map((r) => ({ ...r })),
        spark: { finished: p.finished.series(second) },
      })),
      faults: [...this.faults.values()].map((f) => ({
        name: f.name,
        kind: f.kind,
        count: f.count,
        spark: f.series.series(second),
      })),
      resources: [...this.resources.values()].map((r) => ({ ...r })),
      others: [...this.others.values()].map((o) => ({
        type: o.type,
        count: o.count,
        sources: Object.fromEntries(o.sources),
        spark: o.series.series(second),
      })),
      controls,
    };
  }

  private policy(name: string): PolicyStats | undefined {
    return this.tracked(this.policies, name, PolicyStats);
  }

  private tracked<T>(map: Map<string, T>, name: string, Stats: new (name: string) => T): T | undefined {
    let stats = map.get(name);
    if (stats === undefined) {
      if (map.size >= this.maxNames) {
        this.dropped++;
        return undefined;
      }
      stats = new Stats(name);
      map.set(name, stats);
    }
    return stats;
  }

  private rollup(scope: Scope, name: string): MinuteRollup {
    const key = `${scope}\u0000${name}`;
    let r = this.rollups.get(key);
    if (r === undefined) {
      r = new MinuteRollup();
      this.rollups.set(key, r);
    }
    return r;
  }

  private policyRollup(p: PolicyStats): MinuteRollup {
    if (p.rollupEpoch !== this.epoch || p.rollup === undefined) {
      p.rollup = this.rollup('policy', p.name);
      p.rollupEpoch = this.epoch;
    }
    return p.rollup;
  }

  private rollOver(now: number): void {
    this.emitRollups();
    this.minute = Math.floor(now / 60_000);
  }

  private emitRollups(): void {
    const rollups = this.rollups;
    this.rollups = new Map();
    this.epoch++;
    if (this.onMinute === undefined || rollups.size === 0) return;
    const rows: RollupRow[] = [];
    for (const [key, r] of rollups) {
      const [scope, name] = key.split('\u0000') as [Scope, string];
      rows.push(this.rowOf(scope, name, r));
    }
    this.onMinute(rows);
  }

  /** The rollup of the minute in progress for one name (not handed over), or undefined when it is empty. */
  currentRow(scope: Scope, name: string): RollupRow | undefined {
    const r = this.rollups.get(`${scope}\u0000${name}`);
    return r === undefined ? undefined : this.rowOf(scope, name, r);
  }

  private rowOf(scope: Scope, name: string, r: MinuteRollup): RollupRow {
    const maxima = Object.fromEntries(r.maxima);
    if (r.bulkheadPeak >= 0) maxima.bulkhead_active = r.bulkheadPeak;
    const sums = Object.fromEntries(r.sums);
    let calls = 0;
    for (let o = 0; o < CALL_OUTCOMES.length; o++) {
      const n = r.outcomes[o] as number;
      if (n > 0) sums[CALL_OUTCOMES[o] as string] = n;
      calls += n;
    }
    if (calls > 0) {
      sums.calls = calls;
      const latency = this.policies.get(name)?.latency.ofMinute(this.minute);
      if (latency !== undefined && latency.count > 0) {
        maxima.p50 = latency.quantile(0.5);
        maxima.p90 = latency.quantile(0.9);
        maxima.p99 = latency.quantile(0.99);
      }
    }
    return { minute: this.minute * 60_000, scope, name, sums, maxima };
  }
}

/**
 * The circuit severity per second of the live window, oldest first: the worst state a second saw (a
 * one-second open between two closed seconds still shows), else the state held since the last transition.
 */
function stateSeries(p: PolicyStats, second: number): number[] {
  const start = second - LIVE_SECONDS + 1;
  const transitions = p.transitions;
  while (transitions.length > 0 && (transitions[0] as { second: number }).second < start) {
    p.severityBefore = (transitions.shift() as { severity: number }).severity;
  }
  const out = new Array<number>(LIVE_SECONDS);
  let held = p.severityBefore;
  let next = 0;
  for (let i = 0; i < LIVE_SECONDS; i++) {
    let worst = held;
    while (next < transitions.length && (transitions[next] as { second: number }).second === start + i) {
      held = (transitions[next] as { severity: number }).severity;
      if (held > worst) worst = held;
      next++;
    }
    out[i] = worst;
  }
  return out;
}
