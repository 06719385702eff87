import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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
