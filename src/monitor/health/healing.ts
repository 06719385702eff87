/**
 * Healing actions: what a failing probe (or an alert) can do about it. Each runs once per call and
 * reports itself as a `healing.action` event, with its error when it fails.
 */
import type { Runtime } from '../../core/runtime.js';
import type { CircuitBreaker } from '../../policy/circuit-breaker.js';

/** A queue that can move its work to a fallback backend and back (a `FailoverQueue`). */
export interface FailoverTarget {
  readonly name: string;
  failover(): void | Promise<void>;
  failback(): void | Promise<void>;
}

/** A worker that can stop taking jobs and finish the ones it holds (a queue `Worker`: `close()` does that). */
export interface DrainTarget {
  readonly id: string;
  close(): Promise<void>;
}

/** Something the supervisor can restart. */
export interface RestartTarget {
  restart(child: string): Promise<void>;
}

export type HealingAction = () => Promise<void>;

async function act(
  runtime: Runtime,
  action: string,
  target: string,
  run: () => void | Promise<void>,
): Promise<void> {
  let error: string | undefined;
  try {
    await run();
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  const events = runtime.events;
  if (events.wants('healing.action')) {
    events.emit({
      type: 'healing.action',
      source: target,
      at: runtime.clock.now(),
      action,
      target,
      ok: error === undefined,
      ...(error === undefined ? {} : { error }),
    });
  }
  if (error !== undefined) throw new Error(`healing action ${action} on ${target} failed: ${error}`);
}

/**
 * Healing actions bound to a runtime (for their events).
 * @example
 * const heal = healing(runtime);
 * health.register({ name: 'db', liveness: { check }, onUnhealthy: heal.resetBreaker(dbBreaker) });
 */
export function healing(runtime: Runtime) {
  return {
    /** Closes and recreates a supervised child. */
    restart:
      (supervisor: RestartTarget, child: string): HealingAction =>
      () =>
        act(runtime, 'restart', child, () => supervisor.restart(child)),
    /** Closes a circuit breaker by hand (after the dependency was fixed). */
    resetBreaker:
      (breaker: Pick<CircuitBreaker, 'reset' | 'name'>): HealingAction =>
      () =>
        act(runtime, 'resetBreaker', breaker.name, () => breaker.reset()),
    /** Sends a queue's work to its fallback backend. */
    failover:
      (queue: FailoverTarget): HealingAction =>
      () =>
        act(runtime, 'failover', queue.name, () => queue.failover()),
    /** Sends a queue's work back to its primary backend. */
    failback:
      (queue: FailoverTarget): HealingAction =>
      () =>
        act(runtime, 'failback', queue.name, () => queue.failback()),
    /** Stops a worker from taking jobs and lets it finish its current ones. */
    drain:
      (worker: DrainTarget): HealingAction =>
      () =>
        act(runtime, 'drain', worker.id, () => worker.close()),
  };
}
