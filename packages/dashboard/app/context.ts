// What every view may use: who is signed in (and so which actions to offer) and the system stream.
import { createContext } from 'preact';
import { useContext, useEffect, useRef } from 'preact/hooks';
import type { Session } from './api.ts';
import type { LiveMessage, SystemFeed } from './live.ts';

export interface AppContextValue {
  session: Session;
  feed: SystemFeed;
}

export const AppContext = createContext<AppContextValue | null>(null);

export function useApp(): AppContextValue {
  const value = useContext(AppContext);
  if (value === null) throw new Error('useApp outside the signed-in app');
  return value;
}

/** Listens to the system stream while the view is shown; the latest `listener` is always called. */
export function useFeed(listener: (message: LiveMessage) => void): void {
  const { feed } = useApp();
  const ref = useRef(listener);
  ref.current = listener;
  useEffect(() => feed.subscribe((message) => ref.current(message)), [feed]);
}
