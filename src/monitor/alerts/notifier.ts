/**
 * The notification pipeline, with Alertmanager's semantics, in-process:
 *
 * - an alert is identified by its labels; the route tree (matchers, `continue`) picks its receivers;
 * - alerts are grouped by `group_by` labels; a new group waits `group_wait`, then is flushed every
 *   `group_interval`; a flush notifies only when the group changed since the last notification to that
 *   receiver, or `repeat_interval` has passed (dedup against the notification log);
 * - silenced and inhibited alerts are muted at flush time;
 * - notifications go to a durable outbox (SQLite) before any delivery is tried.
 */
import type { Timer } from '../../core/clock.js';
import type { Duration } from '../../core/duration.js';
import { type Runtime, systemRuntime } from '../../core/runtime.js';
import { type Backoff, backoff as backoffs } from '../../policy/backoff.js';
import { durationOption, invalid, knownKeys } from '../../policy/options.js';
import { Dispatcher } from './delivery.js';
import { fingerprint, type Labels, Matchers, pickLabels } from './labels.js';
import type { Notification, NotifiedAlert, Receiver } from './notification.js';
import type { Alert } from './rules.js';
import { type SilenceInput, type SilenceStatus, Silences } from './silences.js';
import { AlertStore, type LogEntry, type OutboxCounts } from './store.js';

/** A node of the route tree. Children inherit every option they do not set. */
export interface RouteConfig {
  /** The receiver's name. Required at the root. */
  receiver?: string;
  /** Alertmanager matchers, e.g. `['severity="page"', 'service=~"api|web"']`; none matches everything. */
  matchers?: readonly string[];
  /** Labels that split alerts into groups; `['...']` groups by every label. @defaultValue `['alertname']` */
  groupBy?: readonly string[];
  /** How long a new group waits for more alerts before its first notification. @defaultValue `'30s'` */
  groupWait?: Duration;
  /** How long a group waits before notifying about changes (new or resolved alerts). @defaultValue `'5m'` */
  groupInterval?: Duration;
  /** How long before an unchanged, still-firing group is notified again. @defaultValue `'4h'` */
  repeatInterval?: Duration;
  /** Keep matching the siblings after this route matched. @defaultValue `false` */
  continue?: boolean;
  routes?: readonly RouteConfig[];
}

/** Mutes alerts matching `targetMatchers` while an alert matching `sourceMatchers` fires with the same `equal` labels. */
export interface InhibitRule {
  sourceMatchers: readonly string[];
  targetMatchers: readonly string[];
  /** @defaultValue `[]` */
  equal?: readonly string[];
}

export interface NotifierOptions {
  route: RouteConfig;
  receivers: readonly Receiver[];
  inhibitRules?: readonly InhibitRule[];
  /** The SQLite file of the outbox, notification log and silences, or an open store. @defaultValue `':memory:'` */
  store?: string | AlertStore;
  runtime?: Runtime;
  /** Backoff between delivery attempts. @defaultValue `backoff.exponential({ initial: '1s', max: '5m' }).withJitter('full')` */
  retryBackoff?: Backoff;
  /** Deadline of one delivery attempt. @defaultValue `'10s'` */
  deliveryTimeout?: Duration;
  /** The longest `Retry-After` honoured. @defaultValue `'1h'` */
  maxRetryAfter?: Duration;
  /** Sent as `externalURL` in notifications. @defaultValue `''` */
  externalURL?: string;
  /**
   * How long delivered notifications and notification-log entries are kept (Alertmanager's
   * `--data.retention`); keep it longer than the longest `repeatInterval`. @defaultValue `'5d'`
   */
  retention?: Duration;
}

interface Route {
  readonly id: string;
  readonly receiver: string;
  readonly matchers: Matchers;
  readonly groupBy: readonly string[] | 'all';
  readonly groupWait: number;
  readonly groupInterval: number;
  readonly repeatInterval: number;
  readonly continue: boolean;
  readonly routes: readonly Route[];
}

interface StoredAlert {
  labels: Labels;
  annotations: Labels;
  startsAt: number;
  endsAt: number | undefined;
  fingerprint: string;
}

class Group {
  readonly alerts = new Map<string, StoredAlert>();
  timer: Timer | undefined;
  constructor(
    readonly key: string,
    readonly route: Route,
    readonly labels: Labels,
  ) {}
}

const DEFAULTS = {
  groupBy: ['alertname'],
  groupWait: 30_000,
  groupInterval: 300_000,
  repeatInterval: 14_400_000,
};

function compileRoute(
  config: RouteConfig,
  parent: Omit<Route, 'id' | 'matchers' | 'routes' | 'continue'> | undefined,
  id: string,
  receivers: ReadonlySet<string>,
): Route {
  const where = `route ${id}`;
  if (typeof config !== 'object' || config === null) throw invalid(where, 'route', config, 'an object');
  const receiver = config.receiver ?? parent?.receiver;
  if (receiver === undefined)
    throw invalid(where, 'receiver', undefined, 'a receiver name (required at the root)');
  if (!receivers.has(receiver))
    throw invalid(where, 'receiver', receiver, `one of the receivers (${[...receivers].join(', ')})`);
  let matchers: Matchers;
  try {
    matchers = Matchers.parse(config.matchers ?? []);
  } catch (error) {
    throw new TypeError(`${where}: ${(error as Error).message}`);
  }
  const groupByList = config.groupBy ?? (parent === undefined ? DEFAULTS.groupBy : undefined);
  const groupBy =
    groupByList === undefined
      ? (parent?.groupBy ?? DEFAULTS.groupBy)
      : groupByList.includes('...')
        ? 'all'
        : [...groupByList];
  const node = {
    receiver,
    groupBy,
    groupWait: durationOption(where, 'groupWait', config.groupWait, parent?.groupWait ?? DEFAULTS.groupWait),
    groupInterval: durationOption(
      where,
      'groupInterval',
      config.groupInterval,
      parent?.groupInterval ?? DEFAULTS.groupInterval,
      0,
      true,
    ),
    repeatInterval: durationOption(
      where,
      'repeatInterval',
      config.repeatInterval,
      parent?.repeatInterval ?? DEFAULTS.repeatInterval,
      0,
      true,
    ),
  };
  return {
    id,
    ...node,
    matchers,
    continue: config.continue ?? false,
    routes: (config.routes ?? []).map((child, i) => compileRoute(child, node, `${id}.${i}`, receivers)),
  };
}

/** The routes an alert goes to: the deepest matching ones, Alertmanager's way. */
function match(route: Route, labels: Labels): Route[] {
  if (!route.matchers.matches(labels)) return [];
  const found: Route[] = [];
  for (const child of route.routes) {
    const matched = match(child, labels);
    if (matched.length > 0) {
      found.push(...matched);
      if (!child.continue) break;
    }
  }
  return found.length > 0 ? found : [route];
}

function subset(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

function common(maps: readonly Labels[]): Labels {
  if (maps.length === 0) return {};
  const out: Record<string, string> = { ...maps[0] };
  for (const m of maps.slice(1)) for (const k of Object.keys(out)) if (m[k] !== out[k]) delete out[k];
  return out;
}

interface CompiledInhibit {
  source: Matchers;
  target: Matchers;
  equal: readonly string[];
}

/**
 * Routes, groups, dedups, mutes and queues alerts for delivery.
 * @example
 * const notifier = new Notifier({
 *   runtime,
 *   store: 'alerts.db',
 *   receivers: [slackReceiver({ name: 'slack', url: process.env.SLACK_WEBHOOK_URL! })],
 *   route: { receiver: 'slack', groupBy: ['alertname'], groupWait: '30s', groupInterval: '5m', repeatInterval: '4h' },
 * });
 * const engine = new AlertRuleEngine({ runtime, rules, onAlert: (a) => notifier.receive(a) });
 * // …
 * engine.close();
 * await notifier.close();
 */
export class Notifier {
  readonly store: AlertStore;
  private readonly runtime: Runtime;
  private readonly route: Route;
  private readonly receivers: ReadonlyMap<string, Receiver>;
  private readonly inhibitRules: readonly CompiledInhibit[];
  private readonly alerts = new Map<string, StoredAlert>();
  private readonly groups = new Map<string, Group>();
  private readonly dispatcher: Dispatcher;
  private readonly externalURL: string;
  private readonly ownsStore: boolean;
  private readonly silences: Silences;
  private readonly retentionMs: number;
  private prunedAt = Number.NEGATIVE_INFINITY;
  private closed = false;

  constructor(options: NotifierOptions) {
    const where = 'Notifier';
    knownKeys(where, options, [
      'route',
      'receivers',
      'inhibitRules',
      'store',
      'retryBackoff',
      'deliveryTimeout',
      'maxRetryAfter',
      'externalURL',
      'retention',
    ]);
    this.runtime = options.runtime ?? systemRuntime();
    if (!Array.isArray(options.receivers) || options.receivers.length === 0) {
      throw invalid(where, 'receivers', options.receivers, 'a non-empty list of receivers');
    }
    const receivers = new Map<string, Receiver>();
    for (const r of options.receivers) {
      if (receivers.has(r.name)) throw invalid(where, 'receivers', r.name, 'receivers with unique names');
      receivers.set(r.name, r);
    }
    this.receivers = receivers;
    this.route = compileRoute(options.route, undefined, 'root', new Set(receivers.keys()));
    this.inhibitRules = (options.inhibitRules ?? []).map((rule, i) => {
      try {
        return {
          source: Matchers.parse(rule.sourceMatchers),
          target: Matchers.parse(rule.targetMatchers),
          equal: rule.equal ?? [],
        };
      } catch (error) {
        throw new TypeError(`${where}: inhibitRules[${i}]: ${(error as Error).message}`);
      }
    });
    const timeoutMs = durationOption(where, 'deliveryTimeout', options.deliveryTimeout, 10_000, 0, true);
    const maxRetryAfter = durationOption(where, 'maxRetryAfter', options.maxRetryAfter, 3_600_000);
    this.externalURL = options.externalURL ?? '';
    this.retentionMs = durationOption(where, 'retention', options.retention, 5 * 86_400_000, 0, true);
    const retryBackoff =
      options.retryBackoff ?? backoffs.exponential({ initial: '1s', max: '5m' }).withJitter('full');
    this.ownsStore = !(options.store instanceof AlertStore);
    this.store =
      options.store instanceof AlertStore ? options.store : new AlertStore(options.store ?? ':memory:');
    this.silences = new Silences(this.store, this.runtime);
    this.dispatcher = new Dispatcher(
      this.runtime,
      this.store,
      [...receivers.values()],
      retryBackoff,
      timeoutMs,
      maxRetryAfter,
    );
    // Whatever a previous process left in the outbox goes out now.
    this.dispatcher.kick();
  }

  /** Takes a firing or resolved alert from the rule engine (or any other source); ignored after `close()`. */
  receive(alert: Alert): void {
    // After close() alerts are dropped rather than thrown at: the caller is usually a rule engine's timer,
    // where a throw would take the process down during shutdown.
    if (this.closed) return;
    const fp = fingerprint(alert.labels);
    const stored: StoredAlert = {
      labels: alert.labels,
      annotations: alert.annotations,
      startsAt: alert.startsAt,
      endsAt: alert.endsAt,
      fingerprint: fp,
    };
    if (stored.endsAt === undefined) this.alerts.set(fp, stored);
    else this.alerts.delete(fp);
    for (const route of match(this.route, alert.labels)) {
      const groupLabels =
        route.groupBy === 'all' ? { ...alert.labels } : pickLabels(alert.labels, route.groupBy);
      const key = `${route.id}:${JSON.stringify(Object.entries(groupLabels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
      let group = this.groups.get(key);
      if (group === undefined) {
        if (stored.endsAt !== undefined) continue; // resolving an alert no group holds: nothing to say
        group = new Group(key, route, groupLabels);
        this.groups.set(key, group);
        group.timer = this.runtime.clock.setTimer(route.groupWait, (g) => this.flush(g), group);
      }
      group.alerts.set(fp, stored);
    }
  }

  private flush(group: Group): void {
    if (this.closed) return;
    const now = this.runtime.clock.now();
    if (now - this.prunedAt >= 3_600_000) {
      this.prunedAt = now;
      this.store.prune(now - this.retentionMs);
    }
    const receiver = this.receivers.get(group.route.receiver) as Receiver;
    const firing: StoredAlert[] = [];
    const resolved: StoredAlert[] = [];
    const silenced = this.silences.activeAt(now);
    for (const alert of group.alerts.values()) {
      if (silenced(alert.labels) || this.inhibited(alert)) continue;
      (alert.endsAt === undefined ? firing : resolved).push(alert);
    }
    const firingSet = new Set(firing.map((a) => a.fingerprint));
    const resolvedSet = new Set(resolved.map((a) => a.fingerprint));
    const last = this.store.lastNotified(group.key, receiver.name);
    if (
      this.needsUpdate(last, firingSet, resolvedSet, receiver.sendResolved, group.route.repeatInterval, now)
    ) {
      const alerts: NotifiedAlert[] = [...firing, ...(receiver.sendResolved ? resolved : [])].map((a) => ({
        status: a.endsAt === undefined ? 'firing' : 'resolved',
        labels: a.labels,
        annotations: a.annotations,
        startsAt: a.startsAt,
        endsAt: a.endsAt,
        fingerprint: a.fingerprint,
      }));
      const notification: Notification = {
        receiver: receiver.name,
        status: firing.length > 0 ? 'firing' : 'resolved',
        groupKey: group.key,
        groupLabels: group.labels,
        commonLabels: common(alerts.map((a) => a.labels)),
        commonAnnotations: common(alerts.map((a) => a.annotations)),
        externalURL: this.externalURL,
        alerts,
      };
      const log: LogEntry = { firing: firingSet, resolved: resolvedSet, at: now };
      this.store.enqueue(notification, log);
      const events = this.runtime.events;
      if (events.wants('alert.notification')) {
        events.emit({
          type: 'alert.notification',
          source: receiver.name,
          at: now,
          receiver: receiver.name,
          groupKey: group.key,
          status: notification.status,
          firing: firing.length,
          resolved: receiver.sendResolved ? resolved.length : 0,
        });
      }
      this.dispatcher.kick(receiver.name);
    }
    // Resolved alerts have been told (or muted): they leave the group, and an empty group ends.
    for (const alert of resolved) group.alerts.delete(alert.fingerprint);
    for (const [fp, alert] of group.alerts) if (alert.endsAt !== undefined) group.alerts.delete(fp);
    if (group.alerts.size === 0) {
      this.groups.delete(group.key);
      return;
    }
    group.timer = this.runtime.clock.setTimer(group.route.groupInterval, (g) => this.flush(g), group);
  }

  /** Alertmanager's DedupStage: is this flush worth a notification? */
  private needsUpdate(
    last: LogEntry | undefined,
    firing: ReadonlySet<string>,
    resolved: ReadonlySet<string>,
    sendResolved: boolean,
    repeatInterval: number,
    now: number,
  ): boolean {
    if (last === undefined) return firing.size > 0;
    if (!subset(firing, last.firing)) return true;
    // Everything resolved: say so once, if the receiver hears about resolutions and was told of firing ones.
    // (All muted, nothing resolved: there is nothing to say, and an empty notification says nothing.)
    if (firing.size === 0) return sendResolved && last.firing.size > 0 && resolved.size > 0;
    if (sendResolved && !subset(resolved, last.resolved)) return true;
    return now - last.at >= repeatInterval;
  }

  private inhibited(alert: StoredAlert): boolean {
    if (alert.endsAt !== undefined) return false;
    for (const rule of this.inhibitRules) {
      if (!rule.target.matches(alert.labels)) continue;
      for (const source of this.alerts.values()) {
        if (source.fingerprint === alert.fingerprint || !rule.source.matches(source.labels)) continue;
        if (rule.equal.every((name) => (source.labels[name] ?? '') === (alert.labels[name] ?? '')))
          return true;
      }
    }
    return false;
  }

  /**
   * Creates a silence and returns its id (see {@link Silences.create}).
   * @example
   * const id = notifier.createSilence({ matchers: ['alertname="LowSuccessRate"'], duration: '2h', createdBy: 'ana', comment: 'deploy' });
   */
  createSilence(input: SilenceInput): string {
    return this.silences.create(input);
  }

  /** Ends a silence now. Returns false when no such silence is active or pending. */
  expireSilence(id: string): boolean {
    return this.silences.expire(id);
  }

  /** Every silence with its state now. */
  listSilences(): SilenceStatus[] {
    return this.silences.list();
  }

  /** The outbox's counts by state. */
  outbox(): OutboxCounts {
    return this.store.counts();
  }

  /** True when no delivery is in flight (pending ones may be waiting for their retry). */
  get idle(): boolean {
    return this.dispatcher.idle;
  }

  /** Stops the group timers, waits for the deliveries in flight, and closes the store if it opened it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const group of this.groups.values()) group.timer?.cancel();
    this.groups.clear();
    await this.dispatcher.close();
    if (this.ownsStore) this.store.close();
  }
}
