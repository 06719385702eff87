/**
 * Proxy config files (`bulwark proxy --config FILE`): YAML or JSON declaring proxies and their toxics at
 * start. Toxiproxy's own `-config` format (a JSON array of proxies) is accepted as is. Validated with zod
 * before anything starts; every problem is reported once, as `file:line:column: path: message`.
 */
import { z } from 'zod';
import { FileProblemsError } from '../../core/errors.js';
import {
  byPosition,
  formatPath,
  issueMessages,
  type PathPart,
  parseSource,
  readSourceFor,
} from '../../policy/file-problems.js';
import { strict } from '../../policy/spec.js';
import { parseHostPort } from './proxy.js';
import type { ProxyServer } from './server.js';
import {
  HTTP_TOXIC_TYPES,
  parseToxic,
  TCP_TOXIC_TYPES,
  TOXIC_TYPES,
  ToxicDefinitionError,
} from './toxics.js';

/** A config file that cannot be read, parsed or validated; `problems` holds one line per problem. */
export class ProxyConfigError extends FileProblemsError {
  override readonly name = 'ProxyConfigError';
  constructor(problems: readonly string[]) {
    super('PROXY_CONFIG', problems);
  }
}

const address = z
  .string()
  .refine((value) => parseHostPort(value) !== undefined, 'expected host:port, e.g. 127.0.0.1:6379');

const toxicEntry = strict({
  name: z.string().min(1).optional(),
  type: z.enum(TOXIC_TYPES),
  stream: z.enum(['upstream', 'downstream']).optional(),
  toxicity: z.number().min(0, 'must be in [0, 1]').max(1, 'must be in [0, 1]').optional(),
  toxicity_mode: z.enum(['per_connection', 'per_request']).optional(),
  attributes: z.record(z.string(), z.number()).optional(),
  match: strict({
    host: z.string().min(1).optional(),
    method: z.string().min(1).optional(),
    path: z.string().startsWith('/').optional(),
  }).optional(),
});

const proxyEntry = strict({
  name: z.string().min(1, 'must not be empty'),
  listen: address.optional(),
  upstream: address,
  enabled: z.boolean().optional(),
  mode: z.enum(['tcp', 'http']).optional(),
  toxics: z.array(toxicEntry).optional(),
});

const proxies = z.array(proxyEntry);

const fileSchema = z.union([
  proxies,
  strict({ seed: z.union([z.number().finite(), z.string().min(1)]).optional(), proxies }),
]);

/** One proxy of a config file. */
export type ProxyConfigEntry = z.infer<typeof proxyEntry>;

/** A validated config file. */
export interface ProxyConfig {
  /** The seed the file asks for (the CLI's `--seed` wins). */
  seed?: number | string;
  proxies: ProxyConfigEntry[];
}

/** Flattens zod issues; a failed top-level union is reported against the variant the file looks like. */
function issuesOf(error: z.ZodError, data: unknown): z.ZodIssue[] {
  return error.issues.flatMap((issue) => {
    if (issue.code !== 'invalid_union') return [issue];
    const variant = Array.isArray(data) ? 0 : 1;
    if (typeof data !== 'object' || data === null) {
      return [{ ...issue, message: 'expected a list of proxies, or a map with "proxies" (and "seed")' }];
    }
    return issue.unionErrors[variant]?.issues ?? [issue];
  });
}

/**
 * Parses and validates a config file's text. Throws {@link ProxyConfigError} listing every problem.
 * @example
 * const config = parseProxyConfig(text, 'proxies.yaml');
 */
export function parseProxyConfig(text: string, file: string): ProxyConfig {
  const source = parseSource(text, file);
  if ('problems' in source) throw new ProxyConfigError(source.problems);
  const { data, locate } = source;
  const parsed = fileSchema.safeParse(data);
  const schemaProblems = parsed.success
    ? []
    : issuesOf(parsed.error, data).flatMap((issue) => issueMessages(issue, file, locate));
  const problems: { path: PathPart[]; message: string }[] = [];
  const reported = parsed.success ? [] : issuesOf(parsed.error, data).map((issue) => formatPath(issue.path));
  // Checks the schema cannot make, run on the raw data so that every problem is reported in one go.
  const list: unknown = Array.isArray(data) ? data : (data as { proxies?: unknown } | null)?.proxies;
  const base: PathPart[] = Array.isArray(data) ? [] : ['proxies'];
  if (Array.isArray(list)) {
    const proxyNames = new Set<unknown>();
    list.forEach((proxy: unknown, i) => {
      if (typeof proxy !== 'object' || proxy === null) return;
      const { name, toxics, mode } = proxy as { name?: unknown; toxics?: unknown; mode?: unknown };
      const allowed: readonly string[] = mode === 'http' ? HTTP_TOXIC_TYPES : TCP_TOXIC_TYPES;
      if (typeof name === 'string' && proxyNames.has(name)) {
        problems.push({ path: [...base, i, 'name'], message: `duplicate proxy name "${name}"` });
      }
      proxyNames.add(name);
      if (!Array.isArray(toxics)) return;
      const toxicNames = new Set<string>();
      toxics.forEach((toxic: unknown, j) => {
        const path = [...base, i, 'toxics', j];
        const prefix = formatPath(path);
        if (reported.some((r) => r === prefix || r.startsWith(`${prefix}.`))) return;
        try {
          const spec = parseToxic(toxic);
          if (!allowed.includes(spec.type)) {
            problems.push({
              path: [...path, 'type'],
              message: `"${spec.type}" is not a toxic of ${mode === 'http' ? 'HTTP' : 'TCP'} proxies; they take ${allowed.join(', ')}`,
            });
          }
          if (spec.match !== undefined && mode !== 'http') {
            problems.push({
              path: [...path, 'match'],
              message: 'match applies to HTTP-mode proxies only (mode: http)',
            });
          }
          if (toxicNames.has(spec.name)) {
            problems.push({
              path: [...path, 'name'],
              message: `duplicate toxic name "${spec.name}" (give each toxic of a proxy its own name)`,
            });
          }
          toxicNames.add(spec.name);
        } catch (error) {
          if (!(error instanceof ToxicDefinitionError)) throw error;
          const field = /^(attributes\.\w+)/.exec(error.message)?.[1]?.split('.') ?? [];
          problems.push({ path: [...path, ...field], message: error.message });
        }
      });
    });
  }
  if (problems.length > 0 || !parsed.success) {
    const messages = problems.map(
      (p) => `${file}:${locate.position(p.path)}: ${formatPath(p.path)}: ${p.message}`,
    );
    throw new ProxyConfigError(byPosition([...schemaProblems, ...messages]));
  }
  return Array.isArray(parsed.data)
    ? { proxies: parsed.data }
    : { proxies: parsed.data.proxies, ...(parsed.data.seed === undefined ? {} : { seed: parsed.data.seed }) };
}

/** Reads and validates a config file (YAML or JSON). Throws {@link ProxyConfigError}. */
export async function loadProxyConfig(file: string): Promise<ProxyConfig> {
  const text = await readSourceFor(file, (problems) => new ProxyConfigError(problems));
  return parseProxyConfig(text, file);
}

/**
 * Creates the config's proxies and toxics on `server`. On failure (a port in use, …) the proxies created
 * so far are removed again, so nothing is left half-applied.
 */
export async function applyProxyConfig(server: ProxyServer, config: ProxyConfig): Promise<void> {
  const created: string[] = [];
  try {
    for (const entry of config.proxies) {
      await server.createProxy({
        name: entry.name,
        upstream: entry.upstream,
        ...(entry.listen === undefined ? {} : { listen: entry.listen }),
        ...(entry.enabled === undefined ? {} : { enabled: entry.enabled }),
        ...(entry.mode === undefined ? {} : { mode: entry.mode }),
      });
      created.push(entry.name);
      for (const toxic of entry.toxics ?? []) server.addToxic(entry.name, toxic);
    }
  } catch (error) {
    for (const name of created) await server.deleteProxy(name);
    throw error;
  }
}
