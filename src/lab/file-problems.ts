/**
 * How Bulwark reads its YAML (or JSON) input files: zod schemas that are strict everywhere, and every
 * problem reported once as `file:line:column: path.to.field: message` (with a did-you-mean for unknown
 * keys). Shared by the lab's scenario files and the monitor's alert configuration.
 */
import { readFile } from 'node:fs/promises';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { z } from 'zod';
import { type Duration, toMs } from '../core/duration.js';

export const KNOWN = 'known keys: ';

/** A strict object whose unknown-key issue carries its known keys (for the did-you-mean). */
export function strict<S extends z.ZodRawShape>(shape: S) {
  const known = Object.keys(shape);
  return z
    .object(shape, {
      errorMap: (issue, ctx) =>
        issue.code === 'unrecognized_keys'
          ? { message: KNOWN + known.join(',') }
          : { message: ctx.defaultError },
    })
    .strict();
}

/** A strict object of which exactly one of `keys` (or at most one, when `optional`) must be present. */
export function oneKey<T extends Record<string, unknown>>(keys: readonly string[], optional = false) {
  return (value: T, ctx: z.RefinementCtx): void => {
    const present = keys.filter((k) => value[k] !== undefined);
    if (present.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [present[1] as string],
        message: `only one of ${keys.join(', ')} may be given (also got ${present[0]})`,
      });
    } else if (present.length === 0 && !optional) {
      ctx.addIssue({ code: 'custom', message: `expected one of ${keys.join(', ')}` });
    }
  };
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

/** A duration (ms or `'250ms'`), converted to ms; `positive` rejects 0. */
export function duration(positive = false) {
  return z.unknown().transform((value, ctx): number => {
    const expected = `a duration such as 250ms, 5s or a number of ms${positive ? ' (> 0)' : ''}`;
    if (value === undefined) {
      ctx.addIssue({ code: 'custom', message: `required: ${expected}` });
      return z.NEVER;
    }
    let ms: number | undefined;
    if (typeof value === 'number' || typeof value === 'string') {
      try {
        ms = toMs(value as Duration);
      } catch {
        ms = undefined;
      }
    }
    if (ms === undefined || (positive && ms <= 0)) {
      ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${describe(value)}` });
      return z.NEVER;
    }
    return ms;
  });
}

export const int = (min: number) =>
  z.number().int(`must be an integer >= ${min}`).min(min, `must be an integer >= ${min}`);

export type PathPart = string | number;

export function formatPath(path: readonly PathPart[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? part : `.${part}`;
  }
  return text === '' ? '(file)' : text;
}

export function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1;
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}

export function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = levenshtein(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

export class Locator {
  constructor(
    private readonly contents: Node | null,
    private readonly lines: LineCounter,
  ) {}

  /** The deepest node on `path` (its key node when `key` is set and the last part names a map key). */
  position(path: readonly PathPart[], key = false): string {
    let node: unknown = this.contents;
    let at: readonly [number, number, number] | undefined = (node as Node | null)?.range ?? undefined;
    for (let i = 0; i < path.length; i++) {
      const part = path[i] as PathPart;
      let next: unknown;
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(part),
        );
        if (pair === undefined) break;
        if (key && i === path.length - 1 && isScalar(pair.key) && pair.key.range) {
          at = pair.key.range;
          break;
        }
        next = pair.value;
        if (next === null && isScalar(pair.key) && pair.key.range) at = pair.key.range;
      } else if (isSeq(node) && typeof part === 'number') {
        next = node.items[part];
      } else break;
      if (next === undefined || next === null) break;
      node = next;
      const range = (next as Node).range;
      if (range) at = range;
    }
    const { line, col } = this.lines.linePos(at?.[0] ?? 0);
    return `${line}:${col}`;
  }
}

export function issueMessages(issue: z.ZodIssue, file: string, locate: Locator): string[] {
  const path = issue.path;
  if (issue.code === 'unrecognized_keys') {
    const known = issue.message.startsWith(KNOWN) ? issue.message.slice(KNOWN.length).split(',') : [];
    return issue.keys.map((key) => {
      const guess = closest(key, known);
      const hint = guess === undefined ? `; known keys: ${known.join(', ')}` : ` (did you mean "${guess}"?)`;
      return `${file}:${locate.position([...path, key], true)}: ${formatPath([...path, key])}: unknown key${hint}`;
    });
  }
  let message: string;
  if (issue.code === 'invalid_type') {
    message =
      issue.received === 'undefined'
        ? `required: expected ${article(issue.expected)}`
        : `expected ${article(issue.expected)}, got ${issue.received === 'array' ? 'a list' : issue.received === 'object' ? 'a map' : issue.received}`;
  } else if (issue.code === 'invalid_enum_value') {
    message = `expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}, got ${JSON.stringify(issue.received)}`;
  } else if (issue.code === 'invalid_union') {
    // Checks: report against the variant the entry is closest to (metric or value).
    return [];
  } else {
    message = issue.message;
  }
  return [`${file}:${locate.position(path)}: ${formatPath(path)}: ${message}`];
}

export function article(type: string): string {
  if (type === 'array') return 'a list';
  if (type === 'object') return 'a map';
  if (type === 'integer' || type === 'undefined') return `an ${type}`;
  return `a ${type}`;
}

/** Sorts `file:line:column: …` messages by line, then column (stable otherwise). */
export function byPosition(problems: string[]): string[] {
  const key = (text: string): [number, number] => {
    const match = /:(\d+):(\d+): /.exec(text);
    return match === null ? [0, 0] : [Number(match[1]), Number(match[2])];
  };
  return problems
    .map((text, i) => ({ text, i, at: key(text) }))
    .sort((a, b) => a.at[0] - b.at[0] || a.at[1] - b.at[1] || a.i - b.i)
    .map(({ text }) => text);
}

/** A YAML text parsed: its plain data and a locator for positions, or the syntax errors found. */
export type ParsedYaml = { ok: true; data: unknown; locate: Locator } | { ok: false; problems: string[] };

/** Parses YAML (or JSON) text; syntax errors come back as `file:line:column: message`, one per error. */
export function parseYaml(text: string, file: string): ParsedYaml {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((error) => {
        const { line, col } = lines.linePos(error.pos[0]);
        const message =
          error.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? 'syntax error';
        return `${file}:${line}:${col}: ${message}`;
      }),
    };
  }
  return { ok: true, data: doc.toJS(), locate: new Locator(doc.contents as Node | null, lines) };
}

/**
 * Parses and validates a YAML text against `schema`: the data, or every problem as
 * `file:line:column: path: message`, sorted by position.
 */
export function validateYaml<S extends z.ZodTypeAny>(
  text: string,
  file: string,
  schema: S,
): { ok: true; data: z.output<S>; locate: Locator } | { ok: false; problems: string[] } {
  const parsed = parseYaml(text, file);
  if (!parsed.ok) return parsed;
  const result = schema.safeParse(parsed.data);
  if (result.success) return { ok: true, data: result.data, locate: parsed.locate };
  // An entry with an unknown key (a misspelt kind) is not also reported as having no known one.
  const unknownAt = new Set(
    result.error.issues.filter((i) => i.code === 'unrecognized_keys').map((i) => formatPath(i.path)),
  );
  const issues = result.error.issues.filter(
    (i) =>
      !(i.code === 'custom' && i.message.startsWith('expected one of') && unknownAt.has(formatPath(i.path))),
  );
  const problems = issues.flatMap((issue) => issueMessages(issue, file, parsed.locate));
  return { ok: false, problems: byPosition([...new Set(problems)]) };
}

/** Reads a text file; a failure is one line, `cannot read FILE: reason`. */
export async function readTextFile(
  path: string,
): Promise<{ ok: true; text: string } | { ok: false; problem: string }> {
  try {
    return { ok: true, text: await readFile(path, 'utf8') };
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const reason =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'EACCES'
            ? 'permission denied'
            : error instanceof Error
              ? error.message
              : String(error);
    return { ok: false, problem: `cannot read ${path}: ${reason}` };
  }
}
