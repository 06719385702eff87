import { readFileSync } from 'node:fs';
import { appendFile, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemClock } from '../core/clock.js';
import type { BulwarkEvent } from '../core/events.js';
import { virtualRuntime } from '../core/runtime.js';
import {
  type EventFileProblem,
  followEventFile,
  parseEventLine,
  readEventsFile,
  recordEvents,
} from './event-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-events-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const clock = new SystemClock();
async function until(done: () => boolean, limitMs = 5000): Promise<void> {
  const start = clock.now();
  while (!done()) {
    if (clock.now() - start > limitMs) throw new Error('condition not met in time');
    await clock.sleep(10);
  }
}

describe('parseEventLine', () => {
  it('accepts events, including types from other modules', () => {
    expect(parseEventLine('{"type":"retry","source":"api","at":1,"attempt":1,"delayMs":100}')).toEqual({
      type: 'retry',
      source: 'api',
      at: 1,
      attempt: 1,
      delayMs: 100,
    });
    expect(parseEventLine('{"type":"alert.fired","source":"rules","at":1}')).toMatchObject({
      type: 'alert.fired',
    });
  });

  it('says what is wrong, field first', () => {
    expect(parseEventLine('nope')).toMatch(/^not JSON/);
    expect(parseEventLine('[1]')).toBe('not a JSON object');
    expect(parseEventLine('{"source":"a","at":1}')).toBe('type: expected a non-empty string');
    expect(parseEventLine('{"type":"call","source":"","at":1}')).toBe('source: expected a non-empty string');
    expect(parseEventLine('{"type":"call","source":"a","at":"now"}')).toBe('at: expected a finite number');
    expect(parseEventLine('{"type":"call","source":"a","at":1,"kind":"retry","outcome":"success"}')).toBe(
      'durationMs: expected a number in a "call" event',
    );
    expect(parseEventLine('{"type":"queue.depth","source":"q","at":1,"depth":[]}')).toBe(
      'depth: expected an object in a "queue.depth" event',
    );
    expect(
      parseEventLine('{"type":"circuit.transition","source":"b","at":1,"from":"closed","to":"ajar"}'),
    ).toBe('to: expected one of closed, open, half-open, isolated, got "ajar"');
  });
});

describe('followEventFile', () => {
  it('reads the file, then follows appends (a line may arrive in pieces) and truncation', async () => {
    const file = join(dir, 'follow.jsonl');
    await writeFile(file, '{"type":"retry","source":"a","at":1,"attempt":1,"delayMs":1}\nbad\n');
    const events: BulwarkEvent[] = [];
    const problems: EventFileProblem[] = [];
    const followed = await followEventFile(file, {
      clock,
      pollMs: 10,
      onEvent: (e) => events.push(e),
      onProblem: (p) => problems.push(p),
    });
    await followed.caughtUp;
    expect(events).toHaveLength(1);
    expect(problems).toEqual([{ file, line: 2, message: expect.stringMatching(/^not JSON/) }]);
    await appendFile(file, '{"type":"retry","source":"b",');
    await appendFile(file, '"at":2,"attempt":1,"delayMs":1}\n');
    await until(() => events.length === 2);
    expect(events[1]?.source).toBe('b');
    await truncate(file, 0);
    await appendFile(file, '{"type":"retry","source":"c","at":3,"attempt":1,"delayMs":1}\n');
    await until(() => events.length === 3);
    expect(events[2]?.source).toBe('c');
    expect(followed.events).toBe(3);
    await followed.close();
  });

  it('without follow, stops at the end and reads a last line without a newline', async () => {
    const file = join(dir, 'once.jsonl');
    await writeFile(file, '{"type":"retry","source":"a","at":1,"attempt":1,"delayMs":1}');
    const events: BulwarkEvent[] = [];
    const followed = await followEventFile(file, {
      clock,
      follow: false,
      onEvent: (e) => events.push(e),
      onProblem: () => {},
    });
    await followed.caughtUp;
    await until(() => events.length === 1);
    await followed.close();
  });

  it('rejects a missing file with its open error', async () => {
    await expect(
      followEventFile(join(dir, 'missing.jsonl'), { clock, onEvent: () => {}, onProblem: () => {} }),
    ).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('events as JSON lines', () => {
  it('records events (errors flattened) and reads them back', async () => {
    const rt = virtualRuntime(1);
    const file = join(dir, 'recorded.jsonl');
    const recording = recordEvents(rt.events, file, ['call']);
    const error = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    rt.events.emit({
      type: 'call',
      source: 'db',
      at: 5,
      kind: 'retry',
      outcome: 'failure',
      durationMs: 2,
      error,
    });
    rt.events.emit({ type: 'retry', source: 'db', at: 6, attempt: 1, delayMs: 1, error });
    rt.events.emit({ type: 'call', source: 'db', at: 7, kind: 'retry', outcome: 'success', durationMs: 1 });
    await recording.close();
    rt.events.emit({ type: 'call', source: 'db', at: 8, kind: 'retry', outcome: 'success', durationMs: 1 });
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(2);
    const events = await readEventsFile(file);
    expect(events[0]).toEqual({
      type: 'call',
      source: 'db',
      at: 5,
      kind: 'retry',
      outcome: 'failure',
      durationMs: 2,
      error: { name: 'Error', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:5432' },
    });
    expect(events[1]?.at).toBe(7);
  });
});
