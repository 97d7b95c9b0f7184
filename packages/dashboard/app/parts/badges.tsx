// The small coloured words (a breaker's state, a run's status, the live connection), and the
// cells of a run's row, which the overview and the runs list share.
import type { Run } from '../api.ts';
import type { LiveState } from '../live.ts';
import { clockTime, dateTime } from './format.ts';

export function StateBadge({ state }: { state: string | null }) {
  const value = state ?? 'no breaker';
  return <span class={`badge state-${value.replace(/\W+/g, '-')}`}>{value}</span>;
}

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge status-${status}`}>{status}</span>;
}

export function LiveBadge({ state }: { state: LiveState }) {
  const text =
    state.status === 'live'
      ? 'live'
      : state.status === 'connecting'
        ? 'connecting…'
        : state.status === 'reconnecting'
          ? 'reconnecting…'
          : state.status === 'ended'
            ? 'ended'
            : `stale since ${clockTime(state.since ?? Date.now())}`;
  return (
    <output class={`badge live live-${state.status}`} aria-live="polite" data-live={state.status}>
      {text}
    </output>
  );
}

export function ProgressBar({ value, label }: { value: number; label: string }) {
  return (
    <progress class="progress" max={100} value={value} aria-label={label}>
      {Math.round(value)}%
    </progress>
  );
}

/** The header cells above `RunCells`. */
export function RunHeadCells() {
  return (
    <>
      <th scope="col">Run</th>
      <th scope="col">Workflow</th>
      <th scope="col">Status</th>
      <th scope="col">Progress</th>
      <th scope="col">Created</th>
    </>
  );
}

/** A run's row cells: id (a link to its page), workflow, status, progress, created. */
export function RunCells({ run }: { run: Run }) {
  return (
    <>
      <td>
        <a class="mono" href={`#/runs/${encodeURIComponent(run.id)}`}>
          {run.id}
        </a>
      </td>
      <td>{run.workflow}</td>
      <td>
        <StatusBadge status={run.status} />
      </td>
      <td>{Math.round(run.progress)}%</td>
      <td>{dateTime(run.createdAt)}</td>
    </>
  );
}
