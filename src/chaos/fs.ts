/**
 * File-system faults: a drop-in for the part of `node:fs/promises` that services use, which fails or
 * slows chosen operations on chosen paths, on the chaos schedules, with the errors Node itself throws
 * (`code`, `errno`, `syscall`, `path`, message format). A write can fail part-way (`ENOSPC` after N
 * bytes), which is what teaches code to write to a temporary file and rename it into place.
 */
import * as nodeFs from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorMap } from 'node:util';
import type { Clock } from '../core/clock.js';
import type { Duration } from '../core/duration.js';
import type { EventSink } from '../core/events.js';
import type { Random } from '../core/random.js';
import { type Runtime, systemRuntime } from '../core/runtime.js';
import { durationOption, intOption, invalid, knownKeys, oneOf } from '../policy/options.js';
import { chaosEnabled } from './faults.js';
import { isSchedule, type Schedule, type ScheduleState, schedule as schedules } from './schedule.js';

/** The errors a file-system fault injects. */
export type FsErrorCode = 'ENOSPC' | 'EACCES' | 'EPERM' | 'EMFILE' | 'EIO' | 'EROFS';

/**
 * The operations a rule can target. `write`, `read` and `sync` are the `FileHandle` methods (`write`
 * also covers `handle.writeFile`/`appendFile`, `sync` also `datasync`); the others are the
 * `fs/promises` functions of the same name.
 */
export type FsOperation =
  | 'readFile'
  | 'writeFile'
  | 'appendFile'
  | 'open'
  | 'write'
  | 'read'
  | 'sync'
  | 'mkdir'
  | 'rm'
  | 'unlink'
  | 'rename'
  | 'stat'
  | 'readdir';

/** Every {@link FsOperation}, in documentation order (a rule without `operations` applies to all). */
export const FS_OPERATIONS: readonly FsOperation[] = [
  'readFile',
  'writeFile',
  'appendFile',
  'open',
  'write',
  'read',
  'sync',
  'mkdir',
  'rm',
  'unlink',
  'rename',
  'stat',
  'readdir',
];

const FS_ERROR_CODES: readonly FsErrorCode[] = ['ENOSPC', 'EACCES', 'EPERM', 'EMFILE', 'EIO', 'EROFS'];

/** The `fs/promises` functions a faulty file system wraps. */
export type FsFunctionName =
  | 'readFile'
  | 'writeFile'
  | 'appendFile'
  | 'open'
  | 'mkdir'
  | 'rm'
  | 'unlink'
  | 'rename'
  | 'stat'
  | 'readdir';

const FUNCTIONS: readonly FsFunctionName[] = [
  'readFile',
  'writeFile',
  'appendFile',
  'open',
  'mkdir',
  'rm',
  'unlink',
  'rename',
  'stat',
  'readdir',
];

/** Anything shaped like `fs/promises` for the functions Bulwark wraps (`node:fs/promises`, `memoryFs()`). */
export type FsPromisesLike = { [K in FsFunctionName]: (...args: never[]) => Promise<unknown> };

/** One fault of a faulty file system: what it does, to which operations on which paths, and when. */
export interface FsFaultRule {
  /** In `fault.injected` events as `source`. @defaultValue the error code, or `'latency'` */
  name?: string;
  /**
   * Glob(s) of the paths the rule applies to: `*` matches within a path segment, `**` across segments,
   * `?` one character, `{a,b}` either. A relative glob is resolved against `cwd`; one starting with `**`
   * matches anywhere. `rename` matches its source or its destination.
   * @defaultValue `'**'` (every path)
   */
  path?: string | readonly string[];
  /** The operations it applies to. @defaultValue every operation */
  operations?: readonly FsOperation[];
  /** The error to throw when it fires (exclusive with `latency`). */
  error?: FsErrorCode;
  /**
   * With `error: 'ENOSPC'` on a write (`writeFile`, `appendFile`, handle `write`): write the first
   * `afterBytes` bytes of the data before failing, as a disk that fills up mid-write does (data no
   * longer than that is written whole, and the call still fails).
   * @defaultValue 0 (nothing is written)
   */
  afterBytes?: number;
  /** A delay added before the operation runs (exclusive with `error`). */
  latency?: Duration;
  /** When the rule fires, counted over the calls it applies to. @defaultValue `schedule.always()` */
  schedule?: Schedule;
}

/** Options of {@link faultyFs}. */
export interface FaultyFsOptions<F extends FsPromisesLike> {
  /** The faults, checked in order: every latency that fires adds up, the first error that fires is thrown. */
  rules: readonly FsFaultRule[];
  /** The file system underneath. @defaultValue `node:fs/promises` */
  fs?: F;
  /** What relative paths and globs are resolved against. @defaultValue `process.cwd()` */
  cwd?: string;
  /** Clock (for latency), random (for `rate` schedules) and events. @defaultValue the system runtime */
  runtime?: Runtime;
}

/** A faulty file system: `F`'s wrapped functions, plus counters. */
export type FaultyFs<F extends FsPromisesLike> = Pick<F, FsFunctionName> & {
  /** Calls that reached a wrapped function or handle method. */
  readonly calls: number;
  /** Faults injected (errors thrown and delays added). */
  readonly injected: number;
  /** Per rule, in order: its name, the calls it applied to, and how often it fired. */
  ruleStats(): { name: string; calls: number; fired: number }[];
};

// ---------------------------------------------------------------------------------------------
// Node-shaped errors

let systemErrors: Map<string, { errno: number; description: string }> | undefined;

/** Linux's values, for a platform whose error map lacks a name. */
const LINUX: Record<string, [number, string]> = {
  ENOSPC: [-28, 'no space left on device'],
  EACCES: [-13, 'permission denied'],
  EPERM: [-1, 'operation not permitted'],
  EMFILE: [-24, 'too many open files'],
  EIO: [-5, 'i/o error'],
  EROFS: [-30, 'read-only file system'],
};

function systemError(code: string): { errno: number; description: string } {
  if (systemErrors === undefined) {
    systemErrors = new Map();
    for (const [errno, [name, description]] of getSystemErrorMap()) {
      systemErrors.set(name, { errno, description });
    }
  }
  const known = systemErrors.get(code);
  if (known !== undefined) return known;
  const [errno, description] = LINUX[code] ?? [-5, 'i/o error'];
  return { errno, description };
}

/**
 * A file-system error exactly as Node builds one: message `CODE: description, syscall 'path'` (and
 * ` -> 'dest'`), then `errno` (negative, libuv's), `code`, `syscall`, `path`, `dest`.
 * @example
 * fsError('ENOSPC', 'write');                 // ENOSPC: no space left on device, write
 * fsError('EACCES', 'open', '/var/log/app');  // EACCES: permission denied, open '/var/log/app'
 */
export function fsError(code: string, syscall: string, path?: string, dest?: string): NodeJS.ErrnoException {
  const { errno, description } = systemError(code);
  let message = `${code}: ${description}, ${syscall}`;
  if (path !== undefined) message += ` '${path}'`;
  if (dest !== undefined) message += ` -> '${dest}'`;
  const error: NodeJS.ErrnoException = new Error(message);
  error.errno = errno;
  error.code = code;
  error.syscall = syscall;
  if (path !== undefined) error.path = path;
  if (dest !== undefined) (error as { dest?: string }).dest = dest;
  return error;
}

/**
 * The syscall Node names for an error of `code` in `operation`, and whether it names the path: opening
 * a file fails with the path, the `read`/`write` of an open file without it.
 */
function syscallOf(operation: FsOperation, code: FsErrorCode): { syscall: string; withPath: boolean } {
  switch (operation) {
    case 'readFile':
      return code === 'EIO' ? { syscall: 'read', withPath: false } : { syscall: 'open', withPath: true };
    case 'writeFile':
    case 'appendFile':
      return code === 'ENOSPC' || code === 'EIO'
        ? { syscall: 'write', withPath: false }
        : { syscall: 'open', withPath: true };
    case 'write':
    case 'read':
      return { syscall: operation, withPath: false };
    case 'sync':
      return { syscall: 'fsync', withPath: false };
    case 'readdir':
      return { syscall: 'scandir', withPath: true };
    case 'rm':
      return { syscall: 'unlink', withPath: true };
    default:
      return { syscall: operation, withPath: true };
  }
}

// ---------------------------------------------------------------------------------------------
// paths and globs

function escapeRegExp(text: string): string {
  return text.replace(/[.+^$()|[\]\\]/g, '\\$&');
}

/** A glob as a regular expression over `/`-separated absolute paths. */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          source += '(?:.*/)?';
        } else source += '.*';
      } else source += '[^/]*';
    } else if (c === '?') {
      source += '[^/]';
    } else if (c === '{' && glob.indexOf('}', i) > i) {
      const end = glob.indexOf('}', i);
      source += `(?:${glob
        .slice(i + 1, end)
        .split(',')
        .map((alternative) => escapeRegExp(alternative).replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))
        .join('|')})`;
      i = end;
    } else source += escapeRegExp(c);
  }
  return new RegExp(`^${source}$`);
}

function slashes(path: string): string {
  return path.replace(/\\/g, '/');
}

function compileGlob(glob: string, cwd: string): RegExp {
  const absolute = glob.startsWith('**') || glob.startsWith('/') ? glob : slashes(resolvePath(cwd, glob));
  return globToRegExp(slashes(absolute));
}

const HANDLE_PATH = Symbol('bulwark.fs.path');

/** The path argument as given (for errors) and resolved (for globs). */
function describePath(value: unknown, cwd: string): { given: string | undefined; resolved: string } {
  let given: string | undefined;
  if (typeof value === 'string') given = value;
  else if (value instanceof URL) given = fileURLToPath(value);
  else if (Buffer.isBuffer(value)) given = value.toString();
  else if (typeof value === 'object' && value !== null && HANDLE_PATH in value) {
    const path = (value as { [HANDLE_PATH]: string })[HANDLE_PATH];
    return { given: undefined, resolved: path };
  }
  return { given, resolved: given === undefined ? '' : slashes(resolvePath(cwd, given)) };
}

// ---------------------------------------------------------------------------------------------
// rules

/** The per-rule state a schedule decides from. */
class RuleState implements ScheduleState {
  call = 0;
  fired = 0;
  constructor(
    readonly random: Random,
    private readonly clock: Clock,
    private readonly origin: number,
  ) {}
  elapsed(): number {
    return this.clock.now() - this.origin;
  }
}

class Rule {
  constructor(
    readonly name: string,
    readonly paths: readonly RegExp[],
    readonly operations: ReadonlySet<FsOperation>,
    readonly error: FsErrorCode | undefined,
    readonly afterBytes: number,
    readonly delayMs: number,
    readonly schedule: Schedule,
    readonly state: RuleState,
  ) {}

  appliesTo(operation: FsOperation, paths: readonly string[]): boolean {
    if (!this.operations.has(operation)) return false;
    for (const pattern of this.paths) for (const path of paths) if (pattern.test(path)) return true;
    return false;
  }
}

function compileRule(
  where: string,
  given: unknown,
  index: number,
  cwd: string,
  runtime: Runtime,
  names: Set<string>,
): Rule {
  const at = `rules[${index}]`;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw invalid(where, at, given, 'an object such as { path, operations, error, schedule }');
  }
  const rule = given as FsFaultRule;
  const known = ['name', 'path', 'operations', 'error', 'afterBytes', 'latency', 'schedule'];
  for (const key of Object.keys(rule)) {
    if (!known.includes(key)) {
      throw new TypeError(`${where}: unknown option "${at}.${key}"; known options are ${known.join(', ')}`);
    }
  }
  if (rule.error === undefined && rule.latency === undefined) {
    throw new TypeError(`${where}: ${at} needs option "error" or "latency"`);
  }
  if (rule.error !== undefined && rule.latency !== undefined) {
    throw new TypeError(`${where}: ${at}: options "error" and "latency" are exclusive`);
  }
  const error =
    rule.error === undefined ? undefined : oneOf(where, `${at}.error`, rule.error, FS_ERROR_CODES, 'EIO');
  const delayMs = durationOption(where, `${at}.latency`, rule.latency, 0);
  const afterBytes = intOption(where, `${at}.afterBytes`, rule.afterBytes, 0, 0, Number.MAX_SAFE_INTEGER);
  if (rule.afterBytes !== undefined && error !== 'ENOSPC') {
    throw new TypeError(`${where}: ${at}: option "afterBytes" needs error "ENOSPC"`);
  }
  const globs = rule.path === undefined ? ['**'] : typeof rule.path === 'string' ? [rule.path] : rule.path;
  if (!Array.isArray(globs) || globs.length === 0) {
    throw invalid(where, `${at}.path`, rule.path, 'a glob or a non-empty array of globs');
  }
  const paths = globs.map((glob, i) => {
    if (typeof glob !== 'string' || glob.length === 0) {
      throw invalid(where, `${at}.path[${i}]`, glob, 'a non-empty glob string');
    }
    return compileGlob(glob, cwd);
  });
  const operations = rule.operations ?? FS_OPERATIONS;
  if (!Array.isArray(operations) || operations.length === 0) {
    throw invalid(where, `${at}.operations`, operations, 'a non-empty array of operations');
  }
  operations.forEach((op, i) => {
    oneOf(where, `${at}.operations[${i}]`, op, FS_OPERATIONS, 'readFile');
  });
  const name = rule.name ?? error ?? 'latency';
  if (typeof name !== 'string' || name.length === 0) {
    throw invalid(where, `${at}.name`, name, 'a non-empty string');
  }
  // Rules with one name would share a random stream and be indistinguishable in events.
  let unique = name;
  for (let n = 2; names.has(unique); n++) unique = `${name}#${n}`;
  names.add(unique);
  const chosen = rule.schedule ?? schedules.always();
  if (!isSchedule(chosen)) throw invalid(where, `${at}.schedule`, chosen, 'a schedule (see `schedule`)');
  const clock = runtime.clock;
  const state = new RuleState(runtime.random.fork(`fs:${unique}`), clock, clock.now());
  return new Rule(unique, paths, new Set(operations), error, afterBytes, delayMs, chosen, state);
}

// ---------------------------------------------------------------------------------------------
// the faulty file system

type AnyFn = (...args: unknown[]) => Promise<unknown>;
type Handle = Record<string | symbol, unknown>;

/** What a decision on one call came to. */
interface Decision {
  delayMs: number;
  rule: Rule | undefined;
  call: number;
}

const NO_FAULT: Decision = { delayMs: 0, rule: undefined, call: 0 };

function encodingOf(options: unknown): BufferEncoding {
  if (typeof options === 'string') return options as BufferEncoding;
  if (typeof options === 'object' && options !== null) {
    const encoding = (options as { encoding?: unknown }).encoding;
    if (typeof encoding === 'string') return encoding as BufferEncoding;
  }
  return 'utf8';
}

/** The bytes of `data` when they can be cut (a string or bytes); `undefined` for streams and iterables. */
function bytesOf(data: unknown, encoding: BufferEncoding): Uint8Array | undefined {
  if (typeof data === 'string') return Buffer.from(data, encoding);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

class FaultyFileSystem {
  calls = 0;
  injected = 0;
  private readonly clock: Clock;
  private readonly events: EventSink;

  constructor(
    private readonly inner: Record<FsFunctionName, AnyFn>,
    private readonly rules: readonly Rule[],
    private readonly cwd: string,
    private readonly enabled: boolean,
    runtime: Runtime,
  ) {
    this.clock = runtime.clock;
    this.events = runtime.events;
  }

  private decide(operation: FsOperation, paths: readonly string[]): Decision {
    this.calls++;
    if (!this.enabled) return NO_FAULT;
    let delayMs = 0;
    for (const rule of this.rules) {
      if (!rule.appliesTo(operation, paths)) continue;
      const state = rule.state;
      state.call++;
      if (!rule.schedule.fires(state)) continue;
      state.fired++;
      this.injected++;
      if (rule.error !== undefined) {
        this.report(rule, rule.error, undefined);
        return { delayMs, rule, call: state.call };
      }
      delayMs += rule.delayMs;
      this.report(rule, undefined, rule.delayMs);
    }
    return delayMs === 0 ? NO_FAULT : { delayMs, rule: undefined, call: 0 };
  }

  private report(rule: Rule, code: string | undefined, delayMs: number | undefined): void {
    if (!this.events.wants('fault.injected')) return;
    const base = { type: 'fault.injected' as const, source: rule.name, at: this.clock.now(), fault: 'fs' };
    const call = rule.state.call;
    this.events.emit(code !== undefined ? { ...base, call, code } : { ...base, call, delayMs: delayMs ?? 0 });
  }

  private errorFor(rule: Rule, operation: FsOperation, given: string | undefined, dest?: string): Error {
    const code = rule.error as FsErrorCode;
    const { syscall, withPath } = syscallOf(operation, code);
    return fsError(code, syscall, withPath ? given : undefined, withPath ? dest : undefined);
  }

  /** Runs `operation` under the rules: delays, then throws or (for a partial write) cuts and throws. */
  async guard<T>(
    operation: FsOperation,
    target: unknown,
    run: () => Promise<T>,
    partial?: (bytes: number) => Promise<unknown>,
    dest?: unknown,
  ): Promise<T> {
    const path = describePath(target, this.cwd);
    const to = dest === undefined ? undefined : describePath(dest, this.cwd);
    const decision = this.decide(
      operation,
      to === undefined ? [path.resolved] : [path.resolved, to.resolved],
    );
    if (decision === NO_FAULT) return run();
    if (decision.delayMs > 0) await this.clock.sleep(decision.delayMs);
    const rule = decision.rule;
    if (rule === undefined) return run();
    if (partial !== undefined && rule.error === 'ENOSPC' && rule.afterBytes > 0) {
      await partial(rule.afterBytes);
    }
    throw this.errorFor(rule, operation, path.given, to?.given);
  }

  wrap(): Record<FsFunctionName, AnyFn> {
    const inner = this.inner;
    const call = (name: FsFunctionName, args: unknown[]): Promise<unknown> =>
      (inner[name] as AnyFn).apply(inner, args);
    const writeLike =
      (name: 'writeFile' | 'appendFile'): AnyFn =>
      (file, data, options, ...rest) =>
        this.guard(
          name,
          file,
          () => call(name, [file, data, options, ...rest]),
          (bytes) => {
            const all = bytesOf(data, encodingOf(options));
            if (all === undefined) return Promise.resolve();
            return call(name, [file, all.subarray(0, Math.min(bytes, all.length)), options, ...rest]);
          },
        );
    return {
      readFile: (file, ...rest) => this.guard('readFile', file, () => call('readFile', [file, ...rest])),
      writeFile: writeLike('writeFile'),
      appendFile: writeLike('appendFile'),
      open: (file, ...rest) =>
        this.guard('open', file, async () => {
          const handle = (await call('open', [file, ...rest])) as Handle;
          return this.handle(handle, describePath(file, this.cwd).resolved);
        }),
      mkdir: (dir, ...rest) => this.guard('mkdir', dir, () => call('mkdir', [dir, ...rest])),
      rm: (path, ...rest) => this.guard('rm', path, () => call('rm', [path, ...rest])),
      unlink: (path, ...rest) => this.guard('unlink', path, () => call('unlink', [path, ...rest])),
      rename: (from, to, ...rest) =>
        this.guard('rename', from, () => call('rename', [from, to, ...rest]), undefined, to),
      stat: (path, ...rest) => this.guard('stat', path, () => call('stat', [path, ...rest])),
      readdir: (dir, ...rest) => this.guard('readdir', dir, () => call('readdir', [dir, ...rest])),
    };
  }

  /** The handle, with `write`, `read` and `sync` (and their variants) going through the rules. */
  private handle(handle: Handle, path: string): Handle {
    const method = (name: string): AnyFn => {
      const fn = handle[name] as AnyFn;
      return (...args) => fn.apply(handle, args);
    };
    const write = method('write');
    const marker = { [HANDLE_PATH]: path };
    /** `handle.writeFile` / `appendFile`: a torn write keeps the first `bytes` of the data. */
    const wholeFile = (name: 'writeFile' | 'appendFile') => (data: unknown, options?: unknown) =>
      this.guard(
        'write',
        marker,
        () => method(name)(data, options),
        (bytes) => {
          const all = bytesOf(data, encodingOf(options));
          return all === undefined
            ? Promise.resolve()
            : method(name)(all.subarray(0, Math.min(bytes, all.length)));
        },
      );
    const wrapped: Record<string | symbol, unknown> = {
      [HANDLE_PATH]: path,
      write: (data: unknown, ...rest: unknown[]) =>
        this.guard(
          'write',
          marker,
          () => write(data, ...rest),
          (bytes) => {
            if (typeof data === 'string') {
              const all = Buffer.from(
                data,
                typeof rest[1] === 'string' ? (rest[1] as BufferEncoding) : 'utf8',
              );
              return write(all.subarray(0, Math.min(bytes, all.length)), 0, undefined, rest[0]);
            }
            const [offset, length, position] = rest as [number | undefined, number | undefined, unknown];
            const view = bytesOf(data, 'utf8');
            if (view === undefined) return Promise.resolve();
            const start = offset ?? 0;
            const available = (length ?? view.length - start) as number;
            return write(view, start, Math.min(bytes, available), position);
          },
        ),
      writeFile: wholeFile('writeFile'),
      appendFile: wholeFile('appendFile'),
      read: (...args: unknown[]) => this.guard('read', marker, () => method('read')(...args)),
      readFile: (...args: unknown[]) => this.guard('read', marker, () => method('readFile')(...args)),
      sync: () => this.guard('sync', marker, () => method('sync')()),
      datasync: () => this.guard('sync', marker, () => method('datasync')()),
    };
    return new Proxy(handle, {
      get(target, key) {
        if (Object.hasOwn(wrapped, key)) return wrapped[key];
        const value = Reflect.get(target, key, target);
        // FileHandle keeps its state in private fields: its methods must run with the real handle as `this`.
        return typeof value === 'function' ? (value as AnyFn).bind(target) : value;
      },
      has(target, key) {
        return key === HANDLE_PATH || Reflect.has(target, key);
      },
    });
  }
}

/**
 * A file system that injects faults: the `fs/promises` functions services use (`readFile`, `writeFile`,
 * `appendFile`, `open` and its handle's `write`/`read`/`sync`, `mkdir`, `rm`, `unlink`, `rename`,
 * `stat`, `readdir`), failing or slowing the calls that match a rule's paths and operations when its
 * schedule fires. Errors are the ones Node throws (`code`, `errno`, `syscall`, `path`, message), and a
 * write can fail part-way. Every fault is a `fault.injected` event (`fault: 'fs'`, `source`: the rule's
 * name). Inject it where your code takes its `fs`; `BULWARK_CHAOS=off` passes every call through.
 *
 * @example
 * const fs = faultyFs({
 *   rules: [
 *     { path: '/var/data/**', operations: ['writeFile', 'appendFile', 'write'], error: 'ENOSPC', afterBytes: 512, schedule: schedule.rate(0.05) },
 *     { path: '/var/data/**', error: 'EACCES', schedule: schedule.window('10s', '20s') },
 *     { path: '**' + '/*.log', latency: '50ms' },
 *   ],
 *   runtime,
 * });
 * await fs.writeFile('/var/data/state.json', json); // sometimes: ENOSPC: no space left on device, write
 */
export function faultyFs<F extends FsPromisesLike = typeof nodeFs>(options: FaultyFsOptions<F>): FaultyFs<F> {
  const where = 'faultyFs';
  if (typeof options !== 'object' || options === null) {
    throw invalid(where, 'options', options, 'an object { rules, fs?, cwd?, runtime? }');
  }
  knownKeys(where, options, ['rules', 'fs', 'cwd']);
  const inner = (options.fs ?? nodeFs) as unknown as Record<FsFunctionName, AnyFn>;
  if (typeof inner !== 'object' || inner === null) {
    throw invalid(where, 'fs', options.fs, 'an fs/promises-like object');
  }
  for (const name of FUNCTIONS) {
    if (typeof inner[name] !== 'function') {
      throw invalid(where, 'fs', options.fs, `an fs/promises-like object (it has no ${name} function)`);
    }
  }
  const cwd = options.cwd ?? process.cwd();
  if (typeof cwd !== 'string' || cwd.length === 0) throw invalid(where, 'cwd', cwd, 'a directory path');
  if (!Array.isArray(options.rules)) throw invalid(where, 'rules', options.rules, 'an array of rules');
  const runtime = options.runtime ?? systemRuntime();
  const names = new Set<string>();
  const rules = options.rules.map((rule, i) => compileRule(where, rule, i, cwd, runtime, names));
  const fs = new FaultyFileSystem(inner, rules, cwd, chaosEnabled(), runtime);
  const api = fs.wrap();
  return Object.freeze(
    Object.defineProperties(api, {
      calls: { get: () => fs.calls, enumerable: true },
      injected: { get: () => fs.injected, enumerable: true },
      ruleStats: {
        value: () => rules.map((r) => ({ name: r.name, calls: r.state.call, fired: r.state.fired })),
        enumerable: true,
      },
    }),
  ) as unknown as FaultyFs<F>;
}
