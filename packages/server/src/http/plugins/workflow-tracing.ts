// Spans for workflow steps, recorded when each step commits and placed in the trace of the
// request that started the run (the traceparent stored with the run).

import { FINAL_STATUSES, type WorkflowEngine, type WorkflowStore } from '@bulwark/workflow';
import {
  ProxyTracerProvider,
  ROOT_CONTEXT,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { remoteSpanContext } from './traceparent.ts';

export const TRACER_NAME = '@bulwark/server';

type EngineEvent = Parameters<Parameters<WorkflowEngine['on']>[0]>[0];
type StepFinished = Extract<EngineEvent, { type: 'step:finished' }>;

/** Runs whose traceparent is remembered; a run's steps usually finish within a few seconds of each other. */
const CACHED_RUNS = 1_000;

/**
 * Whether a tracing SDK is registered. Without one every span is dropped, so the store is not
 * read for a run's traceparent at all. A provider from another copy of the API counts as one.
 */
function sdkInstalled(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer(TRACER_NAME) !== undefined;
}

/** Subscribes to the engine's step events; returns the function that unsubscribes. */
export function traceWorkflowSteps(engine: WorkflowEngine, store: WorkflowStore, tracer: Tracer): () => void {
  // runId → its parent span context (undefined: the run has none); a Map in insertion order as an LRU.
  const parents = new Map<string, Promise<SpanContext | undefined>>();

  const parentOf = (event: StepFinished): Promise<SpanContext | undefined> => {
    // Engines that put the traceparent on the event spare the store read.
    if ('traceparent' in event) return Promise.resolve(remoteSpanContext(event.traceparent));
    let parent = parents.get(event.runId);
    if (parent !== undefined) {
      parents.delete(event.runId);
    } else {
      parent = store.getRun(event.runId).then(
        (run) => remoteSpanContext(run?.traceparent),
        () => undefined,
      );
      if (parents.size >= CACHED_RUNS) parents.delete(parents.keys().next().value!);
    }
    parents.set(event.runId, parent);
    return parent;
  };

  const record = (event: StepFinished, parent: SpanContext | undefined): void => {
    const span = tracer.startSpan(
      `workflow.step ${event.step}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: event.at - event.durationMs,
        attributes: {
          'workflow.name': event.workflow,
          'workflow.run_id': event.runId,
          'workflow.step': event.step,
          'workflow.step.status': event.status,
          'workflow.step.attempts': event.attempts,
        },
      },
      parent === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, parent),
    );
    if (event.status === 'failed') span.setStatus({ code: SpanStatusCode.ERROR });
    span.end(event.at);
  };

  return engine.on((event) => {
    if (event.type === 'run:status') {
      if (FINAL_STATUSES.includes(event.status)) parents.delete(event.runId);
      return;
    }
    if (event.type !== 'step:finished' || !sdkInstalled()) return;
    parentOf(event)
      .then((parent) => record(event, parent))
      // A broken exporter must cost a span, never the process (an unhandled rejection would end it).
      .catch((error: unknown) => process.emitWarning(`step span not recorded: ${String(error)}`));
  });
}
