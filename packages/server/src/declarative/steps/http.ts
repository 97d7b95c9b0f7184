// The `http` step: one request through a dependency (its pipeline: timeout, retries, breaker; its
// client: base URL, auth, keep-alive), the response read up to a size cap and kept as data.
import { type DependencyRegistry, HttpStatusError } from '@bulwark/core';
import { StepError, StepErrorCodes } from '../errors.ts';

/** A request with its templates already rendered. */
export interface HttpRequest {
  dependency: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  /** Sent as JSON when defined. */
  body: unknown;
  /** Statuses that count as success; undefined for any 2xx. */
  expect: readonly number[] | undefined;
  maxBytes: number;
  operation: string;
}

/** What the step records: the body parsed as JSON when the response says it is JSON, else text. */
export interface HttpResult {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: unknown;
}

export const DEFAULT_MAX_BYTES = 5 * 1_048_576;

export async function httpRequest(
  registry: DependencyRegistry,
  request: HttpRequest,
  signal: AbortSignal,
): Promise<HttpResult> {
  const headers: Record<string, string> = { ...request.headers };
  const hasBody = request.body !== undefined;
  if (hasBody && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
    headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await registry.fetch(
      request.dependency,
      request.url,
      {
        method: request.method,
        headers,
        operation: request.operation,
        ...(hasBody ? { body: JSON.stringify(request.body) } : {}),
      },
      { signal },
    );
  } catch (error) {
    // An error status the step expects (a 404 that means "not there") is an answer, not a failure.
    if (error instanceof HttpStatusError && request.expect?.includes(error.status)) {
      return {
        status: error.status,
        headers: Object.fromEntries(error.headers),
        body: parseBody(error.body, error.headers.get('content-type')),
      };
    }
    throw error;
  }
  const expected =
    request.expect === undefined
      ? response.status >= 200 && response.status < 300
      : request.expect.includes(response.status);
  if (!expected) {
    await response.body?.cancel().catch(() => {});
    throw new StepError(
      StepErrorCodes.UNEXPECTED_STATUS,
      `${request.method} ${request.url} answered ${response.status}; the step expects ${request.expect?.join(', ') ?? 'a 2xx status'}`,
    );
  }
  const text = request.method === 'HEAD' ? '' : await readText(response, request.maxBytes, request.url);
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: parseBody(text, response.headers.get('content-type')),
  };
}

function parseBody(text: string, contentType: string | null): unknown {
  if (!isJson(contentType)) return text;
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new StepError(
      StepErrorCodes.BAD_JSON,
      `the response says ${contentType} but its body is not JSON: ${(error as Error).message}`,
    );
  }
}

function isJson(contentType: string | null): boolean {
  const type = contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
  return type === 'application/json' || type.endsWith('+json');
}

/** The body as text, decoded by its charset (UTF-8 unless it says otherwise); longer than `maxBytes` fails. */
async function readText(response: Response, maxBytes: number, url: string): Promise<string> {
  const body = response.body;
  if (body === null) return '';
  const tooLarge = () =>
    new StepError(
      StepErrorCodes.TOO_LARGE,
      `the response of ${url} is larger than ${maxBytes} bytes (maxBytes)`,
    );
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    await body.cancel().catch(() => {});
    throw tooLarge();
  }
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return decoderFor(response.headers.get('content-type')).decode(Buffer.concat(chunks, bytes));
}

function decoderFor(contentType: string | null) {
  const charset = /charset\s*=\s*"?([\w-]+)/i.exec(contentType ?? '')?.[1];
  try {
    return new TextDecoder(charset ?? 'utf-8');
  } catch {
    return new TextDecoder('utf-8');
  }
}
