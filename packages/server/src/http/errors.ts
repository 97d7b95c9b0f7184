// Every error the API answers with, as RFC 9457 `application/problem+json`: one list of stable
// codes, one error class, and the handlers that turn Fastify's own errors into problems.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Stable codes; clients and tests match on these, never on message text. */
export const ProblemCodes = {
  VALIDATION_FAILED: 400,
  MALFORMED_BODY: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
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
  UNAUTHORIZED: 'An API key is required',
  FORBIDDEN: 'The API key may not do this',
  NOT_FOUND: 'Not found',
  METHOD_NOT_ALLOWED: 'Method not allowed',
  CONFLICT: 'Conflict',
  PAYLOAD_TOO_LARGE: 'The request body is too large',
  UNSUPPORTED_MEDIA_TYPE: 'Unsupported media type',
  RATE_LIMITED: 'Too many requests',
  INTERNAL: 'Internal error',
  DRAINING: 'The server is shutting down',
  OVERLOADED: 'The server is overloaded',
  UNAVAILABLE: 'A required service is unavailable',
};

/** What a problem carries besides its code and detail: field problems, response headers, extension members. */
interface ProblemExtra {
  errors?: FieldProblem[];
  headers?: Record<string, string>;
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

export function problem(
  request: FastifyRequest,
  code: ProblemCode,
  detail: string,
  extra: Record<string, unknown> = {},
): Problem {
  return {
    type: `urn:bulwark:problem:${code.toLowerCase().replaceAll('_', '-')}`,
    title: TITLES[code],
    status: ProblemCodes[code],
    detail,
    instance: request.url.split('?')[0] ?? request.url,
    code,
    requestId: request.id,
    ...extra,
  };
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
    .code(ProblemCodes[code])
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
      return sendProblem(
        reply,
        status === 404 ? 'NOT_FOUND' : status === 405 ? 'METHOD_NOT_ALLOWED' : 'VALIDATION_FAILED',
        error.message,
      );
    }
    request.log.error({ err: error }, 'request failed');
    return sendProblem(
      reply,
      'INTERNAL',
      'The server failed to handle the request; the log has the details under this requestId.',
    );
  });
}
