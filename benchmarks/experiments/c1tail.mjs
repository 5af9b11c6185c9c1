// Experiment (issue 12): where a single caller's p99 comes from. One caller (c=1) GETs 100 B in a loop, raw default
// ioredis and `ResilientCache.get` in turns (ROUNDS rounds of MS each); every call's start and end are kept, and every
// young-generation collection (scavenge) the process makes, so each call can be told apart by whether a scavenge ran
// inside it. Prints, per contender: calls, scavenges per 1,000 calls, the share of calls a scavenge ran in, p50 / p99
// of all calls and p99 of the calls no scavenge ran in, the bytes allocated per call and the young generation's size.
// `node --expose-gc benchmarks/experiments/c1tail.mjs` after `npx tsc -b` (optionally with --max-semi-space-size=N).
import { buildSteadfast, makeRuntime } from "../dist/steadfast.js"
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import v8 from "node:v8"
import { PerformanceObserver, constants, performance } from "node:perf_hooks"

const url = "redis://127.0.0.1:6379"
const keys = Array.from({ length: 10000 }, (_, i) => `bench:tail:${i}`)
const admin = new Redis(url)
const v = "x".repeat(100)
for (let i = 0; i < keys.length; i += 500) await admin.mset(...keys.slice(i, i + 500).flatMap((k) => [k, v]))
const ROUNDS = Number(process.env.ROUNDS ?? 7), MS = Number(process.env.MS ?? 1000)
const raw = new Redis(url)
const runtime = makeRuntime(false)
const sf = await buildSteadfast("sf", { url }, runtime)

const cap = 2_000_000
const make = () => ({ t0: new Float64Array(cap), t1: new Float64Array(cap), n: 0, gcs: [] })
const results = { raw: make(), steadfast: make() }
let current
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (current !== undefined && e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) current.gcs.push([e.startTime, e.startTime + e.duration])
  }
})
obs.observe({ entryTypes: ["gc"] })

const rawRound = async (r) => {
  const end = performance.now() + MS
  let i = 0
  while (performance.now() < end) {
    const t0 = performance.now()
    await raw.get(keys[i++ % 10000])
    r.t0[r.n] = t0
    r.t1[r.n++] = performance.now()
  }
}
const sfRound = (r) => {
  let i = 0
  let t0 = 0
  const end = performance.now() + MS
  const call = Effect.suspend(() => {
    t0 = performance.now()
    return sf.cache.get(keys[i++ % 10000])
  }).pipe(Effect.tap(() => Effect.sync(() => {
    r.t0[r.n] = t0
    r.t1[r.n++] = performance.now()
  })))
  return sf.run(Effect.whileLoop({ while: () => performance.now() < end, body: () => call, step: () => {} }))
}
/** The young generation (its size is two semi-spaces; a scavenge runs when one fills). */
const newSpace = () => v8.getHeapSpaceStatistics().find((x) => x.space_name === "new_space")
// Warm both.
current = undefined
await rawRound(make())
await sfRound(make())
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, fn] of round % 2 === 0 ? [["raw", rawRound], ["steadfast", sfRound]] : [["steadfast", sfRound], ["raw", rawRound]]) {
    current = results[name]
    await fn(current)
    await new Promise((r) => setTimeout(r, 20)) // let the observer deliver this round's entries
    current = undefined
  }
}
obs.disconnect()
const q = (arr, p) => {
  if (arr.length === 0) return NaN
  const s = Float64Array.from(arr).sort()
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]
}
const semi = newSpace().space_size / 2
console.log(`c=1 GET 100 B, ${ROUNDS} rounds of ${MS} ms each, in turns; young generation ${(newSpace().space_size / 2 ** 20).toFixed(1)} MiB (semi-space ${(semi / 2 ** 20).toFixed(1)} MiB)`)
for (const [name, r] of Object.entries(results)) {
  const gcs = r.gcs.sort((a, b) => a[0] - b[0])
  const all = [], clean = []
  let g = 0, hit = 0
  for (let i = 0; i < r.n; i++) {
    const a = r.t0[i], b = r.t1[i], d = b - a
    while (g < gcs.length && gcs[g][1] < a) g++
    const overlapped = g < gcs.length && gcs[g][0] <= b
    all.push(d)
    if (overlapped) hit++
    else clean.push(d)
  }
  console.log(
    `${name.padEnd(10)} calls ${r.n}, scavenges ${gcs.length} (${(1000 * gcs.length / r.n).toFixed(2)} per 1,000 calls, ~${Math.round(gcs.length * semi / r.n)} B/call), ` +
      `calls with a scavenge ${(100 * hit / r.n).toFixed(2)} %, p50 ${q(all, 0.5).toFixed(4)} ms, p99 ${q(all, 0.99).toFixed(4)} ms, ` +
      `p99 without them ${q(clean, 0.99).toFixed(4)} ms, scavenge p50 ${q(gcs.map(([a, b]) => b - a), 0.5).toFixed(3)} ms`
  )
}
process.exit(0)
