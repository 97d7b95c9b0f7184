// Web to voice in one command: starts the espeak-ng voice service and a small page on loopback
// (or reads the URL you give), loads the `web` and `voice` dependencies from bulwark.yaml, runs
// the workflow on a SQLite file and prints its timeline and where the audio is.
//   npm run example:web-to-voice                       the loopback page, read aloud
//   npm run example:web-to-voice -- https://example.org  any page
//   npm run example:web-to-voice -- --voice-down       the voice service stopped: a degraded run
// Options: --out DIR (default: bulwark-web-to-voice in the temp directory), --voice en-us.
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { openRegistry } from '@bulwark/server';
import { openSqliteStore, WorkflowEngine } from '@bulwark/workflow';
import { renderSpeech, startVoiceService } from './voice-service.ts';
import { readWavInfo } from './wav.ts';
import { webToVoice } from './workflow.ts';

const log = (line = '') => process.stdout.write(`${line}\n`);

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'voice-down': { type: 'boolean', default: false },
    out: { type: 'string', default: join(tmpdir(), 'bulwark-web-to-voice') },
    voice: { type: 'string' },
  },
});
if (positionals.length > 1) {
  process.stderr.write(`give at most one URL, not ${positionals.length}\n`);
  process.exit(2);
}
const outDir = resolve(values.out);
await mkdir(outDir, { recursive: true });

const FALLBACK_TEXT = 'This page could not be read aloud right now.';

const voice = await startVoiceService().catch((error: Error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
log(`voice service: ${voice.url} (${voice.engine})`);

// The fallback clip is rendered once, while the engine is there, and kept beside the audio: on
// the day the voice service is down, it is already on disk.
const fallbackClip = join(outDir, 'fallback.wav');
if (!(await isWav(fallbackClip))) {
  const partial = `${fallbackClip}.${process.pid}.partial`;
  await writeFile(partial, await renderSpeech(FALLBACK_TEXT));
  await rename(partial, fallbackClip);
}
log(`fallback clip: ${fallbackClip}`);
if (values['voice-down']) {
  await voice.close();
  log('voice service stopped (--voice-down): every synthesis will fail');
}

// A page to read, unless a URL was given: an article with the chrome a real page has around it.
const ARTICLE = `<!doctype html>
<html lang="en">
<head>
  <title>Why a circuit breaker helps</title>
  <style>body { font-family: serif; }</style>
  <script>window.analytics = { track() {} };</script>
</head>
<body>
  <nav><a href="/">Home</a> <a href="/blog">Blog</a> <a href="/about">About</a></nav>
  <main>
    <article>
      <h1>Why a circuit breaker helps</h1>
      <p>When a service you depend on starts to fail, calling it again and again only adds to its
      load. A circuit breaker counts the failures, and once there are too many, it stops the calls
      for a while and answers at once instead.</p>
      <p>After a pause, it lets a single probe through. If the probe succeeds, calls flow again;
      if it fails, the circuit stays open a little longer.</p>
    </article>
  </main>
  <footer>Copyright 2025, the Bulwark authors. <a href="/privacy">Privacy</a></footer>
</body>
</html>
`;

const page = createServer((req, res) => {
  if (req.url !== '/article') {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(ARTICLE);
});
let url = positionals[0];
if (url === undefined) {
  page.listen(0, '127.0.0.1');
  await once(page, 'listening');
  url = `http://127.0.0.1:${(page.address() as AddressInfo).port}/article`;
}
log(`page: ${url}`);

const opened = await openRegistry(join(import.meta.dirname, 'bulwark.yaml'), {
  env: { ...process.env, VOICE_URL: voice.url },
});
const { registry } = opened;
const dataDir = await mkdtemp(join(tmpdir(), 'bulwark-web-to-voice-runs-'));
const store = await openSqliteStore({ path: join(dataDir, 'runs.db') });
const workflow = webToVoice({ registry, outDir, fallbackClip });
const engine = new WorkflowEngine({ store, registry, pollMs: 50 });
engine.register(workflow).startWorker();

let exitCode = 0;
try {
  const run = await engine.start(workflow, { url, voice: values.voice });
  log();
  log(`run ${run.id}`);
  for await (const e of engine.timeline(run.id)) {
    log(`  ${String(e.progress).padStart(3)}%  ${e.type}${e.step ? ` ${e.step}` : ''}${detail(e.data)}`);
  }
  const output = await engine
    .result<{ file: string; bytes: number; durationMs: number; degraded: boolean }>(run.id)
    .catch((error: Error) => error);
  const record = await store.getRun(run.id);
  log();
  if (output instanceof Error) {
    exitCode = 1;
    log(`state: ${record?.status}: ${output.message}`);
  } else {
    log(`state: ${record?.degraded ? 'degraded (completed with the fallback clip)' : record?.status}`);
    log(`audio: ${output.file}`);
    log(
      `  ${output.bytes} bytes, ${output.durationMs} ms of speech${output.degraded ? ' (the fallback clip)' : ''}`,
    );
    const v = registry.stats('voice');
    log(
      `voice dependency: ${v.calls.calls} calls, ${v.calls.successes} succeeded, ${v.calls.failures} failed; ` +
        `circuit ${v.state}`,
    );
  }
} finally {
  await engine.stop();
  await store.close();
  await opened.close();
  await voice.close();
  if (page.listening) page.close();
  await rm(dataDir, { recursive: true, force: true });
}
process.exitCode = exitCode;

/** The part of an event's data worth a glance: attempts, the failure, the progress message. */
function detail(data: unknown): string {
  if (typeof data !== 'object' || data === null) return '';
  const d = data as { attempts?: number; message?: string; error?: { message?: string } };
  const parts: string[] = [];
  if (typeof d.message === 'string') parts.push(d.message);
  if (typeof d.attempts === 'number') parts.push(`${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`);
  if (d.error?.message) parts.push(d.error.message);
  return parts.length === 0 ? '' : `  (${parts.join('; ')})`;
}

async function isWav(path: string): Promise<boolean> {
  try {
    return readWavInfo(await readFile(path)).dataBytes > 0;
  } catch {
    return false;
  }
}
