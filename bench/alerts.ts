/**
 * npm run bench:alerts [-- --json] [-- --quick]
 *
 * What alerting costs on the event path: `call` events per second through an EventSink with (a) one
 * no-op subscriber, (b) an AlertRuleEngine with a ratio rule, (c) the same plus a multi-window burn-rate
 * rule (8 bucketed windows per event), and (d) with 1,000 sources (one ratio series each). Per-event work
 * is O(1), so (b)-(d) should cost a small constant over (a) and not grow with the window length.
 * Also analysePatterns over 1,000,000 events. Wall-clock time through SystemClock; medians of rounds.
 * Compare ratios, not absolute numbers: the benchmark machine is shared.
 */
import os from 'node:os';
import { type Clock, SystemClock, type Timer, type TimerQueue } from '../src/core/clock.js';
import type { BulwarkEvent, CallOutcome } from '../src/core/events.js';
import { createRuntime, type Runtime, virtualRuntime } from '../src/core/runtime.js';
import { AlertRuleEngine } from '../src/monitor/alerts/engine.js';
import type { AlertRule } from '../src/monitor/alerts/rules.js';
import { type AnalysedEvent, analysePatterns } from '../src/monitor/patterns.js';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const clock = new SystemClock();
const ROUNDS = quick ? 3 : 7;
const EVENTS = quick ? 200_000 : 1_000_000;

const RATIO: AlertRule = {
  kind: 'ratio',
  name: 'LowSuccessRate',
  match: { type: 'call' },
  good: { outcome: 'success' },
  below: 0.9,
  window: '5m',
  minVolume: 20,
};
const BURN: AlertRule = {
  kind: 'burnRate',
  name: 'ErrorBudget',
  match: { type: 'call' },
  good: { outcome: 'success' },
  objective: 0.999,
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** A clock the benchmark moves by hand; timers are held, never fired (evaluation is measured apart). */
class HandClock implements Clock {
  time = 0;
  now(): number {
    return this.time;
  }
  setTimer(): Timer {
    return { cancel() {} };
  }
  sleep(): Promise<void> {
    return new Promise(() => undefined);
  }
  timerQueue(): TimerQueue {
    throw new Error('not used');
  }
}

/** ns per event for emitting EVENTS `call` events (1 ms of clock time apart) with `setup` listening. */
function measure(setup: (rt: Runtime) => () => void, sources: number): number {
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    const hand = new HandClock();
    const rt = createRuntime({ clock: hand, seed: 1 });
    const stop = setup(rt);
    const names = Array.from({ length: sources }, (_, i) => `svc${i}`);
    const outcomes: CallOutcome[] = ['success', 'success', 'success', 'failure'];
    const start = clock.now();
    for (let i = 0; i < EVENTS; i++) {
      hand.time = i;
      rt.events.emit({
        type: 'call',
        source: names[i % sources] as string,
        at: i,
        kind: 'pipeline',
        outcome: outcomes[i & 3] as CallOutcome,
        durationMs: 1,
      } as BulwarkEvent);
    }
    const ns = ((clock.now() - start) * 1e6) / EVENTS;
    stop();
    if (r > 0) rounds.push(ns); // the first round warms up
  }
  return median(rounds);
}

const rows: Record<string, number> = {};
rows.sinkOnly = measure((rt) => rt.events.subscribe(() => undefined, ['call']), 1);
rows.ratioRule = measure((rt) => {
  const engine = new AlertRuleEngine({ runtime: rt, rules: [RATIO] });
  return () => engine.close();
}, 1);
rows.ratioAndBurnRate = measure((rt) => {
  const engine = new AlertRuleEngine({ runtime: rt, rules: [RATIO, BURN] });
  return () => engine.close();
}, 1);
rows.ratio1000Sources = measure((rt) => {
  const engine = new AlertRuleEngine({ runtime: rt, rules: [RATIO] });
  return () => engine.close();
}, 1000);

// Evaluation: one pass over 1,000 ratio series.
{
  const rt = virtualRuntime(1);
  const engine = new AlertRuleEngine({ runtime: rt, rules: [RATIO] });
  for (let i = 0; i < 1000; i++)
    rt.events.emit({
      type: 'call',
      source: `svc${i}`,
      at: 0,
      kind: 'pipeline',
      outcome: 'success',
      durationMs: 1,
    });
  const passes: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = clock.now();
    for (let k = 0; k < 100; k++) engine.evaluate();
    passes.push(((clock.now() - start) * 1e3) / 100);
  }
  rows.evaluate1000SeriesUs = median(passes);
  engine.close();
}

// Pattern analysis over EVENTS events (10% failures on 50 targets).
{
  const events: AnalysedEvent[] = [];
  for (let i = 0; i < EVENTS; i++) {
    const fail = i % 10 === 0;
    events.push(
      fail
        ? {
            type: 'call',
            source: `t${i % 50}`,
            at: i * 10,
            outcome: 'failure',
            error: { code: 'ECONNRESET', message: `socket ${i} hang up` },
          }
        : { type: 'call', source: `t${i % 50}`, at: i * 10, outcome: 'success' },
    );
  }
  const times: number[] = [];
  for (let r = 0; r < Math.min(ROUNDS, 3); r++) {
    const start = clock.now();
    analysePatterns(events);
    times.push(clock.now() - start);
  }
  rows.analyseMs = median(times);
}

const summary = {
  bench: 'alerts',
  events: EVENTS,
  rounds: ROUNDS,
  nsPerEvent: {
    sinkOnly: Number(rows.sinkOnly?.toFixed(1)),
    ratioRule: Number(rows.ratioRule?.toFixed(1)),
    ratioAndBurnRate: Number(rows.ratioAndBurnRate?.toFixed(1)),
    ratio1000Sources: Number(rows.ratio1000Sources?.toFixed(1)),
  },
  evaluate1000SeriesUs: Number(rows.evaluate1000SeriesUs?.toFixed(1)),
  analyseMs: Number(rows.analyseMs?.toFixed(0)),
  node: process.version,
  cpus: os.cpus().length,
  note: 'shared VM: compare ratios between rows, not absolute numbers',
};
if (!json) {
  console.log(`call events through the sink, ns/event (median of ${ROUNDS} rounds of ${EVENTS}):`);
  for (const [k, v] of Object.entries(summary.nsPerEvent)) console.log(`  ${k.padEnd(18)} ${v}`);
  console.log(`evaluate 1,000 ratio series: ${summary.evaluate1000SeriesUs} µs`);
  console.log(`analysePatterns over ${EVENTS} events: ${summary.analyseMs} ms`);
}
console.log(JSON.stringify(summary));
