/**
 * `network`: calls that fail with a connection error (p 0.3) or hang until a 5 s timeout (p 0.2 of the
 * rest), retried 3 times with exponential backoff. Reproduces the original "47% → 90% with retries"
 * experiment at any scale, with the closed-form prediction `1 − (1 − s)^attempts`.
 */
import { faults, inject } from '../../chaos/faults.js';
import { schedule } from '../../chaos/schedule.js';
import { isBulwarkError } from '../../core/errors.js';
import { backoff } from '../../policy/backoff.js';
import type { PolicyContext } from '../../policy/context.js';
import { retry } from '../../policy/retry.js';
import { timeout } from '../../policy/timeout.js';
import { runTasks } from '../runner.js';
import { defineScenario } from '../scenario.js';

const ok = (): boolean => true;

/** Closed forms, rounded to 12 significant digits so that 0.7 × 0.8 reads 0.56. */
function predictions(params: { errorRate: number; hangRate: number; maxAttempts: number }): {
  first_attempt: number;
  final: number;
} {
  const first = (1 - params.errorRate) * (1 - params.hangRate);
  const final = 1 - (1 - first) ** params.maxAttempts;
  return { first_attempt: Number(first.toPrecision(12)), final: Number(final.toPrecision(12)) };
}

/** The `network` scenario. Parameters: rates, timeout and backoff in ms, attempts, concurrency. */
export const network = defineScenario({
  name: 'network',
  description:
    'connection refused (p 0.3) or a hang until a 5 s timeout (p 0.2 of the rest); retry ×3, exponential backoff 100 ms ×2',
  params: {
    errorRate: 0.3,
    hangRate: 0.2,
    timeoutMs: 5000,
    maxAttempts: 3,
    initialBackoffMs: 100,
    backoffFactor: 2,
    concurrency: 100,
    /**
     * Capture stack traces of the simulated errors. Off by default: building ~70,000 stacks per 100,000
     * tasks costs about a third of the run. While off, `Error.stackTraceLimit` is 0 for the run's duration.
     */
    errorStacks: false,
  },
  defaults: { tasks: 10_000 },
  async run({ runtime, tasks, params, record, progress }) {
    const attempt = inject(ok, [
      timeout(params.timeoutMs, { runtime }),
      faults.error({
        name: 'refused',
        kind: 'ECONNREFUSED',
        schedule: schedule.rate(params.errorRate),
        runtime,
      }),
      faults.timeout({ name: 'hang', schedule: schedule.rate(params.hangRate), runtime }),
    ]);
    const policy = retry({
      maxAttempts: params.maxAttempts,
      backoff: backoff.exponential({ initial: params.initialBackoffMs, factor: params.backoffFactor }),
      runtime,
    });
    const clock = runtime.clock;
    // Tallied locally and recorded once at the end: the recorder's maps stay off the per-call path.
    let firstAttempt = 0;
    let final = 0;
    let calls = 0;
    const failures = new Map<string, number>([
      ['ECONNREFUSED', 0],
      ['TIMEOUT', 0],
    ]);
    const task = async (): Promise<void> => {
      let attempts = 0;
      let firstFailureAt = -1;
      const failed = (error: unknown): void => {
        const code = isBulwarkError(error, 'TIMEOUT')
          ? 'TIMEOUT'
          : String((error as { code?: unknown } | null)?.code ?? 'OTHER');
        failures.set(code, (failures.get(code) ?? 0) + 1);
        if (firstFailureAt < 0) firstFailureAt = clock.now();
      };
      const call = (ctx: PolicyContext): Promise<boolean> => {
        attempts++;
        // Observe the failure beside the attempt rather than rethrowing it from a `.catch` (a throw per
        // failed call costs ~8% of the run); the retry sees the attempt's own promise.
        const result = attempt(ctx);
        result.then(undefined, failed);
        return result;
      };
      let succeeded: boolean;
      try {
        succeeded = await policy.execute(call);
      } catch {
        succeeded = false;
      }
      calls += attempts;
      if (succeeded) {
        final++;
        if (attempts === 1) firstAttempt++;
        else record.latency('recovery', clock.now() - firstFailureAt);
      }
    };
    const limit = Error.stackTraceLimit;
    if (!params.errorStacks) Error.stackTraceLimit = 0;
    try {
      await runTasks(tasks, params.concurrency, task, (done) => {
        if (done % 1000 === 0 || done === tasks) progress(done);
      });
    } finally {
      Error.stackTraceLimit = limit;
    }
    record.countMany('first_attempt', firstAttempt, tasks);
    record.countMany('final', final, tasks);
    record.add('calls', calls);
    record.add('retries', calls - tasks);
    for (const [code, n] of failures) record.add(`failures.${code}`, n);
  },
  analytic: ({ params }) => predictions(params),
  comparisons: [{ metric: 'success', before: 'first_attempt', after: 'final' }],
  expect: ({ params }) => {
    const { first_attempt, final } = predictions(params);
    return [
      { metric: 'first_attempt', consistentWith: first_attempt },
      { metric: 'final', consistentWith: final },
    ];
  },
});
