// Experiment (issue 12): large values at c=64, rung by rung, with the garbage collector's share of each measurement.
// Rungs (RUNGS=a,b,...; default raw,batched,resilient): raw default ioredis, RedisConnection.getBatched / setBatched,
// ResilientCache.get / set, the same with `mirror: false` (nomirror), one fiber per caller looping
// `Effect.tryPromise(() => redis.get(k))` (floor) and auto-pipelined ioredis (autopipe). OP=get|set, BYTES (10240),
// C (64), ROUNDS (10, the first 2 discarded) of 400 ms, in turns. GC=1 forces a full `gc()` before every measurement,
// as `pnpm bench`'s happy path does; SETTLE_MS=n then runs the measured rung n ms, unmeasured, before its window. Prints throughput (median, and the median of per-round ratios to raw), p99, and
// per rung and round: minor page faults, scavenges and their time, and major GCs (PER_ROUND=1 prints every round).
// `node --expose-gc benchmarks/experiments/largevalues.mjs` after `npx tsc -b`. Uses bench:large:* keys.
import { buildLayer, buildSteadfast, makeRuntime } from "../dist/steadfast.js"
import { effectLoop, promiseLoop } from "../dist/drive.js"
import { RedisConnection } from "../../packages/redis/dist/index.js"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import { PerformanceObserver, constants } from "node:perf_hooks"

const url = "redis://127.0.0.1:6379"
const BYTES = Number(process.env.BYTES ?? 10240), C = Number(process.env.C ?? 64), OP = process.env.OP ?? "get"
const ROUNDS = Number(process.env.ROUNDS ?? 10), MS = 400, SETTLE_MS = Number(process.env.SETTLE_MS ?? 0)
const keys = Array.from({ length: 10000 }, (_, i) => `bench:large:${i}`)
const v = "x".repeat(BYTES)
const admin = new Redis(url)
for (let i = 0; i < keys.length; i += 100) await admin.mset(...keys.slice(i, i + 100).flatMap((k) => [k, v]))
const runtime = makeRuntime(false)
const k = (i) => keys[i % keys.length]
const wanted = (process.env.RUNGS ?? "raw,batched,resilient").split(",")
const makers = {
  raw: async () => {
    const redis = new Redis(url)
    return (ms = MS) => promiseLoop(OP === "get" ? (i) => redis.get(k(i)) : (i) => redis.set(k(i), v), C, 1e9, ms)
  },
  batched: async () => {
    const conn = await buildLayer(RedisConnection.layer({ url }), runtime)
    const c = Context.get(conn.context, RedisConnection.RedisConnection)
    const op = OP === "get" ? (i) => c.getBatched(k(i)) : (i) => c.setBatched(k(i), v, Option.none())
    return (ms = MS) => conn.run(effectLoop(op, C, 1e9, ms))
  },
  resilient: async () => {
    const sf = await buildSteadfast("sf", { url }, runtime)
    return (ms = MS) => sf.run(effectLoop(OP === "get" ? (i) => sf.cache.get(k(i)) : (i) => sf.cache.set(k(i), v), C, 1e9, ms))
  },
  nomirror: async () => {
    const sf = await buildSteadfast("sf", { url, mirror: false }, runtime)
    return (ms = MS) => sf.run(effectLoop(OP === "get" ? (i) => sf.cache.get(k(i)) : (i) => sf.cache.set(k(i), v), C, 1e9, ms))
  },
  floor: async () => {
    const redis = new Redis(url)
    const op = OP === "get" ? (i) => Effect.tryPromise(() => redis.get(k(i))) : (i) => Effect.tryPromise(() => redis.set(k(i), v))
    return (ms = MS) => Effect.runPromise(effectLoop(op, C, 1e9, ms))
  },
  autopipe: async () => {
    const redis = new Redis(url, { enableAutoPipelining: true })
    return (ms = MS) => promiseLoop(OP === "get" ? (i) => redis.get(k(i)) : (i) => redis.set(k(i), v), C, 1e9, ms)
  }
}
const rungs = {}
for (const name of wanted) rungs[name] = await makers[name]()

let gcs = []
new PerformanceObserver((list) => { for (const e of list.getEntries()) gcs.push([e.detail.kind, e.duration]) }).observe({ entryTypes: ["gc"] })
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const results = Object.fromEntries(wanted.map((n) => [n, []]))
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, measure] of Object.entries(rungs)) {
    if (process.env.GC === "1") global.gc()
    if (SETTLE_MS > 0) await measure(SETTLE_MS) // the same rung, unmeasured, between the gc() and the window
    await pause(5)
    gcs = []
    const faults = process.resourceUsage().minorPageFault
    const sample = await measure()
    const pageFaults = process.resourceUsage().minorPageFault - faults
    await pause(5) // let the observer deliver this window's entries
    const minor = gcs.filter(([kind]) => kind === constants.NODE_PERFORMANCE_GC_MINOR)
    const major = gcs.filter(([kind]) => kind !== constants.NODE_PERFORMANCE_GC_MINOR)
    const row = { ...sample, pageFaults, scavenges: minor.length, scavengeMs: minor.reduce((t, [, d]) => t + d, 0), majorMs: major.reduce((t, [, d]) => t + d, 0) }
    if (process.env.PER_ROUND === "1") console.log(round, name, Math.round(row.opsPerSec), "ops/s, page faults", pageFaults, "scavenges", row.scavenges, `${row.scavengeMs.toFixed(0)} ms`)
    if (round >= 2) results[name].push(row)
  }
}
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
console.log(`${OP.toUpperCase()} ${BYTES} B c=${C}${process.env.GC === "1" ? ", gc() before each measurement" : ""}, ${ROUNDS - 2} rounds of ${MS} ms:`)
for (const [name, rows] of Object.entries(results)) {
  const ratio = results.raw ? ` (${med(rows.map((r, i) => r.opsPerSec / results.raw[i].opsPerSec)).toFixed(2)}x raw)` : ""
  console.log(
    `  ${name.padEnd(10)} ${String(Math.round(med(rows.map((r) => r.opsPerSec)))).padStart(7)} ops/s${ratio}, p99 ${med(rows.map((r) => r.p99Ms)).toFixed(2)} ms; ` +
      `per round: page faults ${Math.round(med(rows.map((r) => r.pageFaults)))}, scavenges ${med(rows.map((r) => r.scavenges))} taking ${med(rows.map((r) => r.scavengeMs)).toFixed(0)} ms, major GC ${med(rows.map((r) => r.majorMs)).toFixed(0)} ms`
  )
}
await admin.unlink(...keys)
process.exit(0)
