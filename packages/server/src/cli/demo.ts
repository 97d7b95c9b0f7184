// `bulwark demo`: checks its flags, runs the demo (src/demo/run.ts) with Ctrl-C ending it early
// rather than killing it, and prints where the report is. Exit 0 once the report is written.

import { parseDuration } from '../config/duration.ts';
import type { Env } from '../config/env.ts';
import { CliError } from './errors.ts';
import type { Terminal } from './run.ts';

export interface DemoCommandOptions {
  /** @default '60s' */
  duration?: string;
  /** @default './bulwark-demo-report' */
  report?: string;
  /** @default '1' */
  seed?: string;
  port?: number;
  /** False with `--no-server`. */
  server: boolean;
}

/** Shorter, the phases are too brief to show anything; longer, it is not a demo. */
const MIN_MS = 3_000;
const MAX_MS = 3_600_000;
/** A repeat of the signal sooner than this is the same Ctrl-C passed on by the launcher. */
const ECHO_MS = 250;

export async function demoCommand(options: DemoCommandOptions, out: Terminal, env: Env): Promise<number> {
  const durationMs = parseDuration(options.duration ?? '60s');
  if (durationMs === undefined || durationMs < MIN_MS || durationMs > MAX_MS) {
    throw new CliError(
      'BAD_INPUT',
      `--duration: expected a duration from 3s to 1h, like 60s or 2m, got ${JSON.stringify(options.duration)}`,
    );
  }
  const seedText = options.seed ?? '1';
  const seed = Number(seedText);
  if (!/^\d+$/.test(seedText) || !Number.isSafeInteger(seed)) {
    throw new CliError('BAD_INPUT', `--seed: expected a whole number, got ${JSON.stringify(options.seed)}`);
  }
  const { runDemo } = await import('../demo/run.ts');
  // Piped into `head`, the reader may go away: the demo still ends properly and writes its report.
  let readerGone = false;
  const stdout: Terminal = { isTTY: out.isTTY === true, write: (text) => readerGone || out.write(text) };
  const onError = (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    readerGone = true;
  };
  const stream = out as Partial<NodeJS.WritableStream>;
  stream.on?.('error', onError);

  const stop = new AbortController();
  let first: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (first === undefined) {
      first = performance.now();
      stdout.write(
        '\nStopping: the calls in flight finish, then the report is written (Ctrl-C again quits at once).\n',
      );
      stop.abort();
    } else if (performance.now() - first >= ECHO_MS) {
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const { report, figures } = await runDemo({
      durationMs,
      reportDir: options.report ?? 'bulwark-demo-report',
      seed,
      server: options.server,
      ...(options.port === undefined ? {} : { port: options.port }),
      out: stdout,
      env,
      signal: stop.signal,
    });
    const t = figures.totals;
    const opened = Object.entries(figures.dependencies)
      .filter(([, d]) => (d.breaker?.opened ?? 0) > 0)
      .map(([name, d]) => `${name} ×${d.breaker!.opened}`);
    const r = figures.runs;
    stdout.write(
      `\n${t.calls} calls (${t.sent} requests sent, ${t.retries} retries, ${t.fallbacks} fallbacks); ` +
        `breakers opened: ${opened.length === 0 ? 'none' : opened.join(', ')}; ` +
        `runs: ${r.started} started, ${r.completed} completed, ${r.failed} failed, ${r.parkedRuns} parked at some point, ${r.unfinished} unfinished\n` +
        `Report: ${report.html}\n  figures in ${report.json}\n  events in ${report.events}\n`,
    );
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    stream.off?.('error', onError);
  }
}
