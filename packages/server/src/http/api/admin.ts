// Admin routes: the audit log of operator and admin actions, and reloading the configuration.

import type { FastifyPluginAsync } from 'fastify';
import { ConfigError } from '../../config/errors.ts';
import { audit } from '../audit.ts';
import type { ServerContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { problemResponses } from '../schemas.ts';

export const auditEntrySchema = {
  $id: 'AuditEntry',
  type: 'object',
  required: ['id', 'at', 'actor', 'role', 'action', 'outcome'],
  properties: {
    id: { type: 'integer' },
    at: { type: 'integer' },
    actor: { type: 'string', description: 'The API key’s name (never the key).' },
    role: { type: 'string' },
    action: {
      type: 'string',
      description: '`run.start`, `run.cancel`, `dependency.isolate`, `config.reload`, ...',
    },
    target: { type: ['string', 'null'] },
    requestId: { type: ['string', 'null'] },
    data: { description: 'Any JSON value.' },
    outcome: { type: 'string', enum: ['ok', 'denied', 'failed'] },
  },
} as const;

const names = { type: 'array', items: { type: 'string' } } as const;
const namesChanged = { added: names, changed: names, removed: names } as const;

export const adminApi: FastifyPluginAsync<{ context: ServerContext }> = async (app, { context }) => {
  const { store } = context;

  app.get<{ Querystring: { limit?: number; before?: number } }>(
    '/audit',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['admin'],
        summary: 'The audit log, newest first',
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            before: {
              type: 'integer',
              minimum: 1,
              description: 'Entries before this id (the `nextCursor` of the previous page).',
            },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            required: ['items', 'nextCursor'],
            properties: {
              items: { type: 'array', items: { $ref: 'AuditEntry#' } },
              nextCursor: { type: ['integer', 'null'] },
            },
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { limit = 100, before } = request.query;
      const entries = await store.listAudit({
        limit: limit + 1,
        ...(before === undefined ? {} : { before }),
      });
      const page = entries.slice(0, limit);
      return {
        items: page.map((e) => ({
          ...e,
          target: e.target ?? null,
          requestId: e.requestId ?? null,
          data: e.data ?? null,
        })),
        nextCursor: entries.length > limit ? (page.at(-1)?.id ?? null) : null,
      };
    },
  );

  app.post(
    '/config/reload',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['admin'],
        summary: 'Reload the configuration file; an invalid file changes nothing (409 lists its issues)',
        response: {
          200: {
            type: 'object',
            description: 'Dependencies added, changed and removed, by name; and the same of `workflows:`.',
            required: ['added', 'changed', 'removed', 'workflows'],
            properties: {
              ...namesChanged,
              workflows: {
                type: 'object',
                description:
                  'Added and changed workflows are registered at once (a changed one replaces its `version`, or adds one if its `version` changed); removed ones stay until the next start, so that their runs can finish.',
                required: ['added', 'changed', 'removed'],
                properties: namesChanged,
              },
            },
          },
          409: { $ref: 'Problem#' },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      if (context.reload === undefined) {
        throw new ApiError(
          'CONFLICT',
          'This server was not started from a configuration file: there is nothing to reload',
        );
      }
      try {
        const result = await context.reload();
        await audit(context, request, { action: 'config.reload', data: { ...result } as never });
        return result;
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        await audit(context, request, {
          action: 'config.reload',
          outcome: 'failed',
          data: { issues: error.issues.length },
        });
        throw new ApiError(
          'CONFLICT',
          'The configuration file does not validate; the running configuration stays',
          {
            issues: error.issues,
          },
        );
      }
    },
  );
};
