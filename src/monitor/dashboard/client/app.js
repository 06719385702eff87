/**
 * The dashboard page. Plain JavaScript for the browser, bundled with uPlot by esbuild at build time
 * (scripts/build-dashboard.mjs). It reads the server's event stream (`/events`): an `info` event, then a
 * coalesced `snapshot` about once a second. Every name and value is put in the page as text, never as HTML.
 */
import uPlot from 'uplot';

const $ = (id) => document.getElementById(id);
const COLOURS = { green: '#2f9e44', yellow: '#f0b400', orange: '#f76707', red: '#e03131', blue: '#1c7ed6' };

const view = {
  snapshot: undefined,
  filter: '',
  sort: 'volume',
  selected: undefined,
  rows: new Map(),
  overview: undefined,
  detailLive: undefined,
  detailHistory: undefined,
  historyFor: undefined,
  historyAt: 0,
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatRate(n) {
  if (n >= 1000) return `${(n / 1000).toFixed(1)}k`;
  if (n >= 100) return n.toFixed(0);
  return n.toFixed(n >= 10 ? 1 : 2);
}

function formatMs(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(1)} ms`;
}

function formatPercent(ratio) {
  if (ratio === null || ratio === undefined) return '–';
  const pct = ratio * 100;
  return `${pct >= 99.95 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)}%`;
}

/** Hystrix-style health: the circuit state first, then the error rate of the last minute. */
function health(policy) {
  if (policy.state === 'open' || policy.state === 'isolated') return 'red';
  if (policy.errorRate > 0.5) return 'red';
  if (policy.state === 'half-open' || policy.errorRate > 0.1) return 'orange';
  if (policy.errorRate > 0.01) return 'yellow';
  return 'green';
}

/** The largest few kinds with their counts, and their share of `total` when given (errors of all calls). */
function errorsText(errors, total) {
  const entries = Object.entries(errors).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return '–';
  return entries
    .slice(0, 4)
    .map(([kind, n]) => (total ? `${kind} ${formatPercent(n / total)} (${n})` : `${kind} ${n}`))
    .join(' · ');
}

/** A 120 × 26 sparkline: calls (grey), failures (red), and a red band while the circuit was open. */
function drawSpark(canvas, calls, failures, states) {
  const ratio = window.devicePixelRatio || 1;
  const width = 120;
  const height = 26;
  if (canvas.width !== width * ratio) {
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const n = calls.length;
  const step = width / Math.max(1, n - 1);
  if (states) {
    ctx.fillStyle = 'rgba(224, 49, 49, 0.18)';
    for (let i = 0; i < n; i++) if (states[i] >= 2) ctx.fillRect(i * step - step / 2, 0, step, height);
  }
  let max = 1;
  for (const v of calls) if (v > max) max = v;
  const y = (v) => height - 2 - (v / max) * (height - 4);
  ctx.lineWidth = 1.25;
  ctx.strokeStyle = '#868e96';
  ctx.beginPath();
  for (let i = 0; i < n; i++) ctx[i === 0 ? 'moveTo' : 'lineTo'](i * step, y(calls[i]));
  ctx.stroke();
  if (failures?.some((v) => v > 0)) {
    // Failures as a filled area: nothing shows while there are none.
    ctx.fillStyle = 'rgba(224, 49, 49, 0.55)';
    ctx.beginPath();
    ctx.moveTo(0, y(0));
    for (let i = 0; i < n; i++) ctx.lineTo(i * step, y(failures[i]));
    ctx.lineTo((n - 1) * step, y(0));
    ctx.closePath();
    ctx.fill();
  }
}

function secondsAxis(now, n) {
  const end = Math.floor(now / 1000);
  return Array.from({ length: n }, (_, i) => end - n + 1 + i);
}

function chart(container, series, data, height = 200) {
  const width = Math.max(300, container.clientWidth || 600);
  return new uPlot(
    {
      width,
      height,
      series: [{}, ...series],
      axes: [{ stroke: '#6b7385' }, { stroke: '#6b7385', size: 50 }],
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    },
    data,
    container,
  );
}

function renderOverview(s) {
  const n = 120;
  const calls = new Array(n).fill(0);
  const failures = new Array(n).fill(0);
  for (const p of s.policies) {
    for (let i = 0; i < n; i++) {
      calls[i] += p.spark.calls[i] ?? 0;
      failures[i] += p.spark.failures[i] ?? 0;
    }
  }
  const data = [secondsAxis(s.now, n), calls, failures];
  if (view.overview === undefined) {
    view.overview = chart(
      $('overview-chart'),
      [
        { label: 'calls/s', stroke: COLOURS.blue, width: 1.5, fill: 'rgba(28,126,214,0.08)' },
        { label: 'failures/s', stroke: COLOURS.red, width: 1.5 },
      ],
      data,
    );
  } else view.overview.setData(data);
}

function renderTiles(s) {
  let rate = 0;
  let calls = 0;
  let failed = 0;
  let open = 0;
  for (const p of s.policies) {
    rate += p.rate;
    const lastMinute = p.spark.calls.slice(-60).reduce((a, b) => a + b, 0);
    const failedMinute = p.spark.failures.slice(-60).reduce((a, b) => a + b, 0);
    calls += lastMinute;
    failed += failedMinute;
    if (p.state === 'open' || p.state === 'isolated') open++;
  }
  $('tile-rate').textContent = formatRate(rate);
  $('tile-success').textContent = calls === 0 ? '–' : formatPercent((calls - failed) / calls);
  $('tile-open').textContent = String(open);
  $('tile-open').style.color = open > 0 ? COLOURS.red : '';
  $('tile-faults').textContent = String(s.faults.reduce((a, f) => a + f.count, 0));
  $('tile-events').textContent = String(s.events);
  $('clock').textContent = new Date(s.now).toLocaleTimeString();
}

function policyRow(name) {
  let row = view.rows.get(name);
  if (row !== undefined) return row;
  const tr = el('tr', 'clickable');
  tr.dataset.name = name;
  const cells = {};
  const circleCell = el('td', 'circle-cell');
  cells.circle = el('span', 'circle');
  circleCell.append(cells.circle);
  tr.append(circleCell);
  for (const key of [
    'name',
    'kind',
    'state',
    'rate',
    'success',
    'errors',
    'retries',
    'timeouts',
    'p50',
    'p90',
    'p99',
    'bulkhead',
  ]) {
    const numeric = ['rate', 'success', 'retries', 'timeouts', 'p50', 'p90', 'p99'].includes(key);
    const td = el('td', numeric ? 'num' : key === 'errors' ? 'errors' : '');
    td.dataset.col = key;
    cells[key] = td;
    tr.append(td);
  }
  cells.stateBadge = el('span', 'state');
  cells.state.append(cells.stateBadge);
  const sparkCell = el('td');
  cells.spark = el('canvas', 'spark');
  sparkCell.append(cells.spark);
  tr.append(sparkCell);
  tr.addEventListener('click', () => select('policy', name));
  row = { tr, cells };
  view.rows.set(name, row);
  return row;
}

function renderPolicies(s) {
  const filter = view.filter.trim().toLowerCase();
  const maxRate = Math.max(1, ...s.policies.map((p) => p.rate));
  const shown = s.policies.filter(
    (p) => filter === '' || p.name.toLowerCase().includes(filter) || p.kind.toLowerCase().includes(filter),
  );
  shown.sort((a, b) => {
    if (view.sort === 'name') return a.name.localeCompare(b.name);
    if (view.sort === 'errors')
      return b.errorRate - a.errorRate || b.total - a.total || a.name.localeCompare(b.name);
    return b.rate - a.rate || b.total - a.total || a.name.localeCompare(b.name);
  });
  const tbody = $('policies').tBodies[0];
  const rows = [];
  for (const p of shown) {
    const { tr, cells } = policyRow(p.name);
    const h = health(p);
    const size = Math.round(10 + 22 * Math.sqrt(Math.min(1, p.rate / maxRate)));
    cells.circle.dataset.health = h;
    cells.circle.style.width = `${size}px`;
    cells.circle.style.height = `${size}px`;
    cells.circle.title = `${h}: ${formatPercent(p.errorRate)} errors in the last minute`;
    cells.name.textContent = p.name;
    cells.kind.textContent = p.kind || '–';
    cells.stateBadge.textContent = p.state ?? '–';
    cells.stateBadge.dataset.state = p.state ?? 'none';
    cells.rate.textContent = formatRate(p.rate);
    cells.success.textContent = formatPercent(p.successRate);
    cells.errors.textContent = errorsText(p.errors, p.total);
    cells.retries.textContent = String(p.retries);
    cells.timeouts.textContent = String(p.timeouts);
    cells.p50.textContent = formatMs(p.latency.p50);
    cells.p90.textContent = formatMs(p.latency.p90);
    cells.p99.textContent = formatMs(p.latency.p99);
    cells.bulkhead.textContent = '';
    if (p.bulkhead !== null) {
      const bar = el('span', 'bar');
      const fill = el('span');
      fill.style.width = `${Math.min(100, (p.bulkhead.active / Math.max(1, p.bulkhead.capacity)) * 100)}%`;
      bar.append(fill);
      cells.bulkhead.append(bar, ` ${p.bulkhead.active}/${p.bulkhead.capacity}`);
      if (p.bulkhead.queued > 0) cells.bulkhead.append(` +${p.bulkhead.queued} queued`);
      if (p.bulkhead.rejected > 0) cells.bulkhead.append(` · ${p.bulkhead.rejected} rejected`);
    }
    tr.classList.toggle('selected', sameSelection(view.selected, { scope: 'policy', name: p.name }));
    drawSpark(cells.spark, p.spark.calls, p.spark.failures, p.spark.state);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
  $('policies-empty').hidden = s.policies.length > 0;
  $('policies-count').textContent =
    shown.length === s.policies.length ? `${s.policies.length}` : `${shown.length} of ${s.policies.length}`;
}

function fillTable(id, items, build, scope) {
  const panel = $(`${id}-panel`);
  panel.hidden = items.length === 0;
  if (items.length === 0) return;
  const tbody = $(id).tBodies[0];
  tbody.replaceChildren(
    ...items.map((item) => {
      const tr = el('tr');
      if (scope !== undefined) {
        tr.className = 'clickable';
        tr.dataset.name = item.name;
        tr.classList.toggle('selected', sameSelection(view.selected, { scope, name: item.name }));
        tr.addEventListener('click', () => select(scope, item.name));
      }
      for (const cell of build(item)) {
        if (cell instanceof Node) {
          const td = el('td');
          td.append(cell);
          tr.append(td);
        } else {
          tr.append(el('td', typeof cell === 'number' ? 'num' : '', String(cell)));
        }
      }
      return tr;
    }),
  );
}

function spark(calls, failures) {
  const canvas = el('canvas', 'spark');
  drawSpark(canvas, calls, failures);
  return canvas;
}

function renderOthers(s) {
  fillTable(
    'queues',
    s.queues,
    (q) => [
      q.name,
      q.healthy ? 'healthy' : 'unhealthy',
      q.depth.waiting,
      q.depth.delayed,
      q.depth.active,
      q.depth.dead,
      Number(q.throughput.toFixed(2)),
      q.failovers,
      q.rejected,
      q.workers,
      spark(q.spark.completed, q.spark.failed),
    ],
    'queue',
  );
  fillTable('plans', s.plans, (p) => [
    p.name,
    p.runs.started ?? 0,
    p.runs.succeeded ?? 0,
    p.runs.failed ?? 0,
    p.stepsSucceeded,
    p.stepsFailed,
    p.compensations,
    p.recent
      .slice(0, 3)
      .map((r) => `${r.runId}: ${r.status}${r.rolledBack > 0 ? ` (${r.rolledBack} rolled back)` : ''}`)
      .join(' · ') || '–',
  ]);
  fillTable('faults', s.faults, (f) => [f.name, f.kind, f.count, spark(f.spark)], 'fault');
  fillTable('others', s.others ?? [], (o) => [o.type, errorsText(o.sources), o.count, spark(o.spark)]);
  fillTable('resources', s.resources, (r) => {
    const bar = el('span', 'bar');
    const fill = el('span');
    fill.style.width = `${Math.min(100, (r.used / Math.max(1e-9, r.capacity)) * 100)}%`;
    bar.append(fill);
    return [r.name, bar, `${Number(r.used.toFixed(2))} / ${r.capacity}`];
  });
}

/** A clock time as the page's local time of day. */
function formatTime(ms) {
  if (ms === null || ms === undefined) return '–';
  return new Date(ms).toLocaleTimeString();
}

/** How long ago `at` was, at `now`: "12 s", "4 min", "3 h". */
function ago(now, at) {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

function labelsText(labels) {
  return Object.entries(labels)
    .filter(([name]) => name !== 'alertname')
    .map(([name, value]) => `${name}="${String(value).replace(/[\\"]/g, '\\$&')}"`)
    .join(', ');
}

function button(text, onClick) {
  const b = el('button', '', text);
  b.type = 'button';
  b.addEventListener('click', onClick);
  return b;
}

/** Sends a silence request; the snapshot that follows shows the result. Errors are shown on the form. */
async function silenceRequest(method, path, body) {
  const error = $('silence-error');
  error.textContent = '';
  try {
    const response = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) {
      const reply = await response.json().catch(() => ({}));
      error.textContent = reply.error ?? `${response.status} ${response.statusText}`;
      return false;
    }
    return true;
  } catch {
    error.textContent = 'the dashboard did not answer';
    return false;
  }
}

/** Splits "a="x", b=~"y|z"" into matchers at the commas outside quotes. */
function splitMatchers(text) {
  const out = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && quoted) {
      current += c + (text[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) {
      out.push(current.trim());
      current = '';
    } else current += c;
  }
  out.push(current.trim());
  return out.filter((m) => m !== '');
}

function renderAlerts(s) {
  const a = s.alerts;
  $('alerts-panel').hidden = !a;
  if (!a) return;
  const firing = a.alerts.filter((x) => x.state === 'firing').length;
  $('alerts-count').textContent = `${firing} firing, ${a.alerts.length - firing} pending`;
  $('outbox').textContent =
    `outbox: ${a.outbox.pending} pending · ${a.outbox.delivered} delivered · ${a.outbox.rejected} rejected`;
  $('alerts-empty').hidden = a.alerts.length > 0;
  $('alerts').tBodies[0].replaceChildren(
    ...a.alerts.map((alert) => {
      const tr = el('tr');
      tr.dataset.rule = alert.rule;
      tr.dataset.state = alert.silenced ? 'silenced' : alert.state;
      const state = el('span', 'badge', alert.silenced ? `${alert.state}, silenced` : alert.state);
      state.dataset.state = tr.dataset.state;
      const stateCell = el('td');
      stateCell.append(state);
      const action = el('td');
      action.append(
        button('Silence…', () => {
          $('silence-matchers').value = [`alertname="${alert.rule}"`, labelsText(alert.labels)]
            .filter((m) => m !== '')
            .join(', ');
          $('silence-comment').focus();
        }),
      );
      tr.append(
        el('td', '', alert.rule),
        stateCell,
        el('td', 'labels', labelsText(alert.labels) || '–'),
        el('td', 'num', Number.isFinite(alert.value) ? String(Number(alert.value.toPrecision(4))) : '–'),
        el('td', '', `${formatTime(alert.since)} (${ago(s.now, alert.since)})`),
        action,
      );
      return tr;
    }),
  );
  $('silences').hidden = a.silences.length === 0;
  $('silences').tBodies[0].replaceChildren(
    ...a.silences.map((silence) => {
      const tr = el('tr');
      tr.dataset.id = silence.id;
      tr.dataset.state = silence.state;
      const action = el('td');
      if (silence.state !== 'expired') {
        action.append(
          button('Expire', () => silenceRequest('DELETE', `/api/silences/${encodeURIComponent(silence.id)}`)),
        );
      }
      tr.append(
        el('td', 'labels', silence.matchers),
        el('td', '', silence.state),
        el('td', '', formatTime(silence.endsAt)),
        el('td', '', silence.createdBy || '–'),
        el('td', '', silence.comment || '–'),
        action,
      );
      return tr;
    }),
  );
}

function renderHealth(s) {
  const h = s.health;
  const shown = h.probes.length + h.children.length + h.escalations.length + h.healing.length > 0;
  $('health-panel').hidden = !shown;
  if (!shown) return;
  $('probes').hidden = h.probes.length === 0;
  $('probes').tBodies[0].replaceChildren(
    ...h.probes.map((p) => {
      const tr = el('tr');
      tr.dataset.component = p.component;
      tr.dataset.probe = p.probe;
      tr.dataset.healthy = String(p.healthy);
      const status = el('span', 'badge', p.healthy ? 'up' : 'down');
      status.dataset.state = p.healthy ? 'up' : 'down';
      const cell = el('td');
      cell.append(status);
      tr.append(
        el('td', '', p.component),
        el('td', '', p.probe),
        cell,
        el('td', '', p.ok ? 'ok' : 'failed'),
        el('td', 'num', formatMs(p.durationMs)),
        el('td', 'num', String(p.failingFor)),
        el('td', 'num', String(p.checks)),
        el('td', 'num', String(p.failures)),
        el('td', '', `${ago(s.now, p.at)} ago`),
      );
      return tr;
    }),
  );
  $('children').hidden = h.children.length === 0;
  $('children').tBodies[0].replaceChildren(
    ...h.children.map((c) => {
      const tr = el('tr');
      tr.dataset.child = c.child;
      tr.dataset.state = c.state;
      tr.append(
        el('td', '', c.supervisor),
        el('td', '', c.child),
        el('td', '', c.state),
        el('td', '', c.reason || '–'),
        el('td', 'num', String(c.restarts)),
        el('td', 'num', String(c.escalations)),
        el('td', '', `${ago(s.now, c.at)} ago`),
      );
      return tr;
    }),
  );
  $('escalations').textContent = h.escalations
    .slice(0, 3)
    .map(
      (e) =>
        `${formatTime(e.at)}: supervisor ${e.supervisor} gave up on ${e.child} after ${e.restarts} restarts in ${formatMs(e.periodMs)}`,
    )
    .join(' · ');
  $('escalations').hidden = h.escalations.length === 0;
  $('healing').hidden = h.healing.length === 0;
  $('healing').textContent = h.healing
    .map((x) => `${x.action} ${x.target}: ${x.runs} run${x.runs === 1 ? '' : 's'}, ${x.failures} failed`)
    .join(' · ');
}

/**
 * Pattern times are the events' own: an offset from the first event for virtual-clock (lab) runs, whose
 * clocks start near 0; a clock time for anything else.
 */
function patternTime(ms, origin) {
  const YEAR = 365 * 86400000;
  if (ms < YEAR && origin !== null && origin < YEAR) return `+${formatMs(ms - origin)}`;
  return formatTime(ms);
}

function renderPatterns(s) {
  const p = s.patterns;
  const shown = !!p && p.failures > 0;
  $('patterns-panel').hidden = !shown;
  if (!shown) return;
  $('patterns-summary').textContent = `${p.failures} failures in the latest ${p.events} events`;
  const fill = (id, rows, build) => {
    $(id).closest('div').hidden = rows.length === 0;
    $(id).tBodies[0].replaceChildren(
      ...rows.map((row) => {
        const tr = el('tr');
        for (const cell of build(row))
          tr.append(el('td', typeof cell === 'number' ? 'num' : '', String(cell)));
        return tr;
      }),
    );
  };
  fill('signatures', p.signatures, (x) => [x.code, x.target, x.count, patternTime(x.lastSeen, p.from)]);
  fill('bursts', p.bursts, (x) => [
    x.target,
    x.count,
    Number(x.expected.toFixed(1)),
    formatMs(x.end - x.start),
    patternTime(x.start, p.from),
  ]);
  fill('correlations', p.correlations, (x) => [
    x.targets.join(', '),
    x.leader,
    x.count,
    patternTime(x.start, p.from),
  ]);
  fill('futile', p.futileRetries, (x) => [x.target, x.retried, formatPercent(x.successRate)]);
}

/** What the detail view shows for each kind of row: its header, live series and history series. */
const DETAIL = {
  policy: {
    find: (s, name) => s.policies.find((p) => p.name === name),
    header: (p) =>
      `${p.kind}${p.state ? ` · ${p.state}` : ''} · ${p.total} calls${p.state ? ` · opened ${p.opens}×` : ''}`,
    live: (p) => [
      ['calls/s', COLOURS.blue, p.spark.calls],
      ['failures/s', COLOURS.red, p.spark.failures],
    ],
    history: [
      ['calls/min', COLOURS.blue, (v) => v.calls ?? 0],
      ['failures/min', COLOURS.red, (v) => (v.calls ?? 0) - (v.success ?? 0)],
      ['p99 ms', '#7048e8', (v) => v.p99 ?? null, 'ms'],
    ],
  },
  queue: {
    find: (s, name) => s.queues.find((q) => q.name === name),
    header: (q) =>
      `queue · ${q.healthy ? 'healthy' : 'unhealthy'} · ${q.depth.waiting} waiting · ${q.depth.dead} dead letters`,
    live: (q) => [
      ['completed/s', COLOURS.blue, q.spark.completed],
      ['failed/s', COLOURS.red, q.spark.failed],
    ],
    history: [
      ['completed/min', COLOURS.blue, (v) => v.completed ?? 0],
      ['failed or dead/min', COLOURS.red, (v) => (v.failed ?? 0) + (v.dead ?? 0)],
      ['waiting (max)', '#7048e8', (v) => v.waiting ?? null, 'depth'],
    ],
  },
  fault: {
    find: (s, name) => s.faults.find((f) => f.name === name),
    header: (f) => `fault · ${f.kind} · ${f.count} injected`,
    live: (f) => [['injected/s', COLOURS.red, f.spark]],
    history: [['injected/min', COLOURS.red, (v) => v.injected ?? 0]],
  },
};

const sameSelection = (a, b) =>
  a !== undefined && b !== undefined && a.scope === b.scope && a.name === b.name;

function select(scope, name) {
  const next = { scope, name };
  view.selected = sameSelection(view.selected, next) ? undefined : next;
  view.historyFor = undefined;
  $('detail').hidden = view.selected === undefined;
  if (view.snapshot) render(view.snapshot);
}

async function loadHistory(selected, now) {
  view.historyFor = selected;
  view.historyAt = now;
  const from = now - 24 * 3600 * 1000;
  const query = `scope=${selected.scope}&name=${encodeURIComponent(selected.name)}&from=${from}&to=${now + 60000}`;
  let points = [];
  try {
    const response = await fetch(`/api/history?${query}`, { credentials: 'same-origin' });
    if (response.ok) points = (await response.json()).points;
  } catch {
    points = [];
  }
  if (!sameSelection(view.selected, selected)) return;
  const spec = DETAIL[selected.scope].history;
  $('detail-history-note').textContent =
    points.length === 0 ? '(nothing yet)' : `${points.length} minute${points.length === 1 ? '' : 's'}`;
  const data = [
    points.map((p) => p.minute / 1000),
    ...spec.map(([, , read]) => points.map((p) => read(p.values))),
  ];
  view.detailHistory?.destroy();
  const container = $('detail-history');
  container.replaceChildren();
  const second = spec.find(([, , , scale]) => scale !== undefined);
  view.detailHistory = new uPlot(
    {
      width: Math.max(300, container.clientWidth || 600),
      height: 200,
      // At least the last hour, so that a few minutes of history do not stretch over the whole axis.
      scales: {
        x: {
          time: true,
          range: () => [
            Math.min(data[0][0] ?? Number.POSITIVE_INFINITY, (now - 3600 * 1000) / 1000),
            now / 1000 + 60,
          ],
        },
      },
      series: [
        {},
        ...spec.map(([label, stroke, , scale]) => ({
          label,
          stroke,
          width: scale === undefined ? 1.5 : 1,
          ...(scale === undefined ? {} : { scale }),
        })),
      ],
      axes: [
        {},
        { size: 50 },
        ...(second === undefined ? [] : [{ side: 1, scale: second[3], size: 50, grid: { show: false } }]),
      ],
      legend: { live: false },
    },
    data,
    container,
  );
}

function renderControls(s, name) {
  const controls = $('detail-controls');
  const actions = s.controls[name] ?? [];
  if (controls.dataset.for === name && controls.childElementCount === actions.length) return;
  controls.dataset.for = name;
  controls.replaceChildren(
    ...actions.map((action) => {
      const button = el('button', '', action);
      button.type = 'button';
      button.addEventListener('click', () => {
        fetch('/api/control', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name, action }),
        }).catch(() => undefined);
      });
      return button;
    }),
  );
}

function renderDetail(s) {
  const selected = view.selected;
  if (selected === undefined) return;
  const spec = DETAIL[selected.scope];
  const item = spec.find(s, selected.name);
  if (item === undefined) return;
  $('detail-name').textContent = selected.name;
  $('detail-kind').textContent = spec.header(item);
  renderControls(s, selected.name);
  const live = spec.live(item);
  const data = [secondsAxis(s.now, live[0][2].length), ...live.map(([, , values]) => values)];
  const key = `${selected.scope}:${selected.name}`;
  if (view.detailLive === undefined || view.detailLive.__for !== key) {
    view.detailLive?.destroy();
    $('detail-live').replaceChildren();
    view.detailLive = chart(
      $('detail-live'),
      live.map(([label, stroke]) => ({ label, stroke, width: 1.5 })),
      data,
    );
    view.detailLive.__for = key;
  } else view.detailLive.setData(data);
  if (!sameSelection(view.historyFor, selected) || s.now - view.historyAt > 60000)
    loadHistory(selected, s.now);
}

function render(s) {
  view.snapshot = s;
  renderTiles(s);
  renderOverview(s);
  renderPolicies(s);
  renderDetail(s);
  renderOthers(s);
  renderAlerts(s);
  renderHealth(s);
  renderPatterns(s);
  document.body.dataset.events = String(s.events);
}

function connect() {
  const status = $('status');
  const source = new EventSource('/events', { withCredentials: true });
  source.addEventListener('info', (e) => {
    const info = JSON.parse(e.data);
    $('title').textContent = `— ${info.title}`;
    document.title = `Bulwark · ${info.title}`;
  });
  source.addEventListener('snapshot', (e) => {
    status.dataset.status = 'live';
    status.textContent = 'live';
    render(JSON.parse(e.data));
  });
  source.addEventListener('error', () => {
    status.dataset.status = 'reconnecting';
    status.textContent = 'reconnecting…';
  });
}

$('filter').addEventListener('input', (e) => {
  view.filter = e.target.value;
  if (view.snapshot) renderPolicies(view.snapshot);
});
$('sort').addEventListener('change', (e) => {
  view.sort = e.target.value;
  if (view.snapshot) renderPolicies(view.snapshot);
});
$('silence-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const body = {
    matchers: splitMatchers($('silence-matchers').value),
    duration: $('silence-duration').value.trim(),
  };
  const createdBy = $('silence-by').value.trim();
  const comment = $('silence-comment').value.trim();
  if (createdBy !== '') body.createdBy = createdBy;
  if (comment !== '') body.comment = comment;
  if (await silenceRequest('POST', '/api/silences', body)) {
    $('silence-matchers').value = '';
    $('silence-comment').value = '';
  }
});
$('detail-close').addEventListener('click', () => {
  if (view.selected !== undefined) select(view.selected.scope, view.selected.name);
});
window.addEventListener('resize', () => {
  const width = Math.max(300, $('overview-chart').clientWidth);
  view.overview?.setSize({ width, height: 200 });
});
connect();
