/**
 * In-process faults (Polly v8's Simmy model): each fault is an ordinary policy with a `wrap` stage, so it
 * goes in any pipeline, and the lab needs no special wiring. A fault counts its calls, asks its schedule
 * whether to fire, and only then does anything: a call it lets pass costs a counter increment and the
 * schedule's decision, and allocates nothing.
 */
import { getSystemErrorMap } from 'node:util';
import type { Clock } from '../core/clock.js';
import type { Duration } from '../core/duration.js';
import { CancelledError } from '../core/errors.js';
import type { EventSink } from '../core/events.js';
import { lognormalFromMedianP99, type Random } from '../core/random.js';
import { systemRuntime } from '../core/runtime.js';
import { Call, type PolicyContext, Scope, waitInScope } from '../policy/context.js';
import { durationOption, functionOption, invalid, knownKeys, oneOf } from '../policy/options.js';
import type { Next, Policy, PolicyOptions, Stage, Task } from '../policy/policy.js';
import { BasePolicy, compile, isPolicy } from '../policy/runner.js';
import { isSchedule, type Schedule, type ScheduleState, schedule as schedules } from './schedule.js';

/** The built-in faults. */
export type FaultKind = 'error' | 'timeout' | 'latency' | 'outcome';

declare module '../core/events.js' {
  interface BulwarkEventMap {
    /**
     * A fault fired. `fault` is its kind (`error`, `timeout`, `latency`, `outcome`, or another chaos
     * module's), `call` the 1-based number of the fault's call it fired on; `code` is the error code an
     * `error` fault threw, `delayMs` the delay a `latency` fault added. `source` is the fault's name.
     */
    'fault.injected': { fault: FaultKind | (string & {}); call: number; code?: string; delayMs?: number };
  }
}

/** Options every fault takes. */
export interface FaultOptions extends PolicyOptions {
  /** When the fault fires. @defaultValue `schedule.always()` */
  schedule?: Schedule;
}

/** The network errors `faults.error` imitates. */
export type NetworkErrorCode = 'ECONNREFUSED' | 'ECONNRESET' | 'ENOTFOUND' | 'ETIMEDOUT' | 'EPIPE';

export type ErrorFaultOptions = FaultOptions &
  (
    | {
        /** The Node.js network error to throw. @defaultValue `'ECONNREFUSED'` */
        kind?: NetworkErrorCode;
        /** The peer the error names, `'host:port'` (`'[::1]:5432'` for IPv6). @defaultValue `'127.0.0.1:80'` */
        target?: string;
        error?: never;
      }
    | {
        /** Builds the error to throw instead (exclusive with `kind` and `target`). */
        error: (ctx: PolicyContext) => unknown;
        kind?: never;
        target?: never;
      }
  );

/** How `faults.latency` draws each delay; durations are ms or strings like `'250ms'`. */
export type LatencyDistribution =
  | { kind: 'uniform'; min: Duration; max: Duration }
  | { kind: 'normal'; mean: Duration; stddev: Duration }
  | { kind: 'lognormal'; median: Duration; p99: Duration };

export type LatencyFaultOptions = FaultOptions &
  (
    | {
        /** The delay added before the call runs. */
        delay: Duration;
        distribution?: never;
      }
    | {
        /** The distribution each delay is drawn from (from the fault's seeded random stream). */
        distribution: LatencyDistribution;
        delay?: never;
      }
  );

export interface OutcomeFaultOptions<R> extends FaultOptions {
  /**
   * What the call returns instead of running: a value, or a function of the call context that builds one
   * (required for one-shot values such as a `Response`, whose body can be read only once).
   */
  value: R | ((ctx: PolicyContext) => R | PromiseLike<R>);
}

const OFF_VALUES = ['off', '0', 'false', 'no', 'disabled'];

/**
 * False when the environment variable `BULWARK_CHAOS` is `off` (or `0`, `false`, `no`, `disabled`, in any
 * case), which disables every fault. Faults read it when they are constructed.
 * @example
 * if (chaosEnabled()) console.log('fault injection is armed');
 */
export function chaosEnabled(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  const value = env.BULWARK_CHAOS;
  return value === undefined || !OFF_VALUES.includes(value.trim().toLowerCase());
}

const FAULT = Symbol.for('bulwark.fault');

/** The per-fault state a schedule decides from; one per fault, so a decision allocates nothing. */
class FaultState implements ScheduleState {
  call = 0;
  constructor(
    readonly random: Random,
    private readonly clock: Clock,
    private readonly origin: number,
  ) {}
  elapsed(): number {
    return this.clock.now() - this.origin;
  }
}

/**
 * A fault: a policy that, when its schedule fires, replaces or delays the call it wraps.
 * Build one with {@link faults}.
 */
export abstract class Fault extends BasePolicy {
  /** What the fault does. */
  abstract readonly fault: FaultKind;
  /** The policy kind: `fault.error`, `fault.timeout`, `fault.latency` or `fault.outcome`. */
  readonly kind: string;
  readonly name: string;
  readonly stage: Stage;
  /** When the fault fires. */
  readonly schedule: Schedule;
  /** False when `BULWARK_CHAOS=off` was set when the fault was built: it then passes every call through. */
  readonly enabled: boolean;
  protected readonly clock: Clock;
  protected readonly events: EventSink;
  private readonly state: FaultState;
  private fired = 0;

  protected constructor(
    fault: FaultKind,
    given: FaultOptions | undefined,
    where: string,
    keys: readonly string[],
  ) {
    super();
    knownKeys(where, given, ['schedule', ...keys]);
    const options = given ?? {};
    const name = options.name ?? fault;
    if (typeof name !== 'string' || name.length === 0) {
      throw invalid(where, 'name', name, 'a non-empty string');
    }
    const chosen = options.schedule ?? schedules.always();
    if (!isSchedule(chosen)) throw invalid(where, 'schedule', chosen, 'a schedule (see `schedule`)');
    const runtime = options.runtime ?? systemRuntime();
    this.kind = `fault.${fault}`;
    this.name = name;
    this.schedule = chosen;
    this.enabled = chaosEnabled();
    this.clock = runtime.clock;
    this.events = runtime.events;
    this.state = new FaultState(runtime.random.fork(`fault:${name}`), this.clock, this.clock.now());
    this.stage = { kind: 'wrap', run: (next, call) => this.run(next, call) };
    Object.defineProperty(this, FAULT, { value: true });
    if (this.events.wants('policy.created')) {
      this.events.emit({ type: 'policy.created', source: name, at: this.clock.now(), kind: this.kind });
    }
  }

  /** Calls that reached the fault (fired or not, enabled or not). */
  get calls(): number {
    return this.state.call;
  }

  /** Calls the fault fired on. */
  get injected(): number {
    return this.fired;
  }

  /** The fault's random stream (forked from the runtime's as `fault:<name>`). */
  protected get random(): Random {
    return this.state.random;
  }

  private run<T>(next: Next<T>, call: Call): Promise<T> {
    const state = this.state;
    const n = ++state.call;
    if (!this.enabled) return next(call);
    let fires: boolean;
    try {
      fires = this.schedule.fires(state);
    } catch (error) {
      return Promise.reject(error);
    }
    if (!fires) return next(call);
    this.fired++;
    return this.fire(next, call, n);
  }

  /** Does what the fault does to call number `n`; reports it with {@link report}. Never throws. */
  protected abstract fire<T>(next: Next<T>, call: Call, n: number): Promise<T>;

  protected report(n: number, code: string | undefined, delayMs: number | undefined): void {
    const events = this.events;
    if (!events.wants('fault.injected')) return;
    const source = this.name;
    const at = this.clock.now();
    const fault = this.fault;
    events.emit(
      code !== undefined
        ? { type: 'fault.injected', source, at, fault, call: n, code }
        : delayMs !== undefined
          ? { type: 'fault.injected', source, at, fault, call: n, delayMs }
          : { type: 'fault.injected', source, at, fault, call: n },
    );
  }
}

/** True for faults built by {@link faults} (from any copy of the package). */
export function isFault(value: unknown): value is Fault {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[FAULT] === true;
}

// ---------------------------------------------------------------------------------------------
// error

interface NetworkErrorShape {
  syscall: string;
  /** Whether Node names the peer (`address`/`port`, or `hostname` for lookups). */
  peer: 'address' | 'hostname' | 'none';
  /** libuv's name for the errno, when it differs from the code. */
  uv?: string;
}

const NETWORK_ERRORS: Record<NetworkErrorCode, NetworkErrorShape> = {
  ECONNREFUSED: { syscall: 'connect', peer: 'address' },
  ETIMEDOUT: { syscall: 'connect', peer: 'address' },
  ENOTFOUND: { syscall: 'getaddrinfo', peer: 'hostname', uv: 'EAI_NONAME' },
  ECONNRESET: { syscall: 'read', peer: 'none' },
  EPIPE: { syscall: 'write', peer: 'none' },
};

const NETWORK_CODES = Object.keys(NETWORK_ERRORS) as NetworkErrorCode[];

/** Linux's values, for a platform whose error map lacks a name. */
const LINUX_ERRNO: Record<string, number> = {
  ECONNREFUSED: -111,
  ETIMEDOUT: -110,
  EAI_NONAME: -3008,
  ECONNRESET: -104,
  EPIPE: -32,
};

let errnos: Map<string, number> | undefined;

/** The errno Node sets for `name` on this platform (they differ between Linux, macOS and Windows). */
function errnoOf(name: string): number {
  if (errnos === undefined) {
    errnos = new Map();
    for (const [errno, [uvName]] of getSystemErrorMap()) errnos.set(uvName, errno);
  }
  return errnos.get(name) ?? (LINUX_ERRNO[name] as number);
}

interface Target {
  host: string;
  port: number;
}

function parseTarget(where: string, value: unknown): Target {
  const accepted = "a 'host:port' string (e.g. '127.0.0.1:5432', 'db.internal:5432', '[::1]:5432')";
  if (typeof value !== 'string' || value.trim() !== value || value.length === 0) {
    throw invalid(where, 'target', value, accepted);
  }
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || port > 65535) throw invalid(where, 'target', value, accepted);
  return { host: (match[1] ?? match[2]) as string, port };
}

/** A Node.js network error with the fields Node itself sets, in Node's order. */
function networkError(code: NetworkErrorCode, target: Target): Error {
  const shape = NETWORK_ERRORS[code];
  const errno = errnoOf(shape.uv ?? code);
  const { syscall } = shape;
  if (shape.peer === 'address') {
    return Object.assign(new Error(`${syscall} ${code} ${target.host}:${target.port}`), {
      errno,
      code,
      syscall,
      address: target.host,
      port: target.port,
    });
  }
  if (shape.peer === 'hostname') {
    return Object.assign(new Error(`${syscall} ${code} ${target.host}`), {
      errno,
      code,
      syscall,
      hostname: target.host,
    });
  }
  return Object.assign(new Error(`${syscall} ${code}`), { errno, code, syscall });
}

/** Fails calls with an error, without running them. See {@link faults.error}. */
export class ErrorFault extends Fault {
  readonly fault = 'error';
  /** The network error code thrown, or `undefined` with a user `error` factory. */
  readonly code: NetworkErrorCode | undefined;
  private readonly target: Target;
  private readonly factory: ((ctx: PolicyContext) => unknown) | undefined;

  constructor(options: ErrorFaultOptions = {}) {
    const where = 'faults.error';
    super('error', options, where, ['kind', 'target', 'error']);
    this.factory = functionOption<(ctx: PolicyContext) => unknown>(where, 'error', options.error);
    if (this.factory !== undefined && (options.kind !== undefined || options.target !== undefined)) {
      const other = options.kind !== undefined ? 'kind' : 'target';
      throw new TypeError(`${where}: options "error" and "${other}" are exclusive`);
    }
    this.code =
      this.factory === undefined
        ? oneOf(where, 'kind', options.kind, NETWORK_CODES, 'ECONNREFUSED')
        : undefined;
    this.target = parseTarget(where, options.target ?? '127.0.0.1:80');
  }

  protected fire<T>(_next: Next<T>, call: Call, n: number): Promise<T> {
    const code = this.code;
    if (code !== undefined) {
      const error = networkError(code, this.target);
      this.report(n, code, undefined);
      return Promise.reject(error);
    }
    let error: unknown;
    try {
      error = (this.factory as (ctx: PolicyContext) => unknown)(call);
    } catch (thrown) {
      error = thrown;
    }
    const produced = (error as { code?: unknown } | null)?.code;
    this.report(n, typeof produced === 'string' ? produced : undefined, undefined);
    return Promise.reject(error);
  }
}

// ---------------------------------------------------------------------------------------------
// timeout

/** Makes calls hang, without running them, until they are cancelled. See {@link faults.timeout}. */
export class TimeoutFault extends Fault {
  readonly fault = 'timeout';

  constructor(options: FaultOptions = {}) {
    super('timeout', options, 'faults.timeout', []);
  }

  protected fire<T>(_next: Next<T>, call: Call, n: number): Promise<T> {
    this.report(n, undefined, undefined);
    const scope = call.scope;
    if (scope.isAborted()) return Promise.reject(scope.reason);
    // The only way out is the scope aborting, which drops its callbacks (and unlinks from its parent or
    // the caller's signal) before calling them: nothing stays subscribed. A call that nothing can cancel
    // subscribes to nothing and hangs for good.
    return new Promise<T>((_resolve, reject) => {
      scope.onAbort(reject);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// latency

const DISTRIBUTIONS = ['uniform', 'normal', 'lognormal'] as const;

function describeDistribution(where: string, value: unknown): (random: Random) => number {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(where, 'distribution', value, "an object such as { kind: 'uniform', min, max }");
  }
  const d = value as Record<string, unknown>;
  if (d.kind === undefined) {
    throw invalid(where, 'distribution.kind', d.kind, 'one of "uniform", "normal", "lognormal"');
  }
  const kind = oneOf(where, 'distribution.kind', d.kind, DISTRIBUTIONS, 'uniform');
  const fields = { uniform: ['min', 'max'], normal: ['mean', 'stddev'], lognormal: ['median', 'p99'] }[kind];
  for (const key of Object.keys(d)) {
    if (key !== 'kind' && !fields.includes(key)) {
      throw new TypeError(
        `${where}: unknown option "distribution.${key}"; a ${kind} distribution takes kind, ${fields.join(', ')}`,
      );
    }
  }
  const required = (key: string, exclusiveZero = false): number => {
    const option = `distribution.${key}`;
    if (d[key] === undefined) throw invalid(where, option, undefined, 'a duration');
    return durationOption(where, option, d[key], 0, 0, exclusiveZero);
  };
  if (kind === 'uniform') {
    const min = required('min');
    const max = required('max');
    if (max < min) throw invalid(where, 'distribution.max', d.max, `a duration >= min (${min}ms)`);
    return (random) => random.uniform(min, max);
  }
  if (kind === 'normal') {
    const mean = required('mean');
    const stddev = required('stddev');
    return (random) => Math.max(0, random.normal(mean, stddev));
  }
  const median = required('median', true);
  const p99 = required('p99', true);
  if (p99 < median) throw invalid(where, 'distribution.p99', d.p99, `a duration >= median (${median}ms)`);
  const { mu, sigma } = lognormalFromMedianP99(median, p99);
  return (random) => random.lognormal(mu, sigma);
}

/** Delays calls, then runs them. See {@link faults.latency}. */
export class LatencyFault extends Fault {
  readonly fault = 'latency';
  private readonly draw: (random: Random) => number;

  constructor(options: LatencyFaultOptions) {
    const where = 'faults.latency';
    super('latency', options, where, ['delay', 'distribution']);
    const { delay, distribution } = (options ?? {}) as { delay?: unknown; distribution?: unknown };
    if (delay !== undefined && distribution !== undefined) {
      throw new TypeError(`${where}: options "delay" and "distribution" are exclusive`);
    }
    if (delay !== undefined) {
      const ms = durationOption(where, 'delay', delay, 0);
      this.draw = () => ms;
    } else if (distribution !== undefined) {
      this.draw = describeDistribution(where, distribution);
    } else {
      throw new TypeError(`${where}: needs option "delay" or "distribution"`);
    }
  }

  protected fire<T>(next: Next<T>, call: Call, n: number): Promise<T> {
    const delayMs = this.draw(this.random);
    this.report(n, undefined, delayMs);
    return waitInScope(this.clock, delayMs, call.scope).then(() => next(call));
  }
}

// ---------------------------------------------------------------------------------------------
// outcome

/** Returns a substitute without running calls. See {@link faults.outcome}. */
export class OutcomeFault<R = unknown> extends Fault {
  readonly fault = 'outcome';
  private readonly value: R | undefined;
  private readonly produce: ((ctx: PolicyContext) => R | PromiseLike<R>) | undefined;

  constructor(options: OutcomeFaultOptions<R>) {
    super('outcome', options, 'faults.outcome', ['value']);
    if (options === undefined || !('value' in options)) {
      throw new TypeError(
        'faults.outcome: needs option "value" (a value, or a function of the call context)',
      );
    }
    const value = options.value;
    if (typeof value === 'function') {
      this.produce = value as (ctx: PolicyContext) => R | PromiseLike<R>;
      this.value = undefined;
    } else {
      this.produce = undefined;
      this.value = value;
    }
  }

  protected fire<T>(_next: Next<T>, call: Call, n: number): Promise<T> {
    this.report(n, undefined, undefined);
    // The substitute stands in for the call's result; its type is the caller's (see `faults.outcome`).
    if (this.produce === undefined) return Promise.resolve(this.value as unknown as T);
    try {
      return Promise.resolve(this.produce(call) as unknown as T | PromiseLike<T>);
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Fault injection. Each fault is a policy: put it in a pipeline (innermost, next to the call, to break
 * the dependency the other policies protect you from), or around a bare function with {@link inject}.
 * Every fault takes `schedule` (when it fires; every call by default), `name` (in events; by default its
 * kind) and `runtime`. `BULWARK_CHAOS=off` disables them all.
 *
 * @example
 * const rt = virtualRuntime(42);
 * const flaky = pipeline(
 *   retry({ maxAttempts: 3, runtime: rt }),
 *   timeout('1s', { runtime: rt }),
 *   faults.error({ kind: 'ECONNREFUSED', target: 'db:5432', schedule: schedule.rate(0.3), runtime: rt }),
 *   faults.timeout({ schedule: schedule.rate(0.2), runtime: rt }),
 * );
 */
export const faults = {
  /**
   * Fails the call without running it: with the Node.js network error `kind` (message, `code`, `errno`,
   * `syscall` and peer fields as Node sets them), or with what the `error` factory returns.
   * @example faults.error({ kind: 'ECONNRESET', schedule: schedule.everyNth(10) })
   */
  error(options?: ErrorFaultOptions): ErrorFault {
    return new ErrorFault(options);
  },

  /**
   * Makes the call hang, without running it, until its `ctx.signal` aborts; it then rejects with the
   * signal's reason. Nothing else ends it: put a `timeout` policy (or a caller signal) outside it.
   * @example pipeline(timeout('2s'), faults.timeout({ schedule: schedule.rate(0.1) }))
   */
  timeout(options?: FaultOptions): TimeoutFault {
    return new TimeoutFault(options);
  },

  /**
   * Delays the call by `delay`, or by a draw from `distribution`, then runs it. A call cancelled while
   * delayed rejects with the cancellation's reason and never runs.
   * @example faults.latency({ distribution: { kind: 'lognormal', median: '50ms', p99: '800ms' } })
   */
  latency(options: LatencyFaultOptions): LatencyFault {
    return new LatencyFault(options);
  },

  /**
   * Returns `value` (or what `value(ctx)` returns) without running the call.
   * @example faults.outcome({ value: () => new Response('busy', { status: 503 }), schedule: schedule.rate(0.05) })
   */
  outcome<R>(options: OutcomeFaultOptions<R>): OutcomeFault<R> {
    return new OutcomeFault<R>(options);
  },
} as const;

/**
 * Applies faults (or any policies), outermost first, to a bare function. The result takes an optional
 * context: pass the one a policy gives you (`policy.execute(inject(fn, faults))` works as is) so that
 * cancellation reaches the faults, or nothing.
 * @example
 * const getUser = inject(fetchUser, [faults.latency({ delay: '200ms' }), faults.error({ schedule: schedule.rate(0.1) })]);
 * await getUser();
 */
export function inject<T>(
  fn: Task<T>,
  faultList: Policy | readonly Policy[],
): (ctx?: PolicyContext) => Promise<T> {
  if (typeof fn !== 'function') throw invalid('inject', 'fn', fn, 'a function');
  const list: readonly unknown[] = Array.isArray(faultList) ? faultList : [faultList];
  list.forEach((policy, i) => {
    if (!isPolicy(policy))
      throw invalid('inject', `faults[${i}]`, policy, 'a fault or another Bulwark policy');
  });
  const executor = compile({ kind: 'pipeline', stages: (list as readonly Policy[]).map((p) => p.stage) });
  return (ctx?: PolicyContext): Promise<T> => {
    if (ctx === undefined) return executor(fn, Call.root(undefined));
    if (ctx instanceof Call) return executor(fn, ctx);
    const signal = ctx.signal;
    if (signal.aborted) return Promise.reject(new CancelledError(signal.reason));
    const call = new Call(new Scope(undefined, signal), typeof ctx.attempt === 'number' ? ctx.attempt : 1);
    return executor(fn, call).finally(() => call.scope.dispose());
  };
}
