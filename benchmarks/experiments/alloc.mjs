// Experiment (issue 12): bytes allocated per call, rung by rung, from the young generation's scavenges (a count that
// other processes on the machine cannot disturb, unlike throughput). Each rung makes N calls (C concurrent); the
// young generation is fixed (--max-semi-space-size), so scavenges x semi-space size ~ bytes allocated.
// `node --max-semi-space-size=16 --expose-gc benchmarks/experiments/alloc.mjs` after `npx tsc -b` (N, C, OP=get|set).
import { buildSteadfast, makeRuntime, buildLayer } from "../dist/steadfast.js"
import { effectLoop, promiseLoop } from "../dist/drive.js"
import { RedisCache } from "../../packages/cache/dist/index.js"
import { RedisConnection } from "../../packages/redis/dist/index.js"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import v8 from "node:v8"
const url = "redis://127.0.0.1:6379"
const keys = Array.from({ length: 10000 }, (_, i) => `bench:alloc:${i}`)
const admin = new Redis(url)
const v = "x".repeat(100)
for (let i = 0; i < keys.length; i += 500) await admin.mset(...keys.slice(i, i + 500).flatMap((k) => [k, v]))
const runtime = makeRuntime(false)
const C = Number(process.env.C ?? 64), N = Number(process.env.N ?? 300_000), OP = process.env.OP ?? "get"
const auto = new Redis({ enableAutoPipelining: true })
const conn = await buildLayer(RedisConnection.layer({ url }), runtime)
const c = Context.get(conn.context, RedisConnection.RedisConnection)
const strict = await buildLayer(RedisCache.layer().pipe(Layer.provide(RedisConnection.layer({ url }))), runtime)
const sc = Context.get(strict.context, RedisCache.RedisCache)
const sf = await buildSteadfast("sf", { url, ...(process.env.MIRROR === "false" ? { mirror: false } : {}) }, runtime)
const k = (i) => keys[i % 10000]
const none = Option.none()
const rungs = OP === "set" ? {
  "raw auto-pipelined": () => promiseLoop((i) => auto.set(k(i), v), C, N, 1e9),
  "Effect floor": () => conn.run(effectLoop((i) => Effect.tryPromise(() => auto.set(k(i), v)), C, N, 1e9)),
  "setBatched": () => conn.run(effectLoop((i) => c.setBatched(k(i), v, none), C, N, 1e9)),
  "strict set": () => strict.run(effectLoop((i) => sc.set(k(i), v), C, N, 1e9)),
  "resilient set": () => sf.run(effectLoop((i) => sf.cache.set(k(i), v), C, N, 1e9))
} : {
  "raw auto-pipelined": () => promiseLoop((i) => auto.get(k(i)), C, N, 1e9),
  "Effect floor": () => conn.run(effectLoop((i) => Effect.tryPromise(() => auto.get(k(i))), C, N, 1e9)),
  "getBatched": () => conn.run(effectLoop((i) => c.getBatched(k(i)), C, N, 1e9)),
  "strict get": () => strict.run(effectLoop((i) => sc.get(k(i)), C, N, 1e9)),
  "resilient get": () => sf.run(effectLoop((i) => sf.cache.get(k(i)), C, N, 1e9))
}
const space = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")
console.log(`${OP} c=${C}, ${N} calls per rung; young generation ${(space().space_size / 2 ** 20).toFixed(0)} MiB`)
for (const [name, run] of Object.entries(rungs)) {
  await run() // warm
  globalThis.gc()
  let scavenges = 0
  const { PerformanceObserver, constants } = await import("node:perf_hooks")
  const obs = new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++ })
  obs.observe({ entryTypes: ["gc"] })
  const before = space().space_used_size
  const s = await run()
  await new Promise((r) => setTimeout(r, 50))
  obs.disconnect()
  const after = space().space_used_size
  // Semi-space capacity is what a scavenge empties; the live young objects at the end are added.
  const semi = space().space_size / 2
  const bytes = scavenges * semi + (after - before)
  console.log(`  ${name.padEnd(22)} ${scavenges} scavenges, ~${Math.round(bytes / N)} B/call (${Math.round(s.opsPerSec)} ops/s)`)
}
await sf.close(); process.exit(0)
