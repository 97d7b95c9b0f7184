// One run: its waterfall drawn live from the run's event stream (history first, then live), its
// progress with an estimate, input and output, trace id, a JSON export, and the operator actions.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, canOperate, FINAL_STATUSES, type RunDetail, type Workflow } from '../api.ts';
import { useApp } from '../context.ts';
import { LiveSource, type LiveState, RUN_EVENT_TYPES, STEP_EVENT_TYPES } from '../live.ts';
import { LiveBadge, ProgressBar, StatusBadge } from '../parts/badges.tsx';
import { ActionDialog } from '../parts/dialog.tsx';
import { clockTime, dateTime, formatDuration, json } from '../parts/format.ts';
import { useCoalesced, useLoad, useNow } from '../parts/hooks.ts';
import { ErrorBox, Loading } from '../parts/states.tsx';
import {
  buildWaterfall,
  estimateRemainingMs,
  type Lane,
  type Segment,
  type TimelineEntry,
  type Waterfall,
} from '../waterfall.ts';

interface StreamEvent extends TimelineEntry {
  id: number;
}

/** The run's timeline over its stream: every event once, in order, then `end` when it is over. */
function useRunStream(id: string, onChange: () => void) {
  const [events, setEvents] = useState<StreamEvent[]>([]);
  const [live, setLive] = useState<LiveState>({ status: 'connecting', since: null });
  const changed = useRef(onChange);
  changed.current = onChange;
  useEffect(() => {
    setEvents([]);
    const seen = new Set<number>();
    let batch: StreamEvent[] = [];
    let scheduled = false;
    // Events read together arrive together: draw them in one render, not one per event.
    const flush = () => {
      scheduled = false;
      const add = batch;
      batch = [];
      setEvents((all) => [...all, ...add]);
    };
    const source = new LiveSource({
      url: `api/runs/${encodeURIComponent(id)}/stream`,
      types: [...RUN_EVENT_TYPES, ...STEP_EVENT_TYPES],
      onMessage: ({ type, data }) => {
        if (type === 'gap' || typeof data?.id !== 'number' || seen.has(data.id)) return;
        seen.add(data.id);
        batch.push(data as StreamEvent);
        if (!scheduled) {
          scheduled = true;
          queueMicrotask(flush);
        }
        if (type.startsWith('run:')) changed.current();
      },
      onState: setLive,
      onEnd: () => changed.current(),
    });
    return () => source.close();
  }, [id]);
  return { events, live };
}

/** The track's viewBox width: segments are placed in these units and the SVG stretches to fit. */
const WIDTH = 1000;

function segmentClass(s: Segment): string {
  return `seg seg-${s.kind}${s.status === undefined ? '' : ` seg-${s.status}`}${s.open ? ' seg-open' : ''}`;
}

function LaneRow({ lane, chart, now }: { lane: Lane; chart: Waterfall; now: number }) {
  const span = chart.end - chart.start;
  const x = (t: number) => ((t - chart.start) / span) * WIDTH;
  const summary = `${lane.name}: ${lane.status}${lane.attempts > 0 ? `, ${lane.attempts} attempt${lane.attempts === 1 ? '' : 's'}` : ''}`;
  const parked = lane.segments.find((s) => s.kind === 'parked' && s.open);
  return (
    <li class="lane" data-lane={lane.name} data-status={lane.status}>
      <span class="lane-label">
        <span class="lane-name">{lane.name}</span>
        <span class={`badge status-${lane.status}`}>{lane.status}</span>
      </span>
      <svg
        class="track"
        viewBox={`0 0 ${WIDTH} 20`}
        preserveAspectRatio="none"
        role="img"
        aria-label={summary}
      >
        {lane.segments.map((s, i) => {
          const left = x(s.start);
          // At least a hairline, so an instant attempt still shows.
          const width = Math.max(x(s.end) - left, 2);
          return (
            <rect
              key={i}
              class={segmentClass(s)}
              x={left}
              y={s.kind === 'backoff' ? 8 : 2}
              width={width}
              height={s.kind === 'backoff' ? 4 : 16}
            >
              <title>{`${s.label} (${clockTime(s.start)}–${s.open ? 'now' : clockTime(s.end)})`}</title>
            </rect>
          );
        })}
        {chart.finished ? null : <line class="now-line" x1={x(now)} x2={x(now)} y1={0} y2={20} />}
      </svg>
      {parked === undefined ? null : (
        <span class="lane-note">
          {parked.label.split(';')[0]}; resumes{' '}
          {parked.resumeAt === undefined ? '' : `at ${clockTime(parked.resumeAt)}`}
        </span>
      )}
    </li>
  );
}

function WaterfallView({ chart, now }: { chart: Waterfall; now: number }) {
  const all = [...chart.lanes, ...chart.compensations];
  return (
    <div class="waterfall">
      <div class="axis small muted" aria-hidden="true">
        <span>{clockTime(chart.start)}</span>
        <span>{formatDuration(chart.end - chart.start)}</span>
        <span>{chart.finished ? clockTime(chart.end) : 'now'}</span>
      </div>
      <ol class="lanes" aria-label="Steps">
        {chart.lanes.map((lane) => (
          <LaneRow key={lane.name} lane={lane} chart={chart} now={now} />
        ))}
      </ol>
      {chart.compensations.length === 0 ? null : (
        <>
          <h3 class="lane-group">Compensation</h3>
          <ol class="lanes compensation" aria-label="Compensations">
            {chart.compensations.map((lane) => (
              <LaneRow key={lane.name} lane={lane} chart={chart} now={now} />
            ))}
          </ol>
        </>
      )}
      <ul class="legend small" aria-label="Legend">
        <li>
          <span class="key seg-attempt seg-ok" /> attempt
        </li>
        <li>
          <span class="key seg-attempt seg-failed" /> failed attempt
        </li>
        <li>
          <span class="key seg-backoff" /> backoff
        </li>
        <li>
          <span class="key seg-parked" /> parked (open circuit)
        </li>
        <li>
          <span class="key seg-sleep" /> sleep or wait
        </li>
      </ul>
      <details>
        <summary>The same as a table</summary>
        <table class="table">
          <thead>
            <tr>
              <th scope="col">Step</th>
              <th scope="col">What</th>
              <th scope="col">From</th>
              <th scope="col">To</th>
            </tr>
          </thead>
          <tbody>
            {all.flatMap((lane) =>
              lane.segments.map((s, i) => (
                <tr key={`${lane.name}-${i}`}>
                  <td>{lane.name}</td>
                  <td>{s.label}</td>
                  <td>{clockTime(s.start)}</td>
                  <td>
                    {s.open
                      ? s.kind === 'parked'
                        ? `expected ${clockTime(s.end)}`
                        : 'now'
                      : clockTime(s.end)}
                  </td>
                </tr>
              )),
            )}
          </tbody>
        </table>
      </details>
    </div>
  );
}

/**
 * The trace id of the run's W3C traceparent (`00-<trace id>-<span id>-<flags>`): from the run if
 * the API gives it, else from its first event that carries it (the engine records it on each).
 */
function traceIdOf(run: RunDetail, events: readonly StreamEvent[]): string | null {
  if (typeof run.traceId === 'string') return run.traceId;
  const traceparent =
    run.traceparent ?? events.find((e) => typeof e.data?.traceparent === 'string')?.data.traceparent;
  const parts = typeof traceparent === 'string' ? traceparent.split('-') : [];
  return parts.length === 4 ? (parts[1] ?? null) : null;
}

function exportJson(run: RunDetail, events: StreamEvent[]): void {
  const blob = new Blob([JSON.stringify({ run, timeline: events }, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = `run-${run.id}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1_000);
}

type Dialog = 'cancel' | 'retry' | 'event' | undefined;

function RunActions({ run, onDone }: { run: RunDetail; onDone: () => void }) {
  const { session } = useApp();
  const [dialog, setDialog] = useState<Dialog>(undefined);
  const [reason, setReason] = useState('');
  const [eventName, setEventName] = useState('');
  const [payload, setPayload] = useState('null');
  const final = FINAL_STATUSES.includes(run.status);
  const retryable = ['failed', 'compensated', 'cancelled'].includes(run.status);
  if (!canOperate(session)) {
    return (
      <p class="muted note">Cancel, retry and send event need an operator key; {session.name} is a viewer.</p>
    );
  }
  const path = `runs/${encodeURIComponent(run.id)}`;
  return (
    <div class="actions">
      <button type="button" class="danger" disabled={final} onClick={() => setDialog('cancel')}>
        Cancel run…
      </button>
      <button type="button" disabled={!retryable} onClick={() => setDialog('retry')}>
        Retry…
      </button>
      <button
        type="button"
        disabled={final}
        onClick={() => {
          setEventName(run.waitingFor ?? '');
          setDialog('event');
        }}
      >
        Send event…
      </button>
      {dialog === 'cancel' ? (
        <ActionDialog
          title={`Cancel run ${run.id}?`}
          confirmLabel="Cancel the run"
          danger
          onClose={() => setDialog(undefined)}
          onConfirm={async () => {
            await api(`${path}/cancel`, { body: reason.trim() === '' ? {} : { reason: reason.trim() } });
            onDone();
          }}
        >
          <p>
            Its completed steps are compensated. This cannot be undone, but a cancelled run can be retried.
          </p>
          <label for="cancel-reason">Reason (optional)</label>
          <input id="cancel-reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
        </ActionDialog>
      ) : null}
      {dialog === 'retry' ? (
        <ActionDialog
          title={`Retry run ${run.id}?`}
          confirmLabel="Retry"
          onClose={() => setDialog(undefined)}
          onConfirm={async () => {
            await api(`${path}/retry`, { body: {} });
            onDone();
          }}
        >
          <p>
            Completed steps whose effects still stand are kept; the failed step and those compensated run
            again.
          </p>
        </ActionDialog>
      ) : null}
      {dialog === 'event' ? (
        <ActionDialog
          title={`Send an event to run ${run.id}`}
          confirmLabel="Send"
          onClose={() => setDialog(undefined)}
          onConfirm={async () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(payload === '' ? 'null' : payload);
            } catch (error) {
              throw new Error(`The payload is not JSON: ${(error as Error).message}`);
            }
            await api(`${path}/events`, { body: { name: eventName.trim(), payload: parsed } });
            onDone();
          }}
        >
          <label for="event-name">Event name</label>
          <input
            id="event-name"
            required
            value={eventName}
            onInput={(e) => setEventName(e.currentTarget.value)}
          />
          <label for="event-payload">Payload (JSON)</label>
          <textarea
            id="event-payload"
            rows={4}
            value={payload}
            onInput={(e) => setPayload(e.currentTarget.value)}
          />
        </ActionDialog>
      ) : null}
    </div>
  );
}

export function RunPage({ id }: { id: string }) {
  const run = useLoad((signal) => api<RunDetail>(`runs/${encodeURIComponent(id)}`, { signal }), [id]);
  const workflowName = run.data?.workflow;
  const workflow = useLoad(
    (signal) =>
      workflowName === undefined
        ? Promise.resolve(undefined)
        : api<Workflow>(`workflows/${encodeURIComponent(workflowName)}`, { signal }).catch(() => undefined),
    [workflowName],
  );
  const refresh = useCoalesced(run.reload, 300, [run.reload]);
  const { events, live } = useRunStream(id, refresh.poke);
  const finished = run.data !== undefined && FINAL_STATUSES.includes(run.data.status);
  const now = useNow(1_000, !finished && events.length > 0);
  const chart = useMemo(
    () => buildWaterfall(events, Math.max(now, events.at(-1)?.at ?? 0), workflow.data?.steps ?? []),
    [events, now, workflow.data],
  );

  if (run.error !== undefined && run.data === undefined) {
    return (
      <section>
        <h1>Run {id}</h1>
        <ErrorBox error={run.error} retry={run.reload} />
      </section>
    );
  }
  if (run.data === undefined) return <Loading what={`run ${id}`} />;
  const r = run.data;
  const progress = Math.max(r.progress, chart.progress);
  const remaining = finished ? undefined : estimateRemainingMs(progress, r.createdAt, now);
  const traceId = traceIdOf(r, events);
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="#/runs">Runs</a> /{' '}
        <span aria-current="page" class="mono">
          {r.id}
        </span>
      </nav>
      <div class="title-row">
        <h1>
          {r.workflow} <span class="mono small">{r.id}</span>
        </h1>
        <StatusBadge status={r.status} />
        <LiveBadge state={live} />
      </div>
      <div class="progress-row">
        <ProgressBar value={progress} label={`Progress of run ${r.id}`} />
        <span>
          {Math.round(progress)}%
          {remaining === undefined ? '' : ` · about ${formatDuration(remaining)} left at this pace`}
        </span>
      </div>
      <RunActions run={r} onDone={run.reload} />
      {r.error === null ? null : (
        <p class="state state-error" role="status">
          <strong>{r.error.name ?? 'Error'}:</strong> {r.error.message}
        </p>
      )}

      <section aria-labelledby="waterfall-title">
        <h2 id="waterfall-title">Waterfall</h2>
        {events.length === 0 ? <Loading what="the timeline" /> : <WaterfallView chart={chart} now={now} />}
      </section>

      <section aria-labelledby="details-title">
        <h2 id="details-title">Details</h2>
        <dl class="details">
          <dt>Workflow</dt>
          <dd>
            {r.workflow} v{r.version}
          </dd>
          <dt>Priority</dt>
          <dd>{r.priority}</dd>
          <dt>Created</dt>
          <dd>{dateTime(r.createdAt)}</dd>
          <dt>Finished</dt>
          <dd>{dateTime(r.finishedAt)}</dd>
          <dt>Correlation id</dt>
          <dd class="mono">{r.correlationId ?? '—'}</dd>
          <dt>Idempotency key</dt>
          <dd class="mono">{r.idempotencyKey ?? '—'}</dd>
          <dt>Trace id</dt>
          <dd class="mono">{traceId ?? '—'}</dd>
          {r.waitingFor === null ? null : (
            <>
              <dt>Waiting for</dt>
              <dd class="mono">{r.waitingFor}</dd>
            </>
          )}
        </dl>
        <button type="button" onClick={() => exportJson(r, events)}>
          Export JSON
        </button>
      </section>

      <section aria-labelledby="io-title" class="io">
        <h2 id="io-title">Input and output</h2>
        <div class="io-grid">
          <div>
            <h3>Input</h3>
            <pre class="json">{json(r.input)}</pre>
          </div>
          <div>
            <h3>Output</h3>
            <pre class="json">{finished || r.output !== null ? json(r.output) : 'not yet'}</pre>
          </div>
        </div>
      </section>
    </>
  );
}
