/**
 * Strict-cache behaviours no other test pinned down (mutation-testing survivors, issue 13), under `TestClock` over a
 * scripted connection: health, the configuration `stats` reports, the worse of two breakers, failure and breaker
 * logs, hits and misses of `getMany`, the bulkhead's reason, and the namespace of `scan` / `deleteMany`.
 */
import { describe, expect, it } from "@effect/vitest"
import { ScriptedConnection } from "@steadfast/redis"
import { CircuitBreaker, Retry } from "@steadfast/resilience"
import { LogCapture } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as CacheMetrics from "../src/CacheMetrics.js"
import * as RedisCache from "../src/RedisCache.js"
import { settle } from "./utils.js"

const scripted = (options: RedisCache.Options = {}) =>
  RedisCache.layer({
    keyPrefix: "t:",
    retry: { get: Retry.none, getMany: Retry.none },
    breaker: { failureThreshold: 3, halfOpenAfter: "1 second" },
    ...options
  }).pipe(Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis" })))

describe("RedisCache (survivors)", () => {
  it.effect("health: healthy with the PING's latency while Redis answers, degraded with its reason when it does not", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      // From a non-zero instant: the latency is now minus the PING's start.
      yield* TestClock.adjust("10 seconds")
      expect(yield* cache.health).toEqual({
        status: "healthy",
        redis: "up",
        circuitState: "CLOSED",
        latencyMs: Option.some(0),
        error: Option.none()
      })
      yield* redis.push("ping", ScriptedConnection.slow("30 millis"))
      const slow = yield* Effect.fork(cache.health)
      yield* TestClock.adjust("30 millis")
      expect((yield* Fiber.join(slow)).latencyMs).toEqual(Option.some(30))
      yield* redis.down({ reconnecting: false })
      expect(yield* cache.health).toEqual({
        status: "degraded",
        redis: "down",
        circuitState: "CLOSED",
        latencyMs: Option.none(),
        error: Option.some("connection_unavailable")
      })
    }).pipe(Effect.provide(scripted())))

  it.effect("stats: the configuration of a cache with one breaker, and the defaults", () =>
    Effect.gen(function*() {
      const cache = yield* RedisCache.RedisCache
      const stats = yield* cache.stats
      expect(stats).toMatchObject({ backend: "redis", fallbacks: 0, memory: undefined, reconciliation: undefined })
      expect(stats.circuits).toBeUndefined()
      // Not a cluster: no per-shard breakers to report.
      expect(Object.keys(stats)).not.toContain("shards")
      expect(stats.config).toMatchObject({
        keyPrefix: "t:",
        coalesce: true,
        breakers: "one",
        breakerRule: "consecutive(5)",
        breakerFailureThreshold: 5,
        breakerHalfOpenAfterMs: 5000,
        breakerCountOverlappingOnce: true,
        getMaxRetries: 3,
        getManyMaxRetries: 3,
        setMaxRetries: 0,
        setManyMaxRetries: 0,
        deleteMaxRetries: 0,
        commandTimeoutMs: 500
      })
      expect(stats.config).not.toHaveProperty("writeBreakerRule")
      expect(stats.config).not.toHaveProperty("bulkheadMaxConcurrent")
      expect(RedisCache.defaultBreaker).toEqual({ failureThreshold: 5, halfOpenAfter: expect.anything(), countOverlappingOnce: true })
    }).pipe(Effect.provide(RedisCache.layer({ keyPrefix: "t:" }).pipe(
      Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis", maxRetries: 3 }))
    ))))

  it.effect("stats: the configuration of read and write breakers, a breaker's own options over the shared ones", () =>
    Effect.gen(function*() {
      const cache = yield* RedisCache.RedisCache
      const stats = yield* cache.stats
      expect(stats.circuits).toEqual({ reads: "CLOSED", writes: "CLOSED" })
      expect(stats.config).toMatchObject({
        coalesce: false,
        breakers: "reads-writes",
        breakerRule: "consecutive(3)",
        breakerFailureThreshold: 3,
        breakerHalfOpenAfterMs: 1000,
        breakerCountOverlappingOnce: false,
        writeBreakerRule: "consecutive(2)",
        writeBreakerHalfOpenAfterMs: 2000
      })
    }).pipe(Effect.provide(scripted({
      coalesce: false,
      breaker: { failureThreshold: 3, halfOpenAfter: "1 second", countOverlappingOnce: false },
      breakers: { writes: { failureThreshold: 2, halfOpenAfter: "2 seconds" } }
    }))))

  it.effect("stats: a shared breaker is reported as shared, with its own rule and none of the cache's unused options", () =>
    Effect.gen(function*() {
      const cache = yield* RedisCache.RedisCache
      const config = (yield* cache.stats).config
      expect(config["breakers"]).toBe("shared")
      expect(config["breakerRule"]).toBe("consecutive(2)")
      for (const unused of ["breakerFailureThreshold", "breakerHalfOpenAfterMs", "breakerCountOverlappingOnce"]) {
        expect(config).not.toHaveProperty(unused)
      }
    }).pipe(Effect.provide(Layer.unwrapEffect(Effect.map(
      CircuitBreaker.make({ failureThreshold: 2, halfOpenAfter: "1 second" }),
      (circuitBreaker) => scripted({ circuitBreaker })
    )))))

  it.effect("the worse of the read and write breakers is the cache's state, in stats and health, either way round", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      // Refused writes open the write breaker only.
      yield* redis.push("set", ...Array.from({ length: 3 }, () => ScriptedConnection.rejected("read_only")))
      for (let i = 0; i < 3; i++) yield* Effect.flip(cache.set("k", "v"))
      let stats = yield* cache.stats
      expect(stats.circuits).toEqual({ reads: "CLOSED", writes: "OPEN" })
      expect(stats).toMatchObject({ circuitState: "OPEN", failureCount: 3, circuitOpens: 1 })
      expect((yield* cache.health).circuitState).toBe("OPEN")
      expect(yield* cache.get("k")).toEqual(Option.none())
      // Failed reads open the read breaker too: both opens are counted.
      yield* redis.push("get", ...Array.from({ length: 3 }, () => ScriptedConnection.rejected("loading")))
      for (let i = 0; i < 3; i++) yield* Effect.flip(cache.get("k"))
      stats = yield* cache.stats
      expect(stats.circuits).toEqual({ reads: "OPEN", writes: "OPEN" })
      expect(stats.circuitOpens).toBe(2)
      // The write breaker half-opens and closes on a probe: reads stay OPEN, and so does the cache's state.
      yield* TestClock.adjust("1 second")
      yield* cache.set("k", "v")
      stats = yield* cache.stats
      expect(stats.circuits).toEqual({ reads: "OPEN", writes: "CLOSED" })
      expect(stats).toMatchObject({ circuitState: "OPEN", failureCount: 3 })
      expect((yield* cache.health).circuitState).toBe("OPEN")
    }).pipe(Effect.provide(scripted({ breakers: { reads: {}, writes: {} } }))))

  it.effect("getMany counts each key found as a hit and each missing one as a miss", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("t:a", "1")
      yield* redis.put("t:c", "3")
      expect(yield* cache.getMany(["a", "b", "c", "d", "e"])).toEqual([
        Option.some("1"),
        Option.none(),
        Option.some("3"),
        Option.none(),
        Option.none()
      ])
      expect(yield* cache.stats).toMatchObject({ hits: 2, misses: 3 })
    }).pipe(Effect.provide(scripted())))

  it.effect("empty getMany / setMany / deleteMany answer at once, without Redis or the breaker (even while it is open)", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.setDefault("get", ScriptedConnection.rejected("loading"))
      while (cache.breaker.unsafeState() !== "OPEN") yield* Effect.either(cache.get("k"))
      const before = (yield* redis.log).length
      expect(yield* cache.getMany([])).toEqual([])
      yield* cache.setMany([])
      expect(yield* cache.unchecked.deleteMany([])).toBe(0)
      expect((yield* redis.log).length).toBe(before)
    }).pipe(Effect.provide(scripted())))

  it.effect("scan and deleteMany stay in the prefix's namespace, glob characters in the prefix included", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("a*[b]?\\:x", "1")
      yield* redis.put("a*[b]?\\:y", "2")
      // Each of these would match the prefix read as a pattern.
      yield* redis.put("aZZb]?\\:z", "3")
      yield* redis.put("a*[b]!\\:z", "4")
      yield* redis.put("a*b?\\:z", "5")
      const [cursor, keys] = yield* cache.unchecked.scan("0", 100)
      expect(cursor).toBe("0")
      expect([...keys].sort()).toEqual(["x", "y"])
      expect(yield* cache.unchecked.deleteMany(["x", "y", "none"])).toBe(2)
      expect(yield* cache.unchecked.deleteMany([])).toBe(0)
      expect((yield* redis.keys).length).toBe(3)
    }).pipe(Effect.provide(scripted({ keyPrefix: "a*[b]?\\:" }))))
})

describe("RedisCache logs (survivors)", () => {
  const logged = (logs: LogCapture.LogCapture, message: string) => logs.lines.filter((l) => l.message === message)

  it.effect("a failure is logged once per operation and reason per logInterval, with what was suppressed since", () => {
    const logs = LogCapture.make()
    return Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      // From a non-zero instant: the window is measured from the last line, not from the clock's start.
      yield* TestClock.adjust("5 seconds")
      yield* redis.setDefault("get", ScriptedConnection.permanent("wrong_type"))
      yield* redis.setDefault("del", ScriptedConnection.rejected("loading"))
      for (let i = 0; i < 3; i++) yield* Effect.flip(cache.get("k"))
      yield* Effect.flip(cache.delete("k"))
      let failures = logged(logs, "redis operation failed")
      expect(failures.map((l) => [l.level, l.annotations["operation"], l.annotations["error_type"]])).toEqual([
        ["ERROR", "get", "wrong_type"],
        ["WARN", "delete", "loading"]
      ])
      expect(failures[0]!.annotations).toMatchObject({
        error_class: "PermanentError",
        suppressed_since_last_log: 0,
        circuit_breaker_state: "CLOSED",
        error_count: 0
      })
      expect(failures[1]!.annotations).toMatchObject({ error_class: "TransientError", error_count: 1 })
      expect(failures[0]!.annotations).not.toHaveProperty("bulkhead_running")
      // Just before the interval ends: still suppressed. At its end: logged, with the two suppressed since.
      yield* TestClock.adjust("999 millis")
      yield* Effect.flip(cache.get("k"))
      expect(logged(logs, "redis operation failed").length).toBe(2)
      yield* TestClock.adjust("1 millis")
      yield* Effect.flip(cache.get("k"))
      failures = logged(logs, "redis operation failed")
      expect(failures.length).toBe(3)
      expect(failures[2]!.annotations).toMatchObject({ operation: "get", suppressed_since_last_log: 3 })
    }).pipe(Effect.provide(scripted({ logInterval: "1 second" })), Effect.provide(logs.layer))
  })

  it.effect("the default logInterval is one second", () => {
    const logs = LogCapture.make()
    return Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.setDefault("get", ScriptedConnection.permanent("wrong_type"))
      yield* Effect.flip(cache.get("k"))
      yield* TestClock.adjust("999 millis")
      yield* Effect.flip(cache.get("k"))
      expect(logged(logs, "redis operation failed").length).toBe(1)
      yield* TestClock.adjust("1 millis")
      yield* Effect.flip(cache.get("k"))
      expect(logged(logs, "redis operation failed").length).toBe(2)
    }).pipe(Effect.provide(scripted()), Effect.provide(logs.layer))
  })

  it.effect("breaker transitions are logged once each, naming the breaker and its states", () => {
    const logs = LogCapture.make()
    return Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.push("get", ...Array.from({ length: 3 }, () => ScriptedConnection.rejected("loading")))
      for (let i = 0; i < 5; i++) yield* Effect.flip(cache.get("k"))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* redis.push("get", ScriptedConnection.slow("10 millis"))
      const probe = yield* Effect.fork(cache.get("k"))
      yield* settle
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(probe)
      yield* settle
      yield* cache.breaker.isolate
      yield* settle
      const transitions = logs.lines.filter((l) => l.message.startsWith("circuit breaker"))
      expect(transitions.map((l) => [l.level, l.message, l.annotations["circuit_breaker_previous_state"], l.annotations["circuit_breaker_state"]])).toEqual([
        ["WARN", "circuit breaker opened: Redis calls fail fast until a probe succeeds", "CLOSED", "OPEN"],
        ["INFO", "circuit breaker half-open: probing Redis", "OPEN", "HALF_OPEN"],
        ["INFO", "circuit breaker closed: Redis serves again", "HALF_OPEN", "CLOSED"],
        ["WARN", "circuit breaker isolated: Redis calls are rejected until it is reset", "CLOSED", "ISOLATED"]
      ])
      expect(transitions.map((l) => l.annotations["circuit_breaker"])).toEqual(["all", "all", "all", "all"])
      expect(transitions[0]!.annotations["error_count"]).toBe(3)
    }).pipe(Effect.provide(scripted()), Effect.provide(logs.layer))
  })

  it.effect("with read and write breakers, each one's transitions are logged under its name", () => {
    const logs = LogCapture.make()
    return Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.push("set", ...Array.from({ length: 3 }, () => ScriptedConnection.rejected("read_only")))
      for (let i = 0; i < 3; i++) yield* Effect.flip(cache.set("k", "v"))
      yield* settle
      yield* redis.push("get", ...Array.from({ length: 3 }, () => ScriptedConnection.rejected("loading")))
      for (let i = 0; i < 3; i++) yield* Effect.flip(cache.get("k"))
      yield* settle
      const opened = logged(logs, "circuit breaker opened: Redis calls fail fast until a probe succeeds")
      expect(opened.map((l) => l.annotations["circuit_breaker"])).toEqual(["writes", "reads"])
    }).pipe(Effect.provide(scripted({ breakers: { reads: {}, writes: {} } })), Effect.provide(logs.layer))
  })
})

describe("RedisCache bulkhead (survivors)", () => {
  it.effect("a call beyond the bulkhead is counted as bulkhead_<reason> and logged with the running count; stats show the bulkhead", () => {
    const logs = LogCapture.make()
    return Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.push("get", ScriptedConnection.slow("100 millis"))
      const first = yield* Effect.fork(cache.get("a"))
      yield* settle
      const error = yield* Effect.flip(cache.get("b"))
      expect(error._tag).toBe("BulkheadRejectedError")
      expect(RedisCache.reasonOf(error)).toMatch(/^bulkhead_/)
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(first)
      const stats = yield* cache.stats
      expect(stats.errors).toEqual({ [RedisCache.reasonOf(error)]: 1 })
      // Not a failure of Redis: the breaker did not count it.
      expect(stats.failureCount).toBe(0)
      expect(stats.config).toMatchObject({ bulkheadMaxConcurrent: 1, bulkheadMaxQueue: 0 })
      expect(stats.config).not.toHaveProperty("bulkheadQueueTimeoutMs")
      const line = logs.lines.find((l) => l.message === "redis operation failed")!
      expect(line.annotations).toMatchObject({ error_class: "BulkheadRejectedError", bulkhead_running: 1 })
    }).pipe(Effect.provide(scripted({ bulkhead: { maxConcurrent: 1, maxQueue: 0 } })), Effect.provide(logs.layer))
  })

  it.effect("a bulkhead's queue timeout is in the stats", () =>
    Effect.gen(function*() {
      const cache = yield* RedisCache.RedisCache
      expect((yield* cache.stats).config).toMatchObject({ bulkheadMaxConcurrent: 2, bulkheadMaxQueue: 3, bulkheadQueueTimeoutMs: 50 })
    }).pipe(Effect.provide(scripted({ bulkhead: { maxConcurrent: 2, maxQueue: 3, queueTimeout: "50 millis" } }))))
})

describe("RedisCache deadlines and reconnects (survivors)", () => {
  it.effect("retries get what is left of the deadline after a slow first attempt: the call fails at 475 ms (500 less 25 ms of slack)", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      // A non-zero start: the elapsed time is now minus the call's start.
      yield* TestClock.adjust("10 seconds")
      yield* redis.push("get", ScriptedConnection.slow("200 millis", ScriptedConnection.rejected("loading")))
      yield* redis.setDefault("get", ScriptedConnection.rejected("loading"))
      const fiber = yield* Effect.fork(Effect.flip(cache.get("k")))
      yield* TestClock.adjust("474 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(Option.isSome(yield* Fiber.poll(fiber))).toBe(true)
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "TransientError", reason: "timeout", message: "get exceeded its 500 ms deadline (retries included)" })
    }).pipe(Effect.provide(scripted({
      retry: { get: Schedule.spaced("10 millis") },
      breaker: { failureThreshold: 100, halfOpenAfter: "1 second" }
    }))))

  it.effect("a call made while the socket reconnects waits for it instead of failing (nothing counted)", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("t:k", "v")
      yield* redis.down({ reconnecting: true })
      const fiber = yield* Effect.fork(cache.get("k"))
      yield* TestClock.adjust("50 millis")
      yield* redis.up
      expect(yield* Fiber.join(fiber)).toEqual(Option.some("v"))
      const stats = yield* cache.stats
      expect(stats.errors).toEqual({})
      expect(stats.failureCount).toBe(0)
    }).pipe(Effect.provide(scripted())))

  it.effect("each opening of the breaker is counted in circuit_open_total", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      const before = (yield* Metric.value(CacheMetrics.circuitOpens)).count
      yield* redis.push("get", ...Array.from({ length: 3 }, () => ScriptedConnection.rejected("loading")))
      for (let i = 0; i < 3; i++) yield* Effect.flip(cache.get("k"))
      yield* settle
      expect((yield* Metric.value(CacheMetrics.circuitOpens)).count - before).toBe(1)
    }).pipe(Effect.provide(scripted())))
})

describe("RedisCache latency (survivors)", () => {
  const latencyOf = (operation: string) =>
    Effect.map(
      Metric.value(Metric.taggedWithLabels(CacheMetrics.latency, [
        MetricLabel.make("operation", operation),
        MetricLabel.make("backend", "redis")
      ])),
      (state) => ({ count: state.count, sum: state.sum })
    )

  it.effect("each call's duration is recorded in seconds, for a success and for a failure", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* TestClock.adjust("10 seconds")
      const gets = yield* latencyOf("get")
      const deletes = yield* latencyOf("delete")
      yield* redis.push("get", ScriptedConnection.slow("30 millis"))
      yield* redis.push("del", ScriptedConnection.slow("40 millis", ScriptedConnection.permanent("no_permission")))
      const read = yield* Effect.fork(cache.get("k"))
      const removal = yield* Effect.fork(Effect.flip(cache.delete("k")))
      yield* TestClock.adjust("40 millis")
      yield* Fiber.join(read)
      yield* Fiber.join(removal)
      const get = yield* latencyOf("get")
      const del = yield* latencyOf("delete")
      expect(get.count - gets.count).toBe(1)
      expect(get.sum - gets.sum).toBeCloseTo(0.03, 6)
      expect(del.count - deletes.count).toBe(1)
      expect(del.sum - deletes.sum).toBeCloseTo(0.04, 6)
    }).pipe(Effect.provide(scripted())))
})
