/**
 * Events from a JSON-lines file, so that another process can feed a dashboard: one event object per line
 * (`{"type":"call","source":"payments","at":…,"kind":"retry","outcome":"success","durationMs":12}`).
 * The file is read from the start and then followed as it grows, like `tail -f`. A line that is not an
 * event is reported with its file and line number and skipped; the rest keep flowing. The same format is
 * what `recordEvents` / `bulwark lab --events` write and `readEventsFile` / `bulwark analyze` read.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Clock, Timer } from '../core/clock.js';
import { FileProblemsError } from '../core/errors.js';
import type { BulwarkEvent, BulwarkEventType, EventSink } from '../core/events.js';
import { cannotRead } from '../policy/file-problems.js';
import { intOption } from '../policy/options.js';
import type { AnalysedEvent } from './patterns.js';

/** A line of an event file that is not an event. */
export interface EventFileProblem {
  file: string;
  line: number;
  message: string;
}

/** The fields each event type must carry, beyond `type`, `source` and `at`. */
const REQUIRED: Record<string, Record<string, 'string' | 'number' | 'boolean' | 'object'>> = {
  'policy.created': { kind: 'string' },
  call: { kind: 'string', outcome: 'string', durationMs: 'number' },
  retry: { attempt: 'number', delayMs: 'number' },
  'retry.exhausted': { attempts: 'number' },
  'circuit.transition': { from: 'string', to: 'string' },
  'circuit.rejected': { state: 'string' },
  'timeout.fired': { timeoutMs: 'number' },
  'bulkhead.changed': { active: 'number', queued: 'number', capacity: 'number' },
  'bulkhead.rejected': { active: 'number', queued: 'number' },
  'fault.injected': { fault: 'string', call: 'number' },
  'resource.changed': { used: 'number', capacity: 'number' },
  'queue.job': { outcome: 'string', jobId: 'string', attempt: 'number' },
  'queue.depth': { depth: 'object' },
  'queue.rejected': { reason: 'string' },
  'queue.health': { healthy: 'boolean', reason: 'string' },
  'queue.failover': { from: 'string', to: 'string', reason: 'string' },
  'queue.failback': { from: 'string', to: 'string' },
  'queue.worker': { workerId: 'string', state: 'string' },
  'run.started': { runId: 'string', steps: 'number', dryRun: 'boolean' },
  'run.finished': { runId: 'string', status: 'string', durationMs: 'number' },
  'step.started': { runId: 'string', step: 'string', tool: 'string' },
  'step.succeeded': { runId: 'string', step: 'string', tool: 'string', durationMs: 'number' },
  'step.failed': { runId: 'string', step: 'string', tool: 'string', final: 'boolean' },
  'step.compensated': { runId: 'string', step: 'string', tool: 'string', ok: 'boolean' },
};

const ENUMS: Record<string, Record<string, readonly string[]>> = {
  call: { outcome: ['success', 'failure', 'rejected', 'timeout', 'cancelled', 'fallback'] },
  'circuit.transition': {
    from: ['closed', 'open', 'half-open', 'isolated'],
    to: ['closed', 'open', 'half-open', 'isolated'],
  },
  'queue.job': { outcome: ['added', 'completed', 'failed', 'dead', 'stalled', 'redriven'] },
  'run.finished': { status: ['succeeded', 'failed', 'cancelled'] },
};

/**
 * Parses one line into an event, or says what is wrong with it. Unknown event types are accepted (other
 * modules add their own) as long as the common fields are right.
 * @example
 * parseEventLine('{"type":"retry","source":"api","at":1,"attempt":1,"delayMs":100}');
 */
export function parseEventLine(line: string): BulwarkEvent | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return `not JSON (${error instanceof Error ? error.message : String(error)})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const event = value as Record<string, unknown>;
  if (typeof event.type !== 'string' || event.type === '') return 'type: expected a non-empty string';
  if (typeof event.source !== 'string' || event.source === '') return 'source: expected a non-empty string';
  if (typeof event.at !== 'number' || !Number.isFinite(event.at)) return 'at: expected a finite number';
  for (const [field, type] of Object.entries(REQUIRED[event.type] ?? {})) {
    const actual = event[field];
    const ok =
      type === 'object'
        ? typeof actual === 'object' && actual !== null && !Array.isArray(actual)
        : type === 'number'
          ? typeof actual === 'number' && Number.isFinite(actual)
          : typeof actual === type;
    if (!ok)
      return `${field}: expected ${type === 'object' ? 'an object' : `a ${type}`} in a "${event.type}" event`;
  }
  for (const [field, allowed] of Object.entries(ENUMS[event.type] ?? {})) {
    if (!allowed.includes(event[field] as string)) {
      return `${field}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(event[field])}`;
    }
  }
  return event as unknown as BulwarkEvent;
}

/** A file being followed. */
export interface FollowedFile {
  /** Events read so far. */
  readonly events: number;
  /** Resolves when the file has been read to its end (the first time). */
  readonly caughtUp: Promise<void>;
  close(): Promise<void>;
}

export interface FollowEventFileOptions {
  clock: Clock;
  onEvent: (event: BulwarkEvent) => void;
  onProblem: (problem: EventFileProblem) => void;
  /** How often the file is checked for new lines, in ms. @defaultValue 250 */
  pollMs?: number;
  /** Keep reading as the file grows; otherwise stop at its end. @defaultValue true */
  follow?: boolean;
}

const CHUNK = 64 * 1024;
/** A line longer than this is a problem, not a reason to buffer without end. */
const MAX_LINE = 1024 * 1024;

/**
 * Reads `file` from the start and follows it as it grows.
 * @throws the `open` error (ENOENT, EACCES) when the file cannot be opened.
 */
export async function followEventFile(file: string, options: FollowEventFileOptions): Promise<FollowedFile> {
  const pollMs = intOption('followEventFile', 'pollMs', options.pollMs, 250, 10, 60_000);
  const follow = options.follow ?? true;
  const handle = await open(file, 'r');
  const buffer = Buffer.alloc(CHUNK);
  let position = 0;
  let pending = '';
  let lineNo = 0;
  let events = 0;
  let closed = false;
  let timer: Timer | undefined;
  let reading: Promise<void> = Promise.resolve();
  let resolveCaughtUp!: () => void;
  const caughtUp = new Promise<void>((resolve) => {
    resolveCaughtUp = resolve;
  });

  const line = (text: string) => {
    lineNo++;
    const trimmed = text.trim();
    if (trimmed === '') return;
    const parsed = parseEventLine(trimmed);
    if (typeof parsed === 'string') options.onProblem({ file, line: lineNo, message: parsed });
    else {
      events++;
      options.onEvent(parsed);
    }
  };

  const readAvailable = async () => {
    for (;;) {
      if (closed) return;
      const { size } = await handle.stat();
      if (size < position) {
        // Truncated (rotated in place): start over.
        position = 0;
        pending = '';
        lineNo = 0;
      }
      if (size === position) return;
      const { bytesRead } = await handle.read(buffer, 0, Math.min(CHUNK, size - position), position);
      if (bytesRead === 0) return;
      position += bytesRead;
      pending += buffer.toString('utf8', 0, bytesRead);
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        line(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
      if (pending.length > MAX_LINE) {
        options.onProblem({ file, line: lineNo + 1, message: `line longer than ${MAX_LINE} bytes, skipped` });
        pending = '';
      }
    }
  };

  const poll = () => {
    reading = reading
      .then(readAvailable)
      .catch((error: unknown) => {
        options.onProblem({
          file,
          line: lineNo,
          message: `read failed: ${error instanceof Error ? error.message : String(error)}`,
        });
      })
      .then(() => {
        if (closed) return;
        resolveCaughtUp();
        if (follow) timer = options.clock.setTimer(pollMs, poll, undefined);
        else if (pending.trim() !== '') {
          line(pending);
          pending = '';
        }
      });
  };
  poll();

  return {
    get events() {
      return events;
    },
    caughtUp,
    async close() {
      if (closed) return;
      closed = true;
      timer?.cancel();
      resolveCaughtUp();
      await reading;
      await handle.close();
    },
  };
}

/** A JSON-lines events file with bad lines; one message per problem (`file:line: message`). */
export class EventsFileError extends FileProblemsError {
  override readonly name = 'EventsFileError';
  constructor(problems: readonly string[]) {
    super('EVENTS_FILE', problems);
  }
}

function plainError(value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const code = (value as { code?: unknown }).code;
  return { name: value.name, ...(typeof code === 'string' ? { code } : {}), message: value.message };
}

/** One event as a JSON line (errors flattened to `{ name, code, message }`). */
export function eventToJsonLine(event: BulwarkEvent): string {
  return JSON.stringify(event, (_key, value: unknown) => plainError(value));
}

const MAX_PROBLEMS = 20;

/**
 * Reads a JSON-lines events file. Blank lines are skipped; every other line must be an object with a
 * string `type`, a string `source` and a numeric `at`.
 * @throws {@link EventsFileError} listing the bad lines (at most 20, then a count).
 */
export async function readEventsFile(path: string): Promise<AnalysedEvent[]> {
  const events: AnalysedEvent[] = [];
  const problems: string[] = [];
  let extra = 0;
  const problem = (text: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(text);
    else extra++;
  };
  let lineNo = 0;
  let stream: ReturnType<typeof createReadStream>;
  try {
    stream = createReadStream(path, { encoding: 'utf8' });
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
  } catch (error) {
    throw new EventsFileError([cannotRead(path, error)]);
  }
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue;
      const event = parseEventLine(line);
      if (typeof event === 'string') problem(`${path}:${lineNo}: ${event}`);
      else events.push(event as unknown as AnalysedEvent);
    }
  } catch (error) {
    throw new EventsFileError([`cannot read ${path}: ${(error as Error).message}`]);
  }
  if (extra > 0) problems.push(`… and ${extra} more bad lines`);
  if (problems.length > 0) throw new EventsFileError(problems);
  return events;
}

/**
 * Appends every event of `events` (or only the given types) to `path` as JSON lines, for
 * `bulwark analyze`. `close()` unsubscribes and flushes the file.
 * @example
 * const recording = recordEvents(runtime.events, 'events.jsonl');
 * // … run …
 * await recording.close();
 */
export function recordEvents(
  events: EventSink,
  path: string,
  types?: readonly BulwarkEventType[],
): { close(): Promise<void> } {
  const out = createWriteStream(path, { flags: 'a' });
  let failure: unknown;
  out.on('error', (error) => {
    failure = error;
  });
  const unsubscribe = events.subscribe((event) => {
    out.write(`${eventToJsonLine(event)}\n`);
  }, types);
  return {
    close: () =>
      new Promise<void>((resolve, reject) => {
        unsubscribe();
        out.end(() => (failure === undefined ? resolve() : reject(failure)));
      }),
  };
}
