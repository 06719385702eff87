/**
 * A small tmpfs for tests of real disk-full behaviour. Mounting needs Linux and root (CAP_SYS_ADMIN);
 * where that is not permitted, `mountTmpfs` says why, and `mountedOrSkip` skips the test with that message —
 * except in CI (`CI=true`), whose machine can mount: there a missing tmpfs fails the test.
 *
 * @example
 * const disk = await mountTmpfs('1m');
 * afterAll(() => disk.unmount());
 * it('…', (ctx) => { const dir = mountedOrSkip(disk, ctx); … });
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  /** The mount point, or `undefined` when mounting was not permitted. */
  readonly path: string | undefined;
  /** Why it could not be mounted (empty when mounted). */
  readonly reason: string;
  unmount(): Promise<void>;
}

export async function mountTmpfs(size: string, title = 'real disk-full test'): Promise<Tmpfs> {
  const mountPoint = await mkdtemp(join(tmpdir(), 'bulwark-tmpfs-'));
  let reason = '';
  if (process.platform !== 'linux') reason = 'mounting a tmpfs needs Linux';
  else {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mountPoint], { stdio: 'pipe' });
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
      reason = `cannot mount a tmpfs here (${stderr || String(error)}); it needs root with CAP_SYS_ADMIN`;
    }
  }
  if (reason !== '') process.stderr.write(`[skip] ${title}: ${reason}\n`);
  const mounted = reason === '';
  return {
    path: mounted ? mountPoint : undefined,
    reason,
    async unmount() {
      if (mounted) execFileSync('umount', [mountPoint]);
      await rm(mountPoint, { recursive: true, force: true });
    },
  };
}

/** The mount point; outside CI, a test where mounting was not permitted is skipped (the reason is printed). */
export function mountedOrSkip(disk: Tmpfs, ctx: { skip: () => void }): string {
  if (disk.path !== undefined) return disk.path;
  if (process.env.CI === 'true' || process.env.CI === '1') {
    throw new Error(`${disk.reason}; CI runs the real disk-full tests`);
  }
  ctx.skip();
  throw new Error('unreachable: skip() ends the test');
}
