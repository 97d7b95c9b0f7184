// The web-to-voice example with a real espeak-ng: run.ts end to end as users run it (the audio
// it stores is a valid WAV; with the voice service down the run completes degraded with the
// fallback clip), the voice service's answers to bad and abandoned requests, and the workflow's
// choices when the voice circuit is open and when a step after `store` fails.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { openSqliteStore, WorkflowEngine } from '@bulwark/workflow';
import {
  renderSpeech,
  startVoiceService,
  type VoiceEvent,
  type VoiceServiceOptions,
} from '../../../examples/web-to-voice/voice-service.ts';
import { webToVoice } from '../../../examples/web-to-voice/workflow.ts';
import { openRegistry } from '../src/registry.ts';

const repoRoot = join(import.meta.dirname, '..', '..', '..');
const example = join(repoRoot, 'examples', 'web-to-voice');

const unavailable = await promisify(execFile)('espeak-ng', ['--version']).then(
  () => undefined,
  (error: Error) => `espeak-ng cannot be run (${error.message}); install it with apt-get install espeak-ng`,
);
if (unavailable !== undefined && process.env.CI === 'true') {
  test('espeak-ng is installed (required under CI)', () => assert.fail(unavailable));
}
const needsEspeak = { skip: unavailable ?? false, timeout: 45_000 };

/** Parses a PCM WAV on its own terms (not with the example's reader): the test's second opinion. */
function checkWav(bytes: Buffer): { durationMs: number } {
  assert.equal(bytes.toString('latin1', 0, 4), 'RIFF');
  assert.equal(bytes.toString('latin1', 8, 12), 'WAVE');
  assert.equal(bytes.readUInt32LE(4), bytes.length - 8, 'the RIFF size is the file size less 8');
  assert.equal(bytes.toString('latin1', 12, 16), 'fmt ');
  assert.equal(bytes.readUInt16LE(20), 1, 'PCM');
  const byteRate = bytes.readUInt32LE(28);
  const fmtEnd = 20 + bytes.readUInt32LE(16);
  assert.equal(bytes.toString('latin1', fmtEnd, fmtEnd + 4), 'data');
  const dataBytes = bytes.readUInt32LE(fmtEnd + 4);
  assert.equal(dataBytes, bytes.length - fmtEnd - 8, 'the data size is what follows the header');
  return { durationMs: Math.round((dataBytes / byteRate) * 1000) };
}

async function runExample(args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--conditions=@bulwark/source', '--import', 'tsx', join(example, 'run.ts'), ...args],
    { cwd: repoRoot, timeout: 40_000, encoding: 'utf8' },
  );
  return stdout;
}

function printedAudio(stdout: string): { file: string; bytes: number; durationMs: number } {
  const m = /^audio: (.+)\n {2}(\d+) bytes, (\d+) ms of speech/m.exec(stdout);
  assert.ok(m, `no audio line in:\n${stdout}`);
  return { file: m[1]!, bytes: Number(m[2]), durationMs: Number(m[3]) };
}

test(
  'run.ts reads the loopback page aloud and stores a valid WAV of the whole article',
  needsEspeak,
  async (t) => {
    const out = await mkdtemp(join(tmpdir(), 'web-to-voice-'));
    t.after(() => rm(out, { recursive: true, force: true }));
    const stdout = await runExample(['--out', out]);
    assert.match(stdout, /^state: completed$/m);
    assert.match(stdout, /100%\s+run:completed/);
    const audio = printedAudio(stdout);
    assert.ok(audio.file.startsWith(out), audio.file);
    assert.match(audio.file, /why-a-circuit-breaker-helps-[0-9a-f]{12}\.wav$/);
    const bytes = await readFile(audio.file);
    assert.equal(bytes.length, audio.bytes, 'the printed size is the file size');
    const { durationMs } = checkWav(bytes);
    assert.equal(durationMs, audio.durationMs, 'the printed duration is the header duration');
    // Two paragraphs and a title at espeak-ng's 175 words per minute: well over ten seconds.
    assert.ok(durationMs > 10_000, `only ${durationMs} ms of speech`);
    const catalogue = JSON.parse(await readFile(join(out, 'catalogue.json'), 'utf8'));
    assert.equal(catalogue.length, 1);
    assert.equal(catalogue[0].title, 'Why a circuit breaker helps');
    assert.equal(catalogue[0].degraded, false);
    assert.deepEqual(await readdir(join(out, '.spool')), [], 'the spooled audio is moved, not left behind');
  },
);

test('run.ts --voice-down completes degraded, storing the fallback clip', needsEspeak, async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'web-to-voice-'));
  t.after(() => rm(out, { recursive: true, force: true }));
  const stdout = await runExample(['--voice-down', '--out', out]);
  assert.match(stdout, /^state: degraded/m);
  assert.match(stdout, /step:fallback synthesise .*ECONNREFUSED/);
  assert.match(stdout, /100%\s+run:degraded/);
  const audio = printedAudio(stdout);
  const bytes = await readFile(audio.file);
  assert.ok(bytes.equals(await readFile(join(out, 'fallback.wav'))), 'the stored audio is the fallback clip');
  const { durationMs } = checkWav(bytes);
  assert.equal(durationMs, audio.durationMs);
  // "This page could not be read aloud right now." takes a couple of seconds.
  assert.ok(durationMs > 1_000 && durationMs < 6_000, `${durationMs} ms`);
  const catalogue = JSON.parse(await readFile(join(out, 'catalogue.json'), 'utf8'));
  assert.equal(catalogue[0].degraded, true);
});

/** A voice service for one test, closed after it, with the events it reported. */
async function voiceService(t: { after: (fn: () => unknown) => void }, options: VoiceServiceOptions = {}) {
  const events: VoiceEvent[] = [];
  const waiters: { type: VoiceEvent['type']; resolve: (e: VoiceEvent) => void }[] = [];
  const service = await startVoiceService({
    ...options,
    onEvent: (e) => {
      events.push(e);
      for (const w of waiters.filter((w) => w.type === e.type)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    },
  });
  t.after(() => service.close());
  const next = (type: VoiceEvent['type']) =>
    new Promise<VoiceEvent>((resolve) => waiters.push({ type, resolve }));
  const speak = (body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    fetch(`${service.url}/v1/speech`, {
      method: 'POST',
      headers,
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  return { service, events, next, speak };
}

async function expectProblem(response: Response, status: number, pointer?: string): Promise<void> {
  const body = (await response.json()) as {
    status: number;
    type: string;
    detail: string;
    errors?: { pointer: string }[];
  };
  assert.equal(response.status, status, body.detail);
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  assert.equal(body.status, status);
  assert.match(body.type, /^urn:bulwark-example:voice:/);
  if (pointer !== undefined)
    assert.deepEqual(
      body.errors?.map((e) => e.pointer),
      [pointer],
    );
}

const LONG_TEXT = 'The quick brown fox jumps over the lazy dog. '.repeat(110).slice(0, 4_990);

test('the voice service answers bad requests with problems that name the field', needsEspeak, async (t) => {
  const { service, speak } = await voiceService(t, { maxChars: 100 });
  await expectProblem(await speak('{"text": '), 400);
  await expectProblem(await speak({ text: '   ' }), 400, '/text');
  await expectProblem(await speak({ text: 'hi', pitch: 3 }), 400, '/pitch');
  await expectProblem(await speak({ text: 'hi', voice: '../../etc/passwd' }), 400, '/voice');
  await expectProblem(await speak({ text: 'hi', voice: '-w/tmp/x' }), 400, '/voice');
  await expectProblem(await speak({ text: 'hi', voice: 'zz-nowhere' }), 400, '/voice');
  await expectProblem(await speak({ text: 'hi', speed: 1_000 }), 400, '/speed');
  await expectProblem(await speak({ text: 'hi' }, { 'content-type': 'text/plain' }), 415);
  // The cap counts characters as people do: 100 emoji (200 UTF-16 units) pass, 101 do not.
  assert.equal((await speak({ text: '🔊'.repeat(100) })).status, 200);
  await expectProblem(await speak({ text: '🔊'.repeat(101) }), 413, '/text');
  await expectProblem(await speak({ text: 'x'.repeat(2_000) }), 413);
  await expectProblem(await fetch(`${service.url}/v1/voices`), 404);
  const wrongMethod = await fetch(`${service.url}/v1/speech`);
  assert.equal(wrongMethod.headers.get('allow'), 'POST');
  await expectProblem(wrongMethod, 405);
  const health = await fetch(`${service.url}/health`);
  assert.equal(health.headers.get('content-type'), 'application/health+json');
  assert.equal(((await health.json()) as { status: string }).status, 'pass');
});

test(
  'the voice service answers speech as a WAV whose header gives its real length',
  needsEspeak,
  async (t) => {
    const { speak } = await voiceService(t);
    const response = await speak({ text: 'Hello from Bulwark.', voice: 'en-us', speed: 200 });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'audio/wav');
    const bytes = Buffer.from(await response.arrayBuffer());
    const { durationMs } = checkWav(bytes);
    assert.equal(Number(response.headers.get('x-audio-duration-ms')), durationMs);
    assert.ok(durationMs > 300 && durationMs < 5_000, `${durationMs} ms`);
  },
);

test('the voice service kills espeak-ng when the client goes away', needsEspeak, async (t) => {
  const { service, next } = await voiceService(t);
  const started = next('started');
  const ended = Promise.race([next('killed'), next('finished')]);
  const body = JSON.stringify({ text: LONG_TEXT });
  const req = request(`${service.url}/v1/speech`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  req.on('error', () => {});
  req.end(body);
  await started;
  req.destroy();
  assert.deepEqual(await ended, { type: 'killed', id: 1, reason: 'aborted' });
});

test(
  'the voice service kills a synthesis past its time and answers 503 with Retry-After',
  needsEspeak,
  async (t) => {
    const { speak, next } = await voiceService(t, { timeoutMs: 5 });
    const killed = next('killed');
    const response = await speak({ text: LONG_TEXT });
    assert.equal(response.headers.get('retry-after'), '1');
    await expectProblem(response, 503);
    assert.deepEqual(await killed, { type: 'killed', id: 1, reason: 'timeout' });
  },
);

test(
  'beyond maxConcurrent the voice service refuses at once with 503 and Retry-After',
  needsEspeak,
  async (t) => {
    const { speak, next } = await voiceService(t, { maxConcurrent: 1 });
    const started = next('started');
    const first = speak({ text: LONG_TEXT });
    await started;
    const second = await speak({ text: 'Me too.' });
    assert.equal(second.headers.get('retry-after'), '1');
    await expectProblem(second, 503);
    assert.equal((await first).status, 200);
    await (await first).arrayBuffer();
  },
);

/** The workflow in this process on a real SQLite file, against a loopback page and the given voice URL. */
async function world(t: { after: (fn: () => unknown) => void }, voiceUrl: string) {
  const dir = await mkdtemp(join(tmpdir(), 'web-to-voice-'));
  const out = join(dir, 'out');
  const page = createServer((_req, res) => {
    res
      .writeHead(200, { 'content-type': 'text/html' })
      .end('<title>A short page</title><main><p>Short, but real text to read.</p></main>');
  });
  page.listen(0, '127.0.0.1');
  await once(page, 'listening');
  const opened = await openRegistry(join(example, 'bulwark.yaml'), { env: { VOICE_URL: voiceUrl } });
  const store = await openSqliteStore({ path: join(dir, 'runs.db') });
  const fallbackClip = join(dir, 'fallback.wav');
  await writeFile(fallbackClip, await renderSpeech('This page could not be read aloud right now.'));
  const workflow = webToVoice({ registry: opened.registry, outDir: out, fallbackClip });
  const engine = new WorkflowEngine({ store, registry: opened.registry, pollMs: 20 });
  engine.register(workflow).startWorker();
  t.after(async () => {
    await engine.stop();
    await store.close();
    await opened.close();
    page.close();
    await rm(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${(page.address() as AddressInfo).port}/`;
  const run = async () => {
    const { id } = await engine.start(workflow, { url });
    const types: string[] = [];
    for await (const e of engine.timeline(id)) {
      // A parked step would wait out the circuit's 30 s: seeing it is enough to know.
      if (e.type === 'step:parked') return { record: (await store.getRun(id))!, types: [...types, e.type] };
      types.push(
        `${e.type}${e.step ? ` ${e.step}` : ''}${e.type === 'step:fallback' ? ` ${JSON.stringify(e.data)}` : ''}`,
      );
    }
    return { record: (await store.getRun(id))!, types };
  };
  return { out, registry: opened.registry, run };
}

test('while the voice circuit is open, runs fall back at once instead of parking', needsEspeak, async (t) => {
  // A port that was just closed: every call is refused.
  const gone = await startVoiceService();
  await gone.close();
  const { registry, run } = await world(t, gone.url);
  // 3 attempts a run; the circuit opens at the fifth failure in a row, inside the second run.
  const runs = [await run(), await run(), await run()];
  for (const { record, types } of runs) {
    assert.equal(record.status, 'completed');
    assert.equal(record.degraded, true);
    assert.ok(!types.some((type) => type.startsWith('step:parked')), types.join('\n'));
  }
  assert.equal(registry.stats('voice').state, 'open');
  assert.match(
    runs[2]!.types.find((type) => type.startsWith('step:fallback'))!,
    /Circuit 'voice\.breaker' is open/,
  );
  assert.ok(registry.stats('voice').calls.rejections >= 1, 'the third run did not call the voice service');
});

test(
  'a run whose catalogue cannot be updated is compensated: the stored audio is removed',
  needsEspeak,
  async (t) => {
    const voice = await startVoiceService();
    t.after(() => voice.close());
    const { out, run } = await world(t, voice.url);
    await run(); // a first run creates the output directory and a good catalogue
    const files = async () => (await readdir(out)).filter((f) => f.endsWith('.wav')).sort();
    const before = await files();
    assert.equal(before.length, 1);
    await writeFile(join(out, 'catalogue.json'), '{ "not": "a list" ');
    const { record, types } = await run();
    assert.equal(record.status, 'compensated');
    assert.ok(types.includes('step:completed store'), types.join('\n'));
    assert.ok(types.includes('step:failed catalogue'), types.join('\n'));
    assert.ok(types.includes('compensation:completed store'), types.join('\n'));
    assert.deepEqual(await files(), before, 'the second run left no audio behind');
    assert.deepEqual(await readdir(join(out, '.spool')), [], 'nor a spooled copy');
    assert.ok((await stat(join(out, before[0]!))).size > 0);
  },
);
