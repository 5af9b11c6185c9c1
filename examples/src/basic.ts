/**
 * The basic example: plain Node, `Effect.runPromise`, the resilient cache configured from the environment
 * (`REDIS_URL`, `CACHE_*`). If Redis is not reachable it still runs: reads fall back to memory.
 *
 *   pnpm example            # against REDIS_URL (default redis://127.0.0.1:6379)
 */
import { ResilientCache } from "@steadfast/cache"
import { Cache } from "@steadfast/cache"
import * as Effect from "effect/Effect"
import { getProduct } from "./program.js"

const program = Effect.gen(function*() {
  const cache = yield* Cache.Cache
  const first = yield* getProduct("42").pipe(Effect.timed)
  const second = yield* getProduct("42").pipe(Effect.timed)
  console.log(`first read (database):  ${first[1].name} in ${first[0].toString()}`)
  console.log(`second read (cache):     ${second[1].name} in ${second[0].toString()}`)
  const stats = yield* cache.stats
  const health = yield* cache.health
  console.log("health:", { status: health.status, redis: health.redis, circuit: health.circuitState })
  console.log("stats:", { hits: stats.hits, misses: stats.misses, fallbacks: stats.fallbacks, errors: stats.errors })
  console.log("config:", stats.config)
})

Effect.runPromise(program.pipe(Effect.provide(ResilientCache.layerConfig({ keyPrefix: "steadfast:example:" })))).catch(
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
