import { RedisConnection } from "@steadfast/redis"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { Cache, type HybridStats } from "../src/Cache.js"
import * as HybridCache from "../src/HybridCache.js"
import { eventually } from "./utils.js"

/** The shared Redis the hybrid tests use when they need no server of their own. */
export const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

/** A key prefix no other test (or run) uses. */
export const unique = (name: string) => `steadfast:hybrid-test:${name}:${process.pid}:${Math.random().toString(36).slice(2)}:`

/** A plain client on the shared Redis, quit when the scope closes. */
export const admin = Effect.acquireRelease(Effect.sync(() => new Redis(REDIS_URL)), (r) => Effect.promise(() => r.quit()).pipe(Effect.ignore))

/** Deletes every key under each prefix from the shared Redis when the scope closes. */
export const cleanup = (...prefixes: ReadonlyArray<string>) =>
  Effect.addFinalizer(() =>
    Effect.promise(async () => {
      const redis = new Redis(REDIS_URL)
      for (const prefix of prefixes) {
        let cursor = "0"
        do {
          const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
          cursor = next
          if (keys.length > 0) await redis.del(...keys)
        } while (cursor !== "0")
      }
      await redis.quit()
    }).pipe(Effect.ignore)
  )

/** A hybrid cache (and its connection) on `url`; the scope closes them. */
export const hybrid = (
  url: string,
  options: HybridCache.Options = {}
): Effect.Effect<{ cache: Cache; connection: RedisConnection.RedisConnection }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const context = yield* Layer.buildWithScope(
      HybridCache.layer(options).pipe(
        Layer.provideMerge(RedisConnection.layer({ url, commandTimeout: "500 millis", connectTimeout: "500 millis" }))
      ),
      scope
    )
    return { cache: Context.get(context, Cache), connection: Context.get(context, RedisConnection.RedisConnection) }
  }).pipe(Effect.orDie)

export const hybridStats = (cache: Cache): Effect.Effect<HybridStats> => Effect.map(cache.stats, (s) => s.hybrid!)

/** Waits until L1 answers (tracking established, canary fresh). */
export const trusted = (cache: Cache, timeoutMs = 5000) =>
  eventually(Effect.map(hybridStats(cache), (h) => h.trusted), timeoutMs)

/** Reads `key` until L1 holds it (two reads in a row, the second an L1 hit). */
export const warm = (cache: Cache, key: string, timeoutMs = 5000) =>
  eventually(
    Effect.gen(function*() {
      yield* cache.get(key)
      const before = (yield* hybridStats(cache)).l1.hits
      yield* cache.get(key)
      return (yield* hybridStats(cache)).l1.hits > before
    }),
    timeoutMs
  )

export interface Observation {
  readonly reads: number
  /** ms from the write's acknowledgement to the first read returning the new value. */
  readonly firstNewMs: number | undefined
  /** ms from the write's acknowledgement to the last read returning the old value (-1: none after it). */
  readonly lastOldMs: number
  /** Reads of the old value after a read had returned the new one. */
  readonly oldAfterNew: number
}

/**
 * Runs `write` (which makes `key` hold `newValue` in Redis, bypassing the cache), then reads `key` through the cache
 * in a tight loop for `forMs`, and reports when the old value stopped being served.
 */
export const observe = <E, R>(
  cache: Cache,
  key: string,
  oldValue: string,
  newValue: string,
  write: Effect.Effect<unknown, E, R>,
  forMs: number
): Effect.Effect<Observation, E | never, R> =>
  Effect.gen(function*() {
    yield* write
    const acked = performance.now()
    let reads = 0
    let firstNewMs: number | undefined
    let lastOldMs = -1
    let oldAfterNew = 0
    while (performance.now() - acked < forMs) {
      const found = yield* Effect.orDie(cache.get(key))
      const at = performance.now() - acked
      reads++
      const value = Option.getOrUndefined(found)
      if (value === newValue && firstNewMs === undefined) firstNewMs = at
      if (value === oldValue) {
        lastOldMs = at
        if (firstNewMs !== undefined) oldAfterNew++
      }
      // Let the subscriber's socket be read: a loop of L1 hits never yields to the event loop otherwise.
      if (reads % 50 === 0) yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
    }
    return { reads, firstNewMs, lastOldMs, oldAfterNew }
  })
