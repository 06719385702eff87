/** Where a command writes. Tests pass their own. */
export interface CommandIO {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** A mistake in how the command was called: printed as one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
