// Turns a declared workflow into a WorkflowDefinition for the engine: each step a recorded
// `ctx.step` (or `ctx.sleep`, `ctx.waitForEvent`), started as soon as the steps it waits for have
// completed, so independent steps run in parallel. Templates are parsed here, once.
import type { DependencyRegistry } from '@bulwark/core';
import {
  defineWorkflow,
  type StepContext,
  type StepOptions,
  type WorkflowContext,
  type WorkflowDefinition,
  WorkflowErrorCodes,
} from '@bulwark/workflow';
import { findCycle, TEMPLATED } from './graph.ts';
import { extractPage } from './steps/extract.ts';
import { deleteStorageFile, writeStorageFile } from './steps/file-write.ts';
import { DEFAULT_MAX_BYTES, httpRequest } from './steps/http.ts';
import {
  type Compiled,
  compileValue,
  evaluate,
  expressionsOf,
  type Scope,
  TemplateSyntaxError,
  toText,
} from './template.ts';
import type { Invocation, StepDeclaration, WorkflowDeclaration } from './types.ts';

export interface CompileOptions {
  /** Where `file.write` and `file.delete` work. */
  storageDir: string;
  /** The registry `http` steps call through (the engine's). Required when a step is `http`. */
  registry?: DependencyRegistry;
}

/** Every declared workflow, compiled; throws TypeError naming the workflow and step at fault. */
export function compileWorkflows(
  declarations: Readonly<Record<string, WorkflowDeclaration>>,
  options: CompileOptions,
): WorkflowDefinition<Record<string, unknown> | undefined, unknown>[] {
  return Object.entries(declarations).map(([name, declaration]) =>
    compileWorkflow(name, declaration, options),
  );
}

/** A compiled invocation: its kind's fields with their templates parsed. */
interface Call {
  decl: Invocation;
  fields: Record<string, Compiled>;
}

interface Plan {
  name: string;
  decl: StepDeclaration;
  call: Call | undefined;
  /** The steps that must complete first: `needs:` and the steps its templates read. */
  waits: Set<string>;
  fallback: Compiled | undefined;
  compensate: Call | false | undefined;
}

export function compileWorkflow(
  name: string,
  declaration: WorkflowDeclaration,
  options: CompileOptions,
): WorkflowDefinition<Record<string, unknown> | undefined, unknown> {
  const where = `workflow '${name}'`;
  const names = Object.keys(declaration.steps);
  if (names.length === 0) throw new TypeError(`${where}: declares no steps`);
  const plans = new Map<string, Plan>();
  for (const [stepName, decl] of Object.entries(declaration.steps)) {
    const at = `${where}, step '${stepName}'`;
    const waits = new Set(decl.needs);
    const parse = (value: unknown, field: string): Compiled => {
      try {
        const compiled = compileValue(value);
        for (const e of expressionsOf(compiled)) {
          if (e.path[0] === 'steps' && e.path[1] !== undefined) waits.add(String(e.path[1]));
        }
        return compiled;
      } catch (error) {
        if (error instanceof TemplateSyntaxError) throw new TypeError(`${at}: ${field}: ${error.message}`);
        throw error;
      }
    };
    const callOf = (call: Invocation, prefix: string): Call => {
      const fields: Record<string, Compiled> = {};
      for (const field of TEMPLATED[call.uses]) {
        const value = (call as unknown as Record<string, unknown>)[field];
        if (value !== undefined) fields[field] = parse(value, `${prefix}${field}`);
      }
      return { decl: call, fields };
    };
    const isCall = decl.uses !== 'delay' && decl.uses !== 'wait-event';
    const compensate = isCall && 'compensate' in decl ? decl.compensate : undefined;
    plans.set(stepName, {
      name: stepName,
      decl,
      call: isCall ? callOf(decl as Invocation, '') : undefined,
      waits,
      fallback:
        'fallback' in decl && decl.fallback !== undefined
          ? parse(decl.fallback.value, 'fallback.value')
          : undefined,
      compensate:
        compensate === undefined || compensate === false ? compensate : callOf(compensate, 'compensate.'),
    });
    // Refused here so that no run finds out half way: an http call, or a compensation behind a
    // dependency's pipeline, goes through the registry.
    if (options.registry === undefined) {
      if (decl.uses === 'http')
        throw new TypeError(`${at}: an http step needs the registry (CompileOptions.registry)`);
      if (compensate && 'dependency' in compensate && compensate.dependency !== undefined)
        throw new TypeError(
          `${at}: its compensate calls a dependency, which needs the registry (CompileOptions.registry)`,
        );
    }
  }
  for (const plan of plans.values()) {
    for (const wait of plan.waits) {
      if (wait === plan.name || !plans.has(wait)) {
        throw new TypeError(`${where}, step '${plan.name}': waits for '${wait}', which is not another step`);
      }
    }
  }
  const cycle = findCycle(new Map([...plans].map(([n, p]) => [n, p.waits])));
  if (cycle !== undefined) throw new TypeError(`${where}: steps wait for each other: ${cycle.join(' → ')}`);
  const output = declaration.output === undefined ? undefined : compileValue(declaration.output);
  const waited = new Set([...plans.values()].flatMap((p) => [...p.waits]));
  const finals = names.filter((n) => !waited.has(n));
  const runner = new Runner(options);

  return defineWorkflow(
    {
      name,
      version: declaration.version ?? '1',
      ...(declaration.description === undefined ? {} : { description: declaration.description }),
      ...(declaration.example === undefined ? {} : { example: declaration.example }),
      // As the timeline names them: a pause is `sleep:<step>`, an event wait `event:<event>`.
      steps: names.map((n) => {
        const d = declaration.steps[n]!;
        return d.uses === 'delay' ? `sleep:${n}` : d.uses === 'wait-event' ? `event:${d.event}` : n;
      }),
    },
    async (ctx, input) => {
      const outputs = new Map<string, unknown>();
      const run = { id: ctx.runId, workflow: ctx.workflow, version: ctx.version };
      const scope = (extra: Scope = {}): Scope => ({
        input: input ?? {},
        steps: Object.fromEntries(outputs),
        run,
        ...extra,
      });
      let failure: { error: unknown } | undefined;
      let done = 0;
      const started = new Map<string, Promise<void>>();
      const start = (stepName: string): Promise<void> => {
        let running = started.get(stepName);
        if (running === undefined) {
          const plan = plans.get(stepName)!;
          running = (async () => {
            await Promise.all([...plan.waits].map(start));
            // After a failure no new step starts; those in flight finish, then the run fails.
            if (failure !== undefined) throw failure.error;
            try {
              outputs.set(stepName, await runner.step(ctx, plan, scope));
            } catch (error) {
              failure ??= { error };
              throw error;
            }
            done++;
            if (done < plans.size) ctx.progress(Math.floor((done / plans.size) * 100), `${stepName} done`);
          })();
          started.set(stepName, running);
        }
        return running;
      };
      // Settled, not raced: a failed step waits for its siblings in flight before compensations run.
      await Promise.allSettled(names.map(start));
      if (failure !== undefined) throw failure.error;
      if (output !== undefined) return evaluate(output, scope());
      return Object.fromEntries(finals.map((n) => [n, outputs.get(n) ?? null]));
    },
  );
}

/** Runs the steps of one workflow's runs. */
class Runner {
  readonly #registry: DependencyRegistry | undefined;
  readonly #storageDir: string;

  constructor(options: CompileOptions) {
    this.#registry = options.registry;
    this.#storageDir = options.storageDir;
  }

  async step(
    ctx: WorkflowContext<Record<string, unknown> | undefined>,
    plan: Plan,
    scope: (extra?: Scope) => Scope,
  ): Promise<unknown> {
    const { decl, name } = plan;
    const fallbackOf = () =>
      plan.fallback === undefined
        ? undefined
        : (error: unknown) => evaluate(plan.fallback!, scope({ error: errorScope(error) }));
    if (decl.uses === 'delay') {
      await ctx.sleep(name, decl.forMs);
      return null;
    }
    if (decl.uses === 'wait-event') {
      try {
        return await ctx.waitForEvent(
          decl.event,
          decl.timeoutMs === undefined ? {} : { timeoutMs: decl.timeoutMs },
        );
      } catch (error) {
        const fallback = fallbackOf();
        if (fallback === undefined || (error as { code?: unknown }).code !== WorkflowErrorCodes.WAIT_TIMEOUT)
          throw error;
        // Recorded as a step of its own, so the engine marks the run degraded as for any fallback.
        return ctx.step(name, { retry: false, fallback }, () => Promise.reject(error));
      }
    }
    const call = plan.call!;
    const options: StepOptions<unknown> = {};
    if (decl.retry !== undefined) options.retry = decl.retry;
    if (decl.timeoutMs !== undefined) options.timeoutMs = decl.timeoutMs;
    if (decl.whenCircuitOpen !== undefined) options.whenCircuitOpen = decl.whenCircuitOpen;
    const fallback = fallbackOf();
    if (fallback !== undefined) options.fallback = fallback;
    // The engine runs a file step through its dependency's pipeline; an http step goes through
    // `registry.fetch`, which is that pipeline already.
    if ((decl.uses === 'file.write' || decl.uses === 'file.delete') && decl.dependency !== undefined)
      options.dependency = decl.dependency;
    const compensate = this.#compensation(plan, scope);
    if (compensate !== undefined) options.compensate = compensate;
    return ctx.step(name, options, (s) => this.#invoke(call, name, scope(), s.signal));
  }

  #compensation(
    plan: Plan,
    scope: (extra?: Scope) => Scope,
  ): ((output: unknown, s: StepContext) => Promise<unknown>) | undefined {
    const { compensate, decl } = plan;
    if (compensate === false) return undefined;
    if (compensate !== undefined) {
      return async (output, s) => {
        const call = () => this.#invoke(compensate, `compensate:${plan.name}`, scope({ output }), s.signal);
        const dependency =
          compensate.decl.uses === 'file.write' || compensate.decl.uses === 'file.delete'
            ? compensate.decl.dependency
            : undefined;
        if (dependency === undefined) return call();
        return this.#registry!.execute(dependency, `compensate:${plan.name}`, call, { signal: s.signal });
      };
    }
    // What `file.write` does by default: remove the file, if this step created it.
    if (decl.uses === 'file.write') {
      return async (output) => {
        const written = output as { path: string; created: boolean };
        if (written.created) await deleteStorageFile(this.#storageDir, written.path);
        return null;
      };
    }
    return undefined;
  }

  async #invoke(call: Call, stepName: string, scope: Scope, signal: AbortSignal): Promise<unknown> {
    const { decl, fields } = call;
    const text = (field: string) => toText(evaluate(fields[field]!, scope));
    const value = (field: string) =>
      fields[field] === undefined ? undefined : evaluate(fields[field]!, scope);
    switch (decl.uses) {
      case 'http': {
        const headers = (value('headers') ?? {}) as Record<string, unknown>;
        const body = value('body');
        return httpRequest(
          // Checked at compile time: an http call has a registry.
          this.#registry!,
          {
            dependency: decl.dependency,
            method: decl.method ?? (body === undefined ? 'GET' : 'POST'),
            url: text('url'),
            headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, toText(v)])),
            body,
            expect: decl.expect,
            maxBytes: decl.maxBytes ?? DEFAULT_MAX_BYTES,
            operation: decl.operation ?? stepName,
          },
          signal,
        );
      }
      case 'extract':
        return extractPage(text('html'), text('url'));
      case 'file.write': {
        const content = value('content');
        return writeStorageFile(
          this.#storageDir,
          text('path'),
          typeof content === 'string' ? content : `${JSON.stringify(content, null, 2)}\n`,
        );
      }
      case 'file.delete':
        return deleteStorageFile(this.#storageDir, text('path'));
      case 'transform':
        return value('value') ?? null;
    }
  }
}

/**
 * What a fallback's templates see of the failure: the messages of the error and its causes
 * (`Retries exhausted ...: fetch failed: connect ECONNREFUSED ...`), the innermost code
 * (`ECONNREFUSED` rather than the retry's wrapper), and the HTTP status if there was one.
 */
export function errorScope(error: unknown): { message: string; code: string | null; status: number | null } {
  const messages: string[] = [];
  let code: string | null = null;
  let status: number | null = null;
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current !== undefined && current !== null; depth++) {
    const e = (typeof current === 'object' ? current : {}) as Record<string, unknown>;
    const message = current instanceof Error ? current.message : String(current);
    if (message !== '' && !messages.includes(message)) messages.push(message);
    if (typeof e.code === 'string') code = e.code;
    if (status === null && typeof e.status === 'number') status = e.status;
    current = e.cause;
  }
  return { message: messages.join(': '), code, status };
}
