/**
 * Fuzzed payloads and options: a payload is either stored and delivered exactly as JSON would carry it, or
 * refused at `add` with QUEUE_PAYLOAD_INVALID and nothing stored; bad options are TypeErrors at
 * construction (or at `add`), never anything else.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { isBulwarkError } from '../core/errors.js';
import { createRuntime, virtualRuntime } from '../core/runtime.js';
import { backoff } from '../policy/backoff.js';
import { MemoryQueue } from './memory.js';
import { SqliteQueue } from './sqlite.js';
import type { JsonValue, Queue } from './types.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Values JSON cannot carry faithfully, to mix into JSON. */
const poison = fc.oneof(
  fc.constant(undefined),
  fc.constant(Number.NaN),
  fc.constant(Number.POSITIVE_INFINITY),
  fc.constant(() => 1),
  fc.constant(Symbol('s')),
  fc.bigInt(),
  fc.date(),
  fc.constant(new Map([[1, 2]])),
  fc.constant(new Set([1])),
  fc.constant(new Uint8Array([1, 2])),
  fc.constant(/re/),
);

/** JSON with, sometimes, a poisoned value somewhere inside. */
const payloads = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.jsonValue({ maxDepth: 2 }),
    poison,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

function containsPoison(value: unknown, seen = new Set<unknown>()): boolean {
  if (value === null) return false;
  if (typeof value === 'number') return !Number.isFinite(value);
  if (typeof value === 'string' || typeof value === 'boolean') return false;
  if (typeof value !== 'object') return true;
  if (seen.has(value)) return true;
  seen.add(value);
  const proto = Object.getPrototypeOf(value);
  if (Array.isArray(value)) return value.some((v) => containsPoison(v, seen));
  if (proto !== Object.prototype && proto !== null) return true;
  return Object.values(value).some((v) => containsPoison(v, seen));
}

async function roundTrip(queue: Queue, waitFor: (cond: () => boolean) => Promise<void>, payload: unknown) {
  const before = (await queue.stats()).counts;
  let added: { id: string } | undefined;
  let error: unknown;
  try {
    added = await queue.add(payload as JsonValue);
  } catch (e) {
    error = e;
  }
  if (containsPoison(payload)) {
    expect(isBulwarkError(error, 'QUEUE_PAYLOAD_INVALID')).toBe(true);
    expect(String((error as Error).message)).toMatch(/payload/);
    expect((await queue.stats()).counts).toEqual(before);
    return;
  }
  expect(error).toBeUndefined();
  let delivered: unknown;
  const worker = queue.process((job) => {
    if (job.id === added?.id) delivered = job.payload;
  });
  await waitFor(() => delivered !== undefined);
  await worker.close();
  expect(delivered).toEqual(JSON.parse(JSON.stringify(payload)));
}

describe('queue fuzzing', () => {
  it('memory: a payload is delivered as JSON carries it, or refused with nothing stored', async () => {
    const rt = virtualRuntime('fuzz');
    const queue = new MemoryQueue({ runtime: rt });
    await rt.clock.run(async () => {
      await fc.assert(
        fc.asyncProperty(payloads, async (payload) => {
          await roundTrip(
            queue,
            async (cond) => {
              while (!cond()) await rt.clock.sleep(1);
            },
            payload,
          );
        }),
        { numRuns: 300 },
      );
      await queue.close();
    });
  });

  it('sqlite: the same, through the database file', async () => {
    const rt = createRuntime({ seed: 'fuzz' });
    const queue = new SqliteQueue({ runtime: rt, file: join(dir, 'fuzz.db'), pollInterval: 1 });
    try {
      await fc.assert(
        fc.asyncProperty(payloads, async (payload) => {
          await roundTrip(
            queue,
            async (cond) => {
              const deadline = rt.clock.now() + 5000;
              while (!cond() && rt.clock.now() < deadline) await rt.clock.sleep(1);
            },
            payload,
          );
        }),
        { numRuns: 100 },
      );
    } finally {
      await queue.close();
    }
  });

  it('constructor options: a valid queue or a TypeError naming an option, nothing else', () => {
    const values = fc.oneof(
      fc.integer({ min: -5, max: 100_000 }),
      fc.double(),
      fc.string({ maxLength: 8 }),
      fc.boolean(),
      fc.constant(undefined),
      fc.constant(null),
      fc.constant({}),
      fc.constant([]),
    );
    const options = fc.record(
      {
        name: values,
        capacity: values,
        lease: values,
        maxStalled: values,
        workerTtl: values,
        requireWorkers: values,
        typo: values,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(options, (o) => {
        const given = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
        try {
          const queue = new MemoryQueue(given as never);
          void queue.close();
        } catch (error) {
          expect(error).toBeInstanceOf(TypeError);
          expect(String((error as Error).message)).toMatch(/option|options/);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('add options: stored or a TypeError, and a refused add stores nothing', async () => {
    const rt = virtualRuntime('fuzz-add');
    const queue = new MemoryQueue({ runtime: rt });
    const values = fc.oneof(
      fc.integer({ min: -3, max: 3_000_000 }),
      fc.double(),
      fc.string({ maxLength: 250 }),
      fc.boolean(),
      fc.constant(null),
      fc.constant(backoff.constant(5)),
    );
    const options = fc.record(
      {
        priority: values,
        delay: values,
        attempts: values,
        backoff: values,
        idempotencyKey: values,
        extra: values,
      },
      { requiredKeys: [] },
    );
    await rt.clock.run(async () => {
      await fc.assert(
        fc.asyncProperty(options, async (o) => {
          const before = (await queue.stats()).counts.waiting + (await queue.stats()).counts.delayed;
          try {
            await queue.add({ ok: true }, o as never);
          } catch (error) {
            expect(error).toBeInstanceOf(TypeError);
            const after = (await queue.stats()).counts;
            expect(after.waiting + after.delayed).toBe(before);
          }
        }),
        { numRuns: 500 },
      );
      await queue.close();
    });
  });
});
