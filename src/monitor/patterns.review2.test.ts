import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CallOutcome, callEvent } from '../core/events.js';
import { type AnalysedEvent, analysePatterns, PatternWatch } from './patterns.js';

type Op =
  | { as: 'fields'; source: string; outcome: CallOutcome; durationMs: number; error: unknown }
  | { as: 'object'; event: AnalysedEvent };

const outcomes: CallOutcome[] = ['success', 'failure', 'timeout', 'rejected'];
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    as: fc.constant('fields' as const),
    source: fc.constantFrom('a', 'b', 'c'),
    outcome: fc.constantFrom(...outcomes),
    durationMs: fc.integer({ min: 0, max: 5000 }),
    error: fc.constantFrom(undefined, 'E1', 'E2'),
  }),
  fc.record({
    as: fc.constant('object' as const),
    event: fc.oneof(
      fc.record({
        type: fc.constant('retry'),
        source: fc.constantFrom('a', 'b'),
        at: fc.constant(0),
        attempt: fc.integer({ min: 1, max: 3 }),
        delayMs: fc.constant(10),
        error: fc.constant('E1'),
      }),
      fc.record({
        type: fc.constant('call'),
        source: fc.constantFrom('a', 'c'),
        at: fc.constant(0),
        kind: fc.constant('retry'),
        outcome: fc.constant('failure'),
        durationMs: fc.integer({ min: 0, max: 100 }),
        error: fc.constant('E2'),
      }),
    ),
  }),
);

/** Replays ops into a watch (the ring) and keeps the plain list for a reference analysis. */
function replay(watch: PatternWatch, ops: readonly Op[]): AnalysedEvent[] {
  const all: AnalysedEvent[] = [];
  ops.forEach((op, i) => {
    const at = 1000 + i * 7;
    if (op.as === 'fields') {
      const fields = [
        op.source,
        at,
        'retry',
        op.outcome,
        op.durationMs,
        op.outcome === 'success' ? undefined : op.error,
      ] as const;
      watch.recordCall(...fields);
      all.push(callEvent(...fields) as unknown as AnalysedEvent);
    } else {
      const event = { ...op.event, at };
      watch.record(event);
      all.push(event);
    }
  });
  return all;
}

describe('PatternWatch ring (review2)', () => {
  it('reports what analysePatterns says of the latest `limit` events, fields and objects mixed, across wrap-around', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(opArb, { maxLength: 40 }), (limit, ops) => {
        const watch = new PatternWatch(undefined, { limit });
        const all = replay(watch, ops);
        expect(watch.size).toBe(Math.min(limit, ops.length));
        expect(watch.report()).toEqual(analysePatterns(all.slice(-limit)));
      }),
      { numRuns: 300 },
    );
  });

  it('close() empties the ring and it can be refilled from slot 0', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(opArb, { maxLength: 12 }),
        fc.array(opArb, { maxLength: 12 }),
        (limit, before, after) => {
          const watch = new PatternWatch(undefined, { limit });
          replay(watch, before);
          watch.close();
          expect(watch.size).toBe(0);
          expect(watch.report()).toEqual(analysePatterns([]));
          const all = replay(watch, after);
          expect(watch.report()).toEqual(analysePatterns(all.slice(-limit)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('limit 1 keeps exactly the last event (an object replacing a call and back)', () => {
    const watch = new PatternWatch(undefined, { limit: 1 });
    watch.recordCall('a', 1, 'retry', 'failure', 5, 'E');
    const retryEvent = { type: 'retry', source: 'b', at: 2, attempt: 1, delayMs: 1, error: 'E' };
    watch.record(retryEvent);
    expect(watch.report()).toEqual(analysePatterns([retryEvent]));
    watch.recordCall('c', 3, 'retry', 'timeout', 9, 'T');
    expect(watch.report()).toEqual(
      analysePatterns([callEvent('c', 3, 'retry', 'timeout', 9, 'T') as unknown as AnalysedEvent]),
    );
  });
});
