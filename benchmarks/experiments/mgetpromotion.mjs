// Experiment (issue 12): plain ioredis, no Steadfast, no Effect: what coalesced reads of large values cost the garbage
// collector, and what answering them as Buffers changes. MODE:
//   get          C callers, each `await redis.get(k)` (AUTO=1: with ioredis' auto-pipelining)
//   mget         C callers, each `await redis.mget(K keys)`
//   coalesce     C callers, each awaiting its own key; the calls of one tick are one `mget` (Steadfast's batcher in
//                miniature), each caller resolved with its value (a string from ioredis' reply array)
//   coalescebuf  the same with `mgetBuffer`, each caller decoding its own Buffer after it resumes
// SIZE (10240) bytes per value; GCS, a string of 0/1 per round of 400 ms (1: `gc()` before it; default 0000111100000).
// Prints per round: throughput, minor page faults, scavenges and their time, and the young / old generation's size.
// `node --expose-gc benchmarks/experiments/mgetpromotion.mjs`. Uses bench:promo:* keys.
import { Redis } from "ioredis"
import v8 from "node:v8"
import { PerformanceObserver, constants } from "node:perf_hooks"

const url = "redis://127.0.0.1:6379"
const SIZE = Number(process.env.SIZE ?? 10240), C = Number(process.env.C ?? 64), K = Number(process.env.K ?? 64)
const MODE = process.env.MODE ?? "coalesce"
const keys = Array.from({ length: 10000 }, (_, i) => `bench:promo:${i}`)
const admin = new Redis(url)
const value = "x".repeat(SIZE)
for (let i = 0; i < keys.length; i += 100) await admin.mset(...keys.slice(i, i + 100).flatMap((k) => [k, value]))
const redis = new Redis(url, { enableAutoPipelining: process.env.AUTO === "1" })
await new Promise((resolve) => redis.status === "ready" ? resolve() : redis.once("ready", resolve))

let sink
let pending = [], resolvers = []
const flush = () => {
  const batch = pending, resolve = resolvers
  pending = []
  resolvers = []
  const reply = MODE === "coalescebuf" ? redis.mgetBuffer(batch) : redis.mget(batch)
  reply.then((values) => { for (let j = 0; j < resolve.length; j++) resolve[j](values[j]) })
}
const coalesced = (key) => new Promise((resolve) => { pending.push(key); if (resolvers.push(resolve) === 1) queueMicrotask(flush) })
const call = async (i) => {
  switch (MODE) {
    case "get": sink = await redis.get(keys[i % 10000]); return 1
    case "mget": { const ks = []; for (let j = 0; j < K; j++) ks.push(keys[(i + j) % 10000]); sink = await redis.mget(ks); return K }
    case "coalesce": sink = await coalesced(keys[i % 10000]); return 1
    case "coalescebuf": sink = (await coalesced(keys[i % 10000])).toString(); return 1
    default: throw new Error(`unknown MODE ${MODE}`)
  }
}

let scavenges = []
new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges.push(e.duration) }).observe({ entryTypes: ["gc"] })
const space = (name) => v8.getHeapSpaceStatistics().find((s) => s.space_name === name)
const round = async (gc) => {
  if (gc) global.gc()
  await new Promise((resolve) => setTimeout(resolve, 5))
  scavenges = []
  const faults = process.resourceUsage().minorPageFault
  let stop = false, n = 0, next = Math.floor(Math.random() * 10000)
  const worker = async () => {
    while (!stop) {
      const done = await call(next++)
      n += done
    }
  }
  const workers = Array.from({ length: C }, worker)
  await new Promise((resolve) => setTimeout(resolve, 400))
  stop = true
  await Promise.all(workers)
  await new Promise((resolve) => setTimeout(resolve, 5))
  const young = space("new_space"), old = space("old_space")
  return `${String(Math.round(n / 0.4)).padStart(7)} values/s, page faults ${String(process.resourceUsage().minorPageFault - faults).padStart(6)}, ` +
    `scavenges ${String(scavenges.length).padStart(3)} taking ${scavenges.reduce((a, b) => a + b, 0).toFixed(0).padStart(4)} ms, ` +
    `young ${((young.space_used_size + young.space_available_size) / 2 ** 20).toFixed(1)} MiB, old ${(old.space_size / 2 ** 20).toFixed(0)} MiB`
}
console.log(`MODE=${MODE} SIZE=${SIZE} C=${C}${MODE === "mget" ? ` K=${K}` : ""}${process.env.AUTO === "1" ? " (auto-pipelined)" : ""}`)
for (const gc of (process.env.GCS ?? "0000111100000").split("").map((c) => c === "1")) console.log(gc ? "gc() " : "     ", await round(gc))
await admin.unlink(...keys)
process.exit(0)
