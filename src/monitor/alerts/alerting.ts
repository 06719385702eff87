/**
 * One call from a config file to running alerting: the rule engine on the runtime's events, feeding the
 * notifier, which delivers through the durable outbox.
 */
import type { Runtime } from '../../core/runtime.js';
import { systemRuntime } from '../../core/runtime.js';
import type { AlertConfig } from './config.js';
import { AlertRuleEngine } from './engine.js';
import { Notifier } from './notifier.js';

/** Running alerting: close it to stop evaluating, finish deliveries in flight and close the store. */
export interface Alerting {
  readonly engine: AlertRuleEngine;
  readonly notifier: Notifier;
  close(): Promise<void>;
}

/**
 * Starts alerting from a loaded config.
 * @example
 * const alerting = startAlerting(await loadAlertConfig('alerts.yaml'), { runtime });
 * // … the service runs; its policies emit events on runtime.events …
 * await alerting.close();
 */
export function startAlerting(
  config: AlertConfig,
  options: { runtime?: Runtime; store?: string } = {},
): Alerting {
  const runtime = options.runtime ?? systemRuntime();
  const store = options.store ?? config.store;
  const notifier = new Notifier({
    runtime,
    route: config.route,
    receivers: config.receivers,
    inhibitRules: config.inhibitRules,
    ...(store === undefined ? {} : { store }),
    ...(config.retryBackoff === undefined ? {} : { retryBackoff: config.retryBackoff }),
    ...(config.deliveryTimeout === undefined ? {} : { deliveryTimeout: config.deliveryTimeout }),
    ...(config.maxRetryAfter === undefined ? {} : { maxRetryAfter: config.maxRetryAfter }),
    ...(config.externalURL === undefined ? {} : { externalURL: config.externalURL }),
    ...(config.retention === undefined ? {} : { retention: config.retention }),
  });
  const engine = new AlertRuleEngine({
    runtime,
    rules: config.rules,
    ...(config.evaluationInterval === undefined ? {} : { evaluationInterval: config.evaluationInterval }),
    onAlert: (alert) => notifier.receive(alert),
  });
  return {
    engine,
    notifier,
    async close() {
      engine.close();
      await notifier.close();
      for (const receiver of config.receivers) (receiver as { close?: () => void }).close?.();
    },
  };
}
