import { describe, expect, it } from 'vitest';
import { uncaught } from '../../test/support.js';
import { type BulwarkEvent, CALL_OUTCOME_INDEX, EventSink } from './events.js';

describe('EventSink', () => {
  it('is silent until subscribed, and filters by type', () => {
    const sink = new EventSink();
    expect(sink.listening).toBe(false);
    expect(sink.wants('retry')).toBe(false);
    const all: BulwarkEvent[] = [];
    const retries: BulwarkEvent[] = [];
    const offRetries = sink.subscribe((e) => retries.push(e), ['retry']);
    expect(sink.listening).toBe(true);
    expect(sink.wants('retry')).toBe(true);
    expect(sink.wants('timeout.fired')).toBe(false);
    const offAll = sink.subscribe((e) => all.push(e));
    expect(sink.wants('timeout.fired')).toBe(true);
    sink.emit({ type: 'retry', source: 'r', at: 1, attempt: 1, delayMs: 10, error: 'x' });
    sink.emit({ type: 'timeout.fired', source: 't', at: 2, timeoutMs: 5 });
    expect(retries.map((e) => e.type)).toEqual(['retry']);
    expect(all.map((e) => e.type)).toEqual(['retry', 'timeout.fired']);
    offAll();
    offAll();
    expect(sink.wants('timeout.fired')).toBe(false);
    offRetries();
    expect(sink.listening).toBe(false);
  });

  it('a listener that unsubscribes during emit does not disturb the others', () => {
    const sink = new EventSink();
    const seen: string[] = [];
    const off = sink.subscribe(() => {
      seen.push('a');
      off();
    });
    sink.subscribe(() => seen.push('b'));
    sink.emit({ type: 'policy.created', source: 'x', at: 0, kind: 'retry' });
    sink.emit({ type: 'policy.created', source: 'x', at: 0, kind: 'retry' });
    expect(seen).toEqual(['a', 'b', 'b']);
  });
});

describe('EventSink meters', () => {
  it('meters get call and bulkhead.changed fields; object listeners still get the events', () => {
    const sink = new EventSink();
    expect(sink.wants('call')).toBe(false);
    const calls: unknown[][] = [];
    const bulkheads: unknown[][] = [];
    const off = sink.meter({
      call: (...fields) => calls.push(fields),
      bulkheadChanged: (...fields) => bulkheads.push(fields),
    });
    expect(sink.listening).toBe(true);
    expect(sink.wants('call')).toBe(true);
    expect(sink.wants('bulkhead.changed')).toBe(true);
    expect(sink.wants('retry')).toBe(false);
    const boom = new Error('boom');
    sink.emitCall('db', 5, 'timeout', 'failure', 12, boom);
    sink.emitBulkheadChanged('pool', 6, 3, 1, 10);
    expect(calls).toEqual([['db', 5, 'timeout', 'failure', 12, boom]]);
    expect(bulkheads).toEqual([['pool', 6, 3, 1, 10]]);

    const objects: BulwarkEvent[] = [];
    const offObjects = sink.subscribe((e) => objects.push(e), ['call']);
    sink.emitCall('db', 7, 'retry', 'success', 3, undefined);
    sink.emitBulkheadChanged('pool', 8, 2, 0, 10);
    expect(objects).toEqual([
      { type: 'call', source: 'db', at: 7, kind: 'retry', outcome: 'success', durationMs: 3 },
    ]);
    expect(calls).toHaveLength(2);
    expect(bulkheads).toHaveLength(2);

    // Emitted as objects, they reach the meters too.
    sink.emit({
      type: 'call',
      source: 'db',
      at: 8,
      kind: 'retry',
      outcome: 'timeout',
      durationMs: 9,
      error: boom,
    });
    sink.emit({ type: 'bulkhead.changed', source: 'pool', at: 9, active: 1, queued: 0, capacity: 10 });
    expect(calls[2]).toEqual(['db', 8, 'retry', 'timeout', 9, boom]);
    expect(bulkheads[2]).toEqual(['pool', 9, 1, 0, 10]);
    expect(objects).toHaveLength(2);

    off();
    off();
    expect(sink.wants('bulkhead.changed')).toBe(false);
    expect(sink.wants('call')).toBe(true);
    offObjects();
    expect(sink.listening).toBe(false);
    sink.emitCall('db', 9, 'retry', 'success', 1, undefined);
    expect(calls).toHaveLength(3);
  });

  it('a wildcard listener gets metered types as objects, and a throwing meter stops nothing', async () => {
    const sink = new EventSink();
    const seen: string[] = [];
    const errors = await uncaught(() => {
      sink.meter({
        call: () => {
          throw new Error('meter broke');
        },
        bulkheadChanged: () => undefined,
      });
      sink.subscribe((e) => seen.push(e.type));
      sink.emitCall('db', 1, 'retry', 'failure', 2, 'x');
      sink.emitBulkheadChanged('pool', 2, 1, 0, 4);
    });
    expect(seen).toEqual(['call', 'bulkhead.changed']);
    expect(errors).toEqual([new Error('meter broke')]);
  });
});

describe('EventSink subscriptions with except', () => {
  it('gets every type but the excepted ones, also types nobody else named', () => {
    const sink = new EventSink();
    const seen: string[] = [];
    const off = sink.subscribe((e) => seen.push(e.type), { except: ['call'] });
    expect(sink.wants('call')).toBe(false);
    expect(sink.wants('retry')).toBe(true);
    sink.emitCall('db', 1, 'retry', 'success', 1, undefined);
    sink.emit({ type: 'retry', source: 'r', at: 2, attempt: 1, delayMs: 10, error: 'x' });
    const calls: string[] = [];
    const offCalls = sink.subscribe((e) => calls.push(e.type), ['call']);
    expect(sink.wants('call')).toBe(true);
    sink.emitCall('db', 3, 'retry', 'success', 1, undefined);
    expect(seen).toEqual(['retry']);
    expect(calls).toEqual(['call']);
    off();
    offCalls();
    expect(sink.listening).toBe(false);
    expect(sink.wants('retry')).toBe(false);
  });
});

describe('SourceEvents', () => {
  it('resolves each meter for its source once, again after the subscriptions change', () => {
    const sink = new EventSink();
    const source = sink.source('db', 'timeout');
    const resolved: string[] = [];
    const bound: unknown[][] = [];
    const plain: unknown[][] = [];
    sink.meter({
      call: (...fields) => plain.push(['unbound', ...fields]),
      bulkheadChanged: () => undefined,
      forSource(name, kind) {
        resolved.push(`${name}/${kind}`);
        return {
          call: (...fields) => bound.push(['call', ...fields]),
          bulkheadChanged: (...fields) => bound.push(['bulkhead', ...fields]),
        };
      },
    });
    const boom = new Error('boom');
    source.call(5, CALL_OUTCOME_INDEX.timeout, 12, boom);
    source.call(6, CALL_OUTCOME_INDEX.success, 3, undefined);
    source.bulkheadChanged(7, 2, 1, 10);
    expect(resolved).toEqual(['db/timeout']);
    expect(bound).toEqual([
      ['call', 5, 3, 12, boom],
      ['call', 6, 0, 3, undefined],
      ['bulkhead', 7, 2, 1, 10],
    ]);
    // Events emitted by name still reach the meter's unbound methods.
    sink.emitCall('db', 8, 'timeout', 'failure', 1, boom);
    expect(plain).toEqual([['unbound', 'db', 8, 'timeout', 'failure', 1, boom]]);

    // A meter without forSource gets the source's events by name, with the outcome's name.
    const named: unknown[][] = [];
    const off = sink.meter({
      call: (...fields) => named.push(fields),
      bulkheadChanged: (...fields) => named.push(fields),
    });
    source.call(9, CALL_OUTCOME_INDEX.rejected, 0, boom);
    source.bulkheadChanged(10, 0, 0, 10);
    expect(resolved).toEqual(['db/timeout', 'db/timeout']);
    expect(named).toEqual([
      ['db', 9, 'timeout', 'rejected', 0, boom],
      ['db', 10, 0, 0, 10],
    ]);
    off();
    source.call(11, CALL_OUTCOME_INDEX.success, 1, undefined);
    expect(named).toHaveLength(2);
    expect(bound).toHaveLength(6);
  });

  it('builds event objects only for listeners that want them, with outcome names', () => {
    const sink = new EventSink();
    const source = sink.source('pool', 'bulkhead');
    const objects: BulwarkEvent[] = [];
    source.call(1, CALL_OUTCOME_INDEX.success, 2, undefined);
    sink.subscribe((e) => objects.push(e), ['call', 'bulkhead.changed']);
    source.call(3, CALL_OUTCOME_INDEX.cancelled, 4, 'why');
    source.call(5, CALL_OUTCOME_INDEX.success, 6, undefined);
    source.bulkheadChanged(7, 1, 0, 4);
    expect(objects).toEqual([
      {
        type: 'call',
        source: 'pool',
        at: 3,
        kind: 'bulkhead',
        outcome: 'cancelled',
        durationMs: 4,
        error: 'why',
      },
      { type: 'call', source: 'pool', at: 5, kind: 'bulkhead', outcome: 'success', durationMs: 6 },
      { type: 'bulkhead.changed', source: 'pool', at: 7, active: 1, queued: 0, capacity: 4 },
    ]);
  });

  it('a meter that throws, in forSource or per event, stops nothing', async () => {
    const sink = new EventSink();
    const source = sink.source('db', 'retry');
    const seen: unknown[] = [];
    const errors = await uncaught(() => {
      sink.meter({
        call: () => undefined,
        bulkheadChanged: () => undefined,
        forSource: () => {
          throw new Error('cannot bind');
        },
      });
      sink.meter({
        call: () => undefined,
        bulkheadChanged: () => undefined,
        forSource: () => ({
          call: () => {
            throw new Error('meter broke');
          },
          bulkheadChanged: () => undefined,
        }),
      });
      sink.meter({ call: (...f) => seen.push(f), bulkheadChanged: () => undefined });
      source.call(1, CALL_OUTCOME_INDEX.failure, 2, 'x');
    });
    expect(seen).toEqual([['db', 1, 'retry', 'failure', 2, 'x']]);
    expect(errors).toEqual([new Error('cannot bind'), new Error('meter broke')]);
  });
});

describe('SourceGroup', () => {
  it('reports a success of every member: once to a meter with forGroup, to each part of one without; member by member once a listener takes calls', () => {
    const sink = new EventSink();
    const members = [sink.source('pool', 'bulkhead'), sink.source('db', 'timeout')];
    const group = sink.group(members);
    const log: unknown[][] = [];
    sink.meter({
      call: () => undefined,
      bulkheadChanged: () => undefined,
      forSource: (name) => ({
        call: (...f) => log.push(['own', name, ...f]),
        bulkheadChanged: () => undefined,
      }),
      forGroup: (parts) => ({ succeeded: (...f) => log.push(['group of', parts.length, ...f]) }),
    });
    sink.meter({
      call: () => undefined,
      bulkheadChanged: () => undefined,
      forSource: (name) => ({
        call: (...f) => log.push(['plain', name, ...f]),
        bulkheadChanged: () => undefined,
      }),
    });
    const ok = CALL_OUTCOME_INDEX.success;
    group.succeeded(5, 2);
    expect(log).toEqual([
      ['group of', 2, 5, 2],
      ['plain', 'pool', 5, ok, 2, undefined],
      ['plain', 'db', 5, ok, 2, undefined],
    ]);
    // With a listener of `call` events, each member's call is reported as its own: meters, then listeners.
    log.length = 0;
    sink.subscribe((e) => log.push(['listener', e]), ['call']);
    group.succeeded(9, 3);
    expect(log).toEqual([
      ['own', 'pool', 9, ok, 3, undefined],
      ['plain', 'pool', 9, ok, 3, undefined],
      [
        'listener',
        { type: 'call', source: 'pool', at: 9, kind: 'bulkhead', outcome: 'success', durationMs: 3 },
      ],
      ['own', 'db', 9, ok, 3, undefined],
      ['plain', 'db', 9, ok, 3, undefined],
      ['listener', { type: 'call', source: 'db', at: 9, kind: 'timeout', outcome: 'success', durationMs: 3 }],
    ]);
  });

  it('uses the members’ own parts, resolved again when the subscriptions change; a part or group that throws stops nothing', async () => {
    const sink = new EventSink();
    const members = [sink.source('a', 'retry'), sink.source('b', 'retry')];
    const group = sink.group(members);
    const seen: unknown[] = [];
    const given: unknown[] = [];
    const errors = await uncaught(() => {
      group.succeeded(1, 1); // no meter yet
      sink.meter({
        call: () => undefined,
        bulkheadChanged: () => undefined,
        forSource: (name) => {
          const part = {
            call: () => {
              if (name === 'a') throw new Error('part broke');
              seen.push(name);
            },
            bulkheadChanged: () => undefined,
          };
          given.push(part);
          return part;
        },
      });
      group.succeeded(2, 1);
      // The members resolved once, for their own calls and the group alike.
      members[1]?.call(3, CALL_OUTCOME_INDEX.success, 1, undefined);
      sink.meter({
        call: () => undefined,
        bulkheadChanged: () => undefined,
        forGroup: () => {
          throw new Error('cannot group');
        },
      });
      group.succeeded(4, 1);
    });
    expect(given).toHaveLength(4); // two members, resolved again after the second meter came
    expect(seen).toEqual(['b', 'b', 'b']);
    expect(errors).toEqual([new Error('part broke'), new Error('cannot group'), new Error('part broke')]);
    expect(() => new EventSink().group(members)).toThrow(/another sink/);
  });
});
