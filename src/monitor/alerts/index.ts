/**
 * Alerts: rules over the event stream (Prometheus alerting rules) and a notification pipeline with
 * Alertmanager's semantics (routes, grouping, dedup, inhibition, silences), delivering to Slack, email
 * and webhooks through a durable SQLite outbox.
 */
export { type Alerting, startAlerting } from './alerting.js';
export { alertsApi } from './api.js';
export { type AlertConfig, AlertConfigError, loadAlertConfig, parseAlertConfig } from './config.js';
export { type ActiveAlert, AlertRuleEngine, type AlertRuleEngineOptions } from './engine.js';
export type { AlertState } from './events.js';
export { fingerprint, formatLabels, type Labels, type Matcher, Matchers, parseMatcher } from './labels.js';
export {
  DeliveryError,
  type Notification,
  type NotifiedAlert,
  type Receiver,
  title,
} from './notification.js';
export { type InhibitRule, Notifier, type NotifierOptions, type RouteConfig } from './notifier.js';
export {
  type EmailReceiver,
  type EmailReceiverOptions,
  emailContent,
  emailReceiver,
} from './receivers/email.js';
export { SLACK_COLORS, type SlackReceiverOptions, slackMessage, slackReceiver } from './receivers/slack.js';
export { type WebhookReceiverOptions, webhookPayload, webhookReceiver } from './receivers/webhook.js';
export {
  type Alert,
  type AlertRule,
  type BurnRateRule,
  type BurnWindow,
  type CircuitOpenRule,
  type ComponentFailedRule,
  type DeadLetterRule,
  type EventSelector,
  type HealthFailingRule,
  type QueueDepthRule,
  type RateRule,
  type RatioRule,
  SRE_BURN_WINDOWS,
} from './rules.js';
export { Secret, secret } from './secret.js';
export { type SilenceInput, type SilenceStatus, Silences } from './silences.js';
export { AlertStore, type OutboxCounts, type Silence } from './store.js';
