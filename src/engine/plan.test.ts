import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PlanError, UnresolvedReferenceError } from './errors.js';
import { buildPlan, definePlan, loadPlanFile, parsePlanFile, resolveReferences } from './plan.js';

const ref = (path: string): string => `\${${path}}`;

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof PlanError) return error.problems;
    throw error;
  }
  throw new Error('expected a PlanError');
}

describe('parsePlanFile', () => {
  it('parses a valid plan: defaults, durations in ms, implicit dependencies from references', () => {
    const plan = parsePlanFile(
      `name: deploy
steps:
  - id: fetch
    tool: http.request
    params: { url: "http://127.0.0.1/x" }
    retry: { maxAttempts: 3, backoff: { exponential: { initial: 50ms } } }
    timeout: 2s
  - id: save
    tool: fs.write
    params:
      path: "out/\${steps.fetch.output.body.id}.json"
      content: "\${steps.fetch.output.body}"
    compensate: { tool: fs.remove, params: { path: "\${steps.save.output.path}" } }
`,
      'deploy.yaml',
    );
    expect(plan.name).toBe('deploy');
    expect(plan.concurrency).toBe(4);
    const [fetch, save] = plan.steps;
    expect(fetch?.timeout).toEqual({ after: 2000 });
    expect(fetch?.retry).toEqual({ maxAttempts: 3, backoff: { exponential: { initial: 50 } } });
    expect(save?.needs).toEqual(['fetch']);
    expect(save?.continueOnError).toBe(false);
    // The definition round-trips: what the journal stores validates to the same plan.
    expect(definePlan(JSON.parse(JSON.stringify(plan.definition))).steps).toEqual(plan.steps);
  });

  it('reports every problem with file, line, column and path, before anything runs', () => {
    const text = `name: bad
concurency: 2
steps:
  - id: a
    tool: fs.write
    dependsOn: [b, ghost]
    retry: { maxAtempts: 3 }
  - id: b
    tool: log
    dependsOn: [a]
    params: { message: "\${steps.fetc.output}" }
  - id: a
    tool: ""
    params: { x: "\${nope}" }
    circuitBreaker: { consecutiveFailures: 0 }
`;
    expect(problems(() => parsePlanFile(text, 'bad.yaml'))).toEqual([
      'bad.yaml:2:1: concurency: unknown key (did you mean "concurrency"?)',
      'bad.yaml:6:16: steps[0].dependsOn: dependency cycle: a → b → a (through dependsOn and references)',
      'bad.yaml:6:20: steps[0].dependsOn[1]: unknown step "ghost"',
      'bad.yaml:7:14: steps[0].retry.maxAtempts: unknown key (did you mean "maxAttempts"?)',
      `bad.yaml:11:24: steps[1].params.message: \${steps.fetc.output}: unknown step "fetc"`,
      'bad.yaml:12:9: steps[2].id: duplicate step id "a" (first at steps[0])',
      'bad.yaml:13:11: steps[2].tool: must name a tool',
      `bad.yaml:14:18: steps[2].params.x: invalid reference \${nope}: expected \${steps.STEP.output}, \${steps.STEP.output.field[0].field} or \${env.NAME}`,
      'bad.yaml:15:44: steps[2].circuitBreaker.consecutiveFailures: must be an integer >= 1',
    ]);
  });

  it('reports YAML syntax errors and a file that is not a map', () => {
    expect(problems(() => parsePlanFile('name: [unclosed\n', 'x.yaml'))[0]).toMatch(/^x\.yaml:2:1: /);
    expect(problems(() => parsePlanFile('- 1\n', 'x.yaml'))).toEqual([
      'x.yaml:1:1: expected a map with name and steps; got a list',
    ]);
    expect(problems(() => parsePlanFile('name: x\nsteps: []\n', 'x.yaml'))).toEqual([
      'x.yaml:2:8: steps: a plan needs at least one step',
    ]);
  });

  it('rejects a step that uses its own output outside its compensate, and a self-dependency', () => {
    expect(
      problems(() =>
        definePlan({
          name: 'self',
          steps: [{ id: 'a', tool: 'log', params: { message: ref('steps.a.output') }, dependsOn: ['a'] }],
        }),
      ),
    ).toEqual([
      'plan: steps[0].dependsOn[0]: a step cannot depend on itself',
      `plan: steps[0].params.message: \${steps.a.output}: a step cannot use its own output (only its compensate may)`,
    ]);
  });
});

describe('loadPlanFile', () => {
  let dir = '';
  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('loads JSON and says when the file cannot be read', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulwark-plan-'));
    const file = join(dir, 'p.json');
    await writeFile(
      file,
      JSON.stringify({ name: 'j', steps: [{ id: 'a', tool: 'log', params: { message: 'hi' } }] }),
    );
    expect((await loadPlanFile(file)).steps[0]?.tool).toBe('log');
    const error = await loadPlanFile(join(dir, 'missing.yaml')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as PlanError).unreadable).toBe(true);
    expect((error as PlanError).problems).toEqual([`cannot read ${join(dir, 'missing.yaml')}: no such file`]);
  });
});

describe('buildPlan', () => {
  it('builds and validates a plan in code', () => {
    const plan = buildPlan('built', { concurrency: 2 })
      .step('a', 'log', { message: 'one' }, { retry: { maxAttempts: 2 } })
      .step('b', 'log', { message: ref('steps.a.output.message') })
      .build();
    expect(plan.steps.map((s) => [s.id, s.needs])).toEqual([
      ['a', []],
      ['b', ['a']],
    ]);
    expect(() =>
      buildPlan('x')
        .step('a', 'log', {}, { dependsOn: ['z'] })
        .build(),
    ).toThrow('plan: steps[0].dependsOn[0]: unknown step "z"');
  });
});

describe('resolveReferences', () => {
  const outputs = new Map<string, unknown>([['a', { id: 7, list: [{ name: 'x' }], text: 'hi' }]]);

  it('substitutes whole references by value and interpolates partial ones', () => {
    expect(
      resolveReferences(
        {
          whole: ref('steps.a.output'),
          id: ref('steps.a.output.id'),
          deep: ref('steps.a.output.list[0].name'),
          text: `id=${ref('steps.a.output.id')} ${ref('steps.a.output.text')} ${ref('steps.a.output.list')}`,
          list: [ref('steps.a.output.id')],
        },
        outputs,
      ).value,
    ).toEqual({
      whole: { id: 7, list: [{ name: 'x' }], text: 'hi' },
      id: 7,
      deep: 'x',
      text: 'id=7 hi [{"name":"x"}]',
      list: [7],
    });
  });

  it('throws for a missing field or step, or leaves them when partial', () => {
    expect(() => resolveReferences(ref('steps.a.output.nope'), outputs)).toThrow(
      new UnresolvedReferenceError('steps.a.output.nope', 'steps.a.output has no field "nope"'),
    );
    expect(() => resolveReferences(ref('steps.a.output.list[3]'), outputs)).toThrow(/has no element \[3\]/);
    expect(resolveReferences({ x: ref('steps.b.output.id') }, outputs, true)).toEqual({
      value: { x: ref('steps.b.output.id') },
      unresolved: ['steps.b.output.id'],
    });
  });
});
