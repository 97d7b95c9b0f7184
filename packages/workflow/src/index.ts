// @bulwark/workflow: durable workflows, checkpointed step by step in SQLite or PostgreSQL.
export {
  type RunHandle,
  type StartOptions,
  type StopOptions,
  type StopResult,
  WorkflowEngine,
  type WorkflowEngineOptions,
  type WorkflowInfo,
} from './engine/engine.ts';
export type { EngineEvent, EngineListener } from './engine/events.ts';
export {
  type CatchUpPolicy,
  checkSchedule,
  type Schedule,
  WorkflowScheduler,
  type WorkflowSchedulerOptions,
} from './engine/schedules.ts';
export {
  type ChildOptions,
  defineWorkflow,
  PRIORITIES,
  type Priority,
  type StepContext,
  type StepOptions,
  type WorkflowContext,
  type WorkflowDefinition,
  type WorkflowOptions,
} from './engine/workflow.ts';
export {
  NonDeterminismError,
  RunCancelledError,
  RunFailedError,
  RunNotRetryableError,
  StoreClosedError,
  UnknownRunError,
  WaitTimeoutError,
  WorkerStoppedError,
  WorkflowError,
  type WorkflowErrorCode,
  WorkflowErrorCodes,
} from './errors.ts';
export {
  openPostgresStore,
  PostgresStore,
  type PostgresStoreOptions,
} from './store/postgres/index.ts';
export {
  type GroupCommitStats,
  openSqliteStore,
  SqliteStore,
  type SqliteStoreOptions,
  type SqliteStoreStats,
} from './store/sqlite/index.ts';
export type {
  AuditEntry,
  Change,
  ClaimedRun,
  ClaimRequest,
  CommitResult,
  EnqueueResult,
  FeedEvent,
  Json,
  ListAuditFilter,
  ListRunsFilter,
  NewAuditEntry,
  NewEvent,
  NewRun,
  NewStep,
  ParkedRun,
  RetryOutcome,
  RunCount,
  RunRecord,
  RunSearch,
  RunStatus,
  RunUpdate,
  Signal,
  StepRecord,
  StoredError,
  TimelineEvent,
  WakeTopic,
  WorkflowStore,
} from './store/types.ts';
export { FINAL_STATUSES, MAX_RUN_OFFSET, RUN_STATUSES } from './store/types.ts';
