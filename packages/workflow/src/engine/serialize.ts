// Values and errors as the store keeps them: JSON, and errors as plain records that keep what
// classification and a person reading the timeline need.
import { classify } from '@bulwark/core';
import type { Json, StoredError } from '../store/types.ts';

/** A JSON copy of `value` (undefined stays undefined); a value JSON cannot carry is refused early. */
export function toJson(value: unknown, what: string): Json | undefined {
  if (value === undefined) return undefined;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new TypeError(`${what} cannot be stored as JSON: ${(error as Error).message}`);
  }
  return text === undefined ? undefined : (JSON.parse(text) as Json);
}

const OWN_FIELDS = new Set(['name', 'message', 'stack', 'code', 'cause', 'transient']);

export function toStoredError(error: unknown): StoredError {
  if (!(error instanceof Error)) {
    return { name: 'Error', message: String(error), transient: classify(error) === 'transient' };
  }
  const e = error as Error & Record<string, unknown>;
  const data: Record<string, Json> = {};
  for (const key of Object.keys(e)) {
    if (OWN_FIELDS.has(key)) continue;
    const value = toJsonOrUndefined(e[key]);
    if (value !== undefined) data[key] = value;
  }
  return {
    name: e.name,
    message: e.message,
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    transient: classify(error) === 'transient',
    ...(e.stack === undefined ? {} : { stack: e.stack }),
    ...(Object.keys(data).length === 0 ? {} : { data }),
  };
}

function toJsonOrUndefined(value: unknown): Json | undefined {
  try {
    return toJson(value, 'field');
  } catch {
    return undefined;
  }
}

/** An error rebuilt from the store, with its name, code, fields and classification. */
export class StoredStepError extends Error {
  readonly code: string | undefined;
  readonly transient: boolean;
  readonly #name: string;
  constructor(stored: StoredError) {
    super(stored.message);
    this.#name = stored.name;
    this.code = stored.code;
    this.transient = stored.transient ?? false;
    if (stored.data !== undefined) Object.assign(this, stored.data);
    if (stored.stack !== undefined) this.stack = stored.stack;
  }
  override get name(): string {
    return this.#name;
  }
}

export function fromStoredError(stored: StoredError): Error {
  return new StoredStepError(stored);
}
