/**
 * Delivers the outbox to the receivers. Each receiver has its own lane: its notifications go out in order,
 * one at a time; a failed attempt waits the policy module's backoff (or the receiver's `Retry-After`, when
 * longer) and is tried again, for as long as it takes. A receiver that refuses a notification for good
 * (HTTP 400, SMTP 5xx) has it marked rejected, and the lane moves on.
 */
import type { Timer } from '../../core/clock.js';
import { isBulwarkError } from '../../core/errors.js';
import { EventSink } from '../../core/events.js';
import type { Random } from '../../core/random.js';
import type { Runtime } from '../../core/runtime.js';
import type { Backoff } from '../../policy/backoff.js';
import type { Policy } from '../../policy/policy.js';
import { timeout } from '../../policy/timeout.js';
import { DeliveryError, type Receiver } from './notification.js';
import type { AlertStore, OutboxEntry } from './store.js';

function describeError(error: unknown): string {
  if (error instanceof DeliveryError) return error.message;
  if (isBulwarkError(error, 'TIMEOUT')) return 'timed out';
  // Anything else may carry an address or a credential in its message: report only its kind.
  const name = typeof error === 'object' && error !== null ? (error as { name?: unknown }).name : undefined;
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return `${typeof name === 'string' ? name : 'error'}${typeof code === 'string' ? ` (${code})` : ''}`;
}

/** The wait before attempt `attempts + 1`: the backoff schedule's step `attempts`. */
function backoffDelay(start: Backoff, attempts: number, random: Random): number {
  let step = start;
  for (let i = 0; i < attempts; i++) step = step.next(random);
  return step.delay;
}

class Lane {
  private running: Promise<void> | undefined;
  /** Set when a kick arrives while a drain runs: the drain may have read an empty outbox just before. */
  private again = false;
  private timer: Timer | undefined;
  private readonly random: Random;

  constructor(
    private readonly dispatcher: Dispatcher,
    readonly receiver: Receiver,
  ) {
    this.random = dispatcher.runtime.random.fork(`alerts/delivery/${receiver.name}`);
  }

  kick(): void {
    if (this.dispatcher.closed) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.timer?.cancel();
    this.timer = undefined;
    this.again = false;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.again) this.kick();
    });
  }

  private async drain(): Promise<void> {
    const { store, runtime } = this.dispatcher;
    const clock = runtime.clock;
    for (;;) {
      if (this.dispatcher.closed) return;
      const entry = store.head(this.receiver.name);
      if (entry === undefined) return;
      const now = clock.now();
      if (entry.nextAt > now) {
        this.timer = clock.setTimer(entry.nextAt - now, (lane) => lane.kick(), this);
        return;
      }
      await this.attempt(entry);
    }
  }

  private async attempt(entry: OutboxEntry): Promise<void> {
    const { store, runtime, deadline } = this.dispatcher;
    const clock = runtime.clock;
    const attempt = entry.attempts + 1;
    try {
      await deadline.execute(({ signal }) => this.receiver.send(entry.notification, signal));
    } catch (error) {
      if (this.dispatcher.closed && !store.isOpen()) return;
      const message = describeError(error);
      const now = clock.now();
      if (error instanceof DeliveryError && !error.retryable) {
        store.markRejected(entry.id, now, message);
        this.dispatcher.emit(this.receiver.name, entry.id, 'rejected', attempt, message, undefined);
        return;
      }
      const hint = error instanceof DeliveryError ? (error.retryAfterMs ?? 0) : 0;
      const wait = Math.max(
        backoffDelay(this.dispatcher.backoff, attempt, this.random),
        Math.min(hint, this.dispatcher.maxRetryAfterMs),
      );
      store.markRetry(entry.id, now + wait, message);
      this.dispatcher.emit(this.receiver.name, entry.id, 'retrying', attempt, message, now + wait);
      return;
    }
    if (!store.isOpen()) return;
    store.markDelivered(entry.id, clock.now());
    this.dispatcher.emit(this.receiver.name, entry.id, 'delivered', attempt, undefined, undefined);
  }

  /** Waits for the attempt in flight, and cancels the retry timer. */
  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    await this.running;
  }

  get idle(): boolean {
    return this.running === undefined;
  }
}

/** @internal Drives the outbox; owned by the notifier. */
export class Dispatcher {
  closed = false;
  readonly deadline: Policy;
  private readonly lanes = new Map<string, Lane>();

  constructor(
    readonly runtime: Runtime,
    readonly store: AlertStore,
    receivers: readonly Receiver[],
    readonly backoff: Backoff,
    timeoutMs: number,
    readonly maxRetryAfterMs: number,
  ) {
    // Its own silent sink: delivery deadlines are plumbing, and their `call` events would otherwise feed
    // the very rules that raise alerts (a receiver outage showing up as failed calls).
    this.deadline = timeout(timeoutMs, {
      runtime: { clock: runtime.clock, random: runtime.random, events: new EventSink() },
      name: 'alerts.delivery',
    });
    for (const receiver of receivers) this.lanes.set(receiver.name, new Lane(this, receiver));
  }

  /** Starts delivering to `receiver` (or to every receiver with pending notifications). */
  kick(receiver?: string): void {
    if (receiver !== undefined) {
      this.lanes.get(receiver)?.kick();
      return;
    }
    for (const name of this.store.pendingReceivers()) this.lanes.get(name)?.kick();
  }

  /** True when no delivery is in flight. */
  get idle(): boolean {
    for (const lane of this.lanes.values()) if (!lane.idle) return false;
    return true;
  }

  emit(
    receiver: string,
    id: number,
    outcome: 'delivered' | 'retrying' | 'rejected',
    attempt: number,
    error: string | undefined,
    retryAt: number | undefined,
  ): void {
    const events = this.runtime.events;
    if (!events.wants('alert.delivery')) return;
    events.emit({
      type: 'alert.delivery',
      source: receiver,
      at: this.runtime.clock.now(),
      receiver,
      id,
      outcome,
      attempt,
      ...(error === undefined ? {} : { error }),
      ...(retryAt === undefined ? {} : { retryAt }),
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.lanes.values()].map((lane) => lane.stop()));
  }
}
