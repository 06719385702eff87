/**
 * The built-in tools: `http.request`, `fs.write` / `fs.read` / `fs.remove` (confined to a root),
 * `wait`, `log` and `queue.add`.
 */
import { lstat, mkdir, readFile, realpath, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { toMs } from '../core/duration.js';
import { nonRetryable } from '../core/errors.js';
import { closest } from '../policy/file-problems.js';
import { HttpStatusError, PathEscapeError, UnknownTargetError } from './errors.js';
import type { ToolDefinition } from './tools.js';

/** Options of `queue.add` as far as the engine knows them; a Bulwark queue takes these and more. */
export interface QueueAddOptions {
  delay?: number;
  priority?: number;
  jobId?: string;
}

/** Anything with a Bulwark queue's `add` (the engine does not depend on the queue module). */
export interface QueueLike {
  add(payload: unknown, opts?: QueueAddOptions): Promise<{ id: string }>;
}

/** What the built-in tools need from the engine's options. */
export interface BuiltinToolOptions {
  /** The directory the `fs.*` tools are confined to. */
  root: string;
  /** The queues `queue.add` may use, by name. */
  queues: Readonly<Record<string, QueueLike>>;
  /** Where `log` writes. */
  log: (line: string) => void;
  /** The fetch `http.request` uses. */
  fetch: typeof fetch;
}

/** Files up to this size are kept in the journal so that `fs.write`/`fs.remove` can be undone. */
const MAX_UNDO_BYTES = 1024 * 1024;
/** `fs.read` refuses larger files unless its `maxBytes` says otherwise (its output is journaled). */
const MAX_READ_BYTES = 1024 * 1024;

const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  try {
    return toMs(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/** Resolves `path` inside `root`; anything that leaves it (`..`, an absolute path, a symlink out) is refused. */
async function confine(root: string, path: string): Promise<{ absolute: string; shown: string }> {
  const base = await realpath(root);
  const target = resolve(base, path);
  const inside = (p: string) => {
    const rel = relative(base, p);
    return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
  };
  if (!inside(target) || target === base) throw new PathEscapeError(path, base);
  // The nearest existing ancestor must not be a symlink leading out of the root.
  let existing = dirname(target);
  for (;;) {
    try {
      const real = await realpath(existing);
      if (!inside(real) && real !== base) throw new PathEscapeError(path, base);
      break;
    } catch (error) {
      if (error instanceof PathEscapeError) throw error;
      const parent = dirname(existing);
      if (parent === existing) break;
      existing = parent;
    }
  }
  try {
    const stat = await lstat(target);
    if (stat.isSymbolicLink() && !inside(await realpath(target))) throw new PathEscapeError(path, base);
  } catch (error) {
    if (error instanceof PathEscapeError) throw error;
  }
  return { absolute: target, shown: relative(base, target) };
}

async function previousContent(path: string): Promise<string | null> {
  try {
    const stat = await lstat(path);
    if (!stat.isFile() || stat.size > MAX_UNDO_BYTES) return null;
    return (await readFile(path)).toString('base64');
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

interface FileUndo {
  existed: boolean;
  previous: string | null;
  /** The outermost directory the write created (to remove on undo), relative to the root. */
  createdDir?: string;
}

/** Removes the directories a write created, innermost first, as long as they are empty. */
async function removeCreatedDirs(
  root: string,
  absolute: string,
  createdDir: string | undefined,
): Promise<void> {
  if (createdDir === undefined) return;
  const base = await realpath(root);
  const outermost = resolve(base, createdDir);
  for (let dir = dirname(absolute); dir.startsWith(outermost); dir = dirname(dir)) {
    try {
      await rmdir(dir);
    } catch {
      return; // not empty: something else lives there now
    }
    if (dir === outermost) return;
  }
}

async function restore(absolute: string, undo: FileUndo): Promise<void> {
  if (!undo.existed) await rm(absolute, { force: true });
  else if (undo.previous !== null) await writeFile(absolute, Buffer.from(undo.previous, 'base64'));
  else
    throw new Error(`cannot restore ${absolute}: its previous content was larger than 1 MiB or unreadable`);
}

/** Headers whose values the journal never keeps. */
const SECRET_HEADER =
  /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key)$|token|secret|password/i;

const IDEMPOTENT_METHODS = ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS'];

/** The built-in tools bound to `options`. */
export function builtinTools(options: BuiltinToolOptions): ToolDefinition<never>[] {
  const { root, queues } = options;
  const queueNames = () => Object.keys(queues);

  const httpRequest: ToolDefinition<{
    url: string;
    method: string;
    headers?: Record<string, string> | undefined;
    body?: unknown;
    accept?: number[] | undefined;
  }> = {
    name: 'http.request',
    params: z
      .object({
        url: z.string().url('must be an absolute http(s) URL'),
        method: z
          .string()
          .regex(/^[A-Za-z]+$/, 'must be an HTTP method')
          .transform((m) => m.toUpperCase())
          .default('GET'),
        headers: z.record(z.string()).optional(),
        body: z.unknown().optional(),
        accept: z.array(z.number().int().min(100).max(599)).optional(),
      })
      .strict(),
    async run(params, ctx) {
      const headers: Record<string, string> = { ...params.headers };
      let body: string | undefined;
      if (params.body !== undefined) {
        if (typeof params.body === 'string') body = params.body;
        else {
          body = JSON.stringify(params.body);
          if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
            headers['content-type'] = 'application/json';
          }
        }
      }
      const response = await options.fetch(params.url, {
        method: params.method,
        headers,
        signal: ctx.signal,
        ...(body === undefined ? {} : { body }),
      });
      const text = await response.text();
      const accepted =
        params.accept === undefined
          ? response.status >= 200 && response.status < 300
          : params.accept.includes(response.status);
      if (!accepted) throw new HttpStatusError(response.status, params.url);
      let parsed: unknown = text;
      if ((response.headers.get('content-type') ?? '').includes('json') && text !== '') {
        try {
          parsed = JSON.parse(text) as unknown;
        } catch {
          parsed = text;
        }
      }
      return { status: response.status, body: parsed };
    },
    describe: (params) => `${params.method} ${params.url}`,
    redact: (params) =>
      params.headers === undefined
        ? params
        : {
            ...params,
            headers: Object.fromEntries(
              Object.entries(params.headers).map(([name, value]) => [
                name,
                SECRET_HEADER.test(name) ? '[redacted]' : value,
              ]),
            ),
          },
    idempotent: (params) => IDEMPOTENT_METHODS.includes(params.method),
    estimate: () => 200,
  };

  const fsWrite: ToolDefinition<{ path: string; content: string; encoding: 'utf8' | 'base64' }> = {
    name: 'fs.write',
    params: z
      .object({
        path: z.string().min(1),
        content: z.string(),
        encoding: z.enum(['utf8', 'base64']).default('utf8'),
      })
      .strict(),
    async run(params, ctx) {
      const { absolute, shown } = await confine(root, params.path);
      const existed = await exists(absolute);
      const undo: FileUndo = { existed, previous: existed ? await previousContent(absolute) : null };
      ctx.setUndo(undo);
      const data = Buffer.from(params.content, params.encoding);
      const created = await mkdir(dirname(absolute), { recursive: true });
      if (created !== undefined) {
        undo.createdDir = relative(await realpath(root), created);
        ctx.setUndo(undo);
      }
      await writeFile(absolute, data);
      return { path: shown, bytes: data.length };
    },
    async compensate(params, _output, ctx) {
      const { absolute } = await confine(root, params.path);
      const undo = ctx.undo as FileUndo | undefined | null;
      if (undo === undefined || undo === null) {
        await rm(absolute, { force: true });
        return;
      }
      await restore(absolute, undo);
      await removeCreatedDirs(root, absolute, undo.createdDir);
    },
    describe: (params) =>
      `write ${Buffer.byteLength(params.content, params.encoding)} bytes to ${params.path}`,
    idempotent: true,
    estimate: () => 1,
  };

  const fsRead: ToolDefinition<{ path: string; encoding: 'utf8' | 'base64'; maxBytes: number }> = {
    name: 'fs.read',
    params: z
      .object({
        path: z.string().min(1),
        encoding: z.enum(['utf8', 'base64']).default('utf8'),
        maxBytes: z.number().int().positive().default(MAX_READ_BYTES),
      })
      .strict(),
    async run(params) {
      const { absolute, shown } = await confine(root, params.path);
      // The content becomes the step's output, which the journal keeps: refuse what would bloat it.
      const { size } = await lstat(absolute);
      if (size > params.maxBytes) {
        throw nonRetryable(
          new RangeError(`${shown} is ${size} bytes, more than maxBytes (${params.maxBytes})`),
        );
      }
      const data = await readFile(absolute);
      return { path: shown, content: data.toString(params.encoding), bytes: data.length };
    },
    describe: (params) => `read ${params.path}`,
    idempotent: true,
    estimate: () => 1,
  };

  const fsRemove: ToolDefinition<{ path: string; recursive: boolean }> = {
    name: 'fs.remove',
    params: z.object({ path: z.string().min(1), recursive: z.boolean().default(false) }).strict(),
    async run(params, ctx) {
      const { absolute, shown } = await confine(root, params.path);
      const existed = await exists(absolute);
      ctx.setUndo({ existed, previous: existed ? await previousContent(absolute) : null } satisfies FileUndo);
      await rm(absolute, { force: true, recursive: params.recursive });
      return { path: shown, removed: existed };
    },
    async compensate(params, _output, ctx) {
      const undo = ctx.undo as FileUndo | undefined;
      if (undo === undefined || !undo.existed) return;
      const { absolute } = await confine(root, params.path);
      await mkdir(dirname(absolute), { recursive: true });
      await restore(absolute, undo);
    },
    describe: (params) => `remove ${params.path}${params.recursive ? ' (recursively)' : ''}`,
    idempotent: true,
    estimate: () => 1,
  };

  const wait: ToolDefinition<{ duration: number }> = {
    name: 'wait',
    params: z.object({ duration }).strict(),
    async run(params, ctx) {
      await ctx.runtime.clock.sleep(params.duration, ctx.signal);
      return { waitedMs: params.duration };
    },
    describe: (params) => `wait ${params.duration}ms`,
    idempotent: true,
    estimate: (params) => params.duration,
  };

  const log: ToolDefinition<{ message: string; level: 'info' | 'warn' | 'error' }> = {
    name: 'log',
    params: z
      .object({ message: z.string(), level: z.enum(['info', 'warn', 'error']).default('info') })
      .strict(),
    run(params, ctx) {
      options.log(`[${params.level}] ${ctx.stepId}: ${params.message}`);
      return { message: params.message };
    },
    describe: (params) => `log "${params.message}"`,
    idempotent: true,
  };

  const queueAdd: ToolDefinition<{
    queue: string;
    payload?: unknown;
    delay?: number | undefined;
    priority?: number | undefined;
    jobId?: string | undefined;
  }> = {
    name: 'queue.add',
    params: z
      .object({
        queue: z.string().superRefine((name, ctx) => {
          if (Object.hasOwn(queues, name)) return;
          const known = queueNames();
          ctx.addIssue({
            code: 'custom',
            message:
              new UnknownTargetError('queue', name, closest(name, known)).message +
              (known.length === 0 ? ' (no queue is configured)' : `; known: ${known.join(', ')}`),
          });
        }),
        payload: z.unknown(),
        delay: duration.optional(),
        priority: z.number().int().optional(),
        jobId: z.string().min(1).optional(),
      })
      .strict(),
    async run(params) {
      const queue = queues[params.queue];
      if (queue === undefined)
        throw new UnknownTargetError('queue', params.queue, closest(params.queue, queueNames()));
      const opts: QueueAddOptions = {};
      if (params.delay !== undefined) opts.delay = params.delay;
      if (params.priority !== undefined) opts.priority = params.priority;
      if (params.jobId !== undefined) opts.jobId = params.jobId;
      const job = await queue.add(params.payload ?? null, opts);
      return { queue: params.queue, id: job.id };
    },
    describe: (params) =>
      `add a job to queue ${params.queue}${params.jobId === undefined ? '' : ` (job id ${params.jobId})`}`,
    // With a job id the queue deduplicates, so adding it again is harmless.
    idempotent: (params) => params.jobId !== undefined,
    estimate: () => 1,
  };

  return [httpRequest, fsWrite, fsRead, fsRemove, wait, log, queueAdd] as unknown as ToolDefinition<never>[];
}
