// The audit trail of operator and admin actions: who did what to which target, and how it
// ended, persisted in the workflow store so it outlives the process and is shared by a cluster.
import type { Json, NewAuditEntry } from '@bulwark/workflow';
import type { FastifyRequest } from 'fastify';
import type { ServerContext } from './context.ts';

export interface AuditAction {
  action: string;
  target?: string;
  data?: Json;
  outcome?: 'ok' | 'denied' | 'failed';
}

/**
 * Records an action. A store that fails to record it fails the request: an action that cannot be
 * audited is not done quietly. Denials are recorded by the auth plugin the same way.
 */
export async function audit(
  context: ServerContext,
  request: FastifyRequest,
  entry: AuditAction,
): Promise<void> {
  await context.store.appendAudit(auditEntry(context, request, entry));
}

/** The entry `audit` records; a write that records it in its own transaction (a run's start) takes it as is. */
export function auditEntry(
  context: ServerContext,
  request: FastifyRequest,
  entry: AuditAction,
): NewAuditEntry {
  const principal = request.principal;
  return {
    at: context.clock.now(),
    actor: principal?.name ?? 'anonymous',
    role: principal?.role ?? 'none',
    action: entry.action,
    ...(entry.target === undefined ? {} : { target: entry.target }),
    requestId: request.id,
    ...(entry.data === undefined ? {} : { data: entry.data }),
    outcome: entry.outcome ?? 'ok',
  };
}
