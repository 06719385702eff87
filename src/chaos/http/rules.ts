/**
 * HTTP fault rules: which requests (host, method, path) get which fault (a status with headers and body,
 * latency, a connection reset, a truncated body, a hang), on which schedule. One engine decides for the
 * undici interceptor (in-process `fetch`) and for the proxy's HTTP mode (out-of-process services).
 * Each rule counts the requests it matches and draws from its own seeded stream, so a seed reproduces
 * every decision; `BULWARK_CHAOS=off` disables every rule.
 */
import type { Clock } from '../../core/clock.js';
import { type Duration, toMs } from '../../core/duration.js';
import type { EventSink } from '../../core/events.js';
import type { Random } from '../../core/random.js';
import type { Runtime } from '../../core/runtime.js';
import { systemRuntime } from '../../core/runtime.js';
import { invalid, knownKeys } from '../../policy/options.js';
import { chaosEnabled } from '../faults.js';
import { isSchedule, type Schedule, type ScheduleState, schedule as schedules } from '../schedule.js';

/** What a fault does to a matching request. */
export type HttpFaultSpec =
  | {
      /** Answers with `status`, `headers` and `body` without reaching the server. */
      kind: 'status';
      status: number;
      headers?: Readonly<Record<string, string>>;
      body?: string;
    }
  | {
      /** Delays the request by `delay` (± `jitter`, uniform), then sends it. */
      kind: 'latency';
      delay: Duration;
      jitter?: Duration;
    }
  | {
      /** Fails the request with a connection reset (ECONNRESET), without reaching the server. */
      kind: 'reset';
    }
  | {
      /** Sends the request, then cuts the response body after `bytes` bytes (headers promise more). */
      kind: 'truncate';
      bytes: number;
    }
  | {
      /** Never answers: the request hangs until the caller aborts it (or, in the proxy, `after` ms). */
      kind: 'timeout';
      after?: Duration;
    };

/** A rule: the requests it matches, what it does to them, and when. */
export interface HttpFaultRule {
  /** Host name (`api.example.com`), `host:port`, or `*.example.com`. @defaultValue any host */
  host?: string;
  /** Method or methods, any case. @defaultValue any method */
  method?: string | readonly string[];
  /** Exact path (`/v1/users`), a prefix (`/v1/*`), or a RegExp tested on path and query. @defaultValue any path */
  path?: string | RegExp;
  /** The fault. Build one with {@link httpFault}. */
  fault: HttpFaultSpec;
  /** When the fault fires among the matching requests. @defaultValue `schedule.always()` */
  schedule?: Schedule;
  /** In events. @defaultValue `rule<index>` */
  name?: string;
}

/** A request as rules see it. */
export interface HttpRequestInfo {
  /** Host name, without the port. */
  host: string;
  port?: number;
  method: string;
  /** Path and query, e.g. `/v1/users?page=2`. */
  path: string;
}

/** What happens to one request; `delayMs` is drawn for latency faults. */
export type HttpFaultAction =
  | { kind: 'status'; status: number; headers: Readonly<Record<string, string>>; body: string }
  | { kind: 'latency'; delayMs: number }
  | { kind: 'reset' }
  | { kind: 'truncate'; bytes: number }
  | { kind: 'timeout'; afterMs: number };

/** A fault decided for one request: the action, the rule's name and the rule's request count. */
export type HttpFaultDecision = HttpFaultAction & { rule: string; call: number };

export interface HttpFaultRulesOptions {
  /** The rules, tried in order: the first that matches and fires decides. */
  rules: readonly HttpFaultRule[];
  /** In events, and the root of the rules' random streams. @defaultValue `'http'` */
  name?: string;
  runtime?: Runtime;
}

const STATUS_TEXT: Record<number, string> = { 429: 'Too Many Requests', 503: 'Service Unavailable' };

/**
 * Fault specs, ready for a rule's `fault`.
 * @example
 * httpFault.tooManyRequests({ retryAfter: '2s' }) // 429, Retry-After: 2
 * httpFault.status(503, { body: 'maintenance' })
 * httpFault.latency('300ms', { jitter: '50ms' })
 */
export const httpFault = {
  /** A response with `status`, optional `headers` and `body`. */
  status(status: number, options: { headers?: Record<string, string>; body?: string } = {}): HttpFaultSpec {
    return { kind: 'status', status, ...options };
  },
  /** `429 Too Many Requests` with `Retry-After` in whole seconds (rounded up). */
  tooManyRequests(options: { retryAfter?: Duration; body?: string } = {}): HttpFaultSpec {
    return withRetryAfter(429, options);
  },
  /** `503 Service Unavailable`, with `Retry-After` when given. */
  unavailable(options: { retryAfter?: Duration; body?: string } = {}): HttpFaultSpec {
    return withRetryAfter(503, options);
  },
  /** Delays the request by `delay` ± `jitter`. */
  latency(delay: Duration, options: { jitter?: Duration } = {}): HttpFaultSpec {
    return { kind: 'latency', delay, ...options };
  },
  /** A connection reset (ECONNRESET) instead of a response. */
  reset(): HttpFaultSpec {
    return { kind: 'reset' };
  },
  /** The real response, its body cut after `bytes` bytes. */
  truncate(bytes: number): HttpFaultSpec {
    return { kind: 'truncate', bytes };
  },
  /** No response at all. */
  timeout(options: { after?: Duration } = {}): HttpFaultSpec {
    return { kind: 'timeout', ...options };
  },
} as const;

function withRetryAfter(status: number, options: { retryAfter?: Duration; body?: string }): HttpFaultSpec {
  const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
  if (options.retryAfter !== undefined) {
    headers['retry-after'] = String(Math.ceil(toMs(options.retryAfter, 'retryAfter') / 1000));
  }
  return { kind: 'status', status, headers, body: options.body ?? `${STATUS_TEXT[status] ?? status}\n` };
}

interface CompiledRule {
  name: string;
  host: ((host: string, port: number | undefined) => boolean) | undefined;
  methods: ReadonlySet<string> | undefined;
  path: ((path: string) => boolean) | undefined;
  schedule: Schedule;
  decide: (random: Random) => HttpFaultAction;
  state: RuleState;
}

class RuleState implements ScheduleState {
  call = 0;
  constructor(
    readonly random: Random,
    private readonly clock: { now(): number },
    private readonly started: number,
  ) {}
  elapsed(): number {
    return this.clock.now() - this.started;
  }
}

function compileHost(where: string, host: unknown): CompiledRule['host'] {
  if (host === undefined) return undefined;
  if (typeof host !== 'string' || host.length === 0) throw invalid(where, 'host', host, 'a host name');
  const wanted = host.toLowerCase();
  if (wanted.startsWith('*.')) {
    const suffix = wanted.slice(1);
    return (h) => h.toLowerCase().endsWith(suffix);
  }
  const colon = wanted.lastIndexOf(':');
  if (colon > 0 && !wanted.includes(']') && /^\d+$/.test(wanted.slice(colon + 1))) {
    const name = wanted.slice(0, colon);
    const port = Number(wanted.slice(colon + 1));
    return (h, p) => h.toLowerCase() === name && p === port;
  }
  return (h) => h.toLowerCase() === wanted;
}

function compilePath(where: string, path: unknown): CompiledRule['path'] {
  if (path === undefined) return undefined;
  if (path instanceof RegExp) return (p) => path.test(p);
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw invalid(where, 'path', path, "a path starting with '/', a prefix like '/v1/*', or a RegExp");
  }
  if (path.endsWith('*')) {
    const prefix = path.slice(0, -1);
    return (p) => p.startsWith(prefix);
  }
  return (p) => {
    const q = p.indexOf('?');
    return (q < 0 ? p : p.slice(0, q)) === path;
  };
}

function compileFault(where: string, fault: unknown): CompiledRule['decide'] {
  if (typeof fault !== 'object' || fault === null)
    throw invalid(where, 'fault', fault, 'a fault from httpFault');
  const spec = fault as HttpFaultSpec;
  switch (spec.kind) {
    case 'status': {
      const { status } = spec;
      if (!Number.isInteger(status) || status < 100 || status > 599) {
        throw invalid(where, 'fault.status', status, 'an HTTP status from 100 to 599');
      }
      const headers = Object.freeze({ ...(spec.headers ?? {}) });
      for (const [key, value] of Object.entries(headers)) {
        if (typeof value !== 'string') throw invalid(where, `fault.headers.${key}`, value, 'a string');
      }
      const body = spec.body ?? '';
      if (typeof body !== 'string') throw invalid(where, 'fault.body', body, 'a string');
      return () => ({ kind: 'status', status, headers, body });
    }
    case 'latency': {
      const delay = toMs(spec.delay, `${where}: option "fault.delay"`);
      const jitter = spec.jitter === undefined ? 0 : toMs(spec.jitter, `${where}: option "fault.jitter"`);
      return (random) => ({
        kind: 'latency',
        delayMs: jitter > 0 ? Math.max(0, delay + random.uniform(-jitter, jitter)) : delay,
      });
    }
    case 'reset':
      return () => ({ kind: 'reset' });
    case 'truncate': {
      const { bytes } = spec;
      if (!Number.isSafeInteger(bytes) || bytes < 0)
        throw invalid(where, 'fault.bytes', bytes, 'an integer >= 0');
      return () => ({ kind: 'truncate', bytes });
    }
    case 'timeout': {
      const afterMs = spec.after === undefined ? 0 : toMs(spec.after, `${where}: option "fault.after"`);
      return () => ({ kind: 'timeout', afterMs });
    }
    default:
      throw invalid(
        where,
        'fault.kind',
        (spec as { kind?: unknown }).kind,
        'one of "status", "latency", "reset", "truncate", "timeout"',
      );
  }
}

/**
 * Decides, request by request, which fault (if any) applies.
 * @example
 * const rules = new HttpFaultRules({
 *   rules: [{ host: 'api.example.com', path: '/v1/*', fault: httpFault.tooManyRequests({ retryAfter: '1s' }), schedule: schedule.rate(0.2) }],
 *   runtime: createRuntime({ seed: 42 }),
 * });
 */
export class HttpFaultRules {
  readonly name: string;
  readonly enabled: boolean;
  private readonly rules: CompiledRule[];
  private readonly events: EventSink;
  /** The runtime's clock (the interceptor and the HTTP proxy time their delays on it). */
  readonly clock: Clock;

  constructor(options: HttpFaultRulesOptions) {
    const where = 'HttpFaultRules';
    knownKeys(where, options, ['rules']);
    const runtime = options.runtime ?? systemRuntime();
    this.name = options.name ?? 'http';
    if (typeof this.name !== 'string' || this.name === '')
      throw invalid(where, 'name', this.name, 'a non-empty string');
    if (!Array.isArray(options.rules)) throw invalid(where, 'rules', options.rules, 'an array of rules');
    this.events = runtime.events;
    this.clock = runtime.clock;
    this.enabled = chaosEnabled();
    const started = runtime.clock.now();
    const root = runtime.random.fork(`http:${this.name}`);
    this.rules = options.rules.map((rule, i) => {
      const at = `${where}: rules[${i}]`;
      if (typeof rule !== 'object' || rule === null)
        throw invalid(where, `rules[${i}]`, rule, 'a rule object');
      for (const key of Object.keys(rule)) {
        if (!['host', 'method', 'path', 'fault', 'schedule', 'name'].includes(key)) {
          throw new TypeError(
            `${at}: unknown option "${key}"; known options are host, method, path, fault, schedule, name`,
          );
        }
      }
      const name = rule.name ?? `rule${i}`;
      if (typeof name !== 'string' || name === '') throw invalid(at, 'name', name, 'a non-empty string');
      const method = rule.method;
      const methods =
        method === undefined
          ? undefined
          : new Set(
              (typeof method === 'string' ? [method] : [...method]).map((m) => String(m).toUpperCase()),
            );
      const chosen = rule.schedule ?? schedules.always();
      if (!isSchedule(chosen)) throw invalid(at, 'schedule', chosen, 'a schedule (see `schedule`)');
      return {
        name,
        host: compileHost(at, rule.host),
        methods,
        path: compilePath(at, rule.path),
        schedule: chosen,
        decide: compileFault(at, rule.fault),
        state: new RuleState(root.fork(name), runtime.clock, started),
      };
    });
  }

  /** The fault for `request`, or `undefined` to let it through. Counts the request for every rule it matches. */
  decide(request: HttpRequestInfo): HttpFaultDecision | undefined {
    if (!this.enabled) return undefined;
    const method = request.method.toUpperCase();
    for (const rule of this.rules) {
      if (rule.host !== undefined && !rule.host(request.host, request.port)) continue;
      if (rule.methods !== undefined && !rule.methods.has(method)) continue;
      if (rule.path !== undefined && !rule.path(request.path)) continue;
      const state = rule.state;
      state.call++;
      if (!rule.schedule.fires(state)) continue;
      const decision: HttpFaultDecision = { ...rule.decide(state.random), rule: rule.name, call: state.call };
      this.report(decision);
      return decision;
    }
    return undefined;
  }

  private report(decision: HttpFaultDecision): void {
    if (!this.events.wants('fault.injected')) return;
    const base = {
      type: 'fault.injected' as const,
      source: `${this.name}/${decision.rule}`,
      at: this.clock.now(),
      fault: `http.${decision.kind}`,
      call: decision.call,
    };
    if (decision.kind === 'status') this.events.emit({ ...base, code: String(decision.status) });
    else if (decision.kind === 'latency') this.events.emit({ ...base, delayMs: decision.delayMs });
    else if (decision.kind === 'reset') this.events.emit({ ...base, code: 'ECONNRESET' });
    else this.events.emit(base);
  }
}
