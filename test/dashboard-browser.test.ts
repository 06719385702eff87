/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core): fed by a seeded lab run,
 * the page lists the scenario's policies, a circuit opening in the event stream turns its circle red
 * within 2 s, and the charts draw; a firing alert and a failing health probe show, a silence is created and
 * expired from the page, and the lab's failures appear as failure patterns. Screenshots go to test-results/dashboard-browser/; with
 * BULWARK_DOCS_SCREENSHOT=1 the README's docs/dashboard.png is refreshed too.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium as playwright } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildDashboard } from '../scripts/build-dashboard.mjs';
import { createRuntime } from '../src/core/runtime.js';
import { runScenario } from '../src/lab/runner.js';
import type { Scenario } from '../src/lab/scenario.js';
import { network } from '../src/lab/scenarios/index.js';
import {
  AlertRuleEngine,
  createMonitor,
  type DashboardServer,
  type Monitor,
  Notifier,
} from '../src/monitor/index.js';
import { service } from './services.js';

const browser = await service('chromium');
const OUTPUT = join(import.meta.dirname, '..', 'test-results', 'dashboard-browser');
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

browser.describe('dashboard in a real browser', () => {
  let temp: string;
  let monitor: Monitor;
  let server: DashboardServer;
  // Alerting on its own system-clock runtime; the test evaluates the rules itself.
  const alertRuntime = createRuntime({ seed: 9 });
  const notifier = new Notifier({
    runtime: alertRuntime,
    receivers: [{ name: 'team', sendResolved: true, send: async () => undefined }],
    route: { receiver: 'team' },
  });
  const engine = new AlertRuleEngine({
    runtime: alertRuntime,
    rules: [{ kind: 'circuitOpen', name: 'CircuitOpen', labels: { severity: 'page' } }],
    evaluationInterval: '1h',
    onAlert: (alert) => notifier.receive(alert),
  });

  beforeAll(async () => {
    temp = mkdtempSync(join(tmpdir(), 'bulwark-browser-'));
    await buildDashboard(join(temp, 'assets'));
    monitor = createMonitor({
      history: ':memory:',
      alerts: { notifier, engine },
      patterns: { refreshMs: 500 },
    });
    server = await monitor.serve({
      port: 0,
      assetsDir: join(temp, 'assets'),
      title: 'lab: network (seed 7)',
    });
    mkdirSync(OUTPUT, { recursive: true });
  }, 60_000);
  afterAll(async () => {
    await monitor?.close();
    engine.close();
    await notifier.close();
    rmSync(temp, { recursive: true, force: true });
  });

  it('shows the lab run, turns an opening circuit red within 2 s, draws its charts, shows alerts, health and patterns, silences an alert', async () => {
    const feed = createRuntime({ seed: 7 });
    monitor.attach(feed);
    const context = await playwright.launchPersistentContext(join(temp, 'profile'), {
      executablePath: browser.url,
      headless: true,
      args: FLAGS,
      viewport: { width: 1400, height: 1100 },
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(server.url);
      await page.waitForSelector('#status[data-status="live"]', { timeout: 10_000 });

      // A seeded lab run streams into the open page, in a few rounds so the sparklines move.
      const clock = feed.clock;
      for (let round = 0; round < 4; round++) {
        await runScenario(network as unknown as Scenario, {
          seed: 7 + round,
          tasks: 1500,
          events: feed.events,
        });
        await clock.sleep(600);
      }
      for (const name of ['retry', 'timeout']) {
        await page.waitForSelector(`#policies tr[data-name="${name}"]`, { timeout: 5000 });
      }
      const shown = await page.$$eval('#policies tbody tr td[data-col="name"]', (cells) =>
        cells.map((c) => c.textContent),
      );
      expect(shown.sort()).toEqual(['retry', 'timeout']);
      expect(await page.textContent('#title')).toContain('lab: network (seed 7)');
      await page.waitForSelector('#faults-panel:not([hidden])');

      // A circuit breaker appears closed, then opens: its circle must be red within 2 s.
      feed.events.emit({
        type: 'policy.created',
        source: 'payments',
        at: clock.now(),
        kind: 'circuitBreaker',
      });
      for (let i = 0; i < 40; i++) {
        feed.events.emit({
          type: 'call',
          source: 'payments',
          at: clock.now(),
          kind: 'circuitBreaker',
          outcome: 'success',
          durationMs: 20 + i,
        });
      }
      await page.waitForSelector('#policies tr[data-name="payments"] .circle[data-health="green"]', {
        timeout: 5000,
      });
      const opened = clock.now();
      feed.events.emit({
        type: 'circuit.transition',
        source: 'payments',
        at: opened,
        from: 'closed',
        to: 'open',
        reason: 'failure ratio',
      });
      await page.waitForSelector('#policies tr[data-name="payments"] .circle[data-health="red"]', {
        timeout: 2000,
      });
      expect(await page.textContent('#policies tr[data-name="payments"] [data-col="state"]')).toBe('open');
      expect(await page.textContent('#tile-open')).toBe('1');

      // Charts render: uPlot's canvas and the sparklines have drawn pixels.
      // (Page code is passed as text: the test program has no DOM types.)
      const painted =
        (await page.evaluate(`[...document.querySelectorAll('#overview-chart canvas, #policies canvas.spark')]
        .map((c) => {
          const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
          return n;
        })`)) as number[];
      expect(painted.length).toBe(4); // the overview chart and one sparkline per policy
      expect(painted.every((n) => n > 0)).toBe(true);

      // Filter and sort work on the page.
      await page.fill('#filter', 'pay');
      await page.waitForFunction(`document.querySelectorAll('#policies tbody tr').length === 1`);
      await page.fill('#filter', '');
      await page.selectOption('#sort', 'name');
      await page.waitForFunction(
        `[...document.querySelectorAll('#policies tbody td[data-col="name"]')].map((c) => c.textContent).join()
          === 'payments,retry,timeout'`,
      );

      // Queue events (synthetic, of the queue's contract) get their panel; fault and queue rows open details.
      feed.events.emit({
        type: 'queue.depth',
        source: 'emails',
        at: clock.now(),
        depth: { waiting: 12, delayed: 2, active: 3, completed: 140, dead: 1 },
      });
      for (let i = 0; i < 20; i++) {
        feed.events.emit({
          type: 'queue.job',
          source: 'emails',
          at: clock.now(),
          outcome: 'completed',
          jobId: `j${i}`,
          attempt: 1,
        });
      }
      await page.waitForSelector('#queues-panel:not([hidden]) tr[data-name="emails"]');
      await page.click('#faults tr[data-name="refused"]');
      await page.waitForSelector('#detail:not([hidden]) #detail-live canvas');
      expect(await page.textContent('#detail-name')).toBe('refused');
      expect(await page.textContent('#detail-kind')).toMatch(/^fault · error · \d+ injected$/);

      // A policy row opens its detail with the live chart and the history chart.
      await page.click('#policies tr[data-name="retry"]');
      await page.waitForSelector('#detail:not([hidden]) #detail-live canvas');
      await page.waitForSelector('#detail-history canvas');
      expect(await page.textContent('#detail-name')).toBe('retry');

      // The lab's failures show as failure patterns (signatures of the injected errors).
      await page.waitForSelector('#patterns-panel:not([hidden]) #signatures tbody tr', { timeout: 5000 });

      // A circuit opening fires an alert; a readiness probe fails: both show on the page.
      alertRuntime.events.emit({
        type: 'circuit.transition',
        source: 'payments',
        at: alertRuntime.clock.now(),
        from: 'closed',
        to: 'open',
        reason: 'failure ratio',
      });
      engine.evaluate();
      for (const ok of [false, false, false]) {
        feed.events.emit({
          type: 'health.check',
          source: 'postgres',
          at: clock.now(),
          component: 'postgres',
          probe: 'readiness',
          ok,
          healthy: false,
          durationMs: 2000,
          error: 'timeout',
        });
      }
      const firing = '#alerts tr[data-rule="CircuitOpen"][data-state="firing"]';
      await page.waitForSelector(firing, { timeout: 5000 });
      expect(await page.textContent(`${firing} td.labels`)).toContain('source="payments"');
      await page.waitForSelector(
        '#probes tr[data-component="postgres"][data-probe="readiness"][data-healthy="false"]',
        { timeout: 5000 },
      );
      expect(await page.textContent('#probes tr[data-component="postgres"] .badge')).toBe('down');

      // A silence is created from the alert's row, mutes it, and is expired again from the page.
      await page.click(`${firing} button`);
      expect(await page.inputValue('#silence-matchers')).toContain('alertname="CircuitOpen"');
      await page.fill('#silence-by', 'browser-test');
      await page.fill('#silence-comment', 'payments failover drill');
      await page.click('#silence-create');
      await page.waitForSelector('#silences tr[data-state="active"]', { timeout: 5000 });
      await page.waitForSelector('#alerts tr[data-rule="CircuitOpen"][data-state="silenced"]', {
        timeout: 5000,
      });
      expect(notifier.listSilences()).toMatchObject([
        { state: 'active', createdBy: 'browser-test', comment: 'payments failover drill' },
      ]);
      expect(await page.textContent('#silence-error')).toBe('');

      await page.screenshot({ path: join(OUTPUT, 'dashboard.png'), fullPage: true });
      if (process.env.BULWARK_DOCS_SCREENSHOT === '1') {
        await page.click('#detail-close');
        await page.screenshot({
          path: join(import.meta.dirname, '..', 'docs', 'dashboard.png'),
          fullPage: false,
        });
      }
      await page.click('#silences tr[data-state="active"] button');
      await page.waitForSelector('#silences tr[data-state="expired"]', { timeout: 5000 });
      await page.waitForSelector(firing, { timeout: 5000 });
      expect(notifier.listSilences().map((x) => x.state)).toEqual(['expired']);
    } finally {
      await context.close();
    }
  }, 60_000);
});
