// Experiment (issue 12): a single caller's GET 100 B, from a bare promise up to ResilientCache.get, one step at a time,
// interleaved, medians of per-round ratios to raw ioredis (its defaults), and this process' CPU per call split into user
// time (JavaScript, V8, libuv: what the library controls) and system time (the socket's system calls).
// `node --expose-gc benchmarks/experiments/c1ladder.mjs` after `npx tsc -b` (ROUNDS=n, C=1). Uses bench:c1l:* keys.
import { makeRuntime, buildLayer, buildSteadfast } from "../dist/steadfast.js"
import { effectLoop, promiseLoop } from "../dist/drive.js"
import { RedisConnection, RedisConfig } from "../../packages/redis/dist/index.js"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { Redis } from "ioredis"
const url = "redis://127.0.0.1:6379"
const keys = Array.from({ length: 10000 }, (_, i) => `bench:c1l:${i}`)
const admin = new Redis(url)
const v = "x".repeat(100)
for (let i = 0; i < keys.length; i += 500) await admin.mset(...keys.slice(i, i + 500).flatMap((k) => [k, v]))
const runtime = makeRuntime(false)
const C = Number(process.env.C ?? 1), ROUNDS = Number(process.env.ROUNDS ?? 11), MS = 400
const plain = new Redis(url)
const config = Either.getOrThrow(RedisConfig.fromOptions({ url }))
const opts = RedisConnection.clientOptions(config, Either.getOrThrow(RedisConfig.parseUrl(config.url)))
const like = new Redis({ ...opts, lazyConnect: true }); await like.connect(); await like.ping()
const conn = await buildLayer(RedisConnection.layer({ url }), runtime)
const c = Context.get(conn.context, RedisConnection.RedisConnection)
const run = (eff) => conn.run(eff)
const sf = await buildSteadfast("sf", { url }, runtime)
// A microtask-deferred send, as the batcher does, without the batcher's bookkeeping.
const deferred = (send) => (k) => Effect.async((resume) => {
  queueMicrotask(() => send(k).then((v) => resume(Effect.succeed(v)), (e) => resume(Effect.fail(e))))
})
const entrants = {
  "raw get": () => promiseLoop((i) => plain.get(keys[i % 10000]), C, 2e6, MS),
  "raw mget [k], Steadfast's options": () => promiseLoop((i) => like.mget([keys[i % 10000]]), C, 2e6, MS),
  "Effect.tryPromise(get)": () => run(effectLoop((i) => Effect.tryPromise(() => plain.get(keys[i % 10000])), C, 2e6, MS)),
  "Effect.async + microtask, get": () => run(effectLoop((i) => deferred((k) => plain.get(k))(keys[i % 10000]), C, 2e6, MS)),
  "Effect.async + microtask, mget [k]": () => run(effectLoop((i) => deferred((k) => like.mget([k]))(keys[i % 10000]), C, 2e6, MS)),
  "getBatched": () => run(effectLoop((i) => c.getBatched(keys[i % 10000]), C, 2e6, MS)),
  "ResilientCache.get": () => sf.run(effectLoop((i) => sf.cache.get(keys[i % 10000]), C, 2e6, MS)),
  "ResilientCache.set": () => sf.run(effectLoop((i) => sf.cache.set(keys[i % 10000], v), C, 2e6, MS)),
}
const names = Object.keys(entrants)
for (const n of names) await entrants[n]()
const r = Object.fromEntries(names.map((n) => [n, []])), user = Object.fromEntries(names.map((n) => [n, []])), sys = Object.fromEntries(names.map((n) => [n, []]))
for (let round = 0; round < ROUNDS; round++) {
  const res = {}
  const order = [...names.slice(round % names.length), ...names.slice(0, round % names.length)]
  for (const n of order) {
    global.gc()
    const u0 = process.cpuUsage(); res[n] = await entrants[n](); const u = process.cpuUsage(u0)
    const calls = res[n].opsPerSec * MS / 1000
    res[n].user = u.user / calls
    res[n].sys = u.system / calls
  }
  for (const n of names) { r[n].push(res[n].opsPerSec / res[names[0]].opsPerSec); user[n].push(res[n].user); sys[n].push(res[n].sys) }
}
const med = (xs) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)]
console.log(`c=${C}, ${ROUNDS} rounds: throughput vs raw get | user µs per call | system µs per call`)
for (const n of names) console.log(`  ${n.padEnd(38)} ${med(r[n]).toFixed(3)}x | ${med(user[n]).toFixed(2)} | ${med(sys[n]).toFixed(2)}`)
await sf.close(); await conn.close(); plain.disconnect(); like.disconnect(); admin.disconnect()
