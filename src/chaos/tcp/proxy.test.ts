import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isBulwarkError } from '../../core/errors.js';
import { createRuntime } from '../../core/runtime.js';
import { ProxyServer } from './server.js';
import { client, type EchoServer, echoServer, now, pause, until } from './testing.js';

let upstream: EchoServer;
let server: ProxyServer;

beforeEach(async () => {
  upstream = await echoServer();
  server = new ProxyServer({ runtime: createRuntime({ seed: 1 }), port: 0 });
});

afterEach(async () => {
  await server.close();
  await upstream.close();
});

async function proxyTo(target = upstream.address, name = 'p'): Promise<string> {
  const proxy = await server.createProxy({ name, listen: '127.0.0.1:0', upstream: target });
  return proxy.listen;
}

/** Sends `text` and waits for `bytes` bytes back; returns the milliseconds it took. */
async function roundTrip(
  c: Awaited<ReturnType<typeof client>>,
  text: string,
  bytes = text.length,
): Promise<number> {
  const start = now();
  const before = c.received().length;
  c.socket.write(text);
  await until(() => c.received().length >= before + bytes, `${bytes} bytes back`);
  return now() - start;
}

describe('TCP proxy', () => {
  it('forwards both ways and reports the bound address', async () => {
    const listen = await proxyTo();
    expect(listen).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(listen).not.toBe('127.0.0.1:0');
    const c = await client(listen);
    await roundTrip(c, 'hello');
    expect(c.received().toString()).toBe('hello');
    c.socket.end();
    await until(() => c.closed, 'the client to close');
  });

  it('moves 16 MiB intact, both ways, with backpressure', async () => {
    const c = await client(await proxyTo());
    const payload = Buffer.alloc(16 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(i, i);
    c.socket.end(payload);
    await until(() => c.ended, 'the echoed payload', 20_000);
    const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(digest(c.received())).toBe(digest(payload));
  });

  it('pauses reading while the receiving side does not read', async () => {
    let written = 0;
    let blocked = false;
    const source = await echoServer((socket) => {
      const chunk = Buffer.alloc(64 * 1024);
      const pump = () => {
        while (written < 256 * 1024 * 1024) {
          written += chunk.length;
          if (!socket.write(chunk)) {
            blocked = true;
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    const c = await client(await proxyTo(source.address));
    c.socket.pause();
    await until(() => blocked, 'the upstream writer to block');
    const stalled = written;
    await new Promise((resolve) => setImmediate(resolve));
    // Kernel buffers on both hops plus the proxy's high-water mark: tens of MiB at most, never 256.
    expect(stalled).toBeLessThan(64 * 1024 * 1024);
    c.socket.destroy();
    await source.close();
  });

  it('latency delays each chunk by latency ± jitter', async () => {
    const c = await client(await proxyTo());
    const direct = await roundTrip(c, 'a');
    server.addToxic('p', { type: 'latency', attributes: { latency: 150, jitter: 0 } });
    const slow = await roundTrip(c, 'b');
    expect(slow).toBeGreaterThanOrEqual(149);
    expect(slow).toBeGreaterThan(direct);
    server.addToxic('p', { type: 'latency', stream: 'upstream', attributes: { latency: 100 } });
    expect(await roundTrip(c, 'c')).toBeGreaterThanOrEqual(249);
    server.removeToxic('p', 'latency_downstream');
    server.removeToxic('p', 'latency_upstream');
    const after = await roundTrip(c, 'd');
    expect(after).toBeLessThan(100);
    expect(c.closed).toBe(false);
  });

  it('removing a toxic releases what it holds, in order, and closes nothing', async () => {
    const c = await client(await proxyTo());
    server.addToxic('p', { type: 'latency', attributes: { latency: 60_000 } });
    c.socket.write('first ');
    c.socket.write('second');
    // The echo server has read (and written back) both writes: the proxy holds them in the toxic.
    await until(() => [...upstream.sockets].some((s) => s.bytesWritten === 12), 'the upstream echo');
    expect(c.received().length).toBe(0);
    server.removeToxic('p', 'latency_downstream');
    await until(() => c.received().length === 12, 'the held bytes');
    expect(c.received().toString()).toBe('first second');
    expect(c.closed).toBe(false);
    expect(upstream.sockets.size).toBe(1);
  });

  it('bandwidth limits the rate in KB/s', async () => {
    const c = await client(await proxyTo());
    server.addToxic('p', { type: 'bandwidth', attributes: { rate: 1000 } });
    const took = await roundTrip(c, 'x'.repeat(300 * 1024));
    // 300 KB at 1000 KB/s: 300 ms.
    expect(took).toBeGreaterThanOrEqual(280);
  });

  it('slicer splits data into small delayed pieces, intact', async () => {
    const c = await client(await proxyTo());
    server.addToxic('p', {
      type: 'slicer',
      attributes: { average_size: 10, size_variation: 5, delay: 2000 },
    });
    const text = 'abcdefghijklmnopqrstuvwxyz'.repeat(8);
    await roundTrip(c, text);
    expect(c.received().toString()).toBe(text);
    // Piece sizes are checked on the virtual clock (toxics.test.ts): a busy receiver may read several at once.
    expect(c.chunks.length).toBeGreaterThan(1);
  });

  it('timeout stops all data and closes after the timeout', async () => {
    const c = await client(await proxyTo());
    server.addToxic('p', { type: 'timeout', attributes: { timeout: 200 } });
    const start = now();
    c.socket.write('lost');
    await until(() => c.ended, 'the proxy to close the connection (FIN)');
    expect(now() - start).toBeGreaterThanOrEqual(190);
    expect(c.received().length).toBe(0);
  });

  it('timeout 0 stalls until the toxic is removed, then data flows again', async () => {
    const c = await client(await proxyTo());
    server.addToxic('p', { type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } });
    c.socket.write('dropped');
    await pause(100); // a negative check (nothing may arrive) needs a bounded wait
    expect(c.received().length).toBe(0);
    expect(c.closed).toBe(false);
    server.removeToxic('p', 'timeout_upstream');
    await roundTrip(c, 'flows');
    expect(c.received().toString()).toBe('flows');
  });

  it('reset_peer resets the connection: the client sees ECONNRESET', async () => {
    const c = await client(await proxyTo());
    server.addToxic('p', { type: 'reset_peer', attributes: { timeout: 50 } });
    c.socket.write('ping');
    await until(() => c.closed, 'the reset');
    expect(c.error?.code).toBe('ECONNRESET');
  });

  it('limit_data closes after the given bytes', async () => {
    const c = await client(await proxyTo());
    server.addToxic('p', { type: 'limit_data', attributes: { bytes: 10 } });
    c.socket.write('0123456789abcdef');
    await until(() => c.ended, 'the close (FIN)');
    expect(c.received().toString()).toBe('0123456789');
    expect(c.error).toBeUndefined();
  });

  it('slow_close delays the close', async () => {
    const c = await client(await proxyTo());
    server.addToxic('p', { type: 'slow_close', attributes: { delay: 200 } });
    await roundTrip(c, 'x');
    const start = now();
    c.socket.end();
    await until(() => c.ended, 'the end');
    expect(now() - start).toBeGreaterThanOrEqual(190);
  });

  it('toxicity 0 never fires; a disabled proxy refuses connections and closes open ones', async () => {
    const listen = await proxyTo();
    server.addToxic('p', { type: 'timeout', toxicity: 0, attributes: { timeout: 10 } });
    const c = await client(listen);
    await roundTrip(c, 'ok');
    await server.updateProxy('p', { enabled: false });
    await until(() => c.ended, 'the proxy to close the connection (FIN)');
    await expect(client(listen)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await server.updateProxy('p', { enabled: true });
    expect(server.get('p').listen).toBe(listen);
    const again = await client(listen);
    await roundTrip(again, 'back');
  });

  it('closes the client when the upstream refuses', async () => {
    const dead = await echoServer();
    await dead.close();
    const c = await client(await proxyTo(dead.address));
    await until(() => c.ended, 'the client to be closed (FIN)');
  });

  it('errors carry codes: duplicate proxy, missing proxy, port in use', async () => {
    const listen = await proxyTo();
    await expect(server.createProxy({ name: 'p', upstream: upstream.address })).rejects.toMatchObject({
      code: 'PROXY_EXISTS',
      status: 409,
    });
    await expect(server.createProxy({ name: 'q', listen, upstream: upstream.address })).rejects.toMatchObject(
      {
        code: 'PROXY_LISTEN',
        status: 500,
        message: `listen tcp ${listen}: bind: address already in use`,
      },
    );
    try {
      server.get('nope');
      expect.unreachable();
    } catch (error) {
      expect(isBulwarkError(error, 'PROXY_NOT_FOUND')).toBe(true);
    }
    expect(() => server.addToxic('p', { type: 'latency', attributes: { latency: -1 } })).toThrow(
      /attributes.latency must be an integer >= 0, got -1/,
    );
  });
});

describe('toxicity and seeds', () => {
  /** For each request (20 per connection), whether the latency toxic fired on it; fresh server seeded `seed`. */
  async function delayedRequests(seed: number, mode: 'per_request' | 'per_connection', connections = 1) {
    const runtime = createRuntime({ seed });
    const fired: string[] = [];
    runtime.events.subscribe((e) => {
      if (e.type === 'proxy.toxic') fired.push(`${e.connection}`);
    });
    const local = new ProxyServer({ runtime, port: 0 });
    const decisions: boolean[] = [];
    try {
      const proxy = await local.createProxy({ name: 'p', upstream: upstream.address });
      local.addToxic('p', {
        type: 'latency',
        toxicity: 0.5,
        toxicity_mode: mode,
        attributes: { latency: 1 },
      });
      for (let k = 0; k < connections; k++) {
        const c = await client(proxy.listen);
        const before = fired.length;
        for (let i = 0; i < 20; i++) {
          const seen = fired.length;
          await roundTrip(c, String(i % 10));
          if (mode === 'per_request') decisions.push(fired.length > seen);
        }
        if (mode === 'per_connection') decisions.push(fired.length > before);
        c.socket.destroy();
      }
    } finally {
      await local.close();
    }
    return { decisions, fired };
  }

  it('per_request draws each chunk; the same seed repeats the same decisions', async () => {
    const a = await delayedRequests(7, 'per_request');
    const b = await delayedRequests(7, 'per_request');
    const hits = a.decisions.filter(Boolean).length;
    expect(hits).toBeGreaterThan(2);
    expect(hits).toBeLessThan(18);
    expect(b.decisions).toEqual(a.decisions);
    const other = await delayedRequests(8, 'per_request');
    expect(other.decisions).not.toEqual(a.decisions);
  });

  it('per_connection decides once per connection, reproducibly', async () => {
    const a = await delayedRequests(3, 'per_connection', 12);
    const b = await delayedRequests(3, 'per_connection', 12);
    expect(b.decisions).toEqual(a.decisions);
    // One activation per connection it fired on, never one per chunk.
    expect(a.fired.length).toBe(a.decisions.filter(Boolean).length);
    expect(a.fired.length).toBeGreaterThan(0);
    expect(a.fired.length).toBeLessThan(12);
  });
});
