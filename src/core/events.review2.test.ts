import { describe, expect, it } from 'vitest';
import { CALL_OUTCOME_INDEX, type EventMeter, EventSink, type SourceMeter } from './events.js';

function namedMeter(log: string[], tag: string): EventMeter {
  return {
    call: (source, _at, _kind, outcome) => log.push(`${tag}:${source}:${outcome}`),
    bulkheadChanged: (source, _at, active) => log.push(`${tag}:${source}:b${active}`),
  };
}

describe('SourceEvents (review2)', () => {
  it('a meter subscribing and unsubscribing meters inside call: this event goes to the old set, the next to the new', () => {
    const sink = new EventSink();
    const log: string[] = [];
    let off: () => void = () => undefined;
    let offLate: (() => void) | undefined;
    off = sink.meter({
      ...namedMeter(log, 'first'),
      call: (source, _at, _kind, outcome) => {
        log.push(`first:${source}:${outcome}`);
        off();
        offLate ??= sink.meter(namedMeter(log, 'late'));
      },
    });
    sink.meter(namedMeter(log, 'second'));
    const s = sink.source('p', 'retry');
    s.call(1, CALL_OUTCOME_INDEX.success, 1, undefined);
    s.call(2, CALL_OUTCOME_INDEX.failure, 1, new Error('x'));
    expect(log).toEqual(['first:p:success', 'second:p:success', 'second:p:failure', 'late:p:failure']);
    offLate?.();
    s.call(3, CALL_OUTCOME_INDEX.success, 1, undefined);
    expect(log.at(-1)).toBe('second:p:success');
  });

  it('forSource is resolved once per sink version, and again after any subscription change', () => {
    const sink = new EventSink();
    let resolved = 0;
    const calls: number[] = [];
    sink.meter({
      call: () => undefined,
      bulkheadChanged: () => undefined,
      forSource: (): SourceMeter => {
        resolved++;
        return { call: (_at, o) => calls.push(o), bulkheadChanged: () => undefined };
      },
    });
    const s = sink.source('p', 'retry');
    for (let i = 0; i < 5; i++) s.call(i, i % 6, 0, undefined);
    expect(resolved).toBe(1);
    const off = sink.subscribe(() => undefined, ['retry']);
    s.call(9, 2, 0, undefined);
    off();
    s.call(10, 3, 0, undefined);
    expect(resolved).toBe(3);
    expect(calls).toEqual([0, 1, 2, 3, 4, 2, 3]);
  });

  it('wantsBulkheadChanged follows readsState parts and listeners, also through meters without forSource', () => {
    const sink = new EventSink();
    const state = { active: 0, queued: 0, capacity: 4 };
    const s = sink.source('b', 'bulkhead', state);
    expect(s.wantsBulkheadChanged()).toBe(false);
    const offReader = sink.meter({
      call: () => undefined,
      bulkheadChanged: () => {
        throw new Error('a reader is not told');
      },
      forSource: (_source, _kind, given) => {
        expect(given).toBe(state);
        return { call: () => undefined, bulkheadChanged: () => undefined, readsState: true };
      },
    });
    expect(s.wantsBulkheadChanged()).toBe(false);
    const log: string[] = [];
    const offPlain = sink.meter(namedMeter(log, 'plain'));
    expect(s.wantsBulkheadChanged()).toBe(true);
    s.bulkheadChanged(1, 2, 0, 4);
    offPlain();
    expect(s.wantsBulkheadChanged()).toBe(false);
    const objects: number[] = [];
    const offListener = sink.subscribe((e) => {
      if (e.type === 'bulkhead.changed') objects.push(e.active);
    });
    expect(s.wantsBulkheadChanged()).toBe(true);
    s.bulkheadChanged(2, 3, 0, 4);
    offListener();
    offReader();
    expect(s.wantsBulkheadChanged()).toBe(false);
    expect(log).toEqual(['plain:b:b2']);
    expect(objects).toEqual([3]);
  });

  it('a listener added during a meter part’s call gets the same event as an object', () => {
    const sink = new EventSink();
    const seen: string[] = [];
    let added = false;
    sink.meter({
      call: () => undefined,
      bulkheadChanged: () => undefined,
      forSource: () => ({
        call: () => {
          if (added) return;
          added = true;
          sink.subscribe((e) => seen.push(e.type), ['call']);
        },
        bulkheadChanged: () => undefined,
      }),
    });
    const s = sink.source('p', 'timeout');
    s.call(1, CALL_OUTCOME_INDEX.timeout, 5, 'late');
    s.call(2, CALL_OUTCOME_INDEX.success, 5, undefined);
    // Documented nowhere, but consistent with emitCall: the callObjects flag is read after the meters ran.
    expect(seen).toEqual(['call', 'call']);
  });
});
