import { describe, expect, it } from "@effect/vitest"
import { Cache, MemoryCache } from "@steadfast/cache"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import { getProduct } from "../src/program.js"

// The program is written against `Cache`; the test swaps the Redis stack for the in-memory layer.
describe("getProduct with the in-memory cache layer", () => {
  it.effect("loads from the database once, then serves from the cache", () =>
    Effect.gen(function*() {
      const first = yield* Effect.fork(getProduct("42"))
      yield* TestClock.adjust("20 millis")
      const product = yield* first
      expect(product.name).toBe("Product 42")
      // The second read needs no time at all: it never reaches the 20 ms "database".
      const again = yield* getProduct("42")
      expect(again).toEqual(product)
      const stats = yield* Effect.flatMap(Cache.Cache, (c) => c.stats)
      expect(stats).toMatchObject({ backend: "memory", hits: 1, misses: 1 })
    }).pipe(Effect.provide(MemoryCache.layer())))

  it.effect("after the TTL, the database is asked again", () =>
    Effect.gen(function*() {
      const load = Effect.fork(getProduct("7"))
      yield* Effect.flatMap(load, (f) => TestClock.adjust("20 millis").pipe(Effect.zipRight(f)))
      yield* TestClock.adjust("5 minutes")
      const stats0 = yield* Effect.flatMap(Cache.Cache, (c) => c.stats)
      yield* Effect.flatMap(Effect.fork(getProduct("7")), (f) => TestClock.adjust("20 millis").pipe(Effect.zipRight(f)))
      const stats1 = yield* Effect.flatMap(Cache.Cache, (c) => c.stats)
      expect(stats1.misses - stats0.misses).toBe(1)
    }).pipe(Effect.provide(MemoryCache.layer())))
})
