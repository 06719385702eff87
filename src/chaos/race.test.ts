import { describe, expect, it } from 'vitest';
import { record } from '../../test/support.js';
import { virtualRuntime } from '../core/runtime.js';
import { type RaceContext, type RaceStrategy, raceExplorer } from './race.js';

/** Two withdrawals doing read-modify-write on one balance: the classic lost update. */
async function lostUpdate({ point }: RaceContext): Promise<number> {
  const account = { balance: 100 };
  const withdraw = async (who: string, amount: number) => {
    await point(`${who}:read`);
    const seen = account.balance;
    await point(`${who}:write`);
    account.balance = seen - amount;
  };
  await Promise.all([withdraw('A', 30), withdraw('B', 50)]);
  return account.balance;
}

/** The same withdrawals, each holding a lock over its read-modify-write. */
async function locked({ point }: RaceContext): Promise<number> {
  const account = { balance: 100 };
  let tail: Promise<void> = Promise.resolve();
  const withLock = async <R>(fn: () => Promise<R>): Promise<R> => {
    const previous = tail;
    let release!: () => void;
    tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  };
  const withdraw = async (who: string, amount: number) => {
    await point(`${who}:lock`);
    await withLock(async () => {
      await point(`${who}:read`);
      const seen = account.balance;
      await point(`${who}:write`);
      account.balance = seen - amount;
    });
  };
  await Promise.all([withdraw('A', 30), withdraw('B', 50)]);
  return account.balance;
}

const balanceIs20 = (balance: number) => balance === 20 || `balance is ${balance}, expected 20`;

describe('raceExplorer', () => {
  for (const strategy of ['delay', 'order'] as RaceStrategy[]) {
    it(`finds the lost update with the ${strategy} strategy and replays it exactly`, async () => {
      const explorer = raceExplorer({ scenario: lostUpdate, invariant: balanceIs20, seed: 1, strategy });
      const found = await explorer.explore();
      const violation = found.violation;
      expect(violation).toBeDefined();
      if (violation === undefined) return;
      expect(found.schedules).toBeLessThanOrEqual(100);
      expect(violation.seed).toBe(`1/schedule:${found.schedules - 1}`);
      expect(violation.violation).toMatch(/^balance is (70|50), expected 20$/);
      // Both reads come before both writes: that is what a lost update is.
      const reads = violation.interleaving
        .filter((l) => l.endsWith(':read'))
        .map((l) => violation.interleaving.indexOf(l));
      const writes = violation.interleaving
        .filter((l) => l.endsWith(':write'))
        .map((l) => violation.interleaving.indexOf(l));
      expect(Math.max(...reads)).toBeLessThan(Math.min(...writes));

      const again = await explorer.replay(violation.seed);
      expect(again).toEqual(violation);
      // A fresh explorer with the same settings replays it too: the seed is all it takes.
      const elsewhere = raceExplorer({ scenario: lostUpdate, invariant: balanceIs20, seed: 99, strategy });
      expect((await elsewhere.replay(violation.seed)).interleaving).toEqual(violation.interleaving);
    });

    it(`does not flag the locked version with the ${strategy} strategy`, async () => {
      const explorer = raceExplorer({ scenario: locked, invariant: balanceIs20, seed: 1, strategy });
      const result = await explorer.explore();
      expect(result.violation).toBeUndefined();
      expect(result.schedules).toBe(100);
      // Both orders of the two critical sections were explored.
      expect(result.interleavings).toBeGreaterThan(1);
      const firstWriter = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const run = await explorer.replay(explorer.scheduleSeed(i));
        firstWriter.add(run.interleaving.find((l) => l.endsWith(':write')) ?? '');
      }
      expect(firstWriter).toEqual(new Set(['A:write', 'B:write']));
    });
  }

  it('runOrder runs a chosen interleaving, and says where an infeasible one departs', async () => {
    const explorer = raceExplorer({ scenario: lostUpdate, invariant: balanceIs20, seed: 1 });
    const lost = await explorer.runOrder(['A:read', 'B:read', 'A:write', 'B:write']);
    expect(lost).toMatchObject({
      interleaving: ['A:read', 'B:read', 'A:write', 'B:write'],
      violation: 'balance is 50, expected 20',
      deviation: undefined,
      result: 50,
      index: -1,
    });
    const serial = await explorer.runOrder(['B:read', 'B:write', 'A:read', 'A:write']);
    expect(serial).toMatchObject({ violation: undefined, deviation: undefined, result: 20 });
    expect(serial.interleaving).toEqual(['B:read', 'B:write', 'A:read', 'A:write']);

    const infeasible = await explorer.runOrder(['A:write', 'A:read']);
    expect(infeasible.deviation).toBe(
      'the chosen order cannot be followed at step 1: no task waits at "A:write" (waiting: "A:read", "B:read")',
    );
    const short = await explorer.runOrder(['B:read']);
    expect(short.deviation).toBe(
      'the chosen order ended after 1 steps with tasks still waiting at "A:read", "B:write"',
    );
    const long = await explorer.runOrder(['A:read', 'A:write', 'B:read', 'B:write', 'C:read']);
    expect(long.deviation).toBe('the run ended after 4 of the 5 chosen steps (next: "C:read")');
    expect(() => explorer.runOrder([])).toThrow('runOrder: option "order" must be a non-empty array');

    // The interleaving of a violation found by exploring is itself a runnable order.
    const found = (await explorer.explore()).violation;
    const again = await explorer.runOrder(found?.interleaving ?? []);
    expect(again).toMatchObject({
      violation: found?.violation,
      interleaving: found?.interleaving,
      deviation: undefined,
    });
  });

  it('explores the same schedules for the same seed, and different ones for another', async () => {
    const traces = async (seed: number) => {
      const out: string[] = [];
      for (let i = 0; i < 10; i++) {
        const explorer = raceExplorer({ scenario: lostUpdate, invariant: () => true, seed, schedules: 1 });
        out.push((await explorer.replay(explorer.scheduleSeed(i))).interleaving.join(' '));
      }
      return out;
    };
    expect(await traces(5)).toEqual(await traces(5));
    expect(await traces(5)).not.toEqual(await traces(6));
  });

  it('takes its default seed from the runtime, and reports violations as events', async () => {
    const rt = virtualRuntime(3);
    const events = record(rt);
    const explorer = raceExplorer({
      scenario: lostUpdate,
      invariant: balanceIs20,
      runtime: rt,
      name: 'bank',
    });
    expect(explorer.seed).toBe('3/race:bank');
    const { violation, schedules, interleavings } = await explorer.explore();
    expect(violation).toBeDefined();
    expect(events).toEqual([
      {
        type: 'race.violation',
        source: 'bank',
        at: 0,
        seed: violation?.seed,
        schedule: schedules - 1,
        message: violation?.violation,
        interleaving: violation?.interleaving,
      },
      { type: 'race.explored', source: 'bank', at: 0, schedules, violations: 1, interleavings },
    ]);
    expect(String(explorer)).toBe('bank(100 schedules, delay 0–10ms, seed 3/race:bank)');
  });

  it('reports a scenario that throws, a deadlock and an invariant that throws as violations', async () => {
    const threw = await raceExplorer({
      scenario: async ({ point }) => {
        await point('x');
        throw new RangeError('boom');
      },
      invariant: () => true,
      seed: 1,
    }).explore();
    expect(threw.violation?.violation).toBe('the scenario threw RangeError: boom');
    expect(threw.violation?.interleaving).toEqual(['x']);

    const stuck = await raceExplorer({
      scenario: async ({ point }) => {
        await point('before');
        await new Promise<void>(() => {});
      },
      invariant: () => true,
      seed: 1,
    }).explore();
    expect(stuck.violation?.violation).toBe('deadlock: every task is waiting and nothing can wake one');

    const invariantThrew = await raceExplorer({
      scenario: async () => 1,
      invariant: () => {
        throw new Error('bad state');
      },
      seed: 1,
    }).explore();
    expect(invariantThrew.violation?.violation).toBe('invariant failed: Error: bad state');

    const spinning = await raceExplorer({
      scenario: async ({ point }) => {
        for (;;) await point('spin');
      },
      invariant: () => true,
      seed: 1,
      maxSteps: 50,
    }).explore();
    expect(spinning.violation?.violation).toBe('the schedule did not finish within 50 timers (livelock?)');
  });

  it('lets the scenario use its own virtual clock between points, and step() wraps an operation', async () => {
    const run = await raceExplorer({
      scenario: async ({ runtime, step }) => {
        await runtime.clock.sleep(1000);
        return step('op', () => runtime.clock.now());
      },
      invariant: (t) => t >= 1000,
      seed: 1,
      maxDelay: '5ms',
    }).replay('1/schedule:0');
    expect(run.violation).toBeUndefined();
    expect(run.interleaving).toEqual(['op']);
    expect(run.index).toBe(0);
    expect(run.virtualMs).toBeGreaterThanOrEqual(1000);
    expect(run.virtualMs).toBeLessThanOrEqual(1005);
  });

  it('rejects bad options at construction', () => {
    const ok = { scenario: lostUpdate, invariant: balanceIs20 };
    expect(() => raceExplorer({ ...ok, schedules: 0 })).toThrow(
      'raceExplorer: option "schedules" must be an integer from 1 to 10000000, got 0',
    );
    expect(() => raceExplorer({ ...ok, strategy: 'pct' as RaceStrategy })).toThrow('option "strategy"');
    expect(() => raceExplorer({ ...ok, maxDelay: 0 })).toThrow('option "maxDelay"');
    expect(() => raceExplorer({ ...ok, maxDelay: 1.5 })).toThrow('a whole number of ms');
    expect(() => raceExplorer({ ...ok, invariant: undefined as never })).toThrow('option "invariant"');
    expect(() => raceExplorer({ ...ok, budget: 5 } as never)).toThrow('unknown option "budget"');
    expect(() => raceExplorer(ok).replay('' as string)).toThrow('replay: option "seed"');
  });
});
