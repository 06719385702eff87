import { rename, rm, writeFile } from 'node:fs/promises';
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

/** Writes `text` to `dir/name` atomically: a temporary file in `dir`, then a rename over the target. */
export async function writeAtomic(dir: string, name: string, text: string): Promise<void> {
  const temporary = join(dir, `.${name}.${process.pid}.tmp`);
  try {
    await writeFile(temporary, text, 'utf8');
    await rename(temporary, join(dir, name));
  } catch (error) {
    await rm(temporary, { force: true });
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
    // Node's message goes on to explain `--`; the first sentence is the mistake.
    const message = (error instanceof Error ? error.message : String(error)).replace(/\. To specify.*$/s, '');
    throw new UsageError(`${command}: ${message}`);
  }
}
