// The dashboard's pure parts, in Node: how a run's timeline becomes waterfall lanes (attempts,
// backoff, parked intervals, compensations) and which rows the virtualised runs list draws.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OVERSCAN, ROW_HEIGHT, visibleRange } from '../app/virtual.ts';
import { buildWaterfall, estimateRemainingMs, formatDuration, type TimelineEntry } from '../app/waterfall.ts';

const ev = (
  at: number,
  type: string,
  step: string | null = null,
  data: unknown = null,
  progress = 0,
): TimelineEntry => ({
  at,
  type,
  step,
  data,
  progress,
});

test('a retried step shows each attempt as a segment with the backoff between them', () => {
  const chart = buildWaterfall(
    [
      ev(0, 'run:started'),
      ev(0, 'step:started', 'charge'),
      ev(100, 'step:retry-scheduled', 'charge', {
        attempt: 1,
        delayMs: 200,
        error: { name: 'HttpError', message: '503' },
      }),
      ev(400, 'step:completed', 'charge', { attempts: 2 }),
    ],
    500,
  );
  const lane = chart.lanes[0]!;
  assert.equal(lane.status, 'completed');
  assert.equal(lane.attempts, 2);
  assert.deepEqual(
    lane.segments.map((s) => [s.kind, s.start, s.end, s.status ?? null, s.open]),
    [
      ['attempt', 0, 100, 'failed', false],
      ['backoff', 100, 300, null, false],
      ['attempt', 300, 400, 'ok', false],
    ],
  );
  assert.match(lane.segments[0]!.label, /HttpError: 503/);
});

test('a parked step spends no attempt and shows the parked interval until its expected resume', () => {
  const parked = {
    retryAfterMs: 10_000,
    dependency: 'payments',
    breaker: 'payments.breaker',
    message: 'The circuit is open',
  };
  const events = [ev(0, 'step:started', 'charge'), ev(5, 'step:parked', 'charge', parked)];
  const chart = buildWaterfall(events, 2_000);
  const lane = chart.lanes[0]!;
  assert.equal(lane.status, 'parked');
  assert.equal(lane.attempts, 0);
  assert.equal(lane.segments.length, 1);
  const segment = lane.segments[0]!;
  assert.equal(segment.kind, 'parked');
  assert.equal(segment.open, true);
  assert.equal(segment.resumeAt, 10_005);
  assert.match(segment.label, /parked by payments\.breaker: The circuit is open/);
  // The axis reaches the expected resume time, beyond now.
  assert.equal(chart.end, 10_005);

  // It resumes: the parked interval ends where the step starts again.
  const resumed = buildWaterfall([...events, ev(10_010, 'step:started', 'charge')], 10_500);
  const [park, attempt] = resumed.lanes[0]!.segments;
  assert.deepEqual([park!.kind, park!.end, park!.open], ['parked', 10_010, false]);
  assert.deepEqual(
    [attempt!.kind, attempt!.start, attempt!.end, attempt!.open],
    ['attempt', 10_010, 10_500, true],
  );
  assert.equal(resumed.lanes[0]!.attempts, 1);
});

test('compensations get their own lanes, apart from the steps', () => {
  const chart = buildWaterfall(
    [
      ev(0, 'step:started', 'reserve'),
      ev(10, 'step:completed', 'reserve'),
      ev(10, 'step:started', 'charge'),
      ev(20, 'step:failed', 'charge', { error: { name: 'PaymentDeclined', message: 'card declined' } }),
      ev(20, 'run:compensating'),
      ev(21, 'compensation:started', 'reserve'),
      ev(30, 'compensation:completed', 'reserve'),
      ev(30, 'run:compensated'),
    ],
    100,
  );
  assert.deepEqual(
    chart.lanes.map((l) => [l.name, l.status]),
    [
      ['reserve', 'completed'],
      ['charge', 'failed'],
    ],
  );
  assert.deepEqual(
    chart.compensations.map((l) => [l.name, l.status, l.segments[0]?.start, l.segments[0]?.end]),
    [['reserve', 'completed', 21, 30]],
  );
  assert.equal(chart.finished, true);
  assert.equal(chart.end, 30);
});

test('declared steps not reached yet are pending lanes, in the declared order', () => {
  const chart = buildWaterfall([ev(0, 'step:started', 'confirm')], 50, ['reserve', 'charge', 'confirm']);
  assert.deepEqual(
    chart.lanes.map((l) => [l.name, l.status]),
    [
      ['reserve', 'pending'],
      ['charge', 'pending'],
      ['confirm', 'running'],
    ],
  );
  // A running attempt grows with now.
  assert.equal(chart.lanes[2]!.segments[0]!.end, 50);
});

test('an attempt still open when the run ends is closed as interrupted at the end', () => {
  const chart = buildWaterfall([ev(0, 'step:started', 'slow'), ev(70, 'run:cancelled')], 1_000);
  const segment = chart.lanes[0]!.segments[0]!;
  assert.deepEqual([segment.end, segment.open, segment.status], [70, false, 'interrupted']);
  assert.equal(chart.lanes[0]!.status, 'failed');
});

test('sleeps and waits for events are intervals of their own', () => {
  const chart = buildWaterfall(
    [
      ev(0, 'run:sleeping', 'sleep:settle', { until: 1_500 }),
      ev(1_600, 'run:waiting', 'approval', { event: 'approved', deadline: 9_000 }),
      ev(2_000, 'run:event-received', 'approval', { event: 'approved' }),
    ],
    2_500,
  );
  const [sleep, wait] = chart.lanes;
  assert.deepEqual([sleep!.kind, sleep!.status, sleep!.segments[0]!.end], ['sleep', 'completed', 1_500]);
  assert.deepEqual([wait!.kind, wait!.status, wait!.segments[0]!.end], ['wait', 'completed', 2_000]);
  assert.match(wait!.segments[0]!.label, /waiting for the event "approved": received/);
});

test('the progress is the highest reported, and the estimate follows the pace so far', () => {
  const chart = buildWaterfall(
    [ev(0, 'run:started'), ev(10, 'run:progress', null, null, 33), ev(20, 'run:progress', null, null, 66)],
    30,
  );
  assert.equal(chart.progress, 66);
  assert.equal(estimateRemainingMs(25, 0, 1_000), 3_000);
  assert.equal(estimateRemainingMs(0, 0, 1_000), undefined);
  assert.equal(estimateRemainingMs(100, 0, 1_000), undefined);
});

test('durations read in the largest sensible unit', () => {
  assert.equal(formatDuration(850), '850 ms');
  assert.equal(formatDuration(12_500), '13 s');
  assert.equal(formatDuration(2_500), '2.5 s');
  assert.equal(formatDuration(200_000), '3 min 20 s');
  assert.equal(formatDuration(7_500_000), '2 h 5 min');
  // Rounded before splitting, and the form chosen on the rounded value: no part reaches its
  // unit's size, at a unit's edge or inside it.
  assert.equal(formatDuration(119_600), '2 min');
  assert.equal(formatDuration(3 * 3_600_000 - 20_000), '3 h');
  assert.equal(formatDuration(999.6), '1.0 s');
  assert.equal(formatDuration(9_960), '10 s');
  assert.equal(formatDuration(59_500), '1 min');
  assert.equal(formatDuration(60_000), '1 min');
  assert.equal(formatDuration(3_599_600), '1 h');
  assert.equal(formatDuration(48 * 3_600_000 - 20_000), '2 d');
  assert.equal(formatDuration(-90_000), '-1 min 30 s');
  // From two days, days and hours: a schedule's next tick can be far off.
  assert.equal(formatDuration(30 * 3_600_000), '30 h');
  assert.equal(formatDuration(40 * 86_400_000 + 3 * 3_600_000 + 20 * 60_000), '40 d 3 h');
});

test('the runs list draws only the rows in view plus the overscan, however many there are', () => {
  assert.deepEqual(visibleRange(0, 360, 100_000), [0, 10 + OVERSCAN]);
  const top = 1_000 * ROW_HEIGHT;
  assert.deepEqual(visibleRange(top, 360, 100_000), [1_000 - OVERSCAN, 1_010 + OVERSCAN]);
  // Near the end and with fewer rows than fit: clamped to what exists.
  assert.deepEqual(visibleRange(0, 360, 4), [0, 4]);
  assert.deepEqual(visibleRange(top, 360, 5), [5, 5]);
});
