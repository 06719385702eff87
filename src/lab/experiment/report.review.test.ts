import { describe, expect, it } from 'vitest';
import { rate } from '../stats.js';
import { renderExperimentHtml, renderExperimentMarkdown } from './report.js';
import type { ExperimentJournal, LoadPhaseReport } from './run.js';

const phase = (ok: number, total: number): LoadPhaseReport => ({
  ...rate(ok, total),
  failures: total > ok ? { ECONNREFUSED: total - ok } : {},
  latencyMs: { p50: null, p90: null, p99: null, max: null } as never,
});

/** Interrupted during the warm-up: the load sent requests before, none during or after. */
const journal: ExperimentJournal = {
  title: 'interrupted early',
  status: 'interrupted',
  reason: 'SIGINT',
  deviated: false,
  steadyStates: {},
  run: [],
  rollbacks: [],
  load: {
    url: 'http://127.0.0.1:1/',
    rate: 10,
    requests: 4,
    phases: { before: phase(4, 4), during: phase(0, 0), after: phase(0, 0) },
    comparisons: {
      during: { diff: 0, pValue: 1, ci95: [-1, 1] },
      after: { diff: 0, pValue: 1, ci95: [-1, 1] },
    },
  },
  durationMs: 120,
};

describe('review: experiment report renderers', () => {
  it('passing, pins: Markdown shows a phase without requests as —', () => {
    expect(renderExperimentMarkdown(journal)).toMatch(/\| during \| 0 \| — \|/);
  });

  it('the HTML chart does not draw a phase without requests as 0.0% success (the tables say —)', () => {
    const html = renderExperimentHtml(journal);
    const chart = /<svg[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    // The empty phase is left out of the chart (the table says —), never drawn as a measured 0.0%.
    const duringRow = /during \(success\)<\/text>[\s\S]*?<text[^>]*>([^<]*)<\/text>/.exec(chart)?.[1];
    expect(duringRow ?? 'not drawn').not.toMatch(/^0(\.0)?%/);
    expect(chart).toContain('before (success)');
  });

  it('with no requests in a phase, the comparison line does not claim a measured change', () => {
    // compare() returns diff 0, p 1 for an empty phase; the summary then reads "+0.0 pp …, p 1", as if measured.
    const md = renderExperimentMarkdown(journal);
    expect(md).not.toMatch(/During the method vs before: \+0\.0 pp/);
  });
});
