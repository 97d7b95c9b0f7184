// Secure by default without configuration: the admin key generated on first start (kept in the
// data directory, readable by its owner only), the login URL printed with it, and the listen check.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { type ApiKey, isLoopback, SettingsError } from './settings.ts';

/** The file, inside the data directory, that holds the generated admin key. */
export const ADMIN_KEY_FILE = 'admin.key';
/** What the generated key is called in logs and the audit log. */
export const GENERATED_KEY_NAME = 'admin';

export interface AdminKey {
  readonly key: ApiKey;
  /** True when this call generated the key: the caller prints it, once. */
  readonly created: boolean;
  readonly file: string;
}

/**
 * Reads `<dataDir>/admin.key`, or creates it (32 random bytes, base64url, mode 0600; the data
 * directory is created 0700). A key file that group or others may read is refused: whoever can
 * read it holds the server.
 */
export async function ensureAdminKey(dataDir: string): Promise<AdminKey> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, ADMIN_KEY_FILE);
  const secret = randomBytes(32).toString('base64url');
  try {
    // `wx`: two processes starting at once on one directory cannot both write a key.
    await writeFile(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    // The umask may only narrow the mode; this makes sure it is exactly 0600.
    await chmod(file, 0o600);
    return { key: adminKey(secret), created: true, file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const info = await stat(file);
  if (!info.isFile()) throw new SettingsError('server.dataDir', `${file} is not a file`);
  // Windows has no such mode bits; its ACLs are the user's profile's.
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    throw new SettingsError(
      'server.dataDir',
      `${file} may be read by other users (mode ${(info.mode & 0o777).toString(8)}); run: chmod 600 ${file}`,
    );
  }
  const stored = (await readFile(file, 'utf8')).trim();
  if (!/^[\w-]{24,}$/.test(stored)) {
    throw new SettingsError(
      'server.dataDir',
      `${file} does not hold a key (24 or more letters, digits, _ or -); delete it to generate a new one`,
    );
  }
  return { key: adminKey(stored), created: false, file };
}

/**
 * The dashboard URL that logs in with `key`. The key travels in the fragment, which browsers never
 * send to a server, so it cannot end up in an access log or a Referer header.
 */
export function loginUrl(host: string, port: number, key: string): string {
  // A wildcard address is where the server listens, not where a browser can go.
  let address = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
  if (isIP(address) === 6) address = `[${address}]`;
  return `http://${address}:${port}/#key=${encodeURIComponent(key)}`;
}

/** Refuses a non-loopback address until API keys are configured: an open server is never the default. */
export function checkListenAddress(host: string, keysConfigured: boolean): void {
  if (keysConfigured || isLoopback(host)) return;
  throw new SettingsError(
    'server.host',
    `refusing to listen on ${host} without API keys. Configure keys first: ` +
      'BULWARK_API_KEYS=name:role:secret,... (role viewer, operator or admin; secrets of 24 or more ' +
      'characters, e.g. from `openssl rand -base64 32`), or listen on 127.0.0.1.',
  );
}

function adminKey(secret: string): ApiKey {
  return Object.freeze({ name: GENERATED_KEY_NAME, role: 'admin' as const, secret });
}
