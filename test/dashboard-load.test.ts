/**
 * Load: 10,000 events/s for 30 s into a dashboard server with one event-stream client connected. Memory
 * stays flat (heap after a forced GC, measured after a warm-up and at the end, must not grow by more than
 * a generous bound) and the client keeps up (its last snapshot counts every event). No timing assertions:
 * the rate is what the generator aims for, and the figures are printed for the report.
 */
import { request } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, it } from 'vitest';
import type { BulwarkEvent } from '../src/core/events.js';
import { createRuntime } from '../src/core/runtime.js';
import type { LiveSnapshot } from '../src/monitor/live.js';
import { createMonitor } from '../src/monitor/monitor.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const RATE = 10_000;
const SECONDS = 30;
const WARMUP_SECONDS = 5;
const BATCH_MS = 50;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** A realistic mix: calls over 16 policies, retries, timeouts, faults, queue jobs with unique ids, runs. */
function eventAt(i: number, at: number): BulwarkEvent {
  const policy = `policy-${i % 20}`;
  switch (i % 10) {
    case 0:
      return { type: 'retry', source: policy, at, attempt: 1, delayMs: 100, error: { code: 'ECONNRESET' } };
    case 1:
      return {
        type: 'fault.injected',
        source: `fault-${i % 3}`,
        at,
        fault: 'error',
        call: i,
        code: 'ECONNREFUSED',
      };
    case 2:
      return {
        type: 'queue.job',
        source: `queue-${i % 4}`,
        at,
        outcome: 'completed',
        jobId: `job-${i}`,
        attempt: 1,
      };
    case 3:
      return i % 1000 === 3
        ? {
            type: 'run.finished',
            source: 'deploy',
            at,
            runId: `run-${i}`,
            status: 'succeeded',
            durationMs: 5,
            rolledBack: 0,
            compensationFailures: 0,
          }
        : { type: 'timeout.fired', source: policy, at, timeoutMs: 1000 };
    case 4:
      return i % 500 === 4
        ? {
            type: 'circuit.transition',
            source: policy,
            at,
            from: 'closed',
            to: i % 1000 === 4 ? 'open' : 'closed',
            reason: 'load',
          }
        : { type: 'bulkhead.changed', source: policy, at, active: i % 10, queued: 0, capacity: 10 };
    default:
      return i % 7 === 0
        ? {
            type: 'call',
            source: policy,
            at,
            kind: 'retry',
            outcome: 'failure',
            durationMs: i % 300,
            error: { code: `E${i % 5}` },
          }
        : { type: 'call', source: policy, at, kind: 'retry', outcome: 'success', durationMs: i % 250 };
  }
}

it(`${RATE} events/s for ${SECONDS} s with one stream client: memory flat, the client keeps up`, async () => {
  const runtime = createRuntime({ seed: 1 });
  const clock = runtime.clock;
  const monitor = createMonitor({ clock, history: ':memory:' });
  monitor.attach(runtime);
  const server = await monitor.serve({ port: 0 });
  let snapshots = 0;
  let last: LiveSnapshot | undefined;
  let pending = '';
  const client = request({ host: '127.0.0.1', port: server.port, path: '/events' }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      pending += chunk;
      let end = pending.indexOf('\n\n');
      while (end >= 0) {
        const message = pending.slice(0, end);
        pending = pending.slice(end + 2);
        const data = /^event: snapshot\ndata: (.*)$/s.exec(message);
        if (data !== null) {
          snapshots++;
          last = JSON.parse(data[1] as string) as LiveSnapshot;
        }
        end = pending.indexOf('\n\n');
      }
    });
  });
  client.on('error', () => undefined);
  client.end();

  try {
    const start = clock.now();
    let emitted = 0;
    let baseline: number | undefined;
    const samples: { second: number; heapMb: number }[] = [];
    while (clock.now() - start < SECONDS * 1000) {
      const elapsed = clock.now() - start;
      const due = Math.min(RATE * SECONDS, Math.floor((elapsed / 1000) * RATE));
      while (emitted < due) {
        runtime.events.emit(eventAt(emitted, clock.now()));
        emitted++;
      }
      if (baseline === undefined && elapsed >= WARMUP_SECONDS * 1000) {
        baseline = heapAfterGc();
        samples.push({ second: Math.round(elapsed / 1000), heapMb: Math.round(baseline / 2 ** 20) });
      } else if (baseline !== undefined && samples.length < Math.floor(elapsed / 5000)) {
        samples.push({ second: Math.round(elapsed / 1000), heapMb: Math.round(heapAfterGc() / 2 ** 20) });
      }
      await clock.sleep(BATCH_MS);
    }
    while (emitted < RATE * SECONDS) runtime.events.emit(eventAt(emitted++, clock.now()));
    const final = heapAfterGc();
    // Let the stream deliver a snapshot that includes the last event (bounded wait on real I/O).
    for (let i = 0; i < 100 && last?.events !== emitted; i++) await clock.sleep(50);
    const growthMb = (final - (baseline as number)) / 2 ** 20;
    process.stdout.write(
      `${JSON.stringify({
        load: {
          events: emitted,
          seconds: SECONDS,
          snapshots,
          growthMb: Number(growthMb.toFixed(1)),
          samples,
        },
      })}\n`,
    );
    expect(emitted).toBe(RATE * SECONDS);
    expect(last?.events).toBe(emitted);
    expect(last?.policies).toHaveLength(16); // policy-1, -2, -11, -12 only ever appear as fault or queue indices
    expect(last?.queues.map((q) => q.jobs.completed).reduce((a, b) => (a ?? 0) + (b ?? 0), 0)).toBe(
      emitted / 10,
    );
    // Generous: the live state is bounded (rings, histograms, capped names); 32 MB leaves room for GC noise.
    expect(growthMb).toBeLessThan(32);
    expect(server.clients).toBe(1);
  } finally {
    client.destroy();
    await monitor.close();
  }
}, 120_000);
