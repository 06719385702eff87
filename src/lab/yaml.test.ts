import { describe, expect, it } from 'vitest';
import { runScenario } from './runner.js';
import { network } from './scenarios/network.js';
import { binomialConsistency, twoProportionTest } from './stats.js';
import { loadScenarioFile, parseScenarioFile, ScenarioFileError } from './yaml.js';

const FIXTURES = 'test/fixtures';

async function problems(load: () => unknown): Promise<readonly string[]> {
  try {
    await load();
  } catch (error) {
    if (error instanceof ScenarioFileError) return error.problems;
    throw error;
  }
  throw new Error('expected a ScenarioFileError');
}

describe('loadScenarioFile: the valid fixture', () => {
  it('runs the network experiment from YAML, reproducibly, with the expected rates', async () => {
    const scenario = await loadScenarioFile(`${FIXTURES}/flaky-api.yaml`);
    expect(scenario.name).toBe('flaky-api');
    expect(scenario.defaults.tasks).toBe(10_000);
    const report = await runScenario(scenario, { seed: 1 });
    expect(report.metrics.before).toMatchObject({ count: 5589, total: 10_000 });
    expect(report.metrics.after).toMatchObject({ count: 9169, total: 10_000 });
    expect(report.values).toEqual({
      'failures.after.ECONNREFUSED': 574,
      'failures.after.TIMEOUT': 257,
      'failures.before.ECONNREFUSED': 3027,
      'failures.before.TIMEOUT': 1384,
    });
    expect(report.comparisons).toHaveLength(1);
    expect(report.checks.map((c) => c.passed)).toEqual([true, true, true]);
    expect(report.passed).toBe(true);
    // Same seed, same report.
    expect(await runScenario(scenario, { seed: 1 })).toEqual(report);
  });

  it('agrees with the built-in network scenario and its closed forms (0.56, 0.914816)', async () => {
    const scenario = await loadScenarioFile(`${FIXTURES}/flaky-api.yaml`);
    const file = await runScenario(scenario, { seed: 1 });
    const builtin = await runScenario(network, { seed: 1 });
    type Counts = { count: number; total: number };
    const after = file.metrics.after as Counts;
    const before = file.metrics.before as Counts;
    expect(binomialConsistency(after, 0.914816).consistent).toBe(true);
    expect(binomialConsistency(before, 0.56).consistent).toBe(true);
    const final = builtin.metrics.final as Counts;
    const first = builtin.metrics.first_attempt as Counts;
    const same = (a: Counts, b: Counts) => twoProportionTest(a, b).pValue;
    expect(same(after, final)).toBeGreaterThan(0.01);
    expect(same(before, first)).toBeGreaterThan(0.01);
  });

  it('reads JSON too, and runs every policy and fault kind', async () => {
    const scenario = parseScenarioFile(
      JSON.stringify({
        name: 'everything',
        tasks: 20,
        concurrency: 1,
        dependency: {
          faults: [
            { error: { code: 'ECONNRESET', firstN: 3 } },
            { latency: { delay: '10ms', everyNth: 2 } },
            { timeout: { sequence: ['ok', 'ok', 'ok', 'fail'] } },
          ],
          latency: { fixed: '5ms' },
        },
        before: [{ timeout: { after: '1s' } }],
        after: [
          { fallback: { value: 'cached' } },
          { bulkhead: { limit: 1, queue: 0 } },
          { circuitBreaker: { consecutiveFailures: 10, halfOpenAfter: '1s' } },
          { retry: { maxAttempts: 2, backoff: { constant: '50ms', jitter: 'none' } } },
          { timeout: { after: '1s', strategy: 'aggressive' } },
        ],
        expect: [
          { metric: 'after', atLeast: 1 },
          { value: 'failures.before.ECONNRESET', equals: 3 },
        ],
      }),
      'everything.json',
    );
    const report = await runScenario(scenario, { seed: 7 });
    // before: calls 1-3 refused, the 4th script step (call 4 of the timeout fault = task 7) hangs.
    expect(report.metrics.before).toMatchObject({ count: 16, total: 20 });
    expect(report.values).toEqual({ 'failures.before.ECONNRESET': 3, 'failures.before.TIMEOUT': 1 });
    expect(report.metrics.after).toMatchObject({ count: 20, total: 20 });
    expect(report.passed).toBe(true);
  });

  it('a lognormal latency moves virtual time but not the rates', async () => {
    const scenario = parseScenarioFile(
      [
        'name: slow',
        'tasks: 200',
        'dependency: { latency: { median: 20ms, p99: 200ms } }',
        'before: []',
        'after: [ { timeout: { after: 50ms } } ]',
      ].join('\n'),
      'slow.yaml',
    );
    const report = await runScenario(scenario, { seed: 3 });
    expect(report.metrics.before).toMatchObject({ count: 200, total: 200 });
    const after = report.metrics.after as { count: number };
    expect(after.count).toBeGreaterThan(150);
    expect(after.count).toBeLessThan(200);
    expect(report.virtualMs).toBeGreaterThan(0);
    expect(await runScenario(scenario, { seed: 3 })).toEqual(report);
  });
});

describe('loadScenarioFile: bad files', () => {
  it('reports each unknown key once, at the key, with a did-you-mean', async () => {
    expect(await problems(() => loadScenarioFile(`${FIXTURES}/bad-keys.yaml`))).toEqual([
      'test/fixtures/bad-keys.yaml:7:14: after[0].retry.maxAtempts: unknown key (did you mean "maxAttempts"?)',
      'test/fixtures/bad-keys.yaml:8:27: after[1].timeout.stratgy: unknown key (did you mean "strategy"?)',
      'test/fixtures/bad-keys.yaml:9:5: after[2].retyr: unknown key (did you mean "retry"?)',
      'test/fixtures/bad-keys.yaml:12:36: expect[0].extra: unknown key; known keys: metric, atLeast, atMost, consistentWith, description',
    ]);
  });

  it('reports wrong types and out-of-range values, one message each, in file order', async () => {
    const f = 'test/fixtures/bad-types.yaml';
    expect(await problems(() => loadScenarioFile(f))).toEqual([
      `${f}:2:8: tasks: expected a number, got string`,
      `${f}:3:14: concurrency: must be an integer >= 1`,
      `${f}:6:22: dependency.faults[0].error.code: expected one of "ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "ETIMEDOUT", "EPIPE", got "EBADCODE"`,
      `${f}:6:38: dependency.faults[0].error.rate: must be a probability in [0, 1]`,
      `${f}:7:25: dependency.faults[1].latency.delay: expected a duration such as 250ms, 5s or a number of ms, got the string "soon"`,
      `${f}:8:12: dependency.latency: expected fixed, or median and p99`,
      `${f}:10:23: before[0].timeout.after: expected a duration such as 250ms, 5s or a number of ms (> 0), got number 0`,
      `${f}:12:27: after[0].retry.maxAttempts: must be an integer >= 1`,
      `${f}:12:54: after[0].retry.backoff.exponential: only one of constant, linear, exponential may be given (also got linear)`,
      `${f}:12:64: after[0].retry.backoff.exponential.factor: must be a number >= 1`,
      `${f}:13:24: after[1].bulkhead.limit: expected an integer, got float`,
      `${f}:13:36: after[1].bulkhead.queue: must be an integer >= 0`,
      `${f}:14:61: after[2].circuitBreaker.failureRatio: give consecutiveFailures, or failureRatio (with window), not both`,
      `${f}:16:15: expect[0].metric: expected one of "before", "after", got "sideways"`,
      `${f}:16:34: expect[0].atLeast: must be a probability in [0, 1]`,
    ]);
  });

  it('reports what the constructors would reject and calls that would never end, before running', async () => {
    const f = 'test/fixtures/bad-semantics.yaml';
    expect(await problems(() => loadScenarioFile(f))).toEqual([
      `${f}:5:9: before: the dependency has a timeout fault (a call that hangs until cancelled) but this pipeline has no timeout policy to end it`,
      `${f}:8:12: after[1].retry: backoff.linear: option "max" must be a duration >= initial (1s), got 500`,
    ]);
  });

  it('reports YAML syntax errors with their line', async () => {
    const text = ['name: broken', 'dependency:', '  faults: [ { error: { rate: 0.3 } }', 'before: []'].join(
      '\n',
    );
    const found = await problems(() => parseScenarioFile(text, 'broken.yaml'));
    expect(found.length).toBeGreaterThan(0);
    for (const line of found) expect(line).toMatch(/^broken\.yaml:\d+:\d+: \S/);
    expect(found[0]).toMatch(/^broken\.yaml:4:1: /);
  });

  it('reports duplicate keys, missing sections and a document that is not a map', async () => {
    expect(await problems(() => parseScenarioFile('name: a\nname: b\n', 'dup.yaml'))).toEqual([
      'dup.yaml:2:1: Map keys must be unique',
    ]);
    expect(await problems(() => parseScenarioFile('name: x\n', 'short.yaml'))).toEqual([
      'short.yaml:1:1: dependency: required: expected a map',
      'short.yaml:1:1: before: required: expected a list',
      'short.yaml:1:1: after: required: expected a list',
    ]);
    expect(
      await problems(() =>
        parseScenarioFile(
          'name: x\ndependency: {}\nbefore: []\nafter: []\nexpect:\n  - { metric: after }\n  - 5\n  - { value: v, bogus: 1, equals: 2 }\n',
          'checks.yaml',
        ),
      ),
    ).toEqual([
      'checks.yaml:6:5: expect[0]: expected atLeast, atMost or consistentWith',
      'checks.yaml:7:5: expect[1]: expected a map { metric, atLeast | atMost | consistentWith } or { value, equals | atLeast | atMost }',
      'checks.yaml:8:17: expect[2].bogus: unknown key; known keys: value, equals, atLeast, atMost, description',
    ]);
    expect(await problems(() => parseScenarioFile('- 1\n', 'list.yaml'))).toEqual([
      'list.yaml:1:1: expected a map with name, dependency, before and after; got a list',
    ]);
    expect(
      await problems(() =>
        parseScenarioFile('name: x\ndependency: {}\nbefore: [ {} ]\nafter: [ 3 ]\n', 'entries.yaml'),
      ),
    ).toEqual([
      'entries.yaml:3:11: before[0]: expected one of retry, timeout, circuitBreaker, bulkhead, fallback',
      'entries.yaml:4:10: after[0]: expected a map, got number',
    ]);
  });

  it('says when a file cannot be read', async () => {
    const error = await loadScenarioFile(`${FIXTURES}/missing.yaml`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ScenarioFileError);
    expect((error as ScenarioFileError).unreadable).toBe(true);
    expect((error as ScenarioFileError).problems).toEqual([
      'cannot read test/fixtures/missing.yaml: no such file',
    ]);
    expect((error as ScenarioFileError).code).toBe('SCENARIO_FILE');
  });
});
