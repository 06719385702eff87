import { describe, expect, it } from 'vitest';
import { uncaught } from '../../test/support.js';
import { VirtualClock } from './clock.js';
import { type BulwarkEvent, type BulwarkEventType, type EventMeter, EventSink } from './events.js';

const TYPES: BulwarkEventType[] = ['call', 'bulkhead.changed', 'retry', 'policy.created', 'timeout.fired'];

function sample(type: BulwarkEventType, at = 1): BulwarkEvent {
  switch (type) {
    case 'call':
      return { type, source: 's', at, kind: 'retry', outcome: 'failure', durationMs: 2, error: 'x' };
    case 'bulkhead.changed':
      return { type, source: 's', at, active: 1, queued: 0, capacity: 4 };
    case 'retry':
      return { type, source: 's', at, attempt: 1, delayMs: 1, error: 'x' };
    case 'policy.created':
      return { type, source: 's', at, kind: 'retry' };
    default:
      return { type: 'timeout.fired', source: 's', at, timeoutMs: 5 };
  }
}

/** A recording meter. */
function recorder(name: string, log: string[]): EventMeter {
  return {
    call: (source, at) => log.push(`${name}:call:${source}@${at}`),
    bulkheadChanged: (source, at) => log.push(`${name}:bulkhead.changed:${source}@${at}`),
  };
}

/** Emits each type both ways (emit and the field entry points where there is one) and returns who got what. */
function deliveries(
  sink: EventSink,
  log: string[],
  type: BulwarkEventType,
  via: 'emit' | 'fields',
): string[] {
  log.length = 0;
  if (via === 'fields' && type === 'call') sink.emitCall('s', 1, 'retry', 'failure', 2, 'x');
  else if (via === 'fields' && type === 'bulkhead.changed') sink.emitBulkheadChanged('s', 1, 1, 0, 4);
  else sink.emit(sample(type));
  return [...log];
}

describe('EventSink review: subscriber combinations', () => {
  it('delivers each event once to exactly the subscribers that want it, and wants() agrees, as subscriptions come and go', () => {
    const sink = new EventSink();
    const log: string[] = [];
    const listener = (name: string) => (e: BulwarkEvent) => log.push(`${name}:${e.type}:${e.source}@${e.at}`);
    const expected = new Map<string, (t: BulwarkEventType) => boolean>();
    const offs = new Map<string, () => void>();
    const add = (name: string, wants: (t: BulwarkEventType) => boolean, subscribe: () => () => void) => {
      expected.set(name, wants);
      offs.set(name, subscribe());
    };
    const remove = (name: string) => {
      offs.get(name)?.();
      offs.get(name)?.(); // twice: no effect on the others
      expected.delete(name);
    };
    const check = () => {
      for (const type of TYPES) {
        for (const via of ['emit', 'fields'] as const) {
          const got = deliveries(sink, log, type, via).sort();
          const want = [...expected]
            .filter(([, w]) => w(type))
            .map(([name]) => `${name}:${type}:s@1`)
            .sort();
          expect(got, `${type} via ${via}`).toEqual(want);
          expect(sink.wants(type), `wants(${type})`).toBe(want.length > 0);
        }
      }
      expect(sink.listening).toBe(offs.size > 0 && expected.size > 0);
    };
    const metered = (t: BulwarkEventType) => t === 'call' || t === 'bulkhead.changed';
    check();
    add(
      'typed',
      (t) => t === 'retry' || t === 'call',
      () => sink.subscribe(listener('typed'), ['retry', 'call']),
    );
    check();
    add(
      'except',
      (t) => !metered(t),
      () => sink.subscribe(listener('except'), { except: ['call', 'bulkhead.changed'] }),
    );
    check();
    add('meter', metered, () => sink.meter(recorder('meter', log)));
    check();
    add(
      'all',
      () => true,
      () => sink.subscribe(listener('all')),
    );
    check();
    add(
      'exceptRetry',
      (t) => t !== 'retry',
      () => sink.subscribe(listener('exceptRetry'), { except: ['retry'] }),
    );
    check();
    remove('all');
    check();
    remove('typed');
    check();
    remove('meter');
    check();
    add('meter2', metered, () => sink.meter(recorder('meter2', log)));
    check();
    remove('except');
    remove('exceptRetry');
    check();
    remove('meter2');
    offs.clear();
    check();
    expect(sink.listening).toBe(false);
  });

  it('delivers to listeners in subscription order across typed, wildcard and except subscriptions', () => {
    const sink = new EventSink();
    const order: string[] = [];
    sink.subscribe(() => order.push('a'), ['retry']);
    sink.subscribe(() => order.push('b'));
    sink.subscribe(() => order.push('c'), { except: ['call'] });
    sink.subscribe(() => order.push('d'), ['retry', 'call']);
    sink.emit(sample('retry'));
    expect(order).toEqual(['a', 'b', 'c', 'd']);
    order.length = 0;
    sink.emitCall('s', 1, 'k', 'success', 1, undefined);
    expect(order).toEqual(['b', 'd']);
    order.length = 0;
    sink.emit(sample('policy.created'));
    expect(order).toEqual(['b', 'c']);
  });

  it('unsubscribing one of two subscriptions of the same listener (twice) keeps the other', () => {
    const sink = new EventSink();
    const seen: string[] = [];
    const listener = (e: BulwarkEvent) => seen.push(e.type);
    const off1 = sink.subscribe(listener, ['retry']);
    sink.subscribe(listener, ['retry']);
    off1();
    off1();
    sink.emit(sample('retry'));
    expect(seen).toEqual(['retry']);
    expect(sink.wants('retry')).toBe(true);
  });

  it('a listener unsubscribed by an earlier one during emit still gets that event (a snapshot), not the next', () => {
    const sink = new EventSink();
    const seen: string[] = [];
    let offB: () => void = () => undefined;
    sink.subscribe(() => offB());
    offB = sink.subscribe((e) => seen.push(`b:${e.type}`));
    sink.emit(sample('retry'));
    sink.emit(sample('retry'));
    expect(seen).toEqual(['b:retry']);
    expect(sink.wants('call')).toBe(true); // the first listener is still there
  });

  it('a throwing listener or meter stops nothing and its error is rethrown asynchronously', async () => {
    const sink = new EventSink();
    const seen: string[] = [];
    const errors = await uncaught(() => {
      sink.subscribe(() => {
        throw new Error('listener');
      });
      sink.meter({
        call: () => {
          throw new Error('meter');
        },
        bulkheadChanged: () => {
          throw new Error('meter b');
        },
      });
      sink.meter(recorder('m', seen));
      sink.subscribe((e) => seen.push(`l:${e.type}`));
      sink.emit(sample('call'));
      sink.emitBulkheadChanged('s', 1, 1, 0, 4);
      sink.emit(sample('retry'));
    });
    expect(seen).toEqual(['m:call:s@1', 'l:call', 'm:bulkhead.changed:s@1', 'l:bulkhead.changed', 'l:retry']);
    expect(errors.map((e) => (e as Error).message)).toEqual([
      'meter',
      'listener',
      'meter b',
      'listener',
      'listener',
    ]);
  });

  it('a meter added during an emit from a listener does not get an event twice', () => {
    const sink = new EventSink();
    const log: string[] = [];
    let added = false;
    sink.subscribe(() => {
      if (!added) {
        added = true;
        sink.meter(recorder('late', log));
      }
    }, ['retry']);
    sink.emit(sample('retry'));
    sink.emitCall('s', 2, 'k', 'success', 1, undefined);
    expect(log).toEqual(['late:call:s@2']);
  });

  it('keeps wants() false for a type only a typed-empty subscription exists for', () => {
    const sink = new EventSink();
    sink.subscribe(() => undefined, []);
    expect(sink.listening).toBe(true);
    for (const t of TYPES) expect(sink.wants(t)).toBe(false);
  });

  it('emits in order on a virtual clock: meters and listeners see the same sequence', () => {
    const clock = new VirtualClock();
    const sink = new EventSink();
    const viaMeter: string[] = [];
    const viaListener: string[] = [];
    sink.meter({
      call: (_s, at) => viaMeter.push(`call@${at}`),
      bulkheadChanged: (_s, at) => viaMeter.push(`bh@${at}`),
    });
    sink.subscribe(
      (e) => viaListener.push(`${e.type === 'call' ? 'call' : 'bh'}@${e.at}`),
      ['call', 'bulkhead.changed'],
    );
    for (let i = 0; i < 3; i++) {
      sink.emitBulkheadChanged('p', clock.now() + i, 1, 0, 2);
      sink.emit(sample('call', clock.now() + i));
    }
    expect(viaMeter).toEqual(viaListener);
  });
});
