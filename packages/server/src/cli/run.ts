// `bulwark run WORKFLOW`: starts a run over the REST API and, with --follow, draws its progress
// and timeline from the run's event stream until it ends (exit 0 if it completed, 1 otherwise).
import type { Env } from '../config/env.ts';
import { type ApiClient, connect, type RemoteOptions } from './client.ts';
import { CliError } from './errors.ts';
import { FINAL_STATUSES } from './statuses.ts';

export interface Terminal {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export interface RunOptions extends RemoteOptions {
  /** The input as JSON text. @default 'null' */
  input?: string;
  priority?: string;
  idempotencyKey?: string;
  follow?: boolean;
  json?: boolean;
}

/** The parts of a run this command shows. */
interface RunView {
  id: string;
  workflow: string;
  status: string;
  progress: number;
  output?: unknown;
  error?: { message?: string; code?: string } | null;
  createdAt?: number;
  finishedAt?: number | null;
}

interface EventView {
  type: string;
  step?: string | null;
  progress?: number;
  data?: unknown;
  at?: number;
}

/** What the bar shows after each `run:` event: the run's status (or `sleeping`); `run:progress` and the like leave it. */
const STATUS_OF: Record<string, string> = {
  'run:queued': 'queued',
  'run:started': 'running',
  'run:resumed': 'running',
  'run:waiting': 'waiting',
  'run:sleeping': 'sleeping',
  'run:suspended': 'queued',
  'run:retried': 'queued',
  'run:compensating': 'compensating',
  'run:completed': 'completed',
  'run:failed': 'failed',
  'run:cancelled': 'cancelled',
  'run:compensated': 'compensated',
};
const FINAL = new Set<string>(FINAL_STATUSES);
const MAX_RECONNECTS = 5;

/** Runs the command; resolves with the exit code. */
export async function runCommand(
  workflow: string,
  options: RunOptions,
  out: Terminal,
  env: Env,
): Promise<number> {
  let input: unknown = null;
  if (options.input !== undefined) {
    try {
      input = JSON.parse(options.input);
    } catch (error) {
      throw new CliError('BAD_INPUT', `--input is not valid JSON: ${(error as Error).message}`);
    }
  }
  const client = await connect(options, env);
  const started = await client.request<RunView>(
    'POST',
    `/api/workflows/${encodeURIComponent(workflow)}/runs`,
    {
      body: { input, ...(options.priority === undefined ? {} : { priority: options.priority }) },
      headers: options.idempotencyKey === undefined ? {} : { 'idempotency-key': options.idempotencyKey },
    },
  );
  const run = started.body;
  if (options.json && !options.follow) {
    out.write(`${JSON.stringify(run, null, 2)}\n`);
    return 0;
  }
  out.write(
    started.status === 201
      ? `run ${run.id} started (${run.workflow}, ${run.status})\n`
      : `run ${run.id} exists already for this idempotency key (${run.workflow}, ${run.status})\n`,
  );
  if (!options.follow) return 0;
  const final = await follow(client, run, out);
  if (options.json) out.write(`${JSON.stringify(final, null, 2)}\n`);
  return final.status === 'completed' ? 0 : 1;
}

/** Reads the run's stream until its `end`, reconnecting from the last event id if it drops. */
async function follow(client: ApiClient, run: RunView, out: Terminal): Promise<RunView> {
  const view = new ProgressView(out, run);
  let lastId: string | undefined;
  let reconnects = 0;
  for (;;) {
    let ended = false;
    try {
      const messages = await client.stream(`/api/runs/${encodeURIComponent(run.id)}/stream`, lastId);
      for await (const message of messages) {
        lastId = message.id ?? lastId;
        if (message.event === 'end') {
          ended = true;
          break;
        }
        let data: unknown;
        try {
          data = JSON.parse(message.data);
        } catch {
          continue;
        }
        view.update(message.event, data);
      }
    } catch (error) {
      // A problem answer (the run is unknown, the key may not read it) will not go away by retrying.
      if (error instanceof CliError && error.code === 'API_ERROR') throw error;
      if (reconnects >= MAX_RECONNECTS) throw error;
    }
    if (ended) break;
    const now = (await client.request<RunView>('GET', `/api/runs/${encodeURIComponent(run.id)}`)).body;
    if (FINAL.has(now.status)) break;
    if (++reconnects > MAX_RECONNECTS) {
      throw new CliError('STREAM_LOST', `the stream of run ${run.id} kept closing; it is ${now.status}`);
    }
    await new Promise((r) => setTimeout(r, 250 * reconnects));
  }
  const final = (await client.request<RunView>('GET', `/api/runs/${encodeURIComponent(run.id)}`)).body;
  view.finish(final);
  return final;
}

/** A progress bar kept on the last line of a terminal (plain lines elsewhere), timeline lines above it. */
class ProgressView {
  readonly #out: Terminal;
  readonly #tty: boolean;
  #status: string;
  #progress: number;
  #step = '';
  #seen = new Set<string>();

  constructor(out: Terminal, run: RunView) {
    this.#out = out;
    this.#tty = out.isTTY === true;
    this.#status = run.status;
    this.#progress = run.progress;
    this.#draw();
  }

  update(event: string, data: unknown): void {
    if (typeof data !== 'object' || data === null) return;
    const record = data as Record<string, unknown>;
    if (typeof record.type === 'string') {
      const e = record as unknown as EventView;
      // After a reconnect the stream may repeat what was shown; each event is shown once.
      const key = `${String(record.id ?? record.seq ?? '')}:${e.type}:${e.step ?? ''}:${e.at ?? ''}`;
      if (this.#seen.has(key)) return;
      this.#seen.add(key);
      if (typeof e.progress === 'number') this.#progress = e.progress;
      const status = STATUS_OF[e.type];
      if (status !== undefined) this.#status = status;
      if (e.step) this.#step = e.step;
      this.#line(eventLine(e, this.#progress));
    } else if (typeof record.status === 'string' && event !== 'message') {
      this.#status = record.status;
      if (typeof record.progress === 'number') this.#progress = record.progress;
      this.#draw();
    }
  }

  finish(run: RunView): void {
    this.#status = run.status;
    if (run.status === 'completed') this.#progress = 100;
    if (this.#tty) this.#out.write(`\r\x1b[2K${this.#bar()}\n`);
    const took =
      run.finishedAt != null && run.createdAt !== undefined
        ? ` in ${seconds(run.finishedAt - run.createdAt)}`
        : '';
    if (run.status === 'completed') {
      this.#out.write(`run ${run.id} completed${took}: ${clip(JSON.stringify(run.output ?? null), 200)}\n`);
    } else {
      const why = run.error?.message === undefined ? '' : `: ${run.error.message}`;
      this.#out.write(`run ${run.id} ${run.status}${took}${why}\n`);
    }
  }

  #line(text: string): void {
    if (this.#tty) this.#out.write(`\r\x1b[2K${text}\n${this.#bar()}`);
    else this.#out.write(`${text}\n`);
  }

  #draw(): void {
    if (this.#tty) this.#out.write(`\r\x1b[2K${this.#bar()}`);
  }

  #bar(): string {
    const width = 24;
    const filled = Math.round((Math.min(100, Math.max(0, this.#progress)) / 100) * width);
    const step = this.#step === '' ? '' : `  ${this.#step}`;
    return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.round(this.#progress)).padStart(3)}%  ${this.#status}${step}`;
  }
}

function eventLine(e: EventView, progress: number): string {
  const time = e.at === undefined ? '' : `${new Date(e.at).toISOString().slice(11, 23)}  `;
  const data = (typeof e.data === 'object' && e.data !== null ? e.data : {}) as Record<string, unknown>;
  const details: string[] = [];
  if (typeof data.message === 'string') details.push(data.message);
  const error = data.error as { message?: unknown } | undefined;
  if (typeof error?.message === 'string') details.push(error.message);
  if (typeof data.reason === 'string') details.push(data.reason);
  if (typeof data.attempts === 'number' && data.attempts > 1) details.push(`${data.attempts} attempts`);
  const step = e.step ? ` ${e.step}` : '';
  const detail = details.length === 0 ? '' : `  ${clip(details.join('; '), 160)}`;
  return `${time}${String(Math.round(progress)).padStart(3)}%  ${e.type}${step}${detail}`;
}

function seconds(ms: number): string {
  return ms < 1_000 ? `${ms}ms` : `${(ms / 1_000).toFixed(1)}s`;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
