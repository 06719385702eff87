/**
 * `report.md`: the terminal summary as a GitHub table, then one section per scenario with every rate,
 * the analytic predictions, the checks, the counters and the latency percentiles. Everything comes from
 * the report document; `meta` (wall time, machine) is printed last, apart from the results.
 */
import type { LabReport, ScenarioReport } from '../document.js';
import type { LogHistogramJSON } from '../histogram.js';
import {
  ANALYTIC_COLUMNS,
  analyticRows,
  improvementCell,
  PATTERN_COLUMNS,
  patternNote,
  patternRows,
  pValueCell,
  rateCell,
  SUMMARY_COLUMNS,
  summaryNotes,
  summaryRows,
  thousands,
} from './terminal.js';

/** Escapes a table cell: pipes and newlines would break the row. */
function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** A GitHub-flavoured Markdown table, cells escaped. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return [
    `| ${header.map(cell).join(' | ')} |`,
    `|${header.map(() => ' --- ').join('|')}|`,
    ...rows.map((row) => `| ${row.map(cell).join(' | ')} |`),
  ];
}

/** `12.3 ms`, `1,234 ms`, or `—` for no value. */
export function ms(value: number | null): string {
  if (value === null) return '—';
  return value >= 100 ? `${thousands(Math.round(value))} ms` : `${value.toPrecision(3)} ms`;
}

function number(value: number): string {
  return Number.isInteger(value) ? thousands(value) : String(Number(value.toPrecision(6)));
}

function scenarioSection(scenario: ScenarioReport): string[] {
  const out: string[] = [`## ${scenario.name}`, ''];
  if (scenario.description !== '') out.push(scenario.description, '');
  out.push(
    `${thousands(scenario.tasks)} tasks${scenario.runs > 1 ? ` × ${scenario.runs} runs` : ''}, ` +
      `${thousands(Math.round(scenario.virtualMs))} virtual ms. Checks: ${scenario.passed ? 'all passed' : 'FAILED'}.`,
    '',
  );
  const params = Object.entries(scenario.params);
  if (params.length > 0) {
    out.push('Parameters: ' + params.map(([k, v]) => `\`${k}\` = \`${JSON.stringify(v)}\``).join(', '), '');
  }
  const metrics = Object.entries(scenario.metrics);
  if (metrics.length > 0) {
    const spread = metrics.some(([, m]) => m.spread !== undefined);
    out.push(
      '### Rates',
      '',
      ...table(
        ['metric', 'rate [95% CI]', 'count', ...(spread ? ['per-run min–max (sd)'] : [])],
        metrics.map(([name, m]) => [
          name,
          rateCell(m),
          `${thousands(m.count)} / ${thousands(m.total)}`,
          ...(spread
            ? [
                m.spread === undefined
                  ? '—'
                  : `${(m.spread.min * 100).toFixed(1)}–${(m.spread.max * 100).toFixed(1)}% (${(m.spread.sd * 100).toFixed(2)} pp)`,
              ]
            : []),
        ]),
      ),
      '',
    );
  }
  if (scenario.comparisons.length > 0) {
    out.push(
      '### Before and after',
      '',
      ...table(
        ['metric', 'before', 'after', 'improvement', '95% CI of difference', 'p'],
        scenario.comparisons.map((c) => [
          c.metric,
          rateCell(c.before),
          rateCell(c.after),
          improvementCell(c),
          `[${(c.ci95[0] * 100).toFixed(1)}, ${(c.ci95[1] * 100).toFixed(1)}] pp`,
          pValueCell(c.pValue),
        ]),
      ),
      '',
    );
    for (const c of scenario.comparisons) {
      if (c.warning !== undefined) out.push(`> **Warning (${c.metric}):** ${c.warning}`, '');
    }
  }
  const analytic = analyticRows(scenario);
  if (analytic.length > 0) {
    out.push('### Against the analytic prediction', '', ...table(ANALYTIC_COLUMNS, analytic), '');
  }
  if (scenario.patterns !== undefined) {
    out.push('### Failure patterns', '', patternNote(scenario.patterns), '');
    if (scenario.patterns.findings.length > 0)
      out.push(...table(PATTERN_COLUMNS, patternRows(scenario.patterns)), '');
  }
  if (scenario.checks.length > 0) {
    out.push(
      '### Checks',
      '',
      ...table(
        ['check', 'result', 'detail'],
        scenario.checks.map((c) => [c.description, c.passed ? 'pass' : 'FAIL', c.message]),
      ),
      '',
    );
  }
  const values = Object.entries(scenario.values);
  if (values.length > 0) {
    out.push(
      '### Counters',
      '',
      ...table(
        ['name', 'value'],
        values.map(([k, v]) => [k, number(v)]),
      ),
      '',
    );
  }
  const latency = Object.entries(scenario.latency);
  if (latency.length > 0) {
    out.push(
      '### Latency (virtual ms)',
      '',
      ...table(
        ['distribution', 'count', 'mean', 'p50', 'p90', 'p99', 'p99.9', 'max'],
        latency.map(([name, h]: [string, LogHistogramJSON]) => [
          name,
          thousands(h.count),
          ms(h.mean),
          ms(h.p50),
          ms(h.p90),
          ms(h.p99),
          ms(h.p999),
          ms(h.max),
        ]),
      ),
      '',
    );
  }
  return out;
}

/**
 * Renders a lab report as GitHub-flavoured Markdown (`report.md`).
 *
 * @example
 * await writeFile('report.md', renderMarkdown(report));
 */
export function renderMarkdown(report: LabReport): string {
  const passed = report.scenarios.filter((s) => s.passed).length;
  const out: string[] = [
    '# Bulwark lab report',
    '',
    `Seed \`${String(report.seed)}\`: ${passed}/${report.scenarios.length} scenarios passed their checks. ` +
      'Rates carry 95% Wilson intervals; improvements are absolute (percentage points) and relative, ' +
      'with the two-proportion test p-value.',
    '',
    ...table(
      SUMMARY_COLUMNS.map(([, title]) => title),
      summaryRows(report).map((row) => SUMMARY_COLUMNS.map(([key]) => row[key])),
    ),
    '',
  ];
  const notes = summaryNotes(report);
  if (notes.length > 0) out.push(...notes.map((note) => `- ${note}`), '');
  for (const scenario of report.scenarios) out.push(...scenarioSection(scenario));
  const meta = report.meta;
  out.push(
    '---',
    '',
    `Run on Node ${meta.node} (${meta.platform}/${meta.arch})${meta.version === undefined ? '' : `, Bulwark ${meta.version}`}, ` +
      `${thousands(Math.round(meta.wallMs))} ms wall time.`,
    '',
  );
  return out.join('\n');
}
