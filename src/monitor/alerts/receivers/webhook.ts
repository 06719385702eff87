/**
 * The generic webhook: Alertmanager's version 4 JSON payload, so anything that consumes Alertmanager
 * webhooks consumes Bulwark's.
 */
import { SystemClock } from '../../../core/clock.js';
import { invalid, knownKeys } from '../../../policy/options.js';
import { type Notification, type Receiver, rfc3339 } from '../notification.js';
import { type Secret, secret } from '../secret.js';
import { postJson } from './http.js';

const systemClock = new SystemClock();

export interface WebhookReceiverOptions {
  name: string;
  /** Where to POST (a secret: never logged). */
  url: string | Secret;
  /** Sent as `Authorization: Bearer …` when given (a secret). */
  bearerToken?: string | Secret;
  /** @defaultValue `true` */
  sendResolved?: boolean;
  /** At most this many alerts per payload; the rest are counted in `truncatedAlerts`. @defaultValue `0` (no limit) */
  maxAlerts?: number;
  now?: () => number;
}

/** Alertmanager's webhook payload, version 4. */
export function webhookPayload(notification: Notification, maxAlerts = 0): Record<string, unknown> {
  const alerts = maxAlerts > 0 ? notification.alerts.slice(0, maxAlerts) : notification.alerts;
  return {
    version: '4',
    groupKey: notification.groupKey,
    truncatedAlerts: notification.alerts.length - alerts.length,
    status: notification.status,
    receiver: notification.receiver,
    groupLabels: notification.groupLabels,
    commonLabels: notification.commonLabels,
    commonAnnotations: notification.commonAnnotations,
    externalURL: notification.externalURL,
    alerts: alerts.map((a) => ({
      status: a.status,
      labels: a.labels,
      annotations: a.annotations,
      startsAt: rfc3339(a.startsAt),
      endsAt: rfc3339(a.endsAt),
      generatorURL: '',
      fingerprint: a.fingerprint,
    })),
  };
}

/**
 * A receiver that POSTs Alertmanager's v4 webhook payload.
 * @example
 * webhookReceiver({ name: 'ops-hook', url: 'https://ops.example.com/alerts' })
 */
export function webhookReceiver(options: WebhookReceiverOptions): Receiver {
  knownKeys('webhookReceiver', options, ['url', 'bearerToken', 'sendResolved', 'maxAlerts', 'now']);
  if (typeof options.name !== 'string' || options.name === '') {
    throw invalid('webhookReceiver', 'name', options.name, 'a non-empty string');
  }
  const url = secret(options.url);
  const token = options.bearerToken === undefined ? undefined : secret(options.bearerToken);
  const maxAlerts = options.maxAlerts ?? 0;
  if (!Number.isInteger(maxAlerts) || maxAlerts < 0) {
    throw invalid('webhookReceiver', 'maxAlerts', maxAlerts, 'an integer >= 0');
  }
  const now = options.now ?? (() => systemClock.now());
  const name = options.name;
  return {
    name,
    sendResolved: options.sendResolved ?? true,
    send: (notification, signal) =>
      postJson(
        name,
        url,
        webhookPayload(notification, maxAlerts),
        signal,
        now,
        token === undefined ? {} : { authorization: `Bearer ${token.reveal()}` },
      ),
  };
}
