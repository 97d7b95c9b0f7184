// Web to voice (seed 000) as a durable workflow: fetch a page through the `web` dependency,
// extract its text, have the `voice` dependency read it aloud, store the audio, and list it in
// the output directory's catalogue. When the voice service cannot answer, a short pre-rendered
// clip stands in and the run completes degraded.
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { type DependencyRegistry, RetriesExhaustedError } from '@bulwark/core';
import { defineWorkflow, type WorkflowDefinition } from '@bulwark/workflow';
import { extractPage } from '../../packages/server/src/declarative/steps/extract.ts';
import { SPEED, VOICE_NAME } from './voice-service.ts';
import { readWavInfo } from './wav.ts';

export interface WebToVoiceOptions {
  /** Has the `web` and `voice` dependencies (see bulwark.yaml). */
  registry: DependencyRegistry;
  /** Where the audio files and `catalogue.json` go; created if missing. */
  outDir: string;
  /** A short WAV that says the page could not be read aloud: the `synthesise` step's fallback. */
  fallbackClip: string;
  /** Characters of the page sent to the voice service (the service takes at most 5,000). @default 5_000 */
  maxChars?: number;
  /** Pages larger than this fail the run. @default 2 MiB */
  maxPageBytes?: number;
}

export interface WebToVoiceInput {
  /** An http or https page. */
  url: string;
  /** An espeak-ng voice, such as `en-us`. @default the service's */
  voice?: string;
  /** Words per minute. @default the service's */
  speed?: number;
}

export interface WebToVoiceOutput {
  /** The stored audio's absolute path. */
  file: string;
  bytes: number;
  /** From the WAV header. */
  durationMs: number;
  /** True when the fallback clip stands in for the page. */
  degraded: boolean;
}

interface Audio {
  /** Where the audio is now: a file in the spool directory, or the fallback clip. */
  path: string;
  bytes: number;
  durationMs: number;
  fallback: boolean;
}

interface CatalogueEntry {
  runId: string;
  url: string;
  title: string;
  file: string;
  bytes: number;
  durationMs: number;
  degraded: boolean;
}

/** A failure no retry can mend (the engine and the registry do not retry it). */
const permanent = (message: string, cause?: unknown) =>
  Object.assign(new Error(message, { cause }), { transient: false });

export function webToVoice(
  options: WebToVoiceOptions,
): WorkflowDefinition<WebToVoiceInput, WebToVoiceOutput> {
  const { registry, outDir, fallbackClip } = options;
  const maxChars = options.maxChars ?? 5_000;
  const maxPageBytes = options.maxPageBytes ?? 2 * 1024 * 1024;
  const spoolDir = join(outDir, '.spool');
  const catalogueFile = join(outDir, 'catalogue.json');
  // Runs of this process add to the catalogue one at a time, so none overwrites another's entry.
  let catalogueTurn: Promise<unknown> = Promise.resolve();

  return defineWorkflow(
    {
      name: 'web-to-voice',
      version: '1',
      description: 'Reads a web page aloud: fetch, extract, synthesise, store',
      steps: ['fetch', 'extract', 'synthesise', 'store', 'catalogue'],
    },
    async (ctx, input: WebToVoiceInput): Promise<WebToVoiceOutput> => {
      // The `web` dependency's pipeline retries; the step does not add retries of its own.
      const page = await ctx.step('fetch', { retry: false }, async ({ signal }) => {
        const url = httpUrl(input.url);
        checkVoice(input);
        const response = await registry.fetch('web', url, {
          signal,
          operation: 'get_page',
          headers: { accept: 'text/html, application/xhtml+xml;q=0.9, text/plain;q=0.5' },
        });
        const type = (response.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
        if (!['text/html', 'application/xhtml+xml', 'text/plain'].includes(type)) {
          await response.body?.cancel();
          throw permanent(`${url} is ${type || 'of no stated type'}, not a page to read`);
        }
        const body = await readCapped(response, maxPageBytes, url);
        return {
          url: response.url || url,
          html: type === 'text/plain' ? '' : body,
          plain: type === 'text/plain' ? body : '',
        };
      });
      ctx.progress(25, 'page fetched');

      const { title, text } = await ctx.step('extract', () => {
        const extracted =
          page.html === '' ? { title: '', text: page.plain } : extractPage(page.html, page.url);
        const speech = speakable(extracted.title, extracted.text, maxChars);
        if (speech === '') throw permanent(`${page.url} has no text to read`);
        return { title: extracted.title, text: speech };
      });
      ctx.progress(50, 'text extracted');

      const audio = await ctx.step<Audio>(
        'synthesise',
        {
          retry: false,
          // An open voice circuit would park the step until the circuit half-opens; a listener
          // would rather hear the fallback now, so the refusal fails the step at once.
          whenCircuitOpen: 'fail',
          // Any failure the voice pipeline gave up on, an open circuit, or a body that is not a
          // WAV: the clip stands in.
          fallback: async () => ({ ...(await wavFile(fallbackClip)), path: fallbackClip, fallback: true }),
        },
        async ({ signal, runId, idempotencyKey }) => {
          try {
            const response = await registry.fetch('voice', '/v1/speech', {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
              body: JSON.stringify({ text, voice: input.voice, speed: input.speed }),
              signal,
              operation: 'synthesise',
            });
            await mkdir(spoolDir, { recursive: true });
            const path = join(spoolDir, `${runId}.wav`);
            await pipeline(
              Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>),
              createWriteStream(path),
            );
            return { ...(await wavFile(path)), path, fallback: false };
          } catch (error) {
            const last = error instanceof RetriesExhaustedError ? error.cause : error;
            // The timeline keeps the message only: name the network fault behind undici's "fetch failed".
            const code = (last as { cause?: { code?: unknown } } | undefined)?.cause?.code;
            if (typeof code === 'string' && error instanceof Error) error.message += ` (${code})`;
            throw error;
          }
        },
      );
      ctx.progress(80, audio.fallback ? 'fallback clip used' : 'speech synthesised');

      const stored = await ctx.step(
        'store',
        {
          compensate: async (out: WebToVoiceOutput) => {
            await rm(out.file, { force: true });
            if (!audio.fallback) await rm(audio.path, { force: true });
          },
        },
        async ({ runId }) => {
          await mkdir(outDir, { recursive: true });
          // The run id's random end: its beginning (UUIDv7) is the time, shared by runs started together.
          const file = join(outDir, `${slug(title) || 'page'}-${runId.slice(-12)}.wav`);
          // Copied under a temporary name, then renamed: a reader never sees half a file.
          const partial = join(outDir, `.${basename(file)}.${process.pid}.partial`);
          await copyFile(audio.path, partial);
          await rename(partial, file);
          return { file, bytes: audio.bytes, durationMs: audio.durationMs, degraded: audio.fallback };
        },
      );
      ctx.progress(95, 'audio stored');

      await ctx.step('catalogue', { retry: false }, ({ runId }) => {
        const entry: CatalogueEntry = { runId, url: page.url, title, ...stored, file: basename(stored.file) };
        const turn = catalogueTurn.then(() => addToCatalogue(catalogueFile, entry));
        catalogueTurn = turn.catch(() => {});
        // The spooled copy goes last: until the audio is stored and listed, a step run again
        // after a crash must still find it.
        return turn.then(async () => {
          if (!audio.fallback) await rm(audio.path, { force: true });
          return entry;
        });
      });
      return stored;
    },
  );
}

function httpUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw permanent(`input.url: '${text}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw permanent(`input.url: only http and https pages can be read, not ${url.protocol}`);
  }
  return url.href;
}

/** The voice service's own rules, checked before any call: a bad input fails the run, not the voice. */
function checkVoice(input: WebToVoiceInput): void {
  if (input.voice !== undefined && (typeof input.voice !== 'string' || !VOICE_NAME.test(input.voice))) {
    throw permanent(`input.voice: '${input.voice}' is not a voice name such as en, en-us or en+f3`);
  }
  if (
    input.speed !== undefined &&
    (!Number.isInteger(input.speed) || input.speed < SPEED.min || input.speed > SPEED.max)
  ) {
    throw permanent(
      `input.speed: expected whole words per minute from ${SPEED.min} to ${SPEED.max}, got ${input.speed}`,
    );
  }
}

/** The body as text, refusing pages past `limit` bytes without reading the rest. */
async function readCapped(response: Response, limit: number, url: string): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (declared > limit) {
    await response.body?.cancel();
    throw permanent(`${url} is ${declared} bytes; pages up to ${limit} bytes are read`);
  }
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    bytes += chunk.length;
    if (bytes > limit) throw permanent(`${url} is larger than ${limit} bytes; pages up to that are read`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The title and text as one passage of at most `max` characters, cut at a sentence or word end. */
export function speakable(title: string, text: string, max: number): string {
  const body = text.replace(/\s+/g, ' ').trim();
  const head = title.replace(/\s+/g, ' ').trim();
  let all = head !== '' && !body.startsWith(head) ? `${head}. ${body}` : body;
  all = all.trim();
  const chars = [...all];
  if (chars.length <= max) return all;
  const cut = chars.slice(0, max).join('');
  const sentence = Math.max(cut.lastIndexOf('. '), cut.lastIndexOf('! '), cut.lastIndexOf('? '));
  if (sentence > max / 2) return cut.slice(0, sentence + 1);
  const word = cut.lastIndexOf(' ');
  return word > 0 ? cut.slice(0, word) : cut;
}

function slug(title: string): string {
  return title
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60)
    .replace(/-+$/, '');
}

/** Size and duration of a WAV file, checking its header against its size. */
async function wavFile(path: string): Promise<{ bytes: number; durationMs: number }> {
  const { size } = await stat(path);
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(Math.min(size, 4_096));
    await handle.read(head, 0, head.length, 0);
    const info = readWavInfo(head);
    if (info.dataOffset + info.dataBytes > size) {
      throw new TypeError(
        `the header claims ${info.dataBytes} bytes of samples; the file has ${size - info.dataOffset}`,
      );
    }
    if (info.dataBytes === 0) throw new TypeError('the WAV holds no samples');
    return { bytes: size, durationMs: info.durationMs };
  } catch (error) {
    throw permanent(`${path}: ${(error as Error).message}`, error);
  } finally {
    await handle.close();
  }
}

/** Adds (or replaces, for the same run) an entry; the file is replaced whole, never half-written. */
async function addToCatalogue(file: string, entry: CatalogueEntry): Promise<void> {
  let entries: CatalogueEntry[] = [];
  try {
    entries = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw permanent(
        `${file} cannot be read as a catalogue (${(error as Error).message}); fix or remove it`,
      );
    }
  }
  if (!Array.isArray(entries)) throw permanent(`${file} is not a JSON list; fix or remove it`);
  const next = [...entries.filter((e) => e.runId !== entry.runId), entry];
  const partial = `${file}.${process.pid}.partial`;
  await writeFile(partial, `${JSON.stringify(next, null, 2)}\n`);
  await rename(partial, file);
}
