// Experiment (issue 12): where a single caller's GET 100 B spends CPU, rung by rung (raw ioredis with its defaults,
// RedisConnection.getBatched, strict RedisCache.get, ResilientCache.get, with and without its mirror): throughput ratio to raw and this process' CPU
// time per call (user + system, which includes the socket writes), medians of per-round values, interleaved.
// `node --expose-gc benchmarks/experiments/c1cpu.mjs` after `npx tsc -b` (ROUNDS=n, C=1). Uses bench:c1:* keys.
import { buildSteadfast, makeRuntime, buildLayer } from "../dist/steadfast.js"
import { effectLoop, promiseLoop } from "../dist/drive.js"
import { RedisCache } from "../../packages/cache/dist/index.js"
import { RedisConnection } from "../../packages/redis/dist/index.js"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Redis } from "ioredis"
const url = "redis://127.0.0.1:6379"
const keys = Array.from({ length: 10000 }, (_, i) => `bench:c1:${i}`)
const admin = new Redis(url)
const v = "x".repeat(100)
for (let i = 0; i < keys.length; i += 500) await admin.mset(...keys.slice(i, i + 500).flatMap((k) => [k, v]))
const runtime = makeRuntime(false)
const C = Number(process.env.C ?? 1), ROUNDS = Number(process.env.ROUNDS ?? 15), MS = 400
const plain = new Redis(url)
const conn = await buildLayer(RedisConnection.layer({ url }), runtime)
const c = Context.get(conn.context, RedisConnection.RedisConnection)
const strict = await buildLayer(RedisCache.layer().pipe(Layer.provide(RedisConnection.layer({ url }))), runtime)
const sc = Context.get(strict.context, RedisCache.RedisCache)
const sf = await buildSteadfast("sf", { url }, runtime)
const noMirror = await buildSteadfast("sf-nomirror", { url, mirror: false }, runtime)
const k = (i) => keys[i % 10000]
const entr = {
  "raw ioredis": () => promiseLoop((i) => plain.get(k(i)), C, 2e6, MS),
  "Effect floor (tryPromise)": () => conn.run(effectLoop((i) => Effect.tryPromise(() => plain.get(k(i))), C, 2e6, MS)),
  "getBatched": () => conn.run(effectLoop((i) => c.getBatched(k(i)), C, 2e6, MS)),
  "strict get": () => strict.run(effectLoop((i) => sc.get(k(i)), C, 2e6, MS)),
  "resilient get": () => sf.run(effectLoop((i) => sf.cache.get(k(i)), C, 2e6, MS)),
  "resilient get, mirror: false": () => noMirror.run(effectLoop((i) => noMirror.cache.get(k(i)), C, 2e6, MS))
}
const names = Object.keys(entr)
for (const n of names) await entr[n]()
const thr = Object.fromEntries(names.map((n) => [n, []])), cpu = Object.fromEntries(names.map((n) => [n, []]))
for (let r = 0; r < ROUNDS; r++) {
  const got = {}, used = {}
  for (const n of names.map((_, i) => names[(i + r) % names.length])) {
    globalThis.gc?.()
    const before = process.cpuUsage()
    const s = await entr[n]()
    const d = process.cpuUsage(before)
    got[n] = s.opsPerSec; used[n] = (d.user + d.system) / (s.opsPerSec * MS / 1000)
  }
  for (const n of names) { thr[n].push(got[n] / got["raw ioredis"]); cpu[n].push(used[n]) }
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
console.log(`c=${C}, ${ROUNDS} rounds: throughput vs raw ioredis | CPU µs per call`)
for (const n of names) console.log(`  ${n.padEnd(28)} ${med(thr[n]).toFixed(3)}x | ${med(cpu[n]).toFixed(2)} µs`)
await sf.close(); process.exit(0)
