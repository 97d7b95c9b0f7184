// A small speech service on loopback wrapping Debian's espeak-ng, so the web-to-voice example
// speaks with a real engine, offline. Run it alone with
// `node --import tsx examples/web-to-voice/voice-service.ts [--port 8086]`.
//
//   POST /v1/speech  { "text": "...", "voice"?: "en-us", "speed"?: 175 }  ->  200 audio/wav
//   GET  /health                                                          ->  200 application/health+json
//
// Faults are RFC 9457 problems: 400 (bad JSON or field), 413 (text or body too long), 415, 503
// with Retry-After (every engine busy, or a synthesis that ran out of time), 500 (engine failed).
import { execFile, spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { fixWavSizes, readWavInfo } from './wav.ts';

export interface VoiceServiceOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** The espeak-ng executable. @default 'espeak-ng' */
  command?: string;
  /** The longest text accepted, in characters. @default 5_000 */
  maxChars?: number;
  /** A synthesis still running after this long is killed. @default 20_000 */
  timeoutMs?: number;
  /** Syntheses at once; a request beyond gets 503 with Retry-After. @default the number of CPUs */
  maxConcurrent?: number;
  /** Hears each synthesis start and end (for logs and tests). */
  onEvent?: (event: VoiceEvent) => void;
}

export type VoiceEvent =
  | { type: 'started'; id: number; chars: number }
  | { type: 'finished'; id: number; bytes: number; durationMs: number; elapsedMs: number }
  | { type: 'killed'; id: number; reason: 'timeout' | 'aborted' }
  | { type: 'failed'; id: number; detail: string };

export interface VoiceService {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** espeak-ng's version line. */
  readonly engine: string;
  /** Stops listening and kills syntheses in flight. */
  close(): Promise<void>;
}

export interface SpeechOptions {
  /** An espeak-ng voice: a language such as `en-us`, optionally with a variant (`en+f3`). @default 'en' */
  voice?: string;
  /** Words per minute, 80 to 450. @default 175 */
  speed?: number;
  /** @default 'espeak-ng' */
  command?: string;
  /** @default 20_000 */
  timeoutMs?: number;
  /** Aborting kills the engine. */
  signal?: AbortSignal;
}

/** A voice name as espeak-ng takes it: letters, digits and dashes, an optional `+variant`; no paths. */
export const VOICE_NAME = /^[a-z0-9][a-z0-9-]{0,39}(\+[a-z0-9-]{1,20})?$/i;
export const SPEED = { min: 80, max: 450 } as const;
/** 5,000 characters at the slowest speed make about 30 MB of audio: this only stops a runaway engine. */
const MAX_AUDIO_BYTES = 64 * 1024 * 1024;

/** Why a synthesis did not produce audio. */
export class SpeechError extends Error {
  constructor(
    readonly reason: 'unknown-voice' | 'timeout' | 'engine-failed' | 'engine-missing',
    message: string,
  ) {
    super(message);
    this.name = 'SpeechError';
  }
}

/**
 * Renders `text` to WAV with espeak-ng. The text goes in on stdin and every option is its own
 * argument (no shell), so nothing in the text or the voice name can become a command or an option.
 */
export function renderSpeech(text: string, options: SpeechOptions = {}): Promise<Buffer> {
  const voice = options.voice ?? 'en';
  const speed = options.speed ?? 175;
  if (!VOICE_NAME.test(voice)) return Promise.reject(new TypeError(`invalid voice name '${voice}'`));
  if (!Number.isInteger(speed) || speed < SPEED.min || speed > SPEED.max) {
    return Promise.reject(
      new RangeError(`speed must be whole words per minute from ${SPEED.min} to ${SPEED.max}`),
    );
  }
  const args = ['--stdout', '--stdin', '-b', '1', '-v', voice, '-s', String(speed)];
  return new Promise((resolvePromise, reject) => {
    if (options.signal?.aborted) return reject(options.signal.reason);
    const child = spawn(options.command ?? 'espeak-ng', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let bytes = 0;
    let stderr = '';
    let failure: unknown;
    const stop = (reason: unknown) => {
      failure ??= reason;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(
      () =>
        stop(new SpeechError('timeout', `synthesis did not finish within ${options.timeoutMs ?? 20_000} ms`)),
      options.timeoutMs ?? 20_000,
    );
    const onAbort = () => stop(options.signal!.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_AUDIO_BYTES)
        stop(new SpeechError('engine-failed', 'the engine wrote more audio than allowed'));
      else chunks.push(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 4_096) stderr += chunk;
    });
    // The engine may exit (bad voice) before reading its input: that EPIPE is not the failure.
    child.stdin.on('error', () => {});
    child.stdin.end(text, 'utf8');
    child.on('error', (error: NodeJS.ErrnoException) => {
      failure ??=
        error.code === 'ENOENT'
          ? new SpeechError('engine-missing', `${options.command ?? 'espeak-ng'} is not installed`)
          : error;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (failure !== undefined) return reject(failure);
      if (code !== 0) {
        const said = stderr.trim().split('\n')[0] ?? '';
        return reject(
          /voice does not exist/i.test(said)
            ? new SpeechError('unknown-voice', `espeak-ng has no voice '${voice}'`)
            : new SpeechError(
                'engine-failed',
                `espeak-ng exited with code ${code}${said ? `: ${said}` : ''}`,
              ),
        );
      }
      try {
        resolvePromise(Buffer.from(fixWavSizes(Buffer.concat(chunks))));
      } catch (error) {
        reject(
          new SpeechError('engine-failed', `espeak-ng wrote no usable WAV: ${(error as Error).message}`),
        );
      }
    });
  });
}

/** Starts the service; rejects at once if espeak-ng cannot be run. */
export async function startVoiceService(options: VoiceServiceOptions = {}): Promise<VoiceService> {
  const command = options.command ?? 'espeak-ng';
  const maxChars = options.maxChars ?? 5_000;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const maxConcurrent = options.maxConcurrent ?? availableParallelism();
  // JSON may spell a character as a six-byte \uXXXX escape; a body past that cannot hold valid text.
  const maxBodyBytes = maxChars * 6 + 1_024;
  const emit = options.onEvent ?? (() => {});
  const engine = await promisify(execFile)(command, ['--version'], { timeout: 10_000 }).then(
    // "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/...": the name and version only.
    ({ stdout }) => stdout.trim().split(/\n| {2}/)[0]!,
    (error: NodeJS.ErrnoException) => {
      throw new SpeechError(
        'engine-missing',
        error.code === 'ENOENT'
          ? `${command} is not installed (on Debian: apt-get install espeak-ng)`
          : `${command} --version failed: ${error.message}`,
      );
    },
  );
  const inFlight = new Set<AbortController>();
  let nextId = 1;

  const speak = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      return problem(
        res,
        415,
        'unsupported-media-type',
        `send the request as application/json, not '${type}'`,
      );
    }
    const body = await readBody(req, maxBodyBytes);
    if (body === undefined) {
      return problem(res, 413, 'too-large', `the body is larger than ${maxBodyBytes} bytes`, {}, true);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (error) {
      return problem(res, 400, 'malformed-body', `the body is not valid JSON: ${(error as Error).message}`);
    }
    const request = validate(parsed, maxChars);
    if ('status' in request) {
      const code = request.status === 413 ? 'too-large' : 'invalid-request';
      return problem(res, request.status, code, request.detail, { errors: [request.field] });
    }
    if (inFlight.size >= maxConcurrent) {
      return problem(res, 503, 'busy', `all ${maxConcurrent} engines are busy`, {}, false, {
        'retry-after': '1',
      });
    }
    const id = nextId++;
    const controller = new AbortController();
    inFlight.add(controller);
    // The client hung up before its answer: the engine's work is for nobody, so it is killed.
    res.on('close', () => {
      if (!res.writableFinished) controller.abort(new Error('the client went away'));
    });
    const started = performance.now();
    emit({ type: 'started', id, chars: request.chars });
    try {
      const wav = await renderSpeech(request.text, {
        voice: request.voice,
        speed: request.speed,
        command,
        timeoutMs,
        signal: controller.signal,
      });
      const { durationMs } = readWavInfo(wav);
      emit({
        type: 'finished',
        id,
        bytes: wav.length,
        durationMs,
        elapsedMs: Math.round(performance.now() - started),
      });
      res
        .writeHead(200, {
          'content-type': 'audio/wav',
          'content-length': wav.length,
          'x-audio-duration-ms': durationMs,
        })
        .end(wav);
    } catch (error) {
      if (controller.signal.aborted) {
        emit({ type: 'killed', id, reason: 'aborted' });
        return;
      }
      if (error instanceof SpeechError && error.reason === 'timeout') {
        emit({ type: 'killed', id, reason: 'timeout' });
        return problem(res, 503, 'timeout', error.message, {}, false, { 'retry-after': '1' });
      }
      emit({ type: 'failed', id, detail: (error as Error).message });
      if (error instanceof SpeechError && error.reason === 'unknown-voice') {
        return problem(res, 400, 'invalid-request', error.message, {
          errors: [{ pointer: '/voice', detail: error.message }],
        });
      }
      return problem(res, 500, 'engine-failed', (error as Error).message);
    } finally {
      inFlight.delete(controller);
    }
  };

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://voice').pathname;
    const route =
      path === '/v1/speech'
        ? { method: 'POST', run: speak }
        : path === '/health'
          ? { method: 'GET', run: health }
          : undefined;
    if (route === undefined) return problem(res, 404, 'not-found', `no route ${path}`);
    if (req.method !== route.method) {
      return problem(res, 405, 'method-not-allowed', `use ${route.method} ${path}`, {}, false, {
        allow: route.method,
      });
    }
    route.run(req, res).catch((error: Error) => {
      if (!res.headersSent) problem(res, 500, 'internal', error.message);
      else res.destroy();
    });
  });
  const health = async (_req: IncomingMessage, res: ServerResponse): Promise<void> => {
    res.writeHead(200, { 'content-type': 'application/health+json' }).end(
      JSON.stringify({
        status: 'pass',
        checks: {
          'engine:utilization': [
            {
              componentType: 'component',
              observedValue: inFlight.size,
              observedUnit: 'syntheses',
              output: engine,
            },
          ],
        },
      }),
    );
  };
  await new Promise<void>((ready, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', ready);
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    engine,
    async close() {
      for (const controller of inFlight) controller.abort(new Error('the voice service is closing'));
      await new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      });
    },
  };
}

type Validated =
  | { text: string; chars: number; voice: string | undefined; speed: number | undefined }
  | { status: 400 | 413; detail: string; field: { pointer: string; detail: string } };

function validate(body: unknown, maxChars: number): Validated {
  const invalid = (status: 400 | 413, pointer: string, detail: string): Validated => ({
    status,
    detail: `${pointer.slice(1) || 'the body'}: ${detail}`,
    field: { pointer, detail },
  });
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return invalid(400, '', 'expected a JSON object { text, voice?, speed? }');
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).find((key) => !['text', 'voice', 'speed'].includes(key));
  if (unknown !== undefined)
    return invalid(400, `/${unknown}`, 'unknown field; expected text, voice or speed');
  const { text, voice, speed } = fields;
  if (typeof text !== 'string' || text.trim() === '')
    return invalid(400, '/text', 'expected a non-empty string');
  // Characters as people count them (code points), not UTF-16 units.
  let chars = 0;
  for (const _ of text) chars++;
  if (chars > maxChars) return invalid(413, '/text', `${chars} characters; at most ${maxChars} are accepted`);
  if (voice !== undefined && (typeof voice !== 'string' || !VOICE_NAME.test(voice))) {
    return invalid(400, '/voice', 'expected a voice name such as en, en-us or en+f3');
  }
  if (
    speed !== undefined &&
    (!Number.isInteger(speed) || (speed as number) < SPEED.min || (speed as number) > SPEED.max)
  ) {
    return invalid(400, '/speed', `expected whole words per minute from ${SPEED.min} to ${SPEED.max}`);
  }
  return { text, chars, voice: voice as string | undefined, speed: speed as number | undefined };
}

/** The body as text, or undefined once it passes `limit` bytes (the rest is not read). */
function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > limit) {
        req.off('data', onData);
        req.pause();
        done(undefined);
      } else chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => done(Buffer.concat(chunks).toString('utf8')));
    req.on('error', fail);
  });
}

function problem(
  res: ServerResponse,
  status: number,
  code: string,
  detail: string,
  extra: Record<string, unknown> = {},
  close = false,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify({
    type: `urn:bulwark-example:voice:${code}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    instance: res.req.url,
    ...extra,
  });
  // A body left unread would otherwise be read into the next request on this connection.
  if (close) headers.connection = 'close';
  res.writeHead(status, { 'content-type': 'application/problem+json', ...headers }).end(body);
}

const TITLES: Record<number, string> = {
  400: 'The request is invalid',
  404: 'Not found',
  405: 'Method not allowed',
  413: 'The request is too large',
  415: 'Unsupported media type',
  500: 'The speech engine failed',
  503: 'The speech engine is unavailable',
};

// Run alone: `node --import tsx examples/web-to-voice/voice-service.ts --port 8086`.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '8086' }, host: { type: 'string', default: '127.0.0.1' } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    process.stderr.write(`--port must be a port number from 0 to 65535, got '${values.port}'\n`);
    process.exit(2);
  }
  const service = await startVoiceService({
    port,
    host: values.host,
    onEvent: (e) => process.stdout.write(`${JSON.stringify(e)}\n`),
  }).catch((error: Error) => {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  });
  process.stdout.write(`voice service (${service.engine}) on ${service.url}\n`);
  process.stdout.write(
    `try: curl -s -X POST ${service.url}/v1/speech -H 'content-type: application/json' ` +
      `-d '{"text":"Hello from Bulwark"}' -o hello.wav\n`,
  );
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void service.close().then(() => process.exit(0));
    });
  }
}
