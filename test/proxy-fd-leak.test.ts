/**
 * 1,000 connections opened and closed through a proxy with toxics — some cut by `timeout`, `reset_peer`
 * and `limit_data` — then the toxics and the proxy removed: the process's file descriptors (Linux:
 * /proc/self/fd) come back to where they started, and removing a toxic closed nothing else.
 */
import { existsSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ProxyServer } from '../src/chaos/tcp/server.js';
import { type Client, client, echoServer, until } from '../src/chaos/tcp/testing.js';
import { createRuntime } from '../src/core/runtime.js';

const hasProcFd = existsSync('/proc/self/fd');

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

function finished(c: Client): boolean {
  return c.closed || c.ended || c.error !== undefined;
}

// Counting descriptors needs Linux's /proc; CI runs on Linux, where a missing /proc fails the test.
const inCI = process.env.CI === 'true' || process.env.CI === '1';
const noProc = hasProcFd || inCI ? '' : '/proc/self/fd is not available (Linux only)';
if (noProc !== '') process.stderr.write(`[skip] proxy file descriptors: ${noProc}\n`);

describe.skipIf(noProc !== '')(
  `proxy file descriptors${noProc === '' ? '' : ` (skipped: ${noProc})`}`,
  () => {
    it('1,000 connections through toxics leave no descriptor behind', async () => {
      const upstream = await echoServer();
      const server = new ProxyServer({ runtime: createRuntime({ seed: 99 }), port: 0 });
      await server.listen();
      const start = openFds();
      const proxy = await server.createProxy({ name: 'leak', upstream: upstream.address });
      server.addToxic('leak', { name: 'lag', type: 'latency', attributes: { latency: 1, jitter: 1 } });
      server.addToxic('leak', {
        name: 'pieces',
        type: 'slicer',
        stream: 'upstream',
        attributes: { average_size: 4, size_variation: 2, delay: 100 },
      });
      server.addToxic('leak', { name: 'stall', type: 'timeout', toxicity: 0.1, attributes: { timeout: 20 } });
      server.addToxic('leak', { name: 'rst', type: 'reset_peer', toxicity: 0.1, attributes: { timeout: 5 } });
      server.addToxic('leak', { name: 'cut', type: 'limit_data', toxicity: 0.1, attributes: { bytes: 8 } });
      let echoed = 0;
      let cut = 0;
      for (let batch = 0; batch < 10; batch++) {
        const clients = await Promise.all(Array.from({ length: 100 }, () => client(proxy.listen)));
        for (const c of clients) c.socket.write('hello proxy');
        await until(
          () => clients.every((c) => c.received().length === 11 || finished(c)),
          'every echo or close',
          10_000,
        );
        for (const c of clients) {
          if (c.received().length === 11) echoed++;
          else cut++;
          c.socket.destroy();
        }
      }
      expect(echoed + cut).toBe(1000);
      expect(echoed).toBeGreaterThan(500);
      expect(cut).toBeGreaterThan(50);
      await until(
        () => proxy.connectionCount === 0 && upstream.sockets.size === 0,
        'every proxied connection to close',
        10_000,
      );

      // Removing toxics (and a proxy) closes nothing that is still open elsewhere.
      const survivor = await client(proxy.listen);
      server.removeToxic('leak', 'stall');
      server.removeToxic('leak', 'rst');
      server.removeToxic('leak', 'cut');
      survivor.socket.write('still here');
      await until(() => survivor.received().toString() === 'still here', 'the survivor echo');
      const other = await server.createProxy({ name: 'other', upstream: upstream.address });
      const otherClient = await client(other.listen);
      await server.deleteProxy('other');
      await until(() => otherClient.ended, 'the deleted proxy to close its connection');
      otherClient.socket.destroy();
      survivor.socket.write('!');
      await until(
        () => survivor.received().toString() === 'still here!',
        'the survivor after a proxy was deleted',
      );
      survivor.socket.destroy();

      server.removeToxic('leak', 'lag');
      server.removeToxic('leak', 'pieces');
      await until(() => proxy.connectionCount === 0, 'the survivor to close');
      await server.deleteProxy('leak');
      await until(() => openFds() <= start, `descriptors back to ${start} (now ${openFds()})`, 10_000);
      await server.close();
      await upstream.close();
    }, 60_000);
  },
);
