// Three loopback stand-ins for AI providers with an OpenAI-like `POST /v1/chat/completions`, each
// sick in its own way, and each keeping its own count of what it received, so the example can
// check Bulwark's view of the calls against the providers' own.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a provider did with the requests it received, by its own count. */
export interface ProviderCounts {
  requests: number;
  /** Answered 200 with a completion. */
  served: number;
  /** Answered 500. */
  errors: number;
  /** Connections destroyed without an answer. */
  resets: number;
  /** Answered 429 with `Retry-After`. */
  rateLimited: number;
  /** Requests that arrived before the `Retry-After` this provider had last given had passed. */
  early: number;
}

export interface Provider {
  readonly name: string;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly counts: ProviderCounts;
  close(): Promise<void>;
}

export interface FailingProvider extends Provider {
  /** From now on, serve every request. */
  recover(): void;
}

/** Answers each request: a completion, or the provider's fault of the moment. */
type Behaviour = (
  now: number,
  counts: ProviderCounts,
) => { status: 200 } | { status: 429 | 500; headers?: Record<string, string> } | 'reset';

/** The body a client must send, so a wrong request is told apart from a sick provider. */
interface ChatRequest {
  model: string;
  messages: { role: string; content: string }[];
}

/** Fails every request until `recover()`: 500s and connection resets, in turn. */
export function startFailingProvider(name: string, apiKey: string): Promise<FailingProvider> {
  let healthy = false;
  let n = 0;
  return listen(name, apiKey, () => {
    if (healthy) return { status: 200 };
    return n++ % 2 === 0 ? { status: 500 } : 'reset';
  }).then((provider) =>
    Object.assign(provider, {
      recover() {
        healthy = true;
      },
    }),
  );
}

/**
 * A provider with a quota: `perWindow` requests, then 429 with `Retry-After` for `pauseMs`. It
 * starts out of quota, as if other clients had used it up, so its first answer is a 429.
 */
export function startRateLimitedProvider(
  name: string,
  apiKey: string,
  options: { perWindow: number; pauseMs: number },
): Promise<Provider> {
  let pausedUntil = Date.now() + options.pauseMs;
  let used = 0;
  // Where the last Retry-After pointed: a client that honours it sends nothing before then.
  let retryAfterEnds = 0;
  return listen(name, apiKey, (now, counts) => {
    if (now < retryAfterEnds) counts.early++;
    if (now >= pausedUntil && used === options.perWindow) {
      pausedUntil = now + options.pauseMs;
      used = 0;
    }
    if (now < pausedUntil) {
      const seconds = Math.ceil((pausedUntil - now) / 1000);
      retryAfterEnds = now + seconds * 1000;
      return { status: 429, headers: { 'retry-after': String(seconds) } };
    }
    used++;
    return { status: 200 };
  });
}

/** Serves every request. */
export function startHealthyProvider(name: string, apiKey: string): Promise<Provider> {
  return listen(name, apiKey, () => ({ status: 200 }));
}

async function listen(name: string, apiKey: string, behaviour: Behaviour): Promise<Provider> {
  const counts: ProviderCounts = { requests: 0, served: 0, errors: 0, resets: 0, rateLimited: 0, early: 0 };
  const server = createServer((req, res) => {
    handle(req, res).catch((error: Error) => problem(res, 500, error.message));
  });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.url !== '/v1/chat/completions') return problem(res, 404, `no route ${req.url}`);
    if (req.method !== 'POST') return problem(res, 405, 'use POST');
    if (req.headers.authorization !== `Bearer ${apiKey}`)
      return problem(res, 401, 'a valid API key is required');
    const body = await readBody(req);
    let chat: ChatRequest;
    try {
      chat = JSON.parse(body) as ChatRequest;
    } catch {
      return problem(res, 400, 'the body is not JSON');
    }
    const prompt = Array.isArray(chat.messages) ? chat.messages.at(-1)?.content : undefined;
    if (typeof prompt !== 'string') return problem(res, 400, 'messages must end with a message with content');
    counts.requests++;
    const answer = behaviour(Date.now(), counts);
    if (answer === 'reset') {
      counts.resets++;
      req.socket.destroy();
      return;
    }
    if (answer.status === 429) {
      counts.rateLimited++;
      return problem(res, 429, 'rate limit reached', 'headers' in answer ? answer.headers : undefined);
    }
    if (answer.status === 500) {
      counts.errors++;
      return problem(res, 500, 'the model server crashed');
    }
    counts.served++;
    const completion = {
      id: `chatcmpl-${name}-${counts.served}`,
      object: 'chat.completion',
      model: chat.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: `${name} answers: ${prompt.length} characters received.` },
          finish_reason: 'stop',
        },
      ],
      usage: { prompt_tokens: Math.ceil(prompt.length / 4), completion_tokens: 8 },
    };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completion));
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > 64 * 1024) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function problem(
  res: ServerResponse,
  status: number,
  detail: string,
  headers: Record<string, string> = {},
): void {
  res
    .writeHead(status, { 'content-type': 'application/problem+json', ...headers })
    .end(JSON.stringify({ type: 'about:blank', status, title: detail, detail }));
}
