// The server's settings, normalised once: defaults filled in, every value checked, errors naming
// the field. They come from the `server:` section of bulwark.yaml, the CLI flags and BULWARK_API_KEYS.
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROLES, type Role } from './context.ts';

export interface ApiKey {
  /** Names the key in logs and the audit log. */
  readonly name: string;
  readonly role: Role;
  readonly secret: string;
}

export interface ServerSettings {
  /** @default '127.0.0.1' */
  readonly host: string;
  /** @default 8080 */
  readonly port: number;
  /** Where the SQLite database and the generated admin key live. @default './.bulwark' */
  readonly dataDir: string;
  /** A PostgreSQL URL; without one the store is SQLite in `dataDir`. */
  readonly databaseUrl: string | undefined;
  /** @default 1_048_576 (1 MiB) */
  readonly bodyLimitBytes: number;
  /** Origins allowed by CORS, exactly as browsers send them. @default [] (none) */
  readonly corsOrigins: readonly string[];
  /** Requests per minute per API key (or per IP without one); `false` turns it off. @default { perMinute: 600, burst: 100 } */
  readonly rateLimit: { readonly perMinute: number; readonly burst: number } | false;
  /** Above this event-loop delay new requests get 503 with Retry-After. @default 200 */
  readonly maxEventLoopDelayMs: number;
  /** Serve /metrics without a key. @default false */
  readonly metricsPublic: boolean;
  /** How long in-flight steps may take to finish on SIGTERM. @default 25_000 */
  readonly shutdownGraceMs: number;
  /** Trust X-Forwarded-* (behind a proxy): client IPs and HTTPS for HSTS. @default false */
  readonly trustProxy: boolean;
  /** @default [] — the server then binds to loopback only and generates an admin key */
  readonly apiKeys: readonly ApiKey[];
  /** pino level. @default 'info' */
  readonly logLevel: string;
  /** Runs this process executes at once. @default 10 */
  readonly concurrency: number;
  /** The built dashboard (index.html and assets/) served at `/`. @default the `dist` of @bulwark/dashboard */
  readonly dashboardDir: string;
}

export type ServerSettingsInput = { -readonly [K in keyof ServerSettings]?: ServerSettings[K] };

/** Thrown for a bad setting; `field` names it as the user wrote it. */
export class SettingsError extends Error {
  override readonly name = 'SettingsError';
  readonly code = 'INVALID_SETTING';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function normalizeServerSettings(input: ServerSettingsInput = {}): ServerSettings {
  const host = input.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0)
    throw new SettingsError('server.host', 'expected a host name or address');
  const port = input.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new SettingsError('server.port', `expected an integer from 0 to 65535, got ${String(port)}`);
  }
  const rateLimit = input.rateLimit ?? { perMinute: 600, burst: 100 };
  if (rateLimit !== false) {
    positive('server.rateLimit.perMinute', rateLimit.perMinute);
    positive('server.rateLimit.burst', rateLimit.burst);
  }
  const corsOrigins = input.corsOrigins ?? [];
  for (const [i, origin] of corsOrigins.entries()) {
    if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new SettingsError(
        `server.cors.origins[${i}]`,
        `expected an origin like https://app.example.com, got ${JSON.stringify(origin)}`,
      );
    }
  }
  const logLevel = input.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new SettingsError(
      'server.logLevel',
      `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`,
    );
  }
  return Object.freeze({
    host,
    port,
    dataDir: resolve(input.dataDir ?? '.bulwark'),
    databaseUrl: input.databaseUrl,
    bodyLimitBytes: positive('server.bodyLimit', input.bodyLimitBytes ?? 1_048_576),
    corsOrigins: Object.freeze([...corsOrigins]),
    rateLimit: rateLimit === false ? false : Object.freeze({ ...rateLimit }),
    maxEventLoopDelayMs: positive('server.loadShedding.maxEventLoopDelay', input.maxEventLoopDelayMs ?? 200),
    metricsPublic: input.metricsPublic ?? false,
    shutdownGraceMs: positive('server.shutdownGrace', input.shutdownGraceMs ?? 25_000),
    trustProxy: input.trustProxy ?? false,
    apiKeys: Object.freeze([...(input.apiKeys ?? [])]),
    logLevel,
    concurrency: positive('server.concurrency', input.concurrency ?? 10),
    dashboardDir: resolve(input.dashboardDir ?? defaultDashboardDir()),
  });
}

/**
 * Where `vite build` puts the dashboard: the `dist` of the @bulwark/dashboard package, found the
 * way Node finds packages, or beside this package in the repository's layout when it is not installed.
 */
export function defaultDashboardDir(): string {
  try {
    const require = createRequire(import.meta.url);
    return resolve(dirname(require.resolve('@bulwark/dashboard/package.json')), 'dist');
  } catch {
    return fileURLToPath(new URL('../../../dashboard/dist', import.meta.url));
  }
}

/**
 * Parses BULWARK_API_KEYS: comma-separated `name:role:secret` entries. Secrets shorter than 24
 * characters are refused: a key that can be guessed protects nothing.
 */
export function parseApiKeys(value: string | undefined, variable = 'BULWARK_API_KEYS'): ApiKey[] {
  if (value === undefined || value.trim() === '') return [];
  const keys: ApiKey[] = [];
  for (const [i, entry] of value.split(',').entries()) {
    const parts = entry.trim().split(':');
    const where = `${variable} entry ${i + 1}`;
    if (parts.length !== 3) throw new SettingsError(where, 'expected name:role:secret');
    const [name, role, secret] = parts as [string, string, string];
    if (!/^[\w.-]{1,64}$/.test(name))
      throw new SettingsError(where, 'the name must be 1 to 64 letters, digits, _ . or -');
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new SettingsError(
        where,
        `the role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(role)}`,
      );
    }
    if (secret.length < 24) throw new SettingsError(where, 'the secret must be at least 24 characters');
    if (keys.some((k) => k.name === name)) throw new SettingsError(where, `the name ${name} is used twice`);
    keys.push(Object.freeze({ name, role: role as Role, secret }));
  }
  return keys;
}

/** Loopback only: where a server without configured keys may listen. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

function positive(field: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new SettingsError(field, `expected a positive number, got ${String(value)}`);
  }
  return value;
}
