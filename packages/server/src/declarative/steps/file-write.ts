// The `file.write` and `file.delete` steps: files inside the storage directory only. A path is
// relative, holds no `..`, and no link on the way may lead out of the directory; a write goes to
// a temporary file in the same directory first and is renamed over the target, so a reader sees
// the old content or the new, never half of it.
import { createHash, randomUUID } from 'node:crypto';
import { lstat, mkdir, open, realpath, rename, rm, unlink } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { StepError, StepErrorCodes } from '../errors.ts';

/** What `file.write` records. */
export interface WrittenFile {
  /** Relative to the storage directory, with `/`. */
  path: string;
  bytes: number;
  /** Hex SHA-256 of the content written. */
  sha256: string;
  /** Whether the file is new (its compensation removes only a file the step created). */
  created: boolean;
}

export interface DeletedFile {
  path: string;
  /** False when there was no file to remove. */
  deleted: boolean;
}

/** The segments of a relative path, checked; throws StepError naming what is wrong. */
export function storagePath(path: string): string[] {
  const refuse = (why: string): never => {
    throw new StepError(StepErrorCodes.PATH_ESCAPE, `file path ${JSON.stringify(path)} ${why}`);
  };
  if (typeof path !== 'string' || path.trim() === '') refuse('is empty');
  if (path.includes('\0')) refuse('holds a NUL character');
  if (path.includes('\\')) refuse("holds '\\'; separate directories with '/'");
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path))
    refuse('is absolute; give a path inside the storage directory');
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) refuse("holds '..'; files stay inside the storage directory");
  if (segments.length === 0) refuse('names the storage directory itself');
  return segments;
}

/**
 * The directory for `segments` inside `root` (made as needed), followed through links only while
 * they stay inside `root`'s real path. Returns the real directory and the file's name.
 */
async function placeIn(
  root: string,
  segments: readonly string[],
  create: boolean,
): Promise<{ dir: string; name: string } | undefined> {
  await mkdir(root, { recursive: true });
  const realRoot = await realpath(root);
  let dir = realRoot;
  for (let i = 0; i < segments.length - 1; i++) {
    const segment = segments[i]!;
    const next = join(dir, segment);
    let stat: Awaited<ReturnType<typeof lstat>> | undefined;
    try {
      stat = await lstat(next);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (stat === undefined) {
      if (!create) return undefined;
      await mkdir(next).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
      dir = next;
      continue;
    }
    const leadsOut = () =>
      new StepError(
        StepErrorCodes.PATH_ESCAPE,
        `file path ${JSON.stringify(segments.join('/'))} leads out of the storage directory through the link '${segments.slice(0, i + 1).join('/')}'`,
      );
    // A dangling link could be made to point anywhere later: refused like one that leads out.
    const real = stat.isSymbolicLink() ? await realpath(next).catch(() => Promise.reject(leadsOut())) : next;
    if (!inside(realRoot, real)) throw leadsOut();
    if (!(await lstat(real)).isDirectory()) {
      throw new StepError(
        StepErrorCodes.NOT_A_FILE,
        `'${segments.slice(0, i + 1).join('/')}' in ${JSON.stringify(segments.join('/'))} is not a directory`,
      );
    }
    dir = real;
  }
  return { dir, name: segments.at(-1)! };
}

function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** Writes `content` to `path` under `root`, atomically. */
export async function writeStorageFile(root: string, path: string, content: string): Promise<WrittenFile> {
  const segments = storagePath(path);
  const { dir, name } = (await placeIn(root, segments, true))!;
  const target = join(dir, name);
  let created = true;
  try {
    const stat = await lstat(target);
    if (!stat.isFile()) {
      throw new StepError(
        StepErrorCodes.NOT_A_FILE,
        `file path ${JSON.stringify(segments.join('/'))} is ${stat.isSymbolicLink() ? 'a symbolic link' : 'a directory or special file'}; only regular files are written`,
      );
    }
    created = false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const data = Buffer.from(content, 'utf8');
  const temporary = join(dir, `.${name}.${randomUUID()}.tmp`);
  const handle = await open(temporary, 'wx', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return {
    path: segments.join('/'),
    bytes: data.byteLength,
    sha256: createHash('sha256').update(data).digest('hex'),
    created,
  };
}

/** Removes `path` under `root`; a file already gone is not an error. A link is removed, not what it points to. */
export async function deleteStorageFile(root: string, path: string): Promise<DeletedFile> {
  const segments = storagePath(path);
  const place = await placeIn(root, segments, false);
  const relative = segments.join('/');
  if (place === undefined) return { path: relative, deleted: false };
  const target = join(place.dir, place.name);
  try {
    const stat = await lstat(target);
    if (stat.isDirectory()) {
      throw new StepError(StepErrorCodes.NOT_A_FILE, `file path ${JSON.stringify(relative)} is a directory`);
    }
    await unlink(target);
    return { path: relative, deleted: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { path: relative, deleted: false };
    throw error;
  }
}
