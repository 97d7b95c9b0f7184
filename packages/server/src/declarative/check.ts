// Load-time checks of the `workflows:` section that span fields, run on the file's data as written:
// dependencies exist and suit the step, `needs:` names real steps without a cycle, and every
// template parses and reads only what its place allows.
import type { RawIssue } from '../config/issues.ts';
import { isRecord, type Segment, suggest } from '../config/walk.ts';
import { findCycle, RUN_FIELDS, TEMPLATED } from './graph.ts';
import { type Expression, FILTER_NAMES, parseTemplate, TemplateSyntaxError } from './template.ts';
import { STEP_KINDS, type StepKind } from './types.ts';

const WORKFLOW_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
/** A step's name is a path segment of templates (`steps.fetch.body`): no dots. */
const STEP_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Where a template is, which decides the roots it may read. */
type Place = 'step' | 'fallback' | 'compensate' | 'output';

const ROOTS: Readonly<Record<Place, readonly string[]>> = {
  step: ['input', 'steps', 'run'],
  fallback: ['input', 'steps', 'run', 'error'],
  compensate: ['input', 'steps', 'run', 'output'],
  output: ['input', 'steps', 'run'],
};

interface Context {
  issues: RawIssue[];
  /** The workflow's step names. */
  steps: readonly string[];
  dependencies: Record<string, unknown>;
  groups: readonly string[];
}

export function checkWorkflows(data: Record<string, unknown>): RawIssue[] {
  const issues: RawIssue[] = [];
  if (!isRecord(data.workflows)) return issues;
  const dependencies = isRecord(data.dependencies) ? data.dependencies : {};
  const groups = isRecord(data.groups) ? Object.keys(data.groups) : [];
  for (const [name, workflow] of Object.entries(data.workflows)) {
    const at: Segment[] = ['workflows', name];
    if (!WORKFLOW_NAME.test(name)) {
      issues.push({
        path: at,
        message: "a name holds letters, digits, '_', '-' and '.', and does not start with '-' or '.'",
        atKey: true,
      });
    }
    if (!isRecord(workflow) || !isRecord(workflow.steps)) continue;
    const steps = workflow.steps;
    const names = Object.keys(steps);
    const cx: Context = { issues, steps: names, dependencies, groups };
    // step → the steps it waits for: its needs and the steps its templates read.
    const edges = new Map<string, Set<string>>();
    const events = new Map<string, string>();
    for (const [stepName, step] of Object.entries(steps)) {
      const stepAt: Segment[] = [...at, 'steps', stepName];
      if (!STEP_NAME.test(stepName)) {
        issues.push({
          path: stepAt,
          message: "a step name holds letters, digits, '_' and '-', and starts with a letter or '_'",
          atKey: true,
        });
      }
      const waits = new Set<string>();
      edges.set(stepName, waits);
      if (!isRecord(step)) continue;
      checkNeeds(cx, stepAt, stepName, step.needs, waits);
      const kind = step.uses;
      // An unknown `uses` has its own issue (with a suggestion) from the schema.
      if (!STEP_KINDS.includes(kind as StepKind)) continue;
      checkInvocation(cx, stepAt, stepName, step, 'step', waits);
      if (isRecord(step.fallback) && 'value' in step.fallback) {
        checkValue(cx, [...stepAt, 'fallback', 'value'], stepName, step.fallback.value, 'fallback', waits);
      }
      if (isRecord(step.compensate) && STEP_KINDS.includes(step.compensate.uses as StepKind)) {
        checkInvocation(cx, [...stepAt, 'compensate'], stepName, step.compensate, 'compensate', waits);
      }
      if (kind === 'wait-event' && typeof step.event === 'string') {
        const other = events.get(step.event);
        if (other !== undefined) {
          issues.push({
            path: [...stepAt, 'event'],
            message: `step '${other}' already waits for event '${step.event}'; a run waits for each event once`,
          });
        } else events.set(step.event, stepName);
      }
    }
    const cycle = findCycle(edges);
    if (cycle !== undefined) {
      issues.push({
        path: [...at, 'steps', cycle[0]!],
        message: `steps wait for each other in a cycle: ${cycle.join(' → ')} (through needs: and the steps templates read)`,
        atKey: true,
      });
    }
    if ('output' in workflow)
      checkValue(cx, [...at, 'output'], undefined, workflow.output, 'output', new Set());
  }
  return issues;
}

function checkNeeds(cx: Context, at: Segment[], self: string, needs: unknown, waits: Set<string>): void {
  const list = typeof needs === 'string' ? [needs] : Array.isArray(needs) ? needs : [];
  list.forEach((need: unknown, i: number) => {
    if (typeof need !== 'string') return;
    const path: Segment[] = typeof needs === 'string' ? [...at, 'needs'] : [...at, 'needs', i];
    if (need === self) {
      cx.issues.push({ path, message: 'a step cannot need itself' });
      return;
    }
    if (!cx.steps.includes(need)) {
      const near = suggest(need, cx.steps);
      cx.issues.push({
        path,
        message: `no step '${need}' in this workflow${near ? `; did you mean '${near}'?` : ''}`,
      });
    } else if (waits.has(need)) cx.issues.push({ path, message: `'${need}' is listed twice` });
    waits.add(need);
  });
}

function checkInvocation(
  cx: Context,
  at: Segment[],
  self: string,
  call: Record<string, unknown>,
  place: Place,
  waits: Set<string>,
): void {
  const kind = call.uses as StepKind;
  if (typeof call.dependency === 'string') checkDependency(cx, [...at, 'dependency'], kind, call.dependency);
  for (const field of TEMPLATED[kind]) {
    if (field in call) checkValue(cx, [...at, field], self, call[field], place, waits);
  }
}

function checkDependency(cx: Context, at: Segment[], kind: StepKind, name: string): void {
  const dep = cx.dependencies[name];
  if (dep === undefined) {
    if (cx.groups.includes(name)) return;
    const near = suggest(name, [...Object.keys(cx.dependencies), ...cx.groups]);
    cx.issues.push({
      path: at,
      message: `no dependency '${name}' is defined${near ? `; did you mean '${near}'?` : ''}`,
    });
    return;
  }
  const depKind = isRecord(dep) && typeof dep.kind === 'string' ? dep.kind : 'generic';
  if (kind === 'http' && depKind !== 'http') {
    cx.issues.push({
      path: at,
      message: `'${name}' is kind '${depKind}'; an http step needs a dependency of kind 'http'`,
    });
  }
}

/** Parses every string of `value` as a template and checks what each expression reads. */
function checkValue(
  cx: Context,
  at: Segment[],
  self: string | undefined,
  value: unknown,
  place: Place,
  waits: Set<string>,
): void {
  if (typeof value === 'string') {
    let expressions: Expression[];
    try {
      expressions = parseTemplate(value).parts.filter((p): p is Expression => typeof p !== 'string');
    } catch (error) {
      if (!(error instanceof TemplateSyntaxError)) throw error;
      cx.issues.push({ path: at, message: `template: ${withSuggestion(error.message)}` });
      return;
    }
    for (const e of expressions) checkExpression(cx, at, self, e, place, waits);
  } else if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) checkValue(cx, [...at, i], self, item, place, waits);
  } else if (isRecord(value)) {
    for (const [key, item] of Object.entries(value)) checkValue(cx, [...at, key], self, item, place, waits);
  }
}

function checkExpression(
  cx: Context,
  at: Segment[],
  self: string | undefined,
  e: Expression,
  place: Place,
  waits: Set<string>,
): void {
  if (e.path.length === 0) return;
  const fail = (message: string) => cx.issues.push({ path: at, message: `{{ ${e.source} }}: ${message}` });
  const [root, next] = e.path;
  const allowed = ROOTS[place];
  if (!allowed.includes(String(root))) {
    const near = suggest(String(root), allowed);
    const elsewhere =
      root === 'error'
        ? ' (error is known in a fallback only)'
        : root === 'output'
          ? ' (output is known in a compensate only)'
          : '';
    fail(
      `'${String(root)}' is not known here${elsewhere}; a template reads ${allowed.join(', ')}${near && !elsewhere ? `; did you mean '${near}'?` : ''}`,
    );
    return;
  }
  if (root === 'steps') {
    if (next === undefined) {
      fail('name a step: steps.<name>');
      return;
    }
    const step = String(next);
    if (step === self) fail('a step cannot read its own output (in a compensate, use output)');
    else if (!cx.steps.includes(step)) {
      const near = suggest(step, cx.steps);
      fail(`no step '${step}' in this workflow${near ? `; did you mean '${near}'?` : ''}`);
    } else waits.add(step);
  } else if (root === 'run') {
    if (next === undefined || !(RUN_FIELDS as readonly string[]).includes(String(next))) {
      const near = next === undefined ? undefined : suggest(String(next), RUN_FIELDS);
      fail(
        `run has ${RUN_FIELDS.join(', ')}${near ? `; did you mean 'run.${near}'?` : next === undefined ? '' : `, not '${String(next)}'`}`,
      );
    }
  }
}

function withSuggestion(message: string): string {
  const unknown = /^unknown filter '([^']*)'$/.exec(message);
  if (unknown === null) return message;
  const near = suggest(unknown[1]!, FILTER_NAMES);
  return near ? `${message}; did you mean '${near}'?` : `${message} (filters: ${FILTER_NAMES.join(', ')})`;
}
