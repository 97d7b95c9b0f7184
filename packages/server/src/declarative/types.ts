// A declarative workflow as the configuration loader hands it over: the `workflows:` section of
// bulwark.yaml after validation, durations in milliseconds. Strings may hold `{{ }}` templates.
import type { RetrySettings } from '@bulwark/core';
import type { Json } from '@bulwark/workflow';

export const STEP_KINDS = [
  'http',
  'extract',
  'file.write',
  'file.delete',
  'transform',
  'delay',
  'wait-event',
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

export interface HttpCall {
  uses: 'http';
  /** An `http` dependency (or a group of them). */
  dependency: string;
  /** @default 'GET', or 'POST' with a body */
  method?: string;
  /** Relative to the dependency's `baseUrl`, or absolute. */
  url: string;
  headers?: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
  /** Statuses that count as success. @default any 2xx */
  expect?: number[];
  /** The largest response body read, in bytes. @default 5 MiB */
  maxBytes?: number;
  /** The operation named in the dependency's statistics. @default the step's name */
  operation?: string;
}

export interface ExtractCall {
  uses: 'extract';
  html: string;
  /** The page's address: relative links are resolved against it. */
  url: string;
}

export interface FileWriteCall {
  uses: 'file.write';
  /** Relative to the storage directory. */
  path: string;
  /** Text, or any other value (written as JSON). */
  content: unknown;
  /** A dependency whose pipeline protects the write (kind `filesystem`, most often). */
  dependency?: string;
}

export interface FileDeleteCall {
  uses: 'file.delete';
  path: string;
  dependency?: string;
}

export interface TransformCall {
  uses: 'transform';
  value: unknown;
}

export interface DelayCall {
  uses: 'delay';
  forMs: number;
}

export interface WaitEventCall {
  uses: 'wait-event';
  event: string;
  /** @default no limit */
  timeoutMs?: number;
}

/** What a `compensate:` runs. */
export type Invocation = HttpCall | ExtractCall | FileWriteCall | FileDeleteCall | TransformCall;

interface StepBase {
  description?: string;
  /** Steps that must complete first (on top of those its templates read). */
  needs: string[];
}

/** Settings of the steps that run at once (not `delay`, not `wait-event`). */
interface Protected {
  /** The step's own retries (on top of a dependency's). @default the engine's: 3 attempts, 1s base */
  retry?: RetrySettings | false;
  /** Limit on each attempt. */
  timeoutMs?: number;
  /** When the dependency's circuit refuses the step: wait for it, or fail (the fallback answers). @default 'park' */
  whenCircuitOpen?: 'park' | 'fail';
  /** The substitute output when the step fails for good; the run then ends `degraded`. */
  fallback?: { value: unknown };
  /** How to undo the step when a later one fails; `false` turns off `file.write`'s own (removing the file). */
  compensate?: Invocation | false;
}

export type StepDeclaration =
  | (Invocation & StepBase & Protected)
  | (DelayCall & StepBase)
  | (WaitEventCall & StepBase & { fallback?: { value: unknown } });

export interface WorkflowDeclaration {
  description?: string;
  /** @default '1' */
  version?: string;
  /** By name, in the order written. */
  steps: Record<string, StepDeclaration>;
  /** The run's output. @default the outputs of the steps no other step needs, by name */
  output?: unknown;
  /** An input a run can start with, for people and UIs (plain JSON, checked by the schema). */
  example?: Json;
}

export interface StorageSettings {
  /** Absolute once loaded (relative paths are resolved against the config file's directory). */
  dir?: string;
}
