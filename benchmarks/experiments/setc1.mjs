// Experiment: where does SET c=1 lose against raw ioredis? Raw SET (defaults), raw MSET of one key on a client
// configured as Steadfast's (auto-pipelining on, mget/mset ignored, socketTimeout), RedisConnection.setBatched,
// ResilientCache.set; interleaved, medians of per-round ratios to raw SET. Run from the repository root after
// `npx tsc -b`: `node --expose-gc benchmarks/experiments/setc1.mjs` (C=64 for another concurrency). Leaves its
// bench:setc1:* keys (10,000 x 100 B) in the shared Redis.
import { buildSteadfast, makeRuntime, buildLayer } from "../dist/steadfast.js"
import { effectLoop, promiseLoop } from "../dist/drive.js"
import { RedisConnection, RedisConfig } from "../../packages/redis/dist/index.js"
import * as Context from "effect/Context"
import * as Option from "effect/Option"
import * as Either from "effect/Either"
import { Redis } from "ioredis"
const url = "redis://127.0.0.1:6379"
const keys = Array.from({ length: 10000 }, (_, i) => `bench:setc1:${i}`)
const v = "x".repeat(100)
const runtime = makeRuntime(false)
const plain = new Redis(url)
const config = Either.getOrThrow(RedisConfig.fromOptions({ url }))
const opts = RedisConnection.clientOptions(config, Either.getOrThrow(RedisConfig.parseUrl(config.url)))
const like = new Redis({ ...opts, lazyConnect: true }); await like.connect()
const like2 = new Redis({ ...opts, lazyConnect: true, socketTimeout: undefined }); await like2.connect()
await like.ping(); await like2.ping()
const conn = await buildLayer(RedisConnection.layer({ url }), runtime)
const c = Context.get(conn.context, RedisConnection.RedisConnection)
const sf = await buildSteadfast("sf", { url }, runtime)
const C = Number(process.env.C ?? 1)
const none = Option.none()
const entrants = {
  "raw SET (defaults)": () => promiseLoop((i) => plain.set(keys[i % 10000], v), C, 2e6, 400),
  "raw GET (defaults)": () => promiseLoop((i) => plain.get(keys[i % 10000]), C, 2e6, 400),
  "raw MSET 1 key, Steadfast's options": () => promiseLoop((i) => like.mset(keys[i % 10000], v), C, 2e6, 400),
  "raw MSET 1 key, no socketTimeout": () => promiseLoop((i) => like2.mset(keys[i % 10000], v), C, 2e6, 400),
  "raw MGET 1 key, Steadfast's options": () => promiseLoop((i) => like.mget([keys[i % 10000]]), C, 2e6, 400),
  "RedisConnection.setBatched": () => conn.run(effectLoop((i) => c.setBatched(keys[i % 10000], v, none), C, 2e6, 400)),
  "RedisConnection.getBatched": () => conn.run(effectLoop((i) => c.getBatched(keys[i % 10000]), C, 2e6, 400)),
  "ResilientCache.set": () => sf.run(effectLoop((i) => sf.cache.set(keys[i % 10000], v), C, 2e6, 400)),
  "ResilientCache.get": () => sf.run(effectLoop((i) => sf.cache.get(keys[i % 10000]), C, 2e6, 400)),
}
const names = Object.keys(entrants)
for (const n of names) await entrants[n]()
const r = Object.fromEntries(names.map((n) => [n, []])); const p99 = Object.fromEntries(names.map((n) => [n, []]))
for (let round = 0; round < 7; round++) {
  const res = {}
  const order = [...names.slice(round % names.length), ...names.slice(0, round % names.length)]
  for (const n of order) { global.gc(); res[n] = await entrants[n]() }
  for (const n of names) { r[n].push(res[n].opsPerSec / res[names[0]].opsPerSec); p99[n].push(res[n].p99Ms / res[names[0]].p99Ms) }
}
const med = (xs) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)]
for (const n of names) console.log(`${n.padEnd(40)} throughput ${med(r[n]).toFixed(2)}x  p99 ${med(p99[n]).toFixed(2)}x of raw SET`)
await sf.close(); await conn.close(); plain.disconnect(); like.disconnect(); like2.disconnect()
