/**
 * `rate-limit`: a real HTTP server on loopback enforces a quota (a token bucket) and answers 429 with
 * `Retry-After`. Four clients send the same bounded batch of requests, each to a fresh server: one with
 * no policy, one retrying naively (short fixed backoff, blind to `Retry-After`), one retrying when the
 * server says (`Retry-After`), and one pacing itself with a client-side `rateLimit` policy. Runs in
 * real time (a few seconds); the report shows each client's success rate, the share of its calls that
 * were wasted on a 429, the 429s received and its total time.
 */
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import type { Clock } from '../../core/clock.js';
import { backoff } from '../../policy/backoff.js';
import type { Policy } from '../../policy/policy.js';
import { rateLimit } from '../../policy/rate-limit.js';
import { retry } from '../../policy/retry.js';
import { runTasks } from '../runner.js';
import { defineScenario } from '../scenario.js';

/** The clients, in the order they run and are reported. */
export const RATE_LIMIT_CLIENTS = ['none', 'naive_retry', 'retry_after', 'rate_limit'] as const;
type ClientName = (typeof RATE_LIMIT_CLIENTS)[number];

/** The server's quota: a token bucket refilled at `rate` per second, holding at most `burst`. */
class Quota {
  private tokens: number;
  private last: number;
  constructor(
    private readonly clock: Clock,
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  /** Takes a token, or returns the whole seconds to wait for one (what `Retry-After` carries). */
  take(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    const waitMs = ((1 - this.tokens) * 1000) / this.rate;
    return Math.max(1, Math.ceil(waitMs / 1000));
  }
}

async function startServer(quota: Quota): Promise<{ server: Server; port: number }> {
  const server = createServer((request, response) => {
    request.resume();
    const retryAfter = quota.take();
    if (retryAfter > 0) {
      response.writeHead(429, { 'retry-after': String(retryAfter), 'content-type': 'text/plain' });
      response.end('Too Many Requests\n');
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.end('ok\n');
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/** A 429: `retryAfter` (ms) is what `retry` honours; the blind client's error carries no hint at all. */
class TooManyRequests extends Error {
  override readonly name = 'TooManyRequests';
  constructor(readonly retryAfter: number | undefined) {
    super('429 Too Many Requests');
  }
}

function get(agent: Agent, port: number): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path: '/resource', agent }, (response) => {
      response.resume();
      response.on('end', () => {
        const header = response.headers['retry-after'];
        resolve({
          status: response.statusCode ?? 0,
          retryAfter: typeof header === 'string' ? header : undefined,
        });
      });
    });
    request.on('error', reject);
    request.end();
  });
}

/** The `rate-limit` scenario. Tasks are requests per client; parameters: the quota, the clients' settings. */
export const rateLimitScenario = defineScenario({
  name: 'rate-limit',
  description:
    'a loopback server allowing 20 requests/s (burst 20) answers 429 + Retry-After; no policy vs naive retry vs Retry-After retry vs client-side rateLimit',
  clock: 'system',
  params: {
    quotaPerSecond: 20,
    burst: 20,
    concurrency: 10,
    maxAttempts: 5,
    naiveBackoffMs: 20,
    /** The client-side limiter's rate as a fraction of the server's quota (headroom for clock skew). */
    clientRateFactor: 0.9,
    /**
     * The most requests a client sends whatever `--tasks` says: the scenario runs in real time, and a
     * paced client needs about requests / quota seconds.
     */
    maxRequests: 200,
  },
  defaults: { tasks: 60 },
  async run({ runtime, tasks, params, record, progress }) {
    const clock = runtime.clock;
    const policies: Record<ClientName, Policy | undefined> = {
      none: undefined,
      naive_retry: retry({
        name: 'naive_retry',
        maxAttempts: params.maxAttempts,
        backoff: backoff.constant(params.naiveBackoffMs),
        runtime,
      }),
      retry_after: retry({ name: 'retry_after', maxAttempts: params.maxAttempts, maxDelay: '5s', runtime }),
      rate_limit: rateLimit({
        name: 'rate_limit',
        rate: params.quotaPerSecond * params.clientRateFactor,
        burst: Math.max(1, Math.floor(params.burst * params.clientRateFactor)),
        mode: 'wait',
        runtime,
      }),
    };
    const requests = Math.min(tasks, params.maxRequests);
    for (const [index, name] of RATE_LIMIT_CLIENTS.entries()) {
      const quota = new Quota(clock, params.quotaPerSecond, params.burst);
      const { server, port } = await startServer(quota);
      const agent = new Agent({ keepAlive: true, maxSockets: params.concurrency });
      const policy = policies[name];
      let calls = 0;
      let rejected = 0;
      let succeeded = 0;
      const attempt = async (): Promise<void> => {
        calls++;
        const { status, retryAfter } = await get(agent, port);
        const wasted = status === 429;
        record.count(`wasted.${name}`, wasted);
        if (!wasted) return;
        rejected++;
        const hintMs = retryAfter === undefined ? undefined : Number(retryAfter) * 1000;
        throw new TooManyRequests(name === 'retry_after' ? hintMs : undefined);
      };
      const started = clock.now();
      try {
        await runTasks(
          requests,
          params.concurrency,
          async () => {
            const begun = clock.now();
            let ok = true;
            try {
              await (policy === undefined ? attempt() : policy.execute(attempt));
              succeeded++;
            } catch (error) {
              if (!(error instanceof TooManyRequests)) throw error;
              ok = false;
            }
            record.count(`success.${name}`, ok);
            record.latency(`time.${name}`, clock.now() - begun);
          },
          (done) =>
            progress(
              Math.floor(((index * requests + done) * tasks) / (requests * RATE_LIMIT_CLIENTS.length)),
            ),
        );
      } finally {
        agent.destroy();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      }
      record.add(`calls.${name}`, calls);
      record.add(`http429.${name}`, rejected);
      record.add(`succeeded.${name}`, succeeded);
      record.max(`total_ms.${name}`, Math.round(clock.now() - started));
    }
  },
  // Named for the table: before is the client without the mechanism, after the one with it.
  comparisons: [
    { metric: 'success: none → Retry-After retry', before: 'success.none', after: 'success.retry_after' },
    { metric: 'success: none → client rateLimit', before: 'success.none', after: 'success.rate_limit' },
    {
      metric: 'wasted: naive → Retry-After retry',
      before: 'wasted.naive_retry',
      after: 'wasted.retry_after',
    },
  ],
  expect: [
    {
      metric: 'success.none',
      atMost: 0.8,
      description: 'the quota bites: a client with no policy loses requests',
    },
    { metric: 'success.retry_after', atLeast: 0.95, description: 'retrying when the server says recovers' },
    { metric: 'success.rate_limit', atLeast: 0.95, description: 'pacing below the quota succeeds' },
    { metric: 'wasted.rate_limit', atMost: 0.05, description: 'pacing wastes (almost) no calls' },
    { metric: 'wasted.naive_retry', atLeast: 0.5, description: 'blind retries mostly hit the limit again' },
  ],
});
