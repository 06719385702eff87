/**
 * Labels identify an alert (Alertmanager's model): the same label set is the same alert. Matchers select
 * alerts by label, in Alertmanager's syntax: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`
 * (regexes are anchored, as in Alertmanager).
 */
import { createHash } from 'node:crypto';

/** An alert's identity (and its annotations): label name → value. */
export type Labels = Readonly<Record<string, string>>;

export type MatchOperator = '=' | '!=' | '=~' | '!~';

/** One label matcher. */
export interface Matcher {
  readonly name: string;
  readonly op: MatchOperator;
  readonly value: string;
}

interface CompiledMatcher extends Matcher {
  readonly regex: RegExp | undefined;
}

const MATCHER = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"]*))\s*$/;

/**
 * Parses one matcher such as `severity="page"` or `service=~"api|web"`.
 * @throws TypeError naming the text when it is not a matcher or its regex does not compile.
 * @example
 * parseMatcher('severity=~"page|ticket"') // { name: 'severity', op: '=~', value: 'page|ticket' }
 */
export function parseMatcher(text: string): Matcher {
  const match = MATCHER.exec(text);
  if (match === null) {
    throw new TypeError(
      `invalid matcher ${JSON.stringify(text)}; expected name="value", name!="value", name=~"regex" or name!~"regex"`,
    );
  }
  const value = match[3] !== undefined ? match[3].replace(/\\(.)/g, '$1') : (match[4] ?? '');
  const matcher: Matcher = { name: match[1] as string, op: match[2] as MatchOperator, value };
  compileMatcher(matcher);
  return matcher;
}

function compileMatcher(matcher: Matcher): CompiledMatcher {
  if (matcher.op === '=~' || matcher.op === '!~') {
    try {
      return { ...matcher, regex: new RegExp(`^(?:${matcher.value})$`) };
    } catch (error) {
      throw new TypeError(
        `invalid regex in matcher ${matcher.name}${matcher.op}"${matcher.value}": ${(error as Error).message}`,
      );
    }
  }
  return { ...matcher, regex: undefined };
}

/** A set of matchers, all of which must hold; compiled once. */
export class Matchers {
  private readonly compiled: readonly CompiledMatcher[];
  constructor(readonly list: readonly Matcher[]) {
    this.compiled = list.map(compileMatcher);
  }

  static parse(texts: readonly string[]): Matchers {
    return new Matchers(texts.map(parseMatcher));
  }

  /** True when every matcher holds for `labels` (a missing label has the empty value, as in Alertmanager). */
  matches(labels: Labels): boolean {
    for (const m of this.compiled) {
      const value = labels[m.name] ?? '';
      let ok: boolean;
      if (m.op === '=') ok = value === m.value;
      else if (m.op === '!=') ok = value !== m.value;
      else if (m.op === '=~') ok = (m.regex as RegExp).test(value);
      else ok = !(m.regex as RegExp).test(value);
      if (!ok) return false;
    }
    return true;
  }

  toString(): string {
    return this.list.map((m) => `${m.name}${m.op}${JSON.stringify(m.value)}`).join(',');
  }
}

/** A stable hash of a label set (order of keys does not matter). */
export function fingerprint(labels: Labels): string {
  const hash = createHash('sha256');
  for (const key of Object.keys(labels).sort()) {
    hash.update(key);
    hash.update('\u0000');
    hash.update(labels[key] as string);
    hash.update('\u0001');
  }
  return hash.digest('hex').slice(0, 16);
}

/** The labels sorted by name, as `{a="1", b="2"}`. */
export function formatLabels(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return `{${keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(', ')}}`;
}

/** The subset of `labels` named in `names` (only those present). */
export function pickLabels(labels: Labels, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = labels[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
