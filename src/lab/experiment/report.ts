/**
 * An experiment's journal as the lab's report formats: a terminal summary, Markdown and a self-contained
 * HTML page — the verdict, every activity with its status and detail, and the load's success rate with
 * its 95% interval before, during and after the fault.
 */
import { escapeHtml, table as htmlTable, rateChart, STYLE } from '../report/html.js';
import { table as markdownTable, ms } from '../report/markdown.js';
import {
  PATTERN_COLUMNS,
  patternNote,
  patternRows,
  pValueCell,
  rateCell,
  textTable,
  thousands,
} from '../report/terminal.js';
import type { ActivityRun, ComparisonSummary, ExperimentJournal } from './run.js';

/** `COMPLETED — the hypothesis held`, `DEVIATED — …`, `ABORTED — reason`… */
export function verdictLine(journal: ExperimentJournal): string {
  if (journal.status === 'completed') {
    return journal.deviated
      ? 'DEVIATED — the steady-state hypothesis did not hold after the method'
      : journal.steadyStates.after === undefined || journal.steadyStates.after.probes.length === 0
        ? 'COMPLETED'
        : 'COMPLETED — the steady-state hypothesis held';
  }
  return `${journal.status.toUpperCase()} — ${journal.reason ?? journal.status}${journal.deviated ? ' (and deviated)' : ''}`;
}

const ACTIVITY_COLUMNS = ['stage', 'activity', 'provider', 'status', 'duration', 'detail'];

function detail(run: ActivityRun): string {
  if (run.tolerance !== undefined && !run.tolerance.holds) return run.tolerance.reason;
  if (run.error !== undefined) return run.error;
  const output = run.output as { status?: unknown; exitCode?: unknown } | null | undefined;
  if (typeof output === 'number') return `value ${output}`;
  if (output !== null && typeof output === 'object') {
    if (typeof output.status === 'number') return `status ${output.status}`;
    if (typeof output.exitCode === 'number') return `exit code ${output.exitCode}`;
  }
  return run.background ? 'background' : '';
}

function activityRows(journal: ExperimentJournal): string[][] {
  const all = [
    ...(journal.steadyStates.before?.probes ?? []),
    ...journal.run,
    ...(journal.steadyStates.after?.probes ?? []),
    ...journal.rollbacks,
  ];
  return all.map((run) => [
    run.stage,
    run.name,
    run.provider ?? run.type,
    run.status,
    `${thousands(Math.round(run.durationMs))} ms`,
    detail(run),
  ]);
}

const LOAD_COLUMNS = ['phase', 'requests', 'success (95% CI)', 'failures', 'p50', 'p99'];

function loadRows(journal: ExperimentJournal): string[][] {
  const load = journal.load;
  if (load === undefined) return [];
  return (['before', 'during', 'after'] as const).map((phase) => {
    const p = load.phases[phase];
    const failures = Object.entries(p.failures)
      .map(([kind, n]) => `${kind}: ${thousands(n)}`)
      .join(', ');
    return [
      phase,
      thousands(p.total),
      p.total === 0 ? '—' : rateCell(p),
      failures || '—',
      ms(p.latencyMs.p50),
      ms(p.latencyMs.p99),
    ];
  });
}

function change(label: string, c: ComparisonSummary, measured: boolean): string {
  if (!measured) return `${label}: not measured (a phase without requests)`;
  const pp = (c.diff * 100).toFixed(1);
  return `${label}: ${c.diff >= 0 ? '+' : ''}${pp} pp [${(c.ci95[0] * 100).toFixed(1)}, ${(c.ci95[1] * 100).toFixed(1)}], p ${pValueCell(c.pValue)}`;
}

function loadSummary(journal: ExperimentJournal): string[] {
  const load = journal.load;
  if (load === undefined) return [];
  return [
    `Load: ${thousands(load.requests)} requests to ${load.url} at ${load.rate}/s.`,
    `${change('During the method vs before', load.comparisons.during, load.phases.before.total > 0 && load.phases.during.total > 0)}; ${change('after the rollbacks vs before', load.comparisons.after, load.phases.before.total > 0 && load.phases.after.total > 0)}.`,
  ];
}

/** The terminal summary of a journal. */
export function renderExperimentTerminal(journal: ExperimentJournal): string {
  const out = [`Experiment: ${journal.title}`, verdictLine(journal), ''];
  out.push(...textTable(ACTIVITY_COLUMNS, activityRows(journal)));
  if (journal.load !== undefined) {
    out.push('', ...loadSummary(journal).slice(0, 1), ...textTable(LOAD_COLUMNS, loadRows(journal)));
    out.push(...loadSummary(journal).slice(1));
  }
  if (journal.patterns !== undefined && journal.patterns.findings.length > 0) {
    out.push('', 'Failure patterns of the load:');
    for (const f of journal.patterns.findings.slice(0, 3)) out.push(`  ${f.title}`);
  }
  out.push('', `Took ${thousands(Math.round(journal.durationMs))} ms.`);
  return `${out.join('\n')}\n`;
}

/** `journal.md`. */
export function renderExperimentMarkdown(journal: ExperimentJournal): string {
  const out = [`# Experiment: ${journal.title}`, ''];
  if (journal.description !== undefined) out.push(journal.description, '');
  out.push(
    `**${verdictLine(journal)}**`,
    '',
    '## Activities',
    '',
    ...markdownTable(ACTIVITY_COLUMNS, activityRows(journal)),
  );
  if (journal.load !== undefined) {
    const [first, second] = loadSummary(journal);
    out.push(
      '',
      '## Load',
      '',
      first ?? '',
      '',
      ...markdownTable(LOAD_COLUMNS, loadRows(journal)),
      '',
      second ?? '',
    );
  }
  if (journal.patterns !== undefined) {
    out.push('', '## Failure patterns', '', patternNote(journal.patterns, 'load requests'));
    if (journal.patterns.findings.length > 0) {
      out.push('', ...markdownTable(PATTERN_COLUMNS, patternRows(journal.patterns)));
    }
  }
  out.push('', `Took ${thousands(Math.round(journal.durationMs))} ms.`);
  return `${out.join('\n')}\n`;
}

/** `journal.html`: one self-contained page, no network. */
export function renderExperimentHtml(journal: ExperimentJournal): string {
  const ok = journal.status === 'completed' && !journal.deviated;
  const parts = [
    `<h1>Experiment: ${escapeHtml(journal.title)}</h1>`,
    journal.description === undefined ? '' : `<p>${escapeHtml(journal.description)}</p>`,
    `<p class="${ok ? 'pass' : 'fail'}">${escapeHtml(verdictLine(journal))}</p>`,
    '<h2>Activities</h2>',
    htmlTable(ACTIVITY_COLUMNS, activityRows(journal)),
  ];
  const load = journal.load;
  if (load !== undefined) {
    const [first, second] = loadSummary(journal);
    parts.push(
      '<h2>Load</h2>',
      `<p>${escapeHtml(first ?? '')}</p>`,
      rateChart(
        (['before', 'during', 'after'] as const)
          .filter((phase) => load.phases[phase].total > 0)
          .map((phase) => [`${phase} (success)`, load.phases[phase]]),
      ),
      htmlTable(LOAD_COLUMNS, loadRows(journal)),
      `<p>${escapeHtml(second ?? '')}</p>`,
    );
  }
  if (journal.patterns !== undefined) {
    parts.push(
      '<h2>Failure patterns</h2>',
      `<p>${escapeHtml(patternNote(journal.patterns, 'load requests'))}</p>`,
    );
    if (journal.patterns.findings.length > 0) {
      parts.push(htmlTable(PATTERN_COLUMNS, patternRows(journal.patterns)));
    }
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bulwark experiment · ${escapeHtml(journal.title)}</title>
<style>${STYLE}</style>
</head>
<body>
${parts.filter((p) => p !== '').join('\n')}
<p class="meta">Took ${thousands(Math.round(journal.durationMs))} ms. Success rates carry 95% Wilson intervals; changes are in percentage points with Newcombe's interval and the two-proportion test.</p>
</body>
</html>
`;
}
