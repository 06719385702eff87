/**
 * What a receiver is given: one notification for one alert group (Alertmanager's template data), and
 * the error a receiver throws when a delivery fails.
 */
import { BulwarkError } from '../../core/errors.js';
import type { Labels } from './labels.js';

/** One alert inside a notification. Times are ms since the epoch; `endsAt` is undefined while firing. */
export interface NotifiedAlert {
  readonly status: 'firing' | 'resolved';
  readonly labels: Labels;
  readonly annotations: Labels;
  readonly startsAt: number;
  readonly endsAt: number | undefined;
  readonly fingerprint: string;
}

/** One notification for one group, as stored in the outbox and handed to a receiver. */
export interface Notification {
  readonly receiver: string;
  /** `firing` when at least one alert fires. */
  readonly status: 'firing' | 'resolved';
  readonly groupKey: string;
  readonly groupLabels: Labels;
  /** Labels every alert of the notification shares. */
  readonly commonLabels: Labels;
  readonly commonAnnotations: Labels;
  readonly externalURL: string;
  readonly alerts: readonly NotifiedAlert[];
}

/** A delivery a receiver could not make. `retryable: false` means trying again cannot help (HTTP 400). */
export class DeliveryError extends BulwarkError {
  override readonly name = 'DeliveryError';
  /** The wait the receiver asked for (HTTP 429 `Retry-After`), in ms. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options: { retryable: boolean; retryAfterMs?: number; cause?: unknown }) {
    super('ALERT_DELIVERY_FAILED', message, { retryable: options.retryable, cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Where notifications go. Implementations must not put secrets in their error messages. */
export interface Receiver {
  /** The receiver's configured name (routes refer to it; it appears in events). */
  readonly name: string;
  /** Whether resolved alerts are sent. */
  readonly sendResolved: boolean;
  /** Delivers one notification; throws a {@link DeliveryError} (or any error: retried) on failure. */
  send(notification: Notification, signal: AbortSignal): Promise<void>;
}

/** `firing`/`resolved` counts and the alerts of each status. */
export function split(notification: Notification): { firing: NotifiedAlert[]; resolved: NotifiedAlert[] } {
  const firing: NotifiedAlert[] = [];
  const resolved: NotifiedAlert[] = [];
  for (const alert of notification.alerts) (alert.status === 'firing' ? firing : resolved).push(alert);
  return { firing, resolved };
}

/**
 * Alertmanager's default title: `[FIRING:2] HighErrorRate api (critical)`: the status (with the count of
 * firing alerts), the group labels' values, then the other common labels' values in parentheses.
 */
export function title(notification: Notification): string {
  const { firing } = split(notification);
  const status = notification.status === 'firing' ? `FIRING:${firing.length}` : 'RESOLVED';
  const groupNames = Object.keys(notification.groupLabels).sort();
  const groupValues = groupNames.map((k) => notification.groupLabels[k] as string);
  const extra = Object.keys(notification.commonLabels)
    .filter((k) => !(k in notification.groupLabels))
    .sort()
    .map((k) => notification.commonLabels[k] as string);
  return `[${status}] ${groupValues.join(' ')}${extra.length > 0 ? ` (${extra.join(' ')})` : ''}`.trimEnd();
}

/** An RFC 3339 time, or Alertmanager's zero time for an alert that has not ended. */
export function rfc3339(ms: number | undefined): string {
  return ms === undefined ? '0001-01-01T00:00:00Z' : new Date(ms).toISOString();
}
