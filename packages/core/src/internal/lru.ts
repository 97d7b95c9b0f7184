// A bounded least-recently-used map whose hits never write to the underlying Map.
import { type Linked, List } from './list.ts';

/** One entry, linked in recency order. */
class LruNode<K, V> implements Linked<LruNode<K, V>> {
  prev: LruNode<K, V> | undefined = undefined;
  next: LruNode<K, V> | undefined = undefined;
  constructor(
    readonly key: K,
    public value: V,
  ) {}
}

/**
 * A `Map` from key to a node of a doubly linked list, least recently used at the head.
 *
 * Recency lives in the list rather than in the Map's insertion order: keeping it there would
 * need a `delete` + `set` per hit, and V8 keeps each deleted entry in its bucket chain until
 * the next rehash, so a hot key in a large map walks a growing chain of its own dead copies
 * (≈ 1.3 µs a touch with 1,000 entries). A hit here is one `Map.get` and an O(1) relink.
 * @internal
 */
export class Lru<K, V> {
  readonly #map = new Map<K, LruNode<K, V>>();
  /** Least recently used first. */
  readonly #order = new List<LruNode<K, V>>();
  readonly #max: number;
  readonly #canEvict: ((value: V) => boolean) | undefined;

  /**
   * @param max entries kept; a new entry past it evicts the least recently used ones.
   * @param canEvict entries it refuses are skipped by eviction, so the size may exceed `max`
   *   until they become evictable (and another entry is added).
   */
  constructor(max: number, canEvict?: (value: V) => boolean) {
    this.#max = max;
    this.#canEvict = canEvict;
  }

  get size(): number {
    return this.#map.size;
  }

  /** The key's value, made the most recently used. */
  get(key: K): V | undefined {
    const node = this.#map.get(key);
    if (node === undefined) return undefined;
    if (node !== this.#order.tail) this.#moveToTail(node);
    return node.value;
  }

  /** Inserts or updates the key as the most recently used, then evicts if a new key went past `max`. */
  set(key: K, value: V): void {
    const existing = this.#map.get(key);
    if (existing !== undefined) {
      existing.value = value;
      if (existing !== this.#order.tail) this.#moveToTail(existing);
      return;
    }
    const node = new LruNode(key, value);
    this.#order.push(node);
    this.#map.set(key, node);
    if (this.#map.size > this.#max) this.#evict();
  }

  delete(key: K): boolean {
    const node = this.#map.get(key);
    if (node === undefined) return false;
    this.#order.remove(node);
    this.#map.delete(key);
    return true;
  }

  clear(): void {
    this.#map.clear();
    this.#order.clear();
  }

  /** Keys from the least to the most recently used; reading them does not change the order. */
  *keys(): IterableIterator<K> {
    for (let node = this.#order.head; node !== undefined; node = node.next) yield node.key;
  }

  /**
   * One pass from the head, so entries that cannot go are stepped over once, not once per
   * eviction. The newest entry (the tail) is never evicted: the caller is about to use it.
   */
  #evict(): void {
    const canEvict = this.#canEvict;
    let node = this.#order.head;
    while (this.#map.size > this.#max && node !== undefined && node !== this.#order.tail) {
      const next = node.next;
      if (canEvict === undefined || canEvict(node.value)) {
        this.#order.remove(node);
        this.#map.delete(node.key);
      }
      node = next;
    }
  }

  #moveToTail(node: LruNode<K, V>): void {
    this.#order.remove(node);
    this.#order.push(node);
  }
}
