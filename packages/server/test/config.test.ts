// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${NAME}` is the config file's own syntax, written literally here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BulwarkError, DependencyRegistry, ErrorCodes } from '@bulwark/core';
import { type BulwarkConfig, ConfigError, type ConfigIssue, loadConfig, parseConfig } from '@bulwark/server';
import { configReference, withReference } from '../src/config/reference.ts';
import { normalizeServerSettings } from '../src/http/settings.ts';

const fixtures = join(import.meta.dirname, 'fixtures');
const repoRoot = join(import.meta.dirname, '..', '..', '..');

/** Runs `parse` and returns the ConfigError's issues; any other outcome fails the test. */
function issuesOf(parse: () => unknown): readonly ConfigIssue[] {
  try {
    parse();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.ok(error instanceof BulwarkError);
    assert.equal(error.code, ErrorCodes.CONFIG_INVALID);
    return error.issues;
  }
  assert.fail('expected a ConfigError, the configuration was accepted');
}

async function fileIssues(file: string, env: Record<string, string> = {}): Promise<readonly ConfigIssue[]> {
  try {
    await loadConfig(file, { env });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.code, ErrorCodes.CONFIG_INVALID);
    return error.issues;
  }
  assert.fail(`expected ${file} to be rejected`);
}

describe('loadConfig: a valid file', () => {
  test('a petstore-like file becomes exactly the registry options, durations in ms', async () => {
    const config = await loadConfig(join(fixtures, 'petstore.yaml'), {
      env: { PAYMENT_TOKEN: 'tok-123', OPENAI_KEY: 'abc' },
    });
    const expected: BulwarkConfig = {
      dependencies: {
        payment_gateway: {
          kind: 'http',
          critical: true,
          description: 'Card payments',
          timeoutMs: 15_000,
          totalTimeoutMs: 60_000,
          retry: { maxAttempts: 3, baseMs: 200, maxMs: 2_000, jitter: 0.25, retryAfterMaxMs: 10_000 },
          breaker: {
            window: { kind: 'time', ms: 30_000, failures: 5 },
            openMs: 60_000,
            openBackoff: { factor: 2, maxMs: 600_000 },
            halfOpen: { probes: 3, successes: 3 },
          },
          http: {
            baseUrl: 'https://payments.example.com',
            headers: { 'x-client': 'petstore' },
            auth: { type: 'bearer', token: 'tok-123' },
            connectTimeoutMs: 2_000,
          },
          operations: { refund: { timeoutMs: 30_000, retry: false } },
          health: { path: '/health', intervalMs: 10_000, timeoutMs: 1_500 },
        },
        petstore_database: {
          kind: 'database',
          critical: true,
          bulkhead: { maxConcurrent: 10, maxQueue: 0, queueTimeoutMs: 500 },
        },
        cache: { kind: 'cache', timeoutMs: 250, breaker: false },
        thumbnails: {
          kind: 'compute',
          pool: {
            module: join(fixtures, 'workers', 'thumbnails.js'),
            size: 2,
            maxQueue: Number.POSITIVE_INFINITY,
            taskTimeoutMs: 5_000,
          },
        },
        anthropic: {
          kind: 'http',
          rateLimit: { tokenBucket: { tokens: 10, perMs: 1_000 }, mode: 'wait', maxWaitMs: 2_000 },
        },
        openai: {
          kind: 'http',
          breaker: { window: { kind: 'count', size: 20 }, failureRate: 0.5, minimumCalls: 5 },
          http: { auth: { type: 'api-key', header: 'x-api-key', value: 'key-abc' } },
        },
      },
      groups: {
        ai: {
          strategy: 'weighted',
          providers: ['anthropic', { dependency: 'openai', weight: 2 }],
          fallback: { value: null },
        },
      },
    };
    assert.deepEqual(config, expected);
  });

  test('an empty file configures nothing', () => {
    assert.deepEqual(parseConfig('# nothing yet\n', { env: {} }), { dependencies: {}, groups: {} });
  });

  test('durations take ms, s, m and h, fractions included, and plain numbers as ms', () => {
    const config = parseConfig(
      'dependencies:\n  a: { timeout: 200ms, totalTimeout: 1.5s }\n  b: { timeout: 2m, totalTimeout: 1h }\n  c: { timeout: 750 }\n',
      { env: {} },
    );
    assert.deepEqual(config.dependencies, {
      a: { timeoutMs: 200, totalTimeoutMs: 1_500 },
      b: { timeoutMs: 120_000, totalTimeoutMs: 3_600_000 },
      c: { timeoutMs: 750 },
    });
  });

  test('false turns a section off, on a dependency and on an operation', () => {
    const config = parseConfig(
      'dependencies:\n  a:\n    retry: false\n    timeout: false\n    operations: { get: { breaker: false } }\n',
      { env: {} },
    );
    assert.deepEqual(config.dependencies.a, {
      retry: false,
      timeoutMs: false,
      operations: { get: { breaker: false } },
    });
  });

  test('a relative pool.module is resolved against the directory given, absolute ones are kept', () => {
    const text =
      'dependencies:\n  a: { kind: compute, pool: { module: ./w.js } }\n  b: { kind: compute, pool: { module: /opt/w.js } }\n';
    const config = parseConfig(text, { env: {}, baseDir: '/srv/app' });
    assert.equal(config.dependencies.a?.pool?.module, '/srv/app/w.js');
    assert.equal(config.dependencies.b?.pool?.module, '/opt/w.js');
  });
});

// ---------------------------------------------------------------------------------------------
// The corpus of broken files: each must give one precise, helpful issue.

interface Broken {
  path: string;
  at: `${number}:${number}`;
  says: string;
  env?: Record<string, string>;
}

const BROKEN: Record<string, Broken> = {
  'syntax-error.yaml': {
    path: 'dependencies.db.timeout[0]',
    at: '5:1',
    says: 'YAML syntax error: flow sequence',
  },
  'duplicate-key.yaml': { path: 'dependencies.db.timeout', at: '5:5', says: "duplicate key 'timeout'" },
  'unknown-key-top.yaml': {
    path: 'dependences',
    at: '1:1',
    says: "unknown key; did you mean 'dependencies'?",
  },
  'unknown-key-dependency.yaml': {
    path: 'dependencies.db.timeot',
    at: '4:5',
    says: "did you mean 'timeout'?",
  },
  'unknown-key-retry.yaml': {
    path: 'dependencies.payment_gateway.retry.maxAttemps',
    at: '4:14',
    says: "unknown key; did you mean 'maxAttempts'?",
  },
  'unknown-key-deep.yaml': {
    path: 'dependencies.db.breaker.halfOpen.probs',
    at: '6:19',
    says: "did you mean 'probes'?",
  },
  'unknown-key-operation.yaml': {
    path: 'dependencies.api.operations.refund.retry.jiter',
    at: '5:52',
    says: "did you mean 'jitter'?",
  },
  'wrong-type.yaml': {
    path: 'dependencies.db.critical',
    at: '4:15',
    says: 'expected true or false, got "yes please"',
  },
  'bad-duration.yaml': {
    path: 'dependencies.api.timeout',
    at: '4:14',
    says: 'expected a duration like 200ms, 1.5s or 2m, got "fast"',
  },
  'negative-number.yaml': {
    path: 'dependencies.api.retry.maxAttempts',
    at: '4:27',
    says: 'must be at least 1, got -1',
  },
  'negative-duration.yaml': {
    path: 'dependencies.api.bulkhead.queueTimeout',
    at: '4:49',
    says: 'must not be negative, got -5',
  },
  'rate-above-one.yaml': {
    path: 'dependencies.api.breaker.failureRate',
    at: '4:29',
    says: 'must be at most 1, got 1.5',
  },
  'unknown-kind.yaml': {
    path: 'dependencies.api.kind',
    at: '3:11',
    says: `got "htttp"; did you mean 'http'?`,
  },
  'group-missing-dependency.yaml': {
    path: 'groups.ai.providers[1]',
    at: '6:28',
    says: "no dependency 'opnai' is defined; did you mean 'openai'?",
  },
  'missing-env-var.yaml': {
    path: 'dependencies.api.http.auth.token',
    at: '6:36',
    says: 'environment variable API_TOKEN is not set',
  },
  'compute-without-pool.yaml': { path: 'dependencies.thumbnails.pool', at: '3:5', says: 'pool.module' },
  'bad-auth-type.yaml': {
    path: 'dependencies.api.http.auth.type',
    at: '5:21',
    says: `expected one of 'bearer', 'api-key', 'basic', 'oauth2', got "jwt"`,
  },
  'breaker-window-typo.yaml': {
    path: 'dependencies.api.breaker.window.kind',
    at: '5:23',
    says: "did you mean 'consecutive'?",
  },
  'missing-required.yaml': { path: 'dependencies.api.retry.base', at: '4:12', says: 'is required' },
  'ratelimit-maxwait-without-wait.yaml': {
    path: 'dependencies.api.rateLimit.maxWait',
    at: '4:55',
    says: "applies to mode 'wait' only",
  },
  'dependencies-as-list.yaml': { path: 'dependencies', at: '2:3', says: 'expected a map, got a list' },
  'bad-url.yaml': {
    path: 'dependencies.api.http.baseUrl',
    at: '4:22',
    says: 'expected an http: or https: URL',
  },
  'empty-providers.yaml': { path: 'groups.ai.providers', at: '2:20', says: 'must have at least 1 entry' },
};

describe('loadConfig: the corpus of broken files', () => {
  for (const [name, expected] of Object.entries(BROKEN)) {
    test(`${name}: ${expected.path} at ${expected.at}`, async () => {
      const file = join(fixtures, 'broken', name);
      const issues = await fileIssues(file, expected.env);
      assert.equal(issues.length, 1, JSON.stringify(issues, null, 2));
      const [issue] = issues;
      assert.equal(issue?.path, expected.path);
      assert.equal(`${issue?.line}:${issue?.column}`, expected.at);
      assert.equal(issue?.source, file);
      assert.ok(issue?.message.includes(expected.says), `"${issue?.message}" should say "${expected.says}"`);
    });
  }

  test('every broken file is in the table', async () => {
    const { readdirSync } = await import('node:fs');
    assert.deepEqual(readdirSync(join(fixtures, 'broken')).sort(), Object.keys(BROKEN).sort());
  });

  test('the message lists every issue as file:line:col  path: message', () => {
    const text = 'dependencies:\n  api:\n    kind: htp\n    retry: { maxAttemps: 3, base: 1s }\n';
    try {
      parseConfig(text, { file: 'bulwark.yaml', env: {} });
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      const lines = error.message.split('\n');
      assert.equal(lines[0], 'Invalid configuration in bulwark.yaml (3 issues):');
      assert.ok(
        lines.includes(
          "bulwark.yaml:3:11  dependencies.api.kind: expected one of 'http', 'database', 'cache', 'queue', 'filesystem', 'compute', 'generic', got \"htp\"; did you mean 'http'?",
        ),
      );
      assert.ok(lines.includes('bulwark.yaml:4:12  dependencies.api.retry.maxAttempts: is required'));
      assert.ok(
        lines.includes(
          "bulwark.yaml:4:14  dependencies.api.retry.maxAttemps: unknown key; did you mean 'maxAttempts'?",
        ),
      );
    }
  });

  test('every issue of a file is reported, in the order of the file', () => {
    const text = [
      'dependencies:',
      '  a: { kind: http, timeout: soon }',
      '  b: { kind: databse }',
      '  c: { bulkhead: { maxConcurrent: 0 } }',
      'groups:',
      '  g: { providers: [a, z] }',
    ].join('\n');
    const issues = issuesOf(() => parseConfig(text, { env: {} }));
    assert.deepEqual(
      issues.map((i) => [i.path, i.line]),
      [
        ['dependencies.a.timeout', 2],
        ['dependencies.b.kind', 3],
        ['dependencies.c.bulkhead.maxConcurrent', 4],
        ['groups.g.providers[1]', 6],
      ],
    );
  });

  test('schedules: each wrong field is an issue at its line, named by its path; a good one parses', () => {
    const text = [
      'schedules:',
      '  nightly: { cron: "0 2 * * *", timezone: Europe/Paris, workflow: report, input: { full: true } }',
      '  broken:',
      '    cron: every night',
      '    workflow: report',
      '  lost: { cron: "0 * * * *", timezone: Mars/Olympus, workflow: report }',
      '  eager: { cron: "*/5 * * * *", workflow: report, catchUp: { maxTicks: 5000 } }',
      '  loud: { cron: "@daily", workflow: report, priority: mega }',
      '  "bad name": { cron: "@daily", workflow: report }',
      '  typo: { cron: "@daily", workflow: report, catchup: none }',
    ].join('\n');
    const issues = issuesOf(() => parseConfig(text, { env: {} }));
    assert.deepEqual(
      issues.map((i) => [i.path, i.line]),
      [
        ['schedules.broken.cron', 4],
        ['schedules.lost.timezone', 6],
        ['schedules.eager.catchUp.maxTicks', 7],
        ['schedules.loud.priority', 8],
        ['schedules.bad name', 9],
        ['schedules.typo.catchup', 10],
      ],
    );
    assert.match(issues[0]!.message, /"every night" is not a usable cron expression/);
    assert.match(issues[1]!.message, /expected an IANA time zone/);
    assert.match(issues[2]!.message, /must be at most 1000, got 5000/);
    assert.match(issues[5]!.message, /did you mean 'catchUp'/);

    const config = parseConfig(
      text
        .split('\n')
        .slice(0, 3)
        .join('\n')
        .replace(/\n {2}broken:$/, ''),
      {
        env: {},
      },
    );
    assert.deepEqual(config.schedules, {
      nightly: { cron: '0 2 * * *', timezone: 'Europe/Paris', workflow: 'report', input: { full: true } },
    });
    // Not a key of the registry's configuration: `new DependencyRegistry(config)` still takes it.
    assert.equal(Object.keys(config).includes('schedules'), false);
  });

  test('a missing file is a ConfigError naming the file', async () => {
    const file = join(fixtures, 'no-such-file.yaml');
    const issues = await fileIssues(file);
    assert.equal(issues[0]?.source, file);
    assert.match(issues[0]?.message ?? '', /file not found/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('environment overrides', () => {
  const base =
    'dependencies:\n  payment_gateway:\n    kind: http\n    timeout: 15s\n    retry: { maxAttempts: 3, base: 200ms }\n';

  test('BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__TIMEOUT sets that value, read as a duration', () => {
    const config = parseConfig(base, { env: { BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__TIMEOUT: '20s' } });
    assert.equal(config.dependencies.payment_gateway?.timeoutMs, 20_000);
  });

  test('segments match camelCase keys without regard to case; values are YAML scalars or flow maps', () => {
    const config = parseConfig(base, {
      env: {
        BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__RETRY__MAXATTEMPTS: '5',
        BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__CRITICAL: 'true',
        BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__BULKHEAD: '{ maxConcurrent: 2 }',
      },
    });
    assert.deepEqual(config.dependencies.payment_gateway, {
      kind: 'http',
      timeoutMs: 15_000,
      retry: { maxAttempts: 5, baseMs: 200 },
      critical: true,
      bulkhead: { maxConcurrent: 2 },
    });
  });

  test('an override may add a dependency, whose name is lower-cased', () => {
    const config = parseConfig(base, { env: { BULWARK_DEPENDENCIES__SEARCH__KIND: 'http' } });
    assert.deepEqual(config.dependencies.search, { kind: 'http' });
  });

  test('variables without BULWARK_ or without __ are not overrides', () => {
    const config = parseConfig(base, {
      env: { BULWARK_TIMEOUT: 'x', DEPENDENCIES__PAYMENT_GATEWAY__TIMEOUT: 'x' },
    });
    assert.equal(config.dependencies.payment_gateway?.timeoutMs, 15_000);
  });

  test('an issue in an overridden value names the variable instead of a line', () => {
    const issues = issuesOf(() =>
      parseConfig(base, {
        file: 'bulwark.yaml',
        env: {
          BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__TIMEOUT: 'soon',
          BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__RETRY__MAXATEMPTS: '2',
        },
      }),
    );
    assert.deepEqual(issues, [
      {
        path: 'dependencies.payment_gateway.retry.maxatempts',
        source: 'env BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__RETRY__MAXATEMPTS',
        message: "unknown key; did you mean 'maxAttempts'?",
      },
      {
        path: 'dependencies.payment_gateway.timeout',
        source: 'env BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__TIMEOUT',
        message: 'expected a duration like 200ms, 1.5s or 2m, got "soon"',
      },
    ]);
  });

  test('an override that is not valid YAML is an issue naming the variable', () => {
    const issues = issuesOf(() =>
      parseConfig(base, { env: { BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__RETRY: '{ maxAttempts: [' } }),
    );
    assert.equal(issues.length, 1);
    assert.equal(issues[0]?.source, 'env BULWARK_DEPENDENCIES__PAYMENT_GATEWAY__RETRY');
    assert.match(issues[0]?.message ?? '', /not a valid YAML value/);
  });
});

describe('${NAME} interpolation and secrets', () => {
  test('references are resolved in string values; $${ writes a literal ${', () => {
    const text =
      'dependencies:\n  api:\n    kind: http\n    description: "costs $${PRICE} at ${HOST}"\n    http: { baseUrl: "https://${HOST}/v1" }\n';
    const config = parseConfig(text, { env: { HOST: 'api.example.com' } });
    assert.equal(config.dependencies.api?.description, 'costs ${PRICE} at api.example.com');
    assert.equal(config.dependencies.api?.http?.baseUrl, 'https://api.example.com/v1');
  });

  test('a resolved secret never appears in a message: the issue shows the ${NAME} reference', () => {
    const secret = 'hunter2-very-secret';
    const text =
      'dependencies:\n  api:\n    kind: http\n    timeout: "${API_TIMEOUT}"\n    http: { baseUrl: "${API_URL}", auth: { type: bearer, token: "${TOKEN}" } }\n';
    try {
      parseConfig(text, { env: { API_TIMEOUT: secret, API_URL: `ftp://${secret}`, TOKEN: `${secret}\n` } });
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      const everything = `${error.message}\n${JSON.stringify(error.issues)}`;
      assert.ok(!everything.includes(secret), everything);
      assert.deepEqual(
        error.issues.map((i) => [i.path, i.message]),
        [
          ['dependencies.api.timeout', 'expected a duration like 200ms, 1.5s or 2m, got "${API_TIMEOUT}"'],
          ['dependencies.api.http.baseUrl', 'expected an http: or https: URL, got "ftp:"'],
          ['dependencies.api.http.auth.token', 'must not contain CR, LF or NUL'],
        ],
      );
    }
  });

  test('an unterminated or malformed reference is an issue at its line', () => {
    const issues = issuesOf(() =>
      parseConfig('dependencies:\n  a: { description: "${OOPS" }\n  b: { description: "${1X}" }\n', {
        env: {},
      }),
    );
    assert.deepEqual(
      issues.map((i) => [i.path, i.line]),
      [
        ['dependencies.a.description', 2],
        ['dependencies.b.description', 3],
      ],
    );
  });
});

describe('the server section', () => {
  test('converts to the settings input: sizes in bytes, durations in ms, dataDir against the file', () => {
    const config = parseConfig(
      `server:
  host: 127.0.0.1
  port: 9090
  dataDir: data
  database: "postgres://bulwark:\${PG_PASSWORD}@db/bulwark"
  bodyLimit: 512KiB
  cors: { origins: [https://ops.example.com] }
  rateLimit: { perMinute: 120, burst: 20 }
  loadShedding: { maxEventLoopDelay: 150ms }
  metrics: { public: true }
  shutdownGrace: 10s
  trustProxy: true
  logLevel: warn
  concurrency: 4
`,
      { env: { PG_PASSWORD: 'pw' }, baseDir: '/srv/app' },
    );
    assert.deepEqual(config.server, {
      host: '127.0.0.1',
      port: 9090,
      dataDir: '/srv/app/data',
      databaseUrl: 'postgres://bulwark:pw@db/bulwark',
      bodyLimitBytes: 524_288,
      corsOrigins: ['https://ops.example.com'],
      rateLimit: { perMinute: 120, burst: 20 },
      maxEventLoopDelayMs: 150,
      metricsPublic: true,
      shutdownGraceMs: 10_000,
      trustProxy: true,
      logLevel: 'warn',
      concurrency: 4,
    });
    // The result normalises as is.
    assert.equal(normalizeServerSettings(config.server).bodyLimitBytes, 524_288);
  });

  test('is absent from what the registry takes, so new DependencyRegistry(config) still accepts it', async () => {
    const config = parseConfig('dependencies:\n  a: { kind: cache }\nserver:\n  port: 9090\n', { env: {} });
    assert.deepEqual(Object.keys(config), ['dependencies', 'groups']);
    assert.deepEqual({ ...config }, { dependencies: { a: { kind: 'cache' } }, groups: {} });
    const registry = new DependencyRegistry(config);
    assert.deepEqual(registry.configure(config).unchanged, ['a']);
    await registry.close();
  });

  test('an empty file has an empty server section; sizes take 1MiB, 64KB or plain bytes; rateLimit: false', () => {
    assert.deepEqual(parseConfig('', { env: {} }).server, {});
    const sizes = ['1MiB', '64KB', '2048'].map(
      (size) => parseConfig(`server:\n  bodyLimit: ${size}\n  rateLimit: false\n`, { env: {} }).server,
    );
    assert.deepEqual(
      sizes.map((s) => s?.bodyLimitBytes),
      [1_048_576, 64_000, 2_048],
    );
    assert.equal(sizes[0]?.rateLimit, false);
  });

  test('BULWARK_SERVER__PORT and friends override the file, as for any section', () => {
    const config = parseConfig('server:\n  port: 9090\n', {
      env: { BULWARK_SERVER__PORT: '9191', BULWARK_SERVER__SHUTDOWNGRACE: '5s', BULWARK_SERVER__HOST: '::1' },
    });
    assert.deepEqual(config.server, { port: 9191, host: '::1', shutdownGraceMs: 5_000 });
  });

  test('each bad value is an issue at its line naming the field', () => {
    const issues = issuesOf(() =>
      parseConfig(
        'server:\n  port: 70000\n  bodyLimit: 1GB\n  shutdownGrace: soon\n  database: mysql://db\n  logLevel: loud\n  prot: 1\n',
        { env: {} },
      ),
    );
    assert.deepEqual(
      issues.map((i) => [i.path, i.line]),
      [
        ['server.port', 2],
        ['server.bodyLimit', 3],
        ['server.shutdownGrace', 4],
        ['server.database', 5],
        ['server.logLevel', 6],
        ['server.prot', 7],
      ],
    );
    assert.match(
      issues[1]?.message ?? '',
      /expected a size like 1MiB, 512KiB or a number of bytes, got "1GB"/,
    );
    assert.match(issues[5]?.message ?? '', /did you mean 'port'/);
  });

  test('a database password from ${NAME} never shows in an issue', () => {
    const issues = issuesOf(() =>
      parseConfig('server:\n  database: "${DB_URL}"\n', { env: { DB_URL: 'mysql://root:hunter2secret@db' } }),
    );
    assert.equal(issues[0]?.path, 'server.database');
    assert.ok(!issues[0]?.message.includes('hunter2secret'), issues[0]?.message);
  });
});

describe('the reference in docs/configuration.md', () => {
  test('equals the one generated from the schema (run npm run docs:config after changing the schema)', () => {
    const page = readFileSync(join(repoRoot, 'docs', 'configuration.md'), 'utf8');
    assert.equal(withReference(page), page);
    assert.ok(page.includes(configReference()));
  });

  test('documents every key with a description', () => {
    for (const row of configReference()
      .split('\n')
      .filter((l) => l.startsWith('| `'))) {
      const description = row.split(' | ').at(-1)?.replace(/ \|$/, '');
      assert.ok(description !== undefined && description.length > 3, row);
    }
  });
});
