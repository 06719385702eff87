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

/** Every {@link CallOutcome}, in a fixed order (for counters kept in arrays). */
export const CALL_OUTCOMES: readonly CallOutcome[] = [
  'success',
  'failure',
  'rejected',
  'timeout',
  'cancelled',
  'fallback',
];

/** Each outcome's position in {@link CALL_OUTCOMES}. */
export const CALL_OUTCOME_INDEX: Readonly<Record<CallOutcome, number>> = {
  success: 0,
  failure: 1,
  rejected: 2,
  timeout: 3,
  cancelled: 4,
  fallback: 5,
};

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

/**
 * A subscriber to the events every call through a pipeline emits several of — `call` (one per policy)
 * and `bulkhead.changed` (two per bulkhead) — called with their fields instead of an event object.
 * Counting metrics need nothing else, and this skips building an object per event and dispatching it
 * through every listener: the difference between a few and a few dozen nanoseconds per policy per
 * call. Registered with {@link EventSink.meter}. A meter gets every event of these types, whether emitted
 * with `emitCall`/`emitBulkheadChanged` (no object is built unless a listener wants one) or `emit`;
 * object listeners of these types still get them as events.
 */
export interface EventMeter {
  call(
    source: string,
    at: number,
    kind: string,
    outcome: CallOutcome,
    durationMs: number,
    error: unknown,
  ): void;
  bulkheadChanged(source: string, at: number, active: number, queued: number, capacity: number): void;
  /**
   * Optional: this meter's part for one source, resolved once. Components that emit through a
   * {@link SourceEvents} (every built-in policy) call it instead of `call`/`bulkheadChanged`, so a meter
   * that keeps series per source looks the source up once, not once per event. A meter without it gets
   * those events through `call`/`bulkheadChanged` as usual.
   */
  forSource?(source: string, kind: string, state?: SourceState): SourceMeter;
  /**
   * Optional: this meter's part for several sources whose calls succeed together (see {@link SourceGroup}),
   * given its parts for them (from `forSource`, innermost layer first). A meter can then count a success in
   * all of them at once (a histogram's bucket searched once). Without it, or when it returns undefined,
   * each part's `call` is called in turn.
   */
  forGroup?(parts: readonly SourceMeter[]): GroupMeter | undefined;
}

/**
 * What a source can be read for at any time, given to {@link EventMeter.forSource}: a bulkhead's permits
 * in use, calls waiting and capacity (what its `bulkhead.changed` events carry).
 */
export interface SourceState {
  readonly active: number;
  readonly queued: number;
  readonly capacity: number;
}

/**
 * A meter's part for one source (see {@link EventMeter.forSource}): the per-call events of that source
 * with their fields, the outcome given by its index in {@link CALL_OUTCOMES}.
 */
export interface SourceMeter {
  call(at: number, outcome: number, durationMs: number, error: unknown): void;
  bulkheadChanged(at: number, active: number, queued: number, capacity: number): void;
  /**
   * True when this part reads the source's {@link SourceState} itself when it needs it (a gauge read at
   * scrape time) and need not be told of each change: a bulkhead whose meters all read it so, and that no
   * listener takes `bulkhead.changed` from, emits none (two per call fewer).
   */
  readonly readsState?: boolean;
}

/** A meter's part for a {@link SourceGroup} (see {@link EventMeter.forGroup}). */
export interface GroupMeter {
  /** The call of every source of the group succeeded, at `at` after `durationMs`. */
  succeeded(at: number, durationMs: number): void;
}

interface Subscription {
  listener: EventListener;
  /** Only these types; undefined: every type but `except`. */
  types: ReadonlySet<string> | undefined;
  except: ReadonlySet<string> | undefined;
}

function receives(s: Subscription, type: string): boolean {
  return s.types === undefined ? s.except === undefined || !s.except.has(type) : s.types.has(type);
}

/**
 * Where components send their events. Listeners run synchronously, in subscription order; for the two
 * metered types, the meters run first.
 *
 * `wants` and `emit` are on every policy's hot path, so subscriptions are compiled, whenever they change,
 * into one route per type some subscription names (in `types` or `except`): the listeners of that type in
 * subscription order. A type nobody named goes to the listeners of every type.
 */
export class EventSink {
  /** True when at least one listener or meter is subscribed (to any type). */
  listening = false;
  private subscriptions: Subscription[] = [];
  /** The listeners of a type no subscription names. */
  private wildcard: EventListener[] = [];
  private routes = new Map<string, readonly EventListener[]>();
  /** @internal The meters, replaced (never changed in place) when they change. */
  meters: readonly EventMeter[] = [];
  /** @internal Counts every change of the subscriptions: a {@link SourceEvents} re-resolves when it moves. */
  version = 0;
  private callWanted = false;
  private bulkheadWanted = false;
  /** @internal Whether some listener takes `call` / `bulkhead.changed` events as objects. */
  callObjects = false;
  /** @internal */
  bulkheadObjects = false;

  /** True when some listener (or a meter, for `call` and `bulkhead.changed`) wants events of `type`. */
  wants(type: BulwarkEventType): boolean {
    // The per-call types are asked about several times per call through a pipeline: a field, not a lookup.
    if (type === 'call') return this.callWanted;
    if (type === 'bulkhead.changed') return this.bulkheadWanted;
    const route = this.routes.get(type);
    return route === undefined ? this.wildcard.length > 0 : route.length > 0;
  }

  /**
   * Subscribes `listener` to every event, only to the given types, or to every type but some
   * (`{ except }`, e.g. the types a meter of the same subscriber counts). Returns the function that
   * unsubscribes. A listener that throws does not stop the others; its error is rethrown asynchronously.
   */
  subscribe(
    listener: EventListener,
    types?: readonly BulwarkEventType[] | { except: readonly BulwarkEventType[] },
  ): () => void {
    const subscription: Subscription =
      types === undefined
        ? { listener, types: undefined, except: undefined }
        : 'except' in types
          ? { listener, types: undefined, except: new Set(types.except) }
          : { listener, types: new Set(types), except: undefined };
    this.subscriptions = [...this.subscriptions, subscription];
    return this.added(() => {
      this.subscriptions = this.subscriptions.filter((s) => s !== subscription);
    });
  }

  /** Subscribes a meter (see {@link EventMeter}). Returns the function that unsubscribes it. */
  meter(meter: EventMeter): () => void {
    this.meters = [...this.meters, meter];
    return this.added(() => {
      this.meters = this.meters.filter((m) => m !== meter);
    });
  }

  /** Recompiles after an addition; returns the function that undoes it (once) and recompiles. */
  private added(remove: () => void): () => void {
    this.compile();
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      remove();
      this.compile();
    };
  }

  /** Sends `event` to its listeners, and a `call` or `bulkhead.changed` event to the meters too. */
  emit(event: BulwarkEvent): void {
    if (this.meters.length > 0) {
      if (event.type === 'call') {
        this.meterCall(event.source, event.at, event.kind, event.outcome, event.durationMs, event.error);
      } else if (event.type === 'bulkhead.changed') {
        this.meterBulkhead(event.source, event.at, event.active, event.queued, event.capacity);
      }
    }
    this.deliver(event);
  }

  /**
   * The per-call events of one source (a policy's name and kind), for the component to keep: each meter's
   * {@link SourceMeter} for that source is resolved once (and again after the subscriptions change), and
   * the outcome travels as an index, so a call costs the meters no lookup.
   */
  source(source: string, kind: string, state?: SourceState): SourceEvents {
    return new SourceEvents(this, source, kind, state);
  }

  /**
   * Sources of this sink whose calls can succeed together (see {@link SourceGroup}), in the order their
   * `call` events are reported.
   */
  group(members: readonly SourceEvents[]): SourceGroup {
    for (const member of members) {
      if (member.sink !== this) throw new TypeError('EventSink.group: a source of another sink');
    }
    return new SourceGroup(this, members);
  }

  /** @internal Sends `event` to its listeners only. */
  deliver(event: BulwarkEvent): void {
    // Routes are replaced, never changed in place: a listener may unsubscribe while we iterate.
    const listeners = this.routes.get(event.type) ?? this.wildcard;
    for (let i = 0; i < listeners.length; i++) {
      try {
        (listeners[i] as EventListener)(event);
      } catch (error) {
        reportAsync(error);
      }
    }
  }

  /**
   * Emits a `call` event: to the meters with its fields, and as an object to the listeners of `call`
   * (built only if there are any). A success carries no `error` field.
   */
  emitCall(
    source: string,
    at: number,
    kind: string,
    outcome: CallOutcome,
    durationMs: number,
    error: unknown,
  ): void {
    this.meterCall(source, at, kind, outcome, durationMs, error);
    if (!this.callObjects) return;
    this.deliver(callEvent(source, at, kind, outcome, durationMs, error));
  }

  /** Emits a `bulkhead.changed` event: to the meters with its fields, and as an object to its listeners. */
  emitBulkheadChanged(source: string, at: number, active: number, queued: number, capacity: number): void {
    this.meterBulkhead(source, at, active, queued, capacity);
    if (!this.bulkheadObjects) return;
    this.deliver({ type: 'bulkhead.changed', source, at, active, queued, capacity });
  }

  private meterCall(
    source: string,
    at: number,
    kind: string,
    outcome: CallOutcome,
    durationMs: number,
    error: unknown,
  ): void {
    const meters = this.meters;
    for (let i = 0; i < meters.length; i++) {
      try {
        (meters[i] as EventMeter).call(source, at, kind, outcome, durationMs, error);
      } catch (e) {
        reportAsync(e);
      }
    }
  }

  private meterBulkhead(source: string, at: number, active: number, queued: number, capacity: number): void {
    const meters = this.meters;
    for (let i = 0; i < meters.length; i++) {
      try {
        (meters[i] as EventMeter).bulkheadChanged(source, at, active, queued, capacity);
      } catch (e) {
        reportAsync(e);
      }
    }
  }

  private compile(): void {
    const named = new Set<string>();
    for (const s of this.subscriptions) for (const t of s.types ?? s.except ?? []) named.add(t);
    const routes = new Map<string, readonly EventListener[]>();
    for (const type of named) {
      routes.set(
        type,
        this.subscriptions.filter((s) => receives(s, type)).map((s) => s.listener),
      );
    }
    // A type nobody named: every subscription without a `types` list gets it.
    this.wildcard = this.subscriptions.filter((s) => s.types === undefined).map((s) => s.listener);
    this.routes = routes;
    this.callObjects = (routes.get('call') ?? this.wildcard).length > 0;
    this.bulkheadObjects = (routes.get('bulkhead.changed') ?? this.wildcard).length > 0;
    const metered = this.meters.length > 0;
    this.callWanted = metered || this.callObjects;
    this.bulkheadWanted = metered || this.bulkheadObjects;
    this.listening = this.subscriptions.length > 0 || metered;
    this.version++;
  }
}

const NO_SOURCE_METERS: readonly SourceMeter[] = [];

/** A meter without {@link EventMeter.forSource}, seen as one for a given source. */
function sourcePart(
  meter: EventMeter,
  source: string,
  kind: string,
  state: SourceState | undefined,
): SourceMeter {
  if (meter.forSource !== undefined) return meter.forSource(source, kind, state);
  return {
    call: (at, outcome, durationMs, error) =>
      meter.call(source, at, kind, CALL_OUTCOMES[outcome] as CallOutcome, durationMs, error),
    bulkheadChanged: (at, active, queued, capacity) =>
      meter.bulkheadChanged(source, at, active, queued, capacity),
  };
}

/**
 * The `call` and `bulkhead.changed` events of one source, made by {@link EventSink.source}: what a policy
 * holds and emits through. Each meter gets them through its {@link SourceMeter} for this source, listeners
 * as event objects (built only when one wants them). Check `events.wants('call')` (a field) first, as for
 * any event.
 */
export class SourceEvents {
  private version = -1;
  private meters: readonly SourceMeter[] = NO_SOURCE_METERS;
  /** Each meter's part, by the meter's position in `sink.meters` (undefined: its `forSource` threw). */
  private byMeter: readonly (SourceMeter | undefined)[] = [];
  /** The parts told of every `bulkhead.changed` (those that do not read the state themselves). */
  private changeMeters: readonly SourceMeter[] = NO_SOURCE_METERS;
  private changesWanted = false;

  constructor(
    readonly sink: EventSink,
    readonly source: string,
    readonly kind: string,
    /** What meters may read instead of being told of each `bulkhead.changed`. */
    readonly state?: SourceState,
  ) {}

  /** Whether anyone takes this source's `bulkhead.changed` events (a listener, or a meter not reading its state). */
  wantsBulkheadChanged(): boolean {
    if (this.version !== this.sink.version) this.resolve();
    return this.changesWanted;
  }

  /** A call ended: `outcome` is its index in {@link CALL_OUTCOMES}; a success carries no `error`. */
  call(at: number, outcome: number, durationMs: number, error: unknown): void {
    const sink = this.sink;
    if (this.version !== sink.version) this.resolve();
    const meters = this.meters;
    for (let i = 0; i < meters.length; i++) {
      try {
        (meters[i] as SourceMeter).call(at, outcome, durationMs, error);
      } catch (e) {
        reportAsync(e);
      }
    }
    if (!sink.callObjects) return;
    sink.deliver(
      callEvent(this.source, at, this.kind, CALL_OUTCOMES[outcome] as CallOutcome, durationMs, error),
    );
  }

  /**
   * @internal This source's part of the meter at `index` in `sink.meters` (undefined: that meter gave
   * none), resolved if need be. By position: one meter object subscribed twice has two parts.
   */
  partAt(index: number): SourceMeter | undefined {
    if (this.version !== this.sink.version) this.resolve();
    return this.byMeter[index];
  }

  bulkheadChanged(at: number, active: number, queued: number, capacity: number): void {
    const sink = this.sink;
    if (this.version !== sink.version) this.resolve();
    const meters = this.changeMeters;
    for (let i = 0; i < meters.length; i++) {
      try {
        (meters[i] as SourceMeter).bulkheadChanged(at, active, queued, capacity);
      } catch (e) {
        reportAsync(e);
      }
    }
    if (!sink.bulkheadObjects) return;
    sink.deliver({ type: 'bulkhead.changed', source: this.source, at, active, queued, capacity });
  }

  private resolve(): void {
    const sink = this.sink;
    this.version = sink.version;
    const parts: SourceMeter[] = [];
    const byMeter: (SourceMeter | undefined)[] = [];
    for (const meter of sink.meters) {
      let part: SourceMeter | undefined;
      try {
        part = sourcePart(meter, this.source, this.kind, this.state);
        parts.push(part);
      } catch (e) {
        reportAsync(e);
      }
      byMeter.push(part);
    }
    this.meters = parts;
    this.byMeter = byMeter;
    this.changeMeters = parts.filter((part) => part.readsState !== true);
    this.changesWanted = this.changeMeters.length > 0 || sink.bulkheadObjects;
  }
}

/**
 * Sources of one sink whose calls can succeed together, made by {@link EventSink.group}: the layers of a
 * pipeline segment, where a call that gets through all of them succeeds in each at the same time with the
 * same duration. One `succeeded` reports that call of every member, in member order: when only meters take
 * `call` events, each meter is called once for all of them (its {@link EventMeter.forGroup} part, or its
 * parts in turn); when a listener takes them as objects too, each member's call is reported as its own
 * `call` would report it (to the meters, then to the listeners, member by member).
 */
export class SourceGroup {
  private version = -1;
  private parts: readonly GroupMeter[] = NO_GROUP_METERS;

  constructor(
    readonly sink: EventSink,
    readonly members: readonly SourceEvents[],
  ) {}

  /** The call of every member succeeded, at `at` after `durationMs`. */
  succeeded(at: number, durationMs: number): void {
    const sink = this.sink;
    if (sink.callObjects) {
      // Listeners too: each member's call goes to the meters and then to the listeners before the next
      // member's, as its own `call` would (a listener may change the subscriptions in between).
      const members = this.members;
      for (let i = 0; i < members.length; i++) {
        (members[i] as SourceEvents).call(at, SUCCESS_INDEX, durationMs, undefined);
      }
      return;
    }
    if (this.version !== sink.version) this.resolve();
    const parts = this.parts;
    for (let i = 0; i < parts.length; i++) {
      try {
        (parts[i] as GroupMeter).succeeded(at, durationMs);
      } catch (e) {
        reportAsync(e);
      }
    }
  }

  private resolve(): void {
    const sink = this.sink;
    this.version = sink.version;
    const groups: GroupMeter[] = [];
    const meters = sink.meters;
    for (let m = 0; m < meters.length; m++) {
      const meter = meters[m] as EventMeter;
      const parts: SourceMeter[] = [];
      for (const member of this.members) {
        const part = member.partAt(m);
        if (part !== undefined) parts.push(part);
      }
      let group: GroupMeter | undefined;
      try {
        group = meter.forGroup?.(parts);
      } catch (e) {
        reportAsync(e);
      }
      groups.push(group ?? new EachPart(parts));
    }
    this.parts = groups;
  }
}

const NO_GROUP_METERS: readonly GroupMeter[] = [];
const SUCCESS_INDEX = CALL_OUTCOME_INDEX.success;

/** A group part of a meter without {@link EventMeter.forGroup}: its parts, called in turn. */
class EachPart implements GroupMeter {
  constructor(private readonly parts: readonly SourceMeter[]) {}

  succeeded(at: number, durationMs: number): void {
    const parts = this.parts;
    for (let i = 0; i < parts.length; i++) {
      try {
        (parts[i] as SourceMeter).call(at, SUCCESS_INDEX, durationMs, undefined);
      } catch (e) {
        reportAsync(e);
      }
    }
  }
}

/** A `call` event from its fields; a success carries no `error` field. */
export function callEvent(
  source: string,
  at: number,
  kind: string,
  outcome: CallOutcome,
  durationMs: number,
  error: unknown,
): EventOf<'call'> {
  return outcome === 'success'
    ? { type: 'call', source, at, kind, outcome, durationMs }
    : { type: 'call', source, at, kind, outcome, durationMs, error };
}

function reportAsync(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}
