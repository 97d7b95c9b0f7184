// Hash routing (`#/runs?status=failed&q=abc`): the server only ever serves index.html, the state of
// a view (filters, search) lives in the URL so it can be shared and survives a reload.
import { useEffect, useState } from 'preact/hooks';
import { query } from './api.ts';

export interface Route {
  /** The path after `#`, e.g. `/runs/abc`; `/` when the hash is empty. */
  path: string;
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.startsWith('#') ? hash.slice(1) : hash;
  const question = raw.indexOf('?');
  const path = question === -1 ? raw : raw.slice(0, question);
  return {
    path: path === '' ? '/' : path.startsWith('/') ? path : `/${path}`,
    params: new URLSearchParams(question === -1 ? '' : raw.slice(question + 1)),
  };
}

/** Changes the view's parameters without a new history entry for every keystroke. */
export function replaceParams(path: string, params: Record<string, string | undefined>): void {
  history.replaceState(history.state, '', `#${path}${query(params)}`);
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const update = () => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', update);
    return () => window.removeEventListener('hashchange', update);
  }, []);
  return route;
}
