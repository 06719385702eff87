/**
 * The terminal summary of a lab run: one table (scenario, setup, before, after, improvement, p, verdict)
 * with the power warnings and failed checks printed under it. Rendered from the report document alone,
 * so `report.json` read back renders the same table. The row model is shared with the Markdown report.
 */
import type {
  ComparisonReport,
  LabReport,
  MetricReport,
  PatternSummary,
  ScenarioReport,
} from '../document.js';

/** One row of the summary table, as display strings. */
export interface SummaryRow {
  scenario: string;
  setup: string;
  before: string;
  after: string;
  improvement: string;
  p: string;
  verdict: string;
}

export const SUMMARY_COLUMNS: readonly [keyof SummaryRow, string][] = [
  ['scenario', 'scenario'],
  ['setup', 'setup'],
  ['before', 'before'],
  ['after', 'after'],
  ['improvement', 'improvement'],
  ['p', 'p'],
  ['verdict', 'verdict'],
];

/** `12345` → `12,345`. */
export function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `0.9148` → `91.5%`. */
export function percent(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** A rate with its interval: `91.5% [91.3, 91.7]`. */
export function rateCell(metric: MetricReport): string {
  const [lo, hi] = metric.ci95;
  return `${percent(metric.rate)} [${(lo * 100).toFixed(1)}, ${(hi * 100).toFixed(1)}]`;
}

function signed(x: number, digits: number): string {
  const text = x.toFixed(digits);
  return x > 0 || (x === 0 && !text.startsWith('-')) ? `+${text}` : text;
}

/** Absolute and relative change: `+35.5 pp (+63.4%)`. */
export function improvementCell(comparison: ComparisonReport): string {
  const absolute = `${signed(comparison.diff * 100, 1)} pp`;
  return comparison.relative === null ? absolute : `${absolute} (${signed(comparison.relative * 100, 1)}%)`;
}

/** `p < 0.001`, else two significant digits: `p = 0.051`. */
export function pValueCell(p: number): string {
  return p < 0.001 ? '< 0.001' : p.toPrecision(2);
}

/** The "against the analytic prediction" table, for the Markdown and HTML reports. */
export const ANALYTIC_COLUMNS = ['metric', 'expected', 'observed', 'p', 'verdict'];

export function analyticRows(scenario: ScenarioReport): string[][] {
  return Object.entries(scenario.analytic).map(([name, a]) => [
    name,
    String(a.expected),
    String(Number(a.observed.toPrecision(6))),
    pValueCell(a.pValue),
    a.consistent ? 'consistent' : 'INCONSISTENT',
  ]);
}

/** `PASS`/`FAIL` from the checks, with the analytic predictions the observed rates matched. */
export function verdictCell(scenario: ScenarioReport): string {
  const failed = scenario.checks.filter((c) => !c.passed).length;
  const head = scenario.passed
    ? 'PASS'
    : `FAIL${failed > 0 ? ` (${failed}/${scenario.checks.length} checks)` : ''}`;
  const analytic = Object.values(scenario.analytic);
  if (analytic.length === 0) return head;
  const consistent = analytic.filter((a) => a.consistent).length;
  return consistent === analytic.length
    ? `${head}, matches analytic`
    : `${head}, ${analytic.length - consistent}/${analytic.length} analytic mismatch`;
}

function setupCell(scenario: ScenarioReport): string {
  const tasks = `${thousands(scenario.tasks)} tasks`;
  return scenario.runs > 1 ? `${tasks} × ${scenario.runs} runs` : tasks;
}

/**
 * The summary rows: one per before/after comparison (the scenario's name on the first), or one row with
 * the scenario's first metric as `after` when it has no comparison.
 */
export function summaryRows(report: LabReport): SummaryRow[] {
  const rows: SummaryRow[] = [];
  for (const scenario of report.scenarios) {
    const setup = setupCell(scenario);
    const verdict = verdictCell(scenario);
    if (scenario.comparisons.length === 0) {
      const first = Object.entries(scenario.metrics)[0];
      rows.push({
        scenario: scenario.name,
        setup,
        before: '—',
        after: first === undefined ? '—' : `${first[0]} ${rateCell(first[1])}`,
        improvement: '—',
        p: '—',
        verdict,
      });
      continue;
    }
    const many = scenario.comparisons.length > 1;
    scenario.comparisons.forEach((comparison, i) => {
      rows.push({
        scenario: i === 0 ? scenario.name : '',
        setup: i === 0 ? setup : '',
        before: rateCell(comparison.before),
        after: `${many ? `${comparison.metric} ` : ''}${rateCell(comparison.after)}`,
        improvement: improvementCell(comparison),
        p: pValueCell(comparison.pValue),
        verdict: i === 0 ? verdict : '',
      });
    });
  }
  return rows;
}

/** The lines printed under the table: power warnings and failed checks, each naming its scenario. */
export function summaryNotes(report: LabReport): string[] {
  const notes: string[] = [];
  for (const scenario of report.scenarios) {
    for (const comparison of scenario.comparisons) {
      if (comparison.warning !== undefined) {
        notes.push(`${scenario.name} (${comparison.metric}): warning: ${comparison.warning}`);
      }
    }
    for (const check of scenario.checks) {
      if (!check.passed) notes.push(`${scenario.name}: FAILED ${check.description}: ${check.message}`);
    }
    for (const finding of scenario.patterns?.findings.slice(0, 3) ?? []) {
      notes.push(`${scenario.name}: pattern: ${finding.title}`);
    }
  }
  return notes;
}

/** The rows of a scenario's failure patterns (`--patterns`), for the Markdown and HTML reports. */
export const PATTERN_COLUMNS = ['kind', 'finding', 'targets', 'count', 'first seen (ms)', 'last seen (ms)'];
export function patternRows(patterns: PatternSummary | undefined): string[][] {
  return (patterns?.findings ?? []).map((f) => [
    f.kind,
    f.title,
    f.targets.join(', '),
    thousands(f.count),
    thousands(Math.round(f.firstSeen)),
    thousands(Math.round(f.lastSeen)),
  ]);
}

/** One line on what the pattern analysis looked at. */
export function patternNote(p: PatternSummary | undefined, of = 'events of the first run'): string {
  if (p === undefined) return '';
  return `${thousands(p.failures)} failures among ${thousands(p.events)} ${of}${p.truncated ? ' (the first ones only: there were more)' : ''}${p.findings.length === 0 ? '; no pattern found' : ''}.`;
}

/** Terminal width of a string: code points, which is right for the characters these tables use. */
function width(text: string): number {
  return [...text].length;
}

function pad(text: string, to: number): string {
  return text + ' '.repeat(Math.max(0, to - width(text)));
}

/**
 * Renders the terminal summary of a lab report: the seed, the table, then warnings and failed checks.
 *
 * @example
 * process.stdout.write(renderTerminal(report));
 * // Bulwark lab · seed 1
 * //
 * // scenario  setup         before             after              improvement         p        verdict
 * // network   10,000 tasks  56.0% [55.0, 57.0] 91.5% [91.0, 92.0] +35.5 pp (+63.4%)  < 0.001  PASS, matches analytic
 */
export function renderTerminal(report: LabReport): string {
  const rows = summaryRows(report);
  const out: string[] = [`Bulwark lab · seed ${String(report.seed)}`, ''];
  out.push(
    ...textTable(
      SUMMARY_COLUMNS.map(([, title]) => title),
      rows.map((row) => SUMMARY_COLUMNS.map(([key]) => row[key])),
    ),
  );
  const notes = summaryNotes(report);
  if (notes.length > 0) out.push('', ...notes);
  const passed = report.scenarios.filter((s) => s.passed).length;
  out.push('', `${passed}/${report.scenarios.length} scenarios passed their checks.`);
  return `${out.join('\n')}\n`;
}

/** A plain-text table: the header, a rule of `─`, the rows; columns padded to their widest cell. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((title, i) => Math.max(width(title), ...rows.map((row) => width(row[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : pad(cell, widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)];
}
