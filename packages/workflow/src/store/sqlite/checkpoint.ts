// Checkpoints of the write-ahead log in a worker thread, for a store that syncs in the thread
// pool: SQLite's automatic checkpoint runs inside a commit, on the event loop, and copies and
// syncs a thousand pages there (about 10 ms on a small disk), which every request waits behind.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Commits between two checkpoints. SQLite's own default is every 1,000 pages of log; a commit of
 * this store writes a handful of pages, so this keeps the log around the same few megabytes.
 */
const EVERY_COMMITS = 200;

/** The worker: its own connection to the same file, one PASSIVE checkpoint per message. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = ' + workerData.busyTimeoutMs);
db.pragma('synchronous = FULL');
parentPort.on('message', () => {
  try {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, log: row.log, checkpointed: row.checkpointed });
  } catch (error) {
    parentPort.postMessage({ ok: false, message: String(error && error.message || error) });
  }
});
parentPort.once('close', () => db.close());
`;

/**
 * Two checkpoints per round, both in the worker. The first runs beside new commits and copies the
 * bulk of the log, with its two fsyncs, while writes go on. But SQLite rewinds the log only after
 * a checkpoint that copied all of it, and commits made during the first leave frames behind it:
 * under steady writes the log would never rewind and would grow without end. So after the next
 * commit a second checkpoint runs while no write is applied (GroupCommit's `maintain`): it copies
 * only what the first left behind. Writes made meanwhile wait for it, as they wait for a sync;
 * the event loop never does.
 */
export class WalCheckpointer {
  /** `checkpoints`: those the worker completed (a fallback on the store's connection is not counted). */
  readonly stats = { checkpoints: 0 };
  readonly #path: string;
  readonly #busyTimeoutMs: number;
  readonly #fallback: () => void;
  #worker: Worker | undefined;
  /** Called when the checkpoint in flight ends, however it ends. */
  #done: (() => void) | undefined;
  #inFlight = false;
  /** The first checkpoint of a round has ended: the second is due after the next commit. */
  #catchUp = false;
  #since = 0;
  #closed = false;

  /** `fallback` checkpoints on the store's own connection (blocking: the last resort). */
  constructor(path: string, busyTimeoutMs: number, fallback: () => void) {
    this.#path = path;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#fallback = fallback;
  }

  /**
   * After a durable commit: true when the second checkpoint of a round has started, in which case
   * `done` is called once it has ended (the next transaction waits until then); false otherwise.
   */
  maintain(done: () => void): boolean {
    if (this.#closed || this.#inFlight) return false;
    if (this.#catchUp) {
      this.#catchUp = false;
      this.#run(done);
      return true;
    }
    if (++this.#since < EVERY_COMMITS) return false;
    this.#since = 0;
    this.#run(() => {
      this.#catchUp = true;
    });
    return false;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }

  #run(done: () => void): void {
    this.#inFlight = true;
    this.#done = done;
    this.#started().postMessage(null);
  }

  #end(): void {
    const done = this.#done;
    this.#done = undefined;
    this.#inFlight = false;
    done?.();
  }

  #started(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        module: createRequire(import.meta.url).resolve('better-sqlite3'),
        path: this.#path,
        busyTimeoutMs: this.#busyTimeoutMs,
      },
    });
    // Idle between checkpoints: it must not keep the process alive.
    worker.unref();
    worker.on('message', (result: { ok: boolean }) => {
      if (result.ok) this.stats.checkpoints++;
      this.#end();
    });
    worker.on('error', () => {
      // This checkpoint is done here instead; a new worker starts for the next one.
      this.#worker = undefined;
      try {
        this.#fallback();
      } finally {
        this.#end();
      }
    });
    this.#worker = worker;
    return worker;
  }
}
