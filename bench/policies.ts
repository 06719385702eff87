/**
 * npm run bench:policies [-- --json] [-- --quick]
 *
 * The success path of each policy, per call, side by side with cockatiel and opossum in one process,
 * after warm-up, yielding to the event loop every 1,024 calls so timers and GC run as they would in a
 * service. Also the failure path of a circuit breaker holding 50,000 calls in its window.
 * Wall-clock time is read through Bulwark's SystemClock (the one place allowed to read it).
 * Each row is the median of several rounds; compare ratios, not absolute numbers, on shared machines.
 */
import os from 'node:os';
import {
  ConsecutiveBreaker,
  circuitBreaker as cbCockatiel,
  ExponentialBackoff,
  handleAll,
  retry as retryCockatiel,
  TimeoutStrategy,
  timeout as timeoutCockatiel,
  wrap,
} from 'cockatiel';
import CircuitBreakerOpossum from 'opossum';
import { SystemClock } from '../src/core/clock.js';
import {
  bulkhead,
  circuitBreaker,
  fallback,
  hedge,
  pipeline,
  rateLimit,
  retry,
  timeout,
} from '../src/policy/index.js';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const clock = new SystemClock();
const ROUNDS = quick ? 3 : 7;
const CALLS = quick ? 20_000 : 100_000;
const WARMUP = quick ? 20_000 : 100_000;

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

async function measure(
  name: string,
  run: () => Promise<unknown>,
  calls = CALLS,
  warmup = WARMUP,
): Promise<number> {
  for (let i = 0; i < warmup; i++) {
    await run();
    if ((i & 1023) === 0) await yieldToLoop();
  }
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = clock.now();
    for (let i = 0; i < calls; i++) {
      await run();
      if ((i & 1023) === 1023) await yieldToLoop();
    }
    rounds.push(((clock.now() - start) * 1e6) / calls);
  }
  rounds.sort((a, b) => a - b);
  const ns = rounds[Math.floor(rounds.length / 2)] as number;
  if (!json) console.log(`${name.padEnd(48)} ${ns.toFixed(0).padStart(8)} ns/call`);
  return ns;
}

const work = async () => 1;
// One error object for every failing call: building an Error (stack capture) costs several µs and
// would hide what the breakers themselves cost.
const boom = new Error('boom');
const failing = async () => {
  throw boom;
};

const results: Record<string, number | string> = {};

results.bare_ns = await measure('bare await fn()', () => work());
results.retry_ns = await measure(
  'bulwark retry',
  (
    (p) => () =>
      p.execute(work)
  )(retry({ maxAttempts: 3 })),
);
results.breaker_ns = await measure(
  'bulwark circuitBreaker',
  (
    (p) => () =>
      p.execute(work)
  )(circuitBreaker()),
);
results.timeout_ns = await measure(
  'bulwark timeout (aggressive)',
  (
    (p) => () =>
      p.execute(work)
  )(timeout('1s')),
);
results.timeout_cooperative_ns = await measure(
  'bulwark timeout (cooperative)',
  (
    (p) => () =>
      p.execute(work)
  )(timeout({ after: '1s', strategy: 'cooperative' })),
);
results.bulkhead_ns = await measure(
  'bulwark bulkhead',
  (
    (p) => () =>
      p.execute(work)
  )(bulkhead({ limit: 100 })),
);
results.ratelimit_ns = await measure(
  'bulwark rateLimit',
  (
    (p) => () =>
      p.execute(work)
  )(rateLimit({ rate: 1e12, burst: 1e9 })),
);
results.fallback_ns = await measure(
  'bulwark fallback',
  (
    (p) => () =>
      p.execute(work)
  )(fallback(0)),
);
results.hedge_ns = await measure(
  'bulwark hedge',
  (
    (p) => () =>
      p.execute(work)
  )(hedge({ delay: '1s' })),
);

const bulwarkPipeline = pipeline(
  retry({ maxAttempts: 3 }),
  circuitBreaker({ consecutiveFailures: 5 }),
  timeout('1s'),
  bulkhead({ limit: 100 }),
);
results.pipeline_ns = await measure('bulwark pipeline(retry, breaker, timeout, bulkhead)', () =>
  bulwarkPipeline.execute(work),
);
const cooperativePipeline = pipeline(
  retry({ maxAttempts: 3 }),
  circuitBreaker({ consecutiveFailures: 5 }),
  timeout({ after: '1s', strategy: 'cooperative' }),
  bulkhead({ limit: 100 }),
);
results.pipeline_cooperative_ns = await measure('bulwark pipeline, cooperative timeout', () =>
  cooperativePipeline.execute(work),
);

const cockatiel = wrap(
  retryCockatiel(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff() }),
  cbCockatiel(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
  timeoutCockatiel(1000, TimeoutStrategy.Aggressive),
);
results.cockatiel_ns = await measure(
  'cockatiel wrap(retry, circuitBreaker, timeout)',
  () => cockatiel.execute(work),
  Math.ceil(CALLS / 10),
  Math.ceil(WARMUP / 10),
);

const opossum = new CircuitBreakerOpossum(work, { timeout: 1000 });
results.opossum_ns = await measure('opossum fire() with timeout', () => opossum.fire());
opossum.shutdown();

// Failure path with 50,000 calls in the breaker's window. Neither breaker may open (thresholds out of
// reach), so every measured call runs the failure bookkeeping.
const WINDOW_CALLS = 50_000;
const windowBreaker = circuitBreaker({ failureRatio: 1, minimumThroughput: 1e9, window: '10m', buckets: 60 });
const swallow = () => undefined;
for (let i = 0; i < WINDOW_CALLS; i++)
  await windowBreaker.execute(i % 2 === 0 ? work : failing).catch(swallow);
results.breaker_fail_ns = await measure(
  `bulwark breaker failing call, ${WINDOW_CALLS} in window`,
  () => windowBreaker.execute(failing).catch(swallow),
  Math.ceil(CALLS / 10),
  Math.ceil(WARMUP / 10),
);

// opossum sorts every latency in its window on each failure, so its window is filled with successes
// (cheap) and only a few failing calls are timed; filling it with failures would take hours.
let opossumFails = false;
const opossumWindow = new CircuitBreakerOpossum(
  async () => {
    if (opossumFails) throw boom;
    return 1;
  },
  {
    timeout: false,
    errorThresholdPercentage: 100,
    volumeThreshold: 1e9,
    rollingCountTimeout: 600_000,
    rollingCountBuckets: 60,
    rollingPercentilesEnabled: true,
  },
);
for (let i = 0; i < WINDOW_CALLS; i++) await opossumWindow.fire().catch(swallow);
opossumFails = true;
results.opossum_fail_ns = await measure(
  `opossum failing call, ${WINDOW_CALLS} in window`,
  () => opossumWindow.fire().catch(swallow),
  20,
  5,
);
opossumWindow.shutdown();

const n = (k: string) => results[k] as number;
const summary = {
  ...results,
  pipeline_vs_bare: Number((n('pipeline_ns') / n('bare_ns')).toFixed(2)),
  cockatiel_vs_pipeline: Number((n('cockatiel_ns') / n('pipeline_ns')).toFixed(1)),
  opossum_vs_pipeline: Number((n('opossum_ns') / n('pipeline_ns')).toFixed(2)),
  targets: {
    pipeline_le_cockatiel_div_20: n('pipeline_ns') <= n('cockatiel_ns') / 20,
    pipeline_le_opossum_div_2: n('pipeline_ns') <= n('opossum_ns') / 2,
    breaker_fail_le_10us: n('breaker_fail_ns') <= 10_000,
  },
  meta: {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    rounds: ROUNDS,
    calls: CALLS,
  },
};
for (const key of Object.keys(results)) {
  const v = results[key];
  if (typeof v === 'number') results[key] = Math.round(v);
}
Object.assign(summary, results);
console.log(JSON.stringify(summary));
process.exit(0);
