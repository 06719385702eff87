/**
 * Plans: a named list of steps, each calling a registered tool with parameters, under optional
 * policies, with an optional compensation, ordered by `dependsOn` (a DAG). Plans come from YAML or JSON
 * files or from code; both are validated by the same zod schema and semantic checks before anything
 * runs: unknown keys, duplicate ids, missing or cyclic dependencies, and references to steps that do not
 * exist are all reported, one message per problem.
 */
import { LineCounter } from 'yaml';
import { z } from 'zod';
import type { Duration } from '../core/duration.js';
import { virtualRuntime } from '../core/runtime.js';
import {
  byPosition,
  closest,
  formatPath,
  issueMessages,
  Locator,
  type PathPart,
  parseSource,
  readSourceFor,
} from '../policy/file-problems.js';
import {
  buildPolicy,
  circuitBreakerSpec,
  describeValue,
  int,
  retrySpec,
  strict,
  timeoutSpec,
} from '../policy/spec.js';
import { PlanError, UnresolvedReferenceError } from './errors.js';

const ID = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const ID_RULE = 'must start with a letter or "_" and hold only letters, digits, "-" and "_"';

/** `timeout: 5s` is short for `timeout: { after: 5s }`. */
const stepTimeout = z.preprocess(
  (value) => (typeof value === 'string' || typeof value === 'number' ? { after: value } : value),
  timeoutSpec,
);

const paramsSpec = z.record(z.unknown());

const compensateSpec = strict({
  tool: z.string().min(1, 'must name a tool'),
  params: paramsSpec.optional(),
  retry: retrySpec.optional(),
  timeout: stepTimeout.optional(),
});

const stepSpec = strict({
  id: z.string().regex(ID, ID_RULE),
  tool: z.string().min(1, 'must name a tool'),
  description: z.string().optional(),
  params: paramsSpec.optional(),
  dependsOn: z.array(z.string()).optional(),
  retry: retrySpec.optional(),
  timeout: stepTimeout.optional(),
  circuitBreaker: circuitBreakerSpec.optional(),
  compensate: compensateSpec.optional(),
  continueOnError: z.boolean().optional(),
});

const planSpec = strict({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be letters, digits, ".", "-" and "_"'),
  description: z.string().optional(),
  concurrency: int(1).max(1000, 'must be an integer from 1 to 1000').optional(),
  steps: z.array(stepSpec).min(1, 'a plan needs at least one step'),
});

/** Retry options of a validated step (durations in ms). */
export type RetrySpec = z.infer<typeof retrySpec>;
/** Timeout options of a validated step: `{ after, strategy }` (ms). */
export type TimeoutSpec = z.infer<typeof timeoutSpec>;
/** Circuit-breaker options of a validated step (durations in ms). */
export type CircuitBreakerSpec = z.infer<typeof circuitBreakerSpec>;

/** A backoff as written: exactly one of `constant`, `linear`, `exponential`, and an optional `jitter`. */
export interface BackoffDefinition {
  constant?: Duration;
  linear?: { initial?: Duration; step?: Duration; max?: Duration };
  exponential?: { initial?: Duration; factor?: number; max?: Duration };
  jitter?: 'none' | 'full' | 'equal' | 'decorrelated';
}

/** A step's retry, as written: the policy module's `retry` options. */
export interface RetryDefinition {
  /** Attempts in all, counting the first. @defaultValue `3` */
  maxAttempts?: number;
  /** @defaultValue exponential from 100 ms, full jitter */
  backoff?: BackoffDefinition;
  /** @defaultValue `'30s'` */
  maxDelay?: Duration;
}

/** A step's timeout, as written: a duration, or the policy module's `timeout` options. */
export type TimeoutDefinition = Duration | { after: Duration; strategy?: 'cooperative' | 'aggressive' };

/** A step's circuit breaker, as written: the policy module's `circuitBreaker` options. */
export interface CircuitBreakerDefinition {
  consecutiveFailures?: number;
  failureRatio?: number;
  window?: Duration;
  buckets?: number;
  minimumThroughput?: number;
  halfOpenAfter?: Duration;
}

/** A tool call that undoes a step. `params` may reference the step's own output. */
export interface CompensationDefinition {
  tool: string;
  params?: Record<string, unknown>;
  /** @defaultValue the engine's `compensationRetry`: `{ maxAttempts: 3 }` */
  retry?: RetryDefinition;
  timeout?: TimeoutDefinition;
}

/** One step of a plan, as written. */
export interface StepDefinition {
  /** Unique in the plan: letters, digits, `-`, `_`. */
  id: string;
  /** The registered tool to call, e.g. `http.request`. */
  tool: string;
  description?: string;
  /** The tool's parameters; strings may hold `${steps.ID.output.path}` references. @defaultValue `{}` */
  params?: Record<string, unknown>;
  /** Steps that must succeed first (references add theirs implicitly). @defaultValue `[]` */
  dependsOn?: string[];
  retry?: RetryDefinition;
  timeout?: TimeoutDefinition;
  circuitBreaker?: CircuitBreakerDefinition;
  /** How to undo this step during a rollback. @defaultValue the tool's own `compensate`, if any */
  compensate?: CompensationDefinition;
  /** A final failure of this step is recorded but does not stop the run. @defaultValue `false` */
  continueOnError?: boolean;
}

/** A plan as written: what {@link definePlan} takes. */
export interface PlanDefinition {
  name: string;
  description?: string;
  /** Steps running at once when the DAG allows. @defaultValue `4` */
  concurrency?: number;
  steps: StepDefinition[];
}

/** A step of a validated plan: durations in ms, defaults filled in. */
export interface PlanStep {
  readonly id: string;
  readonly tool: string;
  readonly description?: string;
  readonly params: Record<string, unknown>;
  readonly dependsOn?: readonly string[];
  /** Every step this one waits for: `dependsOn` plus the steps its parameters reference, in plan order. */
  readonly needs: readonly string[];
  readonly retry?: RetrySpec;
  readonly timeout?: TimeoutSpec;
  readonly circuitBreaker?: CircuitBreakerSpec;
  readonly compensate?: {
    readonly tool: string;
    readonly params?: Record<string, unknown>;
    readonly retry?: RetrySpec;
    readonly timeout?: TimeoutSpec;
  };
  readonly continueOnError: boolean;
}

/** A validated plan. */
export interface Plan {
  readonly kind: 'plan';
  readonly name: string;
  readonly description: string | undefined;
  readonly concurrency: number;
  readonly steps: readonly PlanStep[];
  /** The validated definition (durations in ms): what the journal stores to resume the run. */
  readonly definition: PlanDefinition;
}

export const DEFAULT_CONCURRENCY = 4;

// ---------------------------------------------------------------------------------------------
// references

/** A `${steps.ID.output…}` reference: the step and the path into its output. */
export interface Reference {
  /** The text between `${` and `}`, e.g. `steps.fetch.output.id`. */
  readonly text: string;
  readonly step: string;
  readonly path: readonly (string | number)[];
}

/** A `${env.NAME}` reference: an environment variable (keeps secrets out of plan files and the journal's plan). */
export interface EnvReference {
  readonly text: string;
  readonly env: string;
}

const REFERENCE = /\$\{([^}]*)\}/g;
const ENV_BODY = /^env\.([A-Za-z_][A-Za-z0-9_]*)$/;
const REFERENCE_BODY = /^steps\.([A-Za-z_][A-Za-z0-9_-]*)\.output((?:\.[A-Za-z_$][\w$-]*|\[\d+\])*)$/;

/** Parses the inside of `${…}`; returns a message when it is neither a step-output nor an env reference. */
export function parseReference(text: string): Reference | EnvReference | string {
  const body = text.trim();
  const env = ENV_BODY.exec(body);
  if (env !== null) return { text: body, env: env[1] as string };
  const match = REFERENCE_BODY.exec(body);
  if (match === null) {
    return `invalid reference \${${text}}: expected \${steps.STEP.output}, \${steps.STEP.output.field[0].field} or \${env.NAME}`;
  }
  const path: (string | number)[] = [];
  for (const part of (match[2] as string).matchAll(/\.([^.[]+)|\[(\d+)\]/g)) {
    path.push(part[1] !== undefined ? part[1] : Number(part[2]));
  }
  return { text: body, step: match[1] as string, path };
}

/** Every `${…}` in `value` (strings anywhere inside), with the path where it appears. */
export function findReferences(
  value: unknown,
  at: PathPart[] = [],
): { at: PathPart[]; reference: Reference | EnvReference | string }[] {
  if (typeof value === 'string') {
    return [...value.matchAll(REFERENCE)].map((m) => ({ at, reference: parseReference(m[1] as string) }));
  }
  if (Array.isArray(value)) return value.flatMap((item, i) => findReferences(item, [...at, i]));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([key, item]) => findReferences(item, [...at, key]));
  }
  return [];
}

/** Follows a reference's path into an output; throws {@link UnresolvedReferenceError} when a part is missing. */
function lookup(reference: Reference, output: unknown): unknown {
  let value = output;
  let walked = `steps.${reference.step}.output`;
  for (const part of reference.path) {
    const container = value as Record<string | number, unknown> | null | undefined;
    const has =
      typeof part === 'number'
        ? Array.isArray(container) && part < container.length
        : typeof container === 'object' &&
          container !== null &&
          !Array.isArray(container) &&
          Object.hasOwn(container, part);
    if (!has) {
      throw new UnresolvedReferenceError(
        reference.text,
        `${walked} has no ${typeof part === 'number' ? `element [${part}]` : `field "${part}"`}`,
      );
    }
    value = (container as Record<string | number, unknown>)[part];
    walked += typeof part === 'number' ? `[${part}]` : `.${part}`;
  }
  return value;
}

/**
 * Replaces the `${steps.ID.output…}` references in `value` with the outputs they name, and `${env.NAME}`
 * with the variable from `env` (an unset one throws, even when `partial`). A string that is
 * exactly one reference becomes the referenced value (any JSON type); references inside longer strings are
 * interpolated (non-strings as JSON). With `partial`, references to outputs not in `outputs` stay as written
 * and are listed in `unresolved`; otherwise they throw {@link UnresolvedReferenceError}.
 */
export function resolveReferences(
  value: unknown,
  outputs: ReadonlyMap<string, unknown>,
  partial = false,
  env: Readonly<Record<string, string | undefined>> = {},
): { value: unknown; unresolved: string[] } {
  const unresolved: string[] = [];
  const one = (text: string): { found: boolean; value?: unknown } => {
    const reference = parseReference(text);
    if (typeof reference === 'string') throw new UnresolvedReferenceError(text.trim(), reference);
    if ('env' in reference) {
      const found = env[reference.env];
      if (found === undefined) {
        throw new UnresolvedReferenceError(
          reference.text,
          `environment variable ${reference.env} is not set`,
        );
      }
      return { found: true, value: found };
    }
    if (!outputs.has(reference.step)) {
      if (partial) {
        unresolved.push(reference.text);
        return { found: false };
      }
      throw new UnresolvedReferenceError(
        reference.text,
        `step "${reference.step}" has no output (it did not succeed)`,
      );
    }
    return { found: true, value: lookup(reference, outputs.get(reference.step)) };
  };
  const walk = (item: unknown): unknown => {
    if (typeof item === 'string') {
      const whole = /^\$\{([^}]*)\}$/.exec(item);
      if (whole !== null) {
        const result = one(whole[1] as string);
        return result.found ? result.value : item;
      }
      return item.replace(REFERENCE, (text, inner: string) => {
        const result = one(inner);
        if (!result.found) return text;
        return typeof result.value === 'string' ? result.value : JSON.stringify(result.value ?? null);
      });
    }
    if (Array.isArray(item)) return item.map(walk);
    if (typeof item === 'object' && item !== null) {
      return Object.fromEntries(Object.entries(item).map(([key, v]) => [key, walk(v)]));
    }
    return item;
  };
  return { value: walk(value), unresolved };
}

// ---------------------------------------------------------------------------------------------
// validation

type Problem = { path: PathPart[]; message: string };

/** Problems the schema cannot see: ids, dependencies, references, cycles, policy constructor rules. */
function semanticProblems(definition: PlanDefinition, checkPolicies = true): Problem[] {
  const problems: Problem[] = [];
  const ids = definition.steps.map((step) => step.id).filter((id) => !id.startsWith(UNNAMED));
  const firstIndex = new Map<string, number>();
  definition.steps.forEach((step, i) => {
    const seen = firstIndex.get(step.id);
    if (step.id.startsWith(UNNAMED)) return;
    if (seen === undefined) firstIndex.set(step.id, i);
    else
      problems.push({
        path: ['steps', i, 'id'],
        message: `duplicate step id "${step.id}" (first at steps[${seen}])`,
      });
  });
  const unknown = (name: string) => {
    const guess = closest(name, ids);
    return `unknown step "${name}"${guess === undefined ? '' : ` (did you mean "${guess}"?)`}`;
  };
  const edges = new Map<string, Set<string>>();
  definition.steps.forEach((step, i) => {
    const needs = edges.get(step.id) ?? new Set<string>();
    edges.set(step.id, needs);
    (step.dependsOn ?? []).forEach((dep, k) => {
      if (dep === step.id) {
        problems.push({ path: ['steps', i, 'dependsOn', k], message: 'a step cannot depend on itself' });
      } else if (!firstIndex.has(dep)) {
        problems.push({ path: ['steps', i, 'dependsOn', k], message: unknown(dep) });
      } else needs.add(dep);
    });
    const check = (value: unknown, base: PathPart[], ownOutput: boolean) => {
      for (const { at, reference } of findReferences(value, base)) {
        if (typeof reference === 'string') problems.push({ path: at, message: reference });
        else if ('env' in reference) continue;
        else if (reference.step === step.id && !ownOutput) {
          problems.push({
            path: at,
            message: `\${${reference.text}}: a step cannot use its own output (only its compensate may)`,
          });
        } else if (!firstIndex.has(reference.step)) {
          problems.push({ path: at, message: `\${${reference.text}}: ${unknown(reference.step)}` });
        } else if (reference.step !== step.id) needs.add(reference.step);
      }
    };
    check(step.params ?? {}, ['steps', i, 'params'], false);
    if (step.compensate !== undefined)
      check(step.compensate.params ?? {}, ['steps', i, 'compensate', 'params'], true);
  });
  const cycle = findCycle(ids, edges);
  if (cycle !== undefined) {
    const index = firstIndex.get(cycle[0] as string) as number;
    problems.push({
      path:
        definition.steps[index]?.dependsOn === undefined ? ['steps', index] : ['steps', index, 'dependsOn'],
      message: `dependency cycle: ${cycle.join(' → ')} (through dependsOn and references)`,
    });
  }
  if (!checkPolicies) return problems;
  const runtime = virtualRuntime(0);
  definition.steps.forEach((step, i) => {
    for (const kind of ['retry', 'timeout', 'circuitBreaker'] as const) {
      const spec = step[kind];
      if (spec === undefined) continue;
      try {
        buildPolicy({ [kind]: spec }, `check.${kind}`, runtime);
      } catch (error) {
        problems.push({ path: ['steps', i, kind], message: (error as Error).message });
      }
    }
  });
  return problems;
}

/** The id given to a step whose id is missing or invalid, so that the other checks can still run. */
const UNNAMED = '\u0000';

const isMapLike = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * What can be checked of a plan the schema rejected: its ids, dependencies and references (not its
 * policies), so that one pass reports the schema's problems and these together.
 */
function looseDefinition(data: Record<string, unknown>): PlanDefinition | undefined {
  if (!Array.isArray(data.steps)) return undefined;
  const steps = data.steps.map((raw: unknown, i): StepDefinition => {
    const step = isMapLike(raw) ? raw : {};
    const id = typeof step.id === 'string' && ID.test(step.id) ? step.id : `${UNNAMED}${i}`;
    const dependsOn = Array.isArray(step.dependsOn)
      ? step.dependsOn.filter((d): d is string => typeof d === 'string')
      : [];
    const compensate =
      isMapLike(step.compensate) && isMapLike(step.compensate.params)
        ? { tool: 'x', params: step.compensate.params }
        : undefined;
    return {
      id,
      tool: 'x',
      params: isMapLike(step.params) ? step.params : {},
      dependsOn,
      ...(compensate === undefined ? {} : { compensate }),
    };
  });
  return { name: 'x', steps };
}

/** A cycle as a list of ids (first repeated at the end), or undefined. */
function findCycle(
  ids: readonly string[],
  edges: ReadonlyMap<string, ReadonlySet<string>>,
): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, 'visiting');
    stack.push(id);
    for (const next of edges.get(id) ?? []) {
      const s = state.get(next);
      if (s === 'visiting') return [...stack.slice(stack.indexOf(next)), next];
      if (s === undefined) {
        const found = visit(next);
        if (found !== undefined) return found;
      }
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of ids) {
    if (state.get(id) === undefined) {
      const found = visit(id);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** `definition` has passed the schema: durations are ms, so its steps are {@link PlanStep}s once defaulted. */
function toPlan(definition: PlanDefinition): Plan {
  const steps: PlanStep[] = definition.steps.map((step) => {
    const needs = new Set(step.dependsOn ?? []);
    for (const { reference } of findReferences(step.params ?? {})) {
      if (typeof reference !== 'string' && 'step' in reference && reference.step !== step.id)
        needs.add(reference.step);
    }
    const order = definition.steps.map((s) => s.id).filter((id) => needs.has(id));
    return Object.freeze({
      ...step,
      params: step.params ?? {},
      needs: Object.freeze(order),
      continueOnError: step.continueOnError ?? false,
    }) as PlanStep;
  });
  return Object.freeze({
    kind: 'plan' as const,
    name: definition.name,
    description: definition.description,
    concurrency: definition.concurrency ?? DEFAULT_CONCURRENCY,
    steps: Object.freeze(steps),
    definition,
  });
}

/** Drops `undefined` properties (zod leaves none, but a definition built in code may carry them). */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function validate(data: unknown, file: string, locate: Locator): Plan {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new PlanError([
      `${file}:${locate.position([])}: expected a map with name and steps; got ${describeValue(data)}`,
    ]);
  }
  const at = ({ path, message }: Problem) =>
    `${file}:${locate.position(path)}: ${formatPath(path)}: ${message}`;
  const result = planSpec.safeParse(data);
  if (!result.success) {
    const problems = result.error.issues.flatMap((issue) => issueMessages(issue, file, locate));
    const loose = looseDefinition(data as Record<string, unknown>);
    if (loose !== undefined) problems.push(...semanticProblems(loose, false).map(at));
    throw new PlanError(byPosition([...new Set(problems)]));
  }
  const definition = plain(result.data) as PlanDefinition;
  const problems = semanticProblems(definition).map(at);
  if (problems.length > 0) throw new PlanError(byPosition([...new Set(problems)]));
  return toPlan(definition);
}

/**
 * Validates a plan built in code (or parsed elsewhere). Throws a {@link PlanError} whose problems read
 * `plan: path: message`.
 * @example
 * const plan = definePlan({
 *   name: 'hello',
 *   steps: [
 *     { id: 'write', tool: 'fs.write', params: { path: 'hello.txt', content: 'hi' } },
 *     { id: 'read', tool: 'fs.read', params: { path: '${steps.write.output.path}' } },
 *   ],
 * });
 */
export function definePlan(definition: PlanDefinition | Plan): Plan {
  if (isPlan(definition)) return definition;
  try {
    return validate(plain(definition), 'plan', new Locator(null, new LineCounter()));
  } catch (error) {
    if (error instanceof PlanError) {
      throw new PlanError(error.problems.map((line) => line.replace(/^plan:\d+:\d+: /, 'plan: ')));
    }
    throw error;
  }
}

/** True for a plan returned by {@link definePlan} or {@link loadPlanFile}. */
export function isPlan(value: unknown): value is Plan {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'plan';
}

/**
 * Parses and validates the text of a plan file (YAML or JSON). Throws a {@link PlanError} listing every
 * problem as `file:line:column: path: message`.
 * @example
 * const plan = parsePlanFile(text, 'deploy.yaml');
 */
export function parsePlanFile(text: string, file: string): Plan {
  const source = parseSource(text, file);
  if ('problems' in source) throw new PlanError(source.problems);
  return validate(source.data, file, source.locate);
}

/**
 * Reads, parses and validates a plan file.
 * @throws {@link PlanError} with one message per problem (`cannot read FILE: no such file` when missing).
 * @example
 * const plan = await loadPlanFile('examples/plans/hello.yaml');
 */
export async function loadPlanFile(path: string): Promise<Plan> {
  const text = await readSourceFor(path, (problems) => new PlanError(problems, true));
  return parsePlanFile(text, path);
}

/** Options of {@link PlanBuilder.step}: everything a step has but its id, tool and params. */
export type StepOptions = Omit<StepDefinition, 'id' | 'tool' | 'params'>;

/**
 * Builds a plan in code, step by step; `build()` validates it like a file.
 * @example
 * const plan = buildPlan('deploy', { concurrency: 2 })
 *   .step('upload', 'http.request', { url, method: 'PUT', body }, { retry: { maxAttempts: 3 } })
 *   .step('notify', 'log', { message: 'uploaded ${steps.upload.output.status}' })
 *   .build();
 */
export class PlanBuilder {
  private readonly steps: StepDefinition[] = [];
  constructor(
    private readonly name: string,
    private readonly options: Omit<PlanDefinition, 'name' | 'steps'> = {},
  ) {}

  step(id: string, tool: string, params: Record<string, unknown> = {}, options: StepOptions = {}): this {
    this.steps.push({ id, tool, params, ...options });
    return this;
  }

  build(): Plan {
    return definePlan({ name: this.name, ...this.options, steps: this.steps });
  }
}

/** Starts a {@link PlanBuilder}. */
export function buildPlan(name: string, options?: Omit<PlanDefinition, 'name' | 'steps'>): PlanBuilder {
  return new PlanBuilder(name, options);
}
