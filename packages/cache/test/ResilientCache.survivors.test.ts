/**
 * Resilient-cache behaviours the decision tests left open (mutation-testing survivors, issue 13), under `TestClock`
 * over a scripted connection: hits and misses summed over Redis and the fallback, a write-back of a value set without
 * a TTL, and the defaults of the reconcile options.
 */
import { describe, expect, it } from "@effect/vitest"
import { ScriptedConnection } from "@steadfast/redis"
import { Retry } from "@steadfast/resilience"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { Cache } from "../src/Cache.js"
import * as ResilientCache from "../src/ResilientCache.js"

const scripted = (options: ResilientCache.Options = {}) =>
  ResilientCache.layer({
    keyPrefix: "t:",
    retry: { get: Retry.none, getMany: Retry.none },
    breaker: { failureThreshold: 3, halfOpenAfter: "1 second" },
    reconcile: { retryEvery: "100 millis" },
    ...options
  }).pipe(Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis" })))

/** Lets the forked fibers (the reconciler) run: a few scheduler turns on the test clock. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
})

describe("ResilientCache (survivors)", () => {
  it.effect("stats: hits and misses are those answered by Redis plus those answered by the fallback", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* cache.set("a", "1")
      expect(yield* cache.get("a")).toEqual(Option.some("1")) // Redis hit
      expect(yield* cache.get("b")).toEqual(Option.none()) // Redis miss
      expect(yield* cache.get("c")).toEqual(Option.none()) // Redis miss
      yield* redis.push("get", ScriptedConnection.permanent("wrong_type"), ScriptedConnection.permanent("wrong_type"))
      expect(yield* cache.get("a")).toEqual(Option.some("1")) // fallback hit (the mirror's copy)
      expect(yield* cache.get("z")).toEqual(Option.none()) // fallback miss
      const stats = yield* cache.stats
      expect(stats).toMatchObject({ hits: 2, misses: 3, fallbacks: 2 })
      expect(stats.errors).toEqual({ wrong_type: 2 })
    }).pipe(Effect.provide(scripted())))

  it.effect("write-back: a value written without a TTL is written back without one", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.push("set", ScriptedConnection.rejected("loading"))
      yield* cache.set("k", "v")
      expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(1)
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust("100 millis")
        yield* settle
      }
      expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(0)
      expect(yield* redis.peek("t:k")).toBe("v")
      expect(yield* redis.pttl("t:k")).toBe(-1)
    }).pipe(Effect.provide(scripted({ reconcile: { policy: "write-back", retryEvery: "100 millis" } }))))

  it.effect("default reconcile options: invalidate, 10,000 pending keys", () =>
    Effect.gen(function*() {
      const cache = yield* Cache
      const stats = yield* cache.stats
      expect(stats.reconciliation).toMatchObject({ policy: "invalidate", maxPending: 10_000 })
      expect(stats.config).toMatchObject({ reconcilePolicy: "invalidate", reconcileMaxPending: 10_000, mirror: true })
      expect(ResilientCache.defaultMaxPending).toBe(10_000)
    }).pipe(Effect.provide(ResilientCache.layer({ keyPrefix: "t:" }).pipe(Layer.provideMerge(ScriptedConnection.layer())))))
})
