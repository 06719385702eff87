/**
 * The README's experiment, end to end on real parts: the example service (its own process) reads Redis
 * through Bulwark's TCP fault proxy; `bulwark run examples/experiments/redis-latency.yaml` slows Redis by
 * 1 s. With the service's policies on, the steady state holds; with them off, the run deviates.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ProxyServer } from '../src/chaos/tcp/index.js';
import { SystemClock } from '../src/core/clock.js';
import { createRuntime } from '../src/core/runtime.js';
import { loadExperimentFile, runExperiment } from '../src/lab/experiment/index.js';
import { service } from './services.js';

const redis = await service('redis');
const clock = new SystemClock();

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startService(policies: 'on' | 'off', redisPort: number) {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/experiments/service.ts'], {
    env: {
      ...process.env,
      PORT: String(port),
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      POLICIES: policies,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  for (let i = 0; i < 200 && !out.includes('listening'); i++) await clock.sleep(50);
  if (!out.includes('listening')) throw new Error(`the example service did not start: ${out}`);
  return { url: `http://127.0.0.1:${port}`, child };
}

redis.describe('examples/experiments/redis-latency.yaml against the example service', () => {
  let proxies: ProxyServer;
  let api: string;
  let redisPort: number;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    proxies = new ProxyServer({ runtime: createRuntime({ seed: 7 }), port: 0 });
    api = (await proxies.listen()).url;
    const proxy = await proxies.createProxy({ name: 'redis', upstream: '127.0.0.1:6379' });
    redisPort = Number(proxy.listen.split(':').at(-1));
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGTERM');
    await proxies.close();
  });

  const run = async (policies: 'on' | 'off') => {
    const target = await startService(policies, redisPort);
    children.push(target.child);
    const experiment = await loadExperimentFile('examples/experiments/redis-latency.yaml', {
      SERVICE_URL: target.url,
      TOXIPROXY_URL: api,
    });
    return runExperiment(experiment);
  };

  it('holds with the policies on: /work stays fast while Redis is 1 s slow', async () => {
    const journal = await run('on');
    expect([journal.status, journal.deviated]).toEqual(['completed', false]);
    expect(journal.run[0]).toMatchObject({ name: 'slow redis', status: 'succeeded' });
    expect(journal.rollbacks).toMatchObject([{ name: 'remove the toxic', status: 'succeeded' }]);
    const load = journal.load;
    expect(load?.phases.during.total).toBeGreaterThan(10);
    expect(load?.phases.during.rate).toBeGreaterThan(0.9);
    expect(load?.phases.after.rate).toBe(1);
  });

  it('deviates with the policies off: the same fault makes /work slow', async () => {
    const journal = await run('off');
    expect([journal.status, journal.deviated]).toEqual(['completed', true]);
    expect(journal.steadyStates.after?.probes[0]?.tolerance?.reason).toMatch(
      /^took \d+ ms, more than 400 ms$/,
    );
    expect(journal.rollbacks).toMatchObject([{ status: 'succeeded' }]);
    expect(journal.load?.phases.before.rate).toBe(1);
  });
});
