// undici is an optional peer dependency: loaded on the first request, so that the core imports
// (and every other policy works) in an application that never makes an HTTP call.

export type Undici = typeof import('undici');

let loading: Promise<Undici> | undefined;

/** undici, imported once per process; a missing install fails with the command that fixes it. */
export function loadUndici(): Promise<Undici> {
  loading ??= import('undici').catch((error: unknown) => {
    loading = undefined; // installed since? the next call looks again
    if ((error as { code?: unknown } | null)?.code === 'ERR_MODULE_NOT_FOUND') {
      throw Object.assign(
        new Error(
          "@bulwark/core's HTTP client needs the optional peer dependency 'undici': run `npm install undici`",
          { cause: error },
        ),
        // A setup fault: no retry will install it.
        { code: 'ERR_MODULE_NOT_FOUND', transient: false },
      );
    }
    throw error;
  });
  return loading;
}
