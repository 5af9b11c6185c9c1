// Experiment (issue 12): a CPU profile of one rung looping alone (RUNG=resilient|strict|batched|floor, C=1, MS=5000, BYTES=100, SKIPFILL=1 to keep the keys of a previous run, PROFILE=file, KEYS=10000 distinct keys), for
// `node --cpu-prof --cpu-prof-dir=/tmp/prof benchmarks/experiments/prof-c1.mjs`. Uses the ladder's keys (bench:prof:*).
import { buildSteadfast, makeRuntime, buildLayer } from "../dist/steadfast.js"
import { effectLoop } from "../dist/drive.js"
import { RedisCache } from "../../packages/cache/dist/index.js"
import { RedisConnection } from "../../packages/redis/dist/index.js"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Effect from "effect/Effect"
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
if (RUNG === "batched" || RUNG === "floor") {
  const conn = await buildLayer(RedisConnection.layer({ url }), runtime)
  const c = Context.get(conn.context, RedisConnection.RedisConnection)
  const plain = new Redis(url)
  get = RUNG === "batched" ? c.getBatched : (k) => Effect.tryPromise(() => plain.get(k)); run = conn.run
} else if (RUNG === "strict") {
  const strict = await buildLayer(RedisCache.layer().pipe(Layer.provide(RedisConnection.layer({ url }))), runtime)
  get = Context.get(strict.context, RedisCache.RedisCache).get; run = strict.run
} else {
  const sf = await buildSteadfast("sf", { url }, runtime); get = sf.cache.get; set = sf.cache.set; run = sf.run
}
const OP = process.env.OP ?? "get"
const op = OP === "set" ? (i) => set(keys[i % KEYS], v) : (i) => get(keys[i % KEYS])
await run(effectLoop(op, C, 1e9, 500))
// PROFILE=<file.cpuprofile>: a CPU profile of the measured loop only (not the fill or the warm-up).
const session = process.env.PROFILE ? new (await import("node:inspector")).Session() : undefined
const post = (method) => new Promise((resolve, reject) => session.post(method, (error, result) => error ? reject(error) : resolve(result)))
if (session) { session.connect(); await post("Profiler.enable"); await post("Profiler.start") }
const s = await run(effectLoop(op, C, 1e9, MS))
if (session) (await import("node:fs")).writeFileSync(process.env.PROFILE, JSON.stringify((await post("Profiler.stop")).profile))
console.log(RUNG, OP, `c=${C}`, Math.round(s.opsPerSec), "ops/s")
process.exit(0)
