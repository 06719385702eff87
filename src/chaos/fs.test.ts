import * as realFs from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { record, settle } from '../../test/support.js';
import { mountedOrSkip, mountTmpfs, type Tmpfs } from '../../test/tmpfs.js';
import type { EventOf } from '../core/events.js';
import { virtualRuntime } from '../core/runtime.js';
import { FS_OPERATIONS, faultyFs, fsError, globToRegExp } from './fs.js';
import { memoryFs } from './memory-fs.js';
import { schedule } from './schedule.js';

/** What a thrown value looks like, field by field, in the order Node sets them. */
function shape(error: unknown): Record<string, unknown> {
  const e = error as NodeJS.ErrnoException & { dest?: string };
  const fields: Record<string, unknown> = { isError: error instanceof Error, message: e.message };
  for (const key of Object.keys(e)) fields[key] = (e as unknown as Record<string, unknown>)[key];
  return fields;
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

let dir: string;

beforeEach(async () => {
  dir = await realFs.mkdtemp(join(tmpdir(), 'bulwark-fs-'));
});

afterEach(async () => {
  await realFs.rm(dir, { recursive: true, force: true });
});

describe('fsError', () => {
  it('builds the same error Node throws', async () => {
    const missing = join(dir, 'missing.txt');
    const real = await caught(realFs.readFile(missing));
    expect(shape(fsError('ENOENT', 'open', missing))).toEqual(shape(real));
    const renamed = await caught(realFs.rename(missing, join(dir, 'b')));
    expect(shape(fsError('ENOENT', 'rename', missing, join(dir, 'b')))).toEqual(shape(renamed));
  });

  it('sets the negative errno of os.constants.errno', () => {
    for (const code of ['ENOSPC', 'EACCES', 'EPERM', 'EMFILE', 'EIO', 'EROFS'] as const) {
      expect(fsError(code, 'open', '/x').errno).toBe(-constants.errno[code]);
    }
    expect(fsError('ENOSPC', 'write').message).toBe('ENOSPC: no space left on device, write');
    expect(fsError('EACCES', 'open', '/var/x').message).toBe("EACCES: permission denied, open '/var/x'");
  });
});

describe('globToRegExp', () => {
  it('matches *, **, ? and {a,b} over / separated paths', () => {
    expect(globToRegExp('/data/*.log').test('/data/a.log')).toBe(true);
    expect(globToRegExp('/data/*.log').test('/data/x/a.log')).toBe(false);
    expect(globToRegExp('/data/**').test('/data/x/y/a.log')).toBe(true);
    expect(globToRegExp('/data/**/*.log').test('/data/a.log')).toBe(true);
    expect(globToRegExp('/data/**/*.log').test('/data/x/y/a.log')).toBe(true);
    expect(globToRegExp('**/*.tmp').test('/any/where/f.tmp')).toBe(true);
    expect(globToRegExp('/d/f?.{json,yaml}').test('/d/f1.yaml')).toBe(true);
    expect(globToRegExp('/d/f?.{json,yaml}').test('/d/f12.json')).toBe(false);
    expect(globToRegExp('/d/a+b(1).txt').test('/d/a+b(1).txt')).toBe(true);
  });
});

describe('faultyFs on the real file system', () => {
  it('fails the matching operation on the matching path with the error Node would throw', async () => {
    const rt = virtualRuntime(1);
    const fs = faultyFs({
      rules: [{ path: `${dir}/data/**`, operations: ['writeFile'], error: 'EACCES' }],
      runtime: rt,
    });
    await fs.mkdir(join(dir, 'data'));
    const target = join(dir, 'data', 'state.json');
    const error = await caught(fs.writeFile(target, '{}'));
    expect(shape(error)).toEqual({
      isError: true,
      message: `EACCES: permission denied, open '${target}'`,
      errno: -13,
      code: 'EACCES',
      syscall: 'open',
      path: target,
    });
    await expect(realFs.stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    // Another operation, another path: untouched.
    await fs.appendFile(target, 'a');
    await fs.writeFile(join(dir, 'other.json'), '{}');
    // A URL names the same path.
    await expect(fs.writeFile(pathToFileURL(target), '{}')).rejects.toMatchObject({
      code: 'EACCES',
      path: target,
    });
    expect(await fs.readFile(target, 'utf8')).toBe('a');
    expect(fs.calls).toBe(6);
    expect(fs.injected).toBe(2);
  });

  it('writes the first afterBytes bytes before ENOSPC (writeFile, appendFile, handle.write)', async () => {
    const rt = virtualRuntime(1);
    const fs = faultyFs({
      rules: [
        {
          path: '**/*.log',
          operations: ['writeFile', 'appendFile', 'write'],
          error: 'ENOSPC',
          afterBytes: 4,
          schedule: schedule.everyNth(2),
        },
      ],
      runtime: rt,
    });
    const log = join(dir, 'app.log');
    await fs.appendFile(log, 'one\n');
    expect(shape(await caught(fs.appendFile(log, 'two two\n')))).toEqual({
      isError: true,
      message: 'ENOSPC: no space left on device, write',
      errno: -28,
      code: 'ENOSPC',
      syscall: 'write',
    });
    expect(await realFs.readFile(log, 'utf8')).toBe('one\ntwo ');

    await fs.writeFile(log, 'fresh\n');
    await expect(fs.writeFile(log, Buffer.from('replaced\n'))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(await realFs.readFile(log, 'utf8')).toBe('repl');

    const handle = await fs.open(join(dir, 'h.log'), 'w');
    try {
      await handle.write('abc'); // the rule's 5th call: passes
      await expect(handle.write(Buffer.from('defghij'))).rejects.toMatchObject({
        code: 'ENOSPC',
        syscall: 'write',
      });
      await handle.write('!', null, 'utf8');
    } finally {
      await handle.close();
    }
    expect(await realFs.readFile(join(dir, 'h.log'), 'utf8')).toBe('abcdefg!');
  });

  it('fails handle sync with EIO and names no path, as fsync does', async () => {
    const fs = faultyFs({ rules: [{ operations: ['sync'], error: 'EIO' }], runtime: virtualRuntime(1) });
    const handle = await fs.open(join(dir, 'f'), 'w');
    try {
      await handle.write('x');
      expect(shape(await caught(handle.sync()))).toEqual({
        isError: true,
        message: 'EIO: i/o error, fsync',
        errno: -5,
        code: 'EIO',
        syscall: 'fsync',
      });
      expect((await handle.stat()).size).toBe(1);
    } finally {
      await handle.close();
    }
  });

  it('matches rename on its destination, resolves relative globs against cwd, names both paths', async () => {
    const fs = faultyFs({ rules: [{ path: 'ro/**', error: 'EROFS' }], cwd: dir, runtime: virtualRuntime(1) });
    await realFs.mkdir(join(dir, 'ro'));
    const [a, b, ro] = [join(dir, 'a'), join(dir, 'b'), join(dir, 'ro', 'a')];
    await realFs.writeFile(a, 'x');
    const error = await caught(fs.rename(a, ro));
    expect(shape(error)).toEqual({
      isError: true,
      message: `EROFS: read-only file system, rename '${a}' -> '${ro}'`,
      errno: -30,
      code: 'EROFS',
      syscall: 'rename',
      path: a,
      dest: ro,
    });
    await fs.rename(a, b);
    expect(await fs.readdir(dir)).toEqual(['b', 'ro']);
  });

  it('names the syscall Node names: scandir for readdir, open for EMFILE, read for EIO in readFile', async () => {
    const rt = virtualRuntime(1);
    const fs = faultyFs({
      rules: [
        { path: `${dir}/d`, operations: ['readdir'], error: 'EMFILE' },
        { path: `${dir}/f`, operations: ['readFile'], error: 'EMFILE', schedule: schedule.firstN(1) },
        { path: `${dir}/f`, operations: ['readFile'], error: 'EIO' },
      ],
      runtime: rt,
    });
    await expect(fs.readdir(join(dir, 'd'))).rejects.toMatchObject({
      message: `EMFILE: too many open files, scandir '${dir}/d'`,
      syscall: 'scandir',
    });
    await expect(fs.readFile(join(dir, 'f'))).rejects.toMatchObject({ syscall: 'open', path: `${dir}/f` });
    const eio = await caught(fs.readFile(join(dir, 'f')));
    expect(shape(eio)).toEqual({
      isError: true,
      message: 'EIO: i/o error, read',
      errno: -5,
      code: 'EIO',
      syscall: 'read',
    });
    expect(fs.ruleStats()).toEqual([
      { name: 'EMFILE', calls: 1, fired: 1 },
      { name: 'EMFILE#2', calls: 2, fired: 1 },
      { name: 'EIO', calls: 1, fired: 1 },
    ]);
  });
});

describe('faultyFs schedules, latency and events', () => {
  async function decisions(seed: number): Promise<boolean[]> {
    const fs = faultyFs({
      fs: memoryFs(),
      rules: [{ error: 'EIO', operations: ['stat'], schedule: schedule.rate(0.3) }],
      runtime: virtualRuntime(seed),
    });
    const out: boolean[] = [];
    for (let i = 0; i < 200; i++)
      out.push(
        await fs.stat('/').then(
          () => false,
          () => true,
        ),
      );
    return out;
  }

  it('is reproducible from the seed and fires at the scheduled rate', async () => {
    const a = await decisions(7);
    expect(await decisions(7)).toEqual(a);
    expect(await decisions(8)).not.toEqual(a);
    const fired = a.filter(Boolean).length;
    expect(fired).toBeGreaterThan(40);
    expect(fired).toBeLessThan(80);
  });

  it('adds latency on the runtime clock and reports every fault as fault.injected', async () => {
    const rt = virtualRuntime(1);
    const events = record(rt);
    const disk = memoryFs();
    const fs = faultyFs({
      fs: disk,
      rules: [
        { name: 'slow', latency: '250ms' },
        { name: 'full', operations: ['appendFile'], error: 'ENOSPC', schedule: schedule.firstN(1) },
      ],
      runtime: rt,
    });
    const result = await settle(rt, () => fs.appendFile('/a', 'x'));
    expect(result).toMatchObject({ ok: false, at: 250 });
    const second = await settle(rt, () => fs.appendFile('/a', 'y'));
    expect(second).toMatchObject({ ok: true, at: 500 });
    expect(await disk.readFile('/a', 'utf8')).toBe('y');
    expect(events.filter((e) => e.type === 'fault.injected')).toEqual([
      { type: 'fault.injected', source: 'slow', at: 0, fault: 'fs', call: 1, delayMs: 250 },
      { type: 'fault.injected', source: 'full', at: 0, fault: 'fs', call: 1, code: 'ENOSPC' },
      { type: 'fault.injected', source: 'slow', at: 250, fault: 'fs', call: 2, delayMs: 250 },
    ] satisfies EventOf<'fault.injected'>[]);
  });

  it('passes everything through when BULWARK_CHAOS=off', async () => {
    const saved = process.env.BULWARK_CHAOS;
    process.env.BULWARK_CHAOS = 'off';
    try {
      const fs = faultyFs({ fs: memoryFs(), rules: [{ error: 'EIO' }], runtime: virtualRuntime(1) });
      await fs.writeFile('/a', 'x');
      expect(await fs.readFile('/a', 'utf8')).toBe('x');
      expect(fs.injected).toBe(0);
      expect(fs.calls).toBe(2);
    } finally {
      if (saved === undefined) delete process.env.BULWARK_CHAOS;
      else process.env.BULWARK_CHAOS = saved;
    }
  });

  it('rejects bad options at construction, naming the option', () => {
    const rt = virtualRuntime(1);
    const build =
      (rules: unknown, extra: Record<string, unknown> = {}) =>
      () =>
        faultyFs({ rules: rules as never, runtime: rt, ...extra });
    expect(build([{ error: 'ENOENT' }])).toThrow(
      'faultyFs: option "rules[0].error" must be one of "ENOSPC", "EACCES", "EPERM", "EMFILE", "EIO", "EROFS", got "ENOENT"',
    );
    expect(build([{}])).toThrow('faultyFs: rules[0] needs option "error" or "latency"');
    expect(build([{ error: 'EIO', latency: 5 }])).toThrow('exclusive');
    expect(build([{ error: 'EIO', afterBytes: 3 }])).toThrow('option "afterBytes" needs error "ENOSPC"');
    expect(build([{ error: 'ENOSPC', afterBytes: -1 }])).toThrow('rules[0].afterBytes');
    expect(build([{ error: 'EIO', operations: ['chmod'] }])).toThrow('rules[0].operations[0]');
    expect(build([{ error: 'EIO', path: [] }])).toThrow('rules[0].path');
    expect(build([{ error: 'EIO', paht: '/x' }])).toThrow('unknown option "rules[0].paht"');
    expect(build([{ error: 'EIO', schedule: 0.5 }])).toThrow('rules[0].schedule');
    expect(build({})).toThrow('option "rules" must be an array');
    expect(build([], { fs: { readFile: () => {} } })).toThrow('it has no writeFile function');
    expect(build([], { rulez: [] })).toThrow('unknown option "rulez"');
    expect(FS_OPERATIONS).toContain('readdir');
  });
});

describe('memoryFs', () => {
  it('behaves like fs/promises for the wrapped functions, with Node-shaped errors', async () => {
    const fs = memoryFs();
    await fs.mkdir('/a/b', { recursive: true });
    await fs.writeFile('/a/b/f.txt', 'hello');
    await fs.appendFile('/a/b/f.txt', ' world');
    expect(await fs.readFile('/a/b/f.txt', 'utf8')).toBe('hello world');
    expect(await fs.readdir('/a')).toEqual(['b']);
    expect((await fs.stat('/a/b/f.txt')).size).toBe(11);
    expect((await fs.stat('/a')).isDirectory()).toBe(true);
    await fs.rename('/a/b/f.txt', '/a/g.txt');
    expect(await fs.readdir('/a')).toEqual(['b', 'g.txt']);
    const missing = await caught(fs.readFile('/a/b/f.txt'));
    const real = await caught(realFs.readFile(join(dir, 'f.txt')));
    expect(Object.keys(missing as object)).toEqual(Object.keys(real as object));
    expect(missing).toMatchObject({ code: 'ENOENT', syscall: 'open', path: '/a/b/f.txt' });
    await expect(fs.mkdir('/x/y')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'mkdir' });
    const directory = await fs.open('/a', 'r');
    await directory.sync();
    expect((await directory.stat()).isDirectory()).toBe(true);
    await expect(directory.write('x')).rejects.toMatchObject({ code: 'EBADF', syscall: 'write' });
    await expect(directory.readFile()).rejects.toMatchObject({ code: 'EISDIR' });
    await directory.close();
    await expect(fs.open('/a', 'w')).rejects.toMatchObject({ code: 'EISDIR', syscall: 'open', path: '/a' });
    const readOnly = await fs.open('/a/g.txt', 'r');
    await expect(readOnly.write('x')).rejects.toMatchObject({ code: 'EBADF' });
    await readOnly.close();
    await expect(fs.writeFile('/nope/f', 'x')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
    await expect(fs.rm('/a')).rejects.toMatchObject({ code: 'ERR_FS_EISDIR' });
    await fs.rm('/a', { recursive: true });
    await fs.rm('/a', { force: true });
    expect(await fs.readdir('/')).toEqual([]);
    expect(fs.usedBytes).toBe(0);
  });

  it('runs out of space like a disk: what fits is written, then ENOSPC', async () => {
    const fs = memoryFs({ capacity: 10 });
    await fs.writeFile('/a', '123456');
    await expect(fs.appendFile('/a', 'abcdef')).rejects.toMatchObject({
      code: 'ENOSPC',
      syscall: 'write',
      message: 'ENOSPC: no space left on device, write',
    });
    expect(await fs.readFile('/a', 'utf8')).toBe('123456abcd');
    await fs.unlink('/a');
    const handle = await fs.open('/b', 'w');
    await handle.write('0123456789');
    await handle.sync();
    await expect(handle.write('x')).rejects.toMatchObject({ code: 'ENOSPC' });
    await handle.close();
    await expect(handle.write('x')).rejects.toMatchObject({ code: 'EBADF' });
    expect(fs.syncCount).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// A real disk running out of space: a 1 MiB tmpfs mounted by the test.

describe('a real disk-full on a 1 MiB tmpfs', () => {
  let disk: Tmpfs;

  beforeAll(async () => {
    disk = await mountTmpfs('1m');
  });

  afterAll(async () => {
    await disk.unmount();
  });

  it('throws the ENOSPC that faultyFs and memoryFs imitate, after writing what fits', async (ctx) => {
    const mounted = mountedOrSkip(disk, ctx);
    const file = join(mounted, 'big.bin');
    const real = await caught(realFs.writeFile(file, Buffer.alloc(2 * 1024 * 1024, 1)));
    expect(shape(real)).toEqual(shape(fsError('ENOSPC', 'write')));
    const written = (await realFs.stat(file)).size;
    expect(written).toBeGreaterThan(0);
    expect(written).toBeLessThanOrEqual(1024 * 1024);

    const injected = await caught(
      faultyFs({
        fs: memoryFs(),
        rules: [{ error: 'ENOSPC', afterBytes: written }],
        runtime: virtualRuntime(1),
      }).writeFile('/big.bin', Buffer.alloc(2 * 1024 * 1024, 1)),
    );
    expect(shape(injected)).toEqual(shape(real));
    const simulated = await caught(
      memoryFs({ capacity: written }).writeFile('/big.bin', Buffer.alloc(2 * 1024 * 1024, 1)),
    );
    expect(shape(simulated)).toEqual(shape(real));

    // An append that does not fit on the full disk is torn the same way.
    await realFs.rm(file);
    await realFs.writeFile(file, Buffer.alloc(written - 3, 0));
    const torn = await caught(realFs.appendFile(file, Buffer.from('abcdefgh')));
    expect(shape(torn)).toEqual(shape(fsError('ENOSPC', 'write')));
  });
});
