/**
 * `report.html`: one self-contained page (inline CSS, inline SVG, no script, no network) with the summary
 * table and, per scenario, its rates as bars with their 95% intervals (success by attempt), its latency
 * distributions on a proportional (log when wide) axis with p50/p90/p99 marked, its utilisation gauges
 * and its time series (e.g. utilisation over virtual time) when it has any.
 */
import type { LabReport, MetricReport, ScenarioReport } from '../document.js';
import type { LogHistogramJSON } from '../histogram.js';
import {
  ANALYTIC_COLUMNS,
  analyticRows,
  PATTERN_COLUMNS,
  patternNote,
  patternRows,
  rateCell,
  SUMMARY_COLUMNS,
  summaryNotes,
  summaryRows,
  thousands,
} from './terminal.js';

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const fixed = (x: number) => Number(x.toFixed(1));

/** The reports' stylesheet. */
export const STYLE = `
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
export function rateChart(metrics: [string, MetricReport][]): string {
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

/** About `count` round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi]. */
export function linearTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** Tick values 1, 2 and 5 × 10^k inside [lo, hi] (lo > 0), for a log axis. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let k = Math.floor(Math.log10(lo)); 10 ** k <= hi; k++) {
    for (const m of [1, 2, 5]) {
      const t = m * 10 ** k;
      if (t >= lo && t <= hi) ticks.push(Number(t.toPrecision(12)));
    }
  }
  return ticks;
}

const msLabel = (v: number) =>
  v >= 10_000 ? `${thousands(Math.round(v / 1000))} s` : `${thousands(Number(v.toPrecision(3)))} ms`;

/**
 * A histogram on a proportional value axis (logarithmic when the values span more than a factor of 20),
 * from the buckets: at most 60 columns of equal width on that axis, with the p50/p90/p99 marked.
 */
function latencyChart(name: string, h: LogHistogramJSON): string {
  if (h.count === 0 || h.max === null || h.min === null) return `<p>${escapeHtml(name)}: no samples.</p>`;
  const hi = h.max;
  const positiveMin = h.buckets.find(([bound]) => bound > 0)?.[0] ?? hi;
  const lo = Math.min(h.min > 0 ? h.min : positiveMin, hi);
  const log = lo > 0 && hi / lo > 20;
  const [from, to] = log ? [Math.log10(lo), Math.log10(hi)] : [Math.min(0, lo), hi];
  const span = to - from || 1;
  const at = (v: number) => ((log ? Math.log10(Math.max(v, lo)) : v) - from) / span;
  const bins = hi === lo ? 1 : 60;
  const counts = new Array<number>(bins).fill(0);
  for (const [bound, n] of h.buckets) {
    const i = Math.min(bins - 1, Math.max(0, Math.floor(at(Math.min(hi, Math.max(lo, bound))) * bins)));
    counts[i] = (counts[i] ?? 0) + n;
  }
  const left = 50;
  const plot = 560;
  const top = 30;
  const plotHeight = 130;
  const height = top + plotHeight + 24;
  const x = (v: number) => fixed(left + at(v) * plot);
  const peak = Math.max(...counts);
  const w = plot / bins;
  const bars = counts
    .map((n, i) => {
      const bh = peak === 0 ? 0 : (n / peak) * plotHeight;
      return n === 0
        ? ''
        : `<rect x="${fixed(left + i * w)}" y="${fixed(top + plotHeight - bh)}" width="${fixed(Math.max(1, w - 1))}" height="${fixed(Math.max(bh, 1))}" fill="#8250df"><title>${thousands(n)}</title></rect>`;
    })
    .join('');
  const ticks = (log ? logTicks(lo, hi) : linearTicks(from, to)).map(
    (t) =>
      `<line x1="${x(t)}" x2="${x(t)}" y1="${top + plotHeight}" y2="${top + plotHeight + 4}" stroke="#57606a"/>` +
      `<text x="${x(t)}" y="${height - 4}" text-anchor="middle">${msLabel(t)}</text>`,
  );
  const percentiles: [string, number | null][] = [
    ['p50', h.p50],
    ['p90', h.p90],
    ['p99', h.p99],
  ];
  const markers = percentiles.flatMap(([label, v], i) =>
    v === null
      ? []
      : [
          `<line x1="${x(v)}" x2="${x(v)}" y1="${top}" y2="${top + plotHeight}" stroke="#cf222e" stroke-dasharray="3 3"/>` +
            `<text x="${x(v)}" y="${i === 1 ? 24 : 12}" text-anchor="${at(v) > 0.85 ? 'end' : 'start'}" fill="#cf222e">${label}</text>`,
        ],
  );
  return (
    `<svg width="${left + plot + 30}" height="${height}" role="img" aria-label="${escapeHtml(name)} distribution">` +
    `<text x="0" y="${top + 10}">${thousands(peak)}</text><text x="0" y="${top + plotHeight}">0</text>` +
    `<line x1="${left}" x2="${left + plot}" y1="${top + plotHeight}" y2="${top + plotHeight}" stroke="#57606a"/>` +
    `${bars}${ticks.join('')}${markers.join('')}</svg>` +
    `<p>${escapeHtml(name)}: ${thousands(h.count)} samples${log ? ' (log scale)' : ''}, p50 ${msLabel(h.p50 ?? 0)}, ` +
    `p90 ${msLabel(h.p90 ?? 0)}, p99 ${msLabel(h.p99 ?? 0)}, max ${msLabel(hi)}.</p>`
  );
}

/** A step line of a series' `[x, y]` points over a proportional time axis; `y` as % for ratios. */
function seriesChart(name: string, points: readonly (readonly [number, number])[]): string {
  if (points.length === 0) return `<p>${escapeHtml(name)}: no points.</p>`;
  const ratio = /utili[sz]ation|ratio|rate/.test(name) && points.every(([, y]) => y >= 0 && y <= 1);
  const x0 = points[0]![0];
  const x1 = Math.max(points[points.length - 1]![0], x0 + 1);
  const yMax = ratio ? 1 : Math.max(...points.map(([, y]) => y), 1e-9);
  const left = 50;
  const plot = 560;
  const top = 10;
  const plotHeight = 120;
  const height = top + plotHeight + 24;
  const px = (v: number) => fixed(left + ((v - x0) / (x1 - x0)) * plot);
  const py = (v: number) => fixed(top + plotHeight - (v / yMax) * plotHeight);
  let path = `M${px(points[0]![0])},${py(points[0]![1])}`;
  for (let i = 1; i < points.length; i++) path += `H${px(points[i]![0])}V${py(points[i]![1])}`;
  path += `H${px(x1)}`;
  const yLabel = (v: number) => (ratio ? `${Math.round(v * 100)}%` : String(Number(v.toPrecision(3))));
  const yTicks = (ratio ? [0, 0.5, 1] : linearTicks(0, yMax, 3)).map(
    (t) =>
      `<text x="${left - 6}" y="${fixed(Number(py(t)) + 4)}" text-anchor="end">${yLabel(t)}</text>` +
      `<line x1="${left}" x2="${left + plot}" y1="${py(t)}" y2="${py(t)}" stroke="#d0d7de"/>`,
  );
  const xTicks = linearTicks(x0, x1).map(
    (t) => `<text x="${px(t)}" y="${height - 4}" text-anchor="middle">${msLabel(t)}</text>`,
  );
  return (
    `<svg width="${left + plot + 40}" height="${height}" role="img" aria-label="${escapeHtml(name)} over time">` +
    `${yTicks.join('')}${xTicks.join('')}<path d="${path}" fill="none" stroke="#0969da" stroke-width="2"/></svg>` +
    `<p>${escapeHtml(name)} over virtual time (first run, ${thousands(points.length)} points).</p>`
  );
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
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
  const series = Object.entries(scenario.series ?? {});
  if (series.length > 0) {
    out.push('<h3>Over time</h3>', ...series.map(([n, points]) => seriesChart(n, points)));
  }
  const latency = Object.entries(scenario.latency);
  if (latency.length > 0) {
    out.push('<h3>Latency distribution (virtual ms)</h3>', ...latency.map(([n, h]) => latencyChart(n, h)));
  }
  if (scenario.patterns !== undefined) {
    out.push('<h3>Failure patterns</h3>', `<p>${escapeHtml(patternNote(scenario.patterns))}</p>`);
    if (scenario.patterns.findings.length > 0)
      out.push(table(PATTERN_COLUMNS, patternRows(scenario.patterns)));
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
