/**
 * Proxy config files (`bulwark proxy --config FILE`): YAML or JSON declaring proxies and their toxics at
 * start. Toxiproxy's own `-config` format (a JSON array of proxies) is accepted as is. Validated with zod
 * before anything starts; every problem is reported once, as `file:line:column: path: message`.
 */
import { readFile } from 'node:fs/promises';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { z } from 'zod';
import { BulwarkError } from '../../core/errors.js';
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
export class ProxyConfigError extends BulwarkError {
  override readonly name = 'ProxyConfigError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('PROXY_CONFIG', problems.join('\n'), { retryable: false });
    this.problems = problems;
  }
}

const address = z
  .string()
  .refine((value) => parseHostPort(value) !== undefined, 'expected host:port, e.g. 127.0.0.1:6379');

const toxicEntry = z
  .object({
    name: z.string().min(1).optional(),
    type: z.enum(TOXIC_TYPES),
    stream: z.enum(['upstream', 'downstream']).optional(),
    toxicity: z.number().min(0, 'must be in [0, 1]').max(1, 'must be in [0, 1]').optional(),
    toxicity_mode: z.enum(['per_connection', 'per_request']).optional(),
    attributes: z.record(z.string(), z.number()).optional(),
    match: z
      .object({
        host: z.string().min(1).optional(),
        method: z.string().min(1).optional(),
        path: z.string().startsWith('/').optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const proxyEntry = z
  .object({
    name: z.string().min(1, 'must not be empty'),
    listen: address.optional(),
    upstream: address,
    enabled: z.boolean().optional(),
    mode: z.enum(['tcp', 'http']).optional(),
    toxics: z.array(toxicEntry).optional(),
  })
  .strict();

const proxies = z.array(proxyEntry);

const fileSchema = z.union([
  proxies,
  z.object({ seed: z.union([z.number().finite(), z.string().min(1)]).optional(), proxies }).strict(),
]);

/** One proxy of a config file. */
export type ProxyConfigEntry = z.infer<typeof proxyEntry>;

/** A validated config file. */
export interface ProxyConfig {
  /** The seed the file asks for (the CLI's `--seed` wins). */
  seed?: number | string;
  proxies: ProxyConfigEntry[];
}

type PathPart = string | number;

function formatPath(path: readonly PathPart[]): string {
  let text = '';
  for (const part of path) text += typeof part === 'number' ? `[${part}]` : text === '' ? part : `.${part}`;
  return text === '' ? '(file)' : text;
}

/** The line and column of the deepest node of `path` that exists. */
function locate(root: Node | null, lines: LineCounter, path: readonly PathPart[], atKey = false): string {
  let node: unknown = root;
  let at = (root as Node | null)?.range?.[0] ?? 0;
  for (const [i, part] of path.entries()) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(part),
      );
      if (pair === undefined) break;
      if (atKey && i === path.length - 1 && isScalar(pair.key) && pair.key.range) {
        at = pair.key.range[0];
        break;
      }
      next = pair.value ?? pair.key;
      if (isScalar(pair.key) && pair.key.range && (pair.value === null || pair.value === undefined)) {
        at = pair.key.range[0];
      }
    } else if (isSeq(node) && typeof part === 'number') {
      next = node.items[part];
    } else break;
    if (next === undefined || next === null) break;
    node = next;
    const range = (next as Node).range;
    if (range) at = range[0];
  }
  const { line, col } = lines.linePos(at);
  return `${line}:${col}`;
}

function describeIssue(issue: z.ZodIssue): string {
  if (issue.code === 'invalid_type') {
    return issue.received === 'undefined'
      ? `required: expected ${issue.expected}`
      : `expected ${issue.expected}, got ${issue.received}`;
  }
  if (issue.code === 'invalid_enum_value') {
    return `expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}, got ${JSON.stringify(issue.received)}`;
  }
  if (issue.code === 'unrecognized_keys')
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
  return issue.message;
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
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new ProxyConfigError(
      document.errors.map((e) => {
        const { line, col } = lines.linePos(e.pos[0]);
        return `${file}:${line}:${col}: ${e.message.split('\n')[0]}`;
      }),
    );
  }
  const data: unknown = document.toJS();
  const where = (path: readonly PathPart[], atKey = false) =>
    `${file}:${locate(document.contents, lines, path, atKey)}: ${formatPath(path)}`;
  const parsed = fileSchema.safeParse(data);
  const problems: { path: PathPart[]; message: string; atKey?: boolean }[] = parsed.success
    ? []
    : issuesOf(parsed.error, data).flatMap((issue) =>
        issue.code === 'unrecognized_keys'
          ? issue.keys.map((key) => ({ path: [...issue.path, key], message: 'unknown key', atKey: true }))
          : [{ path: issue.path, message: describeIssue(issue) }],
      );
  // Checks the schema cannot make, run on the raw data so that every problem is reported in one go.
  const reported = problems.map((p) => formatPath(p.path));
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
    const messages = problems.map((p) => `${where(p.path, p.atKey)}: ${p.message}`);
    messages.sort(compareLocations);
    throw new ProxyConfigError(messages);
  }
  return Array.isArray(parsed.data)
    ? { proxies: parsed.data }
    : { proxies: parsed.data.proxies, ...(parsed.data.seed === undefined ? {} : { seed: parsed.data.seed }) };
}

/** Orders `file:line:col: …` messages by line, then column. */
function compareLocations(a: string, b: string): number {
  const position = (text: string) => /:(\d+):(\d+): /.exec(text)?.slice(1).map(Number) ?? [0, 0];
  const [la = 0, ca = 0] = position(a);
  const [lb = 0, cb = 0] = position(b);
  return la - lb || ca - cb;
}

/** Reads and validates a config file (YAML or JSON). Throws {@link ProxyConfigError}. */
export async function loadProxyConfig(file: string): Promise<ProxyConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new ProxyConfigError([`cannot read ${file}: ${reason}`]);
  }
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
