/**
 * The alerting pipeline's events. Secrets (webhook URLs, SMTP passwords) are never part of them: a
 * receiver is named by its configured `name` only, and delivery errors are described without addresses.
 */
import type { Labels } from './labels.js';

/** Where an alert is in its life (Prometheus): `resolved` is reported once, then the alert is inactive. */
export type AlertState = 'inactive' | 'pending' | 'firing' | 'resolved';

declare module '../../core/events.js' {
  interface BulwarkEventMap {
    /** An alert rule's series changed state; `source` is the rule's name, `value` what it was evaluated to. */
    'alert.state': { rule: string; state: AlertState; labels: Labels; value: number };
    /** A notification for a group was queued for a receiver (`source` is the receiver's name). */
    'alert.notification': {
      receiver: string;
      groupKey: string;
      status: 'firing' | 'resolved';
      firing: number;
      resolved: number;
    };
    /**
     * One delivery attempt to a receiver ended: `delivered`, `retrying` (at `retryAt`), or `rejected`
     * (the receiver refused it for good, e.g. HTTP 400). `error` never holds a URL or a password.
     */
    'alert.delivery': {
      receiver: string;
      id: number;
      outcome: 'delivered' | 'retrying' | 'rejected';
      attempt: number;
      error?: string;
      retryAt?: number;
    };
    /** A silence was created or expired. */
    'alert.silence': { id: string; action: 'created' | 'expired'; matchers: string };
  }
}
