// The demo's report: one self-contained HTML page (inline SVG charts of latency over time,
// outcomes by policy and breaker states over time, and a summary table; no script, no external
// resource) beside `report.json` (the figures, the phases and what each upstream saw) and
// `events.ndjson` (every event the figures were computed from).
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type DemoMeta, type Figures, OUTCOMES, type Outcome } from './figures.ts';
import type { LoadPlan } from './load.ts';
import type { BreakerState, DemoEvent } from './recorder.ts';
import type { UpstreamLog } from './upstreams.ts';

export interface ReportInput {
  readonly meta: DemoMeta;
  readonly figures: Figures;
  readonly events: readonly DemoEvent[];
  readonly upstreams: readonly UpstreamLog[];
  /** The dashboard's address while the demo ran (undefined with --no-server). */
  readonly server: string | undefined;
  readonly load: LoadFigures;
}

/** What the load was asked to do, and what it skipped at its in-flight bounds. */
export interface LoadFigures {
  readonly plan: LoadPlan;
  readonly skipped: number;
}

/** The contents of `report.json`. */
export interface ReportJson extends DemoMeta {
  readonly version: 1;
  readonly server: string | null;
  readonly figures: Figures;
  /** What each upstream saw on its side of the wire, counted apart from the recorder. */
  readonly upstreams: Readonly<Record<string, UpstreamLog>>;
  readonly load: LoadFigures;
}

export interface WrittenReport {
  readonly dir: string;
  readonly html: string;
  readonly json: string;
  readonly events: string;
}

const REPORT_FILES = { html: 'report.html', json: 'report.json', events: 'events.ndjson' } as const;

/** Writes the three files into `dir` (created if need be); returns their absolute paths. */
export async function writeReport(dir: string, input: ReportInput): Promise<WrittenReport> {
  const at = resolve(dir);
  await mkdir(at, { recursive: true });
  const json: ReportJson = {
    version: 1,
    ...input.meta,
    server: input.server ?? null,
    figures: input.figures,
    upstreams: Object.fromEntries(input.upstreams.map((u) => [u.name, u])),
    load: input.load,
  };
  const paths = {
    dir: at,
    html: join(at, REPORT_FILES.html),
    json: join(at, REPORT_FILES.json),
    events: join(at, REPORT_FILES.events),
  };
  await writeFile(paths.json, `${JSON.stringify(json, null, 2)}\n`);
  await writeFile(paths.events, input.events.map((e) => `${JSON.stringify(e)}\n`).join(''));
  await writeFile(paths.html, renderHtml(json));
  return paths;
}

const OUTCOME_COLOUR: Record<Outcome, string> = {
  success: '#2e7d32',
  retried: '#81c784',
  fallback: '#f9a825',
  'short-circuited': '#c62828',
  'bulkhead-rejected': '#6a1b9a',
  'rate-limited': '#1565c0',
  'timed-out': '#ef6c00',
  failed: '#424242',
  cancelled: '#9e9e9e',
};
const STATE_COLOUR: Record<BreakerState, string> = {
  closed: '#a5d6a7',
  open: '#e57373',
  'half-open': '#ffd54f',
  isolated: '#ce93d8',
};

const WIDTH = 900;
const LEFT = 110;
const RIGHT = 20;
const PLOT = WIDTH - LEFT - RIGHT;

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A round number at or above `value`, for an axis. */
function niceCeil(value: number): number {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** The time axis of the two time charts: the whole demo, in seconds. */
function timeAxis(spanMs: number, y: number, height: number): string {
  const x = (t: number) => LEFT + (t / spanMs) * PLOT;
  const stepS = niceCeil(spanMs / 1_000 / 8);
  let out = `<line x1="${LEFT}" y1="${y}" x2="${LEFT + PLOT}" y2="${y}" stroke="#555"/>`;
  for (let s = 0; s * 1_000 <= spanMs; s += stepS) {
    out += `<line x1="${fmt(x(s * 1_000))}" y1="${y}" x2="${fmt(x(s * 1_000))}" y2="${y + 4}" stroke="#555"/>`;
    out += `<text x="${fmt(x(s * 1_000))}" y="${y + 16}" text-anchor="middle">${s}s</text>`;
  }
  return `${out}<line x1="${LEFT}" y1="${y - height}" x2="${LEFT}" y2="${y}" stroke="#555"/>`;
}

function phaseBands(report: ReportJson, spanMs: number, top: number, height: number): string {
  const x = (t: number) => LEFT + (Math.min(t, spanMs) / spanMs) * PLOT;
  return report.phases
    .filter((p) => p.fromMs < spanMs)
    .map(
      (p, i) =>
        `<rect x="${fmt(x(p.fromMs))}" y="${top}" width="${fmt(x(p.toMs) - x(p.fromMs))}" height="${height}" fill="${i % 2 === 0 ? '#f5f5f5' : '#ebebeb'}"><title>${esc(`${p.name}: ${p.title}`)}</title></rect>` +
        `<text x="${fmt(x(p.fromMs) + 4)}" y="${top + 12}" class="phase">${esc(p.name)}</text>`,
    )
    .join('');
}

/** Latency over time: p50 and p99 of each bucket, over the phases. */
function latencyChart(report: ReportJson): string {
  const { bucketMs, points } = report.figures.latency;
  const spanMs = Math.max(report.elapsedMs, points.length * bucketMs, 1);
  const top = 10;
  const height = 220;
  const bottom = top + height;
  const max = niceCeil(Math.max(1, ...points.map((p) => p.p99 ?? 0)));
  const x = (t: number) => LEFT + (t / spanMs) * PLOT;
  const y = (ms: number) => bottom - (ms / max) * height;
  /** Polylines with a gap wherever a bucket had no call. */
  const series = (key: 'p50' | 'p99', colour: string) => {
    const runs: string[][] = [[]];
    for (const p of points) {
      const value = p[key];
      if (value === null) {
        if (runs.at(-1)!.length > 0) runs.push([]);
        continue;
      }
      runs.at(-1)!.push(`${fmt(x(p.t + bucketMs / 2))},${fmt(y(value))}`);
    }
    return runs
      .filter((r) => r.length > 0)
      .map((r) =>
        r.length === 1
          ? `<circle cx="${r[0]!.split(',')[0]}" cy="${r[0]!.split(',')[1]}" r="2" fill="${colour}"/>`
          : `<polyline points="${r.join(' ')}" fill="none" stroke="${colour}" stroke-width="2"/>`,
      )
      .join('');
  };
  let grid = '';
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    grid += `<line x1="${LEFT}" y1="${fmt(y(v))}" x2="${LEFT + PLOT}" y2="${fmt(y(v))}" stroke="#ddd"/>`;
    grid += `<text x="${LEFT - 6}" y="${fmt(y(v) + 4)}" text-anchor="end">${fmt(v)} ms</text>`;
  }
  const legend =
    `<rect x="${LEFT + PLOT - 150}" y="${top + 4}" width="12" height="3" fill="#1565c0"/><text x="${LEFT + PLOT - 134}" y="${top + 9}">p50</text>` +
    `<rect x="${LEFT + PLOT - 90}" y="${top + 4}" width="12" height="3" fill="#ef6c00"/><text x="${LEFT + PLOT - 74}" y="${top + 9}">p99</text>`;
  return svg(
    'latency-chart',
    `Latency over time: p50 and p99 per ${bucketMs} ms of the calls that reached their dependency`,
    bottom + 30,
    phaseBands(report, spanMs, top, height) +
      grid +
      timeAxis(spanMs, bottom, height) +
      series('p50', '#1565c0') +
      series('p99', '#ef6c00') +
      legend,
  );
}

/** Outcomes by policy: one bar per dependency and group, split by how its calls ended. */
function outcomesChart(report: ReportJson): string {
  const rows: [string, number, Record<Outcome, number>][] = [
    ...Object.entries(report.figures.dependencies).map(
      ([name, d]) => [name, d.calls, d.outcomes] as [string, number, Record<Outcome, number>],
    ),
    ...Object.entries(report.figures.groups).map(
      ([name, g]) => [`${name} (group)`, g.calls, g.outcomes] as [string, number, Record<Outcome, number>],
    ),
  ];
  const barHeight = 22;
  const gap = 12;
  const legendHeight = 40;
  let body = '';
  const barWidth = PLOT - 70;
  rows.forEach(([name, calls, outcomes], i) => {
    const y = legendHeight + i * (barHeight + gap);
    body += `<text x="${LEFT - 8}" y="${y + 15}" text-anchor="end">${esc(name)}</text>`;
    let x = LEFT;
    for (const outcome of OUTCOMES) {
      const n = outcomes[outcome];
      if (n === 0 || calls === 0) continue;
      const w = (n / calls) * barWidth;
      body += `<rect x="${fmt(x)}" y="${y}" width="${fmt(w)}" height="${barHeight}" fill="${OUTCOME_COLOUR[outcome]}" data-outcome="${outcome}" data-count="${n}"><title>${esc(`${name}: ${outcome} ${n} of ${calls}`)}</title></rect>`;
      if (w > 28) {
        body += `<text x="${fmt(x + w / 2)}" y="${y + 15}" text-anchor="middle" class="on-bar">${n}</text>`;
      }
      x += w;
    }
    body += `<text x="${LEFT + barWidth + 8}" y="${y + 15}">${calls} calls</text>`;
  });
  let legend = '';
  OUTCOMES.forEach((outcome, i) => {
    const lx = LEFT + (i % 5) * 150;
    const ly = 4 + Math.floor(i / 5) * 16;
    legend += `<rect x="${lx}" y="${ly}" width="10" height="10" fill="${OUTCOME_COLOUR[outcome]}"/><text x="${lx + 14}" y="${ly + 9}">${outcome}</text>`;
  });
  return svg(
    'outcomes-chart',
    'Outcomes by policy: how the calls of each dependency and group ended',
    legendHeight + rows.length * (barHeight + gap) + 4,
    legend + body,
  );
}

/** Breaker states over time, one lane per dependency with a breaker, each transition marked. */
function breakerChart(report: ReportJson): string {
  const spanMs = Math.max(report.elapsedMs, 1);
  const names = Object.keys(report.figures.breakers);
  const lane = 24;
  const gap = 14;
  const top = 24;
  const x = (t: number) => LEFT + (Math.min(t, spanMs) / spanMs) * PLOT;
  let body = '';
  names.forEach((name, i) => {
    const y = top + i * (lane + gap);
    const transitions = report.figures.breakers[name]!;
    body += `<text x="${LEFT - 8}" y="${y + 16}" text-anchor="end">${esc(name)}</text>`;
    let state: BreakerState = 'closed';
    let from = 0;
    const segment = (to: number) => {
      if (to <= from) return;
      body += `<rect x="${fmt(x(from))}" y="${y}" width="${fmt(x(to) - x(from))}" height="${lane}" fill="${STATE_COLOUR[state]}"><title>${esc(`${name} ${state} from ${fmt(from / 1_000)}s to ${fmt(to / 1_000)}s`)}</title></rect>`;
    };
    for (const tr of transitions) {
      segment(tr.t);
      body += `<line x1="${fmt(x(tr.t))}" y1="${y - 3}" x2="${fmt(x(tr.t))}" y2="${y + lane + 3}" stroke="#333" data-transition="${tr.from}->${tr.to}"><title>${esc(`${(tr.t / 1_000).toFixed(2)}s ${name}: ${tr.from} → ${tr.to}${tr.reason === undefined ? '' : ` (${tr.reason})`}`)}</title></line>`;
      state = tr.to;
      from = Math.max(from, tr.t);
    }
    segment(spanMs);
  });
  const height = top + names.length * (lane + gap) + 10;
  let legend = '';
  (['closed', 'open', 'half-open'] as const).forEach((state, i) => {
    legend += `<rect x="${LEFT + i * 110}" y="4" width="10" height="10" fill="${STATE_COLOUR[state]}"/><text x="${LEFT + i * 110 + 14}" y="13">${state}</text>`;
  });
  return svg(
    'breaker-chart',
    'Breaker transitions over time, per dependency',
    height + 24,
    legend + body + timeAxis(spanMs, height, height - top),
  );
}

function svg(id: string, title: string, height: number, body: string): string {
  return (
    `<figure><svg id="${id}" role="img" aria-labelledby="${id}-title" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}">` +
    `<title id="${id}-title">${esc(title)}</title>${body}</svg><figcaption>${esc(title)}</figcaption></figure>`
  );
}

/** A table cell holding a figure; `data-figure` is its path in report.json, for anyone checking. */
function cell(path: string, value: number | string | null): string {
  return `<td data-figure="${esc(path)}">${value === null ? '-' : esc(String(value))}</td>`;
}

function summaryTables(report: ReportJson): string {
  const f = report.figures;
  const columns: [string, (name: string) => [string, number | string | null]][] = [
    ['calls', (n) => [`figures.dependencies.${n}.calls`, f.dependencies[n]!.calls]],
    ...OUTCOMES.filter((o) => o !== 'fallback').map(
      (o) =>
        [o, (n: string) => [`figures.dependencies.${n}.outcomes.${o}`, f.dependencies[n]!.outcomes[o]]] as [
          string,
          (name: string) => [string, number],
        ],
    ),
    ['retries', (n) => [`figures.dependencies.${n}.retries`, f.dependencies[n]!.retries]],
    ['requests sent', (n) => [`figures.dependencies.${n}.sent`, f.dependencies[n]!.sent]],
    ['upstream received', (n) => [`upstreams.${n}.received`, report.upstreams[n]?.received ?? null]],
    ['p50 ms', (n) => [`figures.dependencies.${n}.latency.p50`, f.dependencies[n]!.latency.p50]],
    ['p99 ms', (n) => [`figures.dependencies.${n}.latency.p99`, f.dependencies[n]!.latency.p99]],
    [
      'breaker opened',
      (n) => [`figures.dependencies.${n}.breaker.opened`, f.dependencies[n]!.breaker?.opened ?? null],
    ],
  ];
  let deps = `<table id="dependencies"><thead><tr><th>dependency</th>${columns.map(([h]) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>`;
  for (const name of Object.keys(f.dependencies)) {
    deps += `<tr><th>${esc(name)}</th>${columns.map(([, get]) => cell(...get(name))).join('')}</tr>`;
  }
  deps += '</tbody></table>';

  let groups =
    '<table id="groups"><thead><tr><th>group</th><th>calls</th><th>answered by a provider</th><th>fallback</th><th>failed</th></tr></thead><tbody>';
  for (const [name, g] of Object.entries(f.groups)) {
    groups += `<tr><th>${esc(name)}</th>${cell(`figures.groups.${name}.calls`, g.calls)}${cell(`figures.groups.${name}.outcomes.success`, g.outcomes.success)}${cell(`figures.groups.${name}.outcomes.fallback`, g.outcomes.fallback)}${cell(`figures.groups.${name}.outcomes.failed`, g.outcomes.failed)}</tr>`;
  }
  groups += '</tbody></table>';

  const r = f.runs;
  const runRows: [string, keyof typeof r][] = [
    ['started', 'started'],
    ['completed', 'completed'],
    ['failed', 'failed'],
    ['parked at some point', 'parkedRuns'],
    ['times parked', 'parks'],
    ['times resumed', 'resumed'],
    ['unfinished at the end', 'unfinished'],
  ];
  const runs = `<table id="runs"><tbody>${runRows
    .map(([label, key]) => `<tr><th>${esc(label)}</th>${cell(`figures.runs.${key}`, r[key] as number)}</tr>`)
    .join('')}</tbody></table>`;
  return `<h2>Dependencies</h2>${deps}<h2>Groups</h2>${groups}<h2>Workflow runs</h2>${runs}`;
}

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
svg text{font:11px system-ui,sans-serif;fill:#333}svg text.phase{fill:#777}svg text.on-bar{fill:#fff}
figure{margin:1rem 0}figcaption{color:#555;font-size:12px}
table{border-collapse:collapse;margin:.5rem 0;font-size:12px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 5px;text-align:right}th{background:#f5f5f5}
thead th{font-weight:600;font-size:11px}tbody th{text-align:left}
ol.phases li{margin:.2rem 0}`;

/** The HTML page: everything inline, no script. */
export function renderHtml(report: ReportJson): string {
  const took = `${(report.loadMs / 1_000).toFixed(1)} s`;
  const phases = report.phases
    .map(
      (p) =>
        `<li><b>${esc(p.name)}</b> (${(p.fromMs / 1_000).toFixed(1)} s to ${(p.toMs / 1_000).toFixed(1)} s): ${esc(p.title)}</li>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bulwark demo report</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Bulwark demo report</h1>
<p>Seed <b data-figure="seed">${report.seed}</b>; the load ran for <b>${took}</b>${report.stoppedEarly ? ' (stopped early)' : ''} of the ${(report.plannedMs / 1_000).toFixed(1)} s planned, then ${((report.elapsedMs - report.loadMs) / 1_000).toFixed(1)} s to let the runs in progress finish and close.
${report.figures.totals.calls} calls, ${report.figures.totals.sent} requests sent, ${report.figures.totals.retries} retries, ${report.figures.totals.fallbacks} fallbacks, ${report.figures.runs.started} workflow runs.
Load per second: ${report.load.plan.calls.map((c) => `${c.perSecond} calls to ${esc(c.target)}`).join(', ')} and ${report.load.plan.runsPerSecond} runs of ${esc(report.load.plan.workflow)}; <span data-figure="load.skipped">${report.load.skipped}</span> skipped at the bound of ${report.load.plan.maxCallsInFlight} calls in flight or ${report.load.plan.maxOpenRuns} open runs.
The figures come from the registry's and the engine's events, kept in <code>events.ndjson</code>; <code>report.json</code> holds them with what each upstream counted on its side.</p>
<h2>Phases</h2>
<ol class="phases">${phases}</ol>
<h2>Latency over time</h2>
${latencyChart(report)}
<h2>Outcomes by policy</h2>
${outcomesChart(report)}
<h2>Breaker transitions over time</h2>
${breakerChart(report)}
${summaryTables(report)}
</body>
</html>
`;
}
