import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capture } from '../../test/support.js';
import { SystemClock } from '../core/clock.js';
import { virtualRuntime } from '../core/runtime.js';
import type { Notification, Receiver } from '../monitor/alerts/notification.js';
import { Notifier } from '../monitor/alerts/notifier.js';
import { AlertStore } from '../monitor/alerts/store.js';
import { main } from './main.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-silence-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bulwark silence', () => {
  it('adds, lists and expires silences that a running notifier honours', async () => {
    const file = join(dir, 'alerts.db');
    new AlertStore(file).close();
    const add = capture();
    expect(
      await main(
        [
          'silence',
          'add',
          'alertname="Noisy"',
          'severity=~"ticket|info"',
          '--duration',
          '2h',
          '--comment',
          'deploy',
          '--author',
          'ana',
          '--store',
          file,
        ],
        add.io,
      ),
    ).toBe(0);
    const id = add.out().trim();
    expect(id).toMatch(/^[0-9a-f]{16}$/);

    // A notifier on the same store (its clock at real time) mutes the matching alert.
    const rt = virtualRuntime(1, { start: new SystemClock().now() });
    const sent: Notification[] = [];
    const receiver: Receiver = { name: 'team', sendResolved: true, send: async (n) => void sent.push(n) };
    const notifier = new Notifier({
      runtime: rt,
      store: file,
      receivers: [receiver],
      route: { receiver: 'team', groupWait: 0 },
    });
    const at = rt.clock.now();
    notifier.receive({
      labels: { alertname: 'Noisy', severity: 'info' },
      annotations: {},
      startsAt: at,
      endsAt: undefined,
    });
    notifier.receive({
      labels: { alertname: 'Real', severity: 'info' },
      annotations: {},
      startsAt: at,
      endsAt: undefined,
    });
    await rt.clock.advance(1000);
    expect(sent.map((n) => n.groupLabels.alertname)).toEqual(['Real']);
    await notifier.close();

    const list = capture();
    expect(await main(['silence', 'list', '--store', file], list.io)).toBe(0);
    expect(list.out()).toMatch(
      new RegExp(
        `^${id}  active   alertname="Noisy",severity=~"ticket\\|info"  ends in 2h  by ana  — deploy\\n$`,
      ),
    );
    expect(await main(['silence', 'expire', id, '--store', file], capture().io)).toBe(0);
    const again = capture();
    expect(await main(['silence', 'expire', id, '--store', file], again.io)).toBe(1);
    expect(again.err()).toContain(`no active or pending silence with id ${id}`);
    const json = capture();
    expect(await main(['silence', 'list', '--json', '--store', file], json.io)).toBe(0);
    expect(JSON.parse(json.out())[0]).toMatchObject({ id, state: 'expired', createdBy: 'ana' });
  });

  it('finds the store through an alert config file', async () => {
    const store = join(dir, 'from-config.db');
    new AlertStore(store).close();
    const config = join(dir, 'alerts.yaml');
    writeFileSync(config, `store: ${store}\nreceivers: []\n`);
    const c = capture();
    expect(await main(['silence', 'list', '--config', config], c.io)).toBe(0);
    expect(c.out()).toBe('No silences.\n');
  });

  it('exits 2 with one line on bad input', async () => {
    const file = join(dir, 'alerts.db');
    for (const argv of [
      ['silence', 'add', 'alertname~"x"', '--duration', '1h', '--store', file],
      ['silence', 'add', 'a="b"', '--store', file],
      ['silence', 'add', 'a="b"', '--duration', 'soon', '--store', file],
      ['silence', 'list'],
      ['silence', 'list', '--store', join(dir, 'missing.db')],
      ['silence', 'mute', '--store', file],
    ]) {
      const c = capture();
      expect(await main(argv, c.io)).toBe(2);
      expect(c.err().split('\n')[0]).toMatch(/^bulwark: silence: /);
    }
  });
});
