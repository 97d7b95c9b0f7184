// The dashboard's entry: sign-in (a key from the login link's fragment or pasted in a form, traded
// once for a session cookie), the page frame with its navigation and live badge, and the routes.
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiProblem, api, describeError, type Session, SIGNED_OUT_EVENT } from './api.ts';
import { AppContext } from './context.ts';
import { type LiveState, SystemFeed } from './live.ts';
import { LiveBadge } from './parts/badges.tsx';
import { clockTime } from './parts/format.ts';
import { Loading } from './parts/states.tsx';
import { parseHash, useRoute } from './route.ts';
import { applyTheme, nextTheme, storedTheme, type Theme } from './theme.ts';
import { DependencyPage } from './views/dependency.tsx';
import { Overview } from './views/overview.tsx';
import { RunPage } from './views/run.tsx';
import { RunsPage } from './views/runs.tsx';
import { WorkflowsPage } from './views/workflows.tsx';
import './styles.css';

/**
 * The login link is `/#key=<secret>`: the fragment never reaches a server or a log. The key is
 * posted once, then the hash is replaced so it stays neither in the address bar nor in history.
 */
async function signInFromHash(): Promise<unknown> {
  const raw = location.hash.startsWith('#') ? location.hash.slice(1) : '';
  const key = new URLSearchParams(raw.startsWith('/') ? '' : raw).get('key');
  if (key === null) return undefined;
  history.replaceState(null, '', `${location.pathname}${location.search}#/`);
  try {
    await api('session', { body: { key } });
    return undefined;
  } catch (error) {
    return error;
  }
}

function SignIn({ onSignedIn, error: initial }: { onSignedIn: () => void; error: unknown }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>(initial);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      await api('session', { body: { key: key.trim() } });
      setKey('');
      onSignedIn();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <h1>Bulwark</h1>
      <form onSubmit={submit} class="card">
        <h2>Sign in</h2>
        <p class="muted">
          Paste an API key. <code>bulwark start</code> prints the admin key and a sign-in link the first time
          it runs; other keys come from <code>BULWARK_API_KEYS</code>.
        </p>
        <label for="key">API key</label>
        <input
          id="key"
          type="password"
          autocomplete="current-password"
          required
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
        {error === undefined ? null : (
          <p class="form-error" role="alert">
            {describeError(error)}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy || key.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function NotFound({ path }: { path: string }) {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        Nothing lives at <code>#{path}</code>. <a href="#/">Back to the overview</a>.
      </p>
    </section>
  );
}

function View({ path, params }: { path: string; params: URLSearchParams }) {
  const [, first, second] = path.split('/').map((part) => decodeURIComponent(part));
  if (path === '/' || path === '/dependencies') return <Overview />;
  if (first === 'dependencies' && second !== undefined) return <DependencyPage name={second} />;
  if (path === '/runs') return <RunsPage params={params} />;
  if (first === 'runs' && second !== undefined) return <RunPage id={second} />;
  if (path === '/workflows') return <WorkflowsPage />;
  return <NotFound path={path} />;
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const feed = useMemo(() => new SystemFeed(), []);
  const [live, setLive] = useState<LiveState>(feed.state);
  const [theme, setTheme] = useState<Theme>(storedTheme);
  const route = useRoute();
  useEffect(() => {
    const stop = feed.onState(setLive);
    return () => {
      stop();
      feed.close();
    };
  }, [feed]);
  const context = useMemo(() => ({ session, feed }), [session, feed]);
  const section = route.path.split('/')[1] ?? '';
  const link = (href: string, label: string, match: string) => (
    <a href={href} aria-current={section === match ? 'page' : undefined}>
      {label}
    </a>
  );
  return (
    <AppContext.Provider value={context}>
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <a class="brand" href="#/">
          Bulwark
        </a>
        <nav aria-label="Main">
          {link('#/', 'Overview', section === 'dependencies' ? 'dependencies' : '')}
          {link('#/runs', 'Runs', 'runs')}
          {link('#/workflows', 'Workflows', 'workflows')}
        </nav>
        <div class="top-right">
          <LiveBadge state={live} />
          <button
            type="button"
            class="quiet"
            title={`Switch to ${nextTheme(theme) === 'system' ? 'the system setting' : nextTheme(theme)}`}
            onClick={() => {
              const next = nextTheme(theme);
              applyTheme(next);
              setTheme(next);
            }}
          >
            Theme: {theme === 'system' ? 'auto' : theme}
          </button>
          <span
            class="who"
            title={`Signed in as ${session.name}${
              typeof session.expiresAt === 'number'
                ? `; the session ends at ${clockTime(session.expiresAt)} at the latest`
                : ''
            }`}
          >
            {session.name} <span class="muted">({session.role})</span>
          </span>
          <button type="button" class="quiet" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <View path={route.path} params={route.params} />
      </main>
    </AppContext.Provider>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const check = async () => {
    try {
      setSession(await api<Session>('session'));
    } catch (e) {
      if (!(e instanceof ApiProblem && e.status === 401)) setError(e);
      setSession(null);
    }
  };
  useEffect(() => {
    void signInFromHash().then((failed) => {
      if (failed !== undefined) setError(failed);
      return check();
    });
    const signedOut = () => setSession(null);
    window.addEventListener(SIGNED_OUT_EVENT, signedOut);
    return () => window.removeEventListener(SIGNED_OUT_EVENT, signedOut);
  }, []);
  // The fragment of a login link opened while the page is already open.
  useEffect(() => {
    const onHash = () => {
      if (parseHash(location.hash).path.startsWith('/key=')) {
        void signInFromHash().then((failed) => (failed === undefined ? check() : setError(failed)));
      }
    };
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  if (session === undefined) return <Loading what="the session" />;
  if (session === null)
    return (
      <SignIn
        error={error}
        onSignedIn={() => {
          setError(undefined);
          void check();
        }}
      />
    );
  return (
    <Shell
      session={session}
      onSignOut={async () => {
        await api('session', { method: 'DELETE' }).catch(() => undefined);
        setSession(null);
      }}
    />
  );
}

applyTheme(storedTheme());
render(<App />, document.getElementById('app')!);
