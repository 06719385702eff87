import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { virtualRuntime } from '../core/runtime.js';
import { readEventsFile, recordEvents } from './events-file.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-events-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('events as JSON lines', () => {
  it('records events (errors flattened) and reads them back', async () => {
    const rt = virtualRuntime(1);
    const file = join(dir, 'events.jsonl');
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
