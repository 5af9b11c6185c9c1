/**
 * The `Cache` contract: one suite, run over every layer that provides the service (memory, strict Redis, resilient),
 * for the semantics they share. A new layer (a hybrid one, say) adds one line at the bottom and gets the suite.
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisConnection } from "@steadfast/redis"
import type { PermanentError } from "@steadfast/resilience"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { Cache, type CacheService } from "../src/Cache.js"
import * as MemoryCache from "../src/MemoryCache.js"
import * as RedisCache from "../src/RedisCache.js"
import * as ResilientCache from "../src/ResilientCache.js"

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const unique = () => `steadfast:contract:${process.pid}:${Math.random().toString(36).slice(2)}:`
const connection = RedisConnection.layer({ url: REDIS_URL })

type AnyCache = CacheService<unknown>
type Make = Effect.Effect<AnyCache, never, Scope.Scope>

const fromLayer = <I, S extends AnyCache, E>(tag: Context.Tag<I, S>, layer: Layer.Layer<I, E>): Make =>
  Effect.flatMap(Effect.scope, (scope) =>
    Effect.map(Effect.orDie(Layer.buildWithScope(layer, scope)), (ctx) => Context.get(ctx, tag)))

const isInvalid = (error: unknown) =>
  (error as PermanentError)._tag === "PermanentError" && (error as PermanentError).reason === "invalid_argument"

const contract = (name: string, make: Make) =>
  describe(`Cache contract: ${name}`, () => {
    const withCache = <A, E>(body: (cache: AnyCache) => Effect.Effect<A, E>) => Effect.scoped(Effect.flatMap(make, body))

    it.live("a missing key is a miss; a set value is read back; a second set replaces it", () =>
      withCache((cache) =>
        Effect.gen(function*() {
          expect(yield* cache.get("k")).toEqual(Option.none())
          yield* cache.set("k", "v1")
          expect(yield* cache.get("k")).toEqual(Option.some("v1"))
          yield* cache.set("k", "v2", { ttl: "1 minute" })
          expect(yield* cache.get("k")).toEqual(Option.some("v2"))
          // Values are strings, kept as they are: empty, unicode, large.
          const big = "é".repeat(20_000)
          yield* cache.set("e", "")
          yield* cache.set("u", "naïve ☃ 日本")
          yield* cache.set("b", big)
          expect(yield* cache.getMany(["e", "u", "b"])).toEqual([Option.some(""), Option.some("naïve ☃ 日本"), Option.some(big)])
        })))

    it.live("delete answers whether the key existed, and the value is gone", () =>
      withCache((cache) =>
        Effect.gen(function*() {
          yield* cache.set("k", "v")
          expect(yield* cache.delete("k")).toBe(true)
          expect(yield* cache.get("k")).toEqual(Option.none())
          expect(yield* cache.delete("k")).toBe(false)
          expect(yield* cache.delete("never")).toBe(false)
        })))

    it.live("getMany answers one result per key, in order, duplicates and misses included; setMany stores them all", () =>
      withCache((cache) =>
        Effect.gen(function*() {
          expect(yield* cache.getMany([])).toEqual([])
          yield* cache.setMany([])
          yield* cache.setMany([["a", "1"], ["b", "2"]])
          yield* cache.setMany(new Map([["c", "3"]]), { ttl: "1 minute" })
          expect(yield* cache.getMany(["b", "missing", "a", "b", "c"])).toEqual([
            Option.some("2"),
            Option.none(),
            Option.some("1"),
            Option.some("2"),
            Option.some("3")
          ])
        })))

    it.live("a TTL expires the value (real time: the Redis layers count it on the server)", () =>
      withCache((cache) =>
        Effect.gen(function*() {
          yield* cache.set("short", "v", { ttl: "150 millis" })
          yield* cache.set("long", "v", { ttl: "1 minute" })
          expect(yield* cache.get("short")).toEqual(Option.some("v"))
          yield* Effect.sleep("300 millis")
          expect(yield* cache.get("short")).toEqual(Option.none())
          expect(yield* cache.get("long")).toEqual(Option.some("v"))
        })))

    it.live("getOrElse stores nothing; getOrSet computes once for concurrent callers and stores the result", () =>
      withCache((cache) =>
        Effect.gen(function*() {
          expect(yield* cache.getOrElse("k", () => "default")).toBe("default")
          expect(yield* cache.get("k")).toEqual(Option.none())
          let computed = 0
          const compute = Effect.sleep("50 millis").pipe(Effect.zipRight(Effect.sync(() => `v${++computed}`)))
          const fibers = yield* Effect.forEach(
            Array.from({ length: 10 }),
            () => Effect.fork(cache.getOrSet("k", compute)),
            { concurrency: "unbounded" }
          )
          const values = yield* Effect.forEach(fibers, Fiber.join)
          expect(new Set(values)).toEqual(new Set(["v1"]))
          expect(computed).toBe(1)
          expect(yield* cache.get("k")).toEqual(Option.some("v1"))
          expect(yield* cache.getOrSet("k", compute)).toBe("v1")
          expect(computed).toBe(1)
          // A failing compute fails the call and stores nothing.
          const failed = yield* Effect.flip(cache.getOrSet("f", Effect.fail("no source")))
          expect(failed).toBe("no source")
          expect(yield* cache.get("f")).toEqual(Option.none())
        })))

    it.live("bad input fails with PermanentError invalid_argument and changes nothing", () =>
      withCache((cache) =>
        Effect.gen(function*() {
          yield* cache.set("k", "v")
          const failures = [
            yield* Effect.flip(cache.get("")),
            yield* Effect.flip(cache.set("", "v")),
            yield* Effect.flip(cache.set("k", 42 as unknown as string)),
            yield* Effect.flip(cache.set("k", "w", { ttl: 0 })),
            yield* Effect.flip(cache.set("k", "w", { ttl: "-1 seconds" })),
            yield* Effect.flip(cache.set("k", "w", { ttl: Infinity })),
            yield* Effect.flip(cache.delete("")),
            yield* Effect.flip(cache.getMany(["ok", ""])),
            yield* Effect.flip(cache.setMany([["ok", "1"], ["", "2"]])),
            yield* Effect.flip(cache.get("x".repeat(8193)))
          ]
          for (const failure of failures) expect(isInvalid(failure)).toBe(true)
          // The longest key accepted works.
          yield* cache.set("x".repeat(8192), "long key")
          expect(yield* cache.get("x".repeat(8192))).toEqual(Option.some("long key"))
          // Nothing changed: not the key the bad calls named, not the good half of a bad batch.
          expect(yield* cache.get("k")).toEqual(Option.some("v"))
          expect(yield* cache.get("ok")).toEqual(Option.none())
        })))

    it.live("health and stats describe the layer", () =>
      withCache((cache) =>
        Effect.gen(function*() {
          yield* cache.set("k", "v")
          yield* cache.get("k")
          yield* cache.get("missing")
          const stats = yield* cache.stats
          expect(stats.hits).toBeGreaterThanOrEqual(1)
          expect(stats.misses).toBeGreaterThanOrEqual(1)
          expect(stats.fallbacks).toBe(0)
          expect((yield* cache.health).status).toBe("healthy")
        })))
  })

contract("MemoryCache", fromLayer(Cache, MemoryCache.layer()))
contract(
  "RedisCache (strict)",
  Effect.suspend(() => fromLayer(RedisCache.RedisCache, RedisCache.layer({ keyPrefix: unique() }).pipe(Layer.provide(connection))))
)
contract(
  "RedisCache (strict, coalesce: false)",
  Effect.suspend(() =>
    fromLayer(RedisCache.RedisCache, RedisCache.layer({ keyPrefix: unique(), coalesce: false }).pipe(Layer.provide(connection)))
  )
)
contract(
  "ResilientCache",
  Effect.suspend(() => fromLayer(Cache, ResilientCache.layer({ keyPrefix: unique() }).pipe(Layer.provide(connection))))
)
contract(
  "ResilientCache (write-back, no mirror)",
  Effect.suspend(() =>
    fromLayer(
      Cache,
      ResilientCache.layer({ keyPrefix: unique(), mirror: false, reconcile: { policy: "write-back" } }).pipe(Layer.provide(connection))
    )
  )
)
