/** Helpers shared by the test files (not part of the package). */
import type { BulwarkEvent } from '../src/core/events.js';
import { type VirtualRuntime, virtualRuntime } from '../src/core/runtime.js';
import { PrometheusMetrics } from '../src/monitor/metrics.js';
import { type Bulkhead, bulkhead } from '../src/policy/bulkhead.js';

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** A promise settled by hand. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export type Settled<T> = { ok: true; value: T; at: number } | { ok: false; error: unknown; at: number };

/** Runs `program` on the virtual clock and records how and when (virtual time) it settled. */
export function settle<T>(rt: VirtualRuntime, program: () => Promise<T>): Promise<Settled<T>> {
  return rt.clock.run(async (): Promise<Settled<T>> => {
    try {
      const value = await program();
      return { ok: true, value, at: rt.clock.now() };
    } catch (error) {
      return { ok: false, error, at: rt.clock.now() };
    }
  });
}

/** The failure of a settled call; throws when it succeeded. */
export function failure<T>(result: Settled<T>): { error: unknown; at: number } {
  if (result.ok) throw new Error(`expected a failure, got ${String(result.value)}`);
  return result;
}

/** Records the runtime's events from now on (without `policy.created` unless `all`). */
export function record(rt: VirtualRuntime, all = false): BulwarkEvent[] {
  const events: BulwarkEvent[] = [];
  rt.events.subscribe((e) => {
    if (all || e.type !== 'policy.created') events.push(e);
  });
  return events;
}

/** A `CommandIO` that keeps what a CLI command prints: `out()` and `err()` return it. */
export function capture(): {
  io: { out: (text: string) => void; err: (text: string) => void };
  out: () => string;
  err: () => string;
} {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (text) => void out.push(text), err: (text) => void err.push(text) },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

/**
 * Runs `body` collecting the errors that are rethrown asynchronously (a throwing listener or timer
 * callback) instead of letting them fail the run; returns them after one more turn of the event loop.
 */
export async function uncaught(body: () => unknown): Promise<unknown[]> {
  const errors: unknown[] = [];
  const onError = (error: unknown) => errors.push(error);
  process.on('uncaughtException', onError);
  try {
    await body();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('uncaughtException', onError);
  }
  return errors;
}

/** The sample lines of a Prometheus exposition text, without comments. */
export function samples(text: string): string[] {
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
}

/** The value of the sample `prefix` (a metric name with its labels) in an exposition text, if present. */
export function sample(text: string, prefix: string): number | undefined {
  const line = samples(text).find((l) => l.startsWith(`${prefix} `));
  return line === undefined ? undefined : Number(line.slice(prefix.length + 1));
}

/** `bulwark_bulkhead_active` of `policy` in what `metrics` exposes now. */
export async function bulkheadGauge(
  metrics: { text(): Promise<string> },
  policy: string,
): Promise<number | undefined> {
  return sample(await metrics.text(), `bulwark_bulkhead_active{policy="${policy}"}`);
}

/**
 * Holds one call in each of `holders` (in order, each sleeping 10 ms on `rt`'s clock), reads the
 * `bulwark_bulkhead_active` gauge of `policy` while they run, and lets them finish.
 */
export async function bulkheadGaugeWhileHeld(
  rt: VirtualRuntime,
  metrics: { text(): Promise<string> },
  policy: string,
  holders: readonly { execute(fn: () => Promise<void>): Promise<unknown> }[],
): Promise<number | undefined> {
  let during: number | undefined;
  await rt.clock.run(async () => {
    const held = holders.map((holder) => holder.execute(() => rt.clock.sleep(10)));
    during = await bulkheadGauge(metrics, policy);
    await Promise.all(held);
  });
  return during;
}

/**
 * Prometheus metrics attached to a fresh virtual runtime with a bulkhead `pool` (limit 4) on it, after
 * one call through the pool and a `reset()` of the metrics.
 */
export async function poolMeteredThenReset(
  seed: number,
): Promise<{ rt: VirtualRuntime; metrics: PrometheusMetrics; pool: Bulkhead }> {
  const rt = virtualRuntime(seed);
  const metrics = new PrometheusMetrics();
  metrics.attach(rt.events);
  const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt });
  await rt.clock.run(() => pool.execute(() => 1));
  metrics.reset();
  return { rt, metrics, pool };
}
