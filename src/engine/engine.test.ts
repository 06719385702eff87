import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { record } from '../../test/support.js';
import { isBulwarkError } from '../core/errors.js';
import { type VirtualRuntime, virtualRuntime } from '../core/runtime.js';
import { Engine, type EngineOptions } from './engine.js';
import { type Journal, type JournalEvent, MemoryJournal } from './journal.js';
import { definePlan, type PlanDefinition } from './plan.js';
import type { ToolContext, ToolDefinition } from './tools.js';

/** `${path}` as a plan writes it. */
const ref = (path: string): string => `\${${path}}`;

/** A log of what the tools did, in order, and tools that write to it. */
function world(rt: VirtualRuntime) {
  const log: string[] = [];
  const failures = new Map<string, number>();
  const tools: ToolDefinition<never>[] = [
    {
      name: 'do',
      params: z
        .object({ name: z.string(), ms: z.number().default(10), value: z.unknown().optional() })
        .strict(),
      async run(params: { name: string; ms: number; value?: unknown }, ctx: ToolContext) {
        log.push(`start ${params.name}`);
        await rt.clock.sleep(params.ms, ctx.signal);
        const left = failures.get(params.name) ?? 0;
        if (left > 0) {
          failures.set(params.name, left - 1);
          log.push(`fail ${params.name}`);
          throw Object.assign(new Error(`${params.name} broke`), { code: 'EBROKE' });
        }
        log.push(`done ${params.name}`);
        return { name: params.name, value: params.value ?? null, at: rt.clock.now() };
      },
      compensate(params: { name: string }) {
        const left = failures.get(`undo:${params.name}`) ?? 0;
        if (left > 0) {
          failures.set(`undo:${params.name}`, left - 1);
          log.push(`undo-fail ${params.name}`);
          throw new Error(`cannot undo ${params.name}`);
        }
        log.push(`undo ${params.name}`);
      },
      describe: (params: { name: string }) => `do ${params.name}`,
      estimate: (params: { ms: number }) => params.ms,
    } as unknown as ToolDefinition<never>,
  ];
  return { log, failures, tools };
}

function setup(extra: Partial<EngineOptions> = {}) {
  const rt = virtualRuntime(7);
  const w = world(rt);
  const journal = new MemoryJournal();
  const engine = new Engine({ runtime: rt, journal, tools: w.tools, log: () => {}, ...extra });
  return { rt, engine, journal, ...w };
}

const step = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  tool: 'do',
  params: { name: id },
  ...extra,
});

describe('Engine.run', () => {
  it('runs the steps in dependency order and resolves references to earlier outputs', async () => {
    const { rt, engine, log } = setup();
    const plan = definePlan({
      name: 'refs',
      steps: [
        { id: 'b', tool: 'do', params: { name: 'b', value: ref('steps.a.output.value') } },
        { id: 'a', tool: 'do', params: { name: 'a', value: { id: 42 } } },
        { id: 'c', tool: 'do', params: { name: `c-${ref('steps.b.output.value.id')}` }, dependsOn: ['a'] },
      ],
    });
    const result = await rt.clock.run(() => engine.run(plan));
    expect(result.status).toBe('succeeded');
    expect(log).toEqual(['start a', 'done a', 'start b', 'done b', 'start c-42', 'done c-42']);
    expect(result.outputs.b).toEqual({ name: 'b', value: { id: 42 }, at: 20 });
    expect(result.record.steps.map((s) => [s.id, s.status, s.attempts])).toEqual([
      ['b', 'succeeded', 1],
      ['a', 'succeeded', 1],
      ['c', 'succeeded', 1],
    ]);
    expect(result.record.completionOrder).toEqual(['a', 'b', 'c']);
  });

  it('runs independent steps concurrently, at most `concurrency` at once', async () => {
    const { rt, engine, log } = setup();
    const plan = definePlan({
      name: 'wide',
      concurrency: 2,
      steps: ['a', 'b', 'c', 'd'].map((id) => step(id)),
    });
    let active = 0;
    let peak = 0;
    for (const entry of ['a', 'b', 'c', 'd']) expect(entry).toBeTruthy();
    const result = await rt.clock.run(async () => {
      const unsubscribe = rt.events.subscribe(
        (e) => {
          if (e.type === 'step.started') peak = Math.max(peak, ++active);
          else active--;
        },
        ['step.started', 'step.succeeded', 'step.failed'],
      );
      const r = await engine.run(plan);
      unsubscribe();
      return r;
    });
    expect(result.status).toBe('succeeded');
    expect(peak).toBe(2);
    expect(rt.clock.now()).toBe(20);
    expect(log.slice(0, 2)).toEqual(['start a', 'start b']);
  });

  it('retries a step under its retry policy and journals each failed attempt', async () => {
    const { rt, engine, failures } = setup();
    failures.set('flaky', 2);
    const events = record(rt);
    const plan = definePlan({
      name: 'retrying',
      steps: [step('flaky', { retry: { maxAttempts: 3, backoff: { constant: 100 } } })],
    });
    const result = await rt.clock.run(() => engine.run(plan));
    expect(result.status).toBe('succeeded');
    expect(result.record.steps[0]?.attempts).toBe(3);
    const stepEvents = events.filter((e) => e.type.startsWith('step.'));
    expect(stepEvents.map((e) => `${e.type}${'final' in e ? `:${e.final}` : ''}`)).toEqual([
      'step.started',
      'step.failed:false',
      'step.started',
      'step.failed:false',
      'step.started',
      'step.succeeded',
    ]);
    expect(rt.clock.now()).toBe(10 + 100 + 10 + 100 + 10);
  });

  it('ends a step that hangs with its timeout policy', async () => {
    const { rt, engine } = setup();
    const plan = definePlan({
      name: 'slow',
      steps: [step('slow', { params: { name: 'slow', ms: 60_000 }, timeout: '1s' })],
    });
    const result = await rt.clock.run(() => engine.run(plan));
    expect(result.status).toBe('failed');
    expect(isBulwarkError(result.error, 'TIMEOUT')).toBe(true);
    expect(rt.clock.now()).toBe(1000);
  });

  it('rolls back the completed steps in reverse completion order when a step finally fails', async () => {
    const { rt, engine, failures, log } = setup();
    failures.set('c', 5);
    failures.set('undo:a', 1); // fails once, succeeds on its retry
    failures.set('undo:b', 9); // never succeeds: recorded, and the rollback goes on
    const events = record(rt);
    const plan = definePlan({
      name: 'rollback',
      steps: [
        step('a'),
        step('b', { dependsOn: ['a'] }),
        step('c', { dependsOn: ['b'], retry: { maxAttempts: 2 } }),
        step('d', { dependsOn: ['c'] }),
      ],
    });
    const result = await rt.clock.run(() => engine.run(plan));
    expect(result.status).toBe('failed');
    expect((result.error as Error).message).toBe('c broke');
    expect(result.rollback?.compensated).toEqual(['a']);
    expect(result.rollback?.failed.map((f) => f.step)).toEqual(['b']);
    expect(log.filter((l) => l.startsWith('undo'))).toEqual([
      'undo-fail b',
      'undo-fail b',
      'undo-fail b',
      'undo-fail a',
      'undo a',
    ]);
    const steps = Object.fromEntries(result.record.steps.map((s) => [s.id, s]));
    expect(steps.a?.compensation).toMatchObject({ status: 'compensated', attempts: 2 });
    expect(steps.b?.compensation).toMatchObject({ status: 'failed', attempts: 3 });
    expect(steps.c?.status).toBe('failed');
    expect(steps.d?.status).toBe('skipped');
    expect(result.record.rollback).toEqual({ reason: 'step "c" failed', compensated: 1, failed: 1 });
    const finished = events.find((e) => e.type === 'run.finished');
    expect(finished).toMatchObject({
      status: 'failed',
      rolledBack: 2,
      compensationFailures: 1,
      source: 'rollback',
    });
    expect(
      events
        .filter((e) => e.type === 'step.compensated')
        .map((e) => [('step' in e && e.step) as string, 'ok' in e && e.ok]),
    ).toEqual([
      ['b', false],
      ['a', true],
    ]);
  });

  it("uses the plan's compensate call, which may reference the step's own output", async () => {
    const { rt, engine, failures, log } = setup();
    failures.set('boom', 1);
    const plan = definePlan({
      name: 'plan-compensate',
      steps: [
        step('a', {
          params: { name: 'a', value: 'x1' },
          compensate: { tool: 'do', params: { name: `revert-${ref('steps.a.output.value')}`, ms: 0 } },
        }),
        step('boom', { dependsOn: ['a'] }),
      ],
    });
    const result = await rt.clock.run(() => engine.run(plan));
    expect(result.status).toBe('failed');
    expect(result.rollback?.compensated).toEqual(['a']);
    expect(log).toContain('done revert-x1');
  });

  it('is cancelled by its signal: running steps abort, completed ones roll back', async () => {
    const { rt, engine, log } = setup();
    const plan = definePlan({
      name: 'cancel',
      steps: [
        step('a'),
        step('b', { dependsOn: ['a'], params: { name: 'b', ms: 10_000 } }),
        step('c', { dependsOn: ['b'] }),
      ],
    });
    const controller = new AbortController();
    rt.clock.setTimer(500, () => controller.abort(new Error('operator said stop')), undefined);
    const result = await rt.clock.run(() => engine.run(plan, { signal: controller.signal }));
    expect(result.status).toBe('cancelled');
    expect(isBulwarkError(result.error, 'CANCELLED')).toBe(true);
    expect(rt.clock.now()).toBe(500);
    expect(result.rollback?.compensated).toEqual(['a']);
    expect(result.record.steps.map((s) => s.status)).toEqual(['succeeded', 'cancelled', 'skipped']);
    expect(log).toEqual(['start a', 'done a', 'start b', 'undo a']);
  });

  it('reports an unknown tool as a step failure with a did-you-mean, and goes on past continueOnError steps', async () => {
    const { rt, engine } = setup();
    engine.registerTool({ name: 'app.click', params: z.object({}), run: () => null });
    const events = record(rt);
    const plan = definePlan({
      name: 'typo',
      steps: [
        { id: 'x', tool: 'app.clik', continueOnError: true },
        step('a'),
        { id: 'y', tool: 'nothing.like.it', dependsOn: ['a'] },
      ],
    });
    const result = await rt.clock.run(() => engine.run(plan));
    expect(result.status).toBe('failed');
    expect((result.error as Error).message).toBe('unknown tool "nothing.like.it"');
    const x = result.record.steps[0];
    expect(x?.status).toBe('failed');
    expect(x?.error).toEqual({
      name: 'UnknownToolError',
      code: 'UNKNOWN_TOOL',
      message: 'unknown tool "app.clik" — did you mean "app.click"?',
    });
    expect(result.record.steps[1]?.status).toBe('succeeded');
    expect(events.filter((e) => e.type === 'step.failed').every((e) => 'final' in e && e.final)).toBe(true);
  });

  it('fails a step whose params do not match its tool, or whose reference has no value, without retrying', async () => {
    const { rt, engine, failures } = setup();
    failures.set('a', 1);
    const plan = definePlan({
      name: 'bad-params',
      steps: [
        { id: 'p', tool: 'do', params: { name: 3 }, continueOnError: true, retry: { maxAttempts: 5 } },
        step('a', { continueOnError: true }),
        { id: 'r', tool: 'do', params: { name: ref('steps.a.output.name') }, retry: { maxAttempts: 5 } },
      ],
    });
    const result = await rt.clock.run(() => engine.run(plan));
    const [p, , r] = result.record.steps;
    expect(p?.error?.code).toBe('INVALID_PARAMS');
    expect(p?.error?.message).toBe('do: params.name: Expected string, received number');
    expect(p?.attempts).toBe(1);
    expect(r?.error).toMatchObject({ code: 'UNRESOLVED_REFERENCE' });
    expect(r?.error?.message).toContain('step "a" has no output');
  });

  it('emits the engine events with the plan name as source', async () => {
    const { rt, engine } = setup();
    const events = record(rt);
    const result = await rt.clock.run(() => engine.run(definePlan({ name: 'ev', steps: [step('a')] })));
    expect(events.map((e) => e.type)).toEqual([
      'run.started',
      'step.started',
      'step.succeeded',
      'run.finished',
    ]);
    expect(events[0]).toEqual({
      type: 'run.started',
      source: 'ev',
      at: 0,
      runId: result.runId,
      steps: 1,
      dryRun: false,
    });
    expect(events[2]).toEqual({
      type: 'step.succeeded',
      source: 'ev',
      at: 10,
      runId: result.runId,
      step: 'a',
      tool: 'do',
      durationMs: 10,
      simulated: false,
    });
    expect(events[3]).toMatchObject({
      status: 'succeeded',
      durationMs: 10,
      rolledBack: 0,
      compensationFailures: 0,
    });
  });

  it('keeps a circuit breaker per plan step across runs', async () => {
    const { rt, engine, failures } = setup();
    failures.set('dep', 100);
    const plan = definePlan({
      name: 'breaker',
      steps: [step('dep', { circuitBreaker: { consecutiveFailures: 2, halfOpenAfter: '1m' } })],
    });
    const codes: (string | undefined)[] = [];
    await rt.clock.run(async () => {
      for (let i = 0; i < 3; i++) codes.push((await engine.run(plan)).record.steps[0]?.error?.code);
    });
    expect(codes).toEqual(['EBROKE', 'EBROKE', 'CIRCUIT_OPEN']);
  });

  it('rejects bad options at construction', () => {
    expect(() => new Engine({ root: '' })).toThrow('Engine: option "root" must be a directory path, got ""');
    expect(() => new Engine({ queues: { jobs: {} as never } })).toThrow(
      'option "queues.jobs" must be a queue',
    );
    expect(() => new Engine({ nope: 1 } as never)).toThrow('Engine: unknown option "nope"');
    expect(() => new Engine({ compensationRetry: { maxAttempts: 0 } })).toThrow(/maxAttempts/);
  });
});

describe('Engine.run({ dryRun })', () => {
  it('simulates every step: status, description, estimate, unresolved references; runs nothing', async () => {
    const { rt, engine, log } = setup();
    const plan = definePlan({
      name: 'dry',
      steps: [
        step('a', { params: { name: 'a', ms: 250 } }),
        { id: 'b', tool: 'do', params: { name: ref('steps.a.output.name'), ms: 100 } },
        { id: 'c', tool: 'dp', params: {} },
        { id: 'd', tool: 'do', params: { name: 1 } },
      ],
    });
    const events = record(rt);
    const result = await rt.clock.run(() => engine.run(plan, { dryRun: true }));
    expect(log).toEqual([]);
    expect(rt.clock.now()).toBe(0);
    expect(result.status).toBe('failed');
    expect(result.record.dryRun).toBe(true);
    expect(
      result.record.steps.map((s) => [s.id, s.status, s.simulated, s.description, s.estimatedMs]),
    ).toEqual([
      ['a', 'simulated', true, 'do a', 250],
      ['b', 'simulated', true, `do ${ref('steps.a.output.name')}`, 100],
      ['c', 'failed', true, 'dp {}', 0],
      ['d', 'failed', true, 'do {"name":1}', 0],
    ]);
    expect(result.record.steps[1]?.unresolved).toEqual(['steps.a.output.name']);
    expect(result.record.steps[2]?.error?.message).toBe('unknown tool "dp" — did you mean "do"?');
    expect(result.record.estimatedMs).toBe(350);
    expect(
      events.filter((e) => e.type === 'step.succeeded').every((e) => 'simulated' in e && e.simulated),
    ).toBe(true);
    expect(events.filter((e) => e.type.startsWith('step.')).length).toBe(8);
  });
});

describe('dry run of compensations', () => {
  it('fails a step whose compensate names an unknown tool', async () => {
    const { rt, engine } = setup();
    const plan = definePlan({ name: 'bad-undo', steps: [step('a', { compensate: { tool: 'doo' } })] });
    const result = await rt.clock.run(() => engine.run(plan, { dryRun: true }));
    expect(result.record.steps[0]?.error?.message).toBe(
      'compensate: unknown tool "doo" — did you mean "do"?',
    );
  });
});

describe('Engine.repeat', () => {
  it('finds three dry runs identical', async () => {
    const { rt, engine } = setup();
    const plan = definePlan({ name: 'same', steps: [step('a'), { id: 'x', tool: 'app.nope' }] });
    const report = await rt.clock.run(() => engine.repeat(plan, { times: 3, dryRun: true }));
    expect(report.identical).toBe(true);
    expect(report.runs.map((r) => r.runId)).toEqual(
      [1, 2, 3].map((i) => `${report.runs[0]?.runId.slice(0, -2)}-${i}`),
    );
  });

  it('finds seeded real runs identical, and reports the first divergence of a tool that is not', async () => {
    const { rt, engine } = setup();
    let calls = 0;
    engine.registerTool({
      name: 'dice',
      params: z.object({}),
      run: (_p, ctx) => ({ roll: ctx.runtime.random.int(1, 6) }),
    });
    engine.registerTool({ name: 'counter', params: z.object({}), run: () => ({ n: ++calls }) });
    const seeded = await rt.clock.run(() =>
      engine.repeat(definePlan({ name: 'dice', steps: [{ id: 'roll', tool: 'dice' }] }), {
        times: 3,
        seed: 'x',
      }),
    );
    expect(seeded.identical).toBe(true);
    const plan = definePlan({
      name: 'count',
      steps: [
        { id: 'roll', tool: 'dice' },
        { id: 'count', tool: 'counter' },
      ],
    });
    const report = await rt.clock.run(() => engine.repeat(plan, { times: 3 }));
    expect(report.identical).toBe(false);
    expect(report.divergence).toMatchObject({ run: 2, step: 'count', field: 'outputHash' });
  });
});

/** A journal that stores up to a point, then fails every append: the process "died" there. */
class CrashingJournal implements Journal {
  dead = false;
  constructor(
    readonly inner: Journal,
    private readonly crashAfter: (event: JournalEvent) => boolean,
  ) {}
  append(runId: string, event: JournalEvent): void {
    if (this.dead) throw new Error('process died');
    this.inner.append(runId, event);
    if (this.crashAfter(event)) this.dead = true;
  }
  events(runId: string) {
    return this.inner.events(runId);
  }
  runs(limit?: number) {
    return this.inner.runs(limit);
  }
  close() {}
}

async function crashAt(
  stepId: string,
  plan: PlanDefinition,
  tools?: (list: ToolDefinition<never>[]) => ToolDefinition<never>[],
) {
  const rt = virtualRuntime(3);
  const w = world(rt);
  const inner = new MemoryJournal();
  const journal = new CrashingJournal(inner, (e) => e.kind === 'step.started' && e.step === stepId);
  const engine = new Engine({ runtime: rt, journal, tools: tools?.(w.tools) ?? w.tools, log: () => {} });
  const crashed = await rt.clock.run(() =>
    engine.run(plan).then(
      () => undefined,
      (error: unknown) => error,
    ),
  );
  expect((crashed as Error).message).toBe('process died');
  const runId = inner.runs()[0]?.runId as string;
  return { runId, journal: inner, before: w.log };
}

describe('Engine.resume', () => {
  const plan: PlanDefinition = {
    name: 'resumable',
    steps: [step('a'), step('b', { dependsOn: ['a'] }), step('c', { dependsOn: ['b'] })],
  };

  it('skips completed steps, reuses their outputs, and re-runs an interrupted idempotent step', async () => {
    const idempotent = (list: ToolDefinition<never>[]) =>
      list.map((t) => ({ ...t, idempotent: true }) as ToolDefinition<never>);
    const refPlan: PlanDefinition = {
      name: 'resumable',
      steps: [
        step('a', { params: { name: 'a', value: 'from-a' } }),
        { id: 'b', tool: 'do', params: { name: 'b', value: ref('steps.a.output.value') } },
      ],
    };
    const { runId, journal, before } = await crashAt('b', refPlan, idempotent);
    expect(before).toEqual(['start a', 'done a', 'start b', 'done b']); // b did its work; its end never reached the journal
    const rt = virtualRuntime(4);
    const w = world(rt);
    const engine = new Engine({ runtime: rt, journal, tools: idempotent(w.tools), log: () => {} });
    expect(engine.show(runId).steps.map((s) => s.status)).toEqual(['succeeded', 'running']);
    const events = record(rt);
    const result = await rt.clock.run(() => engine.resume(runId));
    expect(result.status).toBe('succeeded');
    expect(result.outputs.b).toMatchObject({ value: 'from-a' });
    expect(w.log).toEqual(['start b', 'done b']);
    expect(result.record.resumed).toBe(1);
    expect(events[0]).toMatchObject({ type: 'run.started', resumed: true });
    await expect(engine.resume(runId)).rejects.toThrow(
      `cannot resume run ${runId}: it already ended (succeeded)`,
    );
  });

  it('compensates an interrupted non-idempotent step before running it again', async () => {
    const { runId, journal } = await crashAt('b', plan);
    const rt = virtualRuntime(4);
    const w = world(rt);
    const engine = new Engine({ runtime: rt, journal, tools: w.tools, log: () => {} });
    const result = await rt.clock.run(() => engine.resume(runId));
    expect(result.status).toBe('succeeded');
    expect(w.log).toEqual(['undo b', 'start b', 'done b', 'start c', 'done c']);
  });

  it('refuses to re-run an interrupted step it cannot undo, unless forced', async () => {
    const bare = (list: ToolDefinition<never>[]) =>
      list.map((t) => ({ ...t, compensate: undefined }) as unknown as ToolDefinition<never>);
    const { runId, journal } = await crashAt('b', plan, bare);
    const rt = virtualRuntime(4);
    const engine = new Engine({ runtime: rt, journal, tools: bare(world(rt).tools), log: () => {} });
    const before = journal.events(runId)?.length;
    await expect(rt.clock.run(() => engine.resume(runId))).rejects.toThrow(
      /step "b" \(do\) was interrupted, its tool is not idempotent and it has no compensation/,
    );
    expect(journal.events(runId)?.length).toBe(before);
    const forced = await rt.clock.run(() => engine.resume(runId, { force: true }));
    expect(forced.status).toBe('succeeded');
  });

  it('finishes a rollback the crash interrupted', async () => {
    const rt0 = virtualRuntime(3);
    const w0 = world(rt0);
    w0.failures.set('c', 1);
    const inner = new MemoryJournal();
    const journal = new CrashingJournal(inner, (e) => e.kind === 'step.compensated' && e.step === 'b');
    const engine0 = new Engine({ runtime: rt0, journal, tools: w0.tools, log: () => {} });
    await rt0.clock.run(() => engine0.run(plan).catch(() => undefined));
    const runId = inner.runs()[0]?.runId as string;
    const rt = virtualRuntime(4);
    const w = world(rt);
    const engine = new Engine({ runtime: rt, journal: inner, tools: w.tools, log: () => {} });
    const result = await rt.clock.run(() => engine.resume(runId));
    expect(result.status).toBe('failed');
    expect(w.log).toEqual(['undo a']);
    expect(result.record.steps.map((s) => s.compensation?.status)).toEqual([
      'compensated',
      'compensated',
      undefined,
    ]);
  });

  it('gives the compensation of an interrupted step the undo data it journaled before the crash', async () => {
    const undone: unknown[] = [];
    const charging = (list: ToolDefinition<never>[]) => [
      ...list,
      {
        name: 'charge',
        params: z.object({}),
        run(_p: unknown, ctx: ToolContext) {
          ctx.setUndo({ chargeId: 'ch_1' });
          return { ok: true };
        },
        compensate(_p: unknown, _output: unknown, ctx: { undo: unknown }) {
          undone.push(ctx.undo);
        },
      } as unknown as ToolDefinition<never>,
    ];
    const chargePlan: PlanDefinition = { name: 'charging', steps: [{ id: 'pay', tool: 'charge' }] };
    const rt0 = virtualRuntime(3);
    const inner = new MemoryJournal();
    const journal = new CrashingJournal(inner, (e) => e.kind === 'step.undo');
    const engine0 = new Engine({ runtime: rt0, journal, tools: charging([]), log: () => {} });
    await rt0.clock.run(() => engine0.run(chargePlan).catch(() => undefined));
    const runId = inner.runs()[0]?.runId as string;
    const rt = virtualRuntime(4);
    const engine = new Engine({ runtime: rt, journal: inner, tools: charging([]), log: () => {} });
    const result = await rt.clock.run(() => engine.resume(runId));
    expect(result.status).toBe('succeeded');
    expect(undone).toEqual([{ chargeId: 'ch_1' }]);
  });

  it('rolls back a run that had failed when the process died, before its rollback began', async () => {
    const rt0 = virtualRuntime(3);
    const w0 = world(rt0);
    w0.failures.set('c', 1);
    const inner = new MemoryJournal();
    const journal = new CrashingJournal(inner, (e) => e.kind === 'step.failed' && e.final);
    await rt0.clock.run(() =>
      new Engine({ runtime: rt0, journal, tools: w0.tools, log: () => {} }).run(plan).catch(() => undefined),
    );
    const runId = inner.runs()[0]?.runId as string;
    const rt = virtualRuntime(4);
    const w = world(rt);
    const result = await rt.clock.run(() =>
      new Engine({ runtime: rt, journal: inner, tools: w.tools, log: () => {} }).resume(runId),
    );
    expect(result.status).toBe('failed');
    expect((result.error as Error).message).toBe('c broke');
    expect(w.log).toEqual(['undo b', 'undo a']);
    expect(result.record.rollback).toEqual({ reason: 'step "c" failed', compensated: 2, failed: 0 });
  });

  it('says which run does not exist', async () => {
    const { engine } = setup();
    await expect(engine.resume('nope')).rejects.toMatchObject({ code: 'RUN_NOT_FOUND' });
  });
});
