// Why the cache and the keyed limiter use internal/lru.ts: the cost of marking one hot key as
// most recently used, by map size, for Map delete+set against the linked-list LRU.
// Run: npm run bench:lru
import { Lru } from '../packages/core/src/internal/lru.ts';

const SIZES = [1, 100, 1_000, 2_000];
const N = 200_000;

function nsPerOp(body: () => void): number {
  for (let i = 0; i < N / 10; i++) body();
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) body();
  return Number(process.hrtime.bigint() - start) / N;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

console.log('ns to touch one hot key (median of 5 rounds)');
console.log('entries   Map get+delete+set   Lru.get');
for (const size of SIZES) {
  const mapRounds: number[] = [];
  const lruRounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const map = new Map<string, number>();
    const lru = new Lru<string, number>(size + 1);
    for (let i = 0; i < size; i++) {
      map.set(`k${i}`, i);
      lru.set(`k${i}`, i);
    }
    // Alternate two keys so that the LRU really relinks on every touch.
    let flip = false;
    const hot = ['k0', size > 1 ? 'k1' : 'k0'] as const;
    mapRounds.push(
      nsPerOp(() => {
        const key = hot[(flip = !flip) ? 0 : 1];
        const v = map.get(key)!;
        map.delete(key);
        map.set(key, v);
      }),
    );
    lruRounds.push(nsPerOp(() => lru.get(hot[(flip = !flip) ? 0 : 1])));
  }
  console.log(
    `${String(size).padStart(7)}   ${median(mapRounds).toFixed(0).padStart(18)}   ${median(lruRounds).toFixed(0).padStart(7)}`,
  );
}
