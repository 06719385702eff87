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
import { createRuntime, type Runtime } from '../src/core/runtime.js';
import { createMonitor } from '../src/monitor/index.js';
import { PrometheusMetrics } from '../src/monitor/metrics.js';
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

interface Row {
  key: string;
  label: string;
  run: () => Promise<unknown>;
  /** Fraction of the usual call count (slow rows). */
  scale?: number;
}

async function loop(run: () => Promise<unknown>, calls: number): Promise<number> {
  const start = clock.now();
  for (let i = 0; i < calls; i++) {
    await run();
    if ((i & 1023) === 1023) await yieldToLoop();
  }
  return ((clock.now() - start) * 1e6) / calls;
}

/**
 * Runs every row once per round, interleaved, so that all rows see the same machine noise; reports each
 * row's best round (the least disturbed measure of its cost) and keeps the median for reference.
 */
async function measureInterleaved(
  rows: Row[],
): Promise<Record<string, { best: number; median: number; rounds: number[] }>> {
  for (const row of rows) await loop(row.run, Math.ceil(WARMUP * (row.scale ?? 1)));
  const samples = new Map<string, number[]>(rows.map((r) => [r.key, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const row of rows)
      samples.get(row.key)?.push(await loop(row.run, Math.ceil(CALLS * (row.scale ?? 1))));
  }
  const out: Record<string, { best: number; median: number; rounds: number[] }> = {};
  for (const row of rows) {
    const rounds = samples.get(row.key) ?? [];
    const xs = [...rounds].sort((a, b) => a - b);
    const best = xs[0] as number;
    const median = xs[Math.floor(xs.length / 2)] as number;
    out[row.key] = { best, median, rounds };
    if (!json)
      console.log(
        `${row.label.padEnd(52)} ${best.toFixed(0).padStart(8)} ns/call  (median ${median.toFixed(0)})`,
      );
  }
  return out;
}

const work = async () => 1;
// One error object for every failing call: building an Error (stack capture) costs several µs and
// would hide what the breakers themselves cost.
const boom = new Error('boom');
const failing = async () => {
  throw boom;
};

const results: Record<string, number | string> = {};
const medians: Record<string, number> = {};
const via = (policy: { execute: (fn: typeof work) => Promise<unknown> }) => () => policy.execute(work);

const bulwarkPipeline = pipeline(
  retry({ maxAttempts: 3 }),
  circuitBreaker({ consecutiveFailures: 5 }),
  timeout('1s'),
  bulkhead({ limit: 100 }),
);
const aggressivePipeline = pipeline(
  retry({ maxAttempts: 3 }),
  circuitBreaker({ consecutiveFailures: 5 }),
  timeout({ after: '1s', strategy: 'aggressive' }),
  bulkhead({ limit: 100 }),
);
// The same pipeline on runtimes of its own: with nothing subscribed, with the Prometheus metrics alone
// ("metrics on": issue 8's cost target, metrics on within 2x of off), and with a whole monitor attached
// (the metrics, plus the dashboard's live aggregation and the failure-pattern ring), reported beside it.
const pipelineOn = (runtime: Runtime) =>
  pipeline(
    retry({ maxAttempts: 3, runtime }),
    circuitBreaker({ consecutiveFailures: 5, runtime }),
    timeout('1s', { runtime }),
    bulkhead({ limit: 100, runtime }),
  );
const metricsOffPipeline = pipelineOn(createRuntime());
// What the policies' own event emission costs once anyone listens: the floor under any subscriber.
const noopRuntime = createRuntime();
noopRuntime.events.subscribe(() => {});
const noopPipeline = pipelineOn(noopRuntime);
const prometheusRuntime = createRuntime();
new PrometheusMetrics().attach(prometheusRuntime.events);
const prometheusPipeline = pipelineOn(prometheusRuntime);
const monitorRuntime = createRuntime();
const monitor = createMonitor();
monitor.attach(monitorRuntime);
const monitorPipeline = pipelineOn(monitorRuntime);
const cockatiel = wrap(
  retryCockatiel(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff() }),
  cbCockatiel(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
  timeoutCockatiel(1000, TimeoutStrategy.Aggressive),
);
const opossum = new CircuitBreakerOpossum(work, { timeout: 1000 });

const rows: Row[] = [
  { key: 'bare_ns', label: 'bare await fn()', run: () => work() },
  { key: 'retry_ns', label: 'bulwark retry', run: via(retry({ maxAttempts: 3 })) },
  { key: 'breaker_ns', label: 'bulwark circuitBreaker', run: via(circuitBreaker()) },
  { key: 'timeout_ns', label: 'bulwark timeout (cooperative, the default)', run: via(timeout('1s')) },
  {
    key: 'timeout_aggressive_ns',
    label: 'bulwark timeout (aggressive)',
    run: via(timeout({ after: '1s', strategy: 'aggressive' })),
  },
  { key: 'bulkhead_ns', label: 'bulwark bulkhead', run: via(bulkhead({ limit: 100 })) },
  { key: 'ratelimit_ns', label: 'bulwark rateLimit', run: via(rateLimit({ rate: 1e12, burst: 1e9 })) },
  { key: 'fallback_ns', label: 'bulwark fallback', run: via(fallback(0)) },
  { key: 'hedge_ns', label: 'bulwark hedge', run: via(hedge({ delay: '1s' })) },
  {
    key: 'pipeline_ns',
    label: 'bulwark pipeline(retry, breaker, timeout, bulkhead)',
    run: via(bulwarkPipeline),
  },
  {
    key: 'pipeline_aggressive_ns',
    label: 'bulwark pipeline, aggressive timeout',
    run: via(aggressivePipeline),
  },
  {
    key: 'pipeline_metrics_off_ns',
    label: 'pipeline, metrics off (own runtime)',
    run: via(metricsOffPipeline),
  },
  {
    key: 'pipeline_noop_subscriber_ns',
    label: 'pipeline, a no-op subscriber (emission only)',
    run: via(noopPipeline),
  },
  { key: 'pipeline_prometheus_ns', label: 'pipeline, metrics on (Prometheus)', run: via(prometheusPipeline) },
  {
    key: 'pipeline_monitor_ns',
    label: 'pipeline, whole monitor (metrics, live view, patterns)',
    run: via(monitorPipeline),
  },
  {
    key: 'cockatiel_ns',
    label: 'cockatiel wrap(retry, circuitBreaker, timeout)',
    run: () => cockatiel.execute(work),
    scale: 0.05,
  },
  { key: 'opossum_ns', label: 'opossum fire() with timeout', run: () => opossum.fire() },
];
const measured = await measureInterleaved(rows);
for (const [key, m] of Object.entries(measured)) {
  results[key] = m.best;
  medians[key] = m.median;
}
/**
 * The median over rounds of `key`'s time over `base`'s in the same round: both run within the round, so a
 * disturbance that slows a whole round cancels out (the ratio of bests needs both rows to have one quiet round).
 */
function pairedRatio(key: string, base: string): number {
  const a = measured[key]?.rounds ?? [];
  const b = measured[base]?.rounds ?? [];
  const ratios = a.map((x, i) => x / (b[i] as number)).sort((x, y) => x - y);
  return Number((ratios[Math.floor(ratios.length / 2)] as number).toFixed(2));
}
opossum.shutdown();
await monitor.close();

// Failure path with 50,000 calls in the breaker's window. Neither breaker may open (thresholds out of
// reach), so every measured call runs the failure bookkeeping.
const WINDOW_CALLS = 50_000;
const windowBreaker = circuitBreaker({ failureRatio: 1, minimumThroughput: 1e9, window: '10m', buckets: 60 });
const swallow = () => undefined;
for (let i = 0; i < WINDOW_CALLS; i++)
  await windowBreaker.execute(i % 2 === 0 ? work : failing).catch(swallow);
{
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++)
    rounds.push(await loop(() => windowBreaker.execute(failing).catch(swallow), Math.ceil(CALLS / 10)));
  results.breaker_fail_ns = Math.min(...rounds);
  if (!json)
    console.log(
      `${`bulwark breaker failing call, ${WINDOW_CALLS} in window`.padEnd(52)} ${Math.min(...rounds)
        .toFixed(0)
        .padStart(8)} ns/call`,
    );
}

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
{
  const rounds: number[] = [];
  for (let r = 0; r < 3; r++) rounds.push(await loop(() => opossumWindow.fire().catch(swallow), 10));
  results.opossum_fail_ns = Math.min(...rounds);
  if (!json)
    console.log(
      `${`opossum failing call, ${WINDOW_CALLS} in window`.padEnd(52)} ${Math.min(...rounds)
        .toFixed(0)
        .padStart(8)} ns/call`,
    );
}
opossumWindow.shutdown();

const n = (k: string) => results[k] as number;
const summary = {
  ...results,
  pipeline_vs_bare: Number((n('pipeline_ns') / n('bare_ns')).toFixed(2)),
  cockatiel_vs_pipeline: Number((n('cockatiel_ns') / n('pipeline_ns')).toFixed(1)),
  opossum_vs_pipeline: Number((n('opossum_ns') / n('pipeline_ns')).toFixed(2)),
  metrics_on_vs_off: Number((n('pipeline_prometheus_ns') / n('pipeline_metrics_off_ns')).toFixed(2)),
  metrics_on_vs_off_paired: pairedRatio('pipeline_prometheus_ns', 'pipeline_metrics_off_ns'),
  noop_subscriber_vs_metrics_off: Number(
    (n('pipeline_noop_subscriber_ns') / n('pipeline_metrics_off_ns')).toFixed(2),
  ),
  monitor_vs_metrics_off: Number((n('pipeline_monitor_ns') / n('pipeline_metrics_off_ns')).toFixed(2)),
  monitor_vs_metrics_off_paired: pairedRatio('pipeline_monitor_ns', 'pipeline_metrics_off_ns'),
  opossum_vs_pipeline_aggressive: Number((n('opossum_ns') / n('pipeline_aggressive_ns')).toFixed(2)),
  medians: Object.fromEntries(Object.entries(medians).map(([k, v]) => [k, Math.round(v)])),
  targets: {
    pipeline_le_cockatiel_div_20: n('pipeline_ns') <= n('cockatiel_ns') / 20,
    pipeline_le_opossum_div_2: n('pipeline_ns') <= n('opossum_ns') / 2,
    metrics_on_le_2x_off: n('pipeline_prometheus_ns') <= 2 * n('pipeline_metrics_off_ns'),
    breaker_fail_le_10us: n('breaker_fail_ns') <= 10_000,
  },
  meta: {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    rounds: ROUNDS,
    calls: CALLS,
    statistic:
      'best round of interleaved rounds (medians under "medians"; *_paired: median of the per-round ratios)',
  },
};
for (const key of Object.keys(results)) {
  const v = results[key];
  if (typeof v === 'number') results[key] = Math.round(v);
}
Object.assign(summary, results);
console.log(JSON.stringify(summary));
process.exit(0);
