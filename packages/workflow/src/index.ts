// @bulwark/workflow: durable workflows, checkpointed step by step in SQLite or PostgreSQL.
export {
  type RunHandle,
  type StartOptions,
  WorkflowEngine,
  type WorkflowEngineOptions,
} from './engine/engine.ts';
export {
  type CatchUpPolicy,
  type Schedule,
  WorkflowScheduler,
  type WorkflowSchedulerOptions,
} from './engine/schedules.ts';
export {
  defineWorkflow,
  PRIORITIES,
  type Priority,
  type StepContext,
  type StepOptions,
  type WorkflowContext,
  type WorkflowDefinition,
} from './engine/workflow.ts';
export {
  NonDeterminismError,
  RunCancelledError,
  RunFailedError,
  StoreClosedError,
  UnknownRunError,
  WaitTimeoutError,
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
} from './store/sqlite/index.ts';
export type {
  Change,
  ClaimedRun,
  ClaimRequest,
  CommitResult,
  EnqueueResult,
  Json,
  ListRunsFilter,
  NewEvent,
  NewRun,
  NewStep,
  RunRecord,
  RunStatus,
  RunUpdate,
  Signal,
  StepRecord,
  StoredError,
  TimelineEvent,
  WakeTopic,
  WorkflowStore,
} from './store/types.ts';
export { FINAL_STATUSES } from './store/types.ts';
