// The seam between the workflow engine and its database: one interface, implemented by the
// SQLite store (embedded default) and the PostgreSQL store, and checked by one conformance suite.
// Every time is a number of ms since the epoch, given by the caller (the engine's clock): a
// store never reads the time itself, so tests can drive it on a virtual clock.

/** Where a run is in its life. Final statuses never change again. */
export type RunStatus =
  /** Enqueued; waiting for a worker (and for its parents, if `pendingParents > 0`). */
  | 'queued'
  /** A worker holds it (or held it: a lease that expired makes it claimable again). */
  | 'running'
  /** Asleep or waiting for an event, until `availableAt` (or until a signal wakes it). */
  | 'waiting'
  /** A step failed; compensations of completed steps are running, in reverse order. */
  | 'compensating'
  | 'completed'
  | 'failed'
  | 'cancelled'
  /** Failed, and every compensation ran. */
  | 'compensated';

export const FINAL_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'cancelled', 'compensated'];

/** Every status, in the order a run may pass through them (for filters, forms and docs). */
export const RUN_STATUSES: readonly RunStatus[] = [
  'queued',
  'running',
  'waiting',
  'compensating',
  ...FINAL_STATUSES,
];

/** A value stored as JSON. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** An error as stored: enough to rebuild a useful error and classify it, never a live object. */
export interface StoredError {
  name: string;
  message: string;
  code?: string;
  /** As `classify` decided when it was stored. */
  transient?: boolean;
  stack?: string;
  /** Extra fields (an HTTP status, a reason), JSON only. */
  data?: { [key: string]: Json };
}

/** The workflow versions a worker runs, by workflow name (`ClaimRequest.versions`, `announce`). */
export type Versions = Readonly<Record<string, readonly string[]>>;

/** What is needed to create a run. The engine makes the id (a UUID). */
export interface NewRun {
  id: string;
  workflow: string;
  version: string;
  input: Json;
  /** Higher is claimed first: low 0, normal 1, high 2, urgent 3, critical 4. */
  priority: number;
  /** A second enqueue with the same key returns the first run instead of creating one. */
  idempotencyKey?: string;
  /** Runs that must complete first. Unknown ids are an error; a parent already failed or cancelled cancels this run at once. */
  dependsOn?: string[];
  /** The run that started this one as a child workflow. */
  parentRunId?: string;
  /** Runs sharing a key (a tenant) count against the per-key concurrency limit together. */
  concurrencyKey?: string;
  /** Not claimable before this time. @default now */
  availableAt?: number;
  /** The run fails once past this time (the engine enforces it). */
  deadlineAt?: number;
  correlationId?: string;
  traceparent?: string;
  /**
   * An audit entry written in the same transaction as the run, its target the run's id, when
   * the run is created (not when an idempotency key matched): both are durable, or neither.
   */
  audit?: Omit<NewAuditEntry, 'target'>;
  /**
   * Created `running`, leased to this worker until `until`, as a claim would leave it: the engine
   * that starts the run executes it at once, so no other worker is woken for it. Not with
   * `dependsOn` (a `TypeError`), nor `availableAt` in the future.
   */
  leasedTo?: { workerId: string; until: number };
  /**
   * The schedule tick this run was started for (`WorkflowScheduler`): recorded with the run as
   * the schedule's latest tick, unless a later one is recorded already (see `lastTick`).
   */
  scheduleTick?: { schedule: string; at: number };
}

export interface RunRecord {
  id: string;
  workflow: string;
  version: string;
  status: RunStatus;
  priority: number;
  input: Json;
  output: Json | undefined;
  error: StoredError | undefined;
  /** Completed through a fallback somewhere: the result is usable but not the real thing. */
  degraded: boolean;
  /** 0 to 100. */
  progress: number;
  idempotencyKey: string | undefined;
  parentRunId: string | undefined;
  concurrencyKey: string | undefined;
  /** Parents (dependsOn) not yet completed; claimable only at 0. */
  pendingParents: number;
  availableAt: number;
  /** The event a `waiting` run waits for, if any (a signal with this name wakes it). */
  waitingFor: string | undefined;
  leaseOwner: string | undefined;
  leaseExpiresAt: number | undefined;
  /** Set by `requestCancel` while a worker holds the run; the worker finishes the cancellation. */
  cancelRequested: string | undefined;
  deadlineAt: number | undefined;
  correlationId: string | undefined;
  traceparent: string | undefined;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | undefined;
}

export interface EnqueueResult {
  id: string;
  /** False when an idempotency key matched an existing run (whose id is returned). */
  created: boolean;
  /** `running` for a run created with `leasedTo`. */
  status: RunStatus;
  /**
   * The run as this enqueue created it, from stores that give it: SQLite always; PostgreSQL for a
   * run created with `leasedTo`, with its input as stored (jsonb orders an object's keys).
   */
  run?: RunRecord;
}

/** A step's recorded outcome. Recorded once: a second record of the same (run, name) is refused. */
export interface StepRecord {
  runId: string;
  name: string;
  /** Order of recording within the run, from 0 (the store assigns it). */
  seq: number;
  status: 'completed' | 'failed';
  output: Json | undefined;
  /** Why it failed; on a completed step, the error its fallback stood in for (its output is the substitute). */
  error: StoredError | undefined;
  attempts: number;
  startedAt: number;
  finishedAt: number;
}

export type NewStep = Omit<StepRecord, 'seq' | 'runId'>;

/** One entry of a run's timeline. `seq` increases across the whole store. */
export interface TimelineEvent {
  seq: number;
  runId: string;
  /** `run:queued`, `run:started`, `step:completed`, `compensation:failed`, ... (the engine names them). */
  type: string;
  step: string | undefined;
  data: Json | undefined;
  /** The run's progress when it happened, 0 to 100. */
  progress: number;
  at: number;
}

export type NewEvent = Omit<TimelineEvent, 'seq' | 'runId'>;

export interface Signal {
  id: number;
  runId: string;
  name: string;
  payload: Json;
  createdAt: number;
}

/** What a worker asks for. */
export interface ClaimRequest {
  workerId: string;
  /** At most this many runs. */
  limit: number;
  /** The lease each claimed run gets: `now + leaseMs`. */
  leaseMs: number;
  now: number;
  /** Only runs of these workflows (the ones this worker has registered). */
  workflows: readonly string[];
  /**
   * The versions of each workflow this worker runs. When given, a run is claimed only on one of
   * them, or when no worker live at `now` (see `announce`) runs its version: the version is
   * gone, and the claiming engine says so. Without it, any version.
   */
  versions?: Versions;
  /** At most this many leased runs per workflow, across all workers. */
  perWorkflow?: Readonly<Record<string, number>>;
  /** At most this many leased runs per concurrency key, across all workers. */
  perKey?: number;
}

/**
 * A claimed run: the record (status `queued` becomes `running`), leased to the worker until
 * `leaseExpiresAt`. `takenOver` says a previous lease had expired (its worker died).
 */
export interface ClaimedRun extends RunRecord {
  takenOver: boolean;
  /** The run has recorded steps (a resumed, retried or given-back run): the engine reads them to replay. */
  hasSteps: boolean;
}

export interface RunUpdate {
  status?: RunStatus;
  output?: Json;
  error?: StoredError;
  degraded?: boolean;
  progress?: number;
  availableAt?: number;
  /**
   * Set with status `waiting` for an event; cleared (null) when the wait ends. If an unconsumed
   * signal of that name is already stored, the run is available at once (the signal came between
   * the worker's look and this commit).
   */
  waitingFor?: string | null;
  /** Give the lease up (the run is waiting, or final). */
  releaseLease?: boolean;
  /**
   * Set with status `waiting` when a step parked behind this dependency's open circuit; null
   * when the run waits for anything else. A claim clears it.
   */
  parkedOn?: string | null;
}

/**
 * One change in a commit. `step` and `run` changes apply only while `workerId` holds the run's
 * lease (a worker whose lease expired and was taken over must not write); an `event` goes with
 * its run's changes.
 */
export type Change =
  | { kind: 'step'; runId: string; workerId: string; step: NewStep }
  | { kind: 'run'; runId: string; workerId: string; update: RunUpdate }
  | { kind: 'event'; runId: string; event: NewEvent }
  | { kind: 'consume-signal'; runId: string; signalId: number };

export interface CommitResult {
  /** Runs whose changes were not applied because the worker no longer holds their lease. */
  lostLease: string[];
  /** Steps refused because (run, name) was already recorded. */
  duplicateSteps: { runId: string; name: string }[];
}

/**
 * A search for runs: by `text`, a run id (whole or its beginning), a correlation id or an
 * idempotency key; or by a value of the input at `path` (object keys), compared as text (a
 * number as written in JSON, `true`, `false`).
 */
export type RunSearch = { text: string } | { path: readonly string[]; equals: string };

export interface ListRunsFilter {
  status?: readonly RunStatus[];
  workflow?: string;
  search?: RunSearch;
  /** Newest first. @default 100 */
  limit?: number;
  /** Runs created before this one (by creation time, then id): for paging. */
  before?: string;
  /**
   * Skips this many runs of the list (after `before`, when both are given): reads a window at a
   * position, as a scrollbar dragged to the middle wants, in the same order as the paging by
   * `before`. The database walks the skipped index entries one by one, so the cost grows with
   * the offset (see docs/api.md, "Paging by position"); at most `MAX_RUN_OFFSET`. @default 0
   */
  offset?: number;
}

/** The largest `offset` of `listRuns`: skipping costs a step per run skipped, so it is bounded. */
export const MAX_RUN_OFFSET = 1_000_000;

/** A run parked behind a dependency's open circuit (see `parkedRuns`). */
export interface ParkedRun {
  runId: string;
  workflow: string;
  /** The step that found the circuit open. */
  step: string | undefined;
  /** When it parked: the time of its last `step:parked` event. */
  since: number;
  /** When it tries the dependency again (its `availableAt`). */
  resumeAt: number;
  /** That event's data: `retryAfterMs`, `dependency`, `breaker` (the policy's name) and the refusal's `message`. */
  data: Json | undefined;
}

/** A timeline event of the system-wide feed, with its run's workflow. */
export interface FeedEvent extends TimelineEvent {
  workflow: string;
}

/** What an audit entry records: who did what to which target, and how it ended. */
export interface NewAuditEntry {
  /** ms since the epoch. */
  at: number;
  actor: string;
  role: string;
  /** What was done, e.g. `run.cancel`. */
  action: string;
  /** What it was done to, e.g. a run id. */
  target?: string;
  requestId?: string;
  data?: Json;
  outcome: 'ok' | 'denied' | 'failed';
}

export interface AuditEntry extends NewAuditEntry {
  /** Increases with each entry: the order of the log, and the cursor for paging. */
  id: number;
}

export interface ListAuditFilter {
  /** @default 100 (at most 1000) */
  limit?: number;
  /** Entries with a smaller id than this one: for paging back. */
  before?: number;
}

/** What `retryRun` did: queued the run again, found no such run, or found it not in a final failed state. */
export type RetryOutcome = 'retried' | 'unknown' | 'not-retryable';

/** A wake-up: new claimable work (`runs`), or something happened to one run (`run:<id>`). */
export type WakeTopic = 'runs' | `run:${string}`;

/** Runs of one workflow in one status (`countRuns`). */
export interface RunCount {
  workflow: string;
  status: RunStatus;
  count: number;
  /** When the oldest of them was created: how long work has been waiting or running. */
  oldestCreatedAt: number;
}

export interface WorkflowStore {
  /** `'sqlite'` or `'postgres'`. */
  readonly dialect: string;
  /** Applies pending migrations; safe when several processes start at once. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /**
   * Creates runs, in one transaction, durable when the promise resolves. A run whose
   * idempotency key exists already is not created; its id is returned. Appends `run:queued`
   * (or `run:cancelled` for a run whose parent already failed) to each new run's timeline. The
   * events a store writes itself have the same data in every store (store/events.ts). Wakes the
   * workers (`runs`) unless every new run is leased (`leasedTo`).
   */
  enqueue(runs: readonly NewRun[], now: number): Promise<EnqueueResult[]>;
  /**
   * The latest tick of a schedule that a created run was started for (`NewRun.scheduleTick`),
   * or undefined if none. Kept when that run is pruned: a scheduler's catch-up starts only
   * later ticks, where the pruned run's idempotency key no longer stops a second run.
   */
  lastTick(schedule: string): Promise<number | undefined>;
  getRun(id: string): Promise<RunRecord | undefined>;
  listRuns(filter?: ListRunsFilter): Promise<RunRecord[]>;

  /**
   * Claims claimable runs: not final, `pendingParents = 0`, `availableAt <= now`, and not
   * leased (or the lease expired), of the given workflows, within the concurrency limits; in
   * order of priority (highest first), then creation time, then id. Atomic across processes.
   */
  claim(request: ClaimRequest): Promise<ClaimedRun[]>;
  /**
   * Records that `workerId` runs these versions and counts as live until `now + leaseMs` (its
   * own lease: it announces again before then), for `ClaimRequest.versions`. An announcement
   * older than the one recorded changes nothing. Forgets workers gone for a day.
   */
  announce(workerId: string, versions: Versions, now: number, leaseMs: number): Promise<void>;
  /** Forgets a worker that stopped: the versions only it ran are gone at once. */
  retire(workerId: string): Promise<void>;
  /**
   * Extends the leases `workerId` still holds; returns the ids it holds and, among them, those
   * with a cancellation requested.
   */
  renew(
    workerId: string,
    runIds: readonly string[],
    leaseMs: number,
    now: number,
  ): Promise<{ held: string[]; cancelRequested: string[] }>;

  /**
   * Applies changes atomically (one transaction; concurrent calls may share one, which is how
   * many runs' progress costs fewer commits than runs). When a run becomes `completed`, its
   * dependents' `pendingParents` drop by one (and those at 0 become available at once); when it
   * becomes `failed`, `cancelled` or `compensated`, its dependents, and theirs, are cancelled with
   * a `run:cancelled` event saying which parent. Durable when the promise resolves.
   */
  commit(changes: readonly Change[], now: number): Promise<CommitResult>;

  /** The recorded steps of a run, in `seq` order. */
  steps(runId: string): Promise<StepRecord[]>;
  /** A run's timeline after `afterSeq` (exclusive), oldest first. */
  events(runId: string, afterSeq?: number, limit?: number): Promise<TimelineEvent[]>;

  /**
   * Sends an event to a run: stored until consumed; a run `waiting` for this name becomes
   * available now. Unknown or final runs: false.
   */
  signal(runId: string, name: string, payload: Json, now: number): Promise<boolean>;
  /** Unconsumed signals of a run with this name, oldest first. */
  signals(runId: string, name: string): Promise<Signal[]>;

  /**
   * Cancels a run. Leased: the request is recorded (`cancelRequested`) for its worker, which
   * compensates and cancels it. Not leased but it has run (it has steps, and no parent to wait
   * for): the request is recorded and the run is due now, so that a worker claims it and does the
   * same. Not leased and never run: it becomes `cancelled` at once (dependents cascade). Final: false.
   */
  requestCancel(runId: string, reason: string, now: number): Promise<boolean>;

  /**
   * Deletes final runs finished before `before`, with their steps, events, signals. A parent that
   * did not complete is kept while a run that depends on it is kept (and so on up). Returns how
   * many runs.
   */
  prune(before: number): Promise<number>;

  /**
   * Queues a `failed`, `compensated` or `cancelled` run again, in one transaction: deletes its
   * failed step records and those of the steps whose compensation completed since its last
   * retry (with the compensations' records; and the `wait:` record of an `event:` wait that
   * timed out, so that it waits afresh), clears its error, output, finishedAt,
   * cancelRequested, lease and waitingFor, makes it `queued` and available at `now`, with
   * `pendingParents` counting its parents not completed, and appends `run:retried` {reason}.
   */
  retryRun(runId: string, reason: string, now: number): Promise<RetryOutcome>;

  /** Appends an entry to the audit log (durable when it resolves); `prune` never deletes these. */
  appendAudit(entry: NewAuditEntry): Promise<AuditEntry>;
  /** Audit entries, newest first. */
  listAudit(filter?: ListAuditFilter): Promise<AuditEntry[]>;

  /**
   * Timeline events whose type starts with `run:`, of every run, with `seq > afterSeq`, oldest
   * first, at most `limit`. Resumable: an event committed later never has a seq at or below one
   * already returned, so a reader that goes on from the last seq it saw misses nothing.
   */
  runFeed(afterSeq: number, limit: number): Promise<FeedEvent[]>;
  /** The highest event seq handed out so far (0 when none): where a feed that wants only new events starts. */
  latestSeq(): Promise<number>;
  /** How many runs there are per workflow and status, and when the oldest of each was created. */
  countRuns(): Promise<RunCount[]>;
  /** How many runs `listRuns` would list with this filter and no limit (`limit`, `before` and `offset` are ignored). */
  totalRuns(filter?: ListRunsFilter): Promise<number>;

  /**
   * Runs `waiting` because a step parked behind `dependency`'s open circuit, the soonest to
   * resume first, at most `limit`; `total` counts them all.
   */
  parkedRuns(dependency: string, limit: number): Promise<{ runs: ParkedRun[]; total: number }>;
  /** How many runs are parked behind each dependency that has any. */
  parkedCounts(): Promise<Record<string, number>>;
  /**
   * Makes the runs parked behind `dependency` (`waiting`, `parkedOn` it, due later than `now`)
   * available at `now`, in one statement; they stay listed as parked until a worker claims them.
   * Wakes the workers (`runs`) when it woke any. Returns how many.
   */
  wakeParked(dependency: string, now: number): Promise<number>;

  /**
   * Calls `listener` on wake-ups: from this process always; from other processes where the
   * database can tell (PostgreSQL's LISTEN/NOTIFY). Returns a function that unsubscribes.
   */
  subscribe(listener: (topic: WakeTopic) => void): () => void;
}
