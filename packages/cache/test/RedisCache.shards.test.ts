/**
 * Per-shard breakers (a Cluster connection, `shardOf`) under `TestClock`, over a scripted connection that names a
 * key's shard by its first segment (`a:1` is served by shard `a`): a failing shard opens its own breakers only, the
 * other shards' keys keep going to Redis, multi-key calls are split by shard and reassembled in order, stats name each
 * shard, and runtime tuning reaches the shards' breakers made so far.
 */
import { describe, expect, it } from "@effect/vitest"
import { ScriptedConnection } from "@steadfast/redis"
import { CircuitBreaker, Retry } from "@steadfast/resilience"
import { LogCapture } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as TestClock from "effect/TestClock"
import * as RedisCache from "../src/RedisCache.js"

const shardOf = (key: string) => (key.includes(":") ? key.slice(0, key.indexOf(":")) : undefined)

/** Shard `a` refuses everything (LOADING); the others answer. */
const shardADown: ScriptedConnection.Script = (request) =>
  request.keys.some((k) => k.startsWith("a:")) ? ScriptedConnection.rejected("loading") : undefined

const cacheOver = (options: RedisCache.Options = {}) =>
  RedisCache.layer({
    retry: { get: Retry.none, getMany: Retry.none, set: Retry.none, setMany: Retry.none, delete: Retry.none },
    breaker: { failureThreshold: 2, halfOpenAfter: "1 minute" },
    ...options
  }).pipe(Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis", shardOf })))

const commands = (name: ScriptedConnection.Command) =>
  Effect.map(
    Effect.flatMap(ScriptedConnection.ScriptedConnection, (s) => s.log),
    (log) => log.filter((e) => e.command === name).map((e) => e.keys)
  )

describe("RedisCache over a sharded connection: a breaker per shard", () => {
  it.effect("a failing shard opens its own breaker only; the other shard's keys are still read from Redis", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("b:1", "B")
      yield* redis.setScript(shardADown)
      for (let i = 0; i < 2; i++) expect((yield* Effect.flip(cache.get("a:1")))._tag).toBe("TransientError")
      expect((yield* Effect.flip(cache.get("a:1")))._tag).toBe("CircuitOpenError")
      expect(yield* cache.get("b:1")).toEqual(Option.some("B"))
      expect(cache.rejecting("get", "a:1")).toBe(true)
      expect(cache.rejecting("get", "b:1")).toBe(false)
      // Keys of no known shard go through the cache's own breaker, which saw no failure.
      expect(cache.rejecting("get", "plain")).toBe(false)
      expect(cache.breakers.reads.unsafeState()).toBe("CLOSED")
      expect([...cache.shardBreakers().keys()].sort()).toEqual(["a", "b"])
      expect(cache.shardBreakers().get("a")!.reads.unsafeState()).toBe("OPEN")
      // One breaker per shard (no reads / writes split): writes to shard a are rejected too.
      expect((yield* Effect.flip(cache.set("a:2", "x")))._tag).toBe("CircuitOpenError")
      const stats = yield* cache.stats
      expect(stats.circuitState).toBe("OPEN")
      expect(stats.config["breakers"]).toBe("per-shard one")
      expect(stats.shards).toEqual({ a: { reads: "OPEN", writes: "OPEN", opens: 1 }, b: { reads: "CLOSED", writes: "CLOSED", opens: 0 } })
      // The totals count the shards' breakers: one opening, two failures in a row (shard a's).
      expect(stats.circuitOpens).toBe(1)
      expect(stats.failureCount).toBe(2)
    }).pipe(Effect.provide(cacheOver())))

  it.effect("with reads and writes split, each shard has a pair: shard a's failing writes leave its reads closed", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("a:1", "A")
      yield* redis.setScript((request) => request.command === "set" || request.command === "mset" ? shardADown(request) : undefined)
      for (let i = 0; i < 2; i++) yield* Effect.flip(cache.set("a:2", "x"))
      expect((yield* Effect.flip(cache.set("a:2", "x")))._tag).toBe("CircuitOpenError")
      expect(yield* cache.get("a:1")).toEqual(Option.some("A"))
      const pair = cache.shardBreakers().get("a")!
      expect([pair.reads.unsafeState(), pair.writes.unsafeState()]).toEqual(["CLOSED", "OPEN"])
      const stats = yield* cache.stats
      expect(stats.config["breakers"]).toBe("per-shard reads-writes")
      expect(stats.shards).toEqual({ a: { reads: "CLOSED", writes: "OPEN", opens: 1 } })
    }).pipe(Effect.provide(cacheOver({ breakers: { reads: {}, writes: {} } }))))

  it.effect("runtime tuning reaches both breakers of each shard's pair", () =>
    Effect.gen(function*() {
      const tuning = yield* SubscriptionRef.make<RedisCache.Tuning>({})
      yield* Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        expect(yield* cache.get("a:1")).toEqual(Option.none())
        yield* SubscriptionRef.set(tuning, { breakers: { reads: { failureThreshold: 4 }, writes: { failureThreshold: 6 } } })
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
        const pair = cache.shardBreakers().get("a")!
        expect([pair.reads.unsafeSnapshot().rule, pair.writes.unsafeSnapshot().rule]).toEqual(["consecutive(4)", "consecutive(6)"])
      }).pipe(Effect.provide(cacheOver({ tuning, breakers: { reads: {}, writes: {} } })))
    }))

  it.effect("getMany, setMany and deleteMany send one command per shard and answer in the caller's order", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* cache.setMany([["a:1", "1"], ["b:1", "2"], ["a:2", "3"]])
      expect(yield* commands("mset")).toEqual([["a:1", "a:2"], ["b:1"]])
      expect(yield* cache.getMany(["b:1", "a:1", "c:9", "a:2"])).toEqual([Option.some("2"), Option.some("1"), Option.none(), Option.some("3")])
      expect(yield* commands("mget")).toEqual([["b:1"], ["a:1", "a:2"], ["c:9"]])
      expect(yield* cache.unchecked.deleteMany(["a:1", "b:1", "a:2"])).toBe(3)
      expect(yield* commands("del")).toEqual([["a:1", "a:2"], ["b:1"]])
      expect(yield* redis.keys).toEqual([])
    }).pipe(Effect.provide(cacheOver())))

  it.effect("a multi-key read across shards fails while one of its shards is open; one within a live shard answers", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("b:1", "B")
      yield* redis.setScript(shardADown)
      for (let i = 0; i < 2; i++) yield* Effect.flip(cache.get("a:1"))
      expect((yield* Effect.flip(cache.getMany(["a:1", "b:1"])))._tag).toBe("CircuitOpenError")
      expect(yield* cache.getMany(["b:1", "b:2"])).toEqual([Option.some("B"), Option.none()])
    }).pipe(Effect.provide(cacheOver())))

  it.effect("shardBreakers: false gives one breaker for all shards: a failing shard stops every key", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("b:1", "B")
      yield* redis.setScript(shardADown)
      for (let i = 0; i < 2; i++) yield* Effect.flip(cache.get("a:1"))
      expect((yield* Effect.flip(cache.get("b:1")))._tag).toBe("CircuitOpenError")
      expect(cache.shardBreakers().size).toBe(0)
      expect((yield* cache.stats).config["breakers"]).toBe("one")
    }).pipe(Effect.provide(cacheOver({ shardBreakers: false }))))

  it.effect("a shard's breaker logs its transitions under the shard's name", () => {
    const logs = LogCapture.make()
    return Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.setScript(shardADown)
      for (let i = 0; i < 2; i++) yield* Effect.flip(cache.get("a:1"))
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
      const opened = logs.lines.filter((l) => l.annotations["circuit_breaker_state"] === "OPEN")
      expect(opened.map((l) => [l.level, l.annotations["circuit_breaker"]])).toEqual([["WARN", "a"]])
    }).pipe(Effect.provide(cacheOver()), Effect.provide(logs.layer))
  })

  it.effect("a shared circuitBreaker replaces per-shard breakers: every shard goes through it", () =>
    Effect.gen(function*() {
      const shared = yield* CircuitBreaker.make({ failureThreshold: 2, halfOpenAfter: "1 minute" })
      yield* Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* RedisCache.RedisCache
        yield* redis.setScript(shardADown)
        for (let i = 0; i < 2; i++) yield* Effect.flip(cache.get("a:1"))
        expect(shared.unsafeState()).toBe("OPEN")
        expect((yield* Effect.flip(cache.get("b:1")))._tag).toBe("CircuitOpenError")
        expect(cache.shardBreakers().size).toBe(0)
        expect((yield* cache.stats).config["breakers"]).toBe("shared")
      }).pipe(Effect.provide(cacheOver({ circuitBreaker: shared, breakers: { reads: {}, writes: {} } })))
    }))

  it.effect("a read across two slow shards waits for the slower one, not for both in turn", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.push("mget", ScriptedConnection.slow("100 millis"), ScriptedConnection.slow("100 millis"))
      const fiber = yield* Effect.fork(cache.getMany(["a:1", "b:1"]))
      yield* TestClock.adjust("100 millis")
      // Done at 100 ms: the two shards' MGETs ran at once (one after the other, it would still wait).
      const done = yield* Fiber.poll(fiber)
      expect(Option.map(done, (exit) => exit._tag === "Success" ? exit.value : "failed")).toEqual(Option.some([Option.none(), Option.none()]))
    }).pipe(Effect.provide(cacheOver())))

  it.effect("runtime tuning reaches the shards' breakers made so far", () =>
    Effect.gen(function*() {
      const tuning = yield* SubscriptionRef.make<RedisCache.Tuning>({})
      yield* Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* RedisCache.RedisCache
        // A read of shard a makes its breaker (threshold 2); then the shard fails.
        expect(yield* cache.get("a:1")).toEqual(Option.none())
        expect(cache.shardBreakers().has("a")).toBe(true)
        yield* redis.setScript(shardADown)
        // Threshold 2 -> 4: shard a's breaker, made before the change, now opens after four failures.
        yield* SubscriptionRef.set(tuning, { breaker: { failureThreshold: 4, halfOpenAfter: "1 minute" } })
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
        for (let i = 0; i < 3; i++) yield* Effect.flip(cache.get("a:1"))
        expect(cache.shardBreakers().get("a")!.reads.unsafeState()).toBe("CLOSED")
        yield* Effect.flip(cache.get("a:1"))
        expect(cache.shardBreakers().get("a")!.reads.unsafeState()).toBe("OPEN")
      }).pipe(Effect.provide(cacheOver({ tuning })))
    }))
})
