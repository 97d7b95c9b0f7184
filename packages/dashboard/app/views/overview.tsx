// The overview: every dependency as a card (breaker state, rates, latency, bulkhead, sparkline,
// runs parked on it) and the latest runs, both refreshed from the system stream, never on a timer.
import { useEffect, useState } from 'preact/hooks';
import { api, type Dependency, type History, type Page, query, type Run } from '../api.ts';
import { useFeed } from '../context.ts';
import { RunCells, RunHeadCells, StateBadge } from '../parts/badges.tsx';
import { ms, percent } from '../parts/format.ts';
import { useCoalesced, useLoad } from '../parts/hooks.ts';
import { Sparkline, total } from '../parts/sparkline.tsx';
import { Empty, ErrorBox, Loading } from '../parts/states.tsx';

const HISTORY_WINDOW = '15m';

/**
 * The dependencies list, kept current from the system stream: the server pushes a
 * `dependency:snapshot` (the dependency as `GET api/dependencies` shows it) whenever one changes,
 * coalesced; the list is read again only when the set of dependencies may have changed.
 */
export function useDependencies() {
  const loaded = useLoad((signal) => api<{ items: Dependency[] }>('dependencies', { signal }), []);
  const [list, setList] = useState<Dependency[] | undefined>(undefined);
  const refresh = useCoalesced(loaded.reload, 500);
  useEffect(() => {
    if (loaded.data !== undefined) setList(loaded.data.items);
  }, [loaded.data]);
  useFeed((message) => {
    if (message.type === 'dependency:snapshot') {
      const snapshot = message.data as Dependency | undefined;
      if (typeof snapshot?.name !== 'string') return;
      setList((current) => {
        if (current === undefined) return current;
        const index = current.findIndex((d) => d.name === snapshot.name);
        if (index === -1) {
          refresh.poke();
          return current;
        }
        const next = current.slice();
        next[index] = snapshot;
        return next;
      });
    } else if (message.type === 'registry:reloaded' || message.type === 'gap') {
      // Dependencies added or removed, or events missed: read the whole list again.
      refresh.poke();
    }
  });
  return { ...loaded, data: list };
}

/** The sparkline history: in memory on the server, read again once per bucket (not per event). */
export function useHistory(window: string) {
  const loaded = useLoad(
    (signal) => api<History>(`dependencies/history${query({ window })}`, { signal }),
    [window],
  );
  const bucketMs = loaded.data?.bucketMs;
  const { reload } = loaded;
  useEffect(() => {
    if (bucketMs === undefined) return;
    const timer = setInterval(reload, Math.max(bucketMs, 5_000));
    return () => clearInterval(timer);
  }, [bucketMs, reload]);
  return loaded;
}

function DependencyCard({ dep, history }: { dep: Dependency; history: History | undefined }) {
  const series = history?.dependencies[dep.name];
  const recent = dep.calls.recent;
  const parked = dep.parkedRuns ?? 0;
  return (
    <li class={`card dep-card dep-${dep.state ?? 'none'}`} data-dependency={dep.name}>
      <div class="card-head">
        <h3>
          <a href={`#/dependencies/${encodeURIComponent(dep.name)}`}>{dep.name}</a>
        </h3>
        <StateBadge state={dep.state} />
      </div>
      <p class="muted small">
        {dep.kind}
        {dep.critical ? ' · critical' : ''}
      </p>
      <dl class="figures">
        <div>
          <dt>Failure rate</dt>
          <dd>{percent(dep.breaker?.failureRate ?? recent.failureRate)}</dd>
        </div>
        <div>
          <dt>Slow calls</dt>
          <dd>{percent(dep.breaker?.slowCallRate)}</dd>
        </div>
        <div>
          <dt>p99</dt>
          <dd>{ms(recent.latencyMs?.p99)}</dd>
        </div>
        <div>
          <dt>In flight</dt>
          <dd>
            {dep.bulkhead === null
              ? dep.calls.inFlight
              : `${dep.bulkhead.active}/${dep.bulkhead.maxConcurrent}`}
          </dd>
        </div>
      </dl>
      {series === undefined ? (
        <p class="muted small">No history yet</p>
      ) : (
        <Sparkline
          values={series.calls}
          overlay={series.failures}
          label={`${dep.name}, last ${history?.window}: ${total(series.calls)} calls, ${total(series.failures)} failures`}
          width={220}
        />
      )}
      {parked > 0 ? (
        <p class="parked-note">
          <a href={`#/dependencies/${encodeURIComponent(dep.name)}`}>
            {parked} {parked === 1 ? 'run is' : 'runs are'} parked on it
          </a>
        </p>
      ) : null}
    </li>
  );
}

function RunsTable({ runs, caption }: { runs: Run[]; caption: string }) {
  return (
    <table class="table">
      <caption class="visually-hidden">{caption}</caption>
      <thead>
        <tr>
          <RunHeadCells />
        </tr>
      </thead>
      <tbody>
        {runs.map((run) => (
          <tr key={run.id}>
            <RunCells run={run} />
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Overview() {
  const deps = useDependencies();
  const history = useHistory(HISTORY_WINDOW);
  const runs = useLoad((signal) => api<Page<Run>>('runs?limit=10', { signal }), []);
  const refreshRuns = useCoalesced(runs.reload, 1_000);
  useFeed((message) => {
    if (message.type.startsWith('run:')) refreshRuns.poke();
  });
  return (
    <>
      <h1>Overview</h1>
      <section aria-labelledby="deps-title">
        <h2 id="deps-title">Dependencies</h2>
        {deps.error !== undefined && deps.data === undefined ? (
          <ErrorBox error={deps.error} retry={deps.reload} />
        ) : deps.data === undefined ? (
          <Loading what="dependencies" />
        ) : deps.data.length === 0 ? (
          <Empty>
            <p>
              No dependencies are configured. Declare them under <code>dependencies:</code> in bulwark.yaml.
            </p>
          </Empty>
        ) : (
          <ul class="grid" aria-label="Dependencies">
            {deps.data.map((dep) => (
              <DependencyCard key={dep.name} dep={dep} history={history.data} />
            ))}
          </ul>
        )}
      </section>
      <section aria-labelledby="recent-title">
        <h2 id="recent-title">
          Recent runs{' '}
          <a href="#/runs" class="small">
            all runs
          </a>
        </h2>
        {runs.error !== undefined && runs.data === undefined ? (
          <ErrorBox error={runs.error} retry={runs.reload} />
        ) : runs.data === undefined ? (
          <Loading what="runs" />
        ) : runs.data.items.length === 0 ? (
          <Empty>
            <p>
              No runs yet. Start one from <a href="#/workflows">Workflows</a>.
            </p>
          </Empty>
        ) : (
          <RunsTable runs={runs.data.items} caption="The ten latest runs" />
        )}
      </section>
    </>
  );
}
