// Experiment (issue 12): what one eviction costs the fallback memory's store (`LruStore`, the CLOCK of
// packages/cache/src/internal/lru.ts), in the regime the happy path puts it in: 20,000 keys cycling through 10,000
// entries. Also a plain `Map` used the same way (delete the first entry, then add), the pattern the store used to
// follow: a Map keeps deleted slots until it rehashes, and iterating from its beginning walks over them.
// `node benchmarks/experiments/eviction.mjs` after `npx tsc -b`.
import { LruStore } from "../../packages/cache/dist/internal/lru.js"
const keys = Array.from({ length: 20000 }, (_, i) => `bench:v100:${i}`)
const v = "x".repeat(100)
const bench = (label, fn, n) => {
  const t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) fn(i)
  console.log(`  ${label.padEnd(58)} ${(Number(process.hrtime.bigint() - t) / n).toFixed(0)} ns/op`)
}
const full = () => {
  const s = new LruStore(10000)
  for (let i = 0; i < 10000; i++) s.set(keys[i], v, undefined, 0)
  return s
}
for (let r = 1; r <= 3; r++) {
  console.log(`round ${r}`)
  const writes = full()
  bench("LruStore.set, a key not held (every write evicts)", (i) => writes.set(keys[i % 20000], v, undefined, 0), 400000)
  const reads = full()
  bench("LruStore.mirror, a key not held (1 in 8 admitted)", (i) => reads.mirror(keys[i % 20000], v, reads.version(), 60000, 0), 400000)
  const held = full()
  bench("LruStore.mirror, a key held (no eviction)", (i) => held.mirror(keys[i % 10000], v, held.version(), 60000, 0), 400000)
  const map = new Map()
  bench("Map: delete the first entry, then add (10,000 entries)", (i) => {
    if (map.size >= 10000) for (const k of map.keys()) { map.delete(k); break }
    map.set(keys[i % 20000], v)
  }, 400000)
}
