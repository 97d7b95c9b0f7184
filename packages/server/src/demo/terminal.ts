// The demo's live view. On a terminal, a compact table redrawn in place every 250 ms: breaker
// states, bulkhead use, calls by outcome, recent latency, runs. Elsewhere (a pipe, a file, CI),
// one summary line a second and a line per phase, without escape sequences. Colours only on a
// terminal and never with NO_COLOR.
import type { Figures, Latency } from './figures.ts';
import type { Gauges } from './recorder.ts';
import type { Phase } from './upstreams.ts';

export interface Terminal {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/** Everything one frame shows. */
export interface Frame {
  readonly elapsedMs: number;
  readonly plannedMs: number;
  readonly phase: Phase;
  readonly phaseIndex: number;
  readonly phaseCount: number;
  readonly figures: Figures;
  readonly gauges: Readonly<Record<string, Gauges>>;
  /** Latency of the last seconds, by dependency. */
  readonly recent: Readonly<Record<string, Latency>>;
}

type Paint = (code: string, text: string) => string;
const plain: Paint = (_code, text) => text;
const ansi: Paint = (code, text) => `\u001b[${code}m${text}\u001b[0m`;

const STATE_COLOUR: Record<string, string> = {
  closed: '32',
  open: '1;31',
  'half-open': '33',
  isolated: '1;35',
};

function seconds(ms: number): string {
  return `${(ms / 1_000).toFixed(1)}s`;
}

function millis(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '-' : `${Math.round(ms)}ms`;
}

/** The table a terminal shows, one string per line. */
export function renderTable(frame: Frame, colour: boolean): string[] {
  const paint = colour ? ansi : plain;
  const { figures, gauges } = frame;
  const head = [
    'dependency',
    'breaker',
    'bulkhead',
    'calls',
    'ok',
    'retried',
    'retries',
    'short-circ',
    'bh-reject',
    'rate-lim',
    'timed-out',
    'failed',
    'p50',
    'p99',
  ];
  const rows: string[][] = [];
  for (const [name, d] of Object.entries(figures.dependencies)) {
    const g = gauges[name];
    const bulkhead =
      g?.bulkhead === undefined ? '-' : `${g.bulkhead.active}/${g.bulkhead.max} q${g.bulkhead.queued}`;
    const recent = frame.recent[name];
    const o = d.outcomes;
    rows.push([
      name,
      g?.state ?? '-',
      bulkhead,
      String(d.calls),
      String(o.success),
      String(o.retried),
      String(d.retries),
      String(o['short-circuited']),
      String(o['bulkhead-rejected']),
      String(o['rate-limited']),
      String(o['timed-out']),
      String(o.failed),
      millis(recent?.p50),
      millis(recent?.p99),
    ]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  /** Names to the left, figures to the right. */
  const pad = (cells: string[]) =>
    cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)));
  const lines = [
    paint(
      '1',
      `Bulwark demo  ${seconds(frame.elapsedMs)} of ${seconds(frame.plannedMs)}  phase ${frame.phaseIndex + 1}/${frame.phaseCount} ${frame.phase.name}: ${frame.phase.title}`,
    ),
    paint('2', pad(head).join('  ')),
  ];
  for (const row of rows) {
    // Padded first, painted after, so escape sequences do not upset the columns.
    const cells = pad(row);
    cells[1] = paint(STATE_COLOUR[row[1]!] ?? '0', cells[1]!);
    lines.push(cells.join('  '));
  }
  for (const [name, g] of Object.entries(figures.groups)) {
    lines.push(
      `${name} (group): ${g.calls} calls, ${g.outcomes.success} answered by a provider, ${paint('33', `${g.outcomes.fallback} by the fallback`)}, ${g.outcomes.failed} failed`,
    );
  }
  const r = figures.runs;
  lines.push(
    `runs: ${r.started} started, ${r.completed} completed, ${r.failed} failed, ${paint('33', `${r.parkedNow} parked now`)} (${r.parkedRuns} parked at some point, ${r.resumed} resumed)`,
  );
  return lines;
}

/** The one line a second written when the output is not a terminal. */
export function renderLine(frame: Frame): string {
  const { figures } = frame;
  const sum = (key: keyof Figures['dependencies'][string]['outcomes']) =>
    Object.values(figures.dependencies).reduce((n, d) => n + d.outcomes[key], 0);
  const breakers = Object.entries(frame.gauges)
    .filter(([, g]) => g.state !== undefined)
    .map(([name, g]) => `${name}=${g.state}`)
    .join(' ');
  const r = figures.runs;
  const fallbacks = figures.totals.fallbacks;
  return (
    `${seconds(frame.elapsedMs).padStart(6)} ${frame.phase.name.padEnd(8)} calls ${figures.totals.calls}: ` +
    `ok ${sum('success')}, retried ${sum('retried')}, short-circuited ${sum('short-circuited')}, ` +
    `bulkhead-rejected ${sum('bulkhead-rejected')}, rate-limited ${sum('rate-limited')}, timed out ${sum('timed-out')}, ` +
    `failed ${sum('failed')}; retries ${figures.totals.retries}; fallbacks ${fallbacks}; ` +
    `breakers ${breakers}; runs ${r.started} (${r.completed} completed, ${r.failed} failed, ${r.parkedNow} parked)`
  );
}

export interface LiveViewOptions {
  /** Builds the frame to show now. */
  frame: () => Frame;
  /** Redraw in place (a terminal). @default out.isTTY */
  tty?: boolean;
  /** @default tty and NO_COLOR not set */
  colour?: boolean;
  env?: Record<string, string | undefined>;
}

/** Draws frames until stopped: in place on a terminal, as lines elsewhere. */
export class LiveView {
  readonly #out: Terminal;
  readonly #frame: () => Frame;
  readonly #tty: boolean;
  readonly #colour: boolean;
  #timer: NodeJS.Timeout | undefined;
  /** Lines of the last frame drawn in place, to move back over. */
  #drawn = 0;
  #phase = -1;
  /** When the last summary line was written (not a terminal). */
  #lineAt = Number.NEGATIVE_INFINITY;

  constructor(out: Terminal, options: LiveViewOptions) {
    this.#out = out;
    this.#frame = options.frame;
    this.#tty = options.tty ?? out.isTTY === true;
    const env = options.env ?? process.env;
    this.#colour = options.colour ?? (this.#tty && env.NO_COLOR === undefined);
  }

  start(): void {
    if (this.#tty) this.#out.write('\u001b[?25l');
    this.#draw();
    // Elsewhere too every 250 ms, so that a new phase is announced when it starts; summary lines once a second.
    this.#timer = setInterval(() => this.#draw(), 250);
  }

  /** Draws the last frame and stops. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#draw(true);
    if (this.#tty) this.#out.write('\u001b[?25h');
  }

  #draw(last = false): void {
    const frame = this.#frame();
    if (this.#tty) {
      const lines = renderTable(frame, this.#colour);
      // Back to the first line of the previous frame, cleared to the end of the screen.
      const back = this.#drawn > 0 ? `\u001b[${this.#drawn}F\u001b[J` : '';
      this.#out.write(`${back}${lines.join('\n')}\n`);
      this.#drawn = lines.length;
      return;
    }
    if (frame.phaseIndex !== this.#phase) {
      this.#phase = frame.phaseIndex;
      this.#out.write(
        `-- phase ${frame.phaseIndex + 1}/${frame.phaseCount} ${frame.phase.name} (from ${seconds(frame.phase.fromMs)}): ${frame.phase.title}\n`,
      );
    }
    if (!last && frame.elapsedMs - this.#lineAt < 1_000) return;
    this.#lineAt = frame.elapsedMs;
    this.#out.write(`${renderLine(frame)}\n`);
  }
}
