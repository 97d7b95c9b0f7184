// The workers a store knows of, for claims by version (see `WorkflowStore.announce`).
import type { Versions } from './types.ts';

/** A worker not heard of for this long is forgotten: a crashed one leaves its row behind. */
export const FORGET_WORKERS_MS = 86_400_000;

/**
 * `encode`, once per versions object: an engine passes the same one with every claim and
 * announcement until it registers more (then a new one), so a claim does not encode it again.
 */
export function versionsEncoder(encode: (versions: Versions) => string): (versions: Versions) => string {
  const encoded = new WeakMap<Versions, string>();
  return (versions) => {
    let text = encoded.get(versions);
    if (text === undefined) encoded.set(versions, (text = encode(versions)));
    return text;
  };
}
