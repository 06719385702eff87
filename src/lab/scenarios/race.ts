/**
 * `race`: concurrent withdrawals from one account balance. The buggy version reads the balance, awaits,
 * and writes back what it read minus its amount: a lost update whenever two reads come before a write.
 * The fixed versions hold a lock over the read-modify-write, or write with compare-and-set and retry on
 * a conflict. Each task is one exploration with its own seed; the explorer must find the lost update
 * within its budget, replay it exactly from the seed, and never flag the fixed versions.
 */
import { type RaceContext, type RaceStrategy, raceExplorer } from '../../chaos/race.js';
import { defineScenario } from '../scenario.js';

const START = 100;
const AMOUNT = 10;

/** Read, await, write back: loses an update when another withdrawal writes in between. */
async function unsafeWithdrawals({ point }: RaceContext, withdrawers: number): Promise<number> {
  const account = { balance: START };
  const withdraw = async (who: string): Promise<void> => {
    await point(`${who}:read`);
    const seen = account.balance;
    await point(`${who}:write`);
    account.balance = seen - AMOUNT;
  };
  await Promise.all(Array.from({ length: withdrawers }, (_, i) => withdraw(name(i))));
  return account.balance;
}

/** The same read-modify-write inside a FIFO lock; taking the lock is itself a scheduling point. */
async function lockedWithdrawals({ point }: RaceContext, withdrawers: number): Promise<number> {
  const account = { balance: START };
  let tail: Promise<void> = Promise.resolve();
  const withLock = async (critical: () => Promise<void>): Promise<void> => {
    const previous = tail;
    let release!: () => void;
    tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      await critical();
    } finally {
      release();
    }
  };
  const withdraw = async (who: string): Promise<void> => {
    await point(`${who}:lock`);
    await withLock(async () => {
      await point(`${who}:read`);
      const seen = account.balance;
      await point(`${who}:write`);
      account.balance = seen - AMOUNT;
    });
  };
  await Promise.all(Array.from({ length: withdrawers }, (_, i) => withdraw(name(i))));
  return account.balance;
}

/** Read a versioned balance, then compare-and-set it; a conflict (another write since) retries. */
async function casWithdrawals({ point }: RaceContext, withdrawers: number): Promise<number> {
  const account = { balance: START, version: 0 };
  const compareAndSet = (version: number, balance: number): boolean => {
    if (account.version !== version) return false;
    account.balance = balance;
    account.version++;
    return true;
  };
  const withdraw = async (who: string): Promise<void> => {
    for (;;) {
      await point(`${who}:read`);
      const { balance, version } = account;
      await point(`${who}:cas`);
      if (compareAndSet(version, balance - AMOUNT)) return;
    }
  };
  await Promise.all(Array.from({ length: withdrawers }, (_, i) => withdraw(name(i))));
  return account.balance;
}

function name(index: number): string {
  return String.fromCharCode(65 + index);
}

const VERSIONS = {
  unsafe: unsafeWithdrawals,
  lock: lockedWithdrawals,
  cas: casWithdrawals,
} as const;

/** The `race` scenario. */
export const race = defineScenario({
  name: 'race',
  description:
    'lost update: 2 concurrent read-modify-write withdrawals; the explorer finds and replays it, and never flags the lock or compare-and-set fix',
  params: {
    /** Concurrent withdrawals of 10 from a balance of 100 (2 to 10). */
    withdrawers: 2,
    /** Schedules per exploration: the explorer's budget. */
    schedules: 100,
    /** `'delay'` (random virtual delays at each point) or `'order'` (a random walk over the parked tasks). */
    strategy: 'delay',
    /** The longest random delay at a point, in virtual ms (`'delay'` strategy). */
    maxDelayMs: 10,
  },
  defaults: { tasks: 30 },
  async run({ runtime, tasks, params, record, progress }) {
    const withdrawers = params.withdrawers;
    if (!Number.isInteger(withdrawers) || withdrawers < 2 || withdrawers > 10) {
      throw new TypeError(
        `scenario race: parameter "withdrawers" must be an integer from 2 to 10, got ${withdrawers}`,
      );
    }
    const expected = START - AMOUNT * withdrawers;
    const invariant = (balance: number) =>
      balance === expected ||
      `balance is ${balance} after ${withdrawers} withdrawals of ${AMOUNT} from ${START}, expected ${expected}`;
    const explorers = (seed: string) =>
      Object.fromEntries(
        Object.entries(VERSIONS).map(([version, scenario]) => [
          version,
          raceExplorer({
            scenario: (ctx: RaceContext) => scenario(ctx, withdrawers),
            invariant,
            schedules: params.schedules,
            strategy: params.strategy as RaceStrategy,
            maxDelay: params.maxDelayMs,
            seed: `${seed}/${version}`,
            name: `race:${version}`,
            runtime,
          }),
        ]),
      ) as Record<keyof typeof VERSIONS, ReturnType<typeof raceExplorer<number>>>;
    for (let task = 0; task < tasks; task++) {
      const { unsafe, lock, cas } = explorers(`${runtime.random.seed}/task:${task}`);
      const found = await unsafe.explore();
      const violation = found.violation;
      record.count('unsafe.passes', violation === undefined);
      record.count('unsafe.found', violation !== undefined);
      record.add('unsafe.schedules', found.schedules);
      if (violation !== undefined) {
        record.latency('unsafe.schedules_to_find', found.schedules);
        const again = await unsafe.replay(violation.seed);
        const exact =
          again.violation === violation.violation &&
          again.result === violation.result &&
          again.interleaving.join(' ') === violation.interleaving.join(' ');
        record.count('replay.exact', exact);
      }
      for (const [version, explorer] of [
        ['lock', lock],
        ['cas', cas],
      ] as const) {
        const result = await explorer.explore();
        record.count(`${version}.passes`, result.violation === undefined);
        record.add(`${version}.schedules`, result.schedules);
        record.max(`${version}.interleavings`, result.interleavings);
      }
      progress(task + 1);
    }
  },
  comparisons: [
    { metric: 'invariant held (lock)', before: 'unsafe.passes', after: 'lock.passes' },
    { metric: 'invariant held (compare-and-set)', before: 'unsafe.passes', after: 'cas.passes' },
  ],
  expect: [
    { metric: 'unsafe.found', atLeast: 1, description: 'the lost update is found in every exploration' },
    { metric: 'replay.exact', atLeast: 1, description: 'every violation replays exactly from its seed' },
    { metric: 'lock.passes', atLeast: 1, description: 'the locked version is never flagged' },
    { metric: 'cas.passes', atLeast: 1, description: 'the compare-and-set version is never flagged' },
  ],
});
