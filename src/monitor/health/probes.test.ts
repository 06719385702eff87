import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/monitor-servers.js';
import type { EventOf } from '../../core/events.js';
import { type VirtualRuntime, virtualRuntime } from '../../core/runtime.js';
import { circuitBreaker } from '../../policy/circuit-breaker.js';
import { checks } from './checks.js';
import { healing } from './healing.js';
import { HealthMonitor } from './probes.js';

function checkEvents(rt: VirtualRuntime): EventOf<'health.check'>[] {
  const events: EventOf<'health.check'>[] = [];
  rt.events.subscribe(
    (e) => {
      if (e.type === 'health.check') events.push(e);
    },
    ['health.check'],
  );
  return events;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
});

describe('probes with Kubernetes semantics', () => {
  it('liveness fails only after failureThreshold failures in a row, then heals and counts afresh', async () => {
    const rt = virtualRuntime(1);
    const events = checkEvents(rt);
    let healthy = true;
    const healed: number[] = [];
    const health = new HealthMonitor({ runtime: rt });
    health.register({
      name: 'db',
      liveness: { check: () => healthy, period: '10s', failureThreshold: 3, initialDelay: '5s' },
      onUnhealthy: () => {
        healed.push(rt.clock.now());
      },
    });
    await rt.clock.advance(5000);
    expect(events.map((e) => e.at)).toEqual([5000]);
    healthy = false;
    await rt.clock.advance(20_000); // runs at 15 s and 25 s: two failures, still live
    expect(health.live).toBe(true);
    expect(healed).toEqual([]);
    await rt.clock.advance(10_000); // third failure at 35 s
    expect(healed).toEqual([35_000]);
    expect(events.map((e) => [e.at, e.ok, e.healthy])).toEqual([
      [5000, true, true],
      [15_000, false, true],
      [25_000, false, true],
      [35_000, false, false],
    ]);
    await rt.clock.advance(30_000);
    expect(healed).toEqual([35_000, 65_000]);
    health.close();
  });

  it('a startup probe holds liveness and readiness back until it succeeds', async () => {
    const rt = virtualRuntime(1);
    const events = checkEvents(rt);
    let booted = false;
    const health = new HealthMonitor({ runtime: rt });
    health.register({
      name: 'api',
      startup: { check: () => booted, period: '1s', failureThreshold: 30 },
      liveness: { check: () => true, period: '10s' },
      readiness: { check: () => true, period: '5s', successThreshold: 2 },
    });
    await rt.clock.advance(3000);
    expect(events.every((e) => e.probe === 'startup')).toBe(true);
    expect(health.ready).toBe(false);
    booted = true;
    await rt.clock.advance(1000);
    expect(health.status()[0]?.started).toBe(true);
    expect(health.ready).toBe(false); // readiness needs two successes
    await rt.clock.advance(5000);
    expect(health.ready).toBe(true);
    expect(events.filter((e) => e.probe === 'readiness').map((e) => e.at)).toEqual([4000, 9000]);
    health.close();
  });

  it('a check that outlasts its timeout fails', async () => {
    const rt = virtualRuntime(1);
    const events = checkEvents(rt);
    const health = new HealthMonitor({ runtime: rt });
    health.register({
      name: 'slow',
      readiness: {
        check: (signal) =>
          new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
        timeout: '2s',
        period: '10s',
        failureThreshold: 1,
      },
    });
    await rt.clock.advance(3000);
    expect(events[0]).toMatchObject({ ok: false, healthy: false, durationMs: 2000 });
    expect(events[0]?.error).toMatch(/timed out after 2000ms/);
    health.close();
  });

  it('validates probe options', () => {
    const health = new HealthMonitor({ runtime: virtualRuntime(1) });
    expect(() =>
      health.register({ name: 'x', liveness: { check: () => true, successThreshold: 2 } }),
    ).toThrow(/successThreshold/);
    expect(() => health.register({ name: 'x', readiness: { check: () => true, period: 0 } })).toThrow(
      /option "period"/,
    );
    expect(() => health.register({ name: 'x' })).toThrow(/at least one probe/);
  });

  it('serves /healthz and /readyz', async () => {
    const rt = virtualRuntime(1);
    const health = new HealthMonitor({ runtime: rt });
    let ready = false;
    health.register({
      name: 'queue',
      readiness: { check: () => ready, period: '1s', failureThreshold: 1 },
      liveness: { check: () => true },
    });
    const server = createServer((req, res) => {
      if (!health.handle(req, res)) {
        res.writeHead(404);
        res.end();
      }
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await rt.clock.advance(1000);
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({
      status: 'fail',
      components: [
        {
          name: 'queue',
          status: 'fail',
          probes: [
            { probe: 'liveness', healthy: true },
            { probe: 'readiness', healthy: false, error: 'check returned false' },
          ],
        },
      ],
    });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    ready = true;
    await rt.clock.advance(1000);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/other`)).status).toBe(404);
    health.close();
  });
});

describe('checks and healing actions', () => {
  it('checks a breaker, and resetting it heals the readiness probe', async () => {
    const rt = virtualRuntime(1);
    const breaker = circuitBreaker({ name: 'payments', runtime: rt });
    const heal = healing(rt);
    const actions: string[] = [];
    rt.events.subscribe(
      (e) => {
        if (e.type === 'healing.action') actions.push(`${e.action}:${e.target}:${e.ok}`);
      },
      ['healing.action'],
    );
    const health = new HealthMonitor({ runtime: rt });
    health.register({
      name: 'payments',
      readiness: { check: checks.breaker(breaker), period: '1s', failureThreshold: 1 },
    });
    breaker.isolate();
    await rt.clock.advance(1000);
    expect(health.ready).toBe(false);
    expect(health.status()[0]?.probes[0]?.lastError).toBe('circuit is isolated');
    await heal.resetBreaker(breaker)();
    await rt.clock.advance(1000);
    expect(health.ready).toBe(true);
    expect(actions).toEqual(['resetBreaker:payments:true']);
    await expect(heal.drain({ id: 'w1', close: () => Promise.reject(new Error('busy')) })()).rejects.toThrow(
      /drain on w1 failed: busy/,
    );
    expect(actions.at(-1)).toBe('drain:w1:false');
    health.close();
  });

  it('checks a queue from its events (unhealthy backend, no live workers)', async () => {
    const rt = virtualRuntime(1);
    const check = checks.queue(rt, 'emails', { minWorkers: 1 });
    const emit = (e: Parameters<typeof rt.events.emit>[0]) => rt.events.emit(e);
    const signal = new AbortController().signal;
    expect(() => check(signal)).toThrow('0 live workers (need 1)');
    emit({ type: 'queue.worker', source: 'emails', at: 0, workerId: 'w1', state: 'started' });
    expect(check(signal)).toBe(true);
    emit({ type: 'queue.health', source: 'emails', at: 0, healthy: false, reason: 'ECONNREFUSED' });
    expect(() => check(signal)).toThrow('queue backend unhealthy: ECONNREFUSED');
    emit({ type: 'queue.health', source: 'emails', at: 0, healthy: true, reason: 'ok' });
    emit({ type: 'queue.worker', source: 'emails', at: 0, workerId: 'w1', state: 'lost' });
    expect(() => check(signal)).toThrow('0 live workers');
    check.close();
  });

  it('checks an HTTP endpoint (2xx/3xx healthy, else the status)', async () => {
    let status = 200;
    const server = createServer((_req, res) => {
      res.writeHead(status);
      res.end();
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const check = checks.http(`http://127.0.0.1:${(server.address() as AddressInfo).port}/ping`);
    const signal = new AbortController().signal;
    expect(await check(signal)).toBe(true);
    status = 503;
    await expect(check(signal)).rejects.toThrow('HTTP 503');
    const down = checks.http(`http://127.0.0.1:${await freePort()}/ping`);
    await expect(down(signal)).rejects.toThrow('request failed (ECONNREFUSED)');
  });
});
