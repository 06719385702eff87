import { describe, expect, it } from 'vitest';
import type { ComparisonReport, LabReport, ScenarioReport } from '../document.js';
import { LogHistogram } from '../histogram.js';
import { binomialConsistency, powerWarning, rate, twoProportionTest } from '../stats.js';
import { linearTicks, logTicks } from './html.js';
import { renderHtml, renderMarkdown, renderTerminal } from './index.js';
import { improvementCell, pValueCell, rateCell, summaryRows } from './terminal.js';

function comparison(metric: string, before: [number, number], after: [number, number]): ComparisonReport {
  const a = { count: before[0], total: before[1] };
  const b = { count: after[0], total: after[1] };
  const test = twoProportionTest(a, b);
  const warning = powerWarning(a, b);
  return {
    metric,
    before: rate(a.count, a.total),
    after: rate(b.count, b.total),
    diff: test.diff,
    relative: test.relative,
    pValue: test.pValue,
    ci95: test.ci95,
    significant: test.significant,
    ...(warning === undefined ? {} : { warning }),
  };
}

function analytic(count: number, total: number, expected: number) {
  const c = binomialConsistency({ count, total }, expected);
  return { expected, observed: c.observed, consistent: c.consistent, pValue: c.pValue };
}

const recovery = new LogHistogram();
for (const ms of [100, 100, 300, 300, 300, 5100, 5300]) recovery.record(ms);

const network: ScenarioReport = {
  name: 'network',
  description: '30% connection errors, 20% timeouts (5 s); retry x3, exponential backoff 100 ms ×2',
  tasks: 10_000,
  runs: 1,
  passed: true,
  params: { errorRate: 0.3, timeoutRate: 0.2, maxAttempts: 3 },
  metrics: { first_attempt: rate(5_600, 10_000), final: rate(9_148, 10_000) },
  values: { calls: 14_900, retries: 4_900, 'failures.ECONNREFUSED': 4_470 },
  latency: { recovery: recovery.toJSON() },
  analytic: { first_attempt: analytic(5_600, 10_000, 0.56), final: analytic(9_148, 10_000, 0.914816) },
  comparisons: [comparison('success', [5_600, 10_000], [9_148, 10_000])],
  checks: [{ description: 'final consistent with 0.914816', passed: true, message: 'p = 0.99' }],
  virtualMs: 12_345_678,
};

const resource: ScenarioReport = {
  name: 'resource',
  description: '100 MB budget; 8 × 10 MB and 2 × 30 MB tasks',
  tasks: 10,
  runs: 1,
  passed: true,
  params: { budgetMb: 100 },
  metrics: { completion: rate(10, 10) },
  values: { normal: 8, degraded: 2, failed: 0, peak_utilisation: 0.8 },
  latency: {},
  analytic: {},
  comparisons: [],
  checks: [{ description: 'completion at least 1', passed: true, message: '10/10' }],
  virtualMs: 40,
};

const small: ScenarioReport = {
  ...network,
  name: 'network-small',
  tasks: 10,
  runs: 3,
  passed: false,
  metrics: {
    first_attempt: { ...rate(15, 30), spread: { min: 0.4, max: 0.6, sd: 0.1 } },
    final: { ...rate(26, 30), spread: { min: 0.8, max: 0.9, sd: 0.057735 } },
  },
  latency: { recovery: new LogHistogram().toJSON() },
  analytic: { final: analytic(26, 30, 0.914816) },
  comparisons: [comparison('success', [5, 10], [9, 10])],
  checks: [{ description: 'final at least 0.95', passed: false, message: 'observed 0.867 < 0.95' }],
};

const report: LabReport = {
  seed: 42,
  scenarios: [network, resource, small],
  meta: {
    wallMs: 1234.5,
    scenarioWallMs: {},
    node: 'v20.20.0',
    platform: 'linux',
    arch: 'x64',
    version: '0.1.0',
  },
};

describe('report cells', () => {
  it('formats rates, improvements and p-values', () => {
    expect(rateCell(rate(9_148, 10_000))).toBe('91.5% [90.9, 92.0]');
    expect(rateCell(rate(0, 0))).toBe('0.0% [0.0, 100.0]');
    expect(improvementCell(comparison('s', [5_600, 10_000], [9_148, 10_000]))).toBe('+35.5 pp (+63.4%)');
    expect(improvementCell(comparison('s', [9, 10], [5, 10]))).toBe('-40.0 pp (-44.4%)');
    expect(improvementCell(comparison('s', [0, 10], [5, 10]))).toBe('+50.0 pp');
    expect(pValueCell(1e-300)).toBe('< 0.001');
    expect(pValueCell(0.05123)).toBe('0.051');
  });

  it('builds one row per comparison, or one row with the first metric', () => {
    const rows = summaryRows(report);
    expect(rows).toEqual([
      {
        scenario: 'network',
        setup: '10,000 tasks',
        before: '56.0% [55.0, 57.0]',
        after: '91.5% [90.9, 92.0]',
        improvement: '+35.5 pp (+63.4%)',
        p: '< 0.001',
        verdict: 'PASS, matches analytic',
      },
      {
        scenario: 'resource',
        setup: '10 tasks',
        before: '—',
        after: 'completion 100.0% [72.2, 100.0]',
        improvement: '—',
        p: '—',
        verdict: 'PASS',
      },
      {
        scenario: 'network-small',
        setup: '10 tasks × 3 runs',
        before: '50.0% [23.7, 76.3]',
        after: '90.0% [59.6, 98.2]',
        improvement: '+40.0 pp (+80.0%)',
        p: '0.051',
        verdict: 'FAIL (1/1 checks), matches analytic',
      },
    ]);
  });
});

describe('renderTerminal', () => {
  const text = renderTerminal(report);
  const lines = text.split('\n');

  it('prints the seed, an aligned table and a summary line', () => {
    expect(lines[0]).toBe('Bulwark lab · seed 42');
    const header = lines[2]!;
    expect(header).toMatch(/^scenario\s+setup\s+before\s+after\s+improvement\s+p\s+verdict$/);
    // Every column starts at the same offset on every row.
    const at = header.indexOf('after');
    expect(lines[4]!.slice(at)).toMatch(/^91\.5% \[90\.9, 92\.0\]/);
    expect(lines[5]!.slice(at)).toMatch(/^completion 100\.0%/);
    expect(lines[6]!.slice(header.indexOf('verdict'))).toBe('FAIL (1/1 checks), matches analytic');
    expect(text.endsWith('2/3 scenarios passed their checks.\n')).toBe(true);
  });

  it('prints power warnings and failed checks under the table', () => {
    expect(text).toContain('network-small (success): warning: 10 tasks per arm: the 95% intervals');
    expect(text).toContain('network-small: FAILED final at least 0.95: observed 0.867 < 0.95');
    expect(text).not.toMatch(/^network \(success\): warning/m);
  });
});

describe('renderMarkdown', () => {
  const md = renderMarkdown(report);

  it('has the summary as a GitHub table', () => {
    expect(md).toContain('| scenario | setup | before | after | improvement | p | verdict |');
    expect(md).toContain(
      '| network | 10,000 tasks | 56.0% [55.0, 57.0] | 91.5% [90.9, 92.0] | +35.5 pp (+63.4%) | < 0.001 | PASS, matches analytic |',
    );
    expect(md).toContain('- network-small (success): warning: 10 tasks per arm');
  });

  it('has a section per scenario with rates, analytic, checks, counters and latency', () => {
    expect(md).toContain('## network\n');
    expect(md).toContain('| final | 91.5% [90.9, 92.0] | 9,148 / 10,000 |');
    expect(md).toContain('| final | 0.914816 | 0.9148 |');
    expect(md).toContain('| failures.ECONNREFUSED | 4,470 |');
    expect(md).toContain('| recovery | 7 | 1,643 ms | 301 ms | 5,300 ms | 5,300 ms | 5,300 ms | 5,300 ms |');
    expect(md).toContain('| recovery | 0 | — | — |');
    expect(md).toContain('| final at least 0.95 | FAIL | observed 0.867 < 0.95 |');
    expect(md).toContain('per-run min–max (sd)');
    expect(md).toContain('| 40.0–60.0% (10.00 pp) |');
    expect(md).toContain('> **Warning (success):** 10 tasks per arm');
    expect(md).toContain('Run on Node v20.20.0 (linux/x64), Bulwark 0.1.0, 1,235 ms wall time.');
  });

  it('escapes pipes in cells', () => {
    const odd = { ...report, scenarios: [{ ...resource, name: 'a|b' }] };
    expect(renderMarkdown(odd)).toContain('| a\\|b |');
  });
});

describe('renderHtml', () => {
  const html = renderHtml(report);

  it('is one self-contained page: no external resources', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet/);
    expect(html).toContain('<style>');
  });

  it('has the summary table, a chart per scenario and escapes text', () => {
    expect(html).toContain('<td>91.5% [90.9, 92.0]</td>');
    expect(html).toContain('<svg');
    const odd = renderHtml({ ...report, scenarios: [{ ...resource, description: '<b>&' }] });
    expect(odd).toContain('&lt;b&gt;&amp;');
    expect(odd).not.toContain('<b>&');
  });
});

describe('HTML charts', () => {
  it('picks round ticks for linear and log axes', () => {
    expect(linearTicks(0, 600)).toEqual([0, 200, 400, 600]);
    expect(linearTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(linearTicks(5, 5)).toEqual([5]);
    expect(logTicks(100, 5_300)).toEqual([100, 200, 500, 1_000, 2_000, 5_000]);
    expect(logTicks(0.3, 3)).toEqual([0.5, 1, 2]);
  });

  it('draws the latency histogram on a proportional axis with its percentiles marked', () => {
    const html = renderHtml(report);
    // recovery spans 100 ms to seconds: a log axis with round ticks and p50/p90/p99 markers.
    expect(html).toContain('(log scale)');
    expect(html).toMatch(/>1,000 ms<\/text>/);
    for (const p of ['p50', 'p90', 'p99']) expect(html).toMatch(new RegExp(`fill="#cf222e">${p}</text>`));
  });

  it('draws each time series as a step line over its time axis', () => {
    const withSeries: ScenarioReport = {
      ...resource,
      series: {
        utilisation: [
          [0, 1],
          [100, 0.2],
          [200, 0],
        ],
      },
    };
    const html = renderHtml({ ...report, scenarios: [withSeries] });
    expect(html).toContain('<h3>Over time</h3>');
    expect(html).toContain('aria-label="utilisation over time"');
    expect(html).toMatch(/<path d="M50,10H[\d.]+V106H[\d.]+V130H610"/);
    expect(html).toContain('>100%</text>');
  });
});
