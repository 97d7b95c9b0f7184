// Deadlines of one policy (a timeout's budgets, a hedge's delays), served by a single clock
// timer: deadlines mostly arrive in order, so a sorted list replaces a timer per call.

import type { Clock, TimerHandle } from '../clock/clock.ts';
import { type Linked, List } from './list.ts';

/** A call waiting for its deadline: a node of the queue's doubly linked list. @internal */
export interface Deadline extends Linked<Deadline> {
  due: number;
  queued: boolean;
  onDeadline(): void;
}

/**
 * One timer for the earliest pending deadline. When the last call leaves, the timer is parked
 * (unref'd, so it never holds the process open, and not re-armed when it fires) on clocks
 * that can do so, and cleared on others; re-arming costs a timer only after the park lapsed.
 * @internal
 */
export class DeadlineQueue {
  readonly #clock: Clock;
  readonly #list = new List<Deadline>();
  #timer: TimerHandle | undefined;
  #timerDue = 0;
  #parked = false;
  readonly #fire = () => this.#onTimer();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  add(entry: Deadline, ms: number): void {
    const due = this.#clock.now() + ms;
    entry.due = due;
    entry.queued = true;
    const tail = this.#list.tail;
    if (tail === undefined || tail.due <= due) {
      this.#list.push(entry);
    } else {
      // A shorter delay than the last one (a hedge's adaptive delay): walk back to its place.
      let ref = tail;
      while (ref.prev !== undefined && ref.prev.due > due) ref = ref.prev;
      this.#list.insertBefore(entry, ref);
    }
    if (this.#timer === undefined) {
      this.#arm(due, ms);
    } else {
      if (this.#parked) {
        this.#parked = false;
        this.#clock.keepAlive!(this.#timer, true);
      }
      // The wall clock may step back: never let an earlier deadline wait for a later timer.
      if (due < this.#timerDue) {
        this.#clock.clearTimeout(this.#timer);
        this.#arm(due, ms);
      }
    }
  }

  remove(entry: Deadline): void {
    if (!entry.queued) return;
    entry.queued = false;
    this.#list.remove(entry);
    if (this.#list.head === undefined && this.#timer !== undefined) this.#idle();
  }

  #idle(): void {
    const clock = this.#clock;
    if (clock.keepAlive !== undefined) {
      this.#parked = true;
      clock.keepAlive(this.#timer!, false);
    } else {
      clock.clearTimeout(this.#timer!);
      this.#timer = undefined;
    }
  }

  #arm(due: number, ms: number): void {
    this.#timerDue = due;
    this.#parked = false;
    this.#timer = this.#clock.setTimeout(this.#fire, ms);
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#parked = false;
    const now = this.#clock.now();
    for (let entry = this.#list.head; entry !== undefined && entry.due <= now; entry = this.#list.head) {
      this.remove(entry);
      entry.onDeadline();
    }
    const head = this.#list.head;
    // Timers can fire a little before the wall clock reaches `due`: re-arm for the remainder.
    if (head !== undefined && this.#timer === undefined) this.#arm(head.due, Math.max(1, head.due - now));
  }
}
