import { describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import { main, version } from './main.js';

describe('bulwark CLI', () => {
  it('--help prints usage and exits 0', async () => {
    const c = capture();
    expect(await main(['--help'], c.io)).toBe(0);
    expect(c.out()).toMatch(/Usage: bulwark <command>/);
  });

  it('--version prints the package version', async () => {
    const c = capture();
    expect(await main(['--version'], c.io)).toBe(0);
    expect(c.out()).toBe(`${version()}\n`);
    expect(version()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('an unknown command or option exits 2 with a one-line message', async () => {
    for (const argv of [['frobnicate'], ['--frob']]) {
      const c = capture();
      expect(await main(argv, c.io)).toBe(2);
      expect(c.err()).toMatch(/^bulwark: unknown (command|option)/);
      expect(c.err()).not.toMatch(/at .*\.ts/);
    }
  });

  it('no arguments prints usage and exits 2', async () => {
    const c = capture();
    expect(await main([], c.io)).toBe(2);
    expect(c.out()).toMatch(/Usage/);
  });
});
