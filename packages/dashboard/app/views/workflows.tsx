// The registered workflows, each with the cron schedules that start it and a form to start a run
// (JSON input, priority, optional idempotency key) for operators; the new run's page opens once
// the server has stored it.
import { useEffect, useState } from 'preact/hooks';
import { api, canOperate, describeError, type Run, type Schedule, type Workflow } from '../api.ts';
import { useApp } from '../context.ts';
import { dateTime, formatDuration } from '../parts/format.ts';
import { type Loaded, useLoad } from '../parts/hooks.ts';
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

/** Longest wait a browser timer takes (about 24.8 days); a later tick is waited for in turns. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The schedules, loaded again once the earliest next tick has passed, so `next` stays ahead. */
function useSchedules(): Loaded<{ items: Schedule[] }> {
  const schedules = useLoad((signal) => api<{ items: Schedule[] }>('schedules', { signal }), []);
  const ticks = (schedules.data?.items ?? []).flatMap((s) => (s.next === null ? [] : [s.next]));
  const earliest = ticks.length === 0 ? undefined : Math.min(...ticks);
  useEffect(() => {
    if (earliest === undefined) return;
    // A second after the tick: the server has moved `next` on by then.
    const timer = setTimeout(
      schedules.reload,
      Math.min(Math.max(earliest - Date.now(), 0) + 1_000, MAX_TIMER_MS),
    );
    return () => clearTimeout(timer);
  }, [earliest]);
  return schedules;
}

/** A workflow's schedules; nothing when it has none. */
function SchedulesTable({ workflow, schedules }: { workflow: string; schedules: Schedule[] }) {
  if (schedules.length === 0) return null;
  const now = Date.now();
  return (
    <table class="table schedules" data-testid={`schedules-${workflow}`}>
      <caption>Schedules</caption>
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
                  <span class="muted small">in {formatDuration(Math.max(s.next - now, 0))}</span>
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
  const schedules = useSchedules();
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
              <SchedulesTable workflow={w.name} schedules={schedulesOf(w.name)} />
              {canOperate(session) ? <StartForm workflow={w} /> : null}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
