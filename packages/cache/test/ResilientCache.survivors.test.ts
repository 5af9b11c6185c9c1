/**
 * Resilient-cache behaviours the decision tests left open (mutation-testing survivors, issue 13), under `TestClock`
 * over a scripted connection: hits and misses summed over Redis and the fallback, a write-back of a value set without
 * a TTL, and the defaults of the reconcile options.
 */
import { describe, expect, it } from "@effect/vitest"
import { ScriptedConnection } from "@steadfast/redis"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { Cache } from "../src/Cache.js"
import * as CacheMetrics from "../src/CacheMetrics.js"
import * as ResilientCache from "../src/ResilientCache.js"
import { scriptedResilient as scripted, settle } from "./utils.js"

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

const commands = (name: ScriptedConnection.Command) =>
  Effect.map(Effect.flatMap(ScriptedConnection.ScriptedConnection, (s) => s.log), (log) => log.filter((e) => e.command === name))

describe("ResilientCache reconciliation (survivors)", () => {
  it.effect("a flush whose SCAN is refused for good backs off instead of hammering Redis", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.setDefault("scan", ScriptedConnection.permanent("no_permission"))
      yield* redis.push("mset", ScriptedConnection.rejected("read_only"))
      yield* cache.setMany([["x0", "n"], ["x1", "n"], ["x2", "n"]])
      yield* settle
      // One SCAN, refused: the next waits for retryEvery.
      expect((yield* commands("scan")).length).toBe(1)
      for (let i = 0; i < 100; i++) {
        yield* TestClock.adjust("100 millis")
        yield* settle
      }
      // 10 s: doubling from 100 ms up to 5 s is a handful of rounds; the flush is still due.
      expect((yield* commands("scan")).length).toBeLessThanOrEqual(10)
      expect((yield* cache.stats).reconciliation).toMatchObject({ flushing: true, overflows: 1 })
    }).pipe(Effect.provide(scripted({ reconcile: { maxPending: 2, retryEvery: "100 millis" } }))))

  it.effect("write-back: a value superseded by an acknowledged write during the round is not written again, and the newer one is at once", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      // a and b are missed; the round writes a back first (100 ms), then b.
      yield* redis.push("mset", ScriptedConnection.rejected("read_only"))
      yield* cache.setMany([["a", "old-a"], ["b", "old-b"]])
      yield* redis.push("set", ScriptedConnection.slow("100 millis"))
      yield* settle
      // While a's write-back is in flight, b is written again and Redis acknowledges it.
      yield* cache.set("b", "new-b")
      expect(yield* redis.peek("t:b")).toBe("new-b")
      yield* TestClock.adjust("100 millis")
      yield* settle
      const toB = (yield* commands("set")).filter((e) => e.keys[0] === "t:b")
      // The user's write, then the next round's write-back of the newer value: old-b was never sent.
      expect(toB.length).toBe(2)
      expect(yield* redis.peek("t:b")).toBe("new-b")
      expect(yield* redis.peek("t:a")).toBe("old-a")
      expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(0)
    }).pipe(Effect.provide(scripted({ reconcile: { policy: "write-back", retryEvery: "100 millis" } }))))

  it.effect("when a slow probe of another caller closes the breaker, reconciliation runs at once, not at its next retry", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("t:k", "old")
      yield* redis.down({ reconnecting: false })
      yield* cache.delete("k")
      expect((yield* cache.stats).circuitState).toBe("OPEN")
      yield* redis.up
      yield* TestClock.adjust("1 second")
      // The probe takes 100 ms: the breaker is HALF_OPEN meanwhile, and the reconciler must not be rejected then
      // wait for its next retry (10 s).
      yield* redis.push("get", ScriptedConnection.slow("100 millis"))
      const probe = yield* Effect.fork(cache.get("other"))
      yield* settle
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(probe)).toEqual(Option.none())
      yield* settle
      expect((yield* cache.stats).circuitState).toBe("CLOSED")
      expect(yield* redis.peek("t:k")).toBeNull()
      expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(0)
    }).pipe(Effect.provide(scripted({ reconcile: { retryEvery: "10 seconds" }, breaker: { failureThreshold: 1, halfOpenAfter: "1 second" } }))))

  it.effect("while a flush is due, getMany reads no key from Redis and counts every key as a local read", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      yield* redis.put("t:x5", "old")
      // Missed writes overflow maxPending; the flush's first SCAN waits for the breaker, which is open.
      yield* redis.push("mset", ScriptedConnection.rejected("read_only"))
      yield* redis.push("scan", ScriptedConnection.slow("1 second"))
      yield* cache.setMany([["x0", "n"], ["x1", "n"], ["x2", "n"]])
      expect((yield* cache.stats).reconciliation).toMatchObject({ flushing: true })
      const mgets = (yield* commands("mget")).length
      expect(yield* cache.getMany(["x0", "x5", "x9"])).toEqual([Option.some("n"), Option.none(), Option.none()])
      expect((yield* commands("mget")).length).toBe(mgets)
      expect((yield* cache.stats).reconciliation?.localReads).toBe(3)
    }).pipe(Effect.provide(scripted({ reconcile: { maxPending: 2 } }))))

  it.effect("a write Redis refused is counted as a fallback of set (and of setMany), not of another operation", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* Cache
      const fallbacksOf = (operation: string) =>
        Effect.map(
          Metric.value(Metric.taggedWithLabels(CacheMetrics.fallbacks, [
            MetricLabel.make("operation", operation),
            MetricLabel.make("backend", "resilient")
          ])),
          (state) => state.count
        )
      const before = [yield* fallbacksOf("set"), yield* fallbacksOf("setMany")]
      yield* redis.push("set", ScriptedConnection.rejected("read_only"))
      yield* redis.push("mset", ScriptedConnection.rejected("read_only"))
      yield* cache.set("k", "v")
      yield* cache.setMany([["a", "1"]])
      expect([(yield* fallbacksOf("set")) - before[0]!, (yield* fallbacksOf("setMany")) - before[1]!]).toEqual([1, 1])
      expect((yield* cache.stats).fallbacks).toBe(2)
    }).pipe(Effect.provide(scripted({ reconcile: { retryEvery: "10 seconds" } }))))
})

describe("ResilientCache.layerConfig (survivors)", () => {
  const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
  it.live("builds the connection from configuration and the resilient cache over it (the shared Redis)", () => {
    const prefix = `survivors:layerConfig:${process.pid}:${Date.now()}:`
    return Effect.gen(function*() {
      const cache = yield* Cache
      yield* cache.set("k", "v", { ttl: "10 seconds" })
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      const stats = yield* cache.stats
      expect(stats.backend).toBe("resilient")
      expect(stats.config).toMatchObject({ keyPrefix: prefix, url: `${url}/0` })
      expect(yield* cache.delete("k")).toBe(true)
    }).pipe(
      Effect.provide(ResilientCache.layerConfig({ keyPrefix: prefix }).pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["REDIS_URL", url]]))))
      ))
    )
  })
})
