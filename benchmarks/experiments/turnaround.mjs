// Experiment (issue 12): what a microsecond of turnaround costs a single caller. Raw ioredis (defaults), GET 100 B at c=1,
// with a busy-wait of X µs after each reply before the next request; 7 interleaved rounds of 400 ms, medians.
// `node benchmarks/experiments/turnaround.mjs`. Uses tt:* keys (deleted at the end).
import { Redis } from "ioredis"
import { median as med } from "../dist/util.js"
const r = new Redis("redis://127.0.0.1:6379")
const keys = Array.from({ length: 1000 }, (_, i) => `tt:${i}`)
for (const k of keys) await r.set(k, "x".repeat(100))
const spin = (us) => { const end = performance.now() + us / 1000; while (performance.now() < end); }
const run = async (us, ms) => {
  let n = 0; const t0 = performance.now(); const end = t0 + ms
  while (performance.now() < end) { await r.get(keys[n % 1000]); if (us > 0) spin(us); n++ }
  return (performance.now() - t0) * 1000 / n // µs per call
}
const xs = [0, 2, 5, 10, 20, 40]
for (const x of xs) await run(x, 200)
const res = new Map(xs.map((x) => [x, []]))
for (let round = 0; round < 7; round++) for (const x of xs) res.get(x).push(await run(x, 400))
const base = med(res.get(0))
for (const x of xs) { const m = med(res.get(x)); console.log(`spin ${String(x).padStart(2)} µs: ${m.toFixed(1)} µs/call, +${(m - base).toFixed(1)} µs over no spin (${((m - base) / Math.max(x, 1)).toFixed(2)} per µs spun)`) }
for (let i = 0; i < 1000; i += 500) await r.del(...keys.slice(i, i + 500))
await r.quit()
