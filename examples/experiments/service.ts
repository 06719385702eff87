/**
 * A small HTTP service that reads a greeting from Redis — through the fault proxy in the experiment — and
 * serves it on `GET /work`. With its policies on (the default), a Redis call gets 150 ms (aggressive
 * timeout: ioredis cannot be cancelled), a circuit breaker stops calling a Redis that keeps failing, and
 * the fallback answers with a default greeting: the service stays fast while Redis is slow. Run it with
 * POLICIES=off to see the same fault break it.
 *
 *   PORT=8080 REDIS_URL=redis://127.0.0.1:26379 POLICIES=on npx tsx examples/experiments/service.ts
 */
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { circuitBreaker, fallback, pipeline, timeout } from '../../src/policy/index.js';

const port = Number(process.env.PORT ?? 8080);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:26379';
const policiesOn = process.env.POLICIES !== 'off';
const key = `bulwark-example:greeting:${port}`;

// No retries inside ioredis and no offline queue: the service's own policies decide what happens.
const redis = new Redis(redisUrl, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
redis.on('error', () => {});
await redis.connect().catch(() => {});
await redis.set(key, 'hello from redis').catch(() => {});

const readGreeting = pipeline(
  fallback('hello from the fallback'),
  circuitBreaker({ failureRatio: 0.5, window: '10s', minimumThroughput: 5, halfOpenAfter: '2s' }),
  timeout('150ms', { strategy: 'aggressive' }),
);

const server = createServer(async (req, res) => {
  if (req.url === '/health') {
    res.end('ok');
    return;
  }
  if (req.url !== '/work') {
    res.statusCode = 404;
    res.end();
    return;
  }
  try {
    const greeting = policiesOn ? await readGreeting.execute(() => redis.get(key)) : await redis.get(key);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ greeting }));
  } catch (error) {
    res.statusCode = 503;
    res.end(JSON.stringify({ error: (error as { message?: string } | null)?.message ?? String(error) }));
  }
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(
    `service listening on http://127.0.0.1:${port} (policies ${policiesOn ? 'on' : 'off'})\n`,
  );
});
const stop = () => {
  server.close();
  redis.disconnect();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
