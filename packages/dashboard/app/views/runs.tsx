// The runs list: filters and search kept in the URL, rows windowed at a fixed height (only the
// rows in view exist in the DOM) and fetched by position: the pages of 500 that cover the rows in
// view, so a scrollbar dragged anywhere in 100,000 runs shows them after a request or two.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiProblem, api, type Page, query, RUN_STATUSES, type Run, type Workflow } from '../api.ts';
import { useFeed } from '../context.ts';
import { RunCells, RunHeadCells } from '../parts/badges.tsx';
import { useCoalesced, useLoad } from '../parts/hooks.ts';
import { Empty, ErrorBox } from '../parts/states.tsx';
import { replaceParams } from '../route.ts';
import { ROW_HEIGHT, visibleRange } from '../virtual.ts';

/** Rows per request, the API's largest: a page covers many screens, so a jump asks once or twice. */
const PAGE_SIZE = 500;
/** Rows either side of the view whose pages are fetched too, so a steady scroll finds them loaded. */
const PREFETCH = 60;
/** Page requests on their way at once, at most. */
const MAX_IN_FLIGHT = 3;
/** Pages kept loaded beyond those wanted, each side; farther ones are dropped. */
const KEEP = 2;
/** How long the scroll rests before pages not loaded are asked for. */
const SETTLE_MS = 60;

interface Filters {
  status: string;
  workflow: string;
  q: string;
}

interface CachedPage {
  rows: Run[];
  /** Runs started since it was loaded: drawn until its reload arrives. */
  stale: boolean;
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
  // The pages loaded, by index (page p holds rows p × PAGE_SIZE onwards), and the requests on
  // their way. Kept in refs and drawn by bumping `drawn`: a page arriving changes one entry.
  const cache = useRef(new Map<number, CachedPage>());
  const inFlight = useRef(new Map<number, AbortController>());
  const [drawn, setDrawn] = useState(0);
  const redraw = () => setDrawn((n) => n + 1);
  const [error, setError] = useState<unknown>(undefined);
  const generation = useRef(0);
  const viewport = useRef<HTMLTableSectionElement>(null);
  const [scroll, setScroll] = useState({ top: 0, height: 600 });
  /** The total before a live refresh asked for it again: the new runs above the reader. */
  const anchorFrom = useRef<number | undefined>(undefined);
  const counted = useRef<number | undefined>(undefined);
  counted.current = count.data?.total;

  const loadPage = (p: number) => {
    const mine = generation.current;
    const controller = new AbortController();
    inFlight.current.set(p, controller);
    const mineStill = () => mine === generation.current && inFlight.current.get(p) === controller;
    api<Page<Run>>(`runs${listQuery(filters, { limit: PAGE_SIZE, offset: p * PAGE_SIZE })}`, {
      signal: controller.signal,
    }).then(
      (page) => {
        if (!mineStill()) return;
        inFlight.current.delete(p);
        cache.current.set(p, { rows: page.items, stale: false });
        redraw();
      },
      (failure: unknown) => {
        if (!mineStill()) return;
        // The server's rate limit: wait the time it says, the page still counted as on its way
        // (so nothing else asks for it meanwhile), then ask again if it is still wanted.
        if (failure instanceof ApiProblem && failure.status === 429) {
          setTimeout(() => {
            if (!mineStill()) return;
            inFlight.current.delete(p);
            loadPage(p);
          }, failure.retryAfterMs ?? 1_000);
          return;
        }
        inFlight.current.delete(p);
        setError(failure);
      },
    );
  };

  useEffect(() => {
    generation.current++;
    for (const controller of inFlight.current.values()) controller.abort();
    inFlight.current.clear();
    cache.current.clear();
    anchorFrom.current = undefined;
    setError(undefined);
    if (viewport.current !== null) viewport.current.scrollTop = 0;
    setScroll((s) => ({ ...s, top: 0 }));
    redraw();
  }, [key]);
  // Leaving the page drops the answers (and the retries) still on their way.
  useEffect(
    () => () => {
      generation.current++;
      for (const controller of inFlight.current.values()) controller.abort();
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

  const total = count.data?.total ?? loadedLength(cache.current);
  const [first, end] = visibleRange(scroll.top, scroll.height, total);
  // The pages the window needs, with PREFETCH rows either side so a steady scroll finds them loaded.
  const lo = Math.floor(Math.max(0, first - PREFETCH) / PAGE_SIZE);
  const hi = Math.max(lo, Math.floor((Math.max(1, Math.min(total, end + PREFETCH)) - 1) / PAGE_SIZE));

  useEffect(() => {
    // Pages scrolled away: their requests are dropped, and what was loaded is kept only near by.
    for (const [p, controller] of inFlight.current) {
      if (p < lo || p > hi) {
        controller.abort();
        inFlight.current.delete(p);
      }
    }
    for (const p of cache.current.keys()) if (p < lo - KEEP || p > hi + KEEP) cache.current.delete(p);
    if (error !== undefined) return;
    // Asked only once the scroll rests: a scrollbar dragged across the list asks for where it
    // stops, not for every page it passes.
    const timer = setTimeout(() => {
      for (let p = lo; p <= hi && inFlight.current.size < MAX_IN_FLIGHT; p++) {
        const cached = cache.current.get(p);
        if ((cached === undefined || cached.stale) && !inFlight.current.has(p)) loadPage(p);
      }
    }, SETTLE_MS);
    return () => clearTimeout(timer);
  }, [lo, hi, key, drawn, error]);

  // New runs above a reader who has scrolled down push the rows they read down by as many rows:
  // the scroll moves with them, so the same runs stay in view (see refresh below).
  useEffect(() => {
    const from = anchorFrom.current;
    const el = viewport.current;
    if (from === undefined || count.data === undefined || el === null) return;
    anchorFrom.current = undefined;
    const added = count.data.total - from;
    if (added > 0 && el.scrollTop > 0) el.scrollTop += added * ROW_HEIGHT;
  }, [count.data]);

  // Runs that start (or start again) change the list's offsets. One coalesced refresh a second
  // reloads the total and the pages in view (drawn as they were until the new ones arrive) and
  // forgets the others, rather than keeping a snapshot of the list as it was when opened: a
  // reader at the top sees new runs arrive, and one further down keeps their place (the effect
  // above). That place is exact when the runs added are the newest, as started runs are; a run
  // that enters a status filter lower down shifts the view by a row until the reader scrolls.
  const refresh = useCoalesced(
    () => {
      anchorFrom.current = counted.current;
      count.reload();
      const el = viewport.current;
      const [top, bottom] = visibleRange(
        el?.scrollTop ?? 0,
        el?.clientHeight ?? 600,
        Number.MAX_SAFE_INTEGER,
      );
      for (const [p, page] of cache.current) {
        if (p * PAGE_SIZE < bottom && (p + 1) * PAGE_SIZE > top) page.stale = true;
        else cache.current.delete(p);
      }
      redraw();
    },
    1_000,
    [key],
  );
  useFeed((message) => {
    if (!message.type.startsWith('run:')) return;
    const { runId, progress } = message.data ?? {};
    if (message.type === 'run:queued' || message.type === 'run:retried') {
      refresh.poke();
      return;
    }
    // A run that changes status changes in place, in whichever loaded page holds it.
    for (const page of cache.current.values()) {
      const index = page.rows.findIndex((r) => r.id === runId);
      if (index === -1) continue;
      const row = page.rows[index]!;
      const status = statusAfter(message.type) ?? row.status;
      page.rows = page.rows.slice();
      page.rows[index] = { ...row, status, progress: typeof progress === 'number' ? progress : row.progress };
      redraw();
    }
  });

  const shown: { index: number; run: Run }[] = [];
  for (let i = first; i < end; i++) {
    const run = cache.current.get(Math.floor(i / PAGE_SIZE))?.rows[i % PAGE_SIZE];
    if (run !== undefined) shown.push({ index: i, run });
  }
  const loading = inFlight.current.size > 0 || (error === undefined && shown.length < end - first);
  return (
    <>
      <h1>Runs</h1>
      <FilterBar filters={filters} workflows={workflows.data?.items ?? []} />
      <p class="muted small" aria-live="polite">
        {`${total.toLocaleString('en')}${count.data === undefined && total > 0 ? '+' : ''} ${total === 1 ? 'run' : 'runs'}`}
        {loading ? ' · loading…' : ''}
      </p>
      {error === undefined ? null : <ErrorBox error={error} retry={() => setError(undefined)} />}
      <table class="vtable" aria-label="Runs" aria-rowcount={total + 1}>
        <thead>
          <tr class="vrow vhead" aria-rowindex={1}>
            <RunHeadCells />
          </tr>
        </thead>
        {/* The body scrolls; a spacer row gives it the height of every row of the list, and only
            the loaded rows in view are drawn over it, each placed at its index times the row height. */}
        <tbody
          class="vviewport"
          ref={viewport}
          // biome-ignore lint/a11y/noNoninteractiveTabindex: the scrolling region must be reachable by keyboard
          tabIndex={0}
          onScroll={(e) =>
            setScroll({ top: e.currentTarget.scrollTop, height: e.currentTarget.clientHeight })
          }
        >
          <tr class="vspacer" style={{ height: `${total * ROW_HEIGHT}px` }} />
          {shown.map(({ index, run }) => (
            <tr
              key={run.id}
              class="vrow"
              aria-rowindex={index + 2}
              style={{ transform: `translateY(${index * ROW_HEIGHT}px)` }}
            >
              <RunCells run={run} />
            </tr>
          ))}
        </tbody>
      </table>
      {!loading && error === undefined && total === 0 ? (
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

/**
 * The list's length as the loaded pages tell it, while the count has not answered (or failed):
 * exact once a page that is not full has arrived; otherwise one page more than loaded, so the
 * list can be scrolled on to ask for it.
 */
function loadedLength(pages: ReadonlyMap<number, CachedPage>): number {
  let length = 0;
  for (const [p, page] of pages) {
    if (page.rows.length < PAGE_SIZE) return p * PAGE_SIZE + page.rows.length;
    length = Math.max(length, (p + 1) * PAGE_SIZE);
  }
  return length + PAGE_SIZE;
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
