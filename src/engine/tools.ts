/**
 * Tools: what a plan's steps call. A tool has a name, a zod schema for its parameters (which may also
 * check targets: an app, a queue), a `run`, and optionally a `compensate` that undoes it, a `describe`
 * for dry runs, an `estimate` of its duration, and whether running it twice is harmless (`idempotent`),
 * which decides what `resume` may do with a step a crash interrupted.
 */
import type { z } from 'zod';
import { type Duration, toMs } from '../core/duration.js';
import type { Runtime } from '../core/runtime.js';
import { closest, formatPath } from '../policy/file-problems.js';
import { invalid } from '../policy/options.js';
import { InvalidParamsError, UnknownToolError } from './errors.js';

/** What a tool's `run` and `compensate` receive besides their parameters. */
export interface ToolContext {
  /** Aborts when the step times out or the run is cancelled; pass it to I/O (`fetch`, `sleep`). */
  readonly signal: AbortSignal;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** The run's runtime: take time (`runtime.clock`) and randomness (`runtime.random`) from it. */
  readonly runtime: Runtime;
  readonly runId: string;
  readonly stepId: string;
  /**
   * Records data `compensate` needs to undo this step (a file's previous content, say). Journaled with the
   * step but not part of its output, so it neither shows in references nor affects consistency checks.
   */
  setUndo(data: unknown): void;
}

/** A tool definition for {@link ToolRegistry.registerTool}. */
export interface ToolDefinition<P = unknown> {
  /** Dotted name, e.g. `fs.write`. */
  name: string;
  /** Validates (and may transform) the parameters; a failure is a non-retryable step failure. */
  params: z.ZodType<P, z.ZodTypeDef, unknown>;
  /** Does the work; what it returns (JSON-serialisable) is the step's output. */
  run(params: P, ctx: ToolContext): unknown;
  /** Undoes a completed run: `output` is what `run` returned, `undo` what it passed to `ctx.setUndo`. */
  compensate?(params: P, output: unknown, ctx: ToolContext & { readonly undo: unknown }): unknown;
  /** One line saying what the step would do, for dry runs. @defaultValue `tool {params}` */
  describe?(params: P): string;
  /** Running it twice has the effect of running it once (a function when it depends on the params). @defaultValue `false` */
  idempotent?: boolean | ((params: P) => boolean);
  /**
   * What the journal keeps of the (validated) params, when some are secret (a token in a header): the
   * journal, `plan show` and consistency hashes see this instead. It must keep what `compensate` needs.
   * @defaultValue the params as resolved
   */
  redact?(params: P): unknown;
  /** Expected duration of one attempt, for dry runs. @defaultValue `0` */
  estimate?(params: P): Duration;
}

/** A registered tool (the definition, erased to `unknown` parameters). */
export type Tool = ToolDefinition<unknown>;

const NAME = /^[a-z][a-zA-Z0-9_-]*(\.[a-zA-Z][a-zA-Z0-9_-]*)*$/;

/** The tools an engine knows, by name. */
export class ToolRegistry {
  private readonly tools = new Map<string, Tool>();

  /**
   * Registers a tool; a second tool of the same name replaces the first.
   * @example
   * registry.registerTool({
   *   name: 'greet',
   *   params: z.object({ who: z.string() }),
   *   run: ({ who }) => ({ text: `hello ${who}` }),
   *   idempotent: true,
   * });
   */
  registerTool<P>(definition: ToolDefinition<P>): this {
    const where = 'registerTool';
    if (typeof definition !== 'object' || definition === null)
      throw invalid(where, 'definition', definition, 'an object');
    const { name, params, run, compensate, describe, idempotent, estimate } = definition;
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw invalid(where, 'name', name, 'a dotted name of letters and digits such as "fs.write"');
    }
    if (typeof params !== 'object' || params === null || typeof params.safeParse !== 'function') {
      throw invalid(where, 'params', params, 'a zod schema');
    }
    if (typeof run !== 'function') throw invalid(where, 'run', run, 'a function');
    for (const [option, value] of [
      ['compensate', compensate],
      ['describe', describe],
      ['estimate', estimate],
      ['redact', definition.redact],
    ] as const) {
      if (value !== undefined && typeof value !== 'function')
        throw invalid(where, option, value, 'a function');
    }
    if (idempotent !== undefined && typeof idempotent !== 'boolean' && typeof idempotent !== 'function') {
      throw invalid(where, 'idempotent', idempotent, 'a boolean or a function of the params');
    }
    this.tools.set(name, definition as unknown as Tool);
    return this;
  }

  /** The tool, or an {@link UnknownToolError} naming the closest known one. */
  resolve(name: string): Tool | UnknownToolError {
    return this.tools.get(name) ?? new UnknownToolError(name, closest(name, [...this.tools.keys()]));
  }

  has(name: string): boolean {
    return this.tools.has(name);
  }

  /** Registered names, sorted. */
  names(): string[] {
    return [...this.tools.keys()].sort();
  }
}

/** Validates `params` with the tool's schema; returns the parsed params or an {@link InvalidParamsError}. */
export function checkParams(
  tool: Tool,
  params: unknown,
): { ok: true; value: unknown } | { ok: false; error: InvalidParamsError } {
  const result = tool.params.safeParse(params);
  if (result.success) return { ok: true, value: result.data };
  const problems = result.error.issues.map((issue) => {
    const path = formatPath(['params', ...issue.path]);
    if (issue.code === 'unrecognized_keys')
      return `${path}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
    return `${path}: ${issue.message}`;
  });
  return { ok: false, error: new InvalidParamsError(tool.name, problems) };
}

/** Whether running the tool again with these params is harmless. */
export function isIdempotent(tool: Tool, params: unknown): boolean {
  const flag = tool.idempotent;
  return typeof flag === 'function' ? flag(params) : flag === true;
}

/** What a dry run says the step would do. */
export function describeCall(tool: Tool, params: unknown): string {
  return tool.describe?.(params) ?? `${tool.name} ${JSON.stringify(params)}`;
}

/** The tool's estimate of one attempt, in ms (0 when it gives none). */
export function estimateMs(tool: Tool, params: unknown): number {
  const estimate = tool.estimate?.(params);
  return estimate === undefined ? 0 : toMs(estimate, `${tool.name}.estimate`);
}
