// The registered workflows, each with the cron schedules that start it and a form to start a run
// (JSON input, priority, optional idempotency key) for operators; the new run's page opens once
// the server has stored it.
import { useEffect, useState } from 'preact/hooks';
import { api, canOperate, describeError, type Run, type Schedule, type Workflow } from '../api.ts';
import { useApp } from '../context.ts';
import { dateTime, formatDuration } from '../parts/format.ts';
import { type Loaded, useLoad, useNow } from '../parts/hooks.ts';
import { Empty, ErrorBox, Loading } from '../parts/states.tsx';

const PRIORITIES = ['low', 'normal', 'high', 'urgent', 'critical'];

function StartForm({ workflow }: { workflow: Workflow }) {
  const id = `start-${workflow.name.replace(/\W+/g, '-')}`;
  // The workflow's example, when it has one: `{}` would fail a workflow that needs fields.
  const [input, setInput] = useState(() =>
    workflow.example === undefined ? '{}' : JSON.stringify(workflow.example, null, 2),
  );
  const [priority, setPriority] = useState('normal');
  const [idempotencyKey, setIdempotencyKey] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    let parsed: unknown;
    try {
      parsed = input.trim() === '' ? null : JSON.parse(input);
    } catch (e) {
      setError(`The input is not JSON: ${(e as Error).message}`);
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const run = await api<Run>(`workflows/${encodeURIComponent(workflow.name)}/runs`, {
        body: { input: parsed, priority },
        ...(idempotencyKey.trim() === '' ? {} : { headers: { 'idempotency-key': idempotencyKey.trim() } }),
      });
      location.hash = `#/runs/${encodeURIComponent(run.id)}`;
    } catch (e) {
      setError(describeError(e));
      setBusy(false);
    }
  };
  return (
    <form class="start-form" onSubmit={submit} aria-label={`Start a run of ${workflow.name}`}>
      <label for={`${id}-input`}>Input (JSON)</label>
      <textarea
        id={`${id}-input`}
        rows={4}
        class="mono"
        value={input}
        onInput={(e) => setInput(e.currentTarget.value)}
      />
      <div class="row">
        <div class="field">
          <label for={`${id}-priority`}>Priority</label>
          <select id={`${id}-priority`} value={priority} onChange={(e) => setPriority(e.currentTarget.value)}>
            {PRIORITIES.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for={`${id}-key`}>Idempotency key (optional)</label>
          <input
            id={`${id}-key`}
            value={idempotencyKey}
            onInput={(e) => setIdempotencyKey(e.currentTarget.value)}
          />
        </div>
      </div>
      {error === undefined ? null : (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" class="primary" disabled={busy}>
        {busy ? 'Starting…' : 'Start run'}
      </button>
    </form>
  );
}

/** How often the page looks at the time: the "in 5 min" texts, and whether a tick has passed. */
const CLOCK_MS = 15_000;

/**
 * The schedules, and the time they are shown at. Once the earliest next tick has passed, they are
 * loaded again at each turn of the clock until the server has moved it on, so a browser clock
 * ahead of the server's, or a failed load, only delays the refresh.
 */
function useSchedules(): { schedules: Loaded<{ items: Schedule[] }>; now: number } {
  const schedules = useLoad((signal) => api<{ items: Schedule[] }>('schedules', { signal }), []);
  const ticks = (schedules.data?.items ?? []).flatMap((s) => (s.next === null ? [] : [s.next]));
  const earliest = ticks.length === 0 ? undefined : Math.min(...ticks);
  // No clock while no schedule has a next tick: nothing on the page would change.
  const now = useNow(CLOCK_MS, earliest !== undefined);
  const passed = earliest !== undefined && now >= earliest;
  useEffect(() => {
    if (passed) schedules.reload();
  }, [passed, now]);
  return { schedules, now };
}

/** A workflow's schedules; nothing when it has none. */
function SchedulesTable({
  workflow,
  schedules,
  now,
}: {
  workflow: string;
  schedules: Schedule[];
  now: number;
}) {
  if (schedules.length === 0) return null;
  return (
    <table class="table schedules" data-testid={`schedules-${workflow}`}>
      <caption>
        Schedules<span class="visually-hidden"> of {workflow}</span>
      </caption>
      <thead>
        <tr>
          <th scope="col">Schedule</th>
          <th scope="col">Cron</th>
          <th scope="col">Next tick</th>
          <th scope="col">Last tick with a run</th>
          <th scope="col">Priority</th>
          <th scope="col">Catch-up</th>
        </tr>
      </thead>
      <tbody>
        {schedules.map((s) => (
          <tr key={s.name} data-schedule={s.name}>
            <th scope="row">{s.name}</th>
            <td>
              <span class="mono">{s.cron}</span> <span class="muted small">{s.timezone}</span>
            </td>
            <td>
              {s.next === null ? (
                '—'
              ) : (
                <>
                  {dateTime(s.next)}{' '}
                  <span class="muted small">
                    {s.next > now ? `in ${formatDuration(s.next - now)}` : 'due now'}
                  </span>
                </>
              )}
            </td>
            <td>{s.lastTick === null ? 'none yet' : dateTime(s.lastTick)}</td>
            <td>{s.priority}</td>
            <td>{typeof s.catchUp === 'string' ? s.catchUp : `up to ${s.catchUp.maxTicks} ticks`}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function WorkflowsPage() {
  const { session } = useApp();
  const workflows = useLoad((signal) => api<{ items: Workflow[] }>('workflows', { signal }), []);
  const { schedules, now } = useSchedules();
  const schedulesOf = (workflow: string) =>
    schedules.data?.items.filter((s) => s.workflow === workflow) ?? [];
  return (
    <>
      <h1>Workflows</h1>
      {canOperate(session) ? null : (
        <p class="muted note">Starting runs needs an operator key; {session.name} is a viewer.</p>
      )}
      {schedules.error !== undefined && schedules.data === undefined ? (
        <ErrorBox error={schedules.error} retry={schedules.reload} what="the schedules" />
      ) : null}
      {workflows.error !== undefined ? (
        <ErrorBox error={workflows.error} retry={workflows.reload} />
      ) : workflows.data === undefined ? (
        <Loading what="workflows" />
      ) : workflows.data.items.length === 0 ? (
        <Empty>
          <p>No workflows are registered on this server.</p>
        </Empty>
      ) : (
        <ul class="workflow-list">
          {workflows.data.items.map((w) => (
            <li key={w.name} class="card" data-workflow={w.name}>
              <h2>
                {w.name} <span class="muted small">v{w.version}</span>
              </h2>
              {w.description === null ? null : <p>{w.description}</p>}
              {w.steps === null ? null : (
                <p class="small">
                  Steps: <span class="mono">{w.steps.join(' → ')}</span> ·{' '}
                  <a href={`#/runs?workflow=${encodeURIComponent(w.name)}`}>its runs</a>
                </p>
              )}
              <SchedulesTable workflow={w.name} schedules={schedulesOf(w.name)} now={now} />
              {canOperate(session) ? <StartForm workflow={w} /> : null}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
