// Experiment (issue 12): where one rung's allocations come from (V8's sampling heap profiler, keeping objects the GC
// has already collected), by allocating function. RUNG=strict|resilient|batched, C=64, N calls, OP=get|set, BYTES=100; GC=1
// measures right after a forced gc(); PROMOTED=1 samples only what no scavenge collected (what was promoted).
// `node --expose-gc benchmarks/experiments/allocprof.mjs` after `npx tsc -b`.
import { Session } from "node:inspector/promises"
import { buildSteadfast, makeRuntime, buildLayer } from "../dist/steadfast.js"
import { effectLoop } from "../dist/drive.js"
import { RedisCache } from "../../packages/cache/dist/index.js"
import { RedisConnection } from "../../packages/redis/dist/index.js"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
const url = "redis://127.0.0.1:6379"
const keys = Array.from({ length: 10000 }, (_, i) => `bench:alloc:${i}`)
const admin = new Redis(url)
const v = "x".repeat(Number(process.env.BYTES ?? 100))
// PROMOTED=1: only objects no scavenge collected (promoted to the old generation, or still alive at the end).
const promotedOnly = process.env.PROMOTED === "1"
for (let i = 0; i < keys.length; i += 500) await admin.mset(...keys.slice(i, i + 500).flatMap((k) => [k, v]))
const runtime = makeRuntime(false)
const C = Number(process.env.C ?? 64), N = Number(process.env.N ?? 200_000), OP = process.env.OP ?? "get", RUNG = process.env.RUNG ?? "strict"
const k = (i) => keys[i % 10000]
let run, op
if (RUNG === "batched") {
  const conn = await buildLayer(RedisConnection.layer({ url }), runtime); const c = Context.get(conn.context, RedisConnection.RedisConnection)
  run = conn.run; op = OP === "set" ? (i) => c.setBatched(k(i), v, Option.none()) : (i) => c.getBatched(k(i))
} else if (RUNG === "strict") {
  const s = await buildLayer(RedisCache.layer().pipe(Layer.provide(RedisConnection.layer({ url }))), runtime); const sc = Context.get(s.context, RedisCache.RedisCache)
  run = s.run; op = OP === "set" ? (i) => sc.set(k(i), v) : (i) => sc.get(k(i))
} else {
  const sf = await buildSteadfast("sf", { url }, runtime); run = sf.run; op = OP === "set" ? (i) => sf.cache.set(k(i), v) : (i) => sf.cache.get(k(i))
}
await run(effectLoop(op, C, N, 1e9))
if (process.env.GC === "1") global.gc() // GC=1: measure right after a forced full GC, as `pnpm bench` does
const session = new Session(); session.connect()
await session.post("HeapProfiler.enable")
await session.post("HeapProfiler.startSampling", { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !promotedOnly })
await run(effectLoop(op, C, N, 1e9))
const { profile } = await session.post("HeapProfiler.stopSampling")
const self = new Map(); let total = 0
const walk = (n, stack) => {
  const cf = n.callFrame
  const key = `${cf.functionName || "(anon)"} ${cf.url.replace(/.*node_modules\/\.pnpm\/([^/]+).*\/([^/]+)$/, "$1:$2").replace(/.*\/work\/main\//, "")}:${cf.lineNumber + 1}`
  self.set(key, (self.get(key) ?? 0) + n.selfSize); total += n.selfSize
  for (const c of n.children ?? []) walk(c)
}
walk(profile.head)
console.log(`${RUNG} ${OP} ${v.length} B c=${C}: ~${Math.round(total / N)} B/call sampled${promotedOnly ? ", promoted or alive at the end only" : ""}`)
console.log([...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 30)).map(([k, t]) => `${String(Math.round(t / N)).padStart(5)} B ${k}`).join("\n"))
process.exit(0)
