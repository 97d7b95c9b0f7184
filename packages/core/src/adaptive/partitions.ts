// Priority partitions: each is guaranteed a share of the limit and may borrow what others leave
// unused, so that at the limit only partitions still under their share get in (low priority sheds first).

/** The state of one partition. @internal */
export class Partition {
  /** Slots guaranteed at the current limit: floor(share × limit), at least 1 for a non-zero share. */
  guaranteed = 0;
  inflight = 0;
  rejected = 0;
  constructor(
    readonly name: string,
    readonly share: number,
  ) {}

  resize(limit: number): void {
    this.guaranteed = this.share === 0 ? 0 : Math.max(1, Math.floor(this.share * limit));
  }
}

/** The partitions of one policy, looked up by a call's priority. @internal */
export class Partitions {
  readonly list: readonly Partition[];
  readonly #byName: Map<string, Partition>;
  readonly #fallback: Partition;

  constructor(shares: ReadonlyArray<readonly [string, number]>, defaultPartition: string, limit: number) {
    this.list = shares.map(([name, share]) => new Partition(name, share));
    this.#byName = new Map(this.list.map((p) => [p.name, p]));
    this.#fallback = this.#byName.get(defaultPartition)!;
    this.resize(limit);
  }

  /** The call's partition: its priority's, or the default one for no or an unknown priority. */
  of(priority: string | undefined): Partition {
    return priority === undefined ? this.#fallback : (this.#byName.get(priority) ?? this.#fallback);
  }

  resize(limit: number): void {
    for (const p of this.list) p.resize(limit);
  }

  /**
   * Whether a call of `partition` may start with `inflight` calls running in all. Under the limit
   * anyone may borrow free capacity; at it, only a partition below its guaranteed share gets in,
   * so the total can exceed the limit by the guarantees not in use (as in Netflix's partitioned limiter).
   */
  static admits(partition: Partition, inflight: number, limit: number): boolean {
    return inflight < limit || partition.inflight < partition.guaranteed;
  }
}
