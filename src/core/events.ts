/**
 * Typed events. Components check `sink.listening` (or `sink.wants(type)`) before building an event,
 * so emitting with no subscriber allocates nothing:
 *
 *     if (events.listening) events.emit({ type: 'retry', source: name, at: clock.now(), attempt, delayMs, error });
 *
 * Other modules add their events to {@link BulwarkEventMap} by declaration merging.
 */

/** The outcome of one call through a policy, as counted by `bulwark_calls_total{outcome}`. */
export type CallOutcome = 'success' | 'failure' | 'rejected' | 'timeout' | 'cancelled' | 'fallback';

export type CircuitStateName = 'closed' | 'open' | 'half-open' | 'isolated';

/** Event payloads by type (the common `type`, `source` and `at` fields are added by {@link BulwarkEvent}). */
export interface BulwarkEventMap {
  /** A policy was constructed; `kind` is `retry`, `circuitBreaker`, … */
  'policy.created': { kind: string };
  /** A call through a policy ended. */
  call: { kind: string; outcome: CallOutcome; durationMs: number; error?: unknown };
  /** Retry is about to sleep `delayMs` and make attempt `attempt + 1`. */
  retry: { attempt: number; delayMs: number; error: unknown };
  /** Retry gave up after `attempts` attempts. */
  'retry.exhausted': { attempts: number; error: unknown };
  'circuit.transition': { from: CircuitStateName; to: CircuitStateName; reason: string };
  'circuit.rejected': { state: CircuitStateName };
  'timeout.fired': { timeoutMs: number };
  'bulkhead.changed': { active: number; queued: number; capacity: number };
  'bulkhead.rejected': { active: number; queued: number };
  'ratelimit.rejected': { retryAfterMs: number };
  'ratelimit.waited': { waitMs: number };
  'fallback.used': { error: unknown };
  'hedge.started': { attempt: number };
}

export type BulwarkEventType = keyof BulwarkEventMap;

/** One event: `type`, the emitting component's name as `source`, the clock time `at` (ms), and the payload. */
export type BulwarkEvent = {
  [K in BulwarkEventType]: { type: K; source: string; at: number } & BulwarkEventMap[K];
}[BulwarkEventType];

/** The event of one type. */
export type EventOf<K extends BulwarkEventType> = Extract<BulwarkEvent, { type: K }>;

export type EventListener = (event: BulwarkEvent) => void;

interface Subscription {
  listener: EventListener;
  types: ReadonlySet<string> | undefined;
}

/**
 * Where components send their events. Listeners run synchronously, in subscription order.
 *
 * `wants` and `emit` are on every policy's hot path, so subscriptions are compiled, whenever they change,
 * into one route per subscribed type: the listeners of that type in subscription order (wildcards
 * included). A type nobody named goes to the wildcard listeners alone.
 */
export class EventSink {
  /** True when at least one listener is subscribed (to any type). */
  listening = false;
  private subscriptions: Subscription[] = [];
  private wildcard: EventListener[] = [];
  private routes: Record<string, EventListener[] | undefined> = {};

  /** True when some listener wants events of `type`. */
  wants(type: BulwarkEventType): boolean {
    return this.wildcard.length > 0 || this.routes[type] !== undefined;
  }

  /**
   * Subscribes `listener` to every event, or only to the given types. Returns the function that unsubscribes.
   * A listener that throws does not stop the others; its error is rethrown asynchronously.
   */
  subscribe(listener: EventListener, types?: readonly BulwarkEventType[]): () => void {
    const subscription: Subscription = { listener, types: types === undefined ? undefined : new Set(types) };
    this.subscriptions = [...this.subscriptions, subscription];
    this.compile();
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      this.subscriptions = this.subscriptions.filter((s) => s !== subscription);
      this.compile();
    };
  }

  emit(event: BulwarkEvent): void {
    // Routes are replaced, never changed in place: a listener may unsubscribe while we iterate.
    const listeners = this.routes[event.type] ?? this.wildcard;
    for (let i = 0; i < listeners.length; i++) {
      try {
        (listeners[i] as EventListener)(event);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  private compile(): void {
    const named = new Set<string>();
    for (const s of this.subscriptions) if (s.types !== undefined) for (const t of s.types) named.add(t);
    const routes: Record<string, EventListener[] | undefined> = {};
    for (const type of named) {
      routes[type] = this.subscriptions
        .filter((s) => s.types === undefined || s.types.has(type))
        .map((s) => s.listener);
    }
    this.routes = routes;
    this.wildcard = this.subscriptions.filter((s) => s.types === undefined).map((s) => s.listener);
    this.listening = this.subscriptions.length > 0;
  }
}
