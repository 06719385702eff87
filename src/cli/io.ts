import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** Where a command writes. Tests pass their own. */
export interface CommandIO {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** A mistake in how the command was called: printed as one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Writes a set of files to `dir` as one change: every file goes to a temporary file first, and only when
 * all are written are they renamed over their targets — a failure leaves the previous set untouched.
 */
export async function writeFilesAtomic(
  dir: string,
  files: readonly (readonly [string, string])[],
): Promise<void> {
  const temporaries = files.map(([name]) => join(dir, `.${name}.${process.pid}.tmp`));
  try {
    for (const [i, [, text]] of files.entries()) await writeFile(temporaries[i] as string, text, 'utf8');
    // A rename that cannot succeed (the target is a directory) is found before the first one happens.
    for (const [name] of files) {
      const target = join(dir, name);
      const existing = await stat(target).catch(() => undefined);
      if (existing?.isDirectory()) throw new Error(`${target} is a directory`);
    }
    for (const [i, [name]] of files.entries()) await rename(temporaries[i] as string, join(dir, name));
  } catch (error) {
    await Promise.all(temporaries.map((path) => rm(path, { force: true })));
    throw error;
  }
}

/** Parsed flags: strings, booleans, and string lists for repeatable flags. */
export type Flags = { [key: string]: string | boolean | string[] | undefined };

/**
 * Parses a command's flags strictly (node:util `parseArgs`); a mistake — an unknown flag, a missing value,
 * a positional where none is allowed — is a {@link UsageError} naming the command, without the Node hint.
 */
export function parseFlags(
  command: string,
  argv: readonly string[],
  options: NonNullable<ParseArgsConfig['options']>,
  allowPositionals = true,
): { values: Flags; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options, allowPositionals, strict: true });
    return { values: values as Flags, positionals };
  } catch (error) {
    // Node's message goes on over several lines to explain `--`; the first sentence is the mistake.
    const text = error instanceof Error ? error.message : String(error);
    const ambiguous = /^Option '(--[\w-]+)[^']*' argument is ambiguous/.exec(text);
    const message = ambiguous
      ? `${ambiguous[1]} needs a value; for one that starts with "-", write ${ambiguous[1]}=VALUE`
      : (text.split('\n')[0] ?? text).replace(/\. To specify.*$/s, '');
    throw new UsageError(`${command}: ${message}`);
  }
}
