// The misbehaving upstreams of `bulwark demo`: real HTTP servers on 127.0.0.1 that answer by a
// script of phases (added latency, connection resets, hangs past the timeout, 5xx bursts, then
// recovery). Each upstream deals from its own seeded generator, so one seed gives one script.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The upstreams the demo starts, one server each. */
export const UPSTREAMS = ['inventory', 'payments', 'search'] as const;
export type UpstreamName = (typeof UPSTREAMS)[number];

/** How an upstream answers during a phase: shares of requests that hang, reset or fail, and the latency of the rest. */
export interface Behaviour {
  /** Each answer waits between these two, in ms. */
  readonly latencyMs: readonly [number, number];
  /** The share of requests never answered (until the caller gives up). */
  readonly hang: number;
  /** The share of requests whose connection is destroyed without an answer. */
  readonly reset: number;
  /** The share of requests answered 503, after the latency. */
  readonly error: number;
}

export interface Phase {
  readonly name: string;
  /** What happens, for the live view and the report. */
  readonly title: string;
  /** From the start of the demo, in ms. */
  readonly fromMs: number;
  readonly toMs: number;
  readonly upstreams: Readonly<Record<UpstreamName, Behaviour>>;
}

/** What one request got. */
export type Decision = 'ok' | 'error' | 'reset' | 'hang';

const CALM: Behaviour = { latencyMs: [5, 30], hang: 0, reset: 0, error: 0 };

/**
 * The demo's five phases, as shares of its duration so that a short demo tells the same story
 * as a long one. Pure: the same duration gives the same phases.
 */
export function demoPhases(durationMs: number): Phase[] {
  const parts: [string, string, number, Partial<Record<UpstreamName, Behaviour>>][] = [
    ['calm', 'every upstream healthy', 0.15, {}],
    [
      'slow',
      'inventory slows down past its timeout; search hangs on a fifth of its requests',
      0.2,
      {
        inventory: { latencyMs: [120, 450], hang: 0, reset: 0, error: 0 },
        search: { latencyMs: [5, 30], hang: 0.2, reset: 0, error: 0 },
      },
    ],
    [
      'flaky',
      'payments resets a third of its connections and answers 503 now and then',
      0.15,
      { payments: { latencyMs: [5, 30], hang: 0, reset: 0.3, error: 0.1 } },
    ],
    [
      'outage',
      'payments answers 503 to everything; search fails half its requests',
      0.25,
      {
        payments: { latencyMs: [5, 20], hang: 0, reset: 0, error: 1 },
        search: { latencyMs: [5, 30], hang: 0, reset: 0, error: 0.5 },
      },
    ],
    ['recovery', 'every upstream healthy again', 0.25, {}],
  ];
  const phases: Phase[] = [];
  let from = 0;
  for (const [i, [name, title, share, overrides]] of parts.entries()) {
    const to = i === parts.length - 1 ? durationMs : Math.round(from + share * durationMs);
    const upstreams = Object.fromEntries(UPSTREAMS.map((u) => [u, overrides[u] ?? CALM])) as Record<
      UpstreamName,
      Behaviour
    >;
    phases.push({ name, title, fromMs: from, toMs: to, upstreams });
    from = to;
  }
  return phases;
}

/** The phase at `elapsedMs` (the last one after the end). */
export function phaseAt(phases: readonly Phase[], elapsedMs: number): Phase {
  for (const phase of phases) if (elapsedMs < phase.toMs) return phase;
  return phases[phases.length - 1]!;
}

/** A small seeded generator (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Decisions are dealt from a shuffled deck of this many cards per behaviour (a phase's, for one upstream). */
const DECK = 20;

/**
 * An upstream's script: what each request gets, dealt from a shuffled deck per phase, so that
 * every twenty requests of a phase hold its shares exactly (a short demo still sees its hangs)
 * while the order and the latencies come from the seed.
 */
export class Script {
  readonly #random: () => number;
  readonly #decks = new Map<Behaviour, Decision[]>();

  constructor(seed: number) {
    this.#random = seeded(seed);
  }

  next(behaviour: Behaviour): { decision: Decision; latencyMs: number } {
    let deck = this.#decks.get(behaviour);
    if (deck === undefined || deck.length === 0) {
      deck = this.#shuffle(behaviour);
      this.#decks.set(behaviour, deck);
    }
    const decision = deck.pop()!;
    const [min, max] = behaviour.latencyMs;
    return { decision, latencyMs: Math.round(min + this.#random() * (max - min)) };
  }

  #shuffle(b: Behaviour): Decision[] {
    const cards: Decision[] = [];
    for (const [decision, share] of [
      ['hang', b.hang],
      ['reset', b.reset],
      ['error', b.error],
    ] as const) {
      for (let i = 0; i < Math.round(share * DECK); i++) cards.push(decision);
    }
    while (cards.length < DECK) cards.push('ok');
    cards.length = DECK;
    for (let i = cards.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [cards[i], cards[j]] = [cards[j]!, cards[i]!];
    }
    return cards;
  }
}

/** What an upstream saw, counted on its side of the wire: the demo's independent record. */
export interface UpstreamLog {
  readonly name: UpstreamName;
  readonly url: string;
  /** Requests received. */
  readonly received: number;
  readonly decisions: Readonly<Record<Decision, number>>;
  /** Requests received, by phase name. */
  readonly byPhase: Readonly<Record<string, number>>;
}

export interface Upstream {
  readonly name: UpstreamName;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  log(): UpstreamLog;
  close(): Promise<void>;
}

export interface UpstreamOptions {
  phases: readonly Phase[];
  /** The generator's seed; each upstream mixes in its own index. */
  seed: number;
  /** Milliseconds since the demo started. */
  elapsed: () => number;
}

/** Starts one upstream on 127.0.0.1 and a free port. */
async function startUpstream(name: UpstreamName, options: UpstreamOptions): Promise<Upstream> {
  const script = new Script(options.seed * 31 + UPSTREAMS.indexOf(name) + 1);
  const decisions: Record<Decision, number> = { ok: 0, error: 0, reset: 0, hang: 0 };
  const byPhase: Record<string, number> = Object.fromEntries(options.phases.map((p) => [p.name, 0]));
  let received = 0;
  /** Answers waiting out their latency, and hanging requests: ended when the server closes. */
  const pending = new Set<ServerResponse>();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    received++;
    const phase = phaseAt(options.phases, options.elapsed());
    byPhase[phase.name] = (byPhase[phase.name] ?? 0) + 1;
    const { decision, latencyMs } = script.next(phase.upstreams[name]);
    decisions[decision]++;
    // The request body is read and dropped: the demo's calls carry nothing the upstream needs.
    req.resume();
    if (decision === 'reset') {
      req.socket.destroy();
      return;
    }
    pending.add(res);
    let timer: NodeJS.Timeout | undefined;
    // Answered, or the caller gave up (its timeout closed the connection): nothing is left to do.
    res.on('close', () => {
      pending.delete(res);
      clearTimeout(timer);
    });
    if (decision === 'hang') return;
    timer = setTimeout(() => {
      const status = decision === 'error' ? 503 : 200;
      const body =
        decision === 'error' ? { error: `${name} is unavailable` } : { upstream: name, n: received };
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    }, latencyMs);
  };

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    name,
    url,
    log: () => ({ name, url, received, decisions: { ...decisions }, byPhase: { ...byPhase } }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of pending) res.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Starts every upstream; if one fails to start, those started are closed again. */
export async function startUpstreams(options: UpstreamOptions): Promise<Upstream[]> {
  const started: Upstream[] = [];
  try {
    for (const name of UPSTREAMS) started.push(await startUpstream(name, options));
    return started;
  } catch (error) {
    await Promise.all(started.map((u) => u.close()));
    throw error;
  }
}
