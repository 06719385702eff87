/**
 * Slack incoming webhooks: a `text` fallback plus Block Kit blocks inside an attachment whose colour
 * says the status (red firing, green resolved). Slack answers 429 with `Retry-After` when rate limited;
 * the delivery waits that long before trying again.
 */
import { SystemClock } from '../../../core/clock.js';
import { invalid, knownKeys } from '../../../policy/options.js';
import { formatLabels } from '../labels.js';
import { type Notification, type Receiver, split, title } from '../notification.js';
import { type Secret, secret } from '../secret.js';
import { postJson } from './http.js';

const systemClock = new SystemClock();

export interface SlackReceiverOptions {
  /** The receiver's name (routes refer to it). */
  name: string;
  /** The incoming webhook URL (a secret: never logged). */
  url: string | Secret;
  /** Overrides the webhook's channel, e.g. `#alerts`. */
  channel?: string;
  /** @defaultValue `true` */
  sendResolved?: boolean;
  /** Clock for `Retry-After` dates (ms). @defaultValue the system clock */
  now?: () => number;
}

export const SLACK_COLORS = { firing: '#E01E5A', resolved: '#2EB67D' } as const;

/** The Slack message for a notification. */
export function slackMessage(notification: Notification, channel?: string): Record<string, unknown> {
  const { firing, resolved } = split(notification);
  const heading = title(notification);
  const lines = (alerts: typeof firing, label: string): string[] =>
    alerts.length === 0
      ? []
      : [
          `*${label}*`,
          ...alerts.map((a) => {
            const summary = a.annotations.summary ?? a.annotations.description ?? a.labels.alertname ?? '';
            return `• ${summary} \`${formatLabels(a.labels)}\``;
          }),
        ];
  const body = [
    ...lines(firing, `Firing (${firing.length})`),
    ...lines(resolved, `Resolved (${resolved.length})`),
  ].join('\n');
  return {
    ...(channel === undefined ? {} : { channel }),
    text: heading,
    attachments: [
      {
        color: SLACK_COLORS[notification.status],
        fallback: heading,
        blocks: [
          { type: 'header', text: { type: 'plain_text', text: heading.slice(0, 150) } },
          { type: 'section', text: { type: 'mrkdwn', text: body.slice(0, 3000) || heading } },
          {
            type: 'context',
            elements: [{ type: 'mrkdwn', text: `group \`${notification.groupKey}\`` }],
          },
        ],
      },
    ],
  };
}

/**
 * A receiver that posts to a Slack incoming webhook.
 * @example
 * slackReceiver({ name: 'team-slack', url: process.env.SLACK_WEBHOOK_URL! })
 */
export function slackReceiver(options: SlackReceiverOptions): Receiver {
  knownKeys('slackReceiver', options, ['url', 'channel', 'sendResolved', 'now']);
  if (typeof options.name !== 'string' || options.name === '') {
    throw invalid('slackReceiver', 'name', options.name, 'a non-empty string');
  }
  const url = secret(options.url);
  const now = options.now ?? (() => systemClock.now());
  const name = options.name;
  return {
    name,
    sendResolved: options.sendResolved ?? true,
    send: (notification, signal) =>
      postJson(name, url, slackMessage(notification, options.channel), signal, now),
  };
}
