/**
 * Silences, stored in the alert store's SQLite file: the notifier of a running process and the
 * `bulwark silence` command share them, so a silence created from the CLI mutes the next flush.
 */
import type { Duration } from '../../core/duration.js';
import type { Runtime } from '../../core/runtime.js';
import { durationOption, invalid, knownKeys } from '../../policy/options.js';
import { type Labels, type Matcher, Matchers, parseMatcher } from './labels.js';
import type { AlertStore, Silence } from './store.js';

/** A silence to create. */
export interface SilenceInput {
  /** Matchers in Alertmanager's syntax, e.g. `alertname="LowSuccessRate"`; at least one. */
  matchers: readonly string[];
  /** How long from `startsAt` (or give `endsAt`). */
  duration?: Duration;
  /** ms since the epoch (clock time). */
  endsAt?: number;
  /** @defaultValue now */
  startsAt?: number;
  createdBy?: string;
  comment?: string;
}

/** A silence with its state at the time asked. */
export interface SilenceStatus extends Silence {
  readonly state: 'pending' | 'active' | 'expired';
}

/** Create, expire, list and match silences in an {@link AlertStore}. */
export class Silences {
  constructor(
    private readonly store: AlertStore,
    private readonly runtime: Runtime,
  ) {}

  /**
   * Creates a silence and returns its id.
   * @example
   * silences.create({ matchers: ['alertname="LowSuccessRate"'], duration: '2h', createdBy: 'ana', comment: 'deploy' });
   */
  create(input: SilenceInput): string {
    const where = 'createSilence';
    knownKeys(where, input, ['matchers', 'duration', 'endsAt', 'startsAt', 'createdBy', 'comment']);
    if (!Array.isArray(input.matchers) || input.matchers.length === 0) {
      throw invalid(where, 'matchers', input.matchers, 'a non-empty list of matchers');
    }
    const matchers: Matcher[] = input.matchers.map((m) => parseMatcher(m));
    const now = this.runtime.clock.now();
    const startsAt = input.startsAt ?? now;
    let endsAt: number;
    if (input.endsAt !== undefined) endsAt = input.endsAt;
    else if (input.duration !== undefined)
      endsAt = startsAt + durationOption(where, 'duration', input.duration, 0, 0, true);
    else throw invalid(where, 'duration', undefined, 'a duration (or give endsAt)');
    if (!(endsAt > startsAt)) throw invalid(where, 'endsAt', endsAt, `a time after startsAt (${startsAt})`);
    const random = this.runtime.random;
    const id = [random.nextUint32(), random.nextUint32()]
      .map((n) => n.toString(16).padStart(8, '0'))
      .join('');
    this.store.putSilence({
      id,
      matchers,
      startsAt,
      endsAt,
      createdBy: input.createdBy ?? '',
      comment: input.comment ?? '',
    });
    this.emit(id, 'created', matchers);
    return id;
  }

  /** Ends a silence now. Returns false when no such silence is active or pending. */
  expire(id: string): boolean {
    const now = this.runtime.clock.now();
    const silence = this.store.silences().find((s) => s.id === id);
    if (silence === undefined || silence.endsAt <= now) return false;
    this.store.putSilence({ ...silence, startsAt: Math.min(silence.startsAt, now), endsAt: now });
    this.emit(id, 'expired', silence.matchers);
    return true;
  }

  /** Every silence with its state now. */
  list(): SilenceStatus[] {
    const now = this.runtime.clock.now();
    return this.store.silences().map((s) => ({
      ...s,
      state: now < s.startsAt ? 'pending' : now < s.endsAt ? 'active' : 'expired',
    }));
  }

  /** A matcher over the silences active at `now` (read once: use it for one flush). */
  activeAt(now: number): (labels: Labels) => boolean {
    const active = this.store
      .silences()
      .filter((s) => s.startsAt <= now && now < s.endsAt)
      .map((s) => new Matchers(s.matchers));
    return (labels) => active.some((m) => m.matches(labels));
  }

  private emit(id: string, action: 'created' | 'expired', matchers: readonly Matcher[]): void {
    const events = this.runtime.events;
    if (events.wants('alert.silence')) {
      events.emit({
        type: 'alert.silence',
        source: 'silences',
        at: this.runtime.clock.now(),
        id,
        action,
        matchers: new Matchers(matchers).toString(),
      });
    }
  }
}
