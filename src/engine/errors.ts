/**
 * The errors the engine throws. A step's own failures (unknown tool, bad parameters, an unresolved
 * reference, a path outside the root) are not retryable: no retry can fix them.
 */
import { BulwarkError, FileProblemsError } from '../core/errors.js';

/** A plan that cannot be read, parsed or validated; `problems` holds one message per problem. */
export class PlanError extends FileProblemsError {
  override readonly name = 'PlanError';
  constructor(problems: readonly string[], unreadable = false) {
    super('PLAN_INVALID', problems, unreadable);
  }
}

/** A step named a tool that is not registered. */
export class UnknownToolError extends BulwarkError {
  override readonly name = 'UnknownToolError';
  constructor(
    readonly tool: string,
    readonly suggestion: string | undefined,
    /** Prefixed to the message, e.g. `compensate: `. */
    prefix = '',
  ) {
    super(
      'UNKNOWN_TOOL',
      `${prefix}unknown tool "${tool}"${suggestion === undefined ? '' : ` — did you mean "${suggestion}"?`}`,
      { retryable: false },
    );
  }
}

/** A tool was asked to act on something it does not know (an app, a button, a queue). */
export class UnknownTargetError extends BulwarkError {
  override readonly name = 'UnknownTargetError';
  constructor(
    /** What sort of target: `app`, `button`, `queue`, … */
    readonly kind: string,
    readonly target: string,
    readonly suggestion: string | undefined,
    /** Where it was looked for, e.g. the app a button belongs to. */
    readonly within?: string,
  ) {
    super(
      'UNKNOWN_TARGET',
      `unknown ${kind} "${target}"${within === undefined ? '' : ` in ${within}`}${suggestion === undefined ? '' : ` — did you mean "${suggestion}"?`}`,
      { retryable: false },
    );
  }
}

/** A step's parameters do not match its tool's schema; `problems` are `params.path: message` lines. */
export class InvalidParamsError extends BulwarkError {
  override readonly name = 'InvalidParamsError';
  constructor(
    readonly tool: string,
    readonly problems: readonly string[],
  ) {
    super('INVALID_PARAMS', `${tool}: ${problems.join('; ')}`, { retryable: false });
  }
}

/** A `${steps.X.output…}` reference that has no value when the step runs. */
export class UnresolvedReferenceError extends BulwarkError {
  override readonly name = 'UnresolvedReferenceError';
  constructor(
    readonly reference: string,
    reason: string,
  ) {
    super('UNRESOLVED_REFERENCE', `cannot resolve \${${reference}}: ${reason}`, { retryable: false });
  }
}

/** A file-system tool was given a path outside its root. */
export class PathEscapeError extends BulwarkError {
  override readonly name = 'PathEscapeError';
  constructor(
    readonly path: string,
    readonly root: string,
  ) {
    super('PATH_ESCAPE', `path "${path}" is outside the root ${root}`, { retryable: false });
  }
}

/** `http.request` got a status it was not told to accept; 5xx and 429 are retryable, other 4xx are not. */
export class HttpStatusError extends BulwarkError {
  override readonly name = 'HttpStatusError';
  constructor(
    readonly status: number,
    readonly url: string,
  ) {
    super('HTTP_STATUS', `HTTP ${status} from ${url}`, { retryable: status >= 500 || status === 429 });
  }
}

/** No run with this id is in the journal. */
export class RunNotFoundError extends BulwarkError {
  override readonly name = 'RunNotFoundError';
  constructor(readonly runId: string) {
    super('RUN_NOT_FOUND', `no run "${runId}" in the journal`, { retryable: false });
  }
}

/** `resume` will not continue this run (finished, a dry run, or an interrupted step it cannot redo safely). */
export class ResumeRefusedError extends BulwarkError {
  override readonly name = 'ResumeRefusedError';
  constructor(
    readonly runId: string,
    reason: string,
  ) {
    super('RESUME_REFUSED', `cannot resume run ${runId}: ${reason}`, { retryable: false });
  }
}
