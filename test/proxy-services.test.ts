/**
 * The proxy in front of real dependencies: ioredis → proxy → Redis, and pg → proxy → PostgreSQL. Latency
 * shows in the clients' timings, `timeout` and `reset_peer` produce the errors these clients really raise,
 * and removing the toxic restores service. Skipped outside CI when a service is missing; failing in CI.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ProxyServer } from '../src/chaos/tcp/server.js';
import { now, until } from '../src/chaos/tcp/testing.js';
import { createRuntime } from '../src/core/runtime.js';
import { POSTGRES_URL, REDIS_HOST, REDIS_PORT, service } from './services.js';

const redis = await service('redis');
const postgres = await service('postgres');

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = now();
  const value = await work();
  return { ms: now() - start, value };
}

redis.describe('proxy in front of Redis (ioredis)', () => {
  let server: ProxyServer;
  let listen: string;

  beforeAll(async () => {
    server = new ProxyServer({ runtime: createRuntime({ seed: 1 }), port: 0 });
    listen = (await server.createProxy({ name: 'redis', upstream: `${REDIS_HOST}:${REDIS_PORT}` })).listen;
  });
  afterAll(() => server.close());

  function connectClient(options: Record<string, unknown> = {}) {
    const [host, port] = listen.split(':') as [string, string];
    const errors: NodeJS.ErrnoException[] = [];
    const client = new Redis({
      host,
      port: Number(port),
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      ...options,
    });
    client.on('error', (error: NodeJS.ErrnoException) => errors.push(error));
    return { client, errors };
  }

  it('latency shows in the client timings, and goes away with the toxic', async () => {
    const { client } = connectClient();
    await client.connect();
    try {
      const direct = await timed(() => client.ping());
      expect(direct.value).toBe('PONG');
      server.addToxic('redis', { name: 'slow', type: 'latency', attributes: { latency: 150 } });
      const slow = await timed(() => client.set('bulwark:proxy', 'x'));
      expect(slow.value).toBe('OK');
      expect(slow.ms).toBeGreaterThanOrEqual(149);
      server.removeToxic('redis', 'slow');
      const after = await timed(() => client.get('bulwark:proxy'));
      expect(after.value).toBe('x');
      expect(after.ms).toBeLessThan(100);
    } finally {
      client.disconnect();
    }
  });

  it('timeout makes commands time out; removing it restores service', async () => {
    const { client } = connectClient({ commandTimeout: 300, retryStrategy: () => null });
    await client.connect();
    try {
      server.addToxic('redis', {
        name: 'stall',
        type: 'timeout',
        stream: 'upstream',
        attributes: { timeout: 0 },
      });
      await expect(client.ping()).rejects.toThrow('Command timed out');
    } finally {
      // The dropped command leaves ioredis's reply queue out of step: this connection is done for.
      client.disconnect();
    }
    server.removeToxic('redis', 'stall');
    const { client: fresh } = connectClient();
    await fresh.connect();
    try {
      expect(await fresh.ping()).toBe('PONG');
    } finally {
      fresh.disconnect();
    }
  });

  it('reset_peer gives ECONNRESET; a reconnecting client recovers once the toxic is removed', async () => {
    const { client, errors } = connectClient({ retryStrategy: () => null });
    await client.connect();
    server.addToxic('redis', { name: 'rst', type: 'reset_peer', attributes: { timeout: 0 } });
    await expect(client.ping()).rejects.toThrow('Connection is closed.');
    expect(errors.map((e) => e.code)).toContain('ECONNRESET');
    client.disconnect();

    const { client: patient, errors: patientErrors } = connectClient({
      lazyConnect: false,
      retryStrategy: () => 20,
      maxRetriesPerRequest: null,
    });
    try {
      const pending = patient.ping();
      await until(() => patientErrors.length >= 2, 'the reconnecting client to be reset twice');
      expect(patientErrors.every((e) => e.code === 'ECONNRESET')).toBe(true);
      server.removeToxic('redis', 'rst');
      expect(await pending).toBe('PONG');
    } finally {
      patient.disconnect();
    }
  });
});

postgres.describe('proxy in front of PostgreSQL (pg)', () => {
  let server: ProxyServer;
  let url: string;

  beforeAll(async () => {
    server = new ProxyServer({ runtime: createRuntime({ seed: 1 }), port: 0 });
    const target = new URL(POSTGRES_URL);
    const proxy = await server.createProxy({
      name: 'pg',
      upstream: `${target.hostname}:${target.port || 5432}`,
    });
    const [, port] = proxy.listen.split(':') as [string, string];
    target.hostname = '127.0.0.1';
    target.port = port;
    url = target.toString();
  });
  afterAll(() => server.close());

  async function connectClient(options: pg.ClientConfig = {}) {
    const client = new pg.Client({ connectionString: url, ...options });
    const errors: NodeJS.ErrnoException[] = [];
    client.on('error', (error: NodeJS.ErrnoException) => errors.push(error));
    await client.connect();
    return { client, errors };
  }

  it('latency shows in query timings, and goes away with the toxic', async () => {
    const { client } = await connectClient();
    try {
      const direct = await timed(() => client.query('select 1 as one'));
      expect(direct.value.rows).toEqual([{ one: 1 }]);
      server.addToxic('pg', {
        name: 'slow',
        type: 'latency',
        stream: 'upstream',
        attributes: { latency: 150 },
      });
      const slow = await timed(() => client.query('select 2 as two'));
      expect(slow.value.rows).toEqual([{ two: 2 }]);
      expect(slow.ms).toBeGreaterThanOrEqual(149);
      server.removeToxic('pg', 'slow');
      const after = await timed(() => client.query('select 3 as three'));
      expect(after.ms).toBeLessThan(100);
    } finally {
      await client.end();
    }
  });

  it('timeout gives "Query read timeout"; removing it restores service', async () => {
    const { client } = await connectClient({ query_timeout: 300 });
    try {
      server.addToxic('pg', { name: 'stall', type: 'timeout', attributes: { timeout: 0 } });
      await expect(client.query('select 1')).rejects.toThrow('Query read timeout');
    } finally {
      client.end().catch(() => {});
    }
    server.removeToxic('pg', 'stall');
    const { client: fresh } = await connectClient();
    try {
      expect((await fresh.query('select 4 as four')).rows).toEqual([{ four: 4 }]);
    } finally {
      await fresh.end();
    }
  });

  it('reset_peer makes the query fail with ECONNRESET; removing it restores service', async () => {
    const { client } = await connectClient();
    server.addToxic('pg', { name: 'rst', type: 'reset_peer', attributes: { timeout: 0 } });
    await expect(client.query('select 1')).rejects.toMatchObject({ code: 'ECONNRESET' });
    server.removeToxic('pg', 'rst');
    const { client: fresh } = await connectClient();
    try {
      expect((await fresh.query('select 5 as five')).rows).toEqual([{ five: 5 }]);
    } finally {
      await fresh.end();
    }
  });
});
