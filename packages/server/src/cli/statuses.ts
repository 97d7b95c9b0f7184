// The run statuses the CLI needs, spelled out: importing @bulwark/workflow for them would load the
// whole engine (about a second from source) into commands that only talk HTTP. A test checks
// they equal the workflow package's lists.

/** A run in one of these is over. */
export const FINAL_STATUSES = ['completed', 'failed', 'cancelled', 'compensated'] as const;

/** Every status, in the order a run may pass through them. */
export const RUN_STATUSES = ['queued', 'running', 'waiting', 'compensating', ...FINAL_STATUSES] as const;
