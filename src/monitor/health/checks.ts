/**
 * Ready-made checks over Bulwark components: a circuit breaker, an HTTP endpoint, a queue (from its
 * `queue.health` and `queue.worker` events), or any function.
 */
import type { Runtime } from '../../core/runtime.js';
import type { CircuitBreaker } from '../../policy/circuit-breaker.js';
import { invalid } from '../../policy/options.js';
import '../../queue/events.js';
import type { Check } from './probes.js';

/** What a queue's check reads; `close()` stops listening. */
export interface QueueCheck extends Check {
  close(): void;
}

export const checks = {
  /**
   * Healthy while the breaker lets calls through (closed or half-open); failing while it is open or isolated.
   * @example readiness: { check: checks.breaker(dbBreaker) }
   */
  breaker(breaker: Pick<CircuitBreaker, 'state'>): Check {
    return () => {
      const state = breaker.state;
      if (state === 'open' || state === 'isolated') throw new Error(`circuit is ${state}`);
      return true;
    };
  },

  /**
   * GETs `url`; healthy on a 2xx or 3xx answer (Kubernetes' httpGet probe). The error names the status,
   * not the URL.
   * @example liveness: { check: checks.http('http://127.0.0.1:8080/ping'), timeout: '2s' }
   */
  http(url: string, options: { headers?: Record<string, string> } = {}): Check {
    try {
      new URL(url);
    } catch {
      throw invalid('checks.http', 'url', url, 'an absolute http(s) URL');
    }
    return async (signal) => {
      let response: Response;
      try {
        response = await fetch(url, { signal, headers: options.headers ?? {}, redirect: 'manual' });
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        const code = (error as { cause?: { code?: unknown } }).cause?.code;
        throw new Error(`request failed${typeof code === 'string' ? ` (${code})` : ''}`);
      }
      await response.arrayBuffer().catch(() => undefined);
      if (response.status >= 200 && response.status < 400) return true;
      throw new Error(`HTTP ${response.status}`);
    };
  },

  /**
   * A queue, from its events: failing while its backend reports unhealthy (`queue.health`) or while fewer
   * than `minWorkers` workers are live (`queue.worker` started minus stopped and lost).
   * @example readiness: { check: checks.queue(runtime, 'emails', { minWorkers: 1 }) }
   */
  queue(runtime: Runtime, queue: string, options: { minWorkers?: number } = {}): QueueCheck {
    const minWorkers = options.minWorkers ?? 0;
    if (!Number.isInteger(minWorkers) || minWorkers < 0)
      throw invalid('checks.queue', 'minWorkers', minWorkers, 'an integer >= 0');
    let healthy = true;
    let reason = '';
    const workers = new Set<string>();
    const unsubscribe = runtime.events.subscribe(
      (event) => {
        if (event.source !== queue) return;
        if (event.type === 'queue.health') {
          healthy = event.healthy;
          reason = event.reason;
        } else if (event.type === 'queue.worker') {
          if (event.state === 'started') workers.add(event.workerId);
          else workers.delete(event.workerId);
        }
      },
      ['queue.health', 'queue.worker'],
    );
    return Object.assign(
      () => {
        if (!healthy) throw new Error(`queue backend unhealthy: ${reason}`);
        if (workers.size < minWorkers) throw new Error(`${workers.size} live workers (need ${minWorkers})`);
        return true;
      },
      { close: unsubscribe },
    );
  },

  /** Any function: healthy unless it throws or returns false. */
  fn(check: Check): Check {
    if (typeof check !== 'function') throw invalid('checks.fn', 'check', check, 'a function');
    return check;
  },
} as const;
