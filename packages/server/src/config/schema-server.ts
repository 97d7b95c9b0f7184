// The `server` section of bulwark.yaml: where the server listens and keeps its data, and the limits
// it applies. Converted once to the `ServerSettingsInput` that `normalizeServerSettings` takes.
import { z } from 'zod';
import type { ServerSettingsInput } from '../http/settings.ts';
import { count, doc, duration, offable, size } from './fields.ts';

const rateLimit = z.strictObject({
  perMinute: doc(count(1), 'Requests allowed per minute, per API key (per client IP without one).'),
  burst: doc(count(1), 'Requests allowed at once after a quiet spell.'),
});

export const serverSchema = z
  .strictObject({
    host: doc(
      z.string().min(1).optional(),
      'The address to listen on. Without API keys only a loopback address is allowed.',
      '127.0.0.1',
    ),
    port: doc(z.number().int().min(0).max(65_535).optional(), 'The port; `0` picks a free one.', '8080'),
    dataDir: doc(
      z.string().min(1).optional(),
      'Where the SQLite database and the generated admin key live; relative to the file.',
      './.bulwark',
    ),
    database: doc(
      z
        .string()
        .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// URL')
        .optional(),
      `A PostgreSQL URL for the workflow store (write the password as \`\${NAME}\`); without one the store is SQLite in \`dataDir\`. \`BULWARK_DATABASE_URL\` sets it too.`,
      'none: SQLite in dataDir',
    ),
    bodyLimit: doc(size().optional(), 'The largest request body: bytes, or `512KiB`, `1MiB`.', '1MiB'),
    cors: doc(
      z
        .strictObject({
          origins: doc(
            z.array(z.string().min(1)).optional(),
            'Origins allowed to call the API from a browser, exactly as browsers send them (`https://app.example.com`).',
            '[]',
          ),
        })
        .optional(),
      'Cross-origin requests from browsers.',
      'none allowed',
    ),
    rateLimit: doc(
      offable(rateLimit).optional(),
      'Requests per API key (or client IP); `false` for no limit.',
      '{ perMinute: 600, burst: 100 }',
    ),
    loadShedding: doc(
      z
        .strictObject({
          maxEventLoopDelay: doc(
            duration(1).optional(),
            'Above this typical (median) event-loop delay over the last second, new requests get 503 with `Retry-After`.',
            '200ms',
          ),
        })
        .optional(),
      'Refusing work while the process is overloaded.',
    ),
    metrics: doc(
      z
        .strictObject({
          public: doc(z.boolean().optional(), 'Serve `/metrics` without an API key.', 'false'),
        })
        .optional(),
      'The Prometheus endpoint.',
    ),
    shutdownGrace: doc(
      duration(1).optional(),
      'On SIGTERM, how long steps in progress may take to finish before they are aborted (and re-run on the next start).',
      '25s',
    ),
    trustProxy: doc(
      z.boolean().optional(),
      'Trust `X-Forwarded-*` headers (behind a reverse proxy).',
      'false',
    ),
    logLevel: doc(
      z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
      'The level of the JSON log.',
      'info',
    ),
    concurrency: doc(count(1).optional(), 'Workflow runs this process executes at once.', '10'),
  })
  .transform((s): ServerSettingsInput => {
    const out: ServerSettingsInput = {};
    if (s.host !== undefined) out.host = s.host;
    if (s.port !== undefined) out.port = s.port;
    if (s.dataDir !== undefined) out.dataDir = s.dataDir;
    if (s.database !== undefined) out.databaseUrl = s.database;
    if (s.bodyLimit !== undefined) out.bodyLimitBytes = s.bodyLimit;
    if (s.cors?.origins !== undefined) out.corsOrigins = s.cors.origins;
    if (s.rateLimit !== undefined) out.rateLimit = s.rateLimit;
    if (s.loadShedding?.maxEventLoopDelay !== undefined)
      out.maxEventLoopDelayMs = s.loadShedding.maxEventLoopDelay;
    if (s.metrics?.public !== undefined) out.metricsPublic = s.metrics.public;
    if (s.shutdownGrace !== undefined) out.shutdownGraceMs = s.shutdownGrace;
    if (s.trustProxy !== undefined) out.trustProxy = s.trustProxy;
    if (s.logLevel !== undefined) out.logLevel = s.logLevel;
    if (s.concurrency !== undefined) out.concurrency = s.concurrency;
    return out;
  });
