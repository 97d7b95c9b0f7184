// What an engine tells its listeners (metrics, live streams): a run's status as this engine
// changed it, and each step outcome it recorded, each after the store has made it durable.
import type { RunStatus } from '../store/types.ts';

export type EngineEvent =
  | { type: 'run:status'; runId: string; workflow: string; status: RunStatus; at: number }
  | {
      type: 'step:finished';
      runId: string;
      workflow: string;
      step: string;
      status: 'completed' | 'failed';
      attempts: number;
      durationMs: number;
      at: number;
    };

export type EngineListener = (event: EngineEvent) => void;

/**
 * The listeners of one engine. `listening` lets a caller skip building an event nobody hears;
 * a listener that throws is reported as a warning and the others still hear the event.
 */
export class EngineEvents {
  readonly #listeners = new Set<EngineListener>();

  get listening(): boolean {
    return this.#listeners.size > 0;
  }

  on(listener: EngineListener): () => void {
    if (typeof listener !== 'function') throw new TypeError('WorkflowEngine.on: expected a function');
    // Wrapped, so that one function added twice is two subscriptions, each with its own disposer.
    const entry: EngineListener = (event) => listener(event);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  emit(event: EngineEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        process.emitWarning(
          `A workflow engine listener threw on ${event.type}: ${(error as Error)?.message ?? String(error)}`,
          'BulwarkWorkflowWarning',
        );
      }
    }
  }
}
