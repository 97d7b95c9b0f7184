// Small hooks the views share: loading data with its error, coalesced refreshes, and a clock for
// countdowns.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { coalesce } from '../live.ts';

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Loads with `load` whenever `deps` change; `reload` loads again keeping what is shown meanwhile. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  });
  const [version, setVersion] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    loadRef.current(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ data, error: undefined, loading: false });
      },
      (error: unknown) => {
        if (!controller.signal.aborted) setState((s) => ({ data: s.data, error, loading: false }));
      },
    );
    return () => controller.abort();
  }, [...deps, version]);
  const reload = useCallback(() => setVersion((v) => v + 1), []);
  return { ...state, reload };
}

/**
 * `coalesce(fn, ms)` owned by the view: made again when `deps` change, and its pending call
 * dropped then and when the view goes, so no refresh fires for a view that is gone.
 */
export function useCoalesced(fn: () => void, ms: number, deps: readonly unknown[] = []): { poke(): void } {
  const coalesced = useMemo(() => coalesce(fn, ms), deps);
  useEffect(() => () => coalesced.cancel(), [coalesced]);
  return coalesced;
}

/** The time now, updated every `everyMs` while `active`: only views with a countdown tick. */
export function useNow(everyMs: number, active = true): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs, active]);
  return now;
}
