// Honest states: what is loading, what is empty (and why), what failed (the server's own words).
import type { ComponentChildren } from 'preact';
import { ApiProblem, describeError } from '../api.ts';

export function Loading({ what }: { what: string }) {
  return (
    <p class="state state-loading" aria-busy="true">
      Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="state state-empty">{children}</div>;
}

/** `what` names what failed to load, where the page shows more than one thing. */
export function ErrorBox({ error, retry, what }: { error: unknown; retry?: () => void; what?: string }) {
  const requestId = error instanceof ApiProblem ? error.requestId : undefined;
  return (
    <div class="state state-error" role="alert">
      <p>
        <strong>
          {error instanceof ApiProblem && error.status > 0 ? `Error ${error.status}` : 'Error'}
          {what === undefined ? ': ' : ` loading ${what}: `}
        </strong>
        {describeError(error)}
      </p>
      {requestId === undefined ? null : <p class="muted">Request id {requestId}</p>}
      {retry === undefined ? null : (
        <button type="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}
