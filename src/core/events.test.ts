import { describe, expect, it } from 'vitest';
import { type BulwarkEvent, EventSink } from './events.js';

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
