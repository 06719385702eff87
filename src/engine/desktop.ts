/**
 * A simulated desktop and its UI tools (`app.open`, `app.click`, `app.close`): the "open an app, click a
 * button" actions of the original ExecutionEngine experiment, without a real UI. The desktop knows a few
 * apps and their buttons; an unknown app or button is a parameter error with a did-you-mean, caught by dry
 * runs too. Every change is undoable, so a rollback can be checked to leave the desktop as it found it.
 */
import { z } from 'zod';
import { inject } from '../chaos/faults.js';
import { closest } from '../policy/file-problems.js';
import type { Policy } from '../policy/policy.js';
import { UnknownTargetError } from './errors.js';
import type { ToolContext, ToolDefinition } from './tools.js';

/** The apps a desktop knows by default, with their buttons. */
export const DEFAULT_APPS: Readonly<Record<string, readonly string[]>> = {
  Calculator: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '+', '-', '×', '÷', '=', 'C'],
  Notepad: ['New', 'Open', 'Save', 'Undo', 'Close'],
  Browser: ['Back', 'Forward', 'Reload', 'Home'],
};

/** The state of a simulated desktop: open apps and the clicks applied to each. */
export class SimulatedDesktop {
  private readonly open = new Map<string, string[]>();

  constructor(readonly apps: Readonly<Record<string, readonly string[]>> = DEFAULT_APPS) {}

  /** Open apps and their applied clicks; `{}` when the desktop is as it started. */
  state(): Record<string, string[]> {
    return Object.fromEntries([...this.open].map(([app, clicks]) => [app, [...clicks]]));
  }

  /** True when no app is open. */
  get clean(): boolean {
    return this.open.size === 0;
  }

  openApp(app: string): number {
    if (!this.open.has(app)) this.open.set(app, []);
    return this.open.size;
  }

  closeApp(app: string): void {
    this.open.delete(app);
  }

  click(app: string, button: string): number {
    const clicks = this.open.get(app);
    if (clicks === undefined) throw new Error(`app "${app}" is not open`);
    clicks.push(button);
    return clicks.length;
  }

  /** Takes back the last click of `button` in `app` (if the app is still open). */
  unclick(app: string, button: string): void {
    const clicks = this.open.get(app);
    if (clicks === undefined) return;
    const index = clicks.lastIndexOf(button);
    if (index >= 0) clicks.splice(index, 1);
  }

  appName(): z.ZodType<string, z.ZodTypeDef, unknown> {
    return z.string().superRefine((app, ctx) => {
      if (Object.hasOwn(this.apps, app)) return;
      ctx.addIssue({
        code: 'custom',
        message: new UnknownTargetError('app', app, closest(app, Object.keys(this.apps))).message,
      });
    });
  }
}

/** Options of {@link desktopTools}. */
export interface DesktopToolOptions {
  /** Faults (or any policies) applied to every `run` of a tool, by tool name: how the lab injects failures. */
  faults?: Readonly<Record<string, Policy | readonly Policy[]>>;
  /** Simulated duration of one action, ms (on the runtime's clock). @defaultValue `50` */
  actionMs?: number;
}

/**
 * `app.open { app }`, `app.click { app, button }` and `app.close { app }` on `desktop`. Opening is
 * idempotent and undone by closing; a click is undone by taking it back.
 * @example
 * const desktop = new SimulatedDesktop();
 * const engine = new Engine({ tools: desktopTools(desktop) });
 */
export function desktopTools(
  desktop: SimulatedDesktop,
  options: DesktopToolOptions = {},
): ToolDefinition<never>[] {
  const actionMs = options.actionMs ?? 50;
  const act = <P, R>(name: string, fn: (params: P, ctx: ToolContext) => R) => {
    const faults = options.faults?.[name];
    return async (params: P, ctx: ToolContext): Promise<R> => {
      const action = async () => {
        await ctx.runtime.clock.sleep(actionMs, ctx.signal);
        return fn(params, ctx);
      };
      return faults === undefined ? action() : inject(action, faults)(ctx);
    };
  };
  const open: ToolDefinition<{ app: string }> = {
    name: 'app.open',
    params: z.object({ app: desktop.appName() }).strict(),
    run: act('app.open', ({ app }: { app: string }) => ({ app, windows: desktop.openApp(app) })),
    compensate: ({ app }) => desktop.closeApp(app),
    describe: ({ app }) => `open ${app}`,
    idempotent: true,
    estimate: () => actionMs,
  };
  const click: ToolDefinition<{ app: string; button: string }> = {
    name: 'app.click',
    params: z
      .object({ app: desktop.appName(), button: z.string() })
      .strict()
      .superRefine(({ app, button }, ctx) => {
        const buttons = desktop.apps[app];
        if (buttons === undefined || buttons.includes(button)) return;
        ctx.addIssue({
          code: 'custom',
          path: ['button'],
          message: new UnknownTargetError('button', button, closest(button, buttons), app).message,
        });
      }),
    run: act('app.click', ({ app, button }: { app: string; button: string }) => ({
      app,
      button,
      clicks: desktop.click(app, button),
    })),
    compensate: ({ app, button }) => desktop.unclick(app, button),
    describe: ({ app, button }) => `click "${button}" in ${app}`,
    estimate: () => actionMs,
  };
  const close: ToolDefinition<{ app: string }> = {
    name: 'app.close',
    params: z.object({ app: desktop.appName() }).strict(),
    run: act('app.close', ({ app }: { app: string }) => {
      desktop.closeApp(app);
      return { app };
    }),
    describe: ({ app }) => `close ${app}`,
    idempotent: true,
    estimate: () => actionMs,
  };
  return [open, click, close] as unknown as ToolDefinition<never>[];
}
