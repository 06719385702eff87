import { describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import { main } from './main.js';

/** Every usage error is one line (plus the fixed "Run bulwark --help" hint), exit 2, no Node hint. */
async function usage(argv: string[]) {
  const c = capture();
  const code = await main(argv, c.io);
  return { code, err: c.err(), out: c.out() };
}

describe('review: parseFlags usage errors are one line, exit 2', () => {
  it.each([
    [['lab', '--seed', '-5']],
    [['lab', '--out', '--json']],
    [['run', 'x.yaml', '--out', '-x']],
    [['demo', '--seed', '-1']],
  ])('%j', async (argv) => {
    const { code, err } = await usage(argv);
    expect(code).toBe(2);
    expect(err.split('\n').filter(Boolean)).toHaveLength(2);
    expect(err).not.toContain('To specify');
  });

  it.each([
    [['lab', '--bogus']],
    [['lab', '--out']],
    [['run', 'a.yaml', '--json=yes']],
    [['dashboard', 'stray']],
    [['proxy', 'stray']],
    [['demo', 'stray']],
    [['analyze']],
    [['run']],
    [['run', 'a.yaml', 'b.yaml']],
  ])('passing, pins %j', async (argv) => {
    const { code, err, out } = await usage(argv);
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err.split('\n').filter(Boolean)).toHaveLength(2);
    expect(err).toMatch(/^bulwark: \w+: /);
  });

  it('every usage error names its command (dashboard --port x says "bulwark: dashboard: …")', async () => {
    const { code, err } = await usage(['dashboard', '--port', 'x']);
    expect(code).toBe(2);
    expect(err).toMatch(/^bulwark: dashboard: /);
  });
});
