/**
 * Chaos experiments against real targets, in the shape Chaos Toolkit users know: a steady-state
 * hypothesis (probes with tolerances), a method (actions and probes), rollbacks, plus what Chaos Toolkit
 * lacks — a load generator whose success rate is reported with intervals before, during and after the
 * fault, and abort conditions checked continuously.
 */
import type { Duration } from '../../core/duration.js';
import type { Runtime } from '../../core/runtime.js';

/** An HTTP request; its output is `{ status, latencyMs, body, headers }`. */
export interface HttpProvider {
  type: 'http';
  url: string;
  /** @defaultValue 'GET' */
  method?: string;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  /** @defaultValue '5s' */
  timeout?: Duration;
}

/** A command (no shell); its output is `{ exitCode, stdout, stderr, latencyMs }`. */
export interface ProcessProvider {
  type: 'process';
  /** The program and its arguments. */
  command: readonly string[];
  cwd?: string;
  env?: Record<string, string>;
  /** @defaultValue '30s' */
  timeout?: Duration;
}

/** One value from a Prometheus text exposition (e.g. a service's `/metrics`); its output is the number. */
export interface MetricProvider {
  type: 'metric';
  url: string;
  /** The metric name, e.g. `bulwark_circuit_state`. */
  metric: string;
  /** Label values the series must have; the values of every matching series are summed. */
  labels?: Record<string, string>;
  /** @defaultValue '5s' */
  timeout?: Duration;
}

/**
 * A Toxiproxy-API call (Bulwark's `bulwark proxy` or Toxiproxy itself): add, update or remove a toxic,
 * enable or disable a proxy, or reset everything. Its output is the API's JSON answer.
 */
export interface ToxiproxyProvider {
  type: 'toxiproxy';
  /** @defaultValue 'http://127.0.0.1:8474' */
  api?: string;
  action: 'addToxic' | 'updateToxic' | 'removeToxic' | 'enableProxy' | 'disableProxy' | 'reset';
  /** The proxy's name (all but `reset`). */
  proxy?: string;
  /** The toxic, as Toxiproxy's API takes it (`addToxic`, `updateToxic`; `name` for `removeToxic`). */
  toxic?: {
    name?: string;
    type?: string;
    stream?: 'upstream' | 'downstream';
    toxicity?: number;
    attributes?: Record<string, unknown>;
  };
  /** @defaultValue '5s' */
  timeout?: Duration;
}

/** A function exported by a module (files), resolved relative to the experiment file. */
export interface ModuleProvider {
  type: 'module';
  path: string;
  /** @defaultValue 'default' */
  export?: string;
  /** Passed as the function's first argument. */
  arguments?: unknown;
  /** @defaultValue '30s' */
  timeout?: Duration;
}

/** A function (the programmatic API): its return value is the output. */
export interface FunctionProvider {
  type: 'function';
  run: (context: ActivityContext) => unknown;
  /** @defaultValue '30s' */
  timeout?: Duration;
}

export type Provider =
  | HttpProvider
  | ProcessProvider
  | MetricProvider
  | ToxiproxyProvider
  | ModuleProvider
  | FunctionProvider;

/** What a function or module provider receives. */
export interface ActivityContext {
  readonly runtime: Runtime;
  /** Aborted when the activity times out or the experiment is aborted or interrupted. */
  readonly signal: AbortSignal;
  readonly arguments?: unknown;
}

/**
 * What an output must be for a probe to hold. A scalar is compared with the provider's main value (HTTP
 * status, exit code, metric value, a function's return value); `[min, max]` is an inclusive range of it;
 * an object sets fields.
 */
export type Tolerance =
  | number
  | string
  | boolean
  | readonly [number, number]
  | {
      /** HTTP status: one, or a list of accepted ones. */
      status?: number | readonly number[];
      /** HTTP or process: the call must take at most this long. */
      maxLatency?: Duration;
      exitCode?: number;
      /** The body (HTTP), stdout (process) or JSON of the value must contain this text. */
      contains?: string;
      /** … or match this regular expression. */
      matches?: string;
      /** Numeric main value bounds (inclusive). */
      min?: number;
      max?: number;
    };

export interface Pauses {
  before?: Duration;
  after?: Duration;
}

/** A probe: observes, and (with a tolerance) decides whether the system is as it should be. */
export interface Probe {
  type: 'probe';
  name: string;
  provider: Provider;
  tolerance?: Tolerance;
  pauses?: Pauses;
  /** Start it and go on without waiting (method only); its result is collected before the steady state after. */
  background?: boolean;
}

/** An action: changes the system (injects a fault, removes it, restarts something). */
export interface Action {
  type: 'action';
  name: string;
  provider: Provider;
  pauses?: Pauses;
  background?: boolean;
}

/** Waits (method only). */
export interface Wait {
  type: 'wait';
  name?: string;
  duration: Duration;
}

export type Activity = Probe | Action | Wait;

/** Load sent at a steady rate for the whole experiment: a warm-up, the method, and a cool-down. */
export interface LoadSpec {
  url: string;
  /** @defaultValue 'GET' */
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  /** Requests per second. */
  rate: number;
  /** Per request. @defaultValue '2s' */
  timeout?: Duration;
  /** A request succeeds when its status is one of these. @defaultValue 2xx */
  expectStatus?: readonly number[];
  /** Load before the steady-state check and the method (the baseline). @defaultValue '2s' */
  warmup?: Duration;
  /** Load after the rollbacks (the recovery). @defaultValue '2s' */
  cooldown?: Duration;
  /** At most this many requests in flight; more are counted as failures (`overload`). @defaultValue 64 */
  maxInFlight?: number;
  /** Hard bound on requests sent. @defaultValue 10000 */
  maxRequests?: number;
}

/** Stops the method early (the rollbacks still run). */
export type AbortCondition =
  | {
      /** The load's failure ratio over the last `window` exceeds `above` (with at least `minRequests`). */
      errorRate: { above: number; window?: Duration; minRequests?: number };
    }
  | { probe: Probe };

export interface Experiment {
  title: string;
  description?: string;
  /** The hypothesis checked before and after the method; the experiment deviates when it fails after. */
  steadyStateHypothesis?: { title?: string; probes: readonly Probe[] };
  method: readonly Activity[];
  rollbacks?: readonly Action[];
  load?: LoadSpec;
  abort?: readonly AbortCondition[];
  /** How often abort conditions are checked. @defaultValue '500ms' */
  abortInterval?: Duration;
  /** Where module providers' paths are resolved from (a file's directory). @defaultValue the working directory */
  baseDir?: string;
}
