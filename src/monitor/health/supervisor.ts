/**
 * A supervisor in the Erlang/OTP mould, with Kubernetes' restart backoff. Children are started in order;
 * when one dies, the strategy decides who restarts with it (`one_for_one`: itself; `one_for_all`:
 * everyone; `rest_for_one`: itself and the children started after it), its restart type decides whether
 * it restarts at all (`permanent`: always; `transient`: only after a crash; `temporary`: never), and the
 * restart waits an exponential backoff (capped, reset once the child has run healthy for `resetAfter`).
 * More than `intensity` restarts within `period` means restarting is not helping: the supervisor stops
 * its children, marks the child failed, and escalates to its parent.
 */
import type { Timer } from '../../core/clock.js';
import type { Duration } from '../../core/duration.js';
import { BulwarkError } from '../../core/errors.js';
import type { Random } from '../../core/random.js';
import { type Runtime, systemRuntime } from '../../core/runtime.js';
import { type Backoff, backoff as backoffs, isBackoff } from '../../policy/backoff.js';
import {
  durationOption,
  functionOption,
  intOption,
  invalid,
  knownKeys,
  oneOf,
} from '../../policy/options.js';
import type { ChildState } from './events.js';

export type RestartStrategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';
export type RestartType = 'permanent' | 'transient' | 'temporary';

/** What a running child uses to tell its supervisor that it died. Reports from an old instance are ignored. */
export interface ChildContext {
  /** The child died abnormally. */
  crash(error?: unknown): void;
  /** The child finished normally (a `transient` or `temporary` child is then not restarted). */
  exit(): void;
}

export interface ChildSpec<T = unknown> {
  /** Unique among the supervisor's children. */
  id: string;
  /** Starts the child and returns its instance; a throw counts as a crash. */
  start(context: ChildContext): T | Promise<T>;
  /** Stops an instance (close it). @defaultValue calls `instance.close()` when there is one */
  stop?(instance: T): void | Promise<void>;
  /** @defaultValue `'permanent'` */
  restart?: RestartType;
}

/**
 * Types a child spec: the instance `start` returns is what `stop` receives (an inline array of specs
 * cannot infer that by itself).
 * @example
 * child({ id: 'mailer', start: (ctx) => startMailer(ctx), stop: (mailer) => mailer.close() })
 */
export function child<T>(spec: ChildSpec<T>): ChildSpec<T> {
  return spec;
}

export interface SupervisorOptions {
  /** The supervisor's name (`source` of its events). @defaultValue `'supervisor'` */
  name?: string;
  runtime?: Runtime;
  /** @defaultValue `'one_for_one'` */
  strategy?: RestartStrategy;
  /** Restarts allowed within `period` before the supervisor gives up. @defaultValue `3` */
  intensity?: number;
  /** @defaultValue `'5s'` */
  period?: Duration;
  /** Wait before each restart of a child. @defaultValue `backoff.exponential({ initial: '10s', max: '5m' })` (Kubernetes' CrashLoopBackOff) */
  backoff?: Backoff;
  /** A child that ran this long since its last start has its backoff reset. @defaultValue `'10m'` */
  resetAfter?: Duration;
  /** Called when the supervisor gives up (a parent supervisor's child spec sets it through {@link Supervisor.asChild}). */
  onEscalate?: (error: SupervisorEscalatedError) => void;
}

/** The supervisor gave up: `child` crashed more than `intensity` times within `period`. */
export class SupervisorEscalatedError extends BulwarkError {
  override readonly name = 'SupervisorEscalatedError';
  constructor(
    readonly supervisor: string,
    readonly child: string,
    readonly restarts: number,
    cause: unknown,
  ) {
    super(
      'SUPERVISOR_ESCALATED',
      `supervisor "${supervisor}" gave up: "${child}" restarted ${restarts} times within its period`,
      { cause, retryable: false },
    );
  }
}

export interface ChildStatus {
  readonly id: string;
  readonly state: 'starting' | 'running' | 'restarting' | 'stopped' | 'failed';
  readonly restarts: number;
  /** The current backoff step (0 after a reset). */
  readonly backoffStep: number;
}

class Child {
  state: ChildStatus['state'] = 'stopped';
  instance: unknown;
  generation = 0;
  restarts = 0;
  backoffStep = 0;
  startedAt = 0;
  constructor(readonly spec: ChildSpec) {}
  get id(): string {
    return this.spec.id;
  }
}

function describeError(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Keeps components running.
 * @example
 * const supervisor = new Supervisor({ runtime, strategy: 'one_for_one', intensity: 5, period: '1m' }, [
 *   child({ id: 'mailer', start: (ctx) => startMailer({ onFatal: (e) => ctx.crash(e) }), stop: (m) => m.close() }),
 * ]);
 * await supervisor.start();
 */
export class Supervisor {
  readonly name: string;
  private readonly runtime: Runtime;
  private readonly strategy: RestartStrategy;
  private readonly intensity: number;
  private readonly periodMs: number;
  private readonly backoff: Backoff;
  private readonly resetAfterMs: number;
  private readonly onEscalate: ((error: SupervisorEscalatedError) => void) | undefined;
  private readonly children: Child[];
  private readonly random: Random;
  private restartTimes: number[] = [];
  private readonly timers = new Set<Timer>();
  private closed = false;
  private escalated = false;

  constructor(options: SupervisorOptions, children: readonly ChildSpec[]) {
    const where = 'Supervisor';
    knownKeys(where, options, ['strategy', 'intensity', 'period', 'backoff', 'resetAfter', 'onEscalate']);
    this.name = options.name ?? 'supervisor';
    this.runtime = options.runtime ?? systemRuntime();
    this.strategy = oneOf(
      where,
      'strategy',
      options.strategy,
      ['one_for_one', 'one_for_all', 'rest_for_one'],
      'one_for_one',
    );
    this.intensity = intOption(where, 'intensity', options.intensity, 3, 0);
    this.periodMs = durationOption(where, 'period', options.period, 5000, 0, true);
    if (options.backoff !== undefined && !isBackoff(options.backoff))
      throw invalid(where, 'backoff', options.backoff, 'a backoff (see backoff.exponential)');
    this.backoff = options.backoff ?? backoffs.exponential({ initial: '10s', max: '5m' });
    this.resetAfterMs = durationOption(where, 'resetAfter', options.resetAfter, 600_000);
    this.onEscalate = functionOption(where, 'onEscalate', options.onEscalate);
    this.random = this.runtime.random.fork(`supervisor/${this.name}`);
    const ids = new Set<string>();
    this.children = children.map((spec, i) => {
      if (typeof spec !== 'object' || spec === null || typeof spec.id !== 'string' || spec.id === '') {
        throw invalid(
          where,
          `children[${i}].id`,
          (spec as { id?: unknown } | null)?.id,
          'a non-empty string',
        );
      }
      if (ids.has(spec.id)) throw invalid(where, `children[${i}].id`, spec.id, 'an id no other child has');
      ids.add(spec.id);
      if (typeof spec.start !== 'function')
        throw invalid(where, `children[${i}].start`, spec.start, 'a function');
      oneOf(
        where,
        `children[${i}].restart`,
        spec.restart,
        ['permanent', 'transient', 'temporary'],
        'permanent',
      );
      return new Child(spec);
    });
  }

  /** Starts every child, in order. */
  async start(): Promise<void> {
    for (const child of this.children) await this.startChild(child, 'start');
  }

  /** Each child's state. */
  which(): ChildStatus[] {
    return this.children.map((c) => ({
      id: c.id,
      state: c.state,
      restarts: c.restarts,
      backoffStep: c.backoffStep,
    }));
  }

  /** The running instance of a child (undefined while it is not running). */
  instance<T = unknown>(id: string): T | undefined {
    const child = this.children.find((c) => c.spec.id === id);
    return child?.state === 'running' ? (child.instance as T) : undefined;
  }

  /** True once the supervisor gave up. */
  get failed(): boolean {
    return this.escalated;
  }

  /** Closes and recreates a child now (a healing action); not counted against the intensity. */
  async restart(id: string): Promise<void> {
    const child = this.children.find((c) => c.spec.id === id);
    if (child === undefined)
      throw new TypeError(
        `Supervisor.restart: no child "${id}" (children: ${this.children.map((c) => c.id).join(', ')})`,
      );
    if (this.closed || this.escalated)
      throw new BulwarkError(
        'INVALID_STATE',
        `supervisor "${this.name}" is ${this.closed ? 'closed' : 'failed'}`,
        { retryable: false },
      );
    await this.stopChild(child, 'manual');
    await this.startChild(child, 'manual');
  }

  /** This supervisor as a child of another: its escalation is the child's crash. */
  asChild(id = this.name): ChildSpec<Supervisor> {
    const self = this;
    return {
      id,
      restart: 'permanent',
      async start(context) {
        self.reopen((error) => context.crash(error));
        await self.start();
        return self;
      },
      stop: (supervisor) => supervisor.stopAll('parent'),
    };
  }

  private parentHook: ((error: SupervisorEscalatedError) => void) | undefined;

  private reopen(hook: (error: SupervisorEscalatedError) => void): void {
    this.parentHook = hook;
    this.escalated = false;
    this.restartTimes = [];
    for (const child of this.children) {
      child.restarts = 0;
      child.backoffStep = 0;
      child.state = 'stopped';
    }
  }

  private emit(
    child: Child,
    state: ChildState,
    reason: string,
    extra: { delayMs?: number; error?: string | undefined } = {},
  ): void {
    const events = this.runtime.events;
    if (!events.wants('supervisor.child')) return;
    events.emit({
      type: 'supervisor.child',
      source: this.name,
      at: this.runtime.clock.now(),
      child: child.id,
      state,
      reason,
      restarts: child.restarts,
      ...(extra.delayMs === undefined ? {} : { delayMs: extra.delayMs }),
      ...(extra.error === undefined ? {} : { error: extra.error }),
    });
  }

  private async startChild(child: Child, reason: string): Promise<void> {
    if (this.closed || this.escalated) return;
    const generation = ++child.generation;
    child.state = 'starting';
    const context: ChildContext = {
      crash: (error) => this.died(child, generation, error, false),
      exit: () => this.died(child, generation, undefined, true),
    };
    let instance: unknown;
    try {
      instance = await child.spec.start(context);
    } catch (error) {
      if (child.generation === generation) {
        child.state = 'running';
        this.died(child, generation, error, false);
      }
      return;
    }
    if (child.generation !== generation || this.closed || this.escalated) {
      await this.stopInstance(child, instance);
      return;
    }
    child.instance = instance;
    child.state = 'running';
    child.startedAt = this.runtime.clock.now();
    this.emit(child, 'started', reason);
  }

  private async stopInstance(child: Child, instance: unknown): Promise<void> {
    try {
      if (child.spec.stop !== undefined) await child.spec.stop(instance as never);
      else if (typeof (instance as { close?: unknown } | null)?.close === 'function')
        await (instance as { close(): unknown }).close();
    } catch {
      // A child that fails to stop is gone as far as the supervisor is concerned.
    }
  }

  private async stopChild(child: Child, reason: string): Promise<void> {
    const wasRunning = child.state === 'running';
    child.generation++;
    const instance = child.instance;
    child.instance = undefined;
    child.state = 'stopped';
    if (wasRunning) {
      await this.stopInstance(child, instance);
      this.emit(child, 'stopped', reason);
    }
  }

  private died(child: Child, generation: number, error: unknown, normal: boolean): void {
    if (child.generation !== generation || child.state !== 'running' || this.closed || this.escalated) return;
    child.generation++;
    const instance = child.instance;
    child.instance = undefined;
    child.state = 'stopped';
    void this.stopInstance(child, instance);
    const now = this.runtime.clock.now();
    this.emit(child, normal ? 'stopped' : 'crashed', normal ? 'exit' : 'crash', {
      error: describeError(error),
    });
    const type = child.spec.restart ?? 'permanent';
    if (type === 'temporary' || (type === 'transient' && normal)) return;
    this.restartTimes = this.restartTimes.filter((t) => now - t < this.periodMs);
    this.restartTimes.push(now);
    if (this.restartTimes.length > this.intensity) {
      void this.escalate(child, error);
      return;
    }
    if (now - child.startedAt >= this.resetAfterMs) child.backoffStep = 0;
    child.backoffStep++;
    let step = this.backoff;
    for (let i = 0; i < child.backoffStep; i++) step = step.next(this.random);
    const delayMs = step.delay;
    const group = this.restartGroup(child);
    void this.restartAfter(child, group, delayMs);
  }

  private restartGroup(child: Child): Child[] {
    const index = this.children.indexOf(child);
    if (this.strategy === 'one_for_one') return [child];
    if (this.strategy === 'one_for_all') return [...this.children];
    return this.children.slice(index);
  }

  private async restartAfter(crashed: Child, group: Child[], delayMs: number): Promise<void> {
    // Siblings stop in reverse start order, as in OTP.
    for (const sibling of [...group].reverse()) {
      if (sibling !== crashed) await this.stopChild(sibling, 'sibling');
    }
    for (const child of group) {
      if (child.spec.restart === 'temporary' && child !== crashed) continue;
      child.state = 'restarting';
      child.restarts++;
      this.emit(child, 'restarting', child === crashed ? 'crash' : 'sibling', { delayMs });
    }
    await new Promise<void>((resolve) => {
      const timer = this.runtime.clock.setTimer(
        delayMs,
        () => {
          this.timers.delete(timer);
          resolve();
        },
        undefined,
      );
      this.timers.add(timer);
    });
    for (const child of group) {
      if (child.state === 'restarting')
        await this.startChild(child, child === crashed ? 'restart' : 'sibling');
    }
  }

  private async escalate(child: Child, error: unknown): Promise<void> {
    this.escalated = true;
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    await this.stopAll('intensity');
    child.state = 'failed';
    this.emit(child, 'failed', 'intensity', { error: describeError(error) });
    const events = this.runtime.events;
    if (events.wants('supervisor.escalated')) {
      events.emit({
        type: 'supervisor.escalated',
        source: this.name,
        at: this.runtime.clock.now(),
        child: child.id,
        restarts: this.restartTimes.length - 1,
        periodMs: this.periodMs,
      });
    }
    const escalation = new SupervisorEscalatedError(this.name, child.id, this.restartTimes.length - 1, error);
    this.onEscalate?.(escalation);
    this.parentHook?.(escalation);
  }

  /** Stops every child in reverse start order. */
  private async stopAll(reason: string): Promise<void> {
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    for (const child of [...this.children].reverse()) {
      if (child.state === 'running') await this.stopChild(child, reason);
      else {
        child.generation++;
        if (child.state !== 'failed') child.state = 'stopped';
      }
    }
  }

  /** Stops every child and every pending restart. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.stopAll('shutdown');
    this.closed = true;
  }
}
