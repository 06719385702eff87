/**
 * Alerting configuration from a YAML (or JSON) file: rules, receivers, the route tree and inhibition
 * rules. Validated with zod (strict everywhere, durations like `5m`), then every rule, receiver and route
 * is built through its constructor, so a bad value is reported where it is written:
 * `file:line:column: path.to.field: message`, one line per problem. Secrets are read from the environment
 * (`urlEnv`, `passwordEnv`, …) so they need not be in the file.
 */
import { z } from 'zod';
import { FileProblemsError } from '../../core/errors.js';
import type { BulwarkEventType } from '../../core/events.js';
import { type Backoff, backoff as backoffs } from '../../policy/backoff.js';
import {
  byPosition,
  formatPath,
  type Locator,
  type PathPart,
  readSourceFor,
  validateSource,
} from '../../policy/file-problems.js';
import { duration, int, oneKey, strict } from '../../policy/spec.js';
import { parseMatcher } from './labels.js';
import type { Receiver } from './notification.js';
import type { InhibitRule, RouteConfig } from './notifier.js';
import { emailReceiver } from './receivers/email.js';
import { slackReceiver } from './receivers/slack.js';
import { webhookReceiver } from './receivers/webhook.js';
import { type AlertRule, compileRule } from './rules.js';

/** An alert config file that cannot be read, parsed or validated; one message per problem. */
export class AlertConfigError extends FileProblemsError {
  override readonly name = 'AlertConfigError';
  constructor(problems: readonly string[]) {
    super('ALERT_CONFIG', problems);
  }
}

const name = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_:-]*$/, 'must be letters, digits, "_", ":" and "-"');
const labelMap = z.record(
  z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'label names are letters, digits and "_"'),
  z.string(),
);
const fieldValue = z.union([z.string(), z.number(), z.boolean()]);
const where = z.record(z.union([fieldValue, z.array(fieldValue)]));
/** A name, or a regular expression written `/…/`. */
const pattern = z.string().min(1);
const selector = strict({
  type: z.union([z.string(), z.array(z.string()).min(1)]),
  source: pattern.optional(),
  where: where.optional(),
});
const ratio = z.number().min(0, 'must be a ratio in [0, 1]').max(1, 'must be a ratio in [0, 1]');
const nonNegative = z.number().min(0, 'must be a number >= 0');
const by = z.enum(['source', 'none']);

const RULE_KINDS = [
  'ratio',
  'rate',
  'burnRate',
  'circuitOpen',
  'queueDepth',
  'deadLetters',
  'healthFailing',
  'componentFailed',
] as const;
const ruleEntry = strict({
  name,
  for: duration().optional(),
  labels: labelMap.optional(),
  annotations: z.record(z.string()).optional(),
  ratio: strict({
    match: selector,
    good: where,
    below: ratio.optional(),
    above: ratio.optional(),
    window: duration(true),
    minVolume: nonNegative.optional(),
    by: by.optional(),
    buckets: int(1).optional(),
  }).optional(),
  rate: strict({
    match: selector,
    below: nonNegative.optional(),
    above: nonNegative.optional(),
    window: duration(true),
    minVolume: nonNegative.optional(),
    by: by.optional(),
    buckets: int(1).optional(),
  }).optional(),
  burnRate: strict({
    match: selector,
    good: where,
    objective: z.number().gt(0, 'must be a ratio in (0, 1)').lt(1, 'must be a ratio in (0, 1)'),
    windows: z
      .array(
        strict({
          long: duration(true),
          short: duration(true),
          factor: z.number().positive('must be > 0'),
          severity: z.string().min(1),
        }),
      )
      .min(1)
      .optional(),
    minVolume: nonNegative.optional(),
    by: by.optional(),
  }).optional(),
  circuitOpen: strict({ source: pattern.optional() }).optional(),
  queueDepth: strict({
    source: pattern.optional(),
    state: z.enum(['waiting', 'delayed', 'active', 'completed', 'dead']).optional(),
    above: nonNegative,
  }).optional(),
  deadLetters: strict({
    source: pattern.optional(),
    window: duration(true),
    above: nonNegative.optional(),
  }).optional(),
  healthFailing: strict({
    component: pattern.optional(),
    probe: z.enum(['liveness', 'readiness', 'startup']).optional(),
  }).optional(),
  componentFailed: strict({ component: pattern.optional() }).optional(),
}).superRefine(oneKey(RULE_KINDS));

/** A secret given inline, or (better) the name of the environment variable holding it. */
function secretPair<K extends string>(key: K) {
  return { [key]: z.string().min(1).optional(), [`${key}Env`]: z.string().min(1).optional() } as Record<
    K | `${K}Env`,
    z.ZodOptional<z.ZodString>
  >;
}

const RECEIVER_KINDS = ['slack', 'email', 'webhook'] as const;
const receiverEntry = strict({
  name,
  slack: strict({
    ...secretPair('url'),
    channel: z.string().optional(),
    sendResolved: z.boolean().optional(),
  })
    .superRefine(oneKey(['url', 'urlEnv']))
    .optional(),
  email: strict({
    host: z.string().min(1),
    port: int(1).max(65535, 'must be a port from 1 to 65535').optional(),
    secure: z.boolean().optional(),
    requireTLS: z.boolean().optional(),
    from: z.string().email('must be an email address'),
    to: z.union([
      z.string().email('must be an email address'),
      z.array(z.string().email('must be an email address')).min(1),
    ]),
    auth: strict({ user: z.string().min(1), ...secretPair('password') })
      .superRefine(oneKey(['password', 'passwordEnv']))
      .optional(),
    allowSelfSigned: z.boolean().optional(),
    sendResolved: z.boolean().optional(),
  }).optional(),
  webhook: strict({
    ...secretPair('url'),
    ...secretPair('bearerToken'),
    sendResolved: z.boolean().optional(),
    maxAlerts: int(0).optional(),
  })
    .superRefine(oneKey(['url', 'urlEnv']))
    .superRefine(oneKey(['bearerToken', 'bearerTokenEnv'], true))
    .optional(),
}).superRefine(oneKey(RECEIVER_KINDS));

type RouteInput = {
  receiver?: string | undefined;
  matchers?: string[] | undefined;
  groupBy?: string[] | undefined;
  groupWait?: number | undefined;
  groupInterval?: number | undefined;
  repeatInterval?: number | undefined;
  continue?: boolean | undefined;
  routes?: RouteInput[] | undefined;
};
const route: z.ZodType<RouteInput, z.ZodTypeDef, unknown> = z.lazy(() =>
  strict({
    receiver: z.string().optional(),
    matchers: z.array(z.string()).optional(),
    groupBy: z.array(z.string()).optional(),
    groupWait: duration().optional(),
    groupInterval: duration(true).optional(),
    repeatInterval: duration(true).optional(),
    continue: z.boolean().optional(),
    routes: z.array(route).optional(),
  }),
);

const fileSchema = strict({
  evaluationInterval: duration(true).optional(),
  store: z.string().min(1).optional(),
  externalURL: z.string().optional(),
  delivery: strict({
    timeout: duration(true).optional(),
    backoff: strict({ initial: duration(true).optional(), max: duration(true).optional() }).optional(),
    maxRetryAfter: duration().optional(),
    retention: duration(true).optional(),
  }).optional(),
  rules: z.array(ruleEntry).optional(),
  receivers: z.array(receiverEntry).min(1, 'must list at least one receiver'),
  route,
  inhibitRules: z
    .array(
      strict({
        sourceMatchers: z.array(z.string()).min(1),
        targetMatchers: z.array(z.string()).min(1),
        equal: z.array(z.string()).optional(),
      }),
    )
    .optional(),
});

type FileData = z.infer<typeof fileSchema>;

/** A validated alert configuration, ready for {@link AlertRuleEngine} and {@link Notifier}. */
export interface AlertConfig {
  readonly rules: readonly AlertRule[];
  readonly receivers: readonly Receiver[];
  readonly route: RouteConfig;
  readonly inhibitRules: readonly InhibitRule[];
  /** ms */
  readonly evaluationInterval: number | undefined;
  /** The SQLite file (relative paths as written). */
  readonly store: string | undefined;
  readonly externalURL: string | undefined;
  readonly deliveryTimeout: number | undefined;
  readonly maxRetryAfter: number | undefined;
  readonly retention: number | undefined;
  readonly retryBackoff: Backoff | undefined;
}

function toPattern(text: string | undefined): string | RegExp | undefined {
  if (text === undefined) return undefined;
  const m = /^\/(.*)\/$/.exec(text);
  return m === null ? text : new RegExp(`^(?:${m[1]})$`);
}

/** Drops undefined values (options are `exactOptionalPropertyTypes`). */
function strip<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}

function buildRule(entry: FileData['rules'] extends (infer R)[] | undefined ? R : never): AlertRule {
  const common = strip({
    name: entry.name,
    for: entry.for,
    labels: entry.labels,
    annotations: entry.annotations,
  });
  const sel = (s: {
    type: string | string[];
    source?: string | undefined;
    where?: Record<string, unknown> | undefined;
  }) =>
    strip({
      type: s.type as BulwarkEventType | BulwarkEventType[],
      source: toPattern(s.source),
      where: s.where,
    }) as AlertRule extends never ? never : { type: BulwarkEventType };
  if (entry.ratio)
    return {
      ...common,
      kind: 'ratio',
      ...strip({ ...entry.ratio, match: sel(entry.ratio.match) }),
    } as AlertRule;
  if (entry.rate)
    return {
      ...common,
      kind: 'rate',
      ...strip({ ...entry.rate, match: sel(entry.rate.match) }),
    } as AlertRule;
  if (entry.burnRate)
    return {
      ...common,
      kind: 'burnRate',
      ...strip({ ...entry.burnRate, match: sel(entry.burnRate.match) }),
    } as AlertRule;
  if (entry.circuitOpen)
    return {
      ...common,
      kind: 'circuitOpen',
      ...strip({ source: toPattern(entry.circuitOpen.source) }),
    } as AlertRule;
  if (entry.queueDepth)
    return {
      ...common,
      kind: 'queueDepth',
      ...strip({ ...entry.queueDepth, source: toPattern(entry.queueDepth.source) }),
    } as AlertRule;
  if (entry.deadLetters)
    return {
      ...common,
      kind: 'deadLetters',
      ...strip({ ...entry.deadLetters, source: toPattern(entry.deadLetters.source) }),
    } as AlertRule;
  if (entry.healthFailing)
    return {
      ...common,
      kind: 'healthFailing',
      ...strip({ ...entry.healthFailing, component: toPattern(entry.healthFailing.component) }),
    } as AlertRule;
  const failed = entry.componentFailed ?? {};
  return {
    ...common,
    kind: 'componentFailed',
    ...strip({ component: toPattern(failed.component) }),
  } as AlertRule;
}

function routeConfig(input: RouteInput): RouteConfig {
  return strip({ ...input, routes: input.routes?.map(routeConfig) }) as RouteConfig;
}

/**
 * Parses and validates the text of an alert config file. `env` supplies the `…Env` secrets.
 * @throws {@link AlertConfigError} listing every problem as `file:line:column: path: message`.
 * @example
 * const config = parseAlertConfig(text, 'alerts.yaml');
 */
export function parseAlertConfig(
  text: string,
  file: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): AlertConfig {
  const result = validateSource(text, file, fileSchema);
  if ('problems' in result) throw new AlertConfigError(result.problems);
  const { data, locate } = result;
  const problems: string[] = [];
  const at = (path: PathPart[], message: string) =>
    problems.push(`${file}:${locate.position(path)}: ${formatPath(path)}: ${message}`);
  const rules: AlertRule[] = [];
  const seen = new Set<string>();
  (data.rules ?? []).forEach((entry, i) => {
    if (seen.has(entry.name)) at(['rules', i, 'name'], `duplicate rule name "${entry.name}"`);
    seen.add(entry.name);
    try {
      const rule = buildRule(entry);
      compileRule(rule);
      rules.push(rule);
    } catch (error) {
      at(['rules', i], (error as Error).message);
    }
  });
  const secretOf = (path: PathPart[], inline: string | undefined, envName: string | undefined): string => {
    if (inline !== undefined) return inline;
    const value = env[envName as string];
    if (value === undefined || value === '') {
      at(path, `environment variable ${envName} is not set`);
      return 'unset';
    }
    return value;
  };
  const receivers: Receiver[] = [];
  const names = new Set<string>();
  data.receivers.forEach((entry, i) => {
    if (names.has(entry.name)) at(['receivers', i, 'name'], `duplicate receiver name "${entry.name}"`);
    names.add(entry.name);
    try {
      if (entry.slack) {
        const s = entry.slack;
        const url = secretOf(
          ['receivers', i, 'slack', s.url === undefined ? 'urlEnv' : 'url'],
          s.url,
          s.urlEnv,
        );
        checkUrl(url, ['receivers', i, 'slack'], at);
        receivers.push(
          slackReceiver(strip({ name: entry.name, url, channel: s.channel, sendResolved: s.sendResolved })),
        );
      } else if (entry.webhook) {
        const w = entry.webhook;
        const url = secretOf(
          ['receivers', i, 'webhook', w.url === undefined ? 'urlEnv' : 'url'],
          w.url,
          w.urlEnv,
        );
        checkUrl(url, ['receivers', i, 'webhook'], at);
        const token =
          w.bearerToken !== undefined || w.bearerTokenEnv !== undefined
            ? secretOf(['receivers', i, 'webhook', 'bearerTokenEnv'], w.bearerToken, w.bearerTokenEnv)
            : undefined;
        receivers.push(
          webhookReceiver(
            strip({
              name: entry.name,
              url,
              bearerToken: token,
              sendResolved: w.sendResolved,
              maxAlerts: w.maxAlerts,
            }),
          ),
        );
      } else if (entry.email) {
        const e = entry.email;
        const auth =
          e.auth === undefined
            ? undefined
            : {
                user: e.auth.user,
                pass: secretOf(
                  [
                    'receivers',
                    i,
                    'email',
                    'auth',
                    e.auth.password === undefined ? 'passwordEnv' : 'password',
                  ],
                  e.auth.password,
                  e.auth.passwordEnv,
                ),
              };
        receivers.push(
          emailReceiver(
            strip({
              name: entry.name,
              host: e.host,
              port: e.port,
              secure: e.secure,
              requireTLS: e.requireTLS,
              from: e.from,
              to: e.to,
              auth,
              allowSelfSigned: e.allowSelfSigned,
              sendResolved: e.sendResolved,
            }),
          ),
        );
      }
    } catch (error) {
      at(['receivers', i], (error as Error).message);
    }
  });
  checkRoute(data.route, ['route'], names, true, at);
  (data.inhibitRules ?? []).forEach((rule, i) => {
    for (const side of ['sourceMatchers', 'targetMatchers'] as const) {
      rule[side].forEach((m, j) => {
        try {
          parseMatcher(m);
        } catch (error) {
          at(['inhibitRules', i, side, j], (error as Error).message);
        }
      });
    }
  });
  if (problems.length > 0) {
    for (const r of receivers) (r as { close?: () => void }).close?.();
    throw new AlertConfigError(byPosition(problems));
  }
  const b = data.delivery?.backoff;
  return {
    rules,
    receivers,
    route: routeConfig(data.route),
    inhibitRules: (data.inhibitRules ?? []).map((r) => strip(r) as InhibitRule),
    evaluationInterval: data.evaluationInterval,
    store: data.store,
    externalURL: data.externalURL,
    deliveryTimeout: data.delivery?.timeout,
    maxRetryAfter: data.delivery?.maxRetryAfter,
    retention: data.delivery?.retention,
    retryBackoff:
      b === undefined
        ? undefined
        : backoffs.exponential(strip({ initial: b.initial, max: b.max })).withJitter('full'),
  };
}

function checkUrl(url: string, path: PathPart[], at: (path: PathPart[], message: string) => void): void {
  if (url === 'unset') return;
  let ok = false;
  try {
    const parsed = new URL(url);
    ok = parsed.protocol === 'http:' || parsed.protocol === 'https:';
  } catch {}
  // The value is a secret: the message does not repeat it.
  if (!ok) at(path, 'the URL is not a valid http(s) URL');
}

function checkRoute(
  input: RouteInput,
  path: PathPart[],
  receivers: ReadonlySet<string>,
  root: boolean,
  at: (path: PathPart[], message: string) => void,
): void {
  if (root && input.receiver === undefined) at(path, 'required: receiver (the root route needs one)');
  if (input.receiver !== undefined && !receivers.has(input.receiver)) {
    at(
      [...path, 'receiver'],
      `no receiver named "${input.receiver}" (receivers: ${[...receivers].join(', ')})`,
    );
  }
  (input.matchers ?? []).forEach((m, i) => {
    try {
      parseMatcher(m);
    } catch (error) {
      at([...path, 'matchers', i], (error as Error).message);
    }
  });
  (input.routes ?? []).forEach((child, i) => {
    checkRoute(child, [...path, 'routes', i], receivers, false, at);
  });
}

/**
 * Loads an alert config file.
 * @throws {@link AlertConfigError} (`cannot read FILE: no such file` when missing).
 * @example
 * const config = await loadAlertConfig('alerts.yaml');
 * const notifier = new Notifier({ ...notifierOptions(config), runtime });
 */
export async function loadAlertConfig(
  path: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<AlertConfig> {
  const text = await readSourceFor(path, (problems) => new AlertConfigError(problems));
  return parseAlertConfig(text, path, env);
}

export type { Locator };
