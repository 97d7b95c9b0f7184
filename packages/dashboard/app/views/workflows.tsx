// The registered workflows, each with a form to start a run (JSON input, priority, optional
// idempotency key) for operators; the new run's page opens once the server has stored it.
import { useState } from 'preact/hooks';
import { api, canOperate, describeError, type Run, type Workflow } from '../api.ts';
import { useApp } from '../context.ts';
import { useLoad } from '../parts/hooks.ts';
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

export function WorkflowsPage() {
  const { session } = useApp();
  const workflows = useLoad((signal) => api<{ items: Workflow[] }>('workflows', { signal }), []);
  return (
    <>
      <h1>Workflows</h1>
      {canOperate(session) ? null : (
        <p class="muted note">Starting runs needs an operator key; {session.name} is a viewer.</p>
      )}
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
              {canOperate(session) ? <StartForm workflow={w} /> : null}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
