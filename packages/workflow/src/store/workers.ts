// The workers a store knows of, for claims by version (see `WorkflowStore.announce`).

/** A worker not heard of for this long is forgotten: a crashed one leaves its row behind. */
export const FORGET_WORKERS_MS = 86_400_000;
