// The `workflows` and `storage` sections of bulwark.yaml: declarative workflows made of built-in
// steps, and the directory their files go to. Cross-field checks (dependencies, needs, templates)
// are in declarative/check.ts; the compiler is declarative/compile.ts.

import type { Json } from '@bulwark/workflow';
import { z } from 'zod';
import type { StepDeclaration, StorageSettings, WorkflowDeclaration } from '../declarative/types.ts';
import { doc, duration, renamed, size } from './fields.ts';

const template = (description: string) => doc(z.string().min(1), `${description} A template.`);

// Made a list by the workflow's transform: a transform here would hide `.optional()` from the reference.
const needs = doc(
  z.union([z.string().min(1), z.array(z.string().min(1))]).optional(),
  'Steps that must complete before this one starts, on top of the steps its templates read. Steps with nothing between them run in parallel.',
  '[]',
);

const description = doc(z.string().optional(), 'What the step does, for people.');

const http = {
  uses: doc(z.literal('http'), 'An HTTP request through a dependency: its pipeline and its client.'),
  dependency: doc(z.string().min(1), 'The `http` dependency (or group) that makes the request.'),
  method: doc(
    z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']).optional(),
    'The HTTP method.',
    'GET, or POST with a body',
  ),
  url: template('Relative to the dependency’s `http.baseUrl`, or absolute.'),
  headers: doc(z.record(z.string(), z.string()).optional(), 'Request headers; values are templates.', '{}'),
  body: doc(z.unknown().optional(), 'Sent as JSON; strings inside are templates.', 'none'),
  expect: doc(
    z.array(z.number().int().min(100).max(599)).min(1).optional(),
    'Statuses that count as success; any other fails the step (400 and above as the dependency reports them).',
    'any 2xx',
  ),
  maxBytes: doc(size().optional(), 'The largest response body read; a longer one fails the step.', '5MiB'),
  operation: doc(
    z.string().min(1).optional(),
    'The operation named in the dependency’s statistics.',
    'the step’s name',
  ),
};

const extract = {
  uses: doc(z.literal('extract'), 'HTML to `{ title, text, markdown, links }`.'),
  html: template('The HTML, e.g. `{{ steps.fetch.body }}`.'),
  url: template('The page’s address: relative links are made absolute against it.'),
};

const fileWrite = {
  uses: doc(
    z.literal('file.write'),
    'Writes a file in the storage directory, atomically: `{ path, bytes, sha256, created }`.',
  ),
  path: template('Relative to `storage.dir`; a path that leaves it is refused.'),
  content: doc(z.unknown(), 'Text, or any value (written as JSON). Strings inside are templates.'),
  dependency: doc(
    z.string().min(1).optional(),
    'A dependency whose pipeline protects the write (kind `filesystem`, most often).',
    'none',
  ),
};

const fileDelete = {
  uses: doc(z.literal('file.delete'), 'Removes a file in the storage directory: `{ path, deleted }`.'),
  path: template('Relative to `storage.dir`.'),
  dependency: doc(z.string().min(1).optional(), 'A dependency whose pipeline protects the removal.', 'none'),
};

const transform = {
  uses: doc(z.literal('transform'), 'Builds a value from templates: its output is `value`, evaluated.'),
  value: doc(
    z.unknown(),
    'Any value; strings inside are templates, and a string that is one `{{ }}` keeps the type of what it names.',
  ),
};

const invocations = [http, extract, fileWrite, fileDelete, transform];

/** The description of a step kind, which its `uses` field carries. */
function kindDescription(shape: { uses: z.ZodType }): string {
  return (shape.uses.meta() as { description?: string } | undefined)?.description ?? '';
}

const fallback = doc(
  z
    .strictObject({
      value: doc(z.unknown(), 'Any value; strings inside are templates, `error` among their roots.'),
    })
    .optional(),
  'When the step fails for good: this output instead, and the run ends `degraded`. Not used while the dependency’s circuit is open unless `whenCircuitOpen: fail` (by default the step waits for it).',
  'none: the step fails',
);

const compensate = doc(
  z
    .union([
      z.literal(false),
      z.discriminatedUnion(
        'uses',
        invocations.map((shape) =>
          z.strictObject(shape).meta({ description: kindDescription(shape) }),
        ) as unknown as [z.ZodObject, ...z.ZodObject[]],
      ),
    ])
    .optional(),
  'A built-in step that undoes this one when a later step fails (compensations run in reverse order); `output` is this step’s output in its templates. `false` for none.',
  '`file.write`: remove the file if the step created it; others: none',
);

/** The settings of a step that runs at once, given the shared retry section. */
function protectedShape(retry: z.ZodType) {
  return {
    retry: doc(
      z.union([z.literal(false), retry]).optional(),
      'The step’s own retries of transient failures, on top of the dependency’s; `false` for none.',
      '{ maxAttempts: 3, base: 1s, max: 60s, jitter: 0.2 }',
    ),
    timeout: doc(duration(1).optional(), 'Limit on each attempt of the step.', 'none'),
    whenCircuitOpen: doc(
      z.enum(['park', 'fail']).optional(),
      'When the dependency’s circuit refuses the step (open, or isolated by an operator): `park` waits for it, spending no attempt; `fail` fails the step at once (its `fallback` answers; the step’s `retry` does not retry it).',
      'park',
    ),
    fallback,
    compensate,
  };
}

function stepSchema(retry: z.ZodType) {
  // Each member carries its kind's description, which the reference shows for the member.
  const member = (shape: { uses: z.ZodType } & z.core.$ZodLooseShape, renames: Record<string, string>) =>
    renamed(shape, renames).meta({ description: kindDescription(shape) });
  const common = { description, needs, ...protectedShape(retry) };
  const members = [
    ...invocations.map((shape) => member({ ...shape, ...common }, { timeout: 'timeoutMs' })),
    member(
      {
        uses: doc(z.literal('delay'), 'A durable pause: the run gives its worker back meanwhile.'),
        for: doc(duration(), 'How long to wait.'),
        description,
        needs,
      },
      { for: 'forMs' },
    ),
    member(
      {
        uses: doc(
          z.literal('wait-event'),
          'Waits durably for an event sent to the run (`POST /api/runs/{id}/events` with `{ name, payload }`); its output is the payload.',
        ),
        event: doc(
          z
            .string()
            .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'an event name holds letters, digits, _, - and .'),
          'The event’s name.',
        ),
        timeout: doc(
          duration(1).optional(),
          'Fail (or use `fallback`) when no event came in this long.',
          'no limit',
        ),
        description,
        needs,
        fallback,
      },
      { timeout: 'timeoutMs' },
    ),
  ];
  return z.discriminatedUnion('uses', members as unknown as [z.ZodObject, ...z.ZodObject[]]);
}

/** Refuses what JSON cannot carry (YAML's `.nan` and `.inf`, a timestamp), where it is. */
function plainJson(value: unknown, ctx: z.RefinementCtx): void {
  const visit = (v: unknown, path: (string | number)[]): void => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number' && Number.isFinite(v)) return;
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        visit(item, [...path, i]);
      });
      return;
    }
    if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      for (const [key, item] of Object.entries(v)) visit(item, [...path, key]);
      return;
    }
    ctx.addIssue({ code: 'custom', message: `must be a JSON value, got ${String(v)}`, path });
  };
  visit(value, []);
}

/** The `workflows:` section, built on the retry section the dependencies use. */
export function workflowsSchema(retry: z.ZodType) {
  const workflow = z
    .strictObject({
      description: doc(z.string().optional(), 'What the workflow does, shown in the API and the dashboard.'),
      version: doc(
        z.union([z.string().min(1), z.number()]).optional(),
        'The version recorded with each run.',
        '1',
      ),
      steps: doc(
        z.record(z.string(), stepSchema(retry)),
        'The steps by name (letters, digits, `_` and `-`), in the order written; `uses` picks the built-in step.',
      ),
      output: doc(
        z.unknown().optional(),
        'The run’s output; strings inside are templates.',
        'the outputs of the steps no other step needs, by name',
      ),
      example: doc(
        z.unknown().superRefine(plainJson).optional(),
        'An input a run can start with (any value JSON can carry; not a template), shown in the API; the dashboard prefills its start form with it.',
        'none: the form starts with `{}`',
      ),
    })
    .transform((w): WorkflowDeclaration => {
      const steps: Record<string, StepDeclaration> = {};
      for (const [name, step] of Object.entries(w.steps as Record<string, { needs?: string | string[] }>)) {
        const needs =
          step.needs === undefined ? [] : typeof step.needs === 'string' ? [step.needs] : step.needs;
        steps[name] = { ...step, needs } as StepDeclaration;
      }
      const out: WorkflowDeclaration = { steps };
      if (w.description !== undefined) out.description = w.description;
      if (w.version !== undefined) out.version = String(w.version);
      if (w.output !== undefined) out.output = w.output;
      // Checked by `plainJson` above.
      if (w.example !== undefined) out.example = w.example as Json;
      return out;
    });
  return z.record(z.string(), workflow);
}

export const storageSchema = z
  .strictObject({
    dir: doc(
      z.string().min(1).optional(),
      'Where `file.write` and `file.delete` work; relative to the file. Steps cannot reach outside it.',
      '<server.dataDir>/files',
    ),
  })
  .transform((s): StorageSettings => (s.dir === undefined ? {} : { dir: s.dir }));
