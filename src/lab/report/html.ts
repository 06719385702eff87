/**
 * `report.html`: one self-contained page (inline CSS, inline SVG, no script, no network) with the summary
 * table and, per scenario, its rates as bars with their 95% intervals (success by attempt), its latency
 * distributions drawn from the histogram buckets, and its utilisation gauges when it has any.
 */
import type { LabReport, MetricReport, ScenarioReport } from '../document.js';
import type { LogHistogramJSON } from '../histogram.js';
import {
  ANALYTIC_COLUMNS,
  analyticRows,
  rateCell,
  SUMMARY_COLUMNS,
  summaryNotes,
  summaryRows,
  thousands,
} from './terminal.js';

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const fixed = (x: number) => Number(x.toFixed(1));

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1f24}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #d0d7de}
h3{font-size:1rem;margin:1.2rem 0 .4rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;font-variant-numeric:tabular-nums}
th{background:#f6f8fa}.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.note{background:#fff8c5;border-left:4px solid #d4a72c;padding:.4rem .8rem;margin:.4rem 0}
svg{display:block;margin:.4rem 0}svg text{font:12px system-ui,sans-serif;fill:#1b1f24}
.meta{color:#57606a;font-size:.85rem;margin-top:3rem}
`;

/** Horizontal bars: one per rate, with its 95% interval as a whisker. */
function rateChart(metrics: [string, MetricReport][]): string {
  const labelWidth = 150;
  const barWidth = 420;
  const row = 26;
  const height = metrics.length * row + 24;
  const parts = metrics.map(([name, m], i) => {
    const y = i * row + 4;
    const x = (v: number) => fixed(labelWidth + v * barWidth);
    return (
      `<text x="0" y="${y + 14}">${escapeHtml(name)}</text>` +
      `<rect x="${labelWidth}" y="${y}" width="${fixed(m.rate * barWidth)}" height="18" fill="#54aeff"/>` +
      `<line x1="${x(m.ci95[0])}" x2="${x(m.ci95[1])}" y1="${y + 9}" y2="${y + 9}" stroke="#0a3069" stroke-width="2"/>` +
      `<text x="${labelWidth + barWidth + 8}" y="${y + 14}">${escapeHtml(rateCell(m))}</text>`
    );
  });
  const axis = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (t) =>
        `<text x="${fixed(labelWidth + t * barWidth)}" y="${height - 4}" text-anchor="middle">${t * 100}%</text>`,
    )
    .join('');
  return (
    `<svg width="${labelWidth + barWidth + 200}" height="${height}" role="img" aria-label="rates">` +
    `${parts.join('')}${axis}</svg>`
  );
}

/** Columns: the histogram's buckets, grouped into at most 60 equal-width ranges of the value axis. */
function latencyChart(name: string, h: LogHistogramJSON): string {
  if (h.count === 0 || h.max === null || h.min === null) return `<p>${escapeHtml(name)}: no samples.</p>`;
  const lo = h.min;
  const hi = h.max;
  const bins = hi === lo ? 1 : Math.min(60, h.buckets.length);
  const counts = new Array<number>(bins).fill(0);
  for (const [bound, n] of h.buckets) {
    const value = Math.min(hi, Math.max(lo, bound));
    const i = hi === lo ? 0 : Math.min(bins - 1, Math.floor(((value - lo) / (hi - lo)) * bins));
    counts[i] = (counts[i] ?? 0) + n;
  }
  const width = 600;
  const height = 140;
  const peak = Math.max(...counts);
  const w = width / bins;
  const bars = counts
    .map((n, i) => {
      const bh = peak === 0 ? 0 : (n / peak) * (height - 30);
      return `<rect x="${fixed(i * w)}" y="${fixed(height - 20 - bh)}" width="${fixed(Math.max(1, w - 1))}" height="${fixed(bh)}" fill="#8250df"/>`;
    })
    .join('');
  const label = (v: number) => `${thousands(Math.round(v))} ms`;
  return (
    `<svg width="${width}" height="${height}" role="img" aria-label="${escapeHtml(name)} distribution">${bars}` +
    `<text x="0" y="${height - 4}">${label(lo)}</text>` +
    `<text x="${width}" y="${height - 4}" text-anchor="end">${label(hi)}</text></svg>` +
    `<p>${escapeHtml(name)}: ${thousands(h.count)} samples, p50 ${label(h.p50 ?? 0)}, p90 ${label(h.p90 ?? 0)}, ` +
    `p99 ${label(h.p99 ?? 0)}, max ${label(hi)}.</p>`
  );
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const head = header.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('');
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

function scenarioSection(scenario: ScenarioReport): string {
  const out: string[] = [
    `<h2 id="${escapeHtml(scenario.name)}">${escapeHtml(scenario.name)} ` +
      `<span class="${scenario.passed ? 'pass' : 'fail'}">${scenario.passed ? 'PASS' : 'FAIL'}</span></h2>`,
    `<p>${escapeHtml(scenario.description)}</p>`,
    `<p>${thousands(scenario.tasks)} tasks${scenario.runs > 1 ? ` × ${scenario.runs} runs` : ''}, ` +
      `${thousands(Math.round(scenario.virtualMs))} virtual ms.</p>`,
  ];
  const metrics = Object.entries(scenario.metrics);
  if (metrics.length > 0) out.push('<h3>Success rates (95% intervals)</h3>', rateChart(metrics));
  for (const c of scenario.comparisons) {
    if (c.warning !== undefined) out.push(`<p class="note">${escapeHtml(c.warning)}</p>`);
  }
  const analytic = analyticRows(scenario);
  if (analytic.length > 0) {
    out.push('<h3>Against the analytic prediction</h3>', table(ANALYTIC_COLUMNS, analytic));
  }
  const utilisation = Object.entries(scenario.values).filter(([k]) => /utili[sz]ation/.test(k));
  if (utilisation.length > 0) {
    out.push(
      '<h3>Utilisation</h3>',
      rateChart(
        utilisation.map(([k, v]): [string, MetricReport] => [
          k,
          { rate: v, ci95: [v, v], count: 0, total: 0 },
        ]),
      ),
    );
  }
  const latency = Object.entries(scenario.latency);
  if (latency.length > 0) {
    out.push('<h3>Latency distribution (virtual ms)</h3>', ...latency.map(([n, h]) => latencyChart(n, h)));
  }
  if (scenario.checks.length > 0) {
    out.push(
      '<h3>Checks</h3>',
      table(
        ['check', 'result', 'detail'],
        scenario.checks.map((c) => [c.description, c.passed ? 'pass' : 'FAIL', c.message]),
      ),
    );
  }
  const values = Object.entries(scenario.values);
  if (values.length > 0) {
    out.push(
      '<h3>Counters</h3>',
      table(
        ['name', 'value'],
        values.map(([k, v]) => [k, Number.isInteger(v) ? thousands(v) : String(Number(v.toPrecision(6)))]),
      ),
    );
  }
  return out.join('\n');
}

/**
 * Renders a lab report as one self-contained HTML page (`report.html`) that works offline.
 *
 * @example
 * await writeFile('report.html', renderHtml(report));
 */
export function renderHtml(report: LabReport): string {
  const passed = report.scenarios.filter((s) => s.passed).length;
  const notes = summaryNotes(report);
  const meta = report.meta;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bulwark lab report · seed ${escapeHtml(String(report.seed))}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Bulwark lab report</h1>
<p>Seed <code>${escapeHtml(String(report.seed))}</code>: ${passed}/${report.scenarios.length} scenarios passed their checks.
Rates carry 95% Wilson intervals; improvements are absolute (percentage points) and relative, with the two-proportion test p-value.</p>
${table(
  SUMMARY_COLUMNS.map(([, title]) => title),
  summaryRows(report).map((row) => SUMMARY_COLUMNS.map(([key]) => row[key])),
)}
${notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('\n')}
${report.scenarios.map(scenarioSection).join('\n')}
<p class="meta">Node ${escapeHtml(meta.node)} (${escapeHtml(meta.platform)}/${escapeHtml(meta.arch)})${
    meta.version === undefined ? '' : `, Bulwark ${escapeHtml(meta.version)}`
  }, ${thousands(Math.round(meta.wallMs))} ms wall time.</p>
</body>
</html>
`;
}
