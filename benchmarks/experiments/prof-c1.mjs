// Experiment (issue 12): a CPU profile of one rung looping alone (RUNG=resilient|strict|batched|floor|raw|plain (raw: auto-pipelined ioredis, plain: default ioredis, both without Effect), C=1, MS=5000, BYTES=100, SKIPFILL=1 to keep the keys of a previous run, PROFILE=file, KEYS=10000 distinct keys), for
// `node --cpu-prof --cpu-prof-dir=/tmp/prof benchmarks/experiments/prof-c1.mjs`. Uses the ladder's keys (bench:prof:*).
// Prints ops/s, p50, p99 and the minor page faults of the measured loop (thousands of them: the run fell into a state
// where the GC promotes much of what it scavenges; see benchmarks/README.md, session 12). HEAP=1: what was promoted, by
// allocating function and its callers; TAIL=1: p99.9, the slowest call and the calls over 10 ms.
import { buildSteadfast, makeRuntime, buildLayer } from "../dist/steadfast.js"
import { effectLoop, promiseLoop } from "../dist/drive.js"
import { RedisCache } from "../../packages/cache/dist/index.js"
import { RedisConnection } from "../../packages/redis/dist/index.js"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
const url = "redis://127.0.0.1:6379"
const KEYS = Number(process.env.KEYS ?? 10000)
const keys = Array.from({ length: KEYS }, (_, i) => `bench:prof:${i}`)
const admin = new Redis(url)
const v = "x".repeat(Number(process.env.BYTES ?? 100))
if (process.env.SKIPFILL !== "1") for (let i = 0; i < keys.length; i += 500) await admin.mset(...keys.slice(i, i + 500).flatMap((k) => [k, v]))
const runtime = makeRuntime(false)
const C = Number(process.env.C ?? 1), MS = Number(process.env.MS ?? 5000), RUNG = process.env.RUNG ?? "resilient"
let run, get, set
if (RUNG === "raw" || RUNG === "plain") {
  // No Effect at all: the calls are promises, driven by `promiseLoop` (TAIL=1 is not supported here).
  const plain = new Redis(url, { enableAutoPipelining: RUNG === "raw" })
  get = (k) => plain.get(k); set = (k, v) => plain.set(k, v)
} else if (RUNG === "batched" || RUNG === "floor") {
  const conn = await buildLayer(RedisConnection.layer({ url }), runtime)
  const c = Context.get(conn.context, RedisConnection.RedisConnection)
  const plain = new Redis(url)
  get = RUNG === "batched" ? c.getBatched : (k) => Effect.tryPromise(() => plain.get(k)); run = conn.run
  set = RUNG === "batched" ? (k, v) => c.setBatched(k, v, Option.none()) : (k, v) => Effect.tryPromise(() => plain.set(k, v))
} else if (RUNG === "strict") {
  const strict = await buildLayer(RedisCache.layer().pipe(Layer.provide(RedisConnection.layer({ url }))), runtime)
  get = Context.get(strict.context, RedisCache.RedisCache).get; run = strict.run
} else {
  const sf = await buildSteadfast("sf", { url }, runtime); get = sf.cache.get; set = sf.cache.set; run = sf.run
}
const OP = process.env.OP ?? "get"
const op0 = OP === "set" ? (i) => set(keys[i % KEYS], v) : (i) => get(keys[i % KEYS])
// TAIL=1: every call's duration kept here too, for the tail past p99 (p99.9, the slowest) and how many took over 10 ms.
const promises = RUNG === "raw" || RUNG === "plain"
const tail = process.env.TAIL === "1" && !promises ? [] : undefined
const op = tail === undefined ? op0 : (i) => Effect.suspend(() => {
  const t0 = performance.now()
  return Effect.tap(op0(i), () => Effect.sync(() => { tail.push(performance.now() - t0) }))
})
const loop = (ms) => promises ? promiseLoop(op, C, 1e9, ms) : run(effectLoop(op, C, 1e9, ms))
await loop(500)
// PROFILE=<file.cpuprofile>: a CPU profile of the measured loop only (not the fill or the warm-up).
const session = process.env.PROFILE ? new (await import("node:inspector")).Session() : undefined
const post = (method) => new Promise((resolve, reject) => session.post(method, (error, result) => error ? reject(error) : resolve(result)))
if (session) { session.connect(); await post("Profiler.enable"); await post("Profiler.start") }
// HEAP=1: V8's sampling heap profiler over the measured loop, keeping only what no scavenge collected (promoted, or
// allocated straight into the old generation by a pretenured allocation site), by allocating function.
const heap = process.env.HEAP === "1" ? new (await import("node:inspector/promises")).Session() : undefined
if (heap) { heap.connect(); await heap.post("HeapProfiler.enable"); await heap.post("HeapProfiler.startSampling", { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false }) }
const s = await loop(MS)
if (tail) {
  const measured = tail.slice(-s.ops).sort((a, b) => a - b)
  const q = (f) => measured[Math.min(measured.length - 1, Math.floor(f * measured.length))].toFixed(3)
  console.log(`tail: p99 ${q(0.99)} ms, p99.9 ${q(0.999)} ms, max ${q(1)} ms, over 10 ms: ${measured.filter((d) => d > 10).length} of ${measured.length}`)
}
if (heap) {
  const { profile } = await heap.post("HeapProfiler.stopSampling")
  const self = new Map()
  // Keyed by the allocating function and its two callers (where a builtin such as `push` was called from).
  const walk = (n, callers) => {
    const cf = n.callFrame
    const name = `${cf.functionName || "(anon)"} ${cf.url.replace(/.*node_modules\/\.pnpm\/([^/]+).*\/([^/]+)$/, "$1:$2").replace(/.*\/work\/[^/]+\//, "")}:${cf.lineNumber + 1}`
    const key = [name, ...callers.slice(-2).reverse()].join(" < ")
    self.set(key, (self.get(key) ?? 0) + n.selfSize)
    for (const c of n.children ?? []) walk(c, [...callers, name])
  }
  walk(profile.head, [])
  console.log([...self].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, t]) => `${String(Math.round(t / s.ops)).padStart(5)} B/call ${k}`).join("\n"))
}
if (session) (await import("node:fs")).writeFileSync(process.env.PROFILE, JSON.stringify((await post("Profiler.stop")).profile))
console.log(RUNG, OP, `c=${C}`, Math.round(s.opsPerSec), "ops/s", `p50 ${s.p50Ms.toFixed(3)} ms p99 ${s.p99Ms.toFixed(3)} ms, ${s.pageFaults} page faults`)
process.exit(0)
