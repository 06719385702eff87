/**
 * Problems in input files (YAML or JSON), reported the way every Bulwark file loader reports them: one
 * line per problem, `file:line:column: path.to.field: message`, sorted by position. Internal: shared by
 * the lab's scenario files and the engine's plan files.
 */
import { readFile } from 'node:fs/promises';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { KNOWN } from './spec.js';

export type PathPart = string | number;

export function formatPath(path: readonly PathPart[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? part : `.${part}`;
  }
  return text === '' ? '(file)' : text;
}

function levenshtein(a: string, b: string): number {
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

/** A parsed YAML/JSON document, and where each of its nodes is. */
export interface SourceDocument {
  readonly data: unknown;
  readonly locate: Locator;
}

/**
 * Parses `text` as YAML (JSON is YAML). Returns the data and its locator, or the syntax errors as
 * `file:line:column: message` lines.
 */
export function parseSource(text: string, file: string): SourceDocument | { problems: string[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((error) => {
        const { line, col } = lines.linePos(error.pos[0]);
        const message =
          error.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? 'syntax error';
        return `${file}:${line}:${col}: ${message}`;
      }),
    };
  }
  return { data: doc.toJS() as unknown, locate: new Locator(doc.contents as Node | null, lines) };
}

/** Why `path` could not be read, as one line: `cannot read FILE: no such file` (or the system's reason). */
export function cannotRead(path: string, error: unknown): string {
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
  return `cannot read ${path}: ${reason}`;
}

/** Reads a text file; a failure is one line, `cannot read FILE: reason`, thrown as {@link UnreadableFile}. */
export async function readSource(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new UnreadableFile(cannotRead(path, error));
  }
}

/**
 * Reads a file for a loader: a file that cannot be read becomes the loader's own error, built by `fail`
 * from the one-line reason (`cannot read FILE: no such file`).
 */
export async function readSourceFor(path: string, fail: (problems: string[]) => Error): Promise<string> {
  try {
    return await readSource(path);
  } catch (error) {
    if (error instanceof UnreadableFile) throw fail([error.message]);
    throw error;
  }
}

/** A file that could not be read at all (missing, a directory, no permission). */
export class UnreadableFile extends Error {
  override readonly name = 'UnreadableFile';
}

/**
 * Parses `text` and validates it against `schema`: the data (zod's output) and its locator, or every
 * problem as `file:line:column: path: message`, sorted by position.
 */
export function validateSource<S extends z.ZodTypeAny>(
  text: string,
  file: string,
  schema: S,
): { data: z.output<S>; locate: Locator } | { problems: string[] } {
  const source = parseSource(text, file);
  if ('problems' in source) return source;
  const result = schema.safeParse(source.data);
  if (result.success) return { data: result.data as z.output<S>, locate: source.locate };
  // An entry with an unknown key (a misspelt kind) is not also reported as having no known one.
  const unknownAt = new Set(
    result.error.issues.filter((i) => i.code === 'unrecognized_keys').map((i) => formatPath(i.path)),
  );
  const issues = result.error.issues.filter(
    (i) =>
      !(i.code === 'custom' && i.message.startsWith('expected one of') && unknownAt.has(formatPath(i.path))),
  );
  return {
    problems: byPosition([...new Set(issues.flatMap((issue) => issueMessages(issue, file, source.locate)))]),
  };
}
