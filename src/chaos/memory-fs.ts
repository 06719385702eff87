/**
 * An in-memory file system with the `fs/promises` functions {@link faultyFs} wraps, for tests and the
 * lab: deterministic (no real I/O, so a virtual clock stays exact), with Node's errors for missing
 * files and directories, and an optional capacity that makes it run out of space like a real disk:
 * a write that does not fit writes what fits, then fails with `ENOSPC`.
 */
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { intOption, invalid, knownKeys } from '../policy/options.js';
import { fsError } from './fs.js';

/** Options of {@link memoryFs}. */
export interface MemoryFsOptions {
  /** Bytes the files may hold in total; writes beyond it fail part-way with `ENOSPC`. @defaultValue Infinity */
  capacity?: number;
}

/** The stat of a memory file or directory (the fields of `fs.Stats` services read). */
export interface MemoryStats {
  size: number;
  mtimeMs: number;
  isFile(): boolean;
  isDirectory(): boolean;
}

type Data = string | Uint8Array;
type Encoding = BufferEncoding | { encoding?: BufferEncoding | null; flag?: string } | null | undefined;

interface FileNode {
  data: Buffer;
  mtimeMs: number;
}

/** An open memory file. */
export interface MemoryFileHandle {
  readonly fd: number;
  write(
    data: Data,
    offsetOrPosition?: number | null,
    lengthOrEncoding?: number | BufferEncoding,
    position?: number | null,
  ): Promise<{ bytesWritten: number }>;
  writeFile(data: Data, options?: Encoding): Promise<void>;
  appendFile(data: Data, options?: Encoding): Promise<void>;
  readFile(options?: Encoding): Promise<Buffer | string>;
  sync(): Promise<void>;
  datasync(): Promise<void>;
  stat(): Promise<MemoryStats>;
  truncate(length?: number): Promise<void>;
  close(): Promise<void>;
}

function toPath(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof URL) return fileURLToPath(value);
  if (Buffer.isBuffer(value)) return value.toString();
  throw new TypeError(`memoryFs: a path must be a string, Buffer or URL, got ${typeof value}`);
}

function bytes(data: Data, encoding: BufferEncoding = 'utf8'): Buffer {
  if (typeof data === 'string') return Buffer.from(data, encoding);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function encodingOf(options: Encoding): BufferEncoding | undefined {
  if (typeof options === 'string') return options;
  return options?.encoding ?? undefined;
}

function flagOf(options: Encoding, fallback: string): string {
  return typeof options === 'object' && options !== null && typeof options.flag === 'string'
    ? options.flag
    : fallback;
}

const FLAGS = ['r', 'r+', 'w', 'wx', 'w+', 'a', 'ax', 'a+'];

/** What a directory opened read-only reads as (it is never written: its handle refuses writes). */
const DIRECTORY: FileNode = Object.freeze({ data: Buffer.alloc(0), mtimeMs: 0 }) as FileNode;

/**
 * The in-memory file system. Paths are POSIX paths resolved against `/`; the root directory exists.
 * @example
 * const disk = memoryFs({ capacity: 1024 });
 * await disk.mkdir('/data', { recursive: true });
 * await disk.writeFile('/data/a', 'x'.repeat(2000)); // ENOSPC: no space left on device, write (1024 bytes written)
 */
export class MemoryFileSystem {
  /** Bytes the files may hold in total. */
  readonly capacity: number;
  private readonly files = new Map<string, FileNode>();
  private readonly dirs = new Set<string>(['/']);
  private used = 0;
  private nextFd = 3;
  private syncs = 0;

  constructor(options: MemoryFsOptions = {}) {
    knownKeys('memoryFs', options, ['capacity']);
    this.capacity = intOption('memoryFs', 'capacity', options.capacity, Number.POSITIVE_INFINITY, 0);
  }

  /** Bytes held by the files. */
  get usedBytes(): number {
    return this.used;
  }

  /** Calls to `sync`/`datasync` so far. */
  get syncCount(): number {
    return this.syncs;
  }

  private resolve(path: unknown): string {
    return posix.resolve('/', toPath(path));
  }

  /** The error for a path that does not exist: `ENOTDIR` when a file stands where a directory should. */
  private missing(resolved: string, syscall: string, given: string, dest?: string): NodeJS.ErrnoException {
    for (let dir = posix.dirname(resolved); dir !== '/'; dir = posix.dirname(dir)) {
      if (this.files.has(dir)) return fsError('ENOTDIR', syscall, given, dest);
    }
    return fsError('ENOENT', syscall, given, dest);
  }

  private parentMustExist(resolved: string, syscall: string, given: string): void {
    if (!this.dirs.has(posix.dirname(resolved))) throw this.missing(resolved, syscall, given);
  }

  /** Replaces bytes `[at, at + chunk.length)` of `file`, within capacity; throws ENOSPC after what fits. */
  private put(file: FileNode, at: number, chunk: Buffer): number {
    const end = at + chunk.length;
    const growth = Math.max(0, end - file.data.length);
    const room = this.capacity - this.used;
    const fits = growth <= room ? chunk.length : Math.max(0, chunk.length - (growth - room));
    const target = at + fits;
    if (target > file.data.length) {
      const grown = Buffer.alloc(target);
      file.data.copy(grown);
      this.used += target - file.data.length;
      file.data = grown;
    }
    chunk.copy(file.data, at, 0, fits);
    file.mtimeMs = 0;
    if (fits < chunk.length) throw fsError('ENOSPC', 'write');
    return fits;
  }

  private truncateNode(file: FileNode, length: number): void {
    if (length < file.data.length) {
      this.used -= file.data.length - length;
      file.data = Buffer.from(file.data.subarray(0, length));
    } else if (length > file.data.length) {
      this.put(file, file.data.length, Buffer.alloc(length - file.data.length));
    }
  }

  private openNode(path: unknown, flag: string): FileNode {
    const given = toPath(path);
    const resolved = this.resolve(path);
    if (!FLAGS.includes(flag)) throw new TypeError(`memoryFs: unsupported open flag ${JSON.stringify(flag)}`);
    if (this.dirs.has(resolved)) {
      // Opening a directory read-only is how its entries are fsynced; nothing can be written to it.
      if (flag === 'r') return DIRECTORY;
      throw fsError('EISDIR', 'open', given);
    }
    const existing = this.files.get(resolved);
    if (existing !== undefined) {
      if (flag === 'wx' || flag === 'ax') throw fsError('EEXIST', 'open', given);
      if (flag.startsWith('w')) this.truncateNode(existing, 0);
      return existing;
    }
    if (flag === 'r' || flag === 'r+') throw this.missing(resolved, 'open', given);
    this.parentMustExist(resolved, 'open', given);
    const created: FileNode = { data: Buffer.alloc(0), mtimeMs: 0 };
    this.files.set(resolved, created);
    return created;
  }

  async readFile(path: unknown, options?: Encoding): Promise<Buffer | string> {
    const given = toPath(path);
    const resolved = this.resolve(path);
    if (this.dirs.has(resolved)) throw fsError('EISDIR', 'read');
    const file = this.files.get(resolved);
    if (file === undefined) throw this.missing(resolved, 'open', given);
    const encoding = encodingOf(options);
    const copy = Buffer.from(file.data);
    return encoding === undefined ? copy : copy.toString(encoding);
  }

  async writeFile(path: unknown, data: Data, options?: Encoding): Promise<void> {
    const file = this.openNode(path, flagOf(options, 'w'));
    this.put(file, file.data.length, bytes(data, encodingOf(options)));
  }

  async appendFile(path: unknown, data: Data, options?: Encoding): Promise<void> {
    const file = this.openNode(path, flagOf(options, 'a'));
    this.put(file, file.data.length, bytes(data, encodingOf(options)));
  }

  async open(path: unknown, flags: string = 'r'): Promise<MemoryFileHandle> {
    const file = this.openNode(path, flags);
    const append = flags.startsWith('a');
    const fd = this.nextFd++;
    let position = 0;
    let closed = false;
    const live = (syscall: string): void => {
      if (closed) throw fsError('EBADF', syscall);
    };
    const writable = (syscall: string): void => {
      live(syscall);
      if (file === DIRECTORY || flags === 'r') throw fsError('EBADF', syscall);
    };
    return {
      fd,
      write: async (data, offsetOrPosition, lengthOrEncoding, at) => {
        writable('write');
        let chunk: Buffer;
        let where: number | null | undefined;
        if (typeof data === 'string') {
          chunk = bytes(data, typeof lengthOrEncoding === 'string' ? lengthOrEncoding : 'utf8');
          where = offsetOrPosition;
        } else {
          const start = offsetOrPosition ?? 0;
          const length = typeof lengthOrEncoding === 'number' ? lengthOrEncoding : data.byteLength - start;
          chunk = bytes(data).subarray(start, start + length);
          where = at;
        }
        const from = append ? file.data.length : typeof where === 'number' ? where : position;
        const written = this.put(file, from, chunk);
        if (!append && typeof where !== 'number') position = from + written;
        return { bytesWritten: written };
      },
      writeFile: async (data, options) => {
        writable('write');
        this.truncateNode(file, 0);
        this.put(file, 0, bytes(data, encodingOf(options)));
      },
      appendFile: async (data, options) => {
        writable('write');
        this.put(file, file.data.length, bytes(data, encodingOf(options)));
      },
      readFile: async (options) => {
        live('read');
        if (file === DIRECTORY) throw fsError('EISDIR', 'read');
        const encoding = encodingOf(options);
        const copy = Buffer.from(file.data);
        return encoding === undefined ? copy : copy.toString(encoding);
      },
      sync: async () => {
        live('fsync');
        this.syncs++;
      },
      datasync: async () => {
        live('fdatasync');
        this.syncs++;
      },
      stat: async () => {
        live('fstat');
        return file === DIRECTORY ? dirStats() : fileStats(file.data.length, file.mtimeMs);
      },
      truncate: async (length = 0) => {
        writable('ftruncate');
        this.truncateNode(file, length);
      },
      close: async () => {
        live('close');
        closed = true;
      },
    };
  }

  async mkdir(path: unknown, options?: { recursive?: boolean } | number): Promise<string | undefined> {
    const given = toPath(path);
    const resolved = this.resolve(path);
    const recursive = typeof options === 'object' && options?.recursive === true;
    if (this.files.has(resolved)) throw fsError('EEXIST', 'mkdir', given);
    if (this.dirs.has(resolved)) {
      if (recursive) return undefined;
      throw fsError('EEXIST', 'mkdir', given);
    }
    if (!recursive) {
      this.parentMustExist(resolved, 'mkdir', given);
      this.dirs.add(resolved);
      return undefined;
    }
    const missing: string[] = [];
    for (let dir = resolved; !this.dirs.has(dir); dir = posix.dirname(dir)) {
      if (this.files.has(dir)) throw fsError('ENOTDIR', 'mkdir', given);
      missing.push(dir);
    }
    for (const dir of missing.reverse()) this.dirs.add(dir);
    return missing[0];
  }

  async rm(path: unknown, options?: { force?: boolean; recursive?: boolean }): Promise<void> {
    const given = toPath(path);
    const resolved = this.resolve(path);
    const file = this.files.get(resolved);
    if (file !== undefined) {
      this.used -= file.data.length;
      this.files.delete(resolved);
      return;
    }
    if (this.dirs.has(resolved)) {
      if (options?.recursive !== true) {
        // Node's own message and fields for `rm` of a directory without `recursive`.
        throw Object.assign(new Error(`Path is a directory: rm returned EISDIR (is a directory) ${given}`), {
          errno: 21,
          code: 'ERR_FS_EISDIR',
          syscall: 'rm',
          path: given,
        });
      }
      const prefix = resolved === '/' ? '/' : `${resolved}/`;
      for (const [name, node] of [...this.files]) {
        if (name.startsWith(prefix)) {
          this.used -= node.data.length;
          this.files.delete(name);
        }
      }
      for (const dir of [...this.dirs]) if (dir.startsWith(prefix)) this.dirs.delete(dir);
      if (resolved !== '/') this.dirs.delete(resolved);
      return;
    }
    // `force` forgives only a missing path (as Node's rm does), not a file standing in for a directory.
    const error = this.missing(resolved, 'lstat', given);
    if (options?.force !== true || error.code !== 'ENOENT') throw error;
  }

  async unlink(path: unknown): Promise<void> {
    const given = toPath(path);
    const resolved = this.resolve(path);
    if (this.dirs.has(resolved)) throw fsError('EISDIR', 'unlink', given);
    const file = this.files.get(resolved);
    if (file === undefined) throw this.missing(resolved, 'unlink', given);
    this.used -= file.data.length;
    this.files.delete(resolved);
  }

  async rename(from: unknown, to: unknown): Promise<void> {
    const source = this.resolve(from);
    const target = this.resolve(to);
    const givenFrom = toPath(from);
    const givenTo = toPath(to);
    // In the kernel's order: both parent directories first, then the source, then the target.
    if (!this.dirs.has(posix.dirname(source))) throw this.missing(source, 'rename', givenFrom, givenTo);
    if (!this.dirs.has(posix.dirname(target))) throw this.missing(target, 'rename', givenFrom, givenTo);
    const file = this.files.get(source);
    if (file === undefined) {
      // Renaming directories is not needed by the writers this file system serves.
      if (this.dirs.has(source)) throw fsError('EISDIR', 'rename', givenFrom, givenTo);
      throw fsError('ENOENT', 'rename', givenFrom, givenTo);
    }
    // Linux refuses to replace a directory the source lies under before it looks at what the target is.
    if (source.startsWith(`${target}/`)) throw fsError('ENOTEMPTY', 'rename', givenFrom, givenTo);
    if (this.dirs.has(target)) throw fsError('EISDIR', 'rename', givenFrom, givenTo);
    if (source === target) return;
    const replaced = this.files.get(target);
    if (replaced !== undefined) this.used -= replaced.data.length;
    this.files.set(target, file);
    this.files.delete(source);
  }

  async stat(path: unknown): Promise<MemoryStats> {
    const resolved = this.resolve(path);
    if (this.dirs.has(resolved)) return dirStats();
    const file = this.files.get(resolved);
    if (file === undefined) throw this.missing(resolved, 'stat', toPath(path));
    return fileStats(file.data.length, file.mtimeMs);
  }

  async readdir(path: unknown): Promise<string[]> {
    const given = toPath(path);
    const resolved = this.resolve(path);
    if (this.files.has(resolved)) throw fsError('ENOTDIR', 'scandir', given);
    if (!this.dirs.has(resolved)) throw this.missing(resolved, 'scandir', given);
    const names = new Set<string>();
    for (const name of [...this.files.keys(), ...this.dirs]) {
      if (name !== resolved && posix.dirname(name) === resolved) names.add(posix.basename(name));
    }
    return [...names].sort();
  }
}

function fileStats(size: number, mtimeMs: number): MemoryStats {
  return { size, mtimeMs, isFile: () => true, isDirectory: () => false };
}

function dirStats(): MemoryStats {
  return { size: 0, mtimeMs: 0, isFile: () => false, isDirectory: () => true };
}

/**
 * A fresh in-memory file system (see {@link MemoryFileSystem}); pass it as `fs` to {@link faultyFs}.
 * @example
 * const disk = faultyFs({ fs: memoryFs(), rules: [{ error: 'EIO', schedule: schedule.rate(0.1) }], runtime });
 */
export function memoryFs(options?: MemoryFsOptions): MemoryFileSystem {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw invalid('memoryFs', 'options', options, 'an object { capacity? }');
  }
  return new MemoryFileSystem(options);
}
