// An open-loop HTTP client, for latency at a given rate: request i is due at start + i / rate and
// is sent when due, whatever has come back, each timed from when it was due (so a stall of the
// client or the server counts against every request it delays). It runs in a child process, so
// it never shares the server's event loop. autocannon's `overallRate` cannot measure this: each
// connection sends its whole quota for the second back to back at the start of the second.
import { fork } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

/** The argument that makes this file the client, in the child process. */
const PACED_CHILD = '--paced-client';

export interface PacedOptions {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  /** Requests a second. */
  rate: number;
  seconds: number;
  /** Connections open at most: a request due while all are busy waits for one (and that wait counts). */
  maxSockets: number;
  /** A request not answered after this long counts as failed. */
  timeoutMs: number;
}

export interface PacedResult {
  sent: number;
  failed: number;
  statuses: Record<string, number>;
  /** Answers a second, over the time from the first due request to the last answer. */
  rps: number;
  /** Milliseconds from due to the whole answer read. */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** The most a send fell behind its due time (the client's own lag). */
  maxSendLagMs: number;
}

/** Runs the paced load in a child process and resolves with what it measured. */
export function paced(options: PacedOptions): Promise<PacedResult> {
  return new Promise((resolve, reject) => {
    // The same flags as this process (`--import tsx`), so the child runs this file as it is.
    const child = fork(fileURLToPath(import.meta.url), [PACED_CHILD], { execArgv: process.execArgv });
    child.once('message', (result: PacedResult) => resolve(result));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`the paced client exited with code ${code}`));
    });
    child.send(options);
  });
}

function run(options: PacedOptions): Promise<PacedResult> {
  const url = new URL(options.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.maxSockets });
  const headers = { ...options.headers, 'content-length': String(Buffer.byteLength(options.body ?? '')) };
  const total = Math.round(options.rate * options.seconds);
  const interval = 1000 / options.rate;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let failed = 0;
  let answered = 0;
  let sent = 0;
  let maxSendLagMs = 0;
  const start = performance.now() + 20;
  return new Promise((resolve) => {
    const finish = () => {
      latencies.sort((a, b) => a - b);
      const at = (q: number) => Number(latencies[Math.floor(q * (latencies.length - 1))]?.toFixed(1) ?? NaN);
      resolve({
        sent,
        failed,
        statuses,
        rps: (answered * 1000) / (performance.now() - start),
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: at(1),
        maxSendLagMs: Number(maxSendLagMs.toFixed(1)),
      });
      agent.destroy();
    };
    const settle = (due: number, status: number | undefined) => {
      latencies.push(performance.now() - due);
      const key = status === undefined ? 'error' : String(status);
      statuses[key] = (statuses[key] ?? 0) + 1;
      if (status === undefined || status >= 400) failed++;
      if (++answered === total) finish();
    };
    const send = (due: number) => {
      let settled = false;
      const once = (status: number | undefined) => {
        if (settled) return;
        settled = true;
        settle(due, status);
      };
      const request = http.request(url, { method: options.method, agent, headers }, (response) => {
        response.resume();
        response.once('end', () => once(response.statusCode));
        response.once('error', () => once(undefined));
      });
      request.setTimeout(options.timeoutMs, () => request.destroy());
      request.once('error', () => once(undefined));
      request.end(options.body);
    };
    // A 1 ms timer wakes the loop; every request due by then goes out, each timed from its own due time.
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + sent * interval <= now) {
        const due = start + sent * interval;
        maxSendLagMs = Math.max(maxSendLagMs, now - due);
        sent++;
        send(due);
      }
      if (sent < total) setTimeout(tick, 1);
    };
    setTimeout(tick, 1);
  });
}

if (process.argv[2] === PACED_CHILD) {
  process.once('message', async (options: PacedOptions) => {
    const result = await run(options);
    process.send!(result, () => process.exit(0));
  });
}
