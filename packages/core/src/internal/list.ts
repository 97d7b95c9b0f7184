// An intrusive doubly linked list: nodes carry their own links, so joining and leaving are O(1)
// and allocate nothing. Every queue in the core (waiters, deadlines, LRU order) is one of these.

/** The links a node of a {@link List} carries. @internal */
export interface Linked<N> {
  prev: N | undefined;
  next: N | undefined;
}

/** @internal */
export class List<N extends Linked<N>> {
  head: N | undefined;
  tail: N | undefined;
  size = 0;

  push(node: N): void {
    node.prev = this.tail;
    node.next = undefined;
    if (this.tail !== undefined) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    this.size++;
  }

  /** Links `node` just before `ref`, which must be in the list. */
  insertBefore(node: N, ref: N): void {
    node.next = ref;
    node.prev = ref.prev;
    if (ref.prev !== undefined) ref.prev.next = node;
    else this.head = node;
    ref.prev = node;
    this.size++;
  }

  /** Forgets every node at once (their stale links go with them to the collector). */
  clear(): void {
    this.head = this.tail = undefined;
    this.size = 0;
  }

  /** Unlinks `node`; false if it was not in the list (already removed). */
  remove(node: N): boolean {
    if (node.prev === undefined && this.head !== node) return false;
    if (node.prev !== undefined) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next !== undefined) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = undefined;
    this.size--;
    return true;
  }
}
