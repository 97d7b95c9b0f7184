// `bulwark demo`: the figures computed from synthetic events, the report page, the upstreams'
// script and the live view; then the real command, run as users run it, whose report is checked
// against its own event log and against what each upstream counted on its side of the wire.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Parser } from 'htmlparser2';
import { aggregate, type DemoMeta, OUTCOMES, percentile } from '../src/demo/figures.ts';
import { DEMO_LOAD } from '../src/demo/load.ts';
import type { DemoEvent } from '../src/demo/recorder.ts';
import { type ReportJson, renderHtml } from '../src/demo/report.ts';
import { type Frame, LiveView, renderLine, renderTable } from '../src/demo/terminal.ts';
import { type Behaviour, demoPhases, phaseAt, Script } from '../src/demo/upstreams.ts';
import { runBulwark } from './cli-support.ts';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-demo-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const META: DemoMeta = {
  seed: 7,
  plannedMs: 2_000,
  loadMs: 2_000,
  elapsedMs: 2_000,
  stoppedEarly: false,
  phases: [
    { name: 'calm', title: 'all well', fromMs: 0, toMs: 1_000 },
    { name: 'outage', title: 'all down', fromMs: 1_000, toMs: 2_000 },
  ],
  dependencies: [
    { name: 'api', retry: true, breaker: true },
    { name: 'db', retry: false, breaker: false },
  ],
  groups: ['front'],
};

const call = (
  t: number,
  dependency: string,
  outcome: Extract<DemoEvent, { type: 'call' }>['outcome'],
  ms: number,
): DemoEvent => ({ t, type: 'call', dependency, operation: 'op', outcome, ms });
const attempt = (t: number, dependency: string, n: number, ok: boolean, sent = true): DemoEvent => ({
  t,
  type: 'attempt',
  dependency,
  attempt: n,
  ok,
  sent,
  ms: 1,
});

describe('demo figures', () => {
  test('each call is counted once under its outcome; a success after a retry is retried', () => {
    const events: DemoEvent[] = [
      attempt(10, 'api', 1, true),
      call(10, 'api', 'success', 5),
      attempt(20, 'api', 1, false),
      { t: 20, type: 'retry', dependency: 'api', attempt: 1, delayMs: 50 },
      attempt(80, 'api', 2, true),
      call(80, 'api', 'success', 70),
      attempt(90, 'api', 1, false, false),
      call(90, 'api', 'short-circuited', 0),
      attempt(95, 'api', 1, false, false),
      call(95, 'api', 'bulkhead-rejected', 0),
      attempt(96, 'api', 1, false, false),
      call(96, 'api', 'rate-limited', 0),
      attempt(300, 'api', 1, false),
      call(300, 'api', 'timed-out', 200),
      attempt(400, 'api', 1, false),
      { t: 400, type: 'retry', dependency: 'api', attempt: 1, delayMs: 50 },
      attempt(460, 'api', 2, false),
      call(460, 'api', 'failed', 60),
    ];
    const api = aggregate(events, META).dependencies.api!;
    assert.equal(api.calls, 7);
    assert.deepEqual(api.outcomes, {
      success: 1,
      retried: 1,
      fallback: 0,
      'short-circuited': 1,
      'bulkhead-rejected': 1,
      'rate-limited': 1,
      'timed-out': 1,
      failed: 1,
      cancelled: 0,
    });
    assert.equal(api.retries, 2);
    // Nine attempts: six went out, the three refused by a local policy did not.
    assert.equal(api.sent, 6);
  });

  test('a dependency without retries sends one request per call that reached it', () => {
    const events = [
      call(1, 'db', 'success', 3),
      call(2, 'db', 'timed-out', 9),
      call(3, 'db', 'rate-limited', 0),
    ];
    const db = aggregate(events, META).dependencies.db!;
    assert.equal(db.sent, 2);
    assert.equal(db.breaker, undefined);
  });

  test('latency is the nearest-rank p50 and p99 of the calls that reached the dependency, per bucket', () => {
    assert.equal(percentile([], 0.5), null);
    assert.equal(percentile([1, 2, 3, 4], 0.5), 2);
    assert.equal(percentile([1, 2, 3, 4], 0.99), 4);
    const events = [
      call(10, 'api', 'success', 10),
      call(20, 'api', 'success', 30),
      call(30, 'api', 'failed', 20),
      // Refusals take no time at the dependency: they would drag p50 to 0.
      call(40, 'api', 'short-circuited', 0),
      call(600, 'db', 'timed-out', 250),
    ];
    const f = aggregate(events, META);
    assert.equal(f.latency.bucketMs, 250);
    assert.equal(f.latency.points.length, 8);
    assert.deepEqual(f.latency.points[0], { t: 0, calls: 3, p50: 20, p99: 30 });
    assert.deepEqual(f.latency.points[1], { t: 250, calls: 0, p50: null, p99: null });
    assert.deepEqual(f.latency.points[2], { t: 500, calls: 1, p50: 250, p99: 250 });
    assert.deepEqual(f.dependencies.api!.latency, { p50: 20, p99: 30, max: 30 });
    // The live view's cheap figures: the same counts, no latency.
    const live = aggregate(events, META, { latency: false });
    assert.deepEqual(live.latency.points, []);
    assert.deepEqual(live.dependencies.api!.latency, { p50: null, p99: null, max: null });
    assert.deepEqual(live.dependencies.api!.outcomes, f.dependencies.api!.outcomes);
  });

  test('breaker transitions carry the state they left, and the breaker its final state', () => {
    const events: DemoEvent[] = [
      { t: 100, type: 'breaker', dependency: 'api', to: 'open', reason: 'failure-rate' },
      { t: 600, type: 'breaker', dependency: 'api', to: 'half-open' },
      { t: 610, type: 'breaker', dependency: 'api', to: 'open', reason: 'probe-failed' },
      { t: 1_200, type: 'breaker', dependency: 'api', to: 'half-open' },
      { t: 1_230, type: 'breaker', dependency: 'api', to: 'closed' },
    ];
    const f = aggregate(events, META);
    assert.deepEqual(f.breakers.api, [
      { t: 100, from: 'closed', to: 'open', reason: 'failure-rate' },
      { t: 600, from: 'open', to: 'half-open' },
      { t: 610, from: 'half-open', to: 'open', reason: 'probe-failed' },
      { t: 1_200, from: 'open', to: 'half-open' },
      { t: 1_230, from: 'half-open', to: 'closed' },
    ]);
    assert.deepEqual(f.dependencies.api!.breaker, { opened: 2, halfOpened: 2, closed: 1, final: 'closed' });
  });

  test('runs: parked, resumed and unfinished come from their statuses; groups count their fallbacks', () => {
    const run = (
      t: number,
      id: string,
      status: Extract<DemoEvent, { type: 'run' }>['status'],
    ): DemoEvent => ({
      t,
      type: 'run',
      run: id,
      workflow: 'w',
      status,
    });
    const events: DemoEvent[] = [
      run(1, 'a', 'queued'),
      run(2, 'a', 'running'),
      run(3, 'a', 'waiting'),
      run(4, 'a', 'running'),
      run(5, 'a', 'waiting'),
      run(6, 'a', 'running'),
      run(7, 'a', 'completed'),
      run(1, 'b', 'queued'),
      run(2, 'b', 'running'),
      run(3, 'b', 'failed'),
      run(1, 'c', 'queued'),
      run(2, 'c', 'running'),
      run(3, 'c', 'waiting'),
      { t: 4, type: 'step', run: 'a', step: 's', status: 'completed', attempts: 1, ms: 3 },
      { t: 4, type: 'step', run: 'b', step: 's', status: 'failed', attempts: 3, ms: 3 },
      { t: 5, type: 'group', group: 'front', outcome: 'success', provider: 'api' },
      { t: 6, type: 'group', group: 'front', outcome: 'fallback' },
      { t: 7, type: 'group', group: 'front', outcome: 'fallback' },
    ];
    const f = aggregate(events, META);
    assert.deepEqual(f.runs, {
      started: 3,
      completed: 1,
      failed: 1,
      cancelled: 0,
      compensated: 0,
      parkedRuns: 2,
      parks: 3,
      resumed: 2,
      parkedNow: 1,
      unfinished: 1,
      steps: { completed: 1, failed: 1 },
    });
    assert.equal(f.groups.front!.calls, 3);
    assert.equal(f.groups.front!.outcomes.fallback, 2);
    assert.equal(f.totals.fallbacks, 2);
  });
});

/** The elements of a page, with their attributes and text, in order. */
function elements(html: string): { name: string; attrs: Record<string, string>; text: string }[] {
  const out: { name: string; attrs: Record<string, string>; text: string }[] = [];
  const open: { name: string; attrs: Record<string, string>; text: string }[] = [];
  const parser = new Parser(
    {
      onopentag(name, attrs) {
        const element = { name, attrs, text: '' };
        out.push(element);
        open.push(element);
      },
      ontext(text) {
        for (const e of open) e.text += text;
      },
      onclosetag() {
        open.pop();
      },
    },
    { decodeEntities: true },
  );
  parser.write(html);
  parser.end();
  return out;
}

/** The value at a dotted path of the report, as the page prints it. */
function at(report: unknown, path: string): string {
  let value: unknown = report;
  for (const key of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[key];
  return value === null || value === undefined ? '-' : String(value);
}

/** Checks a report page: the three charts, figures equal to the JSON, nothing loaded from elsewhere. */
function checkPage(html: string, report: ReportJson): void {
  const all = elements(html);
  const svgs = all.filter((e) => e.name === 'svg').map((e) => e.attrs.id);
  assert.deepEqual(svgs, ['latency-chart', 'outcomes-chart', 'breaker-chart']);
  assert.equal(all.filter((e) => e.name === 'script').length, 0, 'no script');
  for (const e of all) {
    for (const [name, value] of Object.entries(e.attrs)) {
      assert.ok(!/^on/i.test(name), `no inline handler: <${e.name} ${name}>`);
      if (['src', 'href', 'xlink:href', 'action', 'srcset', 'data', 'poster'].includes(name))
        assert.fail(`no reference to another resource: <${e.name} ${name}="${value}">`);
    }
  }
  assert.doesNotMatch(html, /url\(|@import|https?:\/\//, 'no URL anywhere in the page');
  const cells = all.filter((e) => e.attrs['data-figure'] !== undefined);
  assert.ok(cells.length > 20, `a summary table (${cells.length} cells)`);
  for (const c of cells) assert.equal(c.text, at(report, c.attrs['data-figure']!), c.attrs['data-figure']);
}

describe('demo report page', () => {
  test('has the three charts, a summary equal to the figures, names escaped and nothing external', () => {
    const meta: DemoMeta = { ...META, dependencies: [{ name: 'a<b>&"c', retry: true, breaker: true }] };
    const events: DemoEvent[] = [
      attempt(10, 'a<b>&"c', 1, true),
      call(10, 'a<b>&"c', 'success', 12),
      attempt(700, 'a<b>&"c', 1, false),
      call(700, 'a<b>&"c', 'failed', 30),
      { t: 710, type: 'breaker', dependency: 'a<b>&"c', to: 'open', reason: 'failure-rate' },
      { t: 1_300, type: 'breaker', dependency: 'a<b>&"c', to: 'half-open' },
      { t: 1_310, type: 'breaker', dependency: 'a<b>&"c', to: 'closed' },
      { t: 20, type: 'group', group: 'front', outcome: 'fallback' },
    ];
    const report: ReportJson = {
      version: 1,
      ...meta,
      server: null,
      figures: aggregate(events, meta),
      upstreams: {},
      load: { plan: DEMO_LOAD, skipped: 2 },
    };
    const html = renderHtml(report);
    checkPage(html, report);
    assert.ok(!html.includes('a<b>'), 'the name is escaped');
    const all = elements(html);
    // One segment per state the breaker was in, one mark per transition.
    assert.equal(all.filter((e) => e.attrs['data-transition'] !== undefined).length, 3);
    const bars = all.filter((e) => e.attrs['data-outcome'] !== undefined);
    assert.deepEqual(
      bars.map((e) => [e.attrs['data-outcome'], e.attrs['data-count']]),
      [
        ['success', '1'],
        ['failed', '1'],
        ['fallback', '1'],
      ],
    );
  });
});

describe('demo upstreams', () => {
  const flaky: Behaviour = { latencyMs: [5, 30], hang: 0.2, reset: 0.1, error: 0.25 };

  test('the same seed deals the same script; every 20 requests of a phase hold its shares exactly', () => {
    const deal = (seed: number) => {
      const script = new Script(seed);
      return Array.from({ length: 60 }, () => script.next(flaky));
    };
    const one = deal(11);
    assert.deepEqual(one, deal(11));
    assert.notDeepEqual(one, deal(12));
    for (let i = 0; i < 60; i += 20) {
      const counts = { ok: 0, hang: 0, reset: 0, error: 0 };
      for (const d of one.slice(i, i + 20)) counts[d.decision]++;
      assert.deepEqual(counts, { ok: 9, hang: 4, reset: 2, error: 5 });
    }
    for (const d of one) assert.ok(d.latencyMs >= 5 && d.latencyMs <= 30);
  });

  test('the phases cover the duration in order, the same for the same duration', () => {
    const phases = demoPhases(6_000);
    assert.deepEqual(
      phases.map((p) => [p.name, p.fromMs, p.toMs]),
      [
        ['calm', 0, 900],
        ['slow', 900, 2_100],
        ['flaky', 2_100, 3_000],
        ['outage', 3_000, 4_500],
        ['recovery', 4_500, 6_000],
      ],
    );
    assert.equal(phaseAt(phases, 0).name, 'calm');
    assert.equal(phaseAt(phases, 3_000).name, 'outage');
    assert.equal(phaseAt(phases, 60_000).name, 'recovery');
    assert.equal(phases[3]!.upstreams.payments.error, 1);
  });
});

describe('demo live view', () => {
  const frame = (): Frame => {
    const phases = demoPhases(6_000);
    const events: DemoEvent[] = [
      attempt(10, 'api', 1, true),
      call(10, 'api', 'success', 12),
      { t: 20, type: 'breaker', dependency: 'api', to: 'open', reason: 'failure-rate' },
    ];
    return {
      elapsedMs: 3_200,
      plannedMs: 6_000,
      phase: phases[3]!,
      phaseIndex: 3,
      phaseCount: 5,
      figures: aggregate(events, META),
      gauges: {
        api: { state: 'open', bulkhead: { active: 3, queued: 1, max: 4 } },
        db: { state: undefined, bulkhead: undefined },
      },
      recent: { api: { p50: 12, p99: 12, max: 12 } },
    };
  };
  const capture = (isTTY: boolean) => {
    const writes: string[] = [];
    return { out: { isTTY, write: (text: string) => writes.push(text) }, writes };
  };

  test('on a terminal, the table is redrawn in place, in colour unless NO_COLOR', () => {
    const { out, writes } = capture(true);
    const view = new LiveView(out, { frame, env: {} });
    view.start();
    view.stop();
    const frames = writes.filter((w) => w.includes('Bulwark demo'));
    assert.equal(frames.length, 2);
    const lines = renderTable(frame(), false).length;
    assert.ok(!frames[0]!.includes('\u001b[J'));
    assert.ok(frames[1]!.startsWith(`\u001b[${lines}F\u001b[J`), 'the second frame replaces the first');
    assert.ok(frames[1]!.includes('\u001b[1;31mopen'), 'an open breaker in bold red');

    const plain = capture(true);
    const noColour = new LiveView(plain.out, { frame, env: { NO_COLOR: '1' } });
    noColour.start();
    noColour.stop();
    const colourCode = new RegExp(`${String.fromCharCode(27)}\\[[\\d;]*m`);
    assert.doesNotMatch(plain.writes.join(''), colourCode, 'no colour with NO_COLOR');
    const table = renderTable(frame(), false).join('\n');
    assert.match(table, /^api +open +3\/4 q1 +1 +1 /m);
    assert.match(table, /phase 4\/5 outage/);
  });

  test('elsewhere, plain lines: the phase, then a summary; no escape sequence at all', () => {
    const { out, writes } = capture(false);
    const view = new LiveView(out, { frame, env: {} });
    view.start();
    view.stop();
    const text = writes.join('');
    assert.ok(!text.includes('\u001b'), 'no escape sequence');
    const lines = text.trimEnd().split('\n');
    assert.match(lines[0]!, /^-- phase 4\/5 outage \(from 3\.0s\): payments answers 503/);
    assert.equal(lines[1], renderLine(frame()));
    assert.match(lines[1]!, /calls 1: ok 1, .*breakers api=open; runs 0/);
  });
});

/** Runs `bulwark` with streamed output; `onOutput` sees stdout as it comes, to act on it. */
function spawnBulwark(
  args: string[],
  timeoutMs: number,
  onOutput: (stdout: string, child: ReturnType<typeof spawn>) => void = () => {},
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const bin = join(import.meta.dirname, '..', 'bin', 'bulwark.js');
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '' },
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      onOutput(stdout, child);
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - started }));
  });
}

/** Recounts a dependency's figures from the event log alone, as a second, simpler computation. */
function recount(events: DemoEvent[], dependency: string) {
  const calls = events.filter(
    (e): e is Extract<DemoEvent, { type: 'call' }> => e.type === 'call' && e.dependency === dependency,
  );
  const attempts = events.filter(
    (e): e is Extract<DemoEvent, { type: 'attempt' }> => e.type === 'attempt' && e.dependency === dependency,
  );
  const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, calls.filter((c) => c.outcome === o).length]));
  outcomes.retried = attempts.filter((a) => a.ok && a.attempt > 1).length;
  outcomes.success! -= outcomes.retried;
  return {
    calls: calls.length,
    outcomes,
    sent: attempts.filter((a) => a.sent).length,
    failedSent: attempts.filter((a) => a.sent && !a.ok).length,
    /** Failed requests that took far longer than any scripted answer (30 ms): timeouts. */
    slowFailedSent: attempts.filter((a) => a.sent && !a.ok && a.ms >= 200).length,
    retries: events.filter((e) => e.type === 'retry' && e.dependency === dependency).length,
  };
}

describe('bulwark demo', () => {
  test('runs a short demo with the server and writes a report that agrees with its events and its upstreams', async () => {
    const reportDir = join(dir, 'short');
    const result = await spawnBulwark(
      ['demo', '--duration', '6s', '--report', reportDir, '--seed', '3'],
      45_000,
    );
    assert.equal(result.code, 0, result.stderr);
    // 6 s of load, then the drain (3 s at most) and the start-up: well within bound.
    assert.ok(result.ms < 30_000, `took ${Math.round(result.ms)} ms`);
    assert.match(result.stdout, /the server is on http:\/\/127\.0\.0\.1:\d+/);
    assert.match(result.stdout, /^ {2}http:\/\/127\.0\.0\.1:\d+\/#key=[\w-]{24,}$/m);
    assert.match(result.stdout, /^-- phase 5\/5 recovery/m);
    assert.ok(result.stdout.includes(`Report: ${join(reportDir, 'report.html')}\n`), result.stdout);
    assert.ok(!result.stdout.includes('\u001b'), 'no escape sequence in a pipe');

    const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')) as ReportJson;
    const events = readFileSync(join(reportDir, 'events.ndjson'), 'utf8')
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as DemoEvent);
    assert.equal(report.seed, 3);
    assert.equal(report.loadMs, 6_000);
    assert.equal(report.stoppedEarly, false);

    const { figures, upstreams } = report;
    for (const name of ['inventory', 'payments', 'search']) {
      const d = figures.dependencies[name]!;
      const again = recount(events, name);
      assert.equal(d.calls, again.calls, `${name} calls`);
      assert.deepEqual(d.outcomes, again.outcomes, `${name} outcomes`);
      assert.equal(d.retries, again.retries, `${name} retries`);
      assert.equal(d.sent, again.sent, `${name} sent`);
      // The upstream counted on its side the requests that left the process, never more. A request
      // given up on (timed out) while still in the socket, before a busy upstream read it, is
      // never received: on a loaded machine that can happen to a few of the failed ones only.
      const received = upstreams[name]!.received;
      assert.ok(received <= d.sent, `${name}: received ${received} > sent ${d.sent}`);
      assert.ok(
        d.sent - received <= again.failedSent,
        `${name}: ${d.sent - received} sent but not received, more than the ${again.failedSent} failed`,
      );
    }
    // Every failure the upstream's script dealt is a failed request here. Answers come far below
    // the timeouts, so any other failed request is one a loaded machine let time out: it took at
    // least 200 ms, or never reached the upstream at all.
    const scripted = {
      payments: upstreams.payments!.decisions.error + upstreams.payments!.decisions.reset,
      search: upstreams.search!.decisions.error + upstreams.search!.decisions.hang,
    };
    for (const [name, dealt] of Object.entries(scripted)) {
      const again = recount(events, name);
      const lost = figures.dependencies[name]!.sent - upstreams[name]!.received;
      assert.ok(again.failedSent >= dealt, `${name}: ${again.failedSent} failed < ${dealt} dealt`);
      assert.ok(
        again.failedSent <= dealt + lost + again.slowFailedSent,
        `${name}: ${again.failedSent} failed, ${dealt} dealt, ${lost} lost, ${again.slowFailedSent} slow`,
      );
    }

    // Breaker transitions, replayed from the log.
    for (const [name, transitions] of Object.entries(figures.breakers)) {
      let state = 'closed';
      const replayed = events
        .filter(
          (e): e is Extract<DemoEvent, { type: 'breaker' }> => e.type === 'breaker' && e.dependency === name,
        )
        .map((e) => {
          const from = state;
          state = e.to;
          return { t: e.t, from, to: e.to, ...(e.reason === undefined ? {} : { reason: e.reason }) };
        });
      assert.deepEqual(transitions, replayed, `${name} transitions`);
    }
    const groupEvents = events.filter((e) => e.type === 'group');
    assert.equal(figures.groups.catalog!.calls, groupEvents.length);
    assert.equal(
      figures.groups.catalog!.outcomes.fallback,
      groupEvents.filter((e) => e.outcome === 'fallback').length,
    );
    const runIds = new Set(events.flatMap((e) => (e.type === 'run' ? [e.run] : [])));
    assert.equal(figures.runs.started, runIds.size);
    assert.equal(figures.runs.parks, events.filter((e) => e.type === 'run' && e.status === 'waiting').length);

    // The story the phases tell happened: each policy had something to do.
    assert.ok(figures.dependencies.payments!.breaker!.opened >= 1, 'the payments breaker opened');
    assert.equal(figures.dependencies.payments!.breaker!.final, 'closed', 'and closed again in the recovery');
    assert.ok(figures.dependencies.payments!.outcomes['short-circuited'] >= 1);
    assert.ok(figures.runs.parkedRuns >= 1, 'runs parked behind the open breaker');
    assert.ok(figures.runs.resumed >= 1, 'and resumed');
    assert.ok(figures.totals.retries >= 1);
    assert.ok(figures.totals.fallbacks >= 1);
    assert.ok(figures.dependencies.inventory!.outcomes['bulkhead-rejected'] >= 1);
    assert.ok(figures.dependencies.search!.outcomes['rate-limited'] >= 1);
    assert.ok(upstreams.search!.decisions.hang >= 1 && upstreams.payments!.decisions.reset >= 1);

    checkPage(readFileSync(join(reportDir, 'report.html'), 'utf8'), report);
  });

  test('Ctrl-C ends the demo early, and the report is still written', async () => {
    const reportDir = join(dir, 'early');
    let interrupted = false;
    const result = await spawnBulwark(
      ['demo', '--duration', '60s', '--no-server', '--report', reportDir],
      40_000,
      (stdout, child) => {
        // Once a second line of figures is out, the load has run a while.
        if (!interrupted && /^ +1\.\ds /m.test(stdout)) {
          interrupted = true;
          child.kill('SIGINT');
        }
      },
    );
    assert.ok(interrupted, result.stdout);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.ms < 30_000, `took ${Math.round(result.ms)} ms`);
    assert.match(result.stdout, /Stopping: the calls in flight finish/);
    assert.ok(!result.stdout.includes('the server is on'), 'no server with --no-server');
    const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')) as ReportJson;
    assert.equal(report.stoppedEarly, true);
    assert.ok(report.loadMs < 10_000, `load ran ${report.loadMs} ms`);
    assert.equal(report.server, null);
    assert.ok(report.figures.totals.calls > 0);
    checkPage(readFileSync(join(reportDir, 'report.html'), 'utf8'), report);
  });

  test('a bad flag is one line on stderr and exit 1, before anything starts', async () => {
    const bad = await runBulwark(dir, ['demo', '--duration', 'soon']);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      'bulwark: --duration: expected a duration from 3s to 1h, like 60s or 2m, got "soon"\n',
    );
    const seed = await runBulwark(dir, ['demo', '--seed', '-4']);
    assert.equal(seed.code, 1);
    assert.match(seed.stderr, /^bulwark: --seed: expected a whole number, got "-4"\n$/);
  });
});
