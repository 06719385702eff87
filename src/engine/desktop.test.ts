import { describe, expect, it } from 'vitest';
import { faults } from '../chaos/faults.js';
import { schedule } from '../chaos/schedule.js';
import { virtualRuntime } from '../core/runtime.js';
import { desktopTools, SimulatedDesktop } from './desktop.js';
import { Engine } from './engine.js';
import { MemoryJournal } from './journal.js';
import { definePlan } from './plan.js';

describe('simulated desktop tools', () => {
  it('open, click and close; unknown apps and buttons are parameter errors with a did-you-mean', async () => {
    const rt = virtualRuntime(1);
    const desktop = new SimulatedDesktop();
    const engine = new Engine({
      runtime: rt,
      journal: new MemoryJournal(),
      tools: desktopTools(desktop),
      builtins: false,
    });
    const result = await rt.clock.run(() =>
      engine.run(
        definePlan({
          name: 'ui',
          concurrency: 1,
          steps: [
            { id: 'open', tool: 'app.open', params: { app: 'Notepad' } },
            {
              id: 'save',
              tool: 'app.click',
              params: { app: 'Notepad', button: 'Save' },
              dependsOn: ['open'],
            },
            { id: 'typo', tool: 'app.open', params: { app: 'Notpad' }, continueOnError: true },
            {
              id: 'nobutton',
              tool: 'app.click',
              params: { app: 'Notepad', button: 'Sav' },
              continueOnError: true,
            },
            {
              id: 'closed',
              tool: 'app.click',
              params: { app: 'Browser', button: 'Back' },
              continueOnError: true,
            },
          ],
        }),
      ),
    );
    expect(result.status).toBe('succeeded');
    expect(result.outputs.save).toEqual({ app: 'Notepad', button: 'Save', clicks: 1 });
    expect(result.record.steps.slice(2).map((s) => s.error?.message)).toEqual([
      'app.open: params.app: unknown app "Notpad" — did you mean "Notepad"?',
      'app.click: params.button: unknown button "Sav" in Notepad — did you mean "Save"?',
      'app "Browser" is not open',
    ]);
    expect(desktop.state()).toEqual({ Notepad: ['Save'] });
    expect(rt.clock.now()).toBe(3 * 50);
  });

  it('injects faults into the actions; retries absorb them and rollbacks undo opens and clicks', async () => {
    const rt = virtualRuntime(2);
    const desktop = new SimulatedDesktop();
    const engine = new Engine({
      runtime: rt,
      journal: new MemoryJournal(),
      builtins: false,
      tools: desktopTools(desktop, {
        faults: {
          'app.click': faults.error({
            kind: 'ECONNRESET',
            schedule: schedule.sequence(['ok', 'fail', 'fail']),
            runtime: rt,
          }),
        },
        actionMs: 10,
      }),
    });
    const plan = definePlan({
      name: 'ui',
      concurrency: 1,
      steps: [
        { id: 'open', tool: 'app.open', params: { app: 'Calculator' } },
        { id: 'one', tool: 'app.click', params: { app: 'Calculator', button: '1' }, dependsOn: ['open'] },
        {
          id: 'plus',
          tool: 'app.click',
          params: { app: 'Calculator', button: '+' },
          dependsOn: ['one'],
          retry: { maxAttempts: 2 },
        },
      ],
    });
    const result = await rt.clock.run(() => engine.run(plan));
    expect(result.status).toBe('failed');
    expect(result.record.steps[2]).toMatchObject({
      status: 'failed',
      attempts: 2,
      error: { code: 'ECONNRESET' },
    });
    expect(result.rollback?.compensated).toEqual(['one', 'open']);
    expect(desktop.clean).toBe(true);
  });
});
