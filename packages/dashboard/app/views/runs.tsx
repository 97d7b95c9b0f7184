// The runs list: filters and search kept in the URL, rows windowed at a fixed height (only the
// rows in view exist in the DOM) and fetched a page at a time by cursor as the reader scrolls.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiProblem, api, type Page, query, RUN_STATUSES, type Run, type Workflow } from '../api.ts';
import { useFeed } from '../context.ts';
import { coalesce } from '../live.ts';
import { StatusBadge } from '../parts/badges.tsx';
import { dateTime } from '../parts/format.ts';
import { useLoad } from '../parts/hooks.ts';
import { Empty, ErrorBox } from '../parts/states.tsx';
import { replaceParams } from '../route.ts';
import { ROW_HEIGHT, visibleRange } from '../virtual.ts';

/** The most the API gives at once: a fast scroll to the end of a long list asks as few times as it can. */
const PAGE_SIZE = 500;
/** Fetch the next page this many rows before the end is reached. */
const PREFETCH = 60;

interface Filters {
  status: string;
  workflow: string;
  q: string;
}

interface ListState {
  rows: Run[];
  nextCursor: string | null;
  loading: boolean;
  error: unknown;
}

function listQuery(filters: Filters, extra: Record<string, string | number | undefined>): string {
  return query({ status: filters.status, workflow: filters.workflow, q: filters.q, ...extra });
}

function FilterBar({ filters, workflows }: { filters: Filters; workflows: Workflow[] }) {
  const [q, setQ] = useState(filters.q);
  useEffect(() => setQ(filters.q), [filters.q]);
  const set = (change: Partial<Filters>) =>
    replaceParams('/runs', { ...filters, ...change } as Record<string, string | undefined>);
  return (
    <form
      class="filters"
      aria-label="Filter runs"
      onSubmit={(e) => {
        e.preventDefault();
        set({ q: q.trim() });
      }}
    >
      <div class="field">
        <label for="runs-q">Search</label>
        <input
          id="runs-q"
          type="search"
          placeholder="run id, correlation id, idempotency key or input.path=value"
          value={q}
          onInput={(e) => setQ(e.currentTarget.value)}
        />
      </div>
      <div class="field">
        <label for="runs-status">Status</label>
        <select
          id="runs-status"
          value={filters.status}
          onChange={(e) => set({ status: e.currentTarget.value })}
        >
          <option value="">any</option>
          {RUN_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
          <option value="failed,compensated,cancelled">failed, compensated or cancelled</option>
        </select>
      </div>
      <div class="field">
        <label for="runs-workflow">Workflow</label>
        <select
          id="runs-workflow"
          value={filters.workflow}
          onChange={(e) => set({ workflow: e.currentTarget.value })}
        >
          <option value="">any</option>
          {workflows.map((w) => (
            <option key={w.name} value={w.name}>
              {w.name}
            </option>
          ))}
        </select>
      </div>
      <button type="submit">Search</button>
      {filters.q || filters.status || filters.workflow ? (
        <button type="button" class="quiet" onClick={() => replaceParams('/runs', {})}>
          Clear
        </button>
      ) : null}
    </form>
  );
}

export function RunsPage({ params }: { params: URLSearchParams }) {
  const filters: Filters = {
    status: params.get('status') ?? '',
    workflow: params.get('workflow') ?? '',
    q: params.get('q') ?? '',
  };
  const key = listQuery(filters, {});
  const workflows = useLoad((signal) => api<{ items: Workflow[] }>('workflows', { signal }), []);
  const count = useLoad(
    (signal) => api<{ total: number }>(`runs/count${key}`, { signal }).catch(() => undefined),
    [key],
  );
  const [list, setList] = useState<ListState>({
    rows: [],
    nextCursor: null,
    loading: true,
    error: undefined,
  });
  const generation = useRef(0);
  const viewport = useRef<HTMLTableSectionElement>(null);
  const [scroll, setScroll] = useState({ top: 0, height: 600 });

  const loadPage = (cursor: string | undefined) => {
    const mine = generation.current;
    setList((s) => ({ ...s, loading: true }));
    api<Page<Run>>(`runs${listQuery(filters, { limit: PAGE_SIZE, cursor })}`).then(
      (page) => {
        if (mine !== generation.current) return;
        setList((s) => ({
          rows: cursor === undefined ? page.items : [...s.rows, ...page.items],
          nextCursor: page.nextCursor,
          loading: false,
          error: undefined,
        }));
      },
      (error: unknown) => {
        if (mine !== generation.current) return;
        // The server's rate limit, met by scrolling fast through many pages: wait the time it
        // says, still loading, then ask again, instead of stopping the list with an error.
        if (error instanceof ApiProblem && error.status === 429) {
          setTimeout(() => mine === generation.current && loadPage(cursor), error.retryAfterMs ?? 1_000);
          return;
        }
        setList((s) => ({ ...s, loading: false, error }));
      },
    );
  };

  useEffect(() => {
    generation.current++;
    setList({ rows: [], nextCursor: null, loading: true, error: undefined });
    if (viewport.current !== null) viewport.current.scrollTop = 0;
    loadPage(undefined);
  }, [key]);
  // Leaving the page drops the answers (and the retries) still on their way.
  useEffect(
    () => () => {
      generation.current++;
    },
    [],
  );

  useEffect(() => {
    const el = viewport.current;
    if (el === null) return;
    const measure = () => setScroll({ top: el.scrollTop, height: el.clientHeight });
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const [first, end] = visibleRange(scroll.top, scroll.height, list.rows.length);
  useEffect(() => {
    if (
      !list.loading &&
      list.error === undefined &&
      list.nextCursor !== null &&
      end + PREFETCH >= list.rows.length
    ) {
      loadPage(list.nextCursor);
    }
  });

  // New runs appear at the top (one coalesced read of the first page); known rows change in place.
  const refreshTop = useMemo(
    () =>
      coalesce(() => {
        const mine = generation.current;
        count.reload();
        api<Page<Run>>(`runs${listQuery(filters, { limit: 50 })}`).then(
          (page) => {
            if (mine !== generation.current) return;
            setList((s) => {
              const known = new Set(s.rows.map((r) => r.id));
              const fresh = page.items.filter((r) => !known.has(r.id));
              const byId = new Map(page.items.map((r) => [r.id, r]));
              return { ...s, rows: [...fresh, ...s.rows.map((r) => byId.get(r.id) ?? r)] };
            });
          },
          () => undefined,
        );
      }, 1_000),
    [key],
  );
  useEffect(() => () => refreshTop.cancel(), [refreshTop]);
  useFeed((message) => {
    if (!message.type.startsWith('run:')) return;
    const { runId, progress } = message.data ?? {};
    if (message.type === 'run:queued' || message.type === 'run:retried') {
      refreshTop.poke();
      return;
    }
    setList((s) => {
      const index = s.rows.findIndex((r) => r.id === runId);
      if (index === -1) return s;
      const rows = s.rows.slice();
      const row = rows[index]!;
      const status = statusAfter(message.type) ?? row.status;
      rows[index] = { ...row, status, progress: typeof progress === 'number' ? progress : row.progress };
      return { ...s, rows };
    });
  });

  const total = count.data?.total;
  const shown = list.rows.slice(first, end);
  return (
    <>
      <h1>Runs</h1>
      <FilterBar filters={filters} workflows={workflows.data?.items ?? []} />
      <p class="muted small" aria-live="polite">
        {total === undefined
          ? `${list.rows.length}${list.nextCursor === null ? '' : '+'} ${list.rows.length === 1 ? 'run' : 'runs'}`
          : `${total} ${total === 1 ? 'run' : 'runs'}`}
        {list.loading ? ' · loading…' : ''}
      </p>
      {list.error === undefined ? null : (
        <ErrorBox error={list.error} retry={() => loadPage(list.nextCursor ?? undefined)} />
      )}
      <table class="vtable" aria-label="Runs" aria-rowcount={(total ?? list.rows.length) + 1}>
        <thead>
          <tr class="vrow vhead" aria-rowindex={1}>
            <th scope="col">Run</th>
            <th scope="col">Workflow</th>
            <th scope="col">Status</th>
            <th scope="col">Progress</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        {/* The body scrolls; a spacer row gives it the height of every loaded row, and only the
            rows in view are drawn over it, each placed at its index times the row height. */}
        <tbody
          class="vviewport"
          ref={viewport}
          // biome-ignore lint/a11y/noNoninteractiveTabindex: the scrolling region must be reachable by keyboard
          tabIndex={0}
          onScroll={(e) =>
            setScroll({ top: e.currentTarget.scrollTop, height: e.currentTarget.clientHeight })
          }
        >
          <tr class="vspacer" style={{ height: `${list.rows.length * ROW_HEIGHT}px` }} />
          {shown.map((run, i) => (
            <tr
              key={run.id}
              class="vrow"
              aria-rowindex={first + i + 2}
              style={{ transform: `translateY(${(first + i) * ROW_HEIGHT}px)` }}
            >
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
            </tr>
          ))}
        </tbody>
      </table>
      {!list.loading && list.error === undefined && list.rows.length === 0 ? (
        <Empty>
          {filters.q || filters.status || filters.workflow ? (
            <p>No run matches these filters.</p>
          ) : (
            <p>
              No runs yet. Start one from <a href="#/workflows">Workflows</a>.
            </p>
          )}
        </Empty>
      ) : null}
    </>
  );
}

/** The status a run has after a system-stream event, where the event says it. */
function statusAfter(type: string): string | undefined {
  switch (type) {
    case 'run:started':
    case 'run:resumed':
      return 'running';
    case 'run:waiting':
    case 'run:sleeping':
      return 'waiting';
    case 'run:suspended':
      // Given back at a shutdown: queued for the next worker.
      return 'queued';
    case 'run:completed':
    case 'run:degraded':
    case 'run:failed':
    case 'run:compensating':
    case 'run:compensated':
    case 'run:cancelled':
      return type.slice(4);
    default:
      return undefined;
  }
}
