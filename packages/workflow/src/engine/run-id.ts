// Run ids: UUID version 7 (RFC 9562), time-ordered, so that a store's indexes keyed by run id
// take new runs at their right edge instead of on random pages (fewer pages written a commit).
import { randomFillSync } from 'node:crypto';

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const POOL_SIZE = 4096;
const pool = new Uint8Array(POOL_SIZE);
let poolAt = POOL_SIZE;

let lastMs = -1;
/** 12 bits after the millisecond (RFC 9562 method 1): ids made in one ms still sort in order. */
let counter = 0;

/** A new UUIDv7 from `now` (epoch ms): later ids sort after earlier ones from this process. */
export function newRunId(now = Date.now()): string {
  if (poolAt + 10 > POOL_SIZE) {
    randomFillSync(pool);
    poolAt = 0;
  }
  let ms = Math.max(Math.floor(now), lastMs);
  if (ms === lastMs) {
    counter++;
    if (counter > 0xfff) {
      // More than 4,096 ids in one ms: borrow the next ms rather than repeat an order.
      ms++;
      counter = pool[poolAt]! & 0x3f;
    }
  } else {
    // A random start leaves room to count up within the ms.
    counter = pool[poolAt]! & 0x3f;
  }
  lastMs = ms;
  const r = pool;
  const i = poolAt;
  poolAt += 10;
  const high = Math.floor(ms / 0x10000);
  const low = ms % 0x10000;
  return (
    HEX[(high >>> 24) & 0xff]! +
    HEX[(high >>> 16) & 0xff]! +
    HEX[(high >>> 8) & 0xff]! +
    HEX[high & 0xff]! +
    '-' +
    HEX[(low >>> 8) & 0xff]! +
    HEX[low & 0xff]! +
    '-' +
    HEX[0x70 | (counter >>> 8)]! +
    HEX[counter & 0xff]! +
    '-' +
    HEX[0x80 | (r[i + 1]! & 0x3f)]! +
    HEX[r[i + 2]!]! +
    '-' +
    HEX[r[i + 3]!]! +
    HEX[r[i + 4]!]! +
    HEX[r[i + 5]!]! +
    HEX[r[i + 6]!]! +
    HEX[r[i + 7]!]! +
    HEX[r[i + 8]!]!
  );
}
