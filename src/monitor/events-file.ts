/**
 * Events as JSON lines (one event object per line): how a run's events are saved and read back for
 * `bulwark analyze`. Errors are written as plain `{ name, code, message }` objects.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { BulwarkError } from '../core/errors.js';
import type { BulwarkEvent, BulwarkEventType, EventSink } from '../core/events.js';
import type { AnalysedEvent } from './patterns.js';

/** A JSON-lines events file with bad lines; one message per problem (`file:line: message`). */
export class EventsFileError extends BulwarkError {
  override readonly name = 'EventsFileError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('EVENTS_FILE', problems.join('\n'), { retryable: false });
    this.problems = problems;
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
    const code = (error as { code?: unknown } | null)?.code;
    const reason =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'EACCES'
            ? 'permission denied'
            : String((error as Error).message);
    throw new EventsFileError([`cannot read ${path}: ${reason}`]);
  }
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        problem(`${path}:${lineNo}: not valid JSON`);
        continue;
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        problem(`${path}:${lineNo}: expected an event object`);
        continue;
      }
      const e = value as Record<string, unknown>;
      const missing = [
        typeof e.type === 'string' ? undefined : '"type" (a string)',
        typeof e.source === 'string' ? undefined : '"source" (a string)',
        typeof e.at === 'number' && Number.isFinite(e.at) ? undefined : '"at" (a number of ms)',
      ].filter((m) => m !== undefined);
      if (missing.length > 0) {
        problem(`${path}:${lineNo}: missing ${missing.join(', ')}`);
        continue;
      }
      events.push(e as unknown as AnalysedEvent);
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
