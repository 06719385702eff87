/**
 * `disk`: an append-only log under a failing disk. Writes to the data directory hit `ENOSPC` (some after
 * part of the record is written) and, for a window, `EACCES`. The plain writer appends each record to
 * one file; the safe writer writes each record to a temporary file, fsyncs it and renames it into place,
 * retries what may pass, and degrades to a fallback directory while the data directory keeps failing.
 * Both logs are read back at the end: records intact, lost, and files corrupted by a torn write.
 */
import { faultyFs } from '../../chaos/fs.js';
import { MemoryFileSystem } from '../../chaos/memory-fs.js';
import { schedule } from '../../chaos/schedule.js';
import type { Runtime } from '../../core/runtime.js';
import { backoff } from '../../policy/backoff.js';
import { circuitBreaker } from '../../policy/circuit-breaker.js';
import { fallback } from '../../policy/fallback.js';
import { pipeline } from '../../policy/pipeline.js';
import { retry } from '../../policy/retry.js';
import { defineScenario } from '../scenario.js';

const DATA = '/data/log';
const FALLBACK = '/fallback/log';
const LOG = `${DATA}/app.log`;

/** Errors that a later attempt may not meet (space freed, a transient I/O error, a descriptor freed). */
const TRANSIENT = new Set(['ENOSPC', 'EIO', 'EMFILE']);

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** FNV-1a, so a reader can tell a whole record from a torn or spliced one. */
function checksum(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

const LINE = /^(\d+) ([0-9a-f]{8}) (.*)$/;

/** What the writers and the reader need of a file system: `node:fs/promises`, `memoryFs()`, `faultyFs(…)`. */
export interface LogFs {
  readdir(path: string): Promise<string[]>;
  readFile(path: string, encoding: 'utf8'): Promise<string | Buffer>;
  appendFile(path: string, data: string): Promise<void>;
  open(
    path: string,
    flags: string,
  ): Promise<{ writeFile(data: string): Promise<void>; sync(): Promise<void>; close(): Promise<void> }>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: boolean }): Promise<void>;
}

/** What reading the logs back found. */
export interface ReadBack {
  intact: Set<number>;
  duplicates: number;
  files: number;
  corruptedFiles: number;
  strayTempFiles: number;
}

/** @internal The line of record `seq`: `seq checksum payload\n`, `bytes` of payload. */
export function recordLine(seq: number, bytes: number): string {
  const payload = `record-${seq}-`.padEnd(bytes, String.fromCharCode(97 + (seq % 26)));
  return `${seq} ${checksum(`${seq} ${payload}`)} ${payload}\n`;
}

/** @internal Reads every log file in `dirs` (skipping temporary files) and checks every record line. */
export async function readBack(disk: LogFs, dirs: readonly string[]): Promise<ReadBack> {
  const result: ReadBack = {
    intact: new Set(),
    duplicates: 0,
    files: 0,
    corruptedFiles: 0,
    strayTempFiles: 0,
  };
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await disk.readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (name.endsWith('.tmp')) {
        result.strayTempFiles++;
        continue;
      }
      result.files++;
      const text = String(await disk.readFile(`${dir}/${name}`, 'utf8'));
      let corrupted = !text.endsWith('\n') && text.length > 0;
      for (const line of text.split('\n')) {
        if (line === '') continue;
        const match = LINE.exec(line);
        if (match === null || checksum(`${match[1]} ${match[3]}`) !== match[2]) {
          corrupted = true;
          continue;
        }
        const seq = Number(match[1]);
        if (result.intact.has(seq)) result.duplicates++;
        else result.intact.add(seq);
      }
      if (corrupted) result.corruptedFiles++;
    }
  }
  return result;
}

/** @internal The scenario's parameters. */
export interface DiskParams {
  recordBytes: number;
  intervalMs: number;
  enospcRate: number;
  tornBytes: number;
  eaccesFromMs: number;
  eaccesToMs: number;
  syncMs: number;
  maxAttempts: number;
  backoffMs: number;
  degradeAfterFailures: number;
  probeAfterMs: number;
}

/** The same faults for both writers: one failing disk each, built from the same rules and seed. */
async function failingDisk(runtime: Runtime, params: DiskParams, label: string) {
  const disk = new MemoryFileSystem();
  await disk.mkdir(DATA, { recursive: true });
  await disk.mkdir(FALLBACK, { recursive: true });
  const fs = faultyFs({
    fs: disk,
    rules: [
      {
        name: `${label}:full`,
        path: `${DATA}/**`,
        operations: ['writeFile', 'appendFile', 'write'],
        error: 'ENOSPC',
        afterBytes: params.tornBytes,
        schedule: schedule.rate(params.enospcRate),
      },
      {
        name: `${label}:denied`,
        path: [DATA, `${DATA}/**`],
        error: 'EACCES',
        schedule: schedule.window(params.eaccesFromMs, params.eaccesToMs),
      },
      { name: `${label}:fsync`, operations: ['sync'], latency: params.syncMs },
    ],
    runtime,
  });
  return { disk, fs };
}

/**
 * temp file + write + fsync + close + rename, then fsync the directory so the rename itself is durable:
 * the segment appears whole or not at all. Segments are named by sequence number, so writing one again
 * (a retry after the rename succeeded but the directory fsync failed) replaces it with the same bytes.
 */
async function writeSegment(fs: LogFs, dir: string, seq: number, line: string): Promise<void> {
  const name = `${String(seq).padStart(8, '0')}.log`;
  const temporary = `${dir}/.${name}.tmp`;
  try {
    const handle = await fs.open(temporary, 'w');
    try {
      // writeFile, not write: a single write() on a nearly full disk may store part of the data and
      // report success (a short write); writeFile goes on until all of it is stored or it fails.
      await handle.writeFile(line);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, `${dir}/${name}`);
    const directory = await fs.open(dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  } catch (error) {
    // Best effort: a temporary file left behind holds no acknowledged record, and the reader skips it.
    await fs.rm(temporary, { force: true }).catch(() => {});
    throw error;
  }
}

/** A log writer: resolves when record `seq` (the text `line`) is stored, rejects when it is not. */
export type LogWriter = (seq: number, line: string) => Promise<void>;

/** @internal The plain writer: one `appendFile` per record to `log`, nothing else. */
export function plainWriter(fs: LogFs, log: string): LogWriter {
  return (_seq, line) => fs.appendFile(log, line);
}

/**
 * @internal The safe writer: each record a segment written with {@link writeSegment}, retrying what a
 * later attempt may pass, and (through a breaker and a fallback) writing to `fallbackDir` while `dataDir`
 * keeps failing. Call it for one record at a time.
 */
export function safeWriter(
  fs: LogFs,
  dataDir: string,
  fallbackDir: string,
  runtime: Runtime,
  params: Pick<DiskParams, 'maxAttempts' | 'backoffMs' | 'degradeAfterFailures' | 'probeAfterMs'>,
): LogWriter {
  const retried = () =>
    retry({
      maxAttempts: params.maxAttempts,
      backoff: backoff.exponential({ initial: params.backoffMs, factor: 2 }).withJitter('full'),
      retryOn: (error) => TRANSIENT.has(codeOf(error) ?? ''),
      runtime,
    });
  // Records are written one at a time, so the fallback can name the record being written.
  let current = { seq: 0, line: '' };
  const toFallback = retried();
  const writer = pipeline(
    fallback(() => toFallback.execute(() => writeSegment(fs, fallbackDir, current.seq, current.line)), {
      runtime,
    }),
    circuitBreaker({
      name: 'data-dir',
      consecutiveFailures: params.degradeAfterFailures,
      halfOpenAfter: params.probeAfterMs,
      runtime,
    }),
    retried(),
  );
  return (seq, line) => {
    current = { seq, line };
    return writer.execute(() => writeSegment(fs, dataDir, seq, line));
  };
}

/** The `disk` scenario. */
export const disk = defineScenario({
  name: 'disk',
  description:
    'append-only log: ENOSPC (p 0.05, torn after 16 bytes) and a 2 s EACCES window; plain append vs temp+fsync+rename, retry, fallback directory',
  params: {
    recordBytes: 64,
    /** Virtual ms between records. */
    intervalMs: 10,
    /** Probability that a write to the data directory fails with ENOSPC. */
    enospcRate: 0.05,
    /** Bytes a failing write still puts on disk (a torn write). */
    tornBytes: 16,
    /** The data directory denies access (EACCES) from … to … virtual ms. */
    eaccesFromMs: 3000,
    eaccesToMs: 5000,
    /** Virtual ms an fsync takes. */
    syncMs: 2,
    /** Attempts per record in one directory (safe writer). */
    maxAttempts: 4,
    /** First retry delay (safe writer; doubles, full jitter). */
    backoffMs: 20,
    /** Consecutive failed records after which the safe writer goes straight to the fallback directory. */
    degradeAfterFailures: 3,
    /** Virtual ms before it tries the data directory again. */
    probeAfterMs: 1000,
  },
  defaults: { tasks: 1000 },
  async run({ runtime, tasks, params, record, progress }) {
    const clock = runtime.clock;
    const plain = await failingDisk(runtime, params, 'plain');
    const safe = await failingDisk(runtime, params, 'safe');

    const plainWrite = plainWriter(plain.fs, LOG);
    const safeWrite = safeWriter(safe.fs, DATA, FALLBACK, runtime, params);

    let plainAcknowledged = 0;
    let safeAcknowledged = 0;
    const start = clock.now();
    for (let seq = 0; seq < tasks; seq++) {
      const due = start + seq * params.intervalMs;
      if (clock.now() < due) await clock.sleep(due - clock.now());
      const line = recordLine(seq, params.recordBytes);
      const began = clock.now();
      try {
        await plainWrite(seq, line);
        plainAcknowledged++;
      } catch {
        // The plain writer reports the failure and moves on: the record is gone.
      }
      try {
        await safeWrite(seq, line);
        safeAcknowledged++;
        record.latency('safe.write_ms', clock.now() - began);
      } catch {
        // Both directories failed every attempt: the record is reported lost below.
      }
      progress(seq + 1);
    }

    const plainBack = await readBack(plain.disk, [DATA, FALLBACK]);
    const safeBack = await readBack(safe.disk, [DATA, FALLBACK]);
    const safeInFallback = await readBack(safe.disk, [FALLBACK]);
    record.countMany('plain.acknowledged', plainAcknowledged, tasks);
    record.countMany('plain.intact', plainBack.intact.size, tasks);
    record.countMany('safe.acknowledged', safeAcknowledged, tasks);
    record.countMany('safe.intact', safeBack.intact.size, tasks);
    record.add('plain.lost_records', tasks - plainBack.intact.size);
    record.add('plain.corrupted_files', plainBack.corruptedFiles);
    record.add('plain.acknowledged_then_lost', plainAcknowledged - plainBack.intact.size);
    record.add('safe.lost_records', tasks - safeBack.intact.size);
    record.add('safe.corrupted_files', safeBack.corruptedFiles);
    record.add('safe.duplicate_records', safeBack.duplicates);
    record.add('safe.fallback_records', safeInFallback.intact.size);
    record.add('safe.stray_temp_files', safeBack.strayTempFiles);
    for (const fs of [plain.fs, safe.fs]) {
      for (const rule of fs.ruleStats()) record.add(`faults.${rule.name}`, rule.fired);
    }
  },
  comparisons: [{ metric: 'records intact', before: 'plain.intact', after: 'safe.intact' }],
  expect: [
    { metric: 'safe.intact', atLeast: 1, description: 'the safe writer keeps every record' },
    { value: 'safe.lost_records', equals: 0 },
    { value: 'safe.corrupted_files', equals: 0 },
    { value: 'safe.duplicate_records', equals: 0 },
  ],
});
