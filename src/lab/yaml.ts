/**
 * Scenarios from declarative YAML (or JSON) files: a simulated dependency (faults applied in order, then
 * success after an optional latency), a `before` and an `after` pipeline of policies around it, and
 * checks on the two success rates. Validated with zod (strict everywhere) before anything runs; every
 * problem is reported once, as `file:line:column: path.to.field: message`.
 */
import { z } from 'zod';
import { faults, inject } from '../chaos/faults.js';
import { type Schedule, schedule } from '../chaos/schedule.js';
import { FileProblemsError } from '../core/errors.js';
import type { Runtime } from '../core/runtime.js';
import { virtualRuntime } from '../core/runtime.js';
import {
  byPosition,
  formatPath,
  issueMessages,
  type Locator,
  type PathPart,
  parseSource,
  readSourceFor,
} from '../policy/file-problems.js';
import { pipeline } from '../policy/pipeline.js';
import type { Policy } from '../policy/policy.js';
import {
  buildPolicy,
  defined,
  describeValue as describe,
  duration,
  int,
  oneKey,
  policyEntry,
  policyKind,
  probability,
  strict,
} from '../policy/spec.js';
import { runTasks } from './runner.js';
import { type Check, defineScenario, type Scenario } from './scenario.js';

/** A scenario file that cannot be read, parsed or validated; `problems` holds one message per problem. */
export class ScenarioFileError extends FileProblemsError {
  override readonly name = 'ScenarioFileError';
  constructor(problems: readonly string[], unreadable = false) {
    super('SCENARIO_FILE', problems, unreadable);
  }
}

// ---------------------------------------------------------------------------------------------
// schema

const NETWORK_CODES = ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EPIPE'] as const;
const SCHEDULE_KEYS = ['rate', 'firstN', 'everyNth', 'sequence'] as const;
const scheduleShape = {
  rate: probability.optional(),
  firstN: int(0).optional(),
  everyNth: int(1).optional(),
  sequence: z
    .array(z.enum(['fail', 'ok']))
    .min(1, 'must list at least one step')
    .optional(),
  repeat: z.boolean().optional(),
};

const errorFault = strict({ code: z.enum(NETWORK_CODES).optional(), ...scheduleShape }).superRefine(
  oneKey(SCHEDULE_KEYS, true),
);
const timeoutFault = strict(scheduleShape).superRefine(oneKey(SCHEDULE_KEYS, true));
const latencyFault = strict({
  delay: duration().optional(),
  median: duration(true).optional(),
  p99: duration(true).optional(),
  ...scheduleShape,
}).superRefine((value, ctx) => {
  oneKey(SCHEDULE_KEYS, true)(value, ctx);
  if (value.delay === undefined && (value.median === undefined || value.p99 === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'expected delay, or median and p99' });
  } else if (value.delay !== undefined && (value.median !== undefined || value.p99 !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['delay'], message: 'give delay, or median and p99, not both' });
  } else if (value.median !== undefined && value.p99 !== undefined && value.p99 <= value.median) {
    ctx.addIssue({ code: 'custom', path: ['p99'], message: 'must be greater than median' });
  }
});

const FAULT_KINDS = ['error', 'timeout', 'latency'] as const;
const faultEntry = strict({
  error: errorFault.optional(),
  timeout: timeoutFault.optional(),
  latency: latencyFault.optional(),
}).superRefine(oneKey(FAULT_KINDS));

const latencySpec = strict({
  fixed: duration().optional(),
  median: duration(true).optional(),
  p99: duration(true).optional(),
}).superRefine((value, ctx) => {
  if (value.fixed === undefined && (value.median === undefined || value.p99 === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'expected fixed, or median and p99' });
  } else if (value.fixed !== undefined && (value.median !== undefined || value.p99 !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['fixed'], message: 'give fixed, or median and p99, not both' });
  } else if (value.median !== undefined && value.p99 !== undefined && value.p99 <= value.median) {
    ctx.addIssue({ code: 'custom', path: ['p99'], message: 'must be greater than median' });
  }
});

const checkSpec = z.union([
  strict({
    metric: z.enum(['before', 'after']),
    atLeast: probability.optional(),
    atMost: probability.optional(),
    consistentWith: probability.optional(),
    description: z.string().optional(),
  }).superRefine((value, ctx) => {
    if (value.atLeast === undefined && value.atMost === undefined && value.consistentWith === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected atLeast, atMost or consistentWith' });
    }
  }),
  strict({
    value: z.string(),
    equals: z.number().optional(),
    atLeast: z.number().optional(),
    atMost: z.number().optional(),
    description: z.string().optional(),
  }).superRefine((value, ctx) => {
    if (value.equals === undefined && value.atLeast === undefined && value.atMost === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected equals, atLeast or atMost' });
    }
  }),
]);

const fileSchema = strict({
  name: z.string().regex(/^[a-z][a-z0-9_-]*$/, 'must be lowercase letters, digits, "-" and "_"'),
  description: z.string().optional(),
  tasks: int(1).max(100_000_000, 'must be an integer from 1 to 100000000').optional(),
  concurrency: int(1).optional(),
  dependency: strict({
    faults: z.array(faultEntry).optional(),
    latency: latencySpec.optional(),
  }),
  before: z.array(policyEntry),
  after: z.array(policyEntry),
  expect: z.array(checkSpec).optional(),
});

/** A scenario file as written (after validation; durations in ms). */
export type ScenarioFile = z.infer<typeof fileSchema>;
type FaultEntry = z.infer<typeof faultEntry>;
type ScheduleSpec = z.infer<typeof timeoutFault>;

// ---------------------------------------------------------------------------------------------
// building

function scheduleOf(spec: ScheduleSpec): Schedule | undefined {
  if (spec.rate !== undefined) return schedule.rate(spec.rate);
  if (spec.firstN !== undefined) return schedule.firstN(spec.firstN);
  if (spec.everyNth !== undefined) return schedule.everyNth(spec.everyNth);
  if (spec.sequence !== undefined) {
    return schedule.sequence(spec.sequence, spec.repeat === undefined ? {} : { repeat: spec.repeat });
  }
  return undefined;
}

function withSchedule<O extends object>(options: O, spec: ScheduleSpec): O & { schedule?: Schedule } {
  const chosen = scheduleOf(spec);
  return chosen === undefined ? options : { ...options, schedule: chosen };
}

function buildFault(entry: FaultEntry, name: string, runtime: Runtime): Policy {
  if (entry.error !== undefined) {
    const { code } = entry.error;
    return faults.error(withSchedule({ name, runtime, kind: code ?? 'ECONNREFUSED' }, entry.error));
  }
  if (entry.timeout !== undefined) return faults.timeout(withSchedule({ name, runtime }, entry.timeout));
  const spec = entry.latency as NonNullable<FaultEntry['latency']>;
  return spec.delay !== undefined
    ? faults.latency(withSchedule({ name, runtime, delay: spec.delay }, spec))
    : faults.latency(
        withSchedule(
          {
            name,
            runtime,
            distribution: { kind: 'lognormal', median: spec.median as number, p99: spec.p99 as number },
          },
          spec,
        ),
      );
}

/** The dependency's faults (then its latency), named `<side>.<kind>.<i>` so each has its own stream. */
function buildDependency(file: ScenarioFile, side: string, runtime: Runtime): Policy[] {
  const list = (file.dependency.faults ?? []).map((entry, i) =>
    buildFault(entry, `${side}.fault.${policyKind(entry)}.${i}`, runtime),
  );
  const latency = file.dependency.latency;
  if (latency !== undefined) {
    const name = `${side}.latency`;
    list.push(
      latency.fixed !== undefined
        ? faults.latency({ name, runtime, delay: latency.fixed })
        : faults.latency({
            name,
            runtime,
            distribution: { kind: 'lognormal', median: latency.median as number, p99: latency.p99 as number },
          }),
    );
  }
  return list;
}

function buildPipeline(file: ScenarioFile, side: 'before' | 'after', runtime: Runtime) {
  const policies = file[side].map((entry, i) =>
    buildPolicy(entry, `${side}.${policyKind(entry)}.${i}`, runtime),
  );
  const dependency = inject(() => true, buildDependency(file, side, runtime));
  return { policy: pipeline(...policies), dependency };
}

/** What kind of failure `error` is: its `code` (`ECONNREFUSED`, `TIMEOUT`, `CIRCUIT_OPEN`, …) or `OTHER`. */
function failureKind(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.length > 0 ? code : 'OTHER';
}

function toScenario(file: ScenarioFile): Scenario {
  const concurrency = file.concurrency ?? 100;
  const expect: Check[] = (file.expect ?? []).map((check) => defined(check) as Check);
  return defineScenario({
    name: file.name,
    description: file.description ?? `${file.name} (from a scenario file)`,
    params: {},
    defaults: { tasks: file.tasks ?? 10_000 },
    async run({ runtime, tasks, record, progress }) {
      const sides = (['before', 'after'] as const).map((side) => ({
        side,
        ...buildPipeline(file, side, runtime),
        ok: 0,
        failures: new Map<string, number>(),
      }));
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      try {
        await runTasks(
          tasks,
          concurrency,
          async () => {
            for (const side of sides) {
              try {
                await side.policy.execute(side.dependency);
                side.ok++;
              } catch (error) {
                const kind = failureKind(error);
                side.failures.set(kind, (side.failures.get(kind) ?? 0) + 1);
              }
            }
          },
          (done) => {
            if (done % 1000 === 0 || done === tasks) progress(done);
          },
        );
      } finally {
        Error.stackTraceLimit = limit;
      }
      for (const side of sides) {
        record.countMany(side.side, side.ok, tasks);
        for (const [kind, n] of [...side.failures].sort(([a], [b]) => (a < b ? -1 : 1))) {
          record.add(`failures.${side.side}.${kind}`, n);
        }
      }
    },
    comparisons: [{ metric: 'success', before: 'before', after: 'after' }],
    expect,
  }) as unknown as Scenario;
}

// ---------------------------------------------------------------------------------------------
// positions and messages

/** Reports a failed union (the checks): each entry against the variant its keys point to. */
function unionMessages(issue: z.ZodIssue, file: string, locate: Locator, data: unknown): string[] {
  if (issue.code !== 'invalid_union') return [];
  let entry: unknown = data;
  for (const part of issue.path) entry = (entry as Record<PathPart, unknown> | undefined)?.[part];
  const variant = typeof entry === 'object' && entry !== null && 'value' in entry ? 1 : 0;
  const errors = issue.unionErrors[variant]?.issues ?? [];
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    return [
      `${file}:${locate.position(issue.path)}: ${formatPath(issue.path)}: expected a map { metric, atLeast | atMost | consistentWith } or { value, equals | atLeast | atMost }`,
    ];
  }
  return errors.flatMap((inner) => issueMessages(inner, file, locate));
}

/** Semantic checks the schema cannot express: the constructors' own validation, and calls that never end. */
function semanticProblems(parsed: ScenarioFile, file: string, locate: Locator): string[] {
  const problems: string[] = [];
  const runtime = virtualRuntime(0);
  const at = (path: PathPart[], message: string) =>
    problems.push(`${file}:${locate.position(path)}: ${formatPath(path)}: ${message}`);
  (parsed.dependency.faults ?? []).forEach((entry, i) => {
    try {
      buildFault(entry, `check.${i}`, runtime);
    } catch (error) {
      at(['dependency', 'faults', i, policyKind(entry)], (error as Error).message);
    }
  });
  const hangs = (parsed.dependency.faults ?? []).some((entry) => entry.timeout !== undefined);
  for (const side of ['before', 'after'] as const) {
    parsed[side].forEach((entry, i) => {
      try {
        buildPolicy(entry, `check.${i}`, runtime);
      } catch (error) {
        at([side, i, policyKind(entry)], (error as Error).message);
      }
    });
    if (hangs && !parsed[side].some((entry) => entry.timeout !== undefined)) {
      at(
        [side],
        'the dependency has a timeout fault (a call that hangs until cancelled) but this pipeline has no timeout policy to end it',
      );
    }
  }
  return problems;
}

/**
 * Parses and validates the text of a scenario file. Returns the scenario, or throws a
 * {@link ScenarioFileError} listing every problem as `file:line:column: path: message`.
 * @example
 * const scenario = parseScenarioFile(text, 'flaky.yaml');
 */
export function parseScenarioFile(text: string, file: string): Scenario {
  const source = parseSource(text, file);
  if ('problems' in source) throw new ScenarioFileError(source.problems);
  const { data, locate } = source;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ScenarioFileError([
      `${file}:${locate.position([])}: expected a map with name, dependency, before and after; got ${describe(data)}`,
    ]);
  }
  const result = fileSchema.safeParse(data);
  if (!result.success) {
    // An entry with an unknown key (a misspelt kind) is not also reported as having no known one.
    const unknownAt = new Set(
      result.error.issues.filter((i) => i.code === 'unrecognized_keys').map((i) => formatPath(i.path)),
    );
    const issues = result.error.issues.filter(
      (i) =>
        !(
          i.code === 'custom' &&
          i.message.startsWith('expected one of') &&
          unknownAt.has(formatPath(i.path))
        ),
    );
    const problems = issues.flatMap((issue) =>
      issue.code === 'invalid_union'
        ? unionMessages(issue, file, locate, data)
        : issueMessages(issue, file, locate),
    );
    throw new ScenarioFileError(byPosition([...new Set(problems)]));
  }
  const problems = semanticProblems(result.data, file, locate);
  if (problems.length > 0) throw new ScenarioFileError(byPosition(problems));
  return toScenario(result.data);
}

/**
 * Loads a scenario from a YAML (or JSON) file: reads, parses and validates it, and returns a
 * {@link Scenario} that runs the file's `before` and `after` pipelines around its simulated dependency.
 * @throws {@link ScenarioFileError} with one message per problem (`cannot read FILE: no such file` when missing).
 * @example
 * const scenario = await loadScenarioFile('flaky.yaml');
 * const report = await runScenario(scenario, { seed: 1 });
 */
export async function loadScenarioFile(path: string): Promise<Scenario> {
  const text = await readSourceFor(path, (problems) => new ScenarioFileError(problems, true));
  return parseScenarioFile(text, path);
}
