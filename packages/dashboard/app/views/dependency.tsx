// One dependency: its breaker (state, why it changed, countdown to half-open), bulkhead and limiter
// gauges, latency, 5/15/60-minute sparklines, the runs parked on it, and isolate/reset for operators.
import { useState } from 'preact/hooks';
import { api, canOperate, type Dependency, type ParkedRun, query, type Series } from '../api.ts';
import { useApp } from '../context.ts';
import { StateBadge } from '../parts/badges.tsx';
import { ActionDialog } from '../parts/dialog.tsx';
import { clockTime, dateTime, formatDuration, ms, percent } from '../parts/format.ts';
import { useLoad, useNow } from '../parts/hooks.ts';
import { Sparkline, total } from '../parts/sparkline.tsx';
import { Empty, ErrorBox, Loading } from '../parts/states.tsx';
import { useDependencies, useHistory } from './overview.tsx';

const WINDOWS = ['5m', '15m', '60m'] as const;
/** Offered isolation periods; "until reset" sends no expiry. */
const ISOLATE_FOR = [
  { value: '5m', label: '5 minutes' },
  { value: '10m', label: '10 minutes' },
  { value: '30m', label: '30 minutes' },
  { value: '1h', label: '1 hour' },
  { value: '', label: 'until reset' },
];

function Gauge({ label, value, max }: { label: string; value: number; max: number }) {
  return (
    <div class="gauge">
      <div class="gauge-label">
        <span>{label}</span>
        <span>
          {value} / {max}
        </span>
      </div>
      <meter
        min={0}
        max={Math.max(max, 1)}
        value={value}
        high={max * 0.8}
        aria-label={`${label}: ${value} of ${max}`}
      />
    </div>
  );
}

function HistoryPanel({ name }: { name: string }) {
  return (
    <table class="table history">
      <caption class="visually-hidden">Calls, failures, latency and rejections of {name} over time</caption>
      <thead>
        <tr>
          <th scope="col">Window</th>
          <th scope="col">Calls (blue) and failures (red)</th>
          <th scope="col">Latency p99 (blue) and p50 (red)</th>
          <th scope="col">Rejected</th>
        </tr>
      </thead>
      <tbody>
        {WINDOWS.map((window) => (
          <HistoryRow key={window} name={name} window={window} />
        ))}
      </tbody>
    </table>
  );
}

const last = <T,>(values: readonly T[]): T | undefined => values[values.length - 1];

function HistoryRow({ name, window }: { name: string; window: string }) {
  const history = useHistory(window);
  const series: Series | undefined = history.data?.dependencies[name];
  if (series === undefined) {
    return (
      <tr>
        <th scope="row">{window}</th>
        <td colSpan={3}>
          {history.error === undefined ? (
            <span class="muted">{history.loading ? 'loading…' : 'no history yet'}</span>
          ) : (
            <ErrorBox error={history.error} retry={history.reload} />
          )}
        </td>
      </tr>
    );
  }
  const bucketS = (history.data?.bucketMs ?? 1_000) / 1_000;
  const p99 = series.p99Ms.filter((v): v is number => v !== null);
  return (
    <tr>
      <th scope="row">{window}</th>
      <td>
        <Sparkline
          values={series.calls}
          overlay={series.failures}
          label={`calls and failures, last ${window}: ${total(series.calls)} calls, ${total(series.failures)} failures`}
          width={200}
        />
        <span class="small">
          {total(series.calls)} calls, {total(series.failures)} failed, {total(series.slow)} slow
        </span>
      </td>
      <td>
        <Sparkline
          values={series.p99Ms}
          overlay={series.p50Ms}
          label={`latency p99 and p50, last ${window}`}
          width={200}
        />
        <span class="small">{p99.length === 0 ? 'no timed calls' : `p99 up to ${ms(Math.max(...p99))}`}</span>
      </td>
      <td class="small">
        {total(series.rejected)} in {window}
        <br />
        {((last(series.rejected) ?? 0) / bucketS).toFixed(1)}/s in the last {bucketS} s
      </td>
    </tr>
  );
}

function Countdown({ to, label }: { to: number; label: string }) {
  const now = useNow(1_000, to > Date.now());
  const left = to - now;
  return (
    <p class="countdown">
      {label}{' '}
      {left > 0 ? (
        <strong>in {formatDuration(Math.ceil(left / 1_000) * 1_000)}</strong>
      ) : (
        <strong>now</strong>
      )}{' '}
      ({clockTime(to)})
    </p>
  );
}

function ParkedList({
  name,
  count,
  state,
}: {
  name: string;
  count: number | undefined;
  state: string | null;
}) {
  // The count (pushed in the dependency's snapshots) or the breaker's state changing means the
  // list did: it is read again then, and only then.
  const parked = useLoad(
    (signal) =>
      api<{ items: ParkedRun[]; total: number }>(
        `dependencies/${encodeURIComponent(name)}/parked${query({ limit: 100 })}`,
        { signal },
      ),
    [name, count, state],
  );
  if (parked.error !== undefined && parked.data === undefined) {
    return <ErrorBox error={parked.error} retry={parked.reload} />;
  }
  if (parked.data === undefined) return <Loading what="parked runs" />;
  if (parked.data.items.length === 0) {
    return (
      <Empty>
        <p>No run is parked on {name}.</p>
      </Empty>
    );
  }
  return (
    <>
      <p>
        {parked.data.total} {parked.data.total === 1 ? 'run is' : 'runs are'} parked on {name}
        {parked.data.total > parked.data.items.length ? ` (the first ${parked.data.items.length} shown)` : ''}
        .
      </p>
      <table class="table" data-testid="parked-runs">
        <caption class="visually-hidden">Runs parked on {name}</caption>
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Workflow</th>
            <th scope="col">Step</th>
            <th scope="col">Stopped by</th>
            <th scope="col">Since</th>
            <th scope="col">Resumes</th>
          </tr>
        </thead>
        <tbody>
          {parked.data.items.map((p) => (
            <tr key={p.runId}>
              <td>
                <a class="mono" href={`#/runs/${encodeURIComponent(p.runId)}`}>
                  {p.runId}
                </a>
              </td>
              <td>{p.workflow}</td>
              <td>{p.step}</td>
              <td>
                <span class="mono">{p.policy}</span>
                {p.reason === '' ? null : <span class="muted small"> {p.reason}</span>}
              </td>
              <td>{clockTime(p.since)}</td>
              <td>{p.resumeAt === null ? 'on reset' : clockTime(p.resumeAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Actions({ dep, onChanged }: { dep: Dependency; onChanged: () => void }) {
  const { session } = useApp();
  const [dialog, setDialog] = useState<'isolate' | 'reset' | undefined>(undefined);
  const [period, setPeriod] = useState('10m');
  if (dep.breaker === null) return <p class="muted">No circuit breaker: nothing to isolate or reset.</p>;
  if (!canOperate(session)) {
    return <p class="muted note">Isolate and reset need an operator key; {session.name} is a viewer.</p>;
  }
  const path = `dependencies/${encodeURIComponent(dep.name)}`;
  return (
    <div class="actions">
      <button type="button" class="danger" onClick={() => setDialog('isolate')}>
        Isolate…
      </button>
      <button type="button" onClick={() => setDialog('reset')}>
        Reset…
      </button>
      {dialog === 'isolate' ? (
        <ActionDialog
          title={`Isolate ${dep.name}?`}
          confirmLabel="Isolate"
          danger
          onClose={() => setDialog(undefined)}
          onConfirm={async () => {
            await api(`${path}/isolate`, { body: period === '' ? {} : { for: period } });
            onChanged();
          }}
        >
          <p>
            Its circuit is held open: every call fails fast without reaching it, and workflow steps that use
            it are parked until it closes.
          </p>
          <label for="isolate-for">For</label>
          <select id="isolate-for" value={period} onChange={(e) => setPeriod(e.currentTarget.value)}>
            {ISOLATE_FOR.map((o) => (
              <option key={o.value} value={o.value}>
                {o.label}
              </option>
            ))}
          </select>
        </ActionDialog>
      ) : null}
      {dialog === 'reset' ? (
        <ActionDialog
          title={`Reset ${dep.name}?`}
          confirmLabel="Reset"
          onClose={() => setDialog(undefined)}
          onConfirm={async () => {
            await api(`${path}/reset`, { body: {} });
            onChanged();
          }}
        >
          <p>Its circuit closes and its window is cleared: calls reach it again at once.</p>
        </ActionDialog>
      ) : null}
    </div>
  );
}

export function DependencyPage({ name }: { name: string }) {
  const deps = useDependencies();
  if (deps.error !== undefined && deps.data === undefined)
    return <ErrorBox error={deps.error} retry={deps.reload} />;
  if (deps.data === undefined) return <Loading what={name} />;
  const dep = deps.data.find((d) => d.name === name);
  if (dep === undefined) {
    return (
      <section>
        <h1>{name}</h1>
        <ErrorBox error={new Error(`No dependency named ${name}.`)} />
        <p>
          <a href="#/">Back to the overview</a>
        </p>
      </section>
    );
  }
  const breaker = dep.breaker;
  const latency = dep.calls.recent.latencyMs;
  const transitions = [...(breaker?.transitions ?? [])].reverse();
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="#/">Overview</a> / <span aria-current="page">{dep.name}</span>
      </nav>
      <div class="title-row">
        <h1>{dep.name}</h1>
        <StateBadge state={dep.state} />
      </div>
      <p class="muted">
        {dep.kind}
        {dep.critical ? ' · critical' : ''}
        {breaker?.since == null ? '' : ` · ${dep.state} since ${dateTime(breaker.since)}`}
      </p>
      {breaker?.isolatedUntil != null ? (
        <Countdown to={breaker.isolatedUntil} label="Isolation ends" />
      ) : null}
      {breaker?.halfOpenAt != null && dep.state === 'open' ? (
        <Countdown to={breaker.halfOpenAt} label="Half-open (probe calls let through)" />
      ) : null}
      <Actions dep={dep} onChanged={deps.reload} />

      <section aria-labelledby="now-title">
        <h2 id="now-title">Now</h2>
        <dl class="figures wide">
          <div>
            <dt>Failure rate (breaker window)</dt>
            <dd>{percent(breaker?.failureRate ?? dep.calls.recent.failureRate)}</dd>
          </div>
          <div>
            <dt>Slow-call rate</dt>
            <dd>{percent(breaker?.slowCallRate)}</dd>
          </div>
          <div>
            <dt>Latency p50 / p95 / p99 (last minute)</dt>
            <dd>
              {ms(latency?.p50)} / {ms(latency?.p95)} / {ms(latency?.p99)}
            </dd>
          </div>
          <div>
            <dt>Calls (total / failed / rejected)</dt>
            <dd>
              {dep.calls.calls} / {dep.calls.failures + dep.calls.timeouts} / {dep.calls.rejections}
            </dd>
          </div>
          {breaker === null ? null : (
            <div>
              <dt>Refused by the breaker</dt>
              <dd>{breaker.notPermitted}</dd>
            </div>
          )}
        </dl>
        {dep.bulkhead === null ? null : (
          <>
            <Gauge label="Bulkhead in use" value={dep.bulkhead.active} max={dep.bulkhead.maxConcurrent} />
            <p class="small">
              Queue {dep.bulkhead.queued} · lingering {dep.bulkhead.lingering} · rejected{' '}
              {dep.bulkhead.rejected}
            </p>
          </>
        )}
        {dep.rateLimit === null ? null : (
          <p class="small">
            Rate limiter: {dep.rateLimit.available ?? '—'} permits free, {dep.rateLimit.waiting} waiting,{' '}
            {dep.rateLimit.rejected} rejected
          </p>
        )}
      </section>

      <section aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        <p class="muted small">
          Calls with failures over them, and latency p99 with p50, kept in the server's memory.
        </p>
        <HistoryPanel name={dep.name} />
      </section>

      <section aria-labelledby="parked-title">
        <h2 id="parked-title">Parked runs</h2>
        <ParkedList name={dep.name} count={dep.parkedRuns} state={dep.state} />
      </section>

      <section aria-labelledby="transitions-title">
        <h2 id="transitions-title">Breaker transitions</h2>
        {breaker === null ? (
          <Empty>
            <p>{dep.name} has no circuit breaker.</p>
          </Empty>
        ) : transitions.length === 0 ? (
          <Empty>
            <p>No transition since the server started: the circuit has stayed {breaker.state}.</p>
          </Empty>
        ) : (
          <ol class="transitions">
            {transitions.map((t) => (
              <li key={`${t.at}-${t.to}`}>
                <span class="mono">{clockTime(t.at)}</span> <StateBadge state={t.from} /> →{' '}
                <StateBadge state={t.to} />
                {t.reason ? <span class="muted"> {t.reason}</span> : null}
              </li>
            ))}
          </ol>
        )}
      </section>
    </>
  );
}
