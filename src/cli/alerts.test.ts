import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import { alertsCommand } from './alerts.js';
import { main } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-alerts-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG = `store: alerts.db
rules:
  - name: CircuitOpen
    circuitOpen: {}
receivers:
  - name: hook
    webhook: { urlEnv: HOOK_URL }
route: { receiver: hook }
`;

describe('bulwark alerts check', () => {
  it('prints what a valid file defines, without its secrets', async () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, CONFIG);
    const c = capture();
    expect(
      await alertsCommand(['check', file], c.io, { HOOK_URL: 'https://example.test/hook?token=s3cr3t' }),
    ).toBe(0);
    expect(c.out()).toBe(
      `${file} is valid: 1 rule: CircuitOpen (circuitOpen); receivers: hook; store: alerts.db\n`,
    );
    expect(c.out()).not.toContain('s3cr3t');
  });

  it('lists every problem and exits 2', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, CONFIG.replace('circuitOpen: {}', 'circuitOpen: { sorce: db }'));
    const c = capture();
    expect(await alertsCommand(['check', file], c.io, {})).toBe(2);
    expect(c.err()).toBe(
      [`bulwark: ${file}:4:20: rules[0].circuitOpen.sorce: unknown key (did you mean "source"?)`, ''].join(
        '\n',
      ),
    );
    const unset = join(dir, 'unset.yaml');
    writeFileSync(unset, CONFIG);
    const u = capture();
    expect(await alertsCommand(['check', unset], u.io, {})).toBe(2);
    expect(u.err()).toContain('receivers[0].webhook.urlEnv: environment variable HOOK_URL is not set');
    const missing = capture();
    expect(await main(['alerts', 'check', join(dir, 'nope.yaml')], missing.io)).toBe(2);
    expect(missing.err()).toMatch(/cannot read .*nope\.yaml: no such file/);
    const usage = capture();
    expect(await main(['alerts', 'lint', file], usage.io)).toBe(2);
    expect(usage.err()).toMatch(/^bulwark: alerts: unknown action "lint"/);
  });
});
