// Loopback HTTP servers for the HTTP client's tests: real sockets on 127.0.0.1, port 0, that
// record what arrives and misbehave on purpose. Not a test file; everything closes after its test.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { type Clock, HttpClient, type HttpOptions } from '@bulwark/core';

export interface RecordedRequest {
  method: string;
  /** Path and query, as the server saw them. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface TestServer {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  readonly origin: string;
  readonly requests: RecordedRequest[];
  /** TCP connections accepted so far. */
  readonly connections: number;
}

export type Handler = (
  request: RecordedRequest,
  res: ServerResponse,
  req: IncomingMessage,
) => void | Promise<void>;

/** Starts a server for this test (closed, with every socket, when the test ends). */
export async function serve(t: TestContext, handler: Handler): Promise<TestServer> {
  const requests: RecordedRequest[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(recorded);
      Promise.resolve(handler(recorded, res, req)).catch((error: unknown) => {
        res.destroy(error as Error);
      });
    });
  });
  // Longer than the client's keep-alive, so that the client decides when sockets close.
  server.keepAliveTimeout = 30_000;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    get connections() {
      return connections;
    },
  };
}

/** An HttpClient closed when the test ends. */
export function client(t: TestContext, options?: HttpOptions, clock?: Clock, name = 'api'): HttpClient {
  const c = new HttpClient(name, options, clock === undefined ? undefined : { clock });
  t.after(() => c.close());
  return c;
}

/** Ends a response with a status, JSON or text body and headers. */
export function reply(
  res: ServerResponse,
  status: number,
  body: unknown = '',
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** Settles after `ms` of real time: only for servers that answer late on purpose. */
export const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
