import { describe, expect, it } from 'vitest';
import { main, version } from './main.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

describe('bulwark CLI', () => {
  it('--help prints usage and exits 0', async () => {
    const c = capture();
    expect(await main(['--help'], c.io)).toBe(0);
    expect(c.out.join('')).toMatch(/Usage: bulwark <command>/);
  });

  it('--version prints the package version', async () => {
    const c = capture();
    expect(await main(['--version'], c.io)).toBe(0);
    expect(c.out.join('')).toBe(`${version()}\n`);
    expect(version()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('an unknown command or option exits 2 with a one-line message', async () => {
    for (const argv of [['frobnicate'], ['--frob']]) {
      const c = capture();
      expect(await main(argv, c.io)).toBe(2);
      expect(c.err.join('')).toMatch(/^bulwark: unknown (command|option)/);
      expect(c.err.join('')).not.toMatch(/at .*\.ts/);
    }
  });

  it('no arguments prints usage and exits 2', async () => {
    const c = capture();
    expect(await main([], c.io)).toBe(2);
    expect(c.out.join('')).toMatch(/Usage/);
  });
});
