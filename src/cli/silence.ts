/**
 * `bulwark silence add|expire|list`: manages the silences in an alert store (the SQLite file the
 * notifier uses), so a running process mutes matching alerts from its next flush.
 * Exit code 0 on success, 1 when `expire` finds no such active silence, 2 on bad input.
 */
import { existsSync } from 'node:fs';
import { formatMs } from '../core/duration.js';
import { createRuntime } from '../core/runtime.js';
import { Matchers } from '../monitor/alerts/labels.js';
import { Silences } from '../monitor/alerts/silences.js';
import { AlertStore } from '../monitor/alerts/store.js';
import { parseSource, readSource, UnreadableFile } from '../policy/file-problems.js';
import { type CommandIO, parseFlags, UsageError } from './io.js';

const HELP = `Usage: bulwark silence add MATCHER… --duration D [--comment TEXT] [--author NAME] (--store FILE | --config FILE)
       bulwark silence expire ID (--store FILE | --config FILE)
       bulwark silence list (--store FILE | --config FILE) [--json]

Silences mute the alerts whose labels match every matcher (Alertmanager syntax: name="value",
name!="value", name=~"regex", name!~"regex") until they expire. They live in the alert store, the
SQLite file the notifier uses, so a running process honours them from its next group flush.

Options:
  --store FILE     The alert store (SQLite file)
  --config FILE    An alert config file; its "store" is used
  --duration D     How long the silence lasts, e.g. 30m, 2h, 1d (add)
  --comment TEXT   Why (add)
  --author NAME    Who (add)
  --json           Print the silences as JSON (list)
  -h, --help       Show this help

Exit code: 0 on success, 1 when expire finds no active silence with that id, 2 on bad input.
`;

async function storePath(values: Record<string, unknown>): Promise<string> {
  const store = values.store as string | undefined;
  const config = values.config as string | undefined;
  if (store !== undefined && config !== undefined)
    throw new UsageError('silence: give --store or --config, not both');
  if (store !== undefined) {
    if (!existsSync(store)) throw new UsageError(`silence: no alert store at ${store}`);
    return store;
  }
  if (config === undefined) throw new UsageError('silence: --store FILE or --config FILE is required');
  let text: string;
  try {
    text = await readSource(config);
  } catch (error) {
    if (error instanceof UnreadableFile) throw new UsageError(`silence: ${error.message}`);
    throw error;
  }
  const parsed = parseSource(text, config);
  if ('problems' in parsed) throw new UsageError(`silence: ${parsed.problems[0]}`);
  const path = (parsed.data as { store?: unknown } | null)?.store;
  if (typeof path !== 'string' || path === '')
    throw new UsageError(`silence: ${config} has no "store" (the SQLite file of the notifier)`);
  if (!existsSync(path)) throw new UsageError(`silence: no alert store at ${path} (from ${config})`);
  return path;
}

/** `bulwark silence …`; returns the exit code. Throws {@link UsageError} on bad input. */
export async function silenceCommand(argv: readonly string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseFlags('silence', argv, {
    store: { type: 'string' },
    config: { type: 'string' },
    duration: { type: 'string' },
    comment: { type: 'string' },
    author: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  const [action, ...rest] = positionals;
  if (values.help || action === undefined) {
    io.out(HELP);
    return values.help ? 0 : 2;
  }
  if (action !== 'add' && action !== 'expire' && action !== 'list') {
    throw new UsageError(`silence: unknown action "${action}" (add, expire or list)`);
  }
  if (action === 'add') {
    if (rest.length === 0)
      throw new UsageError('silence: add needs at least one matcher, e.g. alertname="LowSuccessRate"');
    if (values.duration === undefined)
      throw new UsageError('silence: add needs --duration, e.g. --duration 2h');
    try {
      Matchers.parse(rest);
    } catch (error) {
      throw new UsageError(`silence: ${(error as Error).message}`);
    }
  } else if (action === 'expire' && rest.length !== 1) {
    throw new UsageError('silence: expire needs exactly one silence id');
  } else if (action === 'list' && rest.length > 0) {
    throw new UsageError(`silence: list takes no arguments, got ${rest.join(' ')}`);
  }
  const store = new AlertStore(await storePath(values));
  try {
    const runtime = createRuntime();
    const silences = new Silences(store, runtime);
    if (action === 'add') {
      let id: string;
      try {
        id = silences.create({
          matchers: rest,
          duration: values.duration as string,
          ...(values.comment === undefined ? {} : { comment: values.comment as string }),
          ...(values.author === undefined ? {} : { createdBy: values.author as string }),
        });
      } catch (error) {
        throw new UsageError(`silence: ${(error as Error).message.replace(/^createSilence: /, '')}`);
      }
      io.out(`${id}\n`);
      return 0;
    }
    if (action === 'expire') {
      if (silences.expire(rest[0] as string)) {
        io.out(`expired ${rest[0]}\n`);
        return 0;
      }
      io.err(`bulwark: silence: no active or pending silence with id ${rest[0]}\n`);
      return 1;
    }
    const list = silences.list();
    if (values.json) {
      io.out(
        `${JSON.stringify(
          list.map((s) => ({ ...s, matchers: new Matchers(s.matchers).toString() })),
          null,
          2,
        )}\n`,
      );
      return 0;
    }
    if (list.length === 0) io.out('No silences.\n');
    const now = runtime.clock.now();
    for (const s of list) {
      const when =
        s.state === 'expired'
          ? `ended ${new Date(s.endsAt).toISOString()}`
          : s.state === 'pending'
            ? `starts in ${formatMs(s.startsAt - now)}`
            : `ends in ${formatMs(s.endsAt - now)}`;
      io.out(
        `${s.id}  ${s.state.padEnd(7)}  ${new Matchers(s.matchers).toString()}  ${when}${s.createdBy === '' ? '' : `  by ${s.createdBy}`}${s.comment === '' ? '' : `  — ${s.comment}`}\n`,
      );
    }
    return 0;
  } finally {
    store.close();
  }
}
