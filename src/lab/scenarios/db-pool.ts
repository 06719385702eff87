/**
 * `db-pool`: connection-pool exhaustion against a real PostgreSQL. A `pg.Pool` with a small `max` takes
 * an open-loop load of queries, some slow (`pg_sleep`) and some from code that leaks its client for a
 * while. Unprotected, the slow and leaked clients hold the pool, acquires wait and time out, and the
 * latency of every query cascades. Protected, a fallback + circuit breaker + bulkhead + timeout pipeline
 * cancels what runs too long (destroying its connection, which frees the pool slot), fails fast when
 * the pool is saturated and answers from a fallback.
 *
 * `pg` (an optional peer dependency) is loaded only when this scenario runs. It needs a database, so it
 * is opt-in: `bulwark lab db-pool` runs it, a plain `bulwark lab` does not.
 */
import type { Pool, PoolClient } from 'pg';
import type { Clock, Timer } from '../../core/clock.js';
import { isBulwarkError } from '../../core/errors.js';
import type { Runtime } from '../../core/runtime.js';
import { bulkhead } from '../../policy/bulkhead.js';
import { circuitBreaker } from '../../policy/circuit-breaker.js';
import type { PolicyContext } from '../../policy/context.js';
import { fallback } from '../../policy/fallback.js';
import { pipeline } from '../../policy/pipeline.js';
import { timeout } from '../../policy/timeout.js';
import type { Recorder } from '../scenario.js';
import { defineScenario, ServiceUnavailableError } from '../scenario.js';

/** The message pg's pool rejects an acquire with when `connectionTimeoutMillis` passes. */
const ACQUIRE_TIMEOUT = 'timeout exceeded when trying to connect';

/** The kinds errors are counted by, in report order. */
const KINDS = [
  'acquire_timeout',
  'timeout',
  'bulkhead_full',
  'circuit_open',
  'connection',
  'query',
  'other',
] as const;
type ErrorKind = (typeof KINDS)[number];

function kindOf(error: unknown): ErrorKind {
  if (isBulwarkError(error, 'TIMEOUT')) return 'timeout';
  if (isBulwarkError(error, 'BULKHEAD_FULL')) return 'bulkhead_full';
  if (isBulwarkError(error, 'CIRCUIT_OPEN')) return 'circuit_open';
  const message = error instanceof Error ? error.message : '';
  if (message.includes(ACQUIRE_TIMEOUT)) return 'acquire_timeout';
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return 'connection';
  if (message.includes('Connection terminated')) return 'connection';
  if (typeof code === 'string') return 'query';
  return 'other';
}

interface PgModule {
  Pool: new (config: Record<string, unknown>) => Pool;
}

async function loadPg(): Promise<PgModule> {
  try {
    const loaded = (await import('pg')) as unknown as { default?: PgModule } & PgModule;
    return loaded.default ?? loaded;
  } catch (error) {
    throw new ServiceUnavailableError(
      'postgres',
      'db-pool needs the "pg" package (an optional peer dependency): npm install pg',
      { cause: error },
    );
  }
}

function where(url: string): string {
  try {
    const { hostname, port, pathname } = new URL(url);
    return `${hostname}:${port || 5432}${pathname}`;
  } catch {
    return 'the configured URL';
  }
}

/** Connects once, so that an unreachable database is one clear line before any load starts. */
async function probe(pg: PgModule, url: string, timeoutMs: number): Promise<void> {
  const pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: timeoutMs });
  pool.on('error', () => {});
  try {
    await pool.query('select 1');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ServiceUnavailableError(
      'postgres',
      `db-pool needs PostgreSQL at ${where(url)}: ${reason.split('\n')[0]}`,
      {
        cause: error,
      },
    );
  } finally {
    await pool.end();
  }
}

interface Params {
  url: string;
  poolMax: number;
  arrivalMs: number;
  slowRate: number;
  slowMs: number;
  leakRate: number;
  leakMs: number;
  acquireTimeoutMs: number;
  timeoutMs: number;
  queue: number;
  deadlineMs: number;
  proxyLatencyMs: number;
  proxyJitterMs: number;
}

/**
 * When `proxyLatencyMs` > 0, puts Bulwark's TCP fault proxy between the pool and PostgreSQL with a latency
 * toxic on the replies, and returns the URL through it and the proxy server to close.
 */
async function throughProxy(
  runtime: Runtime,
  params: Params,
): Promise<{ url: string; close: () => Promise<void> }> {
  if (params.proxyLatencyMs <= 0) return { url: params.url, close: async () => {} };
  const { ProxyServer } = await import('../../chaos/tcp/index.js');
  const target = new URL(params.url);
  const proxies = new ProxyServer({ runtime });
  const proxy = await proxies.createProxy({
    name: 'postgres',
    upstream: `${target.hostname}:${target.port || 5432}`,
  });
  proxies.addToxic('postgres', {
    name: 'latency',
    type: 'latency',
    stream: 'downstream',
    attributes: { latency: params.proxyLatencyMs, jitter: params.proxyJitterMs },
  });
  target.host = proxy.listen;
  return { url: target.toString(), close: () => proxies.close() };
}

type Work = 'fast' | 'slow' | 'leak';

/** The same sequence of requests for both arms, drawn from the run's seed. */
function plan(runtime: Runtime, tasks: number, params: Params): Work[] {
  const random = runtime.random.fork('db-pool:plan');
  return Array.from({ length: tasks }, () => {
    const draw = random.next();
    return draw < params.leakRate ? 'leak' : draw < params.leakRate + params.slowRate ? 'slow' : 'fast';
  });
}

/** Keeps leaked clients checked out for `leakMs`, then gives them back (or at once when the arm ends). */
class Leaks {
  private readonly held = new Map<PoolClient, Timer>();
  constructor(
    private readonly clock: Clock,
    private readonly leakMs: number,
  ) {}

  hold(client: PoolClient): void {
    const timer = this.clock.setTimer(this.leakMs, (c) => this.give(c), client);
    this.held.set(client, timer);
  }

  private give(client: PoolClient): void {
    if (!this.held.delete(client)) return;
    client.release();
  }

  releaseAll(): void {
    for (const [client, timer] of this.held) {
      timer.cancel();
      client.release();
    }
    this.held.clear();
  }
}

/** A pooled client, or the signal's reason as soon as it aborts (a client that arrives later goes back). */
function acquire(pool: Pool, signal: AbortSignal | undefined): Promise<PoolClient> {
  if (signal === undefined) return pool.connect();
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<PoolClient>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    pool.connect().then(
      (client) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) client.release();
        else resolve(client);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Runs one query of `work` on a client from `pool`; a cancellation destroys the client's connection. */
async function query(
  pool: Pool,
  work: Work,
  params: Params,
  leaks: Leaks,
  signal: AbortSignal | undefined,
): Promise<void> {
  const client = await acquire(pool, signal);
  let destroyed = false;
  const cancel = () => {
    destroyed = true;
    // Destroying the connection is how a pg query is cancelled client-side; the pool opens a fresh one.
    client.release(true);
  };
  signal?.addEventListener('abort', cancel, { once: true });
  try {
    if (work === 'slow') await client.query('select pg_sleep($1)', [params.slowMs / 1000]);
    else await client.query('select 1');
  } catch (error) {
    if (!destroyed) client.release(true);
    throw error;
  } finally {
    signal?.removeEventListener('abort', cancel);
  }
  if (destroyed) return;
  if (work === 'leak') leaks.hold(client);
  else client.release();
}

type Arm = 'unprotected' | 'protected';

async function runArm(
  arm: Arm,
  pg: PgModule,
  runtime: Runtime,
  works: readonly Work[],
  params: Params,
  record: Recorder,
  onDone: () => void,
): Promise<void> {
  const clock = runtime.clock;
  const pool = new pg.Pool({
    connectionString: params.url,
    max: params.poolMax,
    connectionTimeoutMillis: params.acquireTimeoutMs,
  });
  // A connection destroyed on purpose (a cancelled query) must not crash the run.
  pool.on('error', () => {});
  const leaks = new Leaks(clock, params.leakMs);
  // Errors by kind: why a request got no answer from the database (for the protected arm, the error the
  // fallback replaced).
  const errors = new Map<ErrorKind, number>(KINDS.map((k) => [k, 0]));
  const count = (error: unknown) => {
    const kind = kindOf(error);
    errors.set(kind, (errors.get(kind) ?? 0) + 1);
  };
  const policy =
    arm === 'protected'
      ? pipeline(
          fallback(
            (error: unknown) => {
              count(error);
              return 'fallback' as const;
            },
            { runtime },
          ),
          circuitBreaker({
            name: 'db',
            failureRatio: 0.5,
            window: '2s',
            minimumThroughput: 10,
            halfOpenAfter: '500ms',
            runtime,
          }),
          // Outside the bulkhead, so that the deadline bounds the wait for a slot as well as the query.
          timeout(params.timeoutMs, { runtime }),
          bulkhead({ name: 'db', limit: params.poolMax, queue: params.queue, runtime }),
        )
      : undefined;
  let succeeded = 0;
  let answered = 0;
  let inTime = 0;
  const start = clock.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < works.length; i++) {
    const due = start + i * params.arrivalMs;
    if (clock.now() < due) await clock.sleep(due - clock.now());
    const work = works[i] as Work;
    const began = clock.now();
    const request = async (): Promise<void> => {
      let outcome: 'db' | 'fallback';
      try {
        outcome =
          policy === undefined
            ? await query(pool, work, params, leaks, undefined).then(() => 'db' as const)
            : await policy.execute((ctx: PolicyContext) =>
                query(pool, work, params, leaks, ctx.signal).then(() => 'db' as const),
              );
      } catch (error) {
        count(error);
        record.latency(`${arm}.latency_ms`, clock.now() - began);
        return;
      }
      const took = clock.now() - began;
      record.latency(`${arm}.latency_ms`, took);
      answered++;
      if (took <= params.deadlineMs) inTime++;
      if (outcome === 'db') succeeded++;
    };
    inFlight.push(request().finally(onDone));
  }
  await Promise.all(inFlight);
  leaks.releaseAll();
  await pool.end();
  const tasks = works.length;
  record.countMany(`${arm}.success`, succeeded, tasks);
  record.countMany(`${arm}.answered`, answered, tasks);
  record.countMany(`${arm}.answered_in_time`, inTime, tasks);
  for (const kind of KINDS) record.countMany(`${arm}.error.${kind}`, errors.get(kind) ?? 0, tasks);
}

/** The `db-pool` scenario (real PostgreSQL; opt-in). */
export const dbPool = defineScenario({
  name: 'db-pool',
  description:
    'real PostgreSQL, pool max 4, 100 req/s with 10% pg_sleep(0.5) and 1% clients leaked for 1 s: no protection vs fallback + breaker + bulkhead + timeout',
  params: {
    /** The database; `BULWARK_POSTGRES_URL` changes the default (the CLI takes no parameters). */
    url: process.env.BULWARK_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test',
    poolMax: 4,
    /** Milliseconds between request arrivals (open loop). */
    arrivalMs: 10,
    slowRate: 0.1,
    slowMs: 500,
    /** Probability that a request leaks its client (holds it for `leakMs` after it finished). */
    leakRate: 0.01,
    leakMs: 1000,
    /** pg's `connectionTimeoutMillis`: the longest wait for a pooled client. */
    acquireTimeoutMs: 1000,
    /** The protected arm's timeout policy. */
    timeoutMs: 200,
    /** The protected arm's bulkhead queue (its limit is `poolMax`; the timeout bounds the wait). */
    queue: 16,
    /** What the caller can wait: an answer later than this counts against `answered_in_time`. */
    deadlineMs: 300,
    /** > 0: the database is reached through Bulwark's TCP fault proxy adding this latency to every reply. */
    proxyLatencyMs: 0,
    /** The proxy latency's jitter (uniform ±, seeded). */
    proxyJitterMs: 0,
  },
  defaults: { tasks: 200 },
  clock: 'system',
  services: ['postgres'],
  async run({ runtime, tasks, params, record, progress }) {
    const pg = await loadPg();
    await probe(pg, params.url, 2000);
    const proxied = await throughProxy(runtime, params);
    const arms = { ...params, url: proxied.url };
    const works = plan(runtime, tasks, params);
    record.add('requests.slow', works.filter((w) => w === 'slow').length);
    record.add('requests.leak', works.filter((w) => w === 'leak').length);
    let done = 0;
    const onDone = () => progress(Math.min(tasks, Math.floor(++done / 2)));
    try {
      await runArm('unprotected', pg, runtime, works, arms, record, onDone);
      await runArm('protected', pg, runtime, works, arms, record, onDone);
    } finally {
      await proxied.close();
    }
  },
  comparisons: [
    { metric: 'answered', before: 'unprotected.answered', after: 'protected.answered' },
    {
      metric: 'answered in time (deadlineMs)',
      before: 'unprotected.answered_in_time',
      after: 'protected.answered_in_time',
    },
    {
      metric: 'acquire timeouts',
      before: 'unprotected.error.acquire_timeout',
      after: 'protected.error.acquire_timeout',
    },
  ],
  expect: [
    {
      metric: 'protected.answered',
      atLeast: 0.99,
      description: 'the protected arm answers (db or fallback)',
    },
  ],
});
