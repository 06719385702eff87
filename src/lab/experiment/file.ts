/**
 * Experiment files (YAML or JSON) in Chaos Toolkit's shape — `title`, `description`,
 * `steady-state-hypothesis` with probes and tolerances, `method`, `rollbacks` — plus Bulwark's `load`
 * and `abort`. Validated with zod (strict everywhere) before anything runs; every problem is reported
 * once, as `file:line:column: path.to.field: message`.
 */
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { FileProblemsError } from '../../core/errors.js';
import {
  byPosition,
  formatPath,
  issueMessages,
  type Locator,
  type PathPart,
  parseSource,
  readSourceFor,
} from '../../policy/file-problems.js';
import { describeValue, duration, int, probability, strict } from '../../policy/spec.js';
import type { Action, Activity, Experiment, Probe, Provider, Tolerance } from './types.js';

/** An experiment file that cannot be read, parsed or validated; `problems` holds one message per problem. */
export class ExperimentFileError extends FileProblemsError {
  override readonly name = 'ExperimentFileError';
  constructor(problems: readonly string[], unreadable = false) {
    super('EXPERIMENT_FILE', problems, unreadable);
  }
}

const PROVIDER_TYPES = ['http', 'process', 'metric', 'toxiproxy', 'module'] as const;
const TOXIPROXY_ACTIONS = [
  'addToxic',
  'updateToxic',
  'removeToxic',
  'enableProxy',
  'disableProxy',
  'reset',
] as const;

const httpUrl = z
  .string()
  .refine((text) => /^https?:\/\/[^/\s]+/.test(text), 'expected an http:// or https:// URL');
const headers = z.record(z.string());

const providerSchema = z.discriminatedUnion(
  'type',
  [
    strict({
      type: z.literal('http'),
      url: httpUrl,
      method: z.string().optional(),
      headers: headers.optional(),
      body: z.unknown().optional(),
      timeout: duration(true).optional(),
    }),
    strict({
      type: z.literal('process'),
      command: z.array(z.string()).min(1, 'expected the program and its arguments'),
      cwd: z.string().optional(),
      env: z.record(z.string()).optional(),
      timeout: duration(true).optional(),
    }),
    strict({
      type: z.literal('metric'),
      url: httpUrl,
      metric: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'expected a Prometheus metric name'),
      labels: z.record(z.string()).optional(),
      timeout: duration(true).optional(),
    }),
    strict({
      type: z.literal('toxiproxy'),
      api: httpUrl.optional(),
      action: z.enum(TOXIPROXY_ACTIONS),
      proxy: z.string().min(1).optional(),
      toxic: strict({
        name: z.string().min(1).optional(),
        type: z.string().min(1).optional(),
        stream: z.enum(['upstream', 'downstream']).optional(),
        toxicity: probability.optional(),
        attributes: z.record(z.unknown()).optional(),
      }).optional(),
      timeout: duration(true).optional(),
    }),
    strict({
      type: z.literal('module'),
      path: z.string().min(1),
      export: z.string().min(1).optional(),
      arguments: z.unknown().optional(),
      timeout: duration(true).optional(),
    }),
  ],
  {
    errorMap: (issue, ctx) =>
      issue.code === 'invalid_union_discriminator'
        ? { message: `expected one of ${PROVIDER_TYPES.map((t) => JSON.stringify(t)).join(', ')}` }
        : { message: ctx.defaultError },
  },
);

const toleranceSchema = z.union([
  z.number(),
  z.string(),
  z.boolean(),
  z
    .tuple([z.number(), z.number()])
    .refine(([min, max]) => min <= max, 'expected [min, max] with min <= max (this range holds for nothing)'),
  strict({
    status: z.union([int(100), z.array(int(100))]).optional(),
    maxLatency: duration(true).optional(),
    exitCode: int(0).optional(),
    contains: z.string().optional(),
    matches: z
      .string()
      .refine((source) => {
        try {
          new RegExp(source);
          return true;
        } catch {
          return false;
        }
      }, 'expected a valid regular expression')
      .optional(),
    min: z.number().optional(),
    max: z.number().optional(),
  })
    .refine((t) => Object.keys(t).length > 0, 'expected at least one check (an empty map holds for anything)')
    .refine((t) => t.min === undefined || t.max === undefined || t.min <= t.max, 'expected min <= max'),
]);

const pauses = strict({ before: duration().optional(), after: duration().optional() });

const probeSchema = strict({
  type: z.literal('probe'),
  name: z.string().min(1),
  provider: providerSchema,
  tolerance: toleranceSchema.optional(),
  pauses: pauses.optional(),
  background: z.boolean().optional(),
});
const actionSchema = strict({
  type: z.literal('action'),
  name: z.string().min(1),
  provider: providerSchema,
  pauses: pauses.optional(),
  background: z.boolean().optional(),
});
const waitSchema = strict({
  type: z.literal('wait'),
  name: z.string().min(1).optional(),
  duration: duration(),
});
const activitySchema = z.discriminatedUnion('type', [probeSchema, actionSchema, waitSchema], {
  errorMap: (issue, ctx) =>
    issue.code === 'invalid_union_discriminator'
      ? { message: 'expected one of "probe", "action", "wait"' }
      : { message: ctx.defaultError },
});

const fileSchema = strict({
  title: z.string().min(1),
  description: z.string().optional(),
  'steady-state-hypothesis': strict({
    title: z.string().optional(),
    probes: z.array(probeSchema),
  }).optional(),
  method: z.array(activitySchema).min(1, 'expected at least one activity'),
  rollbacks: z.array(actionSchema).optional(),
  load: strict({
    url: httpUrl,
    method: z.string().optional(),
    headers: headers.optional(),
    body: z.unknown().optional(),
    rate: z
      .number()
      .gt(0, 'must be > 0 requests per second')
      .max(10_000, 'must be at most 10,000 per second'),
    timeout: duration(true).optional(),
    expectStatus: z.array(int(100)).min(1).optional(),
    warmup: duration().optional(),
    cooldown: duration().optional(),
    maxInFlight: int(1).optional(),
    maxRequests: int(1).optional(),
  }).optional(),
  abort: z
    .array(
      z.union([
        strict({
          errorRate: strict({
            above: probability,
            window: duration(true).optional(),
            minRequests: int(1).optional(),
          }),
        }),
        strict({ probe: probeSchema }),
      ]),
    )
    .optional(),
  abortInterval: duration(true).optional(),
});

type ExperimentFile = z.infer<typeof fileSchema>;

/** Problems the schema cannot express. */
function semanticProblems(parsed: ExperimentFile, file: string, locate: Locator): string[] {
  const problems: string[] = [];
  const at = (path: PathPart[], message: string) =>
    problems.push(`${file}:${locate.position(path)}: ${formatPath(path)}: ${message}`);
  const checkProvider = (
    provider: ExperimentFile['method'][number] & { provider?: unknown },
    path: PathPart[],
  ) => {
    const p = provider.provider as z.infer<typeof providerSchema> | undefined;
    if (p?.type !== 'toxiproxy') return;
    if (p.action !== 'reset' && p.proxy === undefined) at([...path, 'provider'], `${p.action} needs "proxy"`);
    if (
      (p.action === 'addToxic' || p.action === 'updateToxic') &&
      p.toxic?.type === undefined &&
      p.action === 'addToxic'
    ) {
      at([...path, 'provider'], 'addToxic needs "toxic.type" (latency, bandwidth, timeout, reset_peer, …)');
    }
    if ((p.action === 'removeToxic' || p.action === 'updateToxic') && p.toxic?.name === undefined) {
      at([...path, 'provider'], `${p.action} needs "toxic.name"`);
    }
  };
  const names = new Map<string, string>();
  const unique = (name: string | undefined, path: PathPart[]) => {
    if (name === undefined) return;
    const first = names.get(name);
    if (first !== undefined) at([...path, 'name'], `"${name}" is already the name of ${first}`);
    else names.set(name, formatPath(path));
  };
  parsed['steady-state-hypothesis']?.probes.forEach((probe, i) => {
    checkProvider(probe, ['steady-state-hypothesis', 'probes', i]);
    unique(probe.name, ['steady-state-hypothesis', 'probes', i]);
  });
  parsed.method.forEach((activity, i) => {
    checkProvider(activity, ['method', i]);
    unique(activity.name, ['method', i]);
  });
  (parsed.rollbacks ?? []).forEach((action, i) => {
    checkProvider(action, ['rollbacks', i]);
    unique(action.name, ['rollbacks', i]);
  });
  (parsed.abort ?? []).forEach((condition, i) => {
    if ('errorRate' in condition) {
      const { window = 2000, minRequests = 10 } = condition.errorRate;
      if (parsed.load === undefined) {
        at(['abort', i, 'errorRate'], 'an error-rate condition needs a "load" section to measure');
      } else if (parsed.load.rate * (window / 1000) < minRequests) {
        at(
          ['abort', i, 'errorRate'],
          `can never fire: the load sends about ${Number((parsed.load.rate * (window / 1000)).toPrecision(3))} requests per ${window} ms window, fewer than minRequests ${minRequests} (lengthen the window, lower minRequests or raise the rate)`,
        );
      }
    }
    if ('probe' in condition) {
      checkProvider(condition.probe, ['abort', i, 'probe']);
      unique(condition.probe.name, ['abort', i, 'probe']);
    }
  });
  return problems;
}

function toExperiment(parsed: ExperimentFile, baseDir: string): Experiment {
  const provider = (p: z.infer<typeof providerSchema>): Provider => p as Provider;
  const probe = (p: z.infer<typeof probeSchema>): Probe =>
    ({
      ...p,
      provider: provider(p.provider),
      ...(p.tolerance === undefined ? {} : { tolerance: p.tolerance as Tolerance }),
    }) as Probe;
  const activity = (a: z.infer<typeof activitySchema>): Activity =>
    a.type === 'probe'
      ? probe(a)
      : a.type === 'action'
        ? ({ ...a, provider: provider(a.provider) } as Action)
        : (a as Activity);
  const hypothesis = parsed['steady-state-hypothesis'];
  const experiment: Experiment = {
    title: parsed.title,
    method: parsed.method.map(activity),
    baseDir,
  };
  if (parsed.description !== undefined) experiment.description = parsed.description;
  if (hypothesis !== undefined) {
    experiment.steadyStateHypothesis = {
      ...(hypothesis.title === undefined ? {} : { title: hypothesis.title }),
      probes: hypothesis.probes.map(probe),
    };
  }
  if (parsed.rollbacks !== undefined) {
    experiment.rollbacks = parsed.rollbacks.map((a) => ({ ...a, provider: provider(a.provider) }) as Action);
  }
  if (parsed.load !== undefined) experiment.load = parsed.load as Experiment['load'] & object;
  if (parsed.abort !== undefined) {
    experiment.abort = parsed.abort.map((c) =>
      'probe' in c ? { probe: probe(c.probe) } : c,
    ) as Experiment['abort'] & object;
  }
  if (parsed.abortInterval !== undefined) experiment.abortInterval = parsed.abortInterval;
  return experiment;
}

/**
 * Parses and validates the text of an experiment file (`file` names it in messages; module paths are
 * resolved from its directory).
 * @throws {@link ExperimentFileError} with one `file:line:column: path: message` per problem.
 */
export function parseExperimentFile(
  text: string,
  file: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Experiment {
  const source = parseSource(text, file);
  if ('problems' in source) throw new ExperimentFileError(source.problems);
  const { locate } = source;
  if (typeof source.data !== 'object' || source.data === null || Array.isArray(source.data)) {
    throw new ExperimentFileError([
      `${file}:${locate.position([])}: expected a map with title, steady-state-hypothesis, method and rollbacks; got ${describeValue(source.data)}`,
    ]);
  }
  const unset: string[] = [];
  const data = interpolate(source.data, env, [], (path, name) =>
    unset.push(
      `${file}:${locate.position(path)}: ${formatPath(path)}: environment variable ${name} is not set (write \${${name}:-default} to give a default)`,
    ),
  );
  if (unset.length > 0) throw new ExperimentFileError(byPosition(unset));
  const result = fileSchema.safeParse(data);
  if (!result.success) {
    // A map with an unknown key is not also reported as empty or inconsistent (its refinements saw it stripped).
    const unknownAt = new Set(
      result.error.issues.filter((i) => i.code === 'unrecognized_keys').map((i) => formatPath(i.path)),
    );
    const issues = result.error.issues.filter(
      (i) => !(i.code === 'custom' && unknownAt.has(formatPath(i.path))),
    );
    const problems = issues.flatMap((issue) =>
      issue.code === 'invalid_union'
        ? unionProblems(issue, file, locate)
        : issueMessages(issue, file, locate),
    );
    if (problems.length === 0) {
      // Never an error without a message: say where zod stopped.
      const first = result.error.issues[0];
      problems.push(
        `${file}:${locate.position(first?.path ?? [])}: ${formatPath(first?.path ?? [])}: ${first?.message ?? 'invalid'}`,
      );
    }
    throw new ExperimentFileError(byPosition([...new Set(problems)]));
  }
  const problems = semanticProblems(result.data, file, locate);
  if (problems.length > 0) throw new ExperimentFileError(byPosition(problems));
  return toExperiment(result.data, dirname(resolve(file)));
}

/**
 * Replaces `${NAME}` and `${NAME:-default}` in every string of `data` with the environment's value (so one
 * file runs against different hosts and ports); `$${…}` is left as `${…}`. Reports each unset variable
 * without a default through `missing`.
 */
function interpolate(
  data: unknown,
  env: Readonly<Record<string, string | undefined>>,
  path: PathPart[],
  missing: (path: PathPart[], name: string) => void,
): unknown {
  if (typeof data === 'string') {
    if (!data.includes('${')) return data;
    // `$${` is a literal `${`: hidden while variables are expanded, innermost first (so that
    // `${A:-${B}}` works), then restored.
    const LITERAL = '\u0000';
    let text = data.replaceAll('$${', LITERAL);
    for (let pass = 0; pass < 8; pass++) {
      const next = text.replace(
        /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:(?!\$\{)[^}])*))?\}/g,
        (whole, name: string, fallback?: string) => {
          const value = env[name];
          // As in the shell: `${X:-d}` takes d when X is unset or empty; `${X}` is X, even empty.
          if (value !== undefined && (value !== '' || fallback === undefined)) return value;
          if (fallback !== undefined) return fallback;
          missing(path, name);
          return whole.replace('${', LITERAL);
        },
      );
      if (next === text) break;
      text = next;
    }
    return text.replaceAll(LITERAL, '${');
  }
  if (Array.isArray(data)) return data.map((item, i) => interpolate(item, env, [...path, i], missing));
  if (typeof data === 'object' && data !== null) {
    return Object.fromEntries(
      Object.entries(data).map(([key, value]) => [key, interpolate(value, env, [...path, key], missing)]),
    );
  }
  return data;
}

/** A failed union (tolerances, abort conditions): the problems of the variant that got furthest. */
function unionProblems(issue: z.ZodIssue, file: string, locate: Locator): string[] {
  if (issue.code !== 'invalid_union') return [];
  const deepest = issue.unionErrors
    .map((e) => e.issues)
    .sort((a, b) => Math.max(...b.map((i) => i.path.length)) - Math.max(...a.map((i) => i.path.length)))[0];
  const deeper = (deepest ?? []).filter((i) => i.path.length > issue.path.length);
  // A map with an unknown key is not also reported as empty or inconsistent (its refinements saw it stripped).
  const unknownAt = new Set(
    deeper.filter((i) => i.code === 'unrecognized_keys').map((i) => formatPath(i.path)),
  );
  const nested = deeper.filter((i) => !(i.code === 'custom' && unknownAt.has(formatPath(i.path))));
  if (nested.length > 0) {
    return nested.flatMap((i) =>
      i.code === 'invalid_union' ? unionProblems(i, file, locate) : issueMessages(i, file, locate),
    );
  }
  const what = formatPath(issue.path).includes('tolerance')
    ? 'a number, a string, a boolean, [min, max] or a map of status, maxLatency, exitCode, contains, matches, min, max'
    : 'a map { errorRate: { above, window, minRequests } } or { probe: … }';
  return [`${file}:${locate.position(issue.path)}: ${formatPath(issue.path)}: expected ${what}`];
}

/**
 * Loads an experiment from a YAML (or JSON) file.
 * @throws {@link ExperimentFileError} (`unreadable` when the file cannot be read).
 * @example
 * const journal = await runExperiment(await loadExperimentFile('experiments/redis-slow.yaml'));
 */
export async function loadExperimentFile(
  path: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<Experiment> {
  const text = await readSourceFor(path, (problems) => new ExperimentFileError(problems, true));
  return parseExperimentFile(text, path, env);
}
