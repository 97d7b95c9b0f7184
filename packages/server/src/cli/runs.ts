// `bulwark runs`: the newest runs of a running server, filtered by status and workflow, as a
// table (or JSON with --json).

import type { Env } from '../config/env.ts';
import { connect, type RemoteOptions } from './client.ts';
import { CliError } from './errors.ts';
import type { Terminal } from './run.ts';
import { RUN_STATUSES } from './statuses.ts';

export interface RunsOptions extends RemoteOptions {
  /** Comma-separated statuses. */
  status?: string;
  workflow?: string;
  limit?: string;
  cursor?: string;
  json?: boolean;
}

interface Page {
  items: {
    id: string;
    workflow: string;
    status: string;
    progress: number;
    priority: string;
    createdAt: number;
  }[];
  nextCursor: string | null;
}

export async function runsCommand(options: RunsOptions, out: Terminal, env: Env): Promise<number> {
  const query = new URLSearchParams();
  if (options.status !== undefined) {
    const unknown = options.status.split(',').filter((s) => !(RUN_STATUSES as readonly string[]).includes(s));
    if (unknown.length > 0) {
      throw new CliError(
        'BAD_INPUT',
        `--status: unknown status ${JSON.stringify(unknown[0])}; expected some of ${RUN_STATUSES.join(', ')}`,
      );
    }
    query.set('status', options.status);
  }
  if (options.workflow !== undefined) query.set('workflow', options.workflow);
  if (options.limit !== undefined) {
    const limit = Number(options.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
      throw new CliError(
        'BAD_INPUT',
        `--limit: expected a whole number from 1 to 500, got ${JSON.stringify(options.limit)}`,
      );
    }
    query.set('limit', String(limit));
  }
  if (options.cursor !== undefined) query.set('cursor', options.cursor);
  const client = await connect(options, env);
  const { body } = await client.request<Page>(
    'GET',
    `/api/runs${query.toString() === '' ? '' : `?${query}`}`,
  );
  if (options.json) {
    out.write(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  if (body.items.length === 0) {
    out.write('no runs\n');
    return 0;
  }
  const rows = [
    ['ID', 'WORKFLOW', 'STATUS', 'PROGRESS', 'PRIORITY', 'CREATED'],
    ...body.items.map((r) => [
      r.id,
      r.workflow,
      r.status,
      `${Math.round(r.progress)}%`,
      r.priority,
      new Date(r.createdAt).toISOString().replace('T', ' ').slice(0, 19),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows)
    out.write(
      `${row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}\n`,
    );
  if (body.nextCursor !== null) out.write(`more: --cursor ${body.nextCursor}\n`);
  return 0;
}
