// The one seam between the store and pg: a statement and its values in, rows out, with this
// store's type parsers and prepared names; and the wake-ups a transaction owes once committed.
import type { PoolClient } from 'pg';
import type { WakeTopic } from '../types.ts';
import { type Row, types } from './rows.ts';
import type { Statement, Statements } from './sql.ts';

export class Session {
  readonly client: PoolClient;
  readonly sql: Statements;
  /** Topics to NOTIFY with the commit (and to tell this process's subscribers after it). */
  readonly topics = new Set<WakeTopic>();

  constructor(client: PoolClient, sql: Statements) {
    this.client = client;
    this.sql = sql;
  }

  async run(statement: Statement, values: unknown[]): Promise<Row[]> {
    const result = await this.client.query<Row>({
      name: statement.name,
      text: statement.text,
      values,
      types,
    });
    return result.rows;
  }

  /** Plain SQL, several statements at once, no values: BEGIN, SAVEPOINT, COMMIT and the like. */
  async raw(text: string): Promise<void> {
    await this.client.query(text);
  }

  /**
   * The `NOTIFY`s for the topics, to send in the same round trip as the COMMIT (see `payloads`).
   */
  notifications(quotedChannel: string): string {
    let text = '';
    for (const payload of payloads(this.topics)) {
      text += `NOTIFY ${quotedChannel}, ${this.client.escapeLiteral(payload)}; `;
    }
    return text;
  }
}

/**
 * Topics joined by newlines, in as few payloads as fit under PostgreSQL's 8000 bytes (each
 * notification costs the server far more than its length does).
 */
export function payloads(topics: Iterable<WakeTopic>): string[] {
  const all: string[] = [];
  let payload = '';
  for (const topic of topics) {
    if (payload !== '' && payload.length + topic.length + 1 > MAX_PAYLOAD) {
      all.push(payload);
      payload = '';
    }
    payload = payload === '' ? topic : `${payload}\n${topic}`;
  }
  if (payload !== '') all.push(payload);
  return all;
}

/** Characters per NOTIFY payload: under 8000 bytes even if every character takes two. */
export const MAX_PAYLOAD = 3_900;

/** Errors after which the whole transaction can simply be tried again. */
export function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001' || error instanceof RetryTransaction;
}

/** Thrown inside a transaction to run it again from the start (e.g. a lost idempotency race). */
export class RetryTransaction extends Error {}
