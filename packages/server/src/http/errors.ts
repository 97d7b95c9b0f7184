// Every error the API answers with, as RFC 9457 `application/problem+json`: one list of stable
// codes, one error class, and the handlers that turn Fastify's and Node's own errors into problems.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Stable codes; clients and tests match on these, never on message text. */
export const ProblemCodes = {
  VALIDATION_FAILED: 400,
  MALFORMED_BODY: 400,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UPGRADE_REQUIRED: 426,
  RATE_LIMITED: 429,
  HEADERS_TOO_LARGE: 431,
  /**
   * Any other 4xx that Fastify or a plugin raises. Its problem keeps the status it was raised
   * with, so that a client still sees what HTTP says; 400 stands here only for the type.
   */
  CLIENT_ERROR: 400,
  INTERNAL: 500,
  DRAINING: 503,
  OVERLOADED: 503,
  UNAVAILABLE: 503,
} as const;
export type ProblemCode = keyof typeof ProblemCodes;

/** One invalid field: `pointer` is a JSON pointer into the request part (`#/body/input`, `#/query/limit`). */
export interface FieldProblem {
  pointer: string;
  detail: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  code: ProblemCode;
  requestId: string;
  errors?: FieldProblem[];
  [extension: string]: unknown;
}

const TITLES: Record<ProblemCode, string> = {
  VALIDATION_FAILED: 'The request is invalid',
  MALFORMED_BODY: 'The request body is not valid JSON',
  BAD_REQUEST: 'The request is malformed',
  UNAUTHORIZED: 'An API key is required',
  FORBIDDEN: 'Not allowed',
  NOT_FOUND: 'Not found',
  METHOD_NOT_ALLOWED: 'Method not allowed',
  REQUEST_TIMEOUT: 'The request took too long to arrive',
  CONFLICT: 'Conflict',
  PAYLOAD_TOO_LARGE: 'The request body is too large',
  UNSUPPORTED_MEDIA_TYPE: 'Unsupported media type',
  UPGRADE_REQUIRED: 'This route needs a protocol upgrade',
  RATE_LIMITED: 'Too many requests',
  HEADERS_TOO_LARGE: 'The request headers are too large',
  CLIENT_ERROR: 'The request was refused',
  INTERNAL: 'Internal error',
  DRAINING: 'The server is shutting down',
  OVERLOADED: 'The server is overloaded',
  UNAVAILABLE: 'A required service is unavailable',
};

/** What a problem carries besides its code and detail: field problems, response headers, extension members. */
interface ProblemExtra {
  errors?: FieldProblem[];
  headers?: Record<string, string>;
  /** The answer's status where it is not the code's (a 4xx Fastify chose, answered as CLIENT_ERROR). */
  status?: number;
  [key: string]: unknown;
}

/** An error that becomes a problem response. Built without a stack: it is an answer, not a bug. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  constructor(
    readonly code: ProblemCode,
    detail: string,
    readonly extra: ProblemExtra = {},
  ) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(detail);
    Error.stackTraceLimit = limit;
    this.status = ProblemCodes[code];
  }
}

/** A 400 naming one field. */
export function invalidField(pointer: string, detail: string): ApiError {
  return new ApiError('VALIDATION_FAILED', `${pointer.slice(2)}: ${detail}`, {
    errors: [{ pointer, detail }],
  });
}

const typeOf = (code: ProblemCode) => `urn:bulwark:problem:${code.toLowerCase().replaceAll('_', '-')}`;

export function problem(
  request: FastifyRequest,
  code: ProblemCode,
  detail: string,
  extra: Record<string, unknown> = {},
): Problem {
  return {
    ...problemBody(code, detail),
    instance: request.url.split('?')[0] ?? request.url,
    requestId: request.id,
    ...extra,
  };
}

/** What every problem says, request or not. */
function problemBody(code: ProblemCode, detail: string) {
  return { type: typeOf(code), title: TITLES[code], status: ProblemCodes[code], detail, code };
}

export function sendProblem(
  reply: FastifyReply,
  code: ProblemCode,
  detail: string,
  extra: ProblemExtra = {},
): FastifyReply {
  const { headers, ...rest } = extra;
  if (headers !== undefined) reply.headers(headers);
  return reply
    .code(rest.status ?? ProblemCodes[code])
    .type('application/problem+json')
    .send(problem(reply.request, code, detail, rest));
}

const PARTS: Record<string, string> = {
  body: 'body',
  querystring: 'query',
  params: 'path',
  headers: 'header',
};

/** Ajv's errors as field problems: the pointer names the field, including a missing one. */
function fieldProblems(error: FastifyError): FieldProblem[] {
  const part = PARTS[error.validationContext ?? 'body'] ?? 'body';
  return (error.validation ?? []).map((v) => {
    const params = v.params as Record<string, unknown>;
    let path = v.instancePath;
    if (typeof params.missingProperty === 'string') path += `/${params.missingProperty}`;
    if (typeof params.additionalProperty === 'string') path += `/${params.additionalProperty}`;
    let detail = v.message ?? 'is invalid';
    if (typeof params.additionalProperty === 'string') detail = 'is not a known field';
    else if (typeof params.missingProperty === 'string') detail = 'is required';
    else if (Array.isArray(params.allowedValues))
      detail = `must be one of ${params.allowedValues.map((a) => JSON.stringify(a)).join(', ')}`;
    return { pointer: `#/${part}${path}`, detail };
  });
}

/** The problem each 4xx that Fastify or a plugin raises becomes; any other is CLIENT_ERROR. */
const CLIENT_CODES: Readonly<Partial<Record<number, ProblemCode>>> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  426: 'UPGRADE_REQUIRED',
  429: 'RATE_LIMITED',
  431: 'HEADERS_TOO_LARGE',
};

/** Installs the error and not-found handlers: every failure leaves as a problem, never as HTML or a stack. */
export function installProblemHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    sendProblem(reply, 'NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`);
  });
  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    if (error instanceof ApiError) {
      return sendProblem(reply, error.code, error.message, error.extra);
    }
    if (error.validation !== undefined) {
      const errors = fieldProblems(error);
      const first = errors[0];
      return sendProblem(
        reply,
        'VALIDATION_FAILED',
        first === undefined ? error.message : `${first.pointer.slice(2)} ${first.detail}`,
        { errors },
      );
    }
    switch (error.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendProblem(reply, 'PAYLOAD_TOO_LARGE', error.message);
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendProblem(reply, 'UNSUPPORTED_MEDIA_TYPE', 'Send JSON with Content-Type: application/json');
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return sendProblem(reply, 'MALFORMED_BODY', error.message);
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return sendProblem(reply, 'VALIDATION_FAILED', error.message);
    }
    if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON') {
      return sendProblem(reply, 'MALFORMED_BODY', error.message);
    }
    const status = (error as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      const code = CLIENT_CODES[status];
      return sendProblem(reply, code ?? 'CLIENT_ERROR', error.message, code === undefined ? { status } : {});
    }
    request.log.error({ err: error }, 'request failed');
    return sendProblem(
      reply,
      'INTERNAL',
      'The server failed to handle the request; the log has the details under this requestId.',
    );
  });
}

/**
 * Fastify's `clientErrorHandler`: what Node's HTTP parser refuses before a request exists (a
 * control character in a header, `Content-Length: abc`, headers over the limit, a request too slow
 * to arrive) is answered as a problem too, not as Fastify's own JSON. There is no request here, so
 * the problem has no `requestId` (none was made) and no `instance` (the URL may not have parsed).
 */
export function answerClientError(this: FastifyInstance, error: ConnectionError, socket: Socket): void {
  // Reset by the peer, or already gone: there is no one to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  // Mostly scanners and broken proxies: worth a look only when debugging.
  this.log.debug({ err: error }, 'client error');
  const code: ProblemCode =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? 'REQUEST_TIMEOUT'
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? 'HEADERS_TOO_LARGE'
        : 'BAD_REQUEST';
  // A response already started on this kept-alive connection would be corrupted by a second one.
  const current = (socket as Socket & { _httpMessage?: { headersSent: boolean } | null })._httpMessage;
  if (!socket.writable || current?.headersSent === true) {
    socket.destroy();
    return;
  }
  const status = ProblemCodes[code];
  const body = JSON.stringify(
    problemBody(
      code,
      code === 'BAD_REQUEST' ? `The HTTP request could not be parsed: ${error.message}` : TITLES[code],
    ),
  );
  // Ended, not destroyed at once: a destroy right after the write can drop the answer unsent, and
  // the socket is destroyed once it has gone out, so a peer that never closes holds nothing.
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/problem+json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}
