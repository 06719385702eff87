import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../core/clock.js';
import { type BulwarkEvent, CALL_OUTCOME_INDEX, EventSink, type SourceEvents } from '../core/events.js';
import { virtualRuntime } from '../core/runtime.js';
import { bulkhead } from '../policy/bulkhead.js';
import { retry } from '../policy/retry.js';
import { PrometheusMetrics } from './metrics.js';
import { createMonitor } from './monitor.js';

/** A sequence with more names than maxNames, metered and non-metered types interleaved. */
function sequence(): BulwarkEvent[] {
  const events: BulwarkEvent[] = [];
  let at = 1000;
  for (let i = 0; i < 6; i++) {
    const source = `p${i % 4}`;
    events.push({ type: 'policy.created', source, at: at++, kind: 'bulkhead' });
    events.push({
      type: 'bulkhead.changed',
      source: `b${i}`,
      at: at++,
      active: i + 1,
      queued: i,
      capacity: 9,
    });
    events.push({ type: 'call', source, at: at++, kind: 'bulkhead', outcome: 'success', durationMs: 3 * i });
    events.push({
      type: 'call',
      source: `q${i}`,
      at: at++,
      kind: 'retry',
      outcome: i % 2 === 0 ? 'failure' : 'timeout',
      durationMs: 700 * i,
      error: new TypeError('x'),
    });
    events.push({ type: 'retry', source, at: at++, attempt: 1, delayMs: 5, error: 'e' });
    events.push({ type: 'bulkhead.rejected', source: `b${i}`, at: at++, active: 1, queued: 0 });
    events.push({ type: 'bulkhead.changed', source: `b${i}`, at: at++, active: i, queued: 0, capacity: 9 });
  }
  return events;
}

type Via = 'objects' | 'fields' | 'sources';
const VIAS: readonly Via[] = ['objects', 'fields', 'sources'];

/**
 * Sends `event` to `sink`: metered types as objects (`emit`), by their fields (`emitCall`, …), or through
 * a per-source {@link SourceEvents} as policies do (one per source and kind, kept); `emit` for the rest.
 */
function send(sink: EventSink, e: BulwarkEvent, via: Via): void {
  if (via === 'fields' && e.type === 'call')
    sink.emitCall(e.source, e.at, e.kind, e.outcome, e.durationMs, e.error);
  else if (via === 'fields' && e.type === 'bulkhead.changed')
    sink.emitBulkheadChanged(e.source, e.at, e.active, e.queued, e.capacity);
  else if (via === 'sources' && e.type === 'call')
    sourceOf(sink, e.source, e.kind).call(e.at, CALL_OUTCOME_INDEX[e.outcome], e.durationMs, e.error);
  else if (via === 'sources' && e.type === 'bulkhead.changed')
    sourceOf(sink, e.source, 'bulkhead').bulkheadChanged(e.at, e.active, e.queued, e.capacity);
  else sink.emit(e);
}

const sources = new WeakMap<EventSink, Map<string, SourceEvents>>();
function sourceOf(sink: EventSink, source: string, kind: string): SourceEvents {
  let bySink = sources.get(sink);
  if (bySink === undefined) {
    bySink = new Map();
    sources.set(sink, bySink);
  }
  const key = `${source}/${kind}`;
  let found = bySink.get(key);
  if (found === undefined) {
    found = sink.source(source, kind);
    bySink.set(key, found);
  }
  return found;
}

describe('Prometheus metrics review: meter path and observe agree', () => {
  for (const maxNames of [1000, 3]) {
    for (const via of VIAS) {
      it(`same exposition text (maxNames ${maxNames}, metered types sent as ${via})`, async () => {
        const viaSink = new PrometheusMetrics({ maxNames });
        const direct = new PrometheusMetrics({ maxNames });
        const sink = new EventSink();
        const detach = viaSink.attach(sink);
        for (const e of sequence()) {
          send(sink, e, via);
          direct.observe(e);
        }
        expect(await viaSink.text()).toBe(await direct.text());
        viaSink.reset();
        direct.reset();
        for (const e of sequence().reverse()) {
          send(sink, e, via);
          direct.observe(e);
        }
        expect(await viaSink.text()).toBe(await direct.text());
        detach();
        expect(sink.listening).toBe(false);
        expect(sink.wants('call')).toBe(false);
        expect(sink.wants('bulkhead.changed')).toBe(false);
      });
    }
  }
});

describe('Monitor review', () => {
  for (const via of VIAS) {
    it(`counts the same through attach (metered types sent as ${via}) as through ingest`, async () => {
      const clock = new VirtualClock({ start: 1e12 });
      const attached = createMonitor({ clock, history: false, maxNames: 3 });
      const ingested = createMonitor({ clock, history: false, maxNames: 3 });
      const sink = new EventSink();
      attached.attach(sink);
      for (const e of sequence()) {
        send(sink, e, via);
        ingested.ingest(e);
      }
      expect(await attached.metrics.text()).toBe(await ingested.metrics.text());
      expect(attached.snapshot().policies).toEqual(ingested.snapshot().policies);
      expect(attached.patternsSnapshot()).toEqual(ingested.patternsSnapshot());
      await attached.close();
      await ingested.close();
      expect(sink.listening).toBe(false);
    });
  }

  it('watches two runtimes, detaches one at a time, and leaves no meter behind', async () => {
    const a = virtualRuntime(1);
    const b = virtualRuntime(2);
    const monitor = createMonitor({ clock: new VirtualClock({ start: 1e12 }), history: false });
    const offA = monitor.attach(a);
    monitor.attach(b);
    const pa = bulkhead({ name: 'pa', limit: 2, runtime: a });
    const pb = bulkhead({ name: 'pb', limit: 2, runtime: b });
    await a.clock.run(() => pa.execute(async () => 1));
    await b.clock.run(() => pb.execute(async () => 1));
    let text = await monitor.metrics.text();
    expect(text).toContain('bulwark_calls_total{policy="pa",outcome="success"} 1');
    expect(text).toContain('bulwark_calls_total{policy="pb",outcome="success"} 1');
    offA();
    offA();
    expect(a.events.listening).toBe(false);
    expect(a.events.wants('call')).toBe(false);
    expect(b.events.wants('call')).toBe(true);
    await a.clock.run(() => pa.execute(async () => 1));
    await b.clock.run(() => pb.execute(async () => 1));
    text = await monitor.metrics.text();
    expect(text).toContain('bulwark_calls_total{policy="pa",outcome="success"} 1');
    expect(text).toContain('bulwark_calls_total{policy="pb",outcome="success"} 2');
    await monitor.close();
    expect(b.events.listening).toBe(false);
  });

  it('counts calls and bulkhead gauges of policies created before it was attached', async () => {
    const rt = virtualRuntime(3);
    const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt });
    const again = retry({ name: 'again', maxAttempts: 2, runtime: rt });
    const monitor = createMonitor({ clock: new VirtualClock({ start: 1e12 }), history: false });
    monitor.attach(rt);
    let inside = 0;
    await rt.clock.run(async () => {
      await Promise.all([
        pool.execute(async () => {
          inside = (await monitor.metrics.text()).includes('bulwark_bulkhead_active{policy="pool"} 1')
            ? 1
            : 0;
          await rt.clock.sleep(10);
        }),
        again.execute(async () => 1),
      ]);
    });
    expect(inside).toBe(1);
    const text = await monitor.metrics.text();
    expect(text).toContain('bulwark_calls_total{policy="pool",outcome="success"} 1');
    expect(text).toContain('bulwark_calls_total{policy="again",outcome="success"} 1');
    expect(text).toContain('bulwark_bulkhead_active{policy="pool"} 0');
    const pools = monitor.snapshot().policies.find((p) => p.name === 'pool');
    expect(pools?.total).toBe(1);
    await monitor.close();
  });

  it('a monitor and a Prometheus bridge on one sink both count every call once', async () => {
    const rt = virtualRuntime(4);
    const monitor = createMonitor({ clock: new VirtualClock({ start: 1e12 }), history: false });
    const prom = new PrometheusMetrics();
    const seen: string[] = [];
    rt.events.subscribe((e) => seen.push(e.type), ['call']);
    monitor.attach(rt);
    prom.attach(rt.events);
    const pool = bulkhead({ name: 'pool', limit: 4, runtime: rt });
    await rt.clock.run(() => pool.execute(async () => 1));
    const line = 'bulwark_calls_total{policy="pool",outcome="success"} 1';
    expect(await monitor.metrics.text()).toContain(line);
    expect(await prom.text()).toContain(line);
    expect(seen).toEqual(['call']);
    await monitor.close();
  });
});

describe('Monitor.attach with a sink that cannot meter', () => {
  it('refuses it before subscribing anything', async () => {
    const monitor = createMonitor({ clock: new VirtualClock(), history: false });
    let subscribed = 0;
    const handMade = {
      subscribe: () => {
        subscribed++;
        return () => undefined;
      },
    };
    expect(() => monitor.attach(handMade as unknown as EventSink)).toThrow(/a Runtime or an EventSink/);
    expect(subscribed).toBe(0);
    await monitor.close();
  });
});
