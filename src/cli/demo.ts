/**
 * `bulwark demo`: the original report's first experiment, done reproducibly. A dependency refuses 30% of
 * connections and hangs on 20% of calls; N calls go through it with no protection, with retry + timeout,
 * and with the full pipeline. Everything runs on a virtual clock from a seed, so the numbers are exact for
 * that seed and the run takes seconds however long the simulated backoff is.
 * (The chaos lab, `bulwark lab`, generalises this; until it lands this is the runnable example.)
 */
import { toMs } from '../core/duration.js';
import { type Runtime, virtualRuntime } from '../core/runtime.js';
import { wilson } from '../lab/stats.js';
import type { Policy, PolicyContext } from '../policy/index.js';
import { backoff, circuitBreaker, pipeline, retry, timeout } from '../policy/index.js';
import { type CommandIO, parseFlags, UsageError } from './io.js';

export interface DemoOptions {
  seed: string;
  calls: number;
  errorRate: number;
  hangRate: number;
}

export interface DemoRow {
  name: string;
  succeeded: number;
  calls: number;
  rate: number;
  ci95: [number, number];
  virtualSeconds: number;
}

function connectionRefused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
}

/** The flaky dependency: every decision comes from the runtime's seeded random stream. */
function flakyDependency(rt: Runtime, options: DemoOptions) {
  const random = rt.random.fork('dependency');
  return (ctx: PolicyContext): Promise<string> => {
    const roll = random.next();
    if (roll < options.errorRate) return Promise.reject(connectionRefused());
    if (roll < options.errorRate + options.hangRate) {
      // Hangs until the caller gives up, like a stalled TCP connection.
      return new Promise((_, reject) => {
        const signal = ctx.signal;
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
    const latency = random.lognormal(Math.log(20), 0.9);
    return rt.clock.sleep(latency).then(() => 'ok');
  };
}

async function runVariant(
  name: string,
  options: DemoOptions,
  build: (rt: Runtime) => Policy,
): Promise<DemoRow> {
  const rt = virtualRuntime(`${options.seed}/${name}`);
  const policy = build(rt);
  const call = flakyDependency(rt, options);
  let succeeded = 0;
  await rt.clock.run(async () => {
    for (let i = 0; i < options.calls; i++) {
      try {
        await policy.execute(call);
        succeeded++;
      } catch {
        // A failed call is what this demo counts.
      }
    }
  });
  return {
    name,
    succeeded,
    calls: options.calls,
    rate: succeeded / options.calls,
    ci95: wilson(succeeded, options.calls),
    virtualSeconds: rt.clock.now() / 1000,
  };
}

export async function runDemo(options: DemoOptions): Promise<DemoRow[]> {
  const perCall = toMs('1s');
  return [
    await runVariant('no protection (1s deadline)', options, (rt) =>
      timeout({ after: perCall, runtime: rt }),
    ),
    await runVariant('retry x4 + exponential backoff + timeout', options, (rt) =>
      pipeline(
        retry({ maxAttempts: 4, backoff: backoff.exponential({ initial: '100ms', max: '2s' }), runtime: rt }),
        timeout({ after: perCall, runtime: rt }),
      ),
    ),
    // The breaker opens only when nearly everything fails (a dependency that is down, not flaky), so it
    // never blocks calls that retries could still save.
    await runVariant('retry x6 + jitter + breaker + timeout 250ms', options, (rt) =>
      pipeline(
        retry({
          maxAttempts: 6,
          backoff: backoff.exponential({ initial: '50ms', max: '2s' }).withJitter('full'),
          runtime: rt,
        }),
        circuitBreaker({
          failureRatio: 0.9,
          window: '10s',
          minimumThroughput: 20,
          halfOpenAfter: '1s',
          runtime: rt,
        }),
        timeout({ after: '250ms', runtime: rt }),
      ),
    ),
  ];
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export async function demoCommand(argv: readonly string[], io: CommandIO): Promise<number> {
  const { values } = parseFlags(
    'demo',
    argv,
    {
      seed: { type: 'string', default: '1' },
      calls: { type: 'string', default: '10000' },
      'error-rate': { type: 'string', default: '0.3' },
      'hang-rate': { type: 'string', default: '0.2' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    false,
  );
  if (values.help) {
    io.out(`Usage: bulwark demo [--seed S] [--calls N] [--error-rate R] [--hang-rate R] [--json]

Runs N calls against a simulated dependency that refuses --error-rate of connections (default 0.3)
and hangs on --hang-rate of calls (default 0.2), with and without resilience policies, on a virtual
clock. Same seed, same numbers. Success rates carry 95% Wilson intervals.
`);
    return 0;
  }
  const calls = Number(values.calls);
  if (!Number.isInteger(calls) || calls < 1 || calls > 10_000_000) {
    throw new UsageError(`demo: --calls must be an integer from 1 to 10000000, got ${String(values.calls)}`);
  }
  const rate = (flag: string) => {
    const v = Number(values[flag]);
    if (!(v >= 0 && v <= 1))
      throw new UsageError(`demo: --${flag} must be a number in [0, 1], got ${String(values[flag])}`);
    return v;
  };
  const options: DemoOptions = {
    seed: String(values.seed),
    calls,
    errorRate: rate('error-rate'),
    hangRate: rate('hang-rate'),
  };
  if (options.errorRate + options.hangRate > 1) {
    throw new UsageError('demo: --error-rate + --hang-rate must not exceed 1');
  }
  const rows = await runDemo(options);
  if (values.json) {
    io.out(
      `${JSON.stringify({ seed: options.seed, calls, errorRate: options.errorRate, hangRate: options.hangRate, rows })}\n`,
    );
    return 0;
  }
  io.out(
    `Flaky dependency: ${pct(options.errorRate)} connection refused, ${pct(options.hangRate)} hang; ${calls} calls; seed ${options.seed}\n\n`,
  );
  const width = Math.max(...rows.map((r) => r.name.length));
  io.out(`${'variant'.padEnd(width)}  success   95% CI            virtual time\n`);
  for (const r of rows) {
    io.out(
      `${r.name.padEnd(width)}  ${pct(r.rate).padStart(6)}   ${`[${pct(r.ci95[0])}, ${pct(r.ci95[1])}]`.padEnd(16)}  ${r.virtualSeconds.toFixed(0)}s\n`,
    );
  }
  io.out(`\nReproduce: bulwark demo --seed ${options.seed} --calls ${calls}\n`);
  return 0;
}
