/**
 * The engine: runs a plan's steps (a DAG, up to `concurrency` at once), each under its policies, recording
 * every start, output and end in the journal before going on. On a step's final failure, or when the
 * caller cancels, it stops starting steps, lets the running ones abort, and rolls back: the compensations
 * of the completed steps run in reverse completion order, each under its own retry. `resume` continues a
 * run whose process died; `run(plan, { dryRun: true })` simulates one; `repeat` checks runs agree.
 */
import { CancelledError, nonRetryable } from '../core/errors.js';
import type { BulwarkEventMap, BulwarkEventType, EventSink } from '../core/events.js';
import { Random, type Seed } from '../core/random.js';
import { type Runtime, systemRuntime } from '../core/runtime.js';
import type { CircuitBreaker } from '../policy/circuit-breaker.js';
import { circuitBreaker } from '../policy/circuit-breaker.js';
import { intOption, invalid, knownKeys } from '../policy/options.js';
import { pipeline } from '../policy/pipeline.js';
import type { Policy } from '../policy/policy.js';
import { retry } from '../policy/retry.js';
import { defined, retryOptions } from '../policy/spec.js';
import { timeout } from '../policy/timeout.js';
import { builtinTools, type QueueLike } from './builtins.js';
import { ResumeRefusedError, RunNotFoundError, UnknownToolError } from './errors.js';
import type { RunStatus } from './events.js';
import { type ErrorInfo, type Journal, type JournalEvent, SqliteJournal } from './journal.js';
import {
  definePlan,
  type Plan,
  type PlanDefinition,
  type PlanStep,
  type RetrySpec,
  resolveReferences,
  type TimeoutSpec,
} from './plan.js';
import { compareRuns, type Divergence, errorInfo, foldRun, hashValue, type RunRecord } from './record.js';
import {
  checkParams,
  describeCall,
  estimateMs,
  isIdempotent,
  type Tool,
  type ToolContext,
  type ToolDefinition,
  ToolRegistry,
} from './tools.js';

/** Options of {@link Engine}. */
export interface EngineOptions {
  /** Clock, randomness and event sink. @defaultValue `systemRuntime()` */
  runtime?: Runtime;
  /**
   * Where runs are recorded. `new MemoryJournal()` keeps them in memory (tests, the lab).
   * @defaultValue a {@link SqliteJournal} at `.bulwark/journal.db` (relative to the working directory), opened on first use
   */
  journal?: Journal;
  /** Tools to register besides the built-ins (a tool of a built-in's name replaces it). @defaultValue `[]` */
  tools?: readonly ToolDefinition<never>[];
  /** Register the built-in tools. @defaultValue `true` */
  builtins?: boolean;
  /** The directory `fs.write`, `fs.read` and `fs.remove` are confined to. @defaultValue `process.cwd()` */
  root?: string;
  /** The queues `queue.add` may add to, by name (anything with a Bulwark queue's `add`). @defaultValue `{}` */
  queues?: Readonly<Record<string, QueueLike>>;
  /** Where the `log` tool writes a line. @defaultValue standard output */
  log?: (line: string) => void;
  /** The `fetch` of `http.request`. @defaultValue `globalThis.fetch` */
  fetch?: typeof fetch;
  /** Where `${env.NAME}` references are looked up. @defaultValue `process.env` */
  env?: Readonly<Record<string, string | undefined>>;
  /** The retry of a compensation that gives none. @defaultValue `{ maxAttempts: 3 }` (exponential backoff from 100 ms) */
  compensationRetry?: RetrySpec;
}

/** Options of {@link Engine.run}. */
export interface RunOptions {
  /** Cancels the run: running steps abort, then the completed ones are rolled back. */
  signal?: AbortSignal;
  /** Simulate: validate and describe every step, run nothing. @defaultValue `false` */
  dryRun?: boolean;
  /** The run's id (must be new to the journal). @defaultValue 16 hex digits from the runtime's random */
  runId?: string;
}

/** Options of {@link Engine.resume}. */
export interface ResumeOptions {
  signal?: AbortSignal;
  /**
   * Re-run interrupted steps whose tool is not idempotent and has no compensation, as if they had not
   * run (you checked by hand that they did nothing). @defaultValue `false`
   */
  force?: boolean;
}

/** What a rollback did. */
export interface RollbackReport {
  /** Why it rolled back: the failed step, or the cancellation. */
  reason: string;
  /** Steps whose compensation succeeded, in the order they ran (reverse completion order). */
  compensated: string[];
  /** Steps whose compensation failed, with the error; the rollback went on past them. */
  failed: { step: string; error: unknown }[];
  /** Completed steps with nothing to compensate (no compensation in the plan or the tool). */
  uncompensated: string[];
}

/** How a run ended. */
export interface RunResult {
  runId: string;
  status: RunStatus;
  /** The error that failed the run (the failed step's own error), or the `CancelledError`. */
  error: unknown;
  /** Outputs of the steps that succeeded, by step id. */
  outputs: Readonly<Record<string, unknown>>;
  /** Set when the run rolled back. */
  rollback: RollbackReport | undefined;
  /** The run as the journal has it. */
  record: RunRecord;
}

/** Options of {@link Engine.repeat}. */
export interface RepeatOptions {
  /** Runs to make (at least 2 to compare anything). */
  times: number;
  /** Simulate instead of running. @defaultValue `false` */
  dryRun?: boolean;
  /** Every repetition gets a runtime with this seed (same clock and event sink). @defaultValue the engine runtime's seed */
  seed?: Seed;
  signal?: AbortSignal;
}

/** The result of {@link Engine.repeat}. */
export interface ConsistencyReport {
  /** True when every run's journal matched the first's, step by step. */
  identical: boolean;
  runs: RunResult[];
  /** The first difference: which repetition (1-based, compared with repetition 1), and where. */
  divergence: (Divergence & { run: number }) | undefined;
}

/** Where the default journal lives, relative to the working directory. */
export const DEFAULT_JOURNAL_PATH = '.bulwark/journal.db';

const CANCELLED_REASON = 'the run was cancelled';
const DEFAULT_COMPENSATION_RETRY: RetrySpec = { maxAttempts: 3, backoff: { exponential: { initial: 100 } } };
const OPTION_KEYS = [
  'journal',
  'tools',
  'builtins',
  'root',
  'queues',
  'log',
  'fetch',
  'env',
  'compensationRetry',
] as const;

type Emit = <K extends BulwarkEventType>(type: K, payload: BulwarkEventMap[K]) => void;

/**
 * Runs plans of tool calls.
 * @example
 * const engine = new Engine({ journal: new SqliteJournal('.bulwark/journal.db'), root: './work' });
 * const result = await engine.run(await loadPlanFile('deploy.yaml'));
 * if (result.status !== 'succeeded') console.error(result.error, result.rollback);
 */
export class Engine {
  readonly runtime: Runtime;
  readonly tools: ToolRegistry;
  private readonly options: EngineOptions;
  private readonly compensationRetry: RetrySpec;
  private journalStore: Journal | undefined;
  /** Breakers outlive a run: keyed by plan and step, they see the failures of every run of the plan. */
  private readonly breakers = new Map<string, CircuitBreaker>();

  constructor(options: EngineOptions = {}) {
    knownKeys('Engine', options, OPTION_KEYS);
    this.options = options;
    this.runtime = options.runtime ?? systemRuntime();
    this.journalStore = options.journal;
    if (options.root !== undefined && (typeof options.root !== 'string' || options.root === '')) {
      throw invalid('Engine', 'root', options.root, 'a directory path');
    }
    if (options.queues !== undefined && (typeof options.queues !== 'object' || options.queues === null)) {
      throw invalid('Engine', 'queues', options.queues, 'an object of queues by name');
    }
    for (const [name, queue] of Object.entries(options.queues ?? {})) {
      if (typeof (queue as Partial<QueueLike> | undefined)?.add !== 'function') {
        throw invalid('Engine', `queues.${name}`, queue, 'a queue (an object with add(payload, opts))');
      }
    }
    if (options.env !== undefined && (typeof options.env !== 'object' || options.env === null)) {
      throw invalid('Engine', 'env', options.env, 'an object of environment variables');
    }
    for (const option of ['log', 'fetch'] as const) {
      const value = options[option];
      if (value !== undefined && typeof value !== 'function')
        throw invalid('Engine', option, value, 'a function');
    }
    this.compensationRetry = options.compensationRetry ?? DEFAULT_COMPENSATION_RETRY;
    // Validated like a plan's retry: a typo fails here, not during a rollback.
    retry({ ...retryOptions(this.compensationRetry), runtime: this.runtime, name: 'check' });
    this.tools = new ToolRegistry();
    if (options.builtins ?? true) {
      for (const tool of builtinTools({
        root: options.root ?? process.cwd(),
        queues: options.queues ?? {},
        log: options.log ?? ((line) => process.stdout.write(`${line}\n`)),
        fetch: options.fetch ?? globalThis.fetch,
      })) {
        this.tools.registerTool(tool);
      }
    }
    if (options.tools !== undefined && !Array.isArray(options.tools)) {
      throw invalid('Engine', 'tools', options.tools, 'an array of tool definitions');
    }
    for (const tool of options.tools ?? []) this.tools.registerTool(tool);
  }

  /**
   * Registers a tool (see {@link ToolRegistry.registerTool}).
   * @example
   * engine.registerTool({ name: 'greet', params: z.object({ who: z.string() }), run: ({ who }) => `hi ${who}` });
   */
  registerTool<P>(definition: ToolDefinition<P>): this {
    this.tools.registerTool(definition);
    return this;
  }

  /**
   * Runs a plan (or simulates it with `dryRun`). Never throws for a step's failure: the result says how
   * the run ended. Throws only for a plan that does not validate ({@link PlanError}) or a journal error.
   * @example
   * const result = await engine.run(plan, { signal: AbortSignal.timeout(60_000) });
   */
  async run(plan: Plan | PlanDefinition, options: RunOptions = {}): Promise<RunResult> {
    knownKeys('Engine.run', options, ['signal', 'dryRun', 'runId']);
    const validated = definePlan(plan);
    const runId = options.runId ?? this.newRunId();
    if (typeof runId !== 'string' || runId === '')
      throw invalid('Engine.run', 'runId', runId, 'a non-empty string');
    const execution = new Execution(this, validated, runId);
    if (options.dryRun === true) return execution.simulate();
    return execution.start(options.signal);
  }

  /** Simulates a plan: `run(plan, { dryRun: true })`. No tool runs; nothing outside the journal changes. */
  dryRun(plan: Plan | PlanDefinition, options: Omit<RunOptions, 'dryRun'> = {}): Promise<RunResult> {
    return this.run(plan, { ...options, dryRun: true });
  }

  /**
   * Continues a run whose process died, from its journal. Completed steps are skipped and their recorded
   * outputs reused. A step that was running when the process died is re-run if its tool is idempotent;
   * otherwise its compensation runs first (to undo whatever it did), and with no compensation `resume`
   * refuses ({@link ResumeRefusedError}) unless `force` is set. A run that died while rolling back
   * finishes its rollback.
   * @example
   * const result = await engine.resume('3f9c0a17b2d4e851');
   */
  async resume(runId: string, options: ResumeOptions = {}): Promise<RunResult> {
    knownKeys('Engine.resume', options, ['signal', 'force']);
    const events = this.journal.events(runId);
    if (events === undefined) throw new RunNotFoundError(runId);
    const record = foldRun(runId, events);
    if (record.dryRun) throw new ResumeRefusedError(runId, 'it is a dry run (nothing ran)');
    if (record.status !== 'running')
      throw new ResumeRefusedError(runId, `it already ended (${record.status})`);
    const plan = definePlan(record.plan);
    const execution = new Execution(this, plan, runId);
    return execution.resume(record, options);
  }

  /** The run as the journal has it. @throws {@link RunNotFoundError} */
  show(runId: string): RunRecord {
    const events = this.journal.events(runId);
    if (events === undefined) throw new RunNotFoundError(runId);
    return foldRun(runId, events);
  }

  /**
   * Runs the plan `times` times (each on a runtime seeded alike) and compares the journals step by step:
   * tool, resolved-params hash, status, output hash and compensation outcome.
   * @example
   * const report = await engine.repeat(plan, { times: 3, dryRun: true });
   * report.identical; // true, or see report.divergence
   */
  async repeat(plan: Plan | PlanDefinition, options: RepeatOptions): Promise<ConsistencyReport> {
    knownKeys('Engine.repeat', options, ['times', 'dryRun', 'seed', 'signal']);
    const times = intOption('Engine.repeat', 'times', options.times, 2, 1, 10_000);
    const validated = definePlan(plan);
    const seed = options.seed ?? this.runtime.random.seed;
    const base = this.newRunId();
    const runs: RunResult[] = [];
    let divergence: ConsistencyReport['divergence'];
    for (let i = 0; i < times && options.signal?.aborted !== true; i++) {
      const runtime: Runtime = {
        clock: this.runtime.clock,
        random: new Random(seed),
        events: this.runtime.events,
      };
      const engine = this.withRuntime(runtime);
      const result = await engine.run(validated, {
        runId: `${base}-${i + 1}`,
        ...(options.dryRun === undefined ? {} : { dryRun: options.dryRun }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      runs.push(result);
      const first = runs[0] as RunResult;
      if (divergence === undefined && i > 0) {
        const found = compareRuns(first.record, result.record);
        if (found !== undefined) divergence = { ...found, run: i + 1 };
      }
    }
    return { identical: divergence === undefined, runs, divergence };
  }

  /** Where runs are recorded (the default SQLite journal is opened here, on first use). */
  get journal(): Journal {
    this.journalStore ??= new SqliteJournal(DEFAULT_JOURNAL_PATH);
    return this.journalStore;
  }

  /** Closes the journal (also one passed in `journal`). */
  close(): void {
    this.journalStore?.close();
  }

  /** @internal */
  breakerFor(plan: Plan, step: PlanStep, runtime: Runtime): CircuitBreaker | undefined {
    if (step.circuitBreaker === undefined) return undefined;
    const key = `${plan.name}\u0000${step.id}`;
    let breaker = this.breakers.get(key);
    if (breaker === undefined) {
      breaker = circuitBreaker({ ...defined(step.circuitBreaker), name: `${plan.name}.${step.id}`, runtime });
      this.breakers.set(key, breaker);
    }
    return breaker;
  }

  /** @internal Where `${env.NAME}` references are looked up. */
  get env(): Readonly<Record<string, string | undefined>> {
    return this.options.env ?? process.env;
  }

  /** @internal */
  get defaultCompensationRetry(): RetrySpec {
    return this.compensationRetry;
  }

  /** An engine sharing this one's tools and journal but running on `runtime` (fresh breakers). */
  private withRuntime(runtime: Runtime): Engine {
    const engine = new Engine({
      ...this.options,
      runtime,
      journal: this.journal,
      builtins: false,
      tools: [],
    });
    (engine as { tools: ToolRegistry }).tools = this.tools;
    return engine;
  }

  private newRunId(): string {
    for (;;) {
      const random = this.runtime.random;
      const id =
        random.nextUint32().toString(16).padStart(8, '0') + random.nextUint32().toString(16).padStart(8, '0');
      // A seeded runtime draws the same ids in every process: skip those the journal has seen.
      if (this.journal.events(id) === undefined) return id;
    }
  }
}

/** A completed step: its output and what the tool recorded to undo it. */
interface Completed {
  output: unknown;
  undo: unknown;
  params: unknown;
}

/** One run of a plan: its state while it runs. */
class Execution {
  private readonly runtime: Runtime;
  private readonly journal: Journal;
  private readonly emit: Emit;
  private readonly events: EventSink;
  private readonly completed = new Map<string, Completed>();
  private readonly outputsById = new Map<string, unknown>();
  private readonly completionOrder: string[] = [];
  private readonly settled = new Map<string, 'succeeded' | 'failed' | 'cancelled'>();
  private startedAt = 0;

  constructor(
    private readonly engine: Engine,
    private readonly plan: Plan,
    private readonly runId: string,
  ) {
    this.runtime = engine.runtime;
    this.journal = engine.journal;
    this.events = this.runtime.events;
    const events = this.events;
    const source = plan.name;
    const clock = this.runtime.clock;
    // Callers check `events.wants(type)` first, so that nothing is built when nobody listens.
    this.emit = (type, payload) => events.emit({ type, source, at: clock.now(), ...payload } as never);
  }

  private now(): number {
    return this.runtime.clock.now();
  }

  private record(event: JournalEvent): void {
    this.journal.append(this.runId, event);
  }

  // -------------------------------------------------------------------------------------------
  // real runs

  async start(signal: AbortSignal | undefined): Promise<RunResult> {
    this.startedAt = this.now();
    this.record({ kind: 'run.started', at: this.startedAt, plan: this.plan.definition, dryRun: false });
    if (this.events.wants('run.started'))
      this.emit('run.started', { runId: this.runId, steps: this.plan.steps.length, dryRun: false });
    return this.execute(signal);
  }

  async resume(previous: RunRecord, options: ResumeOptions): Promise<RunResult> {
    this.startedAt = previous.startedAt;
    for (const id of previous.completionOrder) {
      const step = previous.steps.find((s) => s.id === id);
      if (step === undefined) continue;
      this.completed.set(id, { output: step.output, undo: step.undo, params: step.params });
      this.outputsById.set(id, step.output);
      this.completionOrder.push(id);
      this.settled.set(id, 'succeeded');
    }
    for (const step of previous.steps) {
      if (step.status === 'failed' || step.status === 'cancelled') this.settled.set(step.id, step.status);
    }
    // The run had already stopped (a step failed for good, or it was cancelled) when the process died,
    // maybe in the middle of its rollback: all that is left is to finish the rollback.
    const fatal = previous.steps.find((s) => s.status === 'failed' && !this.stepById(s.id).continueOnError);
    const stopped =
      previous.rollback !== undefined ||
      fatal !== undefined ||
      previous.steps.some((s) => s.status === 'cancelled');
    // Decide before writing anything: a refused resume leaves the journal as it was.
    const interrupted = stopped ? [] : previous.steps.filter((s) => s.status === 'running');
    const toCompensate: PlanStep[] = [];
    for (const record of interrupted) {
      const step = this.stepById(record.id);
      const tool = this.engine.tools.resolve(step.tool);
      if (!(tool instanceof Error)) {
        const parsed = checkParams(tool, record.params);
        if (parsed.ok && isIdempotent(tool, parsed.value)) continue;
        if (step.compensate !== undefined || tool.compensate !== undefined) {
          toCompensate.push(step);
          continue;
        }
      }
      if (options.force !== true && !(tool instanceof Error)) {
        throw new ResumeRefusedError(
          this.runId,
          `step "${step.id}" (${step.tool}) was interrupted, its tool is not idempotent and it has no compensation; ` +
            'check by hand whether it took effect, then resume with force to run it again',
        );
      }
    }
    this.record({ kind: 'run.resumed', at: this.now() });
    if (this.events.wants('run.started'))
      this.emit('run.started', {
        runId: this.runId,
        steps: this.plan.steps.length,
        dryRun: false,
        resumed: true,
      });
    if (stopped) {
      const reason =
        previous.rollback?.reason ?? (fatal === undefined ? CANCELLED_REASON : `step "${fatal.id}" failed`);
      const done = new Set(
        previous.steps
          .filter((s) => s.compensation !== undefined && s.compensation.status !== 'running')
          .map((s) => s.id),
      );
      const error = new ResumedFailure(
        fatal?.error ?? { name: 'CancelledError', code: 'CANCELLED', message: 'the run was cancelled' },
      );
      const report = await this.rollback(reason, done, previous.rollback === undefined);
      return this.finish(fatal === undefined ? 'cancelled' : 'failed', error, report);
    }
    for (const step of toCompensate) {
      const record = previous.steps.find((s) => s.id === step.id);
      const outcome = await this.compensate(step, {
        output: undefined,
        undo: record?.undo,
        params: record?.params,
      });
      if (outcome !== undefined) {
        // The interrupted step could not be undone: the run cannot go on safely.
        const report = await this.rollback(
          `step "${step.id}" was interrupted and its compensation failed`,
          new Set(),
          true,
        );
        report.failed.unshift({ step: step.id, error: outcome });
        return this.finish('failed', outcome, report);
      }
    }
    return this.execute(options.signal);
  }

  private stepById(id: string): PlanStep {
    const step = this.plan.steps.find((s) => s.id === id);
    if (step === undefined) throw new Error(`plan ${this.plan.name} has no step ${id}`);
    return step;
  }

  private async execute(signal: AbortSignal | undefined): Promise<RunResult> {
    const stop = new AbortController();
    let failure: { step: string; error: unknown } | undefined;
    let cancelled = false;
    const onAbort = () => {
      cancelled = true;
      stop.abort(signal?.reason);
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    // Ready steps, in plan order; a step becomes ready when its last unsatisfied need is satisfied.
    const index = new Map(this.plan.steps.map((step, i) => [step.id, i]));
    const satisfied = (id: string) => {
      const state = this.settled.get(id);
      return state === 'succeeded' || (state === 'failed' && this.stepById(id).continueOnError);
    };
    const waitingOn = new Map<string, number>();
    const dependents = new Map<string, PlanStep[]>();
    const ready = new IndexHeap();
    const makeReady = (step: PlanStep) => ready.push(index.get(step.id) as number);
    for (const step of this.plan.steps) {
      if (this.settled.has(step.id)) continue;
      const open = step.needs.filter((need) => !satisfied(need));
      waitingOn.set(step.id, open.length);
      for (const need of open) {
        const list = dependents.get(need);
        if (list === undefined) dependents.set(need, [step]);
        else list.push(step);
      }
      if (open.length === 0) makeReady(step);
    }
    const running = new Map<string, Promise<void>>();
    try {
      for (;;) {
        while (!stop.signal.aborted && running.size < this.plan.concurrency && ready.size > 0) {
          const step = this.plan.steps[ready.pop()] as PlanStep;
          const task = this.runStep(step, stop.signal).then((outcome) => {
            running.delete(step.id);
            if (!outcome.ok && !step.continueOnError && !stop.signal.aborted) {
              failure = { step: step.id, error: outcome.error };
              stop.abort(new Error(`step "${step.id}" failed`));
            }
            if (!satisfied(step.id)) return;
            for (const dependent of dependents.get(step.id) ?? []) {
              const left = (waitingOn.get(dependent.id) as number) - 1;
              waitingOn.set(dependent.id, left);
              if (left === 0) makeReady(dependent);
            }
          });
          running.set(step.id, task);
        }
        if (running.size === 0) break;
        await Promise.race(running.values());
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (failure !== undefined || cancelled) {
      const reason = cancelled && failure === undefined ? CANCELLED_REASON : `step "${failure?.step}" failed`;
      const report = await this.rollback(reason, new Set(), true);
      if (failure !== undefined) return this.finish('failed', failure.error, report);
      return this.finish('cancelled', new CancelledError(signal?.reason, 'the run was cancelled'), report);
    }
    return this.finish('succeeded', undefined, undefined);
  }

  /** Journals and announces an attempt of `step`. */
  private stepStarted(step: PlanStep, attempt: number, params: unknown, paramsHash: string): void {
    this.record({
      kind: 'step.started',
      at: this.now(),
      step: step.id,
      tool: step.tool,
      attempt,
      params,
      paramsHash,
    });
    if (this.events.wants('step.started'))
      this.emit('step.started', { runId: this.runId, step: step.id, tool: step.tool, attempt });
  }

  /** Runs one step under its policies. Never throws: the outcome says how it ended. */
  private async runStep(
    step: PlanStep,
    signal: AbortSignal,
  ): Promise<{ ok: true } | { ok: false; error: unknown }> {
    const tool = this.engine.tools.resolve(step.tool);
    const startedAt = this.now();
    let attempt = 0;
    let resolved: unknown = step.params;
    const fail = (error: unknown, params: unknown): { ok: false; error: unknown } => {
      if (attempt === 0) {
        attempt = 1;
        this.stepStarted(step, attempt, params, hashValue(params));
      }
      if (signal.aborted) {
        this.settled.set(step.id, 'cancelled');
        this.record({
          kind: 'step.cancelled',
          at: this.now(),
          step: step.id,
          reason: String(errorInfo(signal.reason).message),
        });
      } else {
        this.settled.set(step.id, 'failed');
        this.record({
          kind: 'step.failed',
          at: this.now(),
          step: step.id,
          attempt,
          final: true,
          error: errorInfo(error),
        });
      }
      if (this.events.wants('step.failed'))
        this.emit('step.failed', { runId: this.runId, step: step.id, tool: step.tool, error, final: true });
      return { ok: false, error };
    };
    if (tool instanceof Error) return fail(tool, step.params);
    let parsed: unknown;
    try {
      resolved = resolveReferences(step.params, this.outputs(), false, this.engine.env).value;
      const checked = checkParams(tool, resolved);
      if (!checked.ok) return fail(checked.error, resolved);
      parsed = checked.value;
    } catch (error) {
      return fail(error, step.params);
    }
    // What the journal keeps: the resolved params, minus what the tool says is secret.
    if (tool.redact !== undefined) resolved = toJson(tool.redact(parsed), `${step.tool} redacted params`);
    const paramsHash = hashValue(resolved);
    const policy = this.policyFor(step, (info) => {
      this.record({
        kind: 'step.failed',
        at: this.now(),
        step: step.id,
        attempt: info.attempt,
        final: false,
        error: errorInfo(info.error),
      });
      if (this.events.wants('step.failed'))
        this.emit('step.failed', {
          runId: this.runId,
          step: step.id,
          tool: step.tool,
          error: info.error,
          final: false,
        });
    });
    try {
      const { output, undo } = await policy.execute(async (ctx) => {
        attempt++;
        this.stepStarted(step, attempt, resolved, paramsHash);
        let undoData: unknown;
        const context: ToolContext = {
          get signal() {
            return ctx.signal;
          },
          attempt,
          runtime: this.runtime,
          runId: this.runId,
          stepId: step.id,
          setUndo: (data) => {
            undoData = toJson(data, `${step.tool} undo data`);
            // Journaled at once: a crash before the step ends must not lose what undoes it.
            this.record({
              kind: 'step.undo',
              at: this.now(),
              step: step.id,
              attempt: context.attempt,
              undo: undoData,
            });
          },
        };
        const value = await tool.run(parsed, context);
        return {
          output: toJson(value, `${step.tool} output`),
          undo: undoData,
        };
      }, signal);
      const at = this.now();
      const durationMs = at - startedAt;
      this.record({
        kind: 'step.succeeded',
        at,
        step: step.id,
        attempts: attempt,
        durationMs,
        output,
        outputHash: hashValue(output),
        ...(undo === undefined ? {} : { undo }),
      });
      this.completed.set(step.id, { output, undo, params: resolved });
      this.outputsById.set(step.id, output);
      this.completionOrder.push(step.id);
      this.settled.set(step.id, 'succeeded');
      if (this.events.wants('step.succeeded'))
        this.emit('step.succeeded', {
          runId: this.runId,
          step: step.id,
          tool: step.tool,
          durationMs,
          simulated: false,
        });
      return { ok: true };
    } catch (error) {
      return fail(error, resolved);
    }
  }

  /** Outputs of the completed steps, by id (what references resolve against). */
  private outputs(): Map<string, unknown> {
    return this.outputsById;
  }

  private policyFor(step: PlanStep, onRetry: (info: { attempt: number; error: unknown }) => void): Policy {
    const name = `${this.plan.name}.${step.id}`;
    const runtime = this.runtime;
    const policies: Policy[] = [];
    if (step.retry !== undefined)
      policies.push(retry({ ...retryOptions(step.retry), onRetry, name, runtime }));
    const breaker = this.engine.breakerFor(this.plan, step, runtime);
    if (breaker !== undefined) policies.push(breaker);
    if (step.timeout !== undefined) policies.push(timeout({ ...defined(step.timeout), name, runtime }));
    return pipeline(...policies);
  }

  // -------------------------------------------------------------------------------------------
  // rollback

  /** Compensates completed steps in reverse completion order, skipping `done`; failures are recorded, not thrown. */
  private async rollback(
    reason: string,
    done: ReadonlySet<string>,
    announce: boolean,
  ): Promise<RollbackReport> {
    if (announce) this.record({ kind: 'rollback.started', at: this.now(), reason });
    const report: RollbackReport = { reason, compensated: [], failed: [], uncompensated: [] };
    for (const id of [...this.completionOrder].reverse()) {
      if (done.has(id)) continue;
      const step = this.stepById(id);
      const completed = this.completed.get(id) as Completed;
      const tool = this.engine.tools.resolve(step.tool);
      if (step.compensate === undefined && (tool instanceof Error || tool.compensate === undefined)) {
        report.uncompensated.push(id);
        continue;
      }
      const error = await this.compensate(step, completed);
      if (error === undefined) report.compensated.push(id);
      else report.failed.push({ step: id, error });
    }
    return report;
  }

  /** Runs a step's compensation under its retry; returns the error when it finally fails. */
  private async compensate(step: PlanStep, completed: Completed): Promise<unknown> {
    const spec = step.compensate;
    const toolName = spec?.tool ?? step.tool;
    this.record({ kind: 'step.compensating', at: this.now(), step: step.id, tool: toolName });
    const name = `${this.plan.name}.${step.id}.compensate`;
    const runtime = this.runtime;
    const policies: Policy[] = [
      retry({ ...retryOptions(spec?.retry ?? this.engine.defaultCompensationRetry), name, runtime }),
    ];
    if (spec?.timeout !== undefined)
      policies.push(timeout({ ...defined(spec.timeout as TimeoutSpec), name, runtime }));
    let attempts = 0;
    try {
      await pipeline(...policies).execute(async (ctx) => {
        attempts++;
        const base = {
          get signal() {
            return ctx.signal;
          },
          attempt: attempts,
          runtime,
          runId: this.runId,
          stepId: step.id,
          setUndo() {},
        };
        if (spec !== undefined) {
          const tool = this.engine.tools.resolve(spec.tool);
          if (tool instanceof Error) throw tool;
          const outputs = new Map(this.outputs());
          outputs.set(step.id, completed.output);
          const params = resolveReferences(spec.params ?? {}, outputs, false, this.engine.env).value;
          const checked = checkParams(tool, params);
          if (!checked.ok) throw checked.error;
          await tool.run(checked.value, base);
          return;
        }
        const tool = this.engine.tools.resolve(step.tool) as Tool;
        const checked = checkParams(tool, completed.params);
        if (!checked.ok) throw checked.error;
        await tool.compensate?.(checked.value, completed.output, {
          ...base,
          signal: ctx.signal,
          undo: completed.undo,
        });
      });
      this.record({ kind: 'step.compensated', at: this.now(), step: step.id, ok: true, attempts });
      if (this.events.wants('step.compensated'))
        this.emit('step.compensated', { runId: this.runId, step: step.id, tool: toolName, ok: true });
      return undefined;
    } catch (error) {
      this.record({
        kind: 'step.compensated',
        at: this.now(),
        step: step.id,
        ok: false,
        attempts,
        error: errorInfo(error),
      });
      if (this.events.wants('step.compensated'))
        this.emit('step.compensated', { runId: this.runId, step: step.id, tool: toolName, ok: false, error });
      return error;
    }
  }

  private finish(status: RunStatus, error: unknown, rollback: RollbackReport | undefined): RunResult {
    const at = this.now();
    this.record({
      kind: 'run.finished',
      at,
      status,
      ...(error === undefined ? {} : { error: errorInfo(error) }),
    });
    if (this.events.wants('run.finished'))
      this.emit('run.finished', {
        runId: this.runId,
        status,
        durationMs: at - this.startedAt,
        rolledBack: rollback === undefined ? 0 : rollback.compensated.length + rollback.failed.length,
        compensationFailures: rollback?.failed.length ?? 0,
      });
    const outputs: Record<string, unknown> = {};
    for (const [id, done] of this.completed) outputs[id] = done.output;
    return { runId: this.runId, status, error, outputs, rollback, record: this.engine.show(this.runId) };
  }

  // -------------------------------------------------------------------------------------------
  // dry runs

  async simulate(): Promise<RunResult> {
    this.startedAt = this.now();
    this.record({ kind: 'run.started', at: this.startedAt, plan: this.plan.definition, dryRun: true });
    if (this.events.wants('run.started'))
      this.emit('run.started', { runId: this.runId, steps: this.plan.steps.length, dryRun: true });
    let firstError: unknown;
    for (const step of topologicalOrder(this.plan)) {
      if (this.events.wants('step.started'))
        this.emit('step.started', { runId: this.runId, step: step.id, tool: step.tool, attempt: 1 });
      const { value: params, unresolved, error: referenceError } = this.resolvePartially(step);
      let error: unknown = referenceError;
      let description = `${step.tool} ${JSON.stringify(params)}`;
      let estimatedMs = 0;
      const tool = this.engine.tools.resolve(step.tool);
      // A compensation that names no tool would only fail during a rollback: say so now.
      const undo =
        step.compensate === undefined ? undefined : this.engine.tools.resolve(step.compensate.tool);
      if (undo instanceof Error) error ??= new UnknownToolError(undo.tool, undo.suggestion, 'compensate: ');
      if (tool instanceof Error) error ??= tool;
      else if (error === undefined) {
        // Unresolved references stay as written: the params may still validate (a `${…}` is a string),
        // and then the description and estimate are known; a mismatch is only an error once all resolved.
        const checked = checkParams(tool, params);
        if (checked.ok) {
          description = describeCall(tool, checked.value);
          estimatedMs = estimateMs(tool, checked.value);
        } else if (unresolved.length === 0) error = checked.error;
      }
      this.record({
        kind: 'step.simulated',
        at: this.now(),
        step: step.id,
        tool: step.tool,
        params,
        paramsHash: hashValue(params),
        description,
        estimatedMs,
        unresolved,
        ...(error === undefined ? {} : { error: errorInfo(error) }),
      });
      if (error === undefined) {
        if (this.events.wants('step.succeeded'))
          this.emit('step.succeeded', {
            runId: this.runId,
            step: step.id,
            tool: step.tool,
            durationMs: 0,
            simulated: true,
          });
      } else {
        firstError ??= error;
        if (this.events.wants('step.failed'))
          this.emit('step.failed', { runId: this.runId, step: step.id, tool: step.tool, error, final: true });
      }
    }
    return this.finish(firstError === undefined ? 'succeeded' : 'failed', firstError, undefined);
  }

  private resolvePartially(step: PlanStep): { value: unknown; unresolved: string[]; error?: unknown } {
    try {
      return resolveReferences(step.params, new Map(), true, this.engine.env);
    } catch (error) {
      return { value: step.params, unresolved: [], error };
    }
  }
}

/** A run's original error, after a resume, as far as the journal kept it. */
class ResumedFailure extends Error {
  override readonly name: string;
  readonly code: string | undefined;
  constructor(info: ErrorInfo) {
    super(info.message);
    this.name = info.name;
    this.code = info.code;
  }
}

/** Plan order, except that a step comes after everything it needs (Kahn's algorithm, lowest index first). */
export function topologicalOrder(plan: Plan): PlanStep[] {
  const index = new Map(plan.steps.map((step, i) => [step.id, i]));
  const waiting = plan.steps.map((step) => step.needs.length);
  const dependents = plan.steps.map((): number[] => []);
  plan.steps.forEach((step, i) => {
    for (const need of step.needs) dependents[index.get(need) as number]?.push(i);
  });
  const ready = new IndexHeap();
  waiting.forEach((n, i) => {
    if (n === 0) ready.push(i);
  });
  const order: PlanStep[] = [];
  while (ready.size > 0) {
    const i = ready.pop();
    order.push(plan.steps[i] as PlanStep);
    for (const d of dependents[i] ?? []) if (--(waiting[d] as number) === 0) ready.push(d);
  }
  return order;
}

/** A min-heap of step indices: the ready step that comes first in the plan is started first. */
class IndexHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const items = this.items;
    let i = items.push(value) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((items[parent] as number) <= value) break;
      items[i] = items[parent] as number;
      i = parent;
    }
    items[i] = value;
  }

  /** Removes and returns the smallest index; the heap must not be empty. */
  pop(): number {
    const items = this.items;
    const top = items[0] as number;
    const last = items.pop() as number;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= items.length) break;
        const r = l + 1;
        const c = r < items.length && (items[r] as number) < (items[l] as number) ? r : l;
        if ((items[c] as number) >= last) break;
        items[i] = items[c] as number;
        i = c;
      }
      items[i] = last;
    }
    return top;
  }
}

/** The value as JSON would carry it; a value JSON cannot carry is a (non-retryable) failure. */
function toJson(value: unknown, what: string): unknown {
  if (value === undefined) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw nonRetryable(new TypeError(`${what} is not JSON-serialisable: ${(error as Error).message}`));
  }
  return text === undefined ? null : (JSON.parse(text) as unknown);
}
