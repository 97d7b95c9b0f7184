// JSON Schemas shared by the routes: they validate input, shape output, and become the OpenAPI
// document, so the three cannot drift apart.

export const problemSchema = {
  $id: 'Problem',
  type: 'object',
  description: 'An RFC 9457 problem; `code` is stable, `errors` names each invalid field.',
  required: ['type', 'title', 'status', 'detail', 'code'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    code: { type: 'string' },
    requestId: { type: 'string' },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        required: ['pointer', 'detail'],
        properties: { pointer: { type: 'string' }, detail: { type: 'string' } },
      },
    },
  },
  additionalProperties: true,
} as const;

/** The error answers every API route may give. */
export const problemResponses = {
  400: { $ref: 'Problem#' },
  401: { $ref: 'Problem#' },
  403: { $ref: 'Problem#' },
  404: { $ref: 'Problem#' },
  429: { $ref: 'Problem#' },
  503: { $ref: 'Problem#' },
} as const;

/**
 * A response whose body is not JSON, in Fastify's per-media-type form (`content`): the OpenAPI
 * document shows it under its own media type, where a plain schema would be `application/json`.
 */
interface MediaResponse {
  description: string;
  content: Readonly<Record<string, { schema: Readonly<Record<string, unknown>> }>>;
}

/** A text body of `mediaType` (SSE, Prometheus text), as a response schema. */
export function mediaResponse(mediaType: string, description: string): MediaResponse {
  return { description, content: { [mediaType]: { schema: { type: 'string' } } } };
}

/** A name in a path: a dependency, a workflow. */
export const nameParam = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
  additionalProperties: false,
} as const;

export const idParam = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 100 } },
  additionalProperties: false,
} as const;

/** Any JSON object whose fields are documented elsewhere (statistics, pipelines). */
export const looseObject = { type: 'object', additionalProperties: true } as const;
export const nullableLooseObject = { type: ['object', 'null'], additionalProperties: true } as const;
