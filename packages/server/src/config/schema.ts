// The schema of bulwark.yaml (zod 4): the file's shape, its documentation (the reference in
// docs/configuration.md is generated from the descriptions here) and the conversion of each
// section to the code's shape (durations to ms, `timeout` to `timeoutMs`).
import { DEPENDENCY_KINDS } from '@bulwark/core';
import { PRIORITIES, type Priority } from '@bulwark/workflow';
import { z } from 'zod';
import { bound, count, doc, duration, offable, rate, renamed } from './fields.ts';
import { httpSchema } from './schema-http.ts';
import { serverSchema } from './schema-server.ts';
import { storageSchema, workflowsSchema } from './schema-workflows.ts';

// ---------------------------------------------------------------------------------------------
// Policy sections

const retry = renamed(
  {
    maxAttempts: doc(count(1), 'Calls in all, the first included: `maxAttempts: 3` makes at most 3 calls.'),
    backoff: doc(
      z.enum(['exponential', 'constant', 'linear', 'decorrelated']).optional(),
      'How the delay between attempts grows (`decorrelated`: Polly v2 decorrelated jitter).',
      'exponential',
    ),
    base: doc(duration(), 'The first delay (for `constant`, every delay).'),
    max: doc(duration().optional(), 'The largest delay, jitter included.', 'base × 2^10'),
    jitter: doc(
      z.number().min(0).max(1).optional(),
      'Each delay varies by ± this fraction, at random (not for `decorrelated`).',
      '0',
    ),
    maxDuration: doc(
      duration().optional(),
      'No retry starts once this long has passed since the first attempt.',
      'no limit',
    ),
    retryAfterMax: doc(
      duration().optional(),
      'The longest `Retry-After` a failure may ask for; a longer one ends the retries.',
      '30s',
    ),
  },
  { base: 'baseMs', max: 'maxMs', maxDuration: 'maxDurationMs', retryAfterMax: 'retryAfterMaxMs' },
);

const breakerWindow = z.discriminatedUnion('kind', [
  z
    .strictObject({
      kind: doc(z.literal('consecutive'), 'Opens after this many failures in a row.'),
      failures: doc(count(1), 'Failures (or slow calls) in a row that open the circuit.', '5'),
    })
    .meta({ description: '`consecutive`: opens after `failures` failures in a row.' }),
  z
    .strictObject({
      kind: doc(z.literal('count'), 'Judges the last `size` calls.'),
      size: doc(count(1), 'Calls in the window.'),
    })
    .meta({ description: '`count`: judges the failure rate of the last `size` calls.' }),
  renamed(
    {
      kind: doc(z.literal('time'), 'Judges the calls of the last `duration`.'),
      duration: doc(duration(1), 'The length of the window (the code calls it `ms`).'),
      buckets: doc(z.number().int().min(1).max(1_000).optional(), 'Buckets the window is kept in.', '10'),
      failures: doc(
        count(1).optional(),
        'Open after this many failures inside the window, instead of judging the failure rate.',
        'off (the failure rate decides)',
      ),
    },
    { duration: 'ms' },
  ).meta({
    description: '`time`: judges the calls of the last `duration`, by failure rate or by `failures`.',
  }),
]);

const breaker = renamed(
  {
    window: doc(
      breakerWindow.optional(),
      'Which calls are judged: `consecutive`, `count` or `time`.',
      '{ kind: consecutive, failures: 5 }',
    ),
    failureRate: doc(
      rate().optional(),
      'Count and time windows: open when failures / calls is at or above this (above 0, at most 1).',
      '0.5',
    ),
    minimumCalls: doc(
      count(1).optional(),
      'Count and time windows: rates are judged only once the window holds this many calls.',
      '10',
    ),
    slowCall: doc(
      renamed(
        {
          threshold: doc(duration(), 'Calls taking at least this long are slow.'),
          rate: doc(rate(), 'Open when the share of slow calls reaches this.'),
        },
        { threshold: 'thresholdMs' },
      ).optional(),
      'Opens the circuit on slow calls as well as failures.',
      'off',
    ),
    open: doc(
      duration(1).optional(),
      'How long the circuit stays open before letting probes through.',
      '30s',
    ),
    openBackoff: doc(
      renamed(
        {
          factor: doc(
            z.number().min(1),
            'Each reopening without a close in between multiplies the open time by this.',
          ),
          max: doc(duration(1), 'The longest open time.'),
        },
        { max: 'maxMs' },
      ).optional(),
      'Longer open times while the dependency keeps failing its probes.',
      'off',
    ),
    halfOpen: doc(
      renamed(
        {
          probes: doc(count(1).optional(), 'Probe calls allowed in flight at once while half-open.', '1'),
          successes: doc(count(1).optional(), 'Successful probes needed to close.', '1'),
          retryAfter: doc(
            duration().optional(),
            'The `retryAfterMs` given to callers refused while the probes run.',
            'min(open, 1s)',
          ),
        },
        { retryAfter: 'retryAfterMs' },
      ).optional(),
      'How the circuit tests the dependency again after being open.',
      '{ probes: 1, successes: 1 }',
    ),
  },
  { open: 'openMs' },
);

const bulkhead = renamed(
  {
    maxConcurrent: doc(count(1), 'Calls allowed to run at once.'),
    maxQueue: doc(
      bound(0).optional(),
      'Calls allowed to wait for a slot, first in first out; `.inf` for no bound.',
      '0',
    ),
    queueTimeout: doc(
      duration().optional(),
      'A call waiting longer than this in the queue is rejected.',
      'no limit',
    ),
  },
  { queueTimeout: 'queueTimeoutMs' },
);

const rateLimit = renamed(
  {
    tokenBucket: doc(
      renamed(
        {
          tokens: doc(count(1), 'Permits added every `per`.'),
          per: doc(duration(1), 'The refill period.'),
          burst: doc(
            count(1).optional(),
            'Permits the bucket holds when full: the largest burst after idle time.',
            'tokens',
          ),
        },
        { per: 'perMs' },
      ).optional(),
      'Limit by a token bucket. Exactly one of `tokenBucket` and `slidingWindow`.',
    ),
    slidingWindow: doc(
      renamed(
        {
          limit: doc(count(1), 'Permits allowed in any window.'),
          window: doc(duration(1), 'The length of the window.'),
        },
        { window: 'windowMs' },
      ).optional(),
      'Limit by an exact sliding window. Exactly one of `tokenBucket` and `slidingWindow`.',
    ),
    mode: doc(
      z.enum(['reject', 'wait']).optional(),
      '`reject` fails a call over the limit at once; `wait` queues it until permits are free.',
      'reject',
    ),
    maxWait: doc(
      duration().optional(),
      'Mode `wait` only: a call that would wait longer is rejected at once.',
      'no limit',
    ),
  },
  { maxWait: 'maxWaitMs' },
);

/** The policy sections, shared by a dependency and each of its operations. */
const policyShape = {
  timeout: doc(
    offable(duration(1)).optional(),
    'Limit on each attempt; `false` for none.',
    'by kind: http 15s, database 10s, cache 1.5s, queue 5s, filesystem 5s, compute 30s, generic 10s',
  ),
  totalTimeout: doc(
    offable(duration(1)).optional(),
    'Limit on the whole call, retries and their delays included.',
    'off',
  ),
  retry: doc(
    offable(retry).optional(),
    'Retries of failed calls; `false` for none.',
    'by kind (none for cache, queue, compute, generic)',
  ),
  breaker: doc(
    offable(breaker).optional(),
    'The circuit breaker; `false` for none.',
    'by kind (http, database)',
  ),
  bulkhead: doc(
    offable(bulkhead).optional(),
    'Bounds the calls running at once; `false` for none.',
    'by kind (database, cache, queue)',
  ),
  rateLimit: doc(offable(rateLimit).optional(), 'Bounds the rate of calls; `false` for none.', 'off'),
};
const policyRenames = { timeout: 'timeoutMs', totalTimeout: 'totalTimeoutMs' };

const operation = renamed(policyShape, policyRenames);

// ---------------------------------------------------------------------------------------------
// Dependency parts

const pool = renamed(
  {
    module: doc(
      z.string().min(1),
      'The worker module (its named exports are the tasks): a path relative to the config file, an absolute path or a `file:` URL.',
    ),
    size: doc(
      count(1).optional(),
      'Worker threads, started on the first task and kept.',
      'min(4, available cores)',
    ),
    maxQueue: doc(
      bound(0).optional(),
      'Tasks that may wait for a free thread; `.inf` for no bound.',
      'size × 4',
    ),
    taskTimeout: doc(
      duration(1).optional(),
      'A task running longer is rejected and its thread terminated (and replaced).',
      'no limit',
    ),
    maxHeapMb: doc(count(8).optional(), 'Heap limit of each worker thread, in MB.', "Node's default"),
  },
  { taskTimeout: 'taskTimeoutMs' },
);

const health = renamed(
  {
    mode: doc(
      z.enum(['passive', 'active']).optional(),
      '`passive` judges the breaker state and the recent error rate; `active` runs a probe (for `http`: GET `path`).',
      'active when `path` is given, else passive',
    ),
    path: doc(
      z.string().min(1).optional(),
      '`http` dependencies: the path to GET, relative to `http.baseUrl`; a 2xx passes.',
    ),
    interval: doc(
      duration().optional(),
      'How long a result is reused before the check runs again.',
      '1s passive, 30s active',
    ),
    timeout: doc(duration(1).optional(), 'A check still running after this long fails.', '5s'),
    errorRate: doc(
      rate().optional(),
      'Passive: a recent failure rate at or above this fails the dependency.',
      '0.5',
    ),
    minimumCalls: doc(
      count(1).optional(),
      'Passive: recent calls needed before the error rate is judged.',
      '5',
    ),
  },
  { interval: 'intervalMs', timeout: 'timeoutMs' },
);

const dependency = renamed(
  {
    kind: doc(
      z.enum(DEPENDENCY_KINDS as [string, ...string[]]).optional(),
      `What sort of thing the dependency is; each kind brings its own default policies: ${DEPENDENCY_KINDS.join(', ')}.`,
      'generic',
    ),
    critical: doc(
      z.boolean().optional(),
      'A critical dependency that fails makes the service `fail` its health check; others make it `warn`.',
      'false',
    ),
    description: doc(z.string().optional(), 'Shown in the dashboard and in health output.'),
    ...policyShape,
    operations: doc(
      z.record(z.string(), operation).optional(),
      'Settings for named operations, each with its own pipeline. Sections an operation does not set are the dependency’s (and stateful ones are then shared).',
    ),
    http: doc(httpSchema.optional(), 'HTTP client settings, for `registry.fetch` (kind `http` only).'),
    pool: doc(
      pool.optional(),
      'The worker pool of a `compute` dependency (required for kind `compute`, for it only).',
    ),
    health: doc(health.optional(), 'How the health of this dependency is checked.', 'passive'),
  },
  policyRenames,
);

// ---------------------------------------------------------------------------------------------
// Groups and the file

const provider = z.union([
  z.string().min(1),
  z.strictObject({
    dependency: doc(z.string().min(1), 'The dependency.'),
    weight: doc(
      z.number().gt(0).optional(),
      '`weighted` groups: the relative chance of being tried first.',
      '1',
    ),
  }),
]);

const group = z.strictObject({
  strategy: doc(
    z.enum(['ordered', 'weighted']).optional(),
    '`ordered` tries providers in the order given; `weighted` picks the first at random by weight.',
    'ordered',
  ),
  providers: doc(
    z.array(provider).min(1),
    'The dependencies to try: names, or `{ dependency, weight }`. Providers whose breaker is open are skipped.',
  ),
  fallback: doc(
    z.strictObject({ value: doc(z.unknown(), 'Any YAML value (`null` included).') }).optional(),
    'What the group returns, marked degraded, when every provider failed or was skipped (in code it may also be a function of the error).',
    'none: the last error is thrown',
  ),
});

// ---------------------------------------------------------------------------------------------
// Schedules (checked further by the workflow package's own `checkSchedule`, in checks.ts)

const schedule = z.strictObject({
  cron: doc(
    z.string(),
    'Five fields (minute hour day-of-month month day-of-week), six with seconds first, or a macro such as `@daily`.',
  ),
  timezone: doc(
    z.string().optional(),
    'The IANA time zone the expression is read in, daylight saving included (`Europe/Paris`).',
    'UTC',
  ),
  workflow: doc(
    z.string(),
    'The workflow each tick starts, its latest version: one declared under `workflows:`, or registered in code.',
  ),
  input: doc(z.unknown().optional(), "Each run's input: any YAML value.", 'null'),
  priority: doc(
    z.enum(Object.keys(PRIORITIES) as [Priority, ...Priority[]]).optional(),
    'The priority of each run.',
    'normal',
  ),
  catchUp: doc(
    z
      .union([
        z.enum(['none', 'latest']),
        z.strictObject({
          maxTicks: doc(
            z.number().int().min(1).max(1_000),
            'How many of the missed ticks to start, the most recent ones, oldest first.',
          ),
        }),
      ])
      .optional(),
    'Ticks missed while no server ran, started at start: `none`, `latest`, or `{ maxTicks: n }` (the n most recent since the last tick that ran, up to 1,000).',
    'latest',
  ),
});

export const configSchema = z
  .strictObject({
    version: doc(z.literal(1).optional(), 'The version of this file format.', '1'),
    dependencies: doc(z.record(z.string(), dependency).optional(), 'The dependencies, by name.', '{}'),
    groups: doc(z.record(z.string(), group).optional(), 'Failover groups, by name.', '{}'),
    server: doc(
      serverSchema.optional(),
      'The server `bulwark start` runs: address, data directory, store and limits.',
      'loopback on 8080, SQLite in ./.bulwark',
    ),
    workflows: doc(
      workflowsSchema(retry).optional(),
      'Declarative workflows, by name: built-in steps (`http`, `extract`, `file.write`, `transform`, ...) with `{{ }}` templates. See docs/declarative-workflows.md.',
      '{}',
    ),
    storage: doc(
      storageSchema.optional(),
      'Where declarative workflows read and write files.',
      '{ dir: <server.dataDir>/files }',
    ),
    schedules: doc(
      z.record(z.string(), schedule).optional(),
      'Cron schedules, by name: each tick starts one run of a workflow, however many servers run the file. See docs/workflows.md#schedules.',
      '{}',
    ),
  })
  .transform(({ dependencies, groups, server, workflows, storage, schedules }) => ({
    dependencies: dependencies ?? {},
    groups: groups ?? {},
    server: server ?? {},
    workflows: workflows ?? {},
    storage: storage ?? {},
    schedules: schedules ?? {},
  }));
