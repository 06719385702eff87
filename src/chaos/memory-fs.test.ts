import * as realFs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { memoryFs } from './memory-fs.js';

/** Names under the root: a few files and directories, nested, so that operations collide often. */
const NAMES = ['a', 'b', 'a/c', 'a/d', 'b/e', 'a/c/f'];

type Op =
  | { op: 'mkdir'; path: string; recursive: boolean }
  | { op: 'writeFile' | 'appendFile'; path: string; data: string }
  | { op: 'readFile' | 'stat' | 'readdir' | 'unlink'; path: string }
  | { op: 'rm'; path: string; force: boolean; recursive: boolean }
  | { op: 'rename'; path: string; to: string };

const path = fc.constantFrom(...NAMES);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('mkdir' as const), path, recursive: fc.boolean() }),
  fc.record({
    op: fc.constantFrom('writeFile' as const, 'appendFile' as const),
    path,
    data: fc.string({ maxLength: 8 }),
  }),
  fc.record({
    op: fc.constantFrom('readFile' as const, 'stat' as const, 'readdir' as const, 'unlink' as const),
    path,
  }),
  fc.record({ op: fc.constant('rm' as const), path, force: fc.boolean(), recursive: fc.boolean() }),
  fc.record({ op: fc.constant('rename' as const), path, to: path }),
);

type FsLike = Pick<
  typeof realFs,
  'mkdir' | 'writeFile' | 'appendFile' | 'readFile' | 'stat' | 'readdir' | 'unlink' | 'rm' | 'rename'
>;

/** What an operation did, comparable across file systems: its value, or its error's code and syscall. */
async function outcome(fs: FsLike, root: string, o: Op): Promise<unknown> {
  const at = (name: string) => `${root}/${name}`;
  try {
    switch (o.op) {
      case 'mkdir':
        await fs.mkdir(at(o.path), { recursive: o.recursive });
        return 'ok';
      case 'writeFile':
      case 'appendFile':
        await fs[o.op](at(o.path), o.data);
        return 'ok';
      case 'readFile':
        return await fs.readFile(at(o.path), 'utf8');
      case 'stat': {
        const s = await fs.stat(at(o.path));
        return { file: s.isFile(), dir: s.isDirectory(), size: s.isFile() ? s.size : 0 };
      }
      case 'readdir':
        return [...(await fs.readdir(at(o.path)))].sort();
      case 'unlink':
        await fs.unlink(at(o.path));
        return 'ok';
      case 'rm':
        await fs.rm(at(o.path), { force: o.force, recursive: o.recursive });
        return 'ok';
      case 'rename':
        await fs.rename(at(o.path), at(o.to));
        return 'ok';
    }
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return { code: e.code, syscall: e.syscall };
  }
}

describe('memoryFs against the real file system', () => {
  it('gives the same results and the same error codes and syscalls for any sequence of operations', async () => {
    const base = await realFs.mkdtemp(join(tmpdir(), 'bulwark-memfs-'));
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 12 }), async (ops) => {
          const root = join(base, String(run++));
          await realFs.mkdir(root);
          const memory = memoryFs();
          await memory.mkdir(root, { recursive: true });
          for (const o of ops) {
            // Renaming a directory is outside what memoryFs models (log writers rename files).
            if (o.op === 'rename') {
              const source = await realFs.stat(`${root}/${o.path}`).catch(() => undefined);
              if (source?.isDirectory()) continue;
            }
            const real = await outcome(realFs, root, o);
            const simulated = await outcome(memory as unknown as FsLike, root, o);
            expect({ op: o, result: simulated }).toEqual({ op: o, result: real });
          }
        }),
        { numRuns: 300, seed: 7 },
      );
    } finally {
      await realFs.rm(base, { recursive: true, force: true });
    }
  });
});
