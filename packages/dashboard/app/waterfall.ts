// A run's timeline events turned into the waterfall's lanes: each attempt a segment, the backoff
// between attempts, the time a step sat parked behind an open circuit (with why and until when),
// sleeps and waits, and the compensations in a lane of their own. Pure, so it is tested in Node.

export interface TimelineEntry {
  type: string;
  step: string | null;
  data: any;
  progress: number;
  at: number;
}

export type SegmentKind = 'attempt' | 'backoff' | 'parked' | 'sleep' | 'wait';
export type SegmentStatus = 'running' | 'ok' | 'failed' | 'fallback' | 'rejected' | 'interrupted';

export interface Segment {
  kind: SegmentKind;
  start: number;
  end: number;
  /** Still going: `end` is now (or, for a parked step, the time it is expected to resume). */
  open: boolean;
  status?: SegmentStatus;
  attempt?: number;
  /** One line saying what happened, for the tooltip and the table view. */
  label: string;
  /** When a parked or sleeping step is expected to go on. */
  resumeAt?: number;
}

export type LaneStatus =
  | 'pending'
  | 'running'
  | 'completed'
  | 'failed'
  | 'fallback'
  | 'parked'
  | 'sleeping'
  | 'waiting';

export interface Lane {
  name: string;
  kind: 'step' | 'compensation' | 'sleep' | 'wait';
  status: LaneStatus;
  attempts: number;
  segments: Segment[];
}

export interface Waterfall {
  start: number;
  end: number;
  lanes: Lane[];
  compensations: Lane[];
  progress: number;
  finished: boolean;
}

const FINAL_RUN_EVENTS = new Set([
  'run:completed',
  'run:degraded',
  'run:failed',
  'run:compensated',
  'run:cancelled',
]);

function errorText(data: any): string {
  const error = data?.error;
  if (error === null || typeof error !== 'object') return '';
  const name = typeof error.name === 'string' ? error.name : 'Error';
  return typeof error.message === 'string' ? `${name}: ${error.message}` : name;
}

/**
 * Builds the waterfall of a run from its timeline (oldest first), as it stands at `now`. Steps the
 * workflow declares but has not reached yet are shown as pending lanes, in their declared order.
 */
export function buildWaterfall(
  events: readonly TimelineEntry[],
  now: number,
  declared: readonly string[] = [],
): Waterfall {
  const lanes = new Map<string, Lane>();
  for (const name of declared) {
    lanes.set(name, {
      name,
      kind: name.startsWith('sleep:') ? 'sleep' : 'step',
      status: 'pending',
      attempts: 0,
      segments: [],
    });
  }
  const compensations = new Map<string, Lane>();
  let progress = 0;
  let finishedAt: number | undefined;
  const start = events[0]?.at ?? now;

  const lane = (name: string, kind: Lane['kind']): Lane => {
    const map = kind === 'compensation' ? compensations : lanes;
    let found = map.get(name);
    if (found === undefined) {
      found = { name, kind, status: 'pending', attempts: 0, segments: [] };
      map.set(name, found);
    } else if (found.segments.length === 0) {
      found.kind = kind;
    }
    return found;
  };
  const openSegment = (l: Lane, kind?: SegmentKind): Segment | undefined => {
    const last = l.segments.at(-1);
    return last?.open && (kind === undefined || last.kind === kind) ? last : undefined;
  };
  const closeAttempt = (l: Lane, at: number, status: SegmentStatus, detail: string): void => {
    const open = openSegment(l, 'attempt');
    if (open === undefined) return;
    open.open = false;
    open.end = Math.max(open.start, at);
    open.status = status;
    open.label = `attempt ${open.attempt}: ${status}${detail === '' ? '' : ` (${detail})`}`;
  };
  const closeWait = (l: Lane, at: number, status: SegmentStatus, outcome: string): void => {
    const wait = openSegment(l, 'wait');
    if (wait === undefined) return;
    wait.open = false;
    wait.end = Math.max(wait.start, at);
    wait.status = status;
    wait.label = `${wait.label}: ${outcome}`;
  };
  const startAttempt = (l: Lane, at: number): void => {
    l.attempts++;
    l.status = 'running';
    l.segments.push({
      kind: 'attempt',
      start: at,
      end: at,
      open: true,
      status: 'running',
      attempt: l.attempts,
      label: `attempt ${l.attempts}: running`,
    });
  };

  for (const event of events) {
    const { type, step, at, data } = event;
    if (event.progress > progress || type === 'run:retried') progress = event.progress;
    if (FINAL_RUN_EVENTS.has(type)) finishedAt = at;
    else if (type === 'run:retried' || type === 'run:queued') finishedAt = undefined;
    if (step === null) continue;
    switch (type) {
      case 'step:started': {
        const l = lane(step, 'step');
        const previous = l.segments.at(-1);
        // A parked step or one whose worker was lost starts again: what was open ends here.
        if (previous?.open && previous.kind === 'parked') {
          previous.open = false;
          previous.end = Math.max(previous.start, at);
        }
        const open = openSegment(l, 'attempt');
        if (open !== undefined && open.start >= at) {
          // An attempt a retry scheduled that had not begun: it begins now, as this one.
          l.segments.pop();
          l.attempts--;
        } else {
          closeAttempt(l, at, 'interrupted', 'the worker stopped');
        }
        startAttempt(l, at);
        break;
      }
      case 'step:retry-scheduled': {
        const l = lane(step, 'step');
        const delayMs = Number(data?.delayMs ?? 0);
        closeAttempt(l, at, 'failed', errorText(data));
        l.segments.push({
          kind: 'backoff',
          start: at,
          end: at + delayMs,
          open: false,
          label: `backoff ${delayMs} ms before attempt ${l.attempts + 1}`,
        });
        startAttempt(l, at + delayMs);
        break;
      }
      case 'step:completed': {
        const l = lane(step, 'step');
        closeAttempt(l, at, 'ok', '');
        l.status = 'completed';
        break;
      }
      case 'step:fallback': {
        const l = lane(step, 'step');
        closeAttempt(l, at, 'fallback', errorText(data));
        l.status = 'fallback';
        break;
      }
      case 'step:failed': {
        const l = lane(step, lanes.get(step)?.kind ?? 'step');
        closeWait(l, at, 'failed', errorText(data) || 'failed');
        closeAttempt(l, at, 'failed', errorText(data));
        l.status = 'failed';
        break;
      }
      case 'step:parked': {
        const l = lane(step, 'step');
        const waitMs = Number(data?.retryAfterMs ?? 0);
        const dependency = typeof data?.dependency === 'string' ? data.dependency : 'its dependency';
        // The call was refused by the open circuit without running: no attempt was spent.
        const refused = openSegment(l, 'attempt');
        if (refused !== undefined) {
          l.segments.pop();
          l.attempts--;
        }
        l.segments.push({
          kind: 'parked',
          start: at,
          end: at + waitMs,
          open: true,
          label: `parked by ${typeof data?.breaker === 'string' ? data.breaker : `the circuit of ${dependency}`}: ${
            typeof data?.message === 'string' ? data.message : 'the circuit is open'
          }; expected to resume in ${formatDuration(waitMs)}`,
          resumeAt: at + waitMs,
        });
        l.status = 'parked';
        break;
      }
      case 'run:sleeping': {
        const l = lane(step, 'sleep');
        const until = Number(data?.until ?? at);
        l.segments.push({
          kind: 'sleep',
          start: at,
          end: until,
          open: false,
          label: `sleeping until ${new Date(until).toISOString()}`,
          resumeAt: until,
        });
        l.status = until > now ? 'sleeping' : 'completed';
        break;
      }
      case 'run:waiting': {
        const l = lane(step, 'wait');
        const what =
          typeof data?.event === 'string'
            ? `waiting for the event "${data.event}"`
            : typeof data?.child === 'string'
              ? `waiting for the child run ${data.child}`
              : 'waiting';
        l.segments.push({
          kind: 'wait',
          start: at,
          end: at,
          open: true,
          label: what,
          ...(typeof data?.deadline === 'number' ? { resumeAt: data.deadline } : {}),
        });
        l.status = 'waiting';
        break;
      }
      case 'run:event-received': {
        const l = lane(step, 'wait');
        closeWait(l, at, 'ok', 'received');
        l.status = 'completed';
        break;
      }
      case 'compensation:started':
        startAttempt(lane(step, 'compensation'), at);
        break;
      case 'compensation:completed': {
        const l = lane(step, 'compensation');
        closeAttempt(l, at, 'ok', '');
        l.status = 'completed';
        break;
      }
      case 'compensation:failed': {
        const l = lane(step, 'compensation');
        closeAttempt(l, at, 'failed', errorText(data));
        l.status = 'failed';
        break;
      }
    }
  }

  const finished = finishedAt !== undefined;
  const viewEnd = finishedAt ?? now;
  let end = viewEnd;
  for (const l of [...lanes.values(), ...compensations.values()]) {
    l.segments = l.segments.filter((s) => s.start <= viewEnd);
    for (const s of l.segments) {
      if (s.open && (s.kind === 'attempt' || s.kind === 'wait')) {
        s.end = Math.max(s.start, viewEnd);
        if (finished) {
          s.open = false;
          s.status = 'interrupted';
          s.label = `${s.label.split(':')[0]}: ended with the run`;
        }
      }
      if (s.open && s.kind === 'parked' && finished) {
        s.open = false;
        s.end = Math.max(s.start, Math.min(s.end, viewEnd));
      }
      end = Math.max(end, s.end);
    }
    if (finished && (l.status === 'running' || l.status === 'parked' || l.status === 'waiting'))
      l.status = 'failed';
  }
  return {
    start,
    end: Math.max(end, start + 1),
    lanes: [...lanes.values()],
    compensations: [...compensations.values()],
    progress,
    finished,
  };
}

/**
 * The time left, from the progress so far at the pace so far; undefined before there is a pace
 * to go by (no progress yet) or once the run is over.
 */
export function estimateRemainingMs(progress: number, startedAt: number, now: number): number | undefined {
  if (progress <= 0 || progress >= 100 || now <= startedAt) return undefined;
  return Math.round(((now - startedAt) * (100 - progress)) / progress);
}

/** `850 ms`, `2.5 s`, `13 s`, `3 min 20 s`, `2 h 5 min`, `40 d 3 h` (days from two on); negatives keep their sign. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  // Each form is chosen by the value rounded to its own smaller unit, so a value just under a
  // unit reads as the unit (59.6 s is `1 min`, not `60 s`), and no part reaches its unit's size.
  if (Math.round(abs) < 1_000) return `${sign}${Math.round(abs)} ms`;
  if (abs < 9_950) return `${sign}${(abs / 1_000).toFixed(1)} s`;
  const seconds = Math.round(abs / 1_000);
  if (seconds < 60) return `${sign}${seconds} s`;
  const minutes = Math.round(abs / 60_000);
  if (seconds < 3_600) return sign + inUnits(seconds, 60, 'min', 's');
  if (minutes < 48 * 60) return sign + inUnits(minutes, 60, 'h', 'min');
  return sign + inUnits(Math.round(abs / 3_600_000), 24, 'd', 'h');
}

/** `total` small units as big ones and the rest: `3 min 20 s`, or `3 min` with no rest. */
function inUnits(total: number, per: number, big: string, small: string): string {
  const rest = total % per;
  return `${Math.floor(total / per)} ${big}${rest === 0 ? '' : ` ${rest} ${small}`}`;
}
